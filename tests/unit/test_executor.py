"""The executor on its own: one job through its handler, and how it ended."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import msgspec
import pytest

from servcore.jobs import Job, JobStatus, NewJob
from servcore.retry import Backoff
from servcore.runtime.executor import MAX_RETRY_DELAY, Executor, Outcome
from servcore.store.base import Completion, Failure
from servcore.tasks import Cancel, CancelToken, Discard, Retry, TaskRegistry, cancel_requested
from servcore.testing import FakeClock
from tests.conftest import wait_for
from tests.unit.parts import T0

# No jitter: every delay is exact. 2 s, 6 s, 18 s, …
BACKOFF = Backoff(base=2, factor=3, jitter=0)
STARTED = T0 + timedelta(minutes=4)  # when the claim started the run


@pytest.fixture
def threads() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(2, thread_name_prefix="unit-handler")
    yield pool
    pool.shutdown(wait=True)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(T0 + timedelta(minutes=5))


@pytest.fixture
def registry() -> TaskRegistry:
    return TaskRegistry()


@pytest.fixture
def executor(registry: TaskRegistry, clock: FakeClock, threads: ThreadPoolExecutor) -> Executor:
    return Executor(registry, clock, threads, BACKOFF)


def running(
    task: str = "work",
    *,
    attempt: int = 1,
    max_attempts: int = 3,
    timeout: float | None = None,
    backoff: float | None = None,
    payload: dict[str, Any] | None = None,
) -> Job:
    """A job as a claim hands it over: running, on ``attempt``."""
    new = NewJob(
        payload={"n": 21} if payload is None else payload,
        run_at=T0,
        task=task,
        max_attempts=max_attempts,
        timeout=timeout,
        backoff=backoff,
    )
    return msgspec.structs.replace(
        new.stored(7, T0),
        status=JobStatus.RUNNING,
        attempt=attempt,
        lease_token=attempt + 4,
        started_at=STARTED,
    )


def failed(outcome: Outcome) -> Failure:
    assert outcome.completion is None
    assert outcome.failure is not None
    return outcome.failure


def completed(outcome: Outcome) -> Completion:
    assert outcome.failure is None
    assert outcome.completion is not None
    return outcome.completion


async def test_an_async_result_completes_the_run_as_plain_json(
    registry: TaskRegistry, executor: Executor, clock: FakeClock
) -> None:
    @registry.task("work")
    async def work(job: Job) -> dict[str, Any]:
        return {"double": job.payload["n"] * 2, "pair": (1, 2)}

    job = running()
    done = completed(await executor.execute(job))

    assert done == Completion(job.id, job.lease_token, clock.now(), {"double": 42, "pair": [1, 2]})
    assert not executor.runs_in_thread(job)


async def test_a_plain_def_handler_runs_in_the_thread_pool(
    registry: TaskRegistry, executor: Executor
) -> None:
    @registry.task("work")
    def work(job: Job) -> str:
        return threading.current_thread().name

    job = running()
    assert executor.runs_in_thread(job)
    assert completed(await executor.execute(job)).result.startswith("unit-handler")


async def test_an_unknown_task_gets_the_default_result(executor: Executor) -> None:
    result = completed(await executor.execute(running("nobody_handles_this"))).result
    assert (result["status"], result["job_id"]) == ("completed", 7)


async def test_an_error_fails_the_attempt_with_its_traceback_and_a_backoff_retry(
    registry: TaskRegistry, executor: Executor, clock: FakeClock
) -> None:
    @registry.task("work")
    async def work(job: Job) -> None:
        raise ValueError(f"broken on attempt {job.attempt}")

    job = running(attempt=2)
    failure = failed(await executor.execute(job))

    assert (failure.id, failure.lease_token, failure.cancel) == (job.id, job.lease_token, False)
    assert failure.error.error == "ValueError: broken on attempt 2"
    assert (failure.error.attempt, failure.error.at) == (2, clock.now())
    assert failure.error.started_at == STARTED  # the attempt's start, kept with its end
    assert failure.error.traceback is not None
    assert "raise ValueError" in failure.error.traceback
    assert failure.retry_at == clock.now() + timedelta(seconds=6)  # 2 s * 3 ** 1


@pytest.mark.parametrize(
    ("task_backoff", "job_backoff", "attempt", "delay"),
    [
        (None, None, 1, 2.0),  # the executor's default
        (None, None, 3, 18.0),
        (Backoff(base=5, jitter=0), None, 1, 5.0),  # the task's own
        # The job's base in the task's shape: a job records its task's base
        # (build_job), so the task's factor must still apply to it.
        (Backoff(base=5, jitter=0), 10.0, 2, 20.0),
    ],
)
async def test_the_retry_delay_comes_from_the_backoff(
    registry: TaskRegistry,
    executor: Executor,
    clock: FakeClock,
    task_backoff: Backoff | None,
    job_backoff: float | None,
    attempt: int,
    delay: float,
) -> None:
    @registry.task("work", backoff=task_backoff)
    async def work(job: Job) -> None:
        raise RuntimeError("again")

    job = running(attempt=attempt, max_attempts=5, backoff=job_backoff)
    failure = failed(await executor.execute(job))

    assert failure.retry_at == clock.now() + timedelta(seconds=delay)


async def test_the_last_attempt_fails_the_job_for_good(
    registry: TaskRegistry, executor: Executor
) -> None:
    @registry.task("work")
    async def work(job: Job) -> None:
        raise Retry(after=1)  # asks for more, but there is none left

    failure = failed(await executor.execute(running(attempt=3, max_attempts=3)))
    assert (failure.retry_at, failure.cancel) == (None, False)


@pytest.mark.parametrize(
    ("after", "delay"), [(7.0, 7.0), (0.0, 0.0), (None, 2.0), (1e12, MAX_RETRY_DELAY)]
)
async def test_retry_after_sets_the_delay_instead_of_the_backoff(
    registry: TaskRegistry,
    executor: Executor,
    clock: FakeClock,
    after: float | None,
    delay: float,
) -> None:
    @registry.task("work")
    async def work(job: Job) -> None:
        raise Retry(after=after, reason="not yet")

    failure = failed(await executor.execute(running()))

    assert failure.retry_at == clock.now() + timedelta(seconds=delay)
    assert (failure.error.error, failure.error.traceback) == ("not yet", None)


async def test_discard_fails_at_once_and_cancel_ends_cancelled(
    registry: TaskRegistry, executor: Executor
) -> None:
    @registry.task("discard")
    async def discard(job: Job) -> None:
        raise Discard("bad input")

    @registry.task("cancel")
    def cancel(job: Job) -> None:
        raise Cancel("nothing to do")

    discarded = failed(await executor.execute(running("discard", max_attempts=9)))
    assert (discarded.retry_at, discarded.cancel, discarded.error.error) == (
        None,
        False,
        "bad input",
    )
    cancelled = failed(await executor.execute(running("cancel", max_attempts=9)))
    assert (cancelled.retry_at, cancelled.cancel, cancelled.error.error) == (
        None,
        True,
        "nothing to do",
    )


async def test_an_unserialisable_result_fails_the_job_without_retries(
    registry: TaskRegistry, executor: Executor
) -> None:
    @registry.task("work")
    async def work(job: Job) -> object:
        return {"handle": object()}

    failure = failed(await executor.execute(running(max_attempts=9)))

    assert failure.retry_at is None
    assert "not JSON-serialisable (dict)" in failure.error.error


async def test_a_result_over_max_result_bytes_fails_the_attempt_and_is_retried(
    registry: TaskRegistry, clock: FakeClock, threads: ThreadPoolExecutor
) -> None:
    executor = Executor(registry, clock, threads, BACKOFF, max_result_bytes=100)

    @registry.task("work")
    async def work(job: Job) -> object:
        return job.payload["result"]

    @registry.task("blocking")
    def blocking(job: Job) -> object:
        return job.payload["result"]

    fits = "x" * 98  # 100 bytes as JSON, with its quotes
    for task in ("work", "blocking"):
        outcome = await executor.execute(running(task, payload={"result": fits}))
        assert outcome.completion is not None
        assert outcome.completion.result == fits
        failure = failed(await executor.execute(running(task, payload={"result": fits + "x"})))
        assert failure.retry_at == clock.now() + timedelta(seconds=2)  # attempts remain
        assert failure.error.error.startswith("handler returned a result of 101 bytes as JSON")
        assert "over the limit of 100 (max_result_bytes)" in failure.error.error
    big = {"rows": list(range(100))}
    last = failed(await executor.execute(running(payload={"result": big}, attempt=3)))
    assert last.retry_at is None  # the last attempt: failed for good


async def test_an_async_handler_past_its_timeout_is_cancelled_and_the_attempt_failed(
    registry: TaskRegistry, executor: Executor, clock: FakeClock
) -> None:
    stopped = asyncio.Event()

    @registry.task("work", timeout=30)
    async def work(job: Job) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            stopped.set()

    token = CancelToken()
    failure = failed(await executor.execute(running(timeout=0.01), token))  # job's over task's

    assert stopped.is_set()
    assert failure.error.error == "timed out after 0.01 s"
    assert failure.retry_at == clock.now() + timedelta(seconds=2)
    assert token.reason == "timed out after 0.01 s"


async def test_a_thread_handler_past_its_timeout_is_told_to_stop(
    registry: TaskRegistry, executor: Executor
) -> None:
    saw_cancel = threading.Event()

    @registry.task("work", timeout=0.02)
    def work(job: Job) -> str:
        deadline = time.monotonic() + 10
        while not cancel_requested() and time.monotonic() < deadline:
            time.sleep(0.001)
        if cancel_requested():
            saw_cancel.set()
        return "too late"

    failure = failed(await executor.execute(running()))

    assert failure.error.error == "timed out after 0.02 s"
    await wait_for(saw_cancel.is_set, message="the thread to see the cancel request")


async def test_a_timeout_error_raised_by_the_handler_is_an_ordinary_error(
    registry: TaskRegistry, executor: Executor
) -> None:
    @registry.task("work", timeout=30)
    async def work(job: Job) -> None:
        raise TimeoutError("the upstream API did not answer")

    failure = failed(await executor.execute(running()))

    assert failure.error.error == "TimeoutError: the upstream API did not answer"
    assert failure.error.traceback is not None


async def test_crashed_fails_the_attempt_with_the_error(
    registry: TaskRegistry, executor: Executor, clock: FakeClock
) -> None:
    try:
        raise KeyError("slot")
    except KeyError as error:
        failure = failed(executor.crashed(running(), error))

    assert failure.error.error == "KeyError: 'slot'"
    assert failure.retry_at == clock.now() + timedelta(seconds=2)


async def test_a_process_task_needs_a_process_pool(
    registry: TaskRegistry, executor: Executor
) -> None:
    registry.register("work", in_a_process, executor="process")

    with pytest.raises(RuntimeError, match="no process pool"):
        await executor.execute(running())


def in_a_process(job: Job) -> None:
    """A process handler: module-level, so a worker process could import it."""
