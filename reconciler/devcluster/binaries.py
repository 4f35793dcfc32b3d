"""Locate, and build when missing, the local control plane's binaries.

The build itself is ``tools/controlplane/build.sh`` (pinned Go modules; outputs cached outside Git under
``$RECONCILER_CACHE_DIR/bin/<name>-<version>/``).
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import ReconcilerError

REPO_ROOT = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO_ROOT / "tools" / "controlplane" / "build.sh"


class BuildError(ReconcilerError):
    """The control plane's binaries could not be built."""


@dataclass(frozen=True)
class Binaries:
    """Paths of the executables of the local control plane."""

    kube_apiserver: Path
    kube_controller_manager: Path
    kube_scheduler: Path
    kubectl: Path
    etcd: Path
    kwok: Path
    kwok_stages: Path


def _version(var: str) -> str:
    for line in BUILD_SCRIPT.read_text().splitlines():
        if line.startswith(var + "="):
            return line.split("=", 1)[1].strip()
    raise BuildError(f"{BUILD_SCRIPT}: {var} is not set")


def expected_binaries(bin_dir: Path) -> Binaries:
    """Where build.sh puts each binary under ``bin_dir`` (``.../reconciler/bin``)."""
    k8s = bin_dir / f"k8s-{_version('K8S_VERSION')}"
    kwok = bin_dir / f"kwok-{_version('KWOK_VERSION')}"
    return Binaries(
        kube_apiserver=k8s / "kube-apiserver",
        kube_controller_manager=k8s / "kube-controller-manager",
        kube_scheduler=k8s / "kube-scheduler",
        kubectl=k8s / "kubectl",
        etcd=bin_dir / f"etcd-{_version('ETCD_VERSION')}" / "etcd",
        kwok=kwok / "kwok",
        kwok_stages=kwok / "stages.yaml",
    )


def ensure_binaries(*, quiet: bool = False) -> Binaries:
    """Build whatever is missing (progress on stderr) and return the binaries' paths.

    Raises:
        BuildError: when Go is missing or a build fails; the message says which and why.
    """
    if not BUILD_SCRIPT.exists():
        raise BuildError(f"{BUILD_SCRIPT} is missing: run from a checkout of the reconciler repository")
    if shutil.which("go") is None:
        raise BuildError(
            "the Go toolchain (go 1.26+) is required to build the local control plane and was not found "
            "on PATH; install Go, or pass --kubeconfig to use an existing cluster"
        )
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "all"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL if quiet else sys.stderr,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise BuildError(f"{BUILD_SCRIPT} all failed with exit code {proc.returncode} (its output is above)")
    lines = proc.stdout.strip().splitlines()
    bins = expected_binaries(Path(lines[-1]))
    for p in (bins.kube_apiserver, bins.etcd, bins.kwok, bins.kwok_stages):
        if not p.exists():
            raise BuildError(f"{BUILD_SCRIPT} finished but {p} does not exist")
    return bins
