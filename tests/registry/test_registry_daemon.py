"""Integration on the session's cluster and NATS: the daemon scans the tag list of an image policy with
``scan: {interval: 1}`` in a real registry that notifies nobody (every webhook lost), commits the pushed
version with its digest, and the pass that follows applies it to the Deployment."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from reconciler_testing import EnvRepo, daemon_settings, until

from reconciler.cluster.client import KubeClient
from reconciler.devcluster.registry import Crane, start_registry
from reconciler.model import ObjectRef, PassResult
from reconciler.runtime import Daemon

pytestmark = pytest.mark.integration


def deployment(image: str) -> str:
    return (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: clock}\nspec:\n  replicas: 1\n"
        "  selector: {matchLabels: {app: clock}}\n  template:\n    metadata: {labels: {app: clock}}\n"
        f"    spec:\n      containers:\n      - {{name: server, image: '{image}:0.9.0'}}\n"
    )


async def test_daemon_scan_promotes_a_version_no_webhook_announced(
    env_repo: EnvRepo,
    kubeconfig: Path,
    kube: KubeClient,
    namespace: str,
    cache_dir: Path,
    nats_url: str,
    tmp_path: Path,
) -> None:
    with start_registry(tmp_path / "registry") as registry:
        crane = Crane(registry.host, tmp_path / "layers")
        image = f"{registry.host}/acme/clock-mcp"
        env_repo.write(
            "envs/dev.yaml",
            f"overlay: overlays/dev\nnamespace: {namespace}\npromotion: {{via: push}}\n"
            "health: {timeout: 5}\n"
            f"imagePolicies:\n- name: clock\n  image: {image}\n  policy: {{semver: {{range: '>=1.0.0'}}}}\n"
            "  digest: pin\n  scan: {interval: 1}\n",
        )
        env_repo.write(
            "overlays/dev/kustomization.yaml",
            f"resources:\n- deployment.yaml\nimages:\n- name: {image}\n  newTag: 0.9.0\n",
        )
        env_repo.write("overlays/dev/deployment.yaml", deployment(image))
        await asyncio.to_thread(env_repo.commit, "dev follows the local registry")
        results: list[PassResult] = []
        daemon = Daemon(
            daemon_settings(env_repo.remote, kubeconfig, cache_dir, nats_url=nats_url),
            on_result=results.append,
        )
        await daemon.start()
        try:
            await until(lambda: results, 60, "the first pass")
            assert results[0].ok, results[0].error
            assert daemon.scanner is not None
            digest = await asyncio.to_thread(crane.push_image, f"{image}:1.1.0")
            ref = ObjectRef(group="apps", version="v1", kind="Deployment", namespace=namespace, name="clock")

            def applied() -> bool:
                obj = kube.get(ref)
                containers = (
                    (obj or {}).get("spec", {}).get("template", {}).get("spec", {}).get("containers", [])
                )
                return bool(containers) and containers[0].get("image") == f"{image}:1.1.0@{digest}"

            await until(applied, 60, "the scanned version is applied")
            report = daemon.scanner.reports[image]
            assert report.error == "" and report.candidates == {"1.1.0": digest}
        finally:
            await daemon.stop()
