"""AutoRollback's decisions on real Git remotes, with health readings given by small in-memory stand-ins
(the cluster side is in test_promote_cluster.py): outcome notes, one revert, idempotency across restarts,
never a revert of a revert, the deadline surviving a restart."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from _promote_support import DIGEST_A, DIGEST_B, Remote, git, kustomization, make_remote, three_envs

from reconciler.errors import SourceError
from reconciler.model import Environment, HealthState, HealthStatus, PassResult, UnverifiedPolicy
from reconciler.promote.auto import AutoRollback, classify
from reconciler.promote.records import Outcome, parse_note
from reconciler.reconcile import load_environments
from reconciler.source.gitops import GitWriter

DEP = "Deployment/agents-staging/clock-mcp"
HEALTHY = {DEP: HealthStatus(state=HealthState.HEALTHY)}
PROGRESSING = {DEP: HealthStatus(state=HealthState.PROGRESSING, message="0 of 1 updated")}
DEGRADED = {DEP: HealthStatus(state=HealthState.DEGRADED, message="ReplicaFailure: FailedCreate")}


class Events:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, object], str]] = []

    def __call__(self, subject: str, data: bytes, msg_id: str) -> None:
        self.sent.append((subject, json.loads(data), msg_id))


def _result(sha: str, health: dict[str, HealthStatus] | None = None, ok: bool = True) -> PassResult:
    return PassResult(
        environment="staging",
        revision=f"main@sha1:{sha}",
        ok=ok,
        health=health or dict(PROGRESSING),
        started_at=time.time(),
        duration=0.1,
    )


def _env(remote: Remote, tmp_path: Path) -> Environment:
    w = GitWriter(str(remote.bare), "main", tmp_path / "envs-reader")
    w.sync()
    return load_environments(w.workdir)["staging"]


def _promotion(remote: Remote) -> tuple[str, str]:
    """A promotion commit on a branch, merged by a person; returns (promotion, merge)."""
    remote.pull()
    git(remote.work, "checkout", "-q", "-b", "promote/staging/abc1234")
    remote.write("overlays/staging/kustomization.yaml", kustomization("0.2.0", DIGEST_B))
    git(remote.work, "add", "-A")
    git(
        remote.work,
        "commit",
        "-q",
        "-m",
        "promote(staging): clock-mcp 0.2.0 from dev\n\nPromotion-From: dev\nPromotion-To: staging\n"
        f"Image: ghcr.io/acme/clock-mcp=ghcr.io/acme/clock-mcp:0.2.0@{DIGEST_B}",
    )
    promotion = git(remote.work, "rev-parse", "HEAD")
    git(remote.work, "push", "-q", "origin", "HEAD:refs/heads/promote/staging/abc1234")
    git(remote.work, "checkout", "-q", "main")
    return promotion, remote.merge("promote/staging/abc1234")


def _notes(remote: Remote, sha: str) -> list[tuple[str, str]]:
    text = git(remote.bare, "notes", "--ref=reconciler", "show", sha, check=False)
    return [(r.environment, r.outcome.value) for r in parse_note(text)]


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return make_remote(tmp_path / "repo", three_envs(on_failure="revert", timeout=30))


def test_classify() -> None:
    outcome, unhealthy, v, passed = classify(HEALTHY)
    assert (outcome, unhealthy, v.state, passed) == (Outcome.HEALTHY, {}, HealthState.HEALTHY, True)
    outcome, _, _, passed = classify(PROGRESSING)
    assert (outcome, passed) == (Outcome.TIMED_OUT, False)
    assert classify(PROGRESSING)[1] == {DEP: "Progressing: 0 of 1 updated"}
    gone = {**PROGRESSING, "Service/a/b": HealthStatus(state=HealthState.FAILED, message="not found")}
    assert classify(gone)[0] is Outcome.FAILED
    broken = {**HEALTHY, "Service/a/b": HealthStatus(state=HealthState.DEGRADED)}
    assert classify(broken)[:1] == (Outcome.DEGRADED,)


@pytest.mark.parametrize(
    ("policy", "passed"),
    [(UnverifiedPolicy.FAIL, False), (UnverifiedPolicy.WARN, True), (UnverifiedPolicy.PASS, True)],
)
def test_an_unjudged_object_is_never_healthy(policy: UnverifiedPolicy, passed: bool) -> None:
    agent = HealthStatus(state=HealthState.UNVERIFIED, message="status never written", judge="kagent")
    outcome, unhealthy, v, gate = classify({**HEALTHY, "Agent/x/y": agent}, policy)
    assert outcome is Outcome.UNVERIFIED
    assert v.state is HealthState.UNVERIFIED and v.missing == ["kagent"] and v.unverified == 1
    assert gate is passed
    assert unhealthy == {"Agent/x/y": "Unverified: status never written"}


def test_healthy_promotion_is_recorded_once(remote: Remote, tmp_path: Path) -> None:
    env = _env(remote, tmp_path)
    promotion, merge = _promotion(remote)
    events = Events()
    auto = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "d1", backoff=0.01), events)
    waits: list[float] = []

    def wait(timeout: float) -> dict[str, HealthStatus]:
        waits.append(timeout)
        return HEALTHY

    d = auto.after_pass(env, _result(merge), wait)
    assert d.outcome is Outcome.HEALTHY and d.promotions == [promotion] and not d.revert_commits
    assert 29 < waits[0] <= 30  # the environment's deadline
    assert _notes(remote, merge) == [("staging", "applied"), ("staging", "healthy")]
    assert _notes(remote, promotion) == [("staging", "applied"), ("staging", "healthy")]
    assert [(s, e["kind"], e["outcome"]) for s, e, _ in events.sent] == [
        ("reconciler.promotion.staging", "outcome", "healthy")
    ]
    count = remote.count()
    # the next passes on the same revision (same process, then after a restart) do nothing
    assert auto.after_pass(env, _result(merge), wait).skipped == "already settled"
    again = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "d2", backoff=0.01), events)
    assert again.after_pass(env, _result(merge), wait).skipped == "already settled"
    assert len(waits) == 1 and len(events.sent) == 1 and remote.count() == count


def test_failed_gate_reverts_once_and_never_a_revert(remote: Remote, tmp_path: Path) -> None:
    env = _env(remote, tmp_path)
    promotion, merge = _promotion(remote)
    events = Events()
    auto = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "d1", backoff=0.01), events)
    d = auto.after_pass(env, _result(merge, DEGRADED), lambda t: DEGRADED)
    assert d.outcome is Outcome.DEGRADED and d.reverted == [promotion] and d.retrigger
    assert d.pushed_to == "main" and remote.head() == d.revert_commits[-1]
    revert = git(remote.bare, "log", "-1", "--format=%B", "main")
    assert f"This reverts commit {promotion}." in revert
    assert f"Rollback-Of: {promotion}" in revert and "Rollback-By: reconciler" in revert
    assert (
        f"Reason: health gate degraded after applying {merge[:7]} ({DEP}: Degraded: ReplicaFailure" in revert
    )
    assert (
        remote.file_at("main", "overlays/staging/kustomization.yaml")
        == kustomization("0.1.0", DIGEST_A).rstrip()
    )
    assert _notes(remote, merge) == [("staging", "applied"), ("staging", "degraded"), ("staging", "reverted")]
    assert [e["kind"] for _, e, _ in events.sent] == ["outcome", "rollback"]
    count = remote.count()

    # a restarted daemon still at the merge commit: no second revert
    restarted = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "d2", backoff=0.01))
    assert (
        restarted.after_pass(env, _result(merge, DEGRADED), lambda t: DEGRADED).skipped == "already settled"
    )
    # the pass on the revert commit: even if unhealthy, a revert is never reverted
    d2 = restarted.after_pass(env, _result(remote.head(), DEGRADED), lambda t: DEGRADED)
    assert d2.outcome is Outcome.DEGRADED and d2.promotions == [] and not d2.revert_commits
    assert remote.count() == count


UNJUDGED = {
    **HEALTHY,
    "Agent/agents-staging/research": HealthStatus(
        state=HealthState.UNVERIFIED,
        message="status never written after 5m0s: is kagent running?",
        judge="kagent",
    ),
}


@pytest.mark.parametrize("policy", list(UnverifiedPolicy))
def test_an_unverified_gate_is_recorded_unverified_and_fails_only_with_fail(
    policy: UnverifiedPolicy, remote: Remote, tmp_path: Path
) -> None:
    """An Agent no controller judged: the outcome is ``unverified`` whatever the policy (never healthy);
    ``fail`` fails the gate and ``onFailure: revert`` reverts the promotion; ``warn`` and ``pass`` keep it,
    and the revision counts as passed for the next promotion out of this environment."""
    from reconciler.promote.history import last_healthy

    env = _env(remote, tmp_path)
    env = env.model_copy(update={"health": env.health.model_copy(update={"unverified": policy})})
    promotion, merge = _promotion(remote)
    events = Events()
    auto = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "d1", backoff=0.01), events)
    d = auto.after_pass(env, _result(merge, UNJUDGED), lambda t: UNJUDGED)
    assert d.outcome is Outcome.UNVERIFIED and d.verdict is not None and d.verdict.missing == ["kagent"]
    failed = policy is UnverifiedPolicy.FAIL
    assert d.passed is not failed
    assert bool(d.revert_commits) is failed and (d.reverted == [promotion]) is failed
    notes = _notes(remote, merge)
    assert ("staging", "unverified") in notes and ("staging", "healthy") not in notes
    record = next(
        r
        for r in parse_note(git(remote.bare, "notes", "--ref=reconciler", "show", merge))
        if r.outcome is Outcome.UNVERIFIED
    )
    assert (record.verdict, record.passed, record.unverified, record.missing) == (
        "Unverified",
        not failed,
        1,
        ["kagent"],
    )
    assert [e["outcome"] for _, e, _ in events.sent][:1] == ["unverified"]
    writer = GitWriter(str(remote.bare), "main", tmp_path / "d3", backoff=0.01)
    writer.sync()
    passed_at = last_healthy(writer.log(max_count=50), writer.notes(), "staging")
    assert (passed_at == merge) is not failed
    if failed:
        revert = git(remote.bare, "log", "-1", "--format=%B", "main")
        assert "Reason: health gate unverified" in revert


def test_restart_between_record_and_revert_makes_exactly_one_revert(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env = _env(remote, tmp_path)
    promotion, merge = _promotion(remote)
    count = remote.count()
    first = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "d1", backoff=0.01))

    def push_fails(*args: object, **kwargs: object) -> object:
        raise SourceError("remote hung up")

    monkeypatch.setattr(first.writer, "push", push_fails)
    d = first.after_pass(env, _result(merge, DEGRADED), lambda t: DEGRADED)
    assert d.outcome is Outcome.DEGRADED and "remote hung up" in d.error and not d.revert_commits
    assert remote.count() == count and _notes(remote, merge)[-1] == ("staging", "degraded")
    monkeypatch.undo()

    second = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "d2", backoff=0.01))
    d = second.after_pass(env, _result(merge, DEGRADED), lambda t: pytest.fail("no second wait"))
    assert d.reverted == [promotion] and len(d.revert_commits) == 1
    assert remote.count() == count + 1
    third = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "d3", backoff=0.01))
    assert third.after_pass(env, _result(merge, DEGRADED), lambda t: DEGRADED).skipped == "already settled"
    assert remote.count() == count + 1


def test_a_revert_already_in_the_log_is_not_repeated(remote: Remote, tmp_path: Path) -> None:
    env = _env(remote, tmp_path)
    promotion, merge = _promotion(remote)
    # a person (or a daemon that crashed right after its push) already reverted the promotion
    remote.pull()
    git(remote.work, "revert", "--no-edit", promotion)
    git(remote.work, "push", "-q", "origin", "HEAD:main")
    count = remote.count()
    auto = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "d", backoff=0.01))
    d = auto.after_pass(env, _result(merge, DEGRADED), lambda t: DEGRADED)
    assert d.outcome is Outcome.DEGRADED and d.promotions == [] and not d.revert_commits
    assert remote.count() == count


def test_deadline_survives_a_restart(remote: Remote, tmp_path: Path) -> None:
    env = _env(remote, tmp_path)
    _, merge = _promotion(remote)
    now = [1_000_000.0]

    class Crash(Exception):
        pass

    def crash(timeout: float) -> dict[str, HealthStatus]:
        raise Crash

    first = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "d1"), clock=lambda: now[0])
    with pytest.raises(Crash):
        first.after_pass(env, _result(merge), crash)
    assert _notes(remote, merge) == [("staging", "applied")]
    now[0] += 20  # restarted 20 s later: 10 s of the 30 s deadline remain
    waits: list[float] = []

    def still_progressing(timeout: float) -> dict[str, HealthStatus]:
        waits.append(timeout)
        return PROGRESSING

    second = AutoRollback(
        GitWriter(str(remote.bare), "main", tmp_path / "d2", backoff=0.01), clock=lambda: now[0]
    )
    d = second.after_pass(env, _result(merge), still_progressing)
    assert waits == [10.0]
    assert d.outcome is Outcome.TIMED_OUT and len(d.revert_commits) == 1


def test_no_revert_without_on_failure_and_failed_passes_are_skipped(tmp_path: Path) -> None:
    remote = make_remote(tmp_path / "repo", three_envs(on_failure="none"))
    env = _env(remote, tmp_path)
    _, merge = _promotion(remote)
    count = remote.count()
    auto = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "d", backoff=0.01))
    assert auto.after_pass(env, _result(merge, ok=False), lambda t: DEGRADED).skipped == "the pass failed"
    d = auto.after_pass(env, _result(merge, DEGRADED), lambda t: DEGRADED)
    assert d.outcome is Outcome.DEGRADED and not d.revert_commits and remote.count() == count
    assert _notes(remote, merge)[-1] == ("staging", "degraded")


def test_a_blocked_revision_is_recorded_blocked_once_and_is_never_the_last_applied(
    remote: Remote, tmp_path: Path
) -> None:
    """A pass a guard stopped leaves a ``blocked`` note with the reason on the revision (once), which the
    history shows; the promotions of that revision still count when a later revision is applied."""
    from reconciler.promote.history import last_recorded

    env = _env(remote, tmp_path)
    promotion, merge = _promotion(remote)
    events = Events()
    auto = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "d1", backoff=0.01), events)
    blocked = _result(merge, ok=False).model_copy(update={"blocked": True, "error": "prune blocked: 3 of 4"})
    assert auto.after_pass(env, blocked, lambda t: HEALTHY).skipped == "the pass failed"
    assert auto.record_blocked(env, blocked)
    assert not auto.record_blocked(env, blocked)  # once
    again = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "d2", backoff=0.01), events)
    assert not again.record_blocked(env, blocked)  # once, across restarts too
    assert _notes(remote, merge) == [("staging", "blocked")]
    assert [(e["outcome"], e["message"]) for _, e, _ in events.sent] == [("blocked", "prune blocked: 3 of 4")]
    writer = GitWriter(str(remote.bare), "main", tmp_path / "d3", backoff=0.01)
    writer.sync()
    assert last_recorded(writer.log(max_count=50), writer.notes(), "staging") != merge
    # the guard let go: the same revision applied, its promotion is gated as usual
    d = auto.after_pass(env, _result(merge), lambda t: HEALTHY)
    assert d.outcome is Outcome.HEALTHY and d.promotions == [promotion]


def test_a_rewound_branch_is_recorded_once_per_rewind(remote: Remote, tmp_path: Path) -> None:
    """A force-push that takes the applied revision off the branch: the rewound head is settled as usual
    and gets a ``rewound`` record naming the commit that left (in memory, and for a daemon that restarted
    meanwhile: from the notes); ``history`` shows it; a forward move is no rewind."""
    from reconciler.promote.history import timeline

    env = _env(remote, tmp_path)
    base = remote.head()
    events = Events()
    auto = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "d", backoff=0.05), events)
    assert auto.after_pass(env, _result(base, HEALTHY), lambda t: HEALTHY).outcome is Outcome.HEALTHY
    remote.pull()
    remote.write("overlays/staging/kustomization.yaml", kustomization("0.3.0", DIGEST_B))
    gone = remote.commit("staging: 0.3.0")
    assert auto.after_pass(env, _result(gone, HEALTHY), lambda t: HEALTHY).outcome is Outcome.HEALTHY
    assert ("staging", "rewound") not in _notes(remote, gone)  # a forward move

    # main is rewound to base: applied again (already settled), recorded as a rewind from `gone`
    git(remote.work, "reset", "-q", "--hard", base)
    git(remote.work, "push", "-q", "--force", "origin", "HEAD:main")
    d = auto.after_pass(env, _result(base, HEALTHY), lambda t: HEALTHY)
    assert d.skipped == "already settled" and not d.error
    text = git(remote.bare, "notes", "--ref=reconciler", "show", base)
    rewinds = [r for r in parse_note(text) if r.outcome is Outcome.REWOUND]
    assert [(r.environment, r.revision, r.rewound_from) for r in rewinds] == [("staging", base, gone)]
    assert gone[:12] in rewinds[0].message
    assert [e[1]["outcome"] for e in events.sent if e[1]["outcome"] == "rewound"] == ["rewound"]
    # the same pass again records nothing more
    auto.after_pass(env, _result(base, HEALTHY), lambda t: HEALTHY)
    assert (
        sum(
            1
            for r in parse_note(git(remote.bare, "notes", "--ref=reconciler", "show", base))
            if r.outcome is Outcome.REWOUND
        )
        == 1
    )

    # a new commit is applied; the daemon restarts, and main is rewound meanwhile: the restarted daemon
    # finds the revision applied last in the notes
    remote.pull()
    remote.write("overlays/staging/kustomization.yaml", kustomization("0.4.0", DIGEST_B))
    gone2 = remote.commit("staging: 0.4.0")
    assert auto.after_pass(env, _result(gone2, HEALTHY), lambda t: HEALTHY).outcome is Outcome.HEALTHY
    git(remote.work, "reset", "-q", "--hard", base)
    git(remote.work, "push", "-q", "--force", "origin", "HEAD:main")
    restarted = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "r", backoff=0.05))
    assert restarted.after_pass(env, _result(base, HEALTHY), lambda t: HEALTHY).skipped == "already settled"
    text = git(remote.bare, "notes", "--ref=reconciler", "show", base)
    assert [r.rewound_from for r in parse_note(text) if r.outcome is Outcome.REWOUND] == [gone, gone2]
    # what the commits that left did stays recorded on them
    assert _notes(remote, gone) == [("staging", "healthy")] and _notes(remote, gone2) == [
        ("staging", "healthy")
    ]

    w = GitWriter(str(remote.bare), "main", tmp_path / "h")
    w.sync()
    entries = timeline(w, env)
    rewind_entries = [(e.sha, e.rewound_from) for e in entries if e.kind == "rewind"]
    assert rewind_entries == [(base, gone2), (base, gone)]  # newest first
    assert entries[0].kind == "rewind"
    assert not {gone, gone2} & {e.sha for e in entries if e.kind != "rewind"}
