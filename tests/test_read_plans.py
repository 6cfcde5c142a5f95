"""ListFlowRuns and CountFlowRuns read through indexes (PostgreSQL's EXPLAIN), whatever
the common filter: flow, deployment, state type, tags, expected start time, start time,
and the usual pairs of them. On a table big enough for the planner to prefer an index to
reading everything, each list (its first page, and a later page through its page token)
and each count uses the index meant for it and never a sequential scan of flow_run, so
these reads cost what they return, not the size of the history (issue 15, item 5).

The statements are the repository's own (tests/helpers/plans.py captures what it sends),
so a change of query shape that loses an index fails here. bench/lifecycle.py --mode
read measures the same filters over 1,000,000 runs."""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass
from datetime import timedelta

import pytest

from flowrun.server import clock
from flowrun.server.app import App, build_app
from flowrun.server.domain.filters import (
    FlowRunFilter,
    FlowRunSort,
    FlowRunStateFilter,
    IdFilter,
    ListFilters,
    PageRequest,
    StateTypeFilter,
    TagsFilter,
    TimeFilter,
)
from flowrun.server.domain.states import StateType
from tests.conftest import BACKENDS, fresh_database, settings_for
from tests.helpers.plans import Plan, plan_of

pytestmark = pytest.mark.slow  # a database of its own with RUNS runs: a few seconds

# The smallest table on which the planner already picks each index below (fewer rows and
# it rightly prefers reading the few pages of the whole table).
RUNS = 20_000
FLOWS = 20
DEPLOYMENTS_PER_FLOW = 5
PAGE = 200
SECRET = "read-plans-page-token-secret-0123456789"


def _md5_uuid(text: str) -> str:
    """The id POPULATE gives `text`: md5(text)::uuid."""
    return str(uuid.UUID(hashlib.md5(text.encode()).hexdigest()))


# Runs shaped like bench/seeding.py's (a scheduler-heavy server: most runs finished, a
# fifth scheduled, a fifth started by hand with no deployment), spread over 30 days.
POPULATE = """
SELECT setseed(0.15);
INSERT INTO flow (id, created, updated, name, tags)
SELECT md5('flow-' || n)::uuid, now(), now(), 'plans-' || n, '[]'
FROM generate_series(0, $1::int - 1) AS n;
INSERT INTO flow_run (id, created, updated, name, flow_id, deployment_id, state_type, state_name,
    run_count, total_run_time, parameters, context, empirical_policy, tags, auto_scheduled,
    expected_start_time, start_time)
SELECT md5(n::text)::uuid, expected, expected, 'run-' || n, md5('flow-' || (n % $1::int))::uuid,
    CASE WHEN by_hand THEN NULL
         ELSE md5('deployment-' || (n % $1::int + $1::int * deployment_of_flow))::uuid END,
    state, initcap(state), 1, 0, '{}', '{}', '{}', tags, false,
    expected, CASE WHEN state IN ('SCHEDULED', 'PENDING') THEN NULL ELSE expected + interval '5 seconds' END
FROM (
    SELECT n,
        now() - random() * interval '30 days' AS expected,
        random() < 0.2 AS by_hand,
        floor(random() * $2::int)::int AS deployment_of_flow,
        CASE WHEN s < 0.62 THEN 'COMPLETED' WHEN s < 0.70 THEN 'FAILED' WHEN s < 0.73 THEN 'CANCELLED'
             WHEN s < 0.74 THEN 'CRASHED' WHEN s < 0.78 THEN 'RUNNING' WHEN s < 0.80 THEN 'PENDING'
             ELSE 'SCHEDULED' END AS state,
        CASE WHEN t < 0.005 THEN '["prod", "etl"]' WHEN t < 0.01 THEN '["prod", "etl", "nightly"]'
             WHEN t < 0.25 THEN '["prod"]' WHEN t < 0.45 THEN '["dev", "etl"]' WHEN t < 0.6 THEN '["ml"]'
             ELSE '[]' END::jsonb AS tags
    FROM (SELECT n, random() AS s, random() AS t FROM generate_series(1, $3::int) AS n) AS draws
) AS runs;
ANALYZE flow;
ANALYZE flow_run;
"""


@pytest.fixture(scope="module")
async def populated(tmp_path_factory):
    async with fresh_database("postgres", tmp_path_factory.mktemp("read-plans")) as url:
        app = await build_app(settings_for(url))
        try:
            async with app.database.unit_of_work(write=True) as uow:
                assert uow.driver is not None
                for statement in (part for part in POPULATE.split(";") if part.strip()):
                    arguments = [FLOWS, DEPLOYMENTS_PER_FLOW, RUNS][: statement.count("$")]
                    await uow.driver.execute(statement, *arguments)
            yield app
        finally:
            await app.database.dispose()


def _states(*types: StateType) -> FlowRunStateFilter:
    return FlowRunStateFilter(type=StateTypeFilter(any=types))


@dataclass(frozen=True)
class Case:
    """A common filter and the indexes its list (first and later page) and its count
    are meant to read; either of two when the planner rightly weighs both."""

    name: str
    filter: FlowRunFilter
    list_indexes: tuple[str, ...]
    count_indexes: tuple[str, ...]


def _cases() -> list[Case]:
    now = clock.now()
    day = TimeFilter(after=now - timedelta(days=3), before=now - timedelta(days=2))
    flow = IdFilter(any=(_md5_uuid("flow-3"),))
    deployment = IdFilter(any=(_md5_uuid(f"deployment-{3 + 2 * FLOWS}"),))
    tags = TagsFilter(all=("prod", "etl"))
    by_flow, by_deployment = "ix_flow_run__flow_id_id", "ix_flow_run__deployment_id_id"
    by_state, by_tags = "ix_flow_run__state_type_id", "ix_flow_run__tags"
    # Counts read the smaller index whose leading column is the filter's: the state type's
    # deduplicated single-column index, the flow's unique (flow_id, idempotency_key).
    count_by_state, count_by_flow = "ix_flow_run__state_type", "uq_flow_run__flow_id_idempotency_key"
    by_expected, by_started = "ix_flow_run__expected_start_time", "ix_flow_run__start_or_expected_time"
    newest_first = "pk_flow_run"
    return [
        Case("flow", FlowRunFilter(flow_id=flow), (by_flow,), (by_flow, count_by_flow)),
        Case("deployment", FlowRunFilter(deployment_id=deployment), (by_deployment,), (by_deployment,)),
        Case("state type", FlowRunFilter(state=_states(StateType.RUNNING)), (by_state,), (count_by_state,)),
        Case(
            "state types",
            FlowRunFilter(state=_states(StateType.FAILED, StateType.CRASHED)),
            (by_state, newest_first),
            (count_by_state,),
        ),
        Case("tags", FlowRunFilter(tags=tags), (by_tags, newest_first), (by_tags,)),
        Case(
            "expected start time", FlowRunFilter(expected_start_time=day), (by_expected, newest_first), (by_expected,)
        ),
        Case("start time", FlowRunFilter(start_time=day), (by_started, newest_first), (by_started,)),
        Case(
            "flow and state type",
            FlowRunFilter(flow_id=flow, state=_states(StateType.FAILED)),
            (by_flow, count_by_flow, by_state, count_by_state),
            (by_flow, count_by_flow, by_state, count_by_state),
        ),
        Case(
            "deployment and state type",
            FlowRunFilter(deployment_id=deployment, state=_states(StateType.SCHEDULED)),
            (by_deployment, by_state),
            (by_deployment, by_state),
        ),
        Case(
            "tags and state type",
            FlowRunFilter(tags=tags, state=_states(StateType.FAILED)),
            (by_tags, by_state, count_by_state),
            (by_tags, by_state, count_by_state),
        ),
        Case(
            "flow and expected start time",
            FlowRunFilter(flow_id=flow, expected_start_time=day),
            (by_flow, by_expected),
            (by_flow, by_expected),
        ),
    ]


CASES = _cases()


def _assert_reads_through(plan: Plan, indexes: tuple[str, ...], what: str) -> None:
    read = plan.indexes() or "no index"
    assert plan.indexes() & set(indexes), f"{what}: expected one of {indexes}, read {read}:\n{plan}"
    assert "flow_run" not in plan.seq_scans(), f"{what}: a sequential scan of flow_run:\n{plan}"


async def _later_page_token(app: App, filters: ListFilters, sort: FlowRunSort = FlowRunSort.ID_DESC) -> str:
    """A page token past the first few rows (keyset paging: any later page reads alike;
    a token is bound to the filters and sort, not to the page size)."""
    async with app.database.unit_of_work(write=False) as uow:
        _, token = await uow.repos.flow_runs.list_page(filters, sort, PageRequest(limit=5), secret=SECRET)
    assert token, "the filter matches more than one page of runs"
    return token


# Plans are PostgreSQL's: SQLite has a planner of its own and serves the embedded scale.
ON_POSTGRES_ONLY = [
    pytest.param(
        backend,
        marks=pytest.mark.skip(reason="EXPLAIN plans are PostgreSQL's; SQLite has its own planner")
        if backend == "sqlite"
        else (),
    )
    for backend in BACKENDS
]


@pytest.mark.parametrize("backend", ON_POSTGRES_ONLY)
@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
async def test_a_common_filter_lists_and_counts_through_its_index(backend, case, populated):
    filters = ListFilters(flow_run=case.filter)
    await _assert_pages_read_through(populated, filters, case.list_indexes)
    plan = await plan_of(populated.database, lambda repos: repos.flow_runs.count(filters))
    _assert_reads_through(plan, case.count_indexes, "count")


@pytest.mark.parametrize("backend", ON_POSTGRES_ONLY)
async def test_the_default_listing_reads_newest_ids_first_from_the_primary_key(backend, populated):
    """No filter: the default order (ID_DESC) is the primary key read backwards, first
    page and later pages alike, never a sort of the whole table."""
    await _assert_pages_read_through(populated, ListFilters(), ("pk_flow_run",))


@pytest.mark.parametrize("backend", ON_POSTGRES_ONLY)
@pytest.mark.parametrize("within_a_day", [False, True], ids=["every run", "one day"])
async def test_the_newest_started_first_reads_its_order_from_an_index(backend, within_a_day, populated):
    """START_TIME_DESC (a UI's usual order), alone and with a one-day start-time range:
    the order's index read backwards from the page token, never the whole day (or the
    whole table) sorted. Fails if the order's expression and migration 0009's index
    differ in anything, its far-past constant included."""
    now = clock.now()
    day = TimeFilter(after=now - timedelta(days=3), before=now - timedelta(days=2))
    filters = ListFilters(flow_run=FlowRunFilter(start_time=day)) if within_a_day else ListFilters()
    await _assert_pages_read_through(
        populated, filters, ("ix_flow_run__start_time_order",), FlowRunSort.START_TIME_DESC, sorted_=False
    )


@pytest.mark.parametrize("backend", ON_POSTGRES_ONLY)
async def test_the_oldest_started_first_in_a_range_reads_the_range_through_an_index(backend, populated):
    """START_TIME_ASC with a one-day start-time range: the day through the start-time
    filter's index (0008), then sorted; never the whole table (its far-future stand-in
    has no index, so the range must stay on the filter's own expression)."""
    now = clock.now()
    day = TimeFilter(after=now - timedelta(days=3), before=now - timedelta(days=2))
    filters = ListFilters(flow_run=FlowRunFilter(start_time=day))
    await _assert_pages_read_through(
        populated, filters, ("ix_flow_run__start_or_expected_time",), FlowRunSort.START_TIME_ASC
    )


async def _assert_pages_read_through(
    populated, filters: ListFilters, indexes, sort: FlowRunSort = FlowRunSort.ID_DESC, *, sorted_: bool = True
) -> None:
    """The first page and a later one (by page token) of the listing in `sort` read
    `indexes` (and, unless `sorted_`, sort nothing: the index gives the order), and are
    fetched through the asyncpg connection itself, not SQLAlchemy's execution (the list
    fast path: FlowRunRepository.list_page on PostgreSQL)."""
    token = await _later_page_token(populated, filters, sort)
    for what, page in (
        ("first page", PageRequest(limit=PAGE)),
        ("later page", PageRequest(limit=PAGE, page_token=token)),
    ):
        plan = await plan_of(
            populated.database,
            lambda repos, page=page: repos.flow_runs.list_page(filters, sort, page, secret=SECRET),
        )
        _assert_reads_through(plan, indexes, what)
        assert plan.via == "driver", f"{what}: sent through SQLAlchemy's execution, not the driver:\n{plan}"
        if not sorted_:
            sorts = [node for node in plan.nodes() if "Sort" in node.type]
            assert not sorts, f"{what}: sorts what it read instead of reading in order:\n{plan}"
