"""Failpoints: parsing, firing at the N-th hit (by the environment or a file armed later), SIGKILL of the
process group."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from reconciler.failpoints import NAMES, parse_spec

SCRIPT = """
import sys, time
from reconciler.failpoints import failpoint
for i in range(int(sys.argv[1])):
    failpoint(sys.argv[2])
    print(i, flush=True)
    time.sleep(float(sys.argv[3]))
print("done", flush=True)
"""


def _run(env: dict[str, str], *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", SCRIPT, *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_parse_spec() -> None:
    assert parse_spec(" apply=3, push=1\nack=2 ") == {"apply": 3, "push": 1, "ack": 2}
    assert parse_spec("") == {}
    for bad in ("apply", "apply=0", "apply=x", "nosuch=1"):
        with pytest.raises(ValueError, match="failpoint"):
            parse_spec(bad)
    assert "apply" in NAMES and "prune" in NAMES


def test_fires_at_the_nth_hit_from_the_environment() -> None:
    proc = _run({"RECONCILER_FAILPOINTS": "apply=3"}, "5", "apply", "0")
    assert proc.returncode == -signal.SIGKILL
    assert proc.stdout.split() == ["0", "1"]
    assert "failpoint apply hit 3: SIGKILL" in proc.stderr


def test_other_names_and_unarmed_runs_do_not_fire() -> None:
    proc = _run({"RECONCILER_FAILPOINTS": "prune=1"}, "3", "apply", "0")
    assert proc.returncode == 0 and proc.stdout.split()[-1] == "done"
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECONCILER_FAILPOINTS")}
    argv = [sys.executable, "-c", SCRIPT, "3", "apply", "0"]
    clean = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
    assert clean.returncode == 0


def test_a_typo_disarms_with_a_message_instead_of_stopping_the_process() -> None:
    proc = _run({"RECONCILER_FAILPOINTS": "aply=1"}, "2", "apply", "0")
    assert proc.returncode == 0
    assert "RECONCILER_FAILPOINTS" in proc.stderr and "aply=1" in proc.stderr


def test_a_file_arms_a_running_process_and_counts_from_then(tmp_path: Path) -> None:
    spec = tmp_path / "failpoints"
    proc = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, "2000", "push", "0.01"],
        env={**os.environ, "RECONCILER_FAILPOINTS_FILE": str(spec)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    before = [proc.stdout.readline() for _ in range(20)]  # running, unarmed
    assert before[-1].strip() == "19"
    spec.write_text("push=5\n")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert "failpoint push hit 5: SIGKILL" in err
    assert "done" not in out


def test_the_whole_process_group_dies(tmp_path: Path) -> None:
    """A group leader takes its children (a running ``git``) with it."""
    marker = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        f"child = subprocess.Popen(['sleep', '60']); open({str(marker)!r}, 'w').write(str(child.pid))\n"
        "from reconciler.failpoints import failpoint\n"
        "failpoint('commit')\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", script],
        env={**os.environ, "RECONCILER_FAILPOINTS": "commit=1"},
        capture_output=True,
        text=True,
        timeout=30,
        start_new_session=True,
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL
    child = int(marker.read_text())
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        try:  # reaped by init in a container, or a zombie of ours? neither: it was never our child
            with open(f"/proc/{child}/stat") as f:
                if f.read().split(") ", 1)[1].startswith("Z"):
                    break
        except FileNotFoundError:
            break
        time.sleep(0.05)
    else:
        os.kill(child, signal.SIGKILL)
        raise AssertionError("the child of the killed process survived")
