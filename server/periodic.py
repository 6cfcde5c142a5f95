"""A background loop that runs one step every interval until stopped: the shape shared by
the health monitor and the lease reaper.

A step finishes before the next sleep starts, so steps never overlap and a slow one
cannot pile up behind itself. A step that raises is logged and the loop goes on: the
database may be away for a while, and the next step may find it back."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

log = logging.getLogger("flowrun.periodic")


class Periodic:
    def __init__(self, name: str, interval: float, step: Callable[[], Awaitable[object]]) -> None:
        self.name = name
        self.interval = interval
        self._step = step
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name=self.name)

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self._step()
            except Exception as exc:
                # Expected while the database is away: one line, no traceback (at DEBUG).
                log.warning("%s: a step failed (%r); trying again in %s s", self.name, exc, self.interval)
                log.debug("%s: the failed step's traceback", self.name, exc_info=True)
