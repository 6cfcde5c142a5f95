"""`flowrun run watch`: print flow-run changes as they happen (WatchFlowRuns, or
WatchFlowRun with --run), one line per event, until Ctrl-C, --count events, or (with
--run) the run finishing. Off a terminal or with --output json: one JSON object per
event per line, then the summary {"events": N, "cursor": "..."}: pass that cursor to
--cursor to continue where this one stopped."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from rich.markup import escape

from flowrun.client import cli_args as a
from flowrun.client import cli_output as out
from flowrun.client.cli_args import Subparsers
from flowrun.client.client import FlowrunClient
from flowrun.v1 import filters_pb2

EVENT_KIND_PREFIX = "FLOW_RUN_EVENT_KIND_"


def add_parser(run: Subparsers, common: argparse.ArgumentParser) -> None:
    watch = run.add_parser(
        "watch",
        parents=[common],
        help="print run changes as they happen (Ctrl-C stops)",
        description=(__doc__ or "").split("\n\n")[0],
    )
    group = watch.add_argument_group("filters (repeat an option to match any of its values)")
    group.add_argument("--run", metavar="ID", help="one run: its current state, then its changes until it finishes")
    group.add_argument("--flow", action="append", metavar="NAME_OR_ID", help="runs of this flow")
    group.add_argument("--state", action="append", type=a.state_types, metavar="TYPE[,TYPE]", help="state type")
    group.add_argument("--tag", action="append", metavar="TAG", help="run has this tag (repeat: has all of them)")
    group.add_argument("--deployment", action="append", type=a.uuid_text, metavar="ID", help="deployment id")
    watch.add_argument("--cursor", default="", help="continue right after this cursor (from an earlier watch)")
    watch.add_argument("--snapshot", action="store_true", help="first print every matching run as it is now")
    watch.add_argument("--count", type=a.positive_int, metavar="N", help="stop after N events")
    watch.add_argument("--keep-going", action="store_true", help="with --run: go on after the run finishes")
    watch.set_defaults(command=_watch)


async def _filter(client: FlowrunClient, args: argparse.Namespace) -> filters_pb2.FlowRunFilter | None:
    from flowrun.client.commands_runs import resolve_flow_id

    run = filters_pb2.FlowRunFilter(
        tags=filters_pb2.TagsFilter(all=args.tag) if args.tag else None,
        deployment_id=filters_pb2.IdFilter(any=args.deployment) if args.deployment else None,
    )
    if args.flow:
        run.flow_id.CopyFrom(filters_pb2.IdFilter(any=[await resolve_flow_id(client, flow) for flow in args.flow]))
    if args.state:
        types = filters_pb2.StateTypeFilter(any=[kind for kinds in args.state for kind in kinds])
        run.state.CopyFrom(filters_pb2.FlowRunStateFilter(type=types))
    return run if run.ByteSize() else None


async def _watch(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    as_json = out.wants_json(args.output, sys.stdout)
    console = out.console(sys.stdout)
    if args.run:
        messages: Any = client.watch_flow_run(a.uuid_text(args.run), cursor=args.cursor, keep_going=args.keep_going)
    else:
        messages = client.watch_flow_runs(
            flow_run_filter=await _filter(client, args), cursor=args.cursor, snapshot=args.snapshot
        )
    events, cursor = 0, args.cursor
    try:
        async for message in messages:
            kind = message.WhichOneof("message")
            if kind == "event":
                events += 1
                cursor = message.event.cursor
            if as_json:
                print(json.dumps(out.to_jsonable(message), ensure_ascii=False), flush=True)
            elif kind == "event":
                console.print(event_line(message.event))
            elif kind == "snapshot_run":
                run = message.snapshot_run
                state = out.state_cell(run.state_type, run.state_name)
                console.print(f"{'now':<20} {'SNAPSHOT':<14} {run.id}  {escape(run.name)}  {state}")
            sys.stdout.flush()
            if args.count is not None and events >= args.count:
                break
    finally:
        await messages.aclose()
    summary = {"events": events, "cursor": cursor}
    return out.Result(data=summary, human=lambda _console: None, notes=[f"{events} events; last cursor: {cursor}"])


def event_line(event: Any) -> str:
    """`2026-12-03 07:30:01Z  STATE_CHANGED  <run id>  <run name>  PENDING -> RUNNING`"""
    kind = _kind(event.kind)
    run = event.flow_run
    change = ""
    if event.HasField("state"):
        new = out.state_cell(event.state.type, event.state.name)
        before = out.state_type_name(event.previous_state_type) if event.HasField("previous_state_type") else ""
        change = f"{before} -> {new}" if before else new
    return f"{out.when(event.time):<20} {kind:<14} {run.id}  {escape(run.name)}  {change}".rstrip()


def _kind(value: int) -> str:
    from flowrun.v1 import flow_run_event_pb2

    return flow_run_event_pb2.FlowRunEventKind.Name(value).removeprefix(EVENT_KIND_PREFIX)
