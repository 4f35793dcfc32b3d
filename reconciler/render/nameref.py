"""Name-reference rewriting: after renames (prefix, suffix, namespace, hash), update the fields that refer to
the renamed objects.

Follows kustomize v5's name reference transformer (api/internal/accumulator/namereferencetransformer.go and
api/filters/nameref): for each referrer (selected by its *original* kind) and each configured field, the
value is matched against the *earlier* names of candidate objects of the referenced kind, where candidates
are the objects the referrer may refer to (cluster-scoped objects, the referrer's namespace, and for a
RoleBinding the namespaces of its ServiceAccount subjects; everything for a cluster-scoped referrer). The
candidates are then narrowed: earlier name equal to the value, earlier kind selected by the reference,
``roleRef`` kind for ``roleRef/name``, same current namespace as the referrer (cluster-scoped objects and
ServiceAccounts exempt), then equal name prefixes/suffixes. One candidate left: the field gets its current
name. For mapping values (RBAC subjects, webhook services) ``name`` and, when the referral has a namespace,
``namespace`` are set; a ``namespace`` already in the mapping first restricts the candidates to that
original (else current) namespace.
"""

from __future__ import annotations

from typing import Any

from reconciler.render.errors import RenderError
from reconciler.render.fieldspecs import FieldSpec, NameRef, apply_fieldspec
from reconciler.render.patches import scalar_text
from reconciler.render.resource import NOT_NAMESPACED, ResMap, Resource
from reconciler.render.yamlio import YamlTimestamp


def _role_binding_namespaces(referrer: Resource) -> set[str]:
    if referrer.kind != "RoleBinding":
        return set()
    out: set[str] = set()
    subjects = referrer.obj.get("subjects")
    if isinstance(subjects, list):
        for subj in subjects:
            if isinstance(subj, dict) and subj.get("kind") == "ServiceAccount" and "namespace" in subj:
                ns = subj["namespace"]
                # api/resmap/reswrangler.go getNamespacesForRoleBinding: the namespace must decode as a
                # string ("" included); a null, a number or a timestamp is an error
                if not isinstance(ns, str) or isinstance(ns, YamlTimestamp):
                    raise RenderError(
                        f"Invalid Input: namespace is blank for resource {referrer.cur_id()}",
                        path=referrer.source or None,
                    )
                out.add(ns)
    return out


class _Index:
    """Per-build lookups: current ids, candidates by namespace, earlier names by referenced kind."""

    def __init__(self, resources: list[Resource]) -> None:
        self.resources = resources
        self.cur = [r.cur_id() for r in resources]
        self.cluster: list[int] = []
        self.by_ns: dict[str, list[int]] = {}
        self.by_raw_ns: dict[str, list[int]] = {}
        for i, cid in enumerate(self.cur):
            if cid.cluster_scoped:
                self.cluster.append(i)
            else:
                self.by_ns.setdefault(cid.effective_namespace, []).append(i)
            self.by_raw_ns.setdefault(resources[i].namespace, []).append(i)
        self._names: dict[tuple[str, str, str], dict[str, list[int]]] = {}

    def could_be_referenced(self, referrer_index: int) -> list[int]:
        """kustomize's ``SubsetThatCouldBeReferencedByResource`` as resource indices, in build order."""
        rid = self.cur[referrer_index]
        if rid.cluster_scoped:
            return list(range(len(self.resources)))
        allowed = set(self.cluster)
        allowed.update(self.by_ns.get(rid.effective_namespace, ()))
        for ns in _role_binding_namespaces(self.resources[referrer_index]):
            allowed.update(self.by_raw_ns.get(ns, ()))
        return sorted(allowed)

    def by_earlier_name(self, ref: NameRef) -> dict[str, list[int]]:
        """Resources an earlier id of which is selected by ``ref``, keyed by every earlier name."""
        key = (ref.group, ref.version, ref.kind)
        found = self._names.get(key)
        if found is None:
            found = {}
            for i, res in enumerate(self.resources):
                ids = res.prev_ids()
                if not any(x.gvk_selected_by(ref.group, ref.version, ref.kind) for x in ids):
                    continue
                for name in {x.name for x in ids}:
                    found.setdefault(name, []).append(i)
            self._names[key] = found
        return found


class _Referral:
    """One referrer field being rewritten against the objects of one referenced kind."""

    def __init__(self, index: _Index, ref_i: int, ref: NameRef, spec: FieldSpec, allowed: list[int]) -> None:
        self.index = index
        self.referrer = index.resources[ref_i]
        self.ref = ref
        self.spec = spec
        self.allowed = allowed
        self.allowed_set = set(allowed)

    def select(self, old: str, pool: set[int], with_namespace: bool) -> Resource | None:
        index = self.index
        cands = [index.resources[i] for i in index.by_earlier_name(self.ref).get(old, ()) if i in pool]
        if self.spec.path.endswith("roleRef/name"):
            role_ref = self.referrer.obj.get("roleRef")
            if isinstance(role_ref, dict) and role_ref.get("apiGroup") is not None and role_ref.get("kind"):
                group, kind = str(role_ref.get("apiGroup") or ""), str(role_ref.get("kind") or "")
                cands = [c for c in cands if any(i.gvk_selected_by(group, "", kind) for i in c.prev_ids())]
        rid = self.referrer.cur_id()
        if not rid.cluster_scoped:
            cands = [
                c
                for c in cands
                if c.cur_id().cluster_scoped or c.kind == "ServiceAccount" or c.cur_id().ns_equals(rid)
            ]
        if len(cands) == 1:
            return cands[0]
        cands = [c for c in cands if c.prefix_suffix_equals(self.referrer, allow_empty=True)]
        if len(cands) > 1:
            cands = [c for c in cands if c.prefix_suffix_equals(self.referrer, allow_empty=False)]
        if len(cands) == 1:
            return cands[0]
        if not cands:
            return None
        first = cands[0]
        if all(
            c.name == first.name and (not with_namespace or c.namespace == first.namespace) for c in cands
        ):
            return first
        ids = ", ".join(str(c.cur_id()) for c in cands)
        raise RenderError(
            f"found multiple possible referrals for {old!r} in field '{self.spec.path}' of "
            f"{self.referrer.cur_id()}: {ids}",
            path=self.referrer.source or None,
        )

    def set(self, container: Any, key: Any) -> None:
        value = container[key]
        if value is None:
            return
        if isinstance(value, str):
            self.set_scalar(container, key, value)
        elif isinstance(value, dict):
            self.set_mapping(value)
        elif isinstance(value, list):
            for i, item in enumerate(value):
                if isinstance(item, dict):
                    self.set_mapping(item)
                elif isinstance(item, str):
                    self.set_scalar(value, i, item)
                elif item is not None:
                    self.set_scalar(value, i, scalar_text(item))
        else:
            self.set_scalar(container, key, scalar_text(value))

    def set_scalar(self, container: Any, key: Any, old: str) -> None:
        target = self.select(old, self.allowed_set, False)
        if target is not None and target.name != old:
            container[key] = target.name

    def set_mapping(self, node: dict[str, Any]) -> None:
        if "name" not in node:
            raise RenderError(
                f"updating name reference in '{self.spec.path}' field of {self.referrer.cur_id()}: "
                "path config error; no 'name' field in node",
                path=self.referrer.source or None,
            )
        pool = self.allowed_set
        if "namespace" in node:
            ns = scalar_text(node["namespace"])
            resources = self.index.resources
            by_orig = {
                i
                for i in self.allowed
                if resources[i].org_id().effective_namespace == ns and ns != NOT_NAMESPACED
            }
            if by_orig:
                pool = by_orig
            else:
                pool = {
                    i
                    for i in self.allowed
                    if self.index.cur[i].effective_namespace == ns and ns != NOT_NAMESPACED
                }
        old = scalar_text(node["name"])
        target = self.select(old, pool, True)
        if target is None:
            return
        if target.name == old and not target.namespace:
            return
        node["name"] = target.name
        if target.namespace:
            node["namespace"] = target.namespace


def fix_name_references(resmap: ResMap, refs: list[NameRef]) -> None:
    """Rewrite every configured reference field to the current name of the object it refers to.

    Raises:
        RenderError: when a reference matches several objects that cannot be told apart.
    """
    resources = list(resmap.items)
    by_gvk: dict[tuple[str, str, str], list[int]] = {}
    for i, res in enumerate(resources):
        oid = res.org_id()
        by_gvk.setdefault((oid.group, oid.version, oid.kind), []).append(i)
    plan: dict[int, list[tuple[NameRef, FieldSpec]]] = {}
    for ref in refs:
        for spec in ref.fieldspecs:
            for gvk, indices in by_gvk.items():
                if spec.matches(*gvk):
                    for i in indices:
                        plan.setdefault(i, []).append((ref, spec))
    if not plan:
        return
    index = _Index(resources)
    for i, todo in plan.items():
        referrer = resources[i]
        allowed = index.could_be_referenced(i)
        for ref, spec in todo:
            referral = _Referral(index, i, ref, spec, allowed)
            # the field spec is applied with the referrer's own kind (kustomize overwrites its GVK)
            own = FieldSpec(spec.path, referrer.group, referrer.version, referrer.kind, spec.create)
            apply_fieldspec(referrer.obj, own, referral.set, where=referrer.source or None)
