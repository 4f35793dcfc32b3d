"""The kustomization build: load, accumulate resources, generate, transform, hash, fix references, order.

The pipeline per kustomization follows kustomize v5 (api/internal/target/kusttarget.go): resources (files
and nested kustomizations, depth first), ``configurations``, generators, components, then the built-in
transformers in the order patchesStrategicMerge, patches, namespace, namePrefix, nameSuffix, labels and
commonLabels, commonAnnotations, patchesJson6902, replicas, images, replacements, followed by the
``transformers:`` entries. At the top level only: hash suffixes for generated objects, name-reference
rewriting, and kustomize's legacy kind order.
"""

from __future__ import annotations

import copy
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from reconciler.render import generators, nameref, patches, transformers
from reconciler.render.errors import RenderError
from reconciler.render.fieldspecs import FieldSpec, TransformerConfig, parse_fieldspecs
from reconciler.render.resource import ResMap, Resource, make_resource
from reconciler.render.yamlio import load_yaml_documents

KUSTOMIZATION_FILES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class Kustomization(BaseModel):
    """The fields of a ``kustomization.yaml`` this renderer understands (kustomize v5 names)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    apiVersion: str = "kustomize.config.k8s.io/v1beta1"
    kind: str = "Kustomization"
    metadata: dict[str, Any] | None = None
    resources: list[str] = []
    bases: list[str] = []
    components: list[str] = []
    namespace: str = ""
    namePrefix: str = ""
    nameSuffix: str = ""
    commonLabels: dict[str, str] = {}
    labels: list[dict[str, Any]] = []
    commonAnnotations: dict[str, str] = {}
    images: list[dict[str, Any]] = []
    replicas: list[dict[str, Any]] = []
    patches: list[dict[str, Any]] = []
    patchesStrategicMerge: list[str] = []
    patchesJson6902: list[dict[str, Any]] = []
    configMapGenerator: list[dict[str, Any]] = []
    secretGenerator: list[dict[str, Any]] = []
    generatorOptions: dict[str, Any] = {}
    configurations: list[str] = []
    transformers: list[str] = []
    generators: list[str] = []
    validators: list[str] = []
    replacements: list[dict[str, Any]] = []
    crds: list[str] = []
    buildMetadata: list[str] = []
    sortOptions: dict[str, Any] | None = None
    openapi: dict[str, Any] | None = None
    helmCharts: list[dict[str, Any]] | None = None
    helmGlobals: dict[str, Any] | None = None
    vars: list[dict[str, Any]] = []


@dataclass
class _Ctx:
    root: Path
    stack: list[Path] = field(default_factory=list)


def _is_remote(ref: str) -> bool:
    return (
        bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", ref))
        or ref.startswith("git@")
        or bool(re.match(r"^(github\.com|gitlab\.com|bitbucket\.org)/", ref))
    )


def _display(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _restrict(path: Path, ctx: _Ctx, *, where: str) -> Path:
    real = Path(os.path.realpath(path))
    root = Path(os.path.realpath(ctx.root))
    if real != root and root not in real.parents:
        raise RenderError(
            f"security; file '{path}' is not in or below '{ctx.root}' (load restrictor)", path=where
        )
    return real


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


def _load_kustomization(directory: Path, ctx: _Ctx) -> tuple[Kustomization, str]:
    kfile = find_kustomization(directory)
    if kfile is None:
        raise RenderError(
            "unable to find one of 'kustomization.yaml', 'kustomization.yml' or 'Kustomization' in directory",
            path=_display(directory, ctx.root),
        )
    where = _display(kfile, ctx.root)
    docs = load_yaml_documents(kfile.read_text(encoding="utf-8"), path=where)
    if len(docs) != 1:
        raise RenderError("kustomization file must hold exactly one document", path=where)
    raw = docs[0]
    try:
        kust = Kustomization.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"])
        raise RenderError(f"invalid field {loc}: {first['msg']}", path=where) from None
    if kust.kind not in ("Kustomization", "Component"):
        raise RenderError(f"unsupported kind {kust.kind!r}", path=where)
    if kust.helmCharts:
        raise RenderError("helmCharts are not supported", path=where)
    if kust.vars:
        raise RenderError("vars are not supported (use replacements)", path=where)
    for unsupported in ("generators", "validators", "crds"):
        if getattr(kust, unsupported):
            raise RenderError(f"'{unsupported}' is not supported by this renderer", path=where)
    order = (kust.sortOptions or {}).get("order", "legacy")
    if order not in ("legacy", "fifo"):
        raise RenderError("sortOptions.order must be 'legacy' or 'fifo'", path=where)
    return kust, where


def _read_bytes(base: Path, rel: str, ctx: _Ctx, where: str) -> bytes:
    if _is_remote(rel):
        raise RenderError(f"remote file {rel!r} is not supported (renders use local files only)", path=where)
    target = _restrict(base / rel, ctx, where=where)
    if not target.is_file():
        raise RenderError(f"file '{rel}' not found (in '{_display(base, ctx.root)}')", path=where)
    return target.read_bytes()


def _load_objects(path: Path, ctx: _Ctx) -> list[dict[str, Any]]:
    where = _display(path, ctx.root)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise RenderError("file is not UTF-8 text", path=where) from None
    out: list[dict[str, Any]] = []
    for doc in load_yaml_documents(text, path=where):
        if (
            doc.get("kind", "").endswith("List")
            and isinstance(doc.get("items"), list)
            and "metadata" not in doc
        ):
            out.extend(i for i in doc["items"] if isinstance(i, dict))
        else:
            out.append(doc)
    return out


# -- accumulation -------------------------------------------------------------------------------------


@dataclass
class _Acc:
    resmap: ResMap
    config: TransformerConfig


def _accumulate(directory: Path, ctx: _Ctx, *, component: bool, acc: _Acc | None = None) -> _Acc:
    real = _restrict(directory, ctx, where=_display(directory, ctx.root))
    if real in ctx.stack:
        chain = " -> ".join(_display(p, ctx.root) for p in [*ctx.stack, real])
        raise RenderError(
            f"cycle detected in kustomization references: {chain}", path=_display(real, ctx.root)
        )
    ctx.stack.append(real)
    try:
        kust, where = _load_kustomization(real, ctx)
        if component and kust.kind != "Component":
            raise RenderError(f"expected kind 'Component' but got {kust.kind!r}", path=where)
        if not component and kust.kind == "Component":
            raise RenderError("expected kind != 'Component' for a resource directory", path=where)
        if acc is None:
            acc = _Acc(ResMap(), TransformerConfig())
        for entry in [*kust.resources, *kust.bases]:
            _accumulate_resource(real, entry, ctx, acc, where)
        for cfg in kust.configurations:
            for doc in load_yaml_documents(_read_bytes(real, cfg, ctx, where).decode(), path=cfg):
                acc.config.merge_raw(doc, where=_display(real / cfg, ctx.root))
        _run_generators(real, kust, ctx, acc, where)
        for comp in kust.components:
            if _is_remote(comp):
                raise RenderError(f"remote component {comp!r} is not supported", path=where)
            cdir = real / comp
            if not cdir.is_dir():
                raise RenderError(f"component '{comp}' is not a directory", path=where)
            _accumulate(cdir, ctx, component=True, acc=acc)
        _run_transformers(real, kust, ctx, acc, where)
        return acc
    finally:
        ctx.stack.pop()


def _accumulate_resource(base: Path, entry: str, ctx: _Ctx, acc: _Acc, where: str) -> None:
    if _is_remote(entry):
        raise RenderError(
            f"remote resource {entry!r} is not supported (renders use local files only)", path=where
        )
    target = base / entry
    _restrict(target, ctx, where=where)
    if target.is_file():
        for obj in _load_objects(target, ctx):
            acc.resmap.append(make_resource(obj, source=_display(target, ctx.root)))
    elif target.is_dir():
        sub = _accumulate(target, ctx, component=False)
        acc.resmap.extend(sub.resmap)
        acc.config.merge(sub.config)
    else:
        raise RenderError(f"accumulating resources: '{entry}' does not exist", path=where)


def _run_generators(base: Path, kust: Kustomization, ctx: _Ctx, acc: _Acc, where: str) -> None:
    def load(rel: str) -> bytes:
        return _read_bytes(base, rel, ctx, where)

    for kind, entries in (("ConfigMap", kust.configMapGenerator), ("Secret", kust.secretGenerator)):
        for args in entries:
            res = generators.generate(
                kind, args, kust.generatorOptions, load, where=where, namespace=kust.namespace or None
            )
            rid = res.cur_id()
            existing = [
                r
                for r in acc.resmap
                if r.kind == kind
                and r.orig_id().name == rid.name
                and (r.orig_id().namespace or "default") == (rid.namespace or "default")
            ]
            if res.behavior == "create":
                if existing:
                    raise RenderError(
                        f"{kind} {rid.name!r} already exists; use behavior merge or replace", path=where
                    )
                acc.resmap.append(res)
            else:
                if not existing:
                    raise RenderError(f"{kind} {rid.name!r} to {res.behavior} was not found", path=where)
                generators.merge_generated(existing[0], res)


# -- selection ----------------------------------------------------------------------------------------


def _regex_full(pattern: str, value: str) -> bool:
    try:
        return re.fullmatch(pattern, value) is not None
    except re.error:
        return pattern == value


def _label_selector_matches(selector: str, labels: dict[str, Any]) -> bool:
    for term in [t.strip() for t in re.split(r",(?![^()]*\))", selector) if t.strip()]:
        m = re.match(r"^([^\s!=]+)\s+(in|notin)\s+\((.*)\)$", term)
        if m:
            vals = {v.strip() for v in m.group(3).split(",")}
            has = m.group(1) in labels and str(labels[m.group(1)]) in vals
            if (m.group(2) == "in") != has:
                return False
        elif "!=" in term:
            k, v = term.split("!=", 1)
            if str(labels.get(k.strip())) == v.strip() and k.strip() in labels:
                return False
        elif "=" in term:
            k, v = term.split("==", 1) if "==" in term else term.split("=", 1)
            if k.strip() not in labels or str(labels[k.strip()]) != v.strip():
                return False
        elif term.startswith("!"):
            if term[1:].strip() in labels:
                return False
        elif term not in labels:
            return False
    return True


def select(resmap: ResMap, target: dict[str, Any]) -> list[Resource]:
    """Resources matching a patch/replacement ``target`` (group/version/kind exact, name and namespace as
    anchored regular expressions, label/annotation selectors)."""
    out = []
    for res in resmap:
        rid = res.cur_id()
        if target.get("group") not in (None, "") and target["group"] != rid.group:
            continue
        if target.get("version") not in (None, "") and target["version"] != rid.version:
            continue
        if target.get("kind") not in (None, "") and target["kind"] != rid.kind:
            continue
        if target.get("name") not in (None, "") and not any(
            _regex_full(str(target["name"]), i.name) for i in res.all_ids()
        ):
            continue
        if target.get("namespace") not in (None, "") and not any(
            _regex_full(str(target["namespace"]), i.namespace) for i in res.all_ids()
        ):
            continue
        meta = res.meta
        if target.get("labelSelector") and not _label_selector_matches(
            str(target["labelSelector"]), meta.get("labels") or {}
        ):
            continue
        if target.get("annotationSelector") and not _label_selector_matches(
            str(target["annotationSelector"]), meta.get("annotations") or {}
        ):
            continue
        out.append(res)
    return out


# -- patches ------------------------------------------------------------------------------------------


def _apply_patch_docs(resmap: ResMap, text: str, target: dict[str, Any] | None, where: str) -> None:
    stripped = text.lstrip()
    if stripped.startswith(("[", "-")) and not stripped.startswith("---"):
        _apply_json(resmap, _load_ops(text, where), target, where)
        return
    for doc in load_yaml_documents(text, path=where):
        _apply_smp(resmap, doc, target, where)


def _load_ops(text: str, where: str) -> list[Any]:
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        value = YAML(typ="safe", pure=True).load(text)
    except YAMLError as exc:
        raise RenderError(f"invalid JSON patch: {exc}", path=where) from None
    if not isinstance(value, list):
        raise RenderError("JSON patch must be a list of operations", path=where)
    return value


def _apply_json(resmap: ResMap, ops: list[Any], target: dict[str, Any] | None, where: str) -> None:
    if target is None:
        raise RenderError("a JSON 6902 patch needs a target", path=where)
    for res in select(resmap, target):
        before = res.cur_id()
        res.obj = patches.apply_json6902(res.obj, ops, where=where)
        _note_rename(res, before)


def _note_rename(res: Resource, before: Any) -> None:
    if res.cur_id() != before and before not in res.prev_ids:
        res.prev_ids.append(before)


def _apply_smp(resmap: ResMap, patch: dict[str, Any], target: dict[str, Any] | None, where: str) -> None:
    if target is None:
        meta = patch.get("metadata") or {}
        name = meta.get("name")
        kind = patch.get("kind")
        if not isinstance(name, str) or not isinstance(kind, str):
            raise RenderError(
                "a strategic merge patch without target needs kind and metadata.name", path=where
            )
        group = str(patch.get("apiVersion") or "").rpartition("/")[0]
        ns = meta.get("namespace")
        matches = [
            r
            for r in resmap
            if any(
                i.kind == kind
                and i.name == name
                and (not group or i.group == group)
                and (ns is None or (i.namespace or "default") == (ns or "default"))
                for i in r.all_ids()
            )
        ]
        if len(matches) != 1:
            raise RenderError(
                f"failed to find unique target for patch {kind}/{name}"
                + (f" ({len(matches)} found)" if matches else ""),
                path=where,
            )
        targets = matches
    else:
        targets = select(resmap, target)
    for res in targets:
        p = copy.deepcopy(patch)
        if target is not None:
            pm = (
                p.setdefault("metadata", {})
                if isinstance(p.get("metadata"), dict) or "metadata" not in p
                else {}
            )
            if isinstance(pm, dict):
                pm["name"] = res.name
                if res.namespace:
                    pm["namespace"] = res.namespace
                else:
                    pm.pop("namespace", None)
            p["kind"] = res.kind
            p["apiVersion"] = res.api_version
        before = res.cur_id()
        merged = patches.apply_strategic_merge(res.obj, p)
        if merged is None:
            resmap.items.remove(res)
            continue
        res.obj = merged
        _note_rename(res, before)


def _run_transformers(base: Path, kust: Kustomization, ctx: _Ctx, acc: _Acc, where: str) -> None:
    rm, cfg = acc.resmap, acc.config
    for rel in kust.patchesStrategicMerge:
        if "\n" in rel or rel.lstrip().startswith(("apiVersion", "kind")):
            _apply_patch_docs(rm, rel, None, where)
        else:
            text = _read_bytes(base, rel, ctx, where).decode()
            _apply_patch_docs(rm, text, None, _display(base / rel, ctx.root))
    for entry in kust.patches:
        target = entry.get("target")
        if entry.get("path") and entry.get("patch"):
            raise RenderError("patch entry has both 'path' and 'patch'", path=where)
        if entry.get("path"):
            text = _read_bytes(base, str(entry["path"]), ctx, where).decode()
            pwhere = _display(base / str(entry["path"]), ctx.root)
        elif isinstance(entry.get("patch"), str):
            text, pwhere = entry["patch"], where
        else:
            raise RenderError("patch entry needs 'path' or 'patch'", path=where)
        _apply_patch_docs(rm, text, target if isinstance(target, dict) else None, pwhere)
    if kust.namespace:
        transformers.namespace_transform(rm, kust.namespace, cfg.namespace)
    if kust.namePrefix:
        transformers.prefix_suffix_transform(rm, kust.namePrefix, "", cfg.name_prefix)
    if kust.nameSuffix:
        transformers.prefix_suffix_transform(rm, "", kust.nameSuffix, cfg.name_suffix)
    for label in kust.labels:
        pairs = {str(k): str(v) for k, v in (label.get("pairs") or {}).items()}
        specs: list[FieldSpec] = parse_fieldspecs(label.get("fields"), where=where) + list(cfg.labels)
        if label.get("includeSelectors"):
            specs += cfg.common_labels
        else:
            if label.get("includeTemplates"):
                specs += cfg.template_labels
            specs.append(FieldSpec("metadata/labels", create=True))
        transformers.map_transform(rm, pairs, _dedupe(specs))
    if kust.commonLabels:
        transformers.map_transform(rm, kust.commonLabels, cfg.common_labels)
    if kust.commonAnnotations:
        transformers.map_transform(rm, kust.commonAnnotations, cfg.common_annotations)
    for entry in kust.patchesJson6902:
        target = entry.get("target")
        if not isinstance(target, dict):
            raise RenderError("patchesJson6902 entry needs a target", path=where)
        if entry.get("path"):
            text = _read_bytes(base, str(entry["path"]), ctx, where).decode()
        else:
            text = str(entry.get("patch") or "")
        _apply_json(rm, _load_ops(text, where), target, where)
    if kust.replicas:
        transformers.replicas_transform(rm, kust.replicas, cfg.replicas)
    if kust.images:
        transformers.images_transform(rm, kust.images, cfg.images)
    if kust.replacements:
        from reconciler.render import replacements

        entries: list[dict[str, Any]] = []
        for rep in kust.replacements:
            if "path" in rep:
                text = _read_bytes(base, str(rep["path"]), ctx, where).decode()
                entries.extend(
                    _load_ops(text, where)
                    if text.lstrip().startswith("-") or text.lstrip().startswith("[")
                    else load_yaml_documents(text, path=str(rep["path"]))
                )
            else:
                entries.append(rep)
        replacements.apply(rm, entries, where=where)
    for rel in kust.transformers:
        text = _read_bytes(base, rel, ctx, where).decode()
        for conf in load_yaml_documents(text, path=_display(base / rel, ctx.root)):
            _run_builtin(rm, conf, cfg, _display(base / rel, ctx.root))


def _dedupe(specs: list[FieldSpec]) -> list[FieldSpec]:
    out: list[FieldSpec] = []
    for s in specs:
        if s not in out:
            out.append(s)
    return out


def _run_builtin(rm: ResMap, conf: dict[str, Any], cfg: TransformerConfig, where: str) -> None:
    kind = conf.get("kind")
    if conf.get("apiVersion") != "builtin":
        raise RenderError(
            f"only builtin transformer configurations are supported, got {conf.get('apiVersion')!r}",
            path=where,
        )
    specs = parse_fieldspecs(conf.get("fieldSpecs"), where=where)
    if kind == "PrefixSuffixTransformer" or kind in ("PrefixTransformer", "SuffixTransformer"):
        transformers.prefix_suffix_transform(
            rm,
            str(conf.get("prefix") or ""),
            str(conf.get("suffix") or ""),
            specs or [FieldSpec("metadata/name")],
        )
    elif kind == "LabelTransformer":
        transformers.map_transform(rm, conf.get("labels") or {}, specs)
    elif kind == "AnnotationsTransformer":
        transformers.map_transform(rm, conf.get("annotations") or {}, specs)
    elif kind == "NamespaceTransformer":
        ns = (conf.get("metadata") or {}).get("namespace")
        if not isinstance(ns, str):
            raise RenderError("NamespaceTransformer needs metadata.namespace", path=where)
        transformers.namespace_transform(rm, ns, specs or cfg.namespace)
    elif kind == "ImageTagTransformer":
        transformers.images_transform(rm, [conf.get("imageTag") or {}], specs or cfg.images)
    elif kind == "PatchTransformer":
        target = conf.get("target")
        text = str(conf.get("patch") or "")
        _apply_patch_docs(rm, text, target if isinstance(target, dict) else None, where)
    else:
        raise RenderError(f"unsupported builtin transformer kind {kind!r}", path=where)


# -- top level ----------------------------------------------------------------------------------------

_ORDER_FIRST = [
    "Namespace",
    "ResourceQuota",
    "StorageClass",
    "CustomResourceDefinition",
    "ServiceAccount",
    "PodSecurityPolicy",
    "Role",
    "ClusterRole",
    "RoleBinding",
    "ClusterRoleBinding",
    "ConfigMap",
    "Secret",
    "Endpoints",
    "Service",
    "LimitRange",
    "PriorityClass",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "CronJob",
    "PodDisruptionBudget",
]
_ORDER_LAST = ["MutatingWebhookConfiguration", "ValidatingWebhookConfiguration"]
_RANK = {k: -len(_ORDER_FIRST) + i for i, k in enumerate(_ORDER_FIRST)} | {
    k: 1 + i for i, k in enumerate(_ORDER_LAST)
}


def legacy_order(resources: list[Resource]) -> list[Resource]:
    """kustomize's legacy output order: a fixed kind ranking, then group/version/kind, namespace, name."""
    import functools

    def gvk_sort(r: Resource) -> str:
        return "_".join([r.group or "~G", r.version or "~V", r.kind or "~K"])

    def id_sort(r: Resource) -> str:
        rid = r.cur_id()
        return "|".join([rid.gvk_str(), rid.namespace or "~X", rid.name or "~N"])

    def cmp(a: Resource, b: Resource) -> int:
        ga = (a.group, a.version, a.kind)
        gb = (b.group, b.version, b.kind)
        if ga != gb:
            ra, rb = _RANK.get(a.kind, 0), _RANK.get(b.kind, 0)
            if ra != rb:
                return -1 if ra < rb else 1
            sa, sb = gvk_sort(a), gvk_sort(b)
            if a.kind == "Namespace" and b.kind == "Namespace" and (not a.group or not b.group):
                return -1 if sa > sb else (1 if sa < sb else 0)
            return -1 if sa < sb else (1 if sa > sb else 0)
        ia, ib = id_sort(a), id_sort(b)
        return -1 if ia < ib else (1 if ia > ib else 0)

    return sorted(resources, key=functools.cmp_to_key(cmp))


def build_resources(path: Path, root: Path) -> list[dict[str, Any]]:
    """Render without caching (see :func:`reconciler.render.build`)."""
    root = Path(os.path.realpath(root))
    ctx = _Ctx(root=root)
    directory = Path(os.path.realpath(path))
    _restrict(directory, ctx, where=str(path))
    if not directory.is_dir():
        raise RenderError("kustomization path is not a directory", path=str(path))
    top, _ = _load_kustomization(directory, ctx)
    acc = _accumulate(directory, ctx, component=False)
    for res in acc.resmap:
        if res.needs_hash:
            res.set_name(f"{res.name}-{generators.content_hash(res.obj)}")
    nameref.fix_name_references(acc.resmap, acc.config.name_reference)
    if (top.sortOptions or {}).get("order") == "fifo":
        return [r.obj for r in acc.resmap]
    return [r.obj for r in legacy_order(list(acc.resmap))]


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
