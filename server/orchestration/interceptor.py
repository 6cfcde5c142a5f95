"""The orchestration interceptor: gives each SetState call its transaction, row lock and
policy, then lets the servicer describe the finished result.

For a SetState method it decodes the request and decides it: on PostgreSQL first in two
round trips without holding the row lock (server/orchestration/unlocked.py), else (and
whenever that path hands over) in a write unit of work running transitions.set_state
(lock, load, policy, persist, write back) and committing; on SQLite that unit of work
runs in the SQLite writer thread, handed over once (server/db/sqlite_writer.py). Only then does it call the
servicer, which turns the TransitionResult (transition_result()) into the response.
Every other method passes through untouched."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import grpc

from flowrun.server import clock
from flowrun.server.config import Settings
from flowrun.server.db.unit_of_work import Database
from flowrun.server.domain.states import State
from flowrun.server.orchestration.context import TransitionResult
from flowrun.server.orchestration.transitions import RunKind, set_state
from flowrun.server.orchestration.unlocked import set_state_unlocked
from flowrun.server.repositories import Repositories

#: (request, now) -> (run id, stamped proposal, force); raises InvalidArgument.
DecodeSetState = Callable[[Any, datetime], tuple[str, State, bool]]


@dataclass(frozen=True)
class OrchestratedMethod:
    """One SetState method: which runs it changes and how its request is read."""

    kind: RunKind
    decode: DecodeSetState


class TransitionObserver(Protocol):
    """Told about each SetState call: what was proposed (before the transaction), and the
    outcome once committed. Tracing installs one (server/tracing.py); with none installed
    the interceptor does no extra work."""

    def proposed(self, run_id: str, proposed: State, force: bool) -> None: ...

    def committed(self, result: TransitionResult) -> None: ...


_result: ContextVar[TransitionResult | None] = ContextVar("flowrun_transition_result", default=None)


def transition_result() -> TransitionResult:
    """The committed outcome of this SetState call, for its servicer to describe."""
    result = _result.get()
    if result is None:
        raise RuntimeError("a SetState method was called without the orchestration interceptor")
    return result


class OrchestrationInterceptor(grpc.aio.ServerInterceptor):
    def __init__(
        self,
        database: Database,
        settings: Settings,
        methods: Mapping[str, OrchestratedMethod],
        observer: TransitionObserver | None = None,
    ) -> None:
        self._database = database
        self._settings = settings
        self._methods = dict(methods)
        self._observer = observer
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = self._methods.get(handler_call_details.method)
        if handler is None or method is None:
            return handler
        wrapped = self._wrapped.get(handler_call_details.method)
        if wrapped is None or wrapped[0] is not handler:  # built once per method, not per call
            wrapped = (handler, self._orchestrated(handler, method))
            self._wrapped[handler_call_details.method] = wrapped
        return wrapped[1]

    def _orchestrated(self, handler: grpc.RpcMethodHandler, method: OrchestratedMethod) -> grpc.RpcMethodHandler:
        servicer = handler.unary_unary
        assert servicer is not None, "the SetState methods are unary-unary"
        database = self._database
        settings = self._settings
        observer = self._observer

        kind = method.kind
        unlocked = kind.unlocked and database.single_statements

        async def orchestrated(request, context):
            now = clock.now()
            run_id, proposed, force = method.decode(request, now)
            if observer is not None:
                observer.proposed(run_id, proposed, force)
            result = None
            if unlocked:
                # Rules change the proposal they see: every later attempt decodes its own copy.
                def again() -> State:
                    return method.decode(request, now)[1]

                result = await set_state_unlocked(
                    database, kind, run_id, proposed, again, now, force=force, settings=settings
                )
                if result is None:
                    proposed = again()
            if result is None:

                def locking(repos: Repositories) -> Awaitable[TransitionResult]:
                    return set_state(repos, kind, run_id, proposed, now, force=force, settings=settings)

                result = await database.write(locking)
            if observer is not None:
                observer.committed(result)
            token = _result.set(result)
            try:
                return await servicer(request, context)
            finally:
                _result.reset(token)

        return grpc.unary_unary_rpc_method_handler(
            orchestrated,
            request_deserializer=handler.request_deserializer,
            response_serializer=handler.response_serializer,
        )
