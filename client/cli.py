"""The `flowrun` command line: a thin shell over FlowrunClient for scripts and debugging.

Every command prints its RPC's response message as JSON (proto field names, fields at
their default values included, so `created: false` is visible to jq), which is the
shape grpcurl users and the proto comments already know.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Awaitable, Callable, Sequence

from google.protobuf import json_format
from google.protobuf.message import Message

from flowrun.v1 import flow_run_service_pb2, flow_service_pb2, state_pb2

from . import token_commands
from .client import DEFAULT_TARGET, FlowrunClient, RetryPolicy
from .errors import FlowrunError
from .tls import TlsConfig, TlsConfigError

_Command = Callable[[FlowrunClient, argparse.Namespace], Awaitable[Message]]


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return 0 on success and 1 when the call failed."""
    args = _parser().parse_args(argv)
    if args.resource == "token":
        return token_commands.run(args)
    try:
        response = asyncio.run(_run(args.command, args))
    except FlowrunError as error:
        _print_error(error)
        return 1
    except TlsConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(
        json_format.MessageToJson(
            response,
            preserving_proto_field_name=True,
            always_print_fields_with_no_presence=True,
        )
    )
    return 0


async def _run(command: _Command, args: argparse.Namespace) -> Message:
    # The channel is created here, inside the event loop that asyncio.run started.
    retry = RetryPolicy(max_attempts=args.max_attempts) if args.max_attempts > 1 else None
    client = FlowrunClient(args.target, timeout=args.timeout, retry=retry, tls=_tls(args), token=args.token)
    async with client:
        return await command(client, args)


def _tls(args: argparse.Namespace) -> TlsConfig | None:
    """TLS when asked (--tls) or when any TLS file is given, by option or environment."""
    if not (args.tls or args.ca_file or args.cert_file or args.key_file):
        return None
    return TlsConfig(args.ca_file, args.cert_file, args.key_file, server_name=args.server_name)


def _print_error(error: FlowrunError) -> None:
    print(f"error: {error}", file=sys.stderr)
    for field, description in error.field_violations:
        print(f"  {field}: {description}", file=sys.stderr)
    if error.retry_delay is not None:
        print(f"  retry after {error.retry_delay:g}s", file=sys.stderr)
    if error.attempts > 1:
        print(f"  failed after {error.attempts} attempts", file=sys.stderr)


# Commands: each makes one call and returns the RPC's response message.


async def _flow_create(client: FlowrunClient, args: argparse.Namespace) -> Message:
    flow, created = await client.create_flow(args.name, tags=args.tag)
    return flow_service_pb2.CreateFlowResponse(flow=flow, created=created)


async def _flow_get(client: FlowrunClient, args: argparse.Namespace) -> Message:
    return flow_service_pb2.GetFlowResponse(flow=await client.get_flow(args.id))


async def _flow_list(client: FlowrunClient, args: argparse.Namespace) -> Message:
    flows, next_page_token = await client.list_flows(limit=args.limit)
    return flow_service_pb2.ListFlowsResponse(flows=flows, next_page_token=next_page_token)


async def _run_create(client: FlowrunClient, args: argparse.Namespace) -> Message:
    state = None if args.state is None else state_pb2.StateCreate(type=args.state)
    flow_run, created = await client.create_flow_run(
        args.flow_id, name=args.name, idempotency_key=args.idempotency_key, state=state
    )
    return flow_run_service_pb2.CreateFlowRunResponse(flow_run=flow_run, created=created)


async def _run_get(client: FlowrunClient, args: argparse.Namespace) -> Message:
    return flow_run_service_pb2.GetFlowRunResponse(flow_run=await client.get_flow_run(args.id))


async def _run_list(client: FlowrunClient, args: argparse.Namespace) -> Message:
    flow_runs, next_page_token = await client.list_flow_runs(limit=args.limit)
    return flow_run_service_pb2.ListFlowRunsResponse(flow_runs=flow_runs, next_page_token=next_page_token)


async def _run_set_state(client: FlowrunClient, args: argparse.Namespace) -> Message:
    return await client.set_flow_run_state(args.id, args.type, force=args.force, name=args.name, message=args.message)


async def _run_states(client: FlowrunClient, args: argparse.Namespace) -> Message:
    states, next_page_token = await client.list_flow_run_states(args.id)
    return flow_run_service_pb2.ListFlowRunStatesResponse(states=states, next_page_token=next_page_token)


# Argument parsing

_STATE_TYPE_NAMES = [
    name.removeprefix("STATE_TYPE_") for name in state_pb2.StateType.keys() if name != "STATE_TYPE_UNSPECIFIED"
]


def _attempts(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def _state_type(text: str) -> int:
    """Accept `running`, `RUNNING` or `STATE_TYPE_RUNNING`."""
    name = text.strip().upper()
    if not name.startswith("STATE_TYPE_"):
        name = "STATE_TYPE_" + name
    if name == "STATE_TYPE_UNSPECIFIED" or name not in state_pb2.StateType.keys():
        raise argparse.ArgumentTypeError(f"unknown state type {text!r} (choose from {', '.join(_STATE_TYPE_NAMES)})")
    return state_pb2.StateType.Value(name)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowrun", description="Call a flowrun server and print the response as JSON."
    )
    parser.add_argument(
        "--target",
        default=os.environ.get("FLOWRUN_TARGET", DEFAULT_TARGET),
        help="server address host:port (default: $FLOWRUN_TARGET or %(default)s)",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="deadline per call in seconds, retries included (default: 30)"
    )
    parser.add_argument(
        "--max-attempts",
        type=_attempts,
        default=RetryPolicy().max_attempts,
        help="tries per call when a retry is safe, 1 for none (default: %(default)s)",
    )
    parser.add_argument(
        "--no-retry", dest="max_attempts", action="store_const", const=1, help="same as --max-attempts 1"
    )
    tls = parser.add_argument_group("TLS", "any of these files turns TLS on")
    tls.add_argument("--tls", action="store_true", help="TLS, verifying the server with the system's CAs")
    tls.add_argument(
        "--ca-file",
        default=os.environ.get("FLOWRUN_TLS_CA_FILE") or None,
        help="PEM CA that signed the server's certificate (default: $FLOWRUN_TLS_CA_FILE)",
    )
    tls.add_argument(
        "--cert-file",
        default=os.environ.get("FLOWRUN_TLS_CERT_FILE") or None,
        help="this client's PEM certificate, for a server that requires one (default: $FLOWRUN_TLS_CERT_FILE)",
    )
    tls.add_argument(
        "--key-file",
        default=os.environ.get("FLOWRUN_TLS_KEY_FILE") or None,
        help="the key of --cert-file, unencrypted PEM (default: $FLOWRUN_TLS_KEY_FILE)",
    )
    tls.add_argument("--server-name", help="verify the server's certificate for this name instead of the target's host")
    parser.add_argument(
        "--token",
        default=os.environ.get("FLOWRUN_TOKEN") or None,
        help="bearer token sent with every call (default: $FLOWRUN_TOKEN)",
    )
    resources = parser.add_subparsers(dest="resource", required=True, metavar="RESOURCE")
    token_commands.add_parser(resources)

    flow = resources.add_parser("flow", help="flows").add_subparsers(dest="action", required=True, metavar="ACTION")
    create = flow.add_parser("create", help="get or create a flow by name")
    create.add_argument("name")
    create.add_argument("--tag", action="append", default=[], help="tag (repeatable)")
    create.set_defaults(command=_flow_create)
    get = flow.add_parser("get", help="show one flow")
    get.add_argument("id")
    get.set_defaults(command=_flow_get)
    list_ = flow.add_parser("list", help="list flows (one page)")
    list_.add_argument("--limit", type=int, help="maximum flows, 0 to 200 (default: 200)")
    list_.set_defaults(command=_flow_list)

    run = resources.add_parser("run", help="flow runs").add_subparsers(dest="action", required=True, metavar="ACTION")
    create = run.add_parser("create", help="create a run of a flow")
    create.add_argument("flow_id")
    create.add_argument("--name", default="", help="run name (default: a random slug)")
    create.add_argument("--idempotency-key", default="", help="return the existing run for this key instead")
    create.add_argument("--state", type=_state_type, help="initial state type (default: PENDING)")
    create.set_defaults(command=_run_create)
    get = run.add_parser("get", help="show one run with its current state")
    get.add_argument("id")
    get.set_defaults(command=_run_get)
    list_ = run.add_parser("list", help="list runs (one page)")
    list_.add_argument("--limit", type=int, help="maximum runs, 0 to 200 (default: 200)")
    list_.set_defaults(command=_run_list)
    set_state = run.add_parser("set-state", help="propose a state; prints the outcome")
    set_state.add_argument("id")
    set_state.add_argument("type", type=_state_type, help=f"state type: {', '.join(_STATE_TYPE_NAMES)}")
    set_state.add_argument("--force", action="store_true", help="skip the core policy")
    set_state.add_argument("--name", default="", help="state name (default: from the type)")
    set_state.add_argument("--message", default="", help="state message")
    set_state.set_defaults(command=_run_set_state)
    states = run.add_parser("states", help="show a run's state history (one page)")
    states.add_argument("id")
    states.set_defaults(command=_run_states)
    return parser


if __name__ == "__main__":
    sys.exit(main())
