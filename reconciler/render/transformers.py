"""Built-in transformers: namespace, name prefix/suffix, labels, annotations, images, replicas.

Semantics follow kustomize v5's built-in transformer plugins (api/internal/builtins) and their filters
(api/filters/*): each walks the field specs of the build's transformer configuration with
:func:`reconciler.render.fieldspecs.apply_fieldspec`.
"""

from __future__ import annotations

from typing import Any

from reconciler.render.errors import RenderError
from reconciler.render.fieldspecs import MAPPING, SCALAR, FieldSpec, apply_fieldspec
from reconciler.render.patches import scalar_text
from reconciler.render.patterns import full_match
from reconciler.render.resource import ResMap, Resource

# -- namespace ----------------------------------------------------------------------------------------

ROLE_BINDING_MODES = ("defaultOnly", "allServiceAccounts", "none")


def _helm_generated(res: Any) -> bool:
    meta = res.obj.get("metadata")
    ann = meta.get("annotations") if isinstance(meta, dict) else None
    return isinstance(ann, dict) and ann.get("config.kubernetes.io/helm-generated") == "true"


def namespace_transform(
    resmap: ResMap,
    namespace: str,
    specs: list[FieldSpec],
    *,
    unset_only: bool = False,
    role_binding_subjects: str = "defaultOnly",
    where: str | None = None,
) -> None:
    """kustomize's NamespaceTransformer.

    Every resource records its identity; namespaced ones get ``metadata.namespace`` (only when empty with
    ``unset_only``); the other fields in ``specs`` are set (``metadata/namespace`` specs are skipped, and
    ``metadata/name`` specs apply only to ``apiVersion: v1`` objects); RoleBinding/ClusterRoleBinding
    subjects get the namespace per ``role_binding_subjects``: ``defaultOnly`` (subjects named ``default``),
    ``allServiceAccounts`` (every ServiceAccount subject) or ``none``.

    Raises:
        RenderError: for an unknown ``role_binding_subjects`` mode, a namespace field that is not a scalar,
            or two resources ending up with the same identity.
    """
    if not namespace:
        return
    if role_binding_subjects not in ROLE_BINDING_MODES:
        raise RenderError(
            f"invalid value {role_binding_subjects!r} for setRoleBindingSubjects: must be one of "
            + ", ".join(repr(m) for m in ROLE_BINDING_MODES),
            path=where,
        )

    def set_ns(container: Any, key: Any) -> None:
        current = container[key]
        if isinstance(current, (dict, list)):
            raise RenderError("namespace field specs must target scalar nodes", path=where)
        if unset_only and current not in (None, ""):
            return
        container[key] = namespace

    for res in resmap:
        if _helm_generated(res):
            continue  # helm set its namespace (kustomize's NamespaceTransformer skips these)
        res.store_previous_id()
        api_version = res.api_version
        fs = [
            s
            for s in specs
            if s.path != "metadata/namespace" and (api_version == "v1" or s.path != "metadata/name")
        ]
        if not res.cluster_scoped():
            apply_fieldspec(
                res.obj, FieldSpec("metadata/namespace", create=True), set_ns, create_kind=SCALAR, where=where
            )
        if res.kind in ("RoleBinding", "ClusterRoleBinding"):
            fs = [
                s
                for s in fs
                if not (s.kind in ("RoleBinding", "ClusterRoleBinding") and s.path == "subjects/namespace")
            ]
            subjects = res.obj.get("subjects")
            if role_binding_subjects != "none" and isinstance(subjects, list):
                for subj in subjects:
                    if not isinstance(subj, dict):
                        continue
                    if role_binding_subjects == "defaultOnly" and subj.get("name") != "default":
                        continue
                    if role_binding_subjects == "allServiceAccounts" and subj.get("kind") != "ServiceAccount":
                        continue
                    if "namespace" not in subj or subj["namespace"] is None:
                        subj["namespace"] = ""
                    set_ns(subj, "namespace")
        for spec in fs:
            apply_fieldspec(res.obj, spec, set_ns, create_kind=SCALAR, where=where)
    seen: dict[Any, Resource] = {}
    for res in resmap:
        key = res.cur_id().key()
        if key in seen:
            raise RenderError(
                f"namespace transformation produces ID conflict: {seen[key].cur_id()} and {res.cur_id()}",
                path=where,
            )
        seen[key] = res


# -- name prefix / suffix -----------------------------------------------------------------------------


def _skip_prefix(res: Resource) -> bool:
    oid = res.org_id()
    return oid.kind in ("CustomResourceDefinition", "Namespace") or (
        oid.group == "apiregistration.k8s.io" and oid.kind == "APIService"
    )


def prefix_suffix_transform(
    resmap: ResMap, prefix: str, suffix: str, specs: list[FieldSpec], *, where: str | None = None
) -> None:
    """kustomize's PrefixTransformer / SuffixTransformer (one of ``prefix``/``suffix`` per call in
    kustomizations; a builtin PrefixSuffixTransformer configuration may give both).

    CRDs, Namespaces and APIServices are skipped; specs are selected by the resource's original kind; the
    ``metadata/name`` spec records the prefix/suffix and the identity before renaming.
    """
    for res in resmap:
        if _skip_prefix(res):
            continue
        oid = res.org_id()
        for spec in specs:
            if not oid.gvk_selected_by(spec.group, spec.version, spec.kind):
                continue
            if spec.path == "metadata/name":
                if prefix:
                    res.prefixes.append(prefix)
                if suffix:
                    res.suffixes.append(suffix)
                if prefix or suffix:
                    res.store_previous_id()

            def setter(container: Any, key: Any, spec: FieldSpec = spec, res: Resource = res) -> None:
                value = container[key]
                if isinstance(value, (dict, list)):
                    raise RenderError(
                        f"name prefix/suffix: field '{spec.path}' of {res.cur_id()} is not a scalar",
                        path=where,
                    )
                text = "" if value is None else scalar_text(value)
                container[key] = f"{prefix}{text}{suffix}"

            apply_fieldspec(res.obj, spec, setter, create_kind=SCALAR, where=where)


# -- labels and annotations -----------------------------------------------------------------------------


def specs_for(
    res: Resource, specs: list[FieldSpec], memo: dict[tuple[str, str, str], list[FieldSpec]]
) -> list[FieldSpec]:
    """The specs whose group/version/kind select ``res`` (memoised per group/version/kind in ``memo``)."""
    key = (res.group, res.version, res.kind)
    found = memo.get(key)
    if found is None:
        found = [s for s in specs if s.matches(*key)]
        memo[key] = found
    return found


def map_transform(
    resmap: ResMap, pairs: dict[str, str], specs: list[FieldSpec], *, where: str | None = None
) -> None:
    """kustomize's LabelTransformer / AnnotationsTransformer: set every pair (keys in sorted order) in the
    string maps at ``specs``, creating them where the spec allows.

    Raises:
        RenderError: when a targeted field is not a mapping.
    """
    if not pairs:
        return
    items = sorted(pairs.items())
    memo: dict[tuple[str, str, str], list[FieldSpec]] = {}
    for res in resmap:

        def setter(container: Any, k: Any, res: Resource = res) -> None:
            target = container[k]
            if target is None:
                target = {}
                container[k] = target
            if not isinstance(target, dict):
                raise RenderError(
                    f"cannot set labels or annotations: a field of {res.cur_id()} is not a mapping",
                    path=where,
                )
            for key, value in items:
                target[key] = value

        for spec in specs_for(res, specs, memo):
            apply_fieldspec(res.obj, spec, setter, create_kind=MAPPING, where=where)


# -- images -------------------------------------------------------------------------------------------


def image_matches(image: str, name: str) -> bool:
    """kustomize's ``IsImageMatched``: ``name`` (a regular expression, as kustomize builds it) followed by
    an optional ``:tag`` and an optional ``@sha256:digest``."""
    try:
        return full_match("^" + name + r"(:[a-zA-Z0-9_.{}-]*)?(@sha256:[a-zA-Z0-9_.{}-]*)?$", image)
    except RenderError:
        return False


def split_image(image: str) -> tuple[str, str, str]:
    """kustomize's ``image.Split``: ``(name, tag, digest)`` without the ``:`` and ``@`` separators."""
    search = image
    slash = image.find("/")
    if slash > 0:
        search = image[slash:]
    else:
        slash = 0
    at = search.find("@")
    colon = search.find(":")
    if colon < 0 and at < 0:
        return image, "", ""
    if at >= 0 and (at < colon or colon < 0):
        at += slash
        return image[:at], "", image[at + 1 :]
    if at >= 0 and colon >= 0:
        at += slash
        colon += slash
        return image[:colon], image[colon + 1 : at], image[at + 1 :]
    colon += slash
    return image[:colon], image[colon + 1 :], ""


def new_image(image: str, entry: dict[str, Any]) -> str | None:
    """The image after one ``images:`` entry, or ``None`` when the entry does not match it.

    ``newName`` replaces the name; ``newTag`` and ``digest`` together give ``:tag@digest``; ``newTag`` alone
    replaces tag and digest; ``digest`` alone replaces both with ``@digest``; ``tagSuffix`` appends to the
    tag and drops the digest (kustomize's imageTagUpdater).
    """
    if not image_matches(image, str(entry.get("name") or "")):
        return None
    name, tag, digest = split_image(image)
    new_name = _entry_str(entry, "newName")
    new_tag = _entry_str(entry, "newTag")
    new_digest = _entry_str(entry, "digest")
    tag_suffix = _entry_str(entry, "tagSuffix")
    if new_name:
        name = new_name
    if new_tag and new_digest:
        tag, digest = new_tag, new_digest
    elif new_tag:
        tag, digest = new_tag, ""
    elif new_digest:
        tag, digest = "", new_digest
    elif tag_suffix:
        tag, digest = tag + tag_suffix, ""
    if tag:
        name += ":" + tag
    if digest:
        name += "@" + digest
    return name


def _entry_str(entry: dict[str, Any], key: str) -> str:
    value = entry.get(key)
    if value is None:
        return ""
    return scalar_text(value)


_IMAGE_ENTRY_FIELDS = {"name", "newName", "newTag", "digest", "tagSuffix"}


def check_image_entry(entry: Any, *, where: str | None, strings: bool = False) -> dict[str, Any]:
    """Validate one ``images:`` entry (``strings``: as a kustomization's ``images:`` field is read, every
    field a string or null; kustomize decodes it into Go strings through JSON, so ``newTag: 1.50`` is
    refused there, while a builtin ``ImageTagTransformer`` configuration takes the scalar's text).

    Raises:
        RenderError: for a non-mapping entry, unknown fields or (``strings``) a field that is no string.
    """
    if not isinstance(entry, dict):
        raise RenderError("images entries must be mappings", path=where)
    unknown = set(entry) - _IMAGE_ENTRY_FIELDS
    if unknown:
        raise RenderError(
            f"images entry {entry.get('name')!r}: unknown field(s) {sorted(unknown)}", path=where
        )
    for key, value in entry.items() if strings else ():
        if value is not None and not isinstance(value, str):
            kind = (
                "bool"
                if isinstance(value, bool)
                else "number"
                if isinstance(value, (int, float))
                else "object"
                if isinstance(value, dict)
                else "array"
            )
            raise RenderError(
                f"invalid Kustomization: images entry {entry.get('name')!r}: {key} must be a string, not "
                f"{value!r} (json: cannot unmarshal {kind} into Go struct field Image.images.{key} of type "
                "string)",
                path=where,
            )
    return entry


def _legacy_slots(node: Any, out: list[tuple[Any, Any]]) -> None:
    """The ``image`` fields of the elements of every ``containers``/``initContainers`` list, in kustomize's
    visiting order (children first)."""
    if isinstance(node, dict):
        for key, value in node.items():
            _legacy_slots(value, out)
            if key in ("containers", "initContainers") and isinstance(value, list):
                for item in value:
                    if isinstance(item, dict) and "image" in item:
                        out.append((item, "image"))
    elif isinstance(node, list):
        for item in node:
            _legacy_slots(item, out)


def images_transform(
    resmap: ResMap, entries: list[dict[str, Any]], specs: list[FieldSpec], *, where: str | None = None
) -> None:
    """kustomize's ImageTagTransformer, one pass per entry in order: first every ``image`` in any
    ``containers``/``initContainers`` list of the object (the legacy filter), then the image fields in
    ``specs`` (a field reached by both is updated twice, as in kustomize). CustomResourceDefinitions are left
    alone.

    Raises:
        RenderError: when an image field holds a mapping or list.
    """
    if not entries:
        return
    memo: dict[tuple[str, str, str], list[FieldSpec]] = {}
    for res in resmap:
        if res.kind == "CustomResourceDefinition":
            continue
        slots: list[tuple[Any, Any]] = []
        _legacy_slots(res.obj, slots)

        def collect(container: Any, key: Any, slots: list[tuple[Any, Any]] = slots) -> None:
            slots.append((container, key))

        for spec in specs_for(res, specs, memo):
            apply_fieldspec(res.obj, spec, collect, where=where)
        if not slots:
            continue
        for entry in entries:
            for container, key in slots:
                value = container[key]
                if value is None:
                    continue
                if isinstance(value, (dict, list)):
                    raise RenderError(
                        f"image field of {res.cur_id()} holds a {type(value).__name__}, expected a string",
                        path=where,
                    )
                replaced = new_image(scalar_text(value), entry)
                if replaced is not None:
                    container[key] = replaced


# -- replicas -----------------------------------------------------------------------------------------


def replicas_transform(
    resmap: ResMap, entries: list[dict[str, Any]], specs: list[FieldSpec], *, where: str | None = None
) -> None:
    """kustomize's ReplicaCountTransformer: set the replica fields of objects with the entry's name among
    their earlier or current names, for each spec whose kind selects them.

    Raises:
        RenderError: for malformed entries, or when no spec matches an object of that name.
    """
    for entry in entries:
        if not isinstance(entry, dict):
            raise RenderError("replicas entries must be mappings", path=where)
        name, count = entry.get("name"), entry.get("count")
        if isinstance(count, float) and count.is_integer() and -(2**63) <= count < 2**63:
            count = int(count)  # read through JSON, ``3.0`` and ``1e2`` are the integers 3 and 100
        elif count is None:
            count = 0  # a missing or null count leaves Go's int64 at zero
        if not isinstance(name, str) or isinstance(count, bool) or not isinstance(count, int):
            raise RenderError("replicas entries need a string 'name' and an integer 'count'", path=where)
        found = False
        for spec in specs:
            matched = [
                r
                for r in resmap
                if any(
                    i.name == name and i.gvk_selected_by(spec.group, spec.version, spec.kind)
                    for i in r.all_ids()
                )
            ]
            if not matched:
                continue
            found = True
            for res in matched:

                def setter(
                    container: Any, key: Any, count: int = count, res: Resource = res, spec: FieldSpec = spec
                ) -> None:
                    # kyaml sets only the text of an existing scalar: a string stays a string ("4")
                    old = container[key]
                    if isinstance(old, (dict, list)):
                        got = "MappingNode" if isinstance(old, dict) else "SequenceNode"
                        raise RenderError(
                            f"considering field '{spec.path}' of object {res.cur_id()}: wrong node kind: "
                            f"expected ScalarNode but got {got}",
                            path=where,
                        )
                    container[key] = str(count) if isinstance(old, str) else count

                apply_fieldspec(res.obj, spec, setter, create_kind=SCALAR, new_scalar=None, where=where)
        if not found:
            kinds = ", ".join(spec.kind or "*" for spec in specs)
            raise RenderError(
                f"resource with name {name} does not match a config with the following kinds: [{kinds}]",
                path=where,
            )
