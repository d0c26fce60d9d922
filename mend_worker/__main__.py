from mend_worker.main import main

main()
