"""Protocol-probe benchmark: what probing 30 MCP servers adds to a pass's health stage, on the real MCP
reference server (all on 127.0.0.1).

Starts ``--servers`` (default 3) processes of the pinned MCP reference server (npm
``@modelcontextprotocol/server-everything``, Streamable HTTP, ``reconciler.devcluster.agents``) and maps
``--targets`` (default 30) in-cluster origins ``http://mcp-NN.bench.svc.cluster.local:3001`` onto them
round-robin (:class:`reconciler.probe.targets.ProbeAddresses`). Each target is one kagent
``RemoteMCPServer`` (``kagent.dev/v1alpha2``, ``spec.url`` ``http://mcp-NN…:3001/mcp``, protocol
``STREAMABLE_HTTP``, no status: no controller judged it) with one literal request header
``X-Bench-Target: NN`` (``spec.headersFrom``). The header makes the 30 targets 30 probes:
:class:`~reconciler.probe.service.ProbeService` keys its results by the address probed, the transport
and the headers, so 30 origins mapped onto 3 processes without it are 3 probes (printed as ``shared``).

A "pass" here is the health stage of :func:`reconciler.reconcile.pass_.assess_health` minus its API
reads: ``ProbeService.prefetch`` of all targets (concurrent), then
:func:`reconciler.cluster.health.judge` of each. Times are wall-clock milliseconds
(``time.perf_counter``), measured against two named anchors in the same run:

* ``no probe``: the same judging with ``probe=None`` (what the stage costs without probes); each pass's
  *added* time is its time minus the ``no probe`` pass run just before it;
* ``sequential``: a fresh ``ProbeService`` judging each target without a prefetch, so every
  ``judge`` → ``ProbeService.mcp`` probes one after another (``--seq-passes`` passes); the printed
  ratio ``sequential / concurrent`` (p50 added time) is the gain of the prefetch.

The CPU time of this process and of the servers (``/proc/<pid>/stat``) during the cold passes is printed
with the floor it puts under the wall time, their sum divided by the CPUs: on a small machine the stand-in
servers, which set up a whole MCP server per session, share the cores with the prober and dominate.

Cases:

1. cold: ``--passes`` passes (default 30, after ``--warmup`` untimed ones), each with a fresh
   ``ProbeService`` (``ttl`` 30 s, empty cache; a ``ttl`` of 0 would make ``judge`` probe again after the
   prefetch), every target probed and judged ``Healthy``. Goal (issue "bench/probe"): p95 added time
   ≤ 200 ms on loopback.
2. warm: one ``ProbeService`` (``ttl`` ``--ttl`` s, default 30) fills its cache with one pass, then every
   server is stopped (its port checked closed, and a fresh ``ProbeService`` judging a target gets no
   ``Healthy``), then ``--warm-passes`` passes (default 30) run inside the window. Goal: no probe sent
   (``ProbeService.requests`` unchanged, ``prefetch`` sends 0) and every verdict still ``Healthy``, from
   the cache alone.

Usage:
    .venv/bin/python bench/probe/bench_probe.py [--servers 3] [--targets 30] [--passes 30]
        [--seq-passes 5] [--warm-passes 30] [--ttl 30] [--json results.json]

Exit status: 0 when every goal is met, 1 when one is missed (a cold p95 over 200 ms, a probe that was not
``Healthy``, any request in the warm window), 2 when the run could not be done (a server did not start,
``--deadline`` passed). Everything binds to 127.0.0.1; every server started is stopped at the end, also on
an error or Ctrl-C.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from reconciler.cluster.health import judge  # noqa: E402
from reconciler.devcluster.agents import ServerProcess, start_server_everything  # noqa: E402
from reconciler.devcluster.process import ComponentError, group_members  # noqa: E402
from reconciler.model import HealthState, HealthStatus  # noqa: E402
from reconciler.probe.service import ProbeService  # noqa: E402
from reconciler.probe.targets import ProbeAddresses  # noqa: E402

#: Goal of the cold case: p95 of the time probes add to a pass, milliseconds.
GOAL_P95_MS = 200.0
NAMESPACE = "bench"
#: A fixed "now" (UNIX seconds) for judging, after the objects' creationTimestamp.
NOW = 1_800_000_000.0
TICKS = os.sysconf("SC_CLK_TCK")


class Deadline(Exception):
    """The run exceeded ``--deadline``."""


def origin(i: int) -> str:
    """The in-cluster origin of target ``i``."""
    return f"http://mcp-{i:02d}.{NAMESPACE}.svc.cluster.local:3001"


def remote_mcp_server(i: int, *, header: bool = True) -> dict[str, Any]:
    """Target ``i`` as a live kagent RemoteMCPServer without status (``header``: with its
    ``X-Bench-Target`` header, which makes it a probe of its own)."""
    spec: dict[str, Any] = {
        "description": f"bench target {i}",
        "url": f"{origin(i)}/mcp",
        "protocol": "STREAMABLE_HTTP",
    }
    if header:
        spec["headersFrom"] = [{"name": "X-Bench-Target", "value": f"{i:02d}"}]
    return {
        "apiVersion": "kagent.dev/v1alpha2",
        "kind": "RemoteMCPServer",
        "metadata": {
            "name": f"mcp-{i:02d}",
            "namespace": NAMESPACE,
            "generation": 1,
            "creationTimestamp": "2026-12-01T00:00:00Z",
        },
        "spec": spec,
    }


@dataclass
class Pass:
    """One timed pass: wall seconds, the verdicts, and the probes the service sent during it."""

    seconds: float
    verdicts: list[HealthStatus]
    requests: int = 0

    @property
    def healthy(self) -> int:
        return sum(v.state is HealthState.HEALTHY for v in self.verdicts)


def health_pass(
    objects: Sequence[Mapping[str, Any]], probe: ProbeService | None, *, prefetch: bool = True
) -> Pass:
    """Time the health stage over ``objects``: ``probe.prefetch`` (when ``prefetch`` and a probe is
    given), then ``judge`` of each, as :func:`reconciler.reconcile.pass_.assess_health` does."""
    before = probe.requests if probe is not None else 0
    t0 = time.perf_counter()
    if probe is not None and prefetch:
        probe.prefetch(objects)
    verdicts = [judge(obj, now=NOW, probe=probe) for obj in objects]
    seconds = time.perf_counter() - t0
    return Pass(seconds, verdicts, (probe.requests - before) if probe is not None else 0)


def pct(values: Sequence[float], p: float) -> float:
    """The ``p``-th percentile (nearest rank) of ``values``."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50, p95 and max of ``seconds``, in milliseconds (3 decimals)."""
    ms = [s * 1000 for s in seconds]
    return {
        "p50": round(statistics.median(ms), 3),
        "p95": round(pct(ms, 95), 3),
        "max": round(max(ms), 3),
    }


def cpu_seconds(pids: Sequence[int]) -> float:
    """utime + stime of ``pids`` in seconds (proc(5); clock ticks, so sum over passes before dividing);
    a process that is gone counts 0."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        total += int(fields[11]) + int(fields[12])  # after the command: state(0) … utime(11) stime(12)
    return total / TICKS


def port_open(port: int) -> bool:
    """Whether something listens on 127.0.0.1:``port``. A connection to itself does not count: with
    nothing listening, the kernel may pick ``port`` as the ephemeral source port and connect the socket
    to itself (TCP simultaneous open)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0 and s.getsockname() != s.getpeername()


def wait_closed(ports: Sequence[int], timeout: float = 5.0) -> bool:
    """Wait until nothing listens on any of ``ports``; False when one still does after ``timeout``
    seconds. (A listening socket can outlive its process for a moment before the kernel drops it.)"""
    deadline = time.monotonic() + timeout
    while any(port_open(p) for p in ports):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


class Servers:
    """The server-everything processes of the run; each is stopped once (:meth:`stop_all`)."""

    def __init__(self) -> None:
        self.running: list[ServerProcess] = []

    def start(self, log_dir: Path, count: int) -> None:
        for _ in range(count):
            self.running.append(start_server_everything(log_dir, "streamableHttp"))

    def stop_all(self) -> None:
        while self.running:
            self.running.pop().stop()


@contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM raises KeyboardInterrupt meanwhile, so the servers are stopped also then."""

    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def servers_running(log_dir: Path, count: int) -> Iterator[Servers]:
    """``count`` server-everything processes (Streamable HTTP) on loopback; all stopped on exit."""
    servers = Servers()
    try:
        servers.start(log_dir, count)
        yield servers
    finally:
        servers.stop_all()


def run(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    """Run every case and return the results (see the module docstring)."""
    deadline = time.monotonic() + args.deadline

    def check_deadline() -> None:
        if time.monotonic() > deadline:
            raise Deadline(f"the run exceeded --deadline {args.deadline:g} s")

    objects = [remote_mcp_server(i) for i in range(args.targets)]
    with servers_running(log_dir, args.servers) as group:
        servers = list(group.running)
        server_pids = [pid for s in servers for pid in group_members(s.pid)]
        addresses = ProbeAddresses(
            addresses={
                origin(i): f"http://127.0.0.1:{servers[i % len(servers)].port}" for i in range(args.targets)
            }
        )

        def fresh(ttl: float = 30.0) -> ProbeService:
            return ProbeService(addresses=addresses, ttl=ttl)

        for _ in range(args.warmup):  # untimed: node's JIT, Python's first imports and connections
            health_pass(objects, None)
            health_pass(objects, fresh())

        anchors: list[float] = []
        cold: list[Pass] = []
        added: list[float] = []
        client_cpu = server_cpu = 0.0
        for _ in range(args.passes):
            check_deadline()
            anchor = health_pass(objects, None)
            service = fresh()
            c0, s0 = time.process_time(), cpu_seconds(server_pids)
            probed = health_pass(objects, service)
            client_cpu += time.process_time() - c0
            server_cpu += cpu_seconds(server_pids) - s0
            anchors.append(anchor.seconds)
            cold.append(probed)
            added.append(probed.seconds - anchor.seconds)

        seq: list[Pass] = []
        seq_added: list[float] = []
        for _ in range(args.seq_passes):
            check_deadline()
            anchor = health_pass(objects, None)
            probed = health_pass(objects, fresh(), prefetch=False)
            seq.append(probed)
            seq_added.append(probed.seconds - anchor.seconds)

        shared_service = fresh()  # the same targets without their header: one probe per process
        shared = health_pass(
            [remote_mcp_server(i, header=False) for i in range(args.targets)], shared_service
        )

        # warm: fill the cache, stop every server, then judge within the window from the cache alone
        check_deadline()
        warm_service = fresh(args.ttl)
        fill = health_pass(objects, warm_service)
        filled_at = time.monotonic()
        group.stop_all()
        ports_closed = wait_closed([s.port for s in servers])
        control = health_pass(objects[:1], fresh())  # a fresh cache sees the servers gone
        requests_before = warm_service.requests
        warm: list[Pass] = []
        warm_added: list[float] = []
        prefetch_sent = 0
        for _ in range(args.warm_passes):
            check_deadline()
            anchor = health_pass(objects, None)
            t0 = time.perf_counter()
            prefetch_sent += warm_service.prefetch(objects)
            verdicts = [judge(obj, now=NOW, probe=warm_service) for obj in objects]
            p = Pass(time.perf_counter() - t0, verdicts)
            warm.append(p)
            warm_added.append(p.seconds - anchor.seconds)
        within_window = time.monotonic() - filled_at < args.ttl
        warm_requests = warm_service.requests - requests_before

    cpus = os.cpu_count() or 1
    cold_ok = all(p.healthy == args.targets and p.requests == args.targets for p in cold)
    cold_summary = summary_ms(added)
    seq_summary = summary_ms(seq_added) if seq_added else None
    warm_ok = (
        warm_requests == 0
        and prefetch_sent == 0
        and all(p.healthy == args.targets for p in warm)
        and ports_closed
        and control.healthy == 0
        and within_window
    )
    results: dict[str, Any] = {
        "servers": args.servers,
        "targets": args.targets,
        "cpus": cpus,
        "server_pids": server_pids,
        "server_dir": str(log_dir),
        "anchor_no_probe_ms": summary_ms(anchors),
        "cold": {
            "passes": args.passes,
            "added_ms": cold_summary,
            "pass_ms": summary_ms([p.seconds for p in cold]),
            "requests_per_pass": sorted({p.requests for p in cold}),
            "healthy_per_pass": sorted({p.healthy for p in cold}),
            "all_probed_and_healthy": cold_ok,
            "cpu_ms_per_pass": {
                "this_process": round(client_cpu * 1000 / args.passes, 1),
                "servers": round(server_cpu * 1000 / args.passes, 1),
            },
            "cpu_floor_ms": round((client_cpu + server_cpu) * 1000 / args.passes / cpus, 1),
            "goal_p95_ms": GOAL_P95_MS,
            "meets_goal": cold_ok and cold_summary["p95"] <= GOAL_P95_MS,
        },
        "sequential": {
            "passes": args.seq_passes,
            "added_ms": seq_summary,
            "requests_per_pass": sorted({p.requests for p in seq}),
            "healthy_per_pass": sorted({p.healthy for p in seq}),
            "ratio_to_concurrent_p50": (
                round(seq_summary["p50"] / cold_summary["p50"], 1)
                if seq_summary is not None and cold_summary["p50"] > 0
                else None
            ),
        },
        "shared": {"requests": shared.requests, "healthy": shared.healthy},
        "warm": {
            "passes": args.warm_passes,
            "ttl_seconds": args.ttl,
            "fill_requests": fill.requests,
            "fill_healthy": fill.healthy,
            "servers_stopped": ports_closed,
            "control_fresh_cache_healthy": control.healthy,
            "within_window": within_window,
            "requests": warm_requests,
            "prefetch_sent": prefetch_sent,
            "healthy_per_pass": sorted({p.healthy for p in warm}),
            "added_ms": summary_ms(warm_added),
            "meets_goal": warm_ok,
        },
    }
    results["meets_goals"] = results["cold"]["meets_goal"] and warm_ok
    return results


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


def print_table(r: dict[str, Any]) -> None:
    """The results as a table: anchors, cold, sequential, warm and the goals."""
    cold, seq, warm = r["cold"], r["sequential"], r["warm"]
    print()
    print(
        f"health stage over {r['targets']} RemoteMCPServers on {r['servers']} server-everything processes"
        " (127.0.0.1), milliseconds"
    )
    print(f"  {'':44}{'p50':>10}{'p95':>10}{'max':>10}  probes/pass")
    a = r["anchor_no_probe_ms"]
    print(f"  {'anchor: no probe (pass time)':44}{a['p50']:>10.2f}{a['p95']:>10.2f}{a['max']:>10.2f}  0")

    def row(label: str, ms: dict[str, float] | None, requests: list[int], tail: str = "") -> None:
        if ms is None:
            print(f"  {label:44}{'-':>10}{'-':>10}{'-':>10}")
            return
        reqs = ",".join(map(str, requests)) or "0"
        print(f"  {label:44}{ms['p50']:>10.2f}{ms['p95']:>10.2f}{ms['max']:>10.2f}  {reqs}{tail}")

    row(
        f"cold, concurrent prefetch: added ({cold['passes']} passes)",
        cold["added_ms"],
        cold["requests_per_pass"],
    )
    ratio = seq["ratio_to_concurrent_p50"]
    row(
        f"anchor: sequential probes: added ({seq['passes']} passes)",
        seq["added_ms"],
        seq["requests_per_pass"],
        f"   {ratio}x the concurrent p50" if ratio is not None else "",
    )
    row(
        f"warm, within {warm['ttl_seconds']:g} s: added ({warm['passes']} passes)",
        warm["added_ms"],
        [warm["requests"]],
    )
    print(
        f"  shared: without the per-target header, probes for the {r['targets']} targets:"
        f" {r['shared']['requests']} (one per server process), {r['shared']['healthy']} Healthy"
    )
    cpu, floor = cold["cpu_ms_per_pass"], cold["cpu_floor_ms"]
    print(
        f"  cold: CPU per pass (mean): this process {cpu['this_process']:.1f} ms, the servers"
        f" {cpu['servers']:.1f} ms; anchor CPU floor (their sum / {r['cpus']} CPUs) {floor:.1f} ms,"
        f" p50 added = {cold['added_ms']['p50'] / floor if floor else float('inf'):.1f}x the floor"
    )
    print(
        f"  cold: Healthy per pass {cold['healthy_per_pass']}; goal p95 added <= {GOAL_P95_MS:.0f} ms:"
        f" {verdict(cold['meets_goal'])}"
    )
    print(
        f"  warm: servers stopped before the warm passes: {warm['servers_stopped']} (a fresh cache then"
        f" judges {warm['control_fresh_cache_healthy']} Healthy); Healthy per pass"
        f" {warm['healthy_per_pass']}; probes sent {warm['requests']}"
    )
    print(f"  warm: goal 0 probes, all Healthy from the cache: {verdict(warm['meets_goal'])}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the exit status says whether the goals were met (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", type=int, default=3, help="server-everything processes (default 3)")
    ap.add_argument("--targets", type=int, default=30, help="RemoteMCPServers probed per pass (default 30)")
    ap.add_argument("--passes", type=int, default=30, help="timed cold passes (default 30)")
    ap.add_argument("--warmup", type=int, default=2, help="untimed cold passes first (default 2)")
    ap.add_argument("--seq-passes", type=int, default=5, help="passes of the sequential anchor (default 5)")
    ap.add_argument("--warm-passes", type=int, default=30, help="passes within the cache window (default 30)")
    ap.add_argument("--ttl", type=float, default=30.0, help="cache window of the warm case, seconds")
    ap.add_argument("--deadline", type=float, default=300.0, help="bound of the whole run, seconds")
    ap.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = ap.parse_args(argv)
    if args.servers < 1 or args.targets < 1 or args.passes < 1 or args.warm_passes < 1:
        ap.error("need --servers, --targets, --passes and --warm-passes >= 1")
    if args.targets > 100 or args.seq_passes < 0 or args.warmup < 0 or args.ttl <= 0:
        ap.error("need --targets <= 100, --seq-passes >= 0, --warmup >= 0 and --ttl > 0")
    try:
        with sigterm_as_interrupt(), tempfile.TemporaryDirectory(prefix="bench-probe-") as tmp:
            results = run(args, Path(tmp))
    except (Deadline, ComponentError) as exc:
        print(f"bench/probe stopped: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    print_table(results)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if results["meets_goals"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
