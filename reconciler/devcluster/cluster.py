"""A real local Kubernetes control plane and NATS server, started and stopped from Python.

Components (each its own process group, bound to 127.0.0.1, logging to ``<state>/logs/<name>.log``):
etcd (fsync off), kube-apiserver, kube-controller-manager, kube-scheduler, kwok (fake nodes that become
Ready and run pods), and nats-server with JetStream. State (pids, ports, paths) is kept in
``<state>/state.json`` so ``reconciler cluster up|down|status`` work across processes; ``up`` is idempotent.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from reconciler.devcluster import process
from reconciler.devcluster.binaries import Binaries, ensure_binaries
from reconciler.devcluster.kubeconfig import write_kubeconfig
from reconciler.devcluster.pki import write_pki
from reconciler.devcluster.process import ComponentError

Progress = Callable[[str], None]
ORDER = ["etcd", "kube-apiserver", "kube-controller-manager", "kube-scheduler", "kwok", "nats"]


def default_state_dir() -> Path:
    """``$RECONCILER_STATE_DIR`` or ``${XDG_STATE_HOME:-~/.local/state}/reconciler/cluster``."""
    env = os.environ.get("RECONCILER_STATE_DIR")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "reconciler" / "cluster"


@dataclass
class ClusterState:
    """What ``state.json`` records about a running local cluster."""

    state_dir: str
    kubeconfig: str = ""
    apiserver_url: str = ""
    nats_url: str = ""
    nats_monitor_url: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    nodes: int = 0
    started_at: float = 0.0
    startup_seconds: float = 0.0


class LocalCluster:
    """The local control plane plus NATS in ``state_dir``.

    Args:
        state_dir: where certificates, data, logs, the kubeconfig and ``state.json`` live.
        nodes: how many kwok fake nodes to create.
        with_nats: also run nats-server with JetStream.
        with_kubernetes: run the Kubernetes components (False: NATS only).
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        nodes: int = 2,
        with_nats: bool = True,
        with_kubernetes: bool = True,
    ) -> None:
        self.state_dir = (state_dir or default_state_dir()).resolve()
        self.nodes = nodes
        self.with_nats = with_nats
        self.with_kubernetes = with_kubernetes
        self._state_file = self.state_dir / "state.json"

    # -- state ----------------------------------------------------------------------------------------

    def load_state(self) -> ClusterState | None:
        """The recorded state, or ``None`` when nothing was started here."""
        if not self._state_file.exists():
            return None
        data = json.loads(self._state_file.read_text())
        return ClusterState(**data)

    def _save(self, st: ClusterState) -> None:
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(st), indent=2))
        tmp.replace(self._state_file)

    def running(self) -> dict[str, bool]:
        """Each recorded component and whether its process is alive."""
        st = self.load_state()
        if st is None:
            return {}
        return {name: process.alive(pid) for name, pid in st.pids.items()}

    # -- up/down --------------------------------------------------------------------------------------

    def up(self, progress: Progress = print, binaries: Binaries | None = None) -> ClusterState:
        """Start every component that is not already running and wait until all are ready.

        Idempotent: a healthy running cluster is returned as is. On any failure (and on Ctrl-C) every
        component started by this call's cluster is stopped before the error propagates.

        Raises:
            ComponentError: a component failed to start or become ready (names it and its log file).
            BuildError: the binaries could not be built.
        """
        st = self.load_state()
        want = self._wanted()
        if st is not None and want and all(process.alive(st.pids.get(n, -1)) for n in want):
            progress(f"local cluster already running ({self.state_dir})")
            return st
        if st is not None:
            self.down(progress=lambda _m: None)
        bins = binaries if binaries is not None or not self.with_kubernetes else ensure_binaries()
        t0 = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        st = ClusterState(state_dir=str(self.state_dir), started_at=time.time())
        self._save(st)
        try:
            if self.with_kubernetes:
                assert bins is not None
                self._start_kubernetes(st, bins, progress)
            if self.with_nats:
                self._start_nats(st, progress)
        except BaseException:
            progress("start-up failed: stopping what was started")
            self.down(progress=lambda _m: None)
            raise
        st.startup_seconds = round(time.monotonic() - t0, 2)
        self._save(st)
        progress(f"local cluster ready in {st.startup_seconds:.1f} s (state: {self.state_dir})")
        return st

    def _wanted(self) -> list[str]:
        names = []
        if self.with_kubernetes:
            names += ORDER[:5]
        if self.with_nats:
            names.append("nats")
        return names

    def _start(self, st: ClusterState, name: str, cmd: list[str]) -> None:
        log = self.state_dir / "logs" / f"{name}.log"
        st.logs[name] = str(log)
        st.pids[name] = process.start(name, cmd, log, self.state_dir)
        self._save(st)

    def _check_alive(self, st: ClusterState, name: str) -> None:
        if not process.alive(st.pids[name]):
            raise ComponentError(name, Path(st.logs[name]), "exited during start-up")

    def _start_kubernetes(self, st: ClusterState, bins: Binaries, progress: Progress) -> None:
        sd = self.state_dir
        pki = sd / "pki"
        write_pki(pki)
        for name in ("etcd-client", "etcd-peer", "apiserver", "kcm", "scheduler", "kwok"):
            st.ports[name] = process.free_port()
        etcd_data = sd / "etcd"
        shutil.rmtree(etcd_data, ignore_errors=True)
        progress("starting etcd")
        self._start(
            st,
            "etcd",
            [
                str(bins.etcd),
                "--name=local",
                f"--data-dir={etcd_data}",
                f"--listen-client-urls=http://127.0.0.1:{st.ports['etcd-client']}",
                f"--advertise-client-urls=http://127.0.0.1:{st.ports['etcd-client']}",
                f"--listen-peer-urls=http://127.0.0.1:{st.ports['etcd-peer']}",
                f"--initial-advertise-peer-urls=http://127.0.0.1:{st.ports['etcd-peer']}",
                f"--initial-cluster=local=http://127.0.0.1:{st.ports['etcd-peer']}",
                "--unsafe-no-fsync",
                "--log-level=warn",
                "--quota-backend-bytes=4294967296",
            ],
        )
        self._wait("etcd", st, lambda: _http_ok(f"http://127.0.0.1:{st.ports['etcd-client']}/health"), 30)
        port = st.ports["apiserver"]
        st.apiserver_url = f"https://127.0.0.1:{port}"
        progress("starting kube-apiserver")
        self._start(
            st,
            "kube-apiserver",
            [
                str(bins.kube_apiserver),
                f"--etcd-servers=http://127.0.0.1:{st.ports['etcd-client']}",
                "--bind-address=127.0.0.1",
                f"--secure-port={port}",
                f"--cert-dir={pki}",
                f"--tls-cert-file={pki / 'apiserver.crt'}",
                f"--tls-private-key-file={pki / 'apiserver.key'}",
                f"--client-ca-file={pki / 'ca.crt'}",
                "--authorization-mode=Node,RBAC",
                "--allow-privileged=true",
                "--service-cluster-ip-range=10.96.0.0/16",
                "--endpoint-reconciler-type=none",
                "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
                f"--service-account-key-file={pki / 'sa.pub'}",
                f"--service-account-signing-key-file={pki / 'sa.key'}",
                "--enable-priority-and-fairness=false",
                "--profiling=false",
            ],
        )
        st.kubeconfig = str(write_kubeconfig(sd / "kubeconfig", st.apiserver_url, pki))
        ctx = _tls_context(pki)
        self._wait("kube-apiserver", st, lambda: _http_ok(st.apiserver_url + "/readyz", ctx), 90)
        kc = st.kubeconfig
        progress("starting kube-controller-manager, kube-scheduler and kwok")
        self._start(
            st,
            "kube-controller-manager",
            [
                str(bins.kube_controller_manager),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={st.ports['kcm']}",
                f"--service-account-private-key-file={pki / 'sa.key'}",
                f"--root-ca-file={pki / 'ca.crt'}",
                "--use-service-account-credentials=false",
                "--controllers=*,-nodeipam,-cloud-node-lifecycle,-service-lb-controller,-route",
                "--enable-hostpath-provisioner=true",
                "--concurrent-deployment-syncs=10",
                "--concurrent-replicaset-syncs=10",
            ],
        )
        self._start(
            st,
            "kube-scheduler",
            [
                str(bins.kube_scheduler),
                f"--kubeconfig={kc}",
                f"--authentication-kubeconfig={kc}",
                f"--authorization-kubeconfig={kc}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={st.ports['scheduler']}",
            ],
        )
        self._start(
            st,
            "kwok",
            [
                str(bins.kwok),
                f"--kubeconfig={kc}",
                "--manage-all-nodes=true",
                f"--config={bins.kwok_stages}",
                f"--server-address=127.0.0.1:{st.ports['kwok']}",
                "--node-ip=127.0.0.1",
                "--node-lease-duration-seconds=40",
            ],
        )
        from reconciler.devcluster.nodes import create_default_storage_class, create_nodes, wait_nodes_ready

        create_nodes(Path(kc), self.nodes)
        st.nodes = self.nodes

        def nodes_ready() -> bool:
            for n in ("kube-controller-manager", "kube-scheduler", "kwok"):
                self._check_alive(st, n)
            return wait_nodes_ready(Path(kc), self.nodes)

        self._wait("kwok", st, nodes_ready, 60)
        create_default_storage_class(Path(kc))
        self._save(st)

    def _start_nats(self, st: ClusterState, progress: Progress) -> None:
        from reconciler.devcluster.nats import nats_server_binary

        st.ports["nats"] = process.free_port()
        st.ports["nats-monitor"] = process.free_port()
        store = self.state_dir / "jetstream"
        store.mkdir(parents=True, exist_ok=True)
        progress("starting nats-server (JetStream)")
        self._start(
            st,
            "nats",
            [
                str(nats_server_binary()),
                "-a",
                "127.0.0.1",
                "-p",
                str(st.ports["nats"]),
                "--http_port",
                str(st.ports["nats-monitor"]),
                "-js",
                "-sd",
                str(store),
                "--server_name",
                "reconciler-local",
            ],
        )
        st.nats_url = f"nats://127.0.0.1:{st.ports['nats']}"
        st.nats_monitor_url = f"http://127.0.0.1:{st.ports['nats-monitor']}"
        self._wait("nats", st, lambda: _http_ok(st.nats_monitor_url + "/healthz?js-enabled-only=true"), 30)

    def _wait(self, name: str, st: ClusterState, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(st, name)
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.2)
        raise ComponentError(name, Path(st.logs[name]), f"not ready after {timeout:.0f} s")

    def down(self, progress: Progress = print) -> list[str]:
        """Stop every recorded component (reverse start order), leaving no process behind.

        Returns the names of the components that were running.
        """
        st = self.load_state()
        if st is None:
            return []
        stopped = []
        for name in reversed(ORDER):
            pid = st.pids.get(name)
            if pid is None:
                continue
            if process.alive(pid):
                stopped.append(name)
                progress(f"stopping {name} (pid {pid})")
            process.stop_group(pid)
        # anything else still holding our state directory (e.g. children that left the group)
        for pid in process.processes_of(str(self.state_dir)):
            process.stop_group(pid, timeout=2)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        self._state_file.unlink(missing_ok=True)
        return stopped


def _tls_context(pki: Path) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    ctx.load_cert_chain(str(pki / "admin.crt"), str(pki / "admin.key"))
    return ctx


def _http_ok(url: str, ctx: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2, context=ctx) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def status_lines(cluster: LocalCluster) -> list[tuple[str, str, str]]:
    """``(component, state, detail)`` rows for ``reconciler cluster status``."""
    st = cluster.load_state()
    if st is None:
        return []
    rows = []
    detail = {
        "etcd": f"http://127.0.0.1:{st.ports.get('etcd-client', '?')}",
        "kube-apiserver": st.apiserver_url,
        "kube-controller-manager": f"https://127.0.0.1:{st.ports.get('kcm', '?')}",
        "kube-scheduler": f"https://127.0.0.1:{st.ports.get('scheduler', '?')}",
        "kwok": f"{st.nodes} fake nodes",
        "nats": st.nats_url,
    }
    for name in ORDER:
        if name in st.pids:
            state = "running" if process.alive(st.pids[name]) else "stopped"
            rows.append(
                (name, f"{state} (pid {st.pids[name]})", f"{detail.get(name, '')}  log: {st.logs[name]}")
            )
    return rows


def describe(st: ClusterState) -> dict[str, Any]:
    """The state as a plain dict (for ``-o json``)."""
    return asdict(st)
