"""Scale benchmark: one daemon (``--replicas 1``) reconciling a generated environment repository of
``N`` environments x ``--apps`` applications, on a real local control plane and NATS, for a curve of
``N`` (default 10, 30, 100; ``--with-300`` adds 300).

Each environment ``s<N>-e<i>`` has its own namespace and, per application, a Deployment (``--pods``
replicas, run by kwok), a Service, a ConfigMap and a ServiceAccount; plus one kagent ``RemoteMCPServer``
and one ``Agent`` that uses it: with ``--apps 10``, 42 objects and the Namespace. ``sync.interval`` is
``--interval`` (default 600 s, so that no poll falls into the measurement).

Measured per ``N``, with a new ``reconciler run`` process per replica (``--http`` on loopback, NATS):

1. **first full reconcile**: wall seconds from starting the daemon until every environment's status
   (``GET /api/status``, the daemon's public API) shows the repository's head as applied ``revision``;
   also until every health gate settled (a verdict other than ``''``/``Progressing``, or the gate's
   outcome), waited for at most ``--settle-limit`` seconds (``None`` when it did not happen);
2. **idle CPU**: after ``--settle`` seconds, CPU seconds of the daemon (and the ``git`` children it waited
   for) over ``--idle-seconds``, from ``/proc/<pid>/stat``, as a share of one core;
3. **no-op pass**: a ``reconciler.reconcile.request.<env>`` for every environment on NATS (as
   ``reconciler sync`` sends), wall seconds until every environment finished one more pass, and the
   write requests it made, counted by the API server: ``apiserver_request_total`` of its ``/metrics``,
   verbs POST/PUT/PATCH/APPLY/DELETE/DELETECOLLECTION, not dry-run, on the resources the environments
   use plus ConfigMaps (inventories), no subresource; the same count over the idle window before is
   printed as the background (controllers); the daemon's ``reconciler_object_changes_total`` too;
4. **peak RSS** of the daemon: ``VmHWM`` of ``/proc/<pid>/status`` at the end (the ``git`` children are
   not included).

Where the time goes: per phase, the API server's requests by verb and their mean latency
(``apiserver_request_duration_seconds`` sum / count deltas), the API server's CPU seconds (when the bench
knows its pid), and the daemon's pass durations (``reconciler_reconcile_duration_seconds`` sum / count);
for the first reconcile also the whole machine's CPU (``/proc/stat``: how busy its CPUs were, and the share
a virtual machine's host took as steal) split into the daemons, each process of the local cluster and the
rest, which tells whether the CPU, and whose, bounds the run.

Targets (issue 19, at 100 environments x 10 apps ≈ 4,000 objects; printed as pass/fail lines, never
asserted): first full reconcile ≤ 60 s, no-op pass ≤ 10 s with 0 writes, peak RSS ≤ 250 MiB, idle CPU
< 5 % of a core. Anchor: Flux's published benchmark, 1000 Kustomizations in 4 m 16 s (0.256 s each)
with 175 MiB on a 16-core runner: the printed ratio is our seconds per environment over its seconds per
Kustomization (below 1 is faster).

Replicas: ``--replicas N`` starts N daemon processes on the same repository, NATS and cluster, each
with the arguments of ``--replica-args`` formatted with ``{index}`` (0-based) and ``{count}`` (e.g.
``--replica-args '--shard --replica-id r{index}'`` once the daemon has its sharding flag); the status of an
environment is taken from the replica that reports the most passes of it; RSS and CPU are per replica
(maximum and sum printed).

Usage:
    PYTHONPATH=. .venv/bin/python bench/scale/bench_scale.py [--envs 10,30,100] [--with-300] [--apps 10]
        [--replicas 1] [--replica-args ARGS] [--state-dir D] [--idle-seconds 30] [--json out.json]

Without ``--state-dir`` the bench starts its own local cluster in a temporary directory, with enough kwok
nodes for every pod of the largest point (200 a node; a Deployment whose pods cannot be scheduled would
keep its environment's health gate polling until its timeout), and stops it at the end; with it, it uses
the running cluster there (``reconciler cluster up --state-dir D --nodes K``), leaving it running, and
refuses to start when its nodes take too few pods. Each ``N`` deletes its namespaces when done.
Everything binds to 127.0.0.1; the run is bounded by ``--deadline`` seconds.

Exit status: 0 every target met, 1 a target missed, 2 the run could not be done.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
TICKS = os.sysconf("SC_CLK_TCK")

TARGET_ENVS = 100
TARGETS = {"first_seconds": 60.0, "noop_seconds": 10.0, "rss_mib": 250.0, "idle_cpu_share": 0.05}
FLUX = {"kustomizations": 1000, "seconds": 256.0, "rss_mib": 175.0, "cores": 16}
WRITE_VERBS = {"POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION", "CREATE", "UPDATE"}
#: verbs whose "latency" is the life of a stream, left out of the request latencies
LONG_RUNNING = {"WATCH", "CONNECT"}
#: the resources an environment's objects use, and ConfigMaps (also the inventories)
OUR_RESOURCES = {
    "namespaces",
    "deployments",
    "services",
    "configmaps",
    "serviceaccounts",
    "agents",
    "remotemcpservers",
}

# -- the environment repository --------------------------------------------------------------------


def env_names(n: int, run: str) -> list[str]:
    """The environment names of the ``n``-environment point of run ``run``: ``s<n>-<run>-e000`` … (new
    names each run: a namespace of an earlier run may still be terminating, its inventory held by that
    run's repository)."""
    return [f"s{n}-{run}-e{i:03d}" for i in range(n)]


def generate_repo(src: Path, names: list[str], apps: int, *, interval: int, pods: int) -> int:
    """Write ``envs/`` and ``overlays/`` of the environments ``names`` x ``apps`` applications under
    ``src``; environment ``x`` deploys into namespace ``scale-x``.

    Returns the number of objects per environment (the Namespace included)."""
    (src / "envs").mkdir(parents=True, exist_ok=True)
    for name in names:
        ns = f"scale-{name}"
        (src / "envs" / f"{name}.yaml").write_text(
            f"overlay: overlays/{name}\nnamespace: {ns}\n"
            f"sync: {{interval: {interval}, prune: true, drift: correct}}\n"
            "health: {timeout: 60, noControllerAfter: 5}\n"
        )
        d = src / "overlays" / name
        d.mkdir(parents=True, exist_ok=True)
        files = ["namespace.yaml", "agent.yaml"] + [f"app-{a:02d}.yaml" for a in range(apps)]
        (d / "kustomization.yaml").write_text(
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
            f"namespace: {ns}\nresources:\n" + "".join(f"- {f}\n" for f in files)
        )
        (d / "namespace.yaml").write_text(f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n")
        (d / "agent.yaml").write_text(
            "apiVersion: kagent.dev/v1alpha2\nkind: RemoteMCPServer\nmetadata:\n  name: tools\n"
            "spec:\n  description: the environment's tools\n  protocol: STREAMABLE_HTTP\n"
            "  url: http://app-00.NS.svc.cluster.local:8080/mcp\n  timeout: 30s\n".replace("NS", ns)
            + "---\napiVersion: kagent.dev/v1alpha2\nkind: Agent\nmetadata:\n  name: helper\n"
            "spec:\n  type: Declarative\n  description: answers questions with the tools\n"
            "  declarative:\n    modelConfig: default-model\n    systemMessage: You help.\n"
            "    tools:\n    - type: McpServer\n      mcpServer:\n        apiGroup: kagent.dev\n"
            "        kind: RemoteMCPServer\n        name: tools\n        toolNames: [echo]\n"
        )
        for a in range(apps):
            app = f"app-{a:02d}"
            (d / f"app-{a:02d}.yaml").write_text(
                f"apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: {app}\n---\n"
                f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {app}-config\n"
                f"data:\n  APP: {app}\n  LOG_LEVEL: info\n---\n"
                f"apiVersion: v1\nkind: Service\nmetadata:\n  name: {app}\n"
                f"spec:\n  selector: {{app: {app}}}\n  ports:\n  - {{port: 8080, targetPort: 8080}}\n---\n"
                f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {app}\n"
                f"spec:\n  replicas: {pods}\n  selector:\n    matchLabels: {{app: {app}}}\n"
                f"  template:\n    metadata:\n      labels: {{app: {app}}}\n    spec:\n"
                f"      serviceAccountName: {app}\n      containers:\n      - name: app\n"
                f"        image: registry.example/{app}:1.0.0\n"
                f"        envFrom:\n        - configMapRef: {{name: {app}-config}}\n"
                "        ports:\n        - containerPort: 8080\n"
            )
    return 3 + 4 * apps


# -- measuring -------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and of its waited-for children, in seconds (proc(5) ``stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def machine_cpu() -> tuple[float, float, float]:
    """CPU seconds of the whole machine since boot, summed over its CPUs: ``(busy, steal, all)``, where
    busy is user, nice, system, irq and softirq time, and steal the time a virtual machine's CPUs waited
    for the host (proc(5) ``/proc/stat``, first line)."""
    f = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]] + [0] * 8
    busy = f[0] + f[1] + f[2] + f[5] + f[6]
    return busy / TICKS, f[7] / TICKS, sum(f[:8]) / TICKS


def processes_cpu(pids: dict[str, int]) -> dict[str, float]:
    """:func:`cpu_seconds` of each named process that is still there."""
    out: dict[str, float] = {}
    for name, pid in pids.items():
        with contextlib.suppress(OSError, IndexError, ValueError):
            out[name] = cpu_seconds(pid)
    return out


def where_cpu_went(
    m0: tuple[float, float, float],
    m1: tuple[float, float, float],
    p0: dict[str, float],
    p1: dict[str, float],
    daemons: float,
) -> dict[str, Any]:
    """The machine's CPU over a phase: how busy its CPUs were, the share the host took (steal), and the
    CPU seconds of the daemons, of each local-cluster process and of everything else (the bench itself,
    git, the kernel)."""
    busy, steal, total = (m1[i] - m0[i] for i in range(3))
    parts = {name: round(p1[name] - p0[name], 2) for name in sorted(p1) if name in p0}
    parts = {k: v for k, v in sorted(parts.items(), key=lambda kv: -kv[1]) if v > 0}
    return {
        "busy_share": round(busy / total, 3) if total > 0 else None,
        "steal_share": round(steal / total, 3) if total > 0 else None,
        "busy_cpu_seconds": round(busy, 2),
        "daemons_cpu_seconds": round(daemons, 2),
        "cluster_cpu_seconds": parts,
        "other_cpu_seconds": round(busy - daemons - sum(parts.values()), 2),
    }


def _share(value: float | None) -> str:
    return "?" if value is None else f"{value:.0%}"


def peak_rss_mib(pid: int) -> float:
    """``VmHWM`` (peak resident set size) of ``pid``, MiB (proc(5) ``status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_metrics(text: str, names: set[str]) -> list[tuple[str, dict[str, str], float]]:
    """The samples of ``names`` in a Prometheus text exposition: ``(name, labels, value)``."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = _SAMPLE.match(line)
        if m is None or m.group(1) not in names:
            continue
        labels = dict(_LABEL.findall(m.group(2) or ""))
        try:
            out.append((m.group(1), labels, float(m.group(3))))
        except ValueError:
            continue
    return out


@dataclass
class ApiSnapshot:
    """Counters of the API server's ``/metrics`` at one moment."""

    writes_ours: float = 0.0
    writes_all: float = 0.0
    requests: dict[str, float] = field(default_factory=dict)  # by verb
    by_resource: dict[str, float] = field(default_factory=dict)  # by "VERB resource[/subresource]"
    latency_sum: dict[str, float] = field(default_factory=dict)  # seconds, by verb
    latency_count: dict[str, float] = field(default_factory=dict)
    cpu: float | None = None


def api_snapshot(client: Any, apiserver_pid: int | None) -> ApiSnapshot:
    """Read the API server's ``/metrics`` (with the bench's admin credentials) and its CPU seconds."""
    resp = client._send("GET", "/metrics", {"Accept": "text/plain"}, None, 60.0)
    text = resp.read().decode()
    snap = ApiSnapshot()
    requests: dict[str, float] = defaultdict(float)
    lsum: dict[str, float] = defaultdict(float)
    lcount: dict[str, float] = defaultdict(float)
    by_resource: dict[str, float] = defaultdict(float)
    names = {
        "apiserver_request_total",
        "apiserver_request_duration_seconds_sum",
        "apiserver_request_duration_seconds_count",
    }
    for name, labels, value in parse_metrics(text, names):
        verb = labels.get("verb", "")
        if name == "apiserver_request_total":
            requests[verb] += value
            sub = labels.get("subresource", "")
            by_resource[f"{verb} {labels.get('resource', '') or '-'}{'/' + sub if sub else ''}"] += value
            if verb in WRITE_VERBS and not labels.get("dry_run"):
                snap.writes_all += value
                if labels.get("resource") in OUR_RESOURCES and not labels.get("subresource"):
                    snap.writes_ours += value
        elif name.endswith("_sum"):
            lsum[verb] += value
        else:
            lcount[verb] += value
    snap.requests, snap.latency_sum, snap.latency_count = dict(requests), dict(lsum), dict(lcount)
    snap.by_resource = dict(by_resource)
    if apiserver_pid:
        try:
            snap.cpu = cpu_seconds(apiserver_pid)
        except OSError:
            snap.cpu = None
    return snap


def api_delta(a: ApiSnapshot, b: ApiSnapshot) -> dict[str, Any]:
    """What the API server did between two snapshots: requests and mean latency (ms) by verb."""
    verbs = {}
    for verb in sorted(b.requests):
        n = b.requests[verb] - a.requests.get(verb, 0.0)
        if n <= 0 or verb in LONG_RUNNING:
            continue
        count = b.latency_count.get(verb, 0.0) - a.latency_count.get(verb, 0.0)
        total = b.latency_sum.get(verb, 0.0) - a.latency_sum.get(verb, 0.0)
        verbs[verb] = {
            "requests": int(n),
            "mean_ms": round(total / count * 1000, 1) if count > 0 else None,
            "total_seconds": round(total, 2),
        }
    top = sorted(
        ((k, int(v - a.by_resource.get(k, 0.0))) for k, v in b.by_resource.items()),
        key=lambda kv: -kv[1],
    )
    return {
        "top_requests": {k: v for k, v in top[:8] if v > 0},
        "writes_ours": int(b.writes_ours - a.writes_ours),
        "writes_all": int(b.writes_all - a.writes_all),
        "by_verb": verbs,
        "apiserver_cpu_seconds": round(b.cpu - a.cpu, 2) if a.cpu is not None and b.cpu is not None else None,
    }


def http_get(port: int, path: str) -> bytes:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=30) as resp:
        data: bytes = resp.read()
        return data


def daemon_counters(ports: list[int]) -> dict[str, float]:
    """Sums over the replicas' ``/metrics``: object changes, pass duration sum and count."""
    out: dict[str, float] = defaultdict(float)
    names = {
        "reconciler_object_changes_total",
        "reconciler_reconcile_duration_seconds_sum",
        "reconciler_reconcile_duration_seconds_count",
    }
    for port in ports:
        for name, _labels, value in parse_metrics(http_get(port, "/metrics").decode(), names):
            out[name] += value
    return dict(out)


def counters_delta(a: dict[str, float], b: dict[str, float]) -> dict[str, Any]:
    n = b.get("reconciler_reconcile_duration_seconds_count", 0.0) - a.get(
        "reconciler_reconcile_duration_seconds_count", 0.0
    )
    s = b.get("reconciler_reconcile_duration_seconds_sum", 0.0) - a.get(
        "reconciler_reconcile_duration_seconds_sum", 0.0
    )
    return {
        "passes": int(n),
        "pass_seconds_total": round(s, 2),
        "pass_seconds_mean": round(s / n, 3) if n > 0 else None,
        "object_changes": int(
            b.get("reconciler_object_changes_total", 0.0) - a.get("reconciler_object_changes_total", 0.0)
        ),
    }


#: Seconds between two reads of every replica's ``/api/status`` while waiting: the reads are work the
#: replicas do for the bench (each summarises every environment), so they are kept few; the first
#: reconcile is therefore measured to within this.
STATUS_POLL_SECONDS = 0.5


def merged_status(ports: list[int]) -> dict[str, dict[str, Any]]:
    """Per environment, the status entry of the replica reporting the most passes of it."""
    best: dict[str, dict[str, Any]] = {}
    for port in ports:
        try:
            entries = json.loads(http_get(port, "/api/status"))
        except OSError:
            continue
        for e in entries:
            if e["name"] not in best or e.get("passes", 0) > best[e["name"]].get("passes", 0):
                best[e["name"]] = e
    return best


async def request_passes(nats_url: str, names: list[str]) -> None:
    """Publish ``reconciler.reconcile.request.<env>`` for every environment (as ``reconciler sync``)."""
    from reconciler.bus import Bus, reconcile_request_subject

    bus = Bus(nats_url, name="bench-scale")
    await bus.connect()
    try:
        for name in names:
            await bus.publish(reconcile_request_subject(name), json.dumps({"environment": name}).encode())
    finally:
        await bus.close()


# -- one point of the curve ------------------------------------------------------------------------


@dataclass
class Cluster:
    kubeconfig: Path
    nats_url: str
    apiserver_pid: int | None
    pids: dict[str, int] = field(default_factory=dict)  # every process of the local cluster, by name


def start_replicas(
    args: argparse.Namespace, remote: Path, work: Path, cluster: Cluster
) -> tuple[list[subprocess.Popen[bytes]], list[int], list[Any]]:
    procs, ports, logs = [], [], []
    for i in range(args.replicas):
        port = free_port()
        extra = args.replica_args.format(index=i, count=args.replicas).split() if args.replica_args else []
        cmd = [
            sys.executable,
            "-m",
            "reconciler",
            "run",
            "--repo",
            str(remote),
            "--kubeconfig",
            str(cluster.kubeconfig),
            "--nats",
            cluster.nats_url,
            "--http",
            f"127.0.0.1:{port}",
            "--log-level",
            "WARNING",
            *extra,
        ]
        log = open(work / f"daemon-{i}.log", "w")  # noqa: SIM115
        env = {
            **os.environ,
            "PYTHONPATH": str(ROOT),
            "RECONCILER_CACHE_DIR": str(work / f"cache-{i}"),
        }
        env.pop("RECONCILER_PROBE_ADDRESSES", None)
        procs.append(
            subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
        )
        ports.append(port)
        logs.append(log)
    return procs, ports, logs


def stop_replicas(procs: list[subprocess.Popen[bytes]], logs: list[Any]) -> None:
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    for p in procs:
        try:
            p.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    for log in logs:
        log.close()


def wait_until(
    ports: list[int],
    procs: list[subprocess.Popen[bytes]],
    names: list[str],
    done: Any,
    deadline: float,
    what: str,
) -> dict[str, dict[str, Any]]:
    status: dict[str, dict[str, Any]] = {}
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"a daemon replica exited ({p.returncode}) while waiting for {what}")
        status = merged_status(ports)
        if all(n in status and done(status[n]) for n in names):
            return status
        failed = {
            n: status[n].get("error", "") for n in names if n in status and status[n].get("ok") is False
        }
        if failed:
            name, error = next(iter(failed.items()))
            raise RuntimeError(f"{what}: {len(failed)} environments failed their pass, e.g. {name}: {error}")
        time.sleep(STATUS_POLL_SECONDS)
    missing = [n for n in names if n not in status or not done(status[n])]
    sample = {n: status.get(n) for n in missing[:3]}
    raise RuntimeError(f"{what}: {len(missing)} environments not done before the deadline, e.g. {sample}")


def wait_namespaces_gone(client: Any, namespaces: list[str], limit: float) -> float | None:
    """Wait up to ``limit`` seconds until none of ``namespaces`` exists (so that the next point of the
    curve does not share the API server with their deletion); the seconds it took, ``None`` if it did
    not happen in time."""
    t0 = time.monotonic()
    wanted = set(namespaces)
    while time.monotonic() - t0 < limit:
        items, _ = client.list("", "v1", "Namespace")
        if not wanted & {i["metadata"]["name"] for i in items}:
            return round(time.monotonic() - t0, 1)
        time.sleep(1.0)
    return None


def measure(
    n: int, args: argparse.Namespace, cluster: Cluster, root: Path, deadline: float, run: str
) -> dict[str, Any]:
    """One point of the curve: ``n`` environments, measured as the module docstring says.

    Raises:
        RuntimeError: a replica exited, a pass failed, or the deadline passed before a phase finished.
    """
    from reconciler.cluster.client import KubeClient
    from reconciler.cluster.inventory import InventoryStore
    from reconciler.model import ObjectRef
    from reconciler.source.bootstrap import init_repo_with_remote

    work = root / f"n{n}"
    src = work / "src"
    names = env_names(n, run)
    per_env = generate_repo(src, names, args.apps, interval=args.interval, pods=args.pods)
    remote, _ = init_repo_with_remote(src, work / "repo", include=("envs", "overlays"))
    head = subprocess.run(
        ["git", "-C", str(remote), "rev-parse", "main"], capture_output=True, text=True, check=True
    ).stdout.strip()
    client = KubeClient(cluster.kubeconfig)
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Any] = []
    try:
        a0 = api_snapshot(client, cluster.apiserver_pid)
        m0, pc0 = machine_cpu(), processes_cpu(cluster.pids)
        t0 = time.monotonic()
        procs, ports, logs = start_replicas(args, remote, work, cluster)
        cpu0 = [cpu_seconds(p.pid) for p in procs]
        wait_until(
            ports,
            procs,
            names,
            lambda e: str(e.get("revision", "")).endswith(head),
            deadline,
            "first full reconcile",
        )
        first = time.monotonic() - t0
        m1, pc1 = machine_cpu(), processes_cpu(cluster.pids)
        cpu1 = [cpu_seconds(p.pid) for p in procs]
        a1 = api_snapshot(client, cluster.apiserver_pid)
        c1 = daemon_counters(ports)
        try:  # every health gate settled: a verdict, or the gate's outcome (e.g. timed out)
            status = wait_until(
                ports,
                procs,
                names,
                lambda e: e.get("health") not in ("", "Progressing") or bool(e.get("gate")),
                min(deadline, time.monotonic() + args.settle_limit),
                "health verdicts",
            )
            settled: float | None = time.monotonic() - t0
        except RuntimeError as exc:
            if "deadline" not in str(exc):
                raise
            status, settled = merged_status(ports), None
        health: dict[str, int] = defaultdict(int)
        for e in status.values():
            health[str(e.get("health"))] += 1
        objects = sum(int(status[nm].get("objects", 0)) for nm in names)

        time.sleep(args.settle)  # idle: nothing to do until the next poll (sync.interval)
        passes0 = {nm: int(e.get("passes", 0)) for nm, e in merged_status(ports).items()}
        i0, w0 = api_snapshot(client, cluster.apiserver_pid), time.monotonic()
        icpu0 = [cpu_seconds(p.pid) for p in procs]
        time.sleep(args.idle_seconds)
        icpu1, w1 = [cpu_seconds(p.pid) for p in procs], time.monotonic()
        i1 = api_snapshot(client, cluster.apiserver_pid)
        passes1 = {nm: int(e.get("passes", 0)) for nm, e in merged_status(ports).items()}
        idle_passes = sum(passes1.get(nm, 0) - passes0.get(nm, 0) for nm in names)

        c2 = daemon_counters(ports)
        n0, t1 = api_snapshot(client, cluster.apiserver_pid), time.monotonic()
        asyncio.run(request_passes(cluster.nats_url, names))
        wait_until(
            ports,
            procs,
            names,
            lambda e: int(e.get("passes", 0)) > passes1.get(e["name"], 0),
            deadline,
            "no-op pass",
        )
        noop = time.monotonic() - t1
        n1 = api_snapshot(client, cluster.apiserver_pid)
        c3 = daemon_counters(ports)
        rss = [peak_rss_mib(p.pid) for p in procs]
        failed = [nm for nm, e in merged_status(ports).items() if nm in names and e.get("ok") is False]
    finally:
        stop_replicas(procs, logs)
        store = InventoryStore(client)
        for nm in names:  # leave the cluster as we found it (namespaces go in the background)
            try:
                client.delete(ObjectRef(kind="Namespace", name=f"scale-{nm}"))
                store.delete(nm)
            except Exception:  # best effort: the bench's own objects
                pass
        cleanup = wait_namespaces_gone(client, [f"scale-{nm}" for nm in names], args.cleanup_seconds)
        client.close()

    idle_wall = w1 - w0
    idle_cpu = sum(b - a for a, b in zip(icpu0, icpu1, strict=True))
    first_cpu = sum(b - a for a, b in zip(cpu0, cpu1, strict=True))
    first_api, idle_api, noop_api = api_delta(a0, a1), api_delta(i0, i1), api_delta(n0, n1)
    r: dict[str, Any] = {
        "envs": n,
        "apps": args.apps,
        "replicas": args.replicas,
        "objects_per_env": per_env,
        "objects": objects,
        "first_reconcile_seconds": round(first, 2),
        "first_reconcile_seconds_per_env": round(first / n, 4),
        "health_settled_seconds": round(settled, 2) if settled is not None else None,
        "health": dict(health),
        "first_daemon_cpu_seconds": round(first_cpu, 2),
        "first_daemon_cpu_share": round(first_cpu / first, 3),
        "first_machine": where_cpu_went(m0, m1, pc0, pc1, first_cpu),
        "first_api": first_api,
        "first_daemon": counters_delta({}, c1),
        "idle_seconds": round(idle_wall, 1),
        "idle_cpu_seconds": round(idle_cpu, 3),
        "idle_cpu_share": round(idle_cpu / idle_wall, 4),
        "idle_passes": idle_passes,
        "idle_api": idle_api,
        "noop_seconds": round(noop, 2),
        "noop_writes": noop_api["writes_ours"],
        "noop_writes_all_resources": noop_api["writes_all"],
        "background_writes_same_resources_idle": idle_api["writes_ours"],
        "noop_api": noop_api,
        "noop_daemon": counters_delta(c2, c3),
        "failed_envs": failed,
        "peak_rss_mib": round(max(rss), 1),
        "peak_rss_mib_per_replica": [round(x, 1) for x in rss],
        "cleanup_seconds": cleanup,
        "flux_ratio_per_env": round((first / n) / (FLUX["seconds"] / FLUX["kustomizations"]), 2),
    }
    r["targets"] = {
        "first_reconcile": r["first_reconcile_seconds"] <= TARGETS["first_seconds"],
        "noop_pass": r["noop_seconds"] <= TARGETS["noop_seconds"] and r["noop_writes"] == 0,
        "peak_rss": r["peak_rss_mib"] <= TARGETS["rss_mib"],
        "idle_cpu": r["idle_cpu_share"] < TARGETS["idle_cpu_share"],
    }
    return r


def report(r: dict[str, Any]) -> list[str]:
    """The human-readable lines of one point of the curve."""
    ok = r["targets"]
    scope = "" if r["envs"] <= TARGET_ENVS else f" (targets are for {TARGET_ENVS} environments)"

    def mark(b: bool) -> str:
        return "PASS" if b else "FAIL"

    per_flux = FLUX["seconds"] / FLUX["kustomizations"]
    lines = [
        f"SCALE {r['envs']} environments x {r['apps']} apps ({r['objects']} objects), "
        f"{r['replicas']} replica(s){scope}",
        f"  first full reconcile {r['first_reconcile_seconds']} s "
        f"(target ≤ {TARGETS['first_seconds']:.0f} s: "
        f"ratio {r['first_reconcile_seconds'] / TARGETS['first_seconds']:.2f}) "
        f"{mark(ok['first_reconcile'])}; "
        f"health settled at {r['health_settled_seconds']} s {r['health']}",
        f"  daemon CPU during it {r['first_daemon_cpu_seconds']} s ({r['first_daemon_cpu_share']:.0%} of one "
        f"core), API server CPU {r['first_api']['apiserver_cpu_seconds']} s",
        f"  machine during it: {_share(r['first_machine']['busy_share'])} of {os.cpu_count()} CPUs busy, "
        f"{_share(r['first_machine']['steal_share'])} taken by the host (steal); "
        f"CPU s: daemons {r['first_machine']['daemons_cpu_seconds']}, "
        + ", ".join(f"{k} {v}" for k, v in r["first_machine"]["cluster_cpu_seconds"].items())
        + f", other {r['first_machine']['other_cpu_seconds']}",
        f"  per environment {r['first_reconcile_seconds_per_env']} s vs Flux {per_flux:.3f} s per "
        f"Kustomization ({FLUX['cores']} cores): ratio {r['flux_ratio_per_env']}",
        f"  no-op pass {r['noop_seconds']} s, {r['noop_writes']} writes "
        f"(background on the same resources over the idle window: "
        f"{r['background_writes_same_resources_idle']}; daemon object changes "
        f"{r['noop_daemon']['object_changes']}) (target ≤ {TARGETS['noop_seconds']:.0f} s, 0 writes: ratio "
        f"{r['noop_seconds'] / TARGETS['noop_seconds']:.2f}) {mark(ok['noop_pass'])}",
        f"  peak RSS {r['peak_rss_mib']} MiB (target ≤ {TARGETS['rss_mib']:.0f}: ratio "
        f"{r['peak_rss_mib'] / TARGETS['rss_mib']:.2f}; Flux {FLUX['rss_mib']:.0f} MiB: ratio "
        f"{r['peak_rss_mib'] / FLUX['rss_mib']:.2f}) {mark(ok['peak_rss'])}",
        f"  idle CPU {r['idle_cpu_share']:.2%} of one core over {r['idle_seconds']} s, {r['idle_passes']} "
        f"passes (target < {TARGETS['idle_cpu_share']:.0%}) {mark(ok['idle_cpu'])}",
    ]
    for phase, api, daemon in (
        ("first", r["first_api"], r["first_daemon"]),
        ("no-op", r["noop_api"], r["noop_daemon"]),
    ):
        verbs = ", ".join(
            f"{v} {d['requests']}x{d['mean_ms']}ms" for v, d in api["by_verb"].items() if d["requests"]
        )
        lines.append(
            f"  {phase}: API server {verbs}; its CPU {api['apiserver_cpu_seconds']} s; daemon passes "
            f"{daemon['passes']} (sum {daemon['pass_seconds_total']} s, mean {daemon['pass_seconds_mean']} s)"
        )
    return lines


#: pods a kwok node of the local cluster takes (reconciler/devcluster/nodes.py), less some headroom
PODS_PER_NODE = 200


def pod_capacity(kubeconfig: Path) -> int:
    """The sum of the nodes' allocatable ``pods``."""
    from reconciler.cluster.client import KubeClient

    client = KubeClient(kubeconfig)
    try:
        nodes, _ = client.list("", "v1", "Node")
    finally:
        client.close()
    return sum(int(((n.get("status") or {}).get("allocatable") or {}).get("pods", 0)) for n in nodes)


def open_cluster(args: argparse.Namespace, root: Path, pods: int) -> tuple[Cluster, Any]:
    """The running cluster of ``--state-dir`` (and ``None``), or a new one (and its ``LocalCluster``) with
    enough kwok nodes for ``pods`` pods: a Deployment whose pods cannot be scheduled never becomes
    available, and its environment's health gate would wait out its timeout polling, which is a different
    measurement. An existing cluster with too few nodes is refused, saying so."""
    from reconciler.cluster.client import KubeClient
    from reconciler.cluster.crds import install_crds
    from reconciler.devcluster import LocalCluster

    if args.state_dir is not None:
        st = LocalCluster(args.state_dir).load_state()
        if st is None or not st.kubeconfig:
            raise RuntimeError(f"no running local cluster in {args.state_dir}")
        have = pod_capacity(Path(st.kubeconfig))
        if have < pods:
            raise RuntimeError(
                f"the cluster in {args.state_dir} takes {have} pods, the largest point needs {pods}: "
                f"start it with more nodes (reconciler cluster up --nodes {-(-pods // PODS_PER_NODE) + 1})"
            )
        return Cluster(Path(st.kubeconfig), st.nats_url, st.pids.get("kube-apiserver"), dict(st.pids)), None
    own = LocalCluster(root / "cluster", nodes=max(2, -(-pods // PODS_PER_NODE) + 1))
    st = own.up(progress=lambda _m: None)
    client = KubeClient(Path(st.kubeconfig))
    install_crds(client)
    client.close()
    return Cluster(Path(st.kubeconfig), st.nats_url, st.pids.get("kube-apiserver"), dict(st.pids)), own


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", default="10,30,100", help="comma-separated environment counts")
    ap.add_argument("--with-300", action="store_true", help="add 300 environments to the curve")
    ap.add_argument("--apps", type=int, default=10, help="applications per environment")
    ap.add_argument("--pods", type=int, default=1, help="replicas of each Deployment")
    ap.add_argument("--interval", type=int, default=600, help="sync.interval of every environment, seconds")
    ap.add_argument("--replicas", type=int, default=1, help="daemon processes")
    ap.add_argument(
        "--replica-args", default="", help="extra `reconciler run` arguments, {index} and {count} filled in"
    )
    ap.add_argument("--state-dir", type=Path, help="use the running local cluster there")
    ap.add_argument("--settle", type=float, default=5.0, help="seconds after convergence before idling")
    ap.add_argument("--idle-seconds", type=float, default=30.0)
    ap.add_argument(
        "--settle-limit",
        type=float,
        default=600.0,
        help="seconds to wait for the health gates after the first reconcile (then measured anyway)",
    )
    ap.add_argument(
        "--cleanup-seconds", type=float, default=180.0, help="wait for a point's namespaces to go, at most"
    )
    ap.add_argument("--deadline", type=float, default=3600.0, help="seconds for the whole run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    sizes = [int(x) for x in args.envs.split(",") if x.strip()] + ([300] if args.with_300 else [])
    if args.replicas > 1 and not args.replica_args:
        print(
            "bench/scale: --replicas > 1 needs --replica-args (the daemon's sharding flag, e.g. "
            "'--shard --replica-id r{index}'): N unsharded replicas would each reconcile everything",
            file=sys.stderr,
        )
        return 2
    sys.path.insert(0, str(ROOT))
    deadline = time.monotonic() + args.deadline
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        own = None
        try:
            cluster, own = open_cluster(args, root, max(sizes) * args.apps * args.pods)
            run = os.urandom(2).hex()
            for n in sizes:
                results.append(measure(n, args, cluster, root, deadline, run))
                print(json.dumps(results[-1]), flush=True)
        except Exception as exc:  # the run could not be done: say why
            print(f"bench/scale: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
        finally:
            if own is not None:
                own.down(progress=lambda _m: None)
    load = os.getloadavg()
    out = {"results": results, "loadavg": [round(x, 2) for x in load], "cpus": os.cpu_count()}
    for r in results:
        print("\n".join(report(r)))
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} CPUs (indicative)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    checked = [r for r in results if r["envs"] <= TARGET_ENVS]
    return 0 if all(all(r["targets"].values()) for r in checked) else 1


if __name__ == "__main__":
    raise SystemExit(main())
