"""What no field of any request may hold, checked once for every request as it is
decoded, before any servicer runs, so that every RPC and both databases answer alike:

- a NUL character (U+0000) in any string, map key or Struct key or string (PostgreSQL
  cannot store it in text or jsonb; SQLite would store it silently);
- NaN or ±Infinity in any double or float, or in any number of a Struct / Value (JSON
  has no such numbers);
- a google.protobuf.Timestamp outside 0001-01-01T00:00:00Z..9999-12-31T23:59:59.999999999Z
  or with nanos outside 0..999,999,999;
- a google.protobuf.Duration beyond ±10,000 years, with nanos beyond ±999,999,999, or
  with seconds and nanos of different signs.

Every problem becomes a (field path, description) violation: `parameters.foo`,
`state.data.rows[2]`, `tags[3]`, `flow_run_filter.start_time.before`. Field-specific
rules (lengths, ids, ranges) stay in from_proto.py and filters_from_proto.py.
"""

from __future__ import annotations

import math
from typing import cast

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.duration_pb2 import Duration
from google.protobuf.message import Message
from google.protobuf.struct_pb2 import ListValue, Struct, Value
from google.protobuf.timestamp_pb2 import Timestamp

TIMESTAMP_MIN_SECONDS = -62_135_596_800  # 0001-01-01T00:00:00Z
TIMESTAMP_MAX_SECONDS = 253_402_300_799  # 9999-12-31T23:59:59Z
DURATION_MAX_SECONDS = 315_576_000_000  # 10,000 years
MAX_NANOS = 999_999_999
MAX_VIOLATIONS = 50  # a request with more problems than this is reported by its first ones
MAX_KEY_IN_PATH = 64

_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
NUL_DESCRIPTION = "must not contain the NUL character (U+0000)"
NUMBER_DESCRIPTION = "must be a finite number (not NaN or Infinity)"


# Where a value sits, built only when something there breaks a rule (almost never): a
# chain of (parent, step, piece) from the request down, None at the request itself. The
# steps are a field's name, an index in a list and a key of a map or a Struct.
FieldPath = tuple["FieldPath", str, object] | None
_NAME, _INDEX, _MAP_KEY, _STRUCT_KEY = "name", "index", "map key", "struct key"


def request_violations(request: Message) -> list[tuple[str, str]]:
    """Every violation of the rules above in `request`, at most MAX_VIOLATIONS."""
    found: list[tuple[FieldPath, str]] = []
    _message(request, None, found)
    return [(_path_text(path), description) for path, description in found[:MAX_VIOLATIONS]]


def _path_text(path: FieldPath) -> str:
    """`parameters.foo`, `state.data.rows[2]`, `tags[3]`, `run_input_keyset['k']`."""
    steps = []
    while path is not None:
        path, step, piece = path
        steps.append((step, piece))
    text = ""
    for step, piece in reversed(steps):
        if step == _INDEX:
            text = f"{text}[{piece}]"
        elif step == _MAP_KEY:
            text = f"{text}[{_key(piece)!r}]"
        else:
            name = _key(piece) if step == _STRUCT_KEY else str(piece)
            text = f"{text}.{name}" if text else name
    return text


def _key(key: object) -> str:
    text = str(key).replace("\x00", "\\u0000")
    return text if len(text) <= MAX_KEY_IN_PATH else text[:MAX_KEY_IN_PATH] + "..."


def _message(message: Message, path: FieldPath, found: list) -> None:
    # Dispatch on the descriptor's name (not isinstance), so a well-known type from any
    # descriptor pool is checked; the casts only tell mypy what the name already says.
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        _timestamp(cast(Timestamp, message), path, found)
    elif name == "google.protobuf.Duration":
        _duration(cast(Duration, message), path, found)
    elif name == "google.protobuf.Struct":
        _struct(cast(Struct, message), path, found)
    elif name == "google.protobuf.Value":
        _value(cast(Value, message), path, found)
    elif name == "google.protobuf.ListValue":
        _list(cast(ListValue, message), path, found)
    else:
        for field, value in message.ListFields():
            if len(found) >= MAX_VIOLATIONS:
                return
            _field(field, value, (path, _NAME, field.name), found)


def _is_map(field: FieldDescriptor) -> bool:
    """Whether a message field is a map (its entries are messages marked map_entry);
    asked of the descriptor once per field, not once per request."""
    cached = _MAP_FIELDS.get(field)
    if cached is None:
        entry = field.message_type
        cached = _MAP_FIELDS[field] = entry is not None and entry.GetOptions().map_entry
    return cached


_MAP_FIELDS: dict[FieldDescriptor, bool] = {}


def _field(field: FieldDescriptor, value, path: FieldPath, found: list) -> None:
    if _is_map(field):
        value_field = field.message_type.fields_by_name["value"]  # type: ignore[union-attr]  # a map: an entry type
        for key in value:
            item_path = (path, _MAP_KEY, key)
            if "\x00" in str(key):
                found.append((item_path, f"key {NUL_DESCRIPTION}"))
            _single(value_field, value[key], item_path, found)
    elif field.is_repeated:
        for index, item in enumerate(value):
            if len(found) >= MAX_VIOLATIONS:
                return
            _single(field, item, (path, _INDEX, index), found)
    else:
        _single(field, value, path, found)


def _single(field: FieldDescriptor, value, path: FieldPath, found: list) -> None:
    if field.message_type is not None:
        _message(value, path, found)
    elif field.type == FieldDescriptor.TYPE_STRING:
        if "\x00" in value:
            found.append((path, NUL_DESCRIPTION))
    elif field.type in _FLOATS and not math.isfinite(value):
        found.append((path, NUMBER_DESCRIPTION))


def _timestamp(message: Timestamp, path: FieldPath, found: list) -> None:
    if not TIMESTAMP_MIN_SECONDS <= message.seconds <= TIMESTAMP_MAX_SECONDS or not 0 <= message.nanos <= MAX_NANOS:
        found.append((path, "must be a Timestamp from 0001-01-01T00:00:00Z to 9999-12-31T23:59:59.999999999Z"))


def _duration(message: Duration, path: FieldPath, found: list) -> None:
    seconds, nanos = message.seconds, message.nanos
    if (
        abs(seconds) > DURATION_MAX_SECONDS
        or abs(nanos) > MAX_NANOS
        or (seconds and nanos and (seconds > 0) != (nanos > 0))
    ):
        found.append(
            (path, "must be a Duration of at most 10,000 years, with nanos of the same sign as seconds and below 1e9")
        )


def _struct(message: Struct, path: FieldPath, found: list) -> None:
    fields = message.fields
    for key in fields:  # not .items(): its view walks the map in Python
        if len(found) >= MAX_VIOLATIONS:
            return
        item_path = (path, _STRUCT_KEY, key)
        if "\x00" in key:
            found.append((item_path, f"key {NUL_DESCRIPTION}"))
        _value(fields[key], item_path, found)


def _list(message: ListValue, path: FieldPath, found: list) -> None:
    for index, item in enumerate(message.values):
        if len(found) >= MAX_VIOLATIONS:
            return
        _value(item, (path, _INDEX, index), found)


def _value(message: Value, path: FieldPath, found: list) -> None:
    kind = message.WhichOneof("kind")
    if kind == "number_value" and not math.isfinite(message.number_value):
        found.append((path, NUMBER_DESCRIPTION))
    elif kind == "string_value" and "\x00" in message.string_value:
        found.append((path, NUL_DESCRIPTION))
    elif kind == "struct_value":
        _struct(message.struct_value, path, found)
    elif kind == "list_value":
        _list(message.list_value, path, found)
