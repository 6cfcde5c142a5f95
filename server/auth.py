"""Who is calling, and may they: the outermost interceptor.

Authentication is on when the server has a tokens file (FLOWRUN_AUTH_TOKENS_FILE,
format in server/auth_tokens.py) or a client CA (FLOWRUN_TLS_CLIENT_CA_FILE, mTLS).
A caller is then, in this order:

1. the entry whose token is in `authorization: Bearer <token>` metadata. A call that
   sends the header is judged by it alone: malformed or unknown is UNAUTHENTICATED,
   even if its client certificate would do;
2. with mTLS and no header, the entry whose `subject` is the client certificate's
   subject (gRPC's auth context `x509_subject`, RFC 2253). With mTLS and no tokens
   file, every certificate the CA signed is an admin named by its subject: the CA is
   the access list;
3. nobody: UNAUTHENTICATED.

Then the caller's role must reach the method's (server/roles.py), and a forced
SetFlowRunState / SetTaskRunState needs admin: PERMISSION_DENIED otherwise, with an
ErrorInfo naming the required role. Both errors are google.rpc.Status details built by
server/error_mapping.py, like every other error.

The check runs before anything else, the cancellation shield included, and before the
request is even decoded: an unauthenticated caller costs one SHA-256 and a dict lookup,
never a protobuf parse. Health is open to everyone; reflection needs a caller.

Without a tokens file and a client CA every call is `anonymous` with the admin role,
as before authentication existed; the audit trail (server/audit.py) still records
every call that changes data.

The tokens file is re-read when it changes: at most once per second the server looks
at its inode, mtime and size (one stat), and an unknown token looks at once, so a token
made by `flowrun token create` works on its first call and a revoked one stops within a
second. A file that no longer parses keeps the last good table (and logs an ERROR each
time it changes): revocations by hand wait until the file is fixed."""

from __future__ import annotations

import hmac
import inspect
import ipaddress
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn, cast

import grpc

from flowrun.server import audit
from flowrun.server.auth_tokens import Entry, TokenFileError, read, token_hash
from flowrun.server.config import Settings
from flowrun.server.error_mapping import error_status
from flowrun.server.roles import FORCE_ROLE, FORCEABLE_METHODS, Role, changes_data, required_role

log = logging.getLogger("flowrun.auth")

RELOAD_CHECK_SECONDS = 1.0
X509_SUBJECT = "x509_subject"  # gRPC's auth context key for the verified peer's subject
_BEARER = re.compile(r"bearer +([^\s]+)", re.IGNORECASE)


class AuthConfigError(RuntimeError):
    """The server must not start: bad tokens file, or FLOWRUN_REQUIRE_AUTH without auth."""


@dataclass(frozen=True)
class Caller:
    name: str
    role: Role
    via: str  # "token", "certificate" or "anonymous"


ANONYMOUS = Caller("anonymous", Role.ADMIN, "anonymous")


class Unauthenticated(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TokenTable:
    """The tokens file in memory: entries by token hash and by certificate subject.

    Looking a token up by its SHA-256 in a dict is safe from timing attacks: how long the
    lookup takes depends on the hash of what the caller sent, which tells the caller
    nothing it did not know, and steering that hash toward a stored one would take a
    SHA-256 preimage. The entry found is still compared with hmac.compare_digest, so no
    path compares a secret-derived value with `==`."""

    def __init__(
        self, path: Path, *, clock: Callable[[], float] = time.monotonic, check_every: float = RELOAD_CHECK_SECONDS
    ) -> None:
        self.path = path
        self._clock = clock
        self._check_every = check_every
        self._checked_at = clock()
        self._signature = self._stat()
        try:
            self._load(read(path))
        except TokenFileError as exc:
            raise AuthConfigError(str(exc)) from None
        self._warn_if_writable()

    def _stat(self) -> tuple[int, int, int, int] | None:
        try:
            stat = os.stat(self.path)
        except OSError:
            return None
        return (stat.st_dev, stat.st_ino, stat.st_mtime_ns, stat.st_size)

    def _load(self, entries: list[Entry]) -> None:
        self._by_hash = {entry.sha256: entry for entry in entries if entry.sha256}
        self._by_subject = {entry.subject: entry for entry in entries if entry.subject}

    def _warn_if_writable(self) -> None:
        try:
            mode = os.stat(self.path).st_mode
        except OSError:
            return
        if mode & 0o022:
            log.warning(
                "the tokens file %s is writable by others: anyone who can write it can make an admin", self.path
            )

    def refresh(self, *, now: bool = False) -> None:
        """Re-reads the file if it changed; looks at most once per check period unless
        `now`."""
        moment = self._clock()
        if not now and moment - self._checked_at < self._check_every:
            return
        self._checked_at = moment
        signature = self._stat()
        if signature == self._signature:
            return
        self._signature = signature
        try:
            entries = read(self.path)
        except TokenFileError as exc:
            log.error("keeping the previous tokens: %s", exc)
            return
        self._load(entries)
        self._warn_if_writable()
        log.info("tokens file %s reloaded: %d entries", self.path, len(entries))

    def by_token(self, token: str) -> Entry | None:
        self.refresh()
        digest = token_hash(token)
        entry = self._by_hash.get(digest)
        if entry is None:
            self.refresh(now=True)  # maybe just created: look at the file once more
            entry = self._by_hash.get(digest)
        if entry is None or not hmac.compare_digest(entry.sha256 or "", digest):
            return None
        return entry

    def by_subject(self, subject: str) -> Entry | None:
        self.refresh()
        return self._by_subject.get(subject)


def certificate_subject(auth_context: Mapping[str, Iterable[bytes]]) -> str | None:
    """The verified client certificate's subject from a call's auth context
    (`context.auth_context()`), or None on plaintext or without a client certificate."""
    values = list(auth_context.get(X509_SUBJECT, ()))
    if len(values) != 1:
        return None
    return values[0].decode("utf-8", errors="replace")


def caller_from_auth_context(auth_context: Mapping[str, Iterable[bytes]], table: TokenTable | None) -> Caller | None:
    """The caller a verified client certificate proves, or None. With a tokens file the
    subject must be listed in it; without one any certificate the CA signed is admin."""
    subject = certificate_subject(auth_context)
    if subject is None:
        return None
    if table is None:
        return Caller(subject, Role.ADMIN, "certificate")
    entry = table.by_subject(subject)
    return None if entry is None else Caller(entry.name, entry.role, "certificate")


class Authenticator:
    """Turns a call's metadata and auth context into a Caller, or raises Unauthenticated."""

    def __init__(self, table: TokenTable | None, *, certificates: bool) -> None:
        self.table = table
        self.certificates = certificates

    @property
    def enabled(self) -> bool:
        return self.table is not None or self.certificates

    def authenticate(
        self, metadata: Iterable[tuple[str, str | bytes]], auth_context: Callable[[], Mapping[str, Iterable[bytes]]]
    ) -> Caller:
        if not self.enabled:
            return ANONYMOUS
        headers = [value for key, value in metadata if key == "authorization"]
        if headers:
            return self._from_header(headers)
        if self.certificates:
            caller = caller_from_auth_context(auth_context(), self.table)
            if caller is not None:
                return caller
            if certificate_subject(auth_context()) is not None:
                raise Unauthenticated(
                    "The client certificate's subject is not in the tokens file; send 'authorization: Bearer <token>'"
                )
        raise Unauthenticated("Authentication required: send the metadata 'authorization: Bearer <token>'")

    def _from_header(self, headers: list[str | bytes]) -> Caller:
        match = _BEARER.fullmatch(headers[0].strip()) if len(headers) == 1 and isinstance(headers[0], str) else None
        if match is None:
            raise Unauthenticated("Malformed authorization metadata: expected exactly one 'Bearer <token>'")
        entry = self.table.by_token(match.group(1)) if self.table is not None else None
        if entry is None:
            raise Unauthenticated("Unknown or revoked token")
        return Caller(entry.name, entry.role, "token")


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def authenticator_from_settings(settings: Settings) -> Authenticator:
    """The server's Authenticator; refuses bad tokens files and FLOWRUN_REQUIRE_AUTH
    without authentication, and warns loudly when an open server listens beyond
    loopback or tokens would cross the network in plaintext."""
    table = TokenTable(settings.auth_tokens_file) if settings.auth_tokens_file else None
    authenticator = Authenticator(table, certificates=settings.tls_client_ca_file is not None)
    exposed = not _loopback(settings.host)
    if not authenticator.enabled:
        if settings.require_auth:
            raise AuthConfigError(
                "FLOWRUN_REQUIRE_AUTH is set but authentication is off: "
                "set FLOWRUN_AUTH_TOKENS_FILE or FLOWRUN_TLS_CLIENT_CA_FILE"
            )
        if exposed:
            log.warning(
                "AUTHENTICATION IS OFF and flowrun listens on %s: anyone who can reach port %d can read, change "
                "and delete everything. Set FLOWRUN_AUTH_TOKENS_FILE (see `flowrun token create`) or "
                "FLOWRUN_TLS_CLIENT_CA_FILE; FLOWRUN_REQUIRE_AUTH=true refuses to start like this.",
                settings.host,
                settings.port,
            )
    elif table is not None and exposed and settings.tls_cert_file is None:
        log.warning(
            "bearer tokens are on but TLS is off on %s: tokens cross the network in plaintext. "
            "Set FLOWRUN_TLS_CERT_FILE and FLOWRUN_TLS_KEY_FILE, or terminate TLS in front of flowrun.",
            settings.host,
        )
    return authenticator


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Outermost interceptor: authenticates, authorizes by role (server/roles.py) and
    audits calls that change data (server/audit.py). The wrapped handler of each method
    is built once, not per call."""

    def __init__(self, authenticator: Authenticator) -> None:
        self.authenticator = authenticator
        self._wrapped: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    async def intercept_service(self, continuation, handler_call_details):
        method = handler_call_details.method
        handler = await continuation(handler_call_details)
        role = required_role(method)
        if handler is None or role is None or not (self.authenticator.enabled or changes_data(method)):
            # Open methods, and reads while authentication is off (every caller is an
            # anonymous admin): nothing to check and nothing to audit, no wrapper.
            return handler
        cached = self._wrapped.get(method)
        if cached is None or cached[0] is not handler:
            cached = self._wrapped[method] = (handler, self._guarded(handler, method, role))
        return cached[1]

    def _guarded(self, handler: grpc.RpcMethodHandler, method: str, role: Role) -> grpc.RpcMethodHandler:
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(
                _guarded_unary(self.authenticator, handler, method, role),
                request_deserializer=None,  # decoded inside, once the caller is known
                response_serializer=handler.response_serializer,
            )
        serializers = {
            "request_deserializer": handler.request_deserializer,
            "response_serializer": handler.response_serializer,
        }
        if handler.unary_stream is not None:
            wrapped = _guarded_stream(self.authenticator, handler.unary_stream, method, role)
            return grpc.unary_stream_rpc_method_handler(wrapped, **serializers)
        if handler.stream_unary is not None:
            wrapped = _guarded_stream(self.authenticator, handler.stream_unary, method, role)
            return grpc.stream_unary_rpc_method_handler(wrapped, **serializers)
        wrapped = _guarded_stream(self.authenticator, handler.stream_stream, method, role)
        return grpc.stream_stream_rpc_method_handler(wrapped, **serializers)


async def _caller(authenticator: Authenticator, context: grpc.aio.ServicerContext) -> Caller:
    """The call's caller; aborts the call with UNAUTHENTICATED if there is none."""
    try:
        return authenticator.authenticate(context.invocation_metadata() or (), context.auth_context)
    except Unauthenticated as exc:
        await _refuse(context, exc)


async def _refuse(context: grpc.aio.ServicerContext, failure: Unauthenticated) -> NoReturn:
    log.debug("unauthenticated call from %s: %s", context.peer(), failure.message)
    status = error_status(grpc.StatusCode.UNAUTHENTICATED, failure.message, "UNAUTHENTICATED")
    await context.abort(status.code, status.details, status.trailing_metadata)  # raises
    raise AssertionError("context.abort returned")


def _denied(caller: Caller, method: str, required: Role, *, forced: bool = False) -> grpc.Status:
    if forced:
        message = f"A forced state change needs the {required} role; the caller has {caller.role}"
    else:
        message = f"{method} needs the {required} role; the caller has {caller.role}"
    metadata = {"method": method, "required_role": str(required), "caller_role": str(caller.role)}
    if forced:
        metadata["force"] = "true"
    return error_status(grpc.StatusCode.PERMISSION_DENIED, message, "PERMISSION_DENIED", metadata)


def _guarded_unary(authenticator: Authenticator, handler: grpc.RpcMethodHandler, method: str, role: Role):
    assert handler.unary_unary is not None, "_guarded calls this for unary-unary handlers only"
    # grpc's stubs type handlers for the threaded server; under grpc.aio the behaviour is a
    # coroutine function that takes the aio context.
    inner = cast(Callable[[Any, grpc.aio.ServicerContext], Awaitable[Any]], handler.unary_unary)
    deserialize = handler.request_deserializer
    forceable = method in FORCEABLE_METHODS
    audited = changes_data(method)

    async def guarded(raw: bytes, context: grpc.aio.ServicerContext):
        try:  # as _caller does, without a coroutine per call
            caller = authenticator.authenticate(context.invocation_metadata() or (), context.auth_context)
        except Unauthenticated as exc:
            await _refuse(context, exc)
        started = datetime.now(UTC)
        request = deserialize(raw) if deserialize is not None else raw
        forced = forceable and getattr(request, "force", False) is True
        needed = max(role, FORCE_ROLE) if forced else role
        if caller.role < needed:
            denial = _denied(caller, method, needed, forced=forced)
            if audited:
                _audit(started, caller, context, method, request, None, "PERMISSION_DENIED")
            await context.abort(denial.code, denial.details, denial.trailing_metadata)
        if not audited:
            return await inner(request, context)
        response, code = None, "UNKNOWN"
        try:
            response = await inner(request, context)
            code = "OK"
            return response
        except grpc.aio.AbortError:
            code = _code_name(context.code())
            raise
        except BaseException:
            remaining = context.time_remaining()
            code = "DEADLINE_EXCEEDED" if remaining is not None and remaining <= 0 else "CANCELLED"
            raise
        finally:
            _audit(started, caller, context, method, request, response, code)

    return guarded


def _code_name(code: grpc.StatusCode | int | None) -> str:
    if isinstance(code, grpc.StatusCode):
        return code.name
    for status in grpc.StatusCode:
        if status.value[0] == code:
            return status.name
    return "UNKNOWN"


def _audit(started, caller: Caller, context, method: str, request, response, code: str) -> None:
    audit.record(
        started=started,
        caller=caller.name,
        via=caller.via,
        role=str(caller.role),
        peer=context.peer(),
        method=method,
        request=request,
        response=response,
        code=code,
    )


def _guarded_stream(authenticator: Authenticator, inner, method: str, role: Role):
    """Reflection and any other streaming method: the caller is checked before the
    handler starts (a coroutine or an async generator, as `inner` is)."""

    async def check(context) -> None:
        caller = await _caller(authenticator, context)
        if caller.role < role:
            denial = _denied(caller, method, role)
            await context.abort(denial.code, denial.details, denial.trailing_metadata)

    if inspect.isasyncgenfunction(inner):

        async def streamed(request_or_iterator, context):
            await check(context)
            async for response in inner(request_or_iterator, context):
                yield response

        return streamed

    async def written(request_or_iterator, context):
        await check(context)
        return await inner(request_or_iterator, context)

    return written
