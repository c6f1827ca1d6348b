"""GET /nodes: the worker nodes alive now."""

from __future__ import annotations

from tests.acceptance.conftest import ISO_UTC, Api


async def test_nodes_lists_this_worker_node(live_api: Api) -> None:
    response = await live_api.client.get("/nodes")
    assert response.status_code == 200
    [node] = response.json()
    assert node["node"] == "test-node"
    assert node["queues"] == ["default"]
    assert ISO_UTC.match(node["started_at"])
    assert ISO_UTC.match(node["heartbeat_at"])


async def test_an_api_only_service_is_not_a_worker_node(api: Api) -> None:
    response = await api.client.get("/nodes")
    assert response.status_code == 200
    assert response.json() == []
