"""Fixtures for the renderer tests: the real kustomize binary built from tools/controlplane/kustomize."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUILD_SH = REPO / "tools" / "controlplane" / "build.sh"


@pytest.fixture(scope="session")
def kustomize_bin() -> Path:
    """Path of the pinned kustomize binary (built once by tools/controlplane/build.sh, then cached)."""
    if shutil.which("go") is None:
        pytest.fail(
            "the Go toolchain (a project requirement) is not on PATH: cannot build the reference kustomize"
        )
    proc = subprocess.run(
        [str(BUILD_SH), "kustomize"], capture_output=True, text=True, timeout=1800, check=False
    )
    assert proc.returncode == 0, f"build.sh kustomize failed:\n{proc.stderr}"
    bin_dir = Path(proc.stdout.strip().splitlines()[-1])
    matches = sorted(bin_dir.glob("kustomize-*/kustomize"))
    version = next(
        line.split("=", 1)[1]
        for line in BUILD_SH.read_text().splitlines()
        if line.startswith("KUSTOMIZE_VERSION=")
    )
    exe = bin_dir / f"kustomize-{version}" / "kustomize"
    assert exe.is_file(), f"kustomize binary missing at {exe} (found {matches})"
    return exe


@pytest.fixture(scope="session")
def helm_bin() -> Path:
    """Path of the pinned helm binary (built once by tools/helm/build.sh, then cached)."""
    if shutil.which("go") is None:
        pytest.fail("the Go toolchain (a project requirement) is not on PATH: cannot build the pinned helm")
    script = REPO / "tools" / "helm" / "build.sh"
    proc = subprocess.run([str(script)], capture_output=True, text=True, timeout=1800, check=False)
    assert proc.returncode == 0, f"tools/helm/build.sh failed:\n{proc.stderr}"
    exe = Path(proc.stdout.strip().splitlines()[-1])
    assert exe.is_file(), f"helm binary missing at {exe}"
    return exe
