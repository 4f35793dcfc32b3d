"""Promotion by pull request on a real Git forge, end to end (issue 26): the environment repository is
hosted on the local Gitea (``cluster up --forge``), Gitea's webhooks reach the project's receiver, which
publishes on NATS, and the daemon — following the repository over HTTP with git credentials from its
environment — applies what the forge's branch says on the session's API server and posts each outcome
back to the forge as a commit status. No stand-ins: every request goes to the real Gitea, receiver,
NATS and kube-apiserver (see tests/forge/_e2e_support.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from _e2e_support import (
    CHECK,
    DIGEST_A,
    DIGEST_B,
    DIGEST_C,
    GITEA_SECRET,
    GitPause,
    Stack,
    git,
    kustomization,
    until,
)

from reconciler.bus import STREAM_EVENTS, git_pull_request_subject, git_push_subject
from reconciler.devcluster.forge import ForgeError
from reconciler.promote.records import parse_note

pytestmark = pytest.mark.integration


async def test_promotion_by_pull_request_end_to_end(stack: Stack, kubeconfig: Path) -> None:
    s = stack
    t0 = time.monotonic()
    ignored0 = s.receiver.metric("gitea", "ignored")
    first = await s.create()
    await s.start_daemon()
    o, r = s.owner, s.name
    # the daemon fetched the private repository with the credentials from its environment, applied both
    # environments and posted their health gates on the forge
    for env in ("dev", "staging"):
        await s.wait_pass(env, first)
        await s.wait_status(first, f"reconciler/{env}", "success")
    assert s.image("staging") == s.ref("0.1.0", DIGEST_A)

    # a registry webhook moves dev: image automation commits 0.2.0@B to dev's overlay on the forge
    assert await s.registry_push("0.2.0", DIGEST_B) == 202
    dev_commit = await until(lambda: _moved(s, first), 60, "image automation's commit on the forge")
    await s.wait_pass("dev", dev_commit)
    assert s.image("dev") == s.ref("0.2.0", DIGEST_B)
    await s.wait_status(dev_commit, "reconciler/dev", "success")  # verified healthy: promotable
    assert s.image("staging") == s.ref("0.1.0", DIGEST_A)

    # `reconciler promote dev staging --pr` opens a pull request whose body is the changeset
    res = await s.cli("promote", "dev", "staging", "--all", "--pr", "--kubeconfig", str(kubeconfig))
    assert res.code == 0, res.output
    (pr,) = await s.client.list_pulls(o, r, state="open")
    assert pr.head.ref == f"promote/staging/{dev_commit[:7]}" and pr.base.ref == "main"
    assert f"pull request #{pr.number} opened" in res.stdout
    change = f"{s.n.image}: {s.ref('0.1.0', DIGEST_A)} -> {s.ref('0.2.0', DIGEST_B)}"
    # the changeset, one line per image, then the check's report (replaced, never appended twice, by the
    # CLI and by the daemon on the pull_request webhook)
    assert pr.body.startswith(change + "\n\n<!-- reconciler-check -->\n### reconciler check: passed"), pr.body
    assert pr.body.count("<!-- reconciler-check -->") == 1 and "- changed: `Deployment/" in pr.body
    # its head gets reconciler/check = success (from the CLI, and from the daemon on the PR webhook)
    check = await s.wait_status(pr.head.sha, CHECK, "success")
    assert "staging ok" in check.description
    assert await s.head() == dev_commit and s.image("staging") == s.ref("0.1.0", DIGEST_A)

    # a person merges it through the forge; the forge's push webhook → receiver → NATS → staging's pass
    await s.client.merge_pull(o, r, pr.number)
    merged = await s.client.get_pull(o, r, pr.number)
    assert merged.merged and merged.merge_commit_sha
    merge = merged.merge_commit_sha
    result = await s.wait_pass("staging", merge)
    assert result.trigger == "git-push"
    assert s.applied("staging") == f"main@sha1:{merge}"
    assert s.image("staging") == s.ref("0.2.0", DIGEST_B)
    status = await s.wait_status(merge, "reconciler/staging", "success")
    assert "Healthy" in status.description

    # `reconciler rollback staging --pr` opens a revert pull request; merged, the previous version is back
    res = await s.cli("rollback", "staging", "--pr", "--kubeconfig", str(kubeconfig))
    assert res.code == 0, res.output
    (revert_pr,) = await s.client.list_pulls(o, r, state="open")
    assert revert_pr.number != pr.number and revert_pr.base.ref == "main"
    await s.wait_status(revert_pr.head.sha, CHECK, "success")
    await s.client.merge_pull(o, r, revert_pr.number)
    revert_merge = (await s.client.get_pull(o, r, revert_pr.number)).merge_commit_sha
    assert revert_merge
    await s.wait_pass("staging", revert_merge)
    assert s.applied("staging") == f"main@sha1:{revert_merge}"
    assert s.image("staging") == s.ref("0.1.0", DIGEST_A)
    await s.wait_status(revert_merge, "reconciler/staging", "success")
    history = await s.cli("history", "staging", "-o", "json")
    assert history.code == 0, history.output
    assert '"kind": "rollback"' in history.stdout and merged.merge_commit_sha in history.stdout

    # a pull request closed without merging changes nothing
    s.pull()
    s.git("checkout", "-q", "-b", "tweak/staging")
    s.write(
        "overlays/staging/kustomization.yaml",
        s.read("overlays/staging/kustomization.yaml").replace("newTag: 0.1.0", "newTag: 0.9.9"),
    )
    tweak = s.commit("staging: try 0.9.9")
    await s.push("tweak/staging")
    opened = await s.client.open_pull(o, r, head="tweak/staging", base="main", title="staging: try 0.9.9")
    await s.wait_status(tweak, CHECK, "success")  # checked by the daemon on the pull_request webhook
    seen_before = len(s.seen)
    closed = await s.client.close_pull(o, r, opened.number)
    assert closed.state == "closed" and not closed.merged
    # the forge delivered the "closed" event and the receiver ignored it, publishing nothing (as it did
    # for the "closed" events of the two merges before)
    await until(lambda: s.receiver.metric("gitea", "ignored") >= ignored0 + 3, 30, "the close delivery")
    assert await s.head() == revert_merge
    assert s.applied("staging") == f"main@sha1:{revert_merge}"
    assert s.image("staging") == s.ref("0.1.0", DIGEST_A)
    assert all(x.result.revision == f"main@sha1:{revert_merge}" for x in s.seen[seen_before:])
    assert await s.status(tweak, "reconciler/staging") is None  # never applied, so never reported
    print(f"happy path: {time.monotonic() - t0:.1f} s")


def _replicas_patch(n: int) -> str:
    """A kustomize JSON 6902 patch setting the Deployment's replicas to ``n``."""
    return (
        "patches:\n"
        "- target: {kind: Deployment, name: clock-mcp}\n"
        "  patch: |-\n"
        "    - op: replace\n"
        "      path: /spec/replicas\n"
        f"      value: {n}\n"
    )


async def test_required_check_keeps_a_failing_pull_request_out(stack: Stack, kubeconfig: Path) -> None:
    s = stack
    t0 = time.monotonic()
    first = await s.create()
    o, r = s.owner, s.name
    rule = await s.client.protect_branch(o, r, "main", status_checks=[CHECK])
    assert rule.enable_status_check and rule.status_check_contexts == [CHECK]
    await s.start_daemon()
    await s.wait_pass("staging", first)

    # a branch whose staging overlay renders but that the API server refuses (negative replicas) in the
    # dry-run pass of the check
    s.git("checkout", "-q", "-b", "bad/staging")
    s.write(
        "overlays/staging/kustomization.yaml",
        kustomization(s.n.image, "0.1.0", DIGEST_A, extra=_replicas_patch(-3)),
    )
    bad = s.commit("staging: scale to -3")
    await s.push("bad/staging")
    bad_pr = await s.client.open_pull(o, r, head="bad/staging", base="main", title="staging: scale to -3")
    # the forge's pull_request webhook → receiver → NATS → the daemon checks it and posts the failure
    failed = await s.wait_status(bad, CHECK, "failure")
    assert "staging FAILED (api-server): validation failed" in failed.description, failed.description
    with pytest.raises(ForgeError) as err:
        await s.client.merge_pull(o, r, bad_pr.number)
    assert err.value.status == 405, err.value
    still = await s.client.get_pull(o, r, bad_pr.number)
    assert still.state == "open" and not still.merged
    assert await s.head() == first
    # `reconciler check` says the same on the command line (exit 1, the refusal named)
    res = await s.cli("check", "--head", "bad/staging", "--kubeconfig", str(kubeconfig))
    assert res.code == 1 and "FAILED" in res.stdout and "spec.replicas" in res.stdout, res.output

    # a passing one merges, and the daemon applies its merge commit
    s.git("checkout", "-q", "main")
    s.git("checkout", "-q", "-b", "good/staging")
    s.write(
        "overlays/staging/kustomization.yaml",
        kustomization(s.n.image, "0.1.0", DIGEST_A, extra=_replicas_patch(2)),
    )
    good = s.commit("staging: scale to 2")
    await s.push("good/staging")
    good_pr = await s.client.open_pull(o, r, head="good/staging", base="main", title="staging: scale to 2")
    await s.wait_status(good, CHECK, "success")
    await s.client.merge_pull(o, r, good_pr.number)
    merge = (await s.client.get_pull(o, r, good_pr.number)).merge_commit_sha
    assert merge
    await s.wait_pass("staging", merge)
    assert s.applied("staging") == f"main@sha1:{merge}"
    assert s.deployment("staging")["spec"]["replicas"] == 2
    await s.wait_status(merge, "reconciler/staging", "success")
    # the failing one is still refused
    with pytest.raises(ForgeError):
        await s.client.merge_pull(o, r, bad_pr.number)
    print(f"required check: {time.monotonic() - t0:.1f} s")


async def test_a_pull_request_of_another_repository_is_not_checked(stack: Stack, tmp_path: Path) -> None:
    """One receiver and one NATS serve every repository of the forge: the daemon checks only pull
    requests of the repository it follows (a branch of the same name in its own repository is not the
    other one's pull request)."""
    s = stack
    first = await s.create()
    o, r = s.owner, s.name
    daemon = await s.start_daemon()
    await s.wait_pass("staging", first)
    bus = daemon.bus
    assert bus is not None
    # the followed repository has a branch x/staging that nobody proposed
    s.git("checkout", "-q", "-b", "x/staging")
    s.write("overlays/staging/kustomization.yaml", kustomization(s.n.image, "0.3.0", DIGEST_C))
    ours = s.commit("staging: clock 0.3.0 (not proposed)")
    await s.push("x/staging")
    # another repository on the same forge proposes its own x/staging into its main
    other = await s.client.create_repo(f"other-{s.n.suffix}")
    work = tmp_path / "other"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    git(work, "remote", "add", "origin", other.clone_url)
    (work / "README.md").write_text("another repository\n")
    git(work, "add", "-A")
    git(work, "commit", "-q", "-m", "first")
    git(work, "checkout", "-q", "-b", "x/staging")
    (work / "README.md").write_text("another change\n")
    git(work, "commit", "-q", "-am", "change")
    git(work, "push", "-q", "origin", "main", "x/staging")
    await s.client.wait_branch(o, other.name, "x/staging", git(work, "rev-parse", "HEAD"))
    await s.client.add_push_webhook(
        o, other.name, s.receiver.url("gitea"), GITEA_SECRET, events=("pull_request",)
    )
    await s.client.open_pull(o, other.name, head="x/staging", base="main", title="another change")
    # its event reaches NATS and the daemon consumes and acknowledges it …
    subject = git_pull_request_subject(f"{o}/{other.name}")

    async def stored() -> bool:
        info = await bus.js.stream_info(STREAM_EVENTS, subjects_filter=subject)
        return bool((info.state.subjects or {}).get(subject))

    async def consumed() -> bool:
        info = await bus.js.consumer_info(STREAM_EVENTS, daemon.trigger_durable)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await until(stored, 30, "the other repository's pull_request event on NATS", 0.2)
    await until(consumed, 60, "the daemon acknowledging it", 0.2)
    # … and posts nothing: not on its own branch of that name, not anywhere in its repository
    assert await s.status(ours, CHECK) is None
    assert await s.client.list_pulls(o, r, state="all") == []


async def test_forge_down_while_the_promotion_pull_request_is_opened(
    stack: Stack, kubeconfig: Path, tmp_path: Path
) -> None:
    s = stack
    t0 = time.monotonic()
    first = await s.create(dev=("0.2.0", DIGEST_B))  # dev runs 0.2.0@B, staging 0.1.0@A
    await s.start_daemon()
    await s.wait_status(first, "reconciler/dev", "success")
    await s.wait_pass("staging", first)
    o, r = s.owner, s.name
    branch = f"promote/staging/{first[:7]}"
    promote = ("promote", "dev", "staging", "--all", "--pr", "--kubeconfig", str(kubeconfig))

    # (a) the forge goes down right after the command pushed its branch, and stays down past the retry
    # budget (3 s here): the command fails with the host's error and says what it left behind
    pause = GitPause(tmp_path / "pause-a", "refs/remotes/origin/promote/")
    env = {**pause.env(), "RECONCILER_GIT_HOST_RETRY_SECONDS": "3"}
    run = asyncio.create_task(s.cli(*promote, env=env))
    await until(lambda: pause.paused or run.done(), 60, "the promotion branch pushed")
    assert not run.done(), run.result().output
    pushed = await until(lambda: s.head(branch), 30, "the forge recording the branch")
    await s.stop_forge()
    down_at = time.monotonic()
    pause.resume()
    res = await run
    assert res.code == 1, res.output
    assert f"could not open the pull request from {branch} into main" in res.stderr, res.stderr
    assert "no answer" in res.stderr and "gave up after" in res.stderr, res.stderr
    assert f"the branch {branch} is pushed (commit {pushed[:7]}) and main is unchanged" in res.stderr
    assert "run the same command again" in res.stderr and s.forge.token not in res.output
    gave_up = time.monotonic() - down_at
    restart = await s.start_forge()
    # what it left: the branch with the promotion commit; no pull request; main and staging unchanged
    assert await s.head(branch) == pushed and await s.head() == first
    assert await s.client.list_pulls(o, r, state="all") == []
    assert s.applied("staging") == f"main@sha1:{first}" and s.image("staging") == s.ref("0.1.0", DIGEST_A)

    # (b) the command again; the forge goes down before its pull request is opened (after the branch was
    # checked out: nothing else of the run needs the network before that request) and is back within the
    # budget: the request is retried, reported, and the pull request opened once, on the same branch
    pause = GitPause(tmp_path / "pause-b", "refs/heads/promote/")
    err_b = tmp_path / "b.err"
    run = asyncio.create_task(s.cli(*promote, env=pause.env(), stderr_file=err_b))
    await until(lambda: pause.paused or run.done(), 60, "the promotion branch checked out")
    assert not run.done(), run.result().output
    await s.stop_forge()
    pause.resume()
    await until(lambda: "retrying" in err_b.read_text() or run.done(), 30, "a retry reported")
    assert not run.done(), run.result().output
    await s.start_forge()
    res = await run
    assert res.code == 0, res.output
    assert "git host: POST" in res.stderr and "no answer" in res.stderr and "retrying in" in res.stderr
    pulls = await s.client.list_pulls(o, r, state="all")
    assert [(p.head.ref, p.head.sha, p.state) for p in pulls] == [(branch, pushed, "open")]
    assert f"pull request #{pulls[0].number} opened" in res.stdout, res.stdout
    await s.wait_status(pushed, CHECK, "success")

    # (c) once more with the forge up: the same pull request, no second one
    res = await s.cli(*promote)
    assert res.code == 0 and f"pull request #{pulls[0].number} already open" in res.stdout, res.output
    assert len(await s.client.list_pulls(o, r, state="all")) == 1
    print(
        f"forge down: gave up after {gave_up:.1f} s, forge restarted in {restart:.1f} s; "
        f"{time.monotonic() - t0:.1f} s"
    )


async def test_push_webhook_with_a_wrong_secret_changes_nothing(stack: Stack) -> None:
    s = stack
    t0 = time.monotonic()
    first = await s.create(hook_secret="not-the-receivers-secret")
    o, r = s.owner, s.name
    daemon = await s.start_daemon()
    await s.wait_pass("dev", first)  # the start-up pass
    assert daemon.bus is not None
    unauthorized0 = s.receiver.metric("gitea", "unauthorized")
    accepted0 = s.receiver.metric("gitea", "accepted")

    # a commit moving dev is pushed; the forge signs its webhook with the wrong secret
    s.write("overlays/dev/kustomization.yaml", kustomization(s.n.image, "0.3.0", DIGEST_C))
    moved = s.commit("dev: clock 0.3.0")
    await s.push("main")
    # the receiver answers 401 …
    await until(lambda: s.receiver.metric("gitea", "unauthorized") > unauthorized0, 30, "the 401")
    # … publishes nothing (no message of this repository in the stream) …
    subject = git_push_subject(f"{o}/{r}")
    info = await daemon.bus.js.stream_info(STREAM_EVENTS, subjects_filter=subject)
    assert not (info.state.subjects or {}).get(subject), info.state.subjects
    assert s.receiver.metric("gitea", "accepted") == accepted0
    # … and nothing is applied: every pass so far applied the first commit
    assert {x.result.revision for x in s.seen} == {f"main@sha1:{first}"}
    assert s.applied("dev") == f"main@sha1:{first}" and s.image("dev") == s.ref("0.1.0", DIGEST_A)
    assert await s.status(moved, "reconciler/dev") is None

    # with a hook signing with the receiver's secret, the forge's next delivery is accepted and the
    # commit applied
    await s.client.delete_hook(o, r, s.hook_id)
    hook = await s.client.add_push_webhook(o, r, s.receiver.url("gitea"), GITEA_SECRET)
    await s.client.test_hook(o, r, hook.id)  # a push event of the branch's last commit
    await s.wait_pass("dev", moved)
    assert s.image("dev") == s.ref("0.3.0", DIGEST_C)
    info = await daemon.bus.js.stream_info(STREAM_EVENTS, subjects_filter=subject)
    assert (info.state.subjects or {}).get(subject) == 1
    print(f"wrong secret: {time.monotonic() - t0:.1f} s")


async def test_conflict_resolved_by_hand_is_applied_as_merged(stack: Stack) -> None:
    s = stack
    t0 = time.monotonic()
    first = await s.create()
    o, r = s.owner, s.name
    await s.start_daemon()
    await s.wait_pass("staging", first)
    overlay = "overlays/staging/kustomization.yaml"

    # two branches change the same lines of staging's overlay (its tag and digest)
    for branch, tag, digest in (("one/staging", "0.3.0", DIGEST_B), ("two/staging", "0.4.0", DIGEST_C)):
        s.git("checkout", "-q", "-B", branch, first)
        s.write(overlay, kustomization(s.n.image, tag, digest))
        s.commit(f"staging: clock {tag}")
        await s.push(branch)
    one = await s.client.open_pull(o, r, head="one/staging", base="main", title="staging: clock 0.3.0")
    two = await s.client.open_pull(o, r, head="two/staging", base="main", title="staging: clock 0.4.0")
    await s.client.merge_pull(o, r, one.number)
    merge_one = (await s.client.get_pull(o, r, one.number)).merge_commit_sha
    assert merge_one
    await s.wait_pass("staging", merge_one)
    assert s.image("staging") == s.ref("0.3.0", DIGEST_B)

    # the second now conflicts: the forge says so and will not merge it
    async def conflicting() -> bool:
        pr = await s.client.get_pull(o, r, two.number)
        return not pr.mergeable

    await until(conflicting, 30, "the forge marking #2 conflicting")
    with pytest.raises(ForgeError):
        await s.client.merge_pull(o, r, two.number)

    # a person resolves it in a local clone: main merged into the branch, the conflict resolved by hand
    # (0.4.0 kept, with a comment), the merge pushed to the pull request's branch
    s.pull()
    s.git("checkout", "-q", "two/staging")
    out = s.git("merge", "--no-edit", "origin/main", check=False)
    assert "<<<<<<<" in s.read(overlay), out
    resolved = kustomization(
        s.n.image, "0.4.0", DIGEST_C, extra="# 0.4.0 supersedes 0.3.0 (resolved by Dana)\n"
    )
    s.write(overlay, resolved)
    s.git("add", overlay)
    s.git("commit", "-q", "--no-edit")
    await s.push("two/staging")

    async def mergeable() -> bool:
        pr = await s.client.get_pull(o, r, two.number)
        return pr.mergeable and pr.head.sha == s.git("rev-parse", "HEAD")

    await until(mergeable, 30, "the forge marking #2 mergeable again")
    await s.client.merge_pull(o, r, two.number)
    merge_two = (await s.client.get_pull(o, r, two.number)).merge_commit_sha
    assert merge_two
    # the pass applies exactly what was merged: that merge commit, whose overlay is the resolution
    await s.wait_pass("staging", merge_two)
    assert s.applied("staging") == f"main@sha1:{merge_two}"
    s.pull()
    assert s.git("show", f"{merge_two}:{overlay}") + "\n" == resolved
    assert s.image("staging") == s.ref("0.4.0", DIGEST_C)
    await s.wait_status(merge_two, "reconciler/staging", "success")
    print(f"conflict: {time.monotonic() - t0:.1f} s")


async def test_force_push_rewinding_main(stack: Stack, kubeconfig: Path) -> None:
    s = stack
    t0 = time.monotonic()
    first = await s.create()
    await s.start_daemon()
    await s.wait_status(first, "reconciler/staging", "success")

    # a change to staging is pushed to main, applied and verified healthy
    s.write("overlays/staging/kustomization.yaml", kustomization(s.n.image, "0.3.0", DIGEST_C))
    gone = s.commit("staging: clock 0.3.0")
    await s.push("main")
    await s.wait_pass("staging", gone)
    await s.wait_status(gone, "reconciler/staging", "success")
    assert s.image("staging") == s.ref("0.3.0", DIGEST_C)

    # someone rewinds main to the commit before it with a force-push
    seen = len(s.seen)
    s.git("reset", "-q", "--hard", first)
    await s.push("main", force=True)
    # the forge's push webhook (before = the rewound-away commit) → the daemon applies the rewound head
    await until(
        lambda: [x for x in s.passes("staging", first) if x in s.seen[seen:] and x.result.ok],
        60,
        "the pass of the rewound head",
    )
    assert s.applied("staging") == f"main@sha1:{first}"
    assert s.image("staging") == s.ref("0.1.0", DIGEST_A)

    # the daemon records the rewind in the notes of the new head, naming the commit that left the branch
    def rewinds() -> list[str]:
        git(s.work, "fetch", "-q", "-f", "origin", "refs/notes/reconciler:refs/notes/reconciler")
        note = git(s.work, "notes", "--ref=reconciler", "show", first, check=False)
        return [
            rec.rewound_from
            for rec in parse_note(note)
            if rec.environment == "staging" and rec.outcome.value == "rewound"
        ]

    assert await until(rewinds, 30, "the rewound record") == [gone]
    # … which `reconciler history` shows, newest first; the commit that left the branch is not listed
    res = await s.cli("history", "staging", "-o", "json")
    assert res.code == 0, res.output
    entries = json.loads(res.stdout)
    assert entries[0]["kind"] == "rewind" and entries[0]["sha"] == first, entries[0]
    assert entries[0]["rewound_from"] == gone and gone[:12] in entries[0]["reason"]
    assert all(e["sha"] != gone for e in entries)
    res = await s.cli("history", "staging")
    assert res.code == 0 and "rewind" in res.stdout and f"{gone[:7]} left the branch" in res.stdout, (
        res.output
    )
    # the gone commit's own records stay in the notes (what it did is not erased)
    gone_note = git(s.work, "notes", "--ref=reconciler", "show", gone)
    assert [rec.outcome.value for rec in parse_note(gone_note) if rec.environment == "staging"] == ["healthy"]

    # the daemon goes on: the next commit is applied as usual
    s.write("overlays/staging/kustomization.yaml", kustomization(s.n.image, "0.2.0", DIGEST_B))
    after = s.commit("staging: clock 0.2.0")
    await s.push("main")
    await s.wait_pass("staging", after)
    await s.wait_status(after, "reconciler/staging", "success")
    assert s.image("staging") == s.ref("0.2.0", DIGEST_B)
    print(f"force-push: {time.monotonic() - t0:.1f} s")


async def _moved(s: Stack, before: str) -> str | None:
    head = await s.head()
    return head if head is not None and head != before else None
