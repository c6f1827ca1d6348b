"""Stress runs: many processes, mixed bursts, invariants checked after each round."""
