"""The `flowrun` command line: flows, runs, deployments and work pools, for daily use.

    flowrun run ls --flow etl --state failed,crashed --started-after now-1d
    flowrun run inspect RUN_ID
    flowrun run set-state RUN_ID running --transition-id 5f0c...   # exit 0 ACCEPT, 3 REJECT, 4 WAIT, 5 ABORT
    flowrun -o json run ls --all | jq '.flow_runs[].id'

Tables on a terminal, JSON otherwise (client/cli_output.py); the commands live in
client/commands_*.py, the parser in client/cli_parser.py. Whatever goes wrong ends in one
line on stderr and an exit code (client/cli_args.py lists them), never a traceback
(FLOWRUN_DEBUG=1 shows one for a fault of the command itself).

This module imports grpc only inside main(), after quieting gRPC core's own logging: core
reads GRPC_VERBOSITY once, when grpc loads, and would otherwise print its log lines (an
empty or malformed target, a failed resolution) next to ours.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import argparse

    from flowrun.client.cli_output import Result
    from flowrun.client.errors import FlowrunError
    from flowrun.client.tls import TlsConfig


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; return its exit code (see client/cli_args.py)."""
    if "grpc" not in sys.modules:
        # Ours to set only before grpc loads, and only when the user has not chosen.
        os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    try:
        return _main(argv)
    except SystemExit as exit_:  # argparse: --help (0), a bad command line (2)
        return exit_.code if isinstance(exit_.code, int) else 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`flowrun run ls | head`): stop quietly, and point
        # stdout at /dev/null so the interpreter's final flush does not complain either.
        _stdout_to_devnull()
        return 141


def _main(argv: Sequence[str] | None) -> int:
    import asyncio

    from flowrun.client import token_commands
    from flowrun.client.cli_args import EXIT_ERROR
    from flowrun.client.cli_output import OUTPUT_CHOICES, emit
    from flowrun.client.cli_parser import build
    from flowrun.client.errors import FlowrunError
    from flowrun.client.tls import TlsConfigError

    parser = build()
    args = parser.parse_args(argv)
    if args.output not in OUTPUT_CHOICES:  # argparse checks the option, not a default from $FLOWRUN_OUTPUT
        parser.error(f"FLOWRUN_OUTPUT={args.output!r}: choose from {', '.join(OUTPUT_CHOICES)}")
    if args.resource == "token":
        return token_commands.run(args)
    if not args.target.strip():
        print("error: no server address: --target or $FLOWRUN_TARGET is empty", file=sys.stderr)
        return EXIT_ERROR
    try:
        result = asyncio.run(_call(args))
    except FlowrunError as error:
        print(error_line(error), file=sys.stderr)
        return EXIT_ERROR
    except TlsConfigError as error:
        print(f"error: {_one_line(str(error))}", file=sys.stderr)
        return EXIT_ERROR
    except (KeyboardInterrupt, BrokenPipeError):
        raise
    except Exception as error:  # a fault of the command itself: one line unless debugging
        if os.environ.get("FLOWRUN_DEBUG"):
            raise
        print(f"error: {type(error).__name__}: {_one_line(str(error))} (FLOWRUN_DEBUG=1 for details)", file=sys.stderr)
        return EXIT_ERROR
    emit(result, args.output)
    return result.exit_code


async def _call(args: argparse.Namespace) -> Result:
    from flowrun.client.client import FlowrunClient
    from flowrun.client.retry import RetryPolicy

    # The channel is made here, inside the loop asyncio.run started.
    retry = RetryPolicy(max_attempts=args.max_attempts) if args.max_attempts > 1 else None
    client = FlowrunClient(args.target, timeout=args.timeout, retry=retry, tls=_tls(args), token=args.token)
    async with client:
        return await args.command(client, args)


def _tls(args: argparse.Namespace) -> TlsConfig | None:
    """TLS when asked (--tls) or when any TLS file is given, by option or environment."""
    from flowrun.client.tls import TlsConfig

    if not (args.tls or args.ca_file or args.cert_file or args.key_file):
        return None
    return TlsConfig(args.ca_file, args.cert_file, args.key_file, server_name=args.server_name)


def error_line(error: FlowrunError) -> str:
    """One line for a failed call: `error: CODE: message (REASON)`, then what else the
    server said (the fields at fault, when to retry) and how many attempts were made."""
    head = f"{error.code.name}: {error.message}"
    if error.reason and error.reason != error.code.name:  # INVALID_ARGUMENT (INVALID_ARGUMENT) says nothing more
        head += f" ({error.reason})"
    parts = [f"error: {_one_line(head)}"]
    for field, description in error.field_violations:
        violation = f"{field}: {_one_line(description)}"
        if violation not in parts[0]:  # the message often is the first violation already
            parts.append(violation)
    if error.retry_delay is not None:
        parts.append(f"retry after {error.retry_delay:g}s")
    if error.attempts > 1:
        parts.append(f"failed after {error.attempts} attempts")
    return "; ".join(parts)


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _stdout_to_devnull() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # stdout is not a real file (tests capture it)
        pass


if __name__ == "__main__":
    sys.exit(main())
