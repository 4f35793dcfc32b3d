"""The command line: rendering, schema, exit codes, the build script's missing-Go error."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.render import build, dump_yaml

ROOT = Path(__file__).resolve().parents[2]
runner = CliRunner()


def test_build_dir_renders_like_kustomize_build() -> None:
    result = runner.invoke(app, ["build", str(ROOT / "overlays" / "staging")])
    assert result.exit_code == 0, result.output
    assert "name: agents-staging" in result.output
    assert "image: ghcr.io/acme/clock-mcp:0.1.0" in result.output
    assert "kind: StatefulSet" in result.output and "kind: MCPServer" in result.output
    assert result.output == dump_yaml(build(ROOT / "overlays" / "staging", root=ROOT))
    assert result.output.count("\n---\n") == 35  # 36 objects


def test_build_missing_directory_is_a_usage_error(tmp_path: Path) -> None:
    result = runner.invoke(app, ["build", str(tmp_path / "nope")])
    assert result.exit_code == 2


def test_build_broken_overlay_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources:\n- missing.yaml\n")
    result = runner.invoke(app, ["build", str(tmp_path), "--root", str(tmp_path)])
    assert result.exit_code == 1
    assert "missing.yaml" in result.output


def test_schema_is_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0
    schema = json.loads(result.output)
    assert "overlay" in schema["properties"] and "overlay" in schema["required"]


def test_cluster_status_without_cluster_exits_1(tmp_path: Path) -> None:
    result = runner.invoke(app, ["cluster", "status", "--state-dir", str(tmp_path)])
    assert result.exit_code == 1
    assert "no local cluster" in result.output


def test_build_script_without_go_fails_clearly(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("bash", "dirname", "env"):
        found = shutil.which(tool)
        assert found
        os.symlink(found, bin_dir / tool)
    proc = subprocess.run(
        ["bash", str(ROOT / "tools/controlplane/build.sh"), "all"],
        env={"PATH": str(bin_dir), "HOME": str(tmp_path), "RECONCILER_CACHE_DIR": str(tmp_path / "c")},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 3
    assert "Go toolchain" in proc.stderr


def test_build_dir_outside_a_git_repository_reaches_bases(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "overlays", tmp_path / "overlays")
    result = runner.invoke(app, ["build", str(tmp_path / "overlays" / "dev")])
    assert result.exit_code == 0, result.output
    assert "namespace: agents-dev" in result.output


def test_unusable_cache_directory_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(blocker / "cache"))
    result = runner.invoke(app, ["build", "dev", "--repo", str(ROOT)])
    assert result.exit_code == 1
    assert "cache directory" in result.output
    assert "Traceback" not in result.output


def test_cluster_kubeconfig_without_cluster_names_the_given_state_dir(tmp_path: Path) -> None:
    state = tmp_path / "my state"
    result = runner.invoke(app, ["cluster", "kubeconfig", "--state-dir", str(state)])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert f"no local cluster in {state}" in text
    assert f"reconciler cluster up --state-dir '{state}'" in text


def test_cluster_down_without_cluster_deletes_nothing(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    for args in (["cluster", "down"], ["cluster", "down", "--purge"]):
        result = runner.invoke(app, [*args, "--state-dir", str(tmp_path)])
        assert result.exit_code == 0, result.output
        assert "nothing was running" in result.output
    assert (tmp_path / "notes.txt").read_text() == "mine"  # --purge erases only what a cluster wrote
