"""`flowrun deployment|work-pool|work-queue ...`: create, list, inspect and delete."""

from __future__ import annotations

import argparse
from typing import Any

from rich.console import Console

from flowrun.client import cli_args as a
from flowrun.client import cli_output as out
from flowrun.client.cli_args import Subparsers
from flowrun.client.client import FlowrunClient
from flowrun.client.commands_runs import collect, page_size_for, resolve_flow_id
from flowrun.v1 import (
    deployment_service_pb2,
    filters_pb2,
    work_pool_service_pb2,
)


def add_parser(resources: Subparsers, common: argparse.ArgumentParser) -> None:
    _deployment_parser(resources, common)
    _work_pool_parser(resources, common)
    _work_queue_parser(resources, common)


def _list_options(parser: argparse.ArgumentParser) -> None:
    pages = parser.add_mutually_exclusive_group()
    pages.add_argument("--limit", type=a.positive_int, default=200, help="at most this many (default: %(default)s)")
    pages.add_argument("--all", action="store_true", help="every match, page after page")


def _deployment_parser(resources: Subparsers, common: argparse.ArgumentParser) -> None:
    deployment = resources.add_parser("deployment", help="deployments").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = deployment.add_parser("create", parents=[common], help="create a deployment of a flow")
    create.add_argument("flow", help="flow id or name")
    create.add_argument("name")
    create.add_argument("--work-pool", default="", metavar="NAME")
    create.add_argument("--work-queue", default="", metavar="NAME")
    create.add_argument("--concurrency-limit", type=a.positive_int, help="active runs at most (default: unlimited)")
    create.add_argument("--tag", action="append", default=[], help="tag (repeatable)")
    create.add_argument("--paused", action="store_true")
    create.add_argument("--version", default="")
    create.set_defaults(command=_deployment_create)

    ls = deployment.add_parser("ls", aliases=["list"], parents=[common], help="list deployments by name")
    ls.add_argument("--name", action="append", metavar="NAME", help="deployment name (repeatable: any)")
    ls.add_argument("--tag", action="append", metavar="TAG", help="has this tag (repeat: has all)")
    ls.add_argument("--work-queue", action="append", metavar="NAME", help="work queue name")
    _list_options(ls)
    ls.set_defaults(command=_deployment_ls)

    inspect = deployment.add_parser("inspect", aliases=["get"], parents=[common], help="show one deployment")
    inspect.add_argument("id")
    inspect.set_defaults(command=_deployment_inspect)

    delete = deployment.add_parser("delete", parents=[common], help="delete a deployment (its runs are kept)")
    delete.add_argument("id")
    delete.set_defaults(command=_deployment_delete)


def _work_pool_parser(resources: Subparsers, common: argparse.ArgumentParser) -> None:
    pool = resources.add_parser("work-pool", help="work pools").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    create = pool.add_parser("create", parents=[common], help="create a work pool with its queue 'default'")
    create.add_argument("name")
    create.add_argument("--type", default="", help="worker type (default: process)")
    create.add_argument("--description", default="")
    create.add_argument("--concurrency-limit", type=a.positive_int, help="active runs at most (default: unlimited)")
    create.add_argument("--paused", action="store_true")
    create.set_defaults(command=_pool_create)

    ls = pool.add_parser("ls", aliases=["list"], parents=[common], help="list work pools by name")
    ls.add_argument("--name", action="append", metavar="NAME", help="pool name (repeatable: any)")
    ls.add_argument("--type", action="append", metavar="TYPE", help="pool type (repeatable: any)")
    _list_options(ls)
    ls.set_defaults(command=_pool_ls)

    inspect = pool.add_parser("inspect", aliases=["get"], parents=[common], help="show a pool and its queues")
    inspect.add_argument("name")
    inspect.set_defaults(command=_pool_inspect)

    delete = pool.add_parser("delete", parents=[common], help="delete a pool and its queues (runs are kept)")
    delete.add_argument("name")
    delete.set_defaults(command=_pool_delete)


def _work_queue_parser(resources: Subparsers, common: argparse.ArgumentParser) -> None:
    queue = resources.add_parser("work-queue", help="work queues of a pool").add_subparsers(
        dest="action", required=True, metavar="ACTION"
    )
    pool_option = argparse.ArgumentParser(add_help=False)
    pool_option.add_argument("--pool", required=True, metavar="NAME", help="the work pool")

    create = queue.add_parser("create", parents=[common, pool_option], help="add a queue to a pool")
    create.add_argument("name")
    create.add_argument("--priority", type=a.positive_int, default=None, help="1 is the highest (default: 1)")
    create.add_argument("--concurrency-limit", type=a.positive_int, help="active runs at most (default: unlimited)")
    create.add_argument("--description", default="")
    create.add_argument("--paused", action="store_true")
    create.set_defaults(command=_queue_create)

    ls = queue.add_parser("ls", aliases=["list"], parents=[common, pool_option], help="a pool's queues by priority")
    _list_options(ls)
    ls.set_defaults(command=_queue_ls)

    inspect = queue.add_parser("inspect", aliases=["get"], parents=[common, pool_option], help="show one queue")
    inspect.add_argument("name")
    inspect.set_defaults(command=_queue_inspect)

    delete = queue.add_parser("delete", parents=[common, pool_option], help="delete a queue (runs are kept)")
    delete.add_argument("name")
    delete.set_defaults(command=_queue_delete)


def _limit(args: argparse.Namespace) -> int | None:
    return None if args.all else args.limit


def _more_note(more: bool, limit: int | None, what: str) -> list[str]:
    return [f"(first {limit} {what} shown: --limit N or --all for more)"] if more else []


def _deleted(what: str, key: str, value: str) -> out.Result:
    return out.Result(data={key: [value]}, human=out.line(f"deleted {what} {value}"))


# Deployments


async def _deployment_create(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    deployment = await client.create_deployment(
        await resolve_flow_id(client, args.flow),
        args.name,
        version=args.version,
        work_pool_name=args.work_pool,
        work_queue_name=args.work_queue,
        paused=args.paused,
        tags=args.tag,
        concurrency_limit=args.concurrency_limit,
    )
    return out.Result(
        data=deployment_service_pb2.CreateDeploymentResponse(deployment=deployment),
        human=out.one(out.deployment_fields(deployment)),
    )


async def _deployment_ls(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    deployment_filter = filters_pb2.DeploymentFilter(
        name=a.string_any(args.name),
        tags=filters_pb2.TagsFilter(all=args.tag) if args.tag else None,
        work_queue_name=a.string_any(args.work_queue),
    )
    limit = _limit(args)
    deployments, more = await collect(
        client.iter_deployments(deployment_filter=deployment_filter, page_size=page_size_for(limit)), limit
    )
    return out.Result(
        data={"deployments": deployments, "more": more},
        human=out.one(out.deployments_table(deployments)),
        notes=_more_note(more, limit, "deployments"),
    )


async def _deployment_inspect(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    deployment = await client.get_deployment(args.id)
    return out.Result(
        data=deployment_service_pb2.GetDeploymentResponse(deployment=deployment),
        human=out.one(out.deployment_fields(deployment)),
    )


async def _deployment_delete(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    await client.delete_deployment(args.id)
    return _deleted("deployment", "deleted_deployment_ids", args.id)


# Work pools


async def _pool_create(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    pool = await client.create_work_pool(
        args.name,
        type=args.type,
        description=args.description,
        is_paused=args.paused,
        concurrency_limit=args.concurrency_limit,
    )
    return out.Result(
        data=work_pool_service_pb2.CreateWorkPoolResponse(work_pool=pool), human=out.one(out.work_pools_table([pool]))
    )


async def _pool_ls(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    pool_filter = filters_pb2.WorkPoolFilter(name=a.string_any(args.name), type=a.string_any(args.type))
    limit = _limit(args)
    pools, more = await collect(
        client.iter_work_pools(work_pool_filter=pool_filter, page_size=page_size_for(limit)), limit
    )
    return out.Result(
        data={"work_pools": pools, "more": more},
        human=out.one(out.work_pools_table(pools)),
        notes=_more_note(more, limit, "work pools"),
    )


async def _pool_inspect(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    pool = await client.get_work_pool(args.name)
    queues = [queue async for queue in client.iter_work_queues(pool.name)]

    def human(console: Console) -> None:
        console.print(out.work_pools_table([pool]))
        console.print()
        console.print(out.work_queues_table(queues))

    return out.Result(data={"work_pool": pool, "work_queues": queues}, human=human)


async def _pool_delete(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    await client.delete_work_pool(args.name)
    return _deleted("work pool", "deleted_work_pool_names", args.name)


# Work queues


async def _queue_create(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    queue = await client.create_work_queue(
        args.pool,
        args.name,
        priority=args.priority or 0,
        concurrency_limit=args.concurrency_limit,
        is_paused=args.paused,
        description=args.description,
    )
    return out.Result(
        data=work_pool_service_pb2.CreateWorkQueueResponse(work_queue=queue),
        human=out.one(out.work_queues_table([queue])),
    )


async def _queue_ls(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    limit = _limit(args)
    queues, more = await collect(client.iter_work_queues(args.pool, page_size=page_size_for(limit)), limit)
    data: dict[str, Any] = {"work_queues": queues, "more": more}
    return out.Result(
        data=data, human=out.one(out.work_queues_table(queues)), notes=_more_note(more, limit, "work queues")
    )


async def _queue_inspect(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    queue = await client.get_work_queue(args.pool, args.name)
    return out.Result(
        data=work_pool_service_pb2.GetWorkQueueResponse(work_queue=queue),
        human=out.one(out.work_queues_table([queue])),
    )


async def _queue_delete(client: FlowrunClient, args: argparse.Namespace) -> out.Result:
    await client.delete_work_queue(args.pool, args.name)
    return _deleted("work queue", "deleted_work_queue_names", args.name)
