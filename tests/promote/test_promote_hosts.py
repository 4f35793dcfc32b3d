"""The pull-request client against a loopback stand-in of the Git host's API (aiohttp on 127.0.0.1) that
checks each request the way GitHub and GitLab would."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from reconciler.promote.hosts import (
    HostConfig,
    HostError,
    host_config,
    manual_instructions,
    open_pull_request,
    parse_remote,
)

TOKEN = "test-token-123"


@dataclass
class Host:
    url: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    open_prs: dict[str, int] = field(default_factory=dict)


def _github_app(host: Host) -> web.Application:
    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        host.requests.append(
            {"method": "POST", "path": request.path, "headers": dict(request.headers), "body": body}
        )
        if request.headers.get("Authorization") != f"Bearer {TOKEN}":
            return web.json_response({"message": "Bad credentials"}, status=401)
        if request.headers.get("Accept") != "application/vnd.github+json":
            return web.json_response({"message": "bad accept"}, status=415)
        missing = {"title", "head", "base"} - set(body)
        if missing:
            return web.json_response({"message": f"missing {sorted(missing)}"}, status=422)
        if body["head"] in host.open_prs:
            return web.json_response(
                {
                    "message": "Validation Failed",
                    "errors": [
                        {
                            "code": "custom",
                            "message": f"A pull request already exists for acme:{body['head']}.",
                        }
                    ],
                },
                status=422,
            )
        number = len(host.open_prs) + 1
        host.open_prs[body["head"]] = number
        return web.json_response(
            {"number": number, "html_url": f"https://github.example/acme/envs/pull/{number}"}, status=201
        )

    async def list_prs(request: web.Request) -> web.Response:
        host.requests.append({"method": "GET", "path": request.path, "query": dict(request.query)})
        head = request.query.get("head", "")
        owner, _, branch = head.partition(":")
        if owner != "acme" or request.query.get("state") != "open":
            return web.json_response([])
        n = host.open_prs.get(branch)
        return web.json_response(
            [] if n is None else [{"number": n, "html_url": f"https://github.example/acme/envs/pull/{n}"}]
        )

    app = web.Application()
    app.router.add_post("/api/v3/repos/acme/envs/pulls", create)
    app.router.add_get("/api/v3/repos/acme/envs/pulls", list_prs)
    return app


def _gitlab_app(host: Host) -> web.Application:
    async def create(request: web.Request) -> web.Response:
        body = await request.json()
        host.requests.append(
            {"method": "POST", "path": request.raw_path, "headers": dict(request.headers), "body": body}
        )
        if request.headers.get("PRIVATE-TOKEN") != TOKEN:
            return web.json_response({"message": "401 Unauthorized"}, status=401)
        if body.get("source_branch") in host.open_prs:
            return web.json_response(
                {"message": ["Another open merge request already exists for this source branch: !1"]},
                status=409,
            )
        iid = len(host.open_prs) + 1
        host.open_prs[body["source_branch"]] = iid
        return web.json_response(
            {"iid": iid, "web_url": f"https://gitlab.example/platform/envs/-/merge_requests/{iid}"},
            status=201,
        )

    async def list_mrs(request: web.Request) -> web.Response:
        host.requests.append({"method": "GET", "path": request.raw_path, "query": dict(request.query)})
        iid = host.open_prs.get(request.query.get("source_branch", ""))
        if iid is None or request.query.get("state") != "opened":
            return web.json_response([])
        return web.json_response(
            [{"iid": iid, "web_url": f"https://gitlab.example/platform/envs/-/merge_requests/{iid}"}]
        )

    app = web.Application()
    # the project path is URL-encoded into one segment: platform%2Fenvs
    app.router.add_post("/api/v4/projects/{project}/merge_requests", create)
    app.router.add_get("/api/v4/projects/{project}/merge_requests", list_mrs)
    return app


async def _serve(app: web.Application) -> tuple[web.AppRunner, str]:
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


@pytest.fixture
async def github() -> AsyncIterator[Host]:
    host = Host(url="")
    runner, url = await _serve(_github_app(host))
    host.url = url
    yield host
    await runner.cleanup()


@pytest.fixture
async def gitlab() -> AsyncIterator[Host]:
    host = Host(url="")
    runner, url = await _serve(_gitlab_app(host))
    host.url = url
    yield host
    await runner.cleanup()


async def test_github_opens_then_finds_the_existing_pull_request(github: Host) -> None:
    config = host_config(
        "git@github.example:acme/envs.git",
        kind="github",
        token=TOKEN,
        api_url=f"{github.url}/api/v3",
        environ={},
    )
    assert config is not None and config.repo == "acme/envs"
    pr = await open_pull_request(config, head="promote/staging/abc1234", base="main", title="t", body="b")
    assert (pr.number, pr.created) == (1, True)
    assert pr.url == "https://github.example/acme/envs/pull/1"
    sent = github.requests[0]
    assert sent["body"] == {"title": "t", "head": "promote/staging/abc1234", "base": "main", "body": "b"}
    assert sent["headers"]["X-GitHub-Api-Version"] == "2022-11-28"
    again = await open_pull_request(config, head="promote/staging/abc1234", base="main", title="t", body="b")
    assert (again.number, again.created) == (1, False)
    assert github.requests[-1]["query"] == {
        "head": "acme:promote/staging/abc1234",
        "base": "main",
        "state": "open",
    }


async def test_github_errors_carry_status_and_message(github: Host) -> None:
    config = HostConfig(
        kind="github", repo="acme/envs", token="wrong", api_url=f"{github.url}/api/v3", web_url=""
    )
    with pytest.raises(HostError, match="401: Bad credentials"):
        await open_pull_request(config, head="x", base="main", title="t", body="b")
    with pytest.raises(HostError, match="no API token"):
        await open_pull_request(
            HostConfig(kind="github", repo="acme/envs", token=None, api_url=github.url, web_url=""),
            head="x",
            base="main",
            title="t",
            body="b",
        )


async def test_gitlab_merge_request(gitlab: Host) -> None:
    config = host_config(
        "https://gitlab.example/platform/envs.git", token=TOKEN, api_url=f"{gitlab.url}/api/v4", environ={}
    )
    assert config is not None and config.kind == "gitlab" and config.repo == "platform/envs"
    mr = await open_pull_request(config, head="rollback/prod/1234567", base="main", title="t", body="why")
    assert (mr.number, mr.created, mr.url) == (
        1,
        True,
        "https://gitlab.example/platform/envs/-/merge_requests/1",
    )
    sent = gitlab.requests[0]
    assert sent["path"] == "/api/v4/projects/platform%2Fenvs/merge_requests"
    assert sent["body"]["source_branch"] == "rollback/prod/1234567" and sent["body"]["description"] == "why"
    again = await open_pull_request(config, head="rollback/prod/1234567", base="main", title="t", body="why")
    assert (again.number, again.created) == (1, False)


def test_remote_parsing_and_instructions() -> None:
    assert parse_remote("https://github.com/acme/envs.git") == ("github.com", "acme/envs")
    assert parse_remote("git@gitlab.com:group/sub/envs.git") == ("gitlab.com", "group/sub/envs")
    assert parse_remote("ssh://git@github.com:22/acme/envs") == ("github.com", "acme/envs")
    assert parse_remote("/srv/git/envs.git") is None
    gh = host_config("https://github.com/acme/envs.git", environ={"GITHUB_TOKEN": "t"})
    assert gh is not None and gh.api_url == "https://api.github.com" and gh.token == "t"
    assert manual_instructions(gh, "", "promote/staging/abc", "main") == (
        "open a pull request: https://github.com/acme/envs/compare/main...promote/staging/abc?expand=1"
    )
    gl = host_config("git@gitlab.com:group/envs.git", environ={})
    assert gl is not None and gl.token is None
    assert "merge_request%5Bsource_branch%5D=promote%2Fstaging%2Fabc" in manual_instructions(
        gl, "", "promote/staging/abc", "main"
    )
    assert host_config("/srv/git/envs.git", environ={}) is None
    assert "branch 'b'" in manual_instructions(None, "/srv/git/envs.git", "b", "main")
    assert json.dumps(manual_instructions(None, "x", "b", "main"))


async def test_promote_opens_the_pull_request_through_the_api(github: Host, tmp_path: Path) -> None:
    import asyncio

    from _promote_support import make_remote, three_envs

    from reconciler.promote.promotion import promote
    from reconciler.promote.records import Outcome, OutcomeRecord, record_outcome
    from reconciler.reconcile import load_environments
    from reconciler.source.gitops import GitWriter

    remote = make_remote(tmp_path / "repo", three_envs())
    w = GitWriter(str(remote.bare), "main", tmp_path / "cache")

    def run() -> object:
        w.sync()
        record_outcome(
            w,
            remote.head(),
            OutcomeRecord(environment="dev", outcome=Outcome.HEALTHY, revision=remote.head()),
        )
        w.sync()
        host = HostConfig(
            kind="github", repo="acme/envs", token=TOKEN, api_url=f"{github.url}/api/v3", web_url=""
        )
        return promote(w, load_environments(w.workdir), "dev", "staging", all_images=True, host=host)

    result = await asyncio.to_thread(run)
    assert result.pull_request is not None and result.pull_request.number == 1  # type: ignore[attr-defined]
    sent = github.requests[0]["body"]
    assert sent["head"] == result.branch and sent["base"] == "main"  # type: ignore[attr-defined]
    assert sent["title"].startswith("promote(staging): clock-mcp 0.2.0 from dev")
    assert "ghcr.io/acme/clock-mcp: ghcr.io/acme/clock-mcp:0.1.0@" in sent["body"]
