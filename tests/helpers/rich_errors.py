"""Decoding google.rpc.Status details from a failed call, as any client would."""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass
class DecodedError:
    code: grpc.StatusCode
    message: str
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    field_violations: dict[str, str] = field(default_factory=dict)
    retry_delay_seconds: float | None = None
    detail_types: list[str] = field(default_factory=list)


def decode(error: grpc.aio.AioRpcError) -> DecodedError:
    status = rpc_status.from_call(error)
    assert status is not None, "the error carries no grpc-status-details-bin"
    assert status.code == error.code().value[0]
    assert status.message == error.details()
    decoded = DecodedError(code=error.code(), message=error.details())
    for detail in status.details:
        decoded.detail_types.append(detail.TypeName())
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            decoded.reason, decoded.domain, decoded.metadata = info.reason, info.domain, dict(info.metadata)
        elif detail.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            detail.Unpack(bad)
            decoded.field_violations = {v.field: v.description for v in bad.field_violations}
        elif detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            retry = error_details_pb2.RetryInfo()
            detail.Unpack(retry)
            decoded.retry_delay_seconds = retry.retry_delay.ToTimedelta().total_seconds()
    assert decoded.detail_types.count("google.rpc.ErrorInfo") == 1, decoded.detail_types
    return decoded


async def expect_error(call) -> DecodedError:
    """Awaits `call` and returns its decoded error; fails if it succeeds."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return decode(error)
    raise AssertionError("the call succeeded")
