"""The base of every error servcore raises on purpose.

``except ServcoreError`` catches them all: a bad setting, a refused job
request, an unreachable store, a bad cron expression, a process that cannot
serve. Each keeps the built-in base it had (``ValueError`` for bad input), so
code that caught that still does. A handler's own ``Retry``, ``Discard`` and
``Cancel`` are signals, not errors, and stay apart.
"""

from __future__ import annotations


class ServcoreError(Exception):
    """Something servcore refused or could not do; the message says what and why."""


class ConfigError(ServcoreError, ValueError):
    """A setting with a value that cannot be used; the message names it."""


class JobNotFound(ServcoreError, LookupError):
    """No such job: never stored, pruned, or past its ``result_ttl``."""
