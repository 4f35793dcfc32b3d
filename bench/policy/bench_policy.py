"""Policy benchmark: the example repository's policies (``policies/``) over ~1000 rendered objects,
reconciler's evaluation (``reconciler.policy``: one ``opa eval`` of the pinned OPA) against ``conftest test``
(the pinned conftest, the anchor) on the same objects and the same policies, in the same run.

The objects are the example's ``prod`` overlay, rendered and copied into as many namespaces as it takes
(``agents-prod-<k>``; cluster-scoped objects get the suffix in their name) to reach ``--objects``. Both
engines get exactly the same inputs: the objects (conftest reads them from one multi-document YAML file,
as ``reconciler build`` prints them), the policy directory, its data files and the ``data.reconciler``
document (environment ``prod``, the objects and their inventory) that reconciler gives policies
(conftest as ``--data``). Their results are compared: the same deny and warn messages, or the bench
fails.

Every number is the median of ``--rounds`` runs (wall time, seconds):

- ``conftest test``: ``conftest test --all-namespaces`` (one process; it parses the YAML file, compiles
  the policies and runs one query per rule per document);
- ``reconciler cold``: :meth:`PolicyEvaluator.check` with an empty cache — reading the policy directory,
  writing the data document, one ``opa eval`` process — what a pass at a new commit adds;
- ``reconciler warm``: the same call answered by the evaluator's cache (the digest of the policy files
  and the objects): what a pass over an unchanged commit adds;
- ``opa server`` (for the engine's docstring; ``--no-server`` skips it): a long-running ``opa run
  --server`` on 127.0.0.1 with the policies loaded, per evaluation one ``PUT`` of the data document and
  one query of the same generated module, over its REST API.

Goals (issue 18): reconciler cold ≤ 1.0 x conftest; the time added to a warm pass ≤ 500 ms.

Usage:
    .venv/bin/python bench/policy/bench_policy.py [--objects 1000] [--rounds 5] [--json results.json]
    .venv/bin/python bench/policy/bench_policy.py --quick     # 200 objects, 1 round

Builds the pinned opa and conftest when missing (tools/controlplane/build.sh). Exit status: 0 when the
goals are met, 1 when one is missed or the engines disagree, 2 when the run could not be done.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from reconciler.errors import ReconcilerError  # noqa: E402
from reconciler.model import Environment  # noqa: E402
from reconciler.policy import PolicyEvaluator, data_document, ensure_conftest, ensure_opa  # noqa: E402
from reconciler.policy.engine import WRAPPER_PACKAGE, _wrapper, load_policy_set  # noqa: E402
from reconciler.promote.check_policy import fill_namespaces  # noqa: E402
from reconciler.render import build, dump_yaml  # noqa: E402

ENV = "prod"
GOAL_RATIO = 1.0
GOAL_WARM_SECONDS = 0.5


def objects_for(count: int) -> list[dict[str, Any]]:
    """``count`` rendered objects: copies of the example's prod overlay, one namespace per copy."""
    env = Environment(name=ENV, overlay=f"overlays/{ENV}", namespace=f"agents-{ENV}")
    base = build(REPO / "overlays" / ENV, root=REPO)
    fill_namespaces(base, env, None)
    out: list[dict[str, Any]] = []
    k = 0
    while len(out) < count:
        for obj in base:
            if len(out) == count:
                break
            o = copy.deepcopy(obj)
            meta = o["metadata"]
            if meta.get("namespace"):
                meta["namespace"] = f"{meta['namespace']}-{k}"
            else:
                meta["name"] = f"{meta['name']}-{k}"
            out.append(o)
        k += 1
    return out


def median_seconds(fn: Callable[[], object], rounds: int) -> float:
    """Median wall time of ``rounds`` calls of ``fn``."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def conftest_messages(out: str) -> Counter[tuple[str, str]]:
    """(severity, message) of conftest's JSON output."""
    found: Counter[tuple[str, str]] = Counter()
    for result in json.loads(out):
        for key, severity in (("failures", "deny"), ("warnings", "warn")):
            for item in result.get(key) or []:
                found[(severity, item["msg"])] += 1
    return found


class OpaServer:
    """``opa run --server`` on a free 127.0.0.1 port with the policy directory and the generated module."""

    def __init__(self, opa: Path, policy_dir: Path, wrapper: Path) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = int(s.getsockname()[1])
        self.proc = subprocess.Popen(
            [str(opa), "run", "--server", f"--addr=127.0.0.1:{self.port}", "--ignore=*_test.rego",
             "--log-level=error", str(policy_dir), str(wrapper)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.request("GET", "/health")
                return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError("opa run --server did not answer on /health within 30 s")

    def request(self, method: str, path: str, body: bytes | None = None) -> Any:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}",
            data=body,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=60) as resp:
            raw = resp.read()
        return json.loads(raw) if raw else None

    def evaluate(self, data: bytes) -> Any:
        self.request("PUT", "/v1/data/reconciler", data)
        return self.request("POST", f"/v1/data/{WRAPPER_PACKAGE}/results", b"{}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def run(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    opa, conftest = ensure_opa(), ensure_conftest()
    objects = objects_for(args.objects)
    env = Environment(name=ENV, overlay=f"overlays/{ENV}", namespace=f"agents-{ENV}")
    policy_dir = REPO / "policies"

    # the same inputs for conftest: the objects as one YAML file, data.reconciler as a data file
    rendered = tmp / "rendered.yaml"
    rendered.write_text(dump_yaml(objects), encoding="utf-8")
    data_dir = tmp / "data"
    data_dir.mkdir()
    doc = data_document(objects, environment=ENV, namespace=env.namespace or "")
    (data_dir / "data.json").write_text(json.dumps({"reconciler": doc}), encoding="utf-8")
    conftest_cmd = [
        str(conftest), "test", "--all-namespaces", "--no-color", "--output=json",
        f"--policy={policy_dir}", f"--data={policy_dir}", f"--data={data_dir}", str(rendered),
    ]  # fmt: skip

    def conftest_once() -> str:
        proc = subprocess.run(conftest_cmd, capture_output=True, text=True, check=False)
        if proc.returncode not in (0, 1):  # 1: some policy failed
            raise RuntimeError(f"conftest failed ({proc.returncode}): {proc.stderr[-2000:]}")
        return proc.stdout

    def ours_cold() -> Any:
        return PolicyEvaluator(opa=opa).check(REPO, env, objects)

    # correctness first: both engines report the same messages
    ours = ours_cold()
    assert ours is not None
    ours_found = Counter(
        (f.severity.value, f.message) for f in ours.findings if f.severity.value != "exception"
    )
    theirs_found = conftest_messages(conftest_once())
    agree = ours_found == theirs_found

    t_conftest = median_seconds(conftest_once, args.rounds)
    t_cold = median_seconds(ours_cold, args.rounds)
    warm_evaluator = PolicyEvaluator(opa=opa)
    warm_evaluator.check(REPO, env, objects)
    t_warm = median_seconds(lambda: warm_evaluator.check(REPO, env, objects), max(args.rounds, 3))
    assert warm_evaluator.hits >= 1 and warm_evaluator.evaluations == 1

    server: dict[str, Any] | None = None
    if not args.no_server:
        ps = load_policy_set(REPO, env)
        assert ps is not None
        wrapper = tmp / "wrapper.rego"
        wrapper.write_text(_wrapper(ps), encoding="utf-8")
        body = json.dumps(doc).encode()
        srv = OpaServer(opa, policy_dir, wrapper)
        try:
            srv.request("PUT", "/v1/data/reconciler_policy_range", json.dumps([0, len(objects)]).encode())
            srv.evaluate(body)  # the first query compiles
            t_server = median_seconds(lambda: srv.evaluate(body), args.rounds)
        finally:
            srv.stop()
        server = {"seconds": round(t_server, 4), "ratio_to_opa_eval": round(t_server / t_cold, 3)}

    ratio = t_cold / t_conftest
    meets = agree and ratio <= GOAL_RATIO and t_warm <= GOAL_WARM_SECONDS
    return {
        "config": {
            "objects": len(objects),
            "rounds": args.rounds,
            "environment": ENV,
            "policies": ours.files,
            "opa": str(opa),
            "conftest": str(conftest),
        },
        "findings": {
            "deny": sum(n for (s, _), n in ours_found.items() if s == "deny"),
            "warn": sum(n for (s, _), n in ours_found.items() if s == "warn"),
            "engines_agree": agree,
        },
        "conftest_seconds": round(t_conftest, 4),
        "reconciler_cold_seconds": round(t_cold, 4),
        "reconciler_warm_seconds": round(t_warm, 5),
        "ratio_cold_to_conftest": round(ratio, 3),
        "added_to_warm_pass_seconds": round(t_warm, 5),
        "added_to_pass_at_new_commit_seconds": round(t_cold, 4),
        "opa_server": server,
        "goals": {"ratio_cold_to_conftest": GOAL_RATIO, "added_to_warm_pass_seconds": GOAL_WARM_SECONDS},
        "meets_goals": meets,
    }


def print_table(r: dict[str, Any]) -> None:
    c = r["config"]
    print(
        f"policies over {c['objects']} rendered objects ({c['environment']}), median of {c['rounds']} rounds"
    )
    print(f"  findings: {r['findings']['deny']} deny, {r['findings']['warn']} warn; "
          f"engines agree: {r['findings']['engines_agree']}")  # fmt: skip
    print(f"  conftest test (anchor):      {r['conftest_seconds']:8.3f} s")
    print(f"  reconciler cold (opa eval):  {r['reconciler_cold_seconds']:8.3f} s   "
          f"ratio {r['ratio_cold_to_conftest']:.3f} (goal <= {GOAL_RATIO})")  # fmt: skip
    print(f"  reconciler warm (cached):    {r['reconciler_warm_seconds']:8.4f} s   "
          f"added to a warm pass (goal <= {GOAL_WARM_SECONDS} s)")  # fmt: skip
    if r["opa_server"]:
        print(f"  opa run --server (REST):     {r['opa_server']['seconds']:8.3f} s   "
              f"{r['opa_server']['ratio_to_opa_eval']:.3f} x opa eval")  # fmt: skip
    print(f"  meets goals: {r['meets_goals']}")


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmark; the exit status says whether the goals were met (see the module docstring)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--objects", type=int, help="rendered objects (default 1000; --quick 200)")
    ap.add_argument("--rounds", type=int, help="runs per measurement (default 5; --quick 1)")
    ap.add_argument("--quick", action="store_true", help="200 objects, 1 round")
    ap.add_argument("--no-server", action="store_true", help="skip the opa run --server measurement")
    ap.add_argument("--json", type=Path, help="also write the results as JSON to this file")
    args = ap.parse_args(argv)
    args.objects = args.objects if args.objects is not None else (200 if args.quick else 1000)
    args.rounds = args.rounds if args.rounds is not None else (1 if args.quick else 5)
    if args.objects < 1 or args.rounds < 1:
        ap.error("need --objects >= 1 and --rounds >= 1")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-policy-") as tmp:
            results = run(args, Path(tmp))
    except (RuntimeError, OSError, ReconcilerError) as exc:
        print(f"bench/policy stopped: {exc}", file=sys.stderr)
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
