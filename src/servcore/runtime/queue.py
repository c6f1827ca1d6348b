"""One queue's runtime: claim as many jobs as there are free slots, run them.

::

    claim loop ── claim_jobs(limit=free slots) ──▶ ready ──▶ worker slots (concurrency)
        ▲                                                        │ executor
        │ woken by: a local submit, the next run_at,             ▼
        │ a freed slot, or the poll cap                      completer (batches)

The claim loop never polls on a fixed beat while work flows: it sleeps until
it is notified of a submission, until the earliest ``run_at`` in its queue,
or at most ``poll_interval`` (which covers a wake-up from another process
that was lost: see ``notifier``). A heartbeat renews the leases
of running jobs every ``lease / 3``.

Stopping has two scopes: ``stop_claiming`` ends the claim loop; ``drain``
lets running jobs finish within a grace period, then cancels what is left
and puts those jobs back in the queue without spending their attempt.

``stop_run`` stops one job whose claim is no longer ours (it was cancelled,
or its lease was lost): an async handler is cancelled at once, a thread
handler is told and keeps its slot until it returns, and whatever the run
ends with is dropped, since the store has already settled the job. Runs are
known by their claim, ``(job id, lease token)``: a job retried while a
stopped run of it still winds down can be claimed again here, and the two
runs must not be mistaken for each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Sequence
from datetime import datetime, timedelta

from servcore.clock import Clock
from servcore.jobs import Job, JobStatus
from servcore.runtime.completer import Completer
from servcore.runtime.executor import Executor, Outcome
from servcore.runtime.job_events import JobEvents
from servcore.store.base import ClaimParams, Completion, Failure, Lease, Store, StoreError
from servcore.supervisor import Supervisor
from servcore.tasks import CancelToken
from servcore.telemetry import Telemetry

log = logging.getLogger("servcore.runtime")

Claim = tuple[int, int]  # (job id, lease token): one run of a job

_MIN_WAIT = 0.001
# Longer than SQLite's busy_timeout (10 s), so a claim under way is seen to its end.
_STOP_TIMEOUT = 30.0
_WORKER_STOP_TIMEOUT = 2.0
_MIN_RECORDING_LIMIT = 64
# Jobs that run shorter than this on average are claimed ahead of free slots,
# so that claiming overlaps running: as many as the slots finish while one
# claim takes (a store round trip or several), at most _MOST_AHEAD times the
# slots. Longer jobs are claimed only for free slots: a job waiting behind
# them could run sooner on another node.
_CLAIM_AHEAD_BELOW = 0.05
_MOST_AHEAD = 8
_WEIGHT = 0.1  # of the newest sample in a moving average


class QueueRuntime:
    def __init__(
        self,
        name: str,
        *,
        store: Store,
        executor: Executor,
        clock: Clock,
        node: str,
        concurrency: int,
        lease: float,
        poll_interval: float,
        events: JobEvents | None = None,
        early_cancels: dict[Claim, float] | None = None,
    ) -> None:
        self.name = name
        self.concurrency = concurrency
        self._store = store
        self._executor = executor
        self._clock = clock
        self._node = node
        self._lease = timedelta(seconds=lease)
        self._poll_interval = poll_interval
        self._events = events or JobEvents(Telemetry(), node, clock)
        self.completer = Completer(store, self._on_stale, self._on_written, self._on_settled)
        self.in_flight: dict[Claim, Job] = {}
        # Run to the end, outcome handed to the completer, not yet in the store:
        # still held (leases renewed, never rescued by this node), and a bound
        # on them stops claiming while the store falls behind.
        self.recording: dict[Claim, Job] = {}
        self.recording_limit = max(2 * concurrency, _MIN_RECORDING_LIMIT)
        # claim → (the slot running it, the token its handler reads)
        self._runs: dict[Claim, tuple[asyncio.Task[None], CancelToken]] = {}
        # In flight, but no longer ours to finish: claim → why ("cancelled" or "lost").
        self._stopped: dict[Claim, str] = {}
        self._cancel_sent: set[Claim] = set()  # runs whose slot we cancelled
        # Claims cancelled before they reached this runtime (a notification can
        # overtake a claim's reply), claim → when to forget it (loop time):
        # read here, written by the node that runs every queue.
        self.early_cancels = early_cancels if early_cancels is not None else {}
        self._ready: asyncio.Queue[Job] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._workers: list[asyncio.Task[None]] = []
        self._supervisor: Supervisor | None = None
        self._claiming = True
        # The clock of the claim on its way to the store, if any: the jobs it
        # takes start no earlier (see WorkerNode.release_orphans).
        self.claiming_since: datetime | None = None
        self._working = True
        self.stale_outcomes = 0
        self.executed = 0
        # Moving averages, in seconds, of recent runs and of recent claims.
        self._run_time: float | None = None
        self._claim_time = 0.0

    @property
    def claim_part(self) -> str:
        return f"queue {self.name}"

    # -- life cycle -------------------------------------------------------

    def start(self, supervisor: Supervisor) -> None:
        self._supervisor = supervisor
        self._workers = [
            asyncio.create_task(self._work(), name=f"{self.name} worker {slot}")
            for slot in range(self.concurrency)
        ]
        supervisor.start(f"completer {self.name}", self.completer.run)
        supervisor.start(f"heartbeat {self.name}", self._heartbeat)
        supervisor.start(self.claim_part, self._claim_loop)
        log.info(
            "Worker started: queue %s, concurrency %d, node %s",
            self.name,
            self.concurrency,
            self._node,
        )

    async def stop_claiming(self) -> None:
        # Asked, not cancelled: a claim the store has begun is seen to its
        # end, so no claimed job is stranded as "running".
        self._claiming = False
        self._wake.set()
        self._slot_freed.set()
        if self._supervisor is not None:
            await self._supervisor.finish(self.claim_part, _STOP_TIMEOUT)
        # Claimed but not started: back to the queue at once.
        waiting = []
        while not self._ready.empty():
            waiting.append(self._ready.get_nowait())
        await self._release(waiting)

    async def drain(self, grace: float, hurry: asyncio.Event | None = None) -> None:
        """Let running jobs finish within ``grace`` s (or until ``hurry`` is set);
        return the rest to the queue."""
        deadline = asyncio.get_running_loop().time() + grace
        while self.in_flight and not (hurry is not None and hurry.is_set()):
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                break
            self._slot_freed.clear()
            waits = [asyncio.ensure_future(self._slot_freed.wait())]
            if hurry is not None:
                waits.append(asyncio.ensure_future(hurry.wait()))
            _, pending = await asyncio.wait(
                waits, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
            for waiter in pending:
                waiter.cancel()
        await self._stop_workers()
        if self._supervisor is not None:
            await self._supervisor.stop(f"heartbeat {self.name}")
            self.completer.stop()
            await self._supervisor.finish(f"completer {self.name}", _STOP_TIMEOUT)
        try:
            await self.completer.flush_all()
        except StoreError as error:
            log.error(
                "Queue %s: could not record %d outcome(s) (%s); those jobs will run again",
                self.name,
                self.completer.pending,
                error,
            )
        for claim in [claim for claim in self.in_flight if claim in self._stopped]:
            del self.in_flight[claim]  # settled by the store already: nothing to return
            del self._stopped[claim]
        in_threads = [job for job in self.in_flight.values() if self._executor.runs_in_thread(job)]
        if in_threads:
            # A thread cannot be stopped: requeued now, its job could run twice
            # at once. Left "running", it is rescued once this process is gone.
            log.warning(
                "Queue %s: %d thread job(s) still running after %.1f s grace: %s; "
                "they stay running and are rescued after this process exits",
                self.name,
                len(in_threads),
                grace,
                ", ".join(str(job.id) for job in in_threads),
            )
            for job in in_threads:
                del self.in_flight[_claim(job)]
        leftover = list(self.in_flight.values())
        if leftover:
            log.warning(
                "Queue %s: %d job(s) still running after %.1f s grace; returning them to the queue",
                self.name,
                len(leftover),
                grace,
            )
        await self._release(leftover)

    async def _stop_workers(self) -> None:
        """Cancel the worker slots; a handler that swallows the cancel is not waited for."""
        self._working = False
        for worker in self._workers:
            worker.cancel()
        if self._workers:
            _, stuck = await asyncio.wait(self._workers, timeout=_WORKER_STOP_TIMEOUT)
            if stuck:
                log.warning(
                    "Queue %s: %d worker(s) ignored cancellation; leaving them behind",
                    self.name,
                    len(stuck),
                )
        self._workers = []

    async def _release(self, jobs: list[Job]) -> None:
        if not jobs:
            return
        await self._store.release_jobs([Lease(job.id, job.lease_token) for job in jobs])
        for job in jobs:
            self.in_flight.pop(_claim(job), None)

    # -- waking -----------------------------------------------------------

    def notify(self, run_at: datetime | None = None) -> None:
        """A job was submitted to this queue (due at ``run_at``)."""
        if run_at is None or (run_at - self._clock.now()).total_seconds() < self._poll_interval:
            self._wake.set()

    # -- claiming ---------------------------------------------------------

    @property
    def capacity(self) -> int:
        """Jobs this runtime holds at most (see :func:`claim_capacity`)."""
        return claim_capacity(self.concurrency, self._run_time, self._claim_time)

    @property
    def most_capacity(self) -> int:
        """The most ``capacity`` can be."""
        return (1 + _MOST_AHEAD) * self.concurrency

    def _full(self) -> bool:
        return len(self.in_flight) >= self.capacity or len(self.recording) >= self.recording_limit

    def held(self) -> list[int]:
        """Ids of the jobs this runtime holds: running, or their outcome being written."""
        return [claim[0] for claim in (*self.in_flight, *self.recording)]

    async def claim_once(self, now: datetime) -> list[Job]:
        free = self.capacity - len(self.in_flight)
        if free <= 0 or len(self.recording) >= self.recording_limit:
            return []
        params = ClaimParams(self.name, free, self._node, now, now + self._lease)
        began = asyncio.get_running_loop().time()
        self.claiming_since = now
        try:
            jobs = await self._store.claim_jobs(params)
        finally:
            self.claiming_since = None
        self._claim_time = _moving(self._claim_time, asyncio.get_running_loop().time() - began)
        self.take(jobs)
        return jobs

    def take(self, jobs: list[Job]) -> None:
        """Jobs claimed for this runtime: in flight now, run by the next free slots."""
        for job in jobs:
            claim = _claim(job)
            self.in_flight[claim] = job
            self._ready.put_nowait(job)
            if self.early_cancels and claim in self.early_cancels:
                self._stop(claim, "the job was cancelled", "cancelled")

    async def _claim_loop(self) -> None:
        assert self._supervisor is not None
        health = self._supervisor.health
        while self._claiming:
            if self._full():
                self._slot_freed.clear()
                await self._slot_freed.wait()
                continue
            # Let this loop turn's other submissions land first, so that
            # under load one claim takes many jobs instead of one each.
            await asyncio.sleep(0)
            self._wake.clear()
            asked = self.capacity - len(self.in_flight)
            claimed = await self.claim_once(self._clock.now())
            health.ok(self.claim_part)
            if len(claimed) < asked:
                await self._sleep_until_due()

    async def _sleep_until_due(self) -> None:
        if self._wake.is_set():
            return
        next_at = await self._store.next_run_at(self.name)
        if self._wake.is_set():
            return
        wait = self._poll_interval
        if next_at is not None:
            wait = min(wait, (next_at - self._clock.now()).total_seconds())
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(wait, _MIN_WAIT)):
                await self._wake.wait()

    # -- running ----------------------------------------------------------

    async def _work(self) -> None:
        me = asyncio.current_task()
        assert me is not None
        while self._working:
            job = await self._ready.get()
            claim = _claim(job)
            if claim in self._stopped:  # stopped before it started: no run to tell of
                self._record(job, None)
                continue
            if log.isEnabledFor(logging.INFO):
                log.info(
                    "Executing job %d (%s, attempt %d)",
                    job.id,
                    job.task,
                    job.attempt,
                    extra=self._fields(job),
                )
            started = self._events.started(job)
            token = CancelToken()
            self._runs[claim] = (me, token)
            outcome: Outcome | None
            began = asyncio.get_running_loop().time()
            try:
                outcome = await self._executor.execute(job, token)
            except asyncio.CancelledError:
                if self._took_back_cancel(claim, me) and not me.cancelling():
                    outcome = None  # stopped by stop_run: nothing to record
                elif me.cancelling():
                    # This slot is being stopped: the job is released by drain.
                    self._events.finished(job, None, started, ended="released")
                    raise
                else:  # the handler raised CancelledError of its own accord
                    outcome = self._executor.crashed(job, RuntimeError("the handler was cancelled"))
            except Exception as error:  # a fault in servcore itself, not in the handler
                log.exception("Job %d: the executor failed", job.id, extra=self._fields(job))
                outcome = self._executor.crashed(job, error)
            else:
                self._took_back_cancel(claim, me)  # the handler swallowed it
            finally:
                del self._runs[claim]
                run_time = asyncio.get_running_loop().time() - began
                self._run_time = _moving(self._run_time, run_time)
            stop_reason = self._stopped.get(claim)
            recorded = self._record(job, outcome)
            if recorded:
                self._events.finished(job, outcome, started)
            else:
                self._events.finished(job, None, started, ended=stop_reason or "cancelled")

    def _fields(self, job: Job) -> dict[str, object]:
        """What a JSON log line says of the job (see servcore.logs)."""
        return {
            "job_id": job.id,
            "queue": job.queue,
            "task": job.task,
            "attempt": job.attempt,
            "node": self._node,
        }

    def _took_back_cancel(self, claim: Claim, me: asyncio.Task[None]) -> bool:
        """Undo stop_run's cancel of this slot, if it sent one."""
        if claim not in self._cancel_sent:
            return False
        self._cancel_sent.discard(claim)
        me.uncancel()
        return True

    def stop_run(self, job_id: int, lease_token: int | None, reason: str) -> bool:
        """Stop the run of a cancelled job (see the module docstring): its claim
        under ``lease_token``, or, without one, any claim of it here (called as
        the store cancels it, no newer claim can exist). False if none is here."""
        claims = [
            claim
            for claim in self.in_flight
            if claim[0] == job_id and lease_token in (None, claim[1])
        ]
        return any([self._stop(claim, reason, "cancelled") for claim in claims])

    def _stop(self, claim: Claim, reason: str, kind: str) -> bool:
        if claim not in self.in_flight or claim in self._stopped:
            return False
        self._stopped[claim] = kind
        run = self._runs.get(claim)
        if run is not None:
            slot, token = run
            token.request(reason)
            if not self._executor.runs_in_thread(self.in_flight[claim]):
                self._cancel_sent.add(claim)
                slot.cancel()
        log.info("Job %d: stopping its run (%s)", claim[0], reason)
        return True

    def _record(self, job: Job, outcome: Outcome | None) -> bool:
        """Hand the outcome to the completer; False if it is dropped (a stopped run)."""
        claim = _claim(job)
        if claim in self._stopped:
            del self._stopped[claim]
            del self.in_flight[claim]
            self._slot_freed.set()
            return False
        assert outcome is not None
        self.executed += 1
        if outcome.completion is not None:
            self.completer.add_completion(outcome.completion)
            if log.isEnabledFor(logging.INFO):
                log.info("Job %d completed successfully", job.id, extra=self._fields(job))
        elif outcome.failure is not None:
            self.completer.add_failure(outcome.failure)
            _log_failure(job, outcome, self._fields(job))
        self.recording[claim] = self.in_flight.pop(claim)
        self._slot_freed.set()
        return True

    async def run_once(self, now: datetime) -> int:
        """Claim what is due and run it to the end, recorded (for tests and tools)."""
        jobs = await self.claim_once(now)
        for _ in jobs:
            self._ready.get_nowait()

        async def run(job: Job) -> None:
            # Start and end told in the run's own task, as in a worker slot.
            started = self._events.started(job)
            outcome = await self._executor.execute(job)
            self._record(job, outcome)
            self._events.finished(job, outcome, started)

        await asyncio.gather(*(run(job) for job in jobs))
        while self.completer.pending:
            await self.completer.flush_once()
        return len(jobs)

    # -- leases -----------------------------------------------------------

    async def _heartbeat(self) -> None:
        interval = self._lease.total_seconds() / 3
        while True:
            await asyncio.sleep(interval)
            # A stopped run has nothing to hold; the rest are one claim per job.
            held = [
                Lease(job.id, job.lease_token)
                for claim, job in (*self.in_flight.items(), *self.recording.items())
                if claim not in self._stopped
            ]
            if held:
                lost = set(await self._store.extend_leases(held, self._clock.now() + self._lease))
                for lease in held:
                    # Only the claim that was sent: the job may have finished and
                    # been claimed again here meanwhile, under a newer token.
                    if lease.id in lost and (lease.id, lease.lease_token) in self.in_flight:
                        await self._stop_lost(lease)
            if self._supervisor is not None:
                self._supervisor.health.ok(f"heartbeat {self.name}")

    async def _stop_lost(self, lease: Lease) -> None:
        """Stop a run whose lease is gone: cancelled (told by no notification),
        or rescued elsewhere — the store says which."""
        job = await self._store.get_job(lease.id)
        cancelled = job is not None and job.status is JobStatus.CANCELLED
        kind, reason = (
            ("cancelled", "the job was cancelled")
            if cancelled
            else ("lost", "its lease was lost (rescued elsewhere)")
        )
        if self._stop((lease.id, lease.lease_token), reason, kind):
            log.warning("Job %d: no longer held here (%s); its run is stopped", lease.id, reason)

    def _on_written(self, retry_times: list[datetime]) -> None:
        if self._supervisor is not None:
            self._supervisor.health.ok(f"completer {self.name}")
        if retry_times:
            self.notify(min(retry_times))

    def _on_settled(self, completions: Sequence[Completion], failures: Sequence[Failure]) -> None:
        recording = self.recording
        for done in completions:
            recording.pop((done.id, done.lease_token), None)
        for failure in failures:
            recording.pop((failure.id, failure.lease_token), None)
        self._slot_freed.set()

    def _on_stale(self, ids: list[int]) -> None:
        self.stale_outcomes += len(ids)
        for job_id in ids:
            log.warning(
                "Job %d: outcome refused, its lease was taken over (stale fencing token)", job_id
            )


def _log_failure(job: Job, outcome: Outcome, fields: dict[str, object]) -> None:
    failure = outcome.failure
    assert failure is not None
    message = failure.error.error
    if failure.retry_at is not None:
        delay = (failure.retry_at - failure.error.at).total_seconds()
        log.warning(
            "Job %d failed (attempt %d of %d), retrying in %.2f s: %s",
            job.id,
            job.attempt,
            job.max_attempts,
            delay,
            message,
            extra=fields,
        )
    elif failure.cancel:
        log.info("Job %d cancelled: %s", job.id, message, extra=fields)
    else:
        log.error("Job %d failed: %s", job.id, message, extra=fields)


def claim_capacity(concurrency: int, run_time: float | None, claim_time: float) -> int:
    """Jobs to hold: the slots, and, while recent jobs are short, those
    claimed ahead (see ``_CLAIM_AHEAD_BELOW``); times are moving averages."""
    if run_time is None or run_time >= _CLAIM_AHEAD_BELOW:
        return concurrency
    finished_per_claim = concurrency * claim_time / max(run_time, 1e-6)
    return concurrency + min(_MOST_AHEAD * concurrency, math.ceil(finished_per_claim))


def _moving(average: float | None, sample: float) -> float:
    return sample if average is None else average + _WEIGHT * (sample - average)


def _claim(job: Job) -> Claim:
    return (job.id, job.lease_token)
