"""HTTP: listings page by keyset (after_id, Link rel=next), page numbers stop at
the count cap with an answer that says what to do, and an estimated total is
marked."""

from __future__ import annotations

from servcore.job_reads import EXACT_COUNT_CAP
from tests.acceptance.conftest import Api, assert_json_error


async def test_a_full_page_links_to_the_next_by_keyset(api: Api) -> None:
    client = api.client
    ids = [await api.submit({"task": "t", "n": n}) for n in range(5)]
    seen: list[int] = []
    url: str | None = "/jobs?per_page=2"
    while url is not None:
        response = await client.get(url)
        assert response.status_code == 200
        assert response.headers["x-total-count"] == "5"
        assert "x-total-count-estimate" not in response.headers
        seen += [job["id"] for job in response.json()]
        link = response.headers.get("link")
        url = link[1 : link.index(">")] if link else None
        if url is not None:
            assert url.startswith("/jobs?per_page=2&after_id=")
            assert link is not None
            assert link.endswith('; rel="next"')
    assert seen == sorted(ids, reverse=True)


async def test_page_numbers_stop_at_the_cap_and_say_to_use_after_id(api: Api) -> None:
    client = api.client
    last = EXACT_COUNT_CAP // 200
    assert (await client.get(f"/jobs?per_page=200&page={last}")).status_code == 200
    response = await client.get(f"/jobs?per_page=200&page={last + 1}")
    assert_json_error(response, 400)
    assert "after_id" in response.json()["error"]
    for bad in ("0", "abc", "-1"):
        assert_json_error(await client.get(f"/jobs?after_id={bad}"), 400)
