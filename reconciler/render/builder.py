"""The kustomization build: load, accumulate resources, generate, transform, hash, fix references, order.

The pipeline follows kustomize v5.8 (api/internal/target/kusttarget.go, api/krusty/kustomizer.go). Per
kustomization: ``resources`` (files and kustomization directories, depth first; each directory is built on
its own and its result appended), ``configurations`` (merged into the field-spec tables), generators
(``configMapGenerator`` then ``secretGenerator``, with ``behavior``), ``components`` (built into the same
accumulator), then the built-in transformers in kustomize's order: patchesStrategicMerge, patches,
namespace, namePrefix, nameSuffix, labels and commonLabels, commonAnnotations, patchesJson6902, replicas,
images, replacements; then ``transformers:`` entries (builtin configurations, files, inline, kustomization
directories or remote); then ``validators:`` (the same, which must change nothing); then the
kustomization's ``vars`` are declared (:mod:`reconciler.render.refvars`). At the top only: content-hash
suffixes, name-reference rewriting, ``$(VAR)`` expansion, dropping ``config.kubernetes.io/local-config``
objects, ordering (kustomize's legacy kind order unless ``sortOptions`` says otherwise) and rewriting
``metadata.annotations`` values as strings. The directory built may be a ``kind: Component``: kustomize
builds it like a kustomization (api/krusty/kustomizer.go checks no kind).

Files are read with kustomize's load restrictor (``LoadRestrictionsRootOnly``): a file must lie in or
below the directory of the kustomization naming it (after resolving symlinks); kustomization directories may
be anywhere below the repository root but never an ancestor of a kustomization being built (kustomize's
cycle check). Remote bases and files (Git URLs, ``http(s)://`` files) are fetched when the render's
:class:`~reconciler.render.remote.RemoteOptions` allow them (:mod:`reconciler.render.remote`), and refused
otherwise; files of a remote base are read within its checkout only. ``helmCharts`` are inflated with helm
when the render's :class:`~reconciler.render.helm.HelmOptions` enable it (:mod:`reconciler.render.helm`;
after the ConfigMap and Secret generators, as kustomize runs them), and refused otherwise. Plugins and
``openapi`` are refused with an error naming the kustomization file; ``buildMetadata`` is
:mod:`reconciler.render.buildmeta`.
"""

from __future__ import annotations

import contextvars
import copy
import hashlib
import json
import os
import posixpath
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError, field_validator

from reconciler.render import (
    buildmeta,
    crds,
    generators,
    nameref,
    patches,
    refvars,
    replacements,
    transformers,
)
from reconciler.render import remote as _remote
from reconciler.render import sops as _sops
from reconciler.render.errors import RenderError
from reconciler.render.fieldspecs import (
    ORDER_FIRST,
    FieldSpec,
    TransformerConfig,
    gvk_sort_key,
    merge_fieldspecs,
    parse_fieldspecs,
)
from reconciler.render.resource import ResId, ResMap, Resource, make_resource
from reconciler.render.selectors import check_target, select
from reconciler.render.yamlio import (
    key_lines,
    load_yaml_documents,
    load_yaml_documents_with_lines,
    load_yaml_value,
)

if TYPE_CHECKING:  # reconciler.render.helm is imported when a kustomization has charts
    from reconciler.render import helm

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")
KUSTOMIZATION_VERSION = "kustomize.config.k8s.io/v1beta1"
COMPONENT_VERSION = "kustomize.config.k8s.io/v1alpha1"
#: Default upper bound on the size of any one file the renderer reads (bytes).
DEFAULT_MAX_FILE_BYTES = 8 * 1024 * 1024
#: Deepest chain of kustomizations including each other (kustomize has no limit; real repositories use a
#: handful of levels).
MAX_KUSTOMIZATION_DEPTH = 100
#: Most kustomization directories one render may build (a directory included twice is built twice).
MAX_KUSTOMIZATIONS = 2000
#: Most objects one render may hold at any time.
MAX_OBJECTS = 100_000
LOCAL_CONFIG_ANNOTATION = "config.kubernetes.io/local-config"
#: kustomize's mark on helm-generated objects (reconciler.render.helm.HELM_GENERATED_ANNOTATION).
HELM_GENERATED_ANNOTATION = "config.kubernetes.io/helm-generated"
# The namespace a kustomization passes to the Helm charts of the kustomizations it includes (kustomize's
# ``helmRootNamespace``, api/internal/target/kusttarget.go ``accumulateDirectory``).
_CHART_NAMESPACE: contextvars.ContextVar[str] = contextvars.ContextVar("chart_namespace", default="")


@contextmanager
def _chart_namespace_scope(namespace: str) -> Iterator[str]:
    """While building one kustomization: yields the namespace its charts default to (its own ``namespace``,
    else the one inherited), and passes it on to the kustomizations built inside."""
    own = namespace or _CHART_NAMESPACE.get()
    token = _CHART_NAMESPACE.set(own)
    try:
        yield own
    finally:
        _CHART_NAMESPACE.reset(token)


def _has_charts(kust: Kustomization) -> bool:
    return bool(kust.helmCharts or kust.helmGlobals or kust.helmChartInflationGenerator)


def _null_is_empty(value: Any) -> Any:
    return "" if value is None else value


#: A string field of kustomize's Go structs: JSON null decodes to the empty string.
GoStr = Annotated[str, BeforeValidator(_null_is_empty)]


class Kustomization(BaseModel):
    """The fields of a ``kustomization.yaml`` (kustomize v5 names; unknown fields are refused). A null
    where a string goes is the empty string, as Go's ``encoding/json`` leaves a string field (kustomize
    reads the file through JSON): ``nameSuffix: ~``, ``commonLabels: {a: ~}``."""

    model_config = ConfigDict(extra="forbid", strict=False)

    apiVersion: GoStr = ""
    kind: GoStr = ""
    metadata: dict[str, Any] | None = None
    resources: list[GoStr] | None = None
    bases: list[GoStr] | None = None
    components: list[GoStr] | None = None
    namespace: GoStr = ""
    namePrefix: GoStr = ""
    nameSuffix: GoStr = ""
    commonLabels: dict[str, GoStr] | None = None
    labels: list[dict[str, Any]] | None = None
    commonAnnotations: dict[str, GoStr] | None = None
    images: list[dict[str, Any]] | None = None
    imageTags: list[dict[str, Any]] | None = None
    replicas: list[dict[str, Any]] | None = None
    patches: list[dict[str, Any]] | None = None
    patchesStrategicMerge: list[GoStr] | None = None
    patchesJson6902: list[dict[str, Any]] | None = None
    configMapGenerator: list[dict[str, Any]] | None = None
    secretGenerator: list[dict[str, Any]] | None = None
    generatorOptions: dict[str, Any] | None = None
    configurations: list[GoStr] | None = None
    transformers: list[GoStr] | None = None
    generators: list[GoStr] | None = None
    validators: list[GoStr] | None = None
    replacements: list[dict[str, Any]] | None = None
    crds: list[GoStr] | None = None
    buildMetadata: list[GoStr] | None = None
    sortOptions: dict[str, Any] | None = None
    openapi: dict[str, GoStr] | None = None
    helmCharts: list[dict[str, Any]] | None = None
    helmGlobals: dict[str, Any] | None = None
    helmChartInflationGenerator: list[dict[str, Any]] | None = None
    vars: list[Any] | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata_strings(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        """``metadata`` decodes into a Kubernetes ObjectMeta: name and namespace are strings (or null)."""
        for key in ("name", "namespace"):
            item = (value or {}).get(key)
            if item is not None and not isinstance(item, str):
                raise ValueError(f"metadata.{key} must be a string, not {item!r}")
        return value


def _is_remote(ref: str) -> bool:
    return (
        bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", ref))
        or ref.startswith("git@")
        or ref.startswith("git::")
        or bool(re.match(r"^(github\.com|gitlab\.com|bitbucket\.org)[/:]", ref))
    )


def _unparsable_remote(entry: str, where: str) -> RenderError:
    return RenderError(
        f"remote resource {entry!r}: failed to parse scheme (kustomize accepts https://, http://, ssh://, "
        "file://, user@host:path and github.com/ remotes)",
        path=where,
    )


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


@dataclass
class _Limits:
    """Render-wide bounds and collectors."""

    max_file_bytes: int
    kustomizations: int = 0
    sops: _sops.SopsFiles | None = None  # where SOPS-encrypted resource files are recorded


@dataclass
class _Loader:
    """A kustomization directory's loader (kustomize's ``FileLoader`` with the root-only restrictor)."""

    root: str  # resolved directory
    repo: str  # resolved repository root
    limits: _Limits
    referrer: _Loader | None = None
    depth: int = 0
    remote: _remote.RemoteOptions | None = None
    origin: _remote.RemoteOrigin | None = None  # the remote repository this loader's files come from
    helm: helm.HelmOptions | None = None  # how helmCharts are inflated (None: Helm is off)

    def display(self, path: str) -> str:
        if self.origin is not None and _within(path, self.origin.tree):
            return self.origin.display(path)
        try:
            return os.path.relpath(path, self.repo) if _within(path, self.repo) else path
        except ValueError:
            return path

    def read(self, rel: str, *, where: str) -> tuple[bytes, str]:
        """Bytes of a file named relative to this kustomization, and its display path.

        Raises:
            RenderError: for remote files, files outside this kustomization's directory or the repository,
                missing files, directories, special files and files over the size limit.
        """
        if _remote.is_remote_file(rel):
            data = _remote.read_file(self.remote, rel, where=where, max_bytes=self.limits.max_file_bytes)
            return data, rel
        if _is_remote(rel):
            raise RenderError(
                f"remote file {rel!r} is not supported (renders use local files only)", path=where
            )
        if not rel:
            raise RenderError("empty file path", path=where)
        real = os.path.realpath(os.path.join(self.root, rel))
        if not _within(real, self.root) or not _within(real, self.repo):
            raise RenderError(
                f"security; file '{rel}' is not in or below '{self.display(self.root)}' (load restrictor)",
                path=where,
            )
        if not os.path.exists(real):
            raise RenderError(f"file '{rel}' not found (in '{self.display(self.root)}')", path=where)
        if os.path.isdir(real):
            raise RenderError(f"'{rel}' must resolve to a file", path=where)
        if not os.path.isfile(real):
            raise RenderError(f"'{rel}' is not a regular file (a pipe, device or socket)", path=where)
        return _read_capped(real, self.limits, self.display(real)), self.display(real)

    def new(self, rel: str, *, where: str) -> _Loader:
        """The loader of a kustomization directory named relative to this one.

        Raises:
            RenderError: for remote or absolute paths, non-directories, directories outside the repository,
                and directories containing a kustomization being built (cycles).
        """
        if not rel:
            raise RenderError("new root cannot be empty", path=where)
        spec = _remote.repo_spec(rel)
        if spec is not None:
            return self._new_remote(spec, where=where)
        if _is_remote(rel):
            raise _unparsable_remote(rel, where)
        if os.path.isabs(rel):
            raise RenderError(f"new root '{rel}' cannot be absolute", path=where)
        real = os.path.realpath(os.path.join(self.root, rel))
        if not _within(real, self.repo):
            raise RenderError(
                f"security; directory '{rel}' is not in or below the repository root (load restrictor)",
                path=where,
            )
        if not os.path.isdir(real):
            raise RenderError(f"'{rel}' is not a file or a directory", path=where)
        loader: _Loader | None = self
        while loader is not None:
            if _within(loader.root, real):
                raise RenderError(
                    f"cycle detected: candidate root '{self.display(real)}' contains visited root "
                    f"'{self.display(loader.root)}'",
                    path=where,
                )
            loader = loader.referrer
        if self.depth >= MAX_KUSTOMIZATION_DEPTH:
            raise RenderError(
                f"kustomizations nested deeper than {MAX_KUSTOMIZATION_DEPTH} levels (limit)", path=where
            )
        return _Loader(
            real, self.repo, self.limits, self, self.depth + 1, self.remote, self.origin, self.helm
        )

    def _new_remote(self, spec: _remote.RepoSpec, *, where: str) -> _Loader:
        """The loader of a remote base: rooted in its checkout, files restricted to it
        (:func:`reconciler.render.remote.open_base`)."""
        if self.depth >= MAX_KUSTOMIZATION_DEPTH:
            raise RenderError(
                f"kustomizations nested deeper than {MAX_KUSTOMIZATION_DEPTH} levels (limit)", path=where
            )
        chain: list[_remote.RemoteOrigin] = []
        loader: _Loader | None = self
        top = where
        while loader is not None:
            if loader.origin is not None and all(o is not loader.origin for o in chain):
                chain.insert(0, loader.origin)
            if loader.referrer is None:
                top = loader.display(loader.root)
            loader = loader.referrer
        directory, origin = _remote.open_base(self.remote, spec, where=where, chain=chain, top=top)
        return _Loader(
            directory, origin.tree, self.limits, self, self.depth + 1, self.remote, origin, self.helm
        )


def _read_capped(path: str, limits: _Limits, display: str) -> bytes:
    try:
        size = os.path.getsize(path)
        if size > limits.max_file_bytes:
            raise RenderError(
                f"file is {size} bytes, over the {limits.max_file_bytes}-byte limit for one file",
                path=display,
            )
        with open(path, "rb") as fh:
            data = fh.read(limits.max_file_bytes + 1)
    except OSError as exc:
        raise RenderError(f"cannot read file: {exc.strerror}", path=display) from None
    if len(data) > limits.max_file_bytes:
        raise RenderError(f"file is over the {limits.max_file_bytes}-byte limit for one file", path=display)
    return data


def find_kustomization(directory: Path) -> Path | None:
    """The kustomization file of ``directory`` (``kustomization.yaml``, ``.yml`` or ``Kustomization``).

    Raises:
        RenderError: when more than one of them exists.
    """
    found = [directory / n for n in KUSTOMIZATION_FILES if (directory / n).is_file()]
    if len(found) > 1:
        raise RenderError(
            f"found multiple kustomization files: {', '.join(p.name for p in found)}", path=str(directory)
        )
    return found[0] if found else None


_UNSUPPORTED = {
    "openapi": "a custom OpenAPI schema ('openapi') is not supported by this renderer",
}


def load_kustomization(loader: _Loader) -> tuple[Kustomization, str]:
    """Read and validate the kustomization file of ``loader.root``.

    Raises:
        RenderError: naming the file for a missing, duplicate, empty or invalid kustomization, or unsupported
            fields.
    """
    kfile = find_kustomization(Path(loader.root))
    if kfile is None:
        raise RenderError(
            "unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory",
            path=loader.display(loader.root),
        )
    where = loader.display(str(kfile))
    real = os.path.realpath(kfile)
    if not _within(real, loader.root) or not _within(real, loader.repo):
        raise RenderError(
            "security; the kustomization file resolves outside its directory (load restrictor)", path=where
        )
    data = _read_capped(real, loader.limits, where)
    raw = load_yaml_value(data, path=where, yaml11=True)
    if raw is None or raw == {}:
        raise RenderError("kustomization.yaml is empty", path=where)
    if not isinstance(raw, dict):
        raise RenderError("invalid Kustomization: the file must hold a mapping", path=where)
    try:
        kust = Kustomization.model_validate(_canonical_keys(raw))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        msg = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
        line = key_lines(data, path=where).get(str(first["loc"][0])) if first["loc"] else None
        raise RenderError(f"invalid Kustomization: field {loc}: {msg}", path=where, line=line) from None
    refvars.parse_vars(kust.vars, where=where)
    kind = kust.kind or "Kustomization"
    if kind not in ("Kustomization", "Component"):
        raise RenderError("kind should be Kustomization or Component", path=where)
    required = COMPONENT_VERSION if kind == "Component" else KUSTOMIZATION_VERSION
    if kust.apiVersion and kust.apiVersion != required:
        raise RenderError(f"apiVersion for {kind} should be {required}", path=where)
    kust.kind = kind
    for name, message in _UNSUPPORTED.items():
        if getattr(kust, name):
            raise RenderError(message, path=where)
    if kust.sortOptions is not None:
        _check_sort_options(kust.sortOptions, where)
    if _has_charts(kust):
        from reconciler.render import helm

        helm.chart_specs(kust.helmCharts, kust.helmGlobals, kust.helmChartInflationGenerator, where=where)
    return kust, where


def _canonical_keys(raw: dict[Any, Any]) -> dict[Any, Any]:
    """The kustomization's top-level keys spelled as its fields: kustomize decodes the file with Go's JSON
    decoder (api/types/kustomization.go ``Unmarshal``), which also accepts a key differing only in case
    (``nameprefix``); a later spelling of the same field wins."""
    fields = {name.lower(): name for name in Kustomization.model_fields}
    out: dict[Any, Any] = {}
    for key, value in raw.items():
        name = key if key in Kustomization.model_fields else fields.get(str(key).lower(), key)
        out.pop(name, None)
        out[name] = value
    return out


def _check_sort_options(opts: dict[str, Any], where: str) -> None:
    unknown = set(opts) - {"order", "legacySortOptions"}
    if unknown:
        raise RenderError(f"sortOptions: unknown field(s) {sorted(unknown)}", path=where)
    order = opts.get("order")
    if order not in ("legacy", "fifo"):
        raise RenderError("the field 'sortOptions.order' must be one of [fifo, legacy]", path=where)
    legacy = opts.get("legacySortOptions")
    if order == "fifo" and legacy is not None:
        raise RenderError(
            "the field 'sortOptions.legacySortOptions' is set but the selected sort order is 'fifo', not "
            "'legacy'",
            path=where,
        )
    if legacy is not None:
        if not isinstance(legacy, dict) or set(legacy) - {"orderFirst", "orderLast"}:
            raise RenderError("sortOptions.legacySortOptions takes orderFirst and orderLast", path=where)
        for key in ("orderFirst", "orderLast"):
            value = legacy.get(key)
            if value is not None and not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
                raise RenderError(f"sortOptions.legacySortOptions.{key} must be a list of kinds", path=where)


# -- resources ----------------------------------------------------------------------------------------


def resources_from_bytes(data: bytes, *, source: str, patches: bool = False) -> list[Resource]:
    """Objects of a manifest file: documents in order, ``*List`` objects with ``items`` expanded at the end
    (kustomize's ``RNodesFromBytes``), each checked by :func:`make_resource` (``patches``: strategic-merge
    patches, whose plain scalars keep their source text, see :attr:`YamlMap.texts`).

    Raises:
        RenderError: naming ``source`` and the line for invalid YAML, documents that are not objects, or
            missing fields.
    """
    queue: list[tuple[Any, int]] = list(load_yaml_documents_with_lines(data, path=source, keep_text=patches))
    out: list[Resource] = []
    while queue:
        doc, line = queue.pop(0)
        kind = doc.get("kind")
        if isinstance(kind, str) and kind.endswith("List") and "items" in doc:
            items = doc["items"]
            if items is None:
                continue
            if not isinstance(items, list):
                raise RenderError(f"expected array in {kind}/items", path=source, line=line)
            for item in items:
                if not isinstance(item, dict):
                    raise RenderError(
                        f"{kind}/items holds an element that is not an object", path=source, line=line
                    )
                queue.append((item, line))
            continue
        out.append(make_resource(doc, source=source, line=line))
    return out


@dataclass
class _Acc:
    """kustomize's ``ResAccumulator``: the resources, the transformer configuration and the vars so far."""

    resmap: ResMap = field(default_factory=ResMap)
    config: TransformerConfig = field(default_factory=TransformerConfig)
    vars: refvars.VarSet = field(default_factory=dict)


def _accumulate_target(loader: _Loader, kust: Kustomization, where: str, acc: _Acc) -> _Acc:
    with _chart_namespace_scope(kust.namespace) as chart_namespace:
        return _accumulate_target_in(loader, kust, where, acc, chart_namespace)


def _accumulate_target_in(
    loader: _Loader, kust: Kustomization, where: str, acc: _Acc, chart_namespace: str
) -> _Acc:
    for entry in [*(kust.resources or []), *(kust.bases or [])]:
        _accumulate_resource(loader, entry, where, acc)
    config = TransformerConfig.defaults()
    for rel in kust.configurations or []:
        data, shown = loader.read(rel, where=where)
        raw = load_yaml_value(data, path=shown, yaml11=True)
        if raw is None:
            continue
        if not isinstance(raw, dict):
            raise RenderError("a transformer configuration must be a mapping", path=shown)
        config.merge(TransformerConfig.from_raw(raw, where=shown), where=shown)
    acc.config.merge(config, where=where)
    for rel in kust.crds or []:  # after configurations, as kustomize's accumulateTarget
        data, shown = loader.read(rel, where=where)
        acc.config.merge(crds.config_from_crds(data, where=shown), where=shown)
    _run_generators(loader, kust, where, acc, chart_namespace)
    for comp in kust.components or []:
        sub = loader.new(comp, where=where)
        with buildmeta.entering(comp):
            _accumulate_directory(sub, where, acc, component=True)
    _run_transformers(loader, kust, where, acc)
    buildmeta.annotate_transformed([r.obj for r in acc.resmap], kust, where)
    _run_validators(loader, kust, where, acc)
    if kust.vars:
        refvars.merge_vars(acc.resmap, acc.vars, refvars.parse_vars(kust.vars, where=where), where=where)
    return acc


def _accumulate_resource(loader: _Loader, entry: str, where: str, acc: _Acc) -> None:
    if entry and _remote.wants_remote(entry, loader.root):
        _accumulate_remote(loader, entry, where, acc)
        return
    if _is_remote(entry):
        raise _unparsable_remote(entry, where)
    if not entry:
        raise RenderError("empty resource path", path=where)
    if os.path.isabs(entry):
        raise RenderError(f"security; resource '{entry}' is an absolute path (load restrictor)", path=where)
    real = os.path.realpath(os.path.join(loader.root, entry))
    if not _within(real, loader.repo):
        raise RenderError(
            f"security; resource '{entry}' is not in or below the repository root (load restrictor)",
            path=where,
        )
    if not os.path.exists(real):
        raise RenderError(f"accumulating resources: '{entry}' does not exist", path=where)
    if not os.path.isdir(real):
        data, shown = loader.read(entry, where=where)
        found = resources_from_bytes(data, source=shown)
        _sops.record_file(loader.limits.sops, data, [r.obj for r in found], source=shown)
        buildmeta.annotate_file([r.obj for r in found], entry)
        _check_objects(len(acc.resmap) + len(found), where)
        acc.resmap.extend(found)
        return
    sub = loader.new(entry, where=where)
    with buildmeta.entering(entry):
        _accumulate_directory(sub, where, acc, component=False)


def _accumulate_remote(loader: _Loader, entry: str, where: str, acc: _Acc) -> None:
    """A remote ``resources`` entry: a file over HTTP, else a Git repository (kustomize tries the file
    first; a Git-like URL whose body is no valid manifest is built as a repository)."""
    max_bytes = loader.limits.max_file_bytes
    data = _remote.resource_file(loader.remote, entry, where=where, max_bytes=max_bytes)
    if data is not None:
        try:
            found = resources_from_bytes(data, source=entry)
        except RenderError:
            if _remote.repo_spec(entry) is None:
                raise
            try:
                sub = loader.new(entry, where=where)
            except RenderError as exc:
                raise RenderError(
                    f"{entry!r} is neither a manifest nor a repository: {exc.message}", path=where
                ) from None
            with buildmeta.entering(entry):
                _accumulate_directory(sub, where, acc, component=False)
            return
        _remote.record_file(loader.remote, entry, where=where, data=data)
        _sops.record_file(loader.limits.sops, data, [r.obj for r in found], source=entry)
        buildmeta.annotate_file([r.obj for r in found], entry)
        _check_objects(len(acc.resmap) + len(found), where)
        acc.resmap.extend(found)
        return
    sub = loader.new(entry, where=where)
    with buildmeta.entering(entry):
        _accumulate_directory(sub, where, acc, component=False)


def _accumulate_directory(loader: _Loader, where: str, acc: _Acc, *, component: bool) -> None:
    loader.limits.kustomizations += 1
    if loader.limits.kustomizations > MAX_KUSTOMIZATIONS:
        raise RenderError(
            f"too many kustomizations: more than {MAX_KUSTOMIZATIONS} directory builds in one render "
            "(limit); is a directory included many times over?",
            path=where,
        )
    kust, kwhere = load_kustomization(loader)
    if component and kust.kind != "Component":
        raise RenderError(
            f"expected kind 'Component' for path '{loader.display(loader.root)}' but got '{kust.kind}'",
            path=where,
        )
    if not component and kust.kind == "Component":
        raise RenderError(
            f"expected kind != 'Component' for path '{loader.display(loader.root)}'", path=where
        )
    if component:
        _accumulate_target(loader, kust, kwhere, acc)
        return
    sub = _accumulate_target(loader, kust, kwhere, _Acc())
    _check_objects(len(acc.resmap) + len(sub.resmap), where)
    acc.resmap.extend(list(sub.resmap.items))
    acc.config.merge(sub.config, where=kwhere)
    refvars.merge_var_sets(acc.vars, sub.vars, directory=loader.display(loader.root), where=kwhere)


def _check_objects(count: int, where: str) -> None:
    if count > MAX_OBJECTS:
        raise RenderError(f"too many objects: more than {MAX_OBJECTS} in one render (limit)", path=where)


# -- generators ---------------------------------------------------------------------------------------


def _run_generators(
    loader: _Loader, kust: Kustomization, where: str, acc: _Acc, chart_namespace: str = ""
) -> None:
    def load(rel: str) -> bytes:
        return loader.read(rel, where=where)[0]

    for kind, entries in (("ConfigMap", kust.configMapGenerator), ("Secret", kust.secretGenerator)):
        for args in entries or []:
            res = generators.generate(kind, args, kust.generatorOptions, load, where=where)
            buildmeta.annotate_generated(res.obj, posixpath.basename(where), f"{kind}Generator")
            _absorb_generated(res, acc, where)
    if _has_charts(kust):
        from reconciler.render import helm

        charts, helm_globals = helm.chart_specs(
            kust.helmCharts, kust.helmGlobals, kust.helmChartInflationGenerator, where=where
        )
        for chart in charts:
            _inflate_chart(
                loader, chart, helm_globals, where, acc, chart_namespace, posixpath.basename(where)
            )
    for spec in kust.generators or []:  # builtin generator configurations (kustomize's runGenerators)
        inline = "\n" in spec or spec.lstrip().startswith(("apiVersion", "kind", "{"))
        configured_in = posixpath.basename(where) if inline else spec
        for conf, cwhere in _transformer_configs(spec, loader, where):
            if (
                isinstance(conf, dict)
                and conf.get("kind") == "HelmChartInflationGenerator"
                and conf.get("apiVersion") == "builtin"
            ):
                from reconciler.render import helm

                chart, glob = helm.config_spec(conf, where=where, shown=cwhere)
                name = str((conf.get("metadata") or {}).get("name") or "")
                _inflate_chart(loader, chart, glob, where, acc, "", configured_in, name)
                continue
            kind, args = generators.builtin_generator_args(conf, where=where, shown=cwhere)
            res = generators.generate(kind, args, None, load, where=where)
            name = str((conf.get("metadata") or {}).get("name") or "")
            buildmeta.annotate_generated(res.obj, configured_in, kind + "Generator", name)
            _absorb_generated(res, acc, where)


def _inflate_chart(
    loader: _Loader,
    chart: helm.HelmChart,
    glob: helm.HelmGlobals,
    where: str,
    acc: _Acc,
    namespace: str,
    configured_in: str,
    config_name: str = "",
) -> None:
    """One Helm chart's objects (:func:`reconciler.render.helm.inflate`) absorbed like generated ones."""
    from reconciler.render import helm

    ctx = helm.ChartContext(
        root=loader.root,
        repo=loader.repo,
        where=where,
        namespace=namespace,
        read=lambda rel: loader.read(rel, where=where),
        remote=loader.remote,
    )
    for obj in helm.inflate(chart, glob, ctx, loader.helm):
        res = make_resource(obj, source=f"{where} (helm chart {chart.name!r})")
        buildmeta.annotate_generated(res.obj, configured_in, "HelmChartInflationGenerator", config_name)
        _check_objects(len(acc.resmap) + 1, where)
        _absorb_generated(res, acc, where)


def _absorb_generated(res: Resource, acc: _Acc, where: str) -> None:
    rid = res.cur_id()
    matches = acc.resmap.by_any_id(rid)
    if not matches:
        if res.behavior in ("merge", "replace"):
            raise RenderError(f"id {rid} does not exist; cannot merge or replace", path=where)
        acc.resmap.append(res)
        return
    if len(matches) > 1:
        raise RenderError(f"found multiple objects that could accept merge of {rid}", path=where)
    if res.behavior not in ("merge", "replace"):
        raise RenderError(
            f"id {rid} exists; can not use behavior: '{res.behavior}', behavior must be merge or replace",
            path=where,
        )
    old = matches[0]
    index = acc.resmap.items.index(old)
    old_origin = buildmeta.origin_of(old.obj) if res.behavior == "merge" else None
    merged = generators.merge_generated(old, res)
    buildmeta.keep_origin(merged.obj, old_origin)
    merged.ref_var_names = list(old.ref_var_names)
    acc.resmap.items[index] = merged


# -- transformers -------------------------------------------------------------------------------------


def _smp_patches(text: str, where: str) -> list[dict[str, Any]]:
    """Strategic-merge patch documents (each an object with kind and metadata.name); SOPS-encrypted
    ones are refused (:func:`reconciler.render.sops.refuse_encrypted_patch`)."""
    docs = [res.obj for res in resources_from_bytes(text.encode("utf-8"), source=where, patches=True)]
    for doc in docs:
        _sops.refuse_encrypted_patch(doc, where=where)
    return docs


def _parse_patch(text: str, where: str) -> tuple[str, list[Any]]:
    """Classify a ``patches:`` text: strategic merge (``"smp"``, documents) or JSON 6902 (``"json"``, ops).

    The text is used as kustomize uses it (api/internal/builtins/PatchTransformer.go): an inline ``patch:``
    comes trimmed, a file's content whole (a block scalar at its end keeps its final line breaks)."""
    if not text.strip():
        return "smp", []  # an empty file patches nothing (an empty inline patch is refused before)
    if text.startswith("["):
        return "json", _json_ops(text, where, allow_empty=True)
    try:
        value: Any = load_yaml_value(text, path=where, yaml11=True, v2_keys=True)
    except RenderError:
        value = None
    if isinstance(value, list):
        return "json", _json_ops(text, where, allow_empty=True)
    try:
        return "smp", _smp_patches(text, where)
    except RenderError as exc:
        if isinstance(value, dict) and "op" in value and "kind" not in value:
            raise RenderError(
                "unable to parse SM or JSON patch: a JSON 6902 patch must be a list of operations",
                path=where,
                line=1,
            ) from None
        raise exc from None


def _json_ops(text: str, where: str, *, allow_empty: bool = False) -> list[Any]:
    """JSON 6902 operations: strict JSON when the text starts with ``[`` (as kustomize decodes it), else
    YAML read with go-yaml v2's rules (sigs.k8s.io/yaml). ``allow_empty``: an empty list patches nothing
    (``patches:``; ``patchesJson6902`` refuses it, as kustomize does)."""
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            raise RenderError(f"invalid JSON patch: {exc.msg}", path=where, line=exc.lineno) from None
        except RecursionError:
            raise RenderError("invalid JSON patch: nesting too deep", path=where) from None
    else:
        value = load_yaml_value(text, path=where, yaml11=True, v2_keys=True)
    if not isinstance(value, list):
        raise RenderError("a JSON 6902 patch must be a list of operations", path=where, line=1)
    if not value and not allow_empty:
        raise RenderError("patch appears to be empty", path=where)
    for n, op in enumerate(value):
        if not isinstance(op, dict):
            raise RenderError(f"JSON patch operation #{n} is not a mapping", path=where)
        if op.get("op") not in ("add", "remove", "replace", "move", "copy", "test"):
            raise RenderError(f"JSON patch operation #{n}: Unexpected kind: {op.get('op')}", path=where)
    return value


def _apply_smp(res: Resource, patch: dict[str, Any], where: str, options: dict[str, Any]) -> bool:
    """kustomize's ``Resource.ApplySmPatch``; ``False`` when the patch deletes the object."""
    name, namespace, kind = res.name, res.namespace, res.kind
    allow_name = bool(options.get("allowNameChange"))
    allow_kind = bool(options.get("allowKindChange"))
    if allow_name or allow_kind:
        res.store_previous_id()
    merged = patches.apply_strategic_merge(res.obj, patch, where=where)
    if merged is None:
        return False
    res.obj = merged
    if not allow_kind:
        res.obj["kind"] = kind
    if not allow_name:
        res.set_name(name)
    res.meta["namespace"] = namespace
    if not namespace:
        res.meta.pop("namespace", None)
    return True


def _apply_smp_to(
    resmap: ResMap, targets: list[Resource], patch: dict[str, Any], where: str, options: dict[str, Any]
) -> None:
    """kustomize's ``ResMap.ApplySmPatch``: a copy of the patch with each target's apiVersion/kind."""
    selected = {id(t) for t in targets}
    keep = []
    for res in resmap.items:
        if id(res) in selected:
            p = copy.deepcopy(patch)
            _normalize_patch_meta(p)
            p["apiVersion"] = res.api_version
            if "apiVersion" not in res.obj:
                p.pop("apiVersion", None)
            if not _apply_smp(res, p, where, options):
                continue
        keep.append(res)
    resmap.items[:] = keep


def _normalize_patch_meta(patch: dict[str, Any]) -> None:
    """kustomize copies a patch with ``CopyMergeMetaDataFieldsFrom`` before applying it to selected objects:
    its labels and annotations become string maps, and empty or null ones disappear."""
    meta = patch.get("metadata")
    if not isinstance(meta, dict):
        return
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if isinstance(value, dict) and value:
            meta[key] = {k: patches.scalar_text(v) for k, v in sorted(value.items())}
        else:
            meta.pop(key, None)


def _find_by_patch_id(resmap: ResMap, patch: dict[str, Any], where: str) -> Resource:
    probe = make_resource(copy.deepcopy(patch), source=where)
    matches = resmap.by_any_id(probe.cur_id())
    if len(matches) != 1:
        state = "multiple matches" if matches else "no matches"
        raise RenderError(
            f"{state} for Id {probe.cur_id()}; failed to find unique target for patch {probe.cur_id()}",
            path=where,
        )
    return matches[0]


def _patch_transformer(resmap: ResMap, entry: dict[str, Any], loader: _Loader, where: str) -> None:
    unknown = set(entry) - {"path", "patch", "target", "options"}
    if unknown:
        raise RenderError(f"patches entry: unknown field(s) {sorted(unknown)}", path=where)
    path, text = entry.get("path"), entry.get("patch")
    if text is not None and not isinstance(text, str):
        raise RenderError("patches entry: 'patch' must be a string", path=where)
    text = (text or "").strip()
    if text and path:
        raise RenderError("patch and path can't be set at the same time", path=where)
    pwhere = where
    if path:
        data, pwhere = loader.read(str(path), where=where)
        text = _utf8(data, pwhere)
    elif not text:
        raise RenderError("must specify one of patch and path", path=where)
    options = entry.get("options") or {}
    if not isinstance(options, dict) or set(options) - {"allowNameChange", "allowKindChange"}:
        raise RenderError("patches entry: options takes allowNameChange and allowKindChange", path=where)
    target = entry.get("target")
    if target is not None:
        check_target(target, where=where)
    kind, docs = _parse_patch(text, pwhere)
    if kind == "smp":
        if target is not None:
            if len(docs) > 1:
                raise RenderError(
                    "Multiple Strategic-Merge Patches in one `patches` entry is not allowed to set "
                    "`patches.target` field",
                    path=pwhere,
                )
            if docs:
                _apply_smp_to(resmap, select(resmap, target, where=where), docs[0], pwhere, options)
            return
        for patch in docs:
            found = _find_by_patch_id(resmap, patch, pwhere)
            p = copy.deepcopy(patch)
            if not _apply_smp(found, p, pwhere, options):
                resmap.remove(found)
        return
    if not docs:
        return  # an empty operation list patches nothing, with or without a target
    if target is None:
        raise RenderError("must specify a target for JSON patch", path=pwhere)
    for res in select(resmap, target, where=where):
        res.store_previous_id()
        res.obj = patches.apply_json6902(res.obj, docs, where=pwhere)


def _utf8(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RenderError(f"file is not valid UTF-8 (byte offset {exc.start})", path=where) from None


def _patches_strategic_merge(resmap: ResMap, entries: list[str], loader: _Loader, where: str) -> None:
    loaded: list[tuple[dict[str, Any], str]] = []
    for entry in entries:
        docs: list[dict[str, Any]] | None
        try:
            docs = _smp_patches(entry, where) if ("\n" in entry or ":" in entry) else None
        except RenderError:
            docs = None
        if docs is None:
            data, pwhere = loader.read(entry, where=where)
            loaded.extend((d, pwhere) for d in _smp_patches(_utf8(data, pwhere), pwhere))
        else:
            loaded.extend((d, where) for d in docs)
    if not loaded:
        raise RenderError(f"patch appears to be empty; files={entries}", path=where)
    for patch, pwhere in loaded:
        target = _find_by_patch_id(resmap, patch, pwhere)
        _apply_smp_to(resmap, [target], patch, pwhere, {})


def _patches_json6902(resmap: ResMap, entry: dict[str, Any], loader: _Loader, where: str) -> None:
    unknown = set(entry) - {"target", "path", "patch"}
    if unknown:
        raise RenderError(f"patchesJson6902 entry: unknown field(s) {sorted(unknown)}", path=where)
    target = entry.get("target")
    if not isinstance(target, dict):
        raise RenderError("must specify a target for patch", path=where)
    check_target(target, where=where)
    if not target.get("name"):
        raise RenderError("must specify the target name", path=where)
    path, text = entry.get("path"), entry.get("patch")
    pwhere = where
    if path and text:
        raise RenderError("must specify a file path or jsonOp, not both", path=where)
    if path:
        data, pwhere = loader.read(str(path), where=where)
        text = _utf8(data, pwhere)
        if not text:
            raise RenderError(f"patch file '{path}' empty seems to be empty", path=where)
    if not text:
        raise RenderError("empty file path and empty jsonOp", path=where)
    ops = _json_ops(str(text), pwhere)
    for res in select(resmap, target, where=where):
        res.obj = patches.apply_json6902(res.obj, ops, where=pwhere)


def _labels(rm: ResMap, labels: list[dict[str, Any]], cfg: TransformerConfig, where: str) -> None:
    for label in labels:
        if not isinstance(label, dict) or set(label) - {
            "pairs",
            "includeSelectors",
            "includeTemplates",
            "fields",
        }:
            raise RenderError(
                "labels entries take pairs, includeSelectors, includeTemplates and fields", path=where
            )
        for flag in ("includeSelectors", "includeTemplates"):
            if label.get(flag) is not None and not isinstance(label[flag], bool):
                raise RenderError(
                    f"invalid Kustomization: labels entry: {flag} must be true or false, not {label[flag]!r}",
                    path=where,
                )
        pairs = label.get("pairs") or {}
        if isinstance(pairs, dict):  # a null value is the empty string (Go's JSON decoding)
            pairs = {k: "" if v is None else v for k, v in pairs.items()}
        if not isinstance(pairs, dict) or not all(isinstance(v, str) for v in pairs.values()):
            raise RenderError("labels pairs must map strings to strings", path=where)
        specs = merge_fieldspecs(parse_fieldspecs(label.get("fields"), where=where), cfg.labels, where=where)
        if label.get("includeSelectors"):
            specs = merge_fieldspecs(specs, cfg.common_labels, where=where)
        else:
            if label.get("includeTemplates"):
                specs = merge_fieldspecs(specs, cfg.template_labels, where=where)
            specs = merge_fieldspecs(specs, [FieldSpec("metadata/labels", create=True)], where=where)
        transformers.map_transform(rm, {str(k): v for k, v in pairs.items()}, specs, where=where)


def _run_transformers(loader: _Loader, kust: Kustomization, where: str, acc: _Acc) -> None:
    rm, cfg = acc.resmap, acc.config
    if kust.patchesStrategicMerge:
        _patches_strategic_merge(rm, kust.patchesStrategicMerge, loader, where)
    for entry in kust.patches or []:
        _patch_transformer(rm, entry, loader, where)
    if kust.namespace:
        transformers.namespace_transform(rm, kust.namespace, cfg.namespace, where=where)
    if kust.namePrefix:
        transformers.prefix_suffix_transform(rm, kust.namePrefix, "", cfg.name_prefix, where=where)
    if kust.nameSuffix:
        transformers.prefix_suffix_transform(rm, "", kust.nameSuffix, cfg.name_suffix, where=where)
    if kust.labels:
        _labels(rm, kust.labels, cfg, where)
    if kust.commonLabels:
        transformers.map_transform(rm, kust.commonLabels, cfg.common_labels, where=where)
    if kust.commonAnnotations:
        transformers.map_transform(rm, kust.commonAnnotations, cfg.common_annotations, where=where)
    for entry in kust.patchesJson6902 or []:
        _patches_json6902(rm, entry, loader, where)
    if kust.replicas:
        transformers.replicas_transform(rm, kust.replicas, cfg.replicas, where=where)
    images = [
        transformers.check_image_entry(image, where=where, strings=True)
        for image in [*(kust.images or []), *(kust.imageTags or [])]
    ]
    if images:
        transformers.images_transform(rm, images, cfg.images, where=where)
    if kust.replacements:
        replacements.apply(rm, _replacement_entries(kust.replacements, loader, where))
    for spec in kust.transformers or []:
        for conf, cwhere in _transformer_configs(spec, loader, where):
            _run_builtin(rm, conf, cfg, loader, cwhere)


#: the label a validator may add without counting as a change (kustomize's ``konfig.ValidatedByLabelKey``)
VALIDATED_BY_LABEL = "validated-by"


def _validated_view(res: Resource) -> tuple[ResId, dict[str, Any]]:
    obj = copy.deepcopy(res.obj)
    labels = (obj.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(VALIDATED_BY_LABEL, None)
        if not labels:
            obj["metadata"].pop("labels")
    return res.cur_id(), obj


def _run_validators(loader: _Loader, kust: Kustomization, where: str, acc: _Acc) -> None:
    """kustomize's ``runValidators``: each ``validators:`` entry (builtin configurations, as files, inline,
    kustomization directories or remote, like ``transformers:``) runs on the objects, and must leave them as
    they were but for the ``validated-by`` label, which stays.

    Raises:
        RenderError: "validator shouldn't modify the resource map", naming the configuration.
    """
    for spec in kust.validators or []:
        for conf, cwhere in _transformer_configs(spec, loader, where):
            before = sorted((_validated_view(r) for r in acc.resmap), key=lambda v: str(v[0]))
            _run_builtin(acc.resmap, conf, acc.config, loader, cwhere)
            after = sorted((_validated_view(r) for r in acc.resmap), key=lambda v: str(v[0]))
            if before != after:
                changed = next(
                    (str(a[0]) for a, b in zip(before, after, strict=False) if a != b), "the object set"
                )
                raise RenderError(
                    f"validator shouldn't modify the resource map: {changed} changed", path=cwhere
                )


def _replacement_entries(
    raw: list[Any], loader: _Loader, where: str, *, strict: bool = True
) -> list[tuple[Any, str]]:
    entries: list[tuple[Any, str]] = []
    for rep in raw:
        replacements.check_entry(rep, where=where, strict=strict)
        if rep.get("path"):
            if rep.get("source") is not None or rep.get("targets"):
                raise RenderError("cannot specify both path and inline replacement", path=where)
            data, shown = loader.read(str(rep["path"]), where=where)
            entries.extend((e, shown) for e in replacements.load_replacement_file(data, path=shown))
        else:
            entries.append((rep, where))
    return entries


def _transformer_configs(spec: str, loader: _Loader, where: str) -> list[tuple[dict[str, Any], str]]:
    """The configuration objects named by one ``transformers:`` or ``generators:`` entry: inline YAML, a
    file, a kustomization directory (its output), or a remote file or kustomization (as a remote
    ``resources`` entry is loaded)."""
    if "\n" in spec or spec.lstrip().startswith(("apiVersion", "kind", "{")):
        try:
            docs = load_yaml_documents(spec, path=where, kyaml=True)
        except RenderError:
            docs = []
        if docs:
            return [(d, where) for d in docs]
    if spec and _remote.wants_remote(spec, loader.root):
        # kustomize accumulates each entry as a resource: a remote file or a remote kustomization, under
        # the same allow-list, pinning and limits as remote resources
        built = _Acc()
        _accumulate_remote(loader, spec, where, built)
        return [(r.obj, spec) for r in built.resmap.items]
    if _is_remote(spec):
        raise _unparsable_remote(spec, where)
    real = os.path.realpath(os.path.join(loader.root, spec))
    if os.path.isdir(real):  # a kustomization whose output is the configurations
        built = _Acc()
        _accumulate_directory(loader.new(spec, where=where), where, built, component=False)
        return [(r.obj, where) for r in built.resmap.items]
    data, shown = loader.read(spec, where=where)
    return [(d, shown) for d in load_yaml_documents(data, path=shown, kyaml=True)]


def _builtin_specs(conf: dict[str, Any], where: str) -> list[FieldSpec]:
    return parse_fieldspecs(conf.get("fieldSpecs"), where=where, strict=False)


def _run_builtin(
    rm: ResMap, conf: dict[str, Any], cfg: TransformerConfig, loader: _Loader, where: str
) -> None:
    kind = conf.get("kind")
    api = conf.get("apiVersion")
    if api != "builtin":
        raise RenderError(
            f"only builtin transformer configurations (apiVersion: builtin) are supported, got {api!r} "
            f"kind {kind!r}",
            path=where,
        )
    if kind in ("PrefixSuffixTransformer", "PrefixTransformer", "SuffixTransformer"):
        if conf.get("fieldSpecs") is None:
            raise RenderError("fieldSpecs is not expected to be nil", path=where)
        specs = _builtin_specs(conf, where)
        if kind in ("PrefixSuffixTransformer", "PrefixTransformer"):
            prefix = str(conf.get("prefix") or "")
            if prefix:
                transformers.prefix_suffix_transform(rm, prefix, "", specs, where=where)
        if kind in ("PrefixSuffixTransformer", "SuffixTransformer"):
            suffix = str(conf.get("suffix") or "")
            if suffix:
                transformers.prefix_suffix_transform(rm, "", suffix, specs, where=where)
    elif kind in ("LabelTransformer", "AnnotationsTransformer"):
        key = "labels" if kind == "LabelTransformer" else "annotations"
        pairs = conf.get(key) or {}
        if not isinstance(pairs, dict):
            raise RenderError(f"{kind}: {key} must be a mapping", path=where)
        transformers.map_transform(
            rm, {str(k): str(v) for k, v in pairs.items()}, _builtin_specs(conf, where), where=where
        )
    elif kind == "NamespaceTransformer":
        ns = (conf.get("metadata") or {}).get("namespace")
        if not ns:
            return
        transformers.namespace_transform(
            rm,
            str(ns),
            _builtin_specs(conf, where),
            unset_only=bool(conf.get("unsetOnly")),
            role_binding_subjects=str(conf.get("setRoleBindingSubjects") or "defaultOnly"),
            where=where,
        )
    elif kind == "ImageTagTransformer":
        tag = transformers.check_image_entry(conf.get("imageTag") or {}, where=where)
        transformers.images_transform(rm, [tag], _builtin_specs(conf, where), where=where)
    elif kind == "ReplicaCountTransformer":
        transformers.replicas_transform(
            rm, [conf.get("replica") or {}], _builtin_specs(conf, where), where=where
        )
    elif kind == "PatchTransformer":
        entry: dict[str, Any] = {k: conf[k] for k in ("path", "patch", "target", "options") if k in conf}
        _patch_transformer(rm, entry, loader, where)
    elif kind == "PatchStrategicMergeTransformer":
        paths = [str(p) for p in conf.get("paths") or []]
        if conf.get("patches"):
            paths.append(str(conf["patches"]))
        if not paths:
            raise RenderError("empty file path and empty patch content", path=where)
        _patches_strategic_merge(rm, paths, loader, where)
    elif kind == "PatchJson6902Transformer":
        entry = {"target": conf.get("target"), "path": conf.get("path"), "patch": conf.get("jsonOp")}
        _patches_json6902(rm, {k: v for k, v in entry.items() if v is not None}, loader, where)
    elif kind == "ReplacementTransformer":
        raw = conf.get("replacements") or []
        if not isinstance(raw, list):
            raise RenderError("ReplacementTransformer: replacements must be a list", path=where)
        replacements.apply(rm, _replacement_entries(raw, loader, where, strict=False))
    elif kind == "HashTransformer":
        _add_hashes(rm)
    else:
        raise RenderError(f"unsupported builtin transformer kind {kind!r}", path=where)


# -- top level ----------------------------------------------------------------------------------------

_ORDER_FIRST = list(ORDER_FIRST)  # kustomize's legacy order (fieldspecs.ORDER_FIRST)
_ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]


def legacy_order(
    resources: list[Resource], order_first: list[str] | None = None, order_last: list[str] | None = None
) -> list[Resource]:
    """kustomize's legacy output order: a kind ranking, then ``group_version_kind``, then
    ``kind.version.group|namespace|name`` (api/internal/builtins/SortOrderTransformer.go)."""
    first = _ORDER_FIRST if order_first is None else order_first
    last = _ORDER_LAST if order_last is None else order_last
    ranks = {k: -len(first) + i for i, k in enumerate(first)} | {k: 1 + i for i, k in enumerate(last)}

    def key(r: Resource) -> tuple[int, int, str, str]:
        group, version, kind = r.group, r.version, r.kind
        gvk = "_".join([group or "~G", version or "~V", kind or "~K"])
        rank = ranks.get(kind, 0)
        # Namespaces: when either has no group the gvk strings compare in reverse (kustomize quirk)
        flip = -1 if kind == "Namespace" and not group else 1
        ident = "|".join(
            [".".join([kind or "~K", version or "~V", group or "~G"]), r.namespace or "~X", r.name or "~N"]
        )
        return (rank, flip, gvk if flip == 1 else _invert(gvk), ident)

    return sorted(resources, key=key)


def _invert(text: str) -> str:
    return "".join(chr(0x10FFFF - ord(c)) for c in text) + "\U0010ffff"


def _add_hashes(rm: ResMap) -> None:
    for res in rm:
        if res.needs_hash:
            h = generators.content_hash(res.obj)
            res.store_previous_id()
            res.set_name(f"{res.name}-{h}")


def _drop_helm_mark(obj: dict[str, Any]) -> None:
    """Remove the helm-generated mark (one of kustomize's build annotations, ``RemoveBuildAnnotations``)."""
    meta = obj.get("metadata")
    ann = meta.get("annotations") if isinstance(meta, dict) else None
    if isinstance(ann, dict):
        ann.pop(HELM_GENERATED_ANNOTATION, None)


def _normalize_annotations(obj: dict[str, Any]) -> None:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        return
    if "annotations" not in meta:
        return
    ann = meta["annotations"]
    if ann is None or ann == {}:
        # kustomize annotates every object while building and clears the map afterwards: an empty or
        # null annotations field does not survive
        del meta["annotations"]
        return
    if not isinstance(ann, dict):
        return
    out: dict[str, str] = {}
    for k, v in ann.items():
        if isinstance(v, str):
            out[k] = v
        elif v is None:
            out[k] = "null"
        elif v is True or v is False:
            out[k] = "true" if v else "false"
        elif isinstance(v, (dict, list)):
            out[k] = ""
        elif isinstance(v, float):
            from reconciler.render.yamlio import format_scalar_float

            out[k] = format_scalar_float(v)
        else:
            out[k] = str(v)
    meta["annotations"] = out


def build_resources(
    path: Path,
    root: Path,
    *,
    max_file_bytes: int = DEFAULT_MAX_FILE_BYTES,
    remote: _remote.RemoteOptions | None = None,
    helm_options: helm.HelmOptions | None = None,
    sops: _sops.SopsFiles | None = None,
) -> list[dict[str, Any]]:
    """Render without caching (see :func:`reconciler.render.build`)."""
    repo = os.path.realpath(root)
    directory = os.path.realpath(path)
    limits = _Limits(max_file_bytes, sops=sops)
    if not _within(directory, repo):
        raise RenderError(f"security; '{path}' is not in or below '{root}' (load restrictor)", path=str(path))
    if not os.path.isdir(directory):
        raise RenderError("kustomization path is not a directory", path=str(path))
    loader = _Loader(directory, repo, limits, remote=remote, helm=helm_options)
    kust, where = load_kustomization(loader)
    build_metadata = buildmeta.check(kust.buildMetadata, where)
    with buildmeta.tracking(build_metadata):
        acc = _accumulate_target(loader, kust, where, _Acc())
    _add_hashes(acc.resmap)
    nameref.fix_name_references(acc.resmap, acc.config.name_reference)
    refvars.resolve(acc.resmap, acc.vars, acc.config.var_reference)
    kept = []
    for res in acc.resmap.items:
        ann = (
            res.obj.get("metadata", {}).get("annotations")
            if isinstance(res.obj.get("metadata"), dict)
            else None
        )
        if (
            isinstance(ann, dict)
            and LOCAL_CONFIG_ANNOTATION in ann
            and ann[LOCAL_CONFIG_ANNOTATION] != "false"
        ):
            continue
        kept.append(res)
    sort = kust.sortOptions
    if sort is not None and sort.get("order") == "fifo":
        ordered = kept
    else:
        legacy = (sort or {}).get("legacySortOptions") or {}
        ordered = legacy_order(kept, legacy.get("orderFirst"), legacy.get("orderLast"))
    buildmeta.finish([res.obj for res in ordered], build_metadata)
    out = []
    for res in ordered:
        _drop_helm_mark(res.obj)
        _normalize_annotations(res.obj)
        out.append(res.obj)
    return out


def tree_digest(directory: Path, root: Path) -> str:
    """SHA-256 over every file under ``root`` that a render of ``directory`` could read (paths + bytes).

    Used as the cache key when no Git tree digest is supplied; it covers the whole root because
    kustomizations may reach any file below it.
    """
    h = hashlib.sha256()
    h.update(str(os.path.realpath(directory)).encode())
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if d != ".git")
        for name in sorted(filenames):
            p = Path(dirpath) / name
            h.update(str(p.relative_to(root)).encode() + b"\0")
            try:
                h.update(p.read_bytes())
            except OSError:
                continue
            h.update(b"\0")
    return h.hexdigest()


__all__ = [
    "DEFAULT_MAX_FILE_BYTES",
    "Kustomization",
    "build_resources",
    "gvk_sort_key",
    "legacy_order",
    "tree_digest",
]
