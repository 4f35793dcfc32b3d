"""The rollout step function running beside the passes (ARCHITECTURE.md §7): one task per active
rollout samples its PromQL gates (:mod:`reconciler.rollout.analysis`), advances the state
(:func:`reconciler.rollout.steps.advance`), stores it in the cluster (:class:`RolloutStore`) and acts:

* **shift**: the new weights are written at once (server-side apply, field manager
  ``reconciler-rollout``) after the daemon's desired copy of the route is replaced, so drift correction
  keeps the rollout's weights; a pass follows;
* **abort**: canary weight 0 and no canary replicas, written at once; then the revert commit
  (``Rollback-Of``, ``Reason`` quoting the query, its value and threshold; pushed by the daemon) and a
  ``rollout`` note; the pass at the revert prunes the canary;
* **promote**: the candidate becomes stable; a pass applies it to the app's Deployment, the route as Git
  has it, and prunes the canary objects.

Every finished step is noted in ``refs/notes/reconciler`` (outcome ``rollout``) with its measured
values. A restarted daemon resumes from the stored state.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

from reconciler.cluster.client import KubeClient
from reconciler.cluster.rollouts import FIELD_MANAGER, RolloutStore
from reconciler.cluster.targets import ClusterTargets
from reconciler.errors import KubeError
from reconciler.model import Environment, ObjectRef, ref_of
from reconciler.model.rollout import (
    AnalysisQuery,
    ProbeGate,
    RolloutPhase,
    RolloutSpec,
    RolloutState,
    Sample,
    SampleOutcome,
    Split,
)
from reconciler.probe.service import ProbeService
from reconciler.promote.auto import AutoRollback
from reconciler.rollout.analysis import Prometheus, sample
from reconciler.rollout.gates import probe_sample
from reconciler.rollout.plan import PlanError, transform
from reconciler.rollout.steps import Move, advance

log = logging.getLogger(__name__)

#: Seconds between analysis samples when neither the query nor the step says (at most the step's interval).
DEFAULT_SAMPLE_EVERY = 1.0


class RolloutHost(Protocol):
    """What the runner needs of the daemon."""

    def rollout_base(self, env: str) -> list[dict[str, Any]] | None:
        """The environment's rendered objects before the rollout was laid over (last pass)."""
        ...

    def replace_desired(self, env: str, objects: list[dict[str, Any]]) -> None:
        """Replace the daemon's desired copies of these objects (drift correction compares with them)."""
        ...

    def trigger(self, env: str, reason: str) -> Any:
        """Ask for a pass of ``env``."""
        ...


def sample_every(spec: RolloutSpec) -> float:
    """Seconds between the runner's looks: the smallest query interval, else 1 s, never above a step's
    duration. Each query is sampled when its own ``interval`` (default: the step's) has passed since its
    last sample."""
    intervals = [q.interval for q in spec.analysis.queries if q.interval]
    every = min(intervals) if intervals else DEFAULT_SAMPLE_EVERY
    steps = spec.strategy.canary.interval if spec.strategy.canary else None
    return min(every, steps) if steps else every


class RolloutRunner:
    """Runs the step function of every active rollout of the daemon's environments.

    Args:
        host: the daemon.
        client: the Kubernetes client.
        source: the repository URL (part of the stored state's name).
        auto: records notes and makes revert commits.
        prometheus: the default Prometheus URL (an environment's ``analysis.prometheus`` wins).
        clock: UNIX seconds (replaceable in tests).
        probes: probes the canary for ``analysis.probes`` gates (``None``: those samples are
            ``Inconclusive``, and the step pauses).
    """

    def __init__(
        self,
        host: RolloutHost,
        client: KubeClient,
        source: str,
        auto: AutoRollback | None,
        prometheus: str | None,
        clock: Callable[[], float] = time.time,
        probes: ProbeService | None = None,
        targets: ClusterTargets | None = None,
    ) -> None:
        self.host = host
        self.probes = probes
        self.client = client
        self.source = source
        self.store = RolloutStore(client, source)
        #: each environment's target cluster; None: every environment is on ``client``'s cluster
        self.targets = targets
        self.auto = auto
        self.prometheus = prometheus
        self.clock = clock
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        #: (UNIX seconds, env, app, move, weight) of every action, for tests and benchmarks
        self.actions: list[tuple[float, str, str, str, int]] = []

    def _store(self, env: Environment) -> RolloutStore:
        """The rollout state store in ``env``'s target cluster."""
        if self.targets is None:
            return self.store
        return RolloutStore(self.targets.client_for(env), self.source)

    def _client(self, env: Environment) -> KubeClient:
        """The client of ``env``'s target cluster."""
        return self.client if self.targets is None else self.targets.client_for(env)

    def after_pass(self, env: Environment, states: dict[str, RolloutState]) -> None:
        """Start the step task of every active rollout of ``env`` that has none running. A rollout the
        pass has just begun starts its first step now, when its weights are written, not when the pass
        began."""
        for spec in env.rollouts:
            st = states.get(spec.app)
            key = (env.name, spec.app)
            running = self.tasks.get(key)
            if st is not None and st.active and (running is None or running.done()):
                self.tasks[key] = asyncio.get_running_loop().create_task(
                    self._run(env, spec), name=f"rollout-{env.name}-{spec.app}"
                )

    async def stop(self) -> None:
        """Cancel every step task (their state is stored: a restart resumes them)."""
        for t in self.tasks.values():
            t.cancel()
        for t in self.tasks.values():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self.tasks.clear()

    async def _run(self, env: Environment, spec: RolloutSpec) -> None:
        url = spec.analysis.prometheus or self.prometheus
        prom = Prometheus(url, spec.analysis.timeout) if url else None
        every = sample_every(spec)
        first = True
        while True:
            state = await asyncio.to_thread(self._store(env).load, env.name, spec.app)
            if state is None or not state.active:
                return
            if first and state.step == 0 and not state.samples and not state.history:
                state.step_started = self.clock()  # the pass that began it has written the weights now
                await asyncio.to_thread(self._store(env).save, state)
            first = False
            suspended = getattr(self.host, "suspended_now", None)
            if suspended is not None and suspended(env.name):  # no step (no weight written) while suspended
                await asyncio.sleep(every)
                continue
            wait = state.step_started + spec.analysis.initial_delay - self.clock()
            if wait > 0:  # the step's traffic has not shown in the metrics yet
                await asyncio.sleep(min(wait, every))
                continue
            samples = await self._sample(env, spec, state, prom)
            for smp in samples:
                log.debug("rollout %s/%s: %s = %s (%s)", env.name, spec.app, smp.query, smp.value, smp.promql)
            new, move = advance(spec, state, samples, self.clock())
            if new.revision != state.revision:  # pragma: no cover - advance never changes it
                return
            latest = await asyncio.to_thread(self._store(env).load, env.name, spec.app)
            if latest is None or latest.revision != state.revision or not latest.active:
                return  # a pass ended or restarted the rollout meanwhile
            if move in (Move.SHIFT, Move.ABORT):  # traffic first: an abort takes the canary's weight at once
                await asyncio.to_thread(self._write_weights, env, spec, new)
            await asyncio.to_thread(self._store(env).save, new)
            if move is not Move.NONE:
                await self._act(env, spec, new, move)
            if not new.active:
                return
            await asyncio.sleep(every)

    async def _sample(
        self, env: Environment, spec: RolloutSpec, state: RolloutState, prom: Prometheus | None
    ) -> list[Sample]:
        last = {smp.query: smp.at for smp in state.samples}
        step = spec.strategy.canary.interval if spec.strategy.canary else sample_every(spec)
        gates = [
            g for g in spec.analysis.gates if self.clock() - last.get(g.name, 0.0) >= (g.interval or step)
        ]
        due = [g for g in gates if isinstance(g, AnalysisQuery)]
        probes = [g for g in gates if isinstance(g, ProbeGate)]
        if not gates:
            return []
        probed = await self._probe(env, spec, state, probes) if probes else []
        if not due:
            return probed
        values = {
            "environment": env.name,
            "namespace": str((state.candidate.get("metadata") or {}).get("namespace") or env.namespace or ""),
            "app": spec.app,
            "route": spec.route,
            "stable": spec.stable_service,
            "canary": spec.canary_name,
        }
        if prom is None:
            return probed + [
                Sample(
                    query=q.name,
                    promql=q.query,
                    outcome=SampleOutcome.INCONCLUSIVE,
                    message="no evidence: no Prometheus URL (analysis.prometheus or --prometheus)",
                    at=self.clock(),
                )
                for q in due
            ]
        return probed + list(await asyncio.gather(*(sample(prom, q, values) for q in due)))

    async def _probe(
        self, env: Environment, spec: RolloutSpec, state: RolloutState, gates: list[ProbeGate]
    ) -> list[Sample]:
        """Samples of the probe gates: the canary Service (and the stable one, to compare tools) as the
        last pass laid the rollout over the desired set."""
        base = self.host.rollout_base(env.name)
        laid = transform(base, spec, state) if base is not None else []
        namespace = str((state.candidate.get("metadata") or {}).get("namespace") or env.namespace or "")

        def service(name: str) -> dict[str, Any] | None:
            return next(
                (
                    o
                    for o in laid
                    if o.get("kind") == "Service" and (o.get("metadata") or {}).get("name") == name
                ),
                None,
            )

        canary, stable = service(spec.canary_name), service(spec.stable_service)
        if canary is None:
            return [
                Sample(
                    query=g.name,
                    promql="probe",
                    outcome=SampleOutcome.INCONCLUSIVE,
                    message=f"no evidence: the canary Service {spec.canary_name} is not known yet",
                    at=self.clock(),
                )
                for g in gates
            ]
        return list(
            await asyncio.gather(*(probe_sample(g, canary, stable, self.probes, namespace) for g in gates))
        )

    async def _act(self, env: Environment, spec: RolloutSpec, state: RolloutState, move: Move) -> None:
        log.info("rollout %s/%s: %s (%s)", env.name, spec.app, move.value, state.message)
        sha = state.revision.rsplit("@sha1:", 1)[-1]
        if self.auto is not None and "@sha1:" in state.revision:
            await asyncio.to_thread(self.auto.record_rollout, env, sha, f"{spec.app}: {state.message}")
        if move is Move.ABORT and self.auto is not None:
            since = state.stable_revision.rsplit("@sha1:", 1)[-1] if "@sha1:" in state.stable_revision else ""
            reason = f"rollout of {spec.app} aborted: {state.message}"
            decision = await asyncio.to_thread(self.auto.revert_rollout, env, sha, since, reason)
            if decision.revert_commits:
                state.reverted = decision.revert_commits[-1]
                await asyncio.to_thread(self._store(env).save, state)
            elif decision.error:
                log.warning("rollout %s/%s: revert failed: %s", env.name, spec.app, decision.error)
        self.host.trigger(env.name, "rollout")

    def _write_weights(self, env: Environment, spec: RolloutSpec, state: RolloutState) -> None:
        """Lay ``state`` over the last rendered objects and write the route (and, aborted, the canary's
        scale-down) at once, after replacing the daemon's desired copies."""
        base = self.host.rollout_base(env.name)
        if base is None:
            return
        try:
            laid = transform(base, spec, state)
        except PlanError as exc:
            log.warning("rollout %s/%s: %s", env.name, spec.app, exc)
            return
        by_replicas = spec.strategy.canary is not None and spec.strategy.canary.split is Split.REPLICAS
        if by_replicas:  # the share is the pods': both Deployments' replicas, the route unchanged
            wanted = {("Deployment", spec.app), ("Deployment", spec.canary_name)}
        else:
            wanted = {("HTTPRoute", spec.route)}
            if state.phase is RolloutPhase.ABORTED:
                wanted.add(("Deployment", spec.canary_name))
        changed = [o for o in laid if (o.get("kind"), (o.get("metadata") or {}).get("name")) in wanted]
        self.host.replace_desired(env.name, changed)
        for obj in changed:
            ref: ObjectRef = ref_of(obj)
            if obj.get("kind") == "Deployment":  # only the count: the pass owns the rest of the manifest
                obj = {
                    "apiVersion": obj.get("apiVersion"),
                    "kind": "Deployment",
                    "metadata": {"name": ref.name, "namespace": ref.namespace},
                    "spec": {"replicas": (obj.get("spec") or {}).get("replicas", 1)},
                }
            try:
                self._client(env).apply(obj, ref, field_manager=FIELD_MANAGER, force=True)
            except KubeError as exc:
                log.warning("rollout %s/%s: writing %s failed: %s", env.name, spec.app, ref, exc)
        self.actions.append(
            (
                self.clock(),
                env.name,
                spec.app,
                "abort" if state.phase is RolloutPhase.ABORTED else "shift",
                state.weight,
            )
        )
