"""Keyset pagination with opaque, signed page tokens.

Every order is total: a non-NULL sort expression, then the row id in the same direction.
A page token records the (sort key, id) of the last row served, so the next page is
`WHERE (key, id) > (last key, last id)` (or `<` for descending orders): no OFFSET scan,
and rows inserted or deleted meanwhile neither repeat nor hide other rows.

A page is also cut by size: with `PageRequest.max_bytes` set, rows are kept while the
estimated encoded size of the kept rows stays within it (at least one row is always kept),
and the token then points after the last row kept. The estimate (`estimated_bytes`) is a
deliberate over-count of the protobuf encoding of the row's values, so a page that fits the
estimate fits the gRPC message limit; it costs one walk over the values, not a conversion.

A token is base64url (no padding) of a compact JSON payload followed by a 16-byte
HMAC-SHA256 of it. The payload holds a format version, a hash of the query's filters
(the caller's `fingerprint`), the sort name and the last key and id. A token is only
accepted back by the same query: same filters, same sort, same server secret.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, bindparam, cast, func, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from flowrun.server.db import tables
from flowrun.server.db.dialect import binary_order
from flowrun.server.db.time_order import FAR_FUTURE, FAR_PAST, far_future, far_past
from flowrun.server.db.types import Timestamp, UUIDText
from flowrun.server.domain.filters import FlowRunSort, FlowSort, PageRequest
from flowrun.server.domain.task_runs import TaskRunSort
from flowrun.server.errors import InvalidArgument

TOKEN_VERSION = 1
MAX_TOKEN_LENGTH = 1024
_MAC_BYTES = 16
_KEY_LABEL = "_page_key"
PAGE_KEY_LABEL = _KEY_LABEL  # the label of the page key column fetch_page adds
# The names of the values that differ from one page of a query to the next: the key and
# id a page token points after, the row limit and the offset (fetch_page's `fetch`).
PAGE_KEY, PAGE_ID, PAGE_LIMIT, PAGE_OFFSET = "page_key", "page_id", "page_limit", "page_offset"
_ID_LABEL = "_page_id"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class SortKey:
    """A total order: `expression` (never NULL), then `id`, both `descending` or not.
    `name` identifies the order inside page tokens."""

    name: str
    expression: ColumnElement[Any]
    id: ColumnElement[str]
    descending: bool
    is_time: bool = False

    def order_by(self) -> list[ColumnElement[Any]]:
        if self.descending:
            return [self.expression.desc(), self.id.desc()]
        return [self.expression.asc(), self.id.asc()]

    def after(self, key: Any, last_id: str) -> ColumnElement[bool]:
        """Rows that come after (key, last_id) in this order."""
        key_type = Timestamp() if self.is_time else self.expression.type
        row = tuple_(self.expression, self.id)
        bound = tuple_(bindparam(PAGE_KEY, key, type_=key_type), bindparam(PAGE_ID, last_id, type_=UUIDText()))
        return row < bound if self.descending else row > bound


def _time_key(name: str, table, *columns: ColumnElement, descending: bool) -> SortKey:
    sentinel = far_past() if descending else far_future()
    expression = func.coalesce(*columns, sentinel, type_=Timestamp())
    return SortKey(name, expression, table.c.id, descending, is_time=True)


def _flow_sort_keys() -> dict[FlowSort, SortKey]:
    flow = tables.flow
    return {
        FlowSort.CREATED_DESC: SortKey("flow:CREATED_DESC", flow.c.created, flow.c.id, True, is_time=True),
        FlowSort.UPDATED_DESC: SortKey("flow:UPDATED_DESC", flow.c.updated, flow.c.id, True, is_time=True),
        FlowSort.NAME_ASC: SortKey("flow:NAME_ASC", binary_order(flow.c.name), flow.c.id, False),
        FlowSort.NAME_DESC: SortKey("flow:NAME_DESC", binary_order(flow.c.name), flow.c.id, True),
    }


def _flow_run_sort_keys() -> dict[FlowRunSort, SortKey]:
    run = tables.flow_run
    c = run.c
    return {
        FlowRunSort.ID_DESC: SortKey("flow_run:ID_DESC", c.id, c.id, True),
        FlowRunSort.START_TIME_ASC: _time_key(
            "flow_run:START_TIME_ASC", run, c.start_time, c.expected_start_time, descending=False
        ),
        FlowRunSort.START_TIME_DESC: _time_key(
            "flow_run:START_TIME_DESC", run, c.start_time, c.expected_start_time, descending=True
        ),
        FlowRunSort.EXPECTED_START_TIME_ASC: _time_key(
            "flow_run:EXPECTED_START_TIME_ASC", run, c.expected_start_time, descending=False
        ),
        FlowRunSort.EXPECTED_START_TIME_DESC: _time_key(
            "flow_run:EXPECTED_START_TIME_DESC", run, c.expected_start_time, descending=True
        ),
        FlowRunSort.NAME_ASC: SortKey("flow_run:NAME_ASC", binary_order(c.name), c.id, False),
        FlowRunSort.NAME_DESC: SortKey("flow_run:NAME_DESC", binary_order(c.name), c.id, True),
        FlowRunSort.NEXT_SCHEDULED_START_TIME_ASC: _time_key(
            "flow_run:NEXT_SCHEDULED_START_TIME_ASC", run, c.next_scheduled_start_time, descending=False
        ),
        FlowRunSort.END_TIME_DESC: _time_key("flow_run:END_TIME_DESC", run, c.end_time, descending=True),
    }


def _task_run_sort_keys() -> dict[TaskRunSort, SortKey]:
    run = tables.task_run
    c = run.c
    return {
        TaskRunSort.ID_DESC: SortKey("task_run:ID_DESC", c.id, c.id, True),
        TaskRunSort.EXPECTED_START_TIME_ASC: _time_key(
            "task_run:EXPECTED_START_TIME_ASC", run, c.expected_start_time, descending=False
        ),
        TaskRunSort.EXPECTED_START_TIME_DESC: _time_key(
            "task_run:EXPECTED_START_TIME_DESC", run, c.expected_start_time, descending=True
        ),
        TaskRunSort.NAME_ASC: SortKey("task_run:NAME_ASC", binary_order(c.name), c.id, False),
        TaskRunSort.NAME_DESC: SortKey("task_run:NAME_DESC", binary_order(c.name), c.id, True),
        TaskRunSort.NEXT_SCHEDULED_START_TIME_ASC: _time_key(
            "task_run:NEXT_SCHEDULED_START_TIME_ASC", run, c.next_scheduled_start_time, descending=False
        ),
        TaskRunSort.END_TIME_DESC: _time_key("task_run:END_TIME_DESC", run, c.end_time, descending=True),
    }


_FLOW_SORT_KEYS = _flow_sort_keys()
_FLOW_RUN_SORT_KEYS = _flow_run_sort_keys()
_TASK_RUN_SORT_KEYS = _task_run_sort_keys()
_STATE_HISTORY_SORT_KEY = SortKey(
    "flow_run_state:TIMESTAMP_ASC",
    tables.flow_run_state.c.timestamp,
    tables.flow_run_state.c.id,
    False,
    is_time=True,
)


def flow_sort_key(sort: FlowSort) -> SortKey:
    return _FLOW_SORT_KEYS[sort]


def flow_run_sort_key(sort: FlowRunSort) -> SortKey:
    return _FLOW_RUN_SORT_KEYS[sort]


def task_run_sort_key(sort: TaskRunSort) -> SortKey:
    return _TASK_RUN_SORT_KEYS[sort]


def state_history_sort_key() -> SortKey:
    """A run's state history, oldest first."""
    return _STATE_HISTORY_SORT_KEY


async def fetch_page(
    connection: AsyncConnection,
    query: Select,
    sort_key: SortKey,
    page: PageRequest,
    *,
    secret: str,
    fingerprint: str,
    decode: Callable[[list[str], list[Any]], list[dict[str, Any]]] | None = None,
    fetch: Callable[[Select, dict[str, Any]], Awaitable[Sequence[Any]]] | None = None,
) -> tuple[list[Any], str]:
    """One page of `query` (which already has its WHERE) in `sort_key` order, and the
    token of the next page ("" on the last page). The rows carry two extra columns,
    `_page_key` and `_page_id`; read the table's columns by name.

    With `decode` the page is returned as `decode(labels, rows)`, dicts by column label:
    for a caller that fetches columns in a cheaper form than it reads them (JSON as text,
    decoded for the whole page in one call). The byte budget's quick bound weighs the
    rows as fetched, its element-by-element estimate the values as returned.

    With `fetch` (which needs `decode`) the rows are fetched by `fetch(statement, page)`
    as positional rows in the statement's column order, instead of through SQLAlchemy's
    execution: for a caller that reads them through the driver directly. `page` holds the
    values of the statement's bound parameters that change from page to page (PAGE_KEY,
    PAGE_ID, PAGE_LIMIT, PAGE_OFFSET), by name: the rest of the statement is the same for
    every page of one query, so the caller may compile it once and bind only these."""
    cursor = None
    if page.page_token:
        cursor = _decode(page.page_token, sort_key, secret=secret, fingerprint=fingerprint)
    if page.limit <= 0:
        return [], ""

    query = query.add_columns(_as_read(sort_key.expression).label(_KEY_LABEL), _as_read(sort_key.id).label(_ID_LABEL))
    query = query.order_by(None).order_by(*sort_key.order_by())
    values: dict[str, Any] = {PAGE_LIMIT: page.limit + 1}
    if cursor is not None:
        query = query.where(sort_key.after(*cursor))
        values[PAGE_KEY], values[PAGE_ID] = cursor
    elif page.offset:
        query = query.offset(bindparam(PAGE_OFFSET, page.offset))
        values[PAGE_OFFSET] = page.offset
    query = query.limit(bindparam(PAGE_LIMIT, page.limit + 1))
    if fetch is not None:
        assert decode is not None, "rows fetched by the caller are read through its decode"
        fetched: list[Any] = list(await fetch(query, values))
    else:
        fetched = list((await connection.execute(query)).all())

    more = len(fetched) > page.limit
    fetched = fetched[: page.limit]
    rows: list[Any] = fetched
    mappings: Sequence[Mapping[Any, Any]]
    if decode is not None:
        rows = decode([column.name for column in query.selected_columns], fetched)
        mappings = rows
    else:
        mappings = [row._mapping for row in fetched]
    if page.max_bytes is not None:
        kept = rows_within(fetched, [mapping.values() for mapping in mappings], page.max_bytes)
        more = more or kept < len(rows)
        rows = rows[:kept]
        mappings = mappings[:kept]
    if not more:
        return rows, ""
    last = mappings[-1]
    token = _encode(last[_KEY_LABEL], last[_ID_LABEL], sort_key, secret=secret, fingerprint=fingerprint)
    return rows, token


def _as_read(expression: ColumnElement[Any]) -> ColumnElement[Any]:
    """A page's key column as the token holds it: a UUID as its text, which every
    driver returns as a str (asyncpg would return a uuid object to `fetch`)."""
    return cast(expression, Text) if isinstance(expression.type, UUIDText) else expression


# -- page size in bytes ------------------------------------------------------------------

# Upper bounds of protobuf framing: a field tag and a length prefix (at most 5 + 5 bytes
# below 2**35), a google.protobuf.Value wrapper around each JSON value, a map entry around
# each Struct field. Scalars that are not text are charged as a fixed-width field.
_FIELD_OVERHEAD = 6
_SCALAR_BYTES = 12
_MAP_ENTRY_OVERHEAD = 14
_LIST_ITEM_OVERHEAD = 8
_ROW_OVERHEAD = 64


def estimated_bytes(value: Any) -> int:
    """An over-count of the encoded size of one column value once it is a proto field."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode()) + _FIELD_OVERHEAD
    if isinstance(value, bytes | bytearray):
        return len(value) + _FIELD_OVERHEAD
    if isinstance(value, dict):
        return _FIELD_OVERHEAD + sum(
            _MAP_ENTRY_OVERHEAD + estimated_bytes(str(key)) + estimated_bytes(item) for key, item in value.items()
        )
    if isinstance(value, list | tuple):
        return _FIELD_OVERHEAD + sum(_LIST_ITEM_OVERHEAD + estimated_bytes(item) for item in value)
    return _SCALAR_BYTES


# quick_bound's multiplier: JSON's shortest tokens (a one-digit number, `[]`, `{}`) cost
# estimated_bytes at most 10 times their length in JSON text (tests/test_page_size_bounds.py).
_JSON_TEXT_FACTOR = 10


def _stand_in(value: Any) -> Any:
    """What quick_bound writes for a value JSON has no form for: bytes as their hex (two
    characters per byte); anything else (a time, a UUID: estimated_bytes charges them as
    it charges a number) as the number 0, not as its text, which would cost a formatting
    call per value for nothing."""
    return value.hex() if isinstance(value, bytes | bytearray) else 0


# ASCII only: a character's text >= its UTF-8 bytes.
_ENCODE_JSON = json.JSONEncoder(default=_stand_in).encode


# Values quick_bound charges without encoding them: strings by their length, the rest
# (which estimated_bytes charges as a fixed-width field) at _SCALAR_BYTES. Exact classes,
# compared by identity, so the test costs no isinstance call per value.
_PLAIN = frozenset({str, int, float, bool, type(None), datetime})


def quick_bound(row: Iterable[Any]) -> int:
    """A cheaper over-count of a row than estimated_bytes, at least as large, from the
    length of its text: a string counts _JSON_TEXT_FACTOR times its length, any other
    value but a number, a time or None (containers, bytes) the same factor times the
    length of its JSON text (one C call for the row), and every value _SCALAR_BYTES. A
    string so charged also covers the JSON value it may be the text of (a caller that
    fetches JSON columns as text: fetch_page's decode), whatever its spacing or escaping,
    so rows as fetched are weighed without decoding them, and times are never formatted."""
    values = list(row)
    text = sum([len(value) for value in values if value.__class__ is str])
    structured = [value for value in values if value.__class__ not in _PLAIN]
    if structured:
        text += len(_ENCODE_JSON(structured))
    return _JSON_TEXT_FACTOR * text + _SCALAR_BYTES * len(values) + _ROW_OVERHEAD


def rows_within(fetched: Sequence[Iterable[Any]], rows: Sequence[Iterable[Any]], max_bytes: int) -> int:
    """How many leading rows fit in `max_bytes` by `estimated_bytes` of their values as
    read (`rows`); at least one, so a single row larger than the budget is still served
    (or fails at the message limit) rather than paging forever on empty pages. A page
    whose rows as `fetched` fit by quick_bound (the usual case: runs of a few kB) is
    kept whole without the element-by-element count."""
    if sum(quick_bound(row) for row in fetched) <= max_bytes:
        return len(rows)
    total = 0
    kept = 0
    for row in rows:
        total += _ROW_OVERHEAD + sum(estimated_bytes(value) for value in row)
        if kept and total > max_bytes:
            break
        kept += 1
    return kept


# -- tokens -----------------------------------------------------------------------------


def _fingerprint_hash(fingerprint: str) -> str:
    return _b64encode(hashlib.sha256(fingerprint.encode()).digest()[:12])


def _mac(secret: str, payload: bytes) -> bytes:
    return hmac.new(secret.encode(), payload, hashlib.sha256).digest()[:_MAC_BYTES]


def _encode(key: Any, last_id: str, sort_key: SortKey, *, secret: str, fingerprint: str) -> str:
    if sort_key.is_time:
        key = (key.astimezone(UTC) - _EPOCH) // _MICROSECOND
    payload = {
        "v": TOKEN_VERSION,
        "f": _fingerprint_hash(fingerprint),
        "s": sort_key.name,
        "k": key,
        "i": last_id,
    }
    body = json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()
    return _b64encode(body + _mac(secret, body))


def _decode(token: str, sort_key: SortKey, *, secret: str, fingerprint: str) -> tuple[Any, str]:
    """(last key, last id) from a token made by this query, else INVALID_PAGE_TOKEN."""
    if len(token) > MAX_TOKEN_LENGTH:
        raise _invalid("page token is too long")
    try:
        raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise _invalid("page token is not valid base64url") from None
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, _mac(secret, body)):
        raise _invalid("page token is corrupt or was not issued by this server")
    try:
        payload = json.loads(body)
        version, fingerprint_hash, sort_name, key, last_id = (
            payload["v"],
            payload["f"],
            payload["s"],
            payload["k"],
            payload["i"],
        )
    except (ValueError, TypeError, KeyError):
        raise _invalid("page token is malformed") from None
    if version != TOKEN_VERSION:
        raise _invalid("page token has an unsupported version")
    if sort_name != sort_key.name or fingerprint_hash != _fingerprint_hash(fingerprint):
        raise _invalid("page token belongs to a different query (filters or sort changed)")
    # A well-signed token can still carry a cursor the database cannot bind (a forged or
    # stale secret, a future format): check its types here, so it is INVALID_ARGUMENT
    # naming page_token and never a bind error (INTERNAL).
    last_id = _uuid_text(last_id)
    if sort_key.is_time:
        if not isinstance(key, int) or isinstance(key, bool):
            raise _invalid("page token has a sort key of the wrong type")
        try:
            key = _EPOCH + key * _MICROSECOND
        except OverflowError:
            raise _invalid("page token has a sort key out of range") from None
        if not FAR_PAST <= key <= FAR_FUTURE:
            raise _invalid("page token has a sort key out of range")
    elif isinstance(sort_key.expression.type, UUIDText):
        key = _uuid_text(key)
    elif not isinstance(key, str) or "\x00" in key:
        raise _invalid("page token has a sort key of the wrong type")
    return key, last_id


def _uuid_text(value: Any) -> str:
    if not isinstance(value, str):
        raise _invalid("page token has a cursor that is not a UUID")
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise _invalid("page token has a cursor that is not a UUID") from None


def _invalid(description: str) -> InvalidArgument:
    return InvalidArgument.field("page_token", description, reason="INVALID_PAGE_TOKEN")


def _b64encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()
