"""The leadership seam.

Maintenance that must happen once per cluster (rescue sweeps, pruning,
cron) runs only where ``term()`` is not None, and each of its writes names
that term: the store refuses it once another node has taken a newer one
(see :class:`LeaderTerm`). ``leadership.lease`` holds the lease in the
store itself, on every backend.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class LeaderTerm:
    """A node's hold on the cluster's leadership.

    ``term`` goes up by one each time the lease changes hands or lapses, so it
    is a fencing number: a leader-only write that names it takes effect only
    while it is still the current term. A leader that froze, lost the store
    for a while, or paused with its VM, and was replaced meanwhile, cannot
    prune, rescue or insert a cron job on waking, whatever it still believes.
    """

    node: str
    term: int


class Leadership(Protocol):
    def term(self) -> LeaderTerm | None:
        """The term this node leads in now, or None."""
        ...

    def is_leader(self) -> bool: ...

    async def run(self) -> None:
        """Seek and keep leadership until cancelled (then give it up)."""
        ...
