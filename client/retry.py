"""Safe retries for FlowrunClient: which calls may be sent again, and when.

A failed call is sent again only when a second copy cannot do harm:

- ABORTED, for every RPC. The server answers ABORTED only for a lock or serialization
  conflict, raised inside the call's transaction, which is then rolled back: nothing was
  applied, so even a non-idempotent call (DeleteFlowRun, CreateDeployment, a forced
  SetFlowRunState) may be sent again.
- UNAVAILABLE, only for idempotent RPCs. UNAVAILABLE may come after the request reached
  the server (the connection dropped while the server committed, the database went away
  mid-commit), so the first copy may have been applied. Idempotent means: the proto
  declares `idempotency_level` NO_SIDE_EFFECTS or IDEMPOTENT, or its comment says a
  resend is harmless: CreateFlow (get-or-create), CreateTaskRun (get-or-create by key),
  CreateFlowRun with an idempotency_key, SetFlowRunState with a transition id and
  without `force` (the core policy answers a repeated transition id with REJECT and the
  current state instead of applying it again; `force` skips that rule).
- Requests that never left the client, or that the server refused before any handler
  saw them, are sent again by gRPC itself ("transparent retries", on with
  grpc.enable_retries) for every RPC, without counting against these attempts.

Nothing else is retried: INVALID_ARGUMENT, NOT_FOUND, FAILED_PRECONDITION, ... would
fail the same way; DEADLINE_EXCEEDED means the call's time is spent; RESOURCE_EXHAUSTED
is a size limit.

Why a loop here rather than gRPC's service-config retryPolicy: the policy cannot read
google.rpc.RetryInfo (the server's retry_delay; gRPC only knows its own
grpc-retry-pushback-ms trailer), it is chosen per method while idempotency here depends
on the request (CreateFlowRun with or without a key, SetFlowRunState with `force`), and
stacking it under this loop would multiply the attempts. So the channel enables gRPC's
transparent retries only, and this loop owns every retry that the server answered.

Backoff: exponential with full jitter (a random delay between 0 and
min(max_backoff, initial_backoff * multiplier ** (attempt - 1))), or the server's
RetryInfo.retry_delay plus up to half of it again as jitter when the answer carries one,
bounded by `max_attempts` and by the call's deadline: a retry whose delay would end
after the deadline is not made, and each attempt gets only the time that is left.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import grpc
from google.protobuf import descriptor_pb2
from google.protobuf.message import Message

from flowrun.v1 import (
    deployment_service_pb2,
    flow_run_service_pb2,
    flow_service_pb2,
    task_run_service_pb2,
    work_pool_service_pb2,
)

__all__ = ["RetryPolicy", "is_idempotent", "retryable"]

_SAFE_LEVELS = (
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT,
)


@dataclass(frozen=True)
class RetryPolicy:
    """How FlowrunClient retries. `max_attempts` counts the first try: 1 never retries.

    `sleep`, `clock` and `random` are injectable for tests; the defaults are
    asyncio.sleep, time.monotonic and random.random.
    """

    max_attempts: int = 5
    initial_backoff: float = 0.1
    max_backoff: float = 5.0
    multiplier: float = 2.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    random: Callable[[], float] = field(default=random.random, repr=False)

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if self.initial_backoff < 0 or self.max_backoff < 0 or self.multiplier < 1:
            raise ValueError("backoffs must be >= 0 and multiplier >= 1")

    def delay(self, failed_attempts: int, server_delay: float | None) -> float:
        """Seconds to wait after `failed_attempts` failures (1 after the first)."""
        if server_delay is not None and server_delay > 0:
            return server_delay * (1 + self.random() / 2)
        ceiling = min(self.max_backoff, self.initial_backoff * self.multiplier ** (failed_attempts - 1))
        return ceiling * self.random()


NO_RETRIES = RetryPolicy(max_attempts=1)


def _idempotency_by_request() -> dict[str, bool]:
    """Request message name -> whether its RPC declares itself safe to repeat. Every RPC
    has its own request message, so the request identifies the RPC."""
    table: dict[str, bool] = {}
    for module in (
        flow_service_pb2,
        flow_run_service_pb2,
        task_run_service_pb2,
        deployment_service_pb2,
        work_pool_service_pb2,
    ):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                level = method.GetOptions().idempotency_level
                table[method.input_type.full_name] = level in _SAFE_LEVELS
    return table


_DECLARED = _idempotency_by_request()


def is_idempotent(request: Message) -> bool:
    """Whether sending `request` twice has the effect of sending it once."""
    if isinstance(request, flow_service_pb2.CreateFlowRequest | task_run_service_pb2.CreateTaskRunRequest):
        return True
    if isinstance(request, flow_run_service_pb2.CreateFlowRunRequest):
        return bool(request.idempotency_key)
    if isinstance(request, flow_run_service_pb2.SetFlowRunStateRequest):
        return bool(request.state.state_details.transition_id) and not request.force
    return _DECLARED.get(request.DESCRIPTOR.full_name, False)


def retryable(code: grpc.StatusCode, request: Message) -> bool:
    """Whether a call that failed with `code` may be sent again (see the module doc)."""
    if code == grpc.StatusCode.ABORTED:
        return True
    return code == grpc.StatusCode.UNAVAILABLE and is_idempotent(request)
