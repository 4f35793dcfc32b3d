"""The policy part of ``reconciler check``: the head's rendered objects of a touched environment, with
namespaces filled in as a pass would, judged by the environment's policies (``reconciler.policy``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from reconciler.cluster.client import KubeClient
from reconciler.errors import ReconcilerError
from reconciler.model import Environment
from reconciler.policy import PolicyEvaluator
from reconciler.reconcile.pass_ import default_namespaces
from reconciler.render.resource import is_cluster_scoped
from reconciler.source import Snapshot

if TYPE_CHECKING:
    from reconciler.promote.check import EnvCheck


def fill_namespaces(objects: list[dict[str, Any]], env: Environment, client: KubeClient | None) -> None:
    """Give namespaced objects without a namespace the environment's (in place): as the pass does with a
    cluster, else by kustomize's built-in scopes and the CRDs among ``objects``."""
    if not env.namespace:
        return
    if client is not None:
        default_namespaces(client, env, objects)
        return
    crds: dict[tuple[str, str], bool] = {}
    for obj in objects:
        if obj.get("kind") == "CustomResourceDefinition":
            spec = obj.get("spec") or {}
            crds[(str(spec.get("group", "")), str((spec.get("names") or {}).get("kind", "")))] = (
                spec.get("scope") == "Namespaced"
            )
    for obj in objects:
        meta = obj.setdefault("metadata", {})
        if meta.get("namespace"):
            continue
        group, _, version = str(obj.get("apiVersion") or "").rpartition("/")
        kind = str(obj.get("kind") or "")
        namespaced = crds.get((group, kind), not is_cluster_scoped(group, version, kind))
        if namespaced:
            meta["namespace"] = env.namespace


def judge(
    check: EnvCheck,
    evaluator: PolicyEvaluator,
    snapshot: Snapshot,
    env: Environment,
    objects: list[dict[str, Any]],
    client: KubeClient | None,
) -> None:
    """Run ``env``'s policies on the head's ``objects`` into ``check`` (never raises)."""
    try:
        fill_namespaces(objects, env, client)
        report = evaluator.check(snapshot.root, env, objects)
    except ReconcilerError as exc:
        check.ok, check.policies = False, "failed"
        check.error = str(exc).replace(str(snapshot.root) + "/", "")
        return
    if report is None:
        return
    check.policy = report.findings
    check.policies = "passed" if report.ok else "denied"
    if not report.ok:
        check.ok, check.error = False, report.summary()
