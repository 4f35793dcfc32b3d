"""``reconciler status`` and ``reconciler diff`` on the real control plane and a bare Git remote:
exit codes 0/1/2/3, coloured unified diffs, and -o json|yaml."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from _observe_support import seed
from reconciler_testing import EnvRepo
from ruamel.yaml import YAML
from typer.testing import CliRunner

from reconciler.cli_observe import EXIT_DIFFERENCES, EXIT_FAILED, EXIT_USAGE, register
from reconciler.cluster.client import KubeClient
from reconciler.reconcile import PassContext, run_pass
from reconciler.source import GitSource

pytestmark = pytest.mark.integration

GREEN, RED = "\x1b[32m", "\x1b[31m"


@pytest.fixture
def cli(monkeypatch: pytest.MonkeyPatch, cache_dir: Path) -> typer.Typer:
    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(cache_dir))
    monkeypatch.delenv("NO_COLOR", raising=False)
    app = typer.Typer()
    register(app)
    return app


def test_diff_and_status_follow_git_and_the_cluster(
    cli: typer.Typer, env_repo: EnvRepo, kube: KubeClient, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    first = seed(env_repo, namespace)
    applied = run_pass(
        PassContext(source=GitSource(str(env_repo.remote), "main", tmp_path / "c"), client=kube), "dev"
    )
    assert applied.ok, applied.error
    common = ["--repo", str(env_repo.remote), "--kubeconfig", str(kubeconfig)]

    same = runner.invoke(cli, ["diff", "dev", *common, "--exit-code"])
    assert same.exit_code == 0, same.output
    assert f"dev at main@sha1:{first}: no differences" in same.stdout

    status = runner.invoke(cli, ["status", "--env", "dev", *common, "-o", "json"])
    assert status.exit_code == 0, status.output
    (row,) = json.loads(status.stdout)
    assert (row["name"], row["revision"], row["sync"], row["objects"]) == (
        "dev",
        f"main@sha1:{first}",
        "Synced",
        2,
    )
    assert sum(row["health_counts"].values()) == 2 and row["health"]

    second = seed(env_repo, namespace, tag="0.2.0", message="dev: clock 0.2.0")
    changed = runner.invoke(cli, ["diff", "dev", *common, "--exit-code", "--color"])
    assert changed.exit_code == EXIT_DIFFERENCES, changed.output
    out = changed.stdout
    dep = f"Deployment/{namespace}/clock-mcp"
    assert dep in out and "(configured)" in out
    add = next(line for line in out.splitlines() if "clock-mcp:0.2.0" in line)
    delete = next(line for line in out.splitlines() if "clock-mcp:0.1.0" in line)
    assert GREEN in add and "+" in add and RED in delete and "-" in delete
    assert f"Service/{namespace}/clock-mcp" not in out  # unchanged objects are not listed

    plain = runner.invoke(cli, ["diff", "dev", *common])  # no --exit-code: differences are not a failure
    assert plain.exit_code == 0 and "\x1b[" not in plain.stdout

    as_json = runner.invoke(cli, ["diff", "dev", *common, "-o", "json", "--exit-code"])
    assert as_json.exit_code == EXIT_DIFFERENCES
    data = json.loads(as_json.stdout)
    assert data["revision"] == f"main@sha1:{second}"
    assert [(e["object"], e["action"]) for e in data["entries"]] == [(dep, "configured")]
    assert "+      - image: ghcr.io/acme/clock-mcp:0.2.0" in data["entries"][0]["diff"].splitlines()

    behind = runner.invoke(cli, ["status", "--env", "dev", *common, "-o", "yaml", "--no-health"])
    assert behind.exit_code == 0, behind.output
    (row,) = YAML(typ="safe").load(behind.stdout)
    assert (row["revision"], row["sync"]) == (f"main@sha1:{first}", "OutOfSync")

    text = runner.invoke(cli, ["status", "--env", "dev", *common])
    assert text.exit_code == 0 and "OutOfSync" in text.stdout and f"main@{first[:7]}" in text.stdout


def test_diff_usage_and_failure_exit_codes(
    cli: typer.Typer, env_repo: EnvRepo, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    runner = CliRunner()
    seed(env_repo, namespace)
    common = ["--repo", str(env_repo.remote), "--kubeconfig", str(kubeconfig)]
    unknown = runner.invoke(cli, ["diff", "nope", *common])
    assert unknown.exit_code == EXIT_USAGE
    assert "'nope' is not defined" in unknown.output
    missing = runner.invoke(
        cli, ["diff", "dev", "--repo", str(tmp_path / "no-such-repo"), "--kubeconfig", str(kubeconfig)]
    )
    assert missing.exit_code == EXIT_FAILED and "error:" in missing.output
    bad_output = runner.invoke(cli, ["diff", "dev", *common, "-o", "xml"])
    assert bad_output.exit_code == EXIT_USAGE
    env_repo.write("overlays/dev/service.yaml", "apiVersion: v1\nkind: Service\nmetadata: {name: x\n")
    env_repo.commit("broken")
    broken = runner.invoke(cli, ["diff", "dev", *common, "--exit-code"])
    assert broken.exit_code == EXIT_FAILED and "overlays/dev/service.yaml" in broken.output
    server = runner.invoke(cli, ["status", "--server", "http://127.0.0.1:9"])
    assert server.exit_code == EXIT_FAILED and "127.0.0.1:9" in server.output
