"""Drives every RPC of every flowrun service with hostile requests against a real
in-process server and records what came back.

The server runs on this process's event loop; the requests come from a synchronous
gRPC channel in a worker thread, where hypothesis generates them (strategies.py). Each
body is sent as raw bytes through `channel.unary_unary(path)` with no serializer, so
random bytes and corrupted encodings reach the server exactly as a broken client would
send them. Create and state-changing calls are sometimes sent three times at once, to
reach the idempotency and locking races.

A run fails (Report.ok is False) on any of:
- INTERNAL or UNKNOWN (a bug: no client input may produce them);
- DEADLINE_EXCEEDED (every call has a deadline, so this is a hang), UNAVAILABLE,
  RESOURCE_EXHAUSTED (error details bigger than the metadata limit), DATA_LOSS,
  UNIMPLEMENTED;
- an error without a decodable google.rpc.Status carrying exactly one ErrorInfo, with
  grpc-status-details-bin of 8 KiB or more, or whose message names SQL, a driver or a
  Python class;
- an OK response that does not decode as the method's response type;
- an ERROR record or a traceback in the server's log;
- a server that no longer answers its health check at the end.
"""

from __future__ import annotations

import asyncio
import logging
import re
import tempfile
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
import hypothesis
from google.protobuf import message_factory, text_format
from google.protobuf.descriptor import Descriptor
from google.protobuf.message import DecodeError, Message
from google.rpc import error_details_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status
from hypothesis import HealthCheck, Phase, given
from hypothesis import strategies as st

from flowrun.server.app import build_app
from flowrun.server.config import Settings
from flowrun.v1 import (
    deployment_service_pb2,
    flow_run_service_pb2,
    flow_service_pb2,
    state_pb2,
    task_run_service_pb2,
    work_pool_service_pb2,
)
from tests.fuzz.strategies import Body, Pool, request_bodies

SERVICE_FILES = (
    flow_service_pb2,
    flow_run_service_pb2,
    task_run_service_pb2,
    deployment_service_pb2,
    work_pool_service_pb2,
)
DEADLINE_SECONDS = 10.0
STREAM_OPEN_SECONDS = 0.5  # how long a silent server stream is given before it counts as open
RESEED_EVERY = 250
MAX_DETAILS_BYTES = 8 * 1024
FORBIDDEN_CODES = {
    grpc.StatusCode.INTERNAL: "INTERNAL",
    grpc.StatusCode.UNKNOWN: "UNKNOWN",
    grpc.StatusCode.DEADLINE_EXCEEDED: "hang (deadline exceeded)",
    grpc.StatusCode.UNAVAILABLE: "UNAVAILABLE",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "RESOURCE_EXHAUSTED",
    grpc.StatusCode.DATA_LOSS: "DATA_LOSS",
    grpc.StatusCode.UNIMPLEMENTED: "UNIMPLEMENTED",
}
# What a message must never show a client: SQL, drivers, Python classes, tracebacks.
LEAK = re.compile(
    r"sqlalchemy|asyncpg|aiosqlite|sqlite3|psycopg|Traceback|<class '|\[SQL:|Background on this error"
    r"|\b(SELECT|INSERT INTO|DELETE FROM|ON CONFLICT)\b|\b[A-Z][A-Za-z]*(Error|Exception)\b"
)
COPIES = st.sampled_from([1, 1, 1, 1, 1, 1, 1, 3])
UUID_TEXT = re.compile(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}|\b[0-9a-f]{12}\b")


@dataclass(frozen=True)
class Method:
    path: str
    input: Descriptor
    output: Descriptor
    server_streaming: bool = False

    @property
    def name(self) -> str:
        return self.path.rsplit("/", 1)[1]

    @property
    def writes(self) -> bool:
        return not self.name.startswith(("Get", "List", "Count", "Watch"))


def discover_methods() -> list[Method]:
    """Every method of every service in the flowrun service files (all unary)."""
    methods = []
    for module in SERVICE_FILES:
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                if method.client_streaming:
                    raise NotImplementedError(f"{method.full_name} streams requests; teach the harness to call it")
                path = f"/{service.full_name}/{method.name}"
                methods.append(Method(path, method.input_type, method.output_type, method.server_streaming))
    return methods


class FirstMessage:
    """A server-streaming method called like a unary one: the answer is the stream's
    first message, or its error. A stream still open and silent after
    STREAM_OPEN_SECONDS counts as a success (an empty answer): watch streams wait for
    changes, which is not a hang."""

    def __init__(self, channel: grpc.Channel, path: str) -> None:
        self._call = channel.unary_stream(path)

    def __call__(self, data: bytes, timeout: float) -> bytes:
        return self.future(data, timeout).result()

    def future(self, data: bytes, timeout: float) -> FirstMessage._Answer:
        return FirstMessage._Answer(self._call(data, timeout=timeout))

    class _Answer:
        def __init__(self, stream) -> None:
            self._stream = stream

        def result(self) -> bytes:
            waiter = threading.Timer(STREAM_OPEN_SECONDS, self._stream.cancel)
            waiter.start()
            try:
                return next(self._stream, b"")
            except grpc.RpcError as error:
                if error.code() == grpc.StatusCode.CANCELLED and not waiter.is_alive():
                    return b""  # open and silent: the watch is waiting for changes
                raise
            finally:
                waiter.cancel()
                self._stream.cancel()


@dataclass
class Finding:
    problem: str
    method: str
    kind: str
    code: str
    message: str
    request: str

    def key(self) -> tuple[str, str, str, str]:
        return (self.problem, self.method, self.code, UUID_TEXT.sub("<id>", self.message)[:160])


@dataclass
class Report:
    backend: str
    requests: int = 0
    histogram: Counter = field(default_factory=Counter)
    by_kind: Counter = field(default_factory=Counter)
    by_kind_code: Counter = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    log_errors: list[str] = field(default_factory=list)
    seed_calls: int = 0
    healthy_at_end: bool = False
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.findings and not self.log_errors and self.healthy_at_end

    def render(self, examples: int = 25) -> str:
        lines = [
            f"== {self.backend}: {self.requests} fuzz requests in {self.seconds:.1f} s "
            f"({self.seed_calls} seeding calls; bodies: {dict(sorted(self.by_kind.items()))})"
        ]
        width = max((len(name) for name in self.histogram), default=2)
        for code, count in sorted(self.histogram.items(), key=lambda item: -item[1]):
            lines.append(f"  {code:<{width}}  {count:>7}")
        for kind in sorted(self.by_kind):
            codes = {
                code: n for (k, code), n in sorted(self.by_kind_code.items(), key=lambda item: -item[1]) if k == kind
            }
            lines.append(f"  {kind} bodies: {codes}")
        lines.append(f"  server healthy at the end: {'yes' if self.healthy_at_end else 'NO'}")
        lines.append(f"  findings: {len(self.findings)}; server log errors: {len(self.log_errors)}")
        groups: dict[tuple, list[Finding]] = {}
        for finding in self.findings:
            groups.setdefault(finding.key(), []).append(finding)
        # INTERNAL first, then the other problems; the most frequent first within each.
        order = {"INTERNAL": 0, "UNKNOWN": 1}
        ranked = sorted(groups.items(), key=lambda item: (order.get(item[0][0], 2), -len(item[1])))
        for (problem, method, code, message), items in ranked[:examples]:
            lines.append(f"  - {len(items)} x {problem} in {method} [{code}]: {message}")
            lines.append(f"      e.g. ({items[0].kind}) {items[0].request[:400]}")
        for text in self.log_errors[:5]:
            lines.append("  server log: " + text[-1500:].replace("\n", "\n    "))
        return "\n".join(lines)


class ServerLog(logging.Handler):
    """Keeps every ERROR record and every record with a traceback the server logs."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[str] = []
        self._lock_records = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno < logging.ERROR and not record.exc_info:
            return
        text = f"{record.levelname} {record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + "".join(traceback.format_exception(*record.exc_info))
        with self._lock_records:
            self.records.append(text)


def describe(body: Body) -> str:
    hex_text = f"bytes {body.data[:120].hex()}{'...' if len(body.data) > 120 else ''}"
    if body.message is None:
        return hex_text
    try:
        text = text_format.MessageToString(body.message, as_one_line=True, as_utf8=True)
    except Exception:
        return f"{body.message.DESCRIPTOR.name} too deep to print; {hex_text}"
    prefix = "corrupted encoding of " if body.kind == "corrupted" else ""
    return prefix + (text[:600] + "..." if len(text) > 600 else text)


class Client:
    """The synchronous side: sends bodies, checks answers, keeps the pool filled."""

    def __init__(
        self, channel: grpc.Channel, methods: list[Method], pool: Pool, report: Report, max_message_bytes: int
    ) -> None:
        self.channel = channel
        self.max_message_bytes = max_message_bytes
        self.methods = {method.path: method for method in methods}
        self.pool = pool
        self.report = report
        self.calls = {
            method.path: FirstMessage(channel, method.path)
            if method.server_streaming
            else channel.unary_unary(method.path)
            for method in methods
        }
        self.response_classes = {method.path: message_factory.GetMessageClass(method.output) for method in methods}
        self.seed_round = 0

    # -- checking -------------------------------------------------------------------------

    def _find(self, problem: str, method: Method, body: Body, code: str, message: str) -> None:
        self.report.findings.append(Finding(problem, method.name, body.kind, code, message[:500], describe(body)))

    def _check_error(self, method: Method, body: Body, error: grpc.RpcError) -> None:
        code = error.code()
        message = error.details() or ""
        if code == grpc.StatusCode.RESOURCE_EXHAUSTED and len(body.data) > self.max_message_bytes:
            return  # the documented request size limit (Settings.max_message_bytes), enforced by gRPC
        if code in FORBIDDEN_CODES:
            self._find(FORBIDDEN_CODES[code], method, body, code.name, message)
            return
        if LEAK.search(message):
            self._find("message leaks internals", method, body, code.name, message)
        details = dict(error.trailing_metadata() or ()).get("grpc-status-details-bin", b"")
        if len(details) >= MAX_DETAILS_BYTES:
            self._find(f"error details of {len(details)} bytes", method, body, code.name, message)
        try:
            status = rpc_status.from_call(error)
        except ValueError as exc:
            self._find(f"status details disagree with the status: {exc}", method, body, code.name, message)
            return
        if status is None:
            self._find("no google.rpc.Status details", method, body, code.name, message)
            return
        infos = [detail for detail in status.details if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
        if len(infos) != 1:
            self._find(f"{len(infos)} ErrorInfo details", method, body, code.name, message)

    def _check_ok(self, method: Method, body: Body, data: bytes) -> Message | None:
        response = self.response_classes[method.path]()
        try:
            response.ParseFromString(data)
        except DecodeError as exc:
            self._find(f"response does not decode: {exc}", method, body, "OK", "")
            return None
        self._harvest(response)
        return response

    def _harvest(self, message: Message, depth: int = 0) -> None:
        """Ids, names and page tokens of answers go back into the pool."""
        for descriptor, value in message.ListFields():
            if descriptor.message_type is not None:
                if depth < 3:
                    values = value.values() if descriptor.message_type.GetOptions().map_entry else value
                    for item in values if descriptor.is_repeated else [value]:
                        if isinstance(item, Message):
                            self._harvest(item, depth + 1)
            elif descriptor.name == "next_page_token":
                self.pool.add_token(value)
            elif isinstance(value, str) and (descriptor.name == "id" or descriptor.name.endswith("_id")):
                self.pool.add_id("seen", value)
        for values in (*self.pool.ids.values(), *self.pool.names.values()):
            del values[:-300]

    # -- sending --------------------------------------------------------------------------

    def send(self, method: Method, body: Body, copies: int = 1) -> None:
        if self.report.requests and self.report.requests % RESEED_EVERY == 0:
            self.seed()
        call = self.calls[method.path]
        futures = [call.future(body.data, timeout=DEADLINE_SECONDS) for _ in range(copies if method.writes else 1)]
        for future in futures:
            self.report.requests += 1
            self.report.by_kind[body.kind] += 1
            try:
                data = future.result()
            except grpc.RpcError as error:
                self.report.histogram[error.code().name] += 1
                self.report.by_kind_code[body.kind, error.code().name] += 1
                self._check_error(method, body, error)
            else:
                self.report.histogram["OK"] += 1
                self.report.by_kind_code[body.kind, "OK"] += 1
                self._check_ok(method, body, data)

    def rpc(self, path: str, request: Message) -> Message | None:
        """A seeding call: a valid request whose answer feeds the pool. Its errors are
        checked like the fuzz's, but not counted in the histogram."""
        method = self.methods[path]
        body = Body("seed", request.SerializeToString(), request)
        self.report.seed_calls += 1
        try:
            data = self.calls[path](body.data, timeout=DEADLINE_SECONDS)
        except grpc.RpcError as error:
            self._check_error(method, body, error)
            return None
        return self._check_ok(method, body, data)

    def seed(self) -> None:
        """A few rows of every kind, under fresh names: flows, a work pool with a queue, a
        deployment with a concurrency limit, flow runs (one of the deployment, one with an
        idempotency key), task runs, states, a concurrency lease and page tokens."""
        flows, runs, tasks = flow_service_pb2, flow_run_service_pb2, task_run_service_pb2
        deployments, pools = deployment_service_pb2, work_pool_service_pb2
        self.seed_round += 1
        prefix = f"fuzz-{self.seed_round}-{uuid.uuid4().hex[:6]}"
        pool = self.pool
        flow_ids = []
        for index in range(2):
            created = self.rpc(
                "/flowrun.v1.FlowService/CreateFlow",
                flows.CreateFlowRequest(name=f"{prefix}-flow-{index}", tags=["fuzz", prefix]),
            )
            if created is not None:
                flow_ids.append(created.flow.id)
                pool.add_id("flow", created.flow.id)
                pool.add_name("flow", created.flow.name)
        work_pool = f"{prefix}-pool"
        if self.rpc(
            "/flowrun.v1.WorkPoolService/CreateWorkPool",
            pools.CreateWorkPoolRequest(name=work_pool, concurrency_limit=5),
        ):
            pool.add_name("work_pool", work_pool)
        if self.rpc(
            "/flowrun.v1.WorkPoolService/CreateWorkQueue",
            pools.CreateWorkQueueRequest(work_pool_name=work_pool, name=f"{prefix}-queue"),
        ):
            pool.add_name("work_queue", f"{prefix}-queue")
        if not flow_ids:
            return
        deployment = self.rpc(
            "/flowrun.v1.DeploymentService/CreateDeployment",
            deployments.CreateDeploymentRequest(
                flow_id=flow_ids[0],
                name=f"{prefix}-deployment",
                work_pool_name=work_pool,
                work_queue_name=f"{prefix}-queue",
                concurrency_limit=1,
            ),
        )
        deployment_id = deployment.deployment.id if deployment is not None else ""
        pool.add_id("deployment", deployment_id)
        run_ids = []
        for request in (
            runs.CreateFlowRunRequest(flow_id=flow_ids[0], tags=["fuzz"]),
            runs.CreateFlowRunRequest(
                flow_id=flow_ids[0],
                deployment_id=deployment_id,
                work_pool_name=work_pool,
                state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_SCHEDULED),
            ),
            runs.CreateFlowRunRequest(flow_id=flow_ids[-1], idempotency_key=f"{prefix}-key"),
        ):
            created = self.rpc("/flowrun.v1.FlowRunService/CreateFlowRun", request)
            if created is not None:
                run_ids.append(created.flow_run.id)
                pool.add_id("flow_run", created.flow_run.id)
                pool.add_name("idempotency_key", created.flow_run.idempotency_key)
        for run_id in run_ids[:2]:
            for state_type in (state_pb2.STATE_TYPE_PENDING, state_pb2.STATE_TYPE_RUNNING):
                answer = self.rpc(
                    "/flowrun.v1.FlowRunService/SetFlowRunState",
                    runs.SetFlowRunStateRequest(flow_run_id=run_id, state=state_pb2.StateCreate(type=state_type)),
                )
                if answer is not None:
                    pool.add_id("lease", answer.state.state_details.deployment_concurrency_lease_id)
            task = self.rpc(
                "/flowrun.v1.TaskRunService/CreateTaskRun",
                tasks.CreateTaskRunRequest(flow_run_id=run_id, task_key=f"{prefix}-task", dynamic_key="0"),
            )
            if task is not None:
                pool.add_id("task_run", task.task_run.id)
            states = self.rpc(
                "/flowrun.v1.FlowRunService/ListFlowRunStates",
                runs.ListFlowRunStatesRequest(flow_run_id=run_id, page_size=1),
            )
            if states is not None:
                for state in states.states:
                    pool.add_id("state", state.id)
        for path, request in (
            ("/flowrun.v1.FlowService/ListFlows", flows.ListFlowsRequest(page_size=1)),
            ("/flowrun.v1.FlowRunService/ListFlowRuns", runs.ListFlowRunsRequest(page_size=1)),
            ("/flowrun.v1.TaskRunService/ListTaskRuns", tasks.ListTaskRunsRequest(page_size=1)),
            ("/flowrun.v1.DeploymentService/ListDeployments", deployments.ListDeploymentsRequest(page_size=1)),
            ("/flowrun.v1.WorkPoolService/ListWorkPools", pools.ListWorkPoolsRequest(page_size=1)),
            (
                "/flowrun.v1.WorkPoolService/ListWorkQueues",
                pools.ListWorkQueuesRequest(work_pool_name=work_pool, page_size=1),
            ),
        ):
            self.rpc(path, request)

    def healthy(self) -> bool:
        try:
            answer = health_pb2_grpc.HealthStub(self.channel).Check(
                health_pb2.HealthCheckRequest(), timeout=DEADLINE_SECONDS
            )
        except grpc.RpcError:
            return False
        return answer.status == health_pb2.HealthCheckResponse.SERVING


def drive(client: Client, methods: list[Method], count: int, seed: int) -> None:
    """Sends `count` fuzz requests (hypothesis draws them) from this thread."""
    cases = st.one_of(
        [st.tuples(st.just(method), request_bodies(method.input, client.pool), COPIES) for method in methods]
    )
    client.seed()
    for attempt in range(100):
        remaining = count - client.report.requests
        if remaining <= 0:
            return

        @hypothesis.settings(
            max_examples=remaining,
            phases=[Phase.generate],
            database=None,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            verbosity=hypothesis.Verbosity.quiet,
        )
        @hypothesis.seed(seed + attempt)
        @given(cases)
        def one(case) -> None:
            if client.report.requests < count:
                client.send(*case)

        one()


async def fuzz(database_url: str, backend: str, count: int, seed: int = 0) -> Report:
    """Starts a server on `database_url`, sends it `count` fuzz requests and reports."""
    report = Report(backend)
    log = ServerLog()
    root = logging.getLogger()
    root.addHandler(log)
    settings = Settings(database_url=database_url, host="127.0.0.1", port=0, shutdown_grace_seconds=1)
    app = await build_app(settings)
    await app.start()
    started = time.monotonic()
    try:
        pool = Pool(page_token_secret=app.settings.page_token_secret)  # the key it resolved at start
        methods = discover_methods()

        def run() -> None:
            with grpc.insecure_channel(f"127.0.0.1:{app.port}") as channel:
                client = Client(channel, methods, pool, report, settings.max_message_bytes)
                drive(client, methods, count, seed)
                report.healthy_at_end = client.healthy()

        await asyncio.to_thread(run)
    finally:
        report.seconds = time.monotonic() - started
        await app.stop(grace=0)
        root.removeHandler(log)
    report.log_errors = log.records
    return report


async def fuzz_backend(backend: str, count: int, seed: int = 0) -> Report:
    """fuzz() on a fresh database of its own: a temporary SQLite file, or a new
    PostgreSQL database (dropped afterwards) on the test server (tests/conftest.py)."""
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="flowrun-fuzz-") as directory:
            return await fuzz(f"sqlite+aiosqlite:///{Path(directory) / 'fuzz.db'}", backend, count, seed)
    from tests.conftest import create_postgres_database, drop_postgres_database

    name, url = await create_postgres_database()
    try:
        return await fuzz(url, backend, count, seed)
    finally:
        await drop_postgres_database(name)
