"""Load for the fault tests: clients that drive flow-run lifecycles through a fault and
keep books on every answer, and the checks that nothing acknowledged was lost.

Each client loops: CreateFlowRun (SCHEDULED, with an idempotency key) and then
SetFlowRunState PENDING -> RUNNING -> COMPLETED, each proposal with its own transition
id. A failed call has an unknown outcome, so the client resends the same request (same
idempotency key, same transition id) until it gets an answer, as a well-behaved client
does: an earlier attempt that was applied then shows as REJECT "already made this state
transition", and one that was not is applied now. So every run's history must end up
exactly SCHEDULED, PENDING, RUNNING, COMPLETED (or a prefix of it, for a run whose client
was stopped mid-way), with each transition id written once.

What each failed call must look like is the test's to say (`error_problem`): a server
that lost its database answers UNAVAILABLE or ABORTED with a google.rpc.RetryInfo; a
killed process answers nothing, and the client's own gRPC library reports UNAVAILABLE."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from flowrun.v1 import filters_pb2, flow_run_service_pb2_grpc, state_pb2
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from flowrun.v1 import flow_service_pb2_grpc
from tests.test_concurrency import check_run_matches_history, read_history, type_name

ACCEPT = state_pb2.SET_STATE_STATUS_ACCEPT
REJECT = state_pb2.SET_STATE_STATUS_REJECT
SCHEDULED = state_pb2.STATE_TYPE_SCHEDULED
LIFECYCLE = (state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_COMPLETED)
ALREADY_MADE = "already made this state transition"
CALL_TIMEOUT_SECONDS = 15.0
DEFAULT_RETRY_SECONDS = 0.1
MAX_RETRY_SECONDS = 1.0
# Channels with their own connection each: channels to one target otherwise share one.
CHANNEL_OPTIONS = [("grpc.use_local_subchannel_pool", 1)]

ErrorCheck = Callable[[grpc.aio.AioRpcError], str | None]


def retry_delay(error: grpc.aio.AioRpcError) -> float | None:
    """The google.rpc.RetryInfo delay the server attached, if any."""
    status = rpc_status.from_call(error)
    for detail in status.details if status else ():
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToTimedelta().total_seconds()
    return None


def server_error_problem(error: grpc.aio.AioRpcError) -> str | None:
    """A server whose database failed: UNAVAILABLE or ABORTED, with RetryInfo."""
    if error.code() not in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.ABORTED):
        return f"{error.code().name}: {error.details()}"
    if not retry_delay(error):
        return f"{error.code().name} without RetryInfo: {error.details()}"
    return None


def killed_server_problem(error: grpc.aio.AioRpcError) -> str | None:
    """A server process killed mid-call: the client library's UNAVAILABLE (no details:
    nobody was there to send them), or else what any server error must be."""
    if error.code() == grpc.StatusCode.UNAVAILABLE:
        return None
    return server_error_problem(error)


def stopping_server_problem(error: grpc.aio.AioRpcError) -> str | None:
    """A server stopping gracefully under load (orphaned workers that noticed their
    supervisor died): grpc's graceful stop answers CANCELLED to the few calls that had
    arrived but not yet started (seen with SIGTERM too). Their outcome is unknown like a
    killed call's, and the resend settles it. (A finding: UNAVAILABLE would tell clients
    that retry by code to retry.)"""
    if error.code() == grpc.StatusCode.CANCELLED:
        return None
    return killed_server_problem(error)


@dataclass
class RunBook:
    """What one client knows of one run."""

    key: str  # the idempotency key of its CreateFlowRun
    run_id: str = ""
    acknowledged: list[str] = field(default_factory=list)  # state ids answered ACCEPT
    applied_on_retry: list[str] = field(default_factory=list)  # answered "already made" after a failure


@dataclass
class Client:
    """One client's position in its current lifecycle, so it can resume after a restart."""

    index: int
    run: RunBook | None = None
    step: int = 0  # index into LIFECYCLE of the next proposal
    transition_id: str = ""  # of the proposal in flight (kept across retries)
    answered_since: int = 0  # OK answers since `mark_recovery()`


@dataclass
class Figures:
    calls: int = 0
    ok: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    problems: list[str] = field(default_factory=list)  # failed calls that break the contract
    acknowledged: int = 0
    applied_on_retry: int = 0
    lifecycles: int = 0
    lost: int = 0
    runs_checked: int = 0

    def render(self, title: str) -> str:
        errors = ", ".join(f"{code} {count}" for code, count in sorted(self.errors.items())) or "none"
        return (
            f"{title}: {self.calls} calls, {self.ok} OK, errors: {errors}; "
            f"{self.acknowledged} transitions acknowledged (ACCEPT), {self.applied_on_retry} found applied on retry, "
            f"{self.lifecycles} lifecycles completed, {self.runs_checked} runs checked, {self.lost} acknowledged lost; "
            f"{len(self.problems)} contract violations"
        )


class Load:
    """`clients` clients driving lifecycles on `flow_id` until `stop()`; `run()` may be
    called again (after a server restart, at a new address) and every client resumes
    where it was."""

    def __init__(self, flow_id: str, clients: int, error_problem: ErrorCheck) -> None:
        self.flow_id = flow_id
        self.error_problem = error_problem
        self.clients = [Client(index) for index in range(clients)]
        self.runs: list[RunBook] = []
        self.figures = Figures()
        self._stop = asyncio.Event()

    def stop(self) -> None:
        self._stop.set()

    def mark_recovery(self) -> None:
        for client in self.clients:
            client.answered_since = 0

    def recovered(self) -> bool:
        """Every client had an OK answer since `mark_recovery()`."""
        return all(client.answered_since for client in self.clients)

    async def run(self, address: str) -> None:
        """Drives every client against `address` until `stop()`."""
        async with contextlib.AsyncExitStack() as stack:
            stubs = []
            for _ in self.clients:
                channel = await stack.enter_async_context(grpc.aio.insecure_channel(address, options=CHANNEL_OPTIONS))
                stubs.append(flow_run_service_pb2_grpc.FlowRunServiceStub(channel))
            await asyncio.gather(*(self._drive(client, stub) for client, stub in zip(self.clients, stubs, strict=True)))

    async def finish(self, address: str, timeout: float) -> None:
        """Lets every client finish the lifecycle it is in (then stop) within `timeout`."""
        self._stop.clear()
        self._finishing = True
        try:
            await asyncio.wait_for(self.run(address), timeout)
        finally:
            self._finishing = False

    _finishing = False

    async def _drive(self, client: Client, stub) -> None:
        while not self._stop.is_set():
            if client.run is None:
                if self._finishing:
                    return
                client.run, client.step = RunBook(key=str(uuid.uuid4())), 0
                self.runs.append(client.run)
            if not client.run.run_id:
                await self._create(client, stub)
            elif client.step < len(LIFECYCLE):
                await self._propose(client, stub)
            else:
                self.figures.lifecycles += 1
                client.run = None

    async def _call(self, client: Client, call) -> object | None:
        """One attempt; the answer, or None after a failure (then waits the retry delay)."""
        self.figures.calls += 1
        try:
            answer = await call(timeout=CALL_TIMEOUT_SECONDS)
        except grpc.aio.AioRpcError as error:
            self.figures.errors[error.code().name] += 1
            problem = self.error_problem(error)
            if problem:
                self.figures.problems.append(f"client {client.index}: {problem}")
            delay = min(retry_delay(error) or DEFAULT_RETRY_SECONDS, MAX_RETRY_SECONDS)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), delay)
            return None
        self.figures.ok += 1
        client.answered_since += 1
        return answer

    async def _create(self, client: Client, stub) -> None:
        book = client.run
        request = runs_pb.CreateFlowRunRequest(
            flow_id=self.flow_id, idempotency_key=book.key, state=state_pb2.StateCreate(type=SCHEDULED)
        )
        answer = await self._call(client, lambda **kw: stub.CreateFlowRun(request, **kw))
        if answer is not None:
            book.run_id = answer.flow_run.id

    async def _propose(self, client: Client, stub) -> None:
        book = client.run
        retry = bool(client.transition_id)
        if not retry:
            client.transition_id = str(uuid.uuid4())
        target = LIFECYCLE[client.step]
        request = runs_pb.SetFlowRunStateRequest(
            flow_run_id=book.run_id,
            state=state_pb2.StateCreate(
                type=target, state_details=state_pb2.StateDetails(transition_id=client.transition_id)
            ),
        )
        answer = await self._call(client, lambda **kw: stub.SetFlowRunState(request, **kw))
        if answer is None:
            return
        if answer.status == ACCEPT:
            book.acknowledged.append(answer.state.id)
            self.figures.acknowledged += 1
        elif retry and answer.status == REJECT and ALREADY_MADE in answer.reject.reason:
            book.applied_on_retry.append(answer.state.id)
            self.figures.applied_on_retry += 1
        else:
            self.figures.problems.append(
                f"client {client.index}: {type_name(target)} on {book.run_id} answered "
                f"{state_pb2.SetStateStatus.Name(answer.status)} {answer} (retry: {retry})"
            )
        client.step += 1
        client.transition_id = ""


async def new_flow(address: str, name: str) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        flows = flow_service_pb2_grpc.FlowServiceStub(channel)
        return (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=name), timeout=CALL_TIMEOUT_SECONDS)).flow.id


async def list_runs(stub, flow_id: str) -> list:
    runs, token = [], ""
    flow_filter = filters_pb2.FlowFilter(id=filters_pb2.IdFilter(any=[flow_id]))
    while True:
        page = await stub.ListFlowRuns(
            runs_pb.ListFlowRunsRequest(flow_filter=flow_filter, page_size=500, page_token=token),
            timeout=CALL_TIMEOUT_SECONDS,
        )
        runs.extend(page.flow_runs)
        token = page.next_page_token
        if not token:
            return runs


async def verify(address: str, load: Load, *, complete: bool) -> list[str]:
    """Reads every run of the load's flow back and returns what is wrong (empty: all
    fine); counts `lost` and `runs_checked` into the figures. Holds for every run in
    the database, including runs whose creation was never acknowledged:

    - its state pointer names the last entry of its history (no half-written run);
    - its history is SCHEDULED, PENDING, RUNNING, COMPLETED, or a prefix of it (all of
      it when `complete`): no transition written twice, none skipped;
    - every state the load saw acknowledged (ACCEPT) or found applied is in it;
    - one run per idempotency key the clients used: retried creates made no duplicates."""
    wrong: list[str] = []
    books = {book.run_id: book for book in load.runs if book.run_id}
    async with grpc.aio.insecure_channel(address) as channel:
        stub = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
        runs = await list_runs(stub, load.flow_id)
        if len(runs) > len(load.runs):
            wrong.append(f"{len(runs)} runs in the database for {len(load.runs)} idempotency keys")
        for run in runs:
            history = await read_history(stub, run.id)
            load.figures.runs_checked += 1
            try:
                check_run_matches_history(run, history)
            except AssertionError as exc:
                wrong.append(f"half-written run: {exc}")
            types = [state.type for state in history]
            expected = [SCHEDULED, *LIFECYCLE]
            if types != expected[: len(types)] or (complete and len(types) != len(expected)):
                wrong.append(f"run {run.id}: history {[type_name(t) for t in types]}")
            ids = {state.id for state in history}
            book = books.get(run.id)
            for state_id in (book.acknowledged + book.applied_on_retry) if book else ():
                if state_id not in ids:
                    load.figures.lost += 1
                    wrong.append(f"run {run.id}: acknowledged state {state_id} is not in its history")
        missing = set(books) - {run.id for run in runs}
        wrong += [f"run {run_id} was acknowledged but is not in the database" for run_id in missing]
    return wrong


async def wait_until(predicate: Callable[[], bool], timeout: float, what: str, tasks: Sequence[asyncio.Task] = ()) -> None:
    """Polls `predicate` (a liveness bound, not a speed test); fails after `timeout`
    seconds, or at once if one of `tasks` ended (it raised, or stopped early)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        for task in tasks:
            if task.done():
                task.result()
                raise AssertionError(f"the load stopped before {what}")
        if loop.time() > deadline:
            raise AssertionError(f"not {what} within {timeout} s")
        await asyncio.sleep(0.05)
