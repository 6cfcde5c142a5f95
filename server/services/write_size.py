"""The write size rule: a write whose stored result could not be sent back whole is
refused before anything is written. Each write request must hold at most
Settings.write_max_bytes (its ByteSize(), which the upb runtime computes by encoding the
parsed message: about 0.3 us for a small request, 0.2-0.3 ms per MB), and an updated flow
run without its state at most Settings.run_without_state_max_bytes; server/config.py says
why that keeps every Get response, List page row and watch snapshot within the response
limit.

Which requests are bounded is decided here, once, from the one table of roles: every
method that changes data (server/roles.py: above reader) stores what it was sent, except
WRITES_STORING_NOTHING_SENT. So a new write is bounded unless it is declared not to store
its request, and tests/test_write_budget_coverage.py fails for any storing RPC it does not
send an over-budget request to. WriteBudgetInterceptor applies the budget to those
methods, before the handler (and before the orchestration interceptor decodes a SetState
request); the result check of UpdateFlowRun needs the stored run, so its servicer makes
it (check_result_size)."""

from __future__ import annotations

import grpc
from google.protobuf.message import Message

from flowrun.server.errors import InvalidArgument
from flowrun.server.roles import changes_data

_WELL_KNOWN = "google.protobuf."


class WriteTooLarge(InvalidArgument):
    """INVALID_ARGUMENT naming the largest field, with the limit and the size in the
    ErrorInfo metadata (max_bytes, request_bytes), so a client can tell what to shrink."""

    def __init__(self, field: str, description: str, size: int, limit: int) -> None:
        super().__init__([(field, description)])
        self.metadata = {"max_bytes": str(limit), "request_bytes": str(size)}


# Writes whose request holds nothing that is stored: a delete removes rows (DeleteFlows
# by a filter, which may be as large as any read's), a lease renewal or a heartbeat
# stores a time the server takes. Their handlers are left untouched.
WRITES_STORING_NOTHING_SENT = frozenset(
    {
        "/flowrun.v1.FlowService/DeleteFlow",
        "/flowrun.v1.FlowService/DeleteFlows",
        "/flowrun.v1.FlowRunService/DeleteFlowRun",
        "/flowrun.v1.FlowRunService/DeleteFlowRunState",
        "/flowrun.v1.FlowRunService/HeartbeatFlowRun",
        "/flowrun.v1.DeploymentService/DeleteDeployment",
        "/flowrun.v1.DeploymentService/RenewConcurrencyLease",
        "/flowrun.v1.WorkPoolService/DeleteWorkPool",
        "/flowrun.v1.WorkPoolService/DeleteWorkQueue",
    }
)


def bounded_by_write_budget(method: str) -> bool:
    """True for the methods whose request is stored (full gRPC method name)."""
    return changes_data(method) and method not in WRITES_STORING_NOTHING_SENT


class WriteBudgetInterceptor(grpc.aio.ServerInterceptor):
    """Refuses a request over `limit` bytes (WriteTooLarge) to a method that stores its
    request, before its handler runs; inside the error mapping, which turns the refusal
    into INVALID_ARGUMENT. Other methods get their handler back as it is, so they pay
    nothing; a storing method's wrapped handler is built once."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or not bounded_by_write_budget(method):
            return handler
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[method] = (handler, _bounded(handler, method, self._limit))
        return cached[1]


def _bounded(handler: grpc.RpcMethodHandler, method: str, limit: int) -> grpc.RpcMethodHandler:
    inner = handler.unary_unary
    if inner is None:
        raise TypeError(f"{method} stores its request but is streaming: the write budget bounds unary calls only")

    async def bounded(request, context):
        if request.ByteSize() > limit:  # inline: the one cost a storing call pays here
            refuse_write(request, limit)
        return await inner(request, context)

    return grpc.unary_unary_rpc_method_handler(
        bounded,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def refuse_write(request: Message, limit: int) -> None:
    """Raises WriteTooLarge for `request`, which holds more than `limit` bytes."""
    size = request.ByteSize()
    field, field_size = largest_field(request)
    raise WriteTooLarge(
        field or "(request)",
        f"the request is {size} bytes, over the {limit}-byte limit of a write "
        f"(this field holds {field_size} of them): a result that large could not be sent back",
        size,
        limit,
    )


def check_result_size(field: str, message: Message, limit: int, what: str) -> None:
    """Raises WriteTooLarge, naming `field` (the resource the request writes), when the
    result a write would store (`message`, as it would be returned, less what other writes
    bound) holds more than `limit` bytes."""
    size = message.ByteSize()
    if size > limit:
        biggest, field_size = largest_field(message)
        raise WriteTooLarge(
            field,
            f"{what} would be {size} bytes, over its {limit}-byte limit "
            f"(its largest field, {biggest}, would hold {field_size}): it could not be sent back",
            size,
            limit,
        )


def largest_field(message: Message) -> tuple[str, int]:
    """The path of the largest field (down through plain messages, stopping at
    well-known types such as Struct) and its size: only asked once a write is refused."""
    path: list[str] = []
    size = message.ByteSize()
    while fields := message.ListFields():
        size, field, value = max(((_size(value), field, value) for field, value in fields), key=lambda item: item[0])
        path.append(field.name)
        kind = field.message_type
        if kind is None or field.is_repeated or kind.full_name.startswith(_WELL_KNOWN):
            break
        message = value
    return ".".join(path), size


def _size(value) -> int:
    if isinstance(value, Message):
        return value.ByteSize()
    if isinstance(value, (str, bytes)):
        return len(value.encode() if isinstance(value, str) else value)
    if hasattr(value, "keys"):  # a map
        return sum(_size(key) + _size(value[key]) for key in value)
    try:
        return sum(_size(item) for item in value)  # a repeated field
    except TypeError:
        return 8  # a number or an enum
