"""`flowrun flow ...`: create, list, count, inspect and delete flows."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console, Group

from flowrun.client import cli_args as a
from flowrun.client import cli_output as out
from flowrun.client.cli_args import Subparsers
from flowrun.client.client import FlowrunClient
from flowrun.client.commands_runs import DEFAULT_LIMIT, collect, page_size_for
from flowrun.v1 import filters_pb2, flow_pb2, flow_run_pb2, flow_service_pb2


def add_parser(resources: Subparsers, common: argparse.ArgumentParser) -> None:
    flow = resources.add_parser("flow", help="flows").add_subparsers(dest="action", required=True, metavar="ACTION")

    create = flow.add_parser("create", parents=[common], help="get or create a flow by name")
    create.add_argument("name")
    create.add_argument("--tag", action="append", default=[], help="tag (repeatable)")
    create.set_defaults(command=_create)

    ls = flow.add_parser("ls", aliases=["list"], parents=[common], help="list flows")
    _filter_options(ls)
    ls.add_argument("--sort", choices=sorted(a.FLOW_SORTS), default="name", help="order (default: %(default)s)")
    pages = ls.add_mutually_exclusive_group()
    pages.add_argument(
        "--limit", type=a.positive_int, default=DEFAULT_LIMIT, help="at most this many flows (default: %(default)s)"
    )
    pages.add_argument("--all", action="store_true", help="every matching flow, page after page")
    ls.set_defaults(command=_ls)

    count = flow.add_parser("count", parents=[common], help="count flows matching the filters")
    _filter_options(count)
    count.set_defaults(command=_count)

    inspect = flow.add_parser("inspect", aliases=["get"], parents=[common], help="show one flow (by id or name)")
    inspect.add_argument("flow", help="flow id or name")
    inspect.add_argument(
        "--runs", type=a.non_negative_int, default=5, help="how many of its latest runs to show (default: 5)"
    )
    inspect.set_defaults(command=_inspect)

    delete = flow.add_parser("delete", parents=[common], help="delete flows (by id or name) with their runs")
    delete.add_argument("flows", nargs="+", metavar="FLOW", help="flow id or name")
    delete.set_defaults(command=_delete)


def _filter_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("filters")
    group.add_argument("--name", metavar="TEXT", help="flow name contains TEXT")
    group.add_argument("--tag", action="append", metavar="TAG", help="flow has this tag (repeat: has all of them)")
    group.add_argument(
        "--deployment-name", action="append", metavar="NAME", help="flows with a deployment of this name"
    )
    group.add_argument("--work-pool", action="append", metavar="NAME", help="flows with a deployment on this work pool")
    deployed = group.add_mutually_exclusive_group()
    deployed.add_argument(
        "--with-deployment", dest="deployed", action="store_const", const=True, help="flows with a deployment"
    )
    deployed.add_argument(
        "--without-deployment", dest="deployed", action="store_const", const=False, help="flows with none"
    )


def _filters(args: argparse.Namespace) -> dict[str, Any]:
    result: dict[str, Any] = {}
    flow = filters_pb2.FlowFilter(
        name=filters_pb2.StringFilter(like=args.name) if args.name else None,
        tags=filters_pb2.TagsFilter(all=args.tag) if args.tag else None,
        deployment=None if args.deployed is None else filters_pb2.FlowDeploymentFilter(is_null=not args.deployed),
    )
    if flow.ByteSize():
        result["flow_filter"] = flow
    if args.deployment_name:
        result["deployment_filter"] = filters_pb2.DeploymentFilter(name=a.string_any(args.deployment_name))
    if args.work_pool:
        result["work_pool_filter"] = filters_pb2.WorkPoolFilter(name=a.string_any(args.work_pool))
    return result


async def resolve_flow(client: FlowrunClient, flow: str) -> flow_pb2.Flow:
    return await (client.get_flow(flow) if a.is_uuid(flow) else client.get_flow_by_name(flow))


async def _create(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    flow, created = await client.create_flow(args.name, tags=args.tag)

    def human(console: Console) -> None:
        console.print(f"{'created' if created else 'exists'}: {flow.id}", markup=False)
        console.print(out.flow_fields(flow))

    return out.Result(data=flow_service_pb2.CreateFlowResponse(flow=flow, created=created), human=human)


async def _ls(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    limit = None if args.all else args.limit
    flows, more = await collect(
        client.iter_flows(**_filters(args), sort=a.FLOW_SORTS[args.sort], page_size=page_size_for(limit)), limit
    )
    notes = [f"(first {limit} flows shown: --limit N or --all for more)"] if more else []
    return out.Result(data={"flows": flows, "more": more}, human=out.one(out.flows_table(flows)), notes=notes)


async def _count(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    count = await client.count_flows(**_filters(args))
    return out.Result(data={"count": count}, human=out.line(str(count)))


async def _inspect(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    flow = await resolve_flow(client, args.flow)
    runs: list[flow_run_pb2.FlowRun] = []
    if args.runs:
        runs, _ = await client.list_flow_runs(
            flow_run_filter=filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow.id])),
            sort=filters_pb2.FLOW_RUN_SORT_EXPECTED_START_TIME_DESC,
            page_size=min(args.runs, 200),
        )
    count = await client.count_flow_runs(
        flow_run_filter=filters_pb2.FlowRunFilter(flow_id=filters_pb2.IdFilter(any=[flow.id]))
    )
    views: list[Any] = [out.flow_fields(flow), f"runs: {count}"]
    if runs:
        views += ["", out.runs_table(runs, {flow.id: flow.name})]
    return out.Result(data={"flow": flow, "run_count": count, "latest_runs": runs}, human=out.one(Group(*views)))


async def _delete(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    ids = []
    for flow in args.flows:
        ids.append(flow if a.is_uuid(flow) else (await client.get_flow_by_name(flow)).id)
    if len(ids) == 1:
        await client.delete_flow(ids[0])  # an unknown id is NOT_FOUND, as for one run
        deleted = ids
    else:
        deleted = await client.delete_flows(ids)
    missing = [flow_id for flow_id in ids if flow_id not in deleted]

    def human(console: Console) -> None:
        for flow_id in deleted:
            console.print(f"deleted {flow_id}", markup=False)

    return out.Result(
        data={"deleted_flow_ids": deleted},
        human=human,
        exit_code=a.EXIT_ERROR if missing else a.EXIT_OK,
        errors=[f"error: NOT_FOUND: flow {flow_id} not found" for flow_id in missing],
    )
