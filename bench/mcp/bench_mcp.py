"""MCP server benchmark: the status of ``--envs`` (default 100) environments through ``tools/call``
(``listEnvironments``) of reconciler's MCP server on loopback, against the same answer from
``reconciler status -o json`` run as a new process, in the same run.

Setup: a local cluster (``reconciler.devcluster.LocalCluster`` in a temporary state directory, or
``--kubeconfig`` of a running one), a namespace ``bench-mcp`` with one ConfigMap and one Service per
environment, and per environment an inventory (``reconciler.cluster.inventory.InventoryStore``) holding
those two objects at revision ``main@sha1:<40 hex>``. The MCP server (``reconciler.mcpserver``, no tokens)
serves from a thread of this process on 127.0.0.1 (the anonymous caller's rate limit raised to 1000 calls
per second, so the limiter does not pace the loop); the client is the official ``mcp`` SDK's, one session
(2026-07-28, stateless) reused for every call.

Measured (wall-clock milliseconds, ``time.perf_counter``), ``--calls`` times each after one untimed call:

* ``mcp``: one ``tools/call`` of ``listEnvironments`` (every inventory and every object's health, read
  through the server's watch-backed mirrors: :mod:`reconciler.mcpserver.livecache`; ``--no-watch-cache``:
  read from the API server on each call);
* ``cli`` (the anchor): ``reconciler status -o json --kubeconfig K`` in a new Python process, the same
  reads plus the interpreter's start-up and imports.

Both answers are compared (the environments list, equal as JSON); the printed ratio is
``cli p95 / mcp p95``. Goal (issue 25's measure): the MCP call's p95 is at most 50 ms on loopback
(``--goal-ms``) and its answer equals the CLI's; the ratio against the CLI (a resident server beating a new
process that does the same reads: ≥ 1.0) is reported as well, and must hold too. The load average of the
machine at the start and end is printed: the absolute goal depends on it (the ratio less so).

Usage:
    .venv/bin/python bench/mcp/bench_mcp.py [--envs 100] [--calls 20] [--kubeconfig F] [--json out.json]
        [--goal-ms 50] [--no-watch-cache]

Exit status: 0 goal met, 1 missed (or the answers differ), 2 the run could not be done.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
NAMESPACE = "bench-mcp"


def pct(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[k]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    ms = [s * 1000 for s in seconds]
    return {"p50": round(statistics.median(ms), 1), "p95": round(pct(ms, 95), 1), "max": round(max(ms), 1)}


def populate(kubeconfig: Path, envs: int) -> list[str]:
    """One ConfigMap and one Service per environment in ``bench-mcp``, and each environment's inventory."""
    from reconciler.cluster.client import KubeClient
    from reconciler.cluster.inventory import InventoryStore
    from reconciler.model import Inventory, ObjectRef

    client = KubeClient(kubeconfig)
    names = [f"bench-{i:03d}" for i in range(envs)]
    try:
        ns = ObjectRef(kind="Namespace", name=NAMESPACE)
        client.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            ns,
            field_manager="bench",
        )
        store = InventoryStore(client, "bench-mcp-source")
        for i, name in enumerate(names):
            cm = ObjectRef(kind="ConfigMap", namespace=NAMESPACE, name=f"{name}-config")
            svc = ObjectRef(kind="Service", namespace=NAMESPACE, name=f"{name}-svc")
            client.apply(
                {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "metadata": {"name": cm.name, "namespace": NAMESPACE},
                    "data": {"env": name},
                },
                cm,
                field_manager="bench",
            )
            client.apply(
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": svc.name, "namespace": NAMESPACE},
                    "spec": {"selector": {"app": name}, "ports": [{"port": 80}]},
                },
                svc,
                field_manager="bench",
            )
            store.save(Inventory(environment=name, revision=f"main@sha1:{i:040x}", entries=[cm, svc]))
    finally:
        client.close()
    return names


async def mcp_calls(url: str, calls: int) -> tuple[list[float], list[dict[str, Any]]]:
    from mcp import Client

    times: list[float] = []
    answer: list[dict[str, Any]] = []
    async with Client(url) as c:
        await c.call_tool("listEnvironments", {})  # untimed: first reads, connection set up
        for _ in range(calls):
            t0 = time.perf_counter()
            result = await c.call_tool("listEnvironments", {})
            times.append(time.perf_counter() - t0)
            if result.is_error or not isinstance(result.structured_content, dict):
                raise RuntimeError(f"listEnvironments failed: {result.content}")
            answer = result.structured_content["environments"]
    return times, answer


def cli_calls(kubeconfig: Path, calls: int) -> tuple[list[float], list[dict[str, Any]]]:
    cmd = [sys.executable, "-m", "reconciler", "status", "-o", "json", "--kubeconfig", str(kubeconfig)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("RECONCILER_PROBE_ADDRESSES", None)
    times: list[float] = []
    answer: list[dict[str, Any]] = []
    for i in range(calls + 1):
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False, timeout=300)
        elapsed = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"reconciler status failed: {proc.stderr[-2000:]}")
        if i:
            times.append(elapsed)
        answer = json.loads(proc.stdout)
    return times, answer


def run(args: argparse.Namespace) -> dict[str, Any]:
    from reconciler.mcpserver.access import Access
    from reconciler.mcpserver.server import ToolServer, start_http_thread
    from reconciler.mcpserver.tools import Backend

    load = [round(os.getloadavg()[0], 2)]
    cluster = None
    kubeconfig = args.kubeconfig
    if kubeconfig is None:
        from reconciler.cluster.client import KubeClient
        from reconciler.cluster.crds import install_crds
        from reconciler.devcluster import LocalCluster

        cluster = LocalCluster(Path(tempfile.mkdtemp(prefix="bench-mcp-")), nodes=1)
        st = cluster.up(progress=lambda m: None)
        kubeconfig = Path(st.kubeconfig)
        client = KubeClient(kubeconfig)
        install_crds(client)
        client.close()
    try:
        names = populate(kubeconfig, args.envs)
        os.environ.pop("RECONCILER_PROBE_ADDRESSES", None)
        backend = Backend(kubeconfig=kubeconfig, watch_cache=not args.no_watch_cache)
        # the anonymous caller's rate limit (10/s by default) would pace back-to-back calls: raised here
        server = start_http_thread(ToolServer(backend, Access(anonymous_rate=1000.0)), "127.0.0.1", 0)
        try:
            mcp_times, mcp_answer = asyncio.run(mcp_calls(server.url, args.calls))
        finally:
            server.stop()
            backend.close()  # its watches end before the cluster does
        cli_times, cli_answer = cli_calls(kubeconfig, args.calls)
    finally:
        if cluster is not None:
            cluster.down(progress=lambda m: None)
    load.append(round(os.getloadavg()[0], 2))
    ours = [e for e in mcp_answer if e["name"] in names]
    theirs = [e for e in cli_answer if e["name"] in names]
    mcp_ms, cli_ms = summary_ms(mcp_times), summary_ms(cli_times)
    return {
        "load_average": load,
        "watch_cache": not args.no_watch_cache,
        "goal_ms": args.goal_ms,
        "envs": args.envs,
        "calls": args.calls,
        "mcp_ms": mcp_ms,
        "mcp_each_ms": [round(t * 1000, 1) for t in mcp_times],
        "cli_ms": cli_ms,
        "ratio_cli_over_mcp_p95": round(cli_ms["p95"] / mcp_ms["p95"], 2),
        "answers_equal": ours == theirs and len(ours) == args.envs,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--envs", type=int, default=100)
    ap.add_argument("--calls", type=int, default=20)
    ap.add_argument("--kubeconfig", type=Path, default=None, help="a running cluster (default: start one)")
    ap.add_argument("--json", type=Path, default=None, help="write the results here")
    ap.add_argument("--goal-ms", type=float, default=50.0, help="the MCP call's p95 goal (issue 25: 50 ms)")
    ap.add_argument(
        "--no-watch-cache", action="store_true", help="the server reads the API server on each call"
    )
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    try:
        r = run(args)
    except Exception as exc:  # the run could not be done: say why (the first failure of a task group)
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            inner = exc.exceptions[0]
            if not isinstance(inner, Exception):
                break
            exc = inner
        print(f"bench/mcp: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    print(
        f"status of {r['envs']} environments, {r['calls']} calls each (ms); load average (1 min) "
        f"{r['load_average'][0]} at start, {r['load_average'][1]} at end; watch cache: {r['watch_cache']}"
    )
    print(
        f"  tools/call listEnvironments (loopback): p50 {r['mcp_ms']['p50']:>8}  p95 {r['mcp_ms']['p95']:>8}"
    )
    print(
        f"  reconciler status -o json (new process): p50 {r['cli_ms']['p50']:>8}  p95 {r['cli_ms']['p95']:>8}"
    )
    print(f"  ratio cli/mcp (p95): {r['ratio_cli_over_mcp_p95']}  answers equal: {r['answers_equal']}")
    r["goal_met"] = bool(r["mcp_ms"]["p95"] <= args.goal_ms)
    print(f"  goal p95 <= {args.goal_ms} ms: {'met' if r['goal_met'] else 'MISSED'}")
    if args.json:
        args.json.write_text(json.dumps(r, indent=2))
    ok = r["answers_equal"] and r["goal_met"] and r["ratio_cli_over_mcp_p95"] >= 1.0
    print("goal met" if ok else "goal MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
