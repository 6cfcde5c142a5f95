"""The server's one source of wall-clock time (UTC, timezone-aware)."""

from __future__ import annotations

from datetime import datetime, timezone


def now() -> datetime:
    return datetime.now(timezone.utc)
