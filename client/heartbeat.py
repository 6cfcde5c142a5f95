"""The heartbeat helper: keeps a RUNNING flow run alive while its code runs.

    async with client.heartbeat(flow_run_id) as beat:
        await do_the_work()          # check beat.lost.is_set() to learn it was stopped

Entering sends the first heartbeat (so a run that is not RUNNING fails at once), then a
background task sends one every third of the run's heartbeat timeout (the server's
answer says what the timeout is). When the server answers that the run is being
cancelled, has finished (completed, failed, cancelled or crashed elsewhere) or no longer
exists, the task stops and sets `lost`, with `state_type` saying what the run is in now.
A run that is only paused (the process waits for it to be resumed) keeps being beaten
for: the server records nothing while it is not RUNNING, and the beats count again once
it runs. Other failures (the server unreachable for longer than the client's retries)
are retried at the next beat: the deadline, not one lost call, decides. Leaving the
block stops the task."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from types import TracebackType

from flowrun.client.errors import FailedPreconditionError, FlowrunError, NotFoundError
from flowrun.v1 import flow_run_service_pb2

log = logging.getLogger("flowrun.client.heartbeat")

#: Heartbeats per timeout: one every third of it leaves room for two lost ones.
BEATS_PER_TIMEOUT = 3
#: How often to beat when the run has no heartbeat timeout (the server only records it).
UNTIMED_INTERVAL_SECONDS = 30.0
#: State types after which the run will not run again in this process: beating stops.
LOST_STATE_TYPES = frozenset({"", "CANCELLING", "CANCELLED", "COMPLETED", "FAILED", "CRASHED"})


class RunHeartbeat:
    """Sends heartbeats for one run while the `async with` block runs."""

    def __init__(
        self,
        send: Callable[[str], Awaitable[flow_run_service_pb2.HeartbeatFlowRunResponse]],
        flow_run_id: str,
        *,
        interval: float | None = None,
    ) -> None:
        if interval is not None and interval <= 0:
            raise ValueError("interval must be positive")
        self.flow_run_id = flow_run_id
        self._send = send
        self._interval = interval
        self._task: asyncio.Task[None] | None = None
        #: Set when the server said the run is being cancelled, finished or gone; beats stopped.
        self.lost = asyncio.Event()
        #: None while the run is RUNNING; else the state type the server last reported
        #: ("PAUSED", "CANCELLING", "CRASHED", ...; "" when it has none or was deleted).
        self.state_type: str | None = None
        #: The deadline the last answered heartbeat set (None: the run has no timeout).
        self.deadline: datetime | None = None
        #: Seconds between heartbeats, known once the first one was answered.
        self.interval: float | None = None

    async def __aenter__(self) -> RunHeartbeat:
        reply = await self._send(self.flow_run_id)
        self.interval = self._interval_for(reply)
        self._record(reply)
        self._task = asyncio.create_task(self._beat(), name=f"flowrun-heartbeat-{self.flow_run_id}")
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _interval_for(self, reply: flow_run_service_pb2.HeartbeatFlowRunResponse) -> float:
        if self._interval is not None:
            return self._interval
        if reply.HasField("heartbeat_timeout"):
            return reply.heartbeat_timeout.ToTimedelta().total_seconds() / BEATS_PER_TIMEOUT
        return UNTIMED_INTERVAL_SECONDS

    def _record(self, reply: flow_run_service_pb2.HeartbeatFlowRunResponse) -> None:
        self.deadline = reply.deadline.ToDatetime(tzinfo=UTC) if reply.HasField("deadline") else None

    async def _beat(self) -> None:
        assert self.interval is not None
        while True:
            await asyncio.sleep(self.interval)
            try:
                self._record(await self._send(self.flow_run_id))
                self.state_type = None
            except FailedPreconditionError as error:
                self.state_type = error.metadata.get("state_type", "")
                if self.state_type in LOST_STATE_TYPES:
                    self.lost.set()
                    return
            except NotFoundError:
                self.state_type = ""
                self.lost.set()
                return
            except FlowrunError as error:
                log.warning("heartbeat for flow run %s failed (%s); trying again", self.flow_run_id, error.code.name)
