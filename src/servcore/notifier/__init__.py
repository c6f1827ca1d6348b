"""Cross-process wake-ups: a job stored by one process wakes the others."""
