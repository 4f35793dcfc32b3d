"""The CLI's one-pass commands and the watchdog trigger, on the real cluster and a local Git repository."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from reconciler_testing import EnvRepo, daemon_settings
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.cluster.client import KubeClient
from reconciler.model import ObjectRef, PassResult
from reconciler.runtime import Daemon

runner = CliRunner()

CM = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\ndata:\n  LEVEL: {level}\n"


def _seed(repo: EnvRepo, namespace: str, level: str) -> str:
    repo.write("envs/dev.yaml", f"overlay: overlays/dev\nnamespace: {namespace}\nsync: {{interval: 3600}}\n")
    repo.write("overlays/dev/kustomization.yaml", "resources:\n- cm.yaml\n")
    repo.write("overlays/dev/cm.yaml", CM.format(level=level))
    return repo.commit(f"level {level}")


def test_reconcile_command_prints_changeset(
    env_repo: EnvRepo, kubeconfig: Path, namespace: str, monkeypatch: object, tmp_path: Path
) -> None:
    import os

    os.environ["RECONCILER_CACHE_DIR"] = str(tmp_path / "cache")
    try:
        _seed(env_repo, namespace, "info")
        args = ["reconcile", "dev", "--repo", str(env_repo.remote), "--kubeconfig", str(kubeconfig)]
        dry = runner.invoke(app, [*args, "--dry-run"])
        assert dry.exit_code == 0, dry.output
        assert f"ConfigMap/{namespace}/settings" in dry.output and "created" in dry.output
        real = runner.invoke(app, args)
        assert real.exit_code == 0, real.output
        again = runner.invoke(app, [*args, "-o", "json"])
        assert again.exit_code == 0
        assert '"action": "unchanged"' in again.output
        built = runner.invoke(app, ["build", "dev", "--repo", str(env_repo.remote)])
        assert built.exit_code == 0 and "LEVEL: info" in built.output
    finally:
        del os.environ["RECONCILER_CACHE_DIR"]


async def test_watchdog_on_local_repository_triggers_a_pass(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, cache_dir: Path
) -> None:
    _seed(env_repo, namespace, "info")
    results: list[PassResult] = []
    settings = daemon_settings(env_repo.work, kubeconfig, cache_dir, watch_local=True, drift_watch=False)
    daemon = Daemon(settings, on_result=results.append)
    await daemon.start()
    try:
        deadline = time.monotonic() + 30
        while not results and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert results and results[0].ok
        sha = await asyncio.to_thread(_seed, env_repo, namespace, "debug")
        deadline = time.monotonic() + 10
        while not results[-1].revision.endswith(sha) and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert results[-1].revision.endswith(sha)
        assert "git-watch" in results[-1].trigger
        # an uncommitted edit in the working copy is never applied
        (env_repo.work / "overlays/dev/cm.yaml").write_text(CM.format(level="dirty"))
        result = await daemon.trigger("dev", "test")
        assert result.ok and result.revision.endswith(sha)
        live = kube.get(ObjectRef(kind="ConfigMap", namespace=namespace, name="settings")) or {}
        assert live["data"]["LEVEL"] == "debug"
    finally:
        await daemon.stop()
