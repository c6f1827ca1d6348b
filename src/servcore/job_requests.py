"""Checking job requests against :class:`~servcore.jobs.JobRequest`, and the
errors that say what to fix.

Checked once, at the edge (HTTP, CLI, Python API), so that a bad request is a
clear 400 or a one-line error, never a store error later. Everything here is
read from ``JobRequest``'s fields and their ``msgspec.Meta``: the checks, the
messages, the field list. There are two ways in, with one outcome:

- :func:`decode_job_request` — a JSON body straight into a ``JobRequest``;
  ``msgspec`` checks types and ranges in C in the same pass. The hot path.
- :func:`job_request` — a decoded document or Python keyword options, field
  by field, with a message that names the first problem. Used whenever the
  hot path declines, so every refusal carries the same words.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
from msgspec import inspect

from servcore.errors import ServcoreError
from servcore.jobs import Job, JobRequest, NewJob, task_name, valid_queue_name
from servcore.timestamps import TimestampError, parse_timestamp

MISSING_PAYLOAD = "Missing 'payload' field"


class JobRequestError(ServcoreError, ValueError):
    """A job request that cannot be accepted; the message says what to fix."""


class JobStateError(JobRequestError):
    """The job is not in a state that allows what was asked."""


class UniqueConflict(JobRequestError):
    """The ``unique_key`` belongs to a recent job with a different payload."""

    def __init__(self, existing: Job) -> None:
        super().__init__(
            f"unique_key {existing.unique_key!r} is already used by job {existing.id} "
            "with a different payload"
        )
        self.existing = existing


@dataclass(frozen=True)
class RequestField:
    """One field of :class:`JobRequest`, as its type and ``Meta`` describe it."""

    name: str
    kind: str  # the JSON type: object, string, integer, number, or date-time (a string)
    required: bool
    default: Any
    constraints: inspect.Type  # IntType, FloatType, StrType, …: bounds and pattern
    description: str
    unit: str
    rule: str

    def check(self, value: Any) -> Any:
        """``value`` if it fits (a ``run_at`` string parsed); else raise."""
        if self.kind == "date-time":
            return _check_time(self.name, value)
        if not _is_kind(value, self.kind):
            article = "an" if self.kind[0] in "aeiou" else "a"
            raise JobRequestError(
                f"'{self.name}' must be {article} {self.kind}, not {json_type(value)}"
            )
        limits = self.constraints
        if isinstance(limits, inspect.IntType | inspect.FloatType):
            if not _within(value, limits):
                raise JobRequestError(f"'{self.name}' must be {_range_text(limits)}{self.unit}")
            return float(value) if self.kind == "number" else value
        elif isinstance(limits, inspect.StrType) and not _fits(value, limits):
            raise JobRequestError(f"'{self.name}' must be {self.rule}")
        return value

    @property
    def bounds(self) -> tuple[float | None, float | None, bool]:
        """``(low, high, low_open)``: the range of a number field (CLI options)."""
        limits = self.constraints
        if isinstance(limits, inspect.IntType | inspect.FloatType):
            low = limits.ge if limits.ge is not None else limits.gt
            return low, limits.le, limits.gt is not None
        return None, None, False


def _fields() -> tuple[RequestField, ...]:
    info = inspect.type_info(JobRequest)
    assert isinstance(info, inspect.StructType)
    return tuple(_field(field) for field in info.fields)


def _field(field: inspect.Field) -> RequestField:
    kind_type = field.type
    if isinstance(kind_type, inspect.UnionType):
        (kind_type,) = [t for t in kind_type.types if not isinstance(t, inspect.NoneType)]
    extra: dict[str, Any] = {}
    description = ""
    if isinstance(kind_type, inspect.Metadata):
        extra = kind_type.extra or {}
        description = (kind_type.extra_json_schema or {}).get("description", "")
        kind_type = kind_type.type
    kinds = {
        inspect.DictType: "object",
        inspect.StrType: "string",
        inspect.IntType: "integer",
        inspect.FloatType: "number",
        inspect.DateTimeType: "date-time",
    }
    rule = extra.get("rule", "")
    if not rule and isinstance(kind_type, inspect.StrType):
        rule = f"{kind_type.min_length or 0} to {kind_type.max_length} characters"
    return RequestField(
        name=field.name,
        kind=kinds[type(kind_type)],
        required=field.required,
        default=field.default,
        constraints=kind_type,
        description=description,
        unit=f" {extra['unit']}" if "unit" in extra else "",
        rule=rule,
    )


FIELDS = _fields()
FIELD_NAMES = tuple(field.name for field in FIELDS)
_FIELD_SET = frozenset(FIELD_NAMES)
_BY_NAME = {field.name: field for field in FIELDS}
# The request fields a stored job keeps as they are (the rest are decided by
# ``Service.build_job``: the queue, the time to run, the attempts).
CARRIED = tuple(name for name in FIELD_NAMES if name in NewJob.__struct_fields__)


def field(name: str) -> RequestField:
    return _BY_NAME[name]


_decode = msgspec.json.Decoder(JobRequest).decode


def decode_job_request(body: bytes) -> JobRequest | None:
    """The request in a JSON body, or None when it needs :func:`job_request`'s
    reading (bad JSON, a wrong field, ``null`` for a default, a non-RFC 3339
    time): then that says what is wrong, or accepts it."""
    try:
        request = _decode(body)
        if request.run_at is not None and request.run_at.utcoffset():
            request = msgspec.structs.replace(request, run_at=request.run_at.astimezone(UTC))
    except (msgspec.DecodeError, RecursionError, UnicodeDecodeError, OverflowError):
        return None
    check_together(request)
    return request


def job_request(document: Mapping[str, Any], *, missing: str = MISSING_PAYLOAD) -> JobRequest:
    """The request in a document (or keyword options); raise naming the first problem.

    ``null`` (``None``) for a field other than ``payload`` means "not given".
    """
    unknown = document.keys() - _FIELD_SET
    if unknown:
        raise JobRequestError(
            f"Unknown field(s): {', '.join(sorted(unknown))}. Allowed: {', '.join(FIELD_NAMES)}"
        )
    if "payload" not in document:
        raise JobRequestError(missing)
    if len(document) == 1 and type(document["payload"]) is dict:
        # The common call, enqueue(task, payload): nothing else to read.
        request = JobRequest(payload=document["payload"])
        check_together(request)
        return request
    values = {
        name: field.check(document[name])
        for name, field in _BY_NAME.items()
        if name in document and (document[name] is not None or field.required)
    }
    request = JobRequest(**values)
    check_together(request)
    return request


def check_together(request: JobRequest) -> None:
    """The rules no single field's type can say."""
    if request.run_at is not None and request.delay is not None:
        raise JobRequestError("give 'run_at' or 'delay', not both")
    if request.queue is not None and not valid_queue_name(request.queue):
        raise JobRequestError(f"'queue' must be {field('queue').rule}")
    if "\x00" in task_name(request.payload):
        raise JobRequestError("'task' (in 'payload') must not contain NUL characters")


def to_new_job(request: JobRequest, **decided: Any) -> NewJob:
    """The job to store: the request's carried fields, and what the service ``decided``."""
    values = {name: getattr(request, name) for name in CARRIED}
    values.update(decided)
    return NewJob(**values)


def _check_time(name: str, value: Any) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise JobRequestError(f"'{name}' needs a time zone")
        try:
            return value.astimezone(UTC)
        except OverflowError:
            raise JobRequestError(f"'{name}' is out of range in UTC") from None
    if not isinstance(value, str):
        raise JobRequestError(f"'{name}' must be a string, not {json_type(value)}")
    try:
        return parse_timestamp(value)
    except TimestampError as error:
        raise JobRequestError(f"Invalid '{name}': {error}") from None


def _within(value: float, limits: inspect.IntType | inspect.FloatType) -> bool:
    return (
        (limits.ge is None or value >= limits.ge)
        and (limits.gt is None or value > limits.gt)
        and (limits.le is None or value <= limits.le)
        and (limits.lt is None or value < limits.lt)
    )


def _range_text(limits: inspect.IntType | inspect.FloatType) -> str:
    if limits.ge is not None:
        return f"between {limits.ge:g} and {limits.le:g}"
    return f"> {limits.gt:g} and at most {limits.le:g}"


def _fits(value: str, limits: inspect.StrType) -> bool:
    return (
        (limits.min_length is None or len(value) >= limits.min_length)
        and (limits.max_length is None or len(value) <= limits.max_length)
        and (limits.pattern is None or _pattern(limits.pattern).search(value) is not None)
    )


@functools.cache
def _pattern(pattern: str) -> re.Pattern[str]:
    """``pattern`` as JSON Schema reads it: a final ``$`` is the very end (in
    Python it also matches before a final newline)."""
    return re.compile(pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern)


def _is_kind(value: Any, kind: str) -> bool:
    if kind == "object":
        return isinstance(value, dict)
    if kind == "string":
        return isinstance(value, str)
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, int | float) and not isinstance(value, bool)


def json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"
