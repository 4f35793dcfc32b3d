"""The pass's side of progressive delivery: decide, from the stored rollout state and the rendered desired
set, whether an app's new version starts (or continues) a rollout, and lay the rollout over the desired
set (:func:`reconciler.rollout.plan.transform`). The step function runs beside the pass
(:mod:`reconciler.runtime.rollouts`).

Per app with a ``rollouts:`` entry:

* no state yet: the rendered version is applied as it is and becomes the stable one (the first version an
  environment applies with a rollout configured is not canaried: there is nothing to compare it with);
* a pod template that differs from the stable one starts a rollout (Progressing, first step);
* while a rollout runs, the same candidate continues it; Git back at the stable version (someone
  reverted) ends it; a third version restarts it from the stable one;
* an aborted rollout keeps the canary at weight 0 and no replicas until Git no longer asks for the
  candidate (the revert commit), then the canary objects leave the desired set and are pruned;
* a succeeded rollout makes the candidate stable: the pass applies it to the app's Deployment and the
  route as Git has it.
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any

from reconciler.cluster.client import KubeClient
from reconciler.cluster.rollouts import RolloutStore
from reconciler.model import Environment
from reconciler.model.rollout import RolloutPhase, RolloutSpec, RolloutState
from reconciler.rollout.analysis import validate_queries
from reconciler.rollout.plan import PlanError, template_digest, transform
from reconciler.rollout.steps import begin


@dataclass
class LaidOver:
    """What :func:`lay_over` did: the desired set to apply, the states now stored, and the untransformed
    objects (the step function recomputes the route from them)."""

    objects: list[dict[str, Any]]
    states: dict[str, RolloutState] = field(default_factory=dict)
    base: list[dict[str, Any]] = field(default_factory=list)


def _find(objects: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    return next(
        (o for o in objects if o.get("kind") == kind and (o.get("metadata") or {}).get("name") == name), None
    )


def next_state(
    spec: RolloutSpec,
    env: Environment,
    state: RolloutState | None,
    desired: dict[str, Any],
    revision: str,
    now: float,
) -> tuple[RolloutState, bool]:
    """The state this pass stores for ``spec``'s app (and whether it changed), given the stored ``state``
    and the rendered Deployment ``desired`` (see the module docstring)."""
    if state is None:
        first = RolloutState(
            environment=env.name,
            app=spec.app,
            phase=RolloutPhase.SUCCEEDED,
            revision=revision,
            stable_revision=revision,
            stable=copy.deepcopy(desired),
            candidate=copy.deepcopy(desired),
            started_at=now,
            finished_at=now,
            message="first version: applied as it is (nothing to compare it with)",
        )
        return first, True
    digest = template_digest(desired)
    if state.active:
        if digest == template_digest(state.candidate):
            return state, False
        if digest == template_digest(state.stable):
            ended = state.model_copy(
                update={
                    "phase": RolloutPhase.ABORTED,
                    "weight": 0,
                    "finished_at": now,
                    "message": f"Git is back at the stable version ({revision}): rollout ended",
                }
            )
            return ended, True
    elif state.phase is RolloutPhase.ABORTED and digest == template_digest(state.candidate):
        return state, False  # waiting for the revert commit; the canary stays at weight 0
    elif digest == template_digest(state.stable):
        if desired == state.stable:
            return state, False
        # the stable version with other changes (replicas …): applied at once
        return state.model_copy(update={"stable": copy.deepcopy(desired), "stable_revision": revision}), True
    started = begin(
        spec,
        environment=env.name,
        revision=revision,
        stable_revision=state.stable_revision,
        stable=state.stable,
        candidate=copy.deepcopy(desired),
        now=now,
    )
    return started, True


def laid_over(state: RolloutState, desired: dict[str, Any]) -> bool:
    """Whether ``state`` transforms the desired set: while active, and while aborted with Git still asking
    for the candidate."""
    if state.active:
        return True
    return state.phase is RolloutPhase.ABORTED and template_digest(desired) == template_digest(
        state.candidate
    )


def lay_over(
    client: KubeClient,
    source: str,
    env: Environment,
    objects: list[dict[str, Any]],
    revision: str,
    *,
    dry_run: bool = False,
    now: float | None = None,
    prometheus: str | None = None,
) -> LaidOver:
    """Apply the stored rollout states (updated for this revision) to the rendered ``objects``. A rollout
    about to begin first has its PromQL checked by ``prometheus`` (the default URL; an entry's
    ``analysis.prometheus`` wins): an invalid query stops the pass before anything is written.

    Raises:
        PlanError: an app's Deployment, Service or route is not rendered, or a query of a rollout about
            to begin is not valid PromQL (names ``envs/<env>.yaml`` and the query).
    """
    out = LaidOver(objects=objects, base=copy.deepcopy(objects))
    if not env.rollouts:
        return out
    store = RolloutStore(client, source)
    at = time.time() if now is None else now
    for spec in env.rollouts:
        desired = _find(objects, "Deployment", spec.app)
        if desired is None:
            where = f"envs/{env.name}.yaml: rollouts[app={spec.app}]"
            other = next(
                (k for k in ("StatefulSet", "DaemonSet") if _find(objects, k, spec.app) is not None), None
            )
            if other is not None:
                raise PlanError(
                    f"{where}: {spec.app} is a {other}; rollouts canary Deployments only (a {other} rolls "
                    "out with its own updateStrategy, e.g. a StatefulSet's rollingUpdate.partition): remove "
                    "the entry or run the app as a Deployment"
                )
            raise PlanError(f"{where}: no Deployment {spec.app} is rendered")
        state, changed = next_state(spec, env, store.load(env.name, spec.app), desired, revision, at)
        if changed and state.active and state.started_at == at:
            namespace = str((desired.get("metadata") or {}).get("namespace") or env.namespace or "")
            values = {
                "environment": env.name,
                "namespace": namespace,
                "app": spec.app,
                "route": spec.route,
                "stable": spec.stable_service,
                "canary": spec.canary_name,
            }
            where = f"envs/{env.name}.yaml: rollouts[app={spec.app}]"
            refused = validate_queries(spec, values, prometheus, where=where)
            if refused:
                raise PlanError(refused)
        if changed and not dry_run:
            store.save(state)
        out.states[spec.app] = state
        if laid_over(state, desired):
            out.objects = transform(out.objects, spec, state)
    return out


__all__ = ["LaidOver", "PlanError", "laid_over", "lay_over", "next_state"]
