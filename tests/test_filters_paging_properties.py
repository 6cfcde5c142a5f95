"""Property tests: ListFlowRuns / ListFlows / Count* against a Python model of the
documented filter, sort and paging semantics (filters.proto comments, spec 3.1-3.3, 3.7).

The module builds one random population per backend (flows and runs with awkward names,
tags from a small vocabulary, forced state histories, versions, idempotency keys,
deployment ids, work queue names) in a private database, so that the model sees the
whole table: a query that leaks a row it should not match fails here, and counts are
exact. Hypothesis then draws filters, sorts and page sizes against that population.
The population is drawn from FLOWRUN_TEST_SEED when set (it is printed otherwise), so a
failure can be replayed together with hypothesis's own reproduction line.

Model of the documented semantics (what every assertion below compares with):

- an unset filter, or one with no criteria, matches everything; criteria of one message
  combine by its operator (AND when unspecified); an empty list is "not given", except an
  empty `any` with `strict_any`, which matches nothing; inside a state filter a `type` or
  `name` with no criteria is left out (it does not make an OR true);
- `any`: the value is one of them (an unset value is none of them); `not_any`: the value
  is none of them (an unset value is none of them); `like`: case-insensitive substring
  with `%`, `_` and `\\` literal; `is_null`: the value is (not) unset;
- tags: `all` superset, `any` overlap, `is_null` "no tags";
- time bounds are inclusive and an unset time matches no bound; start_time bounds compare
  start time or, while unset, expected start time, and its is_null tests start time alone;
- a FlowFilter on ListFlowRuns keeps runs whose flow matches; a flow_run_filter on
  ListFlows (even an empty one) keeps flows with at least one matching run;
- every sort ends with the id in the same direction; runs without the sort time come last.
"""

from __future__ import annotations

import asyncio
import os
import random
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.protobuf.timestamp_pb2 import Timestamp
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from flowrun.server.app import build_app
from flowrun.v1 import (
    filters_pb2,
    flow_run_service_pb2,
    flow_run_service_pb2_grpc,
    flow_service_pb2,
    flow_service_pb2_grpc,
    state_pb2,
)
from tests.conftest import create_postgres_database, drop_postgres_database, settings_for

pytestmark = pytest.mark.slow  # hundreds of examples against the server: over half a minute

SEED = int(os.environ.get("FLOWRUN_TEST_SEED") or random.randrange(2**32))


def examples(count: int) -> settings:
    """Hypothesis settings for tests that call the server: no per-example deadline (the
    database sets the pace), and the module fixture is shared by every example on purpose."""
    return settings(
        max_examples=count,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
    )


AND, OR = filters_pb2.FILTER_OPERATOR_AND, filters_pb2.FILTER_OPERATOR_OR
OPERATORS = st.sampled_from([filters_pb2.FILTER_OPERATOR_UNSPECIFIED, AND, OR])
STRICT_ANY = st.sampled_from([False, False, False, True])  # sometimes, so empty `any` stays common
STATE_TYPES = [value for value in state_pb2.StateType.values() if value != state_pb2.STATE_TYPE_UNSPECIFIED]
FLOW_RUN_SORTS = list(filters_pb2.FlowRunSort.values())
FLOW_SORTS = list(filters_pb2.FlowSort.values())
# Every sort value, each its own test item, so that none is left to chance.
EVERY_FLOW_RUN_SORT = pytest.mark.parametrize("sort", FLOW_RUN_SORTS, ids=filters_pb2.FlowRunSort.Name)
EVERY_FLOW_SORT = pytest.mark.parametrize("sort", FLOW_SORTS, ids=filters_pb2.FlowSort.Name)
FAR_FUTURE = datetime.max.replace(tzinfo=UTC)
FAR_PAST = datetime.min.replace(tzinfo=UTC)

# Vocabularies: small, so that values repeat (ties, overlaps) and case and the LIKE
# metacharacters matter. Flow names may not contain "%" (CreateFlow rejects it).
FLOW_NAMES = ["Alpha", "alpha_2", "ALPHA-3", "beta", "Be_ta", "bexta", "gamma", "x_y_z", "xAy", "Delta"]
RUN_NAMES = ["Alpha", "alpha", "a_b", "aXb", "50%_off", "50x off", "A%B", "run_1", "RUN-1", "back\\slash", None]
LIKES = ["a", "A", "_", "%", "a_b", "%_", "50%", "x", "X", "run", "RUN_", "un-", "\\", "zzz", "-", "ph", "B"]
TAGS = ["a", "A", "b", "x_y", "xy", "50%"]
VERSIONS = [None, "1.0", "1.1", "v2", "V2"]
QUEUES = [None, "default", "Gpu_Queue", "gpu%q", "gpuXqueue"]
STATE_NAMES = [
    "Pending",
    "Running",
    "Completed",
    "Failed",
    "Scheduled",
    "Late",
    "AwaitingRetry",
    "Cancelled",
    "Crashed",
    "Paused",
    "Cancelling",
    "custom_name",
    "Custom%",
]


# -- what the server returned, as plain values ------------------------------------------


def _time(message: Any, name: str) -> datetime | None:
    return getattr(message, name).ToDatetime(tzinfo=UTC) if message.HasField(name) else None


@dataclass(frozen=True)
class Run:
    id: str
    flow_id: str
    name: str
    tags: tuple[str, ...]
    deployment_id: str | None
    work_queue_name: str | None
    flow_version: str | None
    idempotency_key: str | None
    parent_task_run_id: str | None
    state_type: int | None
    state_name: str | None
    start_time: datetime | None
    end_time: datetime | None
    expected_start_time: datetime | None
    next_scheduled_start_time: datetime | None

    @classmethod
    def of(cls, m) -> Run:
        return cls(
            id=m.id,
            flow_id=m.flow_id,
            name=m.name,
            tags=tuple(m.tags),
            deployment_id=m.deployment_id or None,
            work_queue_name=m.work_queue_name or None,
            flow_version=m.flow_version or None,
            idempotency_key=m.idempotency_key or None,
            parent_task_run_id=m.parent_task_run_id or None,
            state_type=m.state_type or None,
            state_name=m.state_name or None,
            start_time=_time(m, "start_time"),
            end_time=_time(m, "end_time"),
            expected_start_time=_time(m, "expected_start_time"),
            next_scheduled_start_time=_time(m, "next_scheduled_start_time"),
        )


@dataclass(frozen=True)
class Flow:
    id: str
    name: str
    tags: tuple[str, ...]
    created: datetime
    updated: datetime

    @classmethod
    def of(cls, m) -> Flow:
        return cls(m.id, m.name, tuple(m.tags), _time(m, "created"), _time(m, "updated"))


# -- the model: filters ------------------------------------------------------------------


def _combine(message: Any, results: list[bool]) -> bool:
    if not results:
        return True
    return any(results) if message.operator == OR else all(results)


def _is_null(message: Any) -> bool | None:
    return message.is_null if message.HasField("is_null") else None


def match_id(f: filters_pb2.IdFilter, value: str | None) -> bool:
    results = []
    if f.any or f.strict_any:
        results.append(value is not None and value in {v.lower() for v in f.any})
    if f.not_any:
        results.append(value is None or value not in {v.lower() for v in f.not_any})
    if _is_null(f) is not None:
        results.append((value is None) == f.is_null)
    return _combine(f, results)


def match_string(f: filters_pb2.StringFilter, value: str | None) -> bool:
    return _combine(f, string_criteria(f, value))


def string_criteria(f: filters_pb2.StringFilter, value: str | None) -> list[bool]:
    results = []
    if f.any or f.strict_any:
        results.append(value is not None and value in f.any)
    if f.not_any:
        results.append(value is None or value not in f.not_any)
    if f.like:
        results.append(value is not None and f.like.lower() in value.lower())
    if _is_null(f) is not None:
        results.append((value is None) == f.is_null)
    return results


def match_tags(f: filters_pb2.TagsFilter, tags: tuple[str, ...]) -> bool:
    results = []
    if f.all:
        results.append(set(f.all) <= set(tags))
    if f.any or f.strict_any:
        results.append(bool(set(f.any) & set(tags)))
    if _is_null(f) is not None:
        results.append((not tags) == f.is_null)
    return _combine(f, results)


def match_time(f: filters_pb2.TimeFilter, value: datetime | None, null_value: datetime | None = None) -> bool:
    results = []
    if f.HasField("before"):
        results.append(value is not None and value <= _time(f, "before"))
    if f.HasField("after"):
        results.append(value is not None and value >= _time(f, "after"))
    if _is_null(f) is not None:
        results.append((null_value is None) == f.is_null)
    return _combine(f, results)


def match_state(f: filters_pb2.FlowRunStateFilter, run: Run) -> bool:
    results = []
    if f.HasField("type"):
        type_results = []
        if f.type.any or f.type.strict_any:
            type_results.append(run.state_type in f.type.any)
        if f.type.not_any:
            type_results.append(run.state_type not in f.type.not_any)
        if type_results:  # an empty type is left out
            results.append(all(type_results))
    if f.HasField("name"):
        name_results = string_criteria(f.name, run.state_name)
        if name_results:  # an empty name is left out
            results.append(_combine(f.name, name_results))
    return _combine(f, results)


def match_created_by(f: filters_pb2.CreatedByFilter, run: Run) -> bool:
    # The API cannot set created_by: every run has none.
    results = []
    if f.id:
        results.append(False)
    if f.type:
        results.append(False)
    if _is_null(f) is not None:
        results.append(f.is_null)
    return _combine(f, results)


def match_flow_run(f: filters_pb2.FlowRunFilter, run: Run) -> bool:
    checks: dict[str, Callable[[Any], bool]] = {
        "id": lambda s: match_id(s, run.id),
        "name": lambda s: match_string(s, run.name),
        "tags": lambda s: match_tags(s, run.tags),
        "deployment_id": lambda s: match_id(s, run.deployment_id),
        "work_queue_name": lambda s: match_string(s, run.work_queue_name),
        "state": lambda s: match_state(s, run),
        "flow_version": lambda s: match_string(s, run.flow_version),
        "start_time": lambda s: match_time(s, run.start_time or run.expected_start_time, run.start_time),
        "end_time": lambda s: match_time(s, run.end_time, run.end_time),
        "expected_start_time": lambda s: match_time(s, run.expected_start_time, run.expected_start_time),
        "next_scheduled_start_time": lambda s: match_time(
            s, run.next_scheduled_start_time, run.next_scheduled_start_time
        ),
        # No task runs exist through this API, so no run is anyone's subflow.
        "parent_flow_run_id": lambda s: not s.any,
        "parent_task_run_id": lambda s: match_id(s, run.parent_task_run_id),
        "idempotency_key": lambda s: match_string(s, run.idempotency_key),
        "created_by": lambda s: match_created_by(s, run),
        "flow_id": lambda s: match_id(s, run.flow_id),
    }
    return _combine(f, [check(getattr(f, name)) for name, check in checks.items() if f.HasField(name)])


def match_flow(f: filters_pb2.FlowFilter, flow: Flow) -> bool:
    results = []
    if f.HasField("id"):
        results.append(match_id(f.id, flow.id))
    if f.HasField("name"):
        results.append(match_string(f.name, flow.name))
    if f.HasField("tags"):
        results.append(match_tags(f.tags, flow.tags))
    return _combine(f, results)


# -- the model: sorts -----------------------------------------------------------------------


def _run_key(sort: int) -> tuple[Callable[[Run], Any], bool]:
    """(key, descending). Times missing from a run sort last in either direction."""
    S = filters_pb2

    def time_key(get: Callable[[Run], datetime | None], descending: bool):
        return (lambda r: get(r) or (FAR_PAST if descending else FAR_FUTURE)), descending

    return {
        S.FLOW_RUN_SORT_UNSPECIFIED: ((lambda r: r.id), True),
        S.FLOW_RUN_SORT_ID_DESC: ((lambda r: r.id), True),
        S.FLOW_RUN_SORT_START_TIME_ASC: time_key(lambda r: r.start_time or r.expected_start_time, False),
        S.FLOW_RUN_SORT_START_TIME_DESC: time_key(lambda r: r.start_time or r.expected_start_time, True),
        S.FLOW_RUN_SORT_EXPECTED_START_TIME_ASC: time_key(lambda r: r.expected_start_time, False),
        S.FLOW_RUN_SORT_EXPECTED_START_TIME_DESC: time_key(lambda r: r.expected_start_time, True),
        S.FLOW_RUN_SORT_NAME_ASC: ((lambda r: r.name), False),
        S.FLOW_RUN_SORT_NAME_DESC: ((lambda r: r.name), True),
        S.FLOW_RUN_SORT_NEXT_SCHEDULED_START_TIME_ASC: time_key(lambda r: r.next_scheduled_start_time, False),
        S.FLOW_RUN_SORT_END_TIME_DESC: time_key(lambda r: r.end_time, True),
    }[sort]


def _flow_key(sort: int) -> tuple[Callable[[Flow], Any], bool]:
    S = filters_pb2
    return {
        S.FLOW_SORT_UNSPECIFIED: ((lambda f: f.name), False),
        S.FLOW_SORT_NAME_ASC: ((lambda f: f.name), False),
        S.FLOW_SORT_NAME_DESC: ((lambda f: f.name), True),
        S.FLOW_SORT_CREATED_DESC: ((lambda f: f.created), True),
        S.FLOW_SORT_UPDATED_DESC: ((lambda f: f.updated), True),
    }[sort]


def sort_runs(runs: list[Run], sort: int) -> list[Run]:
    key, descending = _run_key(sort)
    return sorted(runs, key=lambda r: (key(r), r.id), reverse=descending)


def sort_flows(flows: list[Flow], sort: int) -> list[Flow]:
    key, descending = _flow_key(sort)
    return sorted(flows, key=lambda f: (key(f), f.id), reverse=descending)


def is_ordered(items: list, order: Callable[[list, int], list], sort: int) -> bool:
    return [i.id for i in order(items, sort)] == [i.id for i in items]


# -- calling the server ------------------------------------------------------------------


def _filters(flow_filter=None, flow_run_filter=None) -> dict[str, Any]:
    kwargs = {}
    if flow_filter is not None:
        kwargs["flow_filter"] = flow_filter
    if flow_run_filter is not None:
        kwargs["flow_run_filter"] = flow_run_filter
    return kwargs


@dataclass
class Pages:
    items: list
    sizes: list[int]
    tokens: list[str]


async def page_runs(world: World, *, page_size: int, sort: int = 0, offset: int = 0, **filters) -> Pages:
    """Follows next_page_token to the end (offset applies to the first call only)."""
    pages = Pages([], [], [])
    token = ""
    while True:
        request = flow_run_service_pb2.ListFlowRunsRequest(
            sort=sort, page_size=page_size, page_token=token, offset=0 if token else offset, **filters
        )
        response = await world.runs.ListFlowRuns(request)
        pages.items.extend(Run.of(m) for m in response.flow_runs)
        pages.sizes.append(len(response.flow_runs))
        pages.tokens.append(response.next_page_token)
        assert len(pages.sizes) < 500, "paging does not end"
        if not response.next_page_token:
            return pages
        token = response.next_page_token


async def page_flows(world: World, *, page_size: int, sort: int = 0, offset: int = 0, **filters) -> Pages:
    pages = Pages([], [], [])
    token = ""
    while True:
        request = flow_service_pb2.ListFlowsRequest(
            sort=sort, page_size=page_size, page_token=token, offset=0 if token else offset, **filters
        )
        response = await world.flows.ListFlows(request)
        pages.items.extend(Flow.of(m) for m in response.flows)
        pages.sizes.append(len(response.flows))
        pages.tokens.append(response.next_page_token)
        assert len(pages.sizes) < 500, "paging does not end"
        if not response.next_page_token:
            return pages
        token = response.next_page_token


def assert_well_formed(pages: Pages, page_size: int) -> None:
    assert all(size <= page_size for size in pages.sizes), pages.sizes
    assert pages.tokens[-1] == "", "the last page must have an empty next_page_token"
    assert all(pages.tokens[:-1]), "every page but the last carries a token"
    ids = [item.id for item in pages.items]
    assert len(ids) == len(set(ids)), "an item was returned twice"


# -- the population ------------------------------------------------------------------------


def _ts(when: datetime) -> Timestamp:
    message = Timestamp()
    message.FromDatetime(when)
    return message


@dataclass
class World:
    flows: flow_service_pb2_grpc.FlowServiceStub
    runs: flow_run_service_pb2_grpc.FlowRunServiceStub
    seed: int
    schedule_times: list[datetime]
    deployments: list[str]
    flow_ids: set[str] = field(default_factory=set)
    run_ids: set[str] = field(default_factory=set)
    _runs: list[Run] | None = None
    _flows: list[Flow] | None = None

    def __repr__(self) -> str:
        return f"World(FLOWRUN_TEST_SEED={self.seed}, {len(self.flow_ids)} flows, {len(self.run_ids)} runs)"

    def _repr_pretty_(self, printer, cycle) -> None:  # hypothesis's failure reports use this
        printer.text(repr(self))

    async def snapshot(self) -> tuple[list[Run], list[Flow]]:
        """Every run and flow as stored (read once per population change), inside a
        hypothesis example, where the population's seed becomes part of any failure."""
        note(f"population: FLOWRUN_TEST_SEED={self.seed}")
        return await self.read()

    async def read(self) -> tuple[list[Run], list[Flow]]:
        if self._runs is None or self._flows is None:
            self._runs = (await page_runs(self, page_size=200)).items
            self._flows = (await page_flows(self, page_size=200)).items
            assert {r.id for r in self._runs} == self.run_ids, (
                f"stored runs differ from created ones (seed {self.seed})"
            )
            assert {f.id for f in self._flows} == self.flow_ids, f"stored flows differ (seed {self.seed})"
        return self._runs, self._flows

    def changed(self) -> None:
        self._runs = self._flows = None

    async def create_run(self, rng: random.Random, flow_id: str, *, tags: list[str] | None = None) -> str:
        """One run with random attributes and a random forced state history; checks that
        what it asked for is what is stored."""
        name = rng.choice(RUN_NAMES)
        request = flow_run_service_pb2.CreateFlowRunRequest(
            flow_id=flow_id,
            name=name or "",
            tags=tags if tags is not None else rng.sample(TAGS, rng.randint(0, 3)),
            flow_version=rng.choice(VERSIONS) or "",
            work_queue_name=rng.choice(QUEUES) or "",
            deployment_id=rng.choice(self.deployments + [""] * 2),
            idempotency_key=f"key-{uuid.uuid4().hex[:6]}" if rng.random() < 0.3 else "",
        )
        first = rng.choice(["pending", "pending", "scheduled", "scheduled", "running"])
        if first == "scheduled":
            request.state.CopyFrom(self._scheduled(rng))
        elif first == "running":
            request.state.CopyFrom(state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING))
        created = (await self.runs.CreateFlowRun(request)).flow_run
        assert created.name == (name or created.name) and created.name
        assert list(created.tags) == list(request.tags)
        assert (created.flow_version, created.work_queue_name) == (request.flow_version, request.work_queue_name)
        assert (created.deployment_id, created.idempotency_key) == (request.deployment_id, request.idempotency_key)
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            state_type = rng.choice(STATE_TYPES)
            proposal = (
                self._scheduled(rng)
                if state_type == state_pb2.STATE_TYPE_SCHEDULED
                else state_pb2.StateCreate(type=state_type, name=rng.choice(["", "", "", "custom_name", "Custom%"]))
            )
            await self.runs.SetFlowRunState(
                flow_run_service_pb2.SetFlowRunStateRequest(flow_run_id=created.id, state=proposal, force=True)
            )
        self.run_ids.add(created.id)
        self.changed()
        return created.id

    def _scheduled(self, rng: random.Random) -> state_pb2.StateCreate:
        state = state_pb2.StateCreate(
            type=state_pb2.STATE_TYPE_SCHEDULED, name=rng.choice(["", "", "Late", "AwaitingRetry"])
        )
        state.state_details.scheduled_time.CopyFrom(_ts(rng.choice(self.schedule_times)))
        return state

    async def delete_runs(self, ids: list[str]) -> None:
        for run_id in ids:
            await self.runs.DeleteFlowRun(flow_run_service_pb2.DeleteFlowRunRequest(flow_run_id=run_id))
            self.run_ids.discard(run_id)
        self.changed()


async def build_population(world: World, rng: random.Random) -> None:
    flow_names = rng.sample(FLOW_NAMES, rng.randint(5, 7))
    flow_ids = []
    for name in flow_names:
        flow = (
            await world.flows.CreateFlow(
                flow_service_pb2.CreateFlowRequest(name=name, tags=rng.sample(TAGS, rng.randint(0, 3)))
            )
        ).flow
        flow_ids.append(flow.id)
        world.flow_ids.add(flow.id)
    # The last flow keeps no runs: ListFlows with a flow_run_filter must drop it.
    with_runs = flow_ids[:-1]
    semaphore = asyncio.Semaphore(8)

    async def one(run_rng: random.Random) -> None:
        async with semaphore:
            await world.create_run(run_rng, run_rng.choice(with_runs))

    count = rng.randint(25, 32)
    await asyncio.gather(*(one(random.Random(rng.random())) for _ in range(count)))


@pytest.fixture(scope="module")
async def world(database_url, tmp_path_factory):
    """A private server and database of the session's backend, with a random population."""
    if database_url.startswith("sqlite"):
        url, pg_name = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('properties')}/properties.db", None
    else:
        pg_name, url = await create_postgres_database()
    app = await build_app(settings_for(url))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            base = datetime.now(UTC).replace(microsecond=0)
            world = World(
                flows=flow_service_pb2_grpc.FlowServiceStub(channel),
                runs=flow_run_service_pb2_grpc.FlowRunServiceStub(channel),
                seed=SEED,
                # Few distinct scheduled times, so that time sorts have ties.
                schedule_times=[base + timedelta(hours=h) for h in (-48, -2, -1, 1, 3)],
                deployments=[str(uuid.uuid4()) for _ in range(3)],
            )
            print(f"population seed: FLOWRUN_TEST_SEED={SEED}")
            await build_population(world, random.Random(SEED))
            await world.read()
            yield world
    finally:
        await app.stop(grace=0)
        if pg_name is not None:
            await drop_postgres_database(pg_name)


# -- strategies ----------------------------------------------------------------------------


def _maybe_upper(value: str) -> st.SearchStrategy[str]:
    return st.sampled_from([value, value.upper()])


@st.composite
def id_filters(draw, candidates: list[str]) -> filters_pb2.IdFilter:
    pick = st.sampled_from(candidates).flatmap(_maybe_upper)
    f = filters_pb2.IdFilter(operator=draw(OPERATORS))
    if draw(st.booleans()):
        f.any.extend(draw(st.lists(pick, min_size=1, max_size=4)))
    if draw(st.booleans()):
        f.not_any.extend(draw(st.lists(pick, min_size=1, max_size=3)))
    is_null = draw(st.sampled_from([None, None, True, False]))
    if is_null is not None:
        f.is_null = is_null
    f.strict_any = draw(STRICT_ANY)
    return f


@st.composite
def string_filters(draw, values: list[str | None]) -> filters_pb2.StringFilter:
    pick = st.sampled_from([v or "" for v in values])
    f = filters_pb2.StringFilter(operator=draw(OPERATORS))
    if draw(st.booleans()):
        f.any.extend(draw(st.lists(pick, min_size=1, max_size=3)))
    if draw(st.booleans()):
        f.not_any.extend(draw(st.lists(pick, min_size=1, max_size=3)))
    if draw(st.booleans()):
        f.like = draw(st.sampled_from(LIKES + [v for v in values if v]))
    is_null = draw(st.sampled_from([None, None, True, False]))
    if is_null is not None:
        f.is_null = is_null
    f.strict_any = draw(STRICT_ANY)
    return f


@st.composite
def tags_filters(draw) -> filters_pb2.TagsFilter:
    pick = st.sampled_from(TAGS + ["missing"])
    f = filters_pb2.TagsFilter(operator=draw(OPERATORS))
    if draw(st.booleans()):
        f.all.extend(draw(st.lists(pick, min_size=1, max_size=3)))
    if draw(st.booleans()):
        f.any.extend(draw(st.lists(pick, min_size=1, max_size=3)))
    is_null = draw(st.sampled_from([None, None, True, False]))
    if is_null is not None:
        f.is_null = is_null
    f.strict_any = draw(STRICT_ANY)
    return f


@st.composite
def time_filters(draw, times: list[datetime]) -> filters_pb2.TimeFilter:
    pick = st.sampled_from(times)
    f = filters_pb2.TimeFilter(operator=draw(OPERATORS))
    if draw(st.booleans()):
        f.before.CopyFrom(_ts(draw(pick)))
    if draw(st.booleans()):
        f.after.CopyFrom(_ts(draw(pick)))
    is_null = draw(st.sampled_from([None, None, True, False]))
    if is_null is not None:
        f.is_null = is_null
    return f


@st.composite
def state_filters(draw) -> filters_pb2.FlowRunStateFilter:
    f = filters_pb2.FlowRunStateFilter(operator=draw(OPERATORS))
    if draw(st.booleans()):
        f.type.SetInParent()
        if draw(st.booleans()):
            f.type.any.extend(draw(st.lists(st.sampled_from(STATE_TYPES), min_size=1, max_size=3)))
        if draw(st.booleans()):
            f.type.not_any.extend(draw(st.lists(st.sampled_from(STATE_TYPES), min_size=1, max_size=3)))
        f.type.strict_any = draw(STRICT_ANY)
    if draw(st.booleans()):
        f.name.CopyFrom(draw(string_filters(STATE_NAMES)))
    return f


@st.composite
def state_filters_with_empty_parts(draw) -> filters_pb2.FlowRunStateFilter:
    """Like state_filters, but each side is often present with no criteria, or a strict
    empty `any`, and OR is as likely as AND."""
    f = filters_pb2.FlowRunStateFilter(operator=draw(st.sampled_from([AND, OR])))
    types = st.lists(st.sampled_from(STATE_TYPES), min_size=1, max_size=3)
    kind = draw(st.sampled_from(["absent", "empty", "strict-empty", "any", "not_any"]))
    if kind != "absent":
        f.type.SetInParent()
        f.type.strict_any = kind == "strict-empty"
        if kind in ("any", "not_any"):
            getattr(f.type, kind).extend(draw(types))
    kind = draw(st.sampled_from(["absent", "empty", "operator-only", "strict-empty", "any"]))
    if kind != "absent":
        f.name.SetInParent()
        f.name.operator = OR if kind == "operator-only" else filters_pb2.FILTER_OPERATOR_UNSPECIFIED
        f.name.strict_any = kind == "strict-empty"
        if kind == "any":
            f.name.any.extend(draw(st.lists(st.sampled_from(STATE_NAMES), min_size=1, max_size=2)))
    return f


@st.composite
def created_by_filters(draw) -> filters_pb2.CreatedByFilter:
    f = filters_pb2.CreatedByFilter(operator=draw(OPERATORS))
    if draw(st.booleans()):
        f.id.append(str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))))
    if draw(st.booleans()):
        f.type.append(draw(st.sampled_from(["DEPLOYMENT", "AUTOMATION"])))
    is_null = draw(st.sampled_from([None, True, False]))
    if is_null is not None:
        f.is_null = is_null
    return f


def _time_vocabulary(runs: list[Run]) -> list[datetime]:
    """Every stored time, one microsecond either side (bounds are inclusive), and far ends."""
    times = set()
    for run in runs:
        for when in (run.start_time, run.end_time, run.expected_start_time, run.next_scheduled_start_time):
            if when is not None:
                times.update({when, when - timedelta(microseconds=1), when + timedelta(microseconds=1)})
    lowest, highest = min(times), max(times)
    return sorted(times | {lowest - timedelta(days=1), highest + timedelta(days=1)})


@st.composite
def flow_run_filters(draw, world: World, runs: list[Run], *, max_subfilters: int = 3) -> filters_pb2.FlowRunFilter:
    run_ids = sorted(r.id for r in runs)
    times = _time_vocabulary(runs)
    strangers = [str(uuid.UUID(int=n)) for n in (1, 2**127)]
    keys = sorted({r.idempotency_key for r in runs if r.idempotency_key})[:6] + ["key-none"]
    sub = {
        "id": lambda: id_filters(run_ids + strangers),
        "name": lambda: string_filters(RUN_NAMES + sorted({r.name for r in runs})[:3]),
        "tags": lambda: tags_filters(),
        "deployment_id": lambda: id_filters(world.deployments + strangers),
        "work_queue_name": lambda: string_filters(QUEUES),
        "state": lambda: state_filters(),
        "flow_version": lambda: string_filters(VERSIONS),
        "start_time": lambda: time_filters(times),
        "end_time": lambda: time_filters(times),
        "expected_start_time": lambda: time_filters(times),
        "next_scheduled_start_time": lambda: time_filters(times),
        "parent_flow_run_id": lambda: st.builds(
            lambda op, ids: filters_pb2.IdFilter(operator=op, any=ids),
            OPERATORS,
            st.lists(st.sampled_from(run_ids), max_size=2),
        ),
        "parent_task_run_id": lambda: id_filters(strangers),
        "idempotency_key": lambda: string_filters(keys),
        "created_by": lambda: created_by_filters(),
        "flow_id": lambda: id_filters(sorted(world.flow_ids) + strangers),
    }
    f = filters_pb2.FlowRunFilter(operator=draw(OPERATORS))
    for name in draw(st.lists(st.sampled_from(sorted(sub)), max_size=max_subfilters, unique=True)):
        getattr(f, name).CopyFrom(draw(sub[name]()))
        getattr(f, name).SetInParent()
    return f


@st.composite
def flow_filters(draw, world: World, flows: list[Flow]) -> filters_pb2.FlowFilter:
    f = filters_pb2.FlowFilter(operator=draw(OPERATORS))
    choices = {
        "id": lambda: id_filters(sorted(world.flow_ids) + [str(uuid.UUID(int=3))]),
        "name": lambda: string_filters(FLOW_NAMES),
        "tags": lambda: tags_filters(),
    }
    for name in draw(st.lists(st.sampled_from(sorted(choices)), max_size=2, unique=True)):
        getattr(f, name).CopyFrom(draw(choices[name]()))
        getattr(f, name).SetInParent()
    return f


@st.composite
def optional_filters(draw, world: World, runs: list[Run], flows: list[Flow]) -> dict[str, Any]:
    """Request filters: each of flow_filter and flow_run_filter absent or random."""
    flow_filter = draw(st.none() | flow_filters(world, flows))
    flow_run_filter = draw(st.none() | flow_run_filters(world, runs))
    return _filters(flow_filter, flow_run_filter)


def expected_runs(runs: list[Run], flows: list[Flow], filters: dict[str, Any]) -> list[Run]:
    flow_by_id = {f.id: f for f in flows}
    return [
        r
        for r in runs
        if ("flow_run_filter" not in filters or match_flow_run(filters["flow_run_filter"], r))
        and ("flow_filter" not in filters or match_flow(filters["flow_filter"], flow_by_id[r.flow_id]))
    ]


def expected_flows(runs: list[Run], flows: list[Flow], filters: dict[str, Any]) -> list[Flow]:
    result = []
    for flow in flows:
        if "flow_filter" in filters and not match_flow(filters["flow_filter"], flow):
            continue
        if "flow_run_filter" in filters and not any(
            match_flow_run(filters["flow_run_filter"], r) for r in runs if r.flow_id == flow.id
        ):
            continue
        result.append(flow)
    return result


def _ids(items) -> list[str]:
    return [item.id for item in items]


def record_selectivity(matched: int, total: int) -> None:
    """Shown by --hypothesis-show-statistics: how often filters match none, some or all."""
    event("matches " + ("none" if matched == 0 else "all" if matched == total else "some"))


# -- filters ---------------------------------------------------------------------------------


@examples(100)
@given(data=st.data())
async def test_list_and_count_flow_runs_match_the_model(world, data):
    runs, flows = await world.snapshot()
    filters = data.draw(optional_filters(world, runs, flows), label="filters")
    page_size = data.draw(st.sampled_from([200, 200, 7]), label="page_size")
    expected = expected_runs(runs, flows, filters)
    note(f"expected {len(expected)} of {len(runs)} runs")
    record_selectivity(len(expected), len(runs))

    pages = await page_runs(world, page_size=page_size, **filters)
    assert_well_formed(pages, page_size)
    assert set(_ids(pages.items)) == set(_ids(expected))
    count = await world.runs.CountFlowRuns(flow_run_service_pb2.CountFlowRunsRequest(**filters))
    assert count.count == len(pages.items)


@examples(40)
@given(data=st.data())
async def test_state_filters_match_the_model(world, data):
    """State filters alone, often with OR and a `type` or `name` that has no criteria
    (left out, not TRUE) or a strict empty `any` (nothing): rare in the mixed draws above."""
    runs, flows = await world.snapshot()
    state = data.draw(state_filters_with_empty_parts(), label="state")
    filters = _filters(None, filters_pb2.FlowRunFilter(state=state))
    expected = expected_runs(runs, flows, filters)
    record_selectivity(len(expected), len(runs))
    pages = await page_runs(world, page_size=200, **filters)
    assert set(_ids(pages.items)) == set(_ids(expected))


@examples(60)
@given(data=st.data())
async def test_list_and_count_flows_match_the_model(world, data):
    runs, flows = await world.snapshot()
    filters = data.draw(optional_filters(world, runs, flows), label="filters")
    expected = expected_flows(runs, flows, filters)
    note(f"expected {len(expected)} of {len(flows)} flows")
    record_selectivity(len(expected), len(flows))

    pages = await page_flows(world, page_size=data.draw(st.sampled_from([200, 3]), label="page_size"), **filters)
    assert set(_ids(pages.items)) == set(_ids(expected))
    assert len(pages.items) == len(expected)
    count = await world.flows.CountFlows(flow_service_pb2.CountFlowsRequest(**filters))
    assert count.count == len(expected)


@examples(25)
@given(data=st.data())
async def test_an_empty_sub_filter_makes_an_or_true(world, data):
    """Documented on FILTER_OPERATOR_OR: a set sub-filter with no criteria matches
    everything, so the whole OR does; under AND it changes nothing."""
    runs, flows = await world.snapshot()
    f = data.draw(flow_run_filters(world, runs, max_subfilters=2), label="flow_run_filter")
    empty = data.draw(st.sampled_from(["name", "tags", "state", "start_time", "id", "flow_version"]), label="empty")
    if f.HasField(empty):
        f.ClearField(empty)
    getattr(f, empty).SetInParent()
    result = await page_runs(world, page_size=200, flow_run_filter=f)
    if f.operator == OR:
        assert set(_ids(result.items)) == set(_ids(runs))
    else:
        assert set(_ids(result.items)) == set(_ids(expected_runs(runs, flows, {"flow_run_filter": f})))


# -- paging and order ----------------------------------------------------------------------


@EVERY_FLOW_RUN_SORT
@examples(5)
@given(data=st.data())
async def test_flow_run_pages_cover_the_ordered_result_exactly_once(world, sort, data):
    runs, flows = await world.snapshot()
    page_size = data.draw(st.integers(1, 7), label="page_size")
    filters = data.draw(st.just({}) | optional_filters(world, runs, flows), label="filters")

    whole = await world.runs.ListFlowRuns(flow_run_service_pb2.ListFlowRunsRequest(sort=sort, **filters))
    assert whole.next_page_token == "", "fewer than 200 rows fit one default page"
    unpaged = [Run.of(m) for m in whole.flow_runs]
    assert _ids(unpaged) == _ids(sort_runs(expected_runs(runs, flows, filters), sort))

    pages = await page_runs(world, page_size=page_size, sort=sort, **filters)
    assert_well_formed(pages, page_size)
    assert _ids(pages.items) == _ids(unpaged)


@EVERY_FLOW_SORT
@examples(6)
@given(data=st.data())
async def test_flow_pages_cover_the_ordered_result_exactly_once(world, sort, data):
    runs, flows = await world.snapshot()
    page_size = data.draw(st.integers(1, 7), label="page_size")
    filters = data.draw(st.just({}) | optional_filters(world, runs, flows), label="filters")

    whole = await world.flows.ListFlows(flow_service_pb2.ListFlowsRequest(sort=sort, **filters))
    assert whole.next_page_token == ""
    unpaged = [Flow.of(m) for m in whole.flows]
    assert _ids(unpaged) == _ids(sort_flows(expected_flows(runs, flows, filters), sort))

    pages = await page_flows(world, page_size=page_size, sort=sort, **filters)
    assert_well_formed(pages, page_size)
    assert _ids(pages.items) == _ids(unpaged)


# At least one insert after the first page, then up to two after each of the next four.
INSERTS_PER_GAP = st.tuples(st.integers(1, 2), st.lists(st.integers(0, 2), max_size=4)).map(lambda t: [t[0], *t[1]])


@EVERY_FLOW_RUN_SORT
@examples(3)
@given(data=st.data())
async def test_inserting_runs_between_pages_never_repeats_or_skips(world, sort, data):
    """Rows inserted while a client pages (anywhere in the order: random names and
    scheduled times) never make an already-seen run come back nor hide one that existed
    when paging began; what is returned stays in order."""
    runs, _ = await world.snapshot()
    page_size = data.draw(st.integers(1, 7), label="page_size")
    inserts = data.draw(INSERTS_PER_GAP, label="inserts per gap")
    rng = random.Random(data.draw(st.integers(0, 2**32), label="insert seed"))
    # Scope to runs tagged "b" (the inserted ones carry it too), or to everything.
    filters = data.draw(st.sampled_from([{}, {"flow_run_filter": filters_pb2.FlowRunFilter(tags={"all": ["b"]})}]))
    before = [r for r in runs if not filters or "b" in r.tags]

    seen: list[Run] = []
    inserted: list[str] = []
    token, gap = "", 0
    try:
        while True:
            request = flow_run_service_pb2.ListFlowRunsRequest(
                sort=sort, page_size=page_size, page_token=token, **filters
            )
            response = await world.runs.ListFlowRuns(request)
            seen.extend(Run.of(m) for m in response.flow_runs)
            if not response.next_page_token:
                break
            token = response.next_page_token
            for _ in range(inserts[gap] if gap < len(inserts) else 0):
                flow_id = rng.choice(sorted(world.flow_ids))
                inserted.append(await world.create_run(rng, flow_id, tags=["b"]))
            gap += 1
    finally:
        await world.delete_runs(inserted)

    event(f"runs inserted while paging: {'none' if not inserted else 'some'}")
    ids = _ids(seen)
    assert len(ids) == len(set(ids)), "a run was returned twice"
    assert set(_ids(before)) <= set(ids), "a run that existed when paging began was skipped"
    assert set(ids) <= set(_ids(before)) | set(inserted)
    assert is_ordered(seen, sort_runs, sort), "pages are out of order"


@EVERY_FLOW_SORT
@examples(3)
@given(data=st.data())
async def test_inserting_flows_between_pages_never_repeats_or_skips(world, sort, data):
    _, flows = await world.snapshot()
    page_size = data.draw(st.integers(1, 4), label="page_size")
    inserts = data.draw(INSERTS_PER_GAP, label="inserts per gap")
    names = st.text(alphabet="abcXYZ_-0", min_size=1, max_size=6)

    seen: list[Flow] = []
    inserted: list[str] = []
    token, gap = "", 0
    try:
        while True:
            response = await world.flows.ListFlows(
                flow_service_pb2.ListFlowsRequest(sort=sort, page_size=page_size, page_token=token)
            )
            seen.extend(Flow.of(m) for m in response.flows)
            if not response.next_page_token:
                break
            token = response.next_page_token
            for _ in range(inserts[gap] if gap < len(inserts) else 0):
                name = f"{data.draw(names, label='new flow name')}-{uuid.uuid4().hex[:4]}"
                created = await world.flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=name))
                inserted.append(created.flow.id)
            gap += 1
    finally:
        for flow_id in inserted:
            await world.flows.DeleteFlow(flow_service_pb2.DeleteFlowRequest(flow_id=flow_id))
        world.changed()

    event(f"flows inserted while paging: {'none' if not inserted else 'some'}")
    ids = _ids(seen)
    assert len(ids) == len(set(ids)), "a flow was returned twice"
    assert set(_ids(flows)) <= set(ids), "a flow that existed when paging began was skipped"
    assert set(ids) <= set(_ids(flows)) | set(inserted)
    assert is_ordered(seen, sort_flows, sort), "pages are out of order"


# -- offset / limit ---------------------------------------------------------------------------


@examples(30)
@given(data=st.data())
async def test_offset_and_limit_slice_the_ordered_runs(world, data):
    runs, flows = await world.snapshot()
    sort = data.draw(st.sampled_from(FLOW_RUN_SORTS), label="sort")
    filters = data.draw(st.just({}) | optional_filters(world, runs, flows), label="filters")
    offset = data.draw(st.integers(0, len(runs) + 2), label="offset")
    limit = data.draw(st.integers(0, len(runs) + 2), label="limit")
    ordered = sort_runs(expected_runs(runs, flows, filters), sort)

    response = await world.runs.ListFlowRuns(
        flow_run_service_pb2.ListFlowRunsRequest(sort=sort, offset=offset, limit=limit, **filters)
    )
    assert _ids(Run.of(m) for m in response.flow_runs) == _ids(ordered[offset : offset + limit])
    if limit == 0:
        assert len(response.flow_runs) == 0

    # An offset on the first page, then page tokens: the rest of the order from there.
    page_size = data.draw(st.integers(1, 7), label="page_size")
    pages = await page_runs(world, page_size=page_size, sort=sort, offset=offset, **filters)
    assert_well_formed(pages, page_size)
    assert _ids(pages.items) == _ids(ordered[offset:])


@examples(20)
@given(data=st.data())
async def test_offset_and_limit_slice_the_ordered_flows(world, data):
    runs, flows = await world.snapshot()
    sort = data.draw(st.sampled_from(FLOW_SORTS), label="sort")
    filters = data.draw(st.just({}) | optional_filters(world, runs, flows), label="filters")
    offset = data.draw(st.integers(0, len(flows) + 2), label="offset")
    limit = data.draw(st.integers(0, len(flows) + 2), label="limit")
    ordered = sort_flows(expected_flows(runs, flows, filters), sort)

    response = await world.flows.ListFlows(
        flow_service_pb2.ListFlowsRequest(sort=sort, offset=offset, limit=limit, **filters)
    )
    assert _ids(Flow.of(m) for m in response.flows) == _ids(ordered[offset : offset + limit])
