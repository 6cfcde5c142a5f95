"""Small builders for test data that several test modules need."""

from __future__ import annotations

import uuid

from flowrun.v1 import deployment_service_pb2, deployment_service_pb2_grpc


async def create_deployment(channel, flow_id: str, **fields) -> str:
    """A real deployment of the flow (unlimited unless `concurrency_limit` is given)."""
    stub = deployment_service_pb2_grpc.DeploymentServiceStub(channel)
    request = deployment_service_pb2.CreateDeploymentRequest(
        flow_id=flow_id, name=f"d-{uuid.uuid4().hex[:10]}", **fields
    )
    return (await stub.CreateDeployment(request)).deployment.id
