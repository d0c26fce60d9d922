"""Mend workers: claim jobs under a lease, run them in a killable child process, report."""
