"""Medians per library, the table per backend, servcore's ratio to each peer."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass

from peers.adapters.base import Peer
from peers.harness import Phase


@dataclass(frozen=True)
class Summary:
    """One library's medians; None where no run of that kind succeeded."""

    peer: Peer
    enqueue_rate: float | None
    processing_1: float | None
    processing_2: float | None
    latency_p50: float | None
    latency_p99: float | None
    failures: tuple[str, ...]  # "run 2, drain with 2 workers: <why>"
    retried: tuple[str, ...]  # the same, for attempts that failed and were run again


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def summarize(peer: Peer, phases: Sequence[Phase]) -> Summary:
    mine = [phase for phase in phases if phase.peer == peer.label]
    good = [phase for phase in mine if phase.ok]

    def processing(workers: int) -> float | None:
        return _median(
            [
                phase.processing_rate
                for phase in good
                if phase.kind == "drain" and phase.workers == workers and phase.processing_rate
            ]
        )

    latency = [phase.latency_ms for phase in good if phase.kind == "latency"]
    return Summary(
        peer,
        # Every drain phase enqueues the same way first: 2 samples a run.
        _median([p.enqueue["rate"] for p in mine if p.kind == "drain" and p.enqueue]),
        processing(1),
        processing(2),
        _median([found["p50"] for found in latency]),
        _median([found["p99"] for found in latency]),
        tuple(f"{_which(phase)}: {phase.error}" for phase in mine if not phase.ok),
        tuple(f"{_which(phase)}: {error}" for phase in mine for error in phase.earlier_failures),
    )


def _which(phase: Phase) -> str:
    workers = f" with {phase.workers} worker(s)" if phase.kind == "drain" else ""
    return f"{phase.peer}, run {phase.run}, {phase.kind}{workers}"


def _rate(value: float | None) -> str:
    return "failed" if value is None else f"{value:,.0f}"


def _ms(value: float | None) -> str:
    return "failed" if value is None else f"{value:,.1f}"


def _ratio(ours: float | None, theirs: float | None) -> str:
    if ours is None or theirs is None or theirs == 0:
        return "-"
    ratio = ours / theirs
    if ratio >= 100:
        return f"{ratio:,.0f}x"
    return f"{ratio:.2f}x" if ratio >= 0.1 else f"{ratio:.3f}x"


HEADER = ("library", "enqueue jobs/s", "1 worker jobs/s", "2 workers jobs/s", "p50 ms", "p99 ms")


def table(summaries: Sequence[Summary], backend: str) -> list[tuple[str, ...]]:
    """Rows for one backend: each library's medians, then servcore ÷ each peer
    (rates: above 1 is servcore faster; latency: below 1 is servcore quicker).
    On Redis, where servcore has no store, the ratios are to servcore's own
    SQLite and PostgreSQL numbers."""
    rows: list[tuple[str, ...]] = [
        (
            s.peer.name,
            _rate(s.enqueue_rate),
            _rate(s.processing_1),
            _rate(s.processing_2),
            _ms(s.latency_p50),
            _ms(s.latency_p99),
        )
        for s in summaries
        if s.peer.backend == backend
    ]
    ours = [s for s in summaries if s.peer.name == "servcore"]
    for theirs in (s for s in summaries if s.peer.backend == backend and s.peer.name != "servcore"):
        for mine in ours:
            if backend != "redis" and mine.peer.backend != backend:
                continue
            label = "servcore" if backend != "redis" else f"servcore ({mine.peer.backend})"
            rows.append(
                (
                    f"{label} / {theirs.peer.name}",
                    _ratio(mine.enqueue_rate, theirs.enqueue_rate),
                    _ratio(mine.processing_1, theirs.processing_1),
                    _ratio(mine.processing_2, theirs.processing_2),
                    _ratio(mine.latency_p50, theirs.latency_p50),
                    _ratio(mine.latency_p99, theirs.latency_p99),
                )
            )
    return rows


def markdown(rows: Sequence[tuple[str, ...]]) -> str:
    lines = ["| " + " | ".join(HEADER) + " |", "|---|" + "---:|" * (len(HEADER) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def plain(rows: Sequence[tuple[str, ...]]) -> str:
    everything = [HEADER, *rows]
    widths = [max(len(row[column]) for row in everything) for column in range(len(HEADER))]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(row, widths, strict=True))
        )
        for row in everything
    )
