"""The daemon's actions (``POST /api/env/<name>[/apps/<app>]/rollback``) and the status page's "Roll back"
buttons: a real :class:`~reconciler.runtime.Daemon` (its API server unreachable: passes fail, Git works) and
its HTTP server on 127.0.0.1, on a real bare Git remote with real promotions; the page driven in Debian's
Chromium. Checks authentication (no token, wrong token, proxy identity), the origin check, the answers'
statuses and fields, what lands on the remote (``Rollback-Of``, ``Reason``, ``Requested-By``), the history,
and that the token never shows on the page or in the logs."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import structlog
from _observe_support import CHROMIUM, CHROMIUM_ARGS, open_confirmation, require_chromium, save_screenshot
from aiohttp import web
from pydantic import SecretStr
from reconciler_testing import REPO_ROOT, EnvRepo, daemon_settings, until

from reconciler.errors import ConfigError
from reconciler.model import PassResult
from reconciler.observe import configure_logging
from reconciler.promote.cli import _row
from reconciler.promote.history import timeline
from reconciler.promote.promotion import promote
from reconciler.promote.records import Outcome, OutcomeRecord, record_outcome
from reconciler.reconcile import load_environments
from reconciler.runtime import Daemon
from reconciler.runtime.actions import load_actions_config
from reconciler.runtime.http import start_http
from reconciler.settings import DaemonSettings
from reconciler.source.gitops import GitWriter, parse_trailer_lines

TOKEN = "act-0123456789abcdef-ZZtokenZZ"
WRONG = "act-wrong-guess-0000-YYwrongYY"
CLOCK = "ghcr.io/acme/clock-mcp"
WEATHER = "ghcr.io/acme/weather-mcp"
D = {k: f"sha256:{k * 64}" for k in "abde"}
OLD = {CLOCK: ("0.1.0", D["a"]), WEATHER: ("0.1.0", D["d"])}
NEW = {CLOCK: ("0.2.0", D["b"]), WEATHER: ("0.2.0", D["e"])}
STAGING = "overlays/staging/kustomization.yaml"
UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: kube-token}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: u}
current-context: nowhere
"""


def _deployment(name: str) -> str:
    return f"""\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  labels: {{app.kubernetes.io/name: {name}}}
spec:
  replicas: 1
  selector:
    matchLabels: {{app.kubernetes.io/name: {name}}}
  template:
    metadata:
      labels: {{app.kubernetes.io/name: {name}}}
    spec:
      containers:
      - name: server
        image: ghcr.io/acme/{name}:0.0.1
"""


def _overlay(versions: dict[str, tuple[str, str]]) -> str:
    entries = "".join(f"- name: {n}\n  newTag: {t}\n  digest: {d}\n" for n, (t, d) in versions.items())
    return f"resources:\n- ../base\nimages:\n{entries}"


def _env(name: str, via: str, source: str | None) -> str:
    src = f"from: {source}, " if source else ""
    return (
        f"overlay: overlays/{name}\nnamespace: agents-{name}\n"
        "sync: {interval: 3600, allowMassPrune: true}\nhealth: {timeout: 60, noControllerAfter: 5}\n"
        f"promotion: {{{src}via: {via}, requireHealth: healthy}}\n"
    )


def git(cwd: Path, *args: str) -> str:
    proc = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, f"git {' '.join(args)}: {proc.stderr}"
    return proc.stdout.strip()


def _healthy(w: GitWriter, env: str) -> None:
    sha = w.sync()
    record_outcome(w, sha, OutcomeRecord(environment=env, outcome=Outcome.HEALTHY, revision=sha))
    w.sync()


@dataclass
class Scenario:
    """A bare remote where dev (push) runs clock-mcp and weather-mcp 0.2.0, and one promotion moved both
    into staging (push; ``staging``) and, by a merged pull request, into prod (``promotion.via: pr``)."""

    remote: Path
    promotions: dict[str, str]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Scenario:
    """The scenario, built once (its promotions render overlays); each test gets a copy (``scenario``)."""
    from reconciler.source.bootstrap import init_repo_with_remote

    root = tmp_path_factory.mktemp("actions")
    src = root / "src"
    (src / "envs").mkdir(parents=True)
    (src / "envs" / ".keep").write_text("")
    repo = EnvRepo(*init_repo_with_remote(src, root / "repo"))
    files = {
        "envs/dev.yaml": _env("dev", "push", None),
        "envs/staging.yaml": _env("staging", "push", "dev"),
        "envs/prod.yaml": _env("prod", "pr", "staging"),
        "overlays/base/kustomization.yaml": "resources:\n- clock.yaml\n- weather.yaml\n",
        "overlays/base/clock.yaml": _deployment("clock-mcp"),
        "overlays/base/weather.yaml": _deployment("weather-mcp"),
        "overlays/dev/kustomization.yaml": _overlay(NEW),
        STAGING: _overlay(OLD),
        "overlays/prod/kustomization.yaml": _overlay(OLD),
    }
    for rel, text in files.items():
        repo.write(rel, text)
    repo.commit("two apps in three environments")
    w = GitWriter(str(repo.remote), "main", root / "setup", backoff=0.01)
    _healthy(w, "dev")
    staging = promote(w, load_environments(w.workdir), "dev", "staging", all_images=True)
    _healthy(w, "staging")
    prod = promote(w, load_environments(w.workdir), "staging", "prod", all_images=True)
    assert staging.commit and prod.commit and prod.branch
    git(repo.work, "fetch", "-q", "origin")
    git(repo.work, "reset", "-q", "--hard", "origin/main")
    git(repo.work, "merge", "-q", "--no-ff", "-m", "Merge pull request", f"origin/{prod.branch}")
    git(repo.work, "push", "-q", "origin", "HEAD:main")
    git(repo.remote, "branch", "-D", prod.branch)
    w.close()
    return Scenario(remote=repo.remote, promotions={"staging": staging.commit, "prod": prod.commit})


@pytest.fixture
def scenario(built: Scenario, tmp_path: Path) -> Scenario:
    remote = tmp_path / "remote.git"
    shutil.copytree(built.remote, remote)
    return Scenario(remote=remote, promotions=dict(built.promotions))


# -- the running daemon ---------------------------------------------------------------------------------


@dataclass
class Served:
    base: str
    remote: Path
    daemon: Daemon
    http: aiohttp.ClientSession
    results: list[PassResult] = field(default_factory=list)

    async def post(
        self,
        path: str,
        body: Any = None,
        *,
        token: str | None = TOKEN,
        headers: dict[str, str] | None = None,
        data: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = f"Bearer {token}"
        kwargs: dict[str, Any] = {"json": body} if body is not None else {}
        if data is not None:
            kwargs = {"data": data}
        async with self.http.post(self.base + path, headers=h, **kwargs) as resp:
            return resp.status, await resp.json()

    async def page(self, path: str, headers: dict[str, str] | None = None) -> tuple[str, Any]:
        async with self.http.get(self.base + path, headers=headers) as resp:
            assert resp.status == 200, await resp.text()
            return await resp.text(), resp.headers

    def head(self) -> str:
        return git(self.remote, "rev-parse", "refs/heads/main")

    def count(self) -> int:
        return int(git(self.remote, "rev-list", "--count", "refs/heads/main"))

    def branches(self) -> list[str]:
        return git(self.remote, "for-each-ref", "--format=%(refname:short)", "refs/heads").split()

    def trailers(self, sha: str) -> dict[str, list[str]]:
        return parse_trailer_lines(git(self.remote, "log", "-1", "--format=%(trailers:only,unfold)", sha))

    def file(self, rev: str, rel: str) -> str:
        return git(self.remote, "show", f"{rev}:{rel}")


@contextlib.asynccontextmanager
async def running(
    scenario: Scenario, tmp_path: Path, *, refresh: int = 5, **overrides: Any
) -> AsyncIterator[Served]:
    """The daemon (every environment of the scenario) and its HTTP server on a free port."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
    settings = daemon_settings(scenario.remote, kubeconfig, tmp_path / "cache", envs=[], **overrides)
    results: list[PassResult] = []
    daemon = Daemon(settings, on_result=results.append)
    await daemon.start()
    runner = await start_http(daemon, port=0, refresh=refresh, diff_ttl=1.0, health_ttl=0)
    port = runner.addresses[0][1]
    session = aiohttp.ClientSession()
    try:
        yield Served(f"http://127.0.0.1:{port}", scenario.remote, daemon, session, results)
    finally:
        await session.close()
        await runner.cleanup()
        await daemon.stop()


@pytest.fixture
def logs() -> Iterator[io.StringIO]:
    """Every log line (JSON), to check that no token is in them."""
    buf = io.StringIO()
    configure_logging(json=True, level="DEBUG", stream=buf)
    yield buf
    structlog.reset_defaults()
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_reconciler_observe_handler", False):
            root.removeHandler(h)


# -- refusals: nothing committed ------------------------------------------------------------------------


async def test_without_a_token_actions_are_off_and_the_buttons_say_why(
    scenario: Scenario, tmp_path: Path
) -> None:
    async with running(scenario, tmp_path) as s:
        count = s.count()
        status, body = await s.post("/api/env/staging/rollback", {"reason": "x"})
        assert status == 403
        assert body["error"].startswith("actions are disabled: set RECONCILER_ACTIONS_TOKEN_FILE")
        status, _ = await s.post("/api/env/staging/apps/weather-mcp/rollback", token=None)
        assert status == 403
        assert s.count() == count and s.branches() == ["main"]

        html, headers = await s.page("/env/staging")
        assert 'data-actions="off"' in html and 'data-testid="actions-disabled"' in html
        assert "Buttons disabled: actions are disabled: set RECONCILER_ACTIONS_TOKEN_FILE" in html
        rollback = html[html.index('<section id="rollback"') :]
        assert rollback.count("disabled title=") == 3  # the environment and both apps
        assert 'id="rollback-dialog"' not in html
        assert "frame-ancestors 'none'" in headers["Content-Security-Policy"]


async def test_wrong_or_missing_credentials_are_401_and_never_logged(
    scenario: Scenario, tmp_path: Path, logs: io.StringIO
) -> None:
    async with running(scenario, tmp_path, actions_token=TOKEN) as s:
        count = s.count()
        for token, headers, why in [
            (WRONG, None, "Authorization: wrong token"),
            (None, None, "Authorization: missing"),
            (None, {"Authorization": f"Basic {TOKEN}"}, "Authorization: expected 'Bearer <token>'"),
            (None, {"X-Forwarded-Email": "mallory@example.test"}, "Authorization: missing"),  # not trusted
        ]:
            async with s.http.post(
                s.base + "/api/env/staging/rollback",
                headers={**(headers or {}), **({"Authorization": f"Bearer {token}"} if token else {})},
            ) as resp:
                assert resp.status == 401, why
                assert resp.headers["WWW-Authenticate"] == 'Bearer realm="reconciler"'
                body = await resp.json()
            assert body == {"error": body["error"], "field": "Authorization"}
            assert body["error"].startswith(why)
        assert s.count() == count

        # the right token goes through: the log says who, never the token
        status, body = await s.post("/api/env/staging/rollback", {"reason": "bad release"})
        assert status == 200, body
    text = logs.getvalue()
    assert '"action.refused"' in text and '"action.rollback"' in text
    assert TOKEN not in text and WRONG not in text and TOKEN[-10:] not in text
    assert '"requested_by": "token"' in text


async def test_a_foreign_origin_is_refused_even_with_the_token(scenario: Scenario, tmp_path: Path) -> None:
    async with running(scenario, tmp_path, actions_token=TOKEN) as s:
        count = s.count()
        for headers, fld in [
            ({"Origin": "https://evil.example"}, "Origin"),
            ({"Origin": "null"}, "Origin"),
            ({"Origin": s.base.replace("127.0.0.1", "localhost")}, "Origin"),
            ({"Sec-Fetch-Site": "cross-site"}, "Sec-Fetch-Site"),
        ]:
            status, body = await s.post("/api/env/staging/rollback", {}, headers=headers)
            assert (status, body["field"]) == (403, fld), body
        assert (
            "is not this page's origin"
            in (await s.post("/api/env/staging/rollback", {}, headers={"Origin": "https://evil.example"}))[1][
                "error"
            ]
        )
        assert s.count() == count
        # the page's own origin (what a browser sends with the page's fetch) is accepted
        status, body = await s.post(
            "/api/env/staging/rollback", {}, headers={"Origin": s.base, "Sec-Fetch-Site": "same-origin"}
        )
        assert status == 200, body


async def test_bad_requests_name_the_field(scenario: Scenario, tmp_path: Path) -> None:
    async with running(scenario, tmp_path, actions_token=TOKEN) as s:
        count = s.count()
        cases: list[tuple[str, Any, str | None, int, str]] = [
            ("/api/env/nope/rollback", {}, None, 404, "environment"),
            ("/api/env/staging/apps/nope/rollback", {}, None, 404, "app"),
            ("/api/env/staging/rollback", {"reason": "x" * 501}, None, 400, "reason"),
            ("/api/env/staging/rollback", {"force": True}, None, 400, "force"),
            ("/api/env/staging/rollback", {"promotion": "HEAD~1"}, None, 400, "promotion"),
            ("/api/env/staging/rollback", [1], None, 400, "body"),
            ("/api/env/staging/rollback", None, "{not json", 415, "Content-Type"),
            ("/api/env/staging/rollback", {"promotion": "1234567"}, None, 409, "promotion"),
        ]
        for path, body, data, status, fld in cases:
            got, answer = await s.post(path, body, data=data)
            assert (got, answer.get("field")) == (status, fld), (path, body, answer)
        got, answer = await s.post("/api/env/nope/rollback", {})
        assert answer["error"] == "unknown environment 'nope' (known: dev, prod, staging)"
        got, answer = await s.post("/api/env/staging/apps/nope/rollback", {})
        assert "unknown app 'nope'" in answer["error"] and "clock-mcp, weather-mcp" in answer["error"]
        got, answer = await s.post("/api/env/staging/rollback", {"promotion": "1234567"})
        assert f"in staging is {scenario.promotions['staging'][:7]} " in answer["error"]
        # JSON with the wrong content type
        async with s.http.post(
            s.base + "/api/env/staging/rollback",
            data="{}",
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "text/plain"},
        ) as resp:
            assert resp.status == 415 and (await resp.json())["field"] == "Content-Type"
        # nothing to roll back: dev never received a promotion
        got, answer = await s.post("/api/env/dev/rollback", {})
        assert got == 409 and answer["error"].startswith("nothing to roll back: no promotion into dev")
        assert s.count() == count


# -- rollbacks that land --------------------------------------------------------------------------------


async def test_rollback_of_one_app_then_the_environment(scenario: Scenario, tmp_path: Path) -> None:
    promotion = scenario.promotions["staging"]
    async with running(scenario, tmp_path, actions_token=TOKEN) as s:
        html, _ = await s.page("/env/staging")
        assert 'data-actions="on"' in html and 'id="rollback-dialog"' in html
        assert [f'data-rollback-app="{a}"' in html for a in ("", "clock-mcp", "weather-mcp")] == [True] * 3
        assert html.count(f'data-promotion="{promotion}"') == 3
        assert 'src="/static/actions.js"' in html and TOKEN not in html
        detail = await (await s.http.get(s.base + "/api/env/staging")).json()
        assert [(t["app"], t["promotion"]) for t in detail["rollback"]] == [
            ("", promotion),
            ("clock-mcp", promotion),
            ("weather-mcp", promotion),
        ]
        count = s.count()

        status, body = await s.post(
            "/api/env/staging/apps/weather-mcp/rollback",
            {"reason": "weather in Kelvin", "promotion": promotion},
        )
        assert status == 200, body
        [r1] = body["commits"]
        assert s.head() == r1 and s.count() == count + 1
        assert body["reverted"] == [promotion] and body["app"] == "weather-mcp"
        assert (body["requested_by"], body["pushed_to"], body["pass_triggered"]) == ("token", "main", True)
        assert body["pull_request_url"] is None
        # only weather-mcp went back
        assert s.file(r1, STAGING) == _overlay({CLOCK: NEW[CLOCK], WEATHER: OLD[WEATHER]}).rstrip()
        t = s.trailers(r1)
        assert t["Rollback-Of"] == [promotion] and t["Rollback-App"] == ["weather-mcp"]
        assert t["Reason"] == ["weather in Kelvin"] and t["Requested-By"] == ["token"]
        # the pass it asked for
        await until(lambda: any("rollback" in r.trigger for r in s.results), 30, "the triggered pass")

        # the page: the app is no longer offered, the timeline says who asked
        html, _ = await s.page("/env/staging")
        assert 'data-rollback-app="weather-mcp"' not in html and 'data-rollback-app="clock-mcp"' in html
        entry = html[html.index(f'data-sha="{r1}"') :]
        assert "requested by token" in entry[: entry.index("</li>")]
        # a second click on the same button: nothing left for that app
        status, body = await s.post("/api/env/staging/apps/weather-mcp/rollback", {"promotion": promotion})
        assert status == 409 and "already rolled back" in body["error"]

        # the whole environment: a git revert of the promotion
        status, body = await s.post("/api/env/staging/rollback", {"promotion": promotion[:7]})
        assert status == 200, body
        [r2] = body["commits"]
        assert s.file(r2, STAGING) == _overlay(OLD).rstrip()
        assert git(s.remote, "log", "-1", "--format=%s", r2).startswith('Revert "promote(staging)')
        t = s.trailers(r2)
        assert t["Rollback-Of"] == [promotion] and t["Rollback-Env"] == ["staging"]
        assert t["Reason"] == ["manual rollback"] and t["Requested-By"] == ["token"]
        status, body = await s.post("/api/env/staging/rollback", {"promotion": promotion[:7]})
        assert status == 409 and body["error"].startswith("nothing to roll back")
        html, _ = await s.page("/env/staging")
        assert 'data-testid="nothing-to-roll-back"' in html

    # reconciler history shows who asked
    w = GitWriter(str(scenario.remote), "main", tmp_path / "history", backoff=0.01)
    w.sync()
    entries = {e.sha: e for e in timeline(w, load_environments(w.workdir)["staging"])}
    w.close()
    assert entries[r1].requested_by == "token" and entries[r2].requested_by == "token"
    assert entries[promotion].requested_by is None
    assert "weather in Kelvin; requested by token" in _row(entries[r1])[-1]


async def test_a_trusted_proxy_names_the_user(scenario: Scenario, tmp_path: Path) -> None:
    user = {"X-Forwarded-Email": "alice@example.test"}
    async with running(scenario, tmp_path, actions_trust_proxy_header="x-forwarded-email") as s:
        count = s.count()
        status, body = await s.post("/api/env/staging/rollback", {}, token=None)
        assert (status, body["field"]) == (401, "X-Forwarded-Email")
        # a cookie-authenticated browser session: only JSON bodies (a cross-site form cannot send them)
        status, body = await s.post("/api/env/staging/rollback", token=None, headers=user, data="reason=x")
        assert (status, body["field"]) == (415, "Content-Type")
        assert s.count() == count

        html, _ = await s.page("/env/staging", headers=user)
        assert 'data-identity="alice@example.test"' in html and 'id="rollback-token"' not in html
        status, body = await s.post(
            "/api/env/staging/apps/clock-mcp/rollback", {"reason": "clock skew"}, token=None, headers=user
        )
        assert status == 200, body
        assert body["requested_by"] == "alice@example.test"
        assert s.trailers(body["commits"][0])["Requested-By"] == ["alice@example.test"]


async def test_pull_request_environments(
    scenario: Scenario, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("RECONCILER_GIT_HOST", "RECONCILER_GIT_HOST_TOKEN", "GITHUB_TOKEN", "GITLAB_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    promotion = scenario.promotions["prod"]
    async with running(scenario, tmp_path, actions_token=TOKEN) as s:
        count = s.count()
        # prod takes changes by pull request and this daemon cannot open one: refused, nothing pushed
        status, body = await s.post("/api/env/prod/rollback", {})
        assert status == 409
        assert "promotion.via: pr" in body["error"] and "RECONCILER_GIT_HOST_TOKEN" in body["error"]
        assert s.count() == count and s.branches() == ["main"]

        # with a Git host (a loopback stand-in of GitHub's API) the revert is proposed
        opened: list[dict[str, Any]] = []

        async def create(request: web.Request) -> web.Response:
            assert request.headers["Authorization"] == "Bearer host-token"
            opened.append(await request.json())
            return web.json_response(
                {"number": 7, "html_url": "https://github.example/acme/envs/pull/7"}, status=201
            )

        host = web.Application()
        host.router.add_post("/api/v3/repos/acme/envs/pulls", create)
        runner = web.AppRunner(host)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        try:
            monkeypatch.setenv("RECONCILER_GIT_HOST", "github")
            monkeypatch.setenv("RECONCILER_GIT_HOST_REPO", "acme/envs")
            monkeypatch.setenv("RECONCILER_GIT_HOST_API", f"http://127.0.0.1:{runner.addresses[0][1]}/api/v3")
            monkeypatch.setenv("RECONCILER_GIT_HOST_TOKEN", "host-token")
            status, body = await s.post("/api/env/prod/rollback", {"reason": "prod pages"})
        finally:
            await runner.cleanup()
        assert status == 200, body
        assert body["pull_request_url"] == "https://github.example/acme/envs/pull/7"
        assert body["branch"] == f"rollback/prod/{promotion[:7]}" and body["pass_triggered"] is False
        assert s.count() == count  # main untouched until the pull request is merged
        [r] = body["commits"]
        assert git(s.remote, "rev-parse", f"refs/heads/{body['branch']}") == r
        assert s.trailers(r)["Requested-By"] == ["token"]
        assert opened[0]["head"] == body["branch"] and "prod pages" in opened[0]["body"]


# -- settings ------------------------------------------------------------------------------------------------


def test_token_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    base = {"repo": str(tmp_path)}
    path = tmp_path / "token"
    path.write_text(f"  {TOKEN}\n")
    config = load_actions_config(DaemonSettings(**base, actions_token_file=path))
    assert config.enabled and config.token is not None and config.token.get_secret_value() == TOKEN
    assert TOKEN not in repr(config)
    monkeypatch.setenv("RECONCILER_ACTIONS_TOKEN", TOKEN)
    assert load_actions_config(DaemonSettings(**base)).token == SecretStr(TOKEN)
    monkeypatch.delenv("RECONCILER_ACTIONS_TOKEN")
    assert not load_actions_config(DaemonSettings(**base)).enabled

    path.write_text("short\n")
    with pytest.raises(
        ConfigError, match=r"token file .*token \(RECONCILER_ACTIONS_TOKEN_FILE.*5 characters"
    ):
        load_actions_config(DaemonSettings(**base, actions_token_file=path))
    with pytest.raises(ConfigError, match=r"cannot read the actions token file .*missing"):
        load_actions_config(DaemonSettings(**base, actions_token_file=tmp_path / "missing"))
    with pytest.raises(ConfigError, match="set only one of"):
        load_actions_config(DaemonSettings(**base, actions_token=TOKEN, actions_token_file=path))
    with pytest.raises(ConfigError, match="white space inside") as info:
        load_actions_config(DaemonSettings(**base, actions_token=f"{TOKEN} {TOKEN}"))
    assert TOKEN not in str(info.value)
    assert DaemonSettings(
        **base, actions_trust_proxy_header="x-forwarded-user"
    ).actions_trust_proxy_header == ("X-Forwarded-User")
    with pytest.raises(ValueError, match="actions_trust_proxy_header"):
        DaemonSettings(**base, actions_trust_proxy_header="Authorization")


def _run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``reconciler run --repo <tmp_path> ARGS`` in a fresh interpreter on this checkout."""
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    env.pop("RECONCILER_ACTIONS_TOKEN", None)
    code = "from reconciler.cli import app; app()"
    cmd = [sys.executable, "-c", code, "run", "--repo", str(tmp_path), *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60, check=False)


def test_run_refuses_an_unusable_token_file_before_starting(tmp_path: Path) -> None:
    short = tmp_path / "token"
    short.write_text("tiny")
    proc = _run(tmp_path, "--actions-token-file", str(short), "--http", "127.0.0.1:0")
    assert proc.returncode == 2, proc.stderr
    assert "RECONCILER_ACTIONS_TOKEN_FILE" in proc.stderr and "4 characters" in proc.stderr
    assert "tiny" not in proc.stderr
    proc = _run(tmp_path, "--actions-trust-proxy-header", "Cookie")
    assert proc.returncode == 2 and "actions_trust_proxy_header" in proc.stderr, proc.stderr


# -- the buttons in Chromium -------------------------------------------------------------------------------


async def test_rollback_buttons_in_chromium(scenario: Scenario, tmp_path: Path) -> None:
    require_chromium()
    from playwright.async_api import async_playwright, expect

    promotion = scenario.promotions["staging"]

    async with running(scenario, tmp_path, actions_token=TOKEN, refresh=2) as s:
        count = s.count()
        async with async_playwright() as pw:
            ctx = await pw.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="chromium-profile-", dir=tmp_path),
                executable_path=CHROMIUM,
                headless=True,
                args=CHROMIUM_ARGS,
                viewport={"width": 1400, "height": 1000},
            )
            try:
                page = await ctx.new_page()
                await page.goto(s.base + "/env/staging")
                result = page.locator("#action-result")
                weather = page.locator('tr[data-rollback-app="weather-mcp"] button')

                # a wrong token: refused, forgotten, nothing committed
                await open_confirmation(page, weather)
                await expect(page.locator("#rollback-question")).to_contain_text("app weather-mcp in staging")
                await page.fill("#rollback-token", WRONG)
                await page.click("#rollback-confirm")
                await expect(result).to_have_attribute("data-outcome", "error", timeout=20_000)
                await expect(result).to_contain_text("HTTP 401")
                assert s.count() == count

                # the right token: the commit, shown on the page (and kept across its reloads)
                await open_confirmation(page, weather)
                await expect(page.locator("#rollback-token")).to_be_visible()  # the wrong one was dropped
                await page.fill("#rollback-token", TOKEN)
                await page.fill("#rollback-reason", "weather in Kelvin")
                save_screenshot(await page.screenshot(), tmp_path, "status-page-rollback-confirm.png")
                await page.click("#rollback-confirm")
                await expect(result).to_have_attribute("data-outcome", "ok", timeout=30_000)
                r1 = await result.locator("[data-commit]").get_attribute("data-commit")
                assert r1 == s.head() and s.count() == count + 1
                t = s.trailers(r1)
                assert t["Rollback-Of"] == [promotion] and t["Rollback-App"] == ["weather-mcp"]
                assert t["Reason"] == ["weather in Kelvin"] and t["Requested-By"] == ["token"]
                timeline_entry = page.locator(f'#timeline li[data-sha="{r1}"]')
                await expect(timeline_entry).to_contain_text("requested by token", timeout=20_000)
                await expect(result).to_contain_text(r1[:12])

                # the whole environment, with the token this tab kept: no token asked for
                env_button = page.locator('tr[data-rollback-app=""] button')
                await open_confirmation(page, env_button)
                await expect(page.locator("#rollback-token")).to_be_hidden()
                await page.click("#rollback-confirm")
                await expect(result).not_to_contain_text(r1[:12], timeout=30_000)
                await expect(result).to_have_attribute("data-outcome", "ok")
                r2 = await result.locator("[data-commit]").get_attribute("data-commit")
                assert r2 == s.head() and s.trailers(r2)["Rollback-Of"] == [promotion]
                assert s.file(r2, STAGING) == _overlay(OLD).rstrip()
                await expect(page.locator('[data-testid="nothing-to-roll-back"]')).to_be_visible(
                    timeout=20_000
                )

                assert TOKEN not in await page.content()  # the page never shows it
                png = await page.screenshot(full_page=True)
                save_screenshot(png, tmp_path, "status-page-rollback.png")
            finally:
                await ctx.close()
        await until(lambda: any("rollback" in r.trigger for r in s.results), 30, "the triggered pass")
        assert TOKEN not in json.dumps([r.model_dump(mode="json") for r in s.results])
