"""Running jobs: the executor, the completer and one runtime per queue."""
