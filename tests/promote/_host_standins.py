"""In-memory stand-ins of GitHub's, GitLab's and Gitea's REST APIs (pull requests and commit statuses) on
127.0.0.1, with faults on demand: answers that fail with a status, a pull request created while its answer
is lost (the connection closed), a route an older release lacks. Each checks its host's authorization
header and keeps every request it got."""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

from reconciler.promote.hosts import HostConfig

TOKEN = "secret-token-7f3a"
Kind = Literal["github", "gitlab", "gitea"]
REPOS: dict[Kind, str] = {"github": "acme/envs", "gitlab": "platform/envs", "gitea": "acme/envs"}
PREFIX: dict[Kind, str] = {"github": "/api/v3", "gitlab": "/api/v4", "gitea": "/api/v1"}
HUB_STATES = {"pending", "success", "error", "failure"}
GITEA_STATES = HUB_STATES | {"warning"}
LAB_STATES = {"pending", "running", "success", "failed", "canceled"}


@dataclass
class Pull:
    number: int
    head: str
    base: str
    title: str
    body: str
    state: Literal["open", "closed", "merged"] = "open"
    merge_commit_sha: str | None = None
    head_sha: str = "1" * 40


@dataclass
class Forge:
    """One host's state and the faults it is to show."""

    kind: Kind
    url: str = ""
    pulls: list[Pull] = field(default_factory=list)
    statuses: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    fail_with: list[int] = field(default_factory=list)
    """statuses to answer, one per request, before serving requests again"""
    retry_after: str | None = None
    lose_answers: int = 0
    """how many pull-request creations close the connection instead of answering"""
    conflict_status: int = 409
    """Gitea's answer to a second pull request for the same head and base (older releases: 422)"""
    base_head_route: bool = True
    """whether Gitea's GET /pulls/{base}/{head} exists"""
    _next_status_id: int = 100

    @property
    def api(self) -> str:
        return f"{self.url}{PREFIX[self.kind]}"

    def config(self, *, retry_seconds: float = 5.0, token: str | None = TOKEN) -> HostConfig:
        return HostConfig(
            kind=self.kind,
            repo=REPOS[self.kind],
            token=token,
            api_url=self.api,
            web_url=f"https://{self.kind}.example",
            retry_seconds=retry_seconds,
            retry_initial=0.02,
            retry_max_wait=0.2,
        )

    def open_pulls(self) -> list[Pull]:
        return [p for p in self.pulls if p.state == "open"]

    def posts(self, suffix: str) -> list[dict[str, Any]]:
        return [r for r in self.requests if r["method"] == "POST" and r["path"].endswith(suffix)]

    def new_status_id(self) -> int:
        self._next_status_id += 1
        return self._next_status_id

    # --- JSON as each host writes it -----------------------------------------------------------------

    def web(self, number: int) -> str:
        if self.kind == "gitlab":
            return f"https://gitlab.example/{REPOS['gitlab']}/-/merge_requests/{number}"
        path = "pull" if self.kind == "github" else "pulls"
        return f"https://{self.kind}.example/{REPOS[self.kind]}/{path}/{number}"

    def pull_json(self, p: Pull) -> dict[str, Any]:
        if self.kind == "gitlab":
            return {
                "iid": p.number,
                "id": 5000 + p.number,
                "web_url": self.web(p.number),
                "state": {"open": "opened", "closed": "closed", "merged": "merged"}[p.state],
                "merge_commit_sha": p.merge_commit_sha,
                "squash_commit_sha": None,
                "sha": p.head_sha,
                "source_branch": p.head,
                "target_branch": p.base,
                "title": p.title,
                "description": p.body,
            }
        return {
            "id": 9000 + p.number,
            "number": p.number,
            "html_url": self.web(p.number),
            "state": "open" if p.state == "open" else "closed",
            "merged": p.state == "merged",
            "merge_commit_sha": p.merge_commit_sha,
            "title": p.title,
            "body": p.body,
            "head": {"ref": p.head, "sha": p.head_sha, "label": p.head},
            "base": {"ref": p.base, "sha": "0" * 40, "label": p.base},
        }


def _auth_ok(forge: Forge, request: web.Request) -> bool:
    if forge.kind == "github":
        return request.headers.get("Authorization") == f"Bearer {TOKEN}"
    if forge.kind == "gitlab":
        return request.headers.get("PRIVATE-TOKEN") == TOKEN
    return request.headers.get("Authorization") == f"token {TOKEN}"


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _app(forge: Forge) -> web.Application:
    @web.middleware
    async def record_and_fail(request: web.Request, handler: Handler) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        forge.requests.append(
            {
                "method": request.method,
                "path": request.raw_path.split("?", 1)[0],
                "query": dict(request.query),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        if forge.fail_with:
            status = forge.fail_with.pop(0)
            headers = {"Retry-After": forge.retry_after} if forge.retry_after is not None else {}
            if status == 502:
                return web.Response(status=502, text="<html>502 Bad Gateway</html>", headers=headers)
            return web.json_response({"message": f"failing with {status}"}, status=status, headers=headers)
        needs_token = request.method == "POST"
        if needs_token and not _auth_ok(forge, request):
            message = "401 Unauthorized" if forge.kind == "gitlab" else "Bad credentials"
            return web.json_response({"message": message}, status=401)
        return await handler(request)

    app = web.Application(middlewares=[record_and_fail])
    if forge.kind == "gitlab":
        _gitlab_routes(forge, app)
    else:
        _hub_routes(forge, app)
    return app


def _drop(request: web.Request) -> web.StreamResponse:
    """Close the connection without answering (the pull request exists already)."""
    assert request.transport is not None
    request.transport.close()
    return web.Response(status=201)  # never reaches the client


def _hub_routes(forge: Forge, app: web.Application) -> None:
    base_path = f"{PREFIX[forge.kind]}/repos/{REPOS[forge.kind]}"

    async def create(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        missing = {"title", "head", "base"} - set(body)
        if missing:
            return web.json_response({"message": f"missing {sorted(missing)}"}, status=422)
        for p in forge.open_pulls():
            if p.head == body["head"] and p.base == body["base"]:
                if forge.kind == "github":
                    return web.json_response(
                        {
                            "message": "Validation Failed",
                            "errors": [{"message": f"A pull request already exists for acme:{p.head}."}],
                        },
                        status=422,
                    )
                text = (
                    f"pull request already exists for these targets [id: {p.number}, issue_id: {p.number}, "
                    f"head_repo_id: 1, base_repo_id: 1, head_branch: {p.head}, base_branch: {p.base}]"
                )
                return web.json_response(
                    {"message": text, "url": "https://gitea.example/api/swagger"},
                    status=forge.conflict_status,
                )
        p = Pull(len(forge.pulls) + 1, body["head"], body["base"], body["title"], body.get("body", ""))
        forge.pulls.append(p)
        if forge.lose_answers > 0:
            forge.lose_answers -= 1
            return _drop(request)
        return web.json_response(forge.pull_json(p), status=201)

    async def list_pulls(request: web.Request) -> web.Response:
        state = request.query.get("state", "open")
        found = [p for p in forge.pulls if state == "all" or (p.state == "open") == (state == "open")]
        if forge.kind == "github":
            owner, _, head = request.query.get("head", ":").partition(":")
            found = [p for p in found if owner == "acme" and (not head or p.head == head)]
            if "base" in request.query:
                found = [p for p in found if p.base == request.query["base"]]
        else:
            if "base_branch" in request.query:
                found = [p for p in found if p.base == request.query["base_branch"]]
            page, limit = int(request.query.get("page", "1")), int(request.query.get("limit", "30"))
            found = found[(page - 1) * limit : page * limit]
        return web.json_response([forge.pull_json(p) for p in found])

    async def get_pull(request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        for p in forge.pulls:
            if p.number == number:
                return web.json_response(forge.pull_json(p))
        return web.json_response({"message": "Not Found"}, status=404)

    async def by_base_head(request: web.Request) -> web.Response:
        if not forge.base_head_route:
            return web.json_response({"message": "not found"}, status=404)
        base, head = request.match_info["base"], request.match_info["head"]
        for p in forge.pulls:  # like Gitea: the first one, whatever its state
            if p.base == base and p.head == head:
                return web.json_response(forge.pull_json(p))
        return web.json_response({"message": "pull request does not exist"}, status=404)

    async def create_status(request: web.Request) -> web.Response:
        body = await request.json()
        allowed = HUB_STATES if forge.kind == "github" else GITEA_STATES
        if body.get("state") not in allowed:
            return web.json_response({"message": "Validation Failed: state"}, status=422)
        if forge.kind == "github" and len(body.get("description") or "") > 140:
            return web.json_response({"message": "Validation Failed: description is too long"}, status=422)
        key = "state" if forge.kind == "github" else "status"
        stored = {
            "id": forge.new_status_id(),
            key: body["state"],
            "context": body.get("context") or "default",
            "description": body.get("description", ""),
            "target_url": body.get("target_url"),
            "created_at": "2026-01-01T00:00:00Z",
        }
        forge.statuses.setdefault(request.match_info["sha"], []).append(stored)
        return web.json_response(stored, status=201)

    async def list_statuses(request: web.Request) -> web.Response:
        items = forge.statuses.get(request.match_info["ref"], [])
        return web.json_response(sorted(items, key=lambda s: -int(s["id"])))

    async def edit_pull(request: web.Request) -> web.Response:
        number = int(request.match_info["number"])
        body = await request.json()
        for p in forge.pulls:
            if p.number == number:
                if "body" in body:
                    p.body = str(body["body"])
                return web.json_response(forge.pull_json(p))
        return web.json_response({"message": "Not Found"}, status=404)

    app.router.add_post(f"{base_path}/pulls", create)
    app.router.add_get(f"{base_path}/pulls", list_pulls)
    app.router.add_get(base_path + r"/pulls/{number:\d+}", get_pull)
    app.router.add_patch(base_path + r"/pulls/{number:\d+}", edit_pull)
    if forge.kind == "gitea":
        app.router.add_get(base_path + "/pulls/{base}/{head:.+}", by_base_head)
    app.router.add_post(base_path + "/statuses/{sha}", create_status)
    app.router.add_get(base_path + "/commits/{ref}/statuses", list_statuses)


def _gitlab_routes(forge: Forge, app: web.Application) -> None:
    # the project path is URL-encoded into one segment: platform%2Fenvs
    base_path = "/api/v4/projects/{project}"

    def project_ok(request: web.Request) -> bool:
        return request.match_info["project"] == REPOS["gitlab"] and "platform%2Fenvs" in request.raw_path

    async def create(request: web.Request) -> web.StreamResponse:
        if not project_ok(request):
            return web.json_response({"message": "404 Project Not Found"}, status=404)
        body = await request.json()
        for p in forge.open_pulls():
            if p.head == body["source_branch"] and p.base == body["target_branch"]:
                return web.json_response(
                    {
                        "message": [
                            f"Another open merge request already exists for this source branch: !{p.number}"
                        ]
                    },
                    status=409,
                )
        p = Pull(
            len(forge.pulls) + 1,
            body["source_branch"],
            body["target_branch"],
            body["title"],
            body.get("description", ""),
        )
        forge.pulls.append(p)
        if forge.lose_answers > 0:
            forge.lose_answers -= 1
            return _drop(request)
        return web.json_response(forge.pull_json(p), status=201)

    async def list_mrs(request: web.Request) -> web.Response:
        q = request.query
        found = [
            p
            for p in forge.pulls
            if (q.get("state") != "opened" or p.state == "open")
            and p.head == q.get("source_branch", p.head)
            and p.base == q.get("target_branch", p.base)
        ]
        return web.json_response([forge.pull_json(p) for p in found])

    async def get_mr(request: web.Request) -> web.Response:
        number = int(request.match_info["iid"])
        for p in forge.pulls:
            if p.number == number and project_ok(request):
                return web.json_response(forge.pull_json(p))
        return web.json_response({"message": "404 Not found"}, status=404)

    async def create_status(request: web.Request) -> web.Response:
        body = await request.json()
        if body.get("state") not in LAB_STATES:
            return web.json_response({"error": "state does not have a valid value"}, status=400)
        name = body.get("name") or "default"
        mine = [s for s in forge.statuses.get(request.match_info["sha"], []) if s["name"] == name]
        if mine and mine[-1]["status"] == body["state"]:
            verb = {"pending": "enqueue", "running": "run", "success": "succeed", "failed": "drop"}
            state = body["state"]
            message = f"Cannot transition status via :{verb.get(state, 'x')} from :{state}"
            return web.json_response({"message": message}, status=400)
        stored = {
            "id": forge.new_status_id(),
            "sha": request.match_info["sha"],
            "status": body["state"],
            "name": name,
            "description": body.get("description"),
            "target_url": body.get("target_url"),
            "created_at": "2026-01-01T00:00:00.000Z",
        }
        forge.statuses.setdefault(request.match_info["sha"], []).append(stored)
        return web.json_response(stored, status=201)

    async def list_statuses(request: web.Request) -> web.Response:
        latest: dict[str, dict[str, Any]] = {}
        for s in forge.statuses.get(request.match_info["sha"], []):
            latest[s["name"]] = s
        return web.json_response(list(latest.values()))

    async def edit_mr(request: web.Request) -> web.Response:
        number = int(request.match_info["iid"])
        body = await request.json()
        for p in forge.pulls:
            if p.number == number and project_ok(request):
                if "description" in body:
                    p.body = str(body["description"])
                return web.json_response(forge.pull_json(p))
        return web.json_response({"message": "404 Not found"}, status=404)

    app.router.add_post(f"{base_path}/merge_requests", create)
    app.router.add_get(f"{base_path}/merge_requests", list_mrs)
    app.router.add_get(base_path + r"/merge_requests/{iid:\d+}", get_mr)
    app.router.add_put(base_path + r"/merge_requests/{iid:\d+}", edit_mr)
    app.router.add_post(base_path + "/statuses/{sha}", create_status)
    app.router.add_get(base_path + "/repository/commits/{sha}/statuses", list_statuses)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve(forge: Forge, port: int = 0) -> web.AppRunner:
    """Start ``forge`` on 127.0.0.1 (``port`` 0: any free one) and set its URL."""
    runner = web.AppRunner(_app(forge))
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    bound = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    forge.url = f"http://127.0.0.1:{bound}"
    return runner
