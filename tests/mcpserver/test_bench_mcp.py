"""bench/mcp/bench_mcp.py in a reduced mode (5 environments, 2 calls) on the session cluster: it runs,
writes its JSON, and the MCP answer equals `reconciler status -o json`'s. No timing is asserted here: the
speed goal lives in bench/ only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "bench" / "mcp" / "bench_mcp.py"


def test_reduced_bench_runs_and_answers_agree(tmp_path: Path, kubeconfig: Path) -> None:
    out = tmp_path / "mcp.json"
    args = ["--envs", "5", "--calls", "2", "--kubeconfig", str(kubeconfig), "--json", str(out)]
    proc = subprocess.run(
        [sys.executable, str(BENCH), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    # 0: goal met; 1: missed, which may only be the timing goal on a loaded machine (checked below)
    assert proc.returncode in (0, 1), proc.stdout + proc.stderr
    data = json.loads(out.read_text())
    assert data["envs"] == 5 and data["calls"] == 2 and data["answers_equal"]
    assert set(data["mcp_ms"]) == set(data["cli_ms"]) == {"p50", "p95", "max"}
