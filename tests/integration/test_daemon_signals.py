"""SIGINT and SIGTERM stop the daemon promptly whatever is unreachable, saying what they interrupted.

The API server and NATS here are listeners that accept connections and never answer (the worst case: no
error, no reply), so every call the daemon makes hangs until its own timeout.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from reconciler_testing import EnvRepo, free_port, report_figure

from reconciler.cluster.client import KubeClient
from reconciler.paths import default_cache_dir

pytestmark = pytest.mark.integration

CLI = [sys.executable, "-m", "reconciler.cli"]


def _seed(repo: EnvRepo) -> None:
    repo.write("envs/dev.yaml", "overlay: overlays/dev\nnamespace: nowhere\n")
    repo.write("overlays/dev/kustomization.yaml", "resources:\n- cm.yaml\n")
    repo.write("overlays/dev/cm.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n")
    repo.commit("dev: one config map")


class Blackhole:
    """A TCP listener on 127.0.0.1 that never accepts: connections hang as with a stopped server whose
    socket is still open (the worst case for a client: no error, no answer)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = int(self.sock.getsockname()[1])

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_daemon_exits_within_5_s_of_a_signal_with_everything_unreachable(
    sig: signal.Signals, env_repo: EnvRepo, tmp_path: Path
) -> None:
    """`reconciler run` with an API server and a NATS that accept connections and never answer: after
    the signal it exits within 5 s, 0, and says what it interrupted."""
    from reconciler.devcluster.kubeconfig import write_kubeconfig
    from reconciler.devcluster.pki import write_pki

    _seed(env_repo)
    api, nats = Blackhole(), Blackhole()
    write_pki(tmp_path / "pki")
    kc = write_kubeconfig(tmp_path / "kubeconfig", f"https://127.0.0.1:{api.port}", tmp_path / "pki")
    env = {**os.environ, "RECONCILER_CACHE_DIR": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [
            *CLI,
            "run",
            "--repo",
            str(env_repo.remote),
            "--env",
            "dev",
            "--kubeconfig",
            str(kc),
            "--nats",
            f"nats://127.0.0.1:{nats.port}",
            "--http",
            f"127.0.0.1:{free_port()}",
            "--log-format",
            "text",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stderr.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        deadline = time.monotonic() + 60
        while not any("reconciling dev" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            time.sleep(0.1)
        time.sleep(2.0)  # the first pass now waits on the API server, NATS on its first connection
        t0 = time.monotonic()
        proc.send_signal(sig)
        code = proc.wait(timeout=30)
        exit_s = time.monotonic() - t0
        reader.join(5)
        text = "".join(lines)
        report_figure(f"daemon.{sig.name}.exit", exit_s)
        assert exit_s < 5.0, text
        assert code == 0, text
        assert f"{sig.name}: stopping; interrupting" in text, text
        assert "the pass of dev" in text and f"connecting to NATS nats://127.0.0.1:{nats.port}" in text, text
        assert "stopped in" in text
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        api.close()
        nats.close()


def _applied_everywhere(port: int) -> bool:
    """Whether the daemon serving its status on ``port`` lists environments and each has applied a
    revision completely with its last pass succeeding (``GET /api/status``); ``False`` while the server
    does not answer yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=10) as resp:
            envs: list[dict[str, Any]] = json.loads(resp.read())
    except OSError:
        return False
    return bool(envs) and all(e["revision"] and e["ok"] for e in envs)


def _lost_cluster(port: int) -> bool:
    """Whether the daemon serving ``port`` reports its API server and NATS unreachable (``GET /readyz``:
    its ``kubernetes`` and ``nats`` checks failing)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as resp:
            body = resp.read()
    except urllib.error.HTTPError as exc:  # 503: not ready, with the checks in the body
        body = exc.read()
    except OSError:
        return False
    checks = json.loads(body)["checks"]
    return not checks["kubernetes"]["ok"] and not checks["nats"]["ok"]


def _names(kube: KubeClient) -> dict[str, str]:
    """``namespace/name`` → uid of every kagent Agent."""
    items, _ = kube.list("kagent.dev", "v1alpha2", "Agent")
    return {f"{i['metadata']['namespace']}/{i['metadata']['name']}": i["metadata"]["uid"] for i in items}


def test_reconciler_up_exits_within_5_s_of_sigint_after_its_cluster_died(tmp_path: Path) -> None:
    """`reconciler up` on its own local cluster; the API server and nats-server are killed while it runs,
    then Ctrl-C: it exits within 5 s, 0, saying what it interrupted. A second `reconciler up` brings that
    cluster back with the objects the first one applied."""

    from reconciler.devcluster import LocalCluster

    state = tmp_path / "state"
    port = free_port()
    # the daemon's state is this test's own, the control plane's binaries are the machine's (built once by
    # tools/controlplane/build.sh): rebuilding them here would take minutes of a loaded machine's CPU
    shared = default_cache_dir() / "bin"
    shared.mkdir(parents=True, exist_ok=True)
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / "bin").symlink_to(shared, target_is_directory=True)
    proc = subprocess.Popen(
        [
            *CLI,
            "up",
            "--state-dir",
            str(state),
            "--workdir",
            str(tmp_path / "work"),
            "--nodes",
            "1",
            "--http",
            f"127.0.0.1:{port}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "RECONCILER_CACHE_DIR": str(tmp_path / "cache")},
    )
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    kube: KubeClient | None = None
    try:
        deadline = time.monotonic() + 240
        while not any("Ctrl-C to stop" in line for line in lines):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            time.sleep(0.2)
        before = LocalCluster(state).load_state()
        assert before is not None
        kube = KubeClient(Path(before.kubeconfig))
        # every environment's pass applied its whole set (the daemon's own status API says so), so the
        # Agents read now are all the first `reconciler up` makes, not those of the first pass to finish
        while not _applied_everywhere(port):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            time.sleep(0.5)
        agents = _names(kube)
        assert agents, "the first `reconciler up` applied no Agent"
        pids = before.pids
        for name in ("kube-apiserver", "nats"):
            os.killpg(pids[name], signal.SIGKILL)
        # passes, health gates and NATS now wait on dead servers: wait until the daemon itself has noticed
        # (its readiness names both), so the shutdown has NATS to interrupt
        while not _lost_cluster(port):
            assert time.monotonic() < deadline and proc.poll() is None, "".join(lines)
            time.sleep(0.2)
        t0 = time.monotonic()
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
        exit_s = time.monotonic() - t0
        reader.join(5)
        text = "".join(lines)
        report_figure("up.SIGINT-with-cluster-dead.exit", exit_s)
        assert exit_s < 5.0, text
        assert code == 0, text
        assert "SIGINT: stopping; interrupting" in text and "connecting to NATS" in text, text
        # `reconciler up` again on that half-dead cluster brings it back as it was: nothing is erased, and
        # the same example repository (the first run's, with its commits) is reconciled again
        again = subprocess.run(
            [*CLI, "up", "--once", "--state-dir", str(state), "--workdir", str(tmp_path / "work")],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=300,
            env={**os.environ, "RECONCILER_CACHE_DIR": str(tmp_path / "cache")},
            check=False,
        )
        assert again.returncode == 0, again.stdout + again.stderr
        assert "reusing the example repository" in again.stderr, again.stderr
        after = LocalCluster(state).load_state()
        assert after is not None and after.ports == before.ports
        assert _names(kube) == agents  # the same objects (uids), not new ones in an empty cluster
    finally:
        if kube is not None:
            kube.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        LocalCluster(state).down(progress=lambda m: None, purge=True)
