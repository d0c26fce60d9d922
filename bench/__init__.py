"""Mend's benchmarks: `python -m bench` runs them all, `python -m bench NAME` one of them.

Each benchmark measures Mend and, in the same run on the same machine, a comparison (a
ceiling or a rival), repeats the measurement and reports medians; see bench/README.md."""
