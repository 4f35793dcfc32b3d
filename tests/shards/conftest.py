"""A three-node NATS JetStream cluster on loopback for the sharding tests
(reconciler/devcluster/natscluster.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from reconciler.devcluster.natscluster import NatsCluster


@pytest.fixture(scope="session")
def nats_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsCluster]:
    """Three nats-server nodes with JetStream, routed to each other (each test leaves every node running)."""
    cluster = NatsCluster(tmp_path_factory.mktemp("nats-cluster"), nodes=3)
    cluster.up()
    yield cluster
    cluster.down()
