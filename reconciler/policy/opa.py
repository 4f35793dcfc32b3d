"""Where the pinned Open Policy Agent binary is, building it when missing.

``tools/controlplane/build.sh opa`` builds ``github.com/open-policy-agent/opa`` at the version its
``OPA_VERSION`` names (the module pinned in ``tools/opa/go.mod``) into the version-keyed tool cache, as it
does the control plane's binaries; ``$RECONCILER_OPA`` names another binary instead (a container image
that ships one, a machine without Go).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
from pathlib import Path

from reconciler.devcluster.binaries import BUILD_SCRIPT, BuildError, _version
from reconciler.errors import ReconcilerError
from reconciler.paths import default_cache_dir

#: Names an ``opa`` executable to use instead of the pinned build.
ENV_VAR = "RECONCILER_OPA"

_lock = threading.Lock()


class EngineUnavailable(ReconcilerError):
    """No OPA binary can be found or built; the message says what to do."""


def opa_version() -> str:
    """The pinned OPA version (``OPA_VERSION`` of build.sh)."""
    return _version("OPA_VERSION")


def opa_binary(bin_dir: Path) -> Path:
    """Where build.sh puts the pinned OPA under ``bin_dir``."""
    return bin_dir / f"opa-{opa_version()}" / "opa"


def conftest_binary(bin_dir: Path) -> Path:
    """Where build.sh puts the pinned conftest (bench/policy's anchor) under ``bin_dir``."""
    return bin_dir / f"conftest-{_version('CONFTEST_VERSION')}" / "conftest"


def _bin_dirs() -> list[Path]:
    """Where built tools are looked for: the cache directory (``$RECONCILER_CACHE_DIR``), then the default
    one (a command run with a cache directory of its own still finds the tools built before)."""
    dirs = [default_cache_dir() / "bin"]
    default = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reconciler" / "bin"
    return dirs if default in dirs else [*dirs, default]


def _build(target: str) -> Path:
    if not BUILD_SCRIPT.exists():
        raise EngineUnavailable(
            f"no OPA binary: set ${ENV_VAR} to an opa {opa_version()} executable (no build script at "
            f"{BUILD_SCRIPT})"
        )
    if shutil.which("go") is None:
        raise EngineUnavailable(
            f"no OPA binary: set ${ENV_VAR} to an opa {opa_version()} executable, or install Go 1.26+ so "
            f"that `{BUILD_SCRIPT} {target}` builds the pinned one"
        )
    proc = subprocess.run(
        ["bash", str(BUILD_SCRIPT), target], stdout=subprocess.PIPE, stderr=None, text=True, check=False
    )
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise BuildError(f"building {target} failed (exit {proc.returncode}); see the output above")
    return Path(lines[-1])


def ensure_opa() -> Path:
    """The OPA executable: ``$RECONCILER_OPA``, else the pinned build in the tool cache (the cache
    directory's, else the default one's), built once when missing (``build.sh opa``: a few minutes,
    progress on stderr).

    Raises:
        EngineUnavailable: ``$RECONCILER_OPA`` is not an executable file, or nothing can build OPA.
        BuildError: the build failed.
    """
    named = os.environ.get(ENV_VAR, "").strip()
    if named:
        path = Path(named)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise EngineUnavailable(f"${ENV_VAR}={named} is not an executable file")
        return path
    for bin_dir in _bin_dirs():
        if opa_binary(bin_dir).exists():
            return opa_binary(bin_dir)
    cached = opa_binary(default_cache_dir() / "bin")
    with _lock:  # one build at a time in this process (passes of several environments)
        if cached.exists():
            return cached
        path = opa_binary(_build("opa"))
    if not path.exists():
        raise BuildError(f"{BUILD_SCRIPT} opa finished but {path} does not exist")
    return path


def ensure_conftest() -> Path:
    """The pinned conftest (built once when missing); only bench/policy uses it, as its anchor.

    Raises:
        EngineUnavailable, BuildError: as :func:`ensure_opa`.
    """
    for bin_dir in _bin_dirs():
        if conftest_binary(bin_dir).exists():
            return conftest_binary(bin_dir)
    path = conftest_binary(_build("conftest"))
    if not path.exists():
        raise BuildError(f"{BUILD_SCRIPT} conftest finished but {path} does not exist")
    return path
