"""Rollout state in the cluster: one ConfigMap per environment and app in ``reconciler-system``
(``reconciler-rollout-<env>-<app>[-<source hash>]``), so a restarted daemon resumes a rollout where it
stood (ARCHITECTURE.md §7). Written with server-side apply under the field manager
``reconciler-rollout``."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import NAMESPACE, ensure_namespace, source_hash, stored_metadata
from reconciler.model import ObjectRef
from reconciler.model.rollout import RolloutState

#: The field manager of every write a rollout makes (its state, route weights, canary scale-down).
FIELD_MANAGER = "reconciler-rollout"


def state_ref(env: str, app: str, source: str = "") -> ObjectRef:
    """The ConfigMap holding ``app``'s rollout state in ``env`` for ``source``."""
    h = source_hash(source)
    name = f"reconciler-rollout-{env}-{app}" + (f"-{h}" if h else "")
    return ObjectRef(kind="ConfigMap", namespace=NAMESPACE, name=name[:253])


class RolloutStore:
    """Reads and writes rollout states through ``client`` (in ``reconciler-system``, created when missing).

    Args:
        client: the Kubernetes client.
        source: the repository URL or path the environments come from.
    """

    def __init__(self, client: KubeClient, source: str = "") -> None:
        self.client = client
        self.source = source
        self._ns_ready = False

    def load(self, env: str, app: str) -> RolloutState | None:
        """The stored state, or ``None`` when there is none (or it cannot be read: a state this version
        does not understand is treated as none, and the next pass starts afresh from Git)."""
        obj = self.client.get(state_ref(env, app, self.source))
        if obj is None:
            return None
        raw = (obj.get("data") or {}).get("state", "")
        try:
            return RolloutState.model_validate_json(raw)
        except ValidationError:
            return None

    def save(self, state: RolloutState) -> None:
        """Store ``state`` (server-side apply; the namespace is created when missing)."""
        if not self._ns_ready:
            ensure_namespace(self.client, FIELD_MANAGER)
            self._ns_ready = True
        ref = state_ref(state.environment, state.app, self.source)
        body: dict[str, Any] = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": stored_metadata(
                ref.name, state.environment, self.source, **{"reconciler.dev/rollout": state.app}
            ),
            "data": {
                "state": state.model_dump_json(),
                "phase": state.phase.value,
                "weight": str(state.weight),
            },
        }
        self.client.apply(body, ref, field_manager=FIELD_MANAGER)

    def delete(self, env: str, app: str) -> None:
        """Forget ``app``'s rollout in ``env``."""
        self.client.delete(state_ref(env, app, self.source))
