"""Generate the kustomize base deploy/kustomize from the Helm chart deploy/helm/reconciler (the one source).

    python tools/deploy/generate_kustomize.py           # rewrite deploy/kustomize
    python tools/deploy/generate_kustomize.py --check   # exit 1 (naming the files) when it is out of date

The chart is rendered with its default values by the pinned helm (tools/helm/build.sh):
``helm template reconciler deploy/helm/reconciler --namespace reconciler-system``. Each template's documents
go to ``deploy/kustomize/<template file name>`` as helm printed them (without helm's ``# Source:`` lines);
``kustomization.yaml`` lists ``namespace.yaml`` (written by hand: helm does not create the release namespace)
and the generated files. Change the chart, then run this; tests/platform/test_platform_deploy_render.py checks
that the two agree.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "deploy" / "helm" / "reconciler"
BASE = ROOT / "deploy" / "kustomize"
RELEASE = "reconciler"
NAMESPACE = "reconciler-system"
SOURCE_PREFIX = f"# Source: {CHART.name}/templates/"

KUSTOMIZATION_HEAD = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
# reconciler in a cluster: the daemon (leader-elected, two replicas), the webhook receivers and a NATS
# JetStream server, in namespace reconciler-system (where the daemon also keeps the inventories).
#
# Generated from the Helm chart deploy/helm/reconciler (its default values) by
# tools/deploy/generate_kustomize.py: change the chart and run it again; only namespace.yaml is written by
# hand. Set your repository and image in an overlay (see deploy/README.md).
#
# Before applying, create the Secrets the pods read (both optional; see deploy/README.md):
#   reconciler-git       key "credentials": a Git credential-store line (https://user:token@host)
#   reconciler-webhooks  one key per receiver secretEnv named in ConfigMap reconciler-webhooks
namespace: reconciler-system
resources:
- namespace.yaml
"""


def helm_binary() -> str:
    """The pinned helm (built by tools/helm/build.sh when missing)."""
    proc = subprocess.run(
        [str(ROOT / "tools" / "helm" / "build.sh")], capture_output=True, text=True, check=True, timeout=1800
    )
    return proc.stdout.strip().splitlines()[-1]


def render(helm: str) -> str:
    """``helm template`` of the chart with its defaults, in an empty helm home (no user settings)."""
    with tempfile.TemporaryDirectory(prefix="reconciler-deploy-") as tmp:
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": tmp,
            "HELM_CONFIG_HOME": f"{tmp}/config",
            "HELM_CACHE_HOME": f"{tmp}/cache",
            "HELM_DATA_HOME": f"{tmp}/data",
        }
        proc = subprocess.run(
            [helm, "template", RELEASE, str(CHART), "--namespace", NAMESPACE],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
    if proc.returncode != 0:
        raise SystemExit(f"helm template failed:\n{proc.stderr}")
    return proc.stdout


def split(stream: str) -> dict[str, list[str]]:
    """The documents of a ``helm template`` stream by template file name, in helm's order."""
    files: dict[str, list[str]] = {}
    for doc in stream.split("\n---\n"):
        lines = doc.strip("\n").splitlines()
        if lines and lines[0] == "---":
            lines = lines[1:]
        if not lines:
            continue
        if not lines[0].startswith(SOURCE_PREFIX):
            raise SystemExit(f"a document without a '# Source:' line: {lines[0]!r}")
        name = lines[0][len(SOURCE_PREFIX) :]
        if "/" in name:
            raise SystemExit(f"templates in subdirectories are not handled: {name}")
        files.setdefault(name, []).append("\n".join(lines[1:]).rstrip() + "\n")
    return files


def generate(helm: str) -> dict[str, str]:
    """Every generated file of deploy/kustomize: name -> content."""
    out: dict[str, str] = {}
    for name, docs in split(render(helm)).items():
        head = (
            f"# Generated from deploy/helm/reconciler/templates/{name} by tools/deploy/generate_kustomize.py;"
            " do not edit.\n"
        )
        out[name] = head + "---\n".join(docs)
    out["kustomization.yaml"] = KUSTOMIZATION_HEAD + "".join(f"- {n}\n" for n in out)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report files that are out of date")
    args = parser.parse_args(argv)
    wanted = generate(helm_binary())
    keep = {"namespace.yaml"}
    current = {p.name for p in BASE.iterdir() if p.is_file()} - keep
    stale = sorted(n for n in wanted if not (BASE / n).is_file() or (BASE / n).read_text() != wanted[n])
    extra = sorted(current - set(wanted))
    if args.check:
        for n in stale:
            print(f"deploy/kustomize/{n}: out of date", file=sys.stderr)
        for n in extra:
            print(f"deploy/kustomize/{n}: not generated from the chart", file=sys.stderr)
        return 1 if stale or extra else 0
    for n in extra:
        (BASE / n).unlink()
    for n in stale:
        (BASE / n).write_text(wanted[n])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
