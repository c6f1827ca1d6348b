"""What the job endpoints answer, free of any web framework.

Each function takes the service and the request's raw parts and returns
``(status, JSON bytes)``. The Starlette handlers in ``handlers`` and the
ASGI path in ``asgi`` are thin adapters over these, so both speak the
same contract by construction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgspec

from servcore.errors import JobNotFound
from servcore.http import validation
from servcore.http.serialization import encode, job_to_json
from servcore.http.validation import MAX_JOB_ID, SCHEDULE_FIELDS, BadRequest
from servcore.job_reads import Insertion, JobQuery
from servcore.job_requests import (
    MISSING_PAYLOAD,
    JobRequestError,
    JobStateError,
    UniqueConflict,
    decode_job_request,
    job_request,
    json_type,
)
from servcore.jobs import Job, JobRequest, NewJob
from servcore.service import Service
from servcore.store.base import OutcomeUnknown
from servcore.timestamps import format_timestamp

Answer = tuple[int, bytes]

JOB_NOT_FOUND: Answer = (404, b'{"error":"Job not found"}')


def error(message: str, status: int = 400) -> Answer:
    return status, encode({"error": message})


def outcome_unknown(problem: OutcomeUnknown, retry: str) -> Answer:
    """503 for a submission the store may or may not have stored; ``retry`` says
    how to try again without risking a second job."""
    return error(f"Outcome unknown — {retry}: {problem}", 503)


def _retry_one(new_job: NewJob, key: str) -> str:
    """How to retry one job whose outcome is unknown (``key``: what the client
    names a job's key by, ``Idempotency-Key`` or ``unique_key``)."""
    if new_job.unique_key is None:
        return (
            f"the job may or may not be stored; send each job with its own {key} "
            "so that a retry is safe"
        )
    return f"retry with the same {key}"


def _decoded(body: bytes) -> JobRequest | None:
    """The request in ``body`` read in one pass, or None: then :func:`_build`
    reads the decoded document and says what is wrong."""
    try:
        return decode_job_request(body)
    except JobRequestError as problem:
        raise BadRequest(str(problem)) from None


def _build(
    service: Service, document: dict[str, Any] | JobRequest, queue: str | None, missing: str
) -> NewJob:
    """The job a request asks for (a document is checked first)."""
    try:
        request = (
            document if isinstance(document, JobRequest) else job_request(document, missing=missing)
        )
        if queue is not None:
            if request.queue not in (None, queue):
                raise BadRequest(f"this route submits to queue {queue!r}; drop 'queue'")
            request = msgspec.structs.replace(request, queue=queue)
        return service.build_job(request)
    except JobRequestError as problem:
        raise BadRequest(str(problem)) from None


async def create_job(
    service: Service,
    body: bytes,
    queue: str | None = None,
    idempotency_key: str | None = None,
) -> Answer:
    """``POST /jobs``: 202 once the job is stored; 200 with the earlier job for a
    repeated ``unique_key`` (or ``Idempotency-Key``); 409 if that key came
    with another payload."""
    try:
        request: JobRequest | dict[str, Any] | None = None
        if idempotency_key is None:
            request = _decoded(body)
        if request is None:
            request = validation.decode_object(body)
            if idempotency_key is not None:
                if request.get("unique_key") not in (None, idempotency_key):
                    raise BadRequest("the Idempotency-Key header and 'unique_key' differ")
                request["unique_key"] = idempotency_key
        new_job = _build(service, request, queue, MISSING_PAYLOAD)
    except BadRequest as problem:
        return error(problem.message, problem.status)
    try:
        if new_job.unique_key is None:
            (job,) = await service.submit([new_job])
            return 202, b'{"message":"Job accepted","job_id":%d}' % job.id
        return _unique_answer(await service.submit_unique(new_job))
    except OutcomeUnknown as problem:
        from_body = idempotency_key is None and new_job.unique_key is not None
        key = "unique_key" if from_body else "Idempotency-Key"
        return outcome_unknown(problem, _retry_one(new_job, key))


def _unique_answer(insertion: Insertion) -> Answer:
    job = insertion.job
    if insertion.outcome == "created":
        return 202, b'{"message":"Job accepted","job_id":%d}' % job.id
    if insertion.outcome == "existing":
        return 200, encode(
            {"message": "Job already exists", "job_id": job.id, "unique_key": job.unique_key}
        )
    return error(str(UniqueConflict(job)), 409)


MAX_BATCH = 1000


async def create_jobs(service: Service, body: bytes, queue: str | None = None) -> Answer:
    """``POST /jobs/batch``: up to 1,000 jobs in one transaction; all or none."""
    try:
        document = validation.decode_object(body)
        entries = document.get("jobs")
        if set(document) != {"jobs"} or not isinstance(entries, list):
            raise BadRequest('Send {"jobs": [...]}: a list of job objects like POST /jobs takes')
        if not 1 <= len(entries) <= MAX_BATCH:
            raise BadRequest(f"'jobs' must hold 1 to {MAX_BATCH} jobs, not {len(entries)}")
        new_jobs = []
        for index, entry in enumerate(entries):
            try:
                if not isinstance(entry, dict):
                    raise BadRequest("must be a JSON object")
                if entry.get("unique_key") is not None:
                    raise BadRequest(
                        "'unique_key' is not taken in a batch: submit such jobs "
                        "one by one to POST /jobs"
                    )
                new_jobs.append(_build(service, entry, queue, MISSING_PAYLOAD))
            except BadRequest as problem:
                raise BadRequest(f"jobs[{index}]: {problem.message}") from None
    except BadRequest as problem:
        return error(problem.message, problem.status)
    try:
        jobs = await service.submit(new_jobs)
    except OutcomeUnknown as problem:
        return outcome_unknown(
            problem, "the jobs may or may not be stored: look them up before sending them again"
        )
    return 202, encode({"message": "Jobs accepted", "job_ids": [job.id for job in jobs]})


async def schedule_job(service: Service, body: bytes, queue: str | None = None) -> Answer:
    """``POST /jobs/schedule``: like :func:`create_job`, with ``run_at`` required."""
    try:
        document = validation.decode_object(body)
        if not isinstance(document.get("payload"), dict) or not isinstance(
            document.get("run_at"), str
        ):
            raise BadRequest(SCHEDULE_FIELDS)
        if "delay" in document:
            raise BadRequest("'delay' does not go with /jobs/schedule: give 'run_at' only")
        new_job = _build(service, document, queue, SCHEDULE_FIELDS)
    except BadRequest as problem:
        return error(problem.message, problem.status)
    try:
        if new_job.unique_key is not None:
            insertion = await service.submit_unique(new_job)
            if insertion.outcome != "created":
                return _unique_answer(insertion)
            job = insertion.job
        else:
            (job,) = await service.submit([new_job])
    except OutcomeUnknown as problem:
        return outcome_unknown(problem, _retry_one(new_job, "unique_key"))
    return 202, encode(
        {"message": "Job scheduled", "job_id": job.id, "run_at": format_timestamp(job.run_at)}
    )


async def get_job(
    service: Service, id_text: str, queue: str | None = None, wait_text: str | None = None
) -> Answer:
    """``GET /jobs/{id}``; with ``?wait=S``, once the job has finished or after S
    seconds, whichever comes first (woken by the process's one listener: see
    ``JobClient.await_job``)."""
    try:
        job_id = validation.job_id(id_text)
        within = validation.wait_seconds(wait_text) if wait_text is not None else None
    except BadRequest as problem:
        return error(problem.message, problem.status)
    job = await service.get_job(job_id)
    if job is None or (queue is not None and job.queue != queue):
        return JOB_NOT_FOUND
    if within is not None and not job.status.finished:
        try:
            job = await service.await_job(job_id, within)
        except JobNotFound:  # pruned or expired meanwhile
            return JOB_NOT_FOUND
    return 200, encode(job_to_json(job, service.clock.now()))


async def cancel_job(service: Service, id_text: str, queue: str | None = None) -> Answer:
    """``POST /jobs/{id}/cancel``: a queued, scheduled or running job ends ``cancelled``."""
    return await _control(service, id_text, queue, service.cancel_job, "Job cancelled")


async def retry_job(service: Service, id_text: str, queue: str | None = None) -> Answer:
    """``POST /jobs/{id}/retry``: a failed or cancelled job is queued again, due now."""
    return await _control(service, id_text, queue, service.retry_job, "Job queued again")


async def cancel_jobs(service: Service, body: bytes) -> Answer:
    """``POST /jobs/cancel`` with ``{"ids": [...]}`` or ``{"filter": {...}}``:
    cancel what can be cancelled."""
    return await _bulk(
        service, body, service.cancel_jobs, service.cancel_matching, CANCEL_FILTER, "cancelled"
    )


async def retry_jobs(service: Service, body: bytes) -> Answer:
    """``POST /jobs/retry`` with ``{"ids": [...]}`` or ``{"filter": {...}}``:
    retry what can be retried."""
    return await _bulk(
        service, body, service.retry_jobs, service.retry_matching, RETRY_FILTER, "retried"
    )


@dataclass(frozen=True, slots=True)
class BulkFilter:
    """The statuses a bulk action by filter may name, the first being its default."""

    statuses: tuple[str, ...]

    @property
    def default(self) -> str:
        return self.statuses[0]


CANCEL_FILTER = BulkFilter(("queued", "scheduled", "available", "running"))
RETRY_FILTER = BulkFilter(("failed", "cancelled"))
FILTER_FIELDS = ("status", "queue", "task", "q")


async def _bulk(
    service: Service,
    body: bytes,
    by_ids: Callable[[list[int]], Awaitable[list[int]]],
    by_filter: Callable[[JobQuery], Awaitable[list[int]]],
    rule: BulkFilter,
    verb: str,
) -> Answer:
    try:
        document = validation.decode_object(body)
        if set(document) == {"filter"}:
            done = await by_filter(_filter_query(document["filter"], rule))
        else:
            done = await by_ids(_ids(document))
    except BadRequest as problem:
        return error(problem.message, problem.status)
    return 200, encode({"message": f"{len(done)} job(s) {verb}", verb: done})


def _ids(document: dict[str, Any]) -> list[int]:
    ids = document.get("ids")
    if (
        set(document) != {"ids"}
        or not isinstance(ids, list)
        or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 < i <= MAX_JOB_ID for i in ids
        )
    ):
        raise BadRequest(
            f'Send {{"ids": [...]}}: a list of job ids from 1 to {MAX_JOB_ID} '
            '(or {"filter": {"status": …, "queue": …, "task": …, "q": …}})'
        )
    if not 1 <= len(ids) <= MAX_BATCH:
        raise BadRequest(f"'ids' must hold 1 to {MAX_BATCH} ids, not {len(ids)}")
    return sorted(set(ids))


def _filter_query(given: Any, rule: BulkFilter) -> JobQuery:
    """The jobs a bulk filter selects; its status one ``rule`` allows (by default its first)."""
    fields = ", ".join(FILTER_FIELDS)
    if not isinstance(given, dict) or not set(given) <= set(FILTER_FIELDS):
        raise BadRequest(f"'filter' must be an object with some of: {fields}")
    for name, value in given.items():
        if not isinstance(value, str):
            raise BadRequest(f"'filter.{name}' must be a string, not {json_type(value)}")
    params = validation.list_params({"status": rule.default, **given})
    if params.status not in rule.statuses:
        raise BadRequest(
            f"'filter.status' must be one of {', '.join(rule.statuses)} here, "
            f"not {given.get('status', '')!r}"
        )
    return JobQuery(
        status=params.status, queue=params.queue, task=params.task, search=params.search
    )


async def _control(
    service: Service,
    id_text: str,
    queue: str | None,
    action: Callable[[int], Awaitable[Job | None]],
    message: str,
) -> Answer:
    try:
        job_id = validation.job_id(id_text)
    except BadRequest as problem:
        return error(problem.message, problem.status)
    if queue is not None:
        job = await service.get_job(job_id)
        if job is None or job.queue != queue:
            return JOB_NOT_FOUND
    try:
        job = await action(job_id)
    except JobStateError as problem:
        return error(str(problem), 409)
    if job is None:
        return JOB_NOT_FOUND
    return 200, encode(
        {"message": message, "job_id": job.id, "job": job_to_json(job, service.clock.now())}
    )


@dataclass(frozen=True, slots=True)
class RawRequest:
    """A request as the ASGI path has it: path parameters, raw headers, the body."""

    params: Mapping[str, str]
    headers: Sequence[tuple[bytes, bytes]]
    body: bytes = b""
    query: Mapping[str, str] = field(default_factory=dict)

    def header(self, name: bytes) -> str | None:
        """The first header called ``name`` (lower case), or None."""
        for key, value in self.headers:
            if key == name:
                return value.decode("latin-1")
        return None


async def raw_create_job(service: Service, queue: str | None, request: RawRequest) -> Answer:
    """:func:`create_job` from a :class:`RawRequest` (the ASGI path's ``POST /jobs``)."""
    key = request.header(b"idempotency-key")
    return await create_job(service, request.body, queue, key)


async def raw_get_job(service: Service, queue: str | None, request: RawRequest) -> Answer:
    """:func:`get_job` from a :class:`RawRequest` (the ASGI path's ``GET /jobs/{id}``)."""
    return await get_job(service, request.params["id"], queue, request.query.get("wait"))
