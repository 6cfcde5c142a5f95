"""What the liveness sweeps did, for Prometheus (prometheus-client's default registry,
like server/metrics.py; with --workers the supervisor's multiprocess registry sums them).

flowrun_liveness_actions_total{service, outcome}: one per run a sweep acted on.
`outcome` is the orchestration status (accept, reject, abort; e.g. a late run of a full
CANCEL_NEW deployment is rejected to Cancelled), or skipped when the run was claimed by
another process or had changed by the time the sweep got to it."""

from __future__ import annotations

from prometheus_client import Counter

ACTIONS = Counter(
    "flowrun_liveness_actions",
    "Runs a liveness sweep acted on, by service and outcome (accept, reject, abort, skipped).",
    ["service", "outcome"],
)
