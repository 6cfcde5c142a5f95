"""Keys the server generates once and keeps in the database, so that every replica and
every worker process uses the same one and no two installations share one."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from flowrun.server.db.tables import server_secret
from flowrun.server.repositories.base import Repository


class ServerSecretRepository(Repository):
    async def get_or_create(self, name: str, candidate: str, now: datetime) -> str:
        """The value stored under `name`; stores `candidate` first if there is none.
        Race-free across processes: the INSERT does nothing when another transaction
        stored the name first (PostgreSQL waits for that transaction to commit; SQLite's
        write transaction holds the database lock), and the SELECT then reads the winner."""
        await self.connection.execute(
            self.dialect.insert(server_secret)
            .values(name=name, value=candidate, created=now)
            .on_conflict_do_nothing(index_elements=[server_secret.c.name])
        )
        query = select(server_secret.c.value).where(server_secret.c.name == name)
        return (await self.connection.execute(query)).scalar_one()
