"""ListFlowRuns on PostgreSQL keeps its compiled statements in an LRU keyed by the
filters' canonical text (server/repositories/flow_runs.py list_page). An entry holds the
filters twice over (the key and the statement's bound values), so a large filter would
pin megabytes per entry: an attacker found 12.7 MiB per distinct 6 MB `like`, 512 entries
kept. Only filters with a short canonical text are cached; a larger one is compiled for
its call and answered the same."""

from __future__ import annotations

import uuid

import pytest

from flowrun.server.repositories import flow_runs as repository
from flowrun.v1 import filters_pb2
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb


@pytest.fixture
async def listed_run(flows, runs) -> tuple[str, str]:
    flow = await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"cache-{uuid.uuid4().hex}"))
    run = await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.flow.id, name=f"n-{uuid.uuid4().hex}"))
    return run.flow_run.id, run.flow_run.name


def _by_ids(ids: list[str]) -> runs_pb.ListFlowRunsRequest:
    return runs_pb.ListFlowRunsRequest(flow_run_filter=filters_pb2.FlowRunFilter(id=filters_pb2.IdFilter(any=ids)))


async def test_a_small_filter_is_cached_and_a_large_one_is_not(runs, backend, listed_run):
    if backend != "postgres":
        pytest.skip("only PostgreSQL lists through the driver and its statement cache")
    run_id, _ = listed_run
    small = _by_ids([run_id, str(uuid.uuid4())])
    before = len(repository._LIST_STATEMENTS)
    assert [run.id for run in (await runs.ListFlowRuns(small)).flow_runs] == [run_id]
    assert len(repository._LIST_STATEMENTS) == min(before + 1, repository.LIST_STATEMENTS_KEPT)

    # 900 ids: ~35 KB of canonical text, far over what an entry may pin.
    large = _by_ids([run_id, *(str(uuid.uuid4()) for _ in range(899))])
    assert len(large.flow_run_filter.id.SerializeToString()) > repository.CACHED_FILTER_CHARS
    for _ in range(2):
        cached = len(repository._LIST_STATEMENTS)
        assert [run.id for run in (await runs.ListFlowRuns(large)).flow_runs] == [run_id]
        assert len(repository._LIST_STATEMENTS) == cached


async def test_a_large_filter_pages_alike_without_the_cache(runs, flows, backend):
    """The uncached statement binds the page token's values as the cached one does."""
    if backend != "postgres":
        pytest.skip("only PostgreSQL lists through the driver and its statement cache")
    flow = await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"cache-pages-{uuid.uuid4().hex}"))
    created = [
        (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.flow.id))).flow_run.id for _ in range(5)
    ]
    request = _by_ids([*created, *(str(uuid.uuid4()) for _ in range(895))])
    request.page_size = 2
    seen: list[str] = []
    while True:
        page = await runs.ListFlowRuns(request)
        seen += [run.id for run in page.flow_runs]
        if not page.next_page_token:
            break
        request.page_token = page.next_page_token
    assert seen == sorted(created, reverse=True)
