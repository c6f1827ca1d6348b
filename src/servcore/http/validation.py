"""Reading requests: size limits, JSON, fields of the right type.

Every problem becomes a :class:`BadRequest` whose message says what to fix;
nothing here lets bad input through to the store or raises anything else.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import msgspec

from servcore.job_reads import EXACT_COUNT_CAP, StatusFilter
from servcore.job_requests import json_type

SCHEDULE_FIELDS = "Required fields: payload (object), run_at (ISO8601)"
MAX_PER_PAGE = 200
DEFAULT_PER_PAGE = 50
# Page numbers reach the first EXACT_COUNT_CAP jobs of a listing, where a page
# still costs about what a keyset page (after_id) costs; past it, after_id.
MAX_PAGE = EXACT_COUNT_CAP
MAX_JOB_ID = 2**63 - 1
MAX_SEARCH = 200

_decode = msgspec.json.Decoder().decode


@dataclass
class BadRequest(Exception):
    """A request the API refuses; ``status`` is 400 unless said otherwise."""

    message: str
    status: int = 400


def check_declared_length(declared: str | None, limit: int) -> None:
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BadRequest(too_large(limit), 413)


def decode_object(body: bytes) -> dict[str, Any]:
    """The body as a JSON object."""
    if not body.strip():
        raise BadRequest("Request body is empty: send a JSON object")
    try:
        document = _decode(body)
    except msgspec.DecodeError as error:
        raise BadRequest(f"Malformed JSON: {error}") from None
    except UnicodeDecodeError:
        raise BadRequest("Request body is not UTF-8 text: send UTF-8 encoded JSON") from None
    except RecursionError:
        raise BadRequest("Request body nests JSON too deeply") from None
    if not isinstance(document, dict):
        raise BadRequest(f"Request body must be a JSON object, not {json_type(document)}")
    return document


def too_large(limit: int) -> str:
    return f"Request body is larger than the limit of {limit} bytes"


def job_id(text: str) -> int:
    if not text.isdigit() or not text.isascii():
        raise BadRequest(f"Job id must be a positive integer, got {text[:40]!r}")
    value = int(text) if len(text) <= 20 else MAX_JOB_ID + 1
    if not 1 <= value <= MAX_JOB_ID:
        raise BadRequest(f"Job id must be between 1 and {MAX_JOB_ID}")
    return value


MAX_WAIT = 60  # s: the longest GET /jobs/{id}?wait= holds a request


def wait_seconds(text: str) -> float:
    """``?wait=S``: seconds, more than 0 and at most :data:`MAX_WAIT`."""
    try:
        value = float(text) if text.isascii() else math.nan
    except ValueError:
        value = math.nan
    if not 0 < value <= MAX_WAIT:  # NaN fails too
        raise BadRequest(
            f"'wait' must be a number of seconds more than 0 and at most {MAX_WAIT}, "
            f"got {text[:40]!r}"
        )
    return value


@dataclass(frozen=True)
class ListParams:
    status: str | None
    queue: str | None
    page: int
    per_page: int
    task: str | None = None
    search: str | None = None
    after_id: int | None = None


def list_params(query: dict[str, str]) -> ListParams:
    status = query.get("status") or None
    if status is not None and status not in StatusFilter.ALL:
        allowed = ", ".join(sorted(StatusFilter.ALL))
        raise BadRequest(f"Unknown status {status!r}: use one of {allowed}")
    page = _bounded_int(query, "page", 1, 1, MAX_PAGE)
    per_page = _bounded_int(query, "per_page", DEFAULT_PER_PAGE, 1, MAX_PER_PAGE)
    queue = query.get("queue") or None
    task = query.get("task") or None
    search = query.get("q") or None
    for name, value in (("queue", queue), ("task", task), ("q", search)):
        if value is not None and "\x00" in value:
            raise BadRequest(f"'{name}' must not contain NUL characters")
    if search is not None and len(search) > MAX_SEARCH:
        raise BadRequest(f"'q' must be at most {MAX_SEARCH} characters")
    after_id = _bounded_int(query, "after_id", 0, 1, MAX_JOB_ID) or None
    if page * per_page > EXACT_COUNT_CAP:
        raise BadRequest(
            f"'page' {page} with per_page {per_page} reaches past the first {EXACT_COUNT_CAP} "
            "jobs: page further with 'after_id' (the id of the last job you have, as in the "
            "Link header's next page)"
        )
    return ListParams(status, queue, page, per_page, task, search, after_id)


def _bounded_int(query: dict[str, str], name: str, default: int, low: int, high: int) -> int:
    text = query.get(name)
    if text is None or text == "":
        return default
    if not (text.isdigit() and text.isascii() and len(text) <= 20) or not low <= int(text) <= high:
        raise BadRequest(f"'{name}' must be a whole number from {low} to {high}, got {text[:40]!r}")
    return int(text)
