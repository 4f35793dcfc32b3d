"""The apply stage refuses a rendered object without an identity (issue 24): the renderer renders an
object without ``apiVersion`` as `kustomize build` does (tests/render/test_krusty_parity.py), and a pass
must stop with a clear error before it writes anything."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.cluster.manager import ApplyError, identify, prepare
from reconciler.model.environment import Environment
from reconciler.reconcile.pass_ import default_namespaces
from reconciler.render import build, dump_yaml


class NoClient:
    """A stand-in client: any use is a failure (nothing may be asked of the cluster)."""

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the cluster was asked ({name}) before the object was refused")


def _rendered(tmp_path: Path) -> list[dict[str, Any]]:
    (tmp_path / "kustomization.yaml").write_text("namespace: team\nresources:\n- r.yaml\n")
    (tmp_path / "r.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\n"
        "kind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n"
    )
    return build(tmp_path, root=tmp_path)


def test_renderer_renders_an_object_without_api_version(tmp_path: Path) -> None:
    objects = _rendered(tmp_path)
    assert dump_yaml(objects).endswith(
        "---\nkind: Deployment\nmetadata:\n  name: web\n  namespace: team\nspec:\n  replicas: 1\n"
    )


def test_pass_refuses_it_before_asking_the_cluster(tmp_path: Path) -> None:
    objects = _rendered(tmp_path)
    env = Environment.model_validate({"name": "dev", "overlay": "overlays/dev", "namespace": "team"})
    with pytest.raises(ApplyError) as info:
        default_namespaces(NoClient(), env, objects)  # type: ignore[arg-type]
    assert str(info.value) == (
        "invalid object Deployment web: object has no apiVersion (the API server needs apiVersion, kind "
        "and metadata.name); nothing applied"
    )
    with pytest.raises(ApplyError, match="invalid object Deployment web: object has no apiVersion"):
        prepare(objects)


def test_identify_names_what_it_can() -> None:
    assert identify({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}).name == "c"
    with pytest.raises(ApplyError, match=r"^invalid object an object: object has no apiVersion"):
        identify({"metadata": {}})
    with pytest.raises(ApplyError, match=r"^invalid object Service: Service: metadata.name is missing"):
        identify({"apiVersion": "v1", "kind": "Service", "metadata": {}})
    with pytest.raises(
        ApplyError, match=r"^invalid object ConfigMap 5: metadata.name must be a string, not 5"
    ):
        identify({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": 5}})
    with pytest.raises(ApplyError, match=r"^invalid object ConfigMap c: metadata.namespace must be a string"):
        identify({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": 8}})
