"""Hypothesis strategies for hostile requests, built from the message descriptors.

`message_strategy(descriptor, pool)` walks a request's descriptor and fills each field
with values of its wire type, leaning on the values that break servers: NaN and ±Inf,
NUL and other odd characters, boundary and huge integers, Timestamps and Durations out
of range, unknown enum numbers, invalid UUIDs, long strings, deep Structs, hundreds of
repeated values. String fields named like ids, names or page tokens draw from `pool`
(ids, names and page tokens of rows that exist) most of the time, so requests get past
id validation and into the deep paths.

`request_bodies(method, pool)` adds raw random bytes and corrupted encodings of real
messages on top, and says which kind it drew.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import math
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import message_factory, struct_pb2
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st

MAX_DEPTH = 6
INT32 = (-(2**31), 2**31 - 1)
INT64 = (-(2**63), 2**63 - 1)
UINT32 = (0, 2**32 - 1)
UINT64 = (0, 2**64 - 1)

# Timestamp: 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z; Duration: ±10,000 years.
TIMESTAMP_MIN, TIMESTAMP_MAX = -62_135_596_800, 253_402_300_799
DURATION_MAX = 315_576_000_000

HOSTILE_TEXT = [
    "",
    " ",
    "\x00",
    "a\x00b",
    "name\x00",
    "%",
    "_",
    "%_%",
    "\\",
    "'",
    '"',
    "'; --",
    "/",
    "a/b",
    "<>&%",
    "\t\n\r",
    "\u200b",
    "\ufeff",
    "\uffff",
    "é",
    "💥",
    "NaN",
    "Infinity",
    "null",
    "{}",
    "[]",
    "-1",
    "9" * 40,
    "not-a-uuid",
    "00000000-0000-0000-0000-000000000000",
    "ffffffff-ffff-ffff-ffff-ffffffffffff",
    "12345678123456781234567812345678",
    "{12345678-1234-5678-1234-567812345678}",
    "urn:uuid:12345678-1234-5678-1234-567812345678",
    "12345678-1234-5678-1234-56781234567\x00",
    "12345678-1234-5678-1234-5678123456789",
    "ZZZZZZZZ-ZZZZ-ZZZZ-ZZZZ-ZZZZZZZZZZZZ",
]
LONG_TEXT = st.tuples(
    st.sampled_from(["a", "\x00", "é", "%", "💥", "-"]),
    st.sampled_from([199, 200, 201, 1000, 1001, 5000, 100_001]),
).map(lambda pair: pair[0] * pair[1])
HOSTILE_STRINGS = st.one_of(st.sampled_from(HOSTILE_TEXT), LONG_TEXT, st.text(max_size=12))
HOSTILE_FLOATS = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, 1e308, -1e308, 5e-324, 2.0**53 + 1]),
    st.floats(allow_nan=True, allow_infinity=True),
)


@dataclass
class Pool:
    """Ids, names and page tokens of rows that exist (or existed) on the server under
    fuzz. The harness refills it as it goes; strategies read it at draw time."""

    ids: dict[str, list[str]] = field(default_factory=dict)  # kind -> ids
    names: dict[str, list[str]] = field(default_factory=dict)  # kind -> names
    page_tokens: list[str] = field(default_factory=list)
    page_token_secret: str = ""  # the server's key (App.settings), so forged tokens pass the MAC

    def add_id(self, kind: str, value: str) -> None:
        if value:
            self.ids.setdefault(kind, []).append(value)

    def add_name(self, kind: str, value: str) -> None:
        if value:
            self.names.setdefault(kind, []).append(value)

    def add_token(self, token: str) -> None:
        if token and token not in self.page_tokens:
            self.page_tokens.append(token)
            del self.page_tokens[:-200]

    def all_ids(self) -> list[str]:
        return [value for values in self.ids.values() for value in values]

    def all_names(self) -> list[str]:
        return [value for values in self.names.values() for value in values]


# The pool changes while hypothesis draws, and hypothesis requires that the same choices
# draw the same kinds of values: so every draw below happens whatever the pool holds
# (an index modulo the pool's size, never a range that depends on it).
INDEX = st.integers(0, 2**16)


def _pick(values_of) -> st.SearchStrategy[str | None]:
    """One of `values_of()` (read at draw time, since the pool grows), or None if empty."""

    @st.composite
    def pick(draw):
        index = draw(INDEX)
        values = values_of()
        return values[index % len(values)] if values else None

    return pick()


def _or_hostile(known: st.SearchStrategy[str | None]) -> st.SearchStrategy[str]:
    """A known value seven times in ten (when there is one), else a hostile string."""

    @st.composite
    def choose(draw):
        roll, value, hostile = draw(st.integers(0, 9)), draw(known), draw(HOSTILE_STRINGS)
        return value if roll < 7 and value is not None else hostile

    return choose()


def _uuid_variants(pool: Pool) -> st.SearchStrategy[str]:
    known = _pick(pool.all_ids)
    return st.one_of(
        _or_hostile(known),
        known.map(lambda value: value.upper() if value else ""),
        st.uuids().map(str),
    )


TOKEN_EDITS = st.sampled_from(["real", "flip", "truncate", "resign", "garbage"])
TOKEN_VALUES = st.one_of(
    st.sampled_from([None, True, [], {}, 1.5, "", "\x00", "not-a-uuid", 2**70, -(2**70), 10**20, -(10**20)]),
    st.integers(),
    HOSTILE_STRINGS,
)


def _forged_tokens(pool: Pool) -> st.SearchStrategy[str]:
    """Real tokens, tokens with a character changed or cut, random base64, and tokens
    whose payload was rewritten with hostile values and signed again with the server's
    secret (the harness reads it from the app under fuzz), so that they pass the MAC and
    reach the cursor."""
    real = _pick(lambda: pool.page_tokens)

    @st.composite
    def forged(draw):
        token, how, position, character = (
            draw(real),
            draw(TOKEN_EDITS),
            draw(INDEX),
            draw(st.sampled_from("A_-z0=+/\x00")),
        )
        garbage, hostile = draw(st.binary(max_size=80)), draw(HOSTILE_STRINGS)
        edits = draw(
            st.lists(st.tuples(st.sampled_from(["k", "i", "v", "s", "f"]), TOKEN_VALUES), min_size=1, max_size=3)
        )
        if how == "garbage":
            return base64.urlsafe_b64encode(garbage).decode().rstrip("=")
        if token is None:
            return hostile
        if how == "flip":
            index = position % len(token)
            return token[:index] + character + token[index + 1 :]
        if how == "truncate":
            return token[: position % len(token)]
        if how == "real":
            return token
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        try:
            payload = json.loads(raw[:-16])
        except ValueError:
            return token
        payload.update(edits)
        body = json.dumps(payload, separators=(",", ":")).encode()
        mac = hmac.new(pool.page_token_secret.encode(), body, hashlib.sha256).digest()[:16]
        return base64.urlsafe_b64encode(body + mac).decode().rstrip("=")

    return st.one_of(forged(), forged(), HOSTILE_STRINGS)


def _string_strategy(field_descriptor: FieldDescriptor, pool: Pool, tame: bool) -> st.SearchStrategy[str]:
    name = field_descriptor.name
    if tame:
        return _tame_string(field_descriptor, pool)
    container = field_descriptor.containing_type.name
    if name == "page_token":
        return _forged_tokens(pool)
    if name in ("id", "ids", "any", "not_any") and container in ("IdFilter", "CreatedByFilter"):
        return _uuid_variants(pool)
    if name.endswith("_id") or name.endswith("_ids") or name == "id":
        return _uuid_variants(pool)
    if name in ("name", "work_pool_name", "work_queue_name", "idempotency_key", "like") or name.endswith("name"):
        return _or_hostile(_pick(pool.all_names))
    if name == "paths":
        return st.one_of(
            st.sampled_from(
                [
                    "tags",
                    "name",
                    "labels",
                    "id",
                    "parameters",
                    "job_variables",
                    "empirical_policy",
                    "flow_version",
                    "infrastructure_pid",
                    "state",
                    "created",
                    "a.b",
                    "",
                ]
            ),
            HOSTILE_STRINGS,
        )
    return HOSTILE_STRINGS


def _scalar_strategy(field_descriptor: FieldDescriptor, pool: Pool, tame: bool = False) -> st.SearchStrategy[Any]:
    kind = field_descriptor.type
    if kind == FieldDescriptor.TYPE_STRING:
        return _string_strategy(field_descriptor, pool, tame)
    if tame:
        return _tame_scalar(field_descriptor)
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=64)
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return HOSTILE_FLOATS
    if kind == FieldDescriptor.TYPE_ENUM:
        known = [value.number for value in field_descriptor.enum_type.values]
        return st.one_of(st.sampled_from(known), st.sampled_from(known), st.integers(*INT32))
    if kind in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SFIXED32):
        low, high = INT32
    elif kind in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_FIXED32):
        low, high = UINT32
    elif kind in (FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64):
        low, high = UINT64
    else:
        low, high = INT64
    edges = [value for value in (0, 1, 2, -1, 3, 199, 200, 201, 1000, 1001, 10**6, low, high) if low <= value <= high]
    return st.one_of(st.sampled_from(edges), st.integers(low, high), st.integers(max(low, -5), 5))


# -- well-known types -------------------------------------------------------------------


def _timestamp_parts() -> st.SearchStrategy[tuple[int, int]]:
    seconds = st.one_of(
        st.sampled_from(
            [
                0,
                -1,
                TIMESTAMP_MIN,
                TIMESTAMP_MIN - 1,
                TIMESTAMP_MAX,
                TIMESTAMP_MAX + 1,
                INT64[0],
                INT64[1],
                1_700_000_000,
                4_102_444_800,
            ]
        ),
        st.integers(1_600_000_000, 1_900_000_000),
        st.integers(*INT64),
    )
    nanos = st.one_of(st.sampled_from([0, 999_999_999, 10**9, -1, INT32[0], INT32[1]]), st.integers(0, 999_999_999))
    return st.tuples(seconds, nanos)


def _duration_parts() -> st.SearchStrategy[tuple[int, int]]:
    seconds = st.one_of(
        st.sampled_from(
            [0, 1, -1, 59, 60, 86_400, 86_401, DURATION_MAX, DURATION_MAX + 1, -DURATION_MAX - 1, INT64[0], INT64[1]]
        ),
        st.integers(-100_000, 100_000),
        st.integers(*INT64),
    )
    nanos = st.one_of(
        st.sampled_from([0, 1, -1, 999_999_999, -999_999_999, 10**9, INT32[0], INT32[1]]),
        st.integers(-999_999_999, 999_999_999),
    )
    return st.tuples(seconds, nanos)


JSON_LEAVES = st.one_of(st.none(), st.booleans(), HOSTILE_FLOATS, st.integers(-(2**60), 2**60), HOSTILE_STRINGS)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda children: st.one_of(st.lists(children, max_size=4), st.dictionaries(HOSTILE_STRINGS, children, max_size=4)),
    max_leaves=12,
)


def _deep(depth: int, leaf: Any) -> Any:
    value = leaf
    for index in range(depth):
        value = [value] if index % 2 else {"d": value}
    return value


# Deep values: protobuf's decoder stops at 100 nested messages (a Struct level is two).
DEEP_JSON = st.tuples(st.sampled_from([10, 30, 45, 60, 400]), JSON_LEAVES).map(lambda pair: _deep(*pair))
JSON_OBJECTS = st.dictionaries(HOSTILE_STRINGS, JSON_VALUES, max_size=5)
JSON_VALUE_STRATEGY = st.one_of(*[JSON_VALUES] * 7, DEEP_JSON)
JSON_OBJECT_STRATEGY = st.one_of(*[JSON_OBJECTS] * 7, DEEP_JSON.map(lambda value: {"deep": value}))


def set_value(target: struct_pb2.Value, value: Any) -> None:
    """Fills a google.protobuf.Value without the checks json_format makes (NaN passes)."""
    if value is None:
        target.null_value = struct_pb2.NULL_VALUE
    elif isinstance(value, bool):
        target.bool_value = value
    elif isinstance(value, (int, float)):
        target.number_value = float(value)
    elif isinstance(value, str):
        target.string_value = value
    elif isinstance(value, list):
        target.list_value.SetInParent()
        for item in value:
            set_value(target.list_value.values.add(), item)
    else:
        set_struct(target.struct_value, value)


def set_struct(target: struct_pb2.Struct, value: dict[str, Any]) -> None:
    target.SetInParent()
    for key, item in value.items():
        set_value(target.fields[key], item)


# -- tame values ----------------------------------------------------------------------------
# Valid-looking requests (ids and names that exist, known enums, small numbers, times
# near now) get past validation and exercise the orchestration, filters and paging.

TAME_TEXT = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_ .", min_size=1, max_size=12)
TAME_JSON = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-1000, 1000), st.floats(-1e6, 1e6), TAME_TEXT),
    lambda children: st.one_of(st.lists(children, max_size=3), st.dictionaries(TAME_TEXT, children, max_size=3)),
    max_leaves=6,
)


ID_KINDS = {
    "flow_id": "flow",
    "flow_run_id": "flow_run",
    "child_flow_run_id": "flow_run",
    "task_run_id": "task_run",
    "parent_task_run_id": "task_run",
    "deployment_id": "deployment",
    "state_id": "state",
    "lease_id": "lease",
    "deployment_concurrency_lease_id": "lease",
}

NAME_KINDS = {
    "work_pool_name": "work_pool",
    "work_queue_name": "work_queue",
    "idempotency_key": "idempotency_key",
    "GetFlowByNameRequest.name": "flow",
    "CreateFlowRequest.name": "flow",
    "GetWorkPoolRequest.name": "work_pool",
    "DeleteWorkPoolRequest.name": "work_pool",
    "GetWorkQueueRequest.name": "work_queue",
    "DeleteWorkQueueRequest.name": "work_queue",
    "CreateWorkQueueRequest.name": "work_queue",
}


def _tame_string(field_descriptor: FieldDescriptor, pool: Pool) -> st.SearchStrategy[str]:
    name = field_descriptor.name
    container = field_descriptor.containing_type.name
    if name == "page_token":
        return _pick(lambda: pool.page_tokens).map(lambda token: token or "")
    if name.endswith("_id") or name.endswith("_ids") or name == "id" or container in ("IdFilter", "CreatedByFilter"):
        kind = ID_KINDS.get(name.removesuffix("s"))
        known = _pick((lambda: pool.ids.get(kind) or pool.all_ids()) if kind else pool.all_ids)
        return st.tuples(known, st.uuids().map(str), st.integers(0, 9)).map(
            lambda parts: parts[0] if parts[0] and parts[2] else parts[1]
        )
    if name.endswith("name") or name in ("idempotency_key", "like"):
        kind = NAME_KINDS.get(name) or NAME_KINDS.get(f"{container}.{name}")
        known = _pick((lambda: pool.names.get(kind) or pool.all_names()) if kind else pool.all_names)
        return st.tuples(known, TAME_TEXT, st.integers(0, 3)).map(
            lambda parts: parts[0] if parts[0] and parts[2] else parts[1]
        )
    if name == "paths":
        return st.sampled_from(["tags", "name", "parameters", "job_variables", "empirical_policy", "flow_version"])
    return TAME_TEXT


def _tame_scalar(field_descriptor: FieldDescriptor) -> st.SearchStrategy[Any]:
    kind = field_descriptor.type
    if kind == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if kind in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(0, 100)
    if kind == FieldDescriptor.TYPE_ENUM:
        return st.sampled_from([value.number for value in field_descriptor.enum_type.values if value.number])
    if kind == FieldDescriptor.TYPE_BYTES:
        return st.binary(max_size=8)
    return st.integers(0, 5)


def _fill_tame_well_known(draw, message: Message) -> bool:
    name = message.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        message.seconds, message.nanos = draw(st.integers(1_700_000_000, 1_900_000_000)), draw(st.integers(0, 999_999))
    elif name == "google.protobuf.Duration":
        message.seconds = draw(st.integers(0, 3600))
    elif name == "google.protobuf.Struct":
        set_struct(message, draw(st.dictionaries(TAME_TEXT, TAME_JSON, max_size=4)))
    elif name == "google.protobuf.Value":
        set_value(message, draw(TAME_JSON))
    elif name == "google.protobuf.ListValue":
        for item in draw(st.lists(TAME_JSON, max_size=3)):
            set_value(message.values.add(), item)
    else:
        return False
    return True


# -- messages -----------------------------------------------------------------------------


def _fill_well_known(draw, message: Message, tame: bool) -> bool:
    """Fills `message` if it is a well-known type the server reads; True if it was."""
    name = message.DESCRIPTOR.full_name
    if tame:
        return _fill_tame_well_known(draw, message)
    if name == "google.protobuf.Timestamp":
        message.seconds, message.nanos = draw(_timestamp_parts())
    elif name == "google.protobuf.Duration":
        message.seconds, message.nanos = draw(_duration_parts())
    elif name == "google.protobuf.Struct":
        set_struct(message, draw(JSON_OBJECT_STRATEGY))
    elif name == "google.protobuf.Value":
        set_value(message, draw(JSON_VALUE_STRATEGY))
    elif name == "google.protobuf.ListValue":
        for item in draw(st.lists(JSON_VALUES, max_size=4)):
            set_value(message.values.add(), item)
    else:
        return False
    return True


def _fill(draw, message: Message, pool: Pool, depth: int, tame: bool) -> None:
    if depth:
        message.SetInParent()
    if _fill_well_known(draw, message, tame):
        return
    for field_descriptor in message.DESCRIPTOR.fields:
        # Fields are set about half the time near the top, less often further down; a tame
        # request sets its top-level fields four times in five (most are required).
        if tame and depth == 0:
            if draw(st.integers(0, 4)) == 0:
                continue
        elif draw(st.integers(0, depth + 1)) != 0:
            continue
        _fill_field(draw, message, field_descriptor, pool, depth, tame)


def _fill_field(draw, message: Message, field_descriptor: FieldDescriptor, pool: Pool, depth: int, tame: bool) -> None:
    name = field_descriptor.name
    submessage_type = field_descriptor.message_type
    if submessage_type is not None and submessage_type.GetOptions().map_entry:
        key_field, value_field = submessage_type.fields_by_name["key"], submessage_type.fields_by_name["value"]
        target = getattr(message, name)
        for _ in range(draw(st.integers(0, 3))):
            key = draw(_scalar_strategy(key_field, pool, tame))
            if value_field.message_type is None:
                target[key] = draw(_scalar_strategy(value_field, pool, tame))
            elif depth < MAX_DEPTH:
                _fill(draw, target[key], pool, depth + 1, tame)
        return
    if field_descriptor.is_repeated:
        container = getattr(message, name)
        if submessage_type is not None:
            for _ in range(draw(st.integers(0, 3)) if depth < MAX_DEPTH else 0):
                _fill(draw, container.add(), pool, depth + 1, tame)
            return
        element = _scalar_strategy(field_descriptor, pool, tame)
        if not tame and draw(st.integers(0, 15)) == 0:  # hundreds of values: limits and error-detail sizes
            value = draw(element)
            if isinstance(value, str):
                value = value[:80]  # a thousand 100 kB strings would only test the message size limit
            container.extend([value] * draw(st.sampled_from([201, 300, 1001])))
        else:
            container.extend(draw(st.lists(element, max_size=4)))
        return
    if submessage_type is not None:
        if depth < MAX_DEPTH:
            _fill(draw, getattr(message, name), pool, depth + 1, tame)
        return
    setattr(message, name, draw(_scalar_strategy(field_descriptor, pool, tame)))


def message_strategy(descriptor: Descriptor, pool: Pool, *, tame: bool = False) -> st.SearchStrategy[Message]:
    message_class = message_factory.GetMessageClass(descriptor)

    @st.composite
    def build(draw):
        message = message_class()
        _fill(draw, message, pool, 0, tame)
        return message

    return build()


@dataclass(frozen=True)
class Body:
    """One request body: its kind ("message": hostile values; "tame": valid-looking ones;
    "bytes": random; "corrupted": a message's encoding damaged), the bytes sent,
    and the message they encode when there is one (for reports)."""

    kind: str
    data: bytes
    message: Message | None = None


def _mutate(draw, data: bytes) -> bytes:
    how = draw(st.sampled_from(["flip", "truncate", "insert", "overlong"]))
    if how == "flip" and data:
        index = draw(st.integers(0, len(data) - 1))
        return data[:index] + bytes([draw(st.integers(0, 255))]) + data[index + 1 :]
    if how == "truncate" and data:
        return data[: draw(st.integers(0, len(data) - 1))]
    if how == "insert":
        index = draw(st.integers(0, len(data)))
        return data[:index] + draw(st.binary(min_size=1, max_size=8)) + data[index:]
    # A length-delimited field 1 that claims more bytes than follow.
    return b"\x0a\xff\xff\x03" + data


def request_bodies(input_descriptor: Descriptor, pool: Pool) -> st.SearchStrategy[Body]:
    hostile, tame = message_strategy(input_descriptor, pool), message_strategy(input_descriptor, pool, tame=True)

    @st.composite
    def body(draw):
        roll = draw(st.integers(0, 9))
        if roll == 0:
            return Body("bytes", draw(st.binary(max_size=256)))
        if roll >= 6:
            message = draw(tame)
            return Body("tame", message.SerializeToString(), message)
        message = draw(hostile)
        try:
            data = message.SerializeToString()
        except Exception:
            data = b""
        if roll == 1:
            return Body("corrupted", _mutate(draw, data), message)
        return Body("message", data, message)

    return body()
