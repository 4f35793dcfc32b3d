"""A real local Kubernetes control plane, NATS server and Prometheus, started and stopped from Python.

Components (each its own process group, bound to 127.0.0.1, logging to ``<state>/logs/<name>.log``):
etcd (fsync off), kube-apiserver, kube-controller-manager, kube-scheduler, kwok (fake nodes that become
Ready and run pods), nats-server with JetStream, the pinned Prometheus (scraping the targets of
``<state>/prometheus/targets.json`` every second; :mod:`reconciler.devcluster.prometheus`) and, only when
asked for (``cluster up --forge``), a local Gitea forge (:mod:`reconciler.devcluster.gitea`), and with
``cluster up --registry`` a CNCF Distribution registry (:mod:`reconciler.devcluster.registry`). State
(pids, ports, paths) is kept in ``<state>/state.json`` so ``reconciler cluster up|down|status`` work across
processes; ``up`` is idempotent.

The data is the user's: ``up`` restarts what is not running on the recorded ports with the kept data
(after a crash, a kill or a reboot), ``down`` stops without erasing, and only ``down --purge`` erases.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
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
from reconciler.devcluster.gitea import GiteaFiles
from reconciler.devcluster.kubeconfig import write_kubeconfig
from reconciler.devcluster.pki import write_pki
from reconciler.devcluster.process import ComponentError
from reconciler.devcluster.prometheus import PrometheusFiles
from reconciler.devcluster.registry import RegistryFiles

Progress = Callable[[str], None]
#: The start order of every component; ``gitea`` (the forge) runs only when asked for.
ORDER = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kwok",
    "nats",
    "prometheus",
    "gitea",
    "registry",
]
#: The components of a cluster started without the forge and the registry.
DEFAULT_ORDER = [n for n in ORDER if n not in ("gitea", "registry")]
#: The ``state.json`` port keys each component listens on.
PORTS = {
    "etcd": ("etcd-client", "etcd-peer"),
    "kube-apiserver": ("apiserver",),
    "kube-controller-manager": ("kcm",),
    "kube-scheduler": ("scheduler",),
    "kwok": ("kwok",),
    "nats": ("nats", "nats-monitor"),
    "prometheus": ("prometheus",),
    "gitea": ("gitea",),
    "registry": ("registry",),
}
#: What ``down --purge`` erases in the state directory (everything the cluster writes there).
PURGED = (
    "etcd",
    "jetstream",
    "prometheus",
    "gitea",
    "registry",
    "pki",
    "logs",
    "kubeconfig",
    "kubeconfig.tmp",
    "state.json",
    "state.tmp",
)


def default_state_dir() -> Path:
    """``$RECONCILER_STATE_DIR`` or ``${XDG_STATE_HOME:-~/.local/state}/reconciler/cluster``."""
    env = os.environ.get("RECONCILER_STATE_DIR")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    return base / "reconciler" / "cluster"


def state_dir_option(state_dir: Path) -> str:
    """`` --state-dir DIR`` for commands a user is told to run, or ``""`` when ``state_dir`` is the
    default one (``$RECONCILER_STATE_DIR`` included)."""
    if state_dir.resolve() == default_state_dir().resolve():
        return ""
    return f" --state-dir {shlex.quote(str(state_dir))}"


def kubeconfig_hint() -> str:
    """How to pass the local cluster's kubeconfig: ``--kubeconfig "$(reconciler cluster kubeconfig …)"``
    naming the state directory of each local cluster whose API server runs now (the default one when
    none runs)."""
    dirs: set[str] = set()
    for pid, state_dir in process.marked_processes().items():
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "kube-apiserver":
                dirs.add(state_dir)
    options = [state_dir_option(Path(d)) for d in sorted(dirs)] or [""]
    return " or ".join(f'--kubeconfig "$(reconciler cluster kubeconfig{o})"' for o in options)


@dataclass
class ClusterState:
    """What ``state.json`` records about a running local cluster."""

    state_dir: str
    kubeconfig: str = ""
    apiserver_url: str = ""
    nats_url: str = ""
    nats_monitor_url: str = ""
    prometheus_url: str = ""
    #: whether this cluster runs the local Gitea forge (``cluster up --forge``; kept until ``--no-forge``)
    forge: bool = False
    gitea_url: str = ""
    #: whether this cluster runs the local registry (``cluster up --registry``; kept until ``--no-registry``)
    registry: bool = False
    registry_url: str = ""
    #: where the registry sends its notifications: ``http://127.0.0.1:<registry-hook port>/hook/registry``
    #: (``reconciler up`` serves its webhook receivers there)
    registry_notify_url: str = ""
    ports: dict[str, int] = field(default_factory=dict)
    pids: dict[str, int] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)
    nodes: int = 0
    started_at: float = 0.0
    startup_seconds: float = 0.0


class LocalCluster:
    """The local control plane plus NATS and Prometheus (and optionally the forge and the registry) in
    ``state_dir``.

    Args:
        state_dir: where certificates, data, logs, the kubeconfig and ``state.json`` live.
        nodes: how many kwok fake nodes to create.
        with_nats: also run nats-server with JetStream.
        with_kubernetes: run the Kubernetes components (False: NATS only).
        with_prometheus: also run the pinned Prometheus (built once by ``build.sh prometheus``); default:
            with the Kubernetes components.
        with_forge: also run the local Gitea forge (built once by ``build.sh gitea``; about 3 minutes).
            ``None`` (the default) keeps what ``state.json`` records: a cluster once started with the forge
            keeps it at every later :meth:`up` until one is called with ``False``, which stops it (its data
            stays until ``down(purge=True)``).
        with_registry: also run the local CNCF Distribution registry (built once by ``build.sh registry``,
            about a minute), remembered like ``with_forge``.
    """

    def __init__(
        self,
        state_dir: Path | None = None,
        *,
        nodes: int = 2,
        with_nats: bool = True,
        with_kubernetes: bool = True,
        with_prometheus: bool | None = None,
        with_forge: bool | None = None,
        with_registry: bool | None = None,
    ) -> None:
        self.state_dir = (state_dir or default_state_dir()).resolve()
        self.nodes = nodes
        self.with_nats = with_nats
        self.with_kubernetes = with_kubernetes
        self.with_prometheus = with_kubernetes if with_prometheus is None else with_prometheus
        self.with_forge = with_forge
        self.with_registry = with_registry
        self._gitea: Path | None = None
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
        """Each recorded component and whether it runs (a live process started for this cluster)."""
        st = self.load_state()
        if st is None:
            return {}
        return {name: self._is_running(st, name) for name in st.pids}

    # -- up/down --------------------------------------------------------------------------------------

    def up(self, progress: Progress = print, binaries: Binaries | None = None) -> ClusterState:
        """Start every component that is not running and wait until the whole cluster is ready.

        A cluster recorded in ``state_dir`` is brought back as it was: each stopped component (killed,
        crashed, or all of them after a reboot) starts again on its recorded ports with its data (etcd's
        data directory, JetStream's store, the certificates); components still running are left alone.
        Nothing is ever deleted: erasing is :meth:`down` with ``purge=True``. A new cluster gets free ports.
        On a failure (and on Ctrl-C) the components this call started are stopped again before the error
        propagates; the data stays.

        Raises:
            ComponentError: a component failed to start or become ready (names it and its log file), a
                recorded port is taken by another process (names the port and, when it can, the process),
                or the forge's administrator and token could not be set up.
            BuildError: the binaries (with the forge: Gitea) could not be built.
        """
        st = self.load_state()
        if st is not None and self.with_forge is False and "gitea" in st.pids:
            self._drop_forge(st, progress)
        if st is not None and self.with_registry is False and "registry" in st.pids:
            self._drop_registry(st, progress)
        forge = self._forge(st)
        want = self._wanted(st)
        if st is not None and want and all(self._is_running(st, n) for n in want):
            if forge:
                self._bootstrap_gitea(st)
            progress(f"local cluster already running ({self.state_dir})")
            return st
        fresh = st is None
        if st is None:
            st = ClusterState(state_dir=str(self.state_dir), started_at=time.time())
        st.forge = forge
        st.registry = self._registry(st)
        self._stop_strays(st)
        stopped = [n for n in want if not self._is_running(st, n)]
        self._allocate_ports(st)
        self._check_ports(st, stopped)
        needs_k8s = any(n in stopped for n in ORDER[:5])
        bins = binaries if binaries is not None or not needs_k8s else ensure_binaries()
        t0 = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if fresh and (self.state_dir / "etcd" / "member").is_dir():
            progress(f"starting a local cluster on the data already in {self.state_dir} (new ports)")
        elif fresh:
            progress(f"creating a new local cluster in {self.state_dir}")
        else:
            progress(
                f"starting {', '.join(stopped)} on the recorded ports, with their data ({self.state_dir})"
            )
        st.started_at = time.time()
        self._save(st)
        started: list[str] = []
        try:
            if self.with_kubernetes:
                if needs_k8s:
                    assert bins is not None
                self._start_kubernetes(st, bins, stopped, started, progress)
            if self.with_nats and "nats" in stopped:
                self._start_nats(st, started, progress)
            if self.with_prometheus and "prometheus" in stopped:
                self._start_prometheus(st, started, progress)
            if forge:
                if "gitea" in stopped:
                    self._start_gitea(st, started, progress)
                self._bootstrap_gitea(st)
            if st.registry and "registry" in stopped:
                self._start_registry(st, started, progress)
        except BaseException:
            progress("start-up failed: stopping what this command started (the data is kept)")
            for name in reversed(started):
                process.stop_group(st.pids[name])
            raise
        st.startup_seconds = round(time.monotonic() - t0, 2)
        self._save(st)
        progress(f"local cluster ready in {st.startup_seconds:.1f} s (state: {self.state_dir})")
        return st

    def _forge(self, st: ClusterState | None) -> bool:
        """Whether this :meth:`up` runs the forge: as asked, else as recorded."""
        if self.with_forge is not None:
            return self.with_forge
        return st is not None and st.forge

    def _registry(self, st: ClusterState | None) -> bool:
        """Whether this :meth:`up` runs the registry: as asked, else as recorded."""
        if self.with_registry is not None:
            return self.with_registry
        return st is not None and st.registry

    def _wanted(self, st: ClusterState | None) -> list[str]:
        names = []
        if self.with_kubernetes:
            names += ORDER[:5]
        if self.with_nats:
            names.append("nats")
        if self.with_prometheus:
            names.append("prometheus")
        if self._forge(st):
            names.append("gitea")
        if self._registry(st):
            names.append("registry")
        return names

    def _is_running(self, st: ClusterState, name: str) -> bool:
        pid = st.pids.get(name)
        return pid is not None and process.started_for(pid, str(self.state_dir))

    def _stop_strays(self, st: ClusterState) -> None:
        """Stop processes of this cluster that ``state.json`` no longer records (e.g. the children of a
        component that was killed without its process group)."""
        recorded = {pid for n, pid in st.pids.items() if self._is_running(st, n)}
        for pid in process.processes_of(str(self.state_dir)):
            with contextlib.suppress(ProcessLookupError):
                if pid in recorded or os.getpgid(pid) in recorded:  # a component or its child
                    continue
                process.stop_group(pid, timeout=2)
                os.kill(pid, 9)

    def _allocate_ports(self, st: ClusterState) -> None:
        """Give each wanted component's ports that the state does not record yet a free port."""
        for name in self._wanted(st):
            for key in PORTS[name]:
                if key not in st.ports:
                    st.ports[key] = process.free_port()
        if self._registry(st) and "registry-hook" not in st.ports:  # the receiver's: not checked as ours
            st.ports["registry-hook"] = process.free_port()

    def _check_ports(self, st: ClusterState, names: list[str]) -> None:
        """Refuse to start ``names`` when another process listens on one of their recorded ports.

        Raises:
            ComponentError: naming the component, the port and, when it can be told, the process.
        """
        for name in names:
            for key in PORTS[name]:
                port = st.ports[key]
                if process.port_in_use(port):
                    who = process.listener_of(port)
                    opt = state_dir_option(self.state_dir)
                    raise ComponentError(
                        name,
                        None,
                        f"its port 127.0.0.1:{port} ({key}) is taken by another process"
                        f"{' (' + who + ')' if who else ''}. The cluster in {self.state_dir} keeps its "
                        f"ports (clients have them): stop that process and run `reconciler cluster up{opt}` "
                        f"again, or erase this cluster with `reconciler cluster down --purge{opt}`",
                    )

    def _start(self, st: ClusterState, name: str, cmd: list[str], started: list[str]) -> None:
        log = self.state_dir / "logs" / f"{name}.log"
        st.logs[name] = str(log)
        st.pids[name] = process.start(name, cmd, log, self.state_dir)
        started.append(name)
        self._save(st)

    def _check_alive(self, st: ClusterState, name: str) -> None:
        if not process.alive(st.pids[name]):
            raise ComponentError(name, Path(st.logs[name]), "exited during start-up")

    def _start_kubernetes(
        self,
        st: ClusterState,
        bins: Binaries | None,
        stopped: list[str],
        started: list[str],
        progress: Progress,
    ) -> None:
        sd = self.state_dir
        pki = sd / "pki"
        write_pki(pki)  # keeps existing certificates
        st.apiserver_url = f"https://127.0.0.1:{st.ports['apiserver']}"
        kc = sd / "kubeconfig"
        st.kubeconfig = str(write_kubeconfig(kc, st.apiserver_url, pki))
        ctx = _tls_context(pki)
        if "etcd" in stopped:
            assert bins is not None
            progress("starting etcd")
            self._start(st, "etcd", self._etcd_command(st, bins), started)
        self._wait("etcd", st, lambda: _http_ok(f"http://127.0.0.1:{st.ports['etcd-client']}/health"), 30)
        if "kube-apiserver" in stopped:
            assert bins is not None
            progress("starting kube-apiserver")
            self._start(st, "kube-apiserver", self._apiserver_command(st, bins), started)
        self._wait("kube-apiserver", st, lambda: _http_ok(st.apiserver_url + "/readyz", ctx), 90)
        rest = [n for n in ("kube-controller-manager", "kube-scheduler", "kwok") if n in stopped]
        if rest:
            assert bins is not None
            progress(f"starting {', '.join(rest)}")
            commands = {
                "kube-controller-manager": self._kcm_command(st, bins),
                "kube-scheduler": self._scheduler_command(st, bins),
                "kwok": self._kwok_command(st, bins),
            }
            for name in rest:
                self._start(st, name, commands[name], started)
        from reconciler.devcluster.nodes import create_default_storage_class, create_nodes, wait_nodes_ready

        create_nodes(kc, self.nodes)  # server-side apply: existing nodes are kept
        st.nodes = max(st.nodes, self.nodes)

        def nodes_ready() -> bool:
            for n in ("kube-controller-manager", "kube-scheduler", "kwok"):
                self._check_alive(st, n)
            return wait_nodes_ready(kc, self.nodes)

        self._wait("kwok", st, nodes_ready, 60)
        create_default_storage_class(kc)
        self._save(st)

    def _etcd_command(self, st: ClusterState, bins: Binaries) -> list[str]:
        client, peer = st.ports["etcd-client"], st.ports["etcd-peer"]
        return [
            str(bins.etcd),
            "--name=local",
            f"--data-dir={self.state_dir / 'etcd'}",  # kept across restarts; --initial-* apply to a new one
            f"--listen-client-urls=http://127.0.0.1:{client}",
            f"--advertise-client-urls=http://127.0.0.1:{client}",
            f"--listen-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer}",
            f"--initial-cluster=local=http://127.0.0.1:{peer}",
            "--unsafe-no-fsync",
            "--log-level=warn",
            "--quota-backend-bytes=4294967296",
        ]

    def _apiserver_command(self, st: ClusterState, bins: Binaries) -> list[str]:
        pki = self.state_dir / "pki"
        return [
            str(bins.kube_apiserver),
            f"--etcd-servers=http://127.0.0.1:{st.ports['etcd-client']}",
            "--bind-address=127.0.0.1",
            f"--secure-port={st.ports['apiserver']}",
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
        ]

    def _kcm_command(self, st: ClusterState, bins: Binaries) -> list[str]:
        pki, kc = self.state_dir / "pki", st.kubeconfig
        return [
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
        ]

    def _scheduler_command(self, st: ClusterState, bins: Binaries) -> list[str]:
        kc = st.kubeconfig
        return [
            str(bins.kube_scheduler),
            f"--kubeconfig={kc}",
            f"--authentication-kubeconfig={kc}",
            f"--authorization-kubeconfig={kc}",
            "--leader-elect=false",
            "--bind-address=127.0.0.1",
            f"--secure-port={st.ports['scheduler']}",
        ]

    def _kwok_command(self, st: ClusterState, bins: Binaries) -> list[str]:
        return [
            str(bins.kwok),
            f"--kubeconfig={st.kubeconfig}",
            "--manage-all-nodes=true",
            f"--config={bins.kwok_stages}",
            f"--server-address=127.0.0.1:{st.ports['kwok']}",
            "--node-ip=127.0.0.1",
            "--node-lease-duration-seconds=40",
        ]

    def _start_nats(self, st: ClusterState, started: list[str], progress: Progress) -> None:
        from reconciler.devcluster.nats import nats_server_binary

        store = self.state_dir / "jetstream"  # kept across restarts: streams, messages, consumers
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
            started,
        )
        st.nats_url = f"nats://127.0.0.1:{st.ports['nats']}"
        st.nats_monitor_url = f"http://127.0.0.1:{st.ports['nats-monitor']}"
        self._wait("nats", st, lambda: _http_ok(st.nats_monitor_url + "/healthz?js-enabled-only=true"), 30)

    def _start_prometheus(self, st: ClusterState, started: list[str], progress: Progress) -> None:
        from reconciler.devcluster import prometheus

        files = self.prometheus_files()  # kept across restarts: the TSDB and the registered targets
        prometheus.write_config(files)
        binary = prometheus.ensure_prometheus()  # a no-op when built (the first build takes minutes)
        progress("starting prometheus")
        self._start(st, "prometheus", prometheus.command(binary, files, st.ports["prometheus"]), started)
        st.prometheus_url = f"http://127.0.0.1:{st.ports['prometheus']}"
        self._wait("prometheus", st, lambda: _http_ok(st.prometheus_url + "/-/ready"), 60)

    def _start_gitea(self, st: ClusterState, started: list[str], progress: Progress) -> None:
        from reconciler.devcluster import gitea

        files = self.gitea_files()  # kept across restarts: the database, repositories, secrets, token
        binary = self._gitea_binary()
        gitea.write_config(files, st.ports["gitea"], binary)
        progress("starting gitea (local forge)")
        self._start(st, "gitea", gitea.command(binary, files), started)
        st.gitea_url = gitea.base_url(st.ports["gitea"])
        # the first start creates the database schema (tens of seconds on a busy machine)
        self._wait("gitea", st, lambda: _http_ok(st.gitea_url + "api/healthz"), 180)

    def _bootstrap_gitea(self, st: ClusterState) -> None:
        """The forge's administrator and token (a no-op when the recorded token works)."""
        from reconciler.devcluster import gitea

        files = self.gitea_files()
        binary = self._gitea_binary()
        try:
            gitea.bootstrap(binary, files, st.ports["gitea"])
        except gitea.GiteaError as exc:
            raise ComponentError("gitea", Path(st.logs["gitea"]), str(exc)) from None

    def _gitea_binary(self) -> Path:
        """The pinned Gitea, built on first use (about 3 minutes) and looked up once per instance."""
        from reconciler.devcluster import gitea

        if self._gitea is None:
            self._gitea = gitea.ensure_gitea()
        return self._gitea

    def _start_registry(self, st: ClusterState, started: list[str], progress: Progress) -> None:
        from reconciler.devcluster import registry

        files = self.registry_files()  # kept across restarts: the images and the notification token
        binary = registry.ensure_registry()  # a no-op when built (the first build takes about a minute)
        st.registry_notify_url = f"http://127.0.0.1:{st.ports['registry-hook']}/hook/{registry.HOOK_RECEIVER}"
        registry.write_config(files, st.ports["registry"], st.registry_notify_url, files.token())
        progress("starting registry (CNCF Distribution)")
        self._start(st, "registry", registry.command(binary, files), started)
        st.registry_url = f"http://127.0.0.1:{st.ports['registry']}"
        self._wait("registry", st, lambda: registry.ready(st.registry_url), 30)

    def _drop_registry(self, st: ClusterState, progress: Progress) -> None:
        """Stop the registry and forget it in ``state.json`` (its images stay in ``<state>/registry``)."""
        if self._is_running(st, "registry"):
            root = self.registry_files().root
            progress(f"stopping registry (pid {st.pids['registry']}); its images stay in {root}")
            process.stop_group(st.pids["registry"])
        st.pids.pop("registry", None)
        st.logs.pop("registry", None)
        st.registry = False
        st.registry_url = ""
        self._save(st)

    def registry_files(self) -> RegistryFiles:
        """The local registry's config, storage and notification token under ``<state>/registry``."""
        return RegistryFiles(self.state_dir / "registry")

    def _drop_forge(self, st: ClusterState, progress: Progress) -> None:
        """Stop the forge and forget it in ``state.json`` (its data stays in ``<state>/gitea``)."""
        if self._is_running(st, "gitea"):
            progress(f"stopping gitea (pid {st.pids['gitea']}); its data stays in {self.gitea_files().root}")
            process.stop_group(st.pids["gitea"])
        st.pids.pop("gitea", None)
        st.logs.pop("gitea", None)
        st.forge = False
        st.gitea_url = ""
        self._save(st)

    def gitea_files(self) -> GiteaFiles:
        """The local forge's files (config, database, repositories, administrator token) under
        ``<state>/gitea``."""
        return GiteaFiles(self.state_dir / "gitea")

    def prometheus_files(self) -> PrometheusFiles:
        """The local Prometheus's config, targets file (:func:`~reconciler.devcluster.prometheus.
        register_target` adds scrape targets to it) and TSDB, under ``<state>/prometheus``."""
        return PrometheusFiles(self.state_dir / "prometheus")

    def _wait(self, name: str, st: ClusterState, ready: Callable[[], bool], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive(st, name)
            with contextlib.suppress(Exception):
                if ready():
                    return
            time.sleep(0.2)
        raise ComponentError(name, Path(st.logs[name]), f"not ready after {timeout:.0f} s")

    def down(self, progress: Progress = print, *, purge: bool = False) -> list[str]:
        """Stop every component of this cluster (reverse start order), leaving no process behind.

        The data, the certificates and the recorded ports stay, so the next :meth:`up` brings the same
        cluster back; ``purge=True`` also erases them (etcd's data, JetStream's store, Prometheus's TSDB and
        targets, the forge's database and repositories, certificates, kubeconfig, logs and ``state.json``;
        other files in ``state_dir`` are left alone).

        Returns the names of the components that were running.
        """
        st = self.load_state()
        stopped = []
        for name in reversed(ORDER):
            pid = st.pids.get(name) if st is not None else None
            if pid is None or st is None or not self._is_running(st, name):
                continue  # a recorded pid that is not ours (reused after a reboot) is never signalled
            stopped.append(name)
            progress(f"stopping {name} (pid {pid})")
            process.stop_group(pid)
        # anything else still holding our state directory (e.g. children that left the group)
        for pid in process.processes_of(str(self.state_dir)):
            process.stop_group(pid, timeout=2)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, 9)
        # servers started for a directory inside it: the loopback stand-ins of a `reconciler up` that
        # was killed before it could stop them (<state_dir>/standins/logs)
        root = self.state_dir.resolve()
        for pid, marked in process.marked_processes().items():
            with contextlib.suppress(OSError, ValueError):
                if pid != os.getpid() and Path(marked).resolve().is_relative_to(root / "standins"):
                    progress(f"stopping stand-in pid {pid}")
                    process.stop_group(pid, timeout=2)
        if purge:
            erased = self.purge()
            if erased:
                progress(f"erased {', '.join(erased)} in {self.state_dir}")
        return stopped

    def purge(self) -> list[str]:
        """Erase what this cluster keeps in ``state_dir`` (call only with every component stopped);
        returns the names erased."""
        erased = []
        for name in PURGED:
            path = self.state_dir / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
            else:
                continue
            erased.append(name)
        with contextlib.suppress(OSError):
            self.state_dir.rmdir()  # only when nothing else is in it
        return erased


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
        "prometheus": st.prometheus_url,
        "gitea": f"{st.gitea_url} (admin {forge_info(cluster, st)['admin_user']})" if st.gitea_url else "",
        "registry": f"{st.registry_url} (notifications to {st.registry_notify_url})"
        if st.registry_url
        else "",
    }
    for name in ORDER:
        if name in st.pids:
            state = "running" if process.started_for(st.pids[name], str(cluster.state_dir)) else "stopped"
            rows.append(
                (name, f"{state} (pid {st.pids[name]})", f"{detail.get(name, '')}  log: {st.logs[name]}")
            )
    return rows


def forge_info(cluster: LocalCluster, st: ClusterState) -> dict[str, str]:
    """Where the local forge is and who administers it: ``url``, ``admin_user`` and ``token_file`` (the
    path of the file holding the administrator's API token; never the token itself). Empty values when
    the cluster has no forge."""
    from reconciler.devcluster.gitea import ADMIN_USER

    if not st.forge and not st.gitea_url:
        return {"url": "", "admin_user": "", "token_file": ""}
    return {"url": st.gitea_url, "admin_user": ADMIN_USER, "token_file": str(cluster.gitea_files().token)}


def describe(st: ClusterState) -> dict[str, Any]:
    """The state as a plain dict (for ``-o json``), with ``forge``: :func:`forge_info`."""
    data = asdict(st)
    cluster = LocalCluster(Path(st.state_dir))
    data["forge"] = forge_info(cluster, st)
    data["registry"] = registry_info(cluster, st)
    return data


def registry_info(cluster: LocalCluster, st: ClusterState) -> dict[str, str]:
    """Where the local registry is and where it sends its notifications: ``url``, ``host`` (the registry
    part of image references), ``notify_url`` and ``token_file`` (the file holding the bearer token it
    sends; never the token itself). Empty values when the cluster has no registry."""
    if not st.registry and not st.registry_url:
        return {"url": "", "host": "", "notify_url": "", "token_file": ""}
    return {
        "url": st.registry_url,
        "host": st.registry_url.removeprefix("http://"),
        "notify_url": st.registry_notify_url,
        "token_file": str(cluster.registry_files().hook_token),
    }
