"""kwok fake nodes: create them and wait until kwok reports them Ready."""

from __future__ import annotations

from pathlib import Path

from reconciler.cluster.client import KubeClient
from reconciler.model import ObjectRef

FIELD_MANAGER = "reconciler-devcluster"


def node_manifest(name: str) -> dict[str, object]:
    """A Node that kwok manages (annotation ``kwok.x-k8s.io/node: fake``, taint-free, 32 CPUs, 256 GiB)."""
    capacity = {"cpu": "32", "memory": "256Gi", "pods": "250", "ephemeral-storage": "1Ti"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {"kwok.x-k8s.io/node": "fake", "node.alpha.kubernetes.io/ttl": "0"},
            "labels": {
                "type": "kwok",
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
            },
        },
        "spec": {},
        "status": {"allocatable": capacity, "capacity": capacity},
    }


def create_nodes(kubeconfig: Path, count: int) -> None:
    """Create (or keep) nodes ``kwok-node-0`` … ``kwok-node-<count-1>``."""
    client = KubeClient(kubeconfig)
    try:
        for i in range(count):
            name = f"kwok-node-{i}"
            ref = ObjectRef(kind="Node", name=name)
            client.apply(node_manifest(name), ref, field_manager=FIELD_MANAGER)
    finally:
        client.close()


def wait_nodes_ready(kubeconfig: Path, count: int) -> bool:
    """Whether at least ``count`` nodes report condition Ready=True (one check, no waiting)."""
    client = KubeClient(kubeconfig)
    try:
        items, _ = client.list("", "v1", "Node")
    finally:
        client.close()
    ready = 0
    for node in items:
        taints = [t.get("key") for t in (node.get("spec") or {}).get("taints") or []]
        if "node.kubernetes.io/not-ready" in taints:
            continue
        for cond in node.get("status", {}).get("conditions") or []:
            if cond.get("type") == "Ready" and cond.get("status") == "True":
                ready += 1
    return ready >= count


def create_default_storage_class(kubeconfig: Path) -> None:
    """A default StorageClass served by kube-controller-manager's host-path provisioner (started with
    ``--enable-hostpath-provisioner``), so PersistentVolumeClaims bind on the local cluster."""
    client = KubeClient(kubeconfig)
    try:
        client.apply(
            {
                "apiVersion": "storage.k8s.io/v1",
                "kind": "StorageClass",
                "metadata": {
                    "name": "standard",
                    "annotations": {"storageclass.kubernetes.io/is-default-class": "true"},
                },
                "provisioner": "kubernetes.io/host-path",
                "reclaimPolicy": "Delete",
                "volumeBindingMode": "Immediate",
            },
            ObjectRef(group="storage.k8s.io", version="v1", kind="StorageClass", name="standard"),
            field_manager=FIELD_MANAGER,
        )
    finally:
        client.close()
