"""The local control plane (etcd, kube-apiserver, controller-manager, scheduler, kwok) and NATS."""

from reconciler.devcluster.cluster import ClusterState, LocalCluster, default_state_dir
from reconciler.devcluster.process import ComponentError

__all__ = ["ClusterState", "ComponentError", "LocalCluster", "default_state_dir"]
