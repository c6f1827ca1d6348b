"""The OpenAPI 3.1 description of the API, served at ``/openapi.json``."""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from servcore.http.answers import MAX_BATCH
from servcore.http.validation import MAX_JOB_ID, MAX_PAGE, MAX_PER_PAGE, MAX_SEARCH
from servcore.jobs import (
    MAX_QUEUE_NAME,
    NO_NUL_PATTERN,
    QUEUE_NAME_PATTERN,
    JobRequest,
)


def _error(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }


def _json(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


_TIME = {"type": "string", "format": "date-time", "example": "2025-12-28T17:24:48.957749Z"}
_NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}

_JOB_REQUEST_REF = {"$ref": "#/components/schemas/JobRequest"}
_ID = {"type": "integer", "minimum": 1, "maximum": MAX_JOB_ID}
_NO_NUL = {"type": "string", "pattern": NO_NUL_PATTERN}
_QUEUE_NAME = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_QUEUE_NAME,
    "pattern": QUEUE_NAME_PATTERN,
}


def _job_request_schema() -> dict[str, Any]:
    """``JobRequest`` as JSON Schema, with the rule that no one field says
    (``requests.check_together``: not both ``run_at`` and ``delay``)."""
    (_,), components = msgspec.json.schema_components(
        [JobRequest], ref_template="#/components/schemas/{name}"
    )
    schema: dict[str, Any] = components["JobRequest"]
    schema["not"] = {
        "required": ["run_at", "delay"],
        "properties": {"run_at": {"type": "string"}, "delay": {"type": "number"}},
    }
    return schema


_JOB = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "payload": {"type": "object"},
        "status": {"enum": ["queued", "running", "done", "failed", "cancelled"]},
        "inserted_at": _TIME,
        "started_at": _NULLABLE_TIME,
        "finished_at": _NULLABLE_TIME,
        "result": {},
        "queue": {"type": "string"},
        "task": {"type": "string"},
        "priority": {"type": "integer"},
        "attempt": {"type": "integer"},
        "max_attempts": {"type": "integer"},
        "run_at": _TIME,
        "scheduled": {"type": "boolean", "description": "Queued but not yet due."},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "attempt": {"type": "integer"},
                    "at": _TIME,
                    "error": {"type": "string"},
                    "traceback": {"type": ["string", "null"]},
                },
            },
        },
        "unique_key": {"type": ["string", "null"]},
        "timeout": {"type": ["number", "null"]},
        "backoff": {"type": ["number", "null"]},
        "locked_by": {"type": ["string", "null"]},
        "locked_until": _NULLABLE_TIME,
        "lease_token": {"type": "integer"},
        "result_ttl": {"type": ["number", "null"]},
        "trace_context": {
            "type": ["string", "null"],
            "description": "W3C traceparent of the request that enqueued it (tracing on).",
        },
        "rescued": {"type": "integer"},
    },
}


def _bulk(summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["ids"],
                            "additionalProperties": False,
                            "properties": {
                                "ids": {
                                    "type": "array",
                                    "items": _ID,
                                    "minItems": 1,
                                    "maxItems": MAX_BATCH,
                                }
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json("The ids that changed", {"type": "object"}),
                "400": _json("Bad request", {"$ref": "#/components/schemas/Error"}),
            },
        }
    }


def _pausing(summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": _QUEUE_NAME}],
            "responses": {"200": _json("Done", {"type": "object"}), "400": _error("Bad name")},
        }
    }


def _control(summary: str) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": _ID}],
            "responses": {
                "200": _json("Done; the job as it now is", {"type": "object"}),
                "400": _error("Bad id"),
                "404": _error("Job not found"),
                "409": _error("The job's state does not allow it"),
            },
        }
    }


_STATUS_FILTER = ["queued", "running", "done", "failed", "cancelled", "scheduled", "available"]


@functools.cache
def openapi_document() -> dict[str, Any]:
    bad = _error("Bad input; 'error' says what to fix")
    too_large = _error("Body over the size limit")
    return {
        "openapi": "3.1.0",
        "info": {"title": "servcore", "version": "0.1.0"},
        "paths": {
            "/": {"get": {"responses": {"200": {"description": "Server is running"}}}},
            "/health": {
                "get": {
                    "responses": {
                        "200": _json("Healthy", {"type": "object"}),
                        "503": _json("A part is down", {"type": "object"}),
                    }
                }
            },
            "/stats": {
                "get": {"responses": {"200": _json("Counts by status", {"type": "object"})}}
            },
            "/stats/history": {
                "get": {
                    "summary": "Jobs done and failed in each of the last 60 minutes",
                    "responses": {"200": _json("Per minute, oldest first", {"type": "object"})},
                }
            },
            "/metrics": {
                "get": {
                    "summary": "This process's Prometheus metrics",
                    "responses": {
                        "200": {
                            "description": "Prometheus text exposition format 0.0.4",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        },
                        "404": _json(
                            "Metrics are switched off", {"$ref": "#/components/schemas/Error"}
                        ),
                    },
                }
            },
            "/nodes": {
                "get": {
                    "responses": {
                        "200": _json(
                            "Live worker nodes",
                            {"type": "array", "items": {"$ref": "#/components/schemas/Node"}},
                        )
                    }
                }
            },
            "/jobs": {
                "post": {
                    "parameters": [
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "description": "Taken as the job's unique_key",
                            "schema": {
                                "type": "string",
                                "minLength": 1,
                                "maxLength": 255,
                                "pattern": "^[!-~]+$",
                            },
                        }
                    ],
                    "requestBody": {
                        "required": True,
                        "content": {"application/json": {"schema": _JOB_REQUEST_REF}},
                    },
                    "responses": {
                        "202": _json("Stored", {"type": "object"}),
                        "400": bad,
                        "413": too_large,
                    },
                },
                "get": {
                    "parameters": [
                        {"name": "status", "in": "query", "schema": {"enum": _STATUS_FILTER}},
                        {"name": "queue", "in": "query", "schema": _NO_NUL},
                        {"name": "task", "in": "query", "schema": _NO_NUL},
                        {
                            "name": "q",
                            "in": "query",
                            "description": "A job id, or text found in the payload",
                            "schema": {**_NO_NUL, "maxLength": MAX_SEARCH},
                        },
                        {
                            "name": "page",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
                        },
                        {
                            "name": "per_page",
                            "in": "query",
                            "schema": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
                        },
                    ],
                    "responses": {
                        "200": _json(
                            "Newest first; X-Total-Count has the total",
                            {"type": "array", "items": {"$ref": "#/components/schemas/Job"}},
                        ),
                        "400": bad,
                    },
                },
            },
            "/jobs/schedule": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "allOf": [
                                        _JOB_REQUEST_REF,
                                        {
                                            "required": ["payload", "run_at"],
                                            "properties": {
                                                "run_at": {"type": "string"},
                                                "delay": False,
                                            },
                                        },
                                    ]
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json("Stored", {"type": "object"}),
                        "400": bad,
                        "413": too_large,
                    },
                }
            },
            "/jobs/batch": {
                "post": {
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["jobs"],
                                    "additionalProperties": False,
                                    "properties": {
                                        "jobs": {
                                            "type": "array",
                                            "items": {
                                                "allOf": [
                                                    _JOB_REQUEST_REF,
                                                    {
                                                        "properties": {
                                                            "unique_key": {"type": "null"}
                                                        }
                                                    },
                                                ]
                                            },
                                            "minItems": 1,
                                            "maxItems": MAX_BATCH,
                                        }
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": _json("All stored, in one transaction", {"type": "object"}),
                        "400": bad,
                        "413": too_large,
                    },
                }
            },
            "/queues": {
                "get": {
                    "responses": {
                        "200": _json(
                            "Every queue: depth, scheduled, running, done, failed, cancelled, "
                            "paused, this node's concurrency, oldest_job_age (s)",
                            {"type": "array", "items": {"type": "object"}},
                        )
                    }
                }
            },
            "/cron": {
                "get": {
                    "responses": {
                        "200": _json(
                            "Every cron entry: name, expression, timezone, task, queue, "
                            "payload, priority, max_attempts, last_run_at (its last tick, "
                            "or null), next_run_at",
                            {"type": "array", "items": {"type": "object"}},
                        )
                    }
                }
            },
            "/queues/{name}/pause": _pausing("Start no more jobs of the queue (kept on restart)"),
            "/queues/{name}/resume": _pausing("Start the queue's jobs again"),
            "/jobs/cancel": _bulk(
                "Cancel every listed job that can be (queued, scheduled, running)"
            ),
            "/jobs/retry": _bulk("Queue again every listed job that failed or was cancelled"),
            "/jobs/{id}/cancel": _control("Cancel a queued, scheduled or running job"),
            "/jobs/{id}/retry": _control("Queue a failed or cancelled job again, due now"),
            "/jobs/{id}": {
                "get": {
                    "parameters": [
                        {
                            "name": "id",
                            "in": "path",
                            "required": True,
                            "schema": _ID,
                        }
                    ],
                    "responses": {
                        "200": _json("The job", {"$ref": "#/components/schemas/Job"}),
                        "400": bad,
                        "404": _error("Job not found"),
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "JobRequest": _job_request_schema(),
                "Job": _JOB,
                "Node": {
                    "type": "object",
                    "properties": {
                        "node": {"type": "string"},
                        "queues": {"type": "array", "items": {"type": "string"}},
                        "leader": {"type": "boolean"},
                        "started_at": _TIME,
                        "heartbeat_at": _TIME,
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
