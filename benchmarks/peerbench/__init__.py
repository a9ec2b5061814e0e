"""Runners for benchmarks/peers.py: one module per task queue (see drivers.py)."""
