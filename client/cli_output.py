"""How `flowrun` commands print: tables for people, JSON for programs.

A command returns a Result: `data` is what `--output json` prints (a proto message, or a
dict or list of them, printed with proto field names and fields at their default values,
so `created: false` stays visible to jq), and `human` draws the same thing with rich for
`--output table`. `--output auto` (the default) means a table when stdout is a terminal
and JSON when it is not, so `flowrun ... | jq` keeps working as it did when the command
printed JSON only.
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from google.protobuf import json_format, timestamp_pb2
from google.protobuf.message import Message
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from flowrun.v1 import deployment_pb2, flow_pb2, flow_run_pb2, state_pb2, task_run_pb2, work_pool_pb2

OUTPUT_CHOICES = ("auto", "table", "json")

# Colours by state type, as a terminal shows them (rich drops them when not on a terminal).
_STATE_STYLES = {
    "SCHEDULED": "yellow",
    "PENDING": "bright_black",
    "RUNNING": "blue",
    "COMPLETED": "green",
    "FAILED": "red",
    "CANCELLED": "bright_black",
    "CRASHED": "magenta",
    "PAUSED": "bright_black",
    "CANCELLING": "bright_black",
}


@dataclass
class Result:
    """What a command prints and how it exits."""

    data: Any
    human: Callable[[Console], None]
    exit_code: int = 0
    # Lines for stderr in table mode only (hints such as "more runs: --all").
    notes: list[str] = field(default_factory=list)
    # Lines for stderr in every mode (one per failed item of a many-item command).
    errors: list[str] = field(default_factory=list)


def wants_json(output: str, stream: TextIO) -> bool:
    if output == "auto":
        return not _isatty(stream)
    return output == "json"


def emit(result: Result, output: str, stream: TextIO | None = None) -> None:
    """Print a result to stdout as JSON or as a table (see the module docstring)."""
    stream = stream if stream is not None else sys.stdout
    for error in result.errors:
        print(error, file=sys.stderr)
    if wants_json(output, stream):
        stream.write(json.dumps(to_jsonable(result.data), indent=2, ensure_ascii=False) + "\n")
        stream.flush()
        return
    result.human(console(stream))
    stream.flush()
    for note in result.notes:
        print(note, file=sys.stderr)


class _Console(Console):
    def on_broken_pipe(self) -> None:
        # rich's default exits the process with code 1; the command line handles a closed
        # stdout itself (client/cli.py: quietly, exit code 141).
        raise BrokenPipeError


def console(stream: TextIO) -> Console:
    """A rich console on `stream`. Off a terminal (a pipe, a file) it is wide enough that
    tables are not folded at 80 columns, and it writes no colour codes."""
    if _isatty(stream):
        return _Console(file=stream, highlight=False)
    width = int(os.environ.get("COLUMNS", "0") or 0) or 200
    return _Console(file=stream, width=width, highlight=False, no_color=True, force_terminal=False)


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def to_jsonable(value: Any) -> Any:
    if isinstance(value, Message):
        return json_format.MessageToDict(
            value, preserving_proto_field_name=True, always_print_fields_with_no_presence=True
        )
    if isinstance(value, dict):
        return {key: to_jsonable(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(item) for item in value]
    return value


# Cells


def when(timestamp: timestamp_pb2.Timestamp | None) -> str:
    """A timestamp as `2026-12-03 06:52:24Z`, or "" when it is not set."""
    if timestamp is None or (timestamp.seconds == 0 and timestamp.nanos == 0):
        return ""
    moment = datetime.fromtimestamp(timestamp.seconds + timestamp.nanos / 1e9, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%SZ")


def state_type_name(value: int) -> str:
    return state_pb2.StateType.Name(value).removeprefix("STATE_TYPE_")


def state_cell(state_type: int, name: str) -> str:
    type_name = state_type_name(state_type) if state_type else ""
    style = _STATE_STYLES.get(type_name)
    label = name or type_name.title()
    return f"[{style}]{_escape(label)}[/]" if style and label else _escape(label)


def tags_cell(tags: Iterable[str]) -> str:
    return _escape(", ".join(tags))


def _escape(text: str) -> str:
    return escape(text)


# Columns a narrow terminal must leave whole (ids are copied from tables, times read at a
# glance); the others fold onto more lines when there is no room.
_WHOLE = frozenset({"ID", "FLOW ID", "WHEN", "ENDED", "CREATED", "TIMESTAMP", "STATE"})


def table(*columns: str, title: str | None = None) -> Table:
    grid = Table(title=title, title_justify="left", header_style="bold", box=None, pad_edge=False)
    for column in columns:
        grid.add_column(column, overflow="fold", no_wrap=column in _WHOLE)
    return grid


def compact(grid: Table) -> Table:
    """The table without the columns that are empty in every row (tags nobody set, say),
    which leaves their room to the others. A table without rows keeps its headers."""
    if not grid.row_count:
        return grid
    kept = [column for column in grid.columns if any(str(cell) for cell in column.cells)]
    result = table(*(str(column.header) for column in kept), title=grid.title if isinstance(grid.title, str) else None)
    for row in zip(*(list(column.cells) for column in kept), strict=True):
        result.add_row(*row)
    return result


def fields(rows: Sequence[tuple[str, str]]) -> Table:
    """A two-column key/value view of one object."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for key, value in rows:
        grid.add_row(key, value)
    return grid


def struct_cell(message: Message) -> str:
    data = to_jsonable(message)
    return _escape(json.dumps(data, ensure_ascii=False, sort_keys=True)) if data else ""


# Views of each entity


def flows_table(flows: Sequence[flow_pb2.Flow]) -> Table:
    grid = table("ID", "NAME", "TAGS", "CREATED")
    for flow in flows:
        grid.add_row(flow.id, _escape(flow.name), tags_cell(flow.tags), when(flow.created))
    return compact(grid)


def flow_fields(flow: flow_pb2.Flow) -> Table:
    rows = [
        ("id", flow.id),
        ("name", _escape(flow.name)),
        ("tags", tags_cell(flow.tags)),
        ("labels", struct_cell(flow.labels)),
        ("created", when(flow.created)),
        ("updated", when(flow.updated)),
    ]
    return fields([(key, value) for key, value in rows if value])


def runs_table(runs: Sequence[flow_run_pb2.FlowRun], flow_names: dict[str, str]) -> Table:
    grid = table("ID", "FLOW", "NAME", "STATE", "WHEN", "TAGS")
    for run in runs:
        moment = run.start_time if run.HasField("start_time") else run.expected_start_time
        grid.add_row(
            run.id,
            _escape(flow_names.get(run.flow_id, run.flow_id)),
            _escape(run.name),
            state_cell(run.state_type, run.state_name),
            when(moment),
            tags_cell(run.tags),
        )
    return compact(grid)


def run_fields(run: flow_run_pb2.FlowRun, flow_name: str | None) -> Table:
    rows = [
        ("id", run.id),
        ("name", _escape(run.name)),
        ("flow", _escape(f"{flow_name} ({run.flow_id})" if flow_name else run.flow_id)),
        ("state", state_cell(run.state_type, run.state_name)),
        ("state message", _escape(run.state.message)),
        ("tags", tags_cell(run.tags)),
        ("parameters", struct_cell(run.parameters)),
        ("deployment", run.deployment_id),
        ("work pool", _escape(run.work_pool_name)),
        ("work queue", _escape(run.work_queue_name)),
        ("infrastructure pid", _escape(run.infrastructure_pid)),
        ("idempotency key", _escape(run.idempotency_key)),
        ("expected start", when(run.expected_start_time)),
        ("next scheduled start", when(run.next_scheduled_start_time)),
        ("started", when(run.start_time)),
        ("ended", when(run.end_time)),
        ("run count", str(run.run_count)),
        ("created", when(run.created)),
        ("updated", when(run.updated)),
    ]
    return fields([(key, value) for key, value in rows if value])


def states_table(states: Sequence[state_pb2.State], title: str | None = None) -> Table:
    grid = table("TIMESTAMP", "STATE", "ID", "MESSAGE", title=title)
    for state in states:
        type_name = state_type_name(state.type)
        # The type only where the name does not say it: "AwaitingRetry (SCHEDULED)".
        suffix = "" if state.name.upper() == type_name else f" ({type_name})"
        grid.add_row(
            when(state.timestamp), state_cell(state.type, state.name) + suffix, state.id, _escape(state.message)
        )
    return compact(grid)


def task_runs_table(task_runs: Sequence[task_run_pb2.TaskRun]) -> Table:
    grid = table("ID", "NAME", "TASK KEY", "STATE", "WHEN", "ENDED")
    for task_run in task_runs:
        moment = task_run.start_time if task_run.HasField("start_time") else task_run.expected_start_time
        grid.add_row(
            task_run.id,
            _escape(task_run.name),
            _escape(task_run.task_key + (f" [{task_run.dynamic_key}]" if task_run.dynamic_key else "")),
            state_cell(task_run.state_type, task_run.state_name),
            when(moment),
            when(task_run.end_time),
        )
    return compact(grid)


def deployments_table(deployments: Sequence[deployment_pb2.Deployment]) -> Table:
    grid = table("ID", "NAME", "FLOW ID", "WORK POOL", "QUEUE", "PAUSED", "LIMIT")
    for item in deployments:
        grid.add_row(
            item.id,
            _escape(item.name),
            item.flow_id,
            _escape(item.work_pool_name),
            _escape(item.work_queue_name),
            "yes" if item.paused else "no",
            str(item.concurrency_limit) if item.HasField("concurrency_limit") else "",
        )
    return compact(grid)


def deployment_fields(item: deployment_pb2.Deployment) -> Table:
    rows = [
        ("id", item.id),
        ("name", _escape(item.name)),
        ("flow id", item.flow_id),
        ("version", _escape(item.version)),
        ("work pool", _escape(item.work_pool_name)),
        ("work queue", _escape(item.work_queue_name)),
        ("paused", "yes" if item.paused else "no"),
        ("tags", tags_cell(item.tags)),
        ("parameters", struct_cell(item.parameters)),
        ("concurrency limit", str(item.concurrency_limit) if item.HasField("concurrency_limit") else "unlimited"),
        ("created", when(item.created)),
        ("updated", when(item.updated)),
    ]
    return fields([(key, value) for key, value in rows if value])


def work_pools_table(pools: Sequence[work_pool_pb2.WorkPool]) -> Table:
    grid = table("NAME", "TYPE", "PAUSED", "LIMIT", "ID", "DESCRIPTION")
    for pool in pools:
        grid.add_row(
            _escape(pool.name),
            _escape(pool.type),
            "yes" if pool.is_paused else "no",
            str(pool.concurrency_limit) if pool.HasField("concurrency_limit") else "",
            pool.id,
            _escape(pool.description),
        )
    return compact(grid)


def work_queues_table(queues: Sequence[work_pool_pb2.WorkQueue]) -> Table:
    grid = table("NAME", "POOL", "PRIORITY", "PAUSED", "LIMIT", "ID")
    for queue in queues:
        grid.add_row(
            _escape(queue.name),
            _escape(queue.work_pool_name),
            str(queue.priority),
            "yes" if queue.is_paused else "no",
            str(queue.concurrency_limit) if queue.HasField("concurrency_limit") else "",
            queue.id,
        )
    return compact(grid)


def one(view: Any) -> Callable[[Console], None]:
    """A `human` that prints one rich renderable."""

    def draw(out: Console) -> None:
        out.print(view)

    return draw


def line(text: str) -> Callable[[Console], None]:
    """A `human` that prints one line of plain text (no markup)."""

    def draw(out: Console) -> None:
        out.print(text, markup=False)

    return draw
