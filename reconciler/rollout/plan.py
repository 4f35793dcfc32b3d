"""What a rollout makes of the desired state: pure functions, no I/O.

While an app's new version is rolled out, the environment's desired set (rendered from Git at the new
revision) is transformed (:func:`transform`):

* the app's Deployment keeps the **stable** manifest (the one applied before the rollout began);
* a **canary** Deployment ``<app>-canary`` runs the new manifest. Its pods carry the selector's label
  values with ``-canary`` appended, so the stable Service never selects them;
* a canary Service ``<app>-canary`` copies the stable Service, its selector values changed the same way;
* the HTTPRoute's weighted rule sends ``100 - w`` percent to the stable Service and ``w`` to the canary;
  with a header match, a copy of the rule whose matches also require that header sends everything to
  the canary (Gateway API gives a match with more header matches precedence,
  https://gateway-api.sigs.k8s.io/reference/spec/#httprouterule).

With ``split: replicas`` (session affinity) the share is made by pods instead of weights: the canary's pods
keep the stable Service's selector labels (their Deployment selects them with ``reconciler.dev/rollout:
canary`` added, and only the canary Service adds it too), so the stable Service fronts both versions;
the stable and canary Deployments split the stable manifest's replicas by the step's weight
(:func:`replica_split`), and the route is left as Git has it (plus the header-match rule, when set).

When the rollout is aborted the canary's weight is 0 and its replicas 0; when it succeeded, nothing is
transformed any more: the pass applies the new manifest to the app's Deployment, the route as Git has
it, and prunes the canary objects (they leave the desired set).

A new rollout starts when the app's rendered pod template differs from the stable one
(:func:`template_changed`); a change of anything else (replicas, labels of the Deployment itself) is
applied to the stable Deployment at once.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping
from typing import Any

from reconciler.model.rollout import RolloutPhase, RolloutSpec, RolloutState, Split

CANARY_SUFFIX = "-canary"
#: Label on every object a rollout adds (the canary Deployment and Service).
ROLLOUT_LABEL = "reconciler.dev/rollout"


def template_digest(deployment: Mapping[str, Any]) -> str:
    """SHA-256 of a Deployment's ``spec.template`` as canonical JSON (what makes a new version)."""
    template = (deployment.get("spec") or {}).get("template") or {}
    return hashlib.sha256(json.dumps(template, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


def template_changed(stable: Mapping[str, Any] | None, desired: Mapping[str, Any]) -> bool:
    """True when ``desired`` runs a different pod template than ``stable`` (``None``: nothing stable yet,
    so no rollout: the first version is applied as it is)."""
    return stable is not None and template_digest(stable) != template_digest(desired)


def _key(obj: Mapping[str, Any]) -> tuple[str, str, str]:
    meta = obj.get("metadata") or {}
    return (str(obj.get("kind") or ""), str(meta.get("namespace") or ""), str(meta.get("name") or ""))


def _suffix_selected(labels: Mapping[str, Any], keys: set[str]) -> dict[str, Any]:
    return {k: (f"{v}{CANARY_SUFFIX}" if k in keys else v) for k, v in labels.items()}


def canary_deployment(
    candidate: Mapping[str, Any], *, replicas: int | None = None, shared: bool = False
) -> dict[str, Any]:
    """The canary Deployment: ``candidate`` renamed ``<name>-canary``, its selector's label values (and the
    pod labels they select) suffixed ``-canary``; with ``shared`` (``split: replicas``) the pods keep their
    labels, so the stable Service selects them too, and the selector adds ``reconciler.dev/rollout:
    canary``. ``replicas`` overrides the count (0 when aborted)."""
    out = copy.deepcopy(dict(candidate))
    meta = out.setdefault("metadata", {})
    meta["name"] = f"{meta.get('name')}{CANARY_SUFFIX}"
    meta.setdefault("labels", {})[ROLLOUT_LABEL] = "canary"
    spec = out.setdefault("spec", {})
    match = (spec.get("selector") or {}).get("matchLabels") or {}
    keys = set(match)
    tmeta = spec.setdefault("template", {}).setdefault("metadata", {})
    if shared:
        spec.setdefault("selector", {})["matchLabels"] = {**match, ROLLOUT_LABEL: "canary"}
        tmeta["labels"] = {**(tmeta.get("labels") or {}), ROLLOUT_LABEL: "canary"}
    else:
        if match:
            spec["selector"]["matchLabels"] = _suffix_selected(match, keys)
        tmeta["labels"] = _suffix_selected(tmeta.get("labels") or {}, keys)
    if replicas is not None:
        spec["replicas"] = replicas
    return out


def canary_service(
    stable_service: Mapping[str, Any], deployment: Mapping[str, Any], *, shared: bool = False
) -> dict[str, Any]:
    """The canary Service: the stable Service renamed ``<app>-canary``, selecting only the canary pods (its
    selector values for the Deployment's selector keys suffixed ``-canary``; with ``shared``, its selector
    plus ``reconciler.dev/rollout: canary``); no cluster IP copied. Probe gates and the header-match rule
    reach the canary through it."""
    out = copy.deepcopy(dict(stable_service))
    meta = out.setdefault("metadata", {})
    meta["name"] = f"{(deployment.get('metadata') or {}).get('name')}{CANARY_SUFFIX}"
    meta.setdefault("labels", {})[ROLLOUT_LABEL] = "canary"
    spec = out.setdefault("spec", {})
    for field in ("clusterIP", "clusterIPs"):
        spec.pop(field, None)
    if shared:
        spec["selector"] = {**(spec.get("selector") or {}), ROLLOUT_LABEL: "canary"}
        return out
    keys = set(((deployment.get("spec") or {}).get("selector") or {}).get("matchLabels") or {})
    spec["selector"] = _suffix_selected(spec.get("selector") or {}, keys)
    return out


def replica_split(total: int, weight: int) -> tuple[int, int]:
    """``(stable, canary)`` pod counts for a canary share of ``weight`` percent of ``total`` replicas
    (``split: replicas``): the nearest share with at least one canary pod while ``weight > 0`` and at
    least one stable pod while ``weight < 100`` (so one replica becomes 1 + 1 at any step in between:
    the share is approximate, by endpoint count). ``weight`` 0 → ``(total, 0)``; 100 → ``(0, total)``."""
    total = max(total, 1)
    if weight <= 0:
        return total, 0
    if weight >= 100:
        return 0, total
    canary = min(max(round(total * weight / 100), 1), total)
    stable = max(total - canary, 1)
    return stable, canary


def _replicas(deployment: Mapping[str, Any]) -> int:
    value = (deployment.get("spec") or {}).get("replicas")
    return value if isinstance(value, int) and value >= 0 else 1


class PlanError(ValueError):
    """The rollout cannot be laid over the desired set (a missing route, rule or backend); the message
    names the environment file's field and the object."""


def _split_rule(
    route: Mapping[str, Any], spec: RolloutSpec
) -> tuple[dict[str, Any], list[Any], dict[str, Any], dict[str, Any]]:
    """A copy of ``route``, its rules, the rule ``spec.rule`` and its backendRef to the stable Service.

    Raises:
        PlanError: the rule does not exist or does not send traffic to the stable Service.
    """
    out = copy.deepcopy(dict(route))
    rules = (out.get("spec") or {}).get("rules") or []
    where = f"rollouts[app={spec.app}]: HTTPRoute {_key(route)[1]}/{spec.route}"
    if spec.rule >= len(rules):
        raise PlanError(f"{where} has {len(rules)} rule(s); rule {spec.rule} does not exist")
    rule = rules[spec.rule]
    refs = [r for r in rule.get("backendRefs") or [] if (r.get("kind") or "Service") == "Service"]
    stable = next((r for r in refs if r.get("name") == spec.stable_service), None)
    if stable is None:
        raise PlanError(f"{where}: rule {spec.rule} sends no traffic to Service {spec.stable_service}")
    return out, rules, rule, stable


def _add_header_rule(
    rules: list[Any], rule: Mapping[str, Any], canary_ref: Mapping[str, Any], spec: RolloutSpec
) -> None:
    strategy = spec.strategy.canary
    header = strategy.header_match if strategy is not None else None
    if spec.strategy.blue_green is not None:
        header = spec.strategy.blue_green.preview
    if header is None:
        return
    matches = copy.deepcopy(rule.get("matches") or [{"path": {"type": "PathPrefix", "value": "/"}}])
    for m in matches:
        m.setdefault("headers", []).append({"type": "Exact", "name": header.name, "value": header.value})
    rules.append(
        {**copy.deepcopy(dict(rule)), "matches": matches, "backendRefs": [{**canary_ref, "weight": 100}]}
    )


def weighted_route(route: Mapping[str, Any], spec: RolloutSpec, weight: int) -> dict[str, Any]:
    """``route`` with rule ``spec.rule`` splitting ``100 - weight`` / ``weight`` percent between the stable
    Service and the canary (plus the header-match rule, when set).

    Raises:
        PlanError: the rule does not exist or does not send traffic to the stable Service.
    """
    out, rules, rule, stable = _split_rule(route, spec)
    canary_ref = {**stable, "name": spec.canary_name, "weight": weight}
    rule["backendRefs"] = [
        {**r, "weight": 100 - weight} if r is stable else r
        for r in rule.get("backendRefs") or []
        if r.get("name") != spec.canary_name
    ] + [canary_ref]
    _add_header_rule(rules, rule, canary_ref, spec)
    return out


def header_route(route: Mapping[str, Any], spec: RolloutSpec) -> dict[str, Any]:
    """``route`` as it is, plus the rule sending requests with the header match to the canary Service
    (``split: replicas``: the weighted rule is left alone).

    Raises:
        PlanError: the rule does not exist or does not send traffic to the stable Service.
    """
    out, rules, rule, stable = _split_rule(route, spec)
    _add_header_rule(rules, rule, {**stable, "name": spec.canary_name}, spec)
    return out


def transform(desired: list[dict[str, Any]], spec: RolloutSpec, state: RolloutState) -> list[dict[str, Any]]:
    """The desired set with ``state`` laid over it (see the module docstring); unchanged when the rollout
    is not active or aborted-and-cleaned. Objects are copied, never modified in place.

    Raises:
        PlanError: the app's Deployment, its Service or the route is not in the desired set.
    """
    if state.phase is RolloutPhase.SUCCEEDED:
        return desired
    by_key = {(k[0], k[2]): i for i, k in enumerate(_key(o) for o in desired)}
    where = f"rollouts[app={spec.app}]"
    missing = [
        f"{kind} {name}"
        for kind, name in (
            ("Deployment", spec.app),
            ("Service", spec.stable_service),
            ("HTTPRoute", spec.route),
        )
        if (kind, name) not in by_key
    ]
    if missing:
        raise PlanError(f"{where}: not in the desired set: {', '.join(missing)}")
    out = list(desired)
    dep_i = by_key[("Deployment", spec.app)]
    namespace = _key(desired[dep_i])[1]
    stable = copy.deepcopy(state.stable)
    if namespace and not (stable.get("metadata") or {}).get("namespace"):
        stable.setdefault("metadata", {})["namespace"] = namespace
    aborted = state.phase is RolloutPhase.ABORTED
    canary_strategy = spec.strategy.canary
    shared = canary_strategy is not None and canary_strategy.split is Split.REPLICAS
    service = desired[by_key[("Service", spec.stable_service)]]
    route_i = by_key[("HTTPRoute", spec.route)]
    if shared:
        stable_n, canary_n = replica_split(_replicas(stable), 0 if aborted else state.weight)
        stable.setdefault("spec", {})["replicas"] = stable_n
        out[dep_i] = stable
        out.append(canary_deployment(desired[dep_i], replicas=canary_n, shared=True))
        out.append(canary_service(service, desired[dep_i], shared=True))
        if canary_strategy is not None and canary_strategy.header_match is not None:
            out[route_i] = header_route(desired[route_i], spec)
        return out
    out[dep_i] = stable
    out.append(canary_deployment(desired[dep_i], replicas=0 if aborted else None))
    out.append(canary_service(service, desired[dep_i]))
    out[route_i] = weighted_route(desired[route_i], spec, 0 if aborted else state.weight)
    return out
