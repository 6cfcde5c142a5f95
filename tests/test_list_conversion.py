"""ListFlowRuns reads runs through its own fast path (server/repositories/flow_runs.py
list_page: JSON and UUID columns fetched as text, a page's JSON decoded by one json.loads)
and must answer exactly what the per-row read of GetFlowRun answers for the same run,
whatever the run holds: random parameters, labels, context, job variables, tags, names
and state data and messages (unicode, nesting, nulls, numbers). The page decoder and the
page byte budget's quick bound are checked on their own below."""

from __future__ import annotations

import json
from collections import namedtuple
from datetime import UTC, datetime

import pytest
from google.protobuf.struct_pb2 import Struct, Value
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flowrun.server import clock
from flowrun.server.repositories.flow_runs import _decode_page
from flowrun.server.repositories.paging import _ROW_OVERHEAD, estimated_bytes, quick_bound
from flowrun.v1 import filters_pb2, state_pb2
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb

# Any character the API stores (NUL is refused at the edge).
CHARACTERS = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")


def texts(min_size: int = 0, max_size: int = 12) -> st.SearchStrategy[str]:
    return st.text(CHARACTERS, min_size=min_size, max_size=max_size)


# JSON as protobuf's Struct carries it: numbers are doubles (integers up to 2**53 survive).
scalars = (
    st.none()
    | st.booleans()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(-(2**53), 2**53)
    | texts()
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts(max_size=6), inner, max_size=4),
    max_leaves=16,
)
label_values = st.booleans() | st.integers(-(2**53), 2**53) | texts()
json_objects = st.dictionaries(texts(max_size=8), json_values, max_size=5)
words = st.text(st.characters(blacklist_categories=("Cs", "Cc")), min_size=1, max_size=16)
STATE_TYPES = [value for value in state_pb2.StateType.values() if value != state_pb2.STATE_TYPE_UNSPECIFIED]


def _struct(value: dict) -> Struct:
    message = Struct()
    message.update(value)
    return message


def _value(value) -> Value:
    message = Struct()
    message.update({"v": value})
    return message.fields["v"]


@pytest.fixture
def frozen_clock(monkeypatch):
    """One `now` for the list and the get (a RUNNING run's estimated run time grows)."""
    moment = clock.now()
    monkeypatch.setattr(clock, "now", lambda: moment)


@pytest.mark.slow  # 15 random runs created, listed and read on each database: seconds
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    parameters=json_objects,
    context=json_objects,
    labels=st.dictionaries(texts(min_size=1, max_size=8), label_values, max_size=4),
    job_variables=json_objects,
    tags=st.lists(words, max_size=4, unique=True),
    name=words,
    state_type=st.sampled_from(STATE_TYPES),
    message=st.none() | words,
    data=st.none() | json_values,
)
async def test_a_listed_run_is_the_run_get_reads(
    flows, runs, unique, frozen_clock, parameters, context, labels, job_variables, tags, name, state_type, message, data
):
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"list-conversion-{unique}"))).flow
    created = await runs.CreateFlowRun(
        runs_pb.CreateFlowRunRequest(
            flow_id=flow.id,
            name=name,
            parameters=_struct(parameters),
            context=_struct(context),
            labels=_struct(labels),
            job_variables=_struct(job_variables),
            tags=tags,
        )
    )
    run_id = created.flow_run.id
    state = state_pb2.StateCreate(type=state_type)
    if message is not None:
        state.message = message
    if data is not None:
        state.data.CopyFrom(_value(data))
    await runs.SetFlowRunState(runs_pb.SetFlowRunStateRequest(flow_run_id=run_id, state=state, force=True))

    got = (await runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run_id))).flow_run
    listed = await runs.ListFlowRuns(
        runs_pb.ListFlowRunsRequest(flow_run_filter=filters_pb2.FlowRunFilter(id=filters_pb2.IdFilter(any=[run_id])))
    )
    assert list(listed.flow_runs) == [got]


# The latest and earliest times a protobuf Timestamp holds in microseconds: PostgreSQL
# stores them as infinity and -infinity (asyncpg binds datetime.max and min so), which
# asyncpg reads back as naive datetimes.
EDGE_TIMES = ["9999-12-31T23:59:59.999999Z", "0001-01-01T00:00:00Z"]


@pytest.mark.parametrize("scheduled", EDGE_TIMES, ids=["latest", "earliest"])
async def test_a_run_scheduled_at_the_edge_of_time_lists_as_get_reads_it(flows, runs, unique, frozen_clock, scheduled):
    """Its expected start time (stored as +-infinity on PostgreSQL) is listed as
    GetFlowRun reads it, in UTC: the list's rows are fetched through the driver, where no
    column type attaches UTC to a naive datetime."""
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"edge-of-time-{unique}"))).flow
    state = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED)
    state.state_details.scheduled_time.FromJsonString(scheduled)
    request = runs_pb.CreateFlowRunRequest(flow_id=flow.id, state=state)
    run_id = (await runs.CreateFlowRun(request)).flow_run.id

    got = (await runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run_id))).flow_run
    assert got.expected_start_time.ToJsonString() == scheduled
    listed = await runs.ListFlowRuns(
        runs_pb.ListFlowRunsRequest(flow_run_filter=filters_pb2.FlowRunFilter(id=filters_pb2.IdFilter(any=[run_id])))
    )
    assert list(listed.flow_runs) == [got]


# -- the page decoder --------------------------------------------------------------------

Row = namedtuple("Row", ["id", "parameters", "name", "current_state_data", "labels"])


def _postgres_text(value) -> str | None:
    """JSON text as PostgreSQL writes jsonb: spaces after ':' and ',', non-ASCII as is."""
    return json.dumps(value, ensure_ascii=False)


@settings(max_examples=200)
@given(st.lists(st.tuples(json_values, st.none() | json_values, json_objects), max_size=6))
def test_a_page_decodes_as_each_value_decoded_alone(values):
    rows = [
        Row(f"id-{n}", _postgres_text(parameters), f"name-{n}", None if data is None else _postgres_text(data), None)
        for n, (parameters, data, _) in enumerate(values)
    ] + [Row("sql-null", None, "x", "null", _postgres_text(labels)) for _, _, labels in values[:1]]
    decoded = _decode_page(list(Row._fields), rows)
    expected = [
        {
            "id": row.id,
            "parameters": None if row.parameters is None else json.loads(row.parameters),
            "name": row.name,
            "current_state_data": None if row.current_state_data is None else json.loads(row.current_state_data),
            "labels": None if row.labels is None else json.loads(row.labels),
        }
        for row in rows
    ]
    assert decoded == expected
    assert repr(decoded) == repr(expected)  # the same types: floats stay floats


# -- the quick bound -----------------------------------------------------------------------


blobs = st.integers(0, 400).flatmap(lambda size: st.binary(min_size=size, max_size=size))


@settings(max_examples=200)
@given(st.lists(json_values | blobs | st.datetimes(timezones=st.just(UTC)), max_size=10), blobs)
def test_the_quick_bound_covers_bytes_and_times_without_formatting_them(values, blob):
    row = [*values, blob]
    assert quick_bound(row) >= _ROW_OVERHEAD + sum(estimated_bytes(value) for value in row)


@settings(max_examples=300)
@given(json_values, st.booleans(), st.booleans())
def test_the_quick_bound_of_a_json_text_covers_its_value(value, ascii_only, compact):
    """A JSON column fetched as text is weighed as that text, never decoded for it, in
    any spacing and escaping PostgreSQL (spaces, UTF-8 as is) or SQLite (Python's json)
    writes it."""
    text = json.dumps(value, ensure_ascii=ascii_only, separators=(",", ":") if compact else None)
    assert quick_bound([text]) >= _ROW_OVERHEAD + estimated_bytes(value)


def test_a_time_costs_the_quick_bound_no_more_than_a_number():
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    assert quick_bound([moment]) == quick_bound([0])


@pytest.mark.pgbouncer
async def test_every_page_of_a_listing_reads_alike_on_every_connection(flows, runs, unique):
    """The listing's statement is compiled once per query and only the page values are
    bound again: page after page every run comes exactly once, and the same again on a
    second pass (the cached statement reused with the first page's values would repeat
    the first page), on both databases and behind pgbouncer."""
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"pages-{unique}"))).flow
    created = set()
    for _ in range(25):
        created.add((await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run.id)
    only_flow = filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow.id]))
    for _ in range(2):
        seen: list[str] = []
        token = ""
        while True:
            page = await runs.ListFlowRuns(
                runs_pb.ListFlowRunsRequest(flow_run_filter=only_flow, page_size=4, page_token=token)
            )
            seen.extend(run.id for run in page.flow_runs)
            token = page.next_page_token
            if not token:
                break
        assert sorted(seen) == sorted(created)
