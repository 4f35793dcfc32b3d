"""Identity of Kubernetes objects: group, kind, namespace and name."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class ObjectRef(BaseModel):
    """The identity of one Kubernetes object.

    ``group`` is the API group ("" for the core group), ``version`` the API version the object was
    written with (not part of the identity: an apiVersion migration keeps the same object).
    """

    model_config = ConfigDict(frozen=True)

    group: str = ""
    version: str = "v1"
    kind: str
    namespace: str = ""
    name: str

    @property
    def api_version(self) -> str:
        """``group/version``, or ``version`` alone for the core group."""
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity without the version: ``(group, kind, namespace, name)``."""
        return (self.group, self.kind, self.namespace, self.name)

    def __str__(self) -> str:
        """``Kind/namespace/name`` (``Kind/name`` for cluster-scoped objects)."""
        if self.namespace:
            return f"{self.kind}/{self.namespace}/{self.name}"
        return f"{self.kind}/{self.name}"


def gvk_of(obj: dict[str, Any]) -> tuple[str, str, str]:
    """Return ``(group, version, kind)`` of a manifest dict.

    Raises:
        ValueError: when ``apiVersion`` or ``kind`` is missing or not a string.
    """
    api_version = obj.get("apiVersion")
    kind = obj.get("kind")
    if not isinstance(api_version, str) or not api_version:
        raise ValueError("object has no apiVersion")
    if not isinstance(kind, str) or not kind:
        raise ValueError("object has no kind")
    group, _, version = api_version.rpartition("/")
    return group, version, kind


def ref_of(obj: dict[str, Any]) -> ObjectRef:
    """Return the :class:`ObjectRef` of a manifest dict.

    Raises:
        ValueError: when apiVersion, kind or metadata.name is missing.
    """
    group, version, kind = gvk_of(obj)
    meta = obj.get("metadata") or {}
    if not isinstance(meta, dict):
        raise ValueError(f"{kind}: metadata is not a mapping")
    name = meta.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError(f"{kind}: metadata.name is missing")
    namespace = meta.get("namespace") or ""
    return ObjectRef(group=group, version=version, kind=kind, namespace=str(namespace), name=name)
