"""The tokens file (FLOWRUN_AUTH_TOKENS_FILE): who may call, with which role.

One JSON object per line (JSON Lines); blank lines and lines starting with `#` are
ignored. Each entry names a caller, its role and how it proves who it is, either a
bearer token, stored only as the SHA-256 of the token (lowercase hex):

    {"name": "ci", "role": "writer", "sha256": "9f86d0...", "created": "2026-12-02T16:46:39Z"}

or, with mutual TLS, the subject of its client certificate, exactly as gRPC reports it
(RFC 2253: `openssl x509 -noout -subject -nameopt RFC2253 -in client.pem`):

    {"name": "worker-1", "role": "writer", "subject": "CN=worker-1,O=Acme", "created": "..."}

Names are unique; a hash or a subject appears once. `flowrun token create|list|revoke`
edits the file (this module); the server re-reads it when it changes (server/auth.py).

Why an unsalted SHA-256 is enough: tokens are 32 random bytes from `secrets`, so the
file holds hashes of 256-bit secrets. Salts and slow key-derivation functions (bcrypt,
scrypt, Argon2) exist to stop guessing low-entropy passwords from their hashes; nobody
can guess a 256-bit secret, so a fast hash loses nothing, and it keeps checking a token
as cheap as one SHA-256 per call. The file therefore holds nothing that authenticates a
caller; it is written with mode 0600 all the same, since names and roles are nobody
else's business and anyone who can write it can make themselves admin.

Standard library only: the `flowrun` command (client/cli.py) imports it."""

from __future__ import annotations

import hashlib
import json
import os
import re
import secrets
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from flowrun.server.roles import Role

TOKEN_BYTES = 32
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
FILE_MODE = 0o600


class TokenFileError(ValueError):
    """The tokens file is missing, unreadable or not in the format above."""


@dataclass(frozen=True)
class Entry:
    name: str
    role: Role
    created: str
    sha256: str | None = None
    subject: str | None = None

    def to_json(self) -> str:
        fields: dict[str, str | None] = {"name": self.name, "role": str(self.role)}
        fields.update({"sha256": self.sha256} if self.sha256 else {"subject": self.subject})
        fields["created"] = self.created
        return json.dumps(fields, ensure_ascii=False)


TOKEN_PREFIX = "flowrun_"


def new_token() -> str:
    """A new bearer token: `flowrun_` and 32 random bytes in URL-safe base64 (51
    characters). The prefix lets secret scanners recognise a leaked token, and keeps a
    token from starting with "-", which command lines would take for an option."""
    return TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def now_text() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def parse(text: str, source: str = "tokens file") -> list[Entry]:
    entries: list[Entry] = []
    names: set[str] = set()
    credentials: set[str] = set()
    for number, line in enumerate(text.splitlines(), start=1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        where = f"{source}, line {number}"
        try:
            fields = json.loads(line)
        except json.JSONDecodeError as exc:
            raise TokenFileError(f"{where}: not JSON ({exc.msg})") from None
        if not isinstance(fields, dict):
            raise TokenFileError(f"{where}: expected a JSON object")
        entry = _entry(fields, where)
        if entry.name in names:
            raise TokenFileError(f"{where}: the name {entry.name!r} appears twice")
        credential = entry.sha256 or f"subject:{entry.subject}"
        if credential in credentials:
            raise TokenFileError(f"{where}: the same {'token hash' if entry.sha256 else 'subject'} appears twice")
        names.add(entry.name)
        credentials.add(credential)
        entries.append(entry)
    return entries


def _entry(fields: dict, where: str) -> Entry:
    name, role, created = fields.get("name"), fields.get("role"), fields.get("created", "")
    sha256, subject = fields.get("sha256"), fields.get("subject")
    if not isinstance(name, str) or not name.strip():
        raise TokenFileError(f"{where}: `name` must be a non-empty string")
    if not isinstance(role, str):
        raise TokenFileError(f"{where}: `role` must be a string")
    try:
        parsed_role = Role.parse(role)
    except ValueError as exc:
        raise TokenFileError(f"{where}: {exc}") from None
    if (sha256 is None) == (subject is None):
        raise TokenFileError(f"{where}: give exactly one of `sha256` and `subject`")
    if sha256 is not None and not (isinstance(sha256, str) and _SHA256_HEX.fullmatch(sha256)):
        raise TokenFileError(f"{where}: `sha256` must be 64 lowercase hex digits (the hash, never the token)")
    if subject is not None and not (isinstance(subject, str) and subject.strip()):
        raise TokenFileError(f"{where}: `subject` must be a non-empty string")
    if not isinstance(created, str):
        raise TokenFileError(f"{where}: `created` must be a string")
    return Entry(name=name, role=parsed_role, created=created, sha256=sha256, subject=subject)


def read(path: Path) -> list[Entry]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise TokenFileError(f"cannot read the tokens file {path}: {exc}") from None
    return parse(text, str(path))


def write(path: Path, entries: list[Entry]) -> None:
    """Replaces the file atomically (a reader sees the old file or the new one, never half
    of one). A new file gets mode 0600; an existing one keeps its mode."""
    try:
        mode = path.stat().st_mode & 0o777
    except FileNotFoundError:
        mode = FILE_MODE
    text = "".join(entry.to_json() + "\n" for entry in entries)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)  # created 0600
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fsync(file.fileno())
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def _existing(path: Path) -> list[Entry]:
    return read(path) if path.exists() else []


def create(path: Path, name: str, role: Role, *, subject: str | None = None) -> str | None:
    """Adds `name` with `role`: a new token (returned, the only time it exists outside
    the caller) or, with `subject`, a client-certificate mapping (returns None)."""
    entries = _existing(path)
    if any(entry.name == name for entry in entries):
        raise TokenFileError(f"{name!r} is already in {path}; revoke it first")
    token = None if subject is not None else new_token()
    entry = Entry(
        name=name, role=role, created=now_text(), sha256=token_hash(token) if token else None, subject=subject
    )
    parse(entry.to_json(), "the new entry")  # the same checks as the server's
    if subject is not None and any(other.subject == subject for other in entries):
        raise TokenFileError(f"the subject {subject!r} is already mapped in {path}")
    write(path, [*entries, entry])
    return token


def revoke(path: Path, name: str) -> Entry:
    entries = _existing(path)
    kept = [entry for entry in entries if entry.name != name]
    if len(kept) == len(entries):
        raise TokenFileError(f"no entry named {name!r} in {path}")
    write(path, kept)
    return next(entry for entry in entries if entry.name == name)
