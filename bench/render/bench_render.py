"""Render benchmark: ~1000 objects across 3 environments, ours (cold and warm) vs `kustomize build`; the
command line's start-up against kustomize's; and a corpus comparison with kustomize over many directories.

Usage: .venv/bin/python bench/render/bench_render.py [--objects 1000] [--rounds 5] [--cli-rounds 21]
           [--kustomize PATH] [--quick] [--json PATH]
       .venv/bin/python bench/render/bench_render.py --corpus [REPO_DIR ...] [--json PATH]

The input is one base (Deployments with ConfigMap/Secret references, Services, HPAs, kagent Agents and kmcp
MCPServers, a ConfigMap generator) and three overlays (namespace, name prefix, labels with selectors,
annotations, images, a strategic-merge and a JSON patch, a generator merge). Every number is the median of
``--rounds`` runs of rendering all three environments and printing them as YAML, measured in this process
against the anchor `kustomize build` (three processes, one per environment) in the same run:

- ``ours cold (new process)``: a fresh Python process that imports the renderer and renders (what a CLI
  call costs; comparable to kustomize's per-call process);
- ``ours cold (in process)``: a render without the result cache in a process that has rendered before
  (what each daemon pass costs when the commit changed);
- ``ours warm``: a render answered by :class:`RenderCache` for an unchanged Git tree (the objects, as a
  reconcile pass uses them; printing YAML is not needed on that path).

Targets (issue 3): cold <= 1.0x kustomize, warm >= 10x faster (ratio <= 0.1); issue 24: in process
<= 0.3x kustomize.

**Command line** (issue 24): the wall time of whole processes, median of ``--cli-rounds`` runs taken in
turn (so that a busy machine slows every command alike): ``reconciler --help`` against ``kustomize
--help``, and ``reconciler build DIR`` against ``kustomize build DIR`` for a small overlay (7 objects and a
generated ConfigMap), with the interpreter's own start (``python -c pass``) for reference. Goals: ``--help``
<= 150 ms, ``build`` <= 250 ms. The CPU time of each process (user + system, median) is printed in
parentheses: on a busy machine the wall time grows with the load, the CPU time much less. The runs use
cached bytecode, as an installed command has it (in a temporary ``PYTHONPYCACHEPREFIX``, filled by one
untimed run; ``PYTHONDONTWRITEBYTECODE`` is dropped).

**Corpus** (``--corpus``): every kustomization directory under each repository root given (default: this
project's ``tests/render/corpus``) is built by `kustomize build` and by the renderer (in process, with the
repository root as the load restrictor's root, as ``reconciler build`` inside a Git repository), and
counted per repository: identical output, different output, refused (kustomize renders it, we fail),
lenient (we render what kustomize refuses) and both failing. It prints a table, the cases that are not
identical, and the counts as JSON (``--json PATH`` writes every case). Public repositories are not
vendored: clone them and pass their roots (see README.md, "Rendering speed and parity"). With ``--helm
HELM``, both build with Helm charts enabled (``kustomize build --enable-helm --helm-command HELM``).

**Helm charts** (``--helm HELM`` without ``--corpus``): the kustomizations of ``tests/render/helm_corpus``
(charts unpacked into a temporary directory), all rendered by us in this process and by `kustomize build
--enable-helm` (one process each), median of ``--rounds``; both spend most of the time in ``helm template``
(kustomize also runs ``helm version`` before each chart, we once per render). Goal: <= 1.0x kustomize.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from reconciler.render import HelmOptions, RenderCache, RenderError, build, dump_yaml  # noqa: E402

ENVS = ("dev", "staging", "prod")
#: Goals of issue 24 for the command line's wall time (ms) and the in-process render (ratio to kustomize).
HELP_GOAL_MS = 150.0
BUILD_GOAL_MS = 250.0
IN_PROCESS_GOAL = 0.3
#: The command line as its console script runs it, from this checkout.
OURS = [sys.executable, "-c", "from reconciler.cli import main; main()"]
DEFAULT_CORPUS = REPO / "tests" / "render" / "corpus"
HELM_CORPUS = REPO / "tests" / "render" / "helm_corpus"
HELM_GOAL = 1.0
KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


def generate(root: Path, objects: int) -> list[Path]:
    """Write the base and the three overlays; ``objects`` is the total over the three environments."""
    base = root / "base"
    base.mkdir(parents=True)
    per_env = max(objects // len(ENVS), 6)
    groups = max(per_env // 6, 1)
    docs = []
    for i in range(groups):
        docs.append(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\n  labels: {{app: app-{i}}}\n"
            f"spec:\n  replicas: 1\n  selector:\n    matchLabels: {{app: app-{i}}}\n  template:\n"
            f"    metadata:\n      labels: {{app: app-{i}}}\n    spec:\n      serviceAccountName: runner\n"
            f"      containers:\n      - name: main\n        image: reg.test/app:{i}\n        ports:\n"
            f"        - containerPort: 8080\n          name: http\n        env:\n        - name: INDEX\n"
            f"          value: '{i}'\n        envFrom:\n        - configMapRef: {{name: shared}}\n"
            f"        volumeMounts:\n        - {{name: cfg, mountPath: /etc/app}}\n      volumes:\n"
            f"      - name: cfg\n        configMap: {{name: shared}}\n"
        )
        docs.append(
            f"apiVersion: v1\nkind: Service\nmetadata:\n  name: app-{i}\nspec:\n"
            f"  selector: {{app: app-{i}}}\n"
            f"  ports:\n  - name: http\n    port: 80\n    targetPort: http\n"
        )
        docs.append(
            f"apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: app-{i}\nspec:\n"
            f"  scaleTargetRef: {{apiVersion: apps/v1, kind: Deployment, name: app-{i}}}\n"
            f"  minReplicas: 1\n  maxReplicas: 4\n"
        )
        docs.append(
            f"apiVersion: kagent.dev/v1alpha2\nkind: Agent\nmetadata:\n  name: agent-{i}\nspec:\n"
            f"  type: BYO\n  description: Agent number {i} answering questions about topic {i}\n  byo:\n"
            f"    deployment:\n      image: reg.test/agent:{i}\n      env:\n      - name: MODEL\n"
            f"        value: gpt-4o-mini\n"
        )
        docs.append(
            f"apiVersion: kagent.dev/v1alpha1\nkind: MCPServer\nmetadata:\n  name: tools-{i}\nspec:\n"
            f"  transportType: http\n  httpTransport: {{targetPort: 8000, path: /mcp}}\n  deployment:\n"
            f"    image: reg.test/mcp:{i}\n    port: 8000\n    env: {{LOG_LEVEL: info}}\n"
        )
        docs.append(
            f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings-{i}\ndata:\n"
            f"  mode: fast\n  limit: '{i * 10}'\n  note: |\n    settings for app {i}\n    second line\n"
        )
    docs.append("apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: runner\n")
    (base / "all.yaml").write_text("---\n".join(docs))
    # kustomize needs this configuration to reach the images of Agents and MCPServers; the renderer has
    # these fields built in, so both produce the same output
    (base / "images.yaml").write_text(
        "images:\n- path: spec/byo/deployment/image\n  group: kagent.dev\n  kind: Agent\n"
        "- path: spec/deployment/image\n  group: kagent.dev\n  kind: MCPServer\n"
    )
    (base / "kustomization.yaml").write_text(
        "resources:\n- all.yaml\nconfigurations:\n- images.yaml\n"
        "configMapGenerator:\n- name: shared\n  literals: [A=1, B=two]\n"
    )
    dirs = []
    for env in ENVS:
        d = root / env
        d.mkdir()
        (d / "patch.yaml").write_text(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: any\nspec:\n  template:\n    spec:\n"
            "      containers:\n      - name: main\n        env:\n        - name: ENV\n"
            f"          value: {env}\n"
        )
        (d / "kustomization.yaml").write_text(
            f"resources:\n- ../base\nnamespace: {env}\nnamePrefix: {env}-\n"
            f"labels:\n- pairs:\n    env: {env}\n  includeSelectors: true\n"
            f"commonAnnotations:\n  example.test/env: {env}\n"
            f"images:\n- name: reg.test/app\n  newTag: {env}\n"
            "- name: reg.test/agent\n  newName: mirror.test/agent\n"
            "configMapGenerator:\n- name: shared\n  behavior: merge\n  literals: [C=3]\n"
            "patches:\n- path: patch.yaml\n  target:\n    kind: Deployment\n"
            "- target:\n    kind: HorizontalPodAutoscaler\n  patch: |-\n    - op: replace\n"
            "      path: /spec/maxReplicas\n      value: 8\n"
        )
        dirs.append(d)
    return dirs


def median_seconds(fn: Callable[[], object], rounds: int) -> float:
    """Median wall time of ``rounds`` calls of ``fn`` (seconds)."""
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def find_kustomize() -> Path | None:
    """The pinned kustomize binary (built by tools/controlplane/build.sh), or ``None``."""
    proc = subprocess.run(
        [str(REPO / "tools/controlplane/build.sh"), "kustomize"], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return None
    found = sorted(Path(proc.stdout.strip().splitlines()[-1]).glob("kustomize-*/kustomize"))
    return found[-1] if found else None


CHILD = """
import sys
from pathlib import Path
sys.path.insert(0, {repo!r})
from reconciler.render import build, dump_yaml
root = Path({root!r})
for d in {dirs!r}:
    sys.stdout.write(dump_yaml(build(Path(d), root=root)))
"""


def render_section(exe: Path | None, objects: int, rounds: int) -> dict[str, Any]:
    """The render benchmark (cold in a new process, cold in process, warm) against ``kustomize build``."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dirs = generate(root, objects)
        ours_text = [dump_yaml(build(d, root=root)) for d in dirs]
        count = sum(t.count("\n---\n") + 1 for t in ours_text)

        def cold_in_process() -> None:
            for d in dirs:
                dump_yaml(build(d, root=root))

        child = CHILD.format(repo=str(REPO), root=str(root), dirs=[str(d) for d in dirs])

        def cold_new_process() -> None:
            subprocess.run([sys.executable, "-c", child], check=True, capture_output=True)

        cache = RenderCache()
        for d in dirs:
            build(d, root=root, cache=cache, tree_id="tree-1")

        def warm() -> None:
            for d in dirs:
                build(d, root=root, cache=cache, tree_id="tree-1")

        cold_proc = median_seconds(cold_new_process, rounds)
        cold = median_seconds(cold_in_process, rounds)
        warm_t = median_seconds(warm, rounds)
        out: dict[str, Any] = {
            "objects": count,
            "rounds": rounds,
            "cold_new_process_seconds": cold_proc,
            "cold_in_process_seconds": cold,
            "warm_seconds": warm_t,
        }
        print(f"objects rendered: {count} across {len(dirs)} environments, median of {rounds} rounds")
        print(f"ours cold (new process):   {cold_proc:8.3f} s")
        print(f"ours cold (in process):    {cold:8.3f} s")
        print(f"ours warm (render cache):  {warm_t:8.4f} s")
        if exe is None:
            print("kustomize binary unavailable: no comparison")
            return out
        theirs_text = [
            subprocess.run([str(exe), "build", str(d)], capture_output=True, text=True, check=True).stdout
            for d in dirs
        ]
        print(f"output identical to kustomize: {theirs_text == ours_text}")

        def kustomize() -> None:
            for d in dirs:
                subprocess.run([str(exe), "build", str(d)], capture_output=True, check=True)

        theirs = median_seconds(kustomize, rounds)
        print(f"kustomize build (anchor):  {theirs:8.3f} s")
        print(f"ratio cold new process / kustomize: {cold_proc / theirs:6.2f}   (target <= 1.0)")
        print(f"ratio cold in process / kustomize:  {cold / theirs:6.2f}   (target <= {IN_PROCESS_GOAL})")
        print(f"ratio warm / kustomize:             {warm_t / theirs:6.4f} (target <= 0.1)")
        out.update(
            identical=theirs_text == ours_text,
            kustomize_seconds=theirs,
            ratio_cold_new_process=cold_proc / theirs,
            ratio_cold_in_process=cold / theirs,
            ratio_warm=warm_t / theirs,
            meets_in_process_goal=cold / theirs <= IN_PROCESS_GOAL,
        )
        return out


def cli_env(pycache: Path) -> dict[str, str]:
    """The environment of the timed command lines: this checkout first on the path, bytecode cached in
    ``pycache`` (outside the tree), as an installed command runs."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(pycache)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)
    return env


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def median_process_ms(
    commands: dict[str, list[str]], rounds: int, env: dict[str, str]
) -> tuple[dict[str, float], dict[str, float]]:
    """Median wall time and median CPU time (user + system, ms) of each command's whole process over
    ``rounds`` rounds; each round runs every command once, in turn, after one untimed round (which also
    writes the bytecode caches). On a busy machine the wall time grows with the load; the CPU time much
    less, so it is what the wall time would be on an idle one, roughly."""
    wall: dict[str, list[float]] = {name: [] for name in commands}
    cpu: dict[str, list[float]] = {name: [] for name in commands}
    for timed in [False] + [True] * rounds:
        for name, argv in commands.items():
            cpu_start, start = _children_cpu(), time.perf_counter()
            subprocess.run(argv, capture_output=True, check=True, env=env, cwd=REPO)
            if timed:
                wall[name].append((time.perf_counter() - start) * 1000)
                cpu[name].append((_children_cpu() - cpu_start) * 1000)
    return (
        {name: statistics.median(v) for name, v in wall.items()},
        {name: statistics.median(v) for name, v in cpu.items()},
    )


def cli_section(exe: Path | None, rounds: int) -> dict[str, Any]:
    """``reconciler --help`` and ``reconciler build DIR`` (small) against kustomize, in the same run."""
    with tempfile.TemporaryDirectory() as tmp:
        small = generate(Path(tmp) / "small", 30)[0]
        env = cli_env(Path(tmp) / "pycache")
        commands = {
            "reconciler --help": [*OURS, "--help"],
            "reconciler build": [*OURS, "build", str(small)],
            "python -c pass": [sys.executable, "-c", "pass"],
        }
        if exe is not None:
            commands["kustomize --help"] = [str(exe), "--help"]
            commands["kustomize build"] = [str(exe), "build", str(small)]
        ours_out = subprocess.run(
            commands["reconciler build"], capture_output=True, text=True, check=True, env=env, cwd=REPO
        ).stdout
        identical = None
        if exe is not None:
            theirs_out = subprocess.run(
                [str(exe), "build", str(small)], capture_output=True, text=True, check=True
            ).stdout
            identical = ours_out == theirs_out
        ms, cpu_ms = median_process_ms(commands, rounds, env)
    objects = ours_out.count("\n---\n") + 1
    print(f"command line wall time (and CPU time), median of {rounds} runs in turn (cached bytecode):")
    rows = [
        ("help", "reconciler --help", "", "kustomize --help", HELP_GOAL_MS),
        ("build", "reconciler build", f" (small dir, {objects} objects)", "kustomize build", BUILD_GOAL_MS),
    ]
    out: dict[str, Any] = {
        "rounds": rounds,
        "small_dir_objects": objects,
        "median_ms": ms,
        "median_cpu_ms": cpu_ms,
        "build_output_identical": identical,
    }
    for key, ours_name, note, theirs_name, goal in rows:
        mine = ms[ours_name]
        line = f"  {ours_name + note:42} {mine:7.1f} ms ({cpu_ms[ours_name]:5.1f})"
        ratio = mine / ms[theirs_name] if theirs_name in ms else None
        if ratio is not None:
            theirs = f"{ms[theirs_name]:6.1f} ms ({cpu_ms[theirs_name]:5.1f})"
            line += f"   {theirs_name:16} {theirs}   ratio {ratio:5.1f}"
        met = mine <= goal
        print(f"{line}   (goal <= {goal:.0f} ms: {'met' if met else 'MISSED'})")
        out[f"{key}_ratio"] = ratio
        out[f"{key}_meets_goal"] = met
    floor = "python -c pass"
    print(f"  {'python -c pass (interpreter start)':42} {ms[floor]:7.1f} ms ({cpu_ms[floor]:5.1f})")
    if identical is not None:
        print(f"  small build output identical to kustomize: {identical}")
    return out


def kustomization_dirs(root: Path) -> list[Path]:
    """Every directory under ``root`` holding a kustomization file (hidden directories such as .git
    skipped; symbolic links not followed)."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        if any(f in filenames for f in KUSTOMIZATION_FILES):
            found.append(Path(dirpath))
    return found


def _first_line(text: str, limit: int = 160) -> str:
    line = next((x for x in text.strip().splitlines() if x.strip()), "")
    return line[:limit]


def _first_difference(ours: str, theirs: str) -> str:
    a, b = ours.splitlines(), theirs.splitlines()
    for i, (x, y) in enumerate(zip(a, b, strict=False)):
        if x != y:
            return f"line {i + 1}: ours {x[:70]!r}, kustomize {y[:70]!r}"
    return f"ours {len(a)} lines, kustomize {len(b)} lines"


def _helm_args(helm: Path | None) -> list[str]:
    return ["--enable-helm", "--helm-command", str(helm)] if helm else []


def compare_dir(
    directory: Path, root: Path, exe: Path, timeout: float, helm: Path | None = None
) -> dict[str, str]:
    """One directory built by kustomize and by us: its outcome and, when not identical, why."""
    try:
        ref = subprocess.run(
            [str(exe), "build", *_helm_args(helm), str(directory)],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        theirs: str | None = ref.stdout if ref.returncode == 0 else None
        their_error = _first_line(ref.stderr) if ref.returncode else ""
    except subprocess.TimeoutExpired:
        theirs, their_error = None, f"kustomize timed out after {timeout:.0f} s"
    try:
        options = HelmOptions(command=str(helm)) if helm else None
        ours: str | None = dump_yaml(build(directory, root=root, helm=options))
        our_error = ""
    except RenderError as exc:
        ours, our_error = None, _first_line(str(exc))
    except Exception as exc:  # a crash is a finding: count it as refused and say what it was
        ours, our_error = None, f"crash: {type(exc).__name__}: {_first_line(str(exc))}"
    rel = str(directory.relative_to(root)) or "."
    if theirs is not None and ours is not None:
        if ours == theirs:
            return {"dir": rel, "outcome": "identical"}
        return {"dir": rel, "outcome": "different", "detail": _first_difference(ours, theirs)}
    if theirs is not None:
        return {"dir": rel, "outcome": "refused", "detail": our_error}
    if ours is not None:
        return {"dir": rel, "outcome": "lenient", "detail": their_error}
    return {"dir": rel, "outcome": "both-fail", "detail": f"ours: {our_error}; kustomize: {their_error}"}


OUTCOMES = ("identical", "different", "refused", "lenient", "both-fail")


def corpus_section(
    roots: Sequence[Path], exe: Path, timeout: float = 120.0, helm: Path | None = None
) -> dict[str, Any]:
    """The corpus comparison: per repository root, how many directories render identically, differently,
    only with kustomize (refused), only with us (lenient), or with neither."""
    repos: list[dict[str, Any]] = []
    for given in roots:
        root = given.resolve()
        cases = [compare_dir(d, root, exe, timeout, helm) for d in kustomization_dirs(root)]
        counts = {o: sum(c["outcome"] == o for c in cases) for o in OUTCOMES}
        name = str(root.relative_to(REPO)) if root.is_relative_to(REPO) else str(given)
        repos.append(
            {"repository": name, "root": str(root), "directories": len(cases), **counts, "cases": cases}
        )
    width = max([len(r["repository"]) for r in repos] + [10])
    print(f"{'repository':{width}}  {'dirs':>5}  " + "  ".join(f"{o:>9}" for o in OUTCOMES))
    for r in repos:
        print(
            f"{r['repository']:{width}}  {r['directories']:5d}  " + "  ".join(f"{r[o]:9d}" for o in OUTCOMES)
        )
    if len(repos) > 1:
        total = {o: sum(r[o] for r in repos) for o in OUTCOMES}
        dirs = sum(r["directories"] for r in repos)
        print(f"{'total':{width}}  {dirs:5d}  " + "  ".join(f"{total[o]:9d}" for o in OUTCOMES))
    for r in repos:
        for c in r["cases"]:
            if c["outcome"] in ("different", "refused", "lenient"):
                print(f"  {c['outcome']:9} {r['repository']}/{c['dir']}: {c['detail']}")
    summary = [{k: v for k, v in r.items() if k != "cases"} for r in repos]
    print(json.dumps(summary, indent=2))
    return {"repositories": repos}


def prepare_helm_cases(work: Path) -> list[Path]:
    """The helm corpus cases copied into ``work`` with their charts unpacked; the directories to build."""
    import shutil
    import tarfile

    dirs = []
    for case in sorted(p for p in (HELM_CORPUS / "cases").iterdir() if p.is_dir()):
        dst = work / case.name
        shutil.copytree(case, dst)
        for line in (case / "CHARTS").read_text().splitlines():
            archive, home = line.split()
            (dst / home).mkdir(parents=True, exist_ok=True)
            with tarfile.open(HELM_CORPUS / "charts" / archive) as tar:
                tar.extractall(dst / home, filter="data")
        target = case / "BUILD"
        dirs.append(dst / target.read_text().strip() if target.exists() else dst)
    return dirs


def helm_section(exe: Path, helm: Path, rounds: int) -> dict[str, Any]:
    """Rendering the helm corpus: ours in process against `kustomize build --enable-helm`."""
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dirs = prepare_helm_cases(root)

        def ours() -> list[str]:
            options = HelmOptions(command=str(helm))
            return [dump_yaml(build(d, root=root, helm=options)) for d in dirs]

        def theirs() -> list[str]:
            return [
                subprocess.run(
                    [str(exe), "build", *_helm_args(helm), str(d)], capture_output=True, text=True, check=True
                ).stdout
                for d in dirs
            ]

        identical = ours() == theirs()
        t_ours = median_seconds(ours, rounds)
        t_theirs = median_seconds(theirs, rounds)
    ratio = t_ours / t_theirs
    verdict = "met" if ratio <= HELM_GOAL else "MISSED"
    print(
        f"helm charts, {len(dirs)} kustomizations: ours {t_ours:.3f} s, kustomize --enable-helm "
        f"{t_theirs:.3f} s, ratio {ratio:.2f} (goal <= {HELM_GOAL:.1f}: {verdict}); "
        f"identical output: {identical}"
    )
    return {
        "kustomizations": len(dirs),
        "rounds": rounds,
        "ours_s": t_ours,
        "kustomize_s": t_theirs,
        "ratio": ratio,
        "meets_goal": ratio <= HELM_GOAL,
        "identical": identical,
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--cli-rounds", type=int, default=21, help="runs of each command line (0: none)")
    ap.add_argument("--kustomize", type=Path)
    ap.add_argument("--quick", action="store_true", help="a small, fast run (a smoke test, not a measure)")
    ap.add_argument(
        "--corpus",
        nargs="*",
        type=Path,
        metavar="REPO_DIR",
        help="compare every kustomization directory under these roots (default: tests/render/corpus)",
    )
    ap.add_argument(
        "--helm",
        type=Path,
        metavar="HELM",
        help="with --corpus: build with Helm charts enabled; alone: the Helm chart benchmark",
    )
    ap.add_argument("--json", type=Path, help="write the results here")
    args = ap.parse_args(argv)
    if args.quick:
        args.objects, args.rounds, args.cli_rounds = (
            min(args.objects, 90),
            min(args.rounds, 2),
            min(args.cli_rounds, 3),
        )
    exe = args.kustomize or find_kustomize()
    results: dict[str, Any] = {"kustomize": str(exe) if exe else None}
    if args.corpus is not None:
        if exe is None:
            print("kustomize binary unavailable: no corpus comparison", file=sys.stderr)
            return 2
        results["corpus"] = corpus_section(args.corpus or [DEFAULT_CORPUS], exe, helm=args.helm)
    elif args.helm is not None:
        if exe is None:
            print("kustomize binary unavailable: no Helm comparison", file=sys.stderr)
            return 2
        results["helm"] = helm_section(exe, args.helm, args.rounds)
    else:
        results["render"] = render_section(exe, args.objects, args.rounds)
        if args.cli_rounds > 0:
            print()
            results["cli"] = cli_section(exe, args.cli_rounds)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
