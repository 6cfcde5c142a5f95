"""Two processes opening a new SQLite file at once both switch it to WAL; SQLite may
answer the second "database is locked" at once, without waiting on its busy timeout
(seen in CI: a server process exited before serving). The switch is tried again until
the busy timeout (server/db/engine.py switch_to_wal)."""

from __future__ import annotations

import sqlite3

import pytest

from flowrun.server.db.engine import switch_to_wal


class LockedCursor:
    """Answers the WAL switch "database is locked" `times` times, then switches."""

    def __init__(self, times: int, message: str = "database is locked") -> None:
        self.left = times
        self.message = message
        self.executed: list[str] = []

    def execute(self, statement: str) -> None:
        self.executed.append(statement)
        if self.left:
            self.left -= 1
            raise sqlite3.OperationalError(self.message)


def test_a_locked_switch_is_tried_again_until_it_succeeds():
    cursor = LockedCursor(times=3)
    switch_to_wal(cursor, busy_timeout_ms=5000)
    assert cursor.executed == ["PRAGMA journal_mode=WAL"] * 4


def test_a_switch_still_locked_at_the_busy_timeout_fails():
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        switch_to_wal(LockedCursor(times=1000), busy_timeout_ms=100)


def test_other_errors_are_not_tried_again():
    cursor = LockedCursor(times=1, message="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk"):
        switch_to_wal(cursor, busy_timeout_ms=5000)
    assert len(cursor.executed) == 1


def test_a_real_database_ends_in_wal(tmp_path):
    connection = sqlite3.connect(tmp_path / "new.db")
    try:
        switch_to_wal(connection.cursor(), busy_timeout_ms=1000)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    finally:
        connection.close()
