"""One owner per object: who else holds an object an environment is about to write.

Before any write, a pass asks two things of each desired object:

* does another environment's stored inventory hold it (another environment of this repository, or an
  environment of another installation, whose inventories are keyed by source)? Two environments whose
  overlays render the same object would otherwise take turns correcting each other's "drift", and one's
  prune would delete what the other still wants;
* does its live copy carry another GitOps tool's ownership marks: Flux's ``kustomize.toolkit.fluxcd.io``
  and ``helm.toolkit.fluxcd.io`` labels, Argo CD's ``argocd.argoproj.io/tracking-id`` annotation, or an
  ``Apply`` entry in ``metadata.managedFields`` by ``kustomize-controller``, ``helm-controller`` or
  ``argocd-controller``?

Either is a conflict: the pass is Blocked before any write, naming the object and both owners (Argo CD's
"SharedResourceWarning", Flux's ownership labels). An object whose manifest in Git carries the annotation
``reconciler.dev/ownership: take`` is handed over instead: the pass applies it and records it in its own
inventory. Whichever environment held it before then keeps it only if it still wants it (and its passes
are Blocked on the object until one of the two lets go); prune never deletes an object that another
inventory holds (it leaves the pruning environment's inventory instead).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from collections.abc import Set as AbstractSet
from typing import Any

from pydantic import BaseModel

from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import NAMESPACE, parse_inventory, source_hash
from reconciler.errors import ConfigError, KubeError, NotFoundError
from reconciler.model import Inventory, ObjectRef

#: The annotation (on the object in Git) that hands an object over to the environment applying it.
OWNERSHIP_ANNOTATION = "reconciler.dev/ownership"
TAKE = "take"

_FOREIGN_LABELS = {
    "kustomize.toolkit.fluxcd.io/name": "Flux Kustomization",
    "helm.toolkit.fluxcd.io/name": "Flux HelmRelease",
}
_FOREIGN_ANNOTATIONS = {"argocd.argoproj.io/tracking-id": "Argo CD Application"}
_FOREIGN_MANAGERS = {
    "kustomize-controller": "Flux kustomize-controller",
    "helm-controller": "Flux helm-controller",
    "argocd-controller": "Argo CD",
}

log = logging.getLogger("reconciler.cluster")

Key = tuple[str, str, str, str]

#: The label every stored inventory ConfigMap carries (its value: the environment).
INVENTORY_LABEL = "reconciler.dev/environment"
#: Seconds an :class:`InventoryWatch` waits before it lists again after a failure.
WATCH_RETRY_SECONDS = 1.0

#: inventories already parsed, by the ConfigMap's uid: (resourceVersion, inventory). Every pass reads every
#: other inventory; a stored object with the same uid and resourceVersion is the same object (Kubernetes API
#: concepts, "Resource versions"), so each version is parsed once, not once a pass.
_PARSED: dict[str, tuple[str, Inventory]] = {}
#: the entries' keys of the inventories in _PARSED, by ``id()`` of the inventory (held here too, so its id
#: is not reused while the entry lives; an entry leaves with its inventory's _PARSED entry)
_KEYS: dict[int, tuple[Inventory, frozenset[Key]]] = {}
_PARSED_LOCK = threading.Lock()
_PARSED_MAX = 4096


def _parsed(name: str, item: dict[str, Any]) -> Inventory:
    meta = item.get("metadata") or {}
    uid, rv = str(meta.get("uid", "")), str(meta.get("resourceVersion", ""))
    if not uid or not rv:
        return parse_inventory(name, item)
    with _PARSED_LOCK:
        hit = _PARSED.get(uid)
    if hit is not None and hit[0] == rv and hit[1].environment == name:
        return hit[1]
    inv = parse_inventory(name, item)
    keys = frozenset(ref.key for ref in inv.entries)
    with _PARSED_LOCK:
        old = _PARSED.get(uid)
        if old is not None:
            _KEYS.pop(id(old[1]), None)
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
            _KEYS.clear()
        _PARSED[uid] = (rv, inv)
        _KEYS[id(inv)] = (inv, keys)
    return inv


def entry_keys(inv: Inventory) -> frozenset[Key]:
    """The keys of ``inv``'s entries: kept with each parsed inventory version (parsed inventories are shared
    between passes and never changed), built here for any other inventory."""
    with _PARSED_LOCK:
        hit = _KEYS.get(id(inv))
    if hit is not None and hit[0] is inv:
        return hit[1]
    return frozenset(ref.key for ref in inv.entries)


class Conflict(BaseModel):
    """One desired object that someone else owns."""

    object: str
    owner: str

    def __str__(self) -> str:
        return f"{self.object} is held by {self.owner}"


def other_inventories(
    client: KubeClient, env: str, source: str, *, items: list[dict[str, Any]] | None = None
) -> list[tuple[str, Inventory]]:
    """Every stored inventory but ``env``'s own for ``source``, as ``(owner description, inventory)``
    (shared between calls: do not change them). ``items``: the inventory ConfigMaps as an
    :class:`InventoryWatch` holds them; ``None`` lists them from the API server.

    Raises:
        KubeError: the inventories cannot be listed.
    """
    if items is None:
        try:
            items, _ = client.list("", "v1", "ConfigMap", namespace=NAMESPACE, label_selector=INVENTORY_LABEL)
        except NotFoundError:
            return []
    mine = source_hash(source) or "none"
    out: list[tuple[str, Inventory]] = []
    for item in items:
        labels = (item.get("metadata") or {}).get("labels") or {}
        name = str(labels.get("reconciler.dev/environment", ""))
        src = str(labels.get("reconciler.dev/source-hash", "none"))
        if not name or (name == env and src == mine):
            continue
        anno = (item.get("metadata") or {}).get("annotations") or {}
        where = anno.get("reconciler.dev/source", "")
        owner = f"environment {name!r}" + (f" of {where}" if src != mine else "")
        out.append((owner, _parsed(name, item)))
    return out


def holders(
    inventories: Iterable[tuple[str, Inventory]], only: AbstractSet[Key] | None = None
) -> dict[Key, list[str]]:
    """Object key → the owners whose inventory lists it; with ``only``, just those keys (a pass asks
    about its own objects: a set intersection per inventory instead of a map of every inventory's
    every entry)."""
    out: dict[Key, list[str]] = {}
    for owner, inv in inventories:
        keys = entry_keys(inv)
        for key in keys if only is None else (keys & only):
            out.setdefault(key, []).append(owner)
    return out


def foreign_owner(live: Mapping[str, Any]) -> str:
    """The other GitOps tool whose marks a live object carries ("" for none)."""
    meta = live.get("metadata") or {}
    labels = meta.get("labels") or {}
    for label, tool in _FOREIGN_LABELS.items():
        if label in labels:
            ns = labels.get(label.replace("/name", "/namespace"), "")
            return f"{tool} {ns + '/' if ns else ''}{labels[label]}"
    annotations = meta.get("annotations") or {}
    for annotation, tool in _FOREIGN_ANNOTATIONS.items():
        if annotation in annotations:
            return f"{tool} ({annotations[annotation]})"
    for entry in meta.get("managedFields") or []:
        manager = str(entry.get("manager", ""))
        if manager in _FOREIGN_MANAGERS and entry.get("operation") == "Apply":
            return f"{_FOREIGN_MANAGERS[manager]} (field manager {manager})"
    return ""


def takes_ownership(obj: Mapping[str, Any]) -> bool:
    """Whether the manifest in Git hands the object over (``reconciler.dev/ownership: take``)."""
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    return annotations.get(OWNERSHIP_ANNOTATION) == TAKE


def conflicts(
    desired: Iterable[tuple[ObjectRef, Mapping[str, Any]]],
    live: Mapping[Key, Mapping[str, Any]],
    held: Mapping[Key, list[str]],
) -> list[Conflict]:
    """The desired objects someone else owns, in the given order (see the module docstring).

    Args:
        desired: ``(ref, manifest)`` of every object the pass would apply.
        live: live copies by key (absent: not in the cluster).
        held: other inventories' holders by key (:func:`holders`).
    """
    out: list[Conflict] = []
    for ref, obj in desired:
        if takes_ownership(obj):
            continue
        owners = list(held.get(ref.key, []))
        current = live.get(ref.key)
        tool = foreign_owner(current) if current is not None else ""
        if tool:
            owners.append(tool)
        if owners:
            out.append(Conflict(object=str(ref), owner=" and ".join(owners)))
    return out


def describe(env: str, found: list[Conflict], limit: int = 5) -> str:
    """The Blocked reason for ``found`` conflicts of environment ``env``."""
    head = "; ".join(str(c) for c in found[:limit]) + (
        f" (+{len(found) - limit} more)" if len(found) > limit else ""
    )
    return (
        f"ownership conflict: environment {env!r} would write {len(found)} object(s) that another owner "
        f"holds: {head}; remove them from one of the two, or hand them over with the annotation "
        f"{OWNERSHIP_ANNOTATION}: {TAKE} on the object in Git"
    )


class InventoryWatch:
    """Every stored inventory ConfigMap of one cluster, kept current by one list and a watch (the
    list-then-watch of the Kubernetes API concepts, "Efficient detection of changes"), so a pass's
    ownership check reads no inventory from the API server: a daemon with N environments would otherwise
    list all N inventories in each of its N passes.

    Args:
        open_client: makes the watch's own client (closed by the watch when it ends).
        name: names the cluster in the log.

    Thread-safe. :meth:`items` is ``None`` until the first list and after a failure, until the next list
    (the caller then lists itself): never a view that may have missed a change it was told about.
    """

    def __init__(self, open_client: Callable[[], KubeClient], *, name: str = "") -> None:
        self._open = open_client
        self.name = name
        self._lock = threading.Lock()
        self._items: dict[str, dict[str, Any]] | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"reconciler-inventories-{name}", daemon=True)

    def start(self) -> InventoryWatch:
        """Start the watch's thread; returns ``self``."""
        self._thread.start()
        return self

    def items(self) -> list[dict[str, Any]] | None:
        """The inventory ConfigMaps as last seen (shared: do not change them), or ``None`` while the watch
        is not listed and running."""
        with self._lock:
            return None if self._items is None else list(self._items.values())

    def saw(self, obj: dict[str, Any], deleted: bool = False) -> None:
        """Take ``obj``, an inventory ConfigMap this process just stored (as the server returned it) or
        ``deleted``, into the view at once, so the next pass's ownership check sees this process's own
        writes without waiting for the watch to deliver them."""
        with self._lock:
            if self._items is None:
                return
            if deleted:
                self._items.pop(str((obj.get("metadata") or {}).get("name", "")), None)
            else:
                self._put(obj)

    def _put(self, obj: dict[str, Any]) -> None:
        """``obj`` into the view unless the view holds a newer copy (lock held). resourceVersions are
        compared as numbers when both are (etcd's revisions are); otherwise the later arrival wins."""
        assert self._items is not None
        name = str((obj.get("metadata") or {}).get("name", ""))
        held = self._items.get(name)
        if held is not None:
            new_rv = str((obj.get("metadata") or {}).get("resourceVersion", ""))
            held_rv = str((held.get("metadata") or {}).get("resourceVersion", ""))
            if new_rv.isdigit() and held_rv.isdigit() and int(new_rv) < int(held_rv):
                return  # the watch delivering an older write after this process's newer one
        self._items[name] = obj

    def close(self) -> None:
        """Stop the watch: the view is gone at once (:meth:`items` is ``None``); the thread ends when its
        watch call returns (an event, or the server's timeout of 60 s at the latest) and closes its client."""
        self._stop.set()
        with self._lock:
            self._items = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                client = self._open()  # again after a failure: a rotated credential is picked up
            except (KubeError, ConfigError, ValueError, OSError) as exc:
                log.warning("inventory watch of cluster %s cannot start: %s", self.name, exc)
                self._stop.wait(WATCH_RETRY_SECONDS)
                continue
            try:
                self._list_and_watch(client)
            except KubeError as exc:
                if exc.status != 410:  # 410: the resourceVersion is too old; list again at once
                    log.debug("inventory watch of cluster %s: %s", self.name, exc)
                    self._stop.wait(WATCH_RETRY_SECONDS)
            except Exception:
                log.exception("inventory watch of cluster %s failed", self.name)
                self._stop.wait(WATCH_RETRY_SECONDS)
            finally:
                with self._lock:
                    self._items = None
                client.close()

    def _list_and_watch(self, client: KubeClient) -> None:
        items, rv = client.list("", "v1", "ConfigMap", namespace=NAMESPACE, label_selector=INVENTORY_LABEL)
        with self._lock:
            self._items = {str((i.get("metadata") or {}).get("name", "")): i for i in items}
        while not self._stop.is_set():  # a watch the server ended goes on from the last resourceVersion
            for etype, obj in client.watch(
                "",
                "v1",
                "ConfigMap",
                resource_version=rv,
                namespace=NAMESPACE,
                label_selector=INVENTORY_LABEL,
                timeout_seconds=60,
            ):
                if self._stop.is_set():
                    return
                meta = obj.get("metadata") or {}
                rv = str(meta.get("resourceVersion", rv))
                if etype not in ("ADDED", "MODIFIED", "DELETED"):
                    continue  # BOOKMARK: only the resourceVersion moves
                name = str(meta.get("name", ""))
                with self._lock:
                    if self._items is None:
                        return
                    if etype == "DELETED":
                        self._items.pop(name, None)
                    else:
                        self._put(obj)
