"""The apply engine: plan, staged server-side apply, prune and wait.

One pass: index the live objects of the desired kinds (one list call per kind and namespace), compare
each desired object with its live copy semantically (:mod:`reconciler.cluster.drift`), and write only the
objects that differ. Every changed object is validated by a server-side dry-run before it is written, and
nothing namespaced is written before the whole set validated: a set with one invalid object applies
nothing, except that the cluster-scoped stage (CRDs, Namespaces, cluster RBAC; itself validated first) is
written before the objects that cannot be dry-run without it are checked (see
:meth:`ResourceManager.apply_set`). Writes are server-side apply with field manager ``reconciler`` in
stages (the cluster-scoped stage first, waiting until CRDs are Established) and in reference order
(:mod:`reconciler.cluster.ordering`).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import hmac
import json
import re
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import yaml

from reconciler.cluster import drift
from reconciler.cluster.client import KubeClient
from reconciler.cluster.ordering import apply_order, stage_of
from reconciler.errors import InvalidError, KubeError, NotFoundError, ReconcilerError
from reconciler.failpoints import failpoint
from reconciler.model import Action, ChangeSet, IgnoreRule, Inventory, ObjectRef, ref_of

_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)  # the C dumper when libyaml is there

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
    """Pruning was refused by the mass-delete guard (nothing was deleted).

    ``keep`` holds the stale inventory entries that must stay in the inventory (every stale entry except
    those found to be the same object as a desired one under another API group or version).
    """

    def __init__(self, message: str, keep: list[ObjectRef] | None = None) -> None:
        super().__init__(message)
        self.keep = keep or []


def stale_entries(inventory: Inventory, desired: list[Desired]) -> list[ObjectRef]:
    """Inventory entries that left the desired set (identity without the API version)."""
    wanted = {d.key for d in desired}
    return [r for r in inventory.entries if r.key not in wanted]


def mass_prune_guard(
    inventory: Inventory,
    desired: list[Desired],
    *,
    allow_mass_prune: bool,
    moved: Collection[ObjectRef] = (),
) -> str:
    """Why pruning ``inventory`` down to ``desired`` must not happen ("" when it may): more than half of
    the inventory would be deleted and ``allow_mass_prune`` is false (a commit that empties an overlay by
    mistake, a renamed overlay path). ``moved`` entries (the same stored object as a desired one under
    another API group or version, see :meth:`ResourceManager.same_objects`) are no deletions."""
    stale = [r for r in stale_entries(inventory, desired) if r not in moved]
    if allow_mass_prune or not stale or len(stale) * 2 <= len(inventory.entries):
        return ""
    return (
        f"prune blocked: {len(stale)} of {len(inventory.entries)} inventory objects would be deleted "
        "(more than half); set sync.allowMassPrune: true in the environment to allow it"
    )


def digest(obj: dict[str, Any], *, secret_key: bytes | None = None) -> str:
    """sha256 of a manifest's canonical JSON (sorted keys), hex.

    With ``secret_key``, a core Secret's digest is HMAC-SHA256 under that key instead: the digests are
    stored in the inventory ConfigMap, and a plain hash of a Secret decrypted from SOPS would let a reader
    of that ConfigMap test guesses of its values.
    """
    canonical = json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()
    if secret_key is not None and obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1":
        return hmac.new(secret_key, canonical, hashlib.sha256).hexdigest()
    return hashlib.sha256(canonical).hexdigest()


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


def _path_segment_problem(value: str) -> str:
    """Why ``value`` cannot be one segment of an API URL path ("" when it can). The API server refuses
    such names for every kind (apimachinery's ``path.IsValidPathSegmentName``); checking before any call
    keeps them out of request URLs, where ``/`` and ``..`` would address another resource."""
    if value in (".", ".."):
        return f"may not be {value!r}"
    for bad in ("/", "%"):
        if bad in value:
            return f"may not contain {bad!r}"
    return ""


def identify(obj: dict[str, Any]) -> ObjectRef:
    """The identity of a rendered object, which the API server needs to apply it.

    The renderer, like `kustomize build`, renders an object without ``apiVersion``; the apply stage
    refuses it here, before anything is written.

    Raises:
        ApplyError: naming the object (kind and name as far as given) when apiVersion, kind or
            metadata.name is missing, or the name or namespace is no string (``name: 5``, which kustomize
            and the renderer render).
    """
    meta = obj.get("metadata")
    name = meta.get("name") if isinstance(meta, dict) else None
    kind = obj.get("kind")
    shown = " ".join(str(v) for v in (kind, name) if isinstance(v, (str, int, float)) and v != "")
    for key in ("name", "namespace"):
        value = meta.get(key) if isinstance(meta, dict) else None
        if value is not None and not isinstance(value, str):
            raise ApplyError(
                f"invalid object {shown or 'an object'}: metadata.{key} must be a string, not {value!r} "
                "(write it quoted); nothing applied"
            )
    try:
        return ref_of(obj)
    except ValueError as exc:
        raise ApplyError(
            f"invalid object {shown or 'an object'}: {exc} (the API server needs apiVersion, kind and "
            "metadata.name); nothing applied"
        ) from None


def prepare(objects: list[dict[str, Any]], rules: Iterable[IgnoreRule] = ()) -> list[Desired]:
    """Identify the rendered objects and take controller-owned fields out (HPA-targeted replicas).

    Raises:
        ApplyError: when an object has no identity, its name or namespace cannot be part of an API path
            (``/``, ``%``, ``.`` or ``..``), or two objects share one identity.
    """
    rules = list(rules)
    targets = drift.hpa_targets(objects)
    out: list[Desired] = []
    seen: dict[tuple[str, str, str, str], ObjectRef] = {}
    for obj in objects:
        ref = identify(obj)
        for field_name, value in (("metadata.name", ref.name), ("metadata.namespace", ref.namespace)):
            problem = _path_segment_problem(value) if value else ""
            if problem:
                raise ApplyError(f"{ref}: invalid {field_name} {value!r}: {problem}; nothing applied")
        if ref.key in seen:
            raise ApplyError(f"{ref}: appears twice in the desired set")
        seen[ref.key] = ref
        hpa = (ref.kind, ref.namespace, ref.name) in targets
        sent = drift.without_controller_owned(obj, hpa_targeted=hpa)
        ignore = ignore_pointers(ref, rules) + drift.controller_owned_pointers(hpa_targeted=hpa)
        out.append(Desired(ref, sent, ignore))
    return out


def _yaml_dump(value: Any) -> str:
    """``value`` as block YAML, keys sorted (PyYAML's C safe dumper: a pass computes one for every object it
    writes). Rendered objects may hold the renderer's own mapping and scalar types (which keep YAML text and
    styles): they go through JSON first, as they do on their way to the API server."""
    import json

    plain = json.loads(json.dumps(value, default=str))
    return str(yaml.dump(plain, Dumper=_DUMPER, default_flow_style=False, sort_keys=True, allow_unicode=True))


def _project(live: Any, desired: Any) -> Any:
    """``live`` restricted to the keys ``desired`` has (for a readable diff)."""
    if isinstance(desired, dict) and isinstance(live, dict):
        return {k: _project(live[k], v) for k, v in desired.items() if k in live}
    if isinstance(desired, list) and isinstance(live, list):
        return [_project(lv, dv) for lv, dv in zip(live, desired, strict=False)] + live[len(desired) :]
    return live


def readable_diff(
    ref: ObjectRef, desired: dict[str, Any], live: dict[str, Any] | None, paths: Iterable[str] = ()
) -> str:
    """A unified diff between the live object (restricted to the fields desired sets) and desired.

    Secret values are never shown: a Secret's ``data``/``stringData`` are left out of the diff, and each
    differing key in ``paths`` (as :func:`reconciler.cluster.drift.diff_fields` renders them,
    ``data.token (from stringData.token)``) is listed after it as a context line instead.
    """
    notes: list[str] = []
    if ref.kind == "Secret" and ref.group == "":
        desired = {k: v for k, v in desired.items() if k not in ("data", "stringData")}
        live = {k: v for k, v in (live or {}).items() if k not in ("data", "stringData")} if live else None
        notes = [f" {p}: Secret value differs (not shown)" for p in paths if p.startswith(("data.", "data["))]
    before = _yaml_dump(_project(live, desired)).splitlines() if live is not None else []
    after = _yaml_dump(desired).splitlines()
    lines = list(difflib.unified_diff(before, after, f"live/{ref}", f"desired/{ref}", lineterm="", n=2))
    if notes and not lines:
        lines = [f"--- live/{ref}", f"+++ desired/{ref}"]
    return "\n".join(lines + notes)


#: a (kind, namespace) with at least this many objects is read with one list call, not a get each
LIST_AT = 3
#: threads of the pool :func:`read_live` shares between all its callers (passes of many environments at
#: once, health gates): made once, not a pool per call
READ_THREADS = 8
_READ_POOL: ThreadPoolExecutor | None = None
_READ_POOL_LOCK = threading.Lock()


def _read_pool() -> ThreadPoolExecutor:
    global _READ_POOL
    with _READ_POOL_LOCK:
        if _READ_POOL is None:
            _READ_POOL = ThreadPoolExecutor(READ_THREADS, thread_name_prefix="live-read")
        return _READ_POOL


def read_live(
    client: KubeClient, refs: Iterable[ObjectRef], *, parallel: bool = True, unserved_kind_fails: bool = False
) -> tuple[dict[tuple[str, str, str, str], dict[str, Any]], dict[tuple[str, str, str, str], KubeError]]:
    """The live copies of ``refs`` that exist, read with one list call per (kind, namespace) with
    :data:`LIST_AT` or more objects and one get otherwise: on a pool of :data:`READ_THREADS` threads shared
    by every caller (``parallel``), else one after the other in the calling thread. A list returns
    every object of the kind in the namespace; only those of ``refs`` are kept. Kinds the server does not
    serve (yet) are treated as absent, or as a failed read with ``unserved_kind_fails``.

    Returns:
        The live objects by key, and the error of each ref whose read failed (any other
        :class:`KubeError` than not-found: the whole group's list, or that object's get), by key.
    """

    def unserved(exc: NotFoundError) -> bool:
        return unserved_kind_fails and exc.reason == "NoKindMatch"

    groups: dict[tuple[str, str, str, str], list[ObjectRef]] = defaultdict(list)
    for r in refs:
        groups[(r.group, r.version, r.kind, r.namespace)].append(r)

    def fetch(
        item: tuple[tuple[str, str, str, str], list[ObjectRef]],
    ) -> tuple[list[tuple[Any, dict[str, Any]]], list[tuple[Any, KubeError]]]:
        (group, version, kind, ns), members = item
        found: list[tuple[Any, dict[str, Any]]] = []
        failed: list[tuple[Any, KubeError]] = []
        if len(members) >= LIST_AT:
            try:
                items, _ = client.list(group, version, kind, namespace=ns or None)
            except NotFoundError as exc:
                return found, [(m.key, exc) for m in members] if unserved(exc) else failed
            except KubeError as exc:
                return found, [(m.key, exc) for m in members]
            wanted = {m.key for m in members}
            for obj in items:
                try:
                    r = ref_of(obj)
                except ValueError:
                    continue
                if r.key in wanted:
                    found.append((r.key, obj))
            return found, failed
        for m in members:
            try:
                live = client.get(m)
            except NotFoundError as exc:
                if unserved(exc):
                    failed.append((m.key, exc))
                continue
            except KubeError as exc:
                failed.append((m.key, exc))
                continue
            if live is not None:
                found.append((m.key, live))
        return found, failed

    items = list(groups.items())
    if len(items) <= 1 or not parallel:
        results = [fetch(i) for i in items]
    else:
        results = list(_read_pool().map(fetch, items))
    out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    errors: dict[tuple[str, str, str, str], KubeError] = {}
    for found, failed in results:
        out.update(found)
        errors.update(failed)
    return out, errors


class SyncCache:
    """Objects a pass found in sync, so the next pass can skip comparing them again.

    An entry is ``key -> (desired digest, ignore pointers, live uid, live resourceVersion)``. The comparison
    is a pure function of desired, its ignore pointers and the live object, and a live object with the
    same uid and resourceVersion is the same stored object (Kubernetes API concepts, "Resource versions"),
    so a hit means "still in sync" without comparing. Any change of desired, of the ignore rules or of the
    live object (including status) misses. One small tuple per object ever found in sync; an object that
    left the desired set keeps its entry until :meth:`forget` (a later hit needs the same uid and
    resourceVersion, so a stale entry can never be wrong).
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, str, str, str], tuple[str, tuple[str, ...], str, str]] = {}
        self._lock = threading.Lock()

    @staticmethod
    def _live_id(live: dict[str, Any]) -> tuple[str, str]:
        meta = live.get("metadata") or {}
        return str(meta.get("uid", "")), str(meta.get("resourceVersion", ""))

    def in_sync(self, d: Desired, desired_digest: str, live: dict[str, Any]) -> bool:
        """True when ``d`` with this digest was found in sync with this very live object before."""
        uid, rv = self._live_id(live)
        if not uid or not rv:
            return False
        with self._lock:
            return self._entries.get(d.key) == (desired_digest, tuple(d.ignore), uid, rv)

    def remember(self, d: Desired, desired_digest: str, live: dict[str, Any]) -> None:
        """Record that ``d`` compared in sync with ``live``."""
        uid, rv = self._live_id(live)
        if uid and rv:
            with self._lock:
                self._entries[d.key] = (desired_digest, tuple(d.ignore), uid, rv)

    def forget(self, key: tuple[str, str, str, str]) -> None:
        """Drop one object (it is about to be written)."""
        with self._lock:
            self._entries.pop(key, None)


class ResourceManager:
    """Applies desired sets to one cluster through ``client``.

    Args:
        client: the Kubernetes client.
        field_manager: the server-side apply field manager.
        sync_cache: objects found in sync by earlier passes (share one across passes, e.g. in the
            daemon's PassContext); a fresh one by default.
        parallel_reads: whether :meth:`live_index` reads the kinds on :func:`read_live`'s shared pool
            (else one call after the other, in the calling thread).
    """

    def __init__(
        self,
        client: KubeClient,
        field_manager: str = FIELD_MANAGER,
        *,
        sync_cache: SyncCache | None = None,
        parallel_reads: bool = True,
    ) -> None:
        self.client = client
        self.field_manager = field_manager
        self.sync_cache = sync_cache if sync_cache is not None else SyncCache()
        self.parallel_reads = parallel_reads
        #: key of the Secrets' digests (:func:`digest`); set by a pass that decrypted SOPS files
        self.secret_digest_key: bytes | None = None

    # -- live state ---------------------------------------------------------------------------------

    def live_index(self, refs: Iterable[ObjectRef]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
        """The live copies of ``refs`` that exist (:func:`read_live`).

        Raises:
            KubeError: a failed list or get (the first one, in group order).
        """
        found, errors = read_live(self.client, refs, parallel=self.parallel_reads)
        for exc in errors.values():
            raise exc
        return found

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
        before_write: Callable[[list[ObjectRef]], None] | None = None,
        live: dict[tuple[str, str, str, str], dict[str, Any]] | None = None,
    ) -> tuple[ChangeSet, dict[str, str]]:
        """Apply the objects that differ from live state, in stages and dependency order.

        Args:
            desired: the prepared desired set (see :func:`prepare`).
            inventory: the previous inventory; its digests tell Git changes from drift.
            correct_drift: when False (``drift: warn``), objects whose desired manifest did not change
                since the last apply but whose live copy differs are reported, not written.
            dry_run: plan only (server-side dry-run for changed objects; nothing is written).
            on_drift: called with the object and the differing paths when drift is found (live paths;
                ``data.token (from stringData.token)`` for a write-only field, see
                :class:`reconciler.cluster.drift.FieldDrift`).
            crd_timeout: seconds to wait for applied CRDs to become Established.
            before_write: called before each batch of writes (the cluster-scoped stage, then the rest),
                after that batch validated, with the objects of the batch about to be created (only when
                the batch writes something); the pass records them in the inventory first, so an apply
                interrupted half-way, or failing validation after the cluster-scoped stage, leaves nothing
                untracked.
            live: the live copies of ``desired`` by key as :meth:`live_index` returns them, read by the
                caller since its last write (the pass's guards read them first); ``None`` reads them.

        Returns:
            The changeset and the digest of every desired object (for the next inventory).

        Order of work (one call converges a set that brings its own namespaces and kinds):

        1. server-side dry-run of the cluster-scoped stage (:func:`is_prerequisite`: CRDs, Namespaces,
           cluster RBAC ...), then of every other object; a failure here writes nothing. Objects whose
           dry-run fails only because their Namespace or CRD is in the cluster-scoped stage wait;
        2. the cluster-scoped stage is written, and its CRDs waited for until Established;
        3. the waiting objects are dry-run against the real namespaces and kinds; a failure here fails
           the call naming the object, with only the cluster-scoped stage written (and in the inventory
           through ``before_write``);
        4. the rest is written in dependency order.

        With ``dry_run`` the waiting objects cannot be checked; their change says so ("not validated:
        needs Namespace/x from this set").

        Raises:
            ApplyError: validation (server-side dry-run) failed, or a write failed; the message names the
                object as ``Kind/namespace/name``.
        """
        changes = ChangeSet()
        digests = {str(d.ref): digest(d.obj, secret_key=self.secret_digest_key) for d in desired}
        previous = inventory.digests if inventory else {}
        if live is None:
            live = self.live_index(d.ref for d in desired)
        plan: list[tuple[Desired, Action, list[str]]] = []
        for d in desired:
            current = live.get(d.key)
            if current is None:
                plan.append((d, Action.CREATED, []))
                continue
            if self.sync_cache.in_sync(d, digests[str(d.ref)], current):
                plan.append((d, Action.UNCHANGED, []))
                continue
            try:
                fields = drift.diff_fields(d.obj, current, ignore=d.ignore, field_manager=self.field_manager)
            except (ValueError, TypeError) as exc:
                raise ApplyError(f"{d.ref}: {exc}") from None
            paths = [str(f) for f in fields]  # live path, and the Git path when it differs; no values
            if not paths:
                self.sync_cache.remember(d, digests[str(d.ref)], current)
                plan.append((d, Action.UNCHANGED, []))
                continue
            self.sync_cache.forget(d.key)
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
        # The cluster-scoped stage (Namespaces, CRDs, cluster RBAC ...) is what the dry-run of the rest
        # needs to exist. It is validated first; then every other object whose check does not depend on
        # it; only then is the stage written, and the objects that waited for it are validated against
        # the real namespaces and kinds before anything namespaced is written.
        first = [item for item in to_write if is_prerequisite(item[0].ref)]
        rest = [item for item in to_write if not is_prerequisite(item[0].ref)]
        not_stored: dict[tuple[str, str, str, str], list[str]] = {}
        self._validate(first, live, not_stored=not_stored)
        waiting = self._validate(rest, live, provides=first, not_stored=not_stored)
        by_key = {d.key: (a, p) for d, a, p in plan}
        stages = apply_order([(d.ref, d.obj) for d in desired])
        desired_by_key = {d.key: d for d in desired}
        ordered = [ref for stage in stages for ref, _obj in stage]
        for ref in ordered:
            action, paths = by_key[ref.key]
            if action in (Action.UNCHANGED, Action.SKIPPED):
                msg = "drift not corrected (drift: warn): " + ", ".join(paths) if paths else ""
                changes.add(ref, action, message=msg)
        if dry_run:
            deferred = {d.key: why for d, why in waiting}
            for ref in ordered:
                action, paths = by_key[ref.key]
                if action in (Action.CREATED, Action.CONFIGURED):
                    d = desired_by_key[ref.key]
                    message = _message(paths, not_stored.get(ref.key))
                    if ref.key in deferred:
                        message = f"not validated: {deferred[ref.key]}" + (f"; {message}" if message else "")
                    changes.add(
                        ref, action, diff=readable_diff(ref, d.obj, live.get(ref.key), paths), message=message
                    )
            _in_apply_order(changes, ordered)
            return changes, digests
        first_keys = {d.key for d, _a, _p in first}
        written = [desired_by_key[r.key] for r in ordered if r.key in first_keys]
        if written:
            self._write_all(written, by_key, live, changes, before_write, not_stored)
            crds = [d.ref for d in written if _is_crd(d.ref)]
            if crds:  # new kinds: wait until served, then read discovery again
                self.wait_established(crds, crd_timeout)
                self.client.forget_discovery()
                self.wait_discovered([d.obj for d in written if _is_crd(d.ref)], crd_timeout)
            if waiting:
                self._validate_after_prerequisites(waiting, live, changes, not_stored)
        rest_keys = {d.key for d, _a, _p in rest}
        self._write_all(
            [desired_by_key[r.key] for r in ordered if r.key in rest_keys],
            by_key,
            live,
            changes,
            before_write,
            not_stored,
        )
        _in_apply_order(changes, ordered)
        return changes, digests

    def _write_all(
        self,
        batch: list[Desired],
        by_key: dict[tuple[str, str, str, str], tuple[Action, list[str]]],
        live: dict[tuple[str, str, str, str], dict[str, Any]],
        changes: ChangeSet,
        before_write: Callable[[list[ObjectRef]], None] | None,
        not_stored: dict[tuple[str, str, str, str], list[str]],
    ) -> None:
        """Write ``batch`` in its order, after telling ``before_write`` which of them are new.

        Raises:
            ApplyError: a write failed; ``changes`` holds what was written before it.
        """
        if not batch:
            return
        if before_write is not None:
            before_write([d.ref for d in batch if by_key[d.key][0] is Action.CREATED])
        for d in batch:
            action, paths = by_key[d.key]
            diff = readable_diff(d.ref, d.obj, live.get(d.key), paths)
            try:
                self._write(d, live.get(d.key), paths)
            except KubeError as exc:
                message = _naming(d.ref, exc)
                changes.add(d.ref, Action.FAILED, message=message)
                raise ApplyError(message, changes) from None
            failpoint("apply")
            changes.add(d.ref, action, diff=diff, message=_message(paths, not_stored.get(d.key)))

    def _validate_after_prerequisites(
        self,
        waiting: list[tuple[Desired, str]],
        live: dict[tuple[str, str, str, str], dict[str, Any]],
        changes: ChangeSet,
        not_stored: dict[tuple[str, str, str, str], list[str]],
    ) -> None:
        """Dry-run the objects that needed the cluster-scoped stage, now that it is written.

        Raises:
            ApplyError: one of them is invalid; the message names it and the cluster-scoped objects that
                were already written (they are in the inventory, so nothing is untracked).
        """
        try:
            self._validate([(d, Action.CREATED, []) for d, _why in waiting], live, not_stored=not_stored)
        except ApplyError as exc:
            applied = [str(c.ref) for c in changes.entries if c.action in (Action.CREATED, Action.CONFIGURED)]
            reason = str(exc).removeprefix(_NOTHING_APPLIED)
            raise ApplyError(
                f"validation failed after the cluster-scoped stage was applied ({', '.join(applied)}; "
                f"kept in the inventory), nothing else applied: {reason}",
                changes,
            ) from None

    def _validate(
        self,
        to_write: list[tuple[Desired, Action, list[str]]],
        live: dict[tuple[str, str, str, str], dict[str, Any]],
        *,
        provides: list[tuple[Desired, Action, list[str]]] | None = None,
        not_stored: dict[tuple[str, str, str, str], list[str]] | None = None,
    ) -> list[tuple[Desired, str]]:
        """Server-side dry-run of every object about to be written, before any write.

        Args:
            to_write: the objects to check.
            live: their live copies by key.
            provides: the cluster-scoped objects the same set is about to write first (with their
                planned action). An object whose dry-run fails only because its namespace is one of
                these Namespaces, or its kind is defined by one of these CRDs, is returned instead of
                failing; an object in a Namespace planned as created (it does not exist) is returned
                without a dry-run call. ``None`` defers nothing.
            not_stored: filled with the fields of each object that the dry-run's result does not carry
                (:func:`not_stored_fields`), by key.

        Returns:
            The deferred objects, each with the reason (``needs Namespace/x from this set``).

        Raises:
            ApplyError: any other failed dry-run; the message starts with "validation failed, nothing
                applied" and names the object. A missing namespace that the set does not create is
                explained as such (the environment's ``namespace:`` never creates one).
        """
        provided = [d for d, _a, _p in provides or []]
        absent_namespaces = {
            d.ref.name
            for d, action, _p in provides or []
            if d.ref.kind == "Namespace" and d.ref.group == "" and action is Action.CREATED
        }
        new_kinds = {
            (
                str((d.obj.get("spec") or {}).get("group", "")),
                str(((d.obj.get("spec") or {}).get("names") or {}).get("kind", "")),
            ): d.ref
            for d in provided
            if _is_crd(d.ref)
        }
        new_namespaces = {d.ref.name for d in provided if d.ref.kind == "Namespace" and d.ref.group == ""}
        deferred: list[tuple[Desired, str]] = []
        for d, _action, paths in to_write:
            if d.ref.namespace in absent_namespaces:  # its dry-run can only fail: no call
                deferred.append((d, f"needs Namespace/{d.ref.namespace} from this set"))
                continue
            current = live.get(d.key)
            sent = sendable(d, current)
            try:
                stored = self.client.apply(sent, d.ref, field_manager=self.field_manager, dry_run=True)
                lost = not_stored_fields(d, stored)
                if lost and not_stored is not None:
                    not_stored[d.key] = lost
            except NotFoundError as exc:
                if exc.reason == "NoKindMatch" and (d.ref.group, d.ref.kind) in new_kinds:
                    deferred.append((d, f"needs {new_kinds[(d.ref.group, d.ref.kind)]} from this set"))
                    continue
                if _missing_namespace(exc, d.ref.namespace):
                    if d.ref.namespace in new_namespaces:
                        deferred.append((d, f"needs Namespace/{d.ref.namespace} from this set"))
                        continue
                    raise ApplyError(
                        f"{_NOTHING_APPLIED}{d.ref}: namespace {d.ref.namespace!r} does not exist and the "
                        f"desired set does not create it (add a Namespace {d.ref.namespace} to the overlay; "
                        "the environment's namespace: only fills in metadata.namespace)"
                    ) from None
                raise ApplyError(f"{_NOTHING_APPLIED}{_naming(d.ref, exc)}") from None
            except InvalidError as exc:
                if is_immutable_change(exc):
                    if _wants_recreate(d.obj):
                        _propagation, refusal = self._recreate_plan(d, current)
                        if not refusal:
                            continue
                        raise ApplyError(f"{_NOTHING_APPLIED}{d.ref}: {refusal}") from None
                    raise ApplyError(f"{_NOTHING_APPLIED}{_immutable_error(d, exc, paths)}") from None
                raise ApplyError(
                    f"{_NOTHING_APPLIED}{d.ref}: {exc.reason or exc.status}: {elide_values(exc.message)}"
                ) from None
            except KubeError as exc:
                raise ApplyError(f"{_NOTHING_APPLIED}{_naming(d.ref, exc)}") from None
        return deferred

    def _write(
        self, d: Desired, current: dict[str, Any] | None = None, paths: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Apply ``d``; over a live object ``current`` its ignored fields keep their live values. A change
        of a field fixed after creation deletes and creates the object again only when it is annotated
        ``reconciler.dev/recreate: "true"`` (see :func:`recreate_propagation` for how it is deleted)."""
        sent = sendable(d, current)
        try:
            return self.client.apply(sent, d.ref, field_manager=self.field_manager)
        except InvalidError as exc:
            if not is_immutable_change(exc):
                raise
            if not _wants_recreate(d.obj):
                raise _immutable_error(d, exc, paths) from None
            propagation, refusal = self._recreate_plan(d, current or self.client.get(d.ref))
            if refusal:
                raise InvalidError(str(d.ref), exc.status, "Immutable", refusal) from None
        self.client.delete(d.ref, propagation=propagation)
        self.wait_deleted(d.ref, 60.0)
        return self.client.apply(sendable(d, None), d.ref, field_manager=self.field_manager)

    def _recreate_plan(self, d: Desired, live: dict[str, Any] | None) -> tuple[str, str]:
        """:func:`recreate_propagation` of ``d``, with the claims that would be deleted with it (one list
        of the namespace's PersistentVolumeClaims, only for a StatefulSet whose selector changes)."""
        propagation, refusal = recreate_propagation(d, live)
        if propagation != "Foreground" or live is None or not _is_statefulset(d.ref):
            return propagation, refusal
        uid = (live.get("metadata") or {}).get("uid")
        claims, _ = self.client.list("", "v1", "PersistentVolumeClaim", namespace=d.ref.namespace or None)
        owned = [
            str(c["metadata"]["name"])
            for c in claims
            if any(o.get("uid") == uid for o in c["metadata"].get("ownerReferences") or [])
        ]
        return recreate_propagation(d, live, owned)

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

    def wait_discovered(self, crds: list[dict[str, Any]], timeout: float) -> None:
        """Wait until API discovery lists every served version of each CRD's kind. The API server
        updates discovery asynchronously after ``Established`` (most visibly under load), and a kind
        missing from discovery cannot be applied yet.

        Raises:
            ApplyError: after ``timeout`` seconds.
        """
        wanted: list[tuple[str, str, str]] = []
        for crd in crds:
            spec = crd.get("spec") or {}
            kind = str((spec.get("names") or {}).get("kind", ""))
            for v in spec.get("versions") or []:
                if isinstance(v, dict) and v.get("served", True) and kind:
                    wanted.append((str(spec.get("group", "")), str(v.get("name", "")), kind))
        deadline = time.monotonic() + timeout
        for group, version, kind in wanted:
            while True:
                try:
                    self.client.resource(group, version, kind)
                    break
                except NotFoundError:
                    if time.monotonic() > deadline:
                        raise ApplyError(
                            f"{kind} ({group}/{version}): not in API discovery {timeout:.0f} s after its "
                            "CustomResourceDefinition was Established"
                        ) from None
                    time.sleep(0.1)
                    self.client.forget_discovery()

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

        Identity ignores the API version, so an apiVersion migration deletes nothing. An entry whose key
        left the set but whose live object is one of the desired objects under another API group (the
        API server serves one stored object as several resources, e.g. core ``v1`` and
        ``events.k8s.io/v1`` Events) is not deleted either: a stale entry with the same namespace and
        name as a desired object is compared by ``metadata.uid`` with that object's live copy, and the
        same UID proves one object (Kubernetes "Object Names and IDs"). Such an entry is reported as
        skipped and leaves the inventory, which then records the desired apiVersion only. Objects
        annotated ``reconciler.dev/prune: disabled`` are skipped (and leave the inventory). A failed delete
        stays in the returned list of entries to keep, so it is retried on the next pass.

        Returns:
            The changeset and the stale entries that must stay in the inventory (failed deletes).

        Raises:
            PruneBlocked: when more than half of the inventory would be deleted and
                ``allow_mass_prune`` is false; nothing is deleted then (same-object entries are not
                counted as deleted).
            KubeError: reading a live object to compare UIDs failed (nothing was deleted).
        """
        wanted = {d.key for d in desired}
        stale = [r for r in inventory.entries if r.key not in wanted]
        changes = ChangeSet()
        if not stale:
            return changes, []
        moved = self.same_objects(stale, desired)
        for ref, (target, uid) in moved.items():
            changes.add(
                ref,
                Action.SKIPPED,
                message=f"same object as {target.api_version} {target} (uid {uid}): not deleted; "
                f"the inventory records {target.api_version} now",
            )
        stale = [r for r in stale if r not in moved]
        if not stale:
            return changes, []
        reason = mass_prune_guard(inventory, desired, allow_mass_prune=allow_mass_prune, moved=set(moved))
        if reason:
            raise PruneBlocked(reason, keep=stale)
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
                failpoint("prune")
                changes.add(ref, Action.DELETED)
            except KubeError as exc:
                keep.append(ref)
                changes.add(ref, Action.FAILED, message=f"delete failed, will retry: {exc}")
        return changes, keep

    def same_objects(
        self, stale: list[ObjectRef], desired: list[Desired]
    ) -> dict[ObjectRef, tuple[ObjectRef, str]]:
        """The stale entries that are a desired object under another API group or version.

        Only a stale entry with the namespace and name of a desired object can be one (equivalent
        resources keep names); both live copies are read (one get each) and compared by
        ``metadata.uid``. A kind the server no longer serves, or an object that is gone, is no match.

        Returns:
            ``stale ref -> (desired ref, uid)`` for every proven match.

        Raises:
            KubeError: a read failed for another reason than "not found".
        """
        by_name: dict[tuple[str, str], list[ObjectRef]] = defaultdict(list)
        for d in desired:
            by_name[(d.ref.namespace, d.ref.name)].append(d.ref)
        out: dict[ObjectRef, tuple[ObjectRef, str]] = {}
        for ref in stale:
            candidates = by_name.get((ref.namespace, ref.name), [])
            if not candidates:
                continue
            uid = self._uid(ref)
            if not uid:
                continue
            for target in candidates:
                if self._uid(target) == uid:
                    out[ref] = (target, uid)
                    break
        return out

    def _uid(self, ref: ObjectRef) -> str:
        """``metadata.uid`` of the live object ("" when it or its kind does not exist)."""
        try:
            live = self.client.get(ref)
        except NotFoundError:
            return ""
        return str(((live or {}).get("metadata") or {}).get("uid") or "")


# How the API server words a rejected change of a field that cannot change after creation
# (apimachinery ValidateImmutableField "field is immutable"; Service clusterIP(s) "may not change once set";
# StatefulSet "updates to statefulset spec for fields other than ... are forbidden"; PVC "spec is immutable").
_IMMUTABLE_RE = re.compile(
    r"field is immutable|is immutable|may not change once set|updates to \S+ spec for fields other than"
)
_INVALID_VALUE = "Invalid value: "


def is_immutable_change(exc: KubeError) -> bool:
    """True when ``exc`` is the API server refusing to change a field that is fixed after creation."""
    return isinstance(exc, InvalidError) and bool(_IMMUTABLE_RE.search(exc.message))


def elide_values(message: str, limit: int = 80) -> str:
    """``message`` with every JSON value after ``Invalid value: `` longer than ``limit`` characters
    replaced by ``<elided>`` (the API server dumps whole pod templates there)."""
    decoder = json.JSONDecoder()
    out: list[str] = []
    pos = 0
    while True:
        at = message.find(_INVALID_VALUE, pos)
        if at < 0:
            out.append(message[pos:])
            return "".join(out)
        start = at + len(_INVALID_VALUE)
        out.append(message[pos:start])
        try:
            _value, end = decoder.raw_decode(message, start)
        except ValueError:
            pos = start
            continue
        out.append(message[start:end] if end - start <= limit else "<elided>")
        pos = end


def sendable(d: Desired, live: dict[str, Any] | None) -> dict[str, Any]:
    """What to apply for ``d`` over ``live`` (``None``: creation).

    Write-only fields are moved where the API server stores them (:func:`reconciler.cluster.drift.
    as_stored`: Secret ``stringData`` is sent as ``data``), then ignored fields keep their live values
    (:func:`respect_ignored`; a ``/stringData/<key>`` pointer addresses ``/data/<key>``).
    """
    obj = drift.as_stored(d.obj)
    if live is None:
        return obj
    return respect_ignored(obj, live, [drift.stored_pointer(d.obj, p) for p in d.ignore])


def respect_ignored(
    obj: dict[str, Any], live: dict[str, Any] | None, pointers: Iterable[str]
) -> dict[str, Any]:
    """What to send when updating ``live`` to ``obj``: at every ignored pointer the live value instead of
    desired's (dropped where live has none), so correcting other fields never resets an ignored one.

    Args:
        obj: the desired manifest (not modified).
        live: the live object, or ``None`` (creation: ``obj`` is returned as is).
        pointers: RFC 6901 JSON pointers (``/spec/template/metadata/annotations``); maps are followed
            by key, lists by index. Only the keys desired sets below a pointer are taken from live.

    Returns:
        ``obj`` itself when nothing changes, otherwise a modified deep copy.

    Raises:
        ValueError: for a malformed pointer.
    """
    paths = [drift.json_pointer_to_path(p) for p in pointers]
    paths = [p for p in paths if p]  # "" ignores the whole object: it is never written for drift anyway
    if live is None or not paths:
        return obj
    out = copy.deepcopy(obj)
    for tokens in paths:
        parent: Any = out
        source: Any = live
        for token in tokens[:-1]:
            parent, source = _child(parent, token), _child(source, token)
            if parent is None:
                break
        if parent is None:
            continue
        last = tokens[-1]
        wanted = _child(parent, last)
        if wanted is None:
            continue
        have = _child(source, last)
        if have is None:
            _remove(parent, last)
        else:
            _set(parent, last, _shape_like(copy.deepcopy(have), wanted))
    return out


def _child(node: Any, token: str) -> Any:
    if isinstance(node, dict):
        return node.get(token)
    if isinstance(node, list) and token.isdigit() and int(token) < len(node):
        return node[int(token)]
    return None


def _remove(node: Any, token: str) -> None:
    if isinstance(node, dict):
        node.pop(token, None)
    elif isinstance(node, list):
        del node[int(token)]


def _set(node: Any, token: str, value: Any) -> None:
    if isinstance(node, dict):
        node[token] = value
    else:
        node[int(token)] = value


def _shape_like(have: Any, wanted: Any) -> Any:
    """``have`` restricted to the map keys ``wanted`` sets (so other managers' keys are not taken over)."""
    if isinstance(have, dict) and isinstance(wanted, dict):
        return {k: _shape_like(have[k], v) for k, v in wanted.items() if k in have}
    return have


_NOTHING_APPLIED = "validation failed, nothing applied: "


def not_stored_fields(d: Desired, stored: dict[str, Any]) -> list[str]:
    """The fields of ``d`` that the object the API server stored (or would store) does not carry.

    ``stored`` is the result of applying ``d`` (a server-side dry-run will do). Desired is compared with it
    as with a live object (:func:`reconciler.cluster.drift.diff_fields`, ``d.ignore`` respected), so write-
    only fields and equal spellings are not reported. What remains was dropped or changed on write: a
    field of a feature gate that is off on this cluster (kube-apiserver drops such fields silently, e.g.
    ``lifecycle.stopSignal`` in 1.36), or a value a mutating admission webhook rewrites. Such a field
    shows as drift on every pass, so the change says so.

    Returns:
        The dot paths (as :class:`reconciler.cluster.drift.FieldDrift` renders them), ``[]`` when the
        result carries everything or cannot be compared.
    """
    try:
        return [str(f) for f in drift.diff_fields(d.obj, stored, ignore=d.ignore)]
    except (ValueError, TypeError):
        return []


def _in_apply_order(changes: ChangeSet, ordered: list[ObjectRef]) -> None:
    """Sort ``changes`` (in place, stably) by the objects' position in ``ordered``."""
    position = {ref.key: i for i, ref in enumerate(ordered)}
    changes.entries.sort(key=lambda c: position.get(c.ref.key, len(position)))


def _message(paths: list[str], lost: list[str] | None) -> str:
    """A change's message: the differing paths, then the fields the API server does not store."""
    text = ", ".join(paths)
    if lost:
        note = "not stored by the API server (dropped or changed on write): " + ", ".join(lost)
        text = f"{text}; {note}" if text else note
    return text


def _is_crd(ref: ObjectRef) -> bool:
    return ref.kind == "CustomResourceDefinition" and ref.group == "apiextensions.k8s.io"


def _missing_namespace(exc: NotFoundError, namespace: str) -> bool:
    """True when the API server refused a request because ``namespace`` does not exist (its Status is
    NotFound with ``details.kind`` namespaces; the message reads ``namespaces "<name>" not found``)."""
    return bool(namespace) and f'namespaces "{namespace}" not found' in exc.message


def is_prerequisite(ref: ObjectRef) -> bool:
    """True for the cluster-scoped stage that is written before the rest of a set is validated.

    That is every cluster-scoped kind of stage 0 (:func:`reconciler.cluster.ordering.stage_of`):
    CustomResourceDefinitions, Namespaces, ClusterRoles and ClusterRoleBindings, PriorityClasses and
    StorageClasses. Namespaced kinds of stage 0 (ResourceQuota, LimitRange) are not: nothing namespaced
    is written before the whole set validated.
    """
    return stage_of(ref) == 0 and (ref.group, ref.kind) not in _NAMESPACED_STAGE0


_NAMESPACED_STAGE0 = {("", "ResourceQuota"), ("", "LimitRange")}


def _naming(ref: ObjectRef, exc: KubeError) -> str:
    """The error's text, led by ``Kind/namespace/name`` of the object it is about."""
    return str(exc) if exc.obj == str(ref) else f"{ref}: {exc}"


# "updates to statefulset spec for fields other than 'replicas', 'ordinals', … and 'minReadySeconds' are
# forbidden": the API server names only ``spec``, and lists the fields that may change.
_UPDATABLE_RE = re.compile(r"updates to \S+ spec for fields other than (.*?) are forbidden")


def forbidden_changes(message: str, paths: Iterable[str]) -> list[str]:
    """The changed fields (``paths``, as a plan names them) that a refusal ``message`` of the kind "updates
    to <kind> spec for fields other than 'a', 'b' … are forbidden" is about: those under ``spec.`` whose
    first segment is not one of the listed fields. ``[]`` for any other message (it names its field)."""
    found = _UPDATABLE_RE.search(message)
    if found is None:
        return []
    updatable = set(re.findall(r"'([^']+)'", found.group(1)))
    out: list[str] = []
    for path in paths:
        live = path.split(" ", 1)[0]  # "live.path (from git.path)"
        top = re.match(r"spec\.([A-Za-z0-9]+)", live)
        if top is not None and top.group(1) not in updatable and live not in out:
            out.append(live)
    return out


def _immutable_error(d: Desired, exc: InvalidError, paths: Iterable[str] = ()) -> InvalidError:
    fields = forbidden_changes(exc.message, paths)
    changed = f"; changed here: {', '.join(fields)}" if fields else ""
    return InvalidError(
        str(d.ref),
        exc.status,
        "Immutable",
        f"{elide_values(exc.message)}{changed} (a field that cannot change after creation was changed; "
        f'annotate the object with {RECREATE_ANNOTATION}: "true" to allow delete and recreate)',
    )


def _selector(spec: Any) -> tuple[Any, Any]:
    selector = (spec.get("selector") if isinstance(spec, dict) else None) or {}
    return (dict(selector.get("matchLabels") or {}), list(selector.get("matchExpressions") or []))


def recreate_propagation(
    d: Desired, live: dict[str, Any] | None, owned_claims: Collection[str] = ()
) -> tuple[str, str]:
    """How to delete ``live`` before creating ``d`` again (``reconciler.dev/recreate: "true"``), as
    ``(propagationPolicy, "")``, or ``("", why not)`` when deleting it would delete what nobody asked to.

    Most kinds: ``Foreground`` (the object's dependents go first). A StatefulSet whose selector stays the
    same: ``Orphan``: its pods and PersistentVolumeClaims stay (their owner references to it removed) and
    the new StatefulSet adopts them, as ``kubectl delete --cascade=orphan`` does to change
    ``volumeClaimTemplates``: no claim is deleted even when the StatefulSet says
    ``persistentVolumeClaimRetentionPolicy.whenDeleted: Delete`` (its claims are then its dependents),
    and no pod stops before the new StatefulSet rolls it. A new selector cannot adopt the old pods, so
    they must go (``Foreground``); that is refused while claims are its dependents (``owned_claims``, their
    names), since they would go with it.
    """
    if not _is_statefulset(d.ref) or live is None:
        return "Foreground", ""
    if _selector(live.get("spec")) == _selector(d.obj.get("spec")):
        return "Orphan", ""
    if owned_claims:
        return "", (
            f"{RECREATE_ANNOTATION}: recreating this StatefulSet with another selector deletes its pods, and "
            f"its PersistentVolumeClaims {', '.join(sorted(owned_claims))} with them (they are its "
            "dependents: persistentVolumeClaimRetentionPolicy.whenDeleted: Delete), so nothing was deleted: "
            "set whenDeleted: Retain in Git first (applied in place; the StatefulSet controller then "
            "releases the claims), then change the selector"
        )
    return "Foreground", ""


def _is_statefulset(ref: ObjectRef) -> bool:
    return ref.group == "apps" and ref.kind == "StatefulSet"


def _wants_recreate(obj: dict[str, Any]) -> bool:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return str(annotations.get(RECREATE_ANNOTATION, "")).lower() == "true"


__all__ = [
    "FIELD_MANAGER",
    "ApplyError",
    "Desired",
    "PruneBlocked",
    "ResourceManager",
    "SyncCache",
    "digest",
    "elide_values",
    "forbidden_changes",
    "is_immutable_change",
    "not_stored_fields",
    "prepare",
    "readable_diff",
    "recreate_propagation",
    "respect_ignored",
    "sendable",
    "stage_of",
]
