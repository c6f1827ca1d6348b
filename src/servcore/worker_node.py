"""The worker side of a process: queue runtimes under supervision, the
maintenance parts, and stopping them in order.

An app process that only enqueues has a node that never starts: it holds no
runtimes, and its wake-ups and run stops do nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from servcore.clock import Clock
from servcore.config import ServiceConfig
from servcore.cron import CronEntry
from servcore.job_reads import NodeInfo, QueueInfo
from servcore.jobs import Job
from servcore.leadership.base import Leadership, LeaderTerm
from servcore.leadership.lease import LeaseLeadership
from servcore.maintenance.cron import CronScheduler
from servcore.maintenance.periodic import Periodic
from servcore.maintenance.pruner import Expirer, Pruner
from servcore.maintenance.rescuer import Rescuer
from servcore.notifier.waiters import FinishWaiters
from servcore.runtime.executor import Executor
from servcore.runtime.job_events import JobEvents
from servcore.runtime.processes import ProcessPool
from servcore.runtime.queue import Claim, QueueRuntime
from servcore.store.base import RescueReport, Store, StoreError
from servcore.supervisor import Health, Supervisor
from servcore.tasks import TaskRegistry
from servcore.telemetry import Telemetry

log = logging.getLogger("servcore")

NODE_HEARTBEAT = 5.0
TEND_INTERVAL = 5.0


class WorkerNode:
    def __init__(
        self,
        store: Store,
        config: ServiceConfig,
        *,
        registry: TaskRegistry,
        clock: Clock,
        telemetry: Telemetry,
        health: Health,
    ) -> None:
        self.store = store
        self.config = config
        self.registry = registry
        self.clock = clock
        self.telemetry = telemetry
        self.health = health
        self.supervisor = Supervisor(health, expected=(StoreError,))
        self.runtimes: dict[str, QueueRuntime] = {}
        # Claims cancelled before they reached a runtime (a notification can
        # overtake a claim's reply): written here, read by every runtime.
        self.early_cancels: dict[Claim, float] = {}
        self.rescuer = Rescuer(store, config.maintenance.max_rescues, self._on_rescued, self.held)
        self.pruner = Pruner(store, config.maintenance.retention)
        # Never longer than a job's lease: a frozen leader's jobs are then
        # rescued by its successor within two leases.
        leader_lease = min(config.maintenance.leader_lease, config.runtime.lease)
        self.leadership: Leadership = LeaseLeadership(
            store, config.node, lease=leader_lease, clock=clock
        )
        self._sampled_queues: set[str] = set()
        self._threads: ThreadPoolExecutor | None = None
        self._processes: ProcessPool | None = None
        self._hurry = asyncio.Event()
        self._started_at = clock.now()
        # Waiters for jobs to finish, woken by this process's one listener.
        self.finishes = FinishWaiters()
        self._listening = False

    # -- starting ---------------------------------------------------------

    async def start(
        self,
        concurrency: Mapping[str, int],
        *,
        cron_entries: Sequence[CronEntry],
        list_queues: Callable[[], Awaitable[list[QueueInfo]]] | None,
    ) -> None:
        """Run the queues ``concurrency`` names, with that many slots each;
        sample the depths of the queues ``list_queues`` lists (None: not here)."""
        config = self.config
        self._hurry = asyncio.Event()
        self._threads = ThreadPoolExecutor(
            min(sum(concurrency.values()), config.runtime.threads) or 1,
            thread_name_prefix="servcore-handler",
        )
        # Started lazily: no process exists until a process task runs.
        self._processes = ProcessPool(config.runtime.processes)
        await self.store.register_node(config.node)
        # Jobs of workers that died while we were down go back before we claim.
        await self.rescuer.run_once(self.clock.now())
        executor = Executor(
            self.registry,
            self.clock,
            self._threads,
            config.runtime.backoff,
            self._processes,
            config.runtime.max_result_bytes,
        )
        events = JobEvents(self.telemetry, config.node, self.clock)
        for name, slots in concurrency.items():
            runtime = QueueRuntime(
                name,
                store=self.store,
                executor=executor,
                clock=self.clock,
                node=config.node,
                concurrency=slots,
                lease=config.runtime.lease,
                poll_interval=config.runtime.poll_interval,
                events=events,
                early_cancels=self.early_cancels,
            )
            self.runtimes[name] = runtime
            runtime.start(self.supervisor)
        self.listen()
        self.supervisor.start("leadership", self.leadership.run)
        self._started_at = self.clock.now()
        await self._heartbeat(self._started_at)
        self._start_maintenance(cron_entries, list_queues)

    def listen(self) -> None:
        """Hear what other processes do to jobs, and every finish (this
        process's too), through the store's notifier; one listener, started
        once, by the worker side or by the first wait, whichever comes first."""
        if self._listening:
            return
        notifier = self.store.notifier()
        if notifier is None:
            return
        self._listening = True
        self.supervisor.start(
            "listener", lambda: notifier.run(self._heard, self.stop_run, self.finishes.finished)
        )

    def _heard(self, queue: str) -> None:
        self.notify(queue)
        if not queue:  # the listener was away: finishes too may have been missed
            self.finishes.wake_all()

    def _start_maintenance(
        self,
        cron_entries: Sequence[CronEntry],
        list_queues: Callable[[], Awaitable[list[QueueInfo]]] | None,
    ) -> None:
        """The periodic parts; those that act for the whole cluster only on the leader."""

        def every(
            name: str, run_once: Callable[[datetime], Awaitable[object]], interval: float
        ) -> None:
            periodic = Periodic(
                name, run_once, interval=interval, clock=self.clock, health=self.health
            )
            self.supervisor.start(name, periodic.run)

        def led(
            run_once: Callable[[datetime, LeaderTerm], Awaitable[object]],
        ) -> Callable[[datetime], Awaitable[object]]:
            """Run only while leading, and write under the term (see store.base)."""

            async def run(now: datetime) -> None:
                term = self.leadership.term()
                if term is not None:
                    await run_once(now, term)

            return run

        config = self.config
        every("rescuer", led(self.rescuer.run_once), config.maintenance.rescue_interval)
        every("pruner", led(self.pruner.run_once), config.maintenance.prune_interval)
        every("expirer", led(Expirer(self.store).run_once), config.maintenance.expire_interval)
        every("table care", led(self._tend_tables), TEND_INTERVAL)
        if cron_entries:
            scheduler = CronScheduler(
                self.store,
                list(cron_entries),
                clock=self.clock,
                health=self.health,
                leader=self.leadership.term,
                on_inserted=lambda job: self.wake_for([job]),
                look_every=config.runtime.poll_interval,
            )
            self.supervisor.start("cron", scheduler.run)
        if list_queues is not None:

            async def sample(now: datetime) -> None:
                await self._sample_queues(now, list_queues)

            every("queue sampler", sample, config.telemetry.sample_interval)
        every("node heartbeat", self._heartbeat, NODE_HEARTBEAT)
        # As often as the runtimes renew their leases.
        every("orphan check", self.release_orphans, config.runtime.lease / 3)

    # -- stopping ---------------------------------------------------------

    def hurry(self) -> None:
        """Cut a graceful stop short: requeue running jobs now."""
        self._hurry.set()

    async def drain(self, grace: float) -> None:
        """Stop claiming, let running jobs finish within ``grace`` s, requeue the rest."""
        runtimes = list(self.runtimes.values())
        if runtimes:
            log.info(
                "Stopping: no new jobs are claimed; waiting up to %.1f s for running jobs", grace
            )
        await asyncio.gather(*(runtime.stop_claiming() for runtime in runtimes))
        await asyncio.gather(*(runtime.drain(grace, self._hurry) for runtime in runtimes))

    async def shut_down(self) -> None:
        """End every part (after :meth:`drain`, or instead of it)."""
        await self.supervisor.stop()
        self._listening = False
        if self.runtimes:
            with contextlib.suppress(StoreError):
                await self.store.forget_node(self.config.node)
        self.runtimes.clear()
        if self._threads is not None:
            self._threads.shutdown(wait=False, cancel_futures=True)
            self._threads = None
        if self._processes is not None:
            await self._processes.close()
            self._processes = None

    # -- local runs -------------------------------------------------------

    def notify(self, queue: str) -> None:
        """Another process stored jobs in ``queue`` (every queue when empty)."""
        if not queue:
            self.wake_all()
        elif (runtime := self.runtimes.get(queue)) is not None:
            runtime.notify()

    def wake_for(self, jobs: Sequence[Job]) -> None:
        """Jobs were stored here: wake the queues that run them, for when they are due."""
        runtimes = self.runtimes
        if runtimes:
            for job in jobs:
                runtime = runtimes.get(job.queue)
                if runtime is not None:
                    runtime.notify(job.run_at)

    def wake_all(self) -> None:
        for runtime in self.runtimes.values():
            runtime.notify()

    def stop_run(self, job_id: int, lease_token: int | None = None) -> None:
        """Stop the run of a job just cancelled (while it held ``lease_token``,
        when known: then a claim still on its way is caught too)."""
        for runtime in self.runtimes.values():
            if runtime.stop_run(job_id, lease_token, "the job was cancelled"):
                return
        if self.runtimes and lease_token:
            claim = (job_id, lease_token)
            # Not here, or not yet: its claim may still be on its way back
            # from the store. The queues check claims against this for a while.
            now = asyncio.get_running_loop().time()
            for stale in [c for c, until in self.early_cancels.items() if until < now]:
                del self.early_cancels[stale]
            self.early_cancels[claim] = now + self.config.runtime.lease

    def held(self) -> set[int]:
        """The jobs this node holds: running, or their outcome being written."""
        return {job_id for runtime in self.runtimes.values() for job_id in runtime.held()}

    def running(self) -> dict[str, int]:
        """Jobs running now, by queue."""
        return {name: len(runtime.in_flight) for name, runtime in self.runtimes.items()}

    @property
    def stale_outcomes(self) -> int:
        return sum(runtime.stale_outcomes for runtime in self.runtimes.values())

    # -- maintenance ------------------------------------------------------

    async def _heartbeat(self, now: datetime) -> None:
        await self.store.record_node(
            NodeInfo(
                node=self.config.node,
                started_at=self._started_at,
                heartbeat_at=now,
                queues=tuple(self.runtimes),
                leader=self.leadership.is_leader(),
            )
        )

    async def release_orphans(self, now: datetime) -> list[int]:
        """Put back, without spending an attempt, the jobs the store says this
        node runs but no runtime here has: a claim that committed but whose
        answer was lost (the connection dropped after COMMIT). Claims still on
        their way are spared: only jobs started before the oldest of them count."""
        if not self.runtimes:
            return []
        cutoff = min([now, *(r.claiming_since for r in self.runtimes.values() if r.claiming_since)])
        released = await self.store.release_orphans(self.config.node, self.held(), cutoff)
        if released:
            log.warning(
                "Released %d job(s) claimed for this node that never reached it: %s",
                len(released),
                ", ".join(map(str, released[:20])),
            )
            self.wake_all()
        return released

    async def _tend_tables(self, now: datetime, term: LeaderTerm | None = None) -> None:
        done = await self.store.tend_tables()
        if done:
            log.info("Tended the jobs table: %s", ", ".join(done))

    async def _sample_queues(
        self, now: datetime, list_queues: Callable[[], Awaitable[list[QueueInfo]]]
    ) -> None:
        """Tell ``queue.depth`` for every queue (only when something listens);
        a queue that emptied is told once more, with zeros."""
        if not self.telemetry.listening("queue.depth"):
            return
        infos = await list_queues()
        seen = {info.name for info in infos}
        for gone in self._sampled_queues - seen:
            infos.append(QueueInfo(gone, False, 0, 0, 0, 0, 0, 0, None))
        self._sampled_queues = seen
        for info in infos:
            oldest = info.oldest_available_at
            self.telemetry.emit(
                "queue.depth",
                {
                    "available": info.available,
                    "scheduled": info.scheduled,
                    "running": info.running,
                    "oldest_age": max((now - oldest).total_seconds(), 0.0) if oldest else 0.0,
                },
                {"queue": info.name, "paused": info.paused},
            )

    def _on_rescued(self, report: RescueReport) -> None:
        if report.requeued:
            self.wake_all()
        if self.telemetry.listening("job.rescued"):
            self.telemetry.emit(
                "job.rescued",
                {"count": len(report.requeued) + len(report.failed)},
                {"job_ids": report.requeued, "failed_ids": report.failed, "node": self.config.node},
            )
