"""Client certificates as credentials, end to end: a real mTLS server (throw-away
certificates from tests/helpers/certs.py) whose tokens file maps the client certificate's
subject to a role; and mTLS without a tokens file, where the CA is the access list."""

from __future__ import annotations

import json
import logging

import grpc
import pytest

from flowrun.client import FlowrunClient
from flowrun.client.errors import FlowrunError
from flowrun.client.tls import TlsConfig
from flowrun.server import auth_tokens
from flowrun.server.app import build_app
from flowrun.server.roles import Role
from tests.conftest import settings_for
from tests.helpers.certs import write_tls_files


@pytest.fixture
def tls_files(tmp_path):
    return write_tls_files(tmp_path / "tls")


def client_subject(tls_files) -> str:
    from cryptography import x509

    certificate = x509.load_pem_x509_certificate(tls_files.client_cert.read_bytes())
    return certificate.subject.rfc4514_string()  # the RFC 2253 form gRPC reports


async def serve(tmp_path, tls_files, **overrides):
    settings = settings_for(
        f"sqlite+aiosqlite:///{tmp_path / 'flowrun.db'}",
        tls_cert_file=tls_files.server_cert,
        tls_key_file=tls_files.server_key,
        tls_client_ca_file=tls_files.ca,
        **overrides,
    )
    app = await build_app(settings)
    await app.start()
    return app


def tls(tls_files) -> TlsConfig:
    return TlsConfig(ca_file=tls_files.ca, cert_file=tls_files.client_cert, key_file=tls_files.client_key)


async def test_a_mapped_certificate_subject_is_a_caller_with_its_role(tmp_path, tls_files, caplog):
    tokens_file = tmp_path / "tokens.jsonl"
    subject = client_subject(tls_files)
    auth_tokens.create(tokens_file, "cert-reader", Role.READER, subject=subject)
    admin_token = auth_tokens.create(tokens_file, "admin", Role.ADMIN)
    app = await serve(tmp_path, tls_files, auth_tokens_file=tokens_file)
    target = f"127.0.0.1:{app.port}"
    try:
        async with FlowrunClient(target, tls=tls(tls_files), retry=None) as client:
            assert await client.count_flows() >= 0  # reader: allowed on the certificate alone
            with pytest.raises(FlowrunError) as caught:
                await client.create_flow("not-for-readers")
            assert caught.value.__cause__.code() == grpc.StatusCode.PERMISSION_DENIED
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="flowrun.audit"):
            async with FlowrunClient(target, tls=tls(tls_files), token=admin_token, retry=None) as client:
                await client.delete_flows([])  # a token, when sent, decides
        (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "flowrun.audit"]
        assert (line["caller"], line["via"], line["code"]) == ("admin", "token", "OK")
    finally:
        await app.stop(grace=0)


async def test_mtls_without_a_tokens_file_makes_every_signed_certificate_an_admin(tmp_path, tls_files, caplog):
    app = await serve(tmp_path, tls_files)
    try:
        caplog.clear()
        with caplog.at_level(logging.INFO, logger="flowrun.audit"):
            async with FlowrunClient(f"127.0.0.1:{app.port}", tls=tls(tls_files), retry=None) as client:
                await client.delete_flows([])
        (line,) = [json.loads(r.getMessage()) for r in caplog.records if r.name == "flowrun.audit"]
        assert (line["caller"], line["via"], line["role"]) == (client_subject(tls_files), "certificate", "admin")
    finally:
        await app.stop(grace=0)
