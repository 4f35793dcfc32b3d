"""Shard takeover benchmark: how long the environments of a sharded replica that dies (SIGKILL) stay
without a holder, with three ``reconciler run --shard`` processes, their leases in a three-node NATS
JetStream cluster (replicas=3), on a real local control plane.

Usage: PYTHONPATH=. .venv/bin/python bench/reliability/bench_takeover.py [--rounds 5] [--envs 9]
    [--objects 5] [--json out.json]

Each round kills the replica holding the most environments, measures per environment the seconds from
the kill to a survivor's "acquired the lease of <environment>" (the replicas' JSON logs, logger
``reconciler.shards``), and takes the largest (the round's takeover), then restarts the killed replica
and waits until the environments are spread over three again. A replica's log line is written when its
compare-and-swap on the lease succeeded, so this is the time no replica may write for the environment.

Anchors, in the same run: the lease ``ttl`` the replicas use (``reconciler run`` default, 10 s) and the
design bound ``ttl + 2 * period`` (reconciler/runtime/shards.py: a lease is judged expired after it was
seen unchanged for ``ttl`` seconds, and replicas read the bucket every ``period = ttl / 8``); the goal
(issue 19) is 15 s. For comparison (not measured here): controller-runtime's leader election defaults
(LeaseDuration 15 s, RetryPeriod 2 s) take over 15 to 17 s after a leader dies.

Prints per round and p50/max lines with their ratios; nothing is asserted. Everything binds to
127.0.0.1. Exit status: 0 every round within the goal, 1 a round over it, 2 the run could not be done.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "hostile"))
sys.path.insert(0, str(ROOT / "tests"))

from _fault_support import wait_for  # noqa: E402

RECONCILER = Path(sys.executable).parent / "reconciler"
GOAL_SECONDS = 15.0
TTL = 10.0  # DaemonSettings.shard_lease_ttl's default
PERIOD = TTL / 8  # reconciler.runtime.shards.DEFAULT_PERIOD
ACQUIRED = re.compile(r"acquired the lease of (\S+)")
LET_GO = re.compile(r"(?:released the lease of|lost the lease of|lease of) (\S+)")


class Replica:
    """One ``reconciler run --shard`` process and its JSON log (a new log file per start)."""

    def __init__(self, name: str, argv: list[str], env: dict[str, str], logs: Path) -> None:
        self.name, self.argv, self.env, self.logs = name, argv, env, logs
        self.starts = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = logs / f"{name}-0.log"
        self.start()

    def start(self) -> None:
        self.log = self.logs / f"{self.name}-{self.starts}.log"
        self.starts += 1
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, env=self.env)

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def acquisitions(self) -> list[tuple[str, float]]:
        """(environment, UNIX time) of every lease this start acquired."""
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if not line.startswith("{"):
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("logger") != "reconciler.shards":
                continue
            if m := ACQUIRED.search(str(rec.get("event", ""))):
                ts = datetime.fromisoformat(str(rec["timestamp"]).replace("Z", "+00:00")).timestamp()
                out.append((m.group(1), ts))
        return out

    def held(self, envs: set[str]) -> set[str]:
        """The environments this start holds now, by its log."""
        if not self.alive():
            return set()
        now: set[str] = set()
        for line in self.log.read_text(errors="replace").splitlines():
            if '"reconciler.shards"' not in line:
                continue
            try:
                text = str(json.loads(line).get("event", ""))
            except ValueError:
                continue
            if m := ACQUIRED.search(text):
                now.add(m.group(1))
            elif m := LET_GO.search(text):
                now.discard(m.group(1))
        return now & envs

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def write_repo(work: Path, envs: list[str], objects: int) -> Path:
    """A bare repository with ``envs`` (environment ``e`` in namespace ``takeover-e``, ``objects``
    ConfigMaps each); returns the bare repository's path."""
    src = work / "src"
    (src / "envs").mkdir(parents=True)
    for env in envs:
        (src / "envs" / f"{env}.yaml").write_text(
            f"overlay: overlays/{env}\nnamespace: takeover-{env}\nsync: {{interval: 3600}}\n"
        )
        d = src / "overlays" / env
        d.mkdir(parents=True)
        (d / "kustomization.yaml").write_text(
            "resources:\n- namespace.yaml\n" + "".join(f"- cm{i}.yaml\n" for i in range(objects))
        )
        (d / "namespace.yaml").write_text(
            f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: takeover-{env}\n"
        )
        for i in range(objects):
            (d / f"cm{i}.yaml").write_text(
                f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm{i}\ndata:\n  n: '{i}'\n"
            )
    git = ["git", "-c", "user.email=bench@localhost", "-c", "user.name=bench"]
    subprocess.run([*git, "init", "-q", "-b", "main", str(src)], check=True)
    subprocess.run([*git, "-C", str(src), "add", "-A"], check=True)
    subprocess.run([*git, "-C", str(src), "commit", "-qm", "environments"], check=True)
    bare = work / "remote.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(src), str(bare)], check=True)
    return bare


def run(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT))
    from reconciler.cluster.client import KubeClient
    from reconciler.cluster.inventory import InventoryStore
    from reconciler.devcluster import LocalCluster
    from reconciler.devcluster.natscluster import NatsCluster
    from reconciler.model import ObjectRef

    envs = [f"t{i}" for i in range(args.envs)]
    everything = set(envs)
    cluster = LocalCluster(work / "cluster", nodes=1)
    nats = NatsCluster(work / "nats", nodes=3)
    replicas: list[Replica] = []
    st = cluster.up(progress=lambda _m: None)
    try:
        nats.up()
        bare = write_repo(work, envs, args.objects)
        for i in range(3):
            name = f"r{i}"
            environ = {
                **os.environ,
                "RECONCILER_CACHE_DIR": str(work / f"cache-{i}"),
                "RECONCILER_NATS_REPLICAS": "3",
                "RECONCILER_WATCH_LOCAL": "false",
            }
            argv = [
                str(RECONCILER), "run", "--repo", str(bare), "--kubeconfig", str(st.kubeconfig),
                "--nats", nats.url, "--shard", "--replica-id", name, "--interval", "3600",
                "--http", "", "--log-format", "json",
            ]  # fmt: skip
            replicas.append(Replica(name, argv, environ, work))

        def spread() -> bool:
            held = [r.held(everything) for r in replicas]
            return set().union(*held) == everything and all(held)

        wait_for(spread, 120, "the environments spread over the three replicas")
        rounds: list[dict[str, Any]] = []
        for n in range(args.rounds):
            victim = max(replicas, key=lambda r: len(r.held(everything)))
            lost = victim.held(everything)
            assert victim.proc is not None
            victim.proc.send_signal(signal.SIGKILL)
            killed_at = time.time()
            victim.proc.wait()
            survivors = [r for r in replicas if r is not victim]

            def taken(lost: set[str] = lost, survivors: list[Replica] = survivors) -> bool:
                return lost <= set().union(*(r.held(everything) for r in survivors))

            wait_for(taken, 120, f"round {n}: the victim's environments taken over")
            per_env = {
                env: min(ts for r in survivors for e, ts in r.acquisitions() if e == env and ts >= killed_at)
                - killed_at
                for env in lost
            }
            takeover = max(per_env.values())
            rounds.append(
                {
                    "round": n,
                    "victim": victim.name,
                    "environments": len(lost),
                    "takeover_seconds": round(takeover, 3),
                }
            )
            print(
                f"TAKEOVER round {n}: {victim.name} held {len(lost)} environments, all taken over in "
                f"{takeover:.2f} s",
                flush=True,
            )
            victim.start()
            wait_for(spread, 120, f"round {n}: the environments spread over three again")
        times = [r["takeover_seconds"] for r in rounds]
        return {
            "rounds": rounds,
            "p50_seconds": round(statistics.median(times), 3),
            "max_seconds": round(max(times), 3),
            "ttl_seconds": TTL,
            "design_bound_seconds": TTL + 2 * PERIOD,
            "goal_seconds": GOAL_SECONDS,
            "environments": len(envs),
            "loadavg": [round(x, 2) for x in os.getloadavg()],
        }
    finally:
        for r in replicas:
            r.stop()
        client = KubeClient(Path(st.kubeconfig))
        store = InventoryStore(client)
        for env in envs:
            try:
                client.delete(ObjectRef(kind="Namespace", name=f"takeover-{env}"))
                store.delete(env)
            except Exception:  # the cluster goes down next anyway
                pass
        client.close()
        nats.down()
        cluster.down(progress=lambda _m: None)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5, help="kills, one replica each")
    ap.add_argument("--envs", type=int, default=9, help="environments shared by the three replicas")
    ap.add_argument("--objects", type=int, default=5, help="ConfigMaps per environment")
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="bench-takeover-") as tmp:
        try:
            out = run(args, Path(tmp))
        except Exception as exc:  # the run could not be done: say why
            print(f"bench/takeover: could not run: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 2
    for key in ("p50", "max"):
        s = out[f"{key}_seconds"]
        bound = out["design_bound_seconds"]
        print(
            f"TAKEOVER {key} {s:.2f} s over {len(out['rounds'])} kills, {out['environments']} environments: "
            f"{s / TTL:.2f} x the lease ttl ({TTL:.0f} s), {s / bound:.2f} x the design bound ttl + 2 x "
            f"period ({bound:.1f} s), {s / GOAL_SECONDS:.2f} x the goal ({GOAL_SECONDS:.0f} s)"
        )
    print(f"load average {out['loadavg'][0]:.2f} on {os.cpu_count()} CPUs (indicative)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0 if out["max_seconds"] <= GOAL_SECONDS else 1


if __name__ == "__main__":
    raise SystemExit(main())
