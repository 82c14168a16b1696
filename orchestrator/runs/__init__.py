"""Runs: the run queue (leases), the runner that drives runs, reviews and run records."""
