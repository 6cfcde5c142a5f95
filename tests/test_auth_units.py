"""Authentication and authorization pieces without a server: the roles table against the
protos, the tokens file format, reloading, certificate subjects and startup checks."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys

import pytest

from flowrun.server import audit, auth_tokens
from flowrun.server.auth import (
    ANONYMOUS,
    AuthConfigError,
    Authenticator,
    TokenTable,
    Unauthenticated,
    authenticator_from_settings,
    caller_from_auth_context,
)
from flowrun.server.config import Settings
from flowrun.server.roles import FORCEABLE_METHODS, METHOD_ROLES, Role, changes_data, required_role
from flowrun.v1 import (
    deployment_service_pb2,
    flow_run_service_pb2,
    flow_service_pb2,
    task_run_service_pb2,
    work_pool_service_pb2,
)

SERVICE_FILES = (
    flow_service_pb2,
    flow_run_service_pb2,
    task_run_service_pb2,
    deployment_service_pb2,
    work_pool_service_pb2,
)


def flowrun_methods() -> dict[str, object]:
    """Every method of every flowrun service, from the file descriptors."""
    return {
        f"/{service.full_name}/{method.name}": method
        for module in SERVICE_FILES
        for service in module.DESCRIPTOR.services_by_name.values()
        for method in service.methods
    }


def test_the_roles_table_covers_every_flowrun_method_and_nothing_else():
    assert set(METHOD_ROLES) == set(flowrun_methods())


def test_forceable_methods_are_exactly_those_with_a_force_flag():
    with_force = {name for name, method in flowrun_methods().items() if "force" in method.input_type.fields_by_name}
    assert FORCEABLE_METHODS == with_force


def test_the_issue_s_lists_hold():
    """reader: reads; admin: every delete and every deployment/pool/queue write."""
    for name in flowrun_methods():
        verb = name.rsplit("/", 1)[1]
        if verb.startswith(("Get", "List", "Count")):
            assert METHOD_ROLES[name] is Role.READER, name
        if verb.startswith("Delete") or (verb.startswith("Create") and ("Deployment" in verb or "Work" in verb)):
            assert METHOD_ROLES[name] is Role.ADMIN, name
    assert METHOD_ROLES["/flowrun.v1.FlowRunService/SetFlowRunState"] is Role.WRITER
    assert METHOD_ROLES["/flowrun.v1.DeploymentService/RenewConcurrencyLease"] is Role.WRITER
    assert METHOD_ROLES["/flowrun.v1.FlowRunService/HeartbeatFlowRun"] is Role.WRITER


def test_health_is_open_reflection_needs_a_caller_and_unknown_methods_need_admin():
    assert required_role("/grpc.health.v1.Health/Check") is None
    assert required_role("/grpc.health.v1.Health/Watch") is None
    assert required_role("/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo") is Role.READER
    assert required_role("/grpc.reflection.v1.ServerReflection/ServerReflectionInfo") is Role.READER
    assert required_role("/some.Other/Method") is Role.ADMIN
    assert not changes_data("/flowrun.v1.FlowService/GetFlow")
    assert changes_data("/flowrun.v1.FlowService/CreateFlow")


def test_roles_are_ordered_and_parsed():
    assert Role.READER < Role.WRITER < Role.ADMIN
    assert Role.parse(" Writer ") is Role.WRITER
    with pytest.raises(ValueError, match="unknown role"):
        Role.parse("root")


# The tokens file.


def test_create_list_revoke_and_the_file_holds_only_hashes(tmp_path):
    path = tmp_path / "tokens.jsonl"
    token = auth_tokens.create(path, "ci", Role.WRITER)
    assert len(token) >= 43
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    text = path.read_text()
    assert token not in text
    assert auth_tokens.token_hash(token) in text
    auth_tokens.create(path, "w1", Role.ADMIN, subject="CN=w1,O=Acme")
    entries = auth_tokens.read(path)
    assert [(e.name, e.role, e.subject) for e in entries] == [
        ("ci", Role.WRITER, None),
        ("w1", Role.ADMIN, "CN=w1,O=Acme"),
    ]
    with pytest.raises(auth_tokens.TokenFileError, match="already"):
        auth_tokens.create(path, "ci", Role.READER)
    assert auth_tokens.revoke(path, "ci").name == "ci"
    assert [e.name for e in auth_tokens.read(path)] == ["w1"]
    with pytest.raises(auth_tokens.TokenFileError, match="no entry"):
        auth_tokens.revoke(path, "ci")


def test_tokens_differ():
    tokens = {auth_tokens.new_token() for _ in range(1000)}
    assert len(tokens) == 1000
    assert all(token.startswith("flowrun_") for token in tokens)  # never "-...": argparse would take it for an option


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("not json", "not JSON"),
        ('["a"]', "JSON object"),
        ('{"role": "reader", "sha256": "' + "0" * 64 + '"}', "name"),
        ('{"name": "a", "role": "root", "sha256": "' + "0" * 64 + '"}', "unknown role"),
        ('{"name": "a", "role": "reader"}', "exactly one"),
        ('{"name": "a", "role": "reader", "sha256": "' + "0" * 64 + '", "subject": "CN=a"}', "exactly one"),
        ('{"name": "a", "role": "reader", "sha256": "secret-token"}', "64 lowercase hex"),
    ],
)
def test_malformed_entries_are_refused_with_their_line(line, why):
    with pytest.raises(auth_tokens.TokenFileError, match=why) as caught:
        auth_tokens.parse("# a comment\n\n" + line + "\n")
    assert "line 3" in str(caught.value)


def test_duplicate_names_and_hashes_are_refused():
    entry = {"name": "a", "role": "reader", "sha256": "0" * 64}
    with pytest.raises(auth_tokens.TokenFileError, match="appears twice"):
        auth_tokens.parse(json.dumps(entry) + "\n" + json.dumps({**entry, "sha256": "1" * 64}))
    with pytest.raises(auth_tokens.TokenFileError, match="appears twice"):
        auth_tokens.parse(json.dumps(entry) + "\n" + json.dumps({**entry, "name": "b"}))


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_table_follows_the_file_at_most_once_per_period(tmp_path, caplog):
    path = tmp_path / "tokens.jsonl"
    first = auth_tokens.create(path, "first", Role.READER)
    clock = FakeClock()
    table = TokenTable(path, clock=clock, check_every=1.0)
    assert table.by_token(first).name == "first"
    second = auth_tokens.create(path, "second", Role.WRITER)
    assert table.by_token(second).role is Role.WRITER  # unknown: looked at the file at once
    auth_tokens.revoke(path, "first")
    assert table.by_token(first) is not None  # within the period: not looked at yet
    clock.now += 1.0
    assert table.by_token(first) is None
    # A file that no longer parses keeps the last good table, loudly.
    path.write_text(path.read_text() + "{broken\n")
    clock.now += 1.0
    with caplog.at_level(logging.ERROR, logger="flowrun.auth"):
        assert table.by_token(second).name == "second"
    assert "keeping the previous tokens" in caplog.text


def test_a_bad_or_missing_file_stops_the_server_from_starting(tmp_path):
    with pytest.raises(AuthConfigError, match="cannot read"):
        TokenTable(tmp_path / "missing.jsonl")
    (tmp_path / "bad.jsonl").write_text("{nope\n")
    with pytest.raises(AuthConfigError, match="line 1"):
        TokenTable(tmp_path / "bad.jsonl")


# Who the caller is.


def test_bearer_tokens_and_malformed_headers(tmp_path):
    path = tmp_path / "tokens.jsonl"
    token = auth_tokens.create(path, "ci", Role.WRITER)
    authenticator = Authenticator(TokenTable(path), certificates=False)
    no_context = dict
    caller = authenticator.authenticate([("authorization", f"Bearer {token}")], no_context)
    assert (caller.name, caller.role, caller.via) == ("ci", Role.WRITER, "token")
    assert authenticator.authenticate([("authorization", f"bearer   {token} ")], no_context).name == "ci"
    for metadata, why in [
        ([], "required"),
        ([("authorization", token)], "Malformed"),
        ([("authorization", f"Basic {token}")], "Malformed"),
        ([("authorization", "Bearer")], "Malformed"),
        ([("authorization", f"Bearer {token}"), ("authorization", f"Bearer {token}")], "Malformed"),
        ([("authorization", f"Bearer {token}x")], "Unknown"),
    ]:
        with pytest.raises(Unauthenticated, match=why):
            authenticator.authenticate(metadata, no_context)


def test_without_a_tokens_file_or_client_ca_everyone_is_an_anonymous_admin():
    authenticator = Authenticator(None, certificates=False)
    assert not authenticator.enabled
    assert authenticator.authenticate([("authorization", "Bearer whatever")], dict) is ANONYMOUS
    assert ANONYMOUS.role is Role.ADMIN


def test_certificate_subjects_map_to_callers(tmp_path):
    path = tmp_path / "tokens.jsonl"
    auth_tokens.create(path, "worker-1", Role.WRITER, subject="CN=worker-1,O=Acme")
    table = TokenTable(path)
    known = {"transport_security_type": [b"ssl"], "x509_subject": [b"CN=worker-1,O=Acme"]}
    stranger = {"transport_security_type": [b"ssl"], "x509_subject": [b"CN=someone,O=Acme"]}
    caller = caller_from_auth_context(known, table)
    assert (caller.name, caller.role, caller.via) == ("worker-1", Role.WRITER, "certificate")
    assert caller_from_auth_context(stranger, table) is None
    assert caller_from_auth_context({"transport_security_type": [b"insecure"]}, table) is None
    # mTLS without a tokens file: the CA is the access list.
    alone = caller_from_auth_context(stranger, None)
    assert (alone.name, alone.role) == ("CN=someone,O=Acme", Role.ADMIN)

    authenticator = Authenticator(table, certificates=True)
    assert authenticator.authenticate([], lambda: known).name == "worker-1"
    with pytest.raises(Unauthenticated, match="not in the tokens file"):
        authenticator.authenticate([], lambda: stranger)
    with pytest.raises(Unauthenticated, match="Unknown"):  # a header decides alone
        authenticator.authenticate([("authorization", "Bearer nope")], lambda: known)
    # Subjects count only when the server verifies client certificates.
    with pytest.raises(Unauthenticated, match="required"):
        Authenticator(table, certificates=False).authenticate([], lambda: known)


# Startup.


def test_require_auth_refuses_to_start_without_authentication():
    with pytest.raises(AuthConfigError, match="FLOWRUN_REQUIRE_AUTH"):
        authenticator_from_settings(Settings(require_auth=True))


@pytest.mark.multiprocess
@pytest.mark.parametrize("workers", ["1", "2"])
def test_the_server_refuses_to_start_with_one_line_and_no_traceback(tmp_path, workers):
    """`flowrun-server` says why it will not start, once, before any worker exists."""
    environment = {key: value for key, value in os.environ.items() if not key.startswith("FLOWRUN_")}
    environment |= {
        "FLOWRUN_REQUIRE_AUTH": "true",
        "FLOWRUN_WORKERS": workers,
        "FLOWRUN_PORT": "0",
        "FLOWRUN_DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'flowrun.db'}",
    }
    done = subprocess.run(
        [sys.executable, "-m", "flowrun.server"],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "flowrun-server: error:" in done.stderr and "FLOWRUN_REQUIRE_AUTH" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_open_server_beyond_loopback_warns_loudly(tmp_path, caplog):
    with caplog.at_level(logging.WARNING, logger="flowrun.auth"):
        authenticator_from_settings(Settings(host="127.0.0.1"))
        authenticator_from_settings(Settings(host="localhost"))
        assert not caplog.records
        authenticator_from_settings(Settings(host="0.0.0.0"))
    assert "AUTHENTICATION IS OFF" in caplog.text
    caplog.clear()
    path = tmp_path / "tokens.jsonl"
    auth_tokens.create(path, "ci", Role.WRITER)
    with caplog.at_level(logging.WARNING, logger="flowrun.auth"):
        authenticator = authenticator_from_settings(Settings(host="0.0.0.0", auth_tokens_file=path))
    assert authenticator.enabled
    assert "plaintext" in caplog.text
    assert "AUTHENTICATION IS OFF" not in caplog.text


def test_a_tokens_file_writable_by_others_is_reported(tmp_path, caplog):
    path = tmp_path / "tokens.jsonl"
    auth_tokens.create(path, "ci", Role.WRITER)
    os.chmod(path, 0o666)
    with caplog.at_level(logging.WARNING, logger="flowrun.auth"):
        TokenTable(path)
    assert "writable by others" in caplog.text


# What the audit trail records of a request and a response.


def test_audit_ids_of_requests_and_responses():
    from flowrun.v1 import flow_pb2

    assert audit.touched_ids(flow_run_service_pb2.SetFlowRunStateRequest(flow_run_id="r1", force=True)) == {
        "flow_run_id": "r1"
    }
    assert audit.touched_ids(flow_service_pb2.UpdateFlowRequest(flow=flow_pb2.Flow(id="f1"))) == {"flow_id": "f1"}
    assert audit.touched_ids(work_pool_service_pb2.DeleteWorkQueueRequest(work_pool_name="p", name="q")) == {
        "work_pool_name": "p",
        "name": "q",
    }
    many = audit.touched_ids(flow_service_pb2.DeleteFlowsRequest(flow_ids=[str(i) for i in range(150)]))
    assert len(many["flow_ids"]) == 100 and many["flow_ids_omitted"] == 50
    response = flow_service_pb2.CreateFlowResponse(flow=flow_pb2.Flow(id="f2"), created=True)
    assert audit.result_ids(response) == {"flow_id": "f2"}
    assert audit.touched_ids(b"raw") == {} and audit.result_ids(None) == {}
