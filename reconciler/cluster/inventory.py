"""The inventory store: which objects an environment applied, kept in the cluster.

One ConfigMap per environment, ``reconciler-inventory-<env>`` in the ``reconciler-system`` namespace, holds
the entries as JSON (group, version, kind, namespace, name) and the revision that wrote them. Prune
deletes only entries of this list (never objects that merely carry a label), so copied labels cannot
widen it.
"""

from __future__ import annotations

import json

from reconciler.cluster.client import KubeClient
from reconciler.model import Inventory, ObjectRef

NAMESPACE = "reconciler-system"
FIELD_MANAGER = "reconciler-inventory"


def _ref(env: str) -> ObjectRef:
    return ObjectRef(kind="ConfigMap", namespace=NAMESPACE, name=f"reconciler-inventory-{env}")


class InventoryStore:
    """Reads and writes environment inventories through ``client``."""

    def __init__(self, client: KubeClient) -> None:
        self.client = client
        self._ns_ready = False

    def load(self, env: str) -> Inventory:
        """The stored inventory (empty when none was stored yet)."""
        obj = self.client.get(_ref(env))
        if obj is None:
            return Inventory(environment=env)
        self._ns_ready = True
        data = obj.get("data") or {}
        entries = [ObjectRef(**e) for e in json.loads(data.get("entries", "[]"))]
        digests = json.loads(data.get("digests", "{}"))
        return Inventory(environment=env, revision=data.get("revision", ""), entries=entries, digests=digests)

    def save(self, inventory: Inventory, previous: Inventory | None = None) -> bool:
        """Store ``inventory`` (server-side apply; the namespace is created when missing).

        Returns False without any API call when ``previous`` (the stored inventory) already says the same.
        """
        if previous is not None and _same(previous, inventory):
            return False
        if not self._ns_ready:
            self.client.apply(
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
                ObjectRef(kind="Namespace", name=NAMESPACE),
                field_manager=FIELD_MANAGER,
            )
            self._ns_ready = True
        ref = _ref(inventory.environment)
        entries = sorted(
            (e.model_dump() for e in inventory.entries),
            key=lambda e: (e["group"], e["kind"], e["namespace"], e["name"]),
        )
        self.client.apply(
            {
                "apiVersion": "v1",
                "kind": "ConfigMap",
                "metadata": {
                    "name": ref.name,
                    "namespace": NAMESPACE,
                    "labels": {
                        "app.kubernetes.io/managed-by": "reconciler",
                        "reconciler.dev/environment": inventory.environment,
                    },
                },
                "data": {
                    "entries": json.dumps(entries, separators=(",", ":")),
                    "revision": inventory.revision,
                    "digests": json.dumps(inventory.digests, separators=(",", ":"), sort_keys=True),
                },
            },
            ref,
            field_manager=FIELD_MANAGER,
        )
        return True


def _same(a: Inventory, b: Inventory) -> bool:
    return (
        a.revision == b.revision
        and a.digests == b.digests
        and sorted(e.key for e in a.entries) == sorted(e.key for e in b.entries)
        and {e.key: e.version for e in a.entries} == {e.key: e.version for e in b.entries}
    )
