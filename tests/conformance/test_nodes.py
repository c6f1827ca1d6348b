"""Node records: what GET /nodes lists, on every store."""

from __future__ import annotations

from servcore.job_reads import NodeInfo
from servcore.store.base import Store
from tests.conformance.support import T0, at


def info(node: str, heartbeat: float, *, leader: bool = False) -> NodeInfo:
    return NodeInfo(node, T0, at(heartbeat), ("default", "media"), leader)


async def test_recorded_nodes_are_listed_while_their_heartbeat_is_fresh(store: Store) -> None:
    await store.record_node(info("b-node", 0))
    await store.record_node(info("a-node", 10, leader=True))
    assert await store.list_nodes(at(-5)) == [info("a-node", 10, leader=True), info("b-node", 0)]
    assert await store.list_nodes(at(5)) == [info("a-node", 10, leader=True)]


async def test_a_heartbeat_refreshes_the_record_and_forget_removes_it(store: Store) -> None:
    await store.record_node(info("node", 0))
    await store.record_node(info("node", 20, leader=True))
    assert await store.list_nodes(at(15)) == [info("node", 20, leader=True)]
    await store.forget_node("node")
    await store.forget_node("never-seen")
    assert await store.list_nodes(at(-100)) == []
