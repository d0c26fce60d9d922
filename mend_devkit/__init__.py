"""Process plumbing for development, tests and benchmarks: free ports, a redis-server (and
a Redis Cluster or a Sentinel setup made of them) and moto's S3 server on them, the sample
photo, and `make run`'s stack. Mend's own packages never import it."""
