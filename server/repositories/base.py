"""What every repository shares: its connection and dialect."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from server.db.dialect import Dialect


class Repository:
    def __init__(self, connection: AsyncConnection, dialect: Dialect) -> None:
        self.connection = connection
        self.dialect = dialect
