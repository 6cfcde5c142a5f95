"""TLS and mutual TLS on the server's port, certificate rotation without a restart, and
the Python client and the CLI over TLS.

Certificates are made for each run (tests/helpers/certs.py); nothing leaves 127.0.0.1. TLS is a
property of the port, not of the storage, so these servers run on SQLite only.

Which certificate a server presents is read off the wire: a plain `ssl` connection to
the port (ALPN h2, as gRPC clients offer) and the peer's certificate in DER."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from grpc_health.v1 import health_pb2, health_pb2_grpc

from flowrun.client import FlowrunClient
from flowrun.client.tls import TlsConfig, TlsConfigError
from flowrun.server.app import App, build_app
from flowrun.server.config import Settings
from flowrun.server.tls import ServerCertificates, TlsError, peer_subject, server_certificates
from flowrun.v1 import flow_service_pb2, flow_service_pb2_grpc
from tests.conftest import settings_for
from tests.helpers.certs import CertificateAuthority, TlsFiles, write_tls_files
from tests.helpers.servers import REPO, ServerProcess

HOST = "127.0.0.1"
CALL_TIMEOUT = 10.0
UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


# --- helpers --------------------------------------------------------------------------------


def tls_settings(tmp: Path, files: TlsFiles, *, mutual: bool) -> Settings:
    return settings_for(
        f"sqlite+aiosqlite:///{tmp / 'flowrun.db'}",
        tls_cert_file=files.server_cert,
        tls_key_file=files.server_key,
        tls_client_ca_file=files.ca if mutual else None,
    )


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[App]:
    app = await build_app(settings)
    await app.start()
    try:
        yield app
    finally:
        await app.stop(grace=0)


def channel_credentials(ca: Path | bytes, cert: Path | None = None, key: Path | None = None) -> grpc.ChannelCredentials:
    return grpc.ssl_channel_credentials(
        ca if isinstance(ca, bytes) else ca.read_bytes(),
        key.read_bytes() if key else None,
        cert.read_bytes() if cert else None,
    )


def secure_channel(port: int, credentials: grpc.ChannelCredentials) -> grpc.aio.Channel:
    # A connection of its own: channels to one target otherwise share one.
    return grpc.aio.secure_channel(f"{HOST}:{port}", credentials, options=[("grpc.use_local_subchannel_pool", 1)])


async def check(channel: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=CALL_TIMEOUT)
    return reply.status


async def refused(channel: grpc.aio.Channel) -> grpc.StatusCode:
    """The status of a health check that must fail (the connection is refused)."""
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await check(channel)
    return failure.value.code()


def _served(port: int, client_cert: Path | None, client_key: Path | None) -> x509.Certificate:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # we only read what is presented
    context.set_alpn_protocols(["h2"])
    if client_cert and client_key:
        context.load_cert_chain(client_cert, client_key)
    with socket.create_connection((HOST, port), timeout=CALL_TIMEOUT) as raw:
        with context.wrap_socket(raw, server_hostname="localhost") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True))


async def served_certificate(port: int, files: TlsFiles | None = None) -> x509.Certificate:
    """The certificate the server presents to a new connection."""
    return await asyncio.to_thread(
        _served, port, files.client_cert if files else None, files.client_key if files else None
    )


def common_name(certificate: x509.Certificate) -> str:
    return certificate.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)[0].value


def fingerprint(certificate: x509.Certificate) -> str:
    """As the server logs it, and as `openssl x509 -noout -fingerprint -sha256` prints it."""
    return certificate.fingerprint(hashes.SHA256()).hex(":").upper()


# --- plaintext, TLS, mTLS ----------------------------------------------------------------------


@pytest.fixture(scope="module")
async def tls_app(tmp_path_factory) -> AsyncIterator[tuple[App, TlsFiles]]:
    tmp = tmp_path_factory.mktemp("tls")
    files = write_tls_files(tmp / "certs")
    async with serving(tls_settings(tmp, files, mutual=False)) as app:
        yield app, files


@pytest.fixture(scope="module")
async def mtls_app(tmp_path_factory) -> AsyncIterator[tuple[App, TlsFiles]]:
    tmp = tmp_path_factory.mktemp("mtls")
    files = write_tls_files(tmp / "certs")
    async with serving(tls_settings(tmp, files, mutual=True)) as app:
        yield app, files


async def test_plaintext_client_to_a_tls_port_is_unavailable(tls_app):
    app, _ = tls_app
    async with grpc.aio.insecure_channel(f"{HOST}:{app.port}") as channel:
        assert await refused(channel) == UNAVAILABLE


async def test_tls_with_the_servers_ca_works_and_another_ca_is_refused(tls_app):
    app, files = tls_app
    assert app.tls is not None and not app.tls.mutual
    async with secure_channel(app.port, channel_credentials(files.ca)) as channel:
        assert await check(channel) == health_pb2.HealthCheckResponse.SERVING
        reply = await flow_service_pb2_grpc.FlowServiceStub(channel).CreateFlow(
            flow_service_pb2.CreateFlowRequest(name="over-tls"), timeout=CALL_TIMEOUT
        )
        assert reply.flow.name == "over-tls"
    # A client that trusts another CA does not accept this server's certificate.
    async with secure_channel(app.port, channel_credentials(CertificateAuthority().cert_pem)) as channel:
        assert await refused(channel) == UNAVAILABLE
    # Served: the certificate from FLOWRUN_TLS_CERT_FILE, valid for 127.0.0.1 and localhost.
    served = await served_certificate(app.port)
    assert served.public_bytes(Encoding.PEM) == files.server_cert.read_bytes()


async def test_mtls_refuses_a_client_without_a_certificate(mtls_app):
    app, files = mtls_app
    assert app.tls is not None and app.tls.mutual
    async with secure_channel(app.port, channel_credentials(files.ca)) as channel:
        assert await refused(channel) == UNAVAILABLE


async def test_mtls_refuses_a_certificate_from_an_unknown_ca(mtls_app):
    app, files = mtls_app
    credentials = channel_credentials(files.ca, files.stranger_cert, files.stranger_key)
    async with secure_channel(app.port, credentials) as channel:
        assert await refused(channel) == UNAVAILABLE


async def test_mtls_accepts_a_certificate_from_the_client_ca(mtls_app):
    app, files = mtls_app
    async with secure_channel(app.port, channel_credentials(files.ca, files.client_cert, files.client_key)) as channel:
        assert await check(channel) == health_pb2.HealthCheckResponse.SERVING
        reply = await flow_service_pb2_grpc.FlowServiceStub(channel).CreateFlow(
            flow_service_pb2.CreateFlowRequest(name="over-mtls"), timeout=CALL_TIMEOUT
        )
        assert reply.flow.name == "over-mtls"


async def test_handlers_read_the_verified_client_subject_from_the_auth_context(tmp_path):
    """What an authorization layer gets: auth_context()["x509_subject"] (and
    "x509_common_name", "x509_pem_cert") of the verified client certificate."""
    files = write_tls_files(tmp_path)
    seen: list[dict[str, list[bytes]]] = []

    async def whoami(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        seen.append(context.auth_context())
        return (peer_subject(context) or "").encode()

    server = grpc.aio.server()
    server.add_generic_rpc_handlers(
        [grpc.method_handlers_generic_handler("test.Peer", {"WhoAmI": grpc.unary_unary_rpc_method_handler(whoami)})]
    )
    port = server.add_secure_port(
        f"{HOST}:0", ServerCertificates(files.server_cert, files.server_key, files.ca).credentials()
    )
    await server.start()
    try:
        credentials = channel_credentials(files.ca, files.client_cert, files.client_key)
        async with secure_channel(port, credentials) as channel:
            subject = await channel.unary_unary("/test.Peer/WhoAmI")(b"", timeout=CALL_TIMEOUT)
    finally:
        await server.stop(0)
    assert subject == b"CN=flowrun-test-client,O=flowrun tests"
    context = seen[0]
    assert context["x509_common_name"] == [b"flowrun-test-client"]
    assert context["x509_pem_cert"] == [files.client_cert.read_bytes()]
    assert context["transport_security_type"] == [b"ssl"]


# --- rotation ------------------------------------------------------------------------------------


async def test_a_rotated_certificate_is_served_to_new_connections_while_open_ones_keep_working(tmp_path, caplog):
    """The files are rewritten in place with a certificate from a *new* CA: a channel
    that trusts only the old CA keeps working (its connection, and a stream open on it,
    were never re-handshaken), a new connection gets the new certificate, and a client
    that trusts only the old CA cannot make a new connection any more."""
    files = write_tls_files(tmp_path / "certs")
    async with serving(tls_settings(tmp_path, files, mutual=False)) as app:
        old = await served_certificate(app.port)
        async with secure_channel(app.port, channel_credentials(files.ca)) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            watch = health.Watch(health_pb2.HealthCheckRequest(service="tls-test"))  # an open stream
            first = await asyncio.wait_for(watch.read(), CALL_TIMEOUT)
            assert first.status == health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

            new_ca = CertificateAuthority("the new CA")
            rotated = new_ca.server("flowrun rotated server")
            with caplog.at_level(logging.INFO, logger="flowrun.tls"):
                rotated.write(files.server_cert, files.server_key)
                served = await served_certificate(app.port)
            assert served.serial_number == rotated.serial != old.serial_number
            assert common_name(served) == "flowrun rotated server"
            assert any("loaded" in record.getMessage() for record in caplog.records)

            # The open connection: the stream still delivers, and new calls on it work.
            await app.health.set("tls-test", health_pb2.HealthCheckResponse.SERVING)
            update = await asyncio.wait_for(watch.read(), CALL_TIMEOUT)
            assert update.status == health_pb2.HealthCheckResponse.SERVING
            watch.cancel()
            assert await check(channel) == health_pb2.HealthCheckResponse.SERVING

        # New connections: only a client that trusts the new CA gets through.
        async with secure_channel(app.port, channel_credentials(files.ca)) as channel:
            assert await refused(channel) == UNAVAILABLE
        async with secure_channel(app.port, channel_credentials(new_ca.cert_pem)) as channel:
            assert await check(channel) == health_pb2.HealthCheckResponse.SERVING


async def test_a_bad_new_certificate_keeps_the_old_one_served_until_the_files_are_fixed(tmp_path, caplog):
    files = write_tls_files(tmp_path / "certs")
    async with serving(tls_settings(tmp_path, files, mutual=False)) as app:
        old = await served_certificate(app.port)
        with caplog.at_level(logging.ERROR, logger="flowrun.tls"):
            files.server_cert.write_text("not a certificate\n")
            assert (await served_certificate(app.port)).serial_number == old.serial_number
            assert (await served_certificate(app.port)).serial_number == old.serial_number
        errors = [record.getMessage() for record in caplog.records if record.levelno >= logging.ERROR]
        assert len(errors) == 1, errors  # once per change, not once per handshake
        assert "keeping the current certificate" in errors[0]
        # A half-done rotation (a new certificate, the old key) is refused the same way.
        ca = CertificateAuthority()
        files.server_cert.write_bytes(ca.server().cert_pem)
        assert (await served_certificate(app.port)).serial_number == old.serial_number
        async with secure_channel(app.port, channel_credentials(files.ca)) as channel:
            assert await check(channel) == health_pb2.HealthCheckResponse.SERVING
        # Fixed: the next connection gets the new certificate.
        fixed = ca.server("fixed")
        fixed.write(files.server_cert, files.server_key)
        assert (await served_certificate(app.port)).serial_number == fixed.serial


async def test_a_rotated_client_ca_applies_to_new_connections(tmp_path):
    """mTLS: the client CA file is reloaded too; a client of the new CA gets in."""
    files = write_tls_files(tmp_path / "certs")
    async with serving(tls_settings(tmp_path, files, mutual=True)) as app:
        new_clients = CertificateAuthority("new client CA")
        newcomer = new_clients.client("newcomer")
        newcomer.write(tmp_path / "newcomer.pem", tmp_path / "newcomer-key.pem")
        new_credentials = channel_credentials(files.ca, tmp_path / "newcomer.pem", tmp_path / "newcomer-key.pem")
        async with secure_channel(app.port, new_credentials) as channel:
            assert await refused(channel) == UNAVAILABLE
        files.ca.write_bytes(new_clients.cert_pem + files.ca.read_bytes())  # server CA stays for the server cert
        async with secure_channel(app.port, new_credentials) as channel:
            assert await check(channel) == health_pb2.HealthCheckResponse.SERVING


def test_sighup_rereads_even_files_that_look_unchanged(tmp_path, caplog):
    """The fetcher skips files whose stat is unchanged; SIGHUP (reload) reads them anyway."""
    files = write_tls_files(tmp_path)
    certificates = ServerCertificates(files.server_cert, files.server_key, files.ca)
    assert certificates.fetch() is None  # nothing changed: gRPC keeps what it has
    with caplog.at_level(logging.INFO, logger="flowrun.tls"):
        certificates.reload()
    assert any("loaded" in record.getMessage() for record in caplog.records)
    assert isinstance(certificates.fetch(), grpc.ServerCertificateConfiguration)
    assert certificates.fetch() is None


def wait_for_log(path: Path, text: str, count: int = 1, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while path.read_text(errors="replace").count(text) < count:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{text!r} not logged {count} times within {timeout} s:\n{path.read_text()[-3000:]}")
        time.sleep(0.05)


@pytest.mark.multiprocess
@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
async def test_sighup_rereads_the_certificate_in_a_server_process(tmp_path, workers):
    """`kill -HUP`: the process (with --workers, the supervisor, which passes it on) reads
    the files at once and keeps serving; new connections get the new certificate."""
    files = write_tls_files(tmp_path / "certs")
    log = tmp_path / "server.log"
    server = ServerProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'flowrun.db'}",
        log_path=log,
        args=["--workers", str(workers)],
        env={
            "FLOWRUN_TLS_CERT_FILE": str(files.server_cert),
            "FLOWRUN_TLS_KEY_FILE": str(files.server_key),
            "FLOWRUN_LOG_LEVEL": "INFO",
        },
    )
    try:
        port = await asyncio.to_thread(server.wait_until_serving, 60)
        old = await served_certificate(port)
        rotated = CertificateAuthority().server("rotated by SIGHUP")
        rotated.write(files.server_cert, files.server_key)
        server.process.send_signal(signal.SIGHUP)
        # Logged by every worker at the signal, before any new connection asked.
        await asyncio.to_thread(wait_for_log, log, f"loaded (sha256 {fingerprint(rotated.certificate)})", workers)
        assert server.process.poll() is None
        served = [await served_certificate(port) for _ in range(4)]
        assert {certificate.serial_number for certificate in served} == {rotated.serial} != {old.serial_number}
    finally:
        await asyncio.to_thread(server.stop)
    assert "Traceback" not in log.read_text()


# --- settings ----------------------------------------------------------------------------------------


def test_tls_settings_must_be_complete_and_files_good(tmp_path):
    files = write_tls_files(tmp_path)
    base = settings_for("sqlite+aiosqlite://")
    assert server_certificates(base) is None  # no TLS settings: plaintext, as before
    cases = {
        "FLOWRUN_TLS_KEY_FILE is not": {"tls_cert_file": files.server_cert},
        "FLOWRUN_TLS_CERT_FILE is not": {"tls_key_file": files.server_key},
        "FLOWRUN_TLS_CLIENT_CA_FILE needs": {"tls_client_ca_file": files.ca},
        "No such file": {"tls_cert_file": tmp_path / "missing.pem", "tls_key_file": files.server_key},
        "not a PEM certificate chain and its unencrypted private key": {
            "tls_cert_file": files.server_cert,
            "tls_key_file": files.client_key,  # another certificate's key
        },
        "FLOWRUN_TLS_CLIENT_CA_FILE": {
            "tls_cert_file": files.server_cert,
            "tls_key_file": files.server_key,
            "tls_client_ca_file": files.server_key,  # not a certificate
        },
    }
    for message, overrides in cases.items():
        with pytest.raises(TlsError, match=message):
            server_certificates(base.model_copy(update=overrides))
    assert Settings(tls_cert_file="", tls_key_file="").tls_cert_file is None  # empty variables are unset


async def test_a_certificate_chain_file_with_text_around_it_is_served(tmp_path):
    """What tools write: text before the PEM block (openssl pkcs12's "Bag Attributes"),
    the server's certificate, then the intermediates. The server presents its own."""
    files = write_tls_files(tmp_path / "certs")
    leaf = x509.load_pem_x509_certificate(files.server_cert.read_bytes())
    files.server_cert.write_bytes(
        b"Bag Attributes\n    friendlyName: flowrun\n" + files.server_cert.read_bytes() + files.ca.read_bytes()
    )
    async with serving(tls_settings(tmp_path, files, mutual=False)) as app:
        assert app.tls is not None and app.tls.fingerprint == fingerprint(leaf)
        assert (await served_certificate(app.port)).serial_number == leaf.serial_number
        async with secure_channel(app.port, channel_credentials(files.ca)) as channel:
            assert await check(channel) == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.multiprocess
@pytest.mark.slow
def test_the_server_refuses_to_start_with_half_the_tls_settings(tmp_path):
    files = write_tls_files(tmp_path)
    server = ServerProcess(
        f"sqlite+aiosqlite:///{tmp_path / 'flowrun.db'}",
        log_path=tmp_path / "server.log",
        env={"FLOWRUN_TLS_CERT_FILE": str(files.server_cert)},
    )
    try:
        assert server.process.wait(60) != 0
    finally:
        server.stop()
    message = (tmp_path / "server.log").read_text()
    assert "flowrun-server: error: FLOWRUN_TLS_CERT_FILE is set but FLOWRUN_TLS_KEY_FILE is not" in message
    assert "Traceback" not in message


# --- the Python client and the CLI ---------------------------------------------------------------


async def test_python_client_over_mtls(mtls_app):
    app, files = mtls_app
    tls = TlsConfig(ca_file=files.ca, cert_file=files.client_cert, key_file=files.client_key)
    async with FlowrunClient(f"{HOST}:{app.port}", tls=tls) as client:
        flow, _ = await client.create_flow("client-over-mtls")
        assert (await client.get_flow(flow.id)).name == "client-over-mtls"
    # Dialing an address the certificate does not name: server_name says which name to check.
    tls = TlsConfig(ca_file=files.ca, cert_file=files.client_cert, key_file=files.client_key, server_name="localhost")
    async with FlowrunClient(f"{HOST}:{app.port}", tls=tls) as client:
        assert (await client.get_flow(flow.id)).name == "client-over-mtls"
    with pytest.raises(TlsConfigError, match="needs its key"):
        TlsConfig(ca_file=files.ca, cert_file=files.client_cert).credentials()
    assert TlsConfig.from_environment({}) is None
    assert TlsConfig.from_environment({"FLOWRUN_TLS_CA_FILE": str(files.ca)}) == TlsConfig(ca_file=str(files.ca))


async def run_cli(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("FLOWRUN_TLS_")}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "flowrun.client.cli",
        *args,
        cwd=REPO,
        env={**environment, **(env or {})},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode, stdout.decode(), stderr.decode()


@pytest.mark.multiprocess
async def test_cli_over_mtls_with_options_and_with_environment_variables(mtls_app):
    app, files = mtls_app
    target = ["--target", f"localhost:{app.port}", "--no-retry"]
    code, out, err = await run_cli(
        *target,
        "--ca-file",
        str(files.ca),
        "--cert-file",
        str(files.client_cert),
        "--key-file",
        str(files.client_key),
        "flow",
        "create",
        "cli-over-mtls",
    )
    assert code == 0, err
    assert '"name": "cli-over-mtls"' in out
    environment = {
        "FLOWRUN_TLS_CA_FILE": str(files.ca),
        "FLOWRUN_TLS_CERT_FILE": str(files.client_cert),
        "FLOWRUN_TLS_KEY_FILE": str(files.client_key),
    }
    code, out, err = await run_cli(*target, "flow", "create", "cli-over-mtls", env=environment)
    assert code == 0, err
    assert '"created": false' in out
    # Without a client certificate the server does not let the CLI in.
    code, out, err = await run_cli(*target, "--ca-file", str(files.ca), "flow", "list")
    assert code == 1 and "UNAVAILABLE" in err.upper(), err
    code, out, err = await run_cli(
        *target, "--ca-file", str(files.ca), "--cert-file", str(files.client_cert), "flow", "list"
    )
    assert code == 1 and "needs its key" in err, err
