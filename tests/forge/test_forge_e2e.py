"""Promotion by pull request on a real Git forge, end to end (issue 26): the environment repository is
hosted on the local Gitea (``cluster up --forge``), Gitea's webhooks reach the project's receiver, which
publishes on NATS, and the daemon — following the repository over HTTP with git credentials from its
environment — applies what the forge's branch says on the session's API server and posts each outcome
back to the forge as a commit status. No stand-ins: every request goes to the real Gitea, receiver,
NATS and kube-apiserver (see tests/forge/_e2e_support.py).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from _e2e_support import CHECK, DIGEST_A, DIGEST_B, GitPause, Stack, kustomization, until

from reconciler.devcluster.forge import ForgeError

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
    assert pr.body.strip() == change, pr.body  # the changeset, one line per image
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
    assert "staging FAILED: validation failed" in failed.description, failed.description
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


async def _moved(s: Stack, before: str) -> str | None:
    head = await s.head()
    return head if head is not None and head != before else None
