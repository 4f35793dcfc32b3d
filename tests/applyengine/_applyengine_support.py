"""Helpers of the apply-engine tests: load shared cases, edit objects as another field manager."""

from __future__ import annotations

import copy
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from reconciler.cluster.client import KubeClient
from reconciler.model import ObjectRef, ref_of

WRITE_VERBS = ("apply", "create", "update", "patch", "delete", "dry-run")


def load_docs(path: Path) -> list[dict[str, Any]]:
    """Every non-empty YAML document of ``path``."""
    return [doc for doc in YAML(typ="safe").load_all(path.read_text()) if doc]


def in_namespace(objects: list[dict[str, Any]], namespace: str) -> list[dict[str, Any]]:
    """Deep copies of ``objects`` with ``metadata.namespace`` rewritten to ``namespace``."""
    out = []
    for obj in objects:
        obj = copy.deepcopy(obj)
        obj.setdefault("metadata", {})["namespace"] = namespace
        out.append(obj)
    return out


def writes(client: KubeClient, before: dict[str, int]) -> int:
    """Write calls (including dry-runs) ``client`` made since the ``before`` snapshot of its counter."""
    return sum(client.calls[v] - before.get(v, 0) for v in WRITE_VERBS)


def strategic_patch(client: KubeClient, ref: ObjectRef, patch: dict[str, Any], *, manager: str) -> Any:
    """Change an object the way ``kubectl edit``/``kubectl patch`` does: an Update-operation strategic
    merge patch with field manager ``manager``."""
    info = client.resource(ref.group, ref.version, ref.kind)
    return client.request(
        "PATCH",
        info.object_path(ref.namespace, ref.name),
        body=patch,
        query={"fieldManager": manager},
        content_type="application/strategic-merge-patch+json",
        verb="patch",
        obj=str(ref),
    )


def scale(client: KubeClient, ref: ObjectRef, replicas: int, *, manager: str) -> Any:
    """Set ``spec.replicas`` through the scale subresource, as an autoscaler does."""
    info = client.resource(ref.group, ref.version, ref.kind)
    return client.request(
        "PATCH",
        info.object_path(ref.namespace, ref.name) + "/scale",
        body={"spec": {"replicas": replicas}},
        query={"fieldManager": manager},
        content_type="application/merge-patch+json",
        verb="patch",
        obj=str(ref) + "/scale",
    )


def owned_by(live: dict[str, Any], manager: str) -> list[dict[str, Any]]:
    """The managedFields entries of ``manager``."""
    return [m for m in (live.get("metadata") or {}).get("managedFields") or [] if m.get("manager") == manager]


def fields_json(live: dict[str, Any], manager: str) -> str:
    """All fieldsV1 of ``manager`` as one JSON text (to search for ``"f:replicas"`` ...)."""
    return json.dumps([m.get("fieldsV1") for m in owned_by(live, manager)], sort_keys=True)


def until(pred: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """Poll ``pred`` until it returns a truthy value (returned) or ``timeout`` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        time.sleep(interval)


def refs(objects: list[dict[str, Any]]) -> list[ObjectRef]:
    """The refs of ``objects``."""
    return [ref_of(o) for o in objects]
