"""The notifier seam: something that hears what other processes did to jobs.

Three kinds of news: a queue got new jobs, a running job was cancelled, and
a job finished (done, failed or cancelled). Notifications only speed things
up: a queue's capped poll guarantees progress when one is lost (a dropped
connection, a restart), a cancelled job's lease renewal fails within
``lease / 3``, which stops its run just the same, and a waiter on a job reads
it again at a coarse interval of its own (``servcore.notifier.waiters``).

Unlike the other two, a finish is heard by the process that wrote it as well:
whoever waits on a job should not care which process ran it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

OnQueue = Callable[[str], None]
OnCancel = Callable[[int, int], None]  # (job id, the lease token it was cancelled under)
OnFinish = Callable[[int], None]  # (job id)

# A message is a queue name ("" for every queue), ``cancel:<id>:<lease token>``
# or ``finished:<id>[,<id>...]`` (no queue name has a colon); every notifier
# sends these.
CANCEL_PREFIX = "cancel:"
FINISHED_PREFIX = "finished:"


def cancel_message(job_id: int, lease_token: int) -> str:
    """The message that says a running job was cancelled under ``lease_token``."""
    return f"{CANCEL_PREFIX}{job_id}:{lease_token}"


def finished_message(job_id: int) -> str:
    """The message that says a job reached done, failed or cancelled."""
    return f"{FINISHED_PREFIX}{job_id}"


def deliver(
    message: str, on_queue: OnQueue, on_cancel: OnCancel, on_finish: OnFinish | None = None
) -> None:
    """Hand one message to the callback it is for (a finish to nobody without ``on_finish``)."""
    if message.startswith(FINISHED_PREFIX):
        if on_finish is not None:
            for job_id in message[len(FINISHED_PREFIX) :].split(","):
                on_finish(int(job_id))
    elif message.startswith(CANCEL_PREFIX):
        job_id, _, lease_token = message[len(CANCEL_PREFIX) :].partition(":")
        on_cancel(int(job_id), int(lease_token))
    else:
        on_queue(message)


class Notifier(Protocol):
    async def run(
        self, on_queue: OnQueue, on_cancel: OnCancel, on_finish: OnFinish | None = None
    ) -> None:
        """Until cancelled, call ``on_queue(name)`` when a queue got jobs
        (``on_queue("")``: any queue may have, and any finish may have been
        missed), ``on_cancel(job_id, lease_token)`` when a running job was
        cancelled, and ``on_finish(job_id)`` when a job finished, in this
        process or another."""
        ...

    def problem(self) -> str | None:
        """Why notifications are not arriving right now, or None."""
        ...
