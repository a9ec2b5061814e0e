"""Schemas of the operator routes: search, bulk actions, dead-letter purge
and per-type figures (validated and documented like those of
:mod:`nexq.api.schemas`, by the same validator)."""

from __future__ import annotations

from ..queue.requests import MAX_TASK_ID
from ..queue.samples import MAX_SAMPLE
from ..queue.search import SCAN_LIMIT
from .schemas import CURSOR, QUEUE_NAME, RUN_AT, TASK_LIST_QUERY, JsonSchema

MAX_BULK = 10_000  # tasks one bulk call may act on
BULK_WALK = 100_000  # index entries one bulk call with a filter may walk
MAX_SEARCH = 200

# Query strings: unix seconds or an ISO-8601 date-time (the pattern lets
# schema tools generate plausible values; the format check decides).
TIME_QUERY: JsonSchema = {
    "type": "string", "maxLength": 64, "format": "timestamp",
    "pattern": r"^([0-9]{1,12}(\.[0-9]{1,9})?|[0-9]{4}-[0-9]{2}-[0-9]{2}([Tt ].*)?)$",
    "x-expected": "unix seconds or an ISO-8601 date-time, e.g. 2030-01-31T12:00:00Z",
}
# JSON bodies: the same as a number or a string (as run_at is given).
TIME_VALUE: JsonSchema = RUN_AT
SEARCH_TEXT: JsonSchema = {
    "type": "string", "minLength": 1, "maxLength": MAX_SEARCH,
    "description": "case-insensitive text found in the type, the queue or the payload's JSON",
}
ID_PREFIX: JsonSchema = {
    "type": "string", "minLength": 1, "maxLength": MAX_TASK_ID, "description": "the id starts with this",
}

TASK_SEARCH_QUERY: dict[str, JsonSchema] = {
    **TASK_LIST_QUERY,
    "id_prefix": ID_PREFIX,
    "search": SEARCH_TEXT,
    "created_after": {**TIME_QUERY, "description": "created at or after this time"},
    "created_before": {**TIME_QUERY, "description": "created at or before this time"},
}
SEARCH_COST = (f"Each call walks at most {SCAN_LIMIT:,} entries of the task index (newest first); "
               "with filters that match rarely a page may hold fewer tasks than limit, or none, "
               "and next_cursor continues the walk. created_after ends the walk at that time.")

BULK_FILTER: JsonSchema = {
    "type": "object",
    "additionalProperties": False,
    "description": "the tasks a listing with these filters shows (at least one)",
    "properties": {
        "status": TASK_LIST_QUERY["status"], "type": TASK_LIST_QUERY["type"], "queue": QUEUE_NAME,
        "id_prefix": ID_PREFIX, "search": SEARCH_TEXT,
        "created_after": TIME_VALUE, "created_before": TIME_VALUE,
    },
}
TASK_BULK: JsonSchema = {
    "type": "object",
    "additionalProperties": False,
    "required": ["action"],
    "not": {"required": ["ids", "filter"], "description": "give ids or filter, not both"},
    "properties": {
        "action": {"type": "string", "enum": ["cancel", "retry", "delete"],
                   "description": "cancel live tasks; retry (run again) ended ones; delete any"},
        "ids": {"type": "array", "minItems": 1, "maxItems": MAX_BULK,
                "items": {"type": "string", "minLength": 1, "maxLength": MAX_TASK_ID}},
        "filter": BULK_FILTER,
        "limit": {"type": "integer", "minimum": 1, "maximum": MAX_BULK,
                  "description": f"with filter: act on at most this many (default and most {MAX_BULK:,})"},
        "cursor": {**CURSOR, "description": "with filter: next_cursor of the previous call"},
    },
}
BULK_RESULT: JsonSchema = {
    "type": "object",
    "required": ["action", "matched", "done", "failed", "next_cursor"],
    "properties": {
        "action": {"type": "string"},
        "matched": {"type": "integer", "description": "tasks named or found by the filter"},
        "done": {"type": "integer", "description": "tasks the action was applied to"},
        "failed": {"type": "array", "description": "the others (at most 100 listed), with why",
                   "items": {"type": "object", "required": ["id", "error"], "properties": {
                       "id": {"type": "string"}, "error": {"type": "string"},
                       "status": {"type": ["string", "null"]}}}},
        "failed_count": {"type": "integer"},
        "next_cursor": {"type": ["string", "integer", "null"],
                        "description": "with filter: more may match; send it back as cursor to go on"},
    },
}

DEAD_PURGE: JsonSchema = {
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "queue": QUEUE_NAME,
        "all": {"type": "boolean", "description": "true: every queue's dead letters (needed without queue)"},
        "dry_run": {"type": "boolean", "description": "count what would be deleted, delete nothing"},
    },
}
PURGE_RESULT: JsonSchema = {
    "type": "object",
    "required": ["purged"],
    "properties": {"purged": {"type": "integer", "description": "deleted (0 on a dry run)"},
                   "would_purge": {"type": "integer", "description": "dry run: how many would be"},
                   "dry_run": {"type": "boolean"}},
}

TYPE_STATS_QUERY: dict[str, JsonSchema] = {
    "minutes": {"type": "integer", "minimum": 1, "maximum": 1440, "default": 60,
                "description": "the window: tasks created this many minutes back at most"},
    "sample": {"type": "integer", "minimum": 1, "maximum": MAX_SAMPLE, "default": 2000,
               "description": "the newest tasks of the window read, at most"},
    "type": TASK_LIST_QUERY["type"],
}
_PERCENTILES: JsonSchema = {
    "type": "object", "description": "seconds; null without data",
    "properties": {p: {"type": ["number", "null"]} for p in ("p50", "p95", "p99")},
}
TYPE_STATS: JsonSchema = {
    "type": "object",
    "required": ["window", "types"],
    "properties": {
        "window": {"type": "object", "properties": {
            "from": {"type": "number"}, "to": {"type": "number"}, "bucket": {"type": "number"},
            "sampled": {"type": "integer"},
            "complete": {"type": "boolean", "description": "false: more tasks were created in the window "
                                                           "than sampled; figures are of the newest"}}},
        "types": {"type": "array", "items": {"type": "object", "properties": {
            "type": {"type": "string"}, "count": {"type": "integer"},
            "statuses": {"type": "object", "description": "tasks by status"},
            "success_rate": {"type": ["number", "null"], "description": "succeeded / (succeeded + dead)"},
            "runtime": {**_PERCENTILES, "description": "seconds the succeeding attempt ran"},
            "wait": {**_PERCENTILES, "description": "seconds from due (enqueue or run_at) to the first start"},
            "series": {"type": "array", "items": {"type": "object"},
                       "description": "per bucket of the window (by creation time), oldest first"},
        }}},
    },
}
