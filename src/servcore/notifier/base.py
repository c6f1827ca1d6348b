"""The notifier seam: something that hears what other processes did to jobs.

Two kinds of news: a queue got new jobs, and a running job was cancelled.
Notifications only speed things up: a queue's capped poll guarantees progress
when one is lost (a dropped connection, a restart), and a cancelled job's
lease renewal fails within ``lease / 3``, which stops its run just the same.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

OnQueue = Callable[[str], None]
OnCancel = Callable[[int, int], None]  # (job id, the lease token it was cancelled under)

# A message is a queue name ("" for every queue) or ``cancel:<id>:<lease token>``
# (no queue name has a colon); every notifier sends these.
CANCEL_PREFIX = "cancel:"


def cancel_message(job_id: int, lease_token: int) -> str:
    """The message that says a running job was cancelled under ``lease_token``."""
    return f"{CANCEL_PREFIX}{job_id}:{lease_token}"


def deliver(message: str, on_queue: OnQueue, on_cancel: OnCancel) -> None:
    """Hand one message to the callback it is for."""
    if message.startswith(CANCEL_PREFIX):
        job_id, _, lease_token = message[len(CANCEL_PREFIX) :].partition(":")
        on_cancel(int(job_id), int(lease_token))
    else:
        on_queue(message)


class Notifier(Protocol):
    async def run(self, on_queue: OnQueue, on_cancel: OnCancel) -> None:
        """Until cancelled, call ``on_queue(name)`` when a queue got jobs
        (``on_queue("")``: any queue may have) and ``on_cancel(job_id, lease_token)``
        when a running job was cancelled."""
        ...

    def problem(self) -> str | None:
        """Why notifications are not arriving right now, or None."""
        ...
