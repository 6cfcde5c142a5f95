"""Settings from the environment (prefix FLOWRUN_), so one image serves every deployment."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal

from platformdirs import user_data_dir
from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

#: The background sweeps FLOWRUN_SERVICES can switch on and off (server/liveness/).
SERVICE_NAMES = ("zombies", "late_runs", "pause_expirations")

#: Room, in one returned entity, for what the server adds to what write requests held:
#: ids, times, counts and durations, the copies (state_name, deployment_version, work
#: queue and pool names, the "prefect.flow.id" label) and a state's own server fields.
#: Those add up to under 8 KiB (names and versions are length-checked); this is twice that.
SERVER_FIELDS_BYTES = 16 * 1024
#: The part of SERVER_FIELDS_BYTES a state's server fields may take (its id, timestamp
#: and the details rules set: ids and times): under 1 KiB.
STATE_SERVER_FIELDS_BYTES = 4 * 1024


def default_database_url() -> str:
    """An SQLite file under the user's data directory: serving needs no setup."""
    path = Path(user_data_dir("flowrun", appauthor=False)) / "flowrun.db"
    return f"sqlite+aiosqlite:///{path}"


class Settings(BaseSettings):
    """Every knob of the server. Each field is read from FLOWRUN_<NAME>."""

    model_config = SettingsConfigDict(env_prefix="FLOWRUN_", extra="ignore")

    database_url: str = Field(default_factory=default_database_url)
    host: str = "127.0.0.1"
    port: int = Field(default=50051, ge=0, le=65535)
    migrate_on_start: bool = True
    reflection: bool = True
    log_level: str = "INFO"
    # "text" (default) or "json": one JSON object per line (server/logs.py).
    log_format: Literal["text", "json"] = "text"
    # Prometheus metrics on this port at /metrics (server/metrics_export.py); unset: off.
    # 0 picks a free port (logged). With --workers N the supervisor serves the sum.
    metrics_port: int | None = Field(default=None, ge=0, le=65535)
    # Deployments with a slot series of their own (the most slots in use); the rest are
    # summed into deployment="other", so the label set stays bounded.
    metrics_max_deployments: int = Field(default=20, ge=0)
    # Server processes sharing the port (SO_REUSEPORT, Linux only); unset picks the default
    # for the database and the machine (server/workers.py).
    workers: int | None = Field(default=None, ge=1)

    # Connection pool (PostgreSQL). Generous by default: a tiny pool turns load into errors.
    # Per worker process; with db_max_connections set they are sized from it
    # (server/db/connection_budget.py).
    db_pool_size: int = Field(default=20, ge=1)
    db_max_overflow: int = Field(default=10, ge=0)
    # The most connections this replica (all its workers together) may open; unset: workers
    # x (pool size + overflow). PostgreSQL's max_connections less its reserved connections
    # is checked at start (not behind pgbouncer, where the server sees pgbouncer's).
    db_max_connections: int | None = Field(default=None, ge=1)
    # The database URL points at pgbouncer in transaction pooling mode: no prepared
    # statements kept across transactions (server/db/engine.py).
    db_pgbouncer: bool = False
    db_pool_timeout_seconds: float = Field(default=30.0, gt=0)
    # How long SQLite waits for another process's write lock before giving up.
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    # PostgreSQL lock_timeout for the SetState row lock; 0 waits forever.
    lock_timeout_ms: int = Field(default=10_000, ge=0)
    # PostgreSQL statement_timeout of every statement (server/db/engine.py); 0 lets a
    # statement run forever. An abandoned call's statement is never cancelled by flowrun
    # (server/cancellation.py), so this is what bounds how long it holds its connection.
    db_statement_timeout_ms: int = Field(default=30_000, ge=0)

    # TLS (server/tls.py): a PEM certificate (chain) and its unencrypted key, both or
    # neither; with a client CA file, clients must present a certificate it signed (mTLS).
    # The files are re-read when they change and on SIGHUP.
    tls_cert_file: Path | None = None
    tls_key_file: Path | None = None
    tls_client_ca_file: Path | None = None

    # Authentication (server/auth.py): the tokens file (server/auth_tokens.py; re-read when
    # it changes). Without it and without a client CA every caller is an anonymous admin;
    # require_auth refuses to start that way.
    auth_tokens_file: Path | None = None
    require_auth: bool = False

    # gRPC transport. At least 64 KiB each: a watch event too large to send whole is sent
    # truncated (server/services/watch.py), and that must fit, cursor included.
    max_message_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    # Largest response (grpc.max_send_message_length, and the byte budget List pages are
    # cut to). A response waiting for a reader that stopped reading stays in memory, about
    # three times its size (bench/slow_readers.py), so this bounds memory per stalled call.
    max_response_bytes: int = Field(default=4 * 1024 * 1024, ge=64 * 1024)
    # Concurrent calls on one HTTP/2 connection (grpc.max_concurrent_streams); unset is
    # unlimited. Caps what one client can pin with calls it never reads, but a gRPC client
    # that opens more calls at once on a new connection gets UNAVAILABLE (REFUSED_STREAM)
    # for the excess, so it is off unless set.
    max_streams_per_connection: int | None = Field(default=None, ge=1)
    keepalive_time_ms: int = Field(default=60_000, ge=1000)
    keepalive_timeout_ms: int = Field(default=20_000, ge=1000)
    min_client_ping_interval_ms: int = Field(default=10_000, ge=1000)
    max_connection_age_ms: int = Field(default=0, ge=0)
    max_concurrent_rpcs: int | None = Field(default=None, ge=1)
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)

    # API limits. Parameters (JSON) must be smaller than the response limit, or a run at
    # the limit could never be sent back (checked below). Above the write budget
    # (write_max_bytes) is allowed and still applies: it counts compact JSON, where
    # escapes make text up to six times its protobuf size, so it refuses parameters the
    # budget lets through; plain ASCII parameters meet the budget first.
    max_parameter_bytes: int = Field(default=512 * 1024, ge=0)
    # The key page tokens are signed with (HMAC-SHA256). Unset (or empty): a random key the
    # first server generates and keeps in the database, shared by every replica and worker
    # (server/shared_secrets.py); build_app resolves it, so servers see it set.
    page_token_secret: str | None = Field(default=None, repr=False)
    graph_max_nodes: int = Field(default=10_000, ge=1)
    # States in one graph (GetFlowRunGraph); task runs in one dependency map
    # (GetTaskRunDependencies) are bounded by graph_max_nodes.
    graph_max_states: int = Field(default=10_000, ge=1)
    # A deployment concurrency lease's lifetime when the deployment sets no grace period.
    deployment_lease_seconds: int = Field(default=300, ge=1)
    # How long a run rejected to "AwaitingConcurrencySlot" waits before trying again.
    deployment_slot_wait_seconds: int = Field(default=30, ge=0)
    # How often the reaper deletes expired leases (their slots are free already).
    lease_reap_interval_seconds: float = Field(default=10.0, gt=0)
    # How often health pings the database (server/health.py); a ping slower than this fails.
    health_check_interval_seconds: float = Field(default=5.0, gt=0)

    # Liveness (server/liveness/). A run's heartbeat timeout when neither the run nor its
    # deployment sets one (0: off); fixed when the run is created.
    heartbeat_timeout_seconds: int = Field(default=0, ge=0, le=7 * 24 * 60 * 60)
    # A Scheduled run this long past its scheduled time is marked Late.
    late_runs_after_seconds: float = Field(default=15.0, ge=0)
    # The sweeps this process runs: "all", "none", or a comma-separated list of
    # zombies, late_runs, pause_expirations (liveness.SERVICE_NAMES).
    services: str = "all"
    # Runs one sweep reads at a time (each is then acted on in its own transaction).
    services_batch_size: int = Field(default=200, ge=1, le=10_000)
    zombies_interval_seconds: float = Field(default=5.0, gt=0)
    late_runs_interval_seconds: float = Field(default=5.0, gt=0)
    pause_expirations_interval_seconds: float = Field(default=5.0, gt=0)

    # Watching (server/watch/). Events are kept this long (FLOWRUN_EVENT_RETENTION: seconds
    # or ISO 8601, e.g. P7D), then deleted in the background every prune interval.
    event_retention: timedelta = Field(default=timedelta(days=7), gt=timedelta(0))
    event_prune_interval_seconds: float = Field(default=60.0, gt=0)
    # An idle watch stream gets a progress message this often (below proxies' idle timeouts).
    watch_heartbeat_seconds: float = Field(default=15.0, gt=0)
    # Events one live stream holds for its client; a client that falls this far behind
    # gets RESOURCE_EXHAUSTED (and resumes from its cursor).
    watch_buffer_events: int = Field(default=1_000, ge=1)
    # Events one read of the outbox returns (the shared reader's, and a catching-up stream's).
    watch_batch_size: int = Field(default=500, ge=1, le=10_000)
    # SQLite (and PostgreSQL behind pgbouncer): how often each process looks for events
    # other processes wrote (its own commits wake its streams at once). PostgreSQL wakes
    # them by NOTIFY; streams also re-read at every heartbeat as a safety net.
    watch_poll_seconds: float = Field(default=1.0, gt=0)

    @field_validator(
        "tls_cert_file", "tls_key_file", "tls_client_ca_file", "auth_tokens_file", "metrics_port", mode="before"
    )
    @classmethod
    def _empty_path_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _parameters_fit_a_response(self) -> Settings:
        """Refuses a parameter limit at or over the response limit: a run with such
        parameters could be created but never read, listed or watched whole."""
        limit = self.send_limit_bytes
        if self.max_parameter_bytes >= limit:
            raise ValueError(
                f"max_parameter_bytes ({self.max_parameter_bytes}) must be less than the response limit, "
                f"the smaller of max_message_bytes and max_response_bytes ({limit})"
            )
        return self

    @model_validator(mode="after")
    def _lock_waits_end_before_statements(self) -> Settings:
        """Refuses a statement timeout at or under the lock timeout (both on): a lock wait
        would then always end as a statement timeout, never as the lock timeout's
        retryable conflict."""
        if self.is_sqlite:  # neither applies to SQLite: never refuse a setting it ignores
            return self
        if self.db_statement_timeout_ms and self.lock_timeout_ms >= self.db_statement_timeout_ms:
            raise ValueError(
                f"db_statement_timeout_ms ({self.db_statement_timeout_ms}) must be 0 (off) or more than "
                f"lock_timeout_ms ({self.lock_timeout_ms})"
            )
        return self

    @field_validator("event_retention", mode="before")
    @classmethod
    def _seconds_or_iso_duration(cls, value: object) -> object:
        """FLOWRUN_EVENT_RETENTION=604800 (seconds) as well as P7D (ISO 8601)."""
        if isinstance(value, str):
            try:
                return timedelta(seconds=float(value))
            except ValueError:
                return value
        return value

    @field_validator("services")
    @classmethod
    def _known_services(cls, value: str) -> str:
        names = {name.strip().lower() for name in value.split(",") if name.strip()}
        if names <= {"all"} or names == {"none"}:
            return ",".join(sorted(names)) or "none"
        unknown = names - set(SERVICE_NAMES)
        if unknown:
            raise ValueError(
                f"unknown service(s) {', '.join(sorted(unknown))}: choose from all, none, {', '.join(SERVICE_NAMES)}"
            )
        return ",".join(sorted(names))

    @property
    def enabled_services(self) -> frozenset[str]:
        """The sweeps FLOWRUN_SERVICES switches on."""
        if self.services == "all":
            return frozenset(SERVICE_NAMES)
        if self.services == "none":
            return frozenset()
        return frozenset(self.services.split(","))

    @property
    def send_limit_bytes(self) -> int:
        """The largest message the server sends (grpc.max_send_message_length,
        server/app.py): the smaller of max_message_bytes and max_response_bytes. Every
        bound on an answer (List pages, graphs, watch messages) derives from it."""
        return min(self.max_message_bytes, self.max_response_bytes)

    @cached_property
    def page_max_bytes(self) -> int:
        """The byte budget of one List page: the response limit less room for the page
        token and the response's own framing (server/repositories/paging.py)."""
        limit = self.send_limit_bytes
        return limit - min(64 * 1024, limit // 4)

    @cached_property
    def write_max_bytes(self) -> int:
        """The most bytes one write request may hold (request.ByteSize()), derived, not
        set: a third of a List page's byte budget less SERVER_FIELDS_BYTES (1,370,794
        with the default 4 MiB responses). Larger writes are refused with INVALID_ARGUMENT
        before anything is written (server/services/write_size.py).

        Why a third is enough: every stored entity is returned whole, by Get, in a List
        page (which must hold at least one row) and in a watch snapshot, so each must fit
        page_max_bytes. A flow run is at most three write requests' worth plus server
        fields: its create request (its own fields and initial state), the flow's labels (or
        its deployment's) merged into its own at create (from one create request), and its current
        state (from one SetFlowRunState). UpdateFlowRun replaces fields, and updates of
        different fields could add up, so it is checked on its result instead
        (run_without_state_max_bytes). A task run (create + state), a flow (create + the
        tags of one UpdateFlow), a deployment, work pool or work queue (create), and a
        state (one request) hold fewer."""
        return (self.page_max_bytes - SERVER_FIELDS_BYTES) // 3

    @cached_property
    def run_without_state_max_bytes(self) -> int:
        """The most a flow run without its state may hold after an UpdateFlowRun (the
        updated run is measured in the update's transaction, which a larger result rolls
        back): what is left of page_max_bytes once its largest state is in. Every run a
        create lets through fits it, so an update that does not grow a run is never
        refused."""
        return self.page_max_bytes - self.write_max_bytes - STATE_SERVER_FIELDS_BYTES

    @property
    def resolved_page_token_secret(self) -> str:
        """page_token_secret, which build_app always resolves before any servicer runs
        (server/shared_secrets.py); servicers read it here so its type says so."""
        if self.page_token_secret is None:
            raise RuntimeError("page_token_secret is unresolved: build_app resolves it before serving")
        return self.page_token_secret

    @cached_property
    def is_sqlite(self) -> bool:
        return self.database_url.startswith("sqlite")
