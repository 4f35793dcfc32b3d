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


async def test_reconciler_up_serves_the_registry_receiver_where_the_registry_notifies(tmp_path: Path) -> None:
    """What `reconciler up` serves for a cluster with --registry: a push to the cluster's registry becomes
    an ImagePushed on NATS, through the receiver on the recorded notification port."""
    import asyncio

    from reconciler_testing import NatsServer

    from reconciler.bus import STREAM_REGISTRY, Bus
    from reconciler.cli import up_webhook_settings
    from webhooks.events import ImagePushed
    from webhooks.server import serve_async

    state = tmp_path / "cluster"
    cluster = only_registry(state, True)
    nats = NatsServer(tmp_path / "js")
    nats.start()
    stop = asyncio.Event()
    server: asyncio.Task[None] | None = None
    try:
        st = await asyncio.to_thread(cluster.up, lambda m: None)
        settings = up_webhook_settings(cluster, st, "s3cret-for-ghcr").model_copy(
            update={"nats_url": nats.url}
        )
        assert settings.port == st.ports["registry-hook"]
        assert [r.name for r in settings.receivers] == ["ghcr", "dockerhub", "registry"]
        server = asyncio.create_task(serve_async(settings, stop))
        bus = Bus(nats.url, name="registry-cluster-test")
        await bus.connect()
        try:
            host = st.registry_url.removeprefix("http://")
            crane = Crane(host, tmp_path / "layers")
            digest = await asyncio.to_thread(crane.push_image, f"{host}/acme/app:2.0.0")

            async def stored() -> ImagePushed | None:
                try:
                    msg = await bus.js.get_last_msg(STREAM_REGISTRY, "registry.image.pushed.>")
                except Exception:
                    return None
                return ImagePushed.model_validate_json(msg.data)

            deadline = asyncio.get_running_loop().time() + 30
            event = await stored()
            while event is None or event.tag != "2.0.0":
                assert asyncio.get_running_loop().time() < deadline, "no ImagePushed for 2.0.0 on NATS"
                await asyncio.sleep(0.1)
                event = await stored()
            assert event.image == f"{host}/acme/app" and event.digest == digest
            assert event.source == "distribution/registry"
        finally:
            await asyncio.wait_for(bus.close(), 5)
    finally:
        stop.set()
        if server is not None:
            await asyncio.wait_for(server, 10)
        await asyncio.to_thread(only_registry(state, None).down, lambda m: None)
        nats.stop()
