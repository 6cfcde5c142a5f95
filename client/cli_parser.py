"""The `flowrun` command's parser: global options, then one sub-command per resource."""

from __future__ import annotations

import argparse
import os

from flowrun.client import cli_output, commands_flows, commands_infra, commands_runs, token_commands
from flowrun.client.cli_args import positive_int
from flowrun.client.client import default_target
from flowrun.client.retry import RetryPolicy

EPILOG = """\
output: a table on a terminal, JSON when stdout is not one (a pipe, a file); --output or
$FLOWRUN_OUTPUT chooses (auto, table, json).
exit codes: 0 success (set-state/cancel: ACCEPT), 1 the call failed, 2 bad command line,
3 REJECT, 4 WAIT, 5 ABORT, 130 interrupted, 141 stdout closed early.
times: ISO 8601 (2026-12-01T10:00:00Z; no offset means UTC), now, now-2h, now+30m."""


def build() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowrun",
        description="Inspect and drive a flowrun server: flows, runs, deployments, work pools.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--target",
        default=default_target(),
        help="server address host:port (default: $FLOWRUN_TARGET or %(default)s)",
    )
    parser.add_argument(
        "-o",
        "--output",
        choices=cli_output.OUTPUT_CHOICES,
        default=os.environ.get("FLOWRUN_OUTPUT") or "auto",
        help="table, json, or auto: a table on a terminal, else JSON (default: $FLOWRUN_OUTPUT or auto)",
    )
    parser.add_argument(
        "--timeout", type=float, default=30.0, help="deadline per call in seconds, retries included (default: 30)"
    )
    parser.add_argument(
        "--max-attempts",
        type=positive_int,
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
    # Options every server command also takes after its name (`flowrun run ls -o json`);
    # SUPPRESS keeps the global value when they are not given there.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "-o", "--output", choices=cli_output.OUTPUT_CHOICES, default=argparse.SUPPRESS, help="as the global --output"
    )
    resources = parser.add_subparsers(dest="resource", required=True, metavar="RESOURCE")
    commands_flows.add_parser(resources, common)
    commands_runs.add_parser(resources, common)
    commands_infra.add_parser(resources, common)
    token_commands.add_parser(resources, common)
    return parser
