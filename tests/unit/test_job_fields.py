"""A job field is defined once: these check that every place that copies,
stores or shows job fields follows the definitions in servcore.jobs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from servcore import Service, ServiceConfig
from servcore.http.openapi import build_document
from servcore.http.routes import ENDPOINTS
from servcore.http.serialization import job_to_json
from servcore.job_requests import CARRIED
from servcore.jobs import Job, JobRequest, JobStatus, NewJob
from servcore.store.job_columns import OPTIONAL_NAMES
from servcore.store.postgres.rows import COLUMNS as POSTGRES_COLUMNS
from servcore.store.sqlite.rows import COLUMNS as SQLITE_COLUMNS

NOW = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=UTC)


def _unusual(name: str, kind: Any) -> Any:
    """A value for a field that no default has."""
    samples = {int: 7, float: 2.5, str: f"{name}-value", datetime: NOW - timedelta(days=1)}
    for option in getattr(kind, "__args__", (kind,)):
        if option in samples:
            return samples[option]
    return {"task": "t", "field": name}


def test_a_stored_job_carries_every_field_of_its_new_job() -> None:
    hints = msgspec.structs.fields(NewJob)
    new = NewJob(**{field.name: _unusual(field.name, field.type) for field in hints})
    job = new.stored(1, NOW)
    for field in hints:
        assert getattr(job, field.name) == getattr(new, field.name), field.name


def test_a_request_carries_every_field_it_shares_with_new_jobs() -> None:
    service = Service(config=ServiceConfig("memory://"))
    given = {"run_at": NOW + timedelta(days=1), "priority": 4, "max_attempts": 9}
    given |= {"timeout": 2.5, "backoff": 1.5, "unique_key": "k", "result_ttl": 60.0}
    request = JobRequest(payload={"task": "t"}, queue="q", **given)
    new = service.build_job(request)
    shared = set(JobRequest.__struct_fields__) & set(NewJob.__struct_fields__)
    assert shared == set(CARRIED) == {"payload", "queue", *given}, "a field is not tried here"
    for name in shared:
        assert getattr(new, name) == getattr(request, name), name


def test_sql_rows_end_with_the_optional_columns_in_the_jobs_field_order() -> None:
    # Rows become jobs positionally (store.sqlite.rows): the columns must match.
    assert Job.__struct_fields__[-len(OPTIONAL_NAMES) :] == OPTIONAL_NAMES
    for columns in (SQLITE_COLUMNS, POSTGRES_COLUMNS):
        assert tuple(name.strip() for name in columns.split(",")) == Job.__struct_fields__
    assert set(OPTIONAL_NAMES) <= set(NewJob.__struct_fields__)


def test_the_json_of_a_job_and_its_schema_name_every_field() -> None:
    job = Job(1, "q", "t", {"task": "t"}, JobStatus.QUEUED, 0, 0, 3, NOW, NOW)
    answer = job_to_json(job, NOW)
    assert set(answer) == {*Job.__struct_fields__, "scheduled"}
    assert answer["run_at"] == "2026-01-02T03:04:05.000006Z"
    schema = build_document(ENDPOINTS)["components"]["schemas"]["Job"]
    assert set(schema["properties"]) == set(answer)
    assert schema["properties"]["locked_until"]["type"] == ["string", "null"]
