"""Built-in transformers: namespace, name prefix/suffix, labels, annotations, images, replicas.

Semantics follow kustomize v5's built-in transformers (sigs.k8s.io/kustomize/api/filters/*): each walks the
field specs of the build's transformer configuration (:mod:`reconciler.render.fieldspecs`).
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.render.errors import RenderError
from reconciler.render.fieldspecs import FieldSpec, apply_fieldspec
from reconciler.render.resource import ResMap, Resource


def _selected(res: Resource, spec: FieldSpec, *, original: bool = False) -> bool:
    rid = res.orig_id() if original else res.cur_id()
    return spec.matches(rid.group, rid.version, rid.kind)


def namespace_transform(resmap: ResMap, namespace: str, specs: list[FieldSpec]) -> None:
    """Set ``metadata.namespace`` on every namespaced object and the other namespace fields in ``specs``.

    RoleBinding/ClusterRoleBinding subjects named ``default`` get the namespace too (kustomize's
    ``setRoleBindingSubjects: defaultOnly``); subjects naming a ServiceAccount of the build are updated
    later by name-reference rewriting.
    """
    for res in resmap:
        if not res.cluster_scoped():
            res.set_namespace(namespace)
        for spec in specs:
            if spec.path == "metadata/namespace":
                continue
            if spec.path == "metadata/name" and res.api_version != "v1":
                continue
            if res.kind in ("RoleBinding", "ClusterRoleBinding") and spec.path == "subjects/namespace":
                continue
            if not _selected(res, spec):
                continue
            if spec.path == "metadata/name":
                res.set_name(namespace)
                continue

            def setter(value: Any, parent: Any, key: Any) -> None:
                parent[key] = namespace

            apply_fieldspec(res.obj, spec, setter, create_value=lambda: namespace)
        if res.kind in ("RoleBinding", "ClusterRoleBinding"):
            subjects = res.obj.get("subjects")
            if isinstance(subjects, list):
                for subj in subjects:
                    if isinstance(subj, dict) and subj.get("name") == "default":
                        subj["namespace"] = namespace


_PREFIX_SKIP = {("", "CustomResourceDefinition"), ("apiregistration.k8s.io", "APIService"), ("", "Namespace")}


def _skip_prefix(res: Resource) -> bool:
    oid = res.orig_id()
    return (("", oid.kind) in _PREFIX_SKIP and oid.kind != "APIService") or (
        oid.group,
        oid.kind,
    ) in _PREFIX_SKIP


def prefix_suffix_transform(resmap: ResMap, prefix: str, suffix: str, specs: list[FieldSpec]) -> None:
    """Add ``prefix``/``suffix`` to the name fields in ``specs`` (CRDs, APIServices, Namespaces skipped)."""
    for res in resmap:
        if _skip_prefix(res):
            continue
        for spec in specs:
            if not _selected(res, spec, original=True):
                continue
            if spec.path == "metadata/name":
                if prefix:
                    res.prefixes.append(prefix)
                if suffix:
                    res.suffixes.append(suffix)
                res.set_name(f"{prefix}{res.name}{suffix}")
                continue

            def setter(value: Any, parent: Any, key: Any) -> None:
                if isinstance(value, str):
                    parent[key] = f"{prefix}{value}{suffix}"

            apply_fieldspec(res.obj, spec, setter)


def map_transform(resmap: ResMap, pairs: dict[str, str], specs: list[FieldSpec]) -> None:
    """Merge ``pairs`` into the string maps at ``specs`` (labels, selectors, annotations)."""
    if not pairs:
        return
    for res in resmap:
        for spec in specs:
            if not _selected(res, spec):
                continue

            def setter(
                value: Any, parent: Any, key: Any, res: Resource = res, spec: FieldSpec = spec
            ) -> None:
                if value is None:
                    value = {}
                    parent[key] = value
                if not isinstance(value, dict):
                    raise RenderError(
                        f"{spec.path} of {res.kind}/{res.name} is not a mapping", path=res.source or None
                    )
                for k, v in pairs.items():
                    value[k] = v

            apply_fieldspec(res.obj, spec, setter, create_value=dict)


_DIGEST = re.compile(r"@sha256:[0-9a-fA-F]+$|@[A-Za-z0-9_+.-]+:[0-9a-fA-F]{32,}$")


def split_image(image: str) -> tuple[str, str, str]:
    """Split ``repo[:tag][@digest]`` into ``(repo, ":tag" or "", "@digest" or "")``."""
    digest = ""
    at = image.find("@")
    if at >= 0:
        image, digest = image[:at], image[at:]
    tag = ""
    colon = image.rfind(":")
    if colon > image.rfind("/"):
        image, tag = image[:colon], image[colon:]
    return image, tag, digest


def _image_matches(name: str, entry_name: str) -> bool:
    return name == entry_name


def new_image(image: str, entry: dict[str, Any]) -> str | None:
    """The rewritten image reference for one ``images:`` entry, or ``None`` when the entry does not apply.

    ``newName`` replaces the repository; ``newTag`` replaces the tag and drops a digest; ``digest`` replaces
    tag and digest with ``@digest``; ``newTag`` + ``digest`` gives ``:tag@digest``. A ``newTag`` containing
    ``@`` is read as ``tag@digest``.
    """
    repo, tag, digest = split_image(image)
    if not _image_matches(repo, str(entry.get("name", ""))):
        return None
    new_repo = str(entry.get("newName") or repo)
    new_tag = entry.get("newTag")
    new_digest = entry.get("digest")
    if new_tag is not None and not isinstance(new_tag, str):
        new_tag = str(new_tag)
    if isinstance(new_tag, str) and "@" in new_tag and not new_digest:
        new_tag, _, new_digest = new_tag.partition("@")
    if new_tag and new_digest:
        return f"{new_repo}:{new_tag}@{new_digest}"
    if new_digest:
        return f"{new_repo}@{new_digest}"
    if new_tag:
        return f"{new_repo}:{new_tag}"
    return f"{new_repo}{tag}{digest}"


def _walk_containers(node: Any, fn: Any) -> None:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("containers", "initContainers", "ephemeralContainers") and isinstance(value, list):
                for c in value:
                    if isinstance(c, dict) and isinstance(c.get("image"), str):
                        c["image"] = fn(c["image"])
            _walk_containers(value, fn)
    elif isinstance(node, list):
        for item in node:
            _walk_containers(item, fn)


def images_transform(resmap: ResMap, entries: list[dict[str, Any]], specs: list[FieldSpec]) -> None:
    """Apply ``images:`` entries to every container image (any ``containers``/``initContainers`` list in
    the object, as kustomize's legacy image filter does) and to the image fields in ``specs``."""
    if not entries:
        return

    def rewrite(image: str) -> str:
        for entry in entries:
            replaced = new_image(image, entry)
            if replaced is not None:
                return replaced
        return image

    for res in resmap:
        _walk_containers(res.obj, rewrite)
        for spec in specs:
            if not _selected(res, spec):
                continue

            def setter(value: Any, parent: Any, key: Any) -> None:
                if isinstance(value, str):
                    parent[key] = rewrite(value)

            apply_fieldspec(res.obj, spec, setter)


def replicas_transform(resmap: ResMap, entries: list[dict[str, Any]], specs: list[FieldSpec]) -> None:
    """Set ``spec.replicas`` (or the configured fields) of objects named in ``replicas:`` entries."""
    for entry in entries:
        name, count = entry.get("name"), entry.get("count")
        if not isinstance(name, str) or not isinstance(count, int) or isinstance(count, bool):
            raise RenderError("replicas entries need a string 'name' and an integer 'count'")
        for res in resmap:
            if name not in {i.name for i in res.all_ids()}:
                continue
            for spec in specs:
                if not _selected(res, spec):
                    continue

                def setter(value: Any, parent: Any, key: Any, count: int = count) -> None:
                    parent[key] = count

                apply_fieldspec(res.obj, spec, setter, create_value=lambda count=count: count)  # type: ignore[misc]
