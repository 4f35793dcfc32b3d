"""The daemon's side of promotions: record each applied revision's outcome, and revert a promotion whose
health gates fail (``onFailure: revert``).

:class:`AutoRollback` runs after every reconcile pass (in the pass's worker thread; it blocks while it
waits for health). For a revision an environment has not settled yet it

1. finds the promotion commits that revision brought into the environment (``Promotion-To: <env>``
   between the last revision recorded for the environment and this one; reverts never count),
2. for a promotion, records ``applied`` in a note first, so the health deadline
   (``health.timeout`` seconds) survives a restart,
3. waits for health until the deadline and records the verdict's outcome (``healthy``, ``unverified``,
   ``degraded``, ``failed`` or ``timed-out``) and whether the gate passed as a note
   on the revision and on each promotion commit, and publishes it on ``reconciler.promotion.<env>``,
4. with ``onFailure: revert`` and a failed gate, pushes one revert commit per promotion (directly to the
   branch; a protected branch gets a fallback branch) and records ``reverted``.

It is idempotent across restarts: a settled outcome in the notes ends the work for that revision, and a
promotion already undone by a revert in the log (by anyone) is never reverted again; reverts are never
reverted, so there is no loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future

from pydantic import BaseModel, Field

from reconciler.bus import Bus, BusError, promotion_subject
from reconciler.errors import ReconcilerError
from reconciler.model import (
    Environment,
    HealthState,
    HealthStatus,
    PassResult,
    UnverifiedPolicy,
    Verdict,
    gate_passes,
    verdict,
)
from reconciler.promote.history import effective_reverts, last_recorded, promotions_into
from reconciler.promote.records import (
    SETTLED,
    Outcome,
    OutcomeRecord,
    PromotionEvent,
    parse_note,
    record_outcome,
    record_outcomes,
    records_by_commit,
)
from reconciler.promote.rollback import rollback
from reconciler.source.gitops import CommitInfo, GitWriter

log = logging.getLogger("reconciler.promote")

HealthWaiter = Callable[[float], dict[str, HealthStatus]]
"""Wait at most the given seconds for every object to settle; return the last reading."""
Publisher = Callable[[str, bytes, str], None]
"""Publish ``(subject, data, msg_id)``; may raise :class:`BusError`."""


class Decision(BaseModel):
    """What :meth:`AutoRollback.after_pass` did for one pass."""

    environment: str
    revision: str = ""
    outcome: Outcome | None = None
    promotions: list[str] = Field(default_factory=list)
    verdict: Verdict | None = None
    passed: bool | None = Field(default=None, description="whether the health gate passed")
    reverted: list[str] = Field(default_factory=list, description="the promotion commits reverted")
    revert_commits: list[str] = Field(default_factory=list)
    pushed_to: str | None = None
    skipped: str = Field(default="", description="why nothing was done (empty when something was)")
    error: str = ""

    @property
    def retrigger(self) -> bool:
        """Whether the daemon should start a pass right away (a revert was pushed)."""
        return bool(self.revert_commits)


def classify(
    health: dict[str, HealthStatus], policy: UnverifiedPolicy = UnverifiedPolicy.WARN
) -> tuple[Outcome, dict[str, str], Verdict, bool]:
    """The gate's outcome from a health reading.

    Returns:
        ``(outcome, unhealthy, verdict, passed)``: the outcome named after the set's verdict (``healthy``,
        ``unverified``, ``degraded``, ``failed``, or ``timed-out`` for one still Progressing), every object
        that is not Healthy (``object → "State: reason"``), the verdict itself, and whether the gate
        passes (Healthy; Unverified unless ``policy`` is ``fail``; see :func:`reconciler.model.gate_passes`).
    """
    v = verdict(health)
    unhealthy = {
        ref: f"{h.state.value}: {h.message}".rstrip(": ")
        for ref, h in health.items()
        if h.state is not HealthState.HEALTHY
    }
    return _OUTCOME[v.state], unhealthy, v, gate_passes(v, policy)


_OUTCOME = {
    HealthState.HEALTHY: Outcome.HEALTHY,
    HealthState.UNVERIFIED: Outcome.UNVERIFIED,
    HealthState.DEGRADED: Outcome.DEGRADED,
    HealthState.FAILED: Outcome.FAILED,
    HealthState.PROGRESSING: Outcome.TIMED_OUT,
}


def bus_publisher(bus: Bus, loop: asyncio.AbstractEventLoop, *, timeout: float = 10.0) -> Publisher:
    """A :data:`Publisher` usable from worker threads: publishes on ``bus`` in the event loop ``loop``
    and waits at most ``timeout`` seconds for JetStream's acknowledgement."""

    def publish(subject: str, data: bytes, msg_id: str) -> None:
        fut = asyncio.run_coroutine_threadsafe(bus.publish(subject, data, msg_id=msg_id), loop)
        fut.result(timeout)

    return publish


class GroupRecorder:
    """Outcome records of many health gates written together (group commit): a gate that finds no write
    in progress writes its records and, until none are left, those other gates queued meanwhile, each
    batch with one fetch and one push of the notes ref (:func:`record_outcomes`); the others wait for
    theirs. A batch that fails is written again caller by caller, so one bad record fails only its own
    gate.

    Args:
        write: writes a batch (``record_outcomes`` on the daemon's writer).
    """

    def __init__(self, write: Callable[[list[tuple[str, OutcomeRecord]]], list[bool]]) -> None:
        self._write = write
        self._lock = threading.Lock()
        self._queue: list[tuple[list[tuple[str, OutcomeRecord]], Future[list[bool]]]] = []
        self._busy = False

    def record(self, items: list[tuple[str, OutcomeRecord]]) -> list[bool]:
        """Write ``items`` (with whatever else is queued) and return whether each was written.

        Raises:
            ReconcilerError: they could not be written (as :func:`record_outcomes` raises).
        """
        done: Future[list[bool]] = Future()
        with self._lock:
            self._queue.append((items, done))
            lead = not self._busy
            self._busy = True
        if lead:
            self._drain()
        return done.result()

    def _drain(self) -> None:
        while True:
            with self._lock:
                batch, self._queue = self._queue, []
                if not batch:
                    self._busy = False
                    return
            try:
                written = self._write([item for items, _ in batch for item in items])
            except Exception as exc:
                if len(batch) == 1:
                    batch[0][1].set_exception(exc)
                    continue
                for items, done in batch:  # one by one: only the caller whose record fails gets the error
                    try:
                        done.set_result(self._write(items))
                    except Exception as one:
                        done.set_exception(one)
                continue
            at = 0
            for items, done in batch:
                done.set_result(written[at : at + len(items)])
                at += len(items)


class AutoRollback:
    """Record outcomes and revert failed promotions (see the module docstring).

    Args:
        writer: the daemon's private clone of the environment repository.
        publish: publishes events on NATS (``None``: no events).
        clock: UNIX time in seconds (replaceable in tests).
        history: how many commits to read when looking for promotions and reverts.
    """

    def __init__(
        self,
        writer: GitWriter,
        publish: Publisher | None = None,
        *,
        clock: Callable[[], float] = time.time,
        history: int = 500,
    ) -> None:
        self.writer = writer
        self.publish = publish
        self.clock = clock
        self.history = history
        self._settled: set[tuple[str, str]] = set()
        # the revision each environment's last settled pass applied (to notice a rewound branch)
        self._applied: dict[str, str] = {}
        self._recorder = GroupRecorder(lambda items: record_outcomes(self.writer, items))

    def is_settled(self, env: str, sha: str) -> bool:
        """Whether the health gate of environment ``env`` has settled commit ``sha`` (40 hex digits) in
        this process: its outcome recorded (or found already recorded) and, on failure, its revert made.
        No I/O."""
        return (env, sha) in self._settled

    def record_blocked(self, env: Environment, result: PassResult) -> bool:
        """Record in Git that a guard stopped ``env``'s pass of ``result.revision`` (a ``blocked`` note
        with the reason, once per revision, and the NATS event), so the history says why a promotion
        never arrived. Returns whether a note was written; never raises for Git or NATS failures."""
        if not result.blocked or "@sha1:" not in result.revision:
            return False
        sha = result.revision.rsplit("@sha1:", 1)[1]
        if (env.name, f"blocked:{sha}") in self._settled:
            return False
        try:
            with self.writer.locked():  # the revision may be newer than this clone
                self.writer.sync()
        except ReconcilerError as exc:
            log.warning("blocked record for %s at %s: %s", env.name, sha[:7], exc)
            return False
        record = OutcomeRecord(
            environment=env.name,
            outcome=Outcome.BLOCKED,
            revision=sha,
            at=self.clock(),
            message=result.error[:1000],
        )
        try:
            written = record_outcome(self.writer, sha, record)
        except ReconcilerError as exc:
            log.warning("blocked record for %s at %s: %s", env.name, sha[:7], exc)
            return False
        self._settled.add((env.name, f"blocked:{sha}"))
        if written:
            self._emit(
                PromotionEvent(
                    environment=env.name,
                    kind="outcome",
                    outcome=Outcome.BLOCKED,
                    revision=sha,
                    message=record.message,
                )
            )
        return written

    def after_pass(self, env: Environment, result: PassResult, wait_health: HealthWaiter) -> Decision:
        """Settle ``result``'s revision for ``env`` (once): wait for health within the deadline, record
        the outcome and, with ``onFailure: revert``, revert the failed promotions.

        Args:
            env: the environment as the pass read it.
            result: the finished pass.
            wait_health: waits for the pass's objects (seconds → last reading).

        Returns:
            what was done; never raises for Git or NATS failures (they are in ``error`` and the work is
            repeated after the next pass).
        """
        decision = Decision(environment=env.name, revision=result.revision)
        if not result.ok or "@sha1:" not in result.revision:
            decision.skipped = "the pass failed" if not result.ok else "no revision"
            return decision
        sha = result.revision.rsplit("@sha1:", 1)[1]
        decision.revision = sha
        previous = self._applied.get(env.name)
        if (env.name, sha) in self._settled:
            if previous is not None and previous != sha:  # back to a settled revision: rewound?
                try:
                    with self.writer.locked():
                        self.writer.sync()
                    self._rewound(env, sha, previous)
                except ReconcilerError as exc:
                    log.warning("rewind check for %s at %s: %s", env.name, sha[:7], exc)
                    decision.error = str(exc)
                    return decision
                self._applied[env.name] = sha
            decision.skipped = "already settled"
            return decision
        try:
            return self._settle(env, result, sha, wait_health, decision, previous)
        except ReconcilerError as exc:
            log.warning("promotion record for %s at %s: %s", env.name, sha[:7], exc)
            decision.error = str(exc)
            return decision

    # -- steps ------------------------------------------------------------------------------------

    def _settle(
        self,
        env: Environment,
        result: PassResult,
        sha: str,
        wait_health: HealthWaiter,
        decision: Decision,
        previous: str | None,
    ) -> Decision:
        writer = self.writer
        # Any sync that started after the pass did has its revision; the notes it may miss (another
        # writer's, since) are fetched again before a record is written (record_outcomes). So gates
        # settling together share one sync.
        pass_began = time.monotonic() - max(0.0, time.time() - result.started_at)
        with writer.locked():
            writer.sync(not_before=pass_began)
            head_log = writer.log(rev=["HEAD", sha], max_count=self.history)
            notes = writer.notes()
        self._rewound(env, sha, previous if previous is not None else latest_applied(notes, env.name))
        self._applied[env.name] = sha
        own = [r for r in parse_note(notes.get(sha, "")) if r.environment == env.name and r.revision == sha]
        settled = next((r for r in reversed(own) if r.outcome in SETTLED), None)
        if settled is not None:
            promotions = self._promotions(env, sha, head_log, notes)
            handled = any(r.outcome in (Outcome.REVERTED, Outcome.REVERT_FAILED) for r in own)
            if settled.gate_failed and env.on_failure == "revert" and promotions and not handled:
                # recorded as failed, but the revert was not made (a crash or a failed push): make it now
                decision.outcome = settled.outcome
                decision.promotions = [c.sha for c in promotions]
                self._revert(env, sha, promotions, settled, decision)
                if not decision.error:
                    self._settled.add((env.name, sha))
                return decision
            self._settled.add((env.name, sha))
            decision.skipped = "already settled"
            return decision
        promotions = self._promotions(env, sha, head_log, notes)
        decision.promotions = [c.sha for c in promotions]
        applied = next((r for r in own if r.outcome is Outcome.APPLIED), None)
        if applied is None and promotions:
            applied = OutcomeRecord(
                environment=env.name,
                outcome=Outcome.APPLIED,
                revision=sha,
                at=self.clock(),
                promotions=decision.promotions,
                remote_bases=result.remote_bases,
            )
            self._record(sha, applied, promotions)
        started = applied.at if applied else self.clock()
        policy = env.health.unverified
        health = result.health
        if not health or not verdict(health).healthy:  # the waiter returns early once nothing can change
            remaining = max(0.0, started + env.health.timeout - self.clock())
            health = wait_health(remaining)
        outcome, unhealthy, v, passed = classify(health, policy)
        decision.outcome = outcome
        decision.verdict = v
        decision.passed = passed
        record = OutcomeRecord(
            environment=env.name,
            outcome=outcome,
            revision=sha,
            at=self.clock(),
            promotions=decision.promotions,
            unhealthy=dict(list(unhealthy.items())[:20]),
            message=_summary(outcome, v, passed, env.health.timeout, unhealthy),
            verdict=v.state.value,
            passed=passed,
            unverified=v.unverified,
            missing=v.missing,
            remote_bases=result.remote_bases,
        )
        if not passed:
            log.warning(
                "%s at %s: health gate failed (%s): %s", env.name, sha[:7], outcome.value, record.message
            )
        elif outcome is Outcome.UNVERIFIED and policy is UnverifiedPolicy.WARN:
            log.warning(
                "%s at %s: health gate passed on Unverified (health.unverified: warn): %s",
                env.name,
                sha[:7],
                v.message,
            )
        self._record(sha, record, promotions)
        self._emit(
            PromotionEvent(
                environment=env.name,
                kind="outcome",
                outcome=outcome,
                revision=sha,
                promotions=decision.promotions,
                message=record.message,
                verdict=v.state.value,
                passed=passed,
            )
        )
        if not passed and env.on_failure == "revert" and promotions:
            self._revert(env, sha, promotions, record, decision)
        if not decision.error:
            self._settled.add((env.name, sha))
        return decision

    def _rewound(self, env: Environment, sha: str, previous: str | None) -> None:
        """Record that the branch was rewound when ``previous`` (the revision ``env`` applied before) is not
        in the history of ``sha`` (the one just applied): a ``rewound`` note on ``sha`` naming it, a
        warning and the event. Nothing else changes: the daemon applies what the branch says, the
        rewound-away commit's own records stay in the notes, and ``sha`` keeps its earlier health verdict
        when it had one (it is not gated again). A commit missing from the clone counts as not in the
        history. Call on a synced clone.

        Raises:
            ReconcilerError: the notes could not be fetched or pushed.
        """
        if previous is None or previous == sha or self.writer.is_ancestor(previous, sha):
            return
        message = (
            f"{self.writer.branch} was rewound: {previous[:12]}, applied before, is not in the history of "
            f"{sha[:12]} (a force-push); {sha[:12]} applied"
        )
        log.warning("%s: %s", env.name, message)
        record = OutcomeRecord(
            environment=env.name,
            outcome=Outcome.REWOUND,
            revision=sha,
            at=self.clock(),
            message=message,
            rewound_from=previous,
        )
        if record_outcome(self.writer, sha, record):
            self._emit(
                PromotionEvent(
                    environment=env.name,
                    kind="outcome",
                    outcome=Outcome.REWOUND,
                    revision=sha,
                    message=message,
                )
            )

    def _promotions(
        self, env: Environment, sha: str, head_log: list[CommitInfo], notes: dict[str, str]
    ) -> list[CommitInfo]:
        """Promotions into ``env`` that revision ``sha`` brought, not yet undone."""
        writer = self.writer
        upto = writer.log(rev=sha, max_count=self.history)
        previous = last_recorded([c for c in upto if c.sha != sha], notes, env.name)
        if previous is not None and writer.is_ancestor(previous, sha):
            brought = writer.log(rev=f"{previous}..{sha}", max_count=self.history)
        else:
            info = upto[0] if upto else None
            brought = (
                writer.log(rev=f"{sha}^..{sha}", max_count=self.history)
                if info and info.parents
                else upto[:1]
            )
        undone = effective_reverts(head_log)
        return [c for c in promotions_into(brought, env.name) if c.sha not in undone]

    def _record(self, sha: str, record: OutcomeRecord, promotions: list[CommitInfo]) -> None:
        self._recorder.record(
            [(target, record) for target in [sha, *(c.sha for c in promotions if c.sha != sha)]]
        )

    def _emit(self, event: PromotionEvent) -> None:
        if self.publish is None:
            return
        try:
            self.publish(promotion_subject(event.environment), event.model_dump_json().encode(), event.msg_id)
        except (BusError, TimeoutError, OSError) as exc:
            log.warning("could not publish the %s event of %s: %s", event.kind, event.environment, exc)
        except Exception as exc:  # a publisher's own failure must not stop the record
            log.warning("could not publish the %s event of %s: %r", event.kind, event.environment, exc)

    def revert_rollout(self, env: Environment, sha: str, since: str, reason: str) -> Decision:
        """Revert what revision ``sha`` brought into ``env`` after its rollout was aborted: the
        promotions it brought (as after a failed health gate), or, when it brought none, the commits
        since ``since`` (the stable revision's commit) that changed ``env``'s overlay. ``reason`` (the
        failed query, its value and threshold) goes into the ``Reason:`` trailer and the outcome note.
        Pushed directly (``Rollback-By: reconciler``). Never raises: failures are in ``error``."""
        decision = Decision(environment=env.name, revision=sha)
        writer = self.writer
        try:
            with writer.locked():
                writer.sync()
                head_log = writer.log(rev=["HEAD", sha], max_count=self.history)
                notes = writer.notes()
                promotions = self._promotions(env, sha, head_log, notes)
                if not promotions and since and writer.is_ancestor(since, sha):
                    undone = effective_reverts(head_log)
                    # a commit reverted since and its revert cancel out: neither is reverted again (the
                    # revert's revert would bring back an earlier aborted version)
                    reverts = {c.sha for c in undone.values()}
                    changed = writer.log(rev=f"{since}..{sha}", paths=[env.overlay], max_count=self.history)
                    promotions = [
                        c for c in changed if not c.is_merge and c.sha not in undone and c.sha not in reverts
                    ]
        except ReconcilerError as exc:
            decision.error = str(exc)
            return decision
        decision.promotions = [c.sha for c in promotions]
        if not promotions:
            decision.skipped = "nothing to revert: no commit of this revision changed the environment"
            return decision
        record = OutcomeRecord(environment=env.name, outcome=Outcome.DEGRADED, revision=sha, message=reason)
        self._revert(env, sha, promotions, record, decision, reason=reason)
        return decision

    def record_rollout(self, env: Environment, sha: str, message: str) -> None:
        """Note one rollout step (``rollout`` outcome, its measured values in the message) on ``sha``;
        never raises."""
        try:
            with self.writer.locked():
                self.writer.sync()
                record_outcome(
                    self.writer,
                    sha,
                    OutcomeRecord(
                        environment=env.name, outcome=Outcome.ROLLOUT, revision=sha, message=message[:1000]
                    ),
                )
        except ReconcilerError as exc:
            log.warning("rollout record for %s at %s: %s", env.name, sha[:7], exc)

    def _revert(
        self,
        env: Environment,
        sha: str,
        promotions: list[CommitInfo],
        failed: OutcomeRecord,
        decision: Decision,
        *,
        reason: str = "",
    ) -> None:
        if not reason:
            reason = f"health gate {failed.outcome.value} after applying {sha[:7]}"
            if failed.unhealthy:
                first, why = next(iter(failed.unhealthy.items()))
                reason += f" ({first}: {why})"
        writer = self.writer
        try:
            with writer.locked():
                writer.sync()
                done = rollback(
                    writer,
                    env,
                    commits=[c.sha for c in promotions],
                    reason=reason,
                    mode="push",
                    automatic=True,
                )
        except ReconcilerError as exc:
            decision.error = str(exc)
            if exc.retryable:
                return  # Git unreachable or the push kept failing: tried again after the next pass
            rec = OutcomeRecord(
                environment=env.name,
                outcome=Outcome.REVERT_FAILED,
                revision=sha,
                at=self.clock(),
                promotions=decision.promotions,
                message=str(exc),
            )
            self._record(sha, rec, promotions)
            self._emit(
                PromotionEvent(
                    environment=env.name,
                    kind="rollback-failed",
                    revision=sha,
                    promotions=decision.promotions,
                    message=str(exc),
                )
            )
            return
        decision.reverted = done.reverted
        decision.revert_commits = done.commits
        decision.pushed_to = done.pushed_to
        if not done.commits:
            return
        rec = OutcomeRecord(
            environment=env.name,
            outcome=Outcome.REVERTED,
            revision=sha,
            at=self.clock(),
            promotions=decision.promotions,
            revert=done.commits,
            pushed_to=done.pushed_to,
            message=reason,
        )
        self._record(sha, rec, promotions)
        self._emit(
            PromotionEvent(
                environment=env.name,
                kind="rollback",
                outcome=Outcome.REVERTED,
                revision=sha,
                promotions=decision.promotions,
                revert=done.commits,
                pushed_to=done.pushed_to,
                fallback=done.fallback,
                message=reason,
            )
        )


def latest_applied(notes: dict[str, str], env: str) -> str | None:
    """The revision of ``env``'s newest record in the notes (by time; ``blocked`` records name revisions
    that were never applied and do not count): the last one the environment applied, also when it is no
    longer on the branch."""
    latest: OutcomeRecord | None = None
    for records in records_by_commit(notes).values():
        for rec in records:
            mine = rec.environment == env and rec.outcome is not Outcome.BLOCKED
            if mine and (latest is None or rec.at > latest.at):
                latest = rec
    return latest.revision if latest is not None else None


def _summary(outcome: Outcome, v: Verdict, passed: bool, timeout: float, unhealthy: dict[str, str]) -> str:
    """One line for the record: the verdict, whether the gate passed, and the first objects at fault."""
    if outcome is Outcome.HEALTHY:
        return "every object healthy"
    items = [(k, why) for k, why in unhealthy.items() if not why.startswith(HealthState.UNVERIFIED.value)]
    head = "; ".join(f"{k} {why}" for k, why in items[:3]) + (
        f" (+{len(items) - 3} more)" if len(items) > 3 else ""
    )
    gate = "gate passed" if passed else "gate failed"
    if outcome is Outcome.UNVERIFIED:
        return f"{gate}, not verified: {v.message}"
    if outcome is Outcome.TIMED_OUT:
        return f"{gate}, not healthy within {timeout:g} s: {head} ({v.message})"
    return f"{gate}, {outcome.value}: {head} ({v.message})"
