"""Render benchmark: ~1000 objects across 3 environments, ours (cold and warm cache) vs `kustomize build`.

Usage: .venv/bin/python bench/render/bench_render.py [--objects 1000] [--kustomize PATH]
Prints seconds per full render of the three environments and the ratios. Without --kustomize the binary is
built/fetched with tools/controlplane/build.sh kustomize (needs Go); if that fails only our times print.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from reconciler.render import RenderCache, build, dump_yaml  # noqa: E402

ENVS = ("dev", "staging", "prod")


def generate(root: Path, objects: int) -> list[Path]:
    """Write a base with ``objects // 3`` Deployment/Service/Agent triples' worth of objects per env."""
    base = root / "base"
    base.mkdir(parents=True)
    per_env = max(objects // len(ENVS), 3)
    docs = []
    for i in range(per_env // 3):
        docs.append(
            f"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-{i}\nspec:\n  selector:\n"
            f"    matchLabels: {{app: app-{i}}}\n  template:\n    metadata:\n      labels: {{app: app-{i}}}\n"
            f"    spec:\n      containers:\n      - name: main\n        image: reg.test/app:{i}\n"
            f"        envFrom:\n        - configMapRef: {{name: shared}}\n"
        )
        docs.append(
            f"apiVersion: v1\nkind: Service\nmetadata:\n  name: app-{i}\nspec:\n"
            f"  selector: {{app: app-{i}}}\n  ports:\n  - port: 80\n"
        )
        docs.append(
            f"apiVersion: kagent.dev/v1alpha2\nkind: Agent\nmetadata:\n  name: agent-{i}\nspec:\n"
            f"  type: BYO\n  byo:\n    deployment:\n      image: reg.test/agent:{i}\n"
        )
    (base / "all.yaml").write_text("---\n".join(docs))
    (base / "kustomization.yaml").write_text(
        "resources:\n- all.yaml\nconfigMapGenerator:\n- name: shared\n  literals: [A=1]\n"
    )
    dirs = []
    for env in ENVS:
        d = root / env
        d.mkdir()
        (d / "kustomization.yaml").write_text(
            f"resources:\n- ../base\nnamespace: {env}\nnamePrefix: {env}-\ncommonLabels:\n  env: {env}\n"
            f"images:\n- name: reg.test/app\n  newTag: {env}\n"
            "patches:\n- target:\n    kind: Deployment\n  patch: |-\n    - op: add\n"
            "      path: /spec/replicas\n      value: 2\n"
        )
        dirs.append(d)
    return dirs


def timed(fn: object) -> float:
    start = time.perf_counter()
    fn()  # type: ignore[operator]
    return time.perf_counter() - start


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=1000)
    ap.add_argument("--kustomize", type=Path)
    args = ap.parse_args()
    exe = args.kustomize
    if exe is None:
        proc = subprocess.run(
            [str(REPO / "tools/controlplane/build.sh"), "kustomize"],
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode == 0:
            found = sorted(Path(proc.stdout.strip().splitlines()[-1]).glob("kustomize-*/kustomize"))
            exe = found[-1] if found else None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        dirs = generate(root, args.objects)
        count = sum(len(build(d, root=root)) for d in dirs)
        cold = timed(lambda: [dump_yaml(build(d, root=root)) for d in dirs])
        cache = RenderCache()
        for d in dirs:
            build(d, root=root, cache=cache)
            build(d, root=root, cache=cache, tree_id="fixed-tree")
        warm = timed(lambda: [build(d, root=root, cache=cache, tree_id="fixed-tree") for d in dirs])
        warm_hash = timed(lambda: [build(d, root=root, cache=cache) for d in dirs])
        print(f"objects rendered: {count} across {len(dirs)} environments")
        print(f"ours cold:                       {cold:8.3f} s")
        print(f"ours warm (cache, tree id):      {warm:8.4f} s")
        print(f"ours warm (cache, content hash): {warm_hash:8.4f} s")
        if exe is not None:
            theirs = timed(
                lambda: [
                    subprocess.run([str(exe), "build", str(d)], capture_output=True, check=True) for d in dirs
                ]
            )
            print(f"kustomize build:                 {theirs:8.3f} s")
            print(f"ratio cold/kustomize:            {cold / theirs:8.2f}")
            print(f"ratio warm/kustomize:            {warm / theirs:8.4f}")
        else:
            print("kustomize binary unavailable: no comparison")
    return 0


if __name__ == "__main__":
    sys.exit(main())
