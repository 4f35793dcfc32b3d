"""reconciler's MCP server, built on the official ``mcp`` Python SDK (``mcp.server.mcpserver.MCPServer``):
Streamable HTTP (endpoint ``/mcp``) or stdio, answering clients of both protocol eras — the stateless
2026-07-28 revision (``server/discover``, no session) and the ``initialize`` handshake of 2025-11-25 and
older (``Mcp-Session-Id``); the SDK negotiates the era per request.

Read tools answer with structured content and declare output schemas (the pydantic models of
:mod:`reconciler.mcpserver.tools`). Write tools (:data:`~reconciler.mcpserver.access.WRITE_TOOLS`) go
through Git or the bus, never to the cluster, run only when the environment's ``mcp.allow`` and the
caller's allow-list both name them, and are recorded (:meth:`~reconciler.mcpserver.tools.Backend.record`).

Errors a client sees, as JSON-RPC errors: ``-32602`` an argument names nothing that exists (unknown
environment, app or ref); ``-32003`` (:data:`~reconciler.mcpserver.access.FORBIDDEN`) a disabled or
forbidden tool, with the reason; ``-32029`` (:data:`~reconciler.mcpserver.access.RATE_LIMITED`) the
caller's rate limit; HTTP 401 with ``-32001`` a missing or unknown bearer token. Arguments that break a
tool's input schema, and failures of the repository, cluster or bus, are tool results with ``isError``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from mcp.server.mcpserver import Context
from pydantic import Field

from reconciler.errors import ReconcilerError
from reconciler.mcpserver.access import FORBIDDEN, RATE_LIMITED, UNAUTHORIZED, WRITE_TOOLS, Access, Caller
from reconciler.mcpserver.tools import (
    Backend,
    DiffAnswer,
    EnvironmentsAnswer,
    Forbidden,
    HealthAnswer,
    HistoryAnswer,
    ImagePoliciesAnswer,
    InvalidArgument,
    ProtocolsAnswer,
    RenderAnswer,
    WriteAnswer,
)

if TYPE_CHECKING:
    from mcp.server.mcpserver import MCPServer
    from starlette.types import ASGIApp, Receive, Scope, Send

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Default address of ``reconciler mcp serve`` (and ``reconciler run --mcp``'s example).
DEFAULT_HTTP = "127.0.0.1:9091"
#: The Service port ``appProtocol`` that marks MCP over Streamable HTTP (agentgateway's convention).
APP_PROTOCOL = "agentgateway.dev/mcp"

_ENV = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
EnvName = Annotated[
    str,
    Field(
        pattern=_ENV,
        max_length=63,
        description="environment name (envs/<name>.yaml)",
    ),
]
OptEnvName = Annotated[
    str | None,
    Field(
        default=None,
        pattern=r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$",
        max_length=63,
        description="environment name (default: every environment)",
    ),
]
RefArg = Annotated[
    str | None,
    Field(
        default=None,
        pattern=r"^[A-Za-z0-9_][A-Za-z0-9._/@+-]{0,254}$",
        description="a branch, tag or commit id (default: the followed branch's head)",
    ),
]
AppArg = Annotated[
    str | None,
    Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$", description="one app (default: all)"),
]


@dataclass
class ToolServer:
    """The tools bound to a backend and an access policy; :meth:`build` makes the SDK server.

    Args:
        backend: where tools read and write.
        access: callers, allow-lists and rate limits.
        stdio: served over stdio (the caller is the local user, :meth:`Access.local`).
        workers: tool calls that may run at once (each one runs in a worker thread).
    """

    backend: Backend
    access: Access
    stdio: bool = False
    workers: int = 8

    def __post_init__(self) -> None:
        import anyio

        self._limiter = anyio.CapacityLimiter(self.workers)

    # -- admission -----------------------------------------------------------------------------------

    def caller(self, ctx: Context | None) -> Caller:
        """Who is calling (the bearer token of this request), after its rate limit.

        Raises:
            MCPError: unauthenticated (the HTTP gate already refuses those) or over the rate limit.
        """
        from mcp.shared.exceptions import MCPError

        if self.stdio:
            who: Caller | str = self.access.local()
        else:
            headers = (ctx.headers if ctx is not None else None) or {}
            who = self.access.authenticate(headers.get("authorization"))
        if isinstance(who, str):
            raise MCPError(UNAUTHORIZED, f"unauthorized: {who}")
        if not self.access.limiter.take(who):
            raise MCPError(
                RATE_LIMITED,
                f"rate limit: caller {who.identity!r} may make {who.rate_per_second:g} tool calls per second "
                f"(bursts of {who.burst}); try again shortly",
            )
        return who

    async def _run(self, fn: Callable[[], T]) -> T:
        """Run a blocking backend call in a worker thread; map its errors to MCP errors and tool errors."""
        import anyio
        from mcp.server.mcpserver.exceptions import ToolError
        from mcp.shared.exceptions import MCPError
        from mcp_types import INVALID_PARAMS

        try:
            return await anyio.to_thread.run_sync(fn, limiter=self._limiter)
        except InvalidArgument as exc:
            raise MCPError(INVALID_PARAMS, str(exc)) from None
        except Forbidden as exc:
            raise MCPError(FORBIDDEN, str(exc)) from None
        except (ReconcilerError, ValueError) as exc:
            raise ToolError(str(exc)) from None

    # -- read tools ----------------------------------------------------------------------------------

    async def list_environments(
        self,
        environments: Annotated[
            list[EnvName] | None, Field(default=None, description="only these (default: every environment)")
        ] = None,
        health: Annotated[
            bool, Field(description="read each object's health and the protocol probes")
        ] = True,
        ctx: Context | None = None,
    ) -> EnvironmentsAnswer:
        """Each environment's applied revision, sync state (Synced/OutOfSync against the followed branch)
        and health verdict, with its MCP servers' and agents' protocol health — as `reconciler status`."""
        self.caller(ctx)
        return await self._run(partial(self.backend.list_environments, environments, health))

    async def get_object_health(self, environment: EnvName, ctx: Context | None = None) -> HealthAnswer:
        """Every object the environment last applied, read live, with its health state and the reason."""
        self.caller(ctx)
        return await self._run(partial(self.backend.object_health, environment))

    async def get_history(
        self,
        environment: EnvName,
        limit: Annotated[int, Field(ge=1, le=500, description="at most this many entries")] = 50,
        ctx: Context | None = None,
    ) -> HistoryAnswer:
        """The environment's promotion history, newest first: promotions, rollbacks, outcomes, tool calls —
        as `reconciler history`."""
        self.caller(ctx)
        return await self._run(partial(self.backend.history, environment, limit))

    async def diff_environment(
        self, environment: EnvName, ref: RefArg = None, ctx: Context | None = None
    ) -> DiffAnswer:
        """What applying the environment at a Git ref would change in the cluster (server-side dry-run;
        nothing is written; Secret values never shown) — as `reconciler diff`."""
        self.caller(ctx)
        return await self._run(partial(self.backend.diff, environment, ref))

    async def render_environment(
        self, environment: EnvName, ref: RefArg = None, ctx: Context | None = None
    ) -> RenderAnswer:
        """The environment's rendered objects at a Git ref, Secret values masked — as `reconciler build`."""
        self.caller(ctx)
        return await self._run(partial(self.backend.render, environment, ref))

    async def get_drift(self, environment: EnvName, ctx: Context | None = None) -> DiffAnswer:
        """What differs now between the cluster and the revision the environment last applied (a
        server-side dry-run of that revision)."""
        self.caller(ctx)
        return await self._run(partial(self.backend.drift, environment))

    async def get_image_policies(
        self, environment: OptEnvName = None, ctx: Context | None = None
    ) -> ImagePoliciesAnswer:
        """Image policies (of one environment or all), the versions Git runs and the newest pushed version
        seen on the bus."""
        self.caller(ctx)
        return await self._run(partial(self.backend.image_policies, environment))

    async def get_protocols(self, environment: EnvName, ctx: Context | None = None) -> ProtocolsAnswer:
        """MCP and A2A probe results of the environment's servers and agents, and each Agent's tool
        grants."""
        self.caller(ctx)
        return await self._run(partial(self.backend.protocols, environment))

    # -- write tools ---------------------------------------------------------------------------------

    def _check_write(self, caller: Caller, tool: str, environment: str) -> None:
        env = self.backend.environment(environment)
        why = self.access.write_refusal(caller, tool, environment, list(env.mcp.allow))
        if why is not None:
            raise Forbidden(why)

    def _write(
        self,
        caller: Caller,
        tool: str,
        environment: str,
        arguments: dict[str, Any],
        op: Callable[[], WriteAnswer],
    ) -> WriteAnswer:
        """Check, run and record one write call (in a worker thread)."""
        from reconciler.promote.records import ToolCallRecord

        self._check_write(caller, tool, environment)
        record = ToolCallRecord(
            environment=environment, tool=tool, caller=caller.identity, arguments=arguments
        )
        try:
            answer = op()
        except (InvalidArgument, Forbidden):
            raise  # nothing was done: not recorded
        except (ReconcilerError, ValueError) as exc:
            record.ok, record.message = False, str(exc)
            problem = self.backend.record(record)
            raise ReconcilerError(str(exc) + (f" ({problem})" if problem else "")) from None
        answer.caller = caller.identity
        record.ok, record.message = answer.ok, answer.message
        record.commit, record.branch, record.url = answer.commit, answer.branch, answer.url
        problem = self.backend.record(record)
        if problem:
            answer.message += f" ({problem})"
        return answer

    async def propose_promotion(
        self,
        fromEnvironment: Annotated[str, Field(pattern=_ENV, max_length=63, description="the source")],
        toEnvironment: Annotated[str, Field(pattern=_ENV, max_length=63, description="the target")],
        app: AppArg = None,
        all: Annotated[bool, Field(description="every image of the source overlay")] = False,
        ctx: Context | None = None,
    ) -> WriteAnswer:
        """Propose promoting the source environment's versions (pinned by digest) into the target: the same
        branch promote/<to>/<sha> and commit as `reconciler promote FROM TO --pr`, and a pull request when a
        Git host token is configured. Give `app` or `all`. Needs `proposePromotion` in the target's
        mcp.allow and in the caller's allow-list."""
        caller = self.caller(ctx)
        if (app is None) == (not all):
            from mcp.shared.exceptions import MCPError
            from mcp_types import INVALID_PARAMS

            raise MCPError(INVALID_PARAMS, "choose what to promote: give app, or all: true (not both)")
        args: dict[str, Any] = {"fromEnvironment": fromEnvironment, "toEnvironment": toEnvironment}
        args.update({"app": app} if app else {"all": True})
        op = partial(self.backend.propose_promotion, fromEnvironment, toEnvironment, app, all)
        return await self._run(partial(self._write, caller, "proposePromotion", toEnvironment, args, op))

    async def propose_rollback(
        self,
        environment: EnvName,
        app: AppArg = None,
        to: Annotated[
            str | None,
            Field(
                default=None, pattern=r"^[0-9a-f]{7,40}$", description="return to the versions of this commit"
            ),
        ] = None,
        reason: Annotated[str, Field(max_length=500, description="recorded in the Reason: trailer")] = "",
        ctx: Context | None = None,
    ) -> WriteAnswer:
        """Roll the environment (or one app) back as `reconciler rollback` does: a revert on a branch with a
        pull request, or a direct revert where the environment's promotion.via is push. Needs
        `proposeRollback` in its mcp.allow and in the caller's allow-list."""
        caller = self.caller(ctx)
        args: dict[str, Any] = {"environment": environment}
        args.update({k: v for k, v in (("app", app), ("to", to), ("reason", reason)) if v})
        op = partial(self.backend.propose_rollback, environment, app, to, reason, caller.identity)
        return await self._run(partial(self._write, caller, "proposeRollback", environment, args, op))

    async def request_sync(self, environment: EnvName, ctx: Context | None = None) -> WriteAnswer:
        """Ask the daemon for an immediate pass of the environment (a NATS reconcile request). Needs
        `requestSync` in its mcp.allow and in the caller's allow-list."""
        caller = self.caller(ctx)
        op = partial(self.backend.request_sync, environment)
        return await self._run(
            partial(self._write, caller, "requestSync", environment, {"environment": environment}, op)
        )

    async def suspend_environment(
        self,
        environment: EnvName,
        reason: Annotated[
            str, Field(max_length=500, description="why (recorded and shown on the status)")
        ] = "",
        ctx: Context | None = None,
    ) -> WriteAnswer:
        """Suspend the environment as `reconciler suspend --nats` does: no daemon runs a pass of it (no
        apply, prune or drift correction) until it is resumed. Needs `suspendEnvironment` in its mcp.allow
        and in the caller's allow-list."""
        caller = self.caller(ctx)
        args: dict[str, Any] = {"environment": environment} | ({"reason": reason} if reason else {})
        op = partial(self.backend.set_suspended, environment, True, reason, caller.identity)
        return await self._run(partial(self._write, caller, "suspendEnvironment", environment, args, op))

    async def resume_environment(
        self,
        environment: EnvName,
        reason: Annotated[str, Field(max_length=500, description="why (recorded)")] = "",
        ctx: Context | None = None,
    ) -> WriteAnswer:
        """Resume a suspended environment as `reconciler resume --nats` does (passes run again). Needs
        `resumeEnvironment` in its mcp.allow and in the caller's allow-list."""
        caller = self.caller(ctx)
        args: dict[str, Any] = {"environment": environment} | ({"reason": reason} if reason else {})
        op = partial(self.backend.set_suspended, environment, False, reason, caller.identity)
        return await self._run(partial(self._write, caller, "resumeEnvironment", environment, args, op))

    # -- the SDK server ------------------------------------------------------------------------------

    def build(self) -> MCPServer[Any]:
        """The SDK server with every tool registered (read tools annotated read-only)."""
        from mcp.server.mcpserver import MCPServer
        from mcp_types import ToolAnnotations

        from reconciler import __version__

        server: MCPServer[Any] = MCPServer(
            "reconciler",
            log_level="WARNING",
            title="reconciler GitOps",
            version=__version__,
            instructions=(
                "Read the GitOps state of AI-agent platform environments (status, health, history, diffs, "
                "renders, drift, image policies, protocol probes). Changes are proposed through Git "
                "(branches and pull requests) or the bus, never applied to the cluster directly."
            ),
        )
        read = ToolAnnotations(readOnlyHint=True, openWorldHint=False)
        write = ToolAnnotations(
            readOnlyHint=False, destructiveHint=False, idempotentHint=False, openWorldHint=True
        )
        tools: list[tuple[str, str, Callable[..., Awaitable[Any]], ToolAnnotations]] = [
            ("listEnvironments", "Environments", self.list_environments, read),
            ("getObjectHealth", "Object health", self.get_object_health, read),
            ("getHistory", "Promotion history", self.get_history, read),
            ("diffEnvironment", "Diff against a Git ref", self.diff_environment, read),
            ("renderEnvironment", "Rendered objects", self.render_environment, read),
            ("getDrift", "Current drift", self.get_drift, read),
            ("getImagePolicies", "Image policies", self.get_image_policies, read),
            ("getProtocols", "MCP/A2A probes and tool grants", self.get_protocols, read),
            ("proposePromotion", "Propose a promotion", self.propose_promotion, write),
            ("proposeRollback", "Propose a rollback", self.propose_rollback, write),
            ("requestSync", "Request a sync", self.request_sync, write),
            ("suspendEnvironment", "Suspend an environment", self.suspend_environment, write),
            ("resumeEnvironment", "Resume an environment", self.resume_environment, write),
        ]
        for name, title, fn, hints in tools:
            server.add_tool(fn, name=name, title=title, annotations=hints, structured_output=True)
        return server


READ_TOOLS: tuple[str, ...] = (
    "listEnvironments",
    "getObjectHealth",
    "getHistory",
    "diffEnvironment",
    "renderEnvironment",
    "getDrift",
    "getImagePolicies",
    "getProtocols",
)
assert not set(READ_TOOLS) & set(WRITE_TOOLS)


class BearerGate:
    """ASGI middleware: with a tokens file, every HTTP request must carry a known bearer token; others get
    HTTP 401 with a JSON-RPC error (``-32001``) saying what is wrong (never the token)."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app = app
        self.access = access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.access.required:
            await self.app(scope, receive, send)
            return
        raw = dict(scope.get("headers") or []).get(b"authorization")
        who = self.access.authenticate(raw.decode("latin-1") if raw else None)
        if isinstance(who, Caller):
            await self.app(scope, receive, send)
            return
        body = json.dumps(
            {"jsonrpc": "2.0", "id": None, "error": {"code": UNAUTHORIZED, "message": f"unauthorized: {who}"}}
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 401,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"www-authenticate", b'Bearer realm="reconciler"'),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def http_app(tools: ToolServer, host: str) -> ASGIApp:
    """The Streamable HTTP application (endpoint ``/mcp``, JSON responses) behind the bearer gate. On a
    loopback ``host`` the SDK's DNS-rebinding protection admits only loopback Host headers."""
    app = tools.build().streamable_http_app(json_response=True, host=host)
    return BearerGate(app, tools.access)


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT`` → ``(host, port)``.

    Raises:
        ValueError: not ``HOST:PORT`` with a port in 0..65535.
    """
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{text!r} is not HOST:PORT")
    return host.strip("[]"), int(port)


def serve_http(tools: ToolServer, host: str, port: int) -> None:
    """Serve until interrupted (SIGINT/SIGTERM)."""
    import uvicorn

    uvicorn.run(http_app(tools, host), host=host, port=port, log_level="warning", access_log=False)


def serve_stdio(tools: ToolServer) -> None:
    """Serve one client over standard input/output until it closes them."""
    import anyio

    tools.stdio = True
    anyio.run(tools.build().run_stdio_async)


@dataclass
class RunningServer:
    """An MCP server serving HTTP from a thread of this process (``reconciler run --mcp``, ``up``)."""

    url: str
    port: int
    _server: Any
    _thread: threading.Thread

    def stop(self, timeout: float = 10.0) -> None:
        """Stop serving and wait for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout)


def start_http_thread(tools: ToolServer, host: str, port: int, timeout: float = 20.0) -> RunningServer:
    """Serve HTTP from a daemon thread; returns once it listens (``port`` 0 picks a free one).

    Raises:
        ReconcilerError: it did not start within ``timeout`` seconds (the port is taken, …).
    """
    import socket
    import time

    import uvicorn

    if port == 0:
        with socket.socket() as s:
            s.bind((host, 0))
            port = int(s.getsockname()[1])
    config = uvicorn.Config(
        http_app(tools, host), host=host, port=port, log_level="warning", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="mcp-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise ReconcilerError(f"the MCP server did not start on {host}:{port}")
        time.sleep(0.05)
    shown = f"[{host}]" if ":" in host else host
    return RunningServer(f"http://{shown}:{port}/mcp", port, server, thread)


def start_for_daemon(settings: Any, address: str, tokens_file: Path | None = None) -> RunningServer:
    """The daemon's ``--mcp HOST:PORT``: the same server as ``reconciler mcp serve`` on the daemon's
    repository, cluster and bus (``settings``: a :class:`reconciler.settings.DaemonSettings`), from a thread.
    ``tokens_file`` (default ``$RECONCILER_MCP_TOKENS_FILE``) as in :mod:`reconciler.mcpserver.access`; a
    file the variable names that does not exist (an optional Secret not created) means no tokens: every
    caller is anonymous and read-only, and a warning says so.

    Raises:
        ValueError: ``address`` is not ``HOST:PORT``.
        ReconcilerError: the tokens file is invalid, or the server did not start.
    """
    import os

    from reconciler.mcpserver.access import ENV_TOKENS_FILE, load_tokens

    host, port = parse_address(address)
    path = tokens_file
    if path is None and os.environ.get(ENV_TOKENS_FILE):
        path = Path(os.environ[ENV_TOKENS_FILE])
        if not path.exists():
            log.warning(
                "MCP server: %s (%s) does not exist: callers are anonymous, read-only", path, ENV_TOKENS_FILE
            )
            path = None
    access = Access(tokens=load_tokens(path) if path else None)
    backend = Backend(
        repo=settings.repo,
        branch=settings.branch,
        kubeconfig=settings.kubeconfig,
        context=settings.context,
        nats_url=settings.nats_url,
        cache_dir=settings.cache_dir,
    )
    return start_http_thread(ToolServer(backend, access), host, port)
