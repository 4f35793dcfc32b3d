"""Render benchmark: ~1000 objects across 3 environments, ours (cold and warm) vs `kustomize build`.

Usage: .venv/bin/python bench/render/bench_render.py [--objects 1000] [--rounds 5] [--kustomize PATH]

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

Targets (issue 3): cold <= 1.0x kustomize, warm >= 10x faster (ratio <= 0.1).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from reconciler.render import RenderCache, build, dump_yaml  # noqa: E402

ENVS = ("dev", "staging", "prod")


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


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--kustomize", type=Path)
    args = ap.parse_args()
    exe = args.kustomize or find_kustomize()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dirs = generate(root, args.objects)
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

        cold_proc = median_seconds(cold_new_process, args.rounds)
        cold = median_seconds(cold_in_process, args.rounds)
        warm_t = median_seconds(warm, args.rounds)
        print(f"objects rendered: {count} across {len(dirs)} environments, median of {args.rounds} rounds")
        print(f"ours cold (new process):   {cold_proc:8.3f} s")
        print(f"ours cold (in process):    {cold:8.3f} s")
        print(f"ours warm (render cache):  {warm_t:8.4f} s")
        if exe is None:
            print("kustomize binary unavailable: no comparison")
            return 0
        theirs_text = [
            subprocess.run([str(exe), "build", str(d)], capture_output=True, text=True, check=True).stdout
            for d in dirs
        ]
        print(f"output identical to kustomize: {theirs_text == ours_text}")

        def kustomize() -> None:
            for d in dirs:
                subprocess.run([str(exe), "build", str(d)], capture_output=True, check=True)

        theirs = median_seconds(kustomize, args.rounds)
        print(f"kustomize build (anchor):  {theirs:8.3f} s")
        print(f"ratio cold new process / kustomize: {cold_proc / theirs:6.2f}   (target <= 1.0)")
        print(f"ratio cold in process / kustomize:  {cold / theirs:6.2f}   (target <= 1.0)")
        print(f"ratio warm / kustomize:             {warm_t / theirs:6.4f} (target <= 0.1)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
