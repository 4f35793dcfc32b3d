"""Promotion, rollback and history on real bare remotes (no cluster): branches, trailers, merges by a
person, reverts, the rules of envs/*.yaml and the CLI commands."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from _promote_support import (
    CLOCK,
    DIGEST_A,
    DIGEST_B,
    DIGEST_C,
    Remote,
    git,
    kustomization,
    make_remote,
    three_envs,
)
from reconciler_testing import shared_dir
from typer.testing import CliRunner

from reconciler.model import Environment
from reconciler.promote.cli import register
from reconciler.promote.history import held_back_reason, reverted_images, timeline
from reconciler.promote.promotion import PromotionError, RuleError, promote
from reconciler.promote.records import Outcome, OutcomeRecord, record_outcome
from reconciler.promote.rollback import RollbackConflict, rollback
from reconciler.reconcile import load_environments
from reconciler.source.gitops import GitWriter


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return make_remote(tmp_path / "repo", three_envs())


def _writer(remote: Remote, tmp_path: Path, name: str = "cache") -> GitWriter:
    w = GitWriter(str(remote.bare), "main", tmp_path / name, backoff=0.01)
    w.sync()
    return w


def _envs(w: GitWriter) -> dict[str, Environment]:
    return load_environments(w.workdir)


def _healthy(w: GitWriter, sha: str, env: str) -> None:
    record_outcome(w, sha, OutcomeRecord(environment=env, outcome=Outcome.HEALTHY, revision=sha))
    w.sync()


def test_promote_through_a_branch_merge_history_and_rollback(remote: Remote, tmp_path: Path) -> None:
    healthy_dev = remote.head()
    w = _writer(remote, tmp_path)
    _healthy(w, healthy_dev, "dev")
    # a newer dev commit that was never verified healthy must not be promoted
    remote.write("overlays/dev/kustomization.yaml", kustomization("0.3.0", DIGEST_C))
    remote.commit("dev: clock 0.3.0 (not verified yet)")
    main_before = remote.head()
    w.sync()

    result = promote(w, _envs(w), "dev", "staging", all_images=True)

    assert result.mode == "pr" and result.branch == f"promote/staging/{healthy_dev[:7]}"
    assert remote.head() == main_before  # nothing lands on main before the merge
    branch_sha = git(remote.bare, "rev-parse", f"refs/heads/{result.branch}")
    assert branch_sha == result.commit
    assert "open a pull request from branch" in result.instructions
    info = w.log(rev=branch_sha, max_count=1)[0]
    assert info.subject == f"promote(staging): clock-mcp 0.2.0 from dev @ {healthy_dev[:7]}"
    assert info.trailers == {
        "Promotion-From": ["dev"],
        "Promotion-To": ["staging"],
        "Source-Revision": [f"main@sha1:{healthy_dev}"],
        "Image": [f"{CLOCK}={CLOCK}:0.2.0@{DIGEST_B}"],
    }
    diff = git(remote.bare, "diff", "-U0", main_before, branch_sha)
    changed = [ln for ln in diff.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    assert changed == [
        "-  newTag: 0.1.0  # pinned by promotion",
        f"-  digest: {DIGEST_A}",
        "+  newTag: 0.2.0  # pinned by promotion",
        f"+  digest: {DIGEST_B}",
    ]

    # a person merges the pull request
    merge = remote.merge(result.branch)
    w.sync()
    assert (
        w.read_file("HEAD", "overlays/staging/kustomization.yaml")
        == kustomization("0.2.0", DIGEST_B).rstrip()
    )
    record_outcome(
        w,
        merge,
        OutcomeRecord(
            environment="staging", outcome=Outcome.HEALTHY, revision=merge, promotions=[branch_sha]
        ),
    )
    w.sync()
    entries = timeline(w, _envs(w)["staging"])
    promo = next(e for e in entries if e.kind == "promotion")
    assert promo.sha == branch_sha and promo.merge_commit == merge
    assert promo.merged_by == "Mia Merger <mia@example.test>"
    assert promo.from_env == "dev" and promo.source_revision == f"main@sha1:{healthy_dev}"
    assert [(m.name, m.before, m.after) for m in promo.moved] == [
        (CLOCK, f"{CLOCK}:0.1.0@{DIGEST_A}", f"{CLOCK}:0.2.0@{DIGEST_B}")
    ]
    assert promo.outcome == "healthy"

    # the same promotion again: nothing to do
    again = promote(w, _envs(w), "dev", "staging", all_images=True)
    assert again.commit is None and "nothing to do" in again.message
    w.sync()

    # rollback of staging (via: pr) → a revert commit on a branch
    rb = rollback(w, _envs(w)["staging"], reason="customers report errors")
    assert rb.reverted == [branch_sha] and rb.branch == f"rollback/staging/{branch_sha[:7]}"
    revert = w.log(rev=rb.commits[-1], max_count=1)[0]
    assert revert.reverts == branch_sha
    assert revert.first("Rollback-Of") == branch_sha and revert.first("Reason") == "customers report errors"
    assert revert.first("Rollback-Env") == "staging" and revert.first("Rollback-By") is None
    assert (
        w.read_file(revert.sha, "overlays/staging/kustomization.yaml")
        == kustomization("0.1.0", DIGEST_A).rstrip()
    )
    remote.merge(rb.branch or "")
    w.sync()
    log = w.log()
    assert reverted_images(log) == {CLOCK: {"0.2.0", DIGEST_B}}
    reason = held_back_reason(log, CLOCK, "0.2.0")
    assert reason is not None and revert.short in reason
    entries = timeline(w, _envs(w)["staging"])
    promo = next(e for e in entries if e.kind == "promotion")
    assert promo.reverted_by == revert.sha
    rollback_entry = next(e for e in entries if e.kind == "rollback")
    assert rollback_entry.rollback_of == branch_sha and rollback_entry.reason == "customers report errors"
    assert [(m.before, m.after) for m in rollback_entry.moved] == [
        (f"{CLOCK}:0.2.0@{DIGEST_B}", f"{CLOCK}:0.1.0@{DIGEST_A}")
    ]
    with pytest.raises(PromotionError, match="nothing to roll back"):
        rollback(w, _envs(w)["staging"])


def test_rules_of_the_target_environment(remote: Remote, tmp_path: Path) -> None:
    w = _writer(remote, tmp_path)
    envs = _envs(w)
    with pytest.raises(RuleError, match="allows no promotions"):
        promote(w, envs, "staging", "dev", all_images=True)
    with pytest.raises(RuleError, match="only from 'staging', not from 'dev'"):
        promote(w, envs, "dev", "prod", all_images=True)
    with pytest.raises(RuleError, match="requires a pull request"):
        promote(w, envs, "dev", "staging", all_images=True, mode="push")
    with pytest.raises(RuleError, match="not defined"):
        promote(w, envs, "qa", "staging", all_images=True)
    with pytest.raises(PromotionError, match="no revision of 'dev' has passed its health gate"):
        promote(w, envs, "dev", "staging", all_images=True)
    _healthy(w, remote.head(), "dev")
    with pytest.raises(PromotionError, match="--app NAME or --all"):
        promote(w, envs, "dev", "staging")
    with pytest.raises(PromotionError, match=r"no object .* belongs to app 'nope' \(known: clock-mcp\)"):
        promote(w, envs, "dev", "staging", app="nope")
    assert remote.count() == 1  # nothing was committed by any refusal


def test_app_selection_push_mode_and_digest_from_trailers(tmp_path: Path) -> None:
    files = three_envs(dev_digest=None)
    files["envs/staging.yaml"] = files["envs/staging.yaml"].replace("via: pr", "via: push")
    files["overlays/dev/kustomization.yaml"] = kustomization("0.2.0") + (
        "- name: ghcr.io/acme/other\n  newTag: 9.9.9\n  digest: " + DIGEST_C + "\n"
    )
    remote = make_remote(tmp_path / "repo", files)
    w = _writer(remote, tmp_path)
    _healthy(w, remote.head(), "dev")
    with pytest.raises(PromotionError, match="without a digest and no commit records one"):
        promote(w, _envs(w), "dev", "staging", app="clock-mcp")
    w.sync()
    unpinned = promote(w, _envs(w), "dev", "staging", app="clock-mcp", allow_unpinned=True, mode="pr")
    assert unpinned.plan.warnings == [f"{CLOCK}: {CLOCK}:0.2.0 is not pinned by digest"]
    w.sync()
    # image automation recorded the digest of 0.2.0 in a trailer: the promotion pins it
    remote.pull()
    remote.write("overlays/dev/notes.txt", "x\n")
    git(remote.work, "add", "-A")
    git(
        remote.work, "commit", "-q", "-m", "dev: clock 0.2.0\n\nImage: " + f"{CLOCK}={CLOCK}:0.2.0@{DIGEST_B}"
    )
    git(remote.work, "push", "-q", "origin", "HEAD:main")
    w.sync()
    _healthy(w, remote.head(), "dev")
    result = promote(w, _envs(w), "dev", "staging", app="clock-mcp")
    assert result.mode == "push" and result.pushed_to == "main" and result.commit == remote.head()
    staging = remote.file_at("main", "overlays/staging/kustomization.yaml")
    assert f"newTag: 0.2.0  # pinned by promotion\n  digest: {DIGEST_B}" in staging
    assert "ghcr.io/acme/other" not in staging  # --app moves only that app's images


def test_rollback_to_a_commit_reverts_every_later_promotion(tmp_path: Path) -> None:
    files = three_envs()
    files["envs/staging.yaml"] = files["envs/staging.yaml"].replace("via: pr", "via: push")
    remote = make_remote(tmp_path / "repo", files)
    start = remote.head()
    w = _writer(remote, tmp_path)
    _healthy(w, remote.head(), "dev")
    first = promote(w, _envs(w), "dev", "staging", all_images=True).commit
    remote.pull()
    remote.write("overlays/dev/kustomization.yaml", kustomization("0.3.0", DIGEST_C))
    dev3 = remote.commit("dev 0.3.0")
    w.sync()
    _healthy(w, dev3, "dev")
    second = promote(w, _envs(w), "dev", "staging", all_images=True).commit
    w.sync()
    result = rollback(w, _envs(w)["staging"], to=start, reason="back to the start")
    assert result.reverted == [second, first]
    assert len(result.commits) == 2 and result.pushed_to == "main"
    assert (
        remote.file_at("main", "overlays/staging/kustomization.yaml")
        == kustomization("0.1.0", DIGEST_A).rstrip()
    )
    reverts = [c.reverts for c in w.log(rev="origin/main", max_count=2)] if w.sync() else []
    assert reverts == [first, second]


def test_case_31_revert_sticks_and_conflicting_revert_is_refused(tmp_path: Path) -> None:
    case = shared_dir() / "cases" / "31-git-revert-rollback-must-stick"
    expected = json.loads((case / "expected.json").read_text())
    event = json.loads((case / "event-0.1.6-structured.json").read_text())["data"]
    target = "clusters/prod/agents/kustomization.yaml"
    src = tmp_path / "src"
    shutil.copytree(case / "repo-before", src)
    files = {str(p.relative_to(src)): p.read_text() for p in src.rglob("*") if p.is_file()}
    files["envs/prod.yaml"] = "overlay: clusters/prod/agents\nnamespace: agents\npromotion: {via: push}\n"

    def automation_commit(remote: Remote) -> str:
        # what image automation writes for the 0.1.6 event (C1 / P1)
        remote.pull()
        text = remote.read(target).replace("newTag: 0.1.3", "newTag: 0.1.6")
        remote.write(target, text)
        git(remote.work, "add", "-A")
        msg = (
            f"prod: {event['repository']} 0.1.3 -> 0.1.6\n\n"
            f"Promotion-To: prod\nImage: {event['repository']}={event['repository']}:0.1.6@{event['digest']}"
        )
        git(remote.work, "commit", "-q", "-m", msg, who="reconciler <reconciler@localhost>")
        git(remote.work, "push", "-q", "origin", "HEAD:main")
        return git(remote.work, "rev-parse", "HEAD")

    remote = make_remote(tmp_path / "repo", files)
    c0 = remote.head()
    c1 = automation_commit(remote)
    w = _writer(remote, tmp_path)
    result = rollback(w, _envs(w)["prod"], commits=[c1], reason="0.1.6 breaks planning")
    c2 = result.commits[-1]
    assert remote.head() == c2 and remote.count() == 3  # C0, C1, C2: no history rewritten
    assert git(remote.bare, "rev-parse", f"{c2}^{{tree}}") == git(remote.bare, "rev-parse", f"{c0}^{{tree}}")
    message = git(remote.bare, "log", "-1", "--format=%B", c2)
    for needle in expected["steps"]["2"]["commit_message_must_contain"]:
        assert (c1 if needle == "<full SHA of C1>" else needle) in message
    assert "newTag: 0.1.3" in remote.file_at("main", target)
    w.sync()
    log = w.log()
    assert reverted_images(log) == {event["repository"]: {"0.1.6", event["digest"]}}
    assert held_back_reason(log, event["repository"], "0.1.6") == (
        f"0.1.6 is held back because its promotion was rolled back in {c2[:7]} (revert of {c1[:7]})"
    )
    assert held_back_reason(log, event["repository"], "0.1.7") is None  # a newer version may promote
    # reverting the revert re-applies 0.1.6: it is no longer held back
    git(remote.work, "fetch", "-q", "origin")
    git(remote.work, "reset", "-q", "--hard", "origin/main")
    git(remote.work, "revert", "--no-edit", c2)
    git(remote.work, "push", "-q", "origin", "HEAD:main")
    w.sync()
    assert reverted_images(w.log()) == {}

    # variant: a person changed the same line after P1 → the rollback is refused, nothing is committed
    variant = make_remote(tmp_path / "variant", files)
    p1 = automation_commit(variant)
    variant.write(target, variant.read(target).replace("newTag: 0.1.6", "newTag: 0.1.6-hotfix1"))
    h = variant.commit("prod: planner 0.1.6-hotfix1", who="Hank Human <hank@example.test>")
    wv = _writer(variant, tmp_path, "variant-cache")
    with pytest.raises(RollbackConflict) as info:
        rollback(wv, _envs(wv)["prod"], commits=[p1])
    assert info.value.conflicting == h and h in str(info.value)
    assert "Set the version explicitly" in str(info.value)
    assert variant.head() == h and variant.count() == 3
    assert wv.head() == h and git(wv.workdir, "status", "--porcelain") == ""
    assert not (wv.workdir / ".git" / "REVERT_HEAD").exists()


def test_cli_promote_history_rollback(remote: Remote, tmp_path: Path) -> None:
    app = typer.Typer()
    register(app)
    runner = CliRunner()
    cache = tmp_path / "cli-cache"
    common = ["--repo", str(remote.bare), "--cache-dir", str(cache)]
    w = _writer(remote, tmp_path)
    _healthy(w, remote.head(), "dev")

    res = runner.invoke(app, ["promote", "dev", "staging", "--push", "--all", *common])
    assert res.exit_code == 2 and "requires a pull request" in res.output
    res = runner.invoke(app, ["promote", "dev", "staging", *common])
    assert res.exit_code == 2 and "--app NAME or --all" in res.output
    res = runner.invoke(app, ["promote", "dev", "staging", "--all", "-o", "json", *common])
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["mode"] == "pr" and out["branch"].startswith("promote/staging/")
    remote.merge(out["branch"], who="Rita Reviewer <rita@example.test>")

    res = runner.invoke(app, ["history", "staging", "-o", "json", *common])
    assert res.exit_code == 0, res.output
    hist = json.loads(res.stdout)
    assert hist[0]["kind"] == "promotion" and hist[0]["merged_by"] == "Rita Reviewer <rita@example.test>"
    assert hist[0]["moved"][0]["after"] == f"{CLOCK}:0.2.0@{DIGEST_B}"
    res = runner.invoke(app, ["history", "staging", "-o", "yaml", *common])
    assert res.exit_code == 0, res.output
    from ruamel.yaml import YAML

    assert YAML(typ="safe").load(res.stdout) == hist
    res = runner.invoke(app, ["history", "staging", *common])
    assert res.exit_code == 0 and "Rita Reviewer" in res.stdout and "promotion from dev" in res.stdout

    res = runner.invoke(app, ["rollback", "staging", "--push", *common])
    assert res.exit_code == 2 and "requires a pull request" in res.output
    res = runner.invoke(app, ["rollback", "staging", "--reason", "smoke test failed", "-o", "json", *common])
    assert res.exit_code == 0, res.output
    rb = json.loads(res.stdout)
    assert rb["reverted"] == [out["commit"]] and rb["branch"] == f"rollback/staging/{out['commit'][:7]}"
    res = runner.invoke(app, ["history", "nope", *common])
    assert res.exit_code == 2 and "not defined" in res.output


def test_rerun_before_merge_reuses_the_branch_and_protected_main_falls_back(tmp_path: Path) -> None:
    files = three_envs()
    remote = make_remote(tmp_path / "repo", files)
    w = _writer(remote, tmp_path)
    _healthy(w, remote.head(), "dev")
    first = promote(w, _envs(w), "dev", "staging", all_images=True)
    w.sync()
    second = promote(w, _envs(w), "dev", "staging", all_images=True)
    assert second.branch == first.branch and second.commit == first.commit  # same proposal, no new push
    assert git(remote.bare, "rev-parse", f"refs/heads/{first.branch}") == first.commit

    # dev allows direct pushes, but main is protected on the host: the commit goes to a branch
    hook = remote.bare / "hooks" / "pre-receive"
    hook.write_text('#!/bin/sh\nwhile read o n r; do [ "$r" = refs/heads/main ] && exit 1; done\nexit 0\n')
    hook.chmod(0o755)
    files_push = dict(files)
    staging_push = files_push["envs/staging.yaml"].replace("via: pr", "via: push")
    w.sync()
    (w.workdir / "envs" / "staging.yaml").write_text(staging_push)  # rules as the test wants them
    envs = _envs(w)
    w.sync()
    head = remote.head()
    result = promote(w, envs, "dev", "staging", all_images=True)
    assert result.commit is not None
    assert (
        result.mode == "push"
        and result.fallback
        and result.pushed_to == f"reconciler/main/{result.commit[:7]}"
    )
    assert "refused the push" in result.instructions and remote.head() == head


def test_cli_pr_the_host_cannot_open_exits_1_and_says_what_is_left(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``--pr`` with a host token whose API does not answer (a closed port, no retry budget): exit 1 with
    the host's error and the state left (branch pushed, main unchanged); the JSON output has ``pr_error``.
    Run against the real forge in tests/forge/test_forge_e2e.py (forge down, then back)."""
    from reconciler_testing import free_port

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    common = ["--repo", str(remote.bare), "--cache-dir", str(tmp_path / "cli-cache")]
    api = f"http://127.0.0.1:{free_port()}/api/v1"
    host = ["--host", "gitea", "--host-repo", "acme/envs", "--host-api", api]
    monkeypatch.setenv("RECONCILER_GIT_HOST_TOKEN", "t0ken-for-a-host-that-is-down")
    monkeypatch.setenv("RECONCILER_GIT_HOST_RETRY_SECONDS", "0")
    w = _writer(remote, tmp_path)
    _healthy(w, remote.head(), "dev")
    main = remote.head()

    res = runner.invoke(app, ["promote", "dev", "staging", "--all", "--pr", *host, *common])
    assert res.exit_code == 1, res.output
    branch = f"promote/staging/{main[:7]}"
    pushed = git(remote.bare, "rev-parse", f"refs/heads/{branch}")
    text = " ".join(res.output.split())
    assert (
        f"could not open the pull request from {branch} into main: POST {api}/repos/acme/envs/pulls" in text
    )
    assert f"the branch {branch} is pushed (commit {pushed[:7]}) and main is unchanged" in text
    assert "t0ken" not in res.output and remote.head() == main

    res = runner.invoke(app, ["promote", "dev", "staging", "--all", "--pr", "-o", "json", *host, *common])
    assert res.exit_code == 1
    out = json.loads(res.stdout)
    assert out["pr_error"] and out["pull_request"] is None and out["branch"] == branch
    assert git(remote.bare, "rev-parse", f"refs/heads/{branch}") == pushed  # reused, not pushed again
