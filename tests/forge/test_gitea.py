"""The local Gitea forge (``reconciler cluster up --forge``) on the real pinned build: the admin token,
repositories pushed over HTTP, signed push webhooks to a loopback receiver, branch protection with a
required status check, restarts that keep the data, and ``cluster status`` / ``down --purge``."""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import time
from pathlib import Path

import pytest
from _forge_support import ForgeRepo, HookReceiver, LocalForge, start_forge
from multidict import CIMultiDict
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.devcluster import LocalCluster, process
from reconciler.devcluster.forge import Forge, ForgeError, push
from reconciler.devcluster.gitea import bootstrap, ensure_gitea, read_token
from webhooks.config import AuthMode
from webhooks.verify import AuthError, AuthSpec, verify

GITEA_SIGNATURE = AuthSpec(AuthMode.HMAC, ("X-Gitea-Signature",))


async def test_admin_token_works(local_forge: LocalForge, forge: Forge) -> None:
    me = await forge.me()
    assert me.login == local_forge.admin == "reconciler-admin"
    assert me.is_admin
    assert await forge.version() == "1.27.3"
    for secret in (local_forge.files.token, local_forge.files.admin, local_forge.files.app_ini):
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600, secret
    # the instance listens on the loopback interface only and has no registration
    assert local_forge.url.startswith("http://127.0.0.1:")
    app_ini = local_forge.files.app_ini.read_text()
    assert "HTTP_ADDR = 127.0.0.1" in app_ini and "DISABLE_REGISTRATION = true" in app_ini
    async with Forge(local_forge.url, "not-a-token") as anonymous:
        with pytest.raises(ForgeError) as err:
            await anonymous.me()
    assert err.value.status == 401


async def test_push_over_http_without_credentials_on_disk(forge: Forge, forge_repo: ForgeRepo) -> None:
    repo = await forge.get_repo(forge_repo.owner, forge_repo.name)
    assert not repo.empty and repo.default_branch == "main"
    sha = forge_repo.commit("envs/dev/app.yaml", "replicas: 2\n")
    await forge_repo.push("main")
    assert await forge.branch_sha(forge_repo.owner, forge_repo.name, "main") == sha
    # the token went through the environment of git, never into the clone's config or a remote URL
    token = forge_repo.forge.token
    config = (forge_repo.work / ".git" / "config").read_text()
    assert token not in config and "@" not in repo.clone_url.split("://", 1)[1].split("/", 1)[0]


async def test_wrong_token_push_fails_without_echoing_it(forge_repo: ForgeRepo) -> None:
    forge_repo.commit("x.txt", "x\n")
    with pytest.raises(ForgeError) as err:
        push(
            forge_repo.work, forge_repo.clone_url, forge_repo.forge.admin, "wrong-token-value", ["main:main"]
        )
    assert "wrong-token-value" not in str(err.value)


async def test_push_webhook_is_delivered_signed(
    forge: Forge, forge_repo: ForgeRepo, hook_receiver: HookReceiver
) -> None:
    secret = "hook-secret-for-tests"
    hook = await forge.add_push_webhook(forge_repo.owner, forge_repo.name, hook_receiver.url, secret)
    assert hook.active and hook.events == ["push"] and hook.config["content_type"] == "json"
    sha = forge_repo.commit("envs/dev/app.yaml", "replicas: 3\n", "scale dev")
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    await asyncio.to_thread(
        push,
        forge_repo.work,
        forge_repo.clone_url,
        forge_repo.forge.admin,
        forge_repo.forge.token,
        ["main:main"],
    )
    delivery = await hook_receiver.next(timeout=20)
    latency = delivery.at - t0
    headers = {k.lower(): v for k, v in delivery.headers.items()}
    assert headers["x-gitea-event"] == "push"
    verify(GITEA_SIGNATURE, secret.encode(), CIMultiDict(delivery.headers), delivery.body, None)
    payload = json.loads(delivery.body)
    assert payload["after"] == sha and payload["ref"] == "refs/heads/main"
    assert payload["repository"]["full_name"] == f"{forge_repo.owner}/{forge_repo.name}"
    # a body signed with another secret is refused
    with pytest.raises(AuthError):
        verify(GITEA_SIGNATURE, b"another-secret", CIMultiDict(delivery.headers), delivery.body, None)
    print(f"push webhook delivered {latency:.2f} s after the push started")
    assert latency < 10


async def test_protected_branch_merges_only_after_the_status_check(
    forge: Forge, forge_repo: ForgeRepo
) -> None:
    o, r = forge_repo.owner, forge_repo.name
    rule = await forge.protect_branch(o, r, "main", status_checks=["reconciler/health"])
    assert rule.enable_status_check and rule.status_check_contexts == ["reconciler/health"]
    subprocess.run(["git", "-C", str(forge_repo.work), "checkout", "-q", "-b", "promote/dev"], check=True)
    head = forge_repo.commit("envs/dev/app.yaml", "image: v2\n", "promote v2 to dev")
    await forge_repo.push("promote/dev")
    pr = await forge.open_pull(o, r, head="promote/dev", base="main", title="Promote v2 to dev")
    assert pr.state == "open" and pr.head.sha == head
    with pytest.raises(ForgeError) as err:
        await forge.merge_pull(o, r, pr.number)
    assert err.value.status == 405, err.value
    await forge.set_status(o, r, head, "reconciler/health", "pending")
    with pytest.raises(ForgeError):
        await forge.merge_pull(o, r, pr.number)
    status = await forge.set_status(o, r, head, "reconciler/health", "success", description="healthy")
    assert status.status == "success"
    await forge.merge_pull(o, r, pr.number)
    merged = await forge.get_pull(o, r, pr.number)
    assert merged.merged and merged.state == "closed" and merged.merge_commit_sha
    # a second pull request is closed without merging
    subprocess.run(["git", "-C", str(forge_repo.work), "checkout", "-q", "-b", "promote/stage"], check=True)
    forge_repo.commit("envs/stage/app.yaml", "image: v2\n")
    await forge_repo.push("promote/stage")
    other = await forge.open_pull(o, r, head="promote/stage", base="main", title="Promote v2 to stage")
    closed = await forge.close_pull(o, r, other.number)
    assert closed.state == "closed" and not closed.merged


async def test_restart_keeps_repositories_and_token(local_forge: LocalForge, forge_repo: ForgeRepo) -> None:
    cluster = local_forge.cluster
    before = cluster.load_state()
    assert before is not None and cluster.running() == {"gitea": True}
    token_before = local_forge.files.token.read_text()
    assert cluster.down(progress=lambda m: None) == ["gitea"]
    assert not process.port_in_use(before.ports["gitea"])
    t0 = time.monotonic()
    again = start_forge(cluster.state_dir)  # recorded port, same data; `forge` is remembered
    print(f"gitea restarted (warm) in {time.monotonic() - t0:.1f} s")
    assert again.url == local_forge.url
    assert local_forge.files.token.read_text() == token_before
    after = cluster.load_state()
    assert after is not None and after.forge
    async with again.client() as client:
        assert (await client.me()).login == local_forge.admin
        repo = await client.get_repo(forge_repo.owner, forge_repo.name)
        assert not repo.empty
    # a later plain `cluster up` (no --forge) keeps the forge because the state remembers it
    plain = LocalCluster(cluster.state_dir, with_kubernetes=False, with_nats=False)
    assert plain.up(progress=lambda m: None).gitea_url == local_forge.url


def test_cluster_status_lists_the_forge(local_forge: LocalForge) -> None:
    state_dir = str(local_forge.cluster.state_dir)
    result = CliRunner().invoke(app, ["cluster", "status", "--state-dir", state_dir])
    assert result.exit_code == 0, result.output
    assert "gitea" in result.output and "running" in result.output
    assert local_forge.url in result.output.replace("\n", "")
    assert local_forge.token not in result.output
    result = CliRunner().invoke(app, ["cluster", "status", "--state-dir", state_dir, "-o", "json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["running"] == {"gitea": True}
    assert data["state"]["forge"] == {
        "url": local_forge.url,
        "admin_user": "reconciler-admin",
        "token_file": str(local_forge.files.token),
    }
    assert local_forge.token not in result.output


def test_no_forge_stops_it_and_purge_erases_it(tmp_path: Path) -> None:
    state = tmp_path / "cluster"
    served = start_forge(state)
    try:
        assert served.files.db.exists()
        # `--no-forge` stops it and forgets it; its data stays
        st = LocalCluster(state, with_kubernetes=False, with_nats=False, with_forge=False).up(
            progress=lambda m: None
        )
        assert "gitea" not in st.pids and not st.forge
        assert not process.processes_of(str(state.resolve()))
        assert served.files.db.exists()
        # back with --forge: the same admin token still works
        again = start_forge(state)
        assert again.token == served.token
        result = CliRunner().invoke(app, ["cluster", "down", "--purge", "--state-dir", str(state)])
        assert result.exit_code == 0, result.output
        assert "gitea" in result.output
        assert not (state / "gitea").exists()
        assert not process.processes_of(str(state.resolve()))
        assert not os.path.exists(state / "state.json")
    finally:
        served.cluster.down(progress=lambda m: None)


async def test_bootstrap_is_idempotent_and_recovers_lost_credentials(local_forge: LocalForge) -> None:
    files, port = local_forge.files, int(local_forge.url.rsplit(":", 1)[1].strip("/"))
    binary = ensure_gitea()
    account = bootstrap(binary, files, port)  # a working token: nothing is created
    assert files.token.read_text().strip() == local_forge.token
    # the token file lost: a new token, same account and password
    files.token.unlink()
    again = bootstrap(binary, files, port)
    token = read_token(files)
    assert token != local_forge.token and (again.username, again.password) == (
        account.username,
        account.password,
    )
    # admin.json lost too: the existing account gets a new password (it is not created twice)
    files.token.unlink()
    files.admin.unlink()
    third = bootstrap(binary, files, port)
    assert third.username == account.username and third.password != account.password
    for f in (files.token, files.admin):
        assert stat.S_IMODE(f.stat().st_mode) == 0o600
    async with Forge(local_forge.url, read_token(files)) as client:
        assert (await client.me()).login == account.username
    local_forge.token = read_token(files)  # for the module's later tests
