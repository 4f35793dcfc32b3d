"""reconciler's MCP server against the official Python SDK client in both protocol eras, on a real bare
Git remote (no cluster): the tool list and output schemas, history, renders at refs with Secret values
masked, a proposed promotion identical to `reconciler promote --pr`, records in notes and history, and
every kind of bad input refused with a clear MCP error and nothing written."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import pytest
from _mcp_support import (
    BUSY_TOKEN,
    OPS_TOKEN,
    READER_TOKEN,
    Remote,
    client,
    git,
    make_repo,
    start,
    structured,
)
from mcp.shared.exceptions import MCPError
from typer.testing import CliRunner

from reconciler.mcpserver.access import FORBIDDEN, RATE_LIMITED, WRITE_TOOLS, Access, load_tokens
from reconciler.mcpserver.server import READ_TOOLS, RunningServer
from reconciler.promote.records import parse_tool_calls
from reconciler.source.gitops import NOTES_REF

INVALID_PARAMS = -32602


@pytest.fixture
def remote(tmp_path: Path) -> Remote:
    return make_repo(tmp_path / "repo")


@pytest.fixture
def server(remote: Remote, tmp_path: Path) -> RunningServer:
    srv = start(remote, tmp_path / "mcp-cache")
    yield srv  # type: ignore[misc]
    srv.stop()


def _branches(remote: Remote) -> list[str]:
    return sorted(git(remote.bare, "for-each-ref", "--format=%(refname)", "refs/heads").split())


def _calls(remote: Remote) -> list[dict[str, object]]:
    listed = git(remote.bare, "notes", f"--ref={NOTES_REF}", "list", check=False)
    out: list[dict[str, object]] = []
    for line in listed.splitlines():
        _, sha = line.split()
        text = git(remote.bare, "notes", f"--ref={NOTES_REF}", "show", sha)
        out += [c.model_dump(mode="json") for c in parse_tool_calls(text)]
    return out


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_both_eras_list_tools_with_schemas_and_read(server: RunningServer, mode: str) -> None:
    async with client(server.url, mode=mode) as c:
        listed = await c.list_tools()
        names = {t.name for t in listed.tools}
        assert names == {*READ_TOOLS, *WRITE_TOOLS}
        assert set(WRITE_TOOLS) == {
            "proposePromotion",
            "proposeRollback",
            "requestSync",
            "suspendEnvironment",
            "resumeEnvironment",
        }
        for t in listed.tools:
            assert t.output_schema and t.output_schema.get("type") == "object", t.name
            assert t.input_schema["type"] == "object"
        read_only = {t.name for t in listed.tools if t.annotations and t.annotations.read_only_hint}
        assert read_only == set(READ_TOOLS)
        history = structured(await c.call_tool("getHistory", {"environment": "staging"}))
        assert history["environment"] == "staging"
        assert history["entries"] and history["entries"][-1]["subject"] == "bootstrap"
        render = structured(await c.call_tool("renderEnvironment", {"environment": "dev"}))
        secret = next(o for o in render["objects"] if o["kind"] == "Secret")
        assert secret["stringData"] == {"apiKey": "<masked>"} and secret["data"] == {"other": "<masked>"}
        assert "do-not-show-me" not in json.dumps(render)
        assert render["count"] == len(render["objects"]) == 2


async def test_render_at_a_ref_tag_and_commit(server: RunningServer, remote: Remote) -> None:
    first = remote.head()
    git(remote.work, "tag", "v1")
    git(remote.work, "push", "-q", "origin", "v1")
    remote.write("overlays/base/kustomization.yaml", "resources:\n- deployment.yaml\n")
    remote.commit("drop the secret")
    async with client(server.url) as c:
        now = structured(await c.call_tool("renderEnvironment", {"environment": "dev"}))
        assert [o["kind"] for o in now["objects"]] == ["Deployment"]
        for ref in ("v1", first, first[:10]):
            old = structured(await c.call_tool("renderEnvironment", {"environment": "dev", "ref": ref}))
            assert old["revision"].endswith(first) and old["count"] == 2
        git(remote.work, "push", "-q", "origin", f"{first}:refs/heads/old-branch")
        old = structured(await c.call_tool("renderEnvironment", {"environment": "dev", "ref": "old-branch"}))
        assert old["revision"] == f"old-branch@sha1:{first}"


async def test_proposed_promotion_is_the_branch_and_commit_of_promote_pr(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two copies of one remote: the tool on one, `reconciler promote dev staging --all --pr` on the other,
    at the same clock: the same branch and the same commit id."""
    from reconciler.cli import app

    twin = Remote(tmp_path / "twin.git", remote.work)
    shutil.copytree(remote.bare, twin.bare)
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2026-12-01T12:00:00Z")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2026-12-01T12:00:00Z")
    srv = start(remote, tmp_path / "mcp-cache")
    try:
        async with client(srv.url) as c:
            answer = structured(
                await c.call_tool(
                    "proposePromotion", {"fromEnvironment": "dev", "toEnvironment": "staging", "all": True}
                )
            )
    finally:
        srv.stop()
    res = CliRunner().invoke(
        app,
        [
            *["promote", "dev", "staging", "--all", "--pr", "-o", "json", "--repo", str(twin.bare)],
            *["--cache-dir", str(tmp_path / "cli-cache")],
        ],
    )
    assert res.exit_code == 0, res.output
    cli = json.loads(res.stdout)
    assert answer["ok"] and answer["caller"] == "ops"
    assert answer["branch"] == cli["branch"] and answer["branch"].startswith("promote/staging/")
    assert answer["commit"] == cli["commit"]
    assert git(remote.bare, "rev-parse", f"refs/heads/{answer['branch']}") == answer["commit"]
    # recorded: in the notes (identity and arguments), and in `reconciler history`
    calls = _calls(remote)
    assert len(calls) == 1
    call = calls[0]
    assert call["caller"] == "ops" and call["tool"] == "proposePromotion" and call["environment"] == "staging"
    assert call["arguments"] == {"fromEnvironment": "dev", "toEnvironment": "staging", "all": True}
    assert call["commit"] == answer["commit"] and call["branch"] == answer["branch"]
    res = CliRunner().invoke(
        app,
        ["history", "staging", "-o", "json", "--repo", str(remote.bare), "--cache-dir", str(tmp_path / "h")],
    )
    assert res.exit_code == 0, res.output
    entry = next(e for e in json.loads(res.stdout) if e["kind"] == "mcp-call")
    assert entry["requested_by"] == "ops" and entry["tool_call"]["arguments"]["all"] is True
    res = CliRunner().invoke(
        app, ["history", "staging", "--repo", str(remote.bare), "--cache-dir", str(tmp_path / "h")]
    )
    assert res.exit_code == 0 and "mcp-call" in res.stdout and "MCP" in res.stdout


async def test_rollback_proposed_with_requested_by(server: RunningServer, remote: Remote) -> None:
    async with client(server.url) as c:
        promo = structured(
            await c.call_tool(
                "proposePromotion", {"fromEnvironment": "dev", "toEnvironment": "staging", "all": True}
            )
        )
        remote.merge(str(promo["branch"]))
        answer = structured(
            await c.call_tool("proposeRollback", {"environment": "staging", "reason": "smoke test failed"})
        )
    assert answer["branch"] == f"rollback/staging/{str(promo['commit'])[:7]}"
    message = git(remote.bare, "log", "-1", "--format=%B", str(answer["commit"]))
    assert "Requested-By: ops" in message and "Reason: smoke test failed" in message
    assert sorted(str(c["tool"]) for c in _calls(remote)) == ["proposePromotion", "proposeRollback"]


async def test_bad_input_is_refused_and_nothing_is_written(server: RunningServer, remote: Remote) -> None:
    before = (_branches(remote), remote.head())
    async with client(server.url) as c:
        # unknown environment / app, a ref that does not exist: -32602 naming what is wrong
        with pytest.raises(MCPError) as err:
            await c.call_tool("getHistory", {"environment": "qa"})
        assert err.value.code == INVALID_PARAMS and "unknown environment 'qa'" in err.value.message
        assert "dev, prod, staging" in err.value.message
        with pytest.raises(MCPError) as err:
            await c.call_tool(
                "proposePromotion", {"fromEnvironment": "dev", "toEnvironment": "staging", "app": "nope"}
            )
        assert err.value.code == INVALID_PARAMS and "unknown app 'nope'" in err.value.message
        with pytest.raises(MCPError) as err:
            await c.call_tool("renderEnvironment", {"environment": "dev", "ref": "no-such-branch"})
        assert err.value.code == INVALID_PARAMS and "'no-such-branch' does not exist" in err.value.message
        with pytest.raises(MCPError) as err:
            await c.call_tool("proposePromotion", {"fromEnvironment": "dev", "toEnvironment": "staging"})
        assert err.value.code == INVALID_PARAMS and "give app, or all" in err.value.message
        # arguments that break the input schema: a tool error naming the field
        for args in (
            {"environment": "Bad Name!"},
            {"environment": "dev", "ref": "--upload-pack=evil"},
            {"environment": "dev", "ref": 5},
            {},
        ):
            result = await c.call_tool("renderEnvironment", args)
            assert result.is_error, args
            text = result.content[0].text  # type: ignore[union-attr]
            assert "validation error" in text and ("environment" in text or "ref" in text)
        result = await c.call_tool("getHistory", {"environment": "dev", "limit": 0})
        assert result.is_error and "limit" in result.content[0].text  # type: ignore[union-attr]
        # a tool the environment does not enable: prod has no mcp.allow
        with pytest.raises(MCPError) as err:
            await c.call_tool("proposeRollback", {"environment": "prod"})
        assert err.value.code == FORBIDDEN
        assert "disabled for environment 'prod'" in err.value.message and "mcp.allow" in err.value.message
        # requestSync is enabled on staging, but not in ops's allow-list
        with pytest.raises(MCPError) as err:
            await c.call_tool("requestSync", {"environment": "staging"})
        assert err.value.code == FORBIDDEN and "caller 'ops' may not call requestSync" in err.value.message
    async with client(server.url, token=READER_TOKEN) as c:
        with pytest.raises(MCPError) as err:
            await c.call_tool(
                "proposePromotion", {"fromEnvironment": "dev", "toEnvironment": "staging", "all": True}
            )
        assert (
            err.value.code == FORBIDDEN
            and "caller 'reader' may not call proposePromotion" in err.value.message
        )
        assert structured(await c.call_tool("getHistory", {"environment": "dev"}))["entries"]
    assert (_branches(remote), remote.head()) == before
    assert _calls(remote) == []


@pytest.mark.parametrize("mode", ["auto", "legacy"])
@pytest.mark.parametrize("token", [None, "wrong-token-0123456789"])
async def test_missing_or_wrong_token(server: RunningServer, token: str | None, mode: str) -> None:
    with pytest.raises(Exception) as err:
        async with client(server.url, token=token, mode=mode) as c:
            await c.list_tools()
    text = repr(err.value) + str(getattr(err.value, "exceptions", ""))
    assert "401" in text or "unauthorized" in text.lower(), text


async def test_missing_token_answer_is_a_json_rpc_error_that_never_echoes_the_token(
    server: RunningServer,
) -> None:
    import httpx

    async with httpx.AsyncClient() as http:
        for headers, why in (
            ({}, "missing bearer token"),
            ({"Authorization": "Bearer sekrit-value-1234567"}, "unknown bearer token"),
        ):
            r = await http.post(
                server.url, json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, headers=headers
            )
            assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
            error = r.json()["error"]
            assert error["code"] == -32001 and error["message"].startswith(f"unauthorized: {why}")
            assert "sekrit" not in r.text


async def test_a_thousand_calls_in_a_second_are_limited_and_others_still_answered(
    server: RunningServer, remote: Remote
) -> None:
    before = (_branches(remote), remote.head())

    async def one(c: object) -> str:
        try:
            await c.call_tool(
                "proposePromotion", {"fromEnvironment": "dev", "toEnvironment": "prod", "all": True}
            )  # type: ignore[attr-defined]
        except MCPError as exc:
            return "limited" if exc.code == RATE_LIMITED else "refused"
        return "ran"

    async with client(server.url, token=BUSY_TOKEN) as busy, client(server.url, token=READER_TOKEN) as other:

        async def meanwhile() -> list[object]:
            # the other caller is answered while the busy one is being limited
            answers = []
            for _ in range(3):
                answers.append(
                    structured(await other.call_tool("getHistory", {"environment": "dev", "limit": 1}))
                )
            return answers

        *outcomes, others = await asyncio.gather(*(one(busy) for _ in range(1000)), meanwhile())
    assert len(others) == 3 and all(a["entries"] for a in others)  # type: ignore[index]
    limited = [o for o in outcomes if o == "limited"]
    assert len(limited) >= 900 and "ran" not in outcomes, {o: outcomes.count(o) for o in set(outcomes)}
    assert (_branches(remote), remote.head()) == before and _calls(remote) == []


def test_tokens_file_errors_name_the_field_never_the_token(tmp_path: Path) -> None:
    from reconciler.errors import ConfigError

    f = tmp_path / "tokens.yaml"
    f.write_text("callers:\n- identity: a\n  token: short\n")
    with pytest.raises(ConfigError, match=r"tokens.yaml: callers.0.token: String should have at least 16"):
        load_tokens(f)
    f.write_text("callers:\n- identity: a\n  token: aaaaaaaaaaaaaaaaaaaa\n  allow: [deleteEverything]\n")
    with pytest.raises(ConfigError, match=r"callers.0.allow.0") as err:
        load_tokens(f)
    assert "aaaaaaaaaaaaaaaa" not in str(err.value)
    f.write_text(
        "callers: [{identity: a, token: aaaaaaaaaaaaaaaaaaaa}, {identity: b, token: aaaaaaaaaaaaaaaaaaaa}]\n"
    )
    with pytest.raises(ConfigError, match="the same token as an earlier caller"):
        load_tokens(f)
    f.write_text("callers: [\n")
    with pytest.raises(ConfigError, match=r"tokens\.yaml line"):
        load_tokens(f)


async def test_without_tokens_every_caller_is_anonymous_and_read_only(remote: Remote, tmp_path: Path) -> None:
    srv = start(remote, tmp_path / "anon-cache", access=Access())
    try:
        async with client(srv.url, token=None) as c:
            assert structured(await c.call_tool("getHistory", {"environment": "dev"}))["entries"]
            with pytest.raises(MCPError) as err:
                await c.call_tool(
                    "proposePromotion", {"fromEnvironment": "dev", "toEnvironment": "staging", "all": True}
                )
            assert err.value.code == FORBIDDEN and "needs an authenticated caller" in err.value.message
    finally:
        srv.stop()
    assert OPS_TOKEN  # the tokens are only in the tokens file


async def test_daemon_hook_serves_the_same_tools(
    remote: Remote, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`reconciler run --mcp`: start_for_daemon on the daemon's settings; a tokens file named by
    $RECONCILER_MCP_TOKENS_FILE that does not exist (an optional Secret) means anonymous, read-only."""
    from reconciler.mcpserver.server import start_for_daemon
    from reconciler.settings import DaemonSettings

    monkeypatch.setenv("RECONCILER_MCP_TOKENS_FILE", str(tmp_path / "absent" / "tokens.yaml"))
    settings = DaemonSettings(repo=str(remote.bare), cache_dir=tmp_path / "daemon-cache")
    srv = start_for_daemon(settings, "127.0.0.1:0")
    try:
        async with client(srv.url, token=None) as c:
            assert structured(await c.call_tool("getHistory", {"environment": "prod"}))["entries"]
            with pytest.raises(MCPError) as err:
                await c.call_tool("proposeRollback", {"environment": "staging"})
            assert err.value.code == FORBIDDEN and "needs an authenticated caller" in err.value.message
    finally:
        srv.stop()
    with pytest.raises(ValueError, match="HOST:PORT"):
        start_for_daemon(settings, "nonsense")


async def test_rollback_is_pushed_where_the_environment_takes_pushes_and_rules_refuse(
    remote: Remote, tmp_path: Path
) -> None:
    remote.write("envs/staging.yaml", remote.read("envs/staging.yaml").replace("via: pr", "via: push"))
    remote.commit("staging takes changes by push")
    srv = start(remote, tmp_path / "push-cache")
    try:
        async with client(srv.url) as c:
            before = (_branches(remote), remote.head())
            # staging accepts promotions only from dev: a rule refusal, nothing written or recorded
            with pytest.raises(MCPError) as err:
                await c.call_tool(
                    "proposePromotion", {"fromEnvironment": "prod", "toEnvironment": "staging", "all": True}
                )
            assert err.value.code == FORBIDDEN and "accepts promotions only from 'dev'" in err.value.message
            assert (_branches(remote), remote.head()) == before and _calls(remote) == []
            promo = structured(
                await c.call_tool(
                    "proposePromotion", {"fromEnvironment": "dev", "toEnvironment": "staging", "all": True}
                )
            )
            assert promo["branch"].startswith("promote/staging/")  # proposed, even where pushes are allowed
            remote.merge(str(promo["branch"]))
            answer = structured(await c.call_tool("proposeRollback", {"environment": "staging"}))
    finally:
        srv.stop()
    assert answer["pushed_to"] == "main" and answer["commit"] == remote.head()
    assert "Requested-By: ops" in git(remote.bare, "log", "-1", "--format=%B", "main")
