"""Argument types and filter building for the `flowrun` command's options."""

from __future__ import annotations

import argparse
import json
import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from google.protobuf import timestamp_pb2

from flowrun.v1 import filters_pb2, state_pb2

# Exit codes (README "Command line"): set-state and cancel tell the orchestration outcome.
EXIT_OK = 0  # success; for set-state and cancel: ACCEPT
EXIT_ERROR = 1  # the call failed (the error line names the gRPC code and reason)
EXIT_USAGE = 2  # bad command line (argparse's own code)
EXIT_REJECT = 3  # the server replaced the proposal (see the printed state and reason)
EXIT_WAIT = 4  # try again after the printed delay
EXIT_ABORT = 5  # the proposal was refused outright
EXIT_INTERRUPTED = 130  # Ctrl-C
EXIT_BROKEN_PIPE = 141  # stdout's reader went away (`| head`), as 128 + SIGPIPE

EXIT_BY_STATUS = {
    state_pb2.SET_STATE_STATUS_ACCEPT: EXIT_OK,
    state_pb2.SET_STATE_STATUS_REJECT: EXIT_REJECT,
    state_pb2.SET_STATE_STATUS_WAIT: EXIT_WAIT,
    state_pb2.SET_STATE_STATUS_ABORT: EXIT_ABORT,
}

STATE_TYPE_NAMES = [
    name.removeprefix("STATE_TYPE_") for name in state_pb2.StateType.keys() if name != "STATE_TYPE_UNSPECIFIED"
]


class Subparsers(Protocol):
    """What ArgumentParser.add_subparsers() returns, as the commands use it (argparse
    documents the object but gives its class no public name)."""

    def add_parser(self, name: str, **kwargs: Any) -> argparse.ArgumentParser: ...


def state_type(text: str) -> int:
    """Accept `running`, `RUNNING` or `STATE_TYPE_RUNNING`."""
    name = text.strip().upper()
    if not name.startswith("STATE_TYPE_"):
        name = "STATE_TYPE_" + name
    if name == "STATE_TYPE_UNSPECIFIED" or name not in state_pb2.StateType.keys():
        raise argparse.ArgumentTypeError(f"unknown state type {text!r} (choose from {', '.join(STATE_TYPE_NAMES)})")
    return state_pb2.StateType.Value(name)


def state_types(text: str) -> list[int]:
    """One type or a comma-separated list: `failed,crashed`."""
    return [state_type(part) for part in text.split(",") if part.strip()]


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return value


def uuid_text(text: str) -> str:
    """A transition id: any UUID spelling, sent in canonical form."""
    try:
        return str(uuid.UUID(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a UUID: {text!r}") from None


_ID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")


def is_uuid(text: str) -> bool:
    """Whether `text` is an id as the server reads ids (8-4-4-4-12 hex, either case);
    anything else given where an id or a name may go is taken as a name."""
    return bool(_ID.match(text))


_RELATIVE = re.compile(r"^now\s*(?:(?P<sign>[+-])\s*(?P<amount>\d+(?:\.\d+)?)\s*(?P<unit>[smhdw]))?$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def moment(text: str, *, now: datetime | None = None) -> datetime:
    """A point in time: ISO 8601 (`2026-12-01`, `2026-12-01T10:00:00+01:00`; no offset
    means UTC), `now`, or `now-2h` / `now+30m` (units s, m, h, d, w)."""
    value = text.strip()
    match = _RELATIVE.match(value.lower())
    if match:
        base = now or datetime.now(UTC)
        if not match["sign"]:
            return base
        delta = timedelta(seconds=float(match["amount"]) * _UNIT_SECONDS[match["unit"]])
        return base + delta if match["sign"] == "+" else base - delta
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not a time: {text!r} (use ISO 8601 such as 2026-12-01T10:00:00Z, or now, now-2h, now+30m)"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def timestamp(value: datetime) -> timestamp_pb2.Timestamp:
    result = timestamp_pb2.Timestamp()
    result.FromDatetime(value)
    return result


def parameter(text: str) -> tuple[str, Any]:
    """`key=value`: the value is read as JSON when it parses (`n=3`, `flags=[1,2]`,
    `ok=true`), else kept as a string (`name=etl`); `key:=...` never falls back."""
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    strict = key.endswith(":")
    key = key.removesuffix(":")
    try:
        return key, json.loads(raw)
    except json.JSONDecodeError:
        if strict:
            raise argparse.ArgumentTypeError(f"{key}: not JSON: {raw!r}") from None
        return key, raw


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise argparse.ArgumentTypeError(f"not JSON: {error}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError("must be a JSON object")
    return value


# Filters


def time_filter(after: datetime | None, before: datetime | None) -> filters_pb2.TimeFilter | None:
    if after is None and before is None:
        return None
    return filters_pb2.TimeFilter(
        after=None if after is None else timestamp(after),
        before=None if before is None else timestamp(before),
    )


def string_any(values: list[str] | None) -> filters_pb2.StringFilter | None:
    return filters_pb2.StringFilter(any=values) if values else None


def add_run_filter_options(parser: argparse.ArgumentParser) -> None:
    """The flow-run filters `run ls` and `run count` share."""
    group = parser.add_argument_group("filters (repeat an option to match any of its values)")
    group.add_argument("--flow", action="append", metavar="NAME", help="flow name")
    group.add_argument("--flow-id", action="append", metavar="ID", help="flow id")
    group.add_argument(
        "--state",
        action="append",
        type=state_types,
        metavar="TYPE[,TYPE]",
        help=f"state type: {', '.join(STATE_TYPE_NAMES).lower()}",
    )
    group.add_argument(
        "--not-state", action="append", type=state_types, metavar="TYPE[,TYPE]", help="state type is none of these"
    )
    group.add_argument("--state-name", action="append", metavar="NAME", help="state name, e.g. Late, AwaitingRetry")
    group.add_argument("--name", metavar="TEXT", help="run name contains TEXT")
    group.add_argument("--tag", action="append", metavar="TAG", help="run has this tag (repeat: has all of them)")
    group.add_argument("--deployment", action="append", metavar="ID", help="deployment id")
    group.add_argument("--deployment-name", action="append", metavar="NAME", help="deployment name")
    group.add_argument("--work-pool", action="append", metavar="NAME", help="work pool name")
    group.add_argument("--work-queue", action="append", metavar="NAME", help="work queue name")
    group.add_argument("--parent-run", action="append", metavar="ID", help="subflow runs of this flow run")
    for option, what in (
        ("started", "start time (the expected start when not started yet)"),
        ("ended", "end time"),
        ("expected", "expected start time"),
    ):
        group.add_argument(f"--{option}-after", type=moment, metavar="TIME", help=f"{what} at or after TIME")
        group.add_argument(f"--{option}-before", type=moment, metavar="TIME", help=f"{what} at or before TIME")


def run_filters(args: argparse.Namespace) -> dict[str, Any]:
    """The keyword filters for list_flow_runs / count_flow_runs from the options above."""
    run = filters_pb2.FlowRunFilter(
        name=filters_pb2.StringFilter(like=args.name) if args.name else None,
        tags=filters_pb2.TagsFilter(all=args.tag) if args.tag else None,
        flow_id=filters_pb2.IdFilter(any=args.flow_id) if args.flow_id else None,
        deployment_id=filters_pb2.IdFilter(any=args.deployment) if args.deployment else None,
        work_queue_name=string_any(args.work_queue),
        parent_flow_run_id=filters_pb2.IdFilter(any=args.parent_run) if args.parent_run else None,
        start_time=time_filter(args.started_after, args.started_before),
        end_time=time_filter(args.ended_after, args.ended_before),
        expected_start_time=time_filter(args.expected_after, args.expected_before),
    )
    if args.state or args.not_state or args.state_name:
        types = filters_pb2.StateTypeFilter(
            any=[kind for kinds in args.state or [] for kind in kinds],
            not_any=[kind for kinds in args.not_state or [] for kind in kinds],
        )
        run.state.CopyFrom(
            filters_pb2.FlowRunStateFilter(type=types if types.ByteSize() else None, name=string_any(args.state_name))
        )
    result: dict[str, Any] = {}
    if run.ByteSize():
        result["flow_run_filter"] = run
    if args.flow:
        result["flow_filter"] = filters_pb2.FlowFilter(name=filters_pb2.StringFilter(any=args.flow))
    if args.deployment_name:
        result["deployment_filter"] = filters_pb2.DeploymentFilter(name=string_any(args.deployment_name))
    if args.work_pool:
        result["work_pool_filter"] = filters_pb2.WorkPoolFilter(name=string_any(args.work_pool))
    return result


RUN_SORTS = {
    "id-desc": filters_pb2.FLOW_RUN_SORT_ID_DESC,
    "start-time": filters_pb2.FLOW_RUN_SORT_START_TIME_ASC,
    "start-time-desc": filters_pb2.FLOW_RUN_SORT_START_TIME_DESC,
    "expected-start-time": filters_pb2.FLOW_RUN_SORT_EXPECTED_START_TIME_ASC,
    "expected-start-time-desc": filters_pb2.FLOW_RUN_SORT_EXPECTED_START_TIME_DESC,
    "name": filters_pb2.FLOW_RUN_SORT_NAME_ASC,
    "name-desc": filters_pb2.FLOW_RUN_SORT_NAME_DESC,
    "next-scheduled-start-time": filters_pb2.FLOW_RUN_SORT_NEXT_SCHEDULED_START_TIME_ASC,
    "end-time-desc": filters_pb2.FLOW_RUN_SORT_END_TIME_DESC,
}

FLOW_SORTS = {
    "created-desc": filters_pb2.FLOW_SORT_CREATED_DESC,
    "updated-desc": filters_pb2.FLOW_SORT_UPDATED_DESC,
    "name": filters_pb2.FLOW_SORT_NAME_ASC,
    "name-desc": filters_pb2.FLOW_SORT_NAME_DESC,
}
