"""Resources being rendered: the object plus the bookkeeping kustomize keeps beside it.

Each :class:`Resource` remembers its earlier identities (names/namespaces before prefix, suffix, namespace
and hash changes) so name references can be rewritten at the end of the build, whether it came from a
generator (and so gets a content-hash suffix), and the name prefixes/suffixes applied to it.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from reconciler.render.errors import RenderError
from reconciler.render.fieldspecs import is_cluster_scoped


@dataclass(frozen=True)
class ResId:
    """Group, version, kind, namespace and name of a resource (empty namespace = none given)."""

    group: str
    version: str
    kind: str
    namespace: str
    name: str

    def gvk_str(self) -> str:
        """``kind.version.group`` with kustomize's placeholders for empty parts."""
        return "_".join([self.kind or "~K", self.version or "~V", self.group or "~G"])

    def __str__(self) -> str:
        ns = self.namespace or "~X"
        return f"{self.gvk_str()}|{ns}|{self.name or '~N'}"

    def ns_equals(self, other: ResId) -> bool:
        """Namespace equality where no namespace and ``default`` are the same."""
        return (self.namespace or "default") == (other.namespace or "default")

    def same_gvknn(self, other: ResId) -> bool:
        """Same group/version/kind/name and equal namespace (``""`` == ``default``)."""
        return (self.group, self.version, self.kind, self.name) == (
            other.group,
            other.version,
            other.kind,
            other.name,
        ) and self.ns_equals(other)


def split_api_version(api_version: str) -> tuple[str, str]:
    """``"apps/v1"`` -> ``("apps", "v1")``; ``"v1"`` -> ``("", "v1")``."""
    group, _, version = api_version.rpartition("/")
    return group, version


@dataclass
class Resource:
    """One object under construction with kustomize's per-resource build state."""

    obj: dict[str, Any]
    source: str = ""
    prev_ids: list[ResId] = field(default_factory=list)
    needs_hash: bool = False
    behavior: str = "create"
    prefixes: list[str] = field(default_factory=list)
    suffixes: list[str] = field(default_factory=list)

    @property
    def meta(self) -> dict[str, Any]:
        """The ``metadata`` mapping (created when missing)."""
        meta = self.obj.get("metadata")
        if not isinstance(meta, dict):
            meta = {}
            self.obj["metadata"] = meta
        return meta

    @property
    def api_version(self) -> str:
        """``apiVersion`` as written."""
        return str(self.obj.get("apiVersion") or "")

    @property
    def group(self) -> str:
        """API group ("" for core)."""
        return split_api_version(self.api_version)[0]

    @property
    def version(self) -> str:
        """API version without the group."""
        return split_api_version(self.api_version)[1]

    @property
    def kind(self) -> str:
        """``kind``."""
        return str(self.obj.get("kind") or "")

    @property
    def name(self) -> str:
        """``metadata.name``."""
        meta = self.obj.get("metadata")
        return str(meta.get("name") or "") if isinstance(meta, dict) else ""

    @property
    def namespace(self) -> str:
        """``metadata.namespace`` ("" when absent)."""
        meta = self.obj.get("metadata")
        return str(meta.get("namespace") or "") if isinstance(meta, dict) else ""

    def cur_id(self) -> ResId:
        """Current identity."""
        return ResId(self.group, self.version, self.kind, self.namespace, self.name)

    def orig_id(self) -> ResId:
        """Identity before any rename (the first recorded one)."""
        return self.prev_ids[0] if self.prev_ids else self.cur_id()

    def all_ids(self) -> list[ResId]:
        """Earlier identities followed by the current one."""
        return [*self.prev_ids, self.cur_id()]

    def cluster_scoped(self) -> bool:
        """Whether the kind is a built-in cluster-scoped kind."""
        return is_cluster_scoped(self.kind)

    def record_id(self) -> None:
        """Remember the current identity before it changes."""
        cur = self.cur_id()
        if not self.prev_ids or self.prev_ids[-1] != cur:
            self.prev_ids.append(cur)

    def set_name(self, name: str) -> None:
        """Rename, remembering the previous identity."""
        if name != self.name:
            self.record_id()
            self.meta["name"] = name

    def set_namespace(self, namespace: str) -> None:
        """Move to ``namespace``, remembering the previous identity."""
        if namespace != self.namespace:
            self.record_id()
            self.meta["namespace"] = namespace

    def copy(self) -> Resource:
        """Deep copy."""
        return Resource(
            copy.deepcopy(self.obj),
            self.source,
            list(self.prev_ids),
            self.needs_hash,
            self.behavior,
            list(self.prefixes),
            list(self.suffixes),
        )


def make_resource(obj: dict[str, Any], *, source: str) -> Resource:
    """Wrap a loaded object, checking it has apiVersion, kind and metadata.name.

    Raises:
        RenderError: naming ``source`` when a required field is missing or of the wrong type.
    """
    for key in ("apiVersion", "kind"):
        if not isinstance(obj.get(key), str) or not obj.get(key):
            raise RenderError(f"object has no {key}", path=source)
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        raise RenderError(f"{obj['kind']} object has no metadata", path=source)
    has_name = isinstance(meta.get("name"), str) and bool(meta["name"])
    if not has_name and not (isinstance(meta.get("generateName"), str) and meta["generateName"]):
        raise RenderError(f"{obj['kind']} object has no metadata.name", path=source)
    return Resource(obj=obj, source=source)


class ResMap:
    """An ordered list of resources with unique current identities."""

    def __init__(self) -> None:
        self.items: list[Resource] = []

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)

    def find(self, rid: ResId) -> Resource | None:
        """The resource whose current identity equals ``rid`` ("" and ``default`` namespace equal)."""
        for r in self.items:
            if r.cur_id().same_gvknn(rid):
                return r
        return None

    def append(self, res: Resource) -> None:
        """Add a resource.

        Raises:
            RenderError: when a resource with the same identity is already present.
        """
        if self.find(res.cur_id()) is not None:
            raise RenderError(
                f"may not add resource with an already registered id: {res.cur_id()}", path=res.source or None
            )
        self.items.append(res)

    def extend(self, other: ResMap) -> None:
        """Append every resource of ``other`` (same duplicate check)."""
        for r in other.items:
            self.append(r)
