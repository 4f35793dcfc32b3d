"""Integration: ``reconciler cluster up --registry`` runs the local CNCF Distribution registry as a cluster
component (here alone: without Kubernetes, NATS and Prometheus), remembered across ``up`` runs, shown by
``cluster status``, stopped by ``down`` with its images kept, and dropped by ``--no-registry``."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.devcluster.cluster import LocalCluster, describe, status_lines
from reconciler.devcluster.registry import Crane, ready

pytestmark = pytest.mark.integration


def only_registry(state: Path, registry: bool | None) -> LocalCluster:
    return LocalCluster(
        state, with_kubernetes=False, with_nats=False, with_prometheus=False, with_registry=registry
    )


def test_cluster_up_registry_is_remembered_shown_and_keeps_its_images(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    cluster = only_registry(state, True)
    try:
        st = cluster.up(progress=lambda m: None)
        assert st.registry and ready(st.registry_url)
        assert st.registry_notify_url == f"http://127.0.0.1:{st.ports['registry-hook']}/hook/registry"
        rows = {name: (status, where) for name, status, where in status_lines(cluster)}
        assert rows["registry"][0].startswith("running") and st.registry_url in rows["registry"][1]
        info = describe(st)["registry"]
        assert info["host"] == st.registry_url.removeprefix("http://")
        assert Path(info["token_file"]).stat().st_mode & 0o077 == 0  # the token file is private
        config = (state / "registry" / "config.yml").read_text()
        assert st.registry_notify_url in config and "Bearer " in config

        crane = Crane(info["host"], tmp_path / "layers")
        digest = crane.push_image(f"{info['host']}/acme/app:1.0.0")

        assert cluster.down(progress=lambda m: None) == ["registry"]
        assert not ready(st.registry_url)
        again = only_registry(state, None).up(progress=lambda m: None)  # remembered, same port, same data
        assert again.registry_url == st.registry_url and ready(again.registry_url)
        assert crane.digest(f"{info['host']}/acme/app:1.0.0") == digest

        dropped = only_registry(state, False).up(progress=lambda m: None)
        assert not dropped.registry and "registry" not in dropped.pids and not ready(st.registry_url)
        assert (state / "registry" / "data").is_dir()  # --no-registry keeps the images
    finally:
        only_registry(state, None).down(progress=lambda m: None)
