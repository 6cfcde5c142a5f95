"""What every repository shares: its connection and dialect."""

from __future__ import annotations

import asyncpg
from sqlalchemy.ext.asyncio import AsyncConnection

from flowrun.server.db.dialect import Dialect


class Repository:
    """`driver` is the same connection as asyncpg sees it (PostgreSQL only), for the few
    statements where SQLAlchemy's per-statement overhead dominates; both run inside the
    unit of work's one transaction."""

    def __init__(self, connection: AsyncConnection, dialect: Dialect, driver: asyncpg.Connection | None = None) -> None:
        self.connection = connection
        self.dialect = dialect
        self.driver = driver
