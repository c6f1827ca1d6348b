"""The connection cap fits the process's file-descriptor limit."""

from __future__ import annotations

import resource

import pytest

from servcore.config import HttpSettings
from servcore.http import connections
from servcore.http.connections import RESERVED_DESCRIPTORS, ConnectionLimits


@pytest.mark.parametrize(
    ("soft_limit", "setting", "allowed"),
    [
        (1024, 1000, 1024 - RESERVED_DESCRIPTORS),
        (65536, 1000, 1000),
        (resource.RLIM_INFINITY, 5000, 5000),
        (100, 1000, 1),  # the process can barely run: still one connection
    ],
)
def test_the_cap_is_lowered_to_leave_descriptors_for_the_rest(
    monkeypatch: pytest.MonkeyPatch, soft_limit: int, setting: int, allowed: int
) -> None:
    monkeypatch.setattr(connections.resource, "getrlimit", lambda _: (soft_limit, soft_limit))
    limits = ConnectionLimits.of(HttpSettings(max_connections=setting, header_timeout=3))
    assert limits.max_connections == allowed
    assert limits.header_timeout == 3
