"""bench/scale/bench_scale.py at its smallest (2 environments x 2 apps, one replica) on the session cluster:
it runs a real daemon through the first reconcile, the idle window and the no-op pass, writes its JSON
with every report field, and cleans up its namespaces. No timing is asserted here (the targets live in
bench/ only)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from reconciler.cluster.client import KubeClient

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "scale" / "bench_scale.py"


def test_smallest_curve_point_reports_every_field(local_cluster: Any, tmp_path: Path) -> None:
    # the bench runs on the session's local cluster (its NATS and state directory; the bench installs the
    # CRDs), which the session starts even when $RECONCILER_TEST_KUBECONFIG names another cluster
    out = tmp_path / "scale.json"
    state = local_cluster.load_state()
    state_dir = state.state_dir
    args = ["--state-dir", state_dir, "--envs", "2", "--apps", "2", "--idle-seconds", "2", "--settle", "0"]
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args, "--deadline", "240", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    # 0: every target met; 1: one missed, which on a loaded machine may be a timing (not asserted)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]
    data = json.loads(out.read_text())
    assert isinstance(data["loadavg"], list) and len(data["loadavg"]) == 3
    (r,) = data["results"]
    assert r["envs"] == 2 and r["apps"] == 2 and r["replicas"] == 1
    assert r["objects_per_env"] == 11 and r["objects"] == 22  # Namespace, 2 x 4, RemoteMCPServer, Agent
    assert r["failed_envs"] == []
    for key in (
        "first_reconcile_seconds",
        "health_settled_seconds",
        "noop_seconds",
        "idle_cpu_share",
        "peak_rss_mib",
        "flux_ratio_per_env",
    ):
        assert isinstance(r[key], float) and r[key] >= 0, key
    assert r["first_reconcile_seconds"] > 0 and r["peak_rss_mib"] > 0
    assert r["health_settled_seconds"] >= r["first_reconcile_seconds"]
    # the first pass wrote the objects; the no-op pass asked for by NATS was one pass per environment
    assert r["first_api"]["writes_ours"] >= 22 and r["first_daemon"]["object_changes"] == 22
    assert r["noop_daemon"]["passes"] == 2 and r["noop_daemon"]["object_changes"] == 0
    assert isinstance(r["noop_writes"], int) and isinstance(r["background_writes_same_resources_idle"], int)
    assert set(r["targets"]) == {"first_reconcile", "noop_pass", "peak_rss", "idle_cpu"}
    assert all(isinstance(v, bool) for v in r["targets"].values())
    assert "SCALE 2 environments x 2 apps (22 objects), 1 replica(s)" in proc.stdout
    assert "vs Flux 0.256 s per Kustomization" in proc.stdout and "load average" in proc.stdout
    # where the first reconcile's CPU went: the machine's busy share, the daemon's and the local cluster's
    machine = r["first_machine"]
    assert 0 < machine["busy_share"] <= 1 and 0 <= machine["steal_share"] <= 1
    assert machine["daemons_cpu_seconds"] == r["first_daemon_cpu_seconds"]
    assert machine["cluster_cpu_seconds"].get("kube-apiserver", 0) > 0, machine
    assert "machine during it:" in proc.stdout
    # the bench's namespaces are deleted (or terminating) at the end
    kube = KubeClient(Path(state.kubeconfig))  # the cluster the bench ran on
    try:
        namespaces, _ = kube.list("", "v1", "Namespace")
    finally:
        kube.close()
    ours = [n for n in namespaces if n["metadata"]["name"].startswith("scale-s2-")]
    assert all(n["metadata"].get("deletionTimestamp") for n in ours), [n["metadata"]["name"] for n in ours]
