"""JSON Schemas of the API (the validator is :mod:`nexq.api.validation`).

The same dicts validate requests (:func:`nexq.api.validation.validate`) and document them in
``/openapi.json`` (:func:`nexq.api.routing.openapi_document`), so the two
cannot drift. The
validator implements the subset of JSON Schema 2020-12 these schemas use:
``type``, ``enum``, ``minimum``/``maximum``, ``exclusiveMinimum``, ``minLength``/
``maxLength``, ``pattern``, ``format: date-time``, ``properties``, ``required``,
``additionalProperties`` (false, or a schema with ``propertyNames`` and
``maxProperties``: a map), ``items``, ``minItems``/``maxItems``,
``oneOf`` and ``not``. The schemas are constants: nothing mutates them.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any

from ..queue.requests import (
    MAX_DELAY,
    MAX_HEADER_NAME,
    MAX_HEADERS,
    MAX_HEADERS_SIZE,
    MAX_PARENTS,
    MAX_QUEUE,
    MAX_RETRIES,
    MAX_RUN_AT,
    MAX_TASK_ID,
    MAX_TIMEOUT,
    MAX_TYPE,
    MAX_UNIQUE_KEY,
    QUEUE_PATTERN,
    TYPE_PATTERN,
    TYPE_RULE,
    WEBHOOK_PATTERN,
    WEBHOOK_RULE,
)
from ..task import PRIORITY_TEXT, Status

from .validation import JsonSchema

__all__ = ["JsonSchema"]  # the alias lives with the validator; the schemas use it

MAX_BATCH = 10_000
MAX_LIST_LIMIT = 500

# The bounds and patterns are make_spec's (nexq.queue.requests), so a request
# the Python API refuses is refused here too, and the other way round. A
# "solid" character is whitespace neither to ECMA-262 (clients' schema
# tools) nor to Python. ``x-expected`` (an OpenAPI extension) is what an
# error message says a value failing ``pattern`` must be, when the
# description does not read as that.
TASK_TYPE: JsonSchema = {
    "type": "string", "minLength": 1, "maxLength": MAX_TYPE, "pattern": TYPE_PATTERN,
    "description": f"the handler's name: {TYPE_RULE}", "x-expected": TYPE_RULE,
}
QUEUE_NAME: JsonSchema = {
    "type": "string", "minLength": 1, "maxLength": MAX_QUEUE, "pattern": QUEUE_PATTERN,
    "description": "a queue name without whitespace, ':', '|', ',', '*', '/', '?', '#' or '%'",
}
PRIORITY: JsonSchema = {
    "description": "0-9 (9 runs first), also as a string (\"7\"), or low/normal/high in any case",
    "oneOf": [
        {"type": "integer", "minimum": 0, "maximum": 9},
        {"type": "string", "pattern": PRIORITY_TEXT,
         "x-expected": "a digit 0-9 or low/normal/high (any case)"},
    ],
}
RUN_AT: JsonSchema = {
    "description": "unix seconds or an ISO-8601 date-time (UTC if no offset)",
    "oneOf": [
        {"type": "number", "minimum": 0, "maximum": MAX_RUN_AT},
        {"type": "string", "format": "date-time", "maxLength": 64},
    ],
}

TASK_CREATE: JsonSchema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["type"],
    "not": {"required": ["schedule_in", "run_at"],
            "description": "give schedule_in or run_at, not both"},
    "properties": {
        "type": TASK_TYPE,
        "payload": {"description": "any JSON value handed to the handler"},
        "priority": PRIORITY,
        "schedule_in": {"type": "number", "minimum": 0, "maximum": MAX_DELAY,
                        "description": "seconds from now before the task may run"},
        "run_at": RUN_AT,
        "queue": QUEUE_NAME,
        "max_retries": {"type": "integer", "minimum": 0, "maximum": MAX_RETRIES},
        "timeout": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_TIMEOUT,
                    "description": "seconds one attempt may run"},
        "unique_key": {"type": "string", "minLength": 1, "maxLength": MAX_UNIQUE_KEY,
                       "description": "while a live task holds this key, enqueueing returns it"},
        "webhook": {"type": "string", "maxLength": 2048,
                    "pattern": WEBHOOK_PATTERN, "x-expected": WEBHOOK_RULE,
                    "description": "URL notified (signed POST) when the task succeeds or dies; "
                                   "loopback, private and link-local targets are refused (400) "
                                   "unless the server allows them"},
        "depends_on": {"type": "array", "maxItems": MAX_PARENTS, "uniqueItems": True,
                       "items": {"type": "string", "minLength": 1, "maxLength": MAX_TASK_ID},
                       "description": "ids of tasks that must succeed first (unknown ids: 400)"},
        "on_parent_failure": {"type": "string", "enum": ["cancel", "run"],
                              "description": "when a parent ends dead or cancelled: cancel this task "
                                             "(default) or run it anyway"},
        "expires_in": {"type": "number", "exclusiveMinimum": 0, "maximum": MAX_DELAY,
                       "description": "seconds from now; a task not started by then is cancelled "
                                      "(must end after its run time)"},
        "headers": {"type": "object", "maxProperties": MAX_HEADERS,
                    "propertyNames": {"type": "string", "minLength": 1, "maxLength": MAX_HEADER_NAME},
                    "additionalProperties": {"type": "string", "maxLength": MAX_HEADERS_SIZE},
                    "description": "text carried with the task to its handler, e.g. a W3C "
                                   "traceparent that tracing (nexq.otel) continues; at most "
                                   f"{MAX_HEADERS_SIZE} characters of names and values"},
    },
}
TASK_BATCH: JsonSchema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["tasks"],
    "properties": {"tasks": {"type": "array", "maxItems": MAX_BATCH, "items": TASK_CREATE}},
}
QUEUE_FILTER: JsonSchema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {"queue": QUEUE_NAME},
}

# Query parameters: name -> schema (all optional). Values arrive as strings
# and are converted by their schema's type before validation.
LIMIT: JsonSchema = {"type": "integer", "minimum": 1, "maximum": MAX_LIST_LIMIT, "default": 50}
CURSOR: JsonSchema = {
    "type": "string", "maxLength": 400, "pattern": "^[0-9.]+$",
    "description": "next_cursor of the previous page (an integer on one store node, "
                   "a dotted position per node on several)",
}
TASK_LIST_QUERY: dict[str, JsonSchema] = {
    "status": {"type": "string", "enum": [s.value for s in Status]},
    "type": {"type": "string", "minLength": 1, "maxLength": 200},
    "queue": {"type": "string", "minLength": 1, "maxLength": 100},
    "limit": LIMIT,
    "cursor": CURSOR,
}
DEAD_LIST_QUERY: dict[str, JsonSchema] = {
    "queue": TASK_LIST_QUERY["queue"], "limit": LIMIT, "cursor": CURSOR,
}
STATS_QUERY: dict[str, JsonSchema] = {
    "minutes": {"type": "integer", "minimum": 1, "maximum": 1440, "default": 60},
}

# -- responses (documentation only) -------------------------------------------

ERROR: JsonSchema = {
    "type": "object",
    "required": ["error"],
    "properties": {"error": {
        "type": "object",
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
    }},
}
_NUM_OR_NULL: JsonSchema = {"type": ["number", "null"]}
TASK: JsonSchema = {
    "type": "object",
    "required": ["id", "type", "queue", "priority", "status", "attempt"],
    "properties": {
        "id": {"type": "string"}, "type": {"type": "string"}, "queue": {"type": "string"},
        "priority": {"type": "integer"}, "payload": {},
        "status": {"type": "string", "enum": [s.value for s in Status]},
        "attempt": {"type": "integer"}, "max_retries": {"type": "integer"},
        "timeout": _NUM_OR_NULL, "unique_key": {"type": ["string", "null"]},
        "created_at": {"type": "number"},
        "scheduled_at": {**_NUM_OR_NULL, "description":
                         "scheduled or retrying: when it (its next attempt) is due; otherwise when it "
                         "was first due (its run_at, kept after it ran), null if it was to run at once"},
        "started_at": _NUM_OR_NULL, "finished_at": _NUM_OR_NULL,
        "result": {}, "progress": {"type": ["object", "null"]},
        "error": {"type": ["object", "null"]}, "attempts": {"type": "array", "items": {"type": "object"}},
    },
}
# A listed task: the shape of TASK, abbreviated (GET /api/tasks/{id} has it whole).
TASK_ITEM: JsonSchema = {
    **TASK,
    "required": [*TASK["required"], "abbreviated"],
    "properties": {**TASK["properties"], "abbreviated": {
        "type": "boolean", "const": True,
        "description": "always true in a listing: attempts holds only the last attempt, children and "
                       "webhook_deliveries are empty; GET /api/tasks/{id} has them all"}},
}
TASK_PAGE: JsonSchema = {
    "type": "object",
    "required": ["tasks", "next_cursor"],
    "properties": {"tasks": {"type": "array", "items": TASK_ITEM},
                   "next_cursor": {"type": ["integer", "string", "null"]}},
}
OBJECT: JsonSchema = {"type": "object"}
OBJECT_LIST: JsonSchema = {"type": "array", "items": {"type": "object"}}
