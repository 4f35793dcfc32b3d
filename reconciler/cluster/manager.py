"""The apply engine: plan, staged server-side apply, prune and wait.

One pass: index the live objects of the desired kinds (one list call per kind and namespace), compare
each desired object with its live copy semantically (:mod:`reconciler.cluster.drift`), and write only the
objects that differ. Before any write, every changed object is validated by a server-side dry-run, so a
set with one invalid object applies nothing. Writes are server-side apply with field manager
``reconciler`` in stages (CRDs, core Namespaces and cluster RBAC first, waiting until CRDs are
Established) and in reference order (:mod:`reconciler.cluster.ordering`).
"""

from __future__ import annotations

import difflib
import hashlib
import json
import re
import time
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ruamel.yaml import YAML

from reconciler.cluster import drift
from reconciler.cluster.client import KubeClient
from reconciler.cluster.ordering import apply_order, stage_of
from reconciler.errors import InvalidError, KubeError, NotFoundError, ReconcilerError
from reconciler.model import Action, ChangeSet, IgnoreRule, Inventory, ObjectRef, ref_of

FIELD_MANAGER = "reconciler"
PRUNE_ANNOTATION = "reconciler.dev/prune"
RECREATE_ANNOTATION = "reconciler.dev/recreate"
_BOOKKEEPING = ("managedFields", "resourceVersion", "uid", "generation", "creationTimestamp", "selfLink")


class ApplyError(ReconcilerError):
    """A pass could not apply its desired set; ``changes`` holds what was done before the failure."""

    def __init__(self, message: str, changes: ChangeSet | None = None) -> None:
        super().__init__(message)
        self.changes = changes or ChangeSet()


class PruneBlocked(ReconcilerError):
    """Pruning was refused by the mass-delete guard (nothing was deleted)."""


def digest(obj: dict[str, Any]) -> str:
    """sha256 of a manifest's canonical JSON (sorted keys), hex."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@dataclass
class Desired:
    """One desired object with its identity and the pointers excluded from comparison."""

    ref: ObjectRef
    obj: dict[str, Any]
    ignore: list[str] = field(default_factory=list)

    @property
    def key(self) -> tuple[str, str, str, str]:
        """Identity without version."""
        return self.ref.key


def ignore_pointers(ref: ObjectRef, rules: Iterable[IgnoreRule]) -> list[str]:
    """The JSON pointers of every rule whose target matches ``ref``."""
    out: list[str] = []
    for rule in rules:
        if rule.group is not None and rule.group != ref.group:
            continue
        if rule.kind is not None and rule.kind != ref.kind:
            continue
        if rule.namespace is not None and rule.namespace != ref.namespace:
            continue
        if rule.name is not None and rule.name != ref.name and not re.fullmatch(rule.name, ref.name):
            continue
        out.extend(rule.paths)
    return out


def prepare(objects: list[dict[str, Any]], rules: Iterable[IgnoreRule] = ()) -> list[Desired]:
    """Identify the rendered objects and take controller-owned fields out (HPA-targeted replicas).

    Raises:
        ApplyError: when an object has no identity or two objects share one.
    """
    rules = list(rules)
    targets = drift.hpa_targets(objects)
    out: list[Desired] = []
    seen: dict[tuple[str, str, str, str], ObjectRef] = {}
    for obj in objects:
        try:
            ref = ref_of(obj)
        except ValueError as exc:
            raise ApplyError(f"invalid object: {exc}") from None
        if ref.key in seen:
            raise ApplyError(f"{ref}: appears twice in the desired set")
        seen[ref.key] = ref
        hpa = (ref.kind, ref.namespace, ref.name) in targets
        sent = drift.without_controller_owned(obj, hpa_targeted=hpa)
        ignore = ignore_pointers(ref, rules) + drift.controller_owned_pointers(hpa_targeted=hpa)
        out.append(Desired(ref, sent, ignore))
    return out


def _yaml_dump(value: Any) -> str:
    import io

    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    buf = io.StringIO()
    y.dump(value, buf)
    return buf.getvalue()


def _project(live: Any, desired: Any) -> Any:
    """``live`` restricted to the keys ``desired`` has (for a readable diff)."""
    if isinstance(desired, dict) and isinstance(live, dict):
        return {k: _project(live[k], v) for k, v in desired.items() if k in live}
    if isinstance(desired, list) and isinstance(live, list):
        return [_project(lv, dv) for lv, dv in zip(live, desired, strict=False)] + live[len(desired) :]
    return live


def readable_diff(ref: ObjectRef, desired: dict[str, Any], live: dict[str, Any] | None) -> str:
    """A unified diff between the live object (restricted to the fields desired sets) and desired.

    Secret values are never shown.
    """
    if ref.kind == "Secret" and ref.group == "":
        desired = {k: v for k, v in desired.items() if k not in ("data", "stringData")}
        live = {k: v for k, v in (live or {}).items() if k not in ("data", "stringData")} if live else None
    before = _yaml_dump(_project(live, desired)).splitlines() if live is not None else []
    after = _yaml_dump(desired).splitlines()
    return "\n".join(difflib.unified_diff(before, after, f"live/{ref}", f"desired/{ref}", lineterm="", n=2))


class ResourceManager:
    """Applies desired sets to one cluster through ``client``.

    Args:
        client: the Kubernetes client.
        field_manager: the server-side apply field manager.
    """

    def __init__(self, client: KubeClient, field_manager: str = FIELD_MANAGER) -> None:
        self.client = client
        self.field_manager = field_manager

    # -- live state ---------------------------------------------------------------------------------

    def live_index(self, refs: Iterable[ObjectRef]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
        """The live copies of ``refs`` that exist: one list call per (kind, namespace) with several
        objects, one get otherwise. Kinds the server does not serve yet are treated as absent."""
        groups: dict[tuple[str, str, str, str], list[ObjectRef]] = defaultdict(list)
        for r in refs:
            groups[(r.group, r.version, r.kind, r.namespace)].append(r)
        out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        for (group, version, kind, ns), members in groups.items():
            try:
                if len(members) >= 3:
                    items, _ = self.client.list(group, version, kind, namespace=ns or None)
                    wanted = {m.key for m in members}
                    for item in items:
                        try:
                            r = ref_of(item)
                        except ValueError:
                            continue
                        if r.key in wanted:
                            out[r.key] = item
                else:
                    for m in members:
                        live = self.client.get(m)
                        if live is not None:
                            out[m.key] = live
            except NotFoundError:
                continue
        return out

    # -- apply ----------------------------------------------------------------------------------------

    def apply_set(
        self,
        desired: list[Desired],
        *,
        inventory: Inventory | None = None,
        correct_drift: bool = True,
        dry_run: bool = False,
        on_drift: Callable[[ObjectRef, list[str]], None] | None = None,
        crd_timeout: float = 60.0,
    ) -> tuple[ChangeSet, dict[str, str]]:
        """Apply the objects that differ from live state, in stages and dependency order.

        Args:
            desired: the prepared desired set (see :func:`prepare`).
            inventory: the previous inventory; its digests tell Git changes from drift.
            correct_drift: when False (``drift: warn``), objects whose desired manifest did not change
                since the last apply but whose live copy differs are reported, not written.
            dry_run: plan only (server-side dry-run for changed objects; nothing is written).
            on_drift: called with the object and the differing paths when drift is found.
            crd_timeout: seconds to wait for applied CRDs to become Established.

        Returns:
            The changeset and the digest of every desired object (for the next inventory).

        Raises:
            ApplyError: validation (server-side dry-run) failed before any write, or a write failed;
                the message names the object as ``Kind/namespace/name``.
        """
        changes = ChangeSet()
        digests = {str(d.ref): digest(d.obj) for d in desired}
        previous = inventory.digests if inventory else {}
        live = self.live_index(d.ref for d in desired)
        plan: list[tuple[Desired, Action, list[str]]] = []
        for d in desired:
            current = live.get(d.key)
            if current is None:
                plan.append((d, Action.CREATED, []))
                continue
            try:
                paths = drift.diff_paths(d.obj, current, ignore=d.ignore, field_manager=self.field_manager)
            except (ValueError, TypeError) as exc:
                raise ApplyError(f"{d.ref}: {exc}") from None
            if not paths:
                plan.append((d, Action.UNCHANGED, []))
                continue
            drifted = previous.get(str(d.ref)) == digests[str(d.ref)]
            if drifted and on_drift is not None:
                on_drift(d.ref, paths)
            if drifted and not correct_drift:
                plan.append((d, Action.SKIPPED, paths))
            else:
                plan.append((d, Action.CONFIGURED, paths))

        to_write: list[tuple[Desired, Action, list[str]]] = [
            (d, a, p) for d, a, p in plan if a in (Action.CREATED, Action.CONFIGURED)
        ]
        self._validate(to_write, live)
        by_key = {d.key: (a, p) for d, a, p in plan}
        stages = apply_order([(d.ref, d.obj) for d in desired])
        desired_by_key = {d.key: d for d in desired}
        for stage_index, stage in enumerate(stages):
            applied_crds: list[ObjectRef] = []
            for ref, _obj in stage:
                d = desired_by_key[ref.key]
                action, paths = by_key[ref.key]
                if action in (Action.UNCHANGED, Action.SKIPPED):
                    msg = "drift not corrected (drift: warn): " + ", ".join(paths) if paths else ""
                    changes.add(ref, action, message=msg)
                    continue
                diff = readable_diff(ref, d.obj, live.get(ref.key))
                if dry_run:
                    changes.add(ref, action, diff=diff, message=", ".join(paths))
                    continue
                try:
                    self._write(d)
                except KubeError as exc:
                    changes.add(ref, Action.FAILED, message=str(exc))
                    raise ApplyError(str(exc), changes) from None
                changes.add(ref, action, diff=diff, message=", ".join(paths))
                if ref.kind == "CustomResourceDefinition" and ref.group == "apiextensions.k8s.io":
                    applied_crds.append(ref)
            if stage_index == 0 and not dry_run:
                if applied_crds:
                    self.wait_established(applied_crds, crd_timeout)
                self.client.forget_discovery()
        return changes, digests

    def _validate(
        self,
        to_write: list[tuple[Desired, Action, list[str]]],
        live: dict[tuple[str, str, str, str], dict[str, Any]],
    ) -> None:
        """Server-side dry-run of every object about to be written, before any write.

        Objects whose kind is not served yet (its CRD is in the same set) and objects in a namespace
        that does not exist yet (created in stage 0) are checked by the real apply instead.
        """
        for d, _action, _paths in to_write:
            try:
                self.client.apply(d.obj, d.ref, field_manager=self.field_manager, dry_run=True)
            except NotFoundError as exc:
                if exc.reason in ("NoKindMatch", "NotFound") or "namespaces" in exc.message:
                    continue
                raise ApplyError(f"validation failed, nothing applied: {exc}") from None
            except InvalidError as exc:
                if "immutable" in exc.message and _wants_recreate(d.obj):
                    continue
                raise ApplyError(f"validation failed, nothing applied: {exc}") from None
            except KubeError as exc:
                raise ApplyError(f"validation failed, nothing applied: {exc}") from None

    def _write(self, d: Desired) -> dict[str, Any]:
        try:
            return self.client.apply(d.obj, d.ref, field_manager=self.field_manager)
        except InvalidError as exc:
            if "immutable" not in exc.message:
                raise
            if not _wants_recreate(d.obj):
                raise InvalidError(
                    str(d.ref),
                    exc.status,
                    "Immutable",
                    f'{exc.message} (annotate the object with {RECREATE_ANNOTATION}: "true" to allow '
                    "delete and recreate)",
                ) from None
        self.client.delete(d.ref, propagation="Foreground")
        self.wait_deleted(d.ref, 60.0)
        return self.client.apply(d.obj, d.ref, field_manager=self.field_manager)

    def wait_established(self, crds: list[ObjectRef], timeout: float) -> None:
        """Wait until every CRD has condition Established=True.

        Raises:
            ApplyError: after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        pending = list(crds)
        while pending:
            still = []
            for ref in pending:
                obj = self.client.get(ref) or {}
                conds = (obj.get("status") or {}).get("conditions") or []
                if not any(c.get("type") == "Established" and c.get("status") == "True" for c in conds):
                    still.append(ref)
            pending = still
            if not pending:
                return
            if time.monotonic() > deadline:
                raise ApplyError(f"{pending[0]}: not Established after {timeout:.0f} s")
            time.sleep(0.1)

    def wait_deleted(self, ref: ObjectRef, timeout: float) -> None:
        """Wait until ``ref`` is gone.

        Raises:
            ApplyError: after ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while self.client.get(ref) is not None:
            if time.monotonic() > deadline:
                raise ApplyError(f"{ref}: still present {timeout:.0f} s after delete")
            time.sleep(0.1)

    # -- prune ----------------------------------------------------------------------------------------

    def prune(
        self,
        inventory: Inventory,
        desired: list[Desired],
        *,
        allow_mass_prune: bool = False,
        dry_run: bool = False,
    ) -> tuple[ChangeSet, list[ObjectRef]]:
        """Delete inventory entries that left the desired set, in reverse apply order.

        Identity ignores the API version, so an apiVersion migration deletes nothing. Objects annotated
        ``reconciler.dev/prune: disabled`` are skipped (and leave the inventory). A failed delete stays in
        the returned list of entries to keep, so it is retried on the next pass.

        Returns:
            The changeset and the stale entries that must stay in the inventory (failed deletes).

        Raises:
            PruneBlocked: when more than half of the inventory would be deleted and
                ``allow_mass_prune`` is false; nothing is deleted then.
        """
        wanted = {d.key for d in desired}
        stale = [r for r in inventory.entries if r.key not in wanted]
        changes = ChangeSet()
        if not stale:
            return changes, []
        if not allow_mass_prune and len(stale) * 2 > len(inventory.entries):
            raise PruneBlocked(
                f"prune blocked: {len(stale)} of {len(inventory.entries)} inventory objects would be deleted "
                "(more than half); set sync.allowMassPrune: true in the environment to allow it"
            )
        keep: list[ObjectRef] = []
        ordered = [r for stage in apply_order([(r, {}) for r in stale]) for r, _ in stage]
        for ref in reversed(ordered):
            try:
                live = self.client.get(ref)
            except NotFoundError:  # the kind itself is gone
                changes.add(ref, Action.DELETED, message="already gone")
                continue
            except KubeError as exc:
                keep.append(ref)
                changes.add(ref, Action.FAILED, message=str(exc))
                continue
            if live is None:
                changes.add(ref, Action.DELETED, message="already gone")
                continue
            annotations = (live.get("metadata") or {}).get("annotations") or {}
            if annotations.get(PRUNE_ANNOTATION) == "disabled":
                changes.add(ref, Action.SKIPPED, message=f"{PRUNE_ANNOTATION}: disabled")
                continue
            if dry_run:
                changes.add(ref, Action.DELETED, message="dry run")
                continue
            try:
                self.client.delete(ref)
                changes.add(ref, Action.DELETED)
            except KubeError as exc:
                keep.append(ref)
                changes.add(ref, Action.FAILED, message=f"delete failed, will retry: {exc}")
        return changes, keep


def _wants_recreate(obj: dict[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(RECREATE_ANNOTATION, "")).lower() == "true"


__all__ = [
    "FIELD_MANAGER",
    "ApplyError",
    "Desired",
    "PruneBlocked",
    "ResourceManager",
    "digest",
    "prepare",
    "readable_diff",
    "stage_of",
]
