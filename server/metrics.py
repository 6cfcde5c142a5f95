"""The Prometheus metrics the server exports (prometheus-client), defined once here.

This module imports nothing from the server, so every layer may record into it (the
orchestration step, the unit of work, the health monitor) without an import cycle;
exporting them (the /metrics endpoint, the multiprocess registry, the values read at
scrape time) lives in server/metrics_export.py.

The hot path never builds a label set per call: label children are bound once per
method or per transition and kept in the dicts below. Recording costs a dict lookup
and an increment (with --workers, a write to the process's mmap file).

With --workers N the supervisor points PROMETHEUS_MULTIPROC_DIR at a fresh directory
before it starts the workers, so every value here lands in a per-process file and one
scrape sums them (server/workers.py). Gauges say how they combine across workers
(multiprocess_mode); the library reads that only in multiprocess mode."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

#: Latency buckets from 1 ms: a SetState takes a few ms on an idle server.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
#: Lock waits are usually sub-millisecond: finer at the bottom.
LOCK_WAIT_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# --- RPCs (server/observability.py) -------------------------------------------------
RPC_REQUESTS = Counter(
    "flowrun_rpc_requests",
    "Finished RPCs by full method name and gRPC status code.",
    ["method", "code"],
)
RPC_DURATION = Histogram(
    "flowrun_rpc_duration_seconds",
    "Time from the call reaching the server's interceptors until its status was known.",
    ["method"],
    buckets=LATENCY_BUCKETS,
)

# --- orchestration (server/orchestration/transitions.py) ------------------------------
ORCHESTRATION_OUTCOMES = Counter(
    "flowrun_orchestration_outcomes",
    "Decided state proposals by run kind, current state type, proposed state type and outcome.",
    ["kind", "from_type", "to_type", "status"],
)
ORCHESTRATION_DECISIONS = Counter(
    "flowrun_orchestration_rule_decisions",
    "REJECT, WAIT and ABORT outcomes by the rule that decided them.",
    ["kind", "rule", "status"],
)
FORCED_TRANSITIONS = Counter(
    "flowrun_orchestration_forced_transitions",
    "State proposals made with force (only the minimal policy applies).",
    ["kind"],
)
LOCK_WAIT = Histogram(
    "flowrun_orchestration_lock_wait_seconds",
    "Time to lock and load a run for a state change (mostly the wait for its row lock).",
    ["kind"],
    buckets=LOCK_WAIT_BUCKETS,
)
LOCK_TIMEOUTS = Counter(
    "flowrun_orchestration_lock_timeouts",
    "State changes that gave up waiting for a run's row lock (FLOWRUN_LOCK_TIMEOUT_MS).",
    ["kind"],
)

# --- deployment concurrency slots (read from the database at scrape time) -------------
LEASES_REAPED = Counter("flowrun_slot_leases_reaped", "Expired concurrency leases deleted by the lease reaper.")

# --- storage -------------------------------------------------------------------------
DB_POOL_SIZE = Gauge(
    "flowrun_db_pool_size",
    "Connections the pool keeps (FLOWRUN_DB_POOL_SIZE), summed over live workers.",
    multiprocess_mode="livesum",
)
DB_POOL_CHECKED_OUT = Gauge(
    "flowrun_db_pool_checked_out",
    "Connections in use by a unit of work, summed over live workers.",
    multiprocess_mode="livesum",
)
DB_POOL_OVERFLOW = Gauge(
    "flowrun_db_pool_overflow",
    "Connections open beyond the pool size (up to FLOWRUN_DB_MAX_OVERFLOW); negative while the pool is not full.",
    multiprocess_mode="livesum",
)
DB_POOL_WAITING = Gauge(
    "flowrun_db_pool_waiting",
    "Units of work waiting for a connection (or, on SQLite, for this process's write gate).",
    multiprocess_mode="livesum",
)
DB_CONNECTION_RETRIES = Counter(
    "flowrun_db_connection_retries",
    "Transactions retried on another connection because a pooled one was dead before BEGIN.",
)
DB_CONFLICTS = Counter(
    "flowrun_db_conflicts",
    "Transactions that lost a race (lock timeout, deadlock, serialization or uniqueness "
    "conflict): answered ABORTED with RetryInfo, for the client to retry.",
)
DATABASE_UP = Gauge(
    "flowrun_database_up",
    "1 while the health monitor reaches the database, else 0 (the lowest over live workers).",
    multiprocess_mode="livemin",
)


#: Whether anything records: set once at start-up by enable() when FLOWRUN_METRICS_PORT is
#: set, so a server without metrics pays one attribute read per recording site.
enabled = False


def enable() -> None:
    global enabled
    enabled = True


class Labelled:
    """Label children bound once per label values and kept: the hot path looks a child
    up by a tuple instead of building a label dict per call."""

    __slots__ = ("_children", "_metric")

    def __init__(self, metric: Counter | Histogram) -> None:
        self._metric = metric
        self._children: dict[tuple[str, ...], Counter | Histogram] = {}

    def __call__(self, *values: str):
        child = self._children.get(values)
        if child is None:
            child = self._children[values] = self._metric.labels(*values)
        return child


outcomes = Labelled(ORCHESTRATION_OUTCOMES)
decisions = Labelled(ORCHESTRATION_DECISIONS)
forced = Labelled(FORCED_TRANSITIONS)
lock_wait = Labelled(LOCK_WAIT)
lock_timeouts = Labelled(LOCK_TIMEOUTS)
