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

import threading
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import BaseModel

from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import NAMESPACE, parse_inventory, source_hash
from reconciler.errors import NotFoundError
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

Key = tuple[str, str, str, str]

#: inventories already parsed, by the ConfigMap's uid: (resourceVersion, inventory). Every pass reads every
#: other inventory (one list call); a stored object with the same uid and resourceVersion is the same
#: object (Kubernetes API concepts, "Resource versions"), so each version is parsed once, not once a pass.
_PARSED: dict[str, tuple[str, Inventory]] = {}
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
    with _PARSED_LOCK:
        if len(_PARSED) >= _PARSED_MAX:
            _PARSED.clear()
        _PARSED[uid] = (rv, inv)
    return inv


class Conflict(BaseModel):
    """One desired object that someone else owns."""

    object: str
    owner: str

    def __str__(self) -> str:
        return f"{self.object} is held by {self.owner}"


def other_inventories(client: KubeClient, env: str, source: str) -> list[tuple[str, Inventory]]:
    """Every stored inventory but ``env``'s own for ``source``, as ``(owner description, inventory)``
    (shared between calls: do not change them).

    Raises:
        KubeError: the inventories cannot be listed.
    """
    try:
        items, _ = client.list(
            "", "v1", "ConfigMap", namespace=NAMESPACE, label_selector="reconciler.dev/environment"
        )
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


def holders(inventories: Iterable[tuple[str, Inventory]]) -> dict[Key, list[str]]:
    """Object key → the owners whose inventory lists it."""
    out: dict[Key, list[str]] = {}
    for owner, inv in inventories:
        for ref in inv.entries:
            out.setdefault(ref.key, []).append(owner)
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
