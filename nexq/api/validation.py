"""The validator of the API's JSON Schemas, and the parsers of their formats.

It implements the subset of JSON Schema 2020-12 the schemas in
:mod:`nexq.api.schemas` use (see that module's docstring).
"""

from __future__ import annotations

import functools
import math
import re
from datetime import UTC, datetime
from typing import Any

JsonSchema = dict[str, Any]


# -- the validator ---------------------------------------------------------------


class Issue(Exception):
    """One schema violation at ``field`` (a dotted path, ``body`` for the root)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message = field, message


def validate(schema: JsonSchema, value: Any, field: str = "body") -> list[Issue]:
    """Every violation of ``schema`` by ``value``; [] when valid. Never raises."""
    out: list[Issue] = []
    _check(schema, value, field, out)
    return out


def json_type(value: Any) -> str:
    """The JSON type name of a decoded JSON value (integral floats are integers)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "integer" if math.isfinite(value) and value.is_integer() else "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _type_ok(expected: str | list[str], actual: str) -> bool:
    names = [expected] if isinstance(expected, str) else expected
    return actual in names or (actual == "integer" and "number" in names)


def _describe(names: str | list[str]) -> str:
    names = [names] if isinstance(names, str) else names
    article = {"integer": "an", "object": "an", "array": "an"}
    words = [("null" if n == "null" else f"{article.get(n, 'a')} {n}") for n in names]
    return " or ".join(words)


def _child(field: str, name: str | int) -> str:
    if isinstance(name, int):
        return f"{field}[{name}]"
    return name if field == "body" else f"{field}.{name}"


def _check(schema: JsonSchema, value: Any, field: str, out: list[Issue]) -> None:
    if "oneOf" in schema:
        _check_one_of(schema, value, field, out)
        return
    actual = json_type(value)
    if "type" in schema and not _type_ok(schema["type"], actual):
        out.append(Issue(field, f"must be {_describe(schema['type'])}, not {actual}"))
        return
    if "not" in schema and _matches(schema["not"], value, field):
        # Used for "these fields exclude each other": name the last of them.
        names = schema["not"].get("required", [])
        out.append(Issue(_child(field, names[-1]) if names else field,
                         schema["not"].get("description", "is not allowed in this form")))
    if "enum" in schema and value not in schema["enum"]:
        allowed = ", ".join(map(str, schema["enum"]))
        out.append(Issue(field, f"must be one of {allowed}"))
        return
    if actual in ("integer", "number"):
        _check_number(schema, value, field, out)
    elif actual == "string":
        _check_string(schema, value, field, out)
    elif actual == "array":
        if len(value) < schema.get("minItems", 0):
            out.append(Issue(field, f"must have at least {schema['minItems']} items"))
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            out.append(Issue(field, f"must have at most {schema['maxItems']} items"))
            return
        if "items" in schema:
            for i, item in enumerate(value):
                _check(schema["items"], item, _child(field, i), out)
    elif actual == "object":
        _check_object(schema, value, field, out)


def _matches(schema: JsonSchema, value: Any, field: str) -> bool:
    """Whether ``value`` is valid against ``schema`` (``validate`` finds
    nothing); the usual ``not`` schema (only ``required``, of an object)
    decided without building the issues of its missing fields."""
    if type(value) is dict and schema.keys() <= _REQUIRED_ONLY:
        return all(name in value for name in schema.get("required", ()))
    return not validate(schema, value, field)


_REQUIRED_ONLY = frozenset({"required", "description"})


def _check_one_of(schema: JsonSchema, value: Any, field: str, out: list[Issue]) -> None:
    results = [validate(branch, value, field) for branch in schema["oneOf"]]
    passing = sum(1 for r in results if not r)
    if passing == 1:
        return
    actual = json_type(value)
    # Report the branch of the value's own type when there is one: its
    # message ("must be at most 9") says more than "matches no branch".
    for branch, issues in zip(schema["oneOf"], results):
        if issues and _type_ok(branch.get("type", actual), actual):
            out.extend(issues)
            return
    out.append(Issue(field, f"must be {schema.get('description', 'one of the documented forms')}"))


def _check_number(schema: JsonSchema, value: float, field: str, out: list[Issue]) -> None:
    if "minimum" in schema and value < schema["minimum"]:
        out.append(Issue(field, f"must be at least {schema['minimum']}"))
    if "exclusiveMinimum" in schema and value <= schema["exclusiveMinimum"]:
        out.append(Issue(field, f"must be greater than {schema['exclusiveMinimum']}"))
    if "maximum" in schema and value > schema["maximum"]:
        out.append(Issue(field, f"must be at most {schema['maximum']}"))


def _check_string(schema: JsonSchema, value: str, field: str, out: list[Issue]) -> None:
    if len(value) < schema.get("minLength", 0):
        out.append(Issue(field, "must not be empty" if schema["minLength"] == 1
                         else f"must be at least {schema['minLength']} characters"))
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        out.append(Issue(field, f"must be at most {schema['maxLength']} characters"))
        return
    if "pattern" in schema and not _regex(schema["pattern"]).search(value):
        expected = schema.get("x-expected") or schema.get("description", "of the documented form")
        out.append(Issue(field, f"must be {expected}"))
        return
    if schema.get("format") == "date-time" and parse_datetime(value) is None:
        out.append(Issue(field, "must be an ISO-8601 date-time, e.g. 2030-01-31T12:00:00Z"))
    if schema.get("format") == "timestamp" and parse_timestamp(value) is None:
        out.append(Issue(field, "must be unix seconds or an ISO-8601 date-time, e.g. 2030-01-31T12:00:00Z"))


def _check_object(schema: JsonSchema, value: dict[str, Any], field: str, out: list[Issue]) -> None:
    props: dict[str, JsonSchema] = schema.get("properties", {})
    for name in schema.get("required", []):
        if name not in value:
            out.append(Issue(_child(field, name), "is required"))
    if "maxProperties" in schema and len(value) > schema["maxProperties"]:
        out.append(Issue(field, f"must have at most {schema['maxProperties']} fields"))
        return
    extra = schema.get("additionalProperties", True)
    if extra is False:
        for name in value:
            if name not in props:
                out.append(Issue(_child(field, name), "is not a known field"))
    elif isinstance(extra, dict):  # a map: each other field's name and value checked
        names: JsonSchema = schema.get("propertyNames", {})
        for name, item in value.items():
            if name not in props:
                out += [Issue(field, f"name {name[:40]!r} {i.message}") for i in validate(names, name, field)]
                _check(extra, item, _child(field, name), out)
    for name, sub in props.items():
        if name in value:
            _check(sub, value[name], _child(field, name), out)


@functools.lru_cache(maxsize=256)
def _regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` compiled with ECMA-262's meaning of a final ``$``."""
    # ECMA-262's final ``$`` is the end of input; Python's also matches
    # before a trailing newline, so it becomes ``\Z``. (Cached here: the
    # schemas are constants, and ``re``'s own cache costs a rewrite of
    # the pattern and a lookup on every value checked.)
    if pattern.endswith("$") and not pattern.endswith("\\$"):
        pattern = pattern[:-1] + r"\Z"
    return re.compile(pattern)


def parse_datetime(text: str) -> float | None:
    """Unix seconds of an ISO-8601 date-time (UTC if no offset); None if invalid."""
    # RFC 3339 allows lower-case 't' and 'z'; fromisoformat does not.
    try:
        dt = datetime.fromisoformat(text.strip().upper())
    except ValueError:
        return None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    try:
        return dt.timestamp()
    except (OverflowError, ValueError):
        return None


def parse_timestamp(text: str) -> float | None:
    """Unix seconds given as a number (``"1767225600"``) or an ISO-8601
    date-time (UTC if no offset); None if it is neither."""
    if re.fullmatch(r"[0-9]{1,12}(\.[0-9]{1,9})?", text):
        return float(text)
    return parse_datetime(text)


def parse_query(
    schemas: dict[str, JsonSchema], args: Any
) -> dict[str, Any]:
    """Query string -> typed values, validated; raises Issue for the first bad one.

    ``args`` is a werkzeug MultiDict. Unknown or repeated parameters are
    errors (a typo should not silently widen a listing); empty ones
    (``?status=``, as forms send them) count as not given; missing ones
    take their schema's ``default`` if it has one.
    """
    out: dict[str, Any] = {}
    for name in args:
        if name not in schemas:
            raise Issue(name, "is not a known query parameter")
        values = args.getlist(name)
        if len(values) > 1:
            raise Issue(name, "must be given at most once")
        raw: str = values[0]
        if raw == "":
            continue
        schema = schemas[name]
        value: Any = raw
        if schema.get("type") == "integer":
            if not re.fullmatch(r"-?[0-9]{1,18}", raw):
                raise Issue(name, "must be an integer")
            value = int(raw)
        issues = validate(schema, value, name)
        if issues:
            raise issues[0]
        out[name] = value
    for name, schema in schemas.items():
        if name not in out and "default" in schema:
            out[name] = schema["default"]
    return out
