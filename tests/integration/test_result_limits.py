"""max_result_bytes: a result too large to store fails its attempt, on every backend."""

from __future__ import annotations

from pathlib import Path

from servcore import Job, JobStatus, Service
from tests.conftest import fast_config, make_store


async def test_a_result_over_max_result_bytes_fails_the_job_without_storing_it(
    backend: str, tmp_path: Path
) -> None:
    service = Service(make_store(backend, tmp_path), config=fast_config(max_result_bytes=1000))

    @service.task("big")
    async def big(job: Job) -> str:
        return "x" * int(job.payload["size"])

    await service.start()
    try:
        fits = await service.run("big", {"size": 998}, timeout=30)
        assert fits.result == "x" * 998
        over = await service.run("big", {"size": 999}, timeout=30, max_attempts=2, backoff=0)
        assert over.status is JobStatus.FAILED
        assert over.result is None
        assert [error.attempt for error in over.errors] == [1, 2]  # retried, as any error
        assert "1001 bytes as JSON, over the limit of 1000" in over.errors[-1].error
    finally:
        await service.stop(grace=0)
