"""One adapter per library and backend, all with the interface of
:class:`peers.adapters.base.Peer`."""

from __future__ import annotations

from peers.adapters.arq_peer import ArqRedis
from peers.adapters.base import Peer
from peers.adapters.huey_peer import HueyRedis, HueySqlite
from peers.adapters.pgqueuer_peer import PgqueuerPostgres
from peers.adapters.procrastinate_peer import ProcrastinatePostgres
from peers.adapters.servcore_peer import ServcorePostgres, ServcoreSqlite

# In the order they are run (each run rotates it) and reported.
PEERS: tuple[Peer, ...] = (
    ServcoreSqlite(),
    HueySqlite(),
    ServcorePostgres(),
    PgqueuerPostgres(),
    ProcrastinatePostgres(),
    ArqRedis(),
    HueyRedis(),
)


def by_label(label: str) -> Peer:
    for peer in PEERS:
        if peer.label == label:
            return peer
    raise KeyError(label)


__all__ = ["PEERS", "Peer", "by_label"]
