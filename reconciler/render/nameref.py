"""Name-reference rewriting: after renames (prefix, suffix, hash), update the fields that refer to them.

Follows kustomize v5's name reference transformer (api/filters/nameref): a field value is matched against
every earlier name of candidate objects of the referenced kind; candidates in another namespace than the
referrer are dropped (no namespace and ``default`` count as the same; cluster-scoped objects and
ServiceAccounts always stay candidates); ties are broken by equal name prefixes/suffixes. For mapping-valued
fields (RBAC subjects, webhook services) the ``name`` is rewritten and ``namespace`` set to the referral's.
"""

from __future__ import annotations

from typing import Any

from reconciler.render.errors import RenderError
from reconciler.render.fieldspecs import NameRef, apply_fieldspec
from reconciler.render.resource import ResMap, Resource


def _selected_by(res: Resource, ref: NameRef) -> bool:
    for rid in res.all_ids():
        if (
            (not ref.kind or ref.kind == rid.kind)
            and (not ref.group or ref.group == rid.group)
            and (not ref.version or ref.version == rid.version)
        ):
            return True
    return False


def _select(
    referrer: Resource, old: str, candidates: list[Resource], path: str, with_namespace: bool
) -> Resource | None:
    cands = [c for c in candidates if any(i.name == old for i in c.all_ids())]
    if path.endswith("roleRef/name"):
        role_ref = referrer.obj.get("roleRef") or {}
        kind = role_ref.get("kind") if isinstance(role_ref, dict) else None
        if isinstance(kind, str):
            cands = [c for c in cands if any(i.kind == kind for i in c.all_ids())]
    if not referrer.cluster_scoped():
        rid = referrer.cur_id()
        cands = [
            c for c in cands if c.cluster_scoped() or c.kind == "ServiceAccount" or c.cur_id().ns_equals(rid)
        ]
    if len(cands) == 1:
        return cands[0]
    cands = [c for c in cands if _prefix_suffix_equal(c, referrer, allow_empty=True)]
    if len(cands) > 1:
        cands = [c for c in cands if _prefix_suffix_equal(c, referrer, allow_empty=False)]
    if len(cands) == 1:
        return cands[0]
    if not cands:
        return None
    first = cands[0]
    if all(c.name == first.name and (not with_namespace or c.namespace == first.namespace) for c in cands):
        return first
    ids = ", ".join(str(c.cur_id()) for c in cands)
    raise RenderError(
        f"found multiple possible referrals for {old!r} in {referrer.kind}/{referrer.name}: {ids}"
    )


def _prefix_suffix_equal(a: Resource, b: Resource, *, allow_empty: bool) -> bool:
    if allow_empty and ((not a.prefixes and not a.suffixes) or (not b.prefixes and not b.suffixes)):
        return True
    return a.prefixes == b.prefixes and a.suffixes == b.suffixes


def fix_name_references(resmap: ResMap, refs: list[NameRef]) -> None:
    """Rewrite every configured reference field to the current name of the object it refers to."""
    for ref in refs:
        candidates = [r for r in resmap if _selected_by(r, ref)]
        if not candidates:
            continue
        for referrer in resmap:
            rid = referrer.cur_id()
            for spec in ref.fieldspecs:
                if not spec.matches(rid.group, rid.version, rid.kind):
                    continue

                def visit(
                    value: Any,
                    parent: Any,
                    key: Any,
                    referrer: Resource = referrer,
                    path: str = spec.path,
                    candidates: list[Resource] = candidates,
                ) -> None:
                    _visit(value, parent, key, referrer, candidates, path)

                apply_fieldspec(referrer.obj, spec, visit)


def _visit(
    value: Any, parent: Any, key: Any, referrer: Resource, candidates: list[Resource], path: str
) -> None:
    if value is None:
        return
    if isinstance(value, str):
        target = _select(referrer, value, candidates, path, False)
        if target is not None and target.name != value:
            parent[key] = target.name
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _visit(item, value, i, referrer, candidates, path)
    elif isinstance(value, dict):
        name = value.get("name")
        if not isinstance(name, str):
            return
        pool = candidates
        ns = value.get("namespace")
        if isinstance(ns, str):
            by_orig = [c for c in candidates if c.orig_id().namespace == ns]
            pool = by_orig or [c for c in candidates if c.namespace == ns]
        target = _select(referrer, name, pool, path, True)
        if target is None:
            return
        if target.name == name and not target.namespace:
            return
        value["name"] = target.name
        if target.namespace:
            value["namespace"] = target.namespace
