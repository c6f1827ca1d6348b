from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from servcore import Service
from tests.conftest import fast_config, make_store


@pytest.fixture
async def service(backend: str, tmp_path: Path) -> AsyncIterator[Service]:
    """A service on each backend, not started: tests register tasks, then start it."""
    svc = Service(make_store(backend, tmp_path), config=fast_config())
    try:
        yield svc
    finally:
        await svc.stop(grace=0)
