"""Where reconciler keeps its files, without importing the settings machinery (the command line's
``build`` needs the cache directory and must start fast)."""

from __future__ import annotations

import os
from pathlib import Path


def default_cache_dir() -> Path:
    """``$RECONCILER_CACHE_DIR`` or ``${XDG_CACHE_HOME:-~/.cache}/reconciler``."""
    env = os.environ.get("RECONCILER_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reconciler"
