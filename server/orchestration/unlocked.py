"""SetFlowRunState in two round trips on PostgreSQL: read without a lock, decide, then
write only if nothing changed, in one statement.

The locking path (transitions.set_state inside a unit of work) costs five round trips:
BEGIN, the locked read, the write, the event, COMMIT. This path costs two, each its own
transaction: (1) read the run, its current state and its row version (PostgreSQL's
`xmin`, which every committed write of the row changes), with no lock; (2) run the same
policy and bookkeeping in memory, then send the whole outcome as one statement
(orchestration_sql.write_transition_if_unchanged_sql) that takes the row lock, checks the
row version is still the one read, and only then writes the state, the run and the
watchers' event. A proposal the policy turns down without writing anything (REJECT to
the current state, WAIT, ABORT) needs no second statement at all.

Why this is serializable per run, exactly as the locking path: a run changes only by
writes of its row (every state change, update and delete writes it), and each such write
commits a new row version. The conditional UPDATE locks the row; PostgreSQL then checks
its WHERE against the latest committed version (after waiting for any transaction that
held the lock). So the write happens only if no change of the run committed between the
read and the write, and while it holds the lock none can: the outcome is the one the
policy would have reached with the row locked from the start. If the version changed, or
the run went, nothing is written and the whole proposal is decided again from a fresh
read (up to ATTEMPTS times, then the locking path decides, waiting on the lock in turn).
A decision with no write is the outcome at the moment of the read, which saw a
committed state.

Rules that reach for other rows (deployment concurrency slots and leases, a subflow's
parent task run) cannot be decided from one row version: any use of the repositories by
a rule raises NeedsRowLocks, the attempt is dropped, nothing having been written, and the
locking path decides instead. So runs of limited deployments and subflow runs take the
locking path; plain runs, the common case, take this one.

A connection that dies under a write (a pooled one after a database restart, or one
that dies mid-call) leaves its outcome unknown; the write is sent once more on a
connection that BEGIN found live, and can never apply twice: the conditional write is
bound to the row version it read (_write_again), the new run to its id (_insert).

Used only where each statement is bounded by lock_timeout on its own
(Database.single_statements: PostgreSQL, not behind pgbouncer)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from flowrun.server import errors, metrics
from flowrun.server.call_scope import call_abandoned
from flowrun.server.db.dialect import LOCK_NOT_AVAILABLE, StatementTimedOut, is_connection_lost, sqlstate
from flowrun.server.db.unit_of_work import Database
from flowrun.server.domain.events import encode_payload
from flowrun.server.domain.flow_runs import FlowRun, FlowRunCreate
from flowrun.server.domain.states import State
from flowrun.server.orchestration.context import OrchestrationContext, TransitionResult
from flowrun.server.orchestration.engine import orchestrate
from flowrun.server.orchestration.policies import FLOW_RUNS
from flowrun.server.orchestration.transitions import RunKind, record_outcome
from flowrun.server.repositories.flow_runs import flow_run_from_row, key_holder_gone, new_run_values
from flowrun.server.repositories.orchestration_sql import RUN_COLUMNS

if TYPE_CHECKING:
    from flowrun.server.config import Settings

#: Decisions from a fresh read before the locking path takes over.
ATTEMPTS = 3


class NeedsRowLocks(Exception):
    """A rule used the repositories: the proposal must be decided with the locks the
    locking path takes."""


class _NoOtherRows:
    """The context's `repos` on this path: any use means the locking path must decide."""

    def __getattr__(self, name: str) -> NoReturn:
        raise NeedsRowLocks(name)


_NO_OTHER_ROWS: Any = _NoOtherRows()


class _Deferred:
    """The context's store on this path: what validate() and finish() would write is
    noted, and written after the policy in one conditional statement."""

    def __init__(self) -> None:
        self.state: State | None = None
        self.policy_changed = False

    async def save_transition(self, run: Any, state: State, policy: dict[str, Any], now: datetime) -> None:
        self.state = state

    async def save_policy(self, run_id: str, policy: dict[str, Any], now: datetime) -> None:
        self.policy_changed = True


async def set_state_unlocked(
    database: Database,
    kind: RunKind,
    run_id: str,
    proposed: State,
    again: Callable[[], State],
    now: datetime,
    *,
    force: bool,
    settings: Settings,
) -> TransitionResult | None:
    """The outcome of `proposed`, decided and written as the module docstring says; None
    when the locking path must decide (nothing was written then). Rules change the
    proposal they see: `proposed` is used up by the first attempt, and `again()` makes a
    fresh copy for each later one (and the caller needs one of its own after a None).
    Raises the kind's NotFound for an unknown run, and what the policy raises."""
    for attempt in range(ATTEMPTS):
        async with database.unit_of_work(write=True, transaction=False) as uow:
            runs = uow.repos.flow_runs
            try:
                read = await runs.read_with_version(run_id)
            except Exception as exc:
                if not is_connection_lost(exc):
                    raise
                return None  # a dead pooled connection: the locking path opens a live one
            if read is None:
                raise kind.not_found(run_id)
            run, version = read
            if attempt:
                proposed = again()
            decided = await _decide(kind, run, proposed, force, now, settings)
            if decided is None:
                return None
            context, store, result = decided
            try:
                written: bool | None = await _write(runs, context, store, version, kind)
            except Exception as exc:
                if not is_connection_lost(exc):
                    raise
                written = None  # the answer was lost with the connection: see _write_again
        if written is None:
            written = await _write_again(database, context, store, version, kind)
        if written:
            if metrics.enabled:
                record_outcome(kind.name, context.initial_type, proposed.type, result, force)
            return result
    return None


async def _decide(
    kind: RunKind, run: Any, proposed: State, force: bool, now: datetime, settings: Settings
) -> tuple[OrchestrationContext, _Deferred, TransitionResult] | None:
    """The kind's policy and bookkeeping on `run` in memory: the context, what it would
    write, and the result; None when a rule reached for other rows."""
    store = _Deferred()
    context = OrchestrationContext(
        run=run,
        initial_state=run.state,
        proposed_state=proposed,
        repos=_NO_OTHER_ROWS,
        store=store,
        now=now,
        settings=settings,
    )
    try:
        await orchestrate(context, kind.policy(force), kind.bookkeeping)
        return context, store, await context.finish()
    except NeedsRowLocks:
        return None


def _stop_if_abandoned() -> None:
    """Before the one write: a client that went away gets nothing written."""
    if call_abandoned():
        raise asyncio.CancelledError("the client went away; nothing was written")


async def _write(runs: Any, context: OrchestrationContext, store: _Deferred, version: int, kind: RunKind) -> bool:
    """Whether the outcome was written (or needed no write); timed as the lock wait (the
    statement takes the row lock first)."""
    if store.state is None and not store.policy_changed:
        return True
    _stop_if_abandoned()
    started = time.perf_counter()
    try:
        if store.state is not None:
            written = await runs.save_transition_if_unchanged(
                context.run, version, store.state, context.initial_type, context.now
            )
        else:
            written = await runs.save_policy_if_unchanged(context.run, version, context.now)
    except Exception as exc:
        if metrics.enabled and sqlstate(exc) == LOCK_NOT_AVAILABLE:
            metrics.lock_timeouts(kind.name).inc()
        raise
    if metrics.enabled:
        metrics.lock_wait(kind.name).observe(time.perf_counter() - started)
    return bool(written)


async def _write_again(
    database: Database, context: OrchestrationContext, store: _Deferred, version: int, kind: RunKind
) -> bool:
    """After the connection died under the conditional write, which may or may not have
    been applied: the same write once more, on a connection that BEGIN found live (a dead
    pooled one fails its BEGIN and is replaced). Both are conditional on the same row
    version, so at most one of them applies. If this one did not, the new state's id
    tells whether the first did (True: the outcome is written) or another change came
    first (False: decide again from a fresh read; the first can no longer apply). A write
    of the policy alone leaves no such mark: whether it was applied cannot be known, and
    the call is answered UNAVAILABLE."""
    async with _resent(), database.unit_of_work(write=True) as uow:
        if await _write(uow.repos.flow_runs, context, store, version, kind):
            return True
        if store.state is None:
            raise ConnectionError(OUTCOME_UNKNOWN)
        return await uow.repos.states.get(store.state.id) is not None


OUTCOME_UNKNOWN = "The database connection was lost during the write; its outcome is unknown"


@contextlib.asynccontextmanager
async def _resent() -> AsyncIterator[None]:
    """Around a write sent again after its connection died: a lock wait that times out
    there (lock_timeout, or statement_timeout) may be the first attempt itself, still
    running on the server (the client side of its connection gave up first) and about to
    commit. ABORTED, or a statement timeout's "nothing was written", would say nothing
    was written; the truth is that the outcome is unknown (ConnectionError: UNAVAILABLE)."""
    try:
        yield
    except Exception as exc:
        if sqlstate(exc) == LOCK_NOT_AVAILABLE or isinstance(exc, StatementTimedOut):
            raise ConnectionError(OUTCOME_UNKNOWN) from exc
        raise


async def create_flow_run_unlocked(
    database: Database, new: FlowRunCreate, initial: State, now: datetime, settings: Settings
) -> tuple[FlowRun, bool] | None:
    """CreateFlowRun in one round trip on PostgreSQL: the run's first state `initial` is
    orchestrated in memory (forced, as for every new run) on the run as it will be
    inserted, then run, state and CREATED event go in one statement
    (FlowRunRepository.create_in_one_statement); a taken idempotency key costs a second
    read. Nobody else can see the run before that statement commits, so nothing can
    change it between the decision and the write. Returns (run, created); None, with
    nothing written, when the transaction path must do it: a run with a deployment
    (labels, version, slots), a work pool (queue resolution) or a parent task run
    (existence check), a rule that reaches for other rows, or no single statements
    here. `initial` is used up either way. Raises NotFound for an unknown flow."""
    if not database.single_statements or new.deployment_id or new.work_pool_name or new.parent_task_run_id:
        return None
    heartbeat = new.heartbeat_timeout_seconds
    labels = {"prefect.flow.id": new.flow_id, **new.labels}
    values = new_run_values(new, now, labels, settings.heartbeat_timeout_seconds if heartbeat is None else heartbeat)
    run = flow_run_from_row(dict.fromkeys(RUN_COLUMNS) | values)  # no state yet
    decided = await _decide(FLOW_RUNS, run, initial, True, now, settings)
    if decided is None or decided[1].state is None:
        return None
    _, store, result = decided
    assert store.state is not None
    payload = encode_payload(run, store.state, None)
    try:
        done = await _insert(database, run, store.state, payload, new.idempotency_key, transaction=False)
    except Exception as exc:
        if not is_connection_lost(exc):
            raise
        # The statement died with its connection and may have committed. Sent once more
        # with the same run id it cannot insert a second run (see _insert), so it is safe
        # to send again, in a transaction: BEGIN moves past dead pooled connections.
        async with _resent():
            done = await _insert(database, run, store.state, payload, new.idempotency_key, transaction=True)
    if metrics.enabled and done[1]:
        record_outcome(FLOW_RUNS.name, None, initial.type, result, True)
    return done


async def _insert(
    database: Database, run: FlowRun, state: State, payload: str, key: str | None, *, transaction: bool
) -> tuple[FlowRun, bool]:
    """The one-statement insert of `run` with its first state: (run, created). Nothing is
    inserted when the idempotency key is taken, or when the run's own id is: an earlier
    attempt of this call committed it (its answer lost). Then the run that holds the key,
    or has the id, is the answer: created if it is this call's own run."""
    async with database.unit_of_work(write=True, transaction=transaction) as uow:
        runs = uow.repos.flow_runs
        _stop_if_abandoned()
        flow_exists, inserted = await runs.create_in_one_statement(run, state, payload)
        if not flow_exists:
            raise errors.flow_not_found(run.flow_id)
        if inserted:
            return run, True
        existing = await (runs.get(run.id) if key is None else runs.get_by_idempotency_key(run.flow_id, key))
        if existing is None:
            raise key_holder_gone()
        return existing, existing.id == run.id
