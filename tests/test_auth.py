"""Authentication, roles and audit through the real interceptor, on SQLite and PostgreSQL.

A server with a tokens file holding one token per role is called the way users call it.
For each (role, method) pair a cheap request (random ids, so nothing is found and nothing
is created) is sent as raw bytes: the only interesting outcome is PERMISSION_DENIED or
not. An allowed call may well fail with NOT_FOUND or INVALID_ARGUMENT: that proves it
passed authorization."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from flowrun.client import FlowrunClient, PermissionDeniedError, UnauthenticatedError, cli
from flowrun.server import auth_tokens
from flowrun.server.app import App, build_app
from flowrun.server.roles import FORCE_ROLE, FORCEABLE_METHODS, METHOD_ROLES, Role
from flowrun.v1 import flow_run_service_pb2, flow_service_pb2, state_pb2
from tests.conftest import settings_for
from tests.helpers.rich_errors import decode, expect_error


@dataclass
class Secured:
    app: App
    tokens_file: Path
    tokens: dict[Role, str]
    channel: grpc.aio.Channel

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.app.port}"


def bearer(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@pytest.fixture(scope="module")
async def secured(database_url, tmp_path_factory) -> AsyncIterator[Secured]:
    tokens_file = tmp_path_factory.mktemp("auth") / "tokens.jsonl"
    tokens = {role: auth_tokens.create(tokens_file, f"test-{role}", role) for role in Role}
    app = await build_app(settings_for(database_url, auth_tokens_file=tokens_file))
    await app.start()
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            yield Secured(app, tokens_file, tokens, channel)
    finally:
        await app.stop(grace=0)


def cheap_request(method: str, *, force: bool = False) -> bytes:
    """The method's request with every `*_id` a random UUID: found nowhere."""
    service, name = method[1:].split("/")
    descriptor = descriptor_pool.Default().FindServiceByName(service).methods_by_name[name]
    request = message_factory.GetMessageClass(descriptor.input_type)()
    for field in descriptor.input_type.fields:
        if field.name.endswith("_id") and not field.is_repeated:
            setattr(request, field.name, str(uuid.uuid4()))
    if force:
        request.force = True
        request.state.type = state_pb2.STATE_TYPE_RUNNING
    if "start" in descriptor.input_type.fields_by_name:  # a watch: its snapshot ends with a message at once
        request.start = flow_run_service_pb2.WATCH_START_SNAPSHOT
    return request.SerializeToString()


def server_streaming(method: str) -> bool:
    service, name = method[1:].split("/")
    return descriptor_pool.Default().FindServiceByName(service).methods_by_name[name].server_streaming


async def outcome(channel, method: str, body: bytes, token: str | None) -> grpc.aio.AioRpcError | None:
    """The call's error, or None when it was let through. A stream (a watch) that was let through
    may run forever: its first message, or its end, is the answer, and it is then cancelled."""
    metadata = bearer(token) if token else None
    try:
        if not server_streaming(method):
            await channel.unary_unary(method)(body, timeout=10, metadata=metadata)
            return None
        call = channel.unary_stream(method)(body, timeout=10, metadata=metadata)
        try:
            await call.read()
        finally:
            call.cancel()
    except grpc.aio.AioRpcError as error:
        return error
    return None


async def test_every_role_against_every_method(secured: Secured):
    cases = [(method, False, required) for method, required in METHOD_ROLES.items()]
    cases += [(method, True, FORCE_ROLE) for method in FORCEABLE_METHODS]
    wrong = []
    for method, force, required in cases:
        for role in Role:
            error = await outcome(secured.channel, method, cheap_request(method, force=force), secured.tokens[role])
            denied = error is not None and error.code() == grpc.StatusCode.PERMISSION_DENIED
            if denied != (role < required):
                wrong.append((method, force, str(role), error.code().name if error else "OK"))
                continue
            assert error is None or error.code() not in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.INTERNAL)
            if denied:
                details = decode(error)
                assert (details.reason, details.domain) == ("PERMISSION_DENIED", "flowrun.dev")
                assert details.metadata["required_role"] == str(required)
                assert details.metadata["caller_role"] == str(role)
                assert details.metadata["method"] == method
    assert not wrong, wrong


@pytest.mark.parametrize(
    "metadata",
    [
        None,
        (("authorization", "Basic dXNlcjpwYXNz"),),
        (("authorization", "Bearer"),),
        (("authorization", "Bearer not-a-token-we-issued"),),
        (("authorization", "Bearer a"), ("authorization", "Bearer b")),
    ],
    ids=["missing", "basic", "empty-bearer", "unknown", "two-headers"],
)
async def test_missing_malformed_or_unknown_credentials_are_unauthenticated(secured: Secured, metadata):
    for method in ("/flowrun.v1.FlowService/ListFlows", "/flowrun.v1.FlowService/DeleteFlows"):
        error = await expect_error(secured.channel.unary_unary(method)(b"", timeout=10, metadata=metadata))
        assert error.code == grpc.StatusCode.UNAUTHENTICATED
        assert (error.reason, error.domain) == ("UNAUTHENTICATED", "flowrun.dev")


async def test_undecodable_requests_from_strangers_are_unauthenticated_not_parsed(secured: Secured):
    method = "/flowrun.v1.FlowService/CreateFlow"
    error = await expect_error(secured.channel.unary_unary(method)(b"\xff\xff\xff", timeout=10))
    assert error.code == grpc.StatusCode.UNAUTHENTICATED
    token = secured.tokens[Role.WRITER]
    error = await expect_error(secured.channel.unary_unary(method)(b"\xff\xff\xff", timeout=10, metadata=bearer(token)))
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST")


@pytest.mark.parametrize(
    "body",
    [b"\xff\xff\xff", flow_service_pb2.CreateFlowRequest(name="nul\x00").SerializeToString()],
    ids=["undecodable", "invalid-field"],
)
@pytest.mark.parametrize(
    ("method", "role", "required"),
    [
        ("/flowrun.v1.FlowService/CreateFlow", Role.READER, Role.WRITER),
        ("/flowrun.v1.FlowService/DeleteFlow", Role.WRITER, Role.ADMIN),
        ("/flowrun.v1.FlowRunService/SetFlowRunState", Role.READER, Role.WRITER),
    ],
)
async def test_a_caller_below_the_methods_role_is_denied_whatever_the_body_holds(
    secured: Secured, body, method, role, required
):
    """A malformed or invalid body does not turn a denial into INVALID_ARGUMENT: the role
    is judged before the handler sees what the body was decoded into."""
    call = secured.channel.unary_unary(method)(body, timeout=10, metadata=bearer(secured.tokens[role]))
    error = await expect_error(call)
    assert (error.code, error.reason) == (grpc.StatusCode.PERMISSION_DENIED, "PERMISSION_DENIED")
    assert error.metadata["required_role"] == str(required)
    assert "force" not in error.metadata


async def test_health_is_open_without_a_token(secured: Secured):
    health = health_pb2_grpc.HealthStub(secured.channel)
    response = await health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


async def test_reflection_needs_a_token(secured: Secured):
    stub = reflection_pb2_grpc.ServerReflectionStub(secured.channel)

    async def list_services(metadata):
        request = reflection_pb2.ServerReflectionRequest(list_services="")
        responses = [response async for response in stub.ServerReflectionInfo(iter([request]), metadata=metadata)]
        return sorted(service.name for service in responses[0].list_services_response.service)

    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await list_services(None)
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert decode(caught.value).reason == "UNAUTHENTICATED"
    assert "flowrun.v1.FlowService" in await list_services(bearer(secured.tokens[Role.READER]))


@pytest.mark.slow  # waits up to the 1 s between looks at the file
async def test_tokens_created_and_revoked_while_the_server_runs(secured: Secured, unique):
    name = f"late-{unique}"
    token = await asyncio.to_thread(auth_tokens.create, secured.tokens_file, name, Role.READER)
    method = "/flowrun.v1.FlowService/CountFlows"
    assert await outcome(secured.channel, method, b"", token) is None  # works on its first call
    await asyncio.to_thread(auth_tokens.revoke, secured.tokens_file, name)
    # The file is looked at again at most once per second: wait for the revocation to land.
    for _ in range(200):
        error = await outcome(secured.channel, method, b"", token)
        if error is not None:
            break
        await asyncio.sleep(0.05)
    assert error is not None and error.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await outcome(secured.channel, method, b"", secured.tokens[Role.READER]) is None


@pytest.mark.multiprocess
async def test_the_python_client_and_the_cli_send_the_token(secured: Secured, unique):
    async with FlowrunClient(secured.target, token=secured.tokens[Role.WRITER]) as client:
        flow, created = await client.create_flow(f"auth-client-{unique}")
        assert created
    async with FlowrunClient(secured.target, retry=None) as client:
        with pytest.raises(UnauthenticatedError) as caught:
            await client.get_flow(flow.id)
        assert caught.value.__cause__.code() == grpc.StatusCode.UNAUTHENTICATED
    async with FlowrunClient(secured.target, token=secured.tokens[Role.READER]) as client:
        assert (await client.get_flow(flow.id)).name == flow.name
        with pytest.raises(PermissionDeniedError) as denied:
            await client.delete_flow(flow.id)
        assert denied.value.metadata["required_role"] == "admin"
    # The command line in its own process (grpc.aio wants one event loop per process).
    code, out, _ = await flowrun_command(secured, "--token", secured.tokens[Role.READER], "flow", "get", flow.id)
    assert code == 0 and json.loads(out)["flow"]["id"] == flow.id
    code, out, _ = await flowrun_command(
        secured, "flow", "get", flow.id, env={"FLOWRUN_TOKEN": secured.tokens[Role.READER]}
    )
    assert code == 0 and json.loads(out)["flow"]["id"] == flow.id
    code, _, err = await flowrun_command(secured, "flow", "get", flow.id)
    assert code == 1 and "Authentication required" in err


async def flowrun_command(secured: Secured, *args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FLOWRUN_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flowrun.client.cli",
        "--target",
        secured.target,
        "--no-retry",
        *args,
        env={**environment, **(env or {})},
        cwd=Path(__file__).resolve().parent.parent,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    return process.returncode, out.decode(), err.decode()


def test_the_cli_token_commands(tmp_path, capsys, monkeypatch):
    path = tmp_path / "cli-tokens.jsonl"
    assert cli.main(["token", "create", "ci", "--role", "writer", "--file", str(path)]) == 0
    token = capsys.readouterr().out.strip()
    assert auth_tokens.read(path)[0].sha256 == auth_tokens.token_hash(token)
    assert path.stat().st_mode & 0o777 == 0o600
    monkeypatch.setenv("FLOWRUN_AUTH_TOKENS_FILE", str(path))
    assert cli.main(["token", "create", "worker", "--role", "admin", "--subject", "CN=worker,O=Acme"]) == 0
    assert capsys.readouterr().out == ""
    assert cli.main(["token", "create", "ci", "--role", "reader"]) == 1
    assert "already" in capsys.readouterr().err
    assert cli.main(["token", "list"]) == 0
    listed = capsys.readouterr().out
    assert token not in listed and auth_tokens.token_hash(token) not in listed
    assert [(item["name"], item["role"]) for item in json.loads(listed)] == [("ci", "writer"), ("worker", "admin")]
    assert cli.main(["token", "revoke", "ci"]) == 0
    assert json.loads(capsys.readouterr().out) == {"name": "ci", "role": "writer", "revoked": True}
    assert [entry.name for entry in auth_tokens.read(path)] == ["worker"]
    monkeypatch.delenv("FLOWRUN_AUTH_TOKENS_FILE")
    assert cli.main(["token", "list"]) == 2


# Audit.


def audit_lines(caplog) -> list[dict]:
    return [json.loads(record.getMessage()) for record in caplog.records if record.name == "flowrun.audit"]


async def test_writes_are_audited_with_who_what_and_outcome(secured: Secured, unique, caplog):
    flows = secured.channel.unary_unary(
        "/flowrun.v1.FlowService/CreateFlow",
        request_serializer=flow_service_pb2.CreateFlowRequest.SerializeToString,
        response_deserializer=flow_service_pb2.CreateFlowResponse.FromString,
    )
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="flowrun.audit"):
        created = await flows(
            flow_service_pb2.CreateFlowRequest(name=f"audited-{unique}"),
            timeout=10,
            metadata=bearer(secured.tokens[Role.WRITER]),
        )
        await outcome(
            secured.channel,
            "/flowrun.v1.FlowService/GetFlow",
            cheap_request("/flowrun.v1.FlowService/GetFlow"),
            secured.tokens[Role.READER],
        )
        missing = str(uuid.uuid4())
        delete = flow_service_pb2.DeleteFlowRequest(flow_id=missing).SerializeToString()
        await outcome(secured.channel, "/flowrun.v1.FlowService/DeleteFlow", delete, secured.tokens[Role.WRITER])
        await outcome(secured.channel, "/flowrun.v1.FlowService/DeleteFlow", delete, secured.tokens[Role.ADMIN])
        await outcome(secured.channel, "/flowrun.v1.FlowService/DeleteFlow", delete, None)  # unauthenticated
    lines = audit_lines(caplog)
    assert [(line["method"].rsplit("/", 1)[1], line["caller"], line["code"]) for line in lines] == [
        ("CreateFlow", "test-writer", "OK"),
        ("DeleteFlow", "test-writer", "PERMISSION_DENIED"),
        ("DeleteFlow", "test-admin", "NOT_FOUND"),
    ]
    create, denied, deleted = lines
    assert create["via"] == "token" and create["role"] == "writer"
    assert create["ids"] == {"name": f"audited-{unique}"}
    assert create["result_ids"] == {"flow_id": created.flow.id}
    assert create["peer"].startswith(("ipv4:127.0.0.1:", "ipv6:"))
    assert create["time"].endswith("Z")
    assert denied["ids"] == deleted["ids"] == {"flow_id": missing}


async def test_forced_state_changes_and_deletes_are_audited_with_authentication_off(runs, flows, unique, caplog):
    """The session's server (conftest) has no tokens file: callers are anonymous."""
    flow = (await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"audit-off-{unique}"), timeout=10)).flow
    run = (await runs.CreateFlowRun(flow_run_service_pb2.CreateFlowRunRequest(flow_id=flow.id), timeout=10)).flow_run
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="flowrun.audit"):
        state = state_pb2.StateCreate(type=state_pb2.STATE_TYPE_COMPLETED)
        response = await runs.SetFlowRunState(
            flow_run_service_pb2.SetFlowRunStateRequest(flow_run_id=run.id, state=state, force=True), timeout=10
        )
        await runs.GetFlowRun(flow_run_service_pb2.GetFlowRunRequest(flow_run_id=run.id), timeout=10)  # a read
        await runs.DeleteFlowRun(flow_run_service_pb2.DeleteFlowRunRequest(flow_run_id=run.id), timeout=10)
    forced, deleted = audit_lines(caplog)
    assert forced["method"] == "/flowrun.v1.FlowRunService/SetFlowRunState"
    assert (forced["caller"], forced["via"], forced["force"], forced["code"]) == ("anonymous", "anonymous", True, "OK")
    assert forced["ids"] == {"flow_run_id": run.id}
    assert forced["result_ids"] == {"state_id": response.state.id}
    assert deleted["method"] == "/flowrun.v1.FlowRunService/DeleteFlowRun"
    assert (deleted["caller"], deleted["code"], deleted["ids"]) == ("anonymous", "OK", {"flow_run_id": run.id})
    assert "force" not in deleted
