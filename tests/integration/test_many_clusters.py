"""Many clusters: each environment's ``context`` (or ``cluster.secretRef``) picks its target cluster, on two
real local control planes: the session cluster (context ``alpha``) and a second one started for this module
(context ``beta``, ~30-60 s), merged into one kubeconfig. A cluster that is down fails only its own
environments; the daemon keeps converging the others and recovers when it comes back."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from aiohttp.test_utils import TestClient, TestServer
from reconciler_testing import (
    EnvRepo,
    daemon_settings,
    kubeconfig_of,
    merged_kubeconfig,
    second_cluster,
    until,
)
from typer.testing import CliRunner

from reconciler.cli import app as cli_app
from reconciler.cli_observe import register
from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import NAMESPACE, InventoryStore
from reconciler.devcluster import LocalCluster
from reconciler.model import ObjectRef
from reconciler.reconcile import PassContext, run_pass
from reconciler.runtime import Daemon
from reconciler.runtime.http import build_app
from reconciler.source import GitSource

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def beta(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """A second local control plane, erased at the end of the module."""
    with second_cluster(tmp_path_factory.mktemp("beta")) as cluster:
        yield cluster


@pytest.fixture(scope="module")
def beta_kubeconfig(beta: LocalCluster) -> Path:
    return kubeconfig_of(beta)


@pytest.fixture(scope="module")
def two_contexts(kubeconfig: Path, beta: LocalCluster, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One kubeconfig with the contexts ``alpha`` (the session cluster, current) and ``beta``."""
    out = merged_kubeconfig(tmp_path_factory.mktemp("kubeconfig") / "config", {"alpha": kubeconfig})
    # the second as a user adds it (both local clusters' files name their entries reconciler-local)
    merge = ["--merge-into", str(out), "--context", "beta"]
    added = CliRunner().invoke(cli_app, ["cluster", "kubeconfig", "--state-dir", str(beta.state_dir), *merge])
    assert added.exit_code == 0 and added.output.strip().endswith(str(out)), added.output
    return out


@pytest.fixture
def beta_kube(beta_kubeconfig: Path) -> Iterator[KubeClient]:
    client = KubeClient(beta_kubeconfig)
    yield client
    client.close()


@pytest.fixture
def prefix(kube: KubeClient, beta_kube: KubeClient) -> Iterator[str]:
    """A unique prefix of this test's namespaces (``<prefix>-<env>``), deleted from both clusters after."""
    p = f"mc-{uuid.uuid4().hex[:6]}"
    yield p
    for client in (kube, beta_kube):
        try:
            items, _ = client.list("", "v1", "Namespace")
        except Exception:  # a cluster a test stopped: nothing to clean there
            continue
        for item in items:
            name = item["metadata"]["name"]
            if name.startswith(p):
                client.delete(ObjectRef(kind="Namespace", name=name))


def _write_env(repo: EnvRepo, prefix: str, name: str, target: str = "", color: str = "blue") -> None:
    """``envs/<name>.yaml`` with a Namespace and a ConfigMap ``<name>-config`` in ``<prefix>-<name>``."""
    ns = f"{prefix}-{name}"
    repo.write(
        f"envs/{name}.yaml",
        f"overlay: overlays/{name}\nnamespace: {ns}\nsync: {{interval: 3600}}\n"
        f"health: {{noControllerAfter: 5}}\n{target}",
    )
    repo.write(f"overlays/{name}/kustomization.yaml", "resources:\n- namespace.yaml\n- configmap.yaml\n")
    repo.write(
        f"overlays/{name}/namespace.yaml", f"apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"
    )
    repo.write(
        f"overlays/{name}/configmap.yaml",
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}-config\ndata:\n  color: {color}\n",
    )


def _color(client: KubeClient, prefix: str, name: str) -> str | None:
    live = client.get(ObjectRef(kind="ConfigMap", namespace=f"{prefix}-{name}", name=f"{name}-config"))
    return None if live is None else str((live.get("data") or {}).get("color"))


def test_context_picks_the_cluster_and_an_unknown_context_fails_alone(
    env_repo: EnvRepo,
    kube: KubeClient,
    beta_kube: KubeClient,
    two_contexts: Path,
    prefix: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _write_env(env_repo, prefix, "a")
    _write_env(env_repo, prefix, "b", "context: beta\n")
    _write_env(env_repo, prefix, "c", "context: gamma\n")
    _write_env(env_repo, prefix, "d", "context: beta\ncluster: {secretRef: {name: beta-kubeconfig}}\n")
    env_repo.commit("three environments on two clusters (and one on none, one invalid)")
    client = KubeClient(two_contexts)
    ctx = PassContext(source=GitSource(str(env_repo.remote), "main", tmp_path / "cache"), client=client)
    try:
        ra, rb, rc = (run_pass(ctx, n) for n in ("a", "b", "c"))
    finally:
        ctx.clusters.close()
        client.close()
    assert ra.ok and rb.ok, (ra.error, rb.error)
    assert (ra.cluster, rb.cluster, rc.cluster) == ("alpha", "beta", "gamma")
    assert (_color(kube, prefix, "a"), _color(beta_kube, prefix, "a")) == ("blue", None)
    assert (_color(beta_kube, prefix, "b"), _color(kube, prefix, "b")) == ("blue", None)
    assert not rc.ok and "environment c: context 'gamma' is not in" in rc.error, rc.error
    assert "contexts: alpha, beta" in rc.error
    # the inventory lives in the environment's own cluster
    source = str(env_repo.remote)
    assert InventoryStore(beta_kube, source=source).load("b").entries
    assert not InventoryStore(kube, source=source).load("b").entries

    # `reconciler status --repo`: each environment read from its own cluster, named in the JSON
    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(tmp_path / "cli-cache"))
    app = typer.Typer()
    register(app)
    out = CliRunner().invoke(
        app, ["status", "--repo", source, "--kubeconfig", str(two_contexts), "--no-health", "-o", "json"]
    )
    assert out.exit_code == 0, out.output
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert {n: (rows[n]["cluster"], rows[n]["sync"]) for n in ("a", "b")} == {
        "a": ("alpha", "Synced"),
        "b": ("beta", "Synced"),
    }
    assert rows["c"]["cluster"] == "gamma" and "context 'gamma' is not in" in rows["c"]["error"]
    # an invalid file: its error, named by its place in the repository, and no cluster guessed for it
    assert rows["d"]["error"].startswith("envs/d.yaml: cluster: context and cluster.secretRef"), rows["d"]
    assert rows["d"]["cluster"] == ""
    # `reconciler diff b` dry-runs on beta, where b is applied: nothing differs (on alpha all would be new)
    diff = CliRunner().invoke(
        app, ["diff", "b", "--repo", source, "--kubeconfig", str(two_contexts), "--exit-code", "-o", "json"]
    )
    assert diff.exit_code == 0, diff.output
    assert json.loads(diff.stdout)["entries"] == []


def test_secret_ref_kubeconfig_targets_the_second_cluster(
    env_repo: EnvRepo,
    kube: KubeClient,
    beta_kube: KubeClient,
    beta_kubeconfig: Path,
    prefix: str,
    tmp_path: Path,
) -> None:
    secret = f"{prefix}-beta-kubeconfig"
    ref = ObjectRef(kind="Secret", namespace=NAMESPACE, name=secret)
    kube.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        ObjectRef(kind="Namespace", name=NAMESPACE),
        field_manager="tests",
    )
    kube.apply(
        {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": {"name": secret, "namespace": NAMESPACE},
            "data": {"value": base64.b64encode(beta_kubeconfig.read_bytes()).decode()},
        },
        ref,
        field_manager="tests",
    )
    try:
        _write_env(env_repo, prefix, "s", f"cluster:\n  secretRef: {{name: {secret}}}\n")
        _write_env(env_repo, prefix, "m", "cluster:\n  secretRef: {name: no-such-secret}\n")
        env_repo.commit("an environment whose cluster is in a Secret")
        ctx = PassContext(source=GitSource(str(env_repo.remote), "main", tmp_path / "cache"), client=kube)
        try:
            rs, rm = run_pass(ctx, "s"), run_pass(ctx, "m")
        finally:
            ctx.clusters.close()
        assert rs.ok, rs.error
        assert rs.cluster == f"secret:{NAMESPACE}/{secret}"
        assert (_color(beta_kube, prefix, "s"), _color(kube, prefix, "s")) == ("blue", None)
        assert not rm.ok and f"cluster.secretRef {NAMESPACE}/no-such-secret" in rm.error, rm.error
        assert "does not exist" in rm.error
    finally:
        kube.delete(ref)


async def test_daemon_per_cluster_drift_outage_and_recovery(
    env_repo: EnvRepo,
    kube: KubeClient,
    beta_kube: KubeClient,
    beta: LocalCluster,
    two_contexts: Path,
    prefix: str,
    cache_dir: Path,
) -> None:
    _write_env(env_repo, prefix, "a")
    _write_env(env_repo, prefix, "b", "context: beta\n")
    _write_env(env_repo, prefix, "d", "context: beta\ncluster: {secretRef: {name: beta-kubeconfig}}\n")
    env_repo.commit("a on the current context, b on beta, d invalid")
    settings = daemon_settings(
        env_repo.remote,
        two_contexts,
        cache_dir,
        envs=["a", "b", "d"],
        promotion_records=False,
        commit_status=False,
    )
    daemon = Daemon(settings)
    await daemon.start()
    http = TestClient(TestServer(build_app(daemon, health_ttl=0)))
    await http.start_server()
    try:
        await until(
            lambda: all(s.last is not None and s.last.ok != (s.name == "d") for s in daemon.envs.values()),
            60,
            "first passes (d's failed)",
        )
        assert (_color(kube, prefix, "a"), _color(beta_kube, prefix, "a")) == ("blue", None)
        assert (_color(beta_kube, prefix, "b"), _color(kube, prefix, "b")) == ("blue", None)

        # the status page names each environment's cluster
        status = {e["name"]: e for e in await (await http.get("/api/status")).json()}
        assert (status["a"]["cluster"], status["b"]["cluster"]) == ("alpha", "beta")
        # an invalid file: its error names it, and no cluster is guessed for it
        assert status["d"]["cluster"] == "" and "envs/d.yaml: cluster: context and" in status["d"]["error"]
        page = await (await http.get("/env/b")).text()
        assert '<code data-testid="cluster">beta</code>' in page

        # drift on beta is seen by beta's watch and corrected there
        ref_b = ObjectRef(kind="ConfigMap", namespace=f"{prefix}-b", name="b-config")
        body = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "b-config", "namespace": f"{prefix}-b"},
            "data": {"color": "red"},
        }
        await until(lambda: daemon._watching, 30, "drift watches running")
        beta_kube.apply(body, ref_b, field_manager="intruder", force=True)
        await until(lambda: _color(beta_kube, prefix, "b") == "blue", 30, "drift on beta corrected")
        assert any(e["environment"] == "b" and e["corrected"] for e in daemon.drift_events)

        # beta goes down: b's passes fail naming it, a keeps converging, the daemon keeps running
        beta.down(progress=lambda m: None)
        _write_env(env_repo, prefix, "a", color="green")
        _write_env(env_repo, prefix, "b", "context: beta\n", color="green")
        env_repo.commit("green everywhere")
        ra, rb = await daemon.trigger("a", "test"), await daemon.trigger("b", "test")
        assert ra.ok, ra.error
        assert _color(kube, prefix, "a") == "green"
        assert not rb.ok and rb.cluster == "beta", rb.error
        assert rb.error.startswith("cluster beta unreachable: ") and "Unreachable" in rb.error, rb.error
        status = {e["name"]: e for e in await (await http.get("/api/status")).json()}
        assert status["a"]["ok"] and status["a"]["sync"] == "Synced"
        assert status["b"]["sync"] == "Failed" and "cluster beta" in status["b"]["error"]

        # beta comes back: b converges
        beta.up(progress=lambda m: None)
        rb = await daemon.trigger("b", "test")
        assert rb.ok, rb.error
        assert _color(beta_kube, prefix, "b") == "green"
    finally:
        await http.close()
        await daemon.stop()
