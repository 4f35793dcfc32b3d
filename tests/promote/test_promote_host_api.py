"""Gitea next to GitHub and GitLab, pull-request state, commit statuses and retries, against the loopback
stand-ins of ``_host_standins`` (each checks its host's paths, bodies and authorization header)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest
import typer
from _host_standins import TOKEN, Forge, Kind, Pull, free_port, serve

from reconciler.errors import ConfigError
from reconciler.promote.hosts import (
    DESCRIPTION_LIMIT,
    HostConfig,
    HostError,
    find_pull_request,
    get_pull_request,
    host_config,
    latest_status,
    list_commit_statuses,
    manual_instructions,
    open_pull_request,
    post_commit_status,
    replace_section,
    set_pull_request_section,
)

KINDS: list[Kind] = ["github", "gitlab", "gitea"]
SHA = "c0ffee" + "0" * 34
HEAD = "promote/staging/abc1234"


@pytest.fixture
async def forges() -> AsyncIterator[dict[Kind, Forge]]:
    made: dict[Kind, Forge] = {k: Forge(kind=k) for k in KINDS}
    runners = [await serve(f) for f in made.values()]
    yield made
    for r in runners:
        await r.cleanup()


@pytest.fixture(params=KINDS)
def forge(request: pytest.FixtureRequest, forges: dict[Kind, Forge]) -> Forge:
    f: Forge = forges[request.param]
    return f


async def _open(config: HostConfig, head: str = HEAD, base: str = "main") -> Any:
    return await open_pull_request(config, head=head, base=base, title="promote(staging)", body="why")


# --- configuration ------------------------------------------------------------------------------------


def test_gitea_is_configured_from_the_remote_or_the_variable() -> None:
    cfg = host_config("https://gitea.example/acme/envs.git", environ={"GITEA_TOKEN": "g"})
    assert cfg is not None
    assert (cfg.kind, cfg.repo, cfg.token) == ("gitea", "acme/envs", "g")
    assert (cfg.web_url, cfg.api_url) == ("https://gitea.example", "https://gitea.example/api/v1")
    assert cfg.retry_seconds == 60.0
    # an http remote keeps its scheme and port; the variable names the kind when the host name does not
    env = {
        "RECONCILER_GIT_HOST": "gitea",
        "RECONCILER_GIT_HOST_TOKEN": "t",
        "GITEA_TOKEN": "g",
        "RECONCILER_GIT_HOST_RETRY_SECONDS": "2.5",
    }
    local = host_config("http://bot:pw@127.0.0.1:3000/acme/envs.git", environ=env)
    assert local is not None and local.kind == "gitea" and local.token == "t"
    assert (local.web_url, local.api_url) == ("http://127.0.0.1:3000", "http://127.0.0.1:3000/api/v1")
    assert local.retry_seconds == 2.5
    assert "'t'" not in repr(local) and "***" in repr(local)
    ssh = host_config("git@gitea.example:acme/envs.git", environ={})
    assert ssh is not None and ssh.api_url == "https://gitea.example/api/v1" and ssh.token is None
    assert manual_instructions(ssh, "", HEAD, "main") == (
        "open a pull request: https://gitea.example/acme/envs/compare/main...promote/staging/abc1234"
    )
    explicit = host_config(
        "/srv/envs.git", kind="gitea", repo="acme/envs", web_url="http://g:3000", environ={}
    )
    assert explicit is not None and explicit.api_url == "http://g:3000/api/v1"
    # GitHub and GitLab defaults are unchanged
    gh = host_config("https://github.com/acme/envs.git", environ={})
    assert gh is not None and gh.api_url == "https://api.github.com"
    ghe = host_config("https://github.corp.example/acme/envs.git", environ={})
    assert ghe is not None and ghe.api_url == "https://github.corp.example/api/v3"
    with pytest.raises(ConfigError, match="RECONCILER_GIT_HOST must be one of github, gitlab, gitea"):
        host_config("https://example/acme/envs.git", environ={"RECONCILER_GIT_HOST": "bitbucket"})
    with pytest.raises(ConfigError, match="RETRY_SECONDS"):
        host_config("https://gitea.example/a/b", environ={"RECONCILER_GIT_HOST_RETRY_SECONDS": "soon"})


def test_cli_host_option_takes_gitea() -> None:
    from reconciler.promote.cli import _host

    cfg = _host("https://code.example/acme/envs.git", "gitea", None, "http://127.0.0.1:1/api/v1")
    assert cfg is not None and cfg.kind == "gitea" and cfg.api_url == "http://127.0.0.1:1/api/v1"
    with pytest.raises(typer.Exit) as exc:
        _host("https://code.example/acme/envs.git", "bitbucket", None, None)
    assert exc.value.exit_code == 2


# --- Gitea pull requests ------------------------------------------------------------------------------


async def test_gitea_opens_then_finds_the_open_pull_request(forges: dict[Kind, Forge]) -> None:
    gitea = forges["gitea"]
    pr = await _open(gitea.config())
    assert (pr.number, pr.created, pr.url) == (1, True, "https://gitea.example/acme/envs/pulls/1")
    sent = gitea.requests[0]
    assert sent["path"] == "/api/v1/repos/acme/envs/pulls"
    assert sent["body"] == {"title": "promote(staging)", "head": HEAD, "base": "main", "body": "why"}
    assert sent["headers"]["Authorization"] == f"token {TOKEN}"
    again = await _open(gitea.config())
    assert (again.number, again.created) == (1, False)
    assert gitea.requests[-1]["path"] == f"/api/v1/repos/acme/envs/pulls/main/{HEAD}"
    assert len(gitea.pulls) == 1


@pytest.mark.parametrize(("conflict", "route"), [(409, True), (409, False), (422, False)])
async def test_gitea_finds_the_open_one_past_closed_ones_and_without_the_base_head_route(
    forges: dict[Kind, Forge], conflict: int, route: bool
) -> None:
    gitea = forges["gitea"]
    gitea.conflict_status, gitea.base_head_route = conflict, route
    gitea.pulls.append(Pull(1, HEAD, "main", "old", "", state="closed"))
    gitea.pulls.append(Pull(2, HEAD, "main", "current", ""))
    found = await _open(gitea.config())
    assert (found.number, found.created) == (2, False)
    listed = [
        r for r in gitea.requests if r["path"] == "/api/v1/repos/acme/envs/pulls" and r["method"] == "GET"
    ]
    assert listed and listed[-1]["query"]["state"] == "open" and listed[-1]["query"]["base_branch"] == "main"
    assert await find_pull_request(gitea.config(), head="other", base="main") is None


async def test_gitea_conflict_without_an_open_pull_request_is_an_error(
    forges: dict[Kind, Forge], monkeypatch: pytest.MonkeyPatch
) -> None:
    gitea = forges["gitea"]
    gitea.base_head_route = False
    gitea.pulls.append(Pull(1, HEAD, "main", "t", ""))
    shown = gitea.pull_json

    def elsewhere(p: Pull) -> dict[str, Any]:  # the list shows it with another base
        data = shown(p)
        data["base"]["ref"] = "elsewhere"
        return data

    monkeypatch.setattr(gitea, "pull_json", elsewhere)
    with pytest.raises(HostError, match=r"POST .*/pulls: 409: pull request already exists.*was not found"):
        await _open(gitea.config())


# --- pull-request state -------------------------------------------------------------------------------


async def test_pull_request_state_on_every_host(forge: Forge) -> None:
    config = forge.config()
    first = await _open(config)
    forge.pulls[0].head_sha = "a" * 40
    state = await get_pull_request(config, first.number)
    assert (state.number, state.url, state.state, state.merged) == (first.number, first.url, "open", False)
    assert (state.head_sha, state.head_ref, state.base_ref, state.merge_commit_sha) == (
        "a" * 40,
        HEAD,
        "main",
        None,
    )
    forge.pulls[0].state, forge.pulls[0].merge_commit_sha = "merged", "m" * 40
    merged = await get_pull_request(config, first.number)
    assert (merged.state, merged.merged, merged.merge_commit_sha) == ("merged", True, "m" * 40)
    second = await _open(config, head="rollback/prod/1234567")
    forge.pulls[1].state = "closed"
    closed = await get_pull_request(config, second.number)
    assert (closed.state, closed.merged, closed.head_ref) == ("closed", False, "rollback/prod/1234567")
    with pytest.raises(HostError, match=r"GET .*: 404: .*[Nn]ot [Ff]ound"):
        await get_pull_request(config, 99)


# --- commit statuses ----------------------------------------------------------------------------------


async def test_commit_statuses_on_every_host(forge: Forge) -> None:
    config = forge.config()
    long = "health gate passed: " + "x" * 200
    posted = await post_commit_status(
        config,
        SHA,
        context="reconciler/staging",
        state="success",
        description=long,
        target_url="http://127.0.0.1:9090/env/staging",
    )
    sent = forge.posts(f"/statuses/{SHA}")[-1]
    name_key = "name" if forge.kind == "gitlab" else "context"
    assert sent["body"] == {
        "state": "success",
        name_key: "reconciler/staging",
        "description": long[: DESCRIPTION_LIMIT - 1] + "…",
        "target_url": "http://127.0.0.1:9090/env/staging",
    }
    assert len(sent["body"]["description"]) == DESCRIPTION_LIMIT
    prefix = (
        "/api/v4/projects/platform%2Fenvs"
        if forge.kind == "gitlab"
        else f"{forge.api[len(forge.url) :]}/repos/acme/envs"
    )
    assert sent["path"] == f"{prefix}/statuses/{SHA}"
    assert (posted.context, posted.state, posted.host_state) == ("reconciler/staging", "success", "success")
    assert posted.target_url == "http://127.0.0.1:9090/env/staging"

    failed = await post_commit_status(
        config, SHA, context="reconciler/staging", state="failure", description="gate failed"
    )
    errored = await post_commit_status(
        config, SHA, context="reconciler/prod", state="error", description="no answer"
    )
    host_word = {"github": "failure", "gitlab": "failed", "gitea": "failure"}[forge.kind]
    assert (failed.state, failed.host_state) == ("failure", host_word)
    assert errored.host_state == ("failed" if forge.kind == "gitlab" else "error")
    assert forge.posts(f"/statuses/{SHA}")[-1]["body"]["state"] == errored.host_state
    assert "target_url" not in forge.posts(f"/statuses/{SHA}")[-1]["body"]

    statuses = await list_commit_statuses(config, SHA)
    latest = latest_status(statuses, "reconciler/staging")
    assert latest is not None and (latest.state, latest.description) == ("failure", "gate failed")
    assert latest_status(statuses, "reconciler/prod") is not None
    assert latest_status(statuses, "other") is None
    assert await list_commit_statuses(config, "f" * 40) == []


async def test_an_unchanged_status_is_not_posted_again(forge: Forge) -> None:
    config = forge.config()
    first = await post_commit_status(
        config, SHA, context="c", state="pending", description="waiting", only_if_changed=True
    )
    same = await post_commit_status(
        config, SHA, context="c", state="pending", description="waiting", only_if_changed=True
    )
    assert same.id == first.id and len(forge.posts(f"/statuses/{SHA}")) == 1
    moved = await post_commit_status(
        config, SHA, context="c", state="success", description="done", only_if_changed=True
    )
    assert moved.id != first.id and len(forge.posts(f"/statuses/{SHA}")) == 2


async def test_gitlab_same_state_again_counts_as_done(forges: dict[Kind, Forge]) -> None:
    gitlab = forges["gitlab"]
    first = await post_commit_status(gitlab.config(), SHA, context="c", state="pending", description="d")
    again = await post_commit_status(gitlab.config(), SHA, context="c", state="pending", description="d")
    assert again.id == first.id and len(gitlab.statuses[SHA]) == 1
    with pytest.raises(HostError, match="state must be"):
        await post_commit_status(gitlab.config(), SHA, context="c", state="running", description="d")  # type: ignore[arg-type]


# --- retries ------------------------------------------------------------------------------------------


async def test_502_twice_then_the_pull_request_opens(forge: Forge, caplog: pytest.LogCaptureFixture) -> None:
    forge.fail_with = [502, 502]
    with caplog.at_level(logging.WARNING, logger="reconciler.promote.hosts"):
        pr = await _open(forge.config())
    assert (pr.number, pr.created) == (1, True)
    assert len(forge.posts("merge_requests" if forge.kind == "gitlab" else "/pulls")) == 3
    assert len(forge.pulls) == 1
    retried = [r.getMessage() for r in caplog.records if "retrying" in r.getMessage()]
    assert len(retried) == 2 and "502" in retried[0] and TOKEN not in " ".join(retried)


async def test_429_with_retry_after_is_retried_and_statuses_too(forge: Forge) -> None:
    forge.fail_with, forge.retry_after = [429, 503], "0"
    posted = await post_commit_status(forge.config(), SHA, context="c", state="success", description="ok")
    assert posted.state == "success" and len(forge.posts(f"/statuses/{SHA}")) == 3


async def test_connection_refused_until_the_server_appears(forge: Forge) -> None:
    port = free_port()
    down = Forge(kind=forge.kind, url=f"http://127.0.0.1:{port}")
    task = asyncio.create_task(_open(down.config(retry_seconds=10)))
    await asyncio.sleep(0.4)
    assert not task.done()
    runner = await serve(down, port)
    try:
        pr = await asyncio.wait_for(task, 10)
    finally:
        await runner.cleanup()
    assert (pr.number, pr.created) == (1, True) and len(down.pulls) == 1


async def test_a_lost_answer_does_not_open_a_second_pull_request(forge: Forge) -> None:
    forge.lose_answers = 1
    pr = await _open(forge.config())
    assert pr.number == 1 and pr.created is False
    assert len(forge.pulls) == 1 and len(forge.open_pulls()) == 1
    assert len(forge.posts("merge_requests" if forge.kind == "gitlab" else "/pulls")) == 2


async def test_retries_stop_at_the_budget_with_a_report(forge: Forge) -> None:
    forge.fail_with = [503] * 1000
    started = time.monotonic()
    with pytest.raises(HostError) as caught:
        await _open(forge.config(retry_seconds=0.5))
    took = time.monotonic() - started
    text = str(caught.value)
    assert caught.value.status == 503 and took < 3
    assert text.startswith("POST http://127.0.0.1:") and ": 503: failing with 503 (gave up after " in text
    assert 2 <= len(forge.requests) < 60


async def test_other_4xx_are_final_and_errors_never_show_the_token(forge: Forge) -> None:
    wrong = forge.config(token="wrong-" + TOKEN)
    with pytest.raises(HostError) as caught:
        await _open(wrong)
    assert len(forge.requests) == 1 and caught.value.status == 401
    text = str(caught.value)
    assert "POST http://127.0.0.1:" in text and ": 401: " in text and TOKEN not in text
    forge.fail_with = [404]
    with pytest.raises(HostError, match=r": 404: failing with 404$"):
        await post_commit_status(forge.config(), SHA, context="c", state="success", description="d")
    assert len(forge.requests) == 2


async def test_url_credentials_are_masked(forges: dict[Kind, Forge]) -> None:
    gitlab = forges["gitlab"]
    api = gitlab.api.replace("http://", "http://robot:hunter2@")
    config = HostConfig(
        kind="gitlab", repo="platform/envs", token="wrong", api_url=api, web_url="", retry_seconds=0
    )
    with pytest.raises(HostError) as caught:
        await _open(config)
    assert "hunter2" not in str(caught.value) and "robot" not in str(caught.value)
    down = HostConfig(
        kind="gitea",
        repo="a/b",
        token=TOKEN,
        api_url=f"http://127.0.0.1:{free_port()}/api/v1",
        web_url="",
        retry_seconds=0,
    )
    with pytest.raises(
        HostError,
        match=r"POST http://127\.0\.0\.1:\d+/api/v1/repos/a/b/pulls: no answer: .*gave up after 1 attempt in",
    ) as refused:
        await _open(down)
    assert refused.value.status == 0 and TOKEN not in str(refused.value)


def test_a_marked_section_is_replaced_in_place_or_appended() -> None:
    assert replace_section("", "c", "report") == "<!-- c -->\nreport\n<!-- /c -->\n"
    body = "changeset\n\n<!-- c -->\nold\n<!-- /c -->\n\nfooter"
    assert replace_section(body, "c", "new\n") == "changeset\n\n<!-- c -->\nnew\n<!-- /c -->\n\nfooter"
    assert replace_section("changeset\n", "c", "x") == "changeset\n\n<!-- c -->\nx\n<!-- /c -->\n"


async def test_the_check_section_of_a_pull_request_body_on_every_host(forge: Forge) -> None:
    config = forge.config()
    pr = await _open(config)
    await set_pull_request_section(config, pr.number, "reconciler-check", "### check: passed")
    await set_pull_request_section(config, pr.number, "reconciler-check", "### check: FAILED")
    (stored,) = forge.pulls
    assert stored.body == "why\n\n<!-- reconciler-check -->\n### check: FAILED\n<!-- /reconciler-check -->\n"
    edits = [r for r in forge.requests if r["method"] in ("PATCH", "PUT")]
    assert len(edits) == 2
    await set_pull_request_section(config, pr.number, "reconciler-check", "### check: FAILED")
    assert len([r for r in forge.requests if r["method"] in ("PATCH", "PUT")]) == 2, "unchanged: not sent"
    with pytest.raises(HostError, match="404"):
        await set_pull_request_section(config, 99, "reconciler-check", "x")
