"""A submission whose commit's reply is lost: the 503 says the outcome is
unknown, and a retry with the same Idempotency-Key finds the job instead of
storing a second one."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import pytest

from servcore import Service, create_app
from tests.acceptance.conftest import Api, assert_json_error, client_for
from tests.conftest import fast_config
from tests.pg_proxy import CommitReplyDropper
from tests.postgres import DSN, postgres_url, require_postgres


@pytest.fixture
async def proxy() -> AsyncIterator[CommitReplyDropper]:
    require_postgres()
    target = urlsplit(DSN)
    dropper = CommitReplyDropper(target.hostname or "127.0.0.1", target.port or 5432)
    yield dropper
    await dropper.close()


@pytest.fixture
async def api(proxy: CommitReplyDropper) -> AsyncIterator[Api]:
    port = await proxy.start()
    target = urlsplit(postgres_url())
    through_proxy = urlunsplit(target._replace(netloc=f"{target.username}@127.0.0.1:{port}"))
    service = Service(through_proxy, config=fast_config())
    await service.start(workers=False)
    client = client_for(create_app(service, manage_service=False))
    try:
        yield Api(service, client)
    finally:
        await client.aclose()
        await service.stop(grace=0)


async def test_a_lost_commit_reply_is_named_and_the_retry_with_the_key_finds_the_job(
    api: Api, proxy: CommitReplyDropper
) -> None:
    body = {"payload": {"task": "invoice", "n": 7}}
    headers = {"Idempotency-Key": "invoice-7"}
    proxy.arm()
    lost = await api.client.post("/jobs", json=body, headers=headers)
    assert proxy.dropped.is_set()
    assert_json_error(lost, 503, "outcome unknown", "retry with the same Idempotency-Key")

    retried = await api.client.post("/jobs", json=body, headers=headers)
    assert retried.status_code == 200, retried.text  # it had been stored after all
    assert retried.json()["message"] == "Job already exists"
    assert (await api.stats())["total"] == 1


async def test_a_lost_commit_reply_without_a_key_says_the_job_may_be_stored(
    api: Api, proxy: CommitReplyDropper
) -> None:
    proxy.arm()
    lost = await api.client.post("/jobs", json={"payload": {"n": 1}})
    assert proxy.dropped.is_set()
    assert_json_error(lost, 503, "outcome unknown", "may or may not be stored", "Idempotency-Key")
    assert (await api.stats())["total"] == 1  # why "try again" would be wrong
