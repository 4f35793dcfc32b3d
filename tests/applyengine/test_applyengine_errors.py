"""Typed API errors from the real API server, each naming the object: conflict, invalid, not found and
forbidden (a ServiceAccount token from the TokenRequest API, in a kubeconfig of its own, limited by RBAC)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from _applyengine_support import until
from ruamel.yaml import YAML

from reconciler.cluster.client import KubeClient
from reconciler.cluster.manager import ApplyError, ResourceManager, prepare
from reconciler.errors import ConflictError, ForbiddenError, InvalidError, KubeError, NotFoundError
from reconciler.model import ObjectRef, ref_of

pytestmark = pytest.mark.integration


def _configmap(ns: str, name: str, **data: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": ns},
        "data": data,
    }


def _apply(kube: KubeClient, obj: dict[str, Any], manager: str, *, force: bool = True) -> dict[str, Any]:
    return kube.apply(obj, ref_of(obj), field_manager=manager, force=force)


def test_conflict_names_the_object_and_the_field(kube: KubeClient, namespace: str) -> None:
    _apply(kube, _configmap(namespace, "shared", mode="a"), "platform-team")
    ref = ObjectRef(kind="ConfigMap", namespace=namespace, name="shared")
    with pytest.raises(ConflictError) as info:
        _apply(kube, _configmap(namespace, "shared", mode="b"), "reconciler", force=False)
    err = info.value
    assert err.status == 409 and err.reason == "Conflict"
    assert err.obj == f"ConfigMap/{namespace}/shared"
    assert str(err).startswith(f"ConfigMap/{namespace}/shared: Conflict: ")
    assert "platform-team" in err.message and ".data.mode" in err.message
    assert not err.retryable
    # the apply engine forces: it takes the field over (desired wins over other managers)
    ResourceManager(kube).apply_set(prepare([_configmap(namespace, "shared", mode="b")]))
    live = kube.get(ref) or {}
    assert live["data"]["mode"] == "b"
    other = [m for m in live["metadata"]["managedFields"] if m["manager"] == "platform-team"]
    assert "f:mode" not in json.dumps([m.get("fieldsV1") for m in other])


def test_invalid_names_the_object_and_applies_nothing(kube: KubeClient, namespace: str) -> None:
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "bad-port", "namespace": namespace},
        "spec": {"selector": {"app": "x"}, "ports": [{"port": 70000}]},
    }
    with pytest.raises(InvalidError) as info:
        _apply(kube, bad, "reconciler")
    assert info.value.status == 422 and info.value.obj == f"Service/{namespace}/bad-port"
    assert "spec.ports[0].port" in info.value.message
    good = _configmap(namespace, "innocent", a="1")
    with pytest.raises(ApplyError) as apply_info:
        ResourceManager(kube).apply_set(prepare([good, bad]))
    assert f"Service/{namespace}/bad-port" in str(apply_info.value)
    assert "spec.ports[0].port" in str(apply_info.value)
    assert kube.get(ref_of(good)) is None  # validated before any write: nothing applied


def test_not_found_names_the_object(kube: KubeClient, namespace: str) -> None:
    missing = ObjectRef(kind="ConfigMap", namespace=namespace, name="nowhere")
    info_ = kube.resource("", "v1", "ConfigMap")
    with pytest.raises(NotFoundError) as info:
        kube.request("GET", info_.object_path(namespace, "nowhere"), obj=str(missing))
    assert info.value.status == 404 and info.value.obj == f"ConfigMap/{namespace}/nowhere"
    assert kube.get(missing) is None
    assert kube.delete(missing) is False

    # an object in a namespace that does not exist
    lost = _configmap("no-such-namespace-x1", "lost", a="1")
    with pytest.raises(NotFoundError) as info:
        _apply(kube, lost, "reconciler")
    assert info.value.obj == "ConfigMap/no-such-namespace-x1/lost"
    with pytest.raises(ApplyError) as apply_info:
        ResourceManager(kube).apply_set(prepare([lost]))
    assert "ConfigMap/no-such-namespace-x1/lost" in str(apply_info.value)

    # a kind the server does not serve
    widget = {
        "apiVersion": "example.test/v1",
        "kind": "Widget",
        "metadata": {"name": "w1", "namespace": namespace},
        "spec": {},
    }
    with pytest.raises(NotFoundError) as info:
        kube.resource("example.test", "v1", "Widget")
    assert info.value.reason == "NoKindMatch" and "Widget" in str(info.value)
    first = _configmap(namespace, "before-widget", a="1")
    with pytest.raises(ApplyError) as apply_info:
        ResourceManager(kube).apply_set(prepare([first, widget]))
    assert f"Widget/{namespace}/w1" in str(apply_info.value)
    assert "does not serve" in str(apply_info.value)
    assert kube.get(ref_of(first)) is None  # found before any write: nothing half applied
    # the same for a namespace that neither exists nor is in the set
    with pytest.raises(ApplyError):
        ResourceManager(kube).apply_set(prepare([first, lost]))
    assert kube.get(ref_of(first)) is None


def _token_kubeconfig(kube: KubeClient, admin_kubeconfig: Path, ns: str, sa: str, dest: Path) -> Path:
    """A kubeconfig that authenticates as ServiceAccount ``ns/sa`` with a TokenRequest token (10 min)."""
    out = kube.request(
        "POST",
        f"/api/v1/namespaces/{ns}/serviceaccounts/{sa}/token",
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 600},
        },
        verb="create",
        obj=f"ServiceAccount/{ns}/{sa}",
    )
    token = out["status"]["token"]
    assert token.count(".") == 2  # a JWT
    admin = YAML(typ="safe").load(admin_kubeconfig.read_text())
    cluster = admin["clusters"][0]["cluster"]
    assert base64.b64decode(cluster["certificate-authority-data"])
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": sa, "user": {"token": token}}],
        "contexts": [{"name": sa, "context": {"cluster": "local", "user": sa, "namespace": ns}}],
        "current-context": sa,
    }
    yaml = YAML(typ="safe")
    with dest.open("w") as f:
        yaml.dump(doc, f)
    dest.chmod(0o600)
    return dest


def test_forbidden_names_the_object(
    kube: KubeClient, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    sa = "limited"
    rbac = "rbac.authorization.k8s.io"
    for obj in (
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": sa, "namespace": namespace}},
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "Role",
            "metadata": {"name": "read-configmaps", "namespace": namespace},
            "rules": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get", "list", "watch"]}],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": {"name": "read-configmaps", "namespace": namespace},
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": "read-configmaps"},
            "subjects": [{"kind": "ServiceAccount", "name": sa, "namespace": namespace}],
        },
    ):
        _apply(kube, obj, "tests")
    _apply(kube, _configmap(namespace, "visible", a="1"), "tests")
    limited = KubeClient(_token_kubeconfig(kube, kubeconfig, namespace, sa, tmp_path / "limited.kubeconfig"))
    try:
        visible = ObjectRef(kind="ConfigMap", namespace=namespace, name="visible")

        def readable() -> bool:
            try:
                return limited.get(visible) is not None
            except ForbiddenError:
                return False  # the RBAC authorizer has not seen the binding yet

        until(readable, 10, interval=0.2)  # the token works and reading is allowed

        secret = ObjectRef(kind="Secret", namespace=namespace, name="db")
        with pytest.raises(ForbiddenError) as info:
            limited.get(secret)
        assert info.value.status == 403 and info.value.obj == f"Secret/{namespace}/db"
        assert f"system:serviceaccount:{namespace}:{sa}" in info.value.message

        with pytest.raises(ForbiddenError) as info:
            _apply(limited, _configmap(namespace, "visible", a="2"), "reconciler")
        assert info.value.obj == f"ConfigMap/{namespace}/visible"
        assert "patch" in info.value.message

        with pytest.raises(ApplyError) as apply_info:
            ResourceManager(limited).apply_set(prepare([_configmap(namespace, "visible", a="3")]))
        assert f"ConfigMap/{namespace}/visible" in str(apply_info.value)
        assert "Forbidden" in str(apply_info.value)
        assert ((kube.get(visible) or {}).get("data") or {}) == {"a": "1"}  # nothing changed
    finally:
        limited.close()


def test_every_typed_error_is_a_kube_error_with_its_status() -> None:
    for cls, status in (
        (ConflictError, 409),
        (InvalidError, 422),
        (NotFoundError, 404),
        (ForbiddenError, 403),
    ):
        err = cls("Kind/ns/name", status, "", "m")
        assert isinstance(err, KubeError) and str(err).startswith("Kind/ns/name: ")
