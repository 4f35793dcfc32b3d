"""The inventory store: which objects an environment applied, kept in the cluster.

One ConfigMap per environment and source, ``reconciler-inventory-<env>-<source hash>`` in the
``reconciler-system`` namespace, holds the entries as JSON (group, version, kind, namespace, name) and the
revision that wrote them. Prune deletes only entries of this list (never objects that merely carry a
label), so copied labels cannot widen it. The source hash (the first 8 hex digits of the sha256 of the
repository URL without credentials) keeps two repositories that both define ``dev`` on one cluster apart;
without a source the name is ``reconciler-inventory-<env>``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from reconciler.cluster.client import KubeClient
from reconciler.model import Inventory, ObjectRef

NAMESPACE = "reconciler-system"
FIELD_MANAGER = "reconciler-inventory"


def public_source(source: str) -> str:
    """``source`` without credentials (``https://user:token@host/x`` → ``https://host/x``)."""
    parts = urlsplit(source)
    if parts.scheme and "@" in parts.netloc:
        return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))
    return source


def source_hash(source: str) -> str:
    """The first 8 hex digits of the sha256 of ``source`` without credentials ("" for no source)."""
    if not source:
        return ""
    return hashlib.sha256(public_source(source).encode()).hexdigest()[:8]


def ensure_namespace(client: KubeClient, field_manager: str) -> None:
    """Create ``reconciler-system`` when missing (server-side apply; a no-op when it exists)."""
    client.apply(
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
        ObjectRef(kind="Namespace", name=NAMESPACE),
        field_manager=field_manager,
    )


def stored_metadata(name: str, env: str, source: str, **labels: str) -> dict[str, Any]:
    """Metadata of a ConfigMap this project stores in ``reconciler-system`` for ``env`` of ``source``
    (inventories, rollout states): managed-by, environment and source-hash labels plus ``labels``, and
    the source without credentials in an annotation."""
    return {
        "name": name,
        "namespace": NAMESPACE,
        "labels": {
            "app.kubernetes.io/managed-by": "reconciler",
            "reconciler.dev/environment": env,
            "reconciler.dev/source-hash": source_hash(source) or "none",
            **labels,
        },
        "annotations": {"reconciler.dev/source": public_source(source)},
    }


def inventory_ref(env: str, source: str = "") -> ObjectRef:
    """The ConfigMap holding ``env``'s inventory for ``source``."""
    h = source_hash(source)
    name = f"reconciler-inventory-{env}" + (f"-{h}" if h else "")
    return ObjectRef(kind="ConfigMap", namespace=NAMESPACE, name=name)


def parse_inventory(env: str, obj: dict[str, Any]) -> Inventory:
    """The inventory a stored ConfigMap holds."""
    data = obj.get("data") or {}
    entries = [ObjectRef(**e) for e in json.loads(data.get("entries", "[]"))]
    digests = json.loads(data.get("digests", "{}"))
    return Inventory(environment=env, revision=data.get("revision", ""), entries=entries, digests=digests)


class InventoryStore:
    """Reads and writes environment inventories through ``client``.

    Args:
        client: the Kubernetes client.
        source: the repository URL or path the environments come from (part of the inventory's name).
    """

    def __init__(
        self,
        client: KubeClient,
        source: str = "",
        on_written: Callable[[dict[str, Any], bool], None] | None = None,
    ) -> None:
        self.client = client
        self.source = source
        #: told each ConfigMap stored (as the server returned it) or deleted (``True``): an inventory
        #: watch sees this process's own writes at once (reconciler.cluster.ownership.InventoryWatch.saw)
        self.on_written = on_written
        self._ns_ready = False

    def load(self, env: str) -> Inventory:
        """The stored inventory (empty when none was stored yet)."""
        obj = self.client.get(inventory_ref(env, self.source))
        if obj is None:
            return Inventory(environment=env)
        self._ns_ready = True
        return parse_inventory(env, obj)

    def save(self, inventory: Inventory, previous: Inventory | None = None) -> bool:
        """Store ``inventory`` (server-side apply; the namespace is created when missing).

        Returns False without any API call when ``previous`` (the stored inventory) already says the same.
        """
        if previous is not None and _same(previous, inventory):
            return False
        if not self._ns_ready:
            ensure_namespace(self.client, FIELD_MANAGER)
            self._ns_ready = True
        ref = inventory_ref(inventory.environment, self.source)
        entries = sorted(
            (e.model_dump() for e in inventory.entries),
            key=lambda e: (e["group"], e["kind"], e["namespace"], e["name"]),
        )
        stored = self.client.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": stored_metadata(ref.name, inventory.environment, self.source),
                "data": {
                    "entries": json.dumps(entries, separators=(",", ":")),
                    "revision": inventory.revision,
                    "digests": json.dumps(inventory.digests, separators=(",", ":"), sort_keys=True),
                },
            },
            ref,
            field_manager=FIELD_MANAGER,
        )
        if self.on_written is not None:
            self.on_written(stored, False)
        return True

    def delete(self, env: str) -> None:
        """Delete ``env``'s stored inventory (only after every object it lists was deleted: an inventory
        is what prune trusts, so it never goes while its objects stay)."""
        ref = inventory_ref(env, self.source)
        self.client.delete(ref)
        if self.on_written is not None:
            self.on_written({"metadata": {"name": ref.name, "namespace": ref.namespace}}, True)


def _same(a: Inventory, b: Inventory) -> bool:
    return (
        a.revision == b.revision
        and a.digests == b.digests
        and sorted(e.key for e in a.entries) == sorted(e.key for e in b.entries)
        and {e.key: e.version for e in a.entries} == {e.key: e.version for e in b.entries}
    )
