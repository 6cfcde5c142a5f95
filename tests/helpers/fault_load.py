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

Some clients (`limited_clients`) run their runs under a deployment with a concurrency
limit (`new_limited_deployment`). Their PENDING proposal may be turned away while every
slot is held: REJECT to SCHEDULED "AwaitingConcurrencySlot". That client proposes PENDING
again shortly after, with a new transition id (the waiting state carries none, so a
resent id is simply evaluated again), and such a run's history may hold any number of
those waiting states between its first SCHEDULED and its PENDING. The servers must run
with FLOWRUN_DEPLOYMENT_SLOT_WAIT_SECONDS=0 (`SLOT_ENV`): PENDING copies the waiting
state's scheduled time, and RUNNING would otherwise be answered WAIT for 30 s.
`check_slots` reads the deployment's runs and leases straight from the database.

What each failed call must look like is the test's to say (`error_problem`): a server
that lost its database answers UNAVAILABLE or ABORTED with a google.rpc.RetryInfo; a
killed process answers nothing, and the client's own gRPC library reports UNAVAILABLE."""

from __future__ import annotations

import asyncio
import contextlib
import random
import sqlite3
import uuid
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from flowrun.v1 import (
    deployment_service_pb2,
    deployment_service_pb2_grpc,
    filters_pb2,
    flow_run_service_pb2_grpc,
    flow_service_pb2_grpc,
    state_pb2,
)
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_service_pb2 as flows_pb
from tests.helpers.races import check_run_matches_history, read_history, type_name

ACCEPT = state_pb2.SET_STATE_STATUS_ACCEPT
REJECT = state_pb2.SET_STATE_STATUS_REJECT
SCHEDULED = state_pb2.STATE_TYPE_SCHEDULED
LIFECYCLE = (state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING, state_pb2.STATE_TYPE_COMPLETED)
ALREADY_MADE = "already made this state transition"
AWAITING_SLOT = "AwaitingConcurrencySlot"
ACTIVE_TYPES = ("PENDING", "RUNNING", "CANCELLING")  # the states that hold a slot
SLOT_ENV = {"FLOWRUN_DEPLOYMENT_SLOT_WAIT_SECONDS": "0"}
SLOT_RETRY_SECONDS = (0.01, 0.03)  # a client turned away proposes PENDING again after this
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
    deployment_id: str = ""  # the limited deployment's, or "" for a run of no deployment
    run_id: str = ""
    acknowledged: list[str] = field(default_factory=list)  # state ids answered ACCEPT
    applied_on_retry: list[str] = field(default_factory=list)  # answered "already made" after a failure


@dataclass
class Client:
    """One client's position in its current lifecycle, so it can resume after a restart."""

    index: int
    deployment_id: str = ""  # its runs belong to this (limited) deployment
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
    slot_waits: int = 0  # PENDING answered "AwaitingConcurrencySlot"
    lifecycles: int = 0
    lost: int = 0
    runs_checked: int = 0
    slots: list[str] = field(default_factory=list)  # rendered slot checks, in order

    def render(self, title: str) -> str:
        errors = ", ".join(f"{code} {count}" for code, count in sorted(self.errors.items())) or "none"
        return (
            f"{title}: {self.calls} calls, {self.ok} OK, errors: {errors}; "
            f"{self.acknowledged} transitions acknowledged (ACCEPT), {self.applied_on_retry} found applied on retry, "
            f"{self.slot_waits} turned away for a slot, "
            f"{self.lifecycles} lifecycles completed, {self.runs_checked} runs checked, {self.lost} acknowledged lost; "
            f"{len(self.problems)} contract violations" + "".join(f"\n  slots {line}" for line in self.slots)
        )


class Load:
    """`clients` clients driving lifecycles on `flow_id` until `stop()`; `run()` may be
    called again (after a server restart, at a new address) and every client resumes
    where it was. The first `limited_clients` of them create their runs in
    `deployment_id`."""

    def __init__(
        self,
        flow_id: str,
        clients: int,
        error_problem: ErrorCheck,
        *,
        deployment_id: str = "",
        limited_clients: int = 0,
    ) -> None:
        self.flow_id = flow_id
        self.deployment_id = deployment_id
        self.error_problem = error_problem
        self.clients = [Client(index, deployment_id if index < limited_clients else "") for index in range(clients)]
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
                client.run, client.step = RunBook(key=str(uuid.uuid4()), deployment_id=client.deployment_id), 0
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
            flow_id=self.flow_id,
            deployment_id=book.deployment_id,
            idempotency_key=book.key,
            state=state_pb2.StateCreate(type=SCHEDULED),
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
        elif book.deployment_id and target == LIFECYCLE[0] and turned_away(answer):
            # Every slot is held: propose PENDING again later, as a new proposal.
            self.figures.slot_waits += 1
            client.transition_id = ""
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), random.uniform(*SLOT_RETRY_SECONDS))
            return
        else:
            self.figures.problems.append(
                f"client {client.index}: {type_name(target)} on {book.run_id} answered "
                f"{state_pb2.SetStateStatus.Name(answer.status)} {answer} (retry: {retry})"
            )
        client.step += 1
        client.transition_id = ""


def turned_away(answer) -> bool:
    """The answer to a PENDING proposal when the deployment has no free slot."""
    return answer.status == REJECT and answer.state.type == SCHEDULED and answer.state.name == AWAITING_SLOT


def without_slot_waits(history: Sequence[state_pb2.State]) -> tuple[list[state_pb2.State], int]:
    """The history without the "AwaitingConcurrencySlot" states that directly follow
    its first state (where a run waits for a slot), and how many there were."""
    end = 1
    while end < len(history) and history[end].type == SCHEDULED and history[end].name == AWAITING_SLOT:
        end += 1
    return [*history[:1], *history[end:]], end - 1


async def new_flow(address: str, name: str) -> str:
    async with grpc.aio.insecure_channel(address) as channel:
        flows = flow_service_pb2_grpc.FlowServiceStub(channel)
        return (await flows.CreateFlow(flows_pb.CreateFlowRequest(name=name), timeout=CALL_TIMEOUT_SECONDS)).flow.id


async def new_limited_deployment(address: str, flow_id: str, name: str, limit: int) -> str:
    """A deployment of `flow_id` whose runs share `limit` concurrency slots (ENQUEUE: a
    run turned away waits, and the default lease grace period of 300 s, so no lease
    expires during a test)."""
    async with grpc.aio.insecure_channel(address) as channel:
        stub = deployment_service_pb2_grpc.DeploymentServiceStub(channel)
        request = deployment_service_pb2.CreateDeploymentRequest(flow_id=flow_id, name=name, concurrency_limit=limit)
        return (await stub.CreateDeployment(request, timeout=CALL_TIMEOUT_SECONDS)).deployment.id


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
      it when `complete`): no transition written twice, none skipped; a run of the
      limited deployment, and only such a run, may have "AwaitingConcurrencySlot"
      states between its first SCHEDULED and its PENDING;
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
            book = books.get(run.id)
            if book and run.deployment_id != book.deployment_id:
                wrong.append(f"run {run.id}: deployment {run.deployment_id!r}, created in {book.deployment_id!r}")
            lifecycle, waits = without_slot_waits(history)
            if waits and not (load.deployment_id and run.deployment_id == load.deployment_id):
                wrong.append(f"run {run.id} of no limited deployment waited for a slot")
            types = [state.type for state in lifecycle]
            expected = [SCHEDULED, *LIFECYCLE]
            if types != expected[: len(types)] or (complete and len(types) != len(expected)):
                names = [f"{type_name(state.type)} {state.name!r}" for state in history]
                wrong.append(f"run {run.id}: history {names}")
            ids = {state.id for state in history}
            for state_id in (book.acknowledged + book.applied_on_retry) if book else ():
                if state_id not in ids:
                    load.figures.lost += 1
                    wrong.append(f"run {run.id}: acknowledged state {state_id} is not in its history")
        missing = set(books) - {run.id for run in runs}
        wrong += [f"run {run_id} was acknowledged but is not in the database" for run_id in missing]
    return wrong


async def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, tasks: Sequence[asyncio.Task] = ()
) -> None:
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


# --- deployment concurrency slots, read from the database --------------------------------


@dataclass(frozen=True)
class LeaseRow:
    id: str
    flow_run_id: str
    run_state: str | None  # its run's state type; None when the run is gone
    live: bool  # unexpired


@dataclass(frozen=True)
class ActiveRun:
    id: str
    state_type: str
    lease_named: str | None  # state_details.deployment_concurrency_lease_id of its current state


@dataclass(frozen=True)
class SlotFigures:
    limit: int
    active: int  # runs of the deployment that are PENDING, RUNNING or CANCELLING
    leases: int  # its live (unexpired) leases
    expired: int  # its expired lease rows, not yet reaped

    def render(self) -> str:
        return f"limit {self.limit}, {self.active} active runs, {self.leases} live leases, {self.expired} expired"


PG_ACTIVE = f"""
SELECT r.id::text, r.state_type, s.state_details->>'deployment_concurrency_lease_id'
FROM flow_run r LEFT JOIN flow_run_state s ON s.id = r.state_id
WHERE r.deployment_id = $1::uuid AND r.state_type IN {ACTIVE_TYPES!r}
"""
PG_LEASES = """
SELECT l.id::text, l.flow_run_id::text, r.state_type, l.expiration >= now()
FROM concurrency_lease l LEFT JOIN flow_run r ON r.id = l.flow_run_id
WHERE l.deployment_id = $1::uuid
"""
SQLITE_ACTIVE = f"""
SELECT r.id, r.state_type, json_extract(s.state_details, '$.deployment_concurrency_lease_id')
FROM flow_run r LEFT JOIN flow_run_state s ON s.id = r.state_id
WHERE r.deployment_id = ? AND r.state_type IN {ACTIVE_TYPES!r}
"""
# Timestamps are naive UTC text in one fixed format on SQLite (server/db/types.py).
SQLITE_LEASES = """
SELECT l.id, l.flow_run_id, r.state_type, l.expiration
FROM concurrency_lease l LEFT JOIN flow_run r ON r.id = l.flow_run_id
WHERE l.deployment_id = ?
"""


class SlotReader:
    """Reads a deployment's active runs and its leases from the database directly (not
    through the service), both in one snapshot: a read-only REPEATABLE READ transaction
    on PostgreSQL, one read transaction on SQLite (WAL: it never blocks the server)."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._pg: asyncpg.Connection | None = None
        self._sqlite: sqlite3.Connection | None = None

    async def __aenter__(self) -> SlotReader:
        if self.database_url.startswith("sqlite"):
            path = self.database_url.split(":///", 1)[1]
            self._sqlite = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
        else:
            self._pg = await asyncpg.connect(self.database_url.replace("postgresql+asyncpg://", "postgresql://"))
        return self

    async def __aexit__(self, *exc) -> None:
        if self._pg is not None:
            await self._pg.close()
        if self._sqlite is not None:
            self._sqlite.close()

    async def read(self, deployment_id: str) -> tuple[list[ActiveRun], list[LeaseRow]]:
        if self._pg is not None:
            async with self._pg.transaction(isolation="repeatable_read", readonly=True):
                active = await self._pg.fetch(PG_ACTIVE, deployment_id)
                leases = await self._pg.fetch(PG_LEASES, deployment_id)
            return [ActiveRun(*row) for row in active], [LeaseRow(*row) for row in leases]
        return await asyncio.to_thread(self._read_sqlite, deployment_id)

    def _read_sqlite(self, deployment_id: str) -> tuple[list[ActiveRun], list[LeaseRow]]:
        assert self._sqlite is not None
        self._sqlite.execute("BEGIN")
        try:
            active = self._sqlite.execute(SQLITE_ACTIVE, (deployment_id,)).fetchall()
            leases = self._sqlite.execute(SQLITE_LEASES, (deployment_id,)).fetchall()
        finally:
            self._sqlite.execute("ROLLBACK")
        now = datetime.now(UTC).replace(tzinfo=None)
        return (
            [ActiveRun(*row) for row in active],
            [
                LeaseRow(id, run_id, state, datetime.fromisoformat(expiration) >= now)
                for id, run_id, state, expiration in leases
            ],
        )


def slot_problems(limit: int, active: Sequence[ActiveRun], leases: Sequence[LeaseRow]) -> tuple[SlotFigures, list[str]]:
    """What is wrong with one snapshot of a limited deployment (empty: all fine).

    A slot is a lease row, taken in the transaction that writes the run's PENDING and
    deleted in the one that takes it out of PENDING/RUNNING/CANCELLING; a lease row
    outlives its run's active state only by expiring, which is not deletion: it stays
    until its run leaves the active states or the reaper deletes it after expiry. Every
    lease of these tests lives 300 s, far longer than a test, so none may be expired; and
    the loads create their runs SCHEDULED (a run created directly in PENDING takes no
    slot, by design, and would be active without a lease). So:

    (a) the active runs of the deployment are exactly the runs holding a live lease;
    (b) it has at most `limit` live leases;
    (c) no lease row, live or expired, belongs to a run that is not active;
    (d) no run holds two leases, and each active run's current state names the lease it
        holds (the loads here have only PENDING and RUNNING runs, whose states always
        carry it)."""
    live = [lease for lease in leases if lease.live]
    figures = SlotFigures(limit, len(active), len(live), len(leases) - len(live))
    wrong: list[str] = []
    if len(live) > limit:
        wrong.append(f"(b) {len(live)} live leases, over the limit of {limit}")
    holders = Counter(lease.flow_run_id for lease in leases)
    active_ids = {run.id for run in active}
    live_holders = {lease.flow_run_id for lease in live}
    for run in active:
        if run.id not in live_holders:
            wrong.append(f"(a) run {run.id} is {run.state_type} but holds no live lease")
    for lease in leases:
        if not lease.live:
            wrong.append(f"lease {lease.id} of run {lease.flow_run_id} expired (no lease should, in a test)")
        if lease.flow_run_id not in active_ids:
            state = lease.run_state or "gone"
            wrong.append(f"(c) lease {lease.id} belongs to run {lease.flow_run_id}, which is not active ({state})")
    held = {lease.flow_run_id: lease.id for lease in leases}
    for run_id, count in holders.items():
        if count > 1:
            wrong.append(f"(d) run {run_id} holds {count} leases")
    for run in active:
        if run.id in held and run.lease_named != held[run.id]:
            wrong.append(f"(d) run {run.id} holds lease {held[run.id]}, its state names {run.lease_named}")
    return figures, wrong


async def check_slots(database_url: str, deployment_id: str, limit: int) -> tuple[SlotFigures, list[str]]:
    """One snapshot of the deployment's slots from the database, and what is wrong with it."""
    async with SlotReader(database_url) as reader:
        return slot_problems(limit, *await reader.read(deployment_id))


async def verify_slots(database_url: str, load: Load, limit: int, moment: str) -> list[str]:
    """`check_slots` for the load's deployment; its figures go into the load's, as `moment`."""
    figures, wrong = await check_slots(database_url, load.deployment_id, limit)
    load.figures.slots.append(f"{moment}: {figures.render()}")
    return [f"slots {moment}: {line}" for line in wrong]


class SlotWatch:
    """Checks the deployment's slots in snapshot after snapshot, every `interval` seconds
    in the background from `start()` to `stop()`, across whatever happens to the server
    meanwhile: a snapshot is one committed state of the database, so every one must hold."""

    def __init__(self, database_url: str, deployment_id: str, limit: int, interval: float = 0.02) -> None:
        self.database_url = database_url
        self.deployment_id = deployment_id
        self.limit = limit
        self.interval = interval
        self.snapshots = 0
        self.most_leases = 0
        self.wrong: list[str] = []
        self._stop = asyncio.Event()
        self._task: asyncio.Task | None = None

    async def start(self) -> SlotWatch:
        reader = await SlotReader(self.database_url).__aenter__()
        self._task = asyncio.create_task(self._watch(reader))
        return self

    async def stop(self) -> None:
        """Stops watching (again: does nothing); raises what the watching raised."""
        self._stop.set()
        if self._task is not None:
            task, self._task = self._task, None
            await task

    def render(self) -> str:
        return f"in {self.snapshots} snapshots throughout: at most {self.most_leases} live leases"

    async def _watch(self, reader: SlotReader) -> None:
        try:
            while not self._stop.is_set():
                figures, wrong = slot_problems(self.limit, *await reader.read(self.deployment_id))
                self.snapshots += 1
                self.most_leases = max(self.most_leases, figures.leases)
                self.wrong += [f"slots in snapshot {self.snapshots} ({figures.render()}): {line}" for line in wrong]
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), self.interval)
        finally:
            await reader.__aexit__(None, None, None)
