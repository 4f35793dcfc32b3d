"""The command line imports only what a command uses (issue 24): ``reconciler --help``, the ``--help`` of
every command and ``reconciler build DIR`` run in a fresh interpreter, which then lists the modules it
imported; none of the heavy ones (HTTP clients, protocol SDKs, the Kubernetes client, the daemon, the
probes, promotion, pydantic models the command does not need) may be among them. No timing is asserted
here: bench/render/bench_render.py measures the start-up against kustomize."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import typer
from typer.testing import CliRunner

from reconciler import cli, cli_observe, cli_probe
from reconciler.cli import app

ROOT = Path(__file__).resolve().parents[2]

#: Never imported by ``--help`` or ``build``: third-party packages (top-level names) ...
HEAVY_PACKAGES = (
    "a2a",
    "aiohttp",
    "git",
    "google.protobuf",
    "httpx",
    "kubernetes",
    "mcp",
    "mcp_types",
    "nats",
    "prometheus_client",
    "pydantic_settings",
    "ruamel",
    "semver",
    "structlog",
    "watchdog",
)
#: ... and the project's modules that only running a command needs (the probe package itself is
#: imported, for the defaults `reconciler probe --help` shows: reconciler.probe.defaults).
HEAVY_OURS = (
    "reconciler.bus",
    "reconciler.cluster",
    "reconciler.devcluster",
    "reconciler.mcpserver",
    "reconciler.model",
    "reconciler.observe",
    "reconciler.probe.a2a",
    "reconciler.probe.mcp",
    "reconciler.probe.models",
    "reconciler.probe.service",
    "reconciler.promote.history",
    "reconciler.promote.hosts",
    "reconciler.promote.promotion",
    "reconciler.promote.records",
    "reconciler.promote.rollback",
    "reconciler.reconcile",
    "reconciler.rollout",
    "reconciler.runtime",
    "reconciler.settings",
    "reconciler.source",
    "webhooks",
)
#: What ``--help`` does not need but ``build`` does (the renderer reads YAML and validates
#: kustomization.yaml with pydantic) ...
RENDERING = ("reconciler.render", "yaml")
#: ... and what only ``reconciler --help`` does without: typer coerces the parameters of a command it runs
#: (even ``--help``'s) with pydantic.
PYDANTIC = ("pydantic", "pydantic_core")

#: Runs the command line with the arguments given as JSON, then writes its exit code, output and
#: sys.modules as JSON to the file named second.
CHILD = """
import json, sys
args, report = json.loads(sys.argv[1]), sys.argv[2]
code = 0
try:
    from reconciler.cli import main
    sys.argv = ["reconciler", *args]
    main()
except SystemExit as exc:
    code = exc.code if isinstance(exc.code, int) else 1
with open(report, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""

#: Asks every command for its --help in one process (click's own parsing, as the console script).
ALL_HELPS = """
import json, sys
from typer.main import get_command
from reconciler.cli import app
command = get_command(app)
codes = {}
for path in json.loads(sys.argv[1]):
    try:
        command.main([*path, "--help"], prog_name="reconciler")
    except SystemExit as exc:
        codes[" ".join(path)] = exc.code
with open(sys.argv[2], "w") as f:
    json.dump({"codes": codes, "modules": sorted(sys.modules)}, f)
"""


def _run(code: str, args: Any, tmp_path: Path) -> dict[str, Any]:
    report = tmp_path / "report.json"
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(args), str(report)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert report.exists(), proc.stderr[-3000:]
    out: dict[str, Any] = json.loads(report.read_text())
    out["stdout"], out["stderr"] = proc.stdout, proc.stderr
    return out


def _heavy(modules: list[str], extra: tuple[str, ...] = ()) -> list[str]:
    banned = (*HEAVY_PACKAGES, *HEAVY_OURS, *extra)
    return [m for m in modules if any(m == b or m.startswith(b + ".") for b in banned)]


def _command_paths(typer_app: typer.Typer, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    """Every command and group of ``typer_app``, as the words that name it."""
    paths: list[tuple[str, ...]] = []
    for info in typer_app.registered_commands:
        name = info.name or (info.callback.__name__.replace("_", "-") if info.callback else "")
        paths.append((*prefix, name))
    for group in typer_app.registered_groups:
        assert group.name and group.typer_instance is not None
        paths.append((*prefix, group.name))
        paths.extend(_command_paths(group.typer_instance, (*prefix, group.name)))
    return paths


PATHS = _command_paths(app)


def test_the_walk_finds_every_command() -> None:
    names = {" ".join(p) for p in PATHS}
    expected = {"build", "run", "up", "status", "diff", "probe", "promote", "rollback", "history", "check"}
    assert expected | {"cluster", "cluster up", "webhooks serve"} <= names


def test_help_imports_no_heavy_module(tmp_path: Path) -> None:
    res = _run(CHILD, ["--help"], tmp_path)
    assert res["code"] == 0, res["stderr"][-3000:]
    assert "build" in res["stdout"] and "Usage" in res["stdout"]
    assert _heavy(res["modules"], (*RENDERING, *PYDANTIC, "rich")) == []  # help in click's plain format


def test_every_commands_help_works_and_imports_no_heavy_module(tmp_path: Path) -> None:
    res = _run(ALL_HELPS, [list(p) for p in PATHS], tmp_path)
    assert res["codes"] == {" ".join(p): 0 for p in PATHS}, res["stderr"][-3000:]
    assert res["stdout"].count("Usage") == len(PATHS)
    assert _heavy(res["modules"], (*RENDERING, "rich")) == []


def test_build_imports_the_renderer_and_nothing_heavy(tmp_path: Path) -> None:
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    (overlay / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cm}\ndata: {a: b}\n")
    (overlay / "kustomization.yaml").write_text(
        "resources:\n- cm.yaml\nnamePrefix: dev-\nconfigMapGenerator:\n- name: gen\n  literals: [A=1]\n"
    )
    res = _run(CHILD, ["build", str(overlay)], tmp_path)
    assert res["code"] == 0, res["stderr"][-3000:]
    assert "name: dev-cm" in res["stdout"] and "name: dev-gen-" in res["stdout"]
    assert "reconciler.render" in res["modules"]
    # the remote-base allow-list patterns (reconciler.model.remote, through the package's lazy __init__)
    # are the only model the renderer loads
    loaded = [m for m in res["modules"] if m not in ("reconciler.model", "reconciler.model.remote")]
    assert _heavy(loaded, ("rich",)) == []  # the YAML goes to standard output as it is


@pytest.mark.parametrize("path", PATHS, ids=[" ".join(p) for p in PATHS])
def test_help_in_process(path: tuple[str, ...]) -> None:
    result = CliRunner().invoke(app, [*path, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_style_tables_cover_their_enums() -> None:
    """The colour tables are keyed by the enums' values (importing the enums would import pydantic)."""
    from reconciler.model import HealthState
    from reconciler.observe.status import NOT_PROBED_STATE, SyncState

    health = {s.value for s in HealthState}
    assert set(cli_observe._SYNC_STYLE) == {s.value for s in SyncState}
    assert set(cli_observe._HEALTH_STYLE) == health | {NOT_PROBED_STATE}
    assert set(cli._STYLE) == health
    assert set(cli_probe._COLOUR) <= health
    assert all(cli._STYLE[s] for s in HealthState)  # an enum member finds its value's colour


def test_probe_defaults_are_the_limits_defaults() -> None:
    from reconciler.probe import ProbeLimits
    from reconciler.probe.defaults import DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_TOOLS, DEFAULT_TIMEOUT

    limits = ProbeLimits()
    assert (limits.timeout, limits.max_response_bytes, limits.max_tools) == (
        DEFAULT_TIMEOUT,
        DEFAULT_MAX_RESPONSE_BYTES,
        DEFAULT_MAX_TOOLS,
    )
