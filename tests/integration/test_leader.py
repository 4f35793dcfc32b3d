"""Leader election: two daemons, one active; SIGKILL the leader and the other takes over within 15 s,
without applying anything twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from reconciler_testing import EnvRepo, report_figure
from reconciler_testing import until_sync as _wait

from reconciler.cluster.client import KubeClient
from reconciler.cluster.lease import LeaseLock, LeaseRecord
from reconciler.model import ObjectRef

RECONCILER = Path(sys.executable).parent / "reconciler"


def _holder(kube: KubeClient, namespace: str) -> LeaseRecord | None:
    return LeaseLock(kube, namespace, "reconciler", "observer").read()


def test_two_daemons_one_leader_and_takeover(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    env_repo.write("envs/dev.yaml", f"overlay: overlays/dev\nnamespace: {namespace}\n")
    env_repo.write("overlays/dev/kustomization.yaml", "resources:\n- cm.yaml\n")
    env_repo.write(
        "overlays/dev/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: le}\ndata: {a: b}\n"
    )
    env_repo.commit("leader test")
    procs: dict[int, subprocess.Popen[str]] = {}
    logs: dict[int, Path] = {}
    try:
        for i in range(2):
            log = tmp_path / f"daemon-{i}.log"
            env = {**os.environ, "RECONCILER_CACHE_DIR": str(tmp_path / f"cache-{i}"), "COLUMNS": "200"}
            p = subprocess.Popen(
                [
                    str(RECONCILER),
                    "run",
                    "--repo",
                    str(env_repo.remote),
                    "--kubeconfig",
                    str(kubeconfig),
                    "--interval",
                    "1",
                    "--leader-elect",
                    "--lease-namespace",
                    namespace,
                    "--http",
                    "127.0.0.1:0",
                    "--lease-duration",
                    "10",
                ],
                stdout=log.open("w"),
                stderr=subprocess.STDOUT,
                text=True,
                env=env,
            )
            procs[p.pid] = p
            logs[p.pid] = log
            if i == 0:
                _wait(lambda: _holder(kube, namespace), 30)
        record = _wait(lambda: _holder(kube, namespace), 30)
        assert isinstance(record, LeaseRecord)
        leader_pid = int(record.holder.rsplit("-", 1)[1])
        standby_pid = next(pid for pid in procs if pid != leader_pid)
        _wait(lambda: " ok (" in logs[leader_pid].read_text(), 30)
        time.sleep(3)  # several poll periods: the standby must stay idle
        assert " ok (" not in logs[standby_pid].read_text()

        os.kill(leader_pid, signal.SIGKILL)
        killed_at = time.monotonic()
        procs[leader_pid].wait(timeout=10)

        def standby_holds() -> bool:
            rec = _holder(kube, namespace)
            return rec is not None and rec.holder.endswith(f"-{standby_pid}")

        _wait(standby_holds, 20)
        takeover = time.monotonic() - killed_at
        report_figure("leader.takeover", takeover, lease_duration=10)
        assert takeover < 15.0
        _wait(lambda: " ok (" in logs[standby_pid].read_text(), 20)
        text = logs[standby_pid].read_text()
        first_pass = next(line for line in text.splitlines() if " ok (" in line)
        assert "unchanged 1" in first_pass and "created" not in first_pass and "configured" not in first_pass
        cm = kube.get(ObjectRef(kind="ConfigMap", namespace=namespace, name="le")) or {}
        assert cm["data"] == {"a": "b"}
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    p.kill()
