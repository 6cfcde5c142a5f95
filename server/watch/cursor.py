"""Watch cursors: a reader's position (server/repositories/flow_run_events.Position),
signed so that a client can keep it but not forge or edit it.

Binary, then base64url without padding: a version byte, then unsigned varints:
`after`, `xmax`, the number of pending transaction ids and the ids (sorted, each as its
difference from the one before: concurrent transactions have close ids, so a cursor
stays short), then a 16-byte HMAC-SHA256 of all that under the page-token key (shared
by every replica, so any replica resumes any cursor). Anything else is
INVALID_ARGUMENT (INVALID_WATCH_CURSOR), never INTERNAL.

Version 2 cursors (before xmax was kept) still resume: their second number was always
0 and they carry no xmax, so `decode` returns xmax None and the caller derives a safe
one (server/services/watch.py: the id of the transaction that wrote event `after`, + 1,
which is at most the snapshot's xmax: a resume may send a few events again, never skips).

A position with more than MAX_PENDING in-progress transactions (more than any real
max_connections) is written as xmax = the smallest of them and none listed: every
event they or later transactions wrote counts as undelivered, so a resume may repeat
events but never skips one, and every cursor decodes."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

from flowrun.server import errors
from flowrun.server.repositories.flow_run_events import Position

VERSION = 3
_LEGACY_VERSION = 2
_MAC_BYTES = 16
MAX_CURSOR_LENGTH = 16_384
MAX_PENDING = 10_000
REASON = "INVALID_WATCH_CURSOR"


def encode(position: Position, secret: str) -> str:
    pending, xmax = sorted(position.pending), position.xmax
    if len(pending) > MAX_PENDING:
        pending, xmax = [], pending[0]
    numbers = [position.after, xmax, len(pending)]
    numbers += [xid - before for xid, before in zip(pending, [0, *pending], strict=False)]
    body = bytes([VERSION]) + b"".join(varint(number) for number in numbers)
    return base64.urlsafe_b64encode(body + _mac(secret, body)).rstrip(b"=").decode()


def decode(cursor: str, secret: str, field: str = "cursor") -> tuple[Position, bool]:
    """The position, and whether its xmax is known (False for a version 2 cursor)."""
    if len(cursor) > MAX_CURSOR_LENGTH:
        raise _invalid(field, "the cursor is too long")
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise _invalid(field, "the cursor is not valid base64url") from None
    body, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
    if len(raw) <= _MAC_BYTES or not hmac.compare_digest(mac, _mac(secret, body)):
        raise _invalid(field, "the cursor is corrupt or was not issued by this service")
    if body[0] not in (VERSION, _LEGACY_VERSION):
        raise _invalid(field, "the cursor is from another version of the service")
    try:
        numbers, offset = [], 1
        while offset < len(body):
            number, offset = _read_varint(body, offset)
            numbers.append(number)
        after, xmax, count, *deltas = numbers
    except (IndexError, ValueError):
        raise _invalid(field, "the cursor is malformed") from None
    if count != len(deltas) or count > MAX_PENDING:
        raise _invalid(field, "the cursor is malformed")
    pending, xid = [], 0
    for delta in deltas:
        xid += delta
        pending.append(xid)
    if body[0] == _LEGACY_VERSION:
        return Position(after=after, pending=tuple(pending)), False
    return Position(after=after, xmax=xmax, pending=tuple(pending)), True


def varint(number: int) -> bytes:
    """Protobuf's unsigned varint (cursors and the watch servicer's framing)."""
    if number < 0:
        raise ValueError("unsigned varints are never negative")
    out = bytearray()
    while True:
        low, number = number & 0x7F, number >> 7
        out.append(low | (0x80 if number else 0))
        if not number:
            return bytes(out)


def _read_varint(data: bytes, offset: int) -> tuple[int, int]:
    number = shift = 0
    while True:
        if shift > 63:
            raise ValueError("varint too long")
        byte = data[offset]
        offset += 1
        number |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            return number, offset


def _mac(secret: str, body: bytes) -> bytes:
    return hmac.new(secret.encode(), b"watch-cursor\0" + body, hashlib.sha256).digest()[:_MAC_BYTES]


def _invalid(field: str, description: str) -> errors.InvalidArgument:
    return errors.InvalidArgument.field(field, description, reason=REASON)
