"""The kustomization field ``buildMetadata`` (kustomize v5.8.1, api/resource/origin.go and
api/internal/target/kusttarget.go).

``originAnnotations`` annotates every resource with ``config.kubernetes.io/origin``: the file it came
from, relative to the root kustomization (``path``), or for a generated one the kustomization that
configured it (``configuredIn``) and the builtin generator (``configuredBy``). ``transformerAnnotations``
lists in ``alpha.config.kubernetes.io/transformations`` every builtin transformer a kustomization configures
(kustomize records each one on every resource of the map it transforms; ``transformers:`` entries are
refused with it). ``managedByLabel``
labels every resource ``app.kubernetes.io/managed-by: kustomize-v5.8.1``. Like kustomize, only the root
kustomization's ``buildMetadata`` counts (it is copied over every base's), and an origin annotation the
input already carries is dropped unless origin annotations are asked for (likewise transformations).
"""

from __future__ import annotations

import posixpath
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from reconciler.render import repospec
from reconciler.render.errors import RenderError
from reconciler.render.yamlio import dump_object

ORIGIN_ANNOTATIONS = "originAnnotations"
TRANSFORMER_ANNOTATIONS = "transformerAnnotations"
MANAGED_BY_LABEL = "managedByLabel"

ORIGIN_KEY = "config.kubernetes.io/origin"
TRANSFORMATIONS_KEY = "alpha.config.kubernetes.io/transformations"
MANAGED_BY_KEY = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "kustomize-v5.8.1"


@dataclass(frozen=True)
class Origin:
    """kustomize's ``resource.Origin`` (the fields this renderer fills)."""

    path: str = ""
    repo: str = ""
    ref: str = ""
    configured_in: str = ""
    configured_by_kind: str = ""
    configured_by_name: str = ""

    def append(self, entry: str) -> Origin:
        """``Origin.Append``: the origin one ``resources``/``components`` entry further down."""
        base = self
        path = entry
        try:
            spec = repospec.parse_repo_spec(entry)
        except (repospec.RepoSpecError, ValueError):
            spec = None
        if spec is not None:
            base = replace(self, repo=spec.clone_spec, ref=spec.ref, path="")
            path = spec.kust_root_path
        return replace(base, path=_join(base.path, path))

    def generated(self, kust_file: str, generator: str, name: str = "") -> Origin:
        """The origin of a resource made by a builtin generator configured in ``kust_file`` (the
        kustomization, or for a ``generators:`` entry the file holding its configuration, whose
        ``metadata.name`` is ``name``)."""
        return Origin(
            repo=self.repo,
            ref=self.ref,
            configured_in=_join(self.path, kust_file),
            configured_by_kind=generator,
            configured_by_name=name,
        )

    def text(self) -> str:
        """The annotation value, as kyaml marshals the struct (fields in declaration order)."""
        out = []
        for key, value in (
            ("path", self.path),
            ("repo", self.repo),
            ("ref", self.ref),
            ("configuredIn", self.configured_in),
        ):
            if value:
                out.append(dump_object({key: value}))
        if self.configured_by_kind:
            out.append("configuredBy:\n")
            by = {"apiVersion": "builtin", "kind": self.configured_by_kind}
            if self.configured_by_name:
                by["name"] = self.configured_by_name
            for line in dump_object(by).splitlines():
                out.append(f"  {line}\n")
        return "".join(out)


def _join(a: str, b: str) -> str:
    """Go's ``filepath.Join``: joined and cleaned, ``""`` when both are empty."""
    parts = [p for p in (a, b) if p]
    return posixpath.normpath(posixpath.join(*parts)) if parts else ""


# The origin of the kustomization being accumulated; None when origin tracking is off.
_CURRENT: ContextVar[Origin | None] = ContextVar("reconciler_render_origin", default=None)
# Whether the root kustomization asked for transformer annotations.
_TRANSFORMS: ContextVar[bool] = ContextVar("reconciler_render_transforms", default=False)


def check(values: list[str] | None, where: str) -> list[str]:
    """The root kustomization's ``buildMetadata`` (kustomize ignores values it does not know, and so does
    this renderer)."""
    del where
    return list(values or [])


@contextmanager
def tracking(values: list[str]) -> Iterator[None]:
    """Track origins for the duration of one build when ``values`` is not empty (kustomize tracks them
    whenever ``buildMetadata`` is set, and drops them at the end unless asked for)."""
    token = _CURRENT.set(Origin() if values else None)
    token2 = _TRANSFORMS.set(TRANSFORMER_ANNOTATIONS in values)
    try:
        yield
    finally:
        _TRANSFORMS.reset(token2)
        _CURRENT.reset(token)


@contextmanager
def entering(entry: str) -> Iterator[None]:
    """Within a ``resources``/``components`` directory entry."""
    current = _CURRENT.get()
    token = _CURRENT.set(current.append(entry) if current is not None else None)
    try:
        yield
    finally:
        _CURRENT.reset(token)


def _annotations(obj: dict[str, Any]) -> dict[str, Any]:
    meta = obj.get("metadata")
    if not isinstance(meta, dict):
        meta = {}
        obj["metadata"] = meta
    ann = meta.get("annotations")
    if not isinstance(ann, dict):
        ann = {}
        meta["annotations"] = ann
    return ann


def annotate_file(objects: list[dict[str, Any]], entry: str) -> None:
    """Resources read from the file ``entry``: annotated with its path (``AnnotateAll``)."""
    current = _CURRENT.get()
    if current is None:
        return
    text = current.append(entry).text()
    for obj in objects:
        _annotations(obj)[ORIGIN_KEY] = text


def annotate_generated(obj: dict[str, Any], kust_file: str, generator: str, name: str = "") -> None:
    """A generated resource, unless it has an origin already (``AddOriginAnnotation``); ``kust_file`` and
    ``name`` as :meth:`Origin.generated` takes them."""
    current = _CURRENT.get()
    if current is None:
        return
    meta = obj.get("metadata")
    ann = meta.get("annotations") if isinstance(meta, dict) else None
    if isinstance(ann, dict) and ORIGIN_KEY in ann:
        return
    _annotations(obj)[ORIGIN_KEY] = current.generated(kust_file, generator, name).text()


def finish(objects: list[dict[str, Any]], values: list[str]) -> None:
    """The end of ``Kustomizer.Run``: the managed-by label, and the build metadata not asked for
    dropped."""
    for obj in objects:
        if MANAGED_BY_LABEL in values:
            meta = obj.get("metadata")
            if not isinstance(meta, dict):
                meta = {}
                obj["metadata"] = meta
            labels = meta.get("labels")
            if not isinstance(labels, dict):
                labels = {}
                meta["labels"] = labels
            labels[MANAGED_BY_KEY] = MANAGED_BY_VALUE
        meta = obj.get("metadata")
        ann = meta.get("annotations") if isinstance(meta, dict) else None
        if not isinstance(ann, dict):
            continue
        if ORIGIN_ANNOTATIONS not in values:
            ann.pop(ORIGIN_KEY, None)
        if TRANSFORMER_ANNOTATIONS not in values:
            ann.pop(TRANSFORMATIONS_KEY, None)


def origin_of(obj: dict[str, Any]) -> str | None:
    """The origin annotation of ``obj``, if any."""
    meta = obj.get("metadata")
    ann = meta.get("annotations") if isinstance(meta, dict) else None
    value = ann.get(ORIGIN_KEY) if isinstance(ann, dict) else None
    return value if isinstance(value, str) else None


def keep_origin(obj: dict[str, Any], origin: str | None) -> None:
    """A generator's ``behavior: merge`` keeps the origin of the resource merged into."""
    if origin is not None:
        _annotations(obj)[ORIGIN_KEY] = origin


def _transformer_kinds(kust: Any) -> list[str]:
    """The builtin transformers a kustomization configures, in kustomize's order
    (``configureBuiltinTransformers`` and ``transformerConfigurators``)."""
    kinds: list[str] = []
    if kust.patchesStrategicMerge:
        kinds.append("PatchStrategicMergeTransformer")
    kinds += ["PatchTransformer"] * len(kust.patches or [])
    if kust.namespace:
        kinds.append("NamespaceTransformer")
    if kust.namePrefix:
        kinds.append("PrefixTransformer")
    if kust.nameSuffix:
        kinds.append("SuffixTransformer")
    if kust.labels or kust.commonLabels:
        # one per ``labels`` entry and one for ``commonLabels`` (even when it is empty)
        kinds += ["LabelTransformer"] * (len(kust.labels or []) + 1)
    if kust.commonAnnotations:
        kinds.append("AnnotationsTransformer")
    kinds += ["PatchJson6902Transformer"] * len(kust.patchesJson6902 or [])
    kinds += ["ReplicaCountTransformer"] * len(kust.replicas or [])
    kinds += ["ImageTagTransformer"] * (len(kust.images or []) + len(kust.imageTags or []))
    if kust.replacements:
        kinds.append("ReplacementTransformer")
    return kinds


def annotate_transformed(objects: list[dict[str, Any]], kust: Any, where: str) -> None:
    """After a kustomization's transformers ran over ``objects`` (``multiTransformer.Transform`` with
    ``AddTransformerAnnotation``): a resource without an origin gets the first transformer's as its
    origin, the others (all, for a resource with an origin) are appended to its transformations."""
    current = _CURRENT.get()
    if current is None:
        return
    if kust.transformers and _TRANSFORMS.get():
        raise RenderError(
            f"buildMetadata: '{TRANSFORMER_ANNOTATIONS}' with 'transformers' is not supported by this "
            "renderer",
            path=where,
        )
    kinds = _transformer_kinds(kust)
    if not kinds:
        return
    origins = [current.generated(posixpath.basename(where), kind).text() for kind in kinds]
    for obj in objects:
        for text in origins:
            ann = _annotations(obj)
            if ORIGIN_KEY not in ann:
                ann[ORIGIN_KEY] = text
                continue
            lines = text.splitlines()
            item = "".join([f"- {lines[0]}\n", *(f"  {line}\n" for line in lines[1:])])
            previous = ann.get(TRANSFORMATIONS_KEY)
            ann[TRANSFORMATIONS_KEY] = (previous if isinstance(previous, str) else "") + item
