"""`flowrun token create|list|revoke`: edit the server's tokens file (no server call).

The file and its format belong to the server (server/auth_tokens.py, standard library
only, shipped in the same wheel); a running server picks changes up without a restart.

    flowrun token create ci --role writer          prints the new token, once
    flowrun token create worker-1 --role writer --subject 'CN=worker-1,O=Acme'
    flowrun token list                             names, roles, created; never tokens
    flowrun token revoke ci

The file is FLOWRUN_AUTH_TOKENS_FILE unless --file says otherwise. Run one command at a
time: each rewrites the whole file (atomically), so two at once can lose one's change."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from rich.markup import escape

from flowrun.client.cli_args import Subparsers
from flowrun.server.auth_tokens import TokenFileError, create, read, revoke
from flowrun.server.roles import ROLE_NAMES, Role


def add_parser(resources: Subparsers, output: argparse.ArgumentParser | None = None) -> None:
    """`output` is the parser of the --output option every listing takes."""
    token = resources.add_parser(
        "token", help="manage the server's tokens file (local, no server call)"
    ).add_subparsers(dest="action", required=True, metavar="ACTION")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--file",
        type=Path,
        default=os.environ.get("FLOWRUN_AUTH_TOKENS_FILE") or None,
        help="the tokens file (default: $FLOWRUN_AUTH_TOKENS_FILE)",
    )
    create_ = token.add_parser(
        "create", parents=[common], help="add a caller; prints its new token once (or maps a certificate)"
    )
    create_.add_argument("name")
    create_.add_argument("--role", required=True, choices=ROLE_NAMES)
    create_.add_argument(
        "--subject", help="map this client certificate subject (RFC 2253, as gRPC reports it) instead of a token"
    )
    create_.set_defaults(token_command=_create)
    list_ = token.add_parser(
        "list",
        aliases=["ls"],
        parents=[common, *([output] if output else [])],
        help="show names, roles and creation times (a table on a terminal, else JSON)",
    )
    list_.set_defaults(token_command=_list)
    revoke_ = token.add_parser("revoke", parents=[common], help="remove a caller; its token stops working")
    revoke_.add_argument("name")
    revoke_.set_defaults(token_command=_revoke)


def run(args: argparse.Namespace) -> int:
    if args.file is None:
        print("error: no tokens file: pass --file or set FLOWRUN_AUTH_TOKENS_FILE", file=sys.stderr)
        return 2
    try:
        args.token_command(args)
    except (TokenFileError, OSError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


def _create(args: argparse.Namespace) -> None:
    token = create(args.file, args.name, Role.parse(args.role), subject=args.subject)
    if token is None:
        print(f"{args.name} ({args.role}): certificate subject {args.subject!r} added to {args.file}", file=sys.stderr)
        return
    print(f"{args.name} ({args.role}) added to {args.file}; the token is shown only this once:", file=sys.stderr)
    print(token)


def _list(args: argparse.Namespace) -> None:
    from flowrun.client.cli_output import Result, compact, emit, table

    entries = read(args.file) if args.file.exists() else []
    shown = []
    for entry in entries:
        item: dict[str, str | None] = {"name": entry.name, "role": str(entry.role), "created": entry.created}
        item.update({"sha256_prefix": entry.sha256[:8]} if entry.sha256 else {"subject": entry.subject})
        shown.append(item)
    grid = table("NAME", "ROLE", "CREATED", "TOKEN SHA-256 / CERTIFICATE SUBJECT")
    for item in shown:
        grid.add_row(
            *(escape(item.get(key) or "") for key in ("name", "role", "created")),
            escape(f"{item['sha256_prefix']}..." if "sha256_prefix" in item else item.get("subject") or ""),
        )
    emit(Result(data=shown, human=lambda console: console.print(compact(grid))), getattr(args, "output", "json"))


def _revoke(args: argparse.Namespace) -> None:
    entry = revoke(args.file, args.name)
    print(json.dumps({"name": entry.name, "role": str(entry.role), "revoked": True}))
