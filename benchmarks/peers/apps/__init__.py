"""The worker side of each library: its app, the one task, its handler.

Each module is what the library's worker CLI imports (and what its client
imports where the enqueue call is made on the task object). They read the
phase's place from the environment at import, as an app reads its settings.
"""
