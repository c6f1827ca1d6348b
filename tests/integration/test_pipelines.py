"""Pipelines on every store: own concurrency, handler, tasks, store and routes."""

from __future__ import annotations

from pathlib import Path

import pytest

from servcore import JobRequestError, JobStatus, Pipeline, Service, create_app
from servcore.errors import ConfigError
from tests import pipeline_tasks
from tests.acceptance.conftest import assert_json_error, client_for
from tests.conftest import fast_config, finished, make_store, wait_for


@pytest.fixture
def pipelined(backend: str, tmp_path: Path) -> Service:
    media_store = f"sqlite:///{tmp_path / 'media.db'}" if backend != "memory" else "memory://"
    return Service(
        make_store(backend, tmp_path),
        config=fast_config(concurrency=3),
        pipelines=[
            Pipeline("email", concurrency=5, tasks=pipeline_tasks.tasks, routes="/email_jobs"),
            Pipeline(
                "media",
                concurrency=2,
                handler="tests.pipeline_tasks:transcode",
                store=media_store,
                routes="/media_jobs",
            ),
        ],
    )


async def test_each_pipeline_runs_with_its_own_settings(pipelined: Service) -> None:
    await pipelined.start()
    try:
        assert pipelined.runtimes["email"].concurrency == 5
        assert pipelined.runtimes["default"].concurrency == 3
        assert "media" not in pipelined.runtimes  # its own service runs it
        media = pipelined.pipeline("media")
        assert media.runtimes["media"].concurrency == 2

        email = await pipelined.enqueue("send_email", {"to": "a@example.com"})
        assert email.queue == "email"  # the task set's pipeline
        assert (await finished(pipelined, email.id)).result == {"sent_to": "a@example.com"}

        clip = await media.enqueue("anything", {"file": "a.mp4"}, queue="media")
        done = await finished(media, clip.id)
        assert done.result == {"transcoded": "a.mp4", "queue": "media"}  # the pipeline's handler
        assert await pipelined.get_job(clip.id) != done  # ids are the media store's own

        with pytest.raises(JobRequestError, match=r"store of its own.*/media_jobs"):
            await pipelined.enqueue("anything", queue="media")
        queues = {info.name: concurrency for info, concurrency in await pipelined.queues()}
        assert queues["media"] == 2
        assert queues["email"] == 5
    finally:
        await pipelined.stop(grace=0)


async def test_pipeline_routes_reach_the_pipeline(pipelined: Service) -> None:
    client = client_for(create_app(pipelined, manage_service=False))
    await pipelined.start()
    try:
        response = await client.post("/email_jobs", json={"payload": {"task": "send_email"}})
        assert response.status_code == 202, response.text
        job = (await client.get(f"/email_jobs/{response.json()['job_id']}")).json()
        assert job["queue"] == "email"

        response = await client.post("/media_jobs", json={"payload": {"file": "b.mp4"}})
        assert response.status_code == 202, response.text
        media_id = response.json()["job_id"]
        await wait_for(
            lambda: _status(client, f"/media_jobs/{media_id}", "done"), message="media job"
        )
        listed = (await client.get("/media_jobs")).json()
        assert [j["id"] for j in listed] == [media_id]

        refused = await client.post("/jobs", json={"payload": {}, "queue": "media"})
        assert_json_error(refused, 400, "store of its own", "/media_jobs")
        assert {q["name"] for q in (await client.get("/queues")).json()} >= {"email", "media"}
    finally:
        await client.aclose()
        await pipelined.stop(grace=0)


async def _status(client: object, path: str, status: str) -> bool:
    response = await client.get(path)  # type: ignore[attr-defined]
    return bool(response.json()["status"] == status)


async def test_a_node_pinned_to_other_queues_runs_no_pipeline_of_its_own(
    pipelined: Service,
) -> None:
    pipelined.configure(queues=("email",))
    await pipelined.start()
    try:
        assert list(pipelined.runtimes) == ["email"]
        assert pipelined.pipeline("media").runtimes == {}
        # Its routes still answer: the API reaches every pipeline's store.
        media = await pipelined.pipeline("media").enqueue("x", queue="media")
        assert media.status is JobStatus.QUEUED
    finally:
        await pipelined.stop(grace=0)


def test_queue_concurrency_from_the_environment_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    from servcore.config import env_overrides

    service = Service("memory://", pipelines=[Pipeline("email", concurrency=5)])
    monkeypatch.setenv("SERVCORE_QUEUE_CONCURRENCY", "email=9, other=2")
    service.configure(**env_overrides())
    assert service.concurrency_of("email") == 9
    assert service.concurrency_of("other") == 2
    monkeypatch.setenv("SERVCORE_QUEUE_CONCURRENCY", "email")
    with pytest.raises(ConfigError, match="queue=number pairs"):
        env_overrides()
    # Service() reads the environment too: a bad variable stops it at once.
    with pytest.raises(ConfigError, match="queue=number pairs"):
        Service("memory://")
    monkeypatch.delenv("SERVCORE_QUEUE_CONCURRENCY")
    with pytest.raises(ConfigError, match="declared twice"):
        Service("memory://", pipelines=[Pipeline("a"), Pipeline("a")])


async def test_cron_lists_the_entries_of_every_pipeline(pipelined: Service) -> None:
    pipelined.cron("@daily", "send_email")
    entry = pipelined.cron("@hourly", "anything", queue="media")
    assert entry in pipelined.pipeline("media").cron_entries.values()
    await pipelined.start(workers=False)
    try:
        listed = {
            entry.name: entry.template.queue for entry, _, _ in await pipelined.cron_schedule()
        }
        assert listed == {"send_email": "email", "anything": "media"}
    finally:
        await pipelined.stop(grace=0)
