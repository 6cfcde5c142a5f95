"""`flowrun run ...`: list, count, inspect, create, change the state of, cancel and delete flow runs."""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Iterable
from typing import Any, TypeVar

from rich.console import Console, Group
from rich.markup import escape

from flowrun.client import cli_args as a
from flowrun.client import cli_output as out
from flowrun.client import commands_watch
from flowrun.client.cli_args import Subparsers
from flowrun.client.client import FlowrunClient
from flowrun.client.errors import FlowrunError, NotFoundError
from flowrun.v1 import filters_pb2, flow_run_service_pb2, state_pb2

_T = TypeVar("_T")

DEFAULT_LIMIT = 20
MAX_PAGE = 200


def add_parser(resources: Subparsers, common: argparse.ArgumentParser) -> None:
    run = resources.add_parser("run", help="flow runs").add_subparsers(dest="action", required=True, metavar="ACTION")

    ls = run.add_parser("ls", aliases=["list"], parents=[common], help="list runs (newest first by default)")
    a.add_run_filter_options(ls)
    ls.add_argument(
        "--sort",
        choices=sorted(a.RUN_SORTS),
        default="expected-start-time-desc",
        help="order (default: %(default)s)",
    )
    pages = ls.add_mutually_exclusive_group()
    pages.add_argument(
        "--limit", type=a.positive_int, default=DEFAULT_LIMIT, help="at most this many runs (default: %(default)s)"
    )
    pages.add_argument("--all", action="store_true", help="every matching run, page after page")
    ls.set_defaults(command=_ls)

    count = run.add_parser("count", parents=[common], help="count runs matching the filters")
    a.add_run_filter_options(count)
    count.set_defaults(command=_count)

    inspect = run.add_parser(
        "inspect", aliases=["get"], parents=[common], help="show one run, its current state and last states"
    )
    inspect.add_argument("id")
    inspect.add_argument(
        "--states", type=a.non_negative_int, default=5, help="how many of the last states to show (default: 5)"
    )
    inspect.set_defaults(command=_inspect)

    history = run.add_parser("history", aliases=["states"], parents=[common], help="a run's whole state history")
    history.add_argument("id")
    history.set_defaults(command=_history)

    tasks = run.add_parser("tasks", parents=[common], help="a run's task runs, by expected start")
    tasks.add_argument("id")
    tasks.add_argument("--state", action="append", type=a.state_types, metavar="TYPE[,TYPE]", help="state type")
    tasks.set_defaults(command=_tasks)

    create = run.add_parser("create", parents=[common], help="create a run of a flow")
    create.add_argument("flow", help="flow id or name")
    create.add_argument("--name", default="", help="run name (default: a random slug)")
    create.add_argument(
        "--param",
        action="append",
        type=a.parameter,
        default=[],
        metavar="KEY=VALUE",
        help="a parameter; VALUE is JSON when it parses (n=3, ok=true), else text (repeatable)",
    )
    create.add_argument("--params", type=a.json_object, metavar="JSON", help="parameters as one JSON object")
    create.add_argument("--tag", action="append", default=[], help="tag (repeatable)")
    create.add_argument("--idempotency-key", default="", help="return the existing run for this key instead")
    when = create.add_mutually_exclusive_group()
    when.add_argument("--state", type=a.state_type, help="initial state type (default: PENDING)")
    when.add_argument(
        "--scheduled-at",
        type=a.moment,
        metavar="TIME",
        help="start SCHEDULED for TIME (ISO 8601, or now+10m)",
    )
    create.add_argument("--deployment", default="", metavar="ID", help="deployment id")
    create.add_argument("--work-pool", default="", metavar="NAME", help="queue the run on this work pool")
    create.add_argument("--work-queue", default="", metavar="NAME", help="... and this queue (default: the pool's)")
    create.set_defaults(command=_create)

    set_state = run.add_parser(
        "set-state",
        parents=[common],
        help="propose a state; exit 0 ACCEPT, 3 REJECT, 4 WAIT, 5 ABORT",
        description="Propose a state and print the outcome. Exit codes: 0 ACCEPT, 1 the call failed, "
        "3 REJECT (the printed state is what the run is in now), 4 WAIT (retry after the printed delay), "
        "5 ABORT.",
    )
    set_state.add_argument("id")
    set_state.add_argument("type", type=a.state_type, help=f"state type: {', '.join(a.STATE_TYPE_NAMES).lower()}")
    set_state.add_argument("--force", action="store_true", help="skip the core policy (an operator's override)")
    set_state.add_argument("--name", default="", help="state name (default: from the type)")
    set_state.add_argument("--message", default="", help="state message")
    set_state.add_argument(
        "--transition-id",
        type=a.uuid_text,
        help="send this transition id (default: a fresh one); resend the same id after a timeout, and a "
        "proposal that was already applied is answered REJECT instead of being applied twice",
    )
    set_state.set_defaults(command=_set_state)

    cancel = run.add_parser(
        "cancel",
        parents=[common],
        help="cancel a run (CANCELLING, or CANCELLED when nothing runs it); exit 0 when it is now either",
        description="Propose CANCELLING. A run with infrastructure (running, pending, or scheduled with an "
        "infrastructure pid) goes to CANCELLING and its worker finishes the cancellation; a scheduled or paused "
        "run without one goes straight to CANCELLED (the server's policy decides, answering REJECT with the "
        "CANCELLED state it wrote). Exit codes: 0 the run is now CANCELLING or CANCELLED, 1 the call failed, "
        "3 REJECT (for example already cancelling), 4 WAIT, 5 ABORT (for example already finished).",
    )
    cancel.add_argument("id")
    cancel.add_argument("--message", default="Cancelled from the flowrun command line", help="state message")
    cancel.add_argument("--transition-id", type=a.uuid_text, help="as in set-state")
    cancel.set_defaults(command=_cancel)

    delete = run.add_parser("delete", parents=[common], help="delete runs with their states")
    delete.add_argument("ids", nargs="+", metavar="ID")
    delete.set_defaults(command=_delete)
    commands_watch.add_parser(run, common)


async def collect(items: AsyncIterator[_T], limit: int | None) -> tuple[list[_T], bool]:
    """The first `limit` items (all without one), and whether more were there."""
    result: list[_T] = []
    async for item in items:
        if limit is not None and len(result) == limit:
            await _close(items)
            return result, True
        result.append(item)
    return result, False


async def _close(items: AsyncIterator[Any]) -> None:
    aclose = getattr(items, "aclose", None)
    if aclose is not None:
        await aclose()


def page_size_for(limit: int | None) -> int:
    # One more than asked, to know whether there are more without a second call.
    return MAX_PAGE if limit is None else min(limit + 1, MAX_PAGE)


async def flow_names(client: FlowrunClient, flow_ids: Iterable[str]) -> dict[str, str]:
    """Flow names by id, for the FLOW column (one call per 200 flows)."""
    wanted = sorted(set(flow_ids))
    names: dict[str, str] = {}
    for start in range(0, len(wanted), MAX_PAGE):
        chunk = wanted[start : start + MAX_PAGE]
        flows, _ = await client.list_flows(
            flow_filter=filters_pb2.FlowFilter(id=filters_pb2.IdFilter(any=chunk)), page_size=MAX_PAGE
        )
        names.update((flow.id, flow.name) for flow in flows)
    return names


async def resolve_flow_id(client: FlowrunClient, flow: str) -> str:
    """A flow given by id or by name: an id is used as is, a name is looked up."""
    if a.is_uuid(flow):
        return flow
    return (await client.get_flow_by_name(flow)).id


async def _ls(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    limit = None if args.all else args.limit
    runs, more = await collect(
        client.iter_flow_runs(**a.run_filters(args), sort=a.RUN_SORTS[args.sort], page_size=page_size_for(limit)),
        limit,
    )
    names = await flow_names(client, (run.flow_id for run in runs)) if runs else {}
    notes = [f"(first {limit} runs shown: --limit N or --all for more)"] if more else []
    return out.Result(
        data={"flow_runs": runs, "more": more},
        human=out.one(out.runs_table(runs, names)),
        notes=notes,
    )


async def _count(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    count = await client.count_flow_runs(**a.run_filters(args))
    return out.Result(data={"count": count}, human=out.line(str(count)))


async def last_states(client: FlowrunClient, run_id: str, count: int) -> list[state_pb2.State]:
    if count == 0:
        return []
    states: list[state_pb2.State] = []
    async for state in client.iter_flow_run_states(run_id):
        states.append(state)
        del states[:-count]
    return states


async def _inspect(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    run = await client.get_flow_run(args.id)
    states = await last_states(client, run.id, args.states)
    try:
        flow_name: str | None = (await client.get_flow(run.flow_id)).name
    except NotFoundError:
        flow_name = None
    views: list[Any] = [out.run_fields(run, flow_name)]
    if states:
        views += ["", out.states_table(states, title=f"last {len(states)} states")]
    return out.Result(data={"flow_run": run, "states": states}, human=out.one(Group(*views)))


async def _history(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    await client.get_flow_run(args.id)  # an unknown run is NOT_FOUND, not an empty history
    states = [state async for state in client.iter_flow_run_states(args.id)]
    return out.Result(
        data=flow_run_service_pb2.ListFlowRunStatesResponse(states=states), human=out.one(out.states_table(states))
    )


async def _tasks(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    await client.get_flow_run(args.id)  # an unknown run is NOT_FOUND, not an empty list
    task_filter = filters_pb2.TaskRunFilter(flow_run_id=filters_pb2.IdFilter(any=[args.id]))
    if args.state:
        task_filter.state.type.any.extend(kind for kinds in args.state for kind in kinds)
    task_runs = [
        task_run
        async for task_run in client.iter_task_runs(
            task_run_filter=task_filter, sort=filters_pb2.TASK_RUN_SORT_EXPECTED_START_TIME_ASC
        )
    ]
    return out.Result(data={"task_runs": task_runs}, human=out.one(out.task_runs_table(task_runs)))


async def _create(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    flow_id = await resolve_flow_id(client, args.flow)
    parameters = dict(args.params or {})
    parameters.update(args.param)
    state = None
    if args.scheduled_at is not None:
        state = state_pb2.StateCreate(
            type=state_pb2.STATE_TYPE_SCHEDULED,
            state_details=state_pb2.StateDetails(scheduled_time=a.timestamp(args.scheduled_at)),
        )
    elif args.state is not None:
        state = state_pb2.StateCreate(type=args.state)
    run, created = await client.create_flow_run(
        flow_id,
        name=args.name,
        state=state,
        parameters=parameters or None,
        tags=args.tag,
        idempotency_key=args.idempotency_key,
        deployment_id=args.deployment,
        work_pool_name=args.work_pool,
        work_queue_name=args.work_queue,
    )
    verb = "created" if created else "exists (idempotency key)"

    def human(console: Console) -> None:
        console.print(f"{verb}: {run.id}", markup=False)
        console.print(out.run_fields(run, None))

    return out.Result(data=flow_run_service_pb2.CreateFlowRunResponse(flow_run=run, created=created), human=human)


def outcome(response: flow_run_service_pb2.SetFlowRunStateResponse) -> out.Result:
    """A set-state answer: its status picks the exit code, the reason goes to the human view."""
    status = state_pb2.SetStateStatus.Name(response.status).removeprefix("SET_STATE_STATUS_")
    detail = ""
    which = response.WhichOneof("details")
    if which == "reject":
        detail = response.reject.reason
    elif which == "abort":
        detail = response.abort.reason
    elif which == "wait":
        delay = response.wait.delay.ToTimedelta().total_seconds()
        detail = f"retry after {delay:g}s" + (f": {response.wait.reason}" if response.wait.reason else "")
    state = response.state

    def human(console: Console) -> None:
        text = f"{status}: {out.state_cell(state.type, state.name)}" if state.type else status
        console.print(text + (f" ({escape(detail)})" if detail else ""))
        if state.id:
            console.print(f"state id {state.id} at {out.when(state.timestamp)}", markup=False)

    return out.Result(data=response, human=human, exit_code=a.EXIT_BY_STATUS.get(response.status, a.EXIT_ERROR))


async def _set_state(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    response = await client.set_flow_run_state(
        args.id,
        args.type,
        force=args.force,
        name=args.name,
        message=args.message,
        transition_id=args.transition_id,
    )
    return outcome(response)


_CANCELLED_TYPES = frozenset({state_pb2.STATE_TYPE_CANCELLING, state_pb2.STATE_TYPE_CANCELLED})


async def _cancel(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    # Propose CANCELLING and let the server's policy decide: a run nothing executes
    # (scheduled or paused without an infrastructure pid) is turned straight into
    # CANCELLED, which the server answers as REJECT with the CANCELLED state it wrote; one
    # with infrastructure waits in CANCELLING for its worker to stop it (ACCEPT).
    before = await client.get_flow_run(args.id)
    response = await client.set_flow_run_state(
        args.id,
        state_pb2.STATE_TYPE_CANCELLING,
        name="Cancelling",
        message=args.message,
        transition_id=args.transition_id,
    )
    result = outcome(response)
    written = response.state.id != before.state_id
    if response.status == state_pb2.SET_STATE_STATUS_REJECT and written and response.state.type in _CANCELLED_TYPES:
        result.exit_code = a.EXIT_OK  # cancelled, by the state the server chose
    return result


async def _delete(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    deleted: list[str] = []
    failures: list[str] = []
    for run_id in args.ids:
        try:
            await client.delete_flow_run(run_id)
        except FlowrunError as error:
            if len(args.ids) == 1:
                raise
            failures.append(f"error: {run_id}: {error}")
        else:
            deleted.append(run_id)

    def human(console: Console) -> None:
        for run_id in deleted:
            console.print(f"deleted {run_id}", markup=False)

    return out.Result(
        data={"deleted_flow_run_ids": deleted},
        human=human,
        exit_code=a.EXIT_ERROR if failures else a.EXIT_OK,
        errors=failures,
    )
