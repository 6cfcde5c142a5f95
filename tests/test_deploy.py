"""deploy/ stays valid: the Kubernetes example parses, names only settings the server has,
probes the health service names the server answers, runs the migration command that
exists; the Grafana dashboard queries only metric names a live server exports."""

from __future__ import annotations

import asyncio
import json
import re
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc
from prometheus_client.parser import text_string_to_metric_families

from flowrun.server.app import build_app
from flowrun.server.config import Settings
from flowrun.server.health import LIVENESS_SERVICE
from flowrun.server.metrics_export import MetricsEndpoint
from flowrun.v1 import flow_run_service_pb2 as runs_pb
from flowrun.v1 import flow_run_service_pb2_grpc, flow_service_pb2, flow_service_pb2_grpc, state_pb2
from tests.conftest import settings_for
from tests.helpers.factories import create_deployment

REPO = Path(__file__).resolve().parents[1]
KUBERNETES = REPO / "deploy" / "kubernetes"
DASHBOARD = REPO / "deploy" / "grafana" / "flowrun.json"
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "gauge": ("",)}


def manifests() -> dict[str, dict]:
    """Every object of the kustomization's resources, by kind."""
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    objects: dict[str, dict] = {}
    for resource in kustomization["resources"]:
        for document in yaml.safe_load_all((KUBERNETES / resource).read_text()):
            assert document["apiVersion"] and document["metadata"]["name"], resource
            assert document["kind"] not in objects, f"a second {document['kind']} in {resource}"
            objects[document["kind"]] = document
    return objects


def env_of(container: dict) -> dict[str, object]:
    return {item["name"]: item.get("value", item.get("valueFrom")) for item in container.get("env", [])}


def test_every_manifest_in_the_folder_is_listed_and_parses():
    listed = set(yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["resources"])
    assert listed == {path.name for path in KUBERNETES.glob("*.yaml")} - {"kustomization.yaml"}
    assert set(manifests()) == {"Deployment", "Service", "Job", "Secret"}


def test_the_deployment_probes_grpc_health_and_matches_the_settings():
    objects = manifests()
    pod = objects["Deployment"]["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = env_of(container)
    settings_fields = {f"FLOWRUN_{name.upper()}" for name in Settings.model_fields}
    assert {name for name in env if name.startswith("FLOWRUN_")} <= settings_fields  # no misspelt setting
    assert int(str(env["FLOWRUN_PORT"])) == ports["grpc"]
    assert int(str(env["FLOWRUN_METRICS_PORT"])) == ports["metrics"]
    assert pod["metadata"]["annotations"]["prometheus.io/port"] == str(ports["metrics"])
    assert env["FLOWRUN_MIGRATE_ON_START"] == "false"  # the Job migrates
    assert env["FLOWRUN_DATABASE_URL"] == {"secretKeyRef": {"name": "flowrun-database", "key": "url"}}
    for probe, service in (
        ("startupProbe", LIVENESS_SERVICE),
        ("livenessProbe", LIVENESS_SERVICE),
        ("readinessProbe", ""),
    ):
        assert container[probe]["grpc"] == {"port": ports["grpc"], "service": service}, probe
    requests = container["resources"]["requests"]
    assert requests["cpu"] and requests["memory"]
    assert int(str(env["FLOWRUN_WORKERS"])) <= int(requests["cpu"])
    grace = float(str(env["FLOWRUN_SHUTDOWN_GRACE_SECONDS"]))
    assert pod["spec"]["terminationGracePeriodSeconds"] > grace + 5  # the workers' stop margin

    service_ports = {port["name"]: port for port in objects["Service"]["spec"]["ports"]}
    assert service_ports["grpc"]["targetPort"] == "grpc" and service_ports["metrics"]["targetPort"] == "metrics"
    labels = pod["metadata"]["labels"]
    assert objects["Service"]["spec"]["selector"].items() <= labels.items()
    assert objects["Deployment"]["spec"]["selector"]["matchLabels"].items() <= labels.items()

    (job,) = objects["Job"]["spec"]["template"]["spec"]["containers"]
    assert job["command"] == ["flowrun-server", "--migrate"]
    assert env_of(job)["FLOWRUN_DATABASE_URL"] == env["FLOWRUN_DATABASE_URL"]
    assert objects["Secret"]["metadata"]["name"] == "flowrun-database"


@pytest.mark.multiprocess
def test_the_migration_command_migrates_and_exits(tmp_path):
    url = f"sqlite+aiosqlite:///{tmp_path / 'flowrun.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "flowrun.server", "--migrate", "--database-url", url],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "serving" not in done.stdout
    import sqlite3

    with sqlite3.connect(tmp_path / "flowrun.db") as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"flow", "flow_run", "alembic_version"} <= tables


def exported_names(text: str) -> set[str]:
    """Every sample name the scrape has or would have: families without a sample yet (a
    labelled metric nobody recorded) still declare their name and type."""
    names = set()
    for family in text_string_to_metric_families(text):
        names.update(sample.name for sample in family.samples)
        names.update(family.name + suffix for suffix in SUFFIXES.get(family.type, ("",)))
    return names


async def test_the_dashboard_queries_only_metrics_a_live_server_exports(tmp_path):
    dashboard = json.loads(DASHBOARD.read_text())
    expressions = [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]
    queried = {name for expr in expressions for name in re.findall(r"\b(flowrun_[a-z_]+)", expr)}
    assert len(queried) >= 15, queried
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))

    url = f"sqlite+aiosqlite:///{tmp_path / 'flowrun.db'}"
    settings = settings_for(url, metrics_port=0)
    app = await build_app(settings)
    await app.start()
    endpoint = MetricsEndpoint(settings)
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{app.port}") as channel:
            live = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=LIVENESS_SERVICE)
            )
            assert live.status == health_pb2.HealthCheckResponse.SERVING  # what the liveness probe asks
            flows = flow_service_pb2_grpc.FlowServiceStub(channel)
            runs = flow_run_service_pb2_grpc.FlowRunServiceStub(channel)
            flow = (await flows.CreateFlow(flow_service_pb2.CreateFlowRequest(name=f"d-{uuid.uuid4().hex[:8]}"))).flow
            await create_deployment(channel, flow.id, concurrency_limit=1)
            run = (await runs.CreateFlowRun(runs_pb.CreateFlowRunRequest(flow_id=flow.id))).flow_run
            await runs.SetFlowRunState(
                runs_pb.SetFlowRunStateRequest(
                    flow_run_id=run.id, state=state_pb2.StateCreate(type=state_pb2.STATE_TYPE_PENDING)
                )
            )
        metrics_url = f"http://127.0.0.1:{endpoint.port}/metrics"
        text = (await asyncio.to_thread(lambda: urllib.request.urlopen(metrics_url, timeout=10).read())).decode()
    finally:
        endpoint.stop()
        await app.stop(grace=0)
    missing = queried - exported_names(text)
    assert not missing, f"the dashboard queries metrics the server does not export: {sorted(missing)}"
