"""FlowrunClient's retries: against a fake grpc.aio server that fails the first calls with
a scripted status (with google.rpc.RetryInfo when asked) and records every request it
saw, and once end to end against the real server, where a lost answer to an applied
SetFlowRunState is resent with the same transition id and not applied twice.

Time is fake: the policy's sleep and clock are injected, so no test waits or measures."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import grpc
import pytest
from google.protobuf import any_pb2, duration_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from flowrun.client import (
    AbortedError,
    FlowrunClient,
    InvalidArgumentError,
    RetryPolicy,
    UnavailableError,
)
from flowrun.client.retry import is_idempotent
from flowrun.v1 import (
    flow_pb2,
    flow_run_pb2,
    flow_run_service_pb2,
    flow_run_service_pb2_grpc,
    flow_service_pb2,
    flow_service_pb2_grpc,
    state_pb2,
)

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
ABORTED = grpc.StatusCode.ABORTED
INVALID = grpc.StatusCode.INVALID_ARGUMENT
RUN_ID = str(uuid.uuid4())


class FakeTime:
    """A clock that only moves when the client sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


class Script:
    """The failures to answer, in order (code, RetryInfo delay or None); then success."""

    def __init__(self) -> None:
        self.failures: list[tuple[grpc.StatusCode, float | None]] = []
        self.seen: list[tuple[str, object]] = []

    async def answer(self, name: str, request, context, response):
        self.seen.append((name, request))
        if self.failures:
            code, delay = self.failures.pop(0)
            details = []
            if delay is not None:
                retry_delay = duration_pb2.Duration()
                retry_delay.FromNanoseconds(int(delay * 1e9))
                info = error_details_pb2.RetryInfo(retry_delay=retry_delay)
                packed = any_pb2.Any()
                packed.Pack(info)
                details.append(packed)
            status = status_pb2.Status(
                code=getattr(code_pb2, code.name), message=f"scripted {code.name}", details=details
            )
            await context.abort_with_status(rpc_status.to_status(status))
        return response


class FakeFlowRuns(flow_run_service_pb2_grpc.FlowRunServiceServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    async def GetFlowRun(self, request, context):
        response = flow_run_service_pb2.GetFlowRunResponse(flow_run=flow_run_pb2.FlowRun(id=request.flow_run_id))
        return await self.script.answer("GetFlowRun", request, context, response)

    async def CreateFlowRun(self, request, context):
        response = flow_run_service_pb2.CreateFlowRunResponse(flow_run=flow_run_pb2.FlowRun(id=RUN_ID), created=True)
        return await self.script.answer("CreateFlowRun", request, context, response)

    async def DeleteFlowRun(self, request, context):
        return await self.script.answer("DeleteFlowRun", request, context, flow_run_service_pb2.DeleteFlowRunResponse())

    async def SetFlowRunState(self, request, context):
        response = flow_run_service_pb2.SetFlowRunStateResponse(status=state_pb2.SET_STATE_STATUS_ACCEPT)
        return await self.script.answer("SetFlowRunState", request, context, response)


class FakeFlows(flow_service_pb2_grpc.FlowServiceServicer):
    def __init__(self, script: Script) -> None:
        self.script = script

    async def CreateFlow(self, request, context):
        response = flow_service_pb2.CreateFlowResponse(flow=flow_pb2.Flow(name=request.name), created=True)
        return await self.script.answer("CreateFlow", request, context, response)


@pytest.fixture(scope="module")
async def fake() -> AsyncIterator[tuple[str, Script]]:
    script = Script()
    server = grpc.aio.server()
    flow_run_service_pb2_grpc.add_FlowRunServiceServicer_to_server(FakeFlowRuns(script), server)
    flow_service_pb2_grpc.add_FlowServiceServicer_to_server(FakeFlows(script), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        yield f"127.0.0.1:{port}", script
    finally:
        await server.stop(0)


@pytest.fixture
def script(fake) -> Script:
    _, script = fake
    script.failures.clear()
    script.seen.clear()
    return script


@pytest.fixture
def time() -> FakeTime:
    return FakeTime()


def policy(time: FakeTime, *, jitter: float = 1.0, **fields) -> RetryPolicy:
    return RetryPolicy(sleep=time.sleep, clock=time.clock, random=lambda: jitter, **fields)


@pytest.fixture
async def connect(fake):
    address, _ = fake
    clients = []

    def make(retry: RetryPolicy | None, timeout: float | None = 30.0) -> FlowrunClient:
        made = FlowrunClient(address, retry=retry, timeout=timeout)
        clients.append(made)
        return made

    yield make
    for made in clients:
        await made.close()


async def test_unavailable_read_is_retried_with_exponential_backoff(connect, script, time):
    script.failures = [(UNAVAILABLE, None)] * 3
    client = connect(policy(time, initial_backoff=0.1, multiplier=2.0, max_backoff=0.3))
    run = await client.get_flow_run(RUN_ID)
    assert run.id == RUN_ID
    assert [name for name, _ in script.seen] == ["GetFlowRun"] * 4
    assert time.sleeps == pytest.approx([0.1, 0.2, 0.3])  # capped by max_backoff


async def test_jitter_spreads_the_backoff_below_its_ceiling(connect, script, time):
    script.failures = [(UNAVAILABLE, None)] * 2
    await connect(policy(time, jitter=0.25, initial_backoff=1.0)).get_flow_run(RUN_ID)
    assert time.sleeps == pytest.approx([0.25, 0.5])


async def test_retry_info_delay_is_honoured(connect, script, time):
    script.failures = [(ABORTED, 2.5), (UNAVAILABLE, 0.75)]
    await connect(policy(time, jitter=0.0, initial_backoff=0.01)).get_flow_run(RUN_ID)
    assert time.sleeps == pytest.approx([2.5, 0.75])
    script.failures = [(ABORTED, 2.0)]
    await connect(policy(time, jitter=1.0, initial_backoff=0.01)).get_flow_run(RUN_ID)
    assert time.sleeps[-1] == pytest.approx(3.0)  # at least the server's delay, jitter on top


async def test_set_flow_run_state_resends_the_same_transition_id(connect, script, time):
    script.failures = [(UNAVAILABLE, None), (ABORTED, 0.1)]
    client = connect(policy(time))
    result = await client.set_flow_run_state(RUN_ID, state_pb2.STATE_TYPE_RUNNING)
    assert result.status == state_pb2.SET_STATE_STATUS_ACCEPT
    ids = [request.state.state_details.transition_id for _, request in script.seen]
    assert len(ids) == 3 and len(set(ids)) == 1 and uuid.UUID(ids[0])

    given = str(uuid.uuid4())
    script.seen.clear()
    script.failures = [(UNAVAILABLE, None)]
    await client.set_flow_run_state(RUN_ID, state_pb2.STATE_TYPE_COMPLETED, transition_id=given)
    assert [request.state.state_details.transition_id for _, request in script.seen] == [given, given]


async def test_invalid_argument_is_not_retried(connect, script, time):
    script.failures = [(INVALID, None), (INVALID, None)]
    with pytest.raises(InvalidArgumentError) as raised:
        await connect(policy(time)).get_flow_run(RUN_ID)
    assert len(script.seen) == 1 and time.sleeps == [] and raised.value.attempts == 1


async def test_deadline_bounds_the_loop(connect, script, time):
    script.failures = [(ABORTED, 0.4)] * 10
    client = connect(policy(time, jitter=0.0, max_attempts=10), timeout=1.0)
    with pytest.raises(AbortedError) as raised:
        await client.get_flow_run(RUN_ID)
    # Tries at 0.0, 0.4 and 0.8; a third wait would end at 1.2, after the deadline.
    assert len(script.seen) == 3 and time.sleeps == pytest.approx([0.4, 0.4])
    assert raised.value.attempts == 3 and raised.value.retry_delay == pytest.approx(0.4)


async def test_max_attempts_bounds_the_loop(connect, script, time):
    script.failures = [(UNAVAILABLE, None)] * 10
    with pytest.raises(UnavailableError) as raised:
        await connect(policy(time, max_attempts=3)).get_flow_run(RUN_ID)
    assert len(script.seen) == 3 and len(time.sleeps) == 2 and raised.value.attempts == 3


async def test_retries_can_be_switched_off(connect, script, time):
    script.failures = [(UNAVAILABLE, None)]
    with pytest.raises(UnavailableError):
        await connect(None).get_flow_run(RUN_ID)
    assert len(script.seen) == 1


async def test_non_idempotent_calls_are_retried_only_when_nothing_was_applied(connect, script, time):
    client = connect(policy(time))
    flow_id = str(uuid.uuid4())

    # UNAVAILABLE may come after the server applied the call: a run without an
    # idempotency key, a delete or a forced transition is not sent twice.
    for call in (
        client.create_flow_run(flow_id),
        client.delete_flow_run(RUN_ID),
        client.set_flow_run_state(RUN_ID, state_pb2.STATE_TYPE_RUNNING, force=True),
    ):
        script.seen.clear()
        script.failures = [(UNAVAILABLE, None)]
        with pytest.raises(UnavailableError):
            await call
        assert len(script.seen) == 1

    # ABORTED means the server rolled back: safe to resend anything.
    script.seen.clear()
    script.failures = [(ABORTED, 0.05)]
    await client.delete_flow_run(RUN_ID)
    assert len(script.seen) == 2

    # Get-or-create and keyed creates are safe to resend after UNAVAILABLE too.
    script.seen.clear()
    script.failures = [(UNAVAILABLE, None), (UNAVAILABLE, None)]
    _, created = await client.create_flow_run(flow_id, idempotency_key="nightly-1")
    await client.create_flow("etl")
    assert created and [name for name, _ in script.seen] == [
        "CreateFlowRun",
        "CreateFlowRun",
        "CreateFlowRun",
        "CreateFlow",
    ]


def test_idempotency_comes_from_the_protos_and_the_documented_keys():
    assert is_idempotent(flow_run_service_pb2.GetFlowRunRequest())  # NO_SIDE_EFFECTS
    assert is_idempotent(flow_service_pb2.UpdateFlowRequest())  # IDEMPOTENT
    assert not is_idempotent(flow_run_service_pb2.DeleteFlowRunRequest())
    assert not is_idempotent(flow_run_service_pb2.CreateFlowRunRequest())
    assert is_idempotent(flow_run_service_pb2.CreateFlowRunRequest(idempotency_key="k"))
    keyed = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_RUNNING)
    keyed.state_details.transition_id = str(uuid.uuid4())
    assert is_idempotent(flow_run_service_pb2.SetFlowRunStateRequest(state=keyed))
    assert not is_idempotent(flow_run_service_pb2.SetFlowRunStateRequest(state=keyed, force=True))
    assert not is_idempotent(flow_run_service_pb2.SetFlowRunStateRequest())


# -- end to end ---------------------------------------------------------------------------


class LoseFirstAnswer(grpc.aio.UnaryUnaryClientInterceptor):
    """Lets the first SetFlowRunState reach the real server and be applied, then reports
    UNAVAILABLE to the client as if the connection had dropped before the answer."""

    def __init__(self) -> None:
        self.calls = 0

    async def intercept_unary_unary(self, continuation, client_call_details, request):
        call = await continuation(client_call_details, request)
        if client_call_details.method.endswith(b"/SetFlowRunState"):
            self.calls += 1
            if self.calls == 1:
                await call  # the server applied it
                raise grpc.aio.AioRpcError(
                    UNAVAILABLE, grpc.aio.Metadata(), grpc.aio.Metadata(), details="connection lost"
                )
        return call


async def test_lost_answer_is_resent_and_not_applied_twice_end_to_end(app, unique, time):
    interceptor = LoseFirstAnswer()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}", interceptors=[interceptor]) as channel:
        client = FlowrunClient(channel=channel, retry=policy(time))
        flow, _ = await client.create_flow(f"retry-{unique}")
        run, _ = await client.create_flow_run(flow.id)
        result = await client.set_flow_run_state(run.id, state_pb2.STATE_TYPE_RUNNING)
        assert interceptor.calls == 2 and len(time.sleeps) == 1
        # The resend found the transition already made: the current state is returned.
        assert result.status == state_pb2.SET_STATE_STATUS_REJECT
        assert result.state.type == state_pb2.STATE_TYPE_RUNNING
        assert result.reject.reason == "This run has already made this state transition."
        states, _ = await client.list_flow_run_states(run.id)
        assert [state.type for state in states] == [state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING]
        assert (await client.get_flow_run(run.id)).run_count == 1
