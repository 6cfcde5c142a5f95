"""The orchestration decision table of the reference (PREFECT-SPEC section 7) as data:
the plain table spelled out as in the spec (one line per current state, unforced and
forced), the named sub-states and the spec's "other variants" as one case each, and how
a case is described (Start, Proposal, Expect).

Shared by the gRPC table (tests/test_orchestration_decision_table.py, both databases)
and the in-memory one (tests/test_policy_engine_decision_table.py): both run exactly
these cases, under the same ids. Time-valued details and policy retry types are as a
client sends them: a timedelta is relative to the moment the run or proposal is made,
retry_type is the proto enum."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pytest

from flowrun.v1 import flow_run_pb2

TYPES = ("SCHEDULED", "PENDING", "RUNNING", "COMPLETED", "FAILED", "CANCELLED", "CRASHED", "PAUSED", "CANCELLING")
TERMINAL = ("COMPLETED", "FAILED", "CANCELLED", "CRASHED")

IN_FUTURE = timedelta(seconds=100)  # WAIT answers ~100 s
IN_PAST = timedelta(seconds=-60)
RESULT = {"type": "reference", "storage_key": "results/abc"}  # persisted result metadata

# Reason texts of the spec's legend; {T} is the current state type.
REASONS = {
    "a": "Cannot pause flows with no state.",
    "b": "Cannot pause flows that are not currently running.",
    "c": "Scheduled flow run has no infrastructure to terminate.",
    "d": "This run is in a {T} state and cannot transition to a PENDING state.",
    "e": "Cannot reschedule a run without an associated deployment.",
    "f": "Run is already in terminal state {T}.",
    "g": "This run cannot transition to the StateType.PENDING state from the StateType.PAUSED state.",
    "h": "Cannot transition flows that are cancelling to a state other than Cancelled.",
}
SCHEDULED_IN_FUTURE = "Scheduled time is in the future"
ONLY_SCHEDULED_LATE = "Only scheduled flows can be marked late."
ALREADY_COMPLETED = "Run is already COMPLETED."
DATA_LOSS = "Cannot overwrite a COMPLETED state that carries persisted result data with one that does not."
SUSPENDED_NO_INFRA = "Suspended flow run has no infrastructure to terminate."
PAUSE_TIMED_OUT = "The flow run pause has timed out and can no longer resume."
DUPLICATE = "This run has already made this state transition."

# Section 7, unforced. A = ACCEPT; R:x = REJECT to the current state; R>T:x = REJECT to a
# new state of type T; X:x = ABORT (current state kept). x is a key of REASONS.
CORE_TABLE = """
            SCHEDULED  PENDING  RUNNING  COMPLETED  FAILED  CANCELLED  CRASHED  PAUSED  CANCELLING
(none)      A          A        A        A          A       A          A        X:a     A
SCHEDULED   A          A        A        A          A       A          A        R:b     R>CANCELLED:c
PENDING     A          X:d      A        A          A       A          A        R:b     A
RUNNING     A          X:d      A        A          A       A          A        A       A
COMPLETED   X:e        A        A        A          A       A          X:f      X:f     X:f
FAILED      X:e        A        A        A          A       A          X:f      X:f     X:f
CANCELLED   X:e        X:d      A        A          A       A          X:f      X:f     X:f
CRASHED     X:e        A        A        A          A       A          X:f      X:f     X:f
PAUSED      A          R:g      A        A          A       A          A        R:b     A
CANCELLING  R:h        R:h      R:h      R:h        R:h     A          R:h      R:h     R:h
"""

# Forced proposals (minimal policy): everything is accepted, except what the minimal
# rules still refuse — a SCHEDULED run without infrastructure is cancelled right away.
FORCED_TABLE = """
            SCHEDULED  PENDING  RUNNING  COMPLETED  FAILED  CANCELLED  CRASHED  PAUSED  CANCELLING
(none)      A          A        A        A          A       A          A        A       A
SCHEDULED   A          A        A        A          A       A          A        A       R>CANCELLED:c
PENDING     A          A        A        A          A       A          A        A       A
RUNNING     A          A        A        A          A       A          A        A       A
COMPLETED   A          A        A        A          A       A          A        A       A
FAILED      A          A        A        A          A       A          A        A       A
CANCELLED   A          A        A        A          A       A          A        A       A
CRASHED     A          A        A        A          A       A          A        A       A
PAUSED      A          A        A        A          A       A          A        A       A
CANCELLING  A          A        A        A          A       A          A        A       A
"""


@dataclass(frozen=True)
class Start:
    """How the run looks before the proposal. type None: the run has no current state."""

    type: str | None
    name: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    data: Any = None
    deployment: bool = False
    infrastructure_pid: str = ""
    subflow: bool = False
    policy: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Proposal:
    type: str
    name: str = ""
    details: dict[str, Any] = field(default_factory=dict)
    data: Any = None
    message: str = ""
    force: bool = False


@dataclass(frozen=True)
class Expect:
    """status; `state` = (type, name) of a newly written state, or None when the current
    state is returned unchanged; `delay` = accepted range of WAIT seconds; `message` of
    the new state; `policy` = expected empirical_policy fields afterwards;
    `keeps_policy`: the empirical_policy is exactly as before."""

    status: str
    state: tuple[str, str] | None = None
    reason: str = ""
    delay: tuple[int, int] | None = None
    message: str = ""
    policy: dict[str, Any] = field(default_factory=dict)
    keeps_policy: bool = False


def run_in(type_: str | None, name: str = "", **setup: Any) -> Start:
    return Start(type_, name, **setup)


def propose(type_: str, name: str = "", **options: Any) -> Proposal:
    return Proposal(type_, name, **options)


def default_name(type_: str) -> str:
    return type_.capitalize()


def accepted(proposal: Proposal, **extra: Any) -> Expect:
    return Expect("ACCEPT", (proposal.type, proposal.name or default_name(proposal.type)), **extra)


def rejected(reason: str, to: str | None = None, name: str = "", **extra: Any) -> Expect:
    return Expect("REJECT", (to, name or default_name(to)) if to else None, reason, **extra)


def aborted(reason: str) -> Expect:
    return Expect("ABORT", None, reason)


def waits(reason: str = SCHEDULED_IN_FUTURE) -> Expect:
    # The server rounds the time left to whole seconds; a slow test run may lose one.
    return Expect("WAIT", None, reason, delay=(IN_FUTURE.seconds - 1, IN_FUTURE.seconds))


def table_cases(table: str, force: bool) -> list:
    lines = [line.split() for line in table.strip().splitlines()]
    columns = lines[0]
    # Every (current state or none) x (proposed state) pair, in the spec's order.
    assert tuple(columns) == TYPES
    assert tuple(row[0] for row in lines[1:]) == ("(none)", *TYPES)
    cases = []
    for row in lines[1:]:
        initial, cells = row[0], row[1:]
        initial_type = None if initial == "(none)" else initial
        for proposed_type, cell in zip(columns, cells, strict=True):
            proposal = Proposal(proposed_type, force=force)
            cases.append(
                pytest.param(
                    Start(initial_type),
                    proposal,
                    expectation(cell, proposal, initial_type),
                    id=f"{initial}->{proposed_type}",
                )
            )
    return cases


def expectation(cell: str, proposal: Proposal, initial_type: str | None) -> Expect:
    if cell == "A":
        return accepted(proposal)
    code, key = cell.split(":")
    reason = REASONS[key].replace("{T}", initial_type or "")
    if code == "X":
        return aborted(reason)
    if code == "R":
        return rejected(reason)
    assert code.startswith("R>"), cell
    return rejected(reason, to=code[2:])


def case(id_: str, start: Start, proposal: Proposal, expect: Expect):
    return pytest.param(start, proposal, expect, id=id_)


def variant_cases() -> list:
    late = propose("SCHEDULED", "Late")
    running, pending, cancelling = propose("RUNNING"), propose("PENDING"), propose("CANCELLING")
    suspend = propose("PAUSED", "Suspended", details={"pause_reschedule": True, "pause_key": "k"})
    resuming = propose("SCHEDULED", "Resuming")
    suspended = {"name": "Suspended", "details": {"pause_reschedule": True}, "deployment": True}
    fired = {"pause_keys": ["k"], "resuming": True, "retry_type": flow_run_pb2.RETRY_TYPE_IN_PROCESS}
    reset = {"pause_keys": [], "resuming": False}
    return [
        # Late (the late-runs service proposes SCHEDULED "Late").
        case("Scheduled->Late", run_in("SCHEDULED"), late, accepted(late)),
        case("Late->Late", run_in("SCHEDULED", "Late"), late, rejected("This flow run is already marked late.")),
        case("PENDING->Late", run_in("PENDING"), late, rejected(ONLY_SCHEDULED_LATE)),
        case("RUNNING->Late", run_in("RUNNING"), late, rejected(ONLY_SCHEDULED_LATE)),
        case("PAUSED->Late", run_in("PAUSED"), late, rejected(ONLY_SCHEDULED_LATE)),
        case("COMPLETED->Late", run_in("COMPLETED"), late, aborted(REASONS["e"])),
        case(
            "COMPLETED->Late with deployment keeps the policy",
            run_in("COMPLETED", deployment=True, policy=fired),
            late,
            rejected(ONLY_SCHEDULED_LATE, keeps_policy=True),
        ),
        case("CANCELLING->Late", run_in("CANCELLING"), late, rejected(REASONS["h"])),
        case("(none)->Late", run_in(None), late, accepted(late)),
        case("Late->RUNNING", run_in("SCHEDULED", "Late"), running, accepted(running)),
        # AwaitingRetry and retries (footnote 3).
        case("AwaitingRetry->RUNNING", run_in("SCHEDULED", "AwaitingRetry"), running, accepted(running)),
        case(
            "AwaitingRetry in the future->RUNNING",
            run_in("SCHEDULED", "AwaitingRetry", details={"scheduled_time": IN_FUTURE}),
            running,
            waits(),
        ),
        case(
            "RUNNING->FAILED with a retry left",
            run_in("RUNNING", policy={"retries": 1, "pause_keys": ["k"]}),
            propose("FAILED", message="boom"),
            rejected(
                "Retrying",
                to="SCHEDULED",
                name="AwaitingRetry",
                message="boom",
                policy={**reset, "retry_type": flow_run_pb2.RETRY_TYPE_IN_PROCESS},
            ),
        ),
        case(
            "RUNNING->FAILED with no retry left",
            run_in("RUNNING", policy={"retries": 0, "retry_type": flow_run_pb2.RETRY_TYPE_IN_PROCESS}),
            propose("FAILED"),
            accepted(propose("FAILED"), policy={"retry_type": None}),
        ),
        # Resuming (set by the resume endpoint for suspended runs).
        case(
            "Resuming->CANCELLING with infrastructure",
            run_in("SCHEDULED", "Resuming", infrastructure_pid="pid-1"),
            cancelling,
            rejected(REASONS["c"], to="CANCELLED"),
        ),
        case("Resuming->PENDING", run_in("SCHEDULED", "Resuming"), pending, accepted(pending)),
        case(
            "SCHEDULED->CANCELLING with infrastructure",
            run_in("SCHEDULED", infrastructure_pid="pid-1"),
            cancelling,
            accepted(cancelling),
        ),
        # Suspended: a pause that leaves the process (pause_reschedule).
        case(
            "Suspended->CANCELLING",
            run_in("PAUSED", **suspended),
            cancelling,
            rejected(SUSPENDED_NO_INFRA, to="CANCELLED"),
        ),
        case(
            "Suspended without deployment->RUNNING",
            run_in("PAUSED", "Suspended", details={"pause_reschedule": True}),
            running,
            rejected("Cannot reschedule a running flow run without a deployment."),
        ),
        case(
            "Suspended->Resuming",
            run_in("PAUSED", **suspended),
            resuming,
            accepted(resuming, policy={"resuming": True}),
        ),
        case(
            "RUNNING->Suspended without deployment",
            run_in("RUNNING"),
            suspend,
            aborted("Cannot suspend flows without a deployment."),
        ),
        case(
            "RUNNING->Paused with reschedule without deployment",
            run_in("RUNNING"),
            propose("PAUSED", details={"pause_reschedule": True}),
            aborted("Cannot pause flows without a deployment."),
        ),
        case(
            "RUNNING->Suspended",
            run_in("RUNNING", deployment=True),
            suspend,
            accepted(suspend, policy={"pause_keys": ["k"]}),
        ),
        case(
            "subflow RUNNING->Suspended",
            run_in("RUNNING", deployment=True, subflow=True),
            suspend,
            aborted("Cannot suspend subflows."),
        ),
        case(
            "SCHEDULED->Suspended",
            run_in("SCHEDULED"),
            suspend,
            rejected("Cannot suspend flows that are not currently running."),
        ),
        case("(none)->Suspended", run_in(None), suspend, aborted("Cannot suspend flows with no state.")),
        case(
            "RUNNING->Suspended key already fired",
            run_in("RUNNING", deployment=True, policy={"pause_keys": ["k"]}),
            suspend,
            rejected("This suspend has already fired."),
        ),
        # Blocking pauses.
        case(
            "RUNNING->PAUSED with a key",
            run_in("RUNNING"),
            propose("PAUSED", details={"pause_key": "k"}),
            accepted(propose("PAUSED"), policy={"pause_keys": ["k"]}),
        ),
        case(
            "RUNNING->PAUSED key already fired",
            run_in("RUNNING", policy={"pause_keys": ["k"]}),
            propose("PAUSED", details={"pause_key": "k"}),
            rejected("This pause has already fired."),
        ),
        case(
            "PAUSED->PENDING still marks the run resuming",
            run_in("PAUSED"),
            pending,
            rejected(REASONS["g"], policy={"resuming": True}),
        ),
        case(
            "PAUSED->RUNNING marks the run resuming",
            run_in("PAUSED"),
            running,
            accepted(running, policy={"resuming": True}),
        ),
        case(
            "PAUSED->SCHEDULED starts a new attempt",
            run_in("PAUSED", policy={"pause_keys": ["k"]}),
            propose("SCHEDULED"),
            accepted(propose("SCHEDULED"), policy={**reset, "retry_type": flow_run_pb2.RETRY_TYPE_RESCHEDULE}),
        ),
        # Pause timeouts (footnote 5).
        case(
            "PAUSED timed out->RUNNING",
            run_in("PAUSED", details={"pause_timeout": IN_PAST}),
            running,
            rejected(PAUSE_TIMED_OUT, to="FAILED", message="The flow was running and never resumed."),
        ),
        case(
            "PAUSED not timed out->RUNNING",
            run_in("PAUSED", details={"pause_timeout": IN_FUTURE}),
            running,
            accepted(running),
        ),
        case(
            "PAUSED timed out->CANCELLING",
            run_in("PAUSED", details={"pause_timeout": IN_PAST}),
            cancelling,
            accepted(cancelling),
        ),
        case(
            "Suspended timed out->Resuming",
            run_in(
                "PAUSED",
                name="Suspended",
                details={"pause_reschedule": True, "pause_timeout": IN_PAST},
                deployment=True,
            ),
            resuming,
            rejected(PAUSE_TIMED_OUT, to="FAILED", message="The flow was resuming and never resumed."),
        ),
        # PENDING sub-states (footnote 2).
        case(
            "Pending->Submitting",
            run_in("PENDING"),
            propose("PENDING", "Submitting"),
            accepted(propose("PENDING", "Submitting")),
        ),
        case(
            "Submitting->Submitting",
            run_in("PENDING", "Submitting"),
            propose("PENDING", "Submitting"),
            aborted(REASONS["d"].replace("{T}", "PENDING")),
        ),
        case(
            "Submitting->Pending",
            run_in("PENDING", "Submitting"),
            pending,
            aborted(REASONS["d"].replace("{T}", "PENDING")),
        ),
        case(
            "Submitting->InfrastructurePending",
            run_in("PENDING", "Submitting"),
            propose("PENDING", "InfrastructurePending"),
            accepted(propose("PENDING", "InfrastructurePending")),
        ),
        # Scheduled time in the future (footnote 1).
        case(
            "SCHEDULED in the future->RUNNING",
            run_in("SCHEDULED", details={"scheduled_time": IN_FUTURE}),
            running,
            waits(),
        ),
        case(
            "PENDING due in the future->RUNNING",
            run_in("PENDING", details={"scheduled_time": IN_FUTURE}),
            running,
            waits(),
        ),
        case(
            "SCHEDULED in the future->PENDING",
            run_in("SCHEDULED", details={"scheduled_time": IN_FUTURE}),
            pending,
            accepted(pending),
        ),
        case(
            "forced SCHEDULED in the future->RUNNING",
            run_in("SCHEDULED", details={"scheduled_time": IN_FUTURE}),
            propose("RUNNING", force=True),
            accepted(running),
        ),
        # Terminal runs with a deployment may be rescheduled; leaving a terminal state
        # starts a new attempt.
        *[
            case(
                f"{terminal}->SCHEDULED with deployment",
                run_in(terminal, deployment=True, policy=fired),
                propose("SCHEDULED"),
                accepted(propose("SCHEDULED"), policy={**reset, "retry_type": flow_run_pb2.RETRY_TYPE_RESCHEDULE}),
            )
            for terminal in TERMINAL
        ],
        case(
            "FAILED->RUNNING starts a new attempt",
            run_in("FAILED", policy=fired),
            running,
            accepted(running, policy={**reset, "retry_type": None}),
        ),
        case(
            "FAILED->COMPLETED keeps the policy",
            run_in("FAILED", policy=fired),
            propose("COMPLETED"),
            accepted(propose("COMPLETED"), keeps_policy=True),
        ),
        # A COMPLETED run with a persisted result (footnote 4).
        case("COMPLETED with result->RUNNING", run_in("COMPLETED", data=RESULT), running, rejected(ALREADY_COMPLETED)),
        case("COMPLETED with result->PENDING", run_in("COMPLETED", data=RESULT), pending, rejected(ALREADY_COMPLETED)),
        case(
            "COMPLETED with result->SCHEDULED",
            run_in("COMPLETED", data=RESULT, deployment=True),
            propose("SCHEDULED"),
            rejected(ALREADY_COMPLETED),
        ),
        case(
            "COMPLETED with result->COMPLETED",
            run_in("COMPLETED", data=RESULT),
            propose("COMPLETED"),
            rejected(DATA_LOSS),
        ),
        case(
            "COMPLETED with result->COMPLETED unpersisted",
            run_in("COMPLETED", data=RESULT),
            propose("COMPLETED", data={"type": "unpersisted"}),
            rejected(DATA_LOSS),
        ),
        case(
            "COMPLETED with result->COMPLETED with result",
            run_in("COMPLETED", data=RESULT),
            propose("COMPLETED", data=RESULT),
            accepted(propose("COMPLETED")),
        ),
        case(
            "COMPLETED with result->FAILED",
            run_in("COMPLETED", data=RESULT),
            propose("FAILED"),
            accepted(propose("FAILED")),
        ),
        case(
            "COMPLETED with result->CRASHED",
            run_in("COMPLETED", data=RESULT),
            propose("CRASHED"),
            aborted(REASONS["f"].replace("{T}", "COMPLETED")),
        ),
        case("COMPLETED with plain data->RUNNING", run_in("COMPLETED", data="done"), running, accepted(running)),
        case(
            "forced COMPLETED with result->COMPLETED",
            run_in("COMPLETED", data=RESULT),
            propose("COMPLETED", force=True),
            rejected(DATA_LOSS),
        ),
        case(
            "forced COMPLETED with result->RUNNING",
            run_in("COMPLETED", data=RESULT),
            propose("RUNNING", force=True),
            accepted(running),
        ),
        # Cancelling runs without infrastructure, forced.
        case(
            "forced SCHEDULED->CANCELLING with infrastructure",
            run_in("SCHEDULED", infrastructure_pid="pid-1"),
            propose("CANCELLING", force=True),
            accepted(cancelling),
        ),
        case(
            "forced Resuming->CANCELLING",
            run_in("SCHEDULED", "Resuming", infrastructure_pid="pid-1"),
            propose("CANCELLING", force=True),
            rejected(REASONS["c"], to="CANCELLED"),
        ),
        case(
            "forced Suspended->CANCELLING",
            run_in("PAUSED", **suspended),
            propose("CANCELLING", force=True),
            rejected(SUSPENDED_NO_INFRA, to="CANCELLED"),
        ),
        # Idempotent transitions (transition_id).
        case(
            "same transition_id",
            run_in("RUNNING", details={"transition_id": "7d0c6c57-3f27-4a4e-9d2c-5c1a2c6b8a01"}),
            propose("COMPLETED", details={"transition_id": "7d0c6c57-3f27-4a4e-9d2c-5c1a2c6b8a01"}),
            rejected(DUPLICATE),
        ),
        case(
            "other transition_id",
            run_in("RUNNING", details={"transition_id": "7d0c6c57-3f27-4a4e-9d2c-5c1a2c6b8a01"}),
            propose("COMPLETED", details={"transition_id": "0b7f3a52-9d8e-4f61-a1c2-3e4d5f6a7b8c"}),
            accepted(propose("COMPLETED")),
        ),
        case(
            "forced same transition_id",
            run_in("RUNNING", details={"transition_id": "7d0c6c57-3f27-4a4e-9d2c-5c1a2c6b8a01"}),
            propose("COMPLETED", force=True, details={"transition_id": "7d0c6c57-3f27-4a4e-9d2c-5c1a2c6b8a01"}),
            accepted(propose("COMPLETED")),
        ),
    ]
