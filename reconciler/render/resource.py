"""Resources being rendered: the object plus the bookkeeping kustomize keeps beside it.

Identity follows kustomize v5 (sigs.k8s.io/kustomize/kyaml/resid, api/resource): a :class:`ResId` is group,
version, kind, name and namespace; a kind is cluster-scoped only when kustomize's built-in schema says so for
that exact apiVersion and kind (``NAMESPACED`` in :mod:`reconciler.render._k8s_schema`; unknown kinds count
as namespaced); the *effective* namespace of a namespaced id is ``default`` when none is set. A resource
remembers its earlier identities the way kustomize's build annotations do (name, effective namespace and
kind, stored by the transformers that may rename: namespace, prefix, suffix, JSON patches, hash suffixes);
earlier ids carry the current group/version and are never considered cluster-scoped. Name prefixes and
suffixes applied to a resource are kept for telling name references apart.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from reconciler.render._k8s_schema import NAMESPACED
from reconciler.render.errors import RenderError
from reconciler.render.patches import scalar_text

DEFAULT_NAMESPACE = "default"
#: kustomize's effective namespace of cluster-scoped ids.
NOT_NAMESPACED = "_non_namespaceable_"


def split_api_version(api_version: str) -> tuple[str, str]:
    """``"apps/v1"`` -> ``("apps", "v1")``; ``"v1"`` -> ``("", "v1")``."""
    group, _, version = api_version.rpartition("/")
    return group, version


def join_api_version(group: str, version: str) -> str:
    """Inverse of :func:`split_api_version`."""
    return f"{group}/{version}" if group else version


def is_cluster_scoped(group: str, version: str, kind: str) -> bool:
    """Whether kustomize's built-in schema knows this apiVersion/kind as cluster-scoped."""
    return _cluster_scoped(group, version, kind)


@functools.lru_cache(maxsize=4096)
def _cluster_scoped(group: str, version: str, kind: str) -> bool:
    return NAMESPACED.get((join_api_version(group, version), kind)) is False


@dataclass(frozen=True, slots=True)
class ResId:
    """Group, version, kind, name and namespace of a resource (``namespace`` as written, "" when absent)."""

    group: str
    version: str
    kind: str
    name: str
    namespace: str
    cluster_scoped: bool = False

    @staticmethod
    def of(group: str, version: str, kind: str, name: str, namespace: str) -> ResId:
        """An id whose cluster scope is looked up in the schema table."""
        return ResId(group, version, kind, name, namespace, _cluster_scoped(group, version, kind))

    @property
    def effective_namespace(self) -> str:
        """``_non_namespaceable_`` for cluster-scoped ids, ``default`` for an empty namespace."""
        if self.cluster_scoped:
            return NOT_NAMESPACED
        if self.namespace in ("", DEFAULT_NAMESPACE):
            return DEFAULT_NAMESPACE
        return self.namespace

    def gvk_str(self) -> str:
        """``kind.version.group`` with kustomize's placeholders for empty parts."""
        return ".".join([self.kind or "[noKind]", self.version or "[noVer]", self.group or "[noGrp]"])

    def __str__(self) -> str:
        return f"{self.gvk_str()}/{self.namespace + '/' if self.namespace else ''}{self.name or '[noName]'}"

    def key(self) -> tuple[str, str, str, str, str]:
        """Hashable identity with kustomize's equality (effective namespace)."""
        return (self.group, self.version, self.kind, self.name, self.effective_namespace)

    def equals(self, other: ResId) -> bool:
        """kustomize's ``ResId.Equals``: same group/version/kind/name and effective namespace."""
        return self.key() == other.key()

    def ns_equals(self, other: ResId) -> bool:
        """Same effective namespace."""
        return self.effective_namespace == other.effective_namespace

    def gvk_selected_by(self, group: str, version: str, kind: str) -> bool:
        """kustomize's ``Gvk.IsSelected``: empty selector parts match anything."""
        return (
            (not group or group == self.group)
            and (not version or version == self.version)
            and (not kind or kind == self.kind)
        )


@dataclass
class Resource:
    """One object under construction with kustomize's per-resource build state."""

    obj: dict[str, Any]
    source: str = ""
    #: earlier identities as (name, effective namespace, kind), oldest first
    previous: list[tuple[str, str, str]] = field(default_factory=list)
    needs_hash: bool = False
    behavior: str = "create"
    prefixes: list[str] = field(default_factory=list)
    suffixes: list[str] = field(default_factory=list)
    #: names of the ``vars`` whose objref matched this object (kustomize's ``refVarNames``)
    ref_var_names: list[str] = field(default_factory=list)
    _id_cache: tuple[Any, ResId] | None = field(default=None, repr=False, compare=False)

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
        value = self.obj.get("apiVersion")
        return value if isinstance(value, str) else ""

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
        value = self.obj.get("kind")
        return value if isinstance(value, str) else ""

    @property
    def name(self) -> str:
        """``metadata.name`` (its scalar text: kustomize renders a name written as a number)."""
        meta = self.obj.get("metadata")
        return _id_text(meta.get("name") if isinstance(meta, dict) else None)

    @property
    def namespace(self) -> str:
        """``metadata.namespace`` ("" when absent; its scalar text)."""
        meta = self.obj.get("metadata")
        return _id_text(meta.get("namespace") if isinstance(meta, dict) else None)

    def cur_id(self) -> ResId:
        """Current identity (memoised on apiVersion, kind, name and namespace)."""
        obj = self.obj
        meta = obj.get("metadata")
        if isinstance(meta, dict):
            name, ns = meta.get("name"), meta.get("namespace")
        else:
            name = ns = None
        key = (obj.get("apiVersion"), obj.get("kind"), name, ns)
        cached = self._id_cache
        if cached is not None and cached[0] == key:
            return cached[1]
        api, kind = key[0], key[1]
        group, version = split_api_version(api if isinstance(api, str) else "")
        rid = ResId.of(group, version, kind if isinstance(kind, str) else "", _id_text(name), _id_text(ns))
        self._id_cache = (key, rid)
        return rid

    def prev_ids(self) -> list[ResId]:
        """Earlier identities (current group/version, never cluster-scoped), oldest first."""
        group, version = split_api_version(self.api_version)
        return [ResId(group, version, k, n, ns) for n, ns, k in self.previous]

    def org_id(self) -> ResId:
        """The first recorded identity, or the current one."""
        if self.previous:
            n, ns, k = self.previous[0]
            group, version = split_api_version(self.api_version)
            return ResId(group, version, k, n, ns)
        return self.cur_id()

    def all_ids(self) -> list[ResId]:
        """Earlier identities followed by the current one."""
        return [*self.prev_ids(), self.cur_id()]

    def cluster_scoped(self) -> bool:
        """Whether the current apiVersion/kind is cluster-scoped."""
        return self.cur_id().cluster_scoped

    def store_previous_id(self) -> None:
        """Record the current identity (kustomize's ``StorePreviousId``)."""
        cur = self.cur_id()
        self.previous.append((cur.name, cur.effective_namespace, cur.kind))

    def set_name(self, name: str) -> None:
        """Set ``metadata.name``."""
        self.meta["name"] = name

    def set_namespace(self, namespace: str) -> None:
        """Set ``metadata.namespace`` (removed when ``namespace`` is empty)."""
        if namespace:
            self.meta["namespace"] = namespace
        else:
            self.meta.pop("namespace", None)

    def prefix_suffix_equals(self, other: Resource, *, allow_empty: bool) -> bool:
        """kustomize's ``PrefixesSuffixesEquals``."""

        def same_ending(a: list[str], b: list[str]) -> bool:
            short, long = (a, b) if len(a) <= len(b) else (b, a)
            if not short:
                return not long
            return long[len(long) - len(short) :] == short

        if allow_empty:
            return (
                not self.prefixes or not other.prefixes or same_ending(self.prefixes, other.prefixes)
            ) and (not self.suffixes or not other.suffixes or same_ending(self.suffixes, other.suffixes))
        return same_ending(self.prefixes, other.prefixes) and same_ending(self.suffixes, other.suffixes)


def make_resource(obj: dict[str, Any], *, source: str, line: int | None = None) -> Resource:
    """Wrap a loaded object, checking the fields kustomize and the API server need.

    ``kind`` must be a non-empty string and ``apiVersion`` a string when given (kustomize renders an object
    without one; the apply stage refuses it), ``metadata`` a mapping with a non-empty scalar ``name``
    (kustomize requires it except for ``*List`` kinds; a number is rendered as kustomize renders it and
    refused by the apply stage), ``namespace`` a scalar when given, ``labels`` and ``annotations`` mappings
    when given, and no list may hold an empty (null) item.

    Raises:
        RenderError: naming ``source`` (and the document's first ``line``) for the first violation.
    """

    def fail(message: str) -> RenderError:
        return RenderError(f"{message} in object {_brief(obj)}", path=source, line=line)

    kind = obj.get("kind")
    if not isinstance(kind, str) or not kind:
        raise fail("missing kind" if kind in (None, "") else "kind is not a string")
    api = obj.get("apiVersion")
    if api is not None and not isinstance(api, str):
        raise fail("apiVersion is not a string")
    meta = obj.get("metadata")
    if meta is not None and not isinstance(meta, dict):
        raise fail("metadata is not a mapping")
    meta = meta or {}
    name = meta.get("name")
    if isinstance(name, (dict, list)):
        raise fail("metadata.name is not a scalar")
    if (name is None or name == "") and not kind.endswith("List"):
        raise fail("missing metadata.name")
    ns = meta.get("namespace")
    if isinstance(ns, (dict, list)):
        raise fail("metadata.namespace is not a scalar")
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is not None and not isinstance(value, dict):
            raise fail(f"metadata.{key} is not a mapping")
        if key == "labels" and isinstance(value, dict):
            for k, v in value.items():
                if isinstance(v, (dict, list)):
                    raise fail(f"label {k!r} does not have a string value")
    if _has_null_list_item(obj):
        raise fail("empty item in a list")
    return Resource(obj=obj, source=source)


def _id_text(value: Any) -> str:
    """The text of a name or namespace as kustomize's identities hold it: a string as it is, a number or
    boolean written unquoted as its scalar text (``5``), "" for anything else."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, (dict, list)):
        return ""
    return scalar_text(value)


def _brief(obj: dict[str, Any]) -> str:
    raw = obj.get("metadata")
    meta: dict[str, Any] = raw if isinstance(raw, dict) else {}
    return f"{obj.get('apiVersion') or ''}/{obj.get('kind') or ''} {meta.get('name') or ''}".strip()


def _has_null_list_item(value: Any) -> bool:
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, dict):
            stack.extend(v.values())
        elif isinstance(v, list):
            for item in v:
                if item is None:
                    return True
                stack.append(item)
    return False


class ResMap:
    """An ordered list of resources with unique current identities."""

    def __init__(self, items: list[Resource] | None = None) -> None:
        self.items: list[Resource] = list(items or [])

    def __iter__(self) -> Iterator[Resource]:
        return iter(list(self.items))

    def __len__(self) -> int:
        return len(self.items)

    def by_current_id(self, rid: ResId) -> list[Resource]:
        """Resources whose current id equals ``rid`` (kustomize equality)."""
        key = rid.key()
        return [r for r in self.items if r.cur_id().key() == key]

    def by_any_id(self, rid: ResId) -> list[Resource]:
        """Resources with ``rid`` among their earlier or current ids."""
        key = rid.key()
        return [r for r in self.items if any(i.key() == key for i in r.all_ids())]

    def append(self, res: Resource) -> None:
        """Add a resource.

        Raises:
            RenderError: when a resource with the same current identity is already present.
        """
        self.extend([res])

    def extend(self, resources: list[Resource]) -> None:
        """Append resources, refusing identities already present (kustomize's ``Append``).

        Raises:
            RenderError: on the first duplicate identity.
        """
        seen = {r.cur_id().key() for r in self.items}
        for res in resources:
            key = res.cur_id().key()
            if key in seen:
                raise RenderError(
                    f"may not add resource with an already registered id: {res.cur_id()}",
                    path=res.source or None,
                )
            seen.add(key)
            self.items.append(res)

    def remove(self, res: Resource) -> None:
        """Drop ``res`` (identity comparison)."""
        self.items = [r for r in self.items if r is not res]
