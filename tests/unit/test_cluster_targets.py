"""Unit tests: an environment's target cluster (``context`` / ``cluster.secretRef``), its validation, and
:class:`reconciler.cluster.targets.ClusterTargets` with a kubeconfig file and an in-memory Secret reader."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import pytest
import yaml

from reconciler.cluster.client import KubeClient
from reconciler.cluster.targets import ClusterTargets
from reconciler.errors import ConfigError
from reconciler.model import Environment, ObjectRef
from reconciler.reconcile import load_environment, load_environments


def _kubeconfig(contexts: dict[str, str], current: str) -> dict[str, Any]:
    """A kubeconfig whose contexts point at the given servers (nothing is contacted in these tests)."""
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": n, "cluster": {"server": s}} for n, s in contexts.items()],
        "users": [{"name": n, "user": {"token": f"t-{n}"}} for n in contexts],
        "contexts": [{"name": n, "context": {"cluster": n, "user": n}} for n in contexts],
        "current-context": current,
    }


@pytest.fixture
def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(_kubeconfig({"alpha": "https://127.0.0.1:1", "beta": "https://127.0.0.1:2"}, "alpha"))
    )
    return path


def _env(**fields: Any) -> Environment:
    return Environment.model_validate({"name": "prod", "overlay": "overlays/prod", **fields})


def test_context_and_secret_ref_together_is_an_error_naming_file_and_field(tmp_path: Path) -> None:
    envs = tmp_path / "envs"
    envs.mkdir()
    path = envs / "prod.yaml"
    path.write_text("overlay: overlays/prod\ncontext: beta\ncluster:\n  secretRef: {name: beta-kubeconfig}\n")
    with pytest.raises(ConfigError) as err:
        load_environment(path)
    message = str(err.value)
    assert str(path) in message and "cluster" in message and "context and cluster.secretRef" in message


def test_an_invalid_file_is_named_by_its_place_in_the_repository(tmp_path: Path) -> None:
    """Loaded from a snapshot (extracted under the cache), an error names ``envs/<name>.yaml``, the file the
    user edits, not the snapshot's path; pydantic's "Value error, " prefix is not shown."""
    root = tmp_path / "cache" / "snapshots" / "0123abcd"
    (root / "envs").mkdir(parents=True)
    (root / "envs" / "prod.yaml").write_text(
        "overlay: overlays/prod\ncontext: beta\ncluster:\n  secretRef: {name: beta-kubeconfig}\n"
    )
    (root / "envs" / "dev.yaml").write_text("overlay: overlays/dev\n")
    invalid: dict[str, str] = {}
    assert set(load_environments(root, invalid=invalid)) == {"dev"}
    assert invalid["prod"].startswith("envs/prod.yaml: cluster: context and cluster.secretRef"), invalid
    assert str(tmp_path) not in invalid["prod"] and "Value error" not in invalid["prod"]
    with pytest.raises(ConfigError, match=r"^envs/prod\.yaml: cluster: context and"):
        load_environments(root)


def test_secret_ref_fields_validated() -> None:
    env = _env(cluster={"secretRef": {"name": "beta", "namespace": "fleet", "key": "kubeconfig"}})
    assert env.cluster is not None and env.cluster.secret_ref is not None
    assert (env.cluster.secret_ref.namespace, env.cluster.secret_ref.key) == ("fleet", "kubeconfig")
    with pytest.raises(ValueError, match="not a valid Kubernetes object name"):
        _env(cluster={"secretRef": {"name": "Not_A_Name"}})
    with pytest.raises(ValueError, match="extra"):
        _env(cluster={"secretRef": {"name": "beta"}, "server": "https://x"})
    with pytest.raises(ValueError, match="context must not be empty"):
        _env(context=" ")


def test_targets_by_context_share_clients_and_name_the_default(kubeconfig: Path) -> None:
    default = KubeClient(kubeconfig)
    targets = ClusterTargets(default)
    try:
        assert targets.default_target.label == "alpha"  # the kubeconfig's current context
        assert targets.client_for(_env()) is default
        assert targets.client_for(_env(context="alpha")) is default  # the same cluster: one client
        beta = targets.client_for(_env(context="beta"))
        assert beta is not default and beta.host == "https://127.0.0.1:2"
        assert targets.client_for(_env(name="other", context="beta")) is beta
        assert targets.label(_env(context="beta")) == "beta"
        assert set(targets.opened()) == {"alpha", "beta"}
        with pytest.raises(ConfigError) as err:
            targets.client_for(_env(context="gamma"))
        assert "environment prod: context 'gamma' is not in" in str(err.value)
        assert "contexts: alpha, beta" in str(err.value)
    finally:
        targets.close()
        default.close()


class _SecretReader(KubeClient):
    """A stand-in of the daemon's own client that serves Secrets from a dict (no API server)."""

    def __init__(self, kubeconfig: Path) -> None:
        super().__init__(kubeconfig)
        self.secrets: dict[tuple[str, str], dict[str, Any]] = {}
        self.reads = 0

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:  # type: ignore[override]
        assert ref.kind == "Secret"
        self.reads += 1
        return self.secrets.get((ref.namespace, ref.name))


def _secret(data: dict[str, bytes]) -> dict[str, Any]:
    return {"data": {k: base64.b64encode(v).decode() for k, v in data.items()}}


def test_secret_ref_kubeconfig_is_read_cached_by_content_and_errors_named(
    kubeconfig: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import reconciler.cluster.targets as targets_mod

    monkeypatch.setattr(targets_mod, "SECRET_TTL", 0.0)  # every request reads the Secret again
    default = _SecretReader(kubeconfig)
    targets = ClusterTargets(default)
    env = _env(cluster={"secretRef": {"name": "gamma-kubeconfig"}})
    try:
        assert targets.label(env) == "secret:reconciler-system/gamma-kubeconfig"
        with pytest.raises(ConfigError, match="the Secret does not exist"):
            targets.client_for(env)
        default.secrets[("reconciler-system", "gamma-kubeconfig")] = _secret({"other": b"x"})
        with pytest.raises(ConfigError, match=r"has no key 'value' \(keys: other\)"):
            targets.client_for(env)
        default.secrets[("reconciler-system", "gamma-kubeconfig")] = _secret({"value": b"- not a map"})
        with pytest.raises(ConfigError, match="does not hold a kubeconfig"):
            targets.client_for(env)
        good = yaml.safe_dump(_kubeconfig({"gamma": "https://127.0.0.1:3"}, "gamma")).encode()
        default.secrets[("reconciler-system", "gamma-kubeconfig")] = _secret({"value": good})
        first = targets.client_for(env)
        assert first.host == "https://127.0.0.1:3"
        assert targets.client_for(env) is first  # the same content: the same client
        moved = yaml.safe_dump(_kubeconfig({"gamma": "https://127.0.0.1:4"}, "gamma")).encode()
        default.secrets[("reconciler-system", "gamma-kubeconfig")] = _secret({"value": moved})
        second = targets.client_for(env)
        assert second is not first and second.host == "https://127.0.0.1:4"
        watch = targets.open(targets.target_of(env))  # a client of its own for a watch
        assert watch is not second and watch.host == "https://127.0.0.1:4"
        watch.close()
    finally:
        targets.close()
        default.close()


def test_an_unreachable_cluster_is_named_first_in_the_pass_error() -> None:
    from reconciler.reconcile.pass_ import _naming_cluster

    error = "ConfigMap/ns/x: Unreachable: API server https://127.0.0.1:2: connection refused"
    assert _naming_cluster("beta", error) == f"cluster beta unreachable: {error}"
    assert _naming_cluster("beta", "ConfigMap/ns/x: Invalid: bad") == "ConfigMap/ns/x: Invalid: bad"
    assert _naming_cluster("", error) == error


class _EventSink(KubeClient):
    """A stand-in client that keeps the Events posted to it."""

    def __init__(self, kubeconfig: Path) -> None:
        super().__init__(kubeconfig)
        self.posted: list[dict[str, Any]] = []

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:  # type: ignore[override]
        return None

    def request(self, method: str, path: str, **kw: Any) -> Any:  # type: ignore[override]
        self.posted.append(kw["body"])
        return kw["body"]


def test_events_are_written_in_the_objects_own_cluster(kubeconfig: Path) -> None:
    from reconciler.observe.events import EventRecorder

    alpha, beta = _EventSink(kubeconfig), _EventSink(kubeconfig)
    recorder = EventRecorder(alpha, clients=lambda label: {"alpha": alpha, "beta": beta}.get(label))
    ref = ObjectRef(kind="ConfigMap", namespace="ns", name="x")
    try:
        assert recorder.record(ref, reason="Applied", note="n", cluster="beta") is not None
        assert recorder.record(ref, reason="Applied", note="n") is not None  # no cluster: the default
        assert recorder.record(ref, reason="Applied", note="n", cluster="gamma") is None  # never elsewhere
        assert (len(alpha.posted), len(beta.posted), recorder.dropped) == (1, 1, 1)
    finally:
        recorder.close()
        alpha.close()
        beta.close()
