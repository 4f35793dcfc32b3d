"""Apply-engine benchmark on a real local control plane started for the run (and stopped at the end).

1. No-op pass: ~1000 objects (Namespaces, ConfigMaps, Secrets, Services, Deployments, ServiceAccounts and
   kagent ModelConfig/RemoteMCPServer/Agent) in a few namespaces are applied once with our
   ResourceManager; then a pass over the unchanged set is measured (wall time, write calls, all API calls
   from ``KubeClient.calls``) against the named anchor ``kubectl apply --server-side -f`` of the same
   objects in the same run (its wall time; its API calls counted from its ``-v=6`` log lines).
   Goals: 0 writes, and at least 10x faster than kubectl.
2. Drift correction latency: the real ``reconciler.runtime.Daemon`` runs on a Git repository (bare remote)
   holding a subset; another field manager (``kubectl-edit``, a strategic merge patch as ``kubectl edit``
   sends) changes one managed field at a time, and a watch of our own measures edit -> restored.
   Goal: p95 <= 1 s.

Usage:
    .venv/bin/python bench/apply/bench_apply.py [--objects 1000] [--namespaces 4] [--edits 100]
        [--repeats 3] [--json results.json]

Everything binds to 127.0.0.1; the run is bounded (``--deadline`` seconds overall, 10 s per edit) and the
cluster is stopped at the end, also on Ctrl-C, SIGTERM or an error. Needs the binaries that
tools/controlplane/build.sh builds (Go is needed the first time).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import queue
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from ruamel.yaml import YAML  # noqa: E402

from reconciler.cluster.client import KubeClient  # noqa: E402
from reconciler.cluster.crds import install_crds  # noqa: E402
from reconciler.cluster.manager import ResourceManager, prepare  # noqa: E402
from reconciler.devcluster import LocalCluster  # noqa: E402
from reconciler.devcluster.binaries import ensure_binaries  # noqa: E402
from reconciler.model import Action, ObjectRef, PassResult  # noqa: E402
from reconciler.runtime import Daemon  # noqa: E402
from reconciler.settings import DaemonSettings  # noqa: E402
from reconciler.source.bootstrap import commit_and_push, init_repo_with_remote  # noqa: E402

WRITE_VERBS = ("apply", "create", "update", "patch", "delete", "dry-run")
KUBECTL_WRITE_VERBS = ("POST", "PUT", "PATCH", "DELETE")
# kubectl -v=6 (klog) response lines: '"Response" verb="PATCH" url=...' (1.30+) or 'PATCH https://... 200 OK'
_KUBECTL_CALL = re.compile(r'"Response" verb="([A-Z]+)"|\] ([A-Z]+) https?://\S+ \d{3}')
GOAL_RATIO = 10.0
GOAL_P95 = 1.0
DRIFT_NS = "bench-drift"
EDIT_MANAGER = "kubectl-edit"

# objects per namespace, in this proportion (the rest of --objects are the Namespaces themselves)
MIX = {
    "ConfigMap": 0.24,
    "Secret": 0.16,
    "Service": 0.16,
    "Deployment": 0.16,
    "ServiceAccount": 0.12,
    "ModelConfig": 0.06,
    "RemoteMCPServer": 0.05,
    "Agent": 0.05,
}


class Deadline(Exception):
    """The run took longer than --deadline seconds."""


# -- objects ------------------------------------------------------------------------------------------


def _object(kind: str, ns: str, i: int, replicas: int) -> dict[str, Any]:
    name = f"{kind.lower()}-{i}"
    meta: dict[str, Any] = {"name": name, "namespace": ns, "labels": {"app.kubernetes.io/part-of": "bench"}}
    if kind == "ConfigMap":
        return {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": meta,
            "data": {"LOG_LEVEL": "info", "WORKERS": str(i % 8 + 1), "config.json": json.dumps({"i": i})},
        }
    if kind == "Secret":
        body: dict[str, Any] = (
            {"stringData": {"token": f"t-{i}"}}
            if i % 2
            else {"data": {"token": base64.b64encode(f"t-{i}".encode()).decode()}}
        )
        return {"apiVersion": "v1", "kind": "Secret", "metadata": meta, "type": "Opaque", **body}
    if kind == "Service":
        return {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": meta,
            "spec": {
                "selector": {"app": f"deployment-{i}"},
                "ports": [{"name": "http", "port": 80, "targetPort": 8080}],
            },
        }
    if kind == "Deployment":
        app = {"app": name}
        return {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": meta,
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": app},
                "template": {
                    "metadata": {"labels": app},
                    "spec": {
                        "containers": [
                            {
                                "name": "main",
                                "image": f"registry.example.test/mcp/server-{i}:1.0.{i}",
                                "ports": [{"containerPort": 8080}],
                                "env": [{"name": "PORT", "value": "8080"}],
                                "resources": {"requests": {"cpu": "100m", "memory": "64Mi"}},
                            }
                        ]
                    },
                },
            },
        }
    if kind == "ServiceAccount":
        return {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta}
    if kind == "ModelConfig":
        return {
            "apiVersion": "kagent.dev/v1alpha2",
            "kind": "ModelConfig",
            "metadata": meta,
            "spec": {
                "provider": "OpenAI",
                "model": "gpt-4o-mini",
                "apiKeySecret": "secret-0",
                "apiKeySecretKey": "token",
                "openAI": {"temperature": "0.2", "maxTokens": 1024 + i},
            },
        }
    if kind == "RemoteMCPServer":
        return {
            "apiVersion": "kagent.dev/v1alpha2",
            "kind": "RemoteMCPServer",
            "metadata": meta,
            "spec": {
                "description": f"tools {i}",
                "protocol": "STREAMABLE_HTTP",
                "url": f"http://service-{i}.{ns}.svc.cluster.local/mcp",
                "timeout": "30s",
            },
        }
    if kind == "Agent":
        return {
            "apiVersion": "kagent.dev/v1alpha2",
            "kind": "Agent",
            "metadata": meta,
            "spec": {
                "type": "Declarative",
                "description": f"agent {i}",
                "declarative": {
                    "modelConfig": f"modelconfig-{i}",
                    "systemMessage": "You answer questions.",
                    "tools": [
                        {
                            "type": "McpServer",
                            "mcpServer": {
                                "apiGroup": "kagent.dev",
                                "kind": "RemoteMCPServer",
                                "name": f"remotemcpserver-{i}",
                                "toolNames": ["search"],
                            },
                        }
                    ],
                },
            },
        }
    raise ValueError(kind)


def generate(total: int, namespaces: list[str], replicas: int) -> list[dict[str, Any]]:
    """``total`` objects: the Namespaces, then the kinds of :data:`MIX` spread evenly over them."""
    objects: list[dict[str, Any]] = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}} for ns in namespaces
    ]
    per_ns = max(len(MIX), (total - len(namespaces)) // len(namespaces))
    counts = {kind: max(1, int(per_ns * share)) for kind, share in MIX.items()}
    counts["ConfigMap"] += per_ns - sum(counts.values())  # round off into the ConfigMaps
    for ns in namespaces:
        for kind, n in counts.items():
            objects.extend(_object(kind, ns, i, replicas) for i in range(n))
    extra = total - len(objects)  # the remainder of the division, as ConfigMaps in the first namespace
    objects.extend(_object("ConfigMap", namespaces[0], 100000 + i, replicas) for i in range(extra))
    return objects


def write_manifest(objects: list[dict[str, Any]], path: Path) -> None:
    """All objects as one multi-document YAML file."""
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    with path.open("w") as f:
        yaml.dump_all(objects, f)


# -- measurements -------------------------------------------------------------------------------------


def kubectl_apply(kubectl: Path, kubeconfig: Path, manifest: Path, cache: Path) -> tuple[float, Counter[str]]:
    """One ``kubectl apply --server-side --force-conflicts -f manifest -v=6``: wall seconds and API calls
    by HTTP verb (counted from the ``-v=6`` response log lines).

    Raises:
        RuntimeError: kubectl failed (its last lines of output are in the message).
    """
    cmd = [
        str(kubectl),
        "apply",
        "--server-side",
        "--force-conflicts",  # Secret stringData is write-only, so co-owning it always conflicts
        "--field-manager=kubectl-bench",
        f"--kubeconfig={kubeconfig}",
        f"--cache-dir={cache}",
        "-f",
        str(manifest),
        "-v=6",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-5:])
        raise RuntimeError(f"kubectl apply failed ({proc.returncode}): {tail}")
    calls: Counter[str] = Counter()
    for line in proc.stderr.splitlines():
        m = _KUBECTL_CALL.search(line)
        if m:
            calls[m.group(1) or m.group(2)] += 1
    return wall, calls


def our_pass(manager: ResourceManager, objects: list[dict[str, Any]]) -> tuple[float, Counter[str], int]:
    """One apply pass over ``objects``: wall seconds, API calls by verb, and how many were not unchanged."""
    before = Counter(manager.client.calls)
    t0 = time.perf_counter()
    changes, _ = manager.apply_set(prepare(objects))
    wall = time.perf_counter() - t0
    calls = Counter(manager.client.calls)
    calls.subtract(before)
    return wall, +calls, len(changes.entries) - changes.count(Action.UNCHANGED)


def _watch_values(
    kubeconfig: Path,
    group: str,
    kind: str,
    stop: threading.Event,
    out: queue.Queue[tuple[str, str, str, float]],
) -> None:
    """Put ``(kind, name, value, monotonic time)`` for every change of a watched bench object in DRIFT_NS."""
    client = KubeClient(kubeconfig)
    try:
        while not stop.is_set():
            try:
                _items, rv = client.list(group, "v1", kind, namespace=DRIFT_NS)
                for etype, obj in client.watch(
                    group, "v1", kind, resource_version=rv, namespace=DRIFT_NS, timeout_seconds=60
                ):
                    if etype in ("ADDED", "MODIFIED"):
                        out.put((kind, obj["metadata"]["name"], _value(kind, obj), time.monotonic()))
                    if stop.is_set():
                        return
            except Exception:  # the watch broke (410, cluster stopping): list and watch again
                if stop.is_set():
                    return
                time.sleep(0.1)
    finally:
        client.close()


def _value(kind: str, obj: dict[str, Any]) -> str:
    if kind == "ConfigMap":
        return str((obj.get("data") or {}).get("LOG_LEVEL", ""))
    return str(obj["spec"]["template"]["spec"]["containers"][0]["image"])


def _edit(client: KubeClient, kind: str, name: str, n: int) -> tuple[str, str]:
    """Change one managed field as another field manager; returns (edited value, desired value)."""
    if kind == "ConfigMap":
        ref = ObjectRef(kind="ConfigMap", namespace=DRIFT_NS, name=name)
        patch: dict[str, Any] = {"data": {"LOG_LEVEL": f"debug-{n}"}}
        edited, desired = f"debug-{n}", "info"
    else:
        ref = ObjectRef(group="apps", kind="Deployment", namespace=DRIFT_NS, name=name)
        i = int(name.rsplit("-", 1)[1])
        image = f"evil.example.test/hotfix:{n}"
        patch = {"spec": {"template": {"spec": {"containers": [{"name": "main", "image": image}]}}}}
        edited, desired = image, f"registry.example.test/mcp/server-{i}:1.0.{i}"
    info = client.resource(ref.group, ref.version, ref.kind)
    client.request(
        "PATCH",
        info.object_path(ref.namespace, ref.name),
        body=patch,
        query={"fieldManager": EDIT_MANAGER},
        content_type="application/strategic-merge-patch+json",
        verb="patch",
        obj=str(ref),
    )
    return edited, desired


def _await_restore(
    events: queue.Queue[tuple[str, str, str, float]],
    kind: str,
    name: str,
    edited: str,
    desired: str,
    timeout: float,
) -> float | None:
    """Monotonic time the object showed ``desired`` again after showing ``edited``; None on timeout."""
    deadline = time.monotonic() + timeout
    seen_edit = False
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None
        try:
            k, n, value, at = events.get(timeout=left)
        except queue.Empty:
            return None
        if (k, n) != (kind, name):
            continue
        if value == edited:
            seen_edit = True
        elif seen_edit and value == desired:
            return at


async def drift_latency(
    kubeconfig: Path, nats_url: str | None, work: Path, edits: int, replicas: int, deadline: float
) -> tuple[list[float], int, int, int]:
    """Run the daemon on a repository holding a subset and time ``edits`` edit -> restored cycles.

    Returns the latencies (seconds), the number of edits that timed out, how many objects the
    environment holds, and how many drift events the daemon reported.
    """
    n_cm, n_dep = 20, 10
    subset = [_object("ConfigMap", DRIFT_NS, i, replicas) for i in range(n_cm)]
    subset += [_object("Deployment", DRIFT_NS, i, replicas) for i in range(n_dep)]
    subset += [_object("Service", DRIFT_NS, i, replicas) for i in range(n_dep)]
    subset += [_object("Secret", DRIFT_NS, i, replicas) for i in range(5)]
    for obj in subset:
        del obj["metadata"]["namespace"]  # the environment's namespace applies
    src = work / "src"
    (src / "envs").mkdir(parents=True)
    (src / "envs" / "bench.yaml").write_text(
        f"overlay: overlays/bench\nnamespace: {DRIFT_NS}\nsync: {{interval: 3600}}\n"
    )
    overlay = src / "overlays" / "bench"
    overlay.mkdir(parents=True)
    write_manifest(subset, overlay / "objects.yaml")
    (overlay / "kustomization.yaml").write_text("resources:\n- namespace.yaml\n- objects.yaml\n")
    (overlay / "namespace.yaml").write_text(
        f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {DRIFT_NS}\n"
    )
    remote, clone = init_repo_with_remote(src, work / "repo")
    commit_and_push(clone, "bench: drift subset")

    results: list[PassResult] = []
    reported: list[dict[str, Any]] = []
    settings = DaemonSettings(
        repo=str(remote),
        envs=["bench"],
        kubeconfig=kubeconfig,
        nats_url=nats_url,
        cache_dir=work / "cache",
        watch_local=False,
        poll_interval=3600,
    )
    daemon = Daemon(settings, on_result=results.append, on_drift=reported.append)
    events: queue.Queue[tuple[str, str, str, float]] = queue.Queue()
    stop = threading.Event()
    watchers = [
        threading.Thread(target=_watch_values, args=(kubeconfig, g, k, stop, events), daemon=True)
        for g, k in (("", "ConfigMap"), ("apps", "Deployment"))
    ]
    editor = KubeClient(kubeconfig)
    latencies: list[float] = []
    timeouts = 0
    await daemon.start()
    try:
        t0 = time.monotonic()
        while not results:
            if time.monotonic() - t0 > 120:
                raise RuntimeError("the daemon made no pass within 120 s")
            await asyncio.sleep(0.05)
        if not results[0].ok:
            raise RuntimeError(f"the daemon's first pass failed: {results[0].error}")
        for w in watchers:
            w.start()
        await asyncio.sleep(1.0)  # the daemon's and our watches are established
        targets = [("ConfigMap", f"configmap-{i}") for i in range(n_cm)]
        targets += [("Deployment", f"deployment-{i}") for i in range(n_dep)]
        for n in range(edits):
            if time.monotonic() > deadline:
                raise Deadline()
            kind, name = targets[(n * 7) % len(targets)]  # spread over the objects, both kinds
            start = time.monotonic()
            edited, desired = await asyncio.to_thread(_edit, editor, kind, name, n)
            restored = await asyncio.to_thread(_await_restore, events, kind, name, edited, desired, 10.0)
            if restored is None:
                timeouts += 1
            else:
                latencies.append(restored - start)
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        editor.close()
        await daemon.stop()
    return latencies, timeouts, len(subset) + 1, len(reported)


# -- main ---------------------------------------------------------------------------------------------


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = max(0, min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def _verdict(ok: bool) -> str:
    return "MET" if ok else "MISSED"


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _summary(runs: list[tuple[float, Counter[str], int]]) -> dict[str, Any]:
    verbs: Counter[str] = Counter()
    for _w, c, _n in runs:
        verbs.update(c)
    return {
        "seconds": statistics.median(w for w, _c, _n in runs),
        "calls": max(sum(c.values()) for _w, c, _n in runs),
        "writes": max(sum(c[v] for v in WRITE_VERBS) for _w, c, _n in runs),
        "not_unchanged": max(n for _w, _c, n in runs),
        "passes": len(runs),
        "verbs": dict(sorted(verbs.items())),
    }


def noop_benchmark(
    client: KubeClient, kubectl: Path, kubeconfig: Path, root: Path, args: argparse.Namespace, deadline: float
) -> dict[str, Any]:
    """Apply the generated set once, then time no-op passes of ours and of kubectl (see the module doc).

    Ours is timed two ways: "cold", a fresh ResourceManager per pass (every object listed and compared),
    and "steady", one ResourceManager across passes as the daemon keeps one PassContext (objects found in
    sync before and unchanged since, by resourceVersion, are not compared again when the apply engine
    keeps such a cache; without one, steady equals cold).
    """
    namespaces = [f"bench-{i}" for i in range(args.namespaces)]
    objects = generate(args.objects, namespaces, args.replicas)
    kinds = Counter(o["kind"] for o in objects)
    print(f"objects: {len(objects)} in {len(namespaces)} namespaces:", end=" ")
    print(", ".join(f"{k} {n}" for k, n in sorted(kinds.items())))
    first_wall, first_calls, first_changed = our_pass(ResourceManager(client), objects)
    total_calls = sum(first_calls.values())
    print(f"first apply (ours): {first_wall:.2f} s, {first_changed} written, {total_calls} API calls")

    def check() -> None:
        if time.monotonic() > deadline:
            raise Deadline()

    cold: list[tuple[float, Counter[str], int]] = []
    for _ in range(args.repeats):
        check()
        cold.append(our_pass(ResourceManager(client), objects))
    steady_manager = ResourceManager(client)
    our_pass(steady_manager, objects)  # the pass before: fills whatever the manager keeps
    steady: list[tuple[float, Counter[str], int]] = []
    for _ in range(args.repeats):
        check()
        steady.append(our_pass(steady_manager, objects))
    manifest = root / "objects.yaml"
    write_manifest(objects, manifest)
    kcache = root / "kubectl-cache"
    kubectl_apply(kubectl, kubeconfig, manifest, kcache)  # warm-up: discovery cache, co-ownership
    theirs: list[tuple[float, Counter[str]]] = []
    for _ in range(args.repeats):
        check()
        theirs.append(kubectl_apply(kubectl, kubeconfig, manifest, kcache))
    after = [our_pass(ResourceManager(client), objects)]  # still a no-op once kubectl co-owns every field

    kube_wall = statistics.median(w for w, _c in theirs)
    kube_calls = statistics.median(sum(c.values()) for _w, c in theirs)
    out: dict[str, Any] = {
        "objects": len(objects),
        "kinds": dict(kinds),
        "first_apply": {"seconds": first_wall, "written": first_changed, "calls": total_calls},
        "cold": _summary(cold),
        "steady": _summary(steady),
        "after_kubectl": _summary(after),
        "kubectl": {
            "seconds": kube_wall,
            "calls": kube_calls,
            "writes": statistics.median(sum(c[v] for v in KUBECTL_WRITE_VERBS) for _w, c in theirs),
            "verbs": dict(sorted(theirs[0][1].items())),
        },
        "goal_ratio": GOAL_RATIO,
    }
    for name in ("cold", "steady"):
        ours = out[name]
        ours["ratio_wall"] = kube_wall / ours["seconds"] if ours["seconds"] > 0 else float("inf")
        ours["ratio_calls"] = kube_calls / ours["calls"] if ours["calls"] else float("inf")
    return out


def print_noop(r: dict[str, Any], repeats: int) -> None:
    """The no-op table: ours (cold and steady), the kubectl anchor, ratios and goals."""
    kube = r["kubectl"]
    print()
    print(f"no-op pass over {r['objects']} unchanged objects, median of {repeats} runs each")
    print("anchor: kubectl apply --server-side -f <the same objects>, in the same run")
    print(f"  {'':36}{'wall time':>12}{'writes':>8}{'API calls':>11}")
    label = "kubectl apply --server-side"
    print(f"  {label:36}{kube['seconds']:>10.3f} s{kube['writes']:>8.0f}{kube['calls']:>11.0f}")
    rows = (("cold", "ours, fresh ResourceManager"), ("steady", "ours, same ResourceManager (daemon)"))
    for name, label in rows:
        ours = r[name]
        print(
            f"  {label:36}{ours['seconds']:>10.3f} s{ours['writes']:>8}{ours['calls']:>11}"
            f"   {ours['ratio_wall']:.1f}x faster, {ours['ratio_calls']:.1f}x fewer calls;"
            f" goal >= {GOAL_RATIO:.0f}x: {_verdict(ours['ratio_wall'] >= GOAL_RATIO)}"
        )
    passes = [r["cold"], r["steady"], r["after_kubectl"]]
    writes = max(p["writes"] for p in passes)
    changed = max(p["not_unchanged"] for p in passes)
    total = sum(p["passes"] for p in passes)
    print(
        f"  writes in all {total} no-op passes of ours (also after kubectl co-owned the fields): {writes},"
        f" objects not unchanged: {changed}; goal 0 writes: {_verdict(writes == 0 and changed == 0)}"
    )
    print(f"  ours by verb (cold, {r['cold']['passes']} passes): {r['cold']['verbs']}")
    print(f"  kubectl by HTTP verb, one run: {kube['verbs']}")


def print_drift(r: dict[str, Any]) -> None:
    """The drift-correction latency line and its goal."""
    ok = r["p95"] <= GOAL_P95 and r["timeouts"] == 0
    print(
        f"  environment: {r['objects']} objects; restored {r['restored']}/{r['edits']} edits"
        f" (timed out after 10 s: {r['timeouts']}); drift events reported by the daemon: {r['events']}"
    )
    print(
        f"  edit -> restored   p50 {r['p50']:.3f} s   p95 {r['p95']:.3f} s   max {r['max']:.3f} s"
        f"   goal p95 <= {GOAL_P95:.0f} s: {_verdict(ok)}"
    )


def main() -> int:
    """Run both benchmarks on a fresh local cluster; 0 when they ran (goals are printed, not enforced)."""
    ap = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    ap.add_argument("--objects", type=int, default=1000, help="objects in the no-op set (default 1000)")
    ap.add_argument("--namespaces", type=int, default=4, help="namespaces they are spread over")
    ap.add_argument("--edits", type=int, default=100, help="drift edits, one at a time (default 100)")
    ap.add_argument("--repeats", type=int, default=3, help="timed repetitions of each no-op (median)")
    ap.add_argument("--replicas", type=int, default=0, help="replicas of the bench Deployments")
    ap.add_argument("--deadline", type=float, default=1200.0, help="overall bound, seconds")
    ap.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = ap.parse_args()
    if args.objects < 50 or args.namespaces < 1 or args.edits < 1 or args.repeats < 1:
        ap.error("need --objects >= 50, --namespaces >= 1, --edits >= 1, --repeats >= 1")
    deadline = time.monotonic() + args.deadline
    bins = ensure_binaries(quiet=True)
    results: dict[str, Any] = {}
    with _sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="bench-apply-") as tmp:
        root = Path(tmp)
        cluster = LocalCluster(root / "cluster", nodes=2)
        try:
            print("starting a local control plane and NATS ...", flush=True)
            state = cluster.up(progress=lambda _m: None, binaries=bins)
            kubeconfig = Path(state.kubeconfig)
            client = KubeClient(kubeconfig)
            try:
                install_crds(client)
                results["noop"] = noop_benchmark(client, bins.kubectl, kubeconfig, root, args, deadline)
            finally:
                client.close()
            print_noop(results["noop"], args.repeats)
            print()
            print(
                f"drift correction: the daemon on a Git repository; {args.edits} edits by field manager"
                f" {EDIT_MANAGER!r}, one at a time, each timed until a watch sees Git's value again",
                flush=True,
            )
            latencies, timeouts, held, reported = asyncio.run(
                drift_latency(
                    kubeconfig, state.nats_url or None, root / "drift", args.edits, args.replicas, deadline
                )
            )
            results["drift"] = {
                "objects": held,
                "edits": args.edits,
                "restored": len(latencies),
                "timeouts": timeouts,
                "p50": _percentile(latencies, 50),
                "p95": _percentile(latencies, 95),
                "max": max(latencies) if latencies else float("nan"),
                "events": reported,
                "goal_p95": GOAL_P95,
            }
            print_drift(results["drift"])
        except Deadline:
            print(f"stopped: the run exceeded --deadline {args.deadline:.0f} s", file=sys.stderr)
            return 1
        except KeyboardInterrupt:
            print("interrupted", file=sys.stderr)
            return 130
        finally:
            print("stopping the local cluster ...", flush=True)
            cluster.down(progress=lambda _m: None)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
