"""The local control plane and NATS are real: workloads roll out, CRD schemas validate, server-side apply
conflicts, JetStream stores and redelivers, and teardown leaves nothing running."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from reconciler_testing import until_sync as _wait

from reconciler.bus import Bus
from reconciler.cluster.client import KubeClient
from reconciler.errors import ConflictError, InvalidError
from reconciler.model import ObjectRef


def test_server_reports_pinned_version(kube: KubeClient) -> None:
    info = kube.request("GET", "/version")
    assert info["gitVersion"].startswith("v1.36.")


def test_deployment_rolls_out_with_replicaset_and_pods(kube: KubeClient, namespace: str) -> None:
    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": namespace},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "web", "image": "nginx:1.27"}]},
            },
        },
    }
    ref = ObjectRef(group="apps", version="v1", kind="Deployment", namespace=namespace, name="web")
    kube.apply(dep, ref, field_manager="tests")

    def available() -> bool:
        live = kube.get(ref) or {}
        conds = (live.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Available" and c["status"] == "True" for c in conds) and (
            (live.get("status") or {}).get("availableReplicas") == 2
        )

    _wait(available)
    rs, _ = kube.list("apps", "v1", "ReplicaSet", namespace=namespace)
    assert len(rs) == 1 and rs[0]["metadata"]["ownerReferences"][0]["name"] == "web"
    pods, _ = kube.list("", "v1", "Pod", namespace=namespace)
    assert len(pods) == 2
    assert all(
        p["status"]["phase"] == "Running" and p["spec"]["nodeName"].startswith("kwok-node-") for p in pods
    )


AGENT = {
    "apiVersion": "kagent.dev/v1alpha2",
    "kind": "Agent",
    "metadata": {"name": "helpdesk"},
    "spec": {
        "type": "Declarative",
        "description": "test agent",
        "declarative": {"modelConfig": "gpt-mini", "systemMessage": "Be helpful."},
    },
}


def test_agent_v1alpha2_accepted_and_malformed_rejected(kube: KubeClient, namespace: str) -> None:
    agent = {**AGENT, "metadata": {"name": "helpdesk", "namespace": namespace}}
    ref = ObjectRef(
        group="kagent.dev", version="v1alpha2", kind="Agent", namespace=namespace, name="helpdesk"
    )
    stored = kube.apply(agent, ref, field_manager="tests")
    assert stored["spec"]["declarative"]["systemMessage"] == "Be helpful."
    assert stored["metadata"]["generation"] == 1

    bad = {
        **agent,
        "metadata": {"name": "broken", "namespace": namespace},
        "spec": {"type": "BYO", "description": "declares BYO without a byo block"},
    }
    with pytest.raises(InvalidError) as exc:
        kube.apply(bad, ref.model_copy(update={"name": "broken"}), field_manager="tests")
    assert "Agent/" in str(exc.value) and "broken" in str(exc.value)
    assert kube.get(ref.model_copy(update={"name": "broken"})) is None


def test_server_side_apply_conflict_between_field_managers(kube: KubeClient, namespace: str) -> None:
    ref = ObjectRef(kind="ConfigMap", namespace=namespace, name="shared")
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "shared", "namespace": namespace},
            "data": {"k": "one"},
        },
        ref,
        field_manager="alice",
    )
    with pytest.raises(ConflictError) as exc:
        kube.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {"name": "shared", "namespace": namespace},
                "data": {"k": "two"},
            },
            ref,
            field_manager="bob",
            force=False,
        )
    assert "alice" in exc.value.message
    assert (kube.get(ref) or {})["data"]["k"] == "one"


async def test_jetstream_publish_and_durable_consumer_ack(nats_url: str) -> None:
    bus = Bus(nats_url, name="test")
    await bus.connect()
    try:
        seq1 = await bus.publish("reconciler.test.cp", b"hello", msg_id="m-1")
        seq2 = await bus.publish("reconciler.test.cp", b"hello", msg_id="m-1")  # duplicate: stored once
        assert seq1 == seq2
        await bus.js.add_consumer(
            "RECONCILER",
            durable_name="cp-test",
            filter_subject="reconciler.test.cp",
            deliver_policy="all",
            ack_policy="explicit",
        )
        sub = await bus.js.pull_subscribe_bind(durable="cp-test", stream="RECONCILER")
        msgs = await sub.fetch(10, timeout=5)
        assert [m.data for m in msgs] == [b"hello"]
        await msgs[0].ack()
        await asyncio.sleep(0.2)
        info = await bus.js.consumer_info("RECONCILER", "cp-test")
        assert info.num_ack_pending == 0 and info.num_pending == 0
    finally:
        await bus.close()


def test_teardown_leaves_no_process(tmp_path: Path) -> None:
    """A second full cluster in its own state directory: up is idempotent; after down none of its
    processes runs (and its data stays until down --purge)."""
    from reconciler.devcluster import LocalCluster
    from reconciler.devcluster.process import processes_of

    cluster = LocalCluster(tmp_path / "state", nodes=1)
    st = cluster.up(progress=lambda m: None)
    try:
        assert len(processes_of(str(cluster.state_dir))) >= 6
        again = cluster.up(progress=lambda m: None)
        assert again.pids == st.pids  # idempotent: nothing restarted
    finally:
        cluster.down(progress=lambda m: None)
    assert processes_of(str(cluster.state_dir)) == []
    assert set(cluster.running()) == set(st.pids) and not any(cluster.running().values())
    assert (cluster.state_dir / "etcd").is_dir() and cluster.load_state() is not None
    cluster.down(progress=lambda m: None, purge=True)
    assert cluster.running() == {} and not (cluster.state_dir / "etcd").exists()


def test_cluster_up_runs_prometheus_on_loopback_with_kept_targets_and_purge_erases_it(tmp_path: Path) -> None:
    """`cluster up` starts the pinned Prometheus on 127.0.0.1 (shown by `cluster status`); a killed one
    comes back on its port with its targets file; `down` stops it, `down --purge` erases its data. (No
    Kubernetes: a quick cluster of NATS and Prometheus.)"""
    import json
    import os
    import subprocess
    import sys
    import urllib.request

    from reconciler_testing import kill_group

    from reconciler.devcluster import LocalCluster
    from reconciler.devcluster.process import port_in_use, processes_of
    from reconciler.devcluster.prometheus import register_target

    cli = [sys.executable, "-m", "reconciler.cli"]
    cluster = LocalCluster(tmp_path / "state", with_kubernetes=False, with_prometheus=True)
    st = cluster.up(progress=lambda m: None)
    try:
        assert st.prometheus_url == f"http://127.0.0.1:{st.ports['prometheus']}"
        with urllib.request.urlopen(st.prometheus_url + "/-/ready", timeout=5) as resp:
            assert resp.status == 200
        status = subprocess.run(
            [*cli, "cluster", "status", "--state-dir", str(cluster.state_dir)],
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, "COLUMNS": "200"},
        )
        assert status.returncode == 0, status.stdout + status.stderr
        row = next(line for line in status.stdout.splitlines() if "prometheus" in line)
        assert "running" in row and st.prometheus_url in row, status.stdout
        targets = cluster.prometheus_files().targets
        register_target(targets, "127.0.0.1:1", {"fixture": "test"})
        kill_group(st.pids["prometheus"])
        _wait(lambda: not port_in_use(st.ports["prometheus"]), 30)  # its connections close
        again = cluster.up(progress=lambda m: None)
        assert again.ports == st.ports and again.pids["nats"] == st.pids["nats"]
        assert again.pids["prometheus"] != st.pids["prometheus"] and cluster.running()["prometheus"]
        assert "127.0.0.1:1" in json.loads(targets.read_text())[0]["targets"]
    finally:
        cluster.down(progress=lambda m: None)
    assert processes_of(str(cluster.state_dir)) == []
    assert (cluster.state_dir / "prometheus" / "data").is_dir()
    cluster.down(progress=lambda m: None, purge=True)
    assert not (cluster.state_dir / "prometheus").exists()


def test_component_failure_names_component_and_log(tmp_path: Path) -> None:
    from reconciler.devcluster import ComponentError, LocalCluster
    from reconciler.devcluster.process import processes_of

    cluster = LocalCluster(tmp_path / "bad", with_kubernetes=False)
    import os

    os.environ["RECONCILER_NATS_SERVER"] = "/bin/false"
    try:
        with pytest.raises(ComponentError) as exc:
            cluster.up(progress=lambda m: None)
    finally:
        del os.environ["RECONCILER_NATS_SERVER"]
    assert exc.value.component == "nats"
    assert "nats.log" in str(exc.value)
    assert processes_of(str(cluster.state_dir)) == []


def test_kubeconfig_is_reloaded_after_a_connection_failure(kubeconfig: Path, tmp_path: Path) -> None:
    """A client whose kubeconfig pointed at a dead address reaches the cluster once the file is
    rewritten, without a new client."""
    from ruamel.yaml import YAML

    from reconciler.devcluster.process import free_port

    yaml = YAML(typ="safe")
    doc: dict[str, Any] = yaml.load(kubeconfig.read_text())
    real = doc["clusters"][0]["cluster"]["server"]
    doc["clusters"][0]["cluster"]["server"] = f"https://127.0.0.1:{free_port()}"
    path = tmp_path / "kubeconfig"
    with path.open("w") as f:
        yaml.dump(doc, f)
    client = KubeClient(path, retry=None, timeout=5)
    try:
        with pytest.raises(Exception, match="Unreachable"):
            client.request("GET", "/version")
        doc["clusters"][0]["cluster"]["server"] = real
        with path.open("w") as f:
            yaml.dump(doc, f)
        # the connection failure makes the client notice the new file and try once more with it
        assert client.request("GET", "/version")["gitVersion"].startswith("v1.36.")
        assert client.host == real
    finally:
        client.close()
