"""Scale benchmark: N environments x 10 apps on a real local control plane and NATS started for the run.

The repository is generated: environment ``e<i>`` has its own namespace and ``--apps`` apps (default 10),
each a ConfigMap, a Service and a Deployment (30 objects per environment). For each N of ``--envs``
(default 10,30,100) it measures, with real ``reconciler run`` processes:

* **one replica**: the first full reconcile (daemon start until every environment has applied its
  revision, from ``/api/status``) and until every environment's health is judged; then a no-op pass of
  every environment (asked for on NATS, so a full pass, not a watch-verified one) and the API server's
  write requests meanwhile (``apiserver_request_total`` of configmaps, services, deployments and
  namespaces, verbs APPLY/PATCH/POST/PUT/DELETE, not dry-run: the goal is 0); peak RSS of the daemon
  (``VmHWM``); CPU of the idle daemon over ``--idle`` seconds;
* **``--replicas`` sharded replicas** (``--shard``, default 3) on a fresh copy of the repository (new
  namespaces): the first full reconcile.

Anchor: Flux's published scaling benchmark, 1000 Kustomizations reconciled in 4m16s with 175 MiB on a
16-core runner, i.e. 0.256 s per Kustomization; here each app is compared with one Kustomization
(``s_per_app / 0.256``; below 1 is faster). The numbers are indicative: the machine running it may be
small and shared.

Usage:
    .venv/bin/python bench/scale/bench_scale.py [--envs 10,30,100] [--apps 10] [--replicas 3]
        [--idle 30] [--json results.json]

Everything binds to 127.0.0.1; the run is bounded (``--deadline`` seconds) and every process it started
is stopped at the end, also on an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from reconciler.bus import Bus, reconcile_request_subject  # noqa: E402
from reconciler.cluster.client import KubeClient  # noqa: E402
from reconciler.cluster.crds import install_crds  # noqa: E402
from reconciler.devcluster import LocalCluster  # noqa: E402
from reconciler.devcluster.binaries import ensure_binaries  # noqa: E402
from reconciler.source.bootstrap import init_repo_with_remote  # noqa: E402

FLUX_SECONDS_PER_KUSTOMIZATION = 256.0 / 1000  # 1000 Kustomizations in 4m16s
FLUX_MIB = 175.0
TICKS = os.sysconf("SC_CLK_TCK")
WRITE_VERBS = {"APPLY", "PATCH", "POST", "PUT", "DELETE"}
OUR_RESOURCES = {"configmaps", "services", "deployments", "namespaces"}
RECONCILER = Path(sys.executable).parent / "reconciler"


def cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and its waited-for children, seconds (proc(5))."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return sum(int(fields[i]) for i in (11, 12, 13, 14)) / TICKS


def peak_rss_mib(pid: int) -> float:
    """``VmHWM`` of ``pid`` (peak resident set), MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def status(port: int) -> list[dict[str, Any]]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/status", timeout=20) as resp:
        data: list[dict[str, Any]] = json.loads(resp.read())
        return data


def generate(src: Path, prefix: str, n: int, apps: int) -> list[str]:
    """``n`` environments ``<prefix><i>``, each its own namespace with ``apps`` x (ConfigMap, Service,
    Deployment)."""
    names = []
    for i in range(n):
        name = f"{prefix}{i:03d}"
        names.append(name)
        (src / "envs").mkdir(parents=True, exist_ok=True)
        (src / "envs" / f"{name}.yaml").write_text(
            f"overlay: overlays/{name}\nnamespace: {name}\nsync: {{interval: 600}}\nhealth: {{timeout: 60}}\n"
        )
        d = src / "overlays" / name
        d.mkdir(parents=True, exist_ok=True)
        files = ["ns.yaml"] + [f"app{a}.yaml" for a in range(apps)]
        (d / "kustomization.yaml").write_text(
            f"namespace: {name}\nresources:\n" + "".join(f"- {f}\n" for f in files)
        )
        (d / "ns.yaml").write_text(f"apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n")
        for a in range(apps):
            app = f"app{a}"
            (d / f"{app}.yaml").write_text(
                f"apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: {app}}}\n"
                "data: {greeting: hello}\n---\n"
                f"apiVersion: v1\nkind: Service\nmetadata: {{name: {app}}}\n"
                f"spec: {{selector: {{app: {app}}}, ports: [{{port: 80, targetPort: 8080}}]}}\n---\n"
                f"apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {app}}}\n"
                f"spec:\n  replicas: 1\n  selector: {{matchLabels: {{app: {app}}}}}\n"
                f"  template:\n    metadata: {{labels: {{app: {app}}}}}\n"
                f"    spec: {{containers: [{{name: {app}, image: registry.example/{app}:1.0.0}}]}}\n"
            )
    return names


_SAMPLE = re.compile(r"^apiserver_request_total\{([^}]*)\} ([0-9.e+]+)$")


def apiserver_writes(client: KubeClient) -> float:
    """Write requests the API server has served for the benchmark's kinds (its /metrics)."""
    resp = client._send("GET", "/metrics", {"Accept": "text/plain"}, None, 30)
    total = 0.0
    for line in resp.read().decode().splitlines():
        m = _SAMPLE.match(line)
        if not m:
            continue
        labels = dict(kv.split("=", 1) for kv in re.findall(r'[a-z_]+="[^"]*"', m.group(1)))
        labels = {k: v.strip('"') for k, v in labels.items()}
        if (
            labels.get("verb") in WRITE_VERBS
            and labels.get("resource") in OUR_RESOURCES
            and not labels.get("subresource")
            and not labels.get("dry_run")
        ):
            total += float(m.group(2))
    return total


class Daemon:
    def __init__(self, remote: Path, state: Any, work: Path, name: str, shard: bool) -> None:
        self.port = free_port()
        cmd = [
            str(RECONCILER),
            "run",
            "--repo",
            str(remote),
            "--kubeconfig",
            state.kubeconfig,
            "--nats",
            state.nats_url,
            "--http",
            f"127.0.0.1:{self.port}",
        ]
        if shard:
            cmd += ["--shard", "--replica-id", name]
        self.log = open(work / f"{name}.log", "w")  # noqa: SIM115
        env = {
            **os.environ,
            "RECONCILER_CACHE_DIR": str(work / f"cache-{name}"),
            "RECONCILER_WATCH_LOCAL": "false",
        }
        self.proc = subprocess.Popen(
            cmd, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True, env=env
        )

    def rows(self) -> list[dict[str, Any]]:
        try:
            return status(self.port)
        except OSError:
            return []

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def wait_applied(daemons: list[Daemon], names: list[str], deadline: float) -> float:
    """Seconds until every environment has applied its revision on some replica."""
    t0 = time.monotonic()
    while time.monotonic() < deadline:
        done = {r["name"] for d in daemons for r in d.rows() if r.get("revision") and r.get("ok")}
        if set(names) <= done:
            return time.monotonic() - t0
        for d in daemons:
            if d.proc.poll() is not None:
                raise SystemExit(f"a daemon exited ({d.proc.returncode}); see {d.log.name}")
        time.sleep(0.5)
    raise SystemExit("environments not applied before the deadline")


async def request_all(url: str, names: list[str]) -> None:
    bus = Bus(url, name="bench-scale")
    await bus.connect()
    try:
        for n in names:
            await bus.publish(reconcile_request_subject(n), b"{}")
    finally:
        await bus.close()


def one_size(n: int, args: argparse.Namespace, state: Any, root: Path, deadline: float) -> dict[str, Any]:
    client = KubeClient(Path(state.kubeconfig))
    out: dict[str, Any] = {"environments": n, "apps": n * args.apps, "objects": n * (1 + 3 * args.apps)}
    # one replica
    work = root / f"single-{n}"
    src = work / "src"
    names = generate(src, f"s{n}x", n, args.apps)
    remote, _ = init_repo_with_remote(src, work / "repo")
    daemon = Daemon(remote, state, work, "single", shard=False)
    try:
        first = wait_applied([daemon], names, deadline)
        out["first_full_seconds"] = round(first, 1)
        # the health gates of the first passes run in the daemon's worker threads: the no-op round is
        # measured once they have all settled (every environment judged, none Progressing)
        t0 = time.monotonic()
        while time.monotonic() < deadline:
            rows = daemon.rows()
            if rows and all(
                r.get("health") not in ("", "Progressing") and not r.get("running") for r in rows
            ):
                break
            time.sleep(1.0)
        out["health_settled_seconds"] = round(first + time.monotonic() - t0, 1)
        time.sleep(3)
        before = {r["name"]: r.get("passes", 0) for r in daemon.rows()}
        writes0 = apiserver_writes(client)
        t0 = time.monotonic()
        asyncio.run(request_all(state.nats_url, names))
        while time.monotonic() < deadline:
            rows = {r["name"]: r for r in daemon.rows()}
            if all(rows.get(x, {}).get("passes", 0) > before.get(x, 0) for x in names):
                break
            time.sleep(0.3)
        out["noop_all_seconds"] = round(time.monotonic() - t0, 1)
        time.sleep(1.0)
        out["noop_writes"] = int(apiserver_writes(client) - writes0)
        out["noop_all_ok"] = all(r.get("ok") for r in daemon.rows())
        time.sleep(5)
        c0, w0 = cpu_seconds(daemon.proc.pid), time.monotonic()
        time.sleep(args.idle)
        out["idle_cpu_share_of_one_core"] = round(
            (cpu_seconds(daemon.proc.pid) - c0) / (time.monotonic() - w0), 4
        )
        out["peak_rss_mib"] = round(peak_rss_mib(daemon.proc.pid), 1)
    finally:
        daemon.stop()
    # sharded replicas, fresh environments
    work = root / f"sharded-{n}"
    src = work / "src"
    names = generate(src, f"r{n}x", n, args.apps)
    remote, _ = init_repo_with_remote(src, work / "repo")
    replicas = [Daemon(remote, state, work, f"replica-{i}", shard=True) for i in range(args.replicas)]
    try:
        out[f"first_full_seconds_{args.replicas}_replicas"] = round(
            wait_applied(replicas, names, deadline), 1
        )
        out[f"peak_rss_mib_{args.replicas}_replicas_max"] = round(
            max(peak_rss_mib(d.proc.pid) for d in replicas), 1
        )
    finally:
        for d in replicas:
            d.stop()
    client.close()
    per_app = out["first_full_seconds"] / out["apps"]
    out["seconds_per_app"] = round(per_app, 4)
    out["ratio_to_flux_per_kustomization"] = round(per_app / FLUX_SECONDS_PER_KUSTOMIZATION, 3)
    out["rss_ratio_to_flux"] = round(out["peak_rss_mib"] / FLUX_MIB, 3)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", default="10,30,100", help="comma-separated environment counts")
    ap.add_argument("--apps", type=int, default=10)
    ap.add_argument("--replicas", type=int, default=3)
    ap.add_argument("--idle", type=float, default=30.0, help="seconds the idle daemon is measured")
    ap.add_argument("--deadline", type=float, default=3600.0, help="seconds for the whole run")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    deadline = time.monotonic() + args.deadline
    bins = ensure_binaries(quiet=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-scale-") as tmp:
        root = Path(tmp)
        cluster = LocalCluster(root / "cluster", nodes=2)
        try:
            state = cluster.up(progress=lambda _m: None, binaries=bins)
            client = KubeClient(Path(state.kubeconfig))
            install_crds(client)
            client.close()
            for n in (int(x) for x in args.envs.split(",")):
                results.append(one_size(n, args, state, root, deadline))
                print(json.dumps(results[-1]), flush=True)
        finally:
            cluster.down(progress=lambda _m: None)
    for r in results:
        print(
            f"SCALE {r['environments']} environments x {args.apps} apps ({r['objects']} objects): first full "
            f"reconcile {r['first_full_seconds']} s with 1 replica, "
            f"{r[f'first_full_seconds_{args.replicas}_replicas']} s with {args.replicas}; "
            f"{r['seconds_per_app']} s per app = {r['ratio_to_flux_per_kustomization']} x Flux's 0.256 s per "
            f"Kustomization; no-op pass of all in {r['noop_all_seconds']} s with {r['noop_writes']} writes; "
            f"peak RSS {r['peak_rss_mib']} MiB ({r['rss_ratio_to_flux']} x Flux's 175 MiB); idle "
            f"{r['idle_cpu_share_of_one_core']:.2%} of one core"
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["noop_writes"] == 0 for r in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
