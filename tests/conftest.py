"""Session fixtures on the real components: a local control plane (etcd, kube-apiserver,
controller-manager, scheduler, kwok) with the agent-platform CRDs installed, NATS with JetStream, and
Git repositories with a bare remote. Set RECONCILER_TEST_KUBECONFIG to use an existing cluster instead."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reconciler_testing import FIGURES, EnvRepo, shared_dir

from reconciler.cluster.client import KubeClient
from reconciler.model import ObjectRef

__all__ = ["EnvRepo", "shared_dir"]

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The example repository's Secrets are SOPS-encrypted for this TEST-ONLY age key (deploy/examples/sops/):
#: every pass of a test reads it as the local key file, as `reconciler run --sops-age-key-file` would.
TEST_AGE_KEY = REPO_ROOT / "deploy" / "examples" / "sops" / "test-only.agekey"
os.environ.setdefault("RECONCILER_SOPS_AGE_KEY_FILE", str(TEST_AGE_KEY))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print the reliability figures the session's tests reported (recovery times, crash runs)."""
    if FIGURES:
        terminalreporter.section("reliability figures")
        for line in FIGURES:
            terminalreporter.write_line(line)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests under tests/integration are integration tests."""
    for item in items:
        if "tests/integration/" in str(item.path).replace(os.sep, "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def local_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A running local cluster + NATS for the whole session (torn down at the end)."""
    from reconciler.cluster.crds import install_crds
    from reconciler.devcluster import LocalCluster

    state = tmp_path_factory.mktemp("cluster")
    cluster = LocalCluster(state, nodes=2)
    st = cluster.up(progress=lambda m: None)
    try:
        if not os.environ.get("RECONCILER_TEST_KUBECONFIG"):
            client = KubeClient(Path(st.kubeconfig))
            install_crds(client)
            client.close()
        yield cluster
    finally:
        cluster.down(progress=lambda m: None)


@pytest.fixture(scope="session")
def kubeconfig(local_cluster: Any) -> Path:
    """The admin kubeconfig of the session cluster."""
    env = os.environ.get("RECONCILER_TEST_KUBECONFIG")
    if env:
        return Path(env)
    return Path(local_cluster.load_state().kubeconfig)


@pytest.fixture(scope="session")
def kube(kubeconfig: Path) -> Iterator[KubeClient]:
    """A client for the session cluster."""
    client = KubeClient(kubeconfig)
    yield client
    client.close()


@pytest.fixture(scope="session")
def nats_url(local_cluster: Any) -> str:
    """The URL of the session's nats-server (JetStream enabled)."""
    return str(local_cluster.load_state().nats_url)


@pytest.fixture
def namespace(kube: KubeClient) -> Iterator[str]:
    """A fresh namespace for one test, deleted afterwards."""
    name = f"t-{uuid.uuid4().hex[:8]}"
    ref = ObjectRef(kind="Namespace", name=name)
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}}, ref, field_manager="tests"
    )
    yield name
    kube.delete(ref)


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    """A fresh reconciler cache directory."""
    d = tmp_path / "cache"
    d.mkdir()
    return d


@pytest.fixture
def env_repo(tmp_path: Path) -> EnvRepo:
    """An empty environment repository (one initial commit with a README) with a bare remote."""
    from reconciler.source.bootstrap import init_repo_with_remote

    src = tmp_path / "src"
    src.mkdir()
    (src / "envs").mkdir()
    (src / "envs" / ".keep").write_text("")
    remote, work = init_repo_with_remote(src, tmp_path / "repo")
    return EnvRepo(remote, work)


@pytest.fixture
def example_repo(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[EnvRepo]:
    """A copy of this project's example environment repository (envs/ + overlays/) with a bare remote.

    Every test of it applies into the same namespaces (agents-dev …), and an object another environment's
    inventory holds blocks a pass (one owner per object): so when the test used the session cluster, the
    inventories of this copy are deleted afterwards, handing its objects to the next test."""
    from reconciler.source.bootstrap import init_repo_with_remote

    remote, work = init_repo_with_remote(REPO_ROOT, tmp_path / "repo")
    yield EnvRepo(remote, work)
    if "kube" in request.fixturenames or "kubeconfig" in request.fixturenames:
        from reconciler.cluster.inventory import NAMESPACE, source_hash

        client = KubeClient(request.getfixturevalue("kubeconfig"))
        try:
            items, _ = client.list(
                "",
                "v1",
                "ConfigMap",
                namespace=NAMESPACE,
                label_selector=f"reconciler.dev/source-hash={source_hash(str(remote.resolve()))}",
            )
            for item in items:
                client.delete(ObjectRef(kind="ConfigMap", namespace=NAMESPACE, name=item["metadata"]["name"]))
        finally:
            client.close()
