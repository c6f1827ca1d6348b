"""The leadership seam.

Maintenance that must happen once per cluster runs only where
``is_leader()`` is true. One process on its own is always the leader; on
PostgreSQL the leader is whichever node holds an advisory lock.
"""

from __future__ import annotations

from typing import Protocol


class Leadership(Protocol):
    def is_leader(self) -> bool: ...

    async def run(self) -> None:
        """Seek and keep leadership until cancelled."""
        ...


class SoleLeadership:
    """Every process leads itself (memory and SQLite stores)."""

    def is_leader(self) -> bool:
        return True

    async def run(self) -> None:
        return None
