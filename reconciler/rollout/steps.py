"""The rollout as a step function (ARCHITECTURE.md §7): from a state and new analysis samples to the
next state and what must happen now. Pure; the controller does the I/O.

A canary walks its ``steps`` (weights), each lasting at least ``interval`` seconds and ending only when
every gate (query or probe) has a ``Passed`` sample in it. Blue/green is two steps: the preview (weight
0, the preview header reaches the new version) for ``previewDuration`` seconds, then the switch (weight
100) kept for ``scaleDownDelay`` seconds before the old version goes. After each sample:

* a query that failed (more than ``failureLimit`` failed samples, or an error) aborts at once: the
  canary gets weight 0 and the revert commit is asked for (:attr:`Move.ABORT`);
* a query that is inconclusive (more than ``inconclusiveLimit``) pauses the step (``Paused``: the weight
  stays, nothing is promoted on missing evidence); a later conclusive step resumes it;
* otherwise the step's time decides: the next weight (:attr:`Move.SHIFT`) or, after the last step,
  success (:attr:`Move.PROMOTE`).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from reconciler.model.rollout import RolloutPhase, RolloutSpec, RolloutState, Sample, SampleOutcome
from reconciler.rollout.analysis import StepVerdict, decide


class Move(StrEnum):
    """What the controller must do after a step."""

    NONE = "none"
    SHIFT = "shift"
    ABORT = "abort"
    PROMOTE = "promote"


def schedule(spec: RolloutSpec) -> list[tuple[int, float]]:
    """The steps of ``spec``: (canary weight in percent, minimum seconds) each."""
    if spec.strategy.canary is not None:
        return [(w, spec.strategy.canary.interval) for w in spec.strategy.canary.steps]
    bg = spec.strategy.blue_green
    assert bg is not None
    return [(0, bg.preview_duration), (100, bg.scale_down_delay)]


def begin(
    spec: RolloutSpec,
    *,
    environment: str,
    revision: str,
    stable_revision: str,
    stable: dict[str, object],
    candidate: dict[str, object],
    now: float,
) -> RolloutState:
    """A new rollout at its first step."""
    weight, _ = schedule(spec)[0]
    return RolloutState(
        environment=environment,
        app=spec.app,
        phase=RolloutPhase.PROGRESSING,
        revision=revision,
        stable_revision=stable_revision,
        stable=dict(stable),
        candidate=dict(candidate),
        step=0,
        weight=weight,
        step_started=now,
        started_at=now,
        message=f"step 1: canary weight {weight}%",
    )


def _line(samples: Sequence[Sample]) -> str:
    latest: dict[str, Sample] = {}
    for s in samples:
        latest[s.query] = s
    return "; ".join(s.describe() for s in latest.values()) or "no queries"


def advance(
    spec: RolloutSpec, state: RolloutState, new: Sequence[Sample], now: float
) -> tuple[RolloutState, Move]:
    """The state after the samples ``new`` (taken at ``now``, UNIX seconds), and what to do."""
    if not state.active:
        return state, Move.NONE
    st = state.model_copy(deep=True)
    st.samples.extend(new)
    queries = spec.analysis.gates
    verdicts = {q.name: decide(q, st.samples) for q in queries}
    failed = [n for n, v in verdicts.items() if v is StepVerdict.FAILED]
    steps = schedule(spec)
    label = f"step {st.step + 1}/{len(steps)} at weight {st.weight}%"
    if failed:
        bad = [
            s
            for s in st.samples
            if s.query in failed and s.outcome in (SampleOutcome.FAILED, SampleOutcome.ERROR)
        ]
        st.phase, st.weight, st.finished_at = RolloutPhase.ABORTED, 0, now
        st.message = f"{label}: analysis failed: " + "; ".join(s.describe() for s in bad[-len(failed) :])
        st.history.append(st.message)
        return st, Move.ABORT
    if any(v is StepVerdict.INCONCLUSIVE for v in verdicts.values()):
        unsure = [s for s in st.samples if s.outcome is SampleOutcome.INCONCLUSIVE]
        st.phase = RolloutPhase.PAUSED
        st.message = f"{label}: paused, inconclusive: " + (unsure[-1].describe() if unsure else "")
        # a paused step starts over: it resumes when a whole interval is conclusive
        st.samples = []
        st.step_started = now
        return st, Move.NONE
    st.phase = RolloutPhase.PROGRESSING
    _, duration = steps[st.step]
    passed = {s.query for s in st.samples if s.outcome is SampleOutcome.PASSED}
    if now - st.step_started < duration or any(q.name not in passed for q in queries):
        st.message = f"{label}: {_line(st.samples)}"
        return st, Move.NONE
    st.history.append(f"{label}: passed: {_line(st.samples)}")
    if st.step + 1 >= len(steps):
        st.phase, st.finished_at = RolloutPhase.SUCCEEDED, now
        st.stable, st.stable_revision = st.candidate, st.revision  # the candidate is the stable version now
        st.message = f"succeeded after {len(steps)} steps"
        return st, Move.PROMOTE
    st.step += 1
    st.weight = steps[st.step][0]
    st.step_started = now
    st.samples = []
    st.message = f"step {st.step + 1}/{len(steps)}: canary weight {st.weight}%"
    return st, Move.SHIFT
