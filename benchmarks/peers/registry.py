"""Every library the harness runs, in the order they are run (each run
rotates it) and reported."""

from __future__ import annotations

from peers.adapters.arq_peer import ArqRedis
from peers.adapters.base import Peer
from peers.adapters.huey_peer import HueyRedis, HueySqlite
from peers.adapters.pgqueuer_peer import PgqueuerPostgres
from peers.adapters.procrastinate_peer import ProcrastinatePostgres
from peers.adapters.servcore_peer import (
    ServcorePostgres,
    ServcoreSqlite,
    ServcoreSyncPostgres,
    ServcoreSyncSqlite,
)

PEERS: tuple[Peer, ...] = (
    ServcoreSqlite(),
    ServcoreSyncSqlite(),
    HueySqlite(),
    ServcorePostgres(),
    ServcoreSyncPostgres(),
    PgqueuerPostgres(),
    ProcrastinatePostgres(),
    ArqRedis(),
    HueyRedis(),
)
