"""The paging contract of every List RPC (AIP-158 and the RPC comments): default and
maximum page sizes, invalid combinations of paging fields, and page tokens that are
opaque, bound to their query and tamper-evident.

Rows are scoped by a unique tag or name, since the database is shared by the session."""

from __future__ import annotations

import asyncio
import base64
import uuid

import grpc
import pytest

from flowrun.v1 import filters_pb2, state_pb2
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from tests.helpers.rich_errors import expect_error

DEFAULT_PAGE_SIZE = 200
MAX_PAGE_SIZE = 200
STATES_MAX_PAGE_SIZE = 1_000


def tagged_flows(tag: str, **kwargs) -> flows_pb.ListFlowsRequest:
    return flows_pb.ListFlowsRequest(flow_filter=filters_pb2.FlowFilter(tags={"all": [tag]}), **kwargs)


def tagged_runs(tag: str, **kwargs) -> runs_pb.ListFlowRunsRequest:
    return runs_pb.ListFlowRunsRequest(flow_run_filter=filters_pb2.FlowRunFilter(tags={"all": [tag]}), **kwargs)


async def gather_limited(calls, limit: int = 16):
    semaphore = asyncio.Semaphore(limit)

    async def one(call):
        async with semaphore:
            return await call

    return await asyncio.gather(*(one(call) for call in calls))


@pytest.fixture
async def many_flows(flows, unique):
    """201 flows sharing a unique tag (one more than a default page). Returns the tag."""
    tag = f"page-{unique}"
    await gather_limited(
        flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"page-{unique}-{i:03d}", tags=[tag])) for i in range(201)
    )
    return tag


@pytest.fixture
async def few_flows(flows, unique):
    tag = f"few-{unique}"
    for i in range(5):
        await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"few-{unique}-{i}", tags=[tag]))
    return tag


@pytest.fixture
async def few_runs(flows, runs, unique):
    """Five runs with a unique tag, and their flow."""
    tag = f"few-{unique}"
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"few-runs-{unique}"))).flow
    for _ in range(5):
        await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id, tags=[tag]))
    return tag


# -- page sizes ----------------------------------------------------------------------------


@pytest.mark.slow
async def test_flows_page_size_zero_or_unset_means_200_and_larger_is_capped(flows, many_flows):
    tag = many_flows
    for request in (
        tagged_flows(tag),
        tagged_flows(tag, page_size=0),
        tagged_flows(tag, page_size=MAX_PAGE_SIZE + 1),
        tagged_flows(tag, page_size=2**31 - 1),
    ):
        first = await flows.ListFlows(request)
        assert len(first.flows) == DEFAULT_PAGE_SIZE
        assert first.next_page_token
        request.page_token = first.next_page_token
        last = await flows.ListFlows(request)
        assert len(last.flows) == 1
        assert last.next_page_token == ""
        assert {f.id for f in first.flows}.isdisjoint({f.id for f in last.flows})
    count = await flows.CountFlows(flows_pb.CountFlowsRequest(flow_filter=filters_pb2.FlowFilter(tags={"all": [tag]})))
    assert count.count == 201


@pytest.mark.slow
async def test_flows_limit_defaults_to_200_and_allows_200(flows, many_flows):
    unset = await flows.ListFlows(tagged_flows(many_flows))
    full = await flows.ListFlows(tagged_flows(many_flows, limit=MAX_PAGE_SIZE))
    assert len(full.flows) == len(unset.flows) == DEFAULT_PAGE_SIZE
    assert [f.id for f in full.flows] == [f.id for f in unset.flows]


@pytest.mark.slow
async def test_flow_runs_page_size_zero_means_200_and_larger_is_capped(flows, runs, unique):
    tag = f"page-{unique}"
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"page-runs-{unique}"))).flow
    await gather_limited(
        runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id, tags=[tag])) for _ in range(201)
    )
    for request in (tagged_runs(tag), tagged_runs(tag, page_size=0), tagged_runs(tag, page_size=5_000)):
        first = await runs.ListFlowRuns(request)
        assert len(first.flow_runs) == DEFAULT_PAGE_SIZE
        assert first.next_page_token
        request.page_token = first.next_page_token
        last = await runs.ListFlowRuns(request)
        assert len(last.flow_runs) == 1
        assert last.next_page_token == ""


async def test_last_page_has_an_empty_token_even_when_full(flows, few_flows):
    """Five rows in pages of five: one page, no token pointing at an empty page."""
    page = await flows.ListFlows(tagged_flows(few_flows, page_size=5))
    assert len(page.flows) == 5
    assert page.next_page_token == ""
    page = await flows.ListFlows(tagged_flows(few_flows, page_size=4))
    assert len(page.flows) == 4 and page.next_page_token
    last = await flows.ListFlows(tagged_flows(few_flows, page_size=4, page_token=page.next_page_token))
    assert len(last.flows) == 1 and last.next_page_token == ""


async def test_empty_result_is_one_empty_page(flows, runs, unique):
    nothing = await flows.ListFlows(tagged_flows(f"none-{unique}", page_size=3))
    assert list(nothing.flows) == [] and nothing.next_page_token == ""
    nothing = await runs.ListFlowRuns(tagged_runs(f"none-{unique}", page_size=3))
    assert list(nothing.flow_runs) == [] and nothing.next_page_token == ""


async def test_limit_zero_returns_nothing(flows, runs, few_flows, few_runs):
    page = await flows.ListFlows(tagged_flows(few_flows, limit=0))
    assert list(page.flows) == [] and page.next_page_token == ""
    page = await runs.ListFlowRuns(tagged_runs(few_runs, limit=0))
    assert list(page.flow_runs) == [] and page.next_page_token == ""


async def test_page_size_may_change_between_pages(flows, few_flows):
    """AIP-158: a token stays valid when only page_size changes."""
    everything = [f.id for f in (await flows.ListFlows(tagged_flows(few_flows))).flows]
    first = await flows.ListFlows(tagged_flows(few_flows, page_size=2))
    rest = await flows.ListFlows(tagged_flows(few_flows, page_size=10, page_token=first.next_page_token))
    assert [f.id for f in first.flows] + [f.id for f in rest.flows] == everything
    assert rest.next_page_token == ""


async def test_a_token_can_be_replayed(runs, few_runs):
    """Reads have no side effects: the same token gives the same page again."""
    first = await runs.ListFlowRuns(tagged_runs(few_runs, page_size=2))
    again = [
        await runs.ListFlowRuns(tagged_runs(few_runs, page_size=2, page_token=first.next_page_token)) for _ in "ab"
    ]
    assert [r.id for r in again[0].flow_runs] == [r.id for r in again[1].flow_runs]
    assert again[0].next_page_token == again[1].next_page_token


# -- invalid paging fields ------------------------------------------------------------------


def _all_lists(stubs, **fields):
    flows, runs = stubs
    return [
        ("ListFlows", flows.ListFlows(flows_pb.ListFlowsRequest(**fields))),
        ("ListFlowRuns", runs.ListFlowRuns(runs_pb.ListFlowRunsRequest(**fields))),
    ]


@pytest.mark.parametrize("page_size", [-1, -200, -(2**31)])
async def test_negative_page_size_is_invalid_and_names_page_size(flows, runs, page_size):
    calls = _all_lists((flows, runs), page_size=page_size)
    calls.append(
        (
            "ListFlowRunStates",
            runs.ListFlowRunStates(
                runs_pb.ListFlowRunStatesRequest(flow_run_id=str(uuid.uuid4()), page_size=page_size)
            ),
        )
    )
    for name, call in calls:
        error = await expect_error(call)
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT, name
        assert "page_size" in error.field_violations, (name, error.field_violations)


async def test_limit_and_page_size_together_are_invalid(flows, runs):
    for name, call in _all_lists((flows, runs), limit=10, page_size=10):
        error = await expect_error(call)
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT, name
        assert {"limit", "page_size"} & set(error.field_violations), (name, error.field_violations)


async def test_offset_with_a_page_token_is_invalid(flows, runs, few_flows, few_runs):
    flow_token = (await flows.ListFlows(tagged_flows(few_flows, page_size=1))).next_page_token
    run_token = (await runs.ListFlowRuns(tagged_runs(few_runs, page_size=1))).next_page_token
    for call in (
        flows.ListFlows(tagged_flows(few_flows, page_size=1, page_token=flow_token, offset=1)),
        runs.ListFlowRuns(tagged_runs(few_runs, page_size=1, page_token=run_token, offset=1)),
    ):
        error = await expect_error(call)
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT
        assert {"offset", "page_token"} & set(error.field_violations), error.field_violations


@pytest.mark.parametrize("limit", [-1, MAX_PAGE_SIZE + 1])
async def test_limit_outside_0_to_200_is_invalid(flows, runs, limit):
    for name, call in _all_lists((flows, runs), limit=limit):
        error = await expect_error(call)
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT, name
        assert "limit" in error.field_violations


async def test_negative_offset_is_invalid(flows, runs):
    for name, call in _all_lists((flows, runs), offset=-1):
        error = await expect_error(call)
        assert error.code == grpc.StatusCode.INVALID_ARGUMENT, name
        assert "offset" in error.field_violations


# -- page tokens ----------------------------------------------------------------------------


async def expect_invalid_token(call) -> None:
    error = await expect_error(call)
    assert error.code == grpc.StatusCode.INVALID_ARGUMENT
    assert error.reason == "INVALID_PAGE_TOKEN"
    assert "page_token" in error.field_violations, error.field_violations


async def test_flow_token_replayed_with_another_filter_or_sort_is_invalid(flows, few_flows, unique):
    token = (await flows.ListFlows(tagged_flows(few_flows, page_size=2))).next_page_token
    assert token
    # The original query accepts it.
    await flows.ListFlows(tagged_flows(few_flows, page_size=2, page_token=token))
    await expect_invalid_token(flows.ListFlows(tagged_flows(f"other-{unique}", page_size=2, page_token=token)))
    await expect_invalid_token(flows.ListFlows(flows_pb.ListFlowsRequest(page_size=2, page_token=token)))
    await expect_invalid_token(
        flows.ListFlows(
            tagged_flows(
                few_flows,
                flow_run_filter=filters_pb2.FlowRunFilter(),
                page_size=2,
                page_token=token,
            )
        )
    )
    for sort in (filters_pb2.FLOW_SORT_NAME_DESC, filters_pb2.FLOW_SORT_CREATED_DESC):
        await expect_invalid_token(flows.ListFlows(tagged_flows(few_flows, sort=sort, page_size=2, page_token=token)))


async def test_flow_run_token_replayed_with_another_filter_or_sort_is_invalid(runs, few_runs, unique):
    token = (await runs.ListFlowRuns(tagged_runs(few_runs, page_size=2))).next_page_token
    assert token
    await runs.ListFlowRuns(tagged_runs(few_runs, page_size=2, page_token=token))
    await expect_invalid_token(runs.ListFlowRuns(tagged_runs(f"other-{unique}", page_size=2, page_token=token)))
    await expect_invalid_token(runs.ListFlowRuns(runs_pb.ListFlowRunsRequest(page_size=2, page_token=token)))
    await expect_invalid_token(
        runs.ListFlowRuns(
            tagged_runs(few_runs, flow_filter=filters_pb2.FlowFilter(name={"like": "x"}), page_size=2, page_token=token)
        )
    )
    # An explicit default sort is the same query as an unset one; any other sort is not.
    await runs.ListFlowRuns(
        tagged_runs(few_runs, sort=filters_pb2.FLOW_RUN_SORT_ID_DESC, page_size=2, page_token=token)
    )
    for sort in (filters_pb2.FLOW_RUN_SORT_NAME_ASC, filters_pb2.FLOW_RUN_SORT_START_TIME_DESC):
        await expect_invalid_token(runs.ListFlowRuns(tagged_runs(few_runs, sort=sort, page_size=2, page_token=token)))


def _tampered(token: str) -> list[str]:
    """Variants of a valid token: one character changed at several places, truncated,
    extended, its payload bytes altered under the old signature, not base64 at all."""
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    variants = []
    for position in (0, len(token) // 3, len(token) // 2, len(token) - 3):
        replacement = alphabet[(alphabet.index(token[position]) + 7) % len(alphabet)]
        variants.append(token[:position] + replacement + token[position + 1 :])
    variants += [token[:-4], token + "AAAA", token[:8], "!" + token[1:], "x" * 2048]
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[len(raw) // 4] ^= 0x01
    variants.append(base64.urlsafe_b64encode(bytes(raw)).rstrip(b"=").decode())
    return [v for v in variants if v != token]


async def test_tampered_tokens_are_invalid(flows, runs, few_flows, few_runs):
    flow_token = (await flows.ListFlows(tagged_flows(few_flows, page_size=2))).next_page_token
    run_token = (await runs.ListFlowRuns(tagged_runs(few_runs, page_size=2))).next_page_token
    for bad in _tampered(flow_token):
        await expect_invalid_token(flows.ListFlows(tagged_flows(few_flows, page_size=2, page_token=bad)))
    for bad in _tampered(run_token):
        await expect_invalid_token(runs.ListFlowRuns(tagged_runs(few_runs, page_size=2, page_token=bad)))


async def test_a_token_of_one_rpc_is_invalid_for_another(flows, runs, few_flows, few_runs, unique):
    flow_token = (await flows.ListFlows(flows_pb.ListFlowsRequest(page_size=1))).next_page_token
    run_token = (await runs.ListFlowRuns(runs_pb.ListFlowRunsRequest(page_size=1))).next_page_token
    assert flow_token and run_token
    await expect_invalid_token(runs.ListFlowRuns(runs_pb.ListFlowRunsRequest(page_size=1, page_token=flow_token)))
    await expect_invalid_token(flows.ListFlows(flows_pb.ListFlowsRequest(page_size=1, page_token=run_token)))

    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"tokens-{unique}"))).flow
    run = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run
    await runs.SetFlowRunState(
        runs_pb.SetFlowRunStateRequest(
            flow_run_id=run.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING), force=True
        )
    )
    state_token = (
        await runs.ListFlowRunStates(runs_pb.ListFlowRunStatesRequest(flow_run_id=run.id, page_size=1))
    ).next_page_token
    assert state_token
    await expect_invalid_token(
        runs.ListFlowRunStates(runs_pb.ListFlowRunStatesRequest(flow_run_id=run.id, page_size=1, page_token=run_token))
    )
    await expect_invalid_token(runs.ListFlowRuns(runs_pb.ListFlowRunsRequest(page_size=1, page_token=state_token)))
    await expect_invalid_token(flows.ListFlows(flows_pb.ListFlowsRequest(page_size=1, page_token=state_token)))


# -- ListFlowRunStates ------------------------------------------------------------------------


@pytest.mark.slow
async def test_state_history_pages_oldest_first_with_default_200_and_cap_1000(flows, runs, unique):
    """1,001 states: page_size 0 gives 200, anything above 1,000 gives 1,000, and every
    paging of the history is the full history in timestamp order."""
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"history-{unique}"))).flow
    run = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run
    cycle = [state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_PAUSED, state_pb2.STATE_TYPE_PENDING]
    for i in range(STATES_MAX_PAGE_SIZE):
        await runs.SetFlowRunState(
            runs_pb.SetFlowRunStateRequest(
                flow_run_id=run.id, state=state_pb2.StateCreate(type=cycle[i % 3], message=str(i)), force=True
            )
        )

    async def page(page_size: int, token: str = "") -> runs_pb.ListFlowRunStatesResponse:
        return await runs.ListFlowRunStates(
            runs_pb.ListFlowRunStatesRequest(flow_run_id=run.id, page_size=page_size, page_token=token)
        )

    default = await page(0)
    assert len(default.states) == 200 and default.next_page_token
    for size in (STATES_MAX_PAGE_SIZE + 1, 2**31 - 1):
        capped = await page(size)
        assert len(capped.states) == STATES_MAX_PAGE_SIZE and capped.next_page_token
    exact = await page(STATES_MAX_PAGE_SIZE)
    rest = await page(STATES_MAX_PAGE_SIZE, exact.next_page_token)
    history = list(exact.states) + list(rest.states)
    assert len(history) == STATES_MAX_PAGE_SIZE + 1 and rest.next_page_token == ""

    # Oldest first: the creation state, then the proposals in the order they were made.
    assert history[0].type == state_pb2.STATE_TYPE_PENDING and history[0].message == ""
    assert [s.message for s in history[1:]] == [str(i) for i in range(STATES_MAX_PAGE_SIZE)]
    times = [s.timestamp.ToDatetime() for s in history]
    assert times == sorted(times) and len(set(times)) == len(times)
    assert history[-1].id == (await runs.GetFlowRun(runs_pb.GetFlowRunRequest(flow_run_id=run.id))).flow_run.state_id

    paged, token = [], ""
    while True:
        response = await page(7, token)
        assert len(response.states) <= 7
        paged.extend(response.states)
        token = response.next_page_token
        if not token:
            break
    assert [s.id for s in paged] == [s.id for s in history]
    assert [s.id for s in default.states] == [s.id for s in history[:200]]


async def test_state_history_token_is_bound_to_its_run(flows, runs, unique):
    flow = (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=f"bound-{unique}"))).flow
    one, two = [(await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run for _ in range(2)]
    for run in (one, two):
        await runs.SetFlowRunState(
            runs_pb.SetFlowRunStateRequest(
                flow_run_id=run.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING), force=True
            )
        )
    token = (
        await runs.ListFlowRunStates(runs_pb.ListFlowRunStatesRequest(flow_run_id=one.id, page_size=1))
    ).next_page_token
    assert token
    second = await runs.ListFlowRunStates(
        runs_pb.ListFlowRunStatesRequest(flow_run_id=one.id, page_size=1, page_token=token)
    )
    assert [s.type for s in second.states] == [state_pb2.STATE_TYPE_RUNNING] and second.next_page_token == ""
    await expect_invalid_token(
        runs.ListFlowRunStates(runs_pb.ListFlowRunStatesRequest(flow_run_id=two.id, page_size=1, page_token=token))
    )
    for bad in _tampered(token):
        await expect_invalid_token(
            runs.ListFlowRunStates(runs_pb.ListFlowRunStatesRequest(flow_run_id=one.id, page_size=1, page_token=bad))
        )


async def test_unknown_run_has_an_empty_history(runs):
    response = await runs.ListFlowRunStates(runs_pb.ListFlowRunStatesRequest(flow_run_id=str(uuid.uuid4())))
    assert list(response.states) == [] and response.next_page_token == ""
