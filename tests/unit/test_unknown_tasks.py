"""A job whose task has no handler: the demo handler only while no task is
registered, else a refusal at submission and a failure, without retry, at run."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any

import msgspec
import pytest

from servcore import ConfigError, Service, ServiceConfig
from servcore.job_requests import JobRequestError
from servcore.jobs import Job, JobStatus, NewJob
from servcore.retry import Backoff
from servcore.runtime.executor import Executor
from servcore.tasks import TaskRegistry, default_handler
from servcore.testing import FakeClock
from tests.unit.parts import T0

KNOWN = "(known: charge, refund, send_email)"


async def noop(job: Job) -> None:
    return None


def registry_with_tasks() -> TaskRegistry:
    registry = TaskRegistry()
    for name in ("send_email", "charge", "refund"):
        registry.register(name, noop)
    return registry


def test_with_no_task_registered_every_job_runs_the_demo_handler() -> None:
    registry = TaskRegistry()
    assert registry.missing("anything") is None
    assert registry.resolve("anything").handler is default_handler
    assert registry.resolve("").handler is default_handler


def test_once_tasks_are_registered_an_unknown_one_is_named_with_the_known_ones() -> None:
    registry = registry_with_tasks()
    assert registry.missing("send_emial") == f"no handler for task 'send_emial' {KNOWN}"
    assert registry.missing("") == f"no handler for a job without a 'task' in its payload {KNOWN}"
    assert registry.missing("charge") is None
    assert registry.resolve("send_emial").handler is not default_handler


def test_a_chosen_default_or_a_queue_handler_takes_unknown_tasks() -> None:
    registry = registry_with_tasks()
    registry.set_queue_default("media", noop)
    assert registry.missing("transcode", "media") is None
    assert registry.resolve("transcode", "media").handler is noop
    assert registry.missing("transcode", "default") is not None
    registry.set_default(noop)
    assert registry.missing("transcode", "default") is None
    assert registry.resolve("transcode").handler is noop


def job(task: str) -> Job:
    """A job of ``task`` on its first attempt of three, as a claim hands it over."""
    stored = NewJob({"task": task}, T0, task=task).stored(7, T0)
    return msgspec.structs.replace(stored, status=JobStatus.RUNNING, attempt=1)


async def test_a_job_of_an_unknown_task_fails_at_once_without_retry() -> None:
    clock = FakeClock(T0)
    with ThreadPoolExecutor(1) as threads:
        executor = Executor(registry_with_tasks(), clock, threads, Backoff())
        outcome = await executor.execute(job("send_emial"))
    assert outcome.completion is None
    assert outcome.failure is not None
    assert outcome.failure.retry_at is None  # attempt 1 of 3, and still no retry
    assert outcome.failure.error.error == f"no handler for task 'send_emial' {KNOWN}"


def service_with_tasks(**config: Any) -> Service:
    service = Service("memory://", config=ServiceConfig(**config), clock=FakeClock(T0))

    @service.task("send_email", timeout=30, max_attempts=5, backoff=Backoff(base=4))
    async def send_email(job: Job) -> None:
        return None

    @service.task("charge")
    async def charge(job: Job) -> None:
        return None

    @service.task("refund")
    def refund(job: Job) -> None:
        return None

    return service


def test_submitting_an_unknown_task_is_refused_with_the_same_words() -> None:
    service = service_with_tasks()
    with pytest.raises(JobRequestError) as refused:
        service.build_job({"task": "send_emial"})
    assert str(refused.value) == f"no handler for task 'send_emial' {KNOWN}"
    with pytest.raises(JobRequestError, match="without a 'task'"):
        service.build_job({"to": "a@example.com"})


def test_a_cron_entry_may_name_a_task_registered_later() -> None:
    service = service_with_tasks()
    entry = service.cron("@hourly", "nightly_report")
    assert entry.template.task == "nightly_report"


def test_a_job_records_what_it_will_run_with() -> None:
    service = service_with_tasks(backoff=Backoff(base=2))
    declared = service.build_job({"task": "send_email"})
    assert (declared.timeout, declared.max_attempts, declared.backoff) == (30, 5, 4)
    plain = service.build_job({"task": "charge"})
    assert (plain.timeout, plain.max_attempts, plain.backoff) == (None, 3, 2)  # the service's
    asked = service.build_job({"task": "send_email"}, timeout=5, max_attempts=1, backoff=9)
    assert (asked.timeout, asked.max_attempts, asked.backoff) == (5, 1, 9)


def test_a_node_that_knows_no_task_leaves_the_defaults_to_the_worker() -> None:
    service = Service("memory://", config=ServiceConfig(), clock=FakeClock(T0))
    new = service.build_job({"task": "send_email"})
    assert (new.timeout, new.max_attempts, new.backoff) == (None, 3, None)


async def test_a_cron_entry_whose_task_never_came_stops_the_start() -> None:
    service = service_with_tasks()
    service.cron("@hourly", "nightly_report")
    with pytest.raises(ConfigError) as refused:
        await service.start()
    assert str(refused.value) == (
        "cron entry 'nightly_report': no handler for task 'nightly_report' "
        "(known: charge, refund, send_email)"
    )
    assert not service.started
    await service.start(workers=False)  # an app that only enqueues runs no cron
    await service.stop()
