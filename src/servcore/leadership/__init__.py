"""Which node runs the once-per-cluster maintenance (rescue sweeps, pruning, cron)."""
