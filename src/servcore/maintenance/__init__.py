"""Periodic upkeep: rescuing jobs whose worker died, pruning old finished jobs."""
