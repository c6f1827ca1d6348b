"""The OpenAPI 3.1 vocabulary of the API, and the document built from its endpoints.

Each operation (parameters, body, answers) is written on its endpoint in
:mod:`servcore.http.routes`; this module holds the schemas they share and
puts the document together. The ``JobRequest`` and ``Job`` schemas are
generated from the :mod:`servcore.jobs` Structs the server decodes and answers with.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable
from datetime import datetime

import msgspec

from servcore.http.answers import MAX_BATCH
from servcore.http.endpoints import Endpoint, Schema
from servcore.http.validation import MAX_JOB_ID
from servcore.jobs import (
    MAX_QUEUE_NAME,
    NO_NUL_PATTERN,
    QUEUE_NAME_PATTERN,
    Job,
    JobError,
    JobRequest,
)


def error(description: str) -> Schema:
    """An answer whose body is ``{"error": ...}``."""
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def json_answer(description: str, schema: Schema) -> Schema:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def path_parameter(name: str, schema: Schema) -> Schema:
    return {"name": name, "in": "path", "required": True, "schema": schema}


def query_parameter(name: str, schema: Schema, description: str | None = None) -> Schema:
    described = {"description": description} if description is not None else {}
    return {"name": name, "in": "query", **described, "schema": schema}


TIME = {"type": "string", "format": "date-time", "example": "2025-12-28T17:24:48.957749Z"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

JOB_REQUEST = {"$ref": "#/components/schemas/JobRequest"}
JOB = {"$ref": "#/components/schemas/Job"}
NODE = {"$ref": "#/components/schemas/Node"}
ERROR = {"$ref": "#/components/schemas/Error"}
ID = {"type": "integer", "minimum": 1, "maximum": MAX_JOB_ID}
NO_NUL = {"type": "string", "pattern": NO_NUL_PATTERN}
QUEUE_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_QUEUE_NAME,
    "pattern": QUEUE_NAME_PATTERN,
}
IDS_BODY = {
    "type": "object",
    "required": ["ids"],
    "additionalProperties": False,
    "properties": {"ids": {"type": "array", "items": ID, "minItems": 1, "maxItems": MAX_BATCH}},
}
BAD = error("Bad input; 'error' says what to fix")
TOO_LARGE = error("Body (inflated, if gzip) over the size limit")
UNSUPPORTED_ENCODING = error("A Content-Encoding other than gzip")


def _job_request_schema() -> Schema:
    """``JobRequest`` as JSON Schema, with the rule that no one field says
    (``requests.check_together``: not both ``run_at`` and ``delay``)."""
    (_,), components = msgspec.json.schema_components(
        [JobRequest], ref_template="#/components/schemas/{name}"
    )
    schema: Schema = components["JobRequest"]
    schema["not"] = {
        "required": ["run_at", "delay"],
        "properties": {"run_at": {"type": "string"}, "delay": {"type": "number"}},
    }
    return schema


def _job_schemas() -> dict[str, Schema]:
    """``Job`` (with ``JobError`` and ``JobStatus``) from the Job struct: every
    field is in every answer, and times are RFC 3339 text (see serialization)."""
    (_,), components = msgspec.json.schema_components(
        [Job], ref_template="#/components/schemas/{name}"
    )
    for name, struct in (("Job", Job), ("JobError", JobError)):
        schema = components[name]
        hints = typing.get_type_hints(struct)
        for field, spec in schema["properties"].items():
            spec.pop("default", None)
            if hints[field] is datetime:
                spec.update(TIME)
            elif hints[field] == datetime | None:
                spec.pop("anyOf")
                spec.update(NULLABLE_TIME)
        schema["required"] = list(schema["properties"])
    job = components["Job"]
    job["properties"]["scheduled"] = {"type": "boolean", "description": "Queued but not yet due."}
    job["required"].append("scheduled")
    return components


def _operation(endpoint: Endpoint) -> Schema:
    operation: Schema = {}
    if endpoint.summary:
        operation["summary"] = endpoint.summary
    if endpoint.parameters:
        operation["parameters"] = list(endpoint.parameters)
    if endpoint.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": endpoint.body}},
        }
    operation["responses"] = dict(endpoint.responses)
    return operation


def build_document(endpoints: Iterable[Endpoint]) -> Schema:
    """The document describing ``endpoints``, at their own paths."""
    paths: dict[str, dict[str, Schema]] = {}
    for endpoint in endpoints:
        paths.setdefault(endpoint.path, {})[endpoint.method.lower()] = _operation(endpoint)
    return {
        "openapi": "3.1.0",
        "info": {"title": "servcore", "version": "0.1.0"},
        "paths": paths,
        "components": {
            "schemas": {
                "JobRequest": _job_request_schema(),
                **_job_schemas(),
                "Node": {
                    "type": "object",
                    "properties": {
                        "node": {"type": "string"},
                        "queues": {"type": "array", "items": {"type": "string"}},
                        "leader": {"type": "boolean"},
                        "started_at": TIME,
                        "heartbeat_at": TIME,
                    },
                },
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {"error": {"type": "string"}},
                },
            }
        },
    }
