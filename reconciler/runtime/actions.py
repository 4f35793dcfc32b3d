"""Actions on the daemon's HTTP server: requests that change something.

Routes (JSON in, JSON out; see :class:`RollbackBody` and :class:`RollbackAnswer`):

* ``POST /api/env/<name>/rollback`` — undo the environment's newest promotion in effect (a ``git revert``);
* ``POST /api/env/<name>/apps/<app>/rollback`` — set only that app's images back (a partial rollback);
* ``POST /api/env/<name>/suspend``, ``…/resume``, ``…/sync`` (:class:`ControlBody`, :class:`ControlAnswer`)
  — :mod:`reconciler.runtime.control`, the code behind ``reconciler suspend|resume|sync ENV``: suspend or
  resume the environment (the ``reconciler-control`` key-value bucket with NATS, the daemon's state file
  without), or ask for a pass (``reconciler.reconcile.request.<env>`` with NATS, the daemon's trigger
  without; 409 while suspended); each noted in Git (``refs/notes/reconciler-control``) with who asked;
* ``POST /api/env/<name>/promote`` (:class:`PromoteBody`, :class:`PromoteAnswer`) — what ``reconciler
  promote FROM <name> --all|--app`` runs (FROM defaults to ``promotion.from``), with ``Requested-By:``;
  refused with 409 for ``promotion.via: pr`` without a Git host token, or when there is nothing to promote.

The rest of this docstring is about the rollback routes; the others share their authentication, origin
checks and errors.

Both run :func:`reconciler.promote.rollback.rollback_environment`, the code behind ``reconciler rollback ENV
[--app NAME]``, on the daemon's own promotion clone (the one its automatic reverts use, so the two never
interleave), with the environment's rules: pushed to the branch for ``promotion.via: push``, on a branch with
a pull request for ``promotion.via: pr`` — refused with 409 when the daemon has no Git host API token to open
it (the CLI would push the branch and print where to open it by hand; a button must not leave that
half-done). A commit pushed to the followed branch triggers a pass of the environment. The commits carry
``Requested-By: <identity>`` (``token``, or the user a trusted proxy named) next to ``Rollback-Of`` and
``Reason``; ``reconciler history`` and the status page's timeline show it.

Errors are ``{"error": "...", "field": "..."}`` (``field`` names the offending header, path parameter or
body field, when there is one): 400 a bad body, 401 no or wrong credentials, 403 actions disabled or a
foreign origin, 404 an unknown environment or app, 409 nothing to roll back (or it cannot be done: a
conflict, the page was out of date, no way to open a pull request), 415 a body that is not JSON, 503 Git
unreachable or this daemon a standby.

**Authentication.** Actions are off unless a token is configured (``RECONCILER_ACTIONS_TOKEN_FILE`` /
``reconciler run --actions-token-file``, or ``RECONCILER_ACTIONS_TOKEN``) or a proxy header is trusted
(``RECONCILER_ACTIONS_TRUST_PROXY_HEADER``); off, they answer 403 and the page's buttons are disabled with
the reason. A request authenticates with ``Authorization: Bearer <token>`` (compared with
:func:`hmac.compare_digest`; identity ``token``) or, only when that setting names the header, with the
identity an authenticating proxy such as oauth2-proxy put in it (``X-Forwarded-Email`` …). Trust the header
only when every request reaches the daemon through that proxy, which overwrites the header: anything that can
reach the port directly could otherwise claim any identity.

**Why this is not open to cross-site request forgery.** A forged request comes from a page of another site
that the victim's browser is made to send; the browser attaches the victim's cookies but nothing else.

* The token lives in the tab's ``sessionStorage`` (typed once, never in a cookie, never rendered by the
  server) and is sent by the page's script as an ``Authorization`` header. Another site cannot read it, and
  cannot make a browser send a custom ``Authorization`` header cross-site without a CORS preflight, which
  this server never grants (it sends no ``Access-Control-Allow-*`` header at all).
* A proxy-authenticated browser session does ride on a cookie, so those requests must also be
  ``Content-Type: application/json`` — a cross-site HTML form cannot send that, and ``fetch`` cannot
  without a preflight.
* Every action request whose ``Origin`` header is present must come from the page's own origin (its host
  and port equal the request's ``Host``, or the ``X-Forwarded-Host`` a proxy in front set — a header a
  cross-site page cannot add without a preflight; the scheme is not compared, so a TLS-terminating proxy
  works), and a ``Sec-Fetch-Site`` of ``cross-site`` or ``same-site`` is refused: browsers send those
  headers on every cross-origin POST, so even a mistake in the points above is stopped (403).
* The HTML pages are sent with ``Content-Security-Policy: frame-ancestors 'none'`` (and
  ``X-Frame-Options: DENY``), so another site cannot frame the page and trick a click on its buttons, and
  ``script-src 'self'``: the only script is ``/static/actions.js``.

Neither the token nor the ``Authorization`` header is ever logged or echoed in an answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar
from urllib.parse import urlsplit

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from reconciler.errors import ConfigError, ReconcilerError
from reconciler.model import Environment
from reconciler.observe.logging import get_logger
from reconciler.observe.status import RollbackTarget
from reconciler.promote.hosts import host_config
from reconciler.promote.promotion import PromotionError
from reconciler.promote.rollback import (
    NoPullRequestHost,
    NothingToRollBack,
    RollbackConflict,
    RollbackResult,
    UnexpectedTarget,
    UnknownApp,
    UnknownEnvironment,
    check_identity,
    rollback_candidates,
    rollback_environment,
    rollback_event,
)
from reconciler.runtime.control import (
    ControlRecord,
    ControlStore,
    ControlUnavailable,
    is_suspended,
    record_action,
    request_sync,
    resume_environment,
    suspend_environment,
    suspension_text,
)
from reconciler.settings import DaemonSettings
from reconciler.source.gitops import GitWriter

log = get_logger("reconciler.actions")

#: The shortest token accepted (``openssl rand -hex 32`` gives 64 characters).
MIN_TOKEN = 16
MAX_REASON = 500
STATIC = Path(__file__).parent / "static"
ENABLE_HINT = (
    "set RECONCILER_ACTIONS_TOKEN_FILE (reconciler run --actions-token-file PATH) or "
    "RECONCILER_ACTIONS_TOKEN to a token of at least 16 characters, or "
    "RECONCILER_ACTIONS_TRUST_PROXY_HEADER behind an authenticating proxy"
)


# -- configuration ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionsConfig:
    """Who may act: the bearer token (``None``: no token) and the trusted proxy header (``None``: none)."""

    token: SecretStr | None = None
    proxy_header: str | None = None

    @property
    def enabled(self) -> bool:
        """Whether the action endpoints answer at all."""
        return self.token is not None or self.proxy_header is not None

    @property
    def disabled_reason(self) -> str:
        """Why they do not ("" when they do)."""
        return "" if self.enabled else f"actions are disabled: {ENABLE_HINT}"


def load_actions_config(settings: DaemonSettings) -> ActionsConfig:
    """The actions configuration from the daemon's settings; the token file is read here.

    Raises:
        ConfigError: both a token and a token file are set, the file cannot be read, or the token is
            shorter than :data:`MIN_TOKEN` characters or has white space inside (the message names the
            setting, never the token).
    """
    token = settings.actions_token
    path = settings.actions_token_file
    if token is not None and path is not None:
        raise ConfigError(
            "set only one of RECONCILER_ACTIONS_TOKEN and RECONCILER_ACTIONS_TOKEN_FILE "
            "(--actions-token-file)"
        )
    where = "RECONCILER_ACTIONS_TOKEN"
    if path is not None:
        where = f"the actions token file {path} (RECONCILER_ACTIONS_TOKEN_FILE, --actions-token-file)"
        try:
            token = SecretStr(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {where}: {getattr(exc, 'strerror', None) or exc}") from None
    if token is not None:
        value = token.get_secret_value().strip()
        if len(value) < MIN_TOKEN:
            raise ConfigError(
                f"{where}: the token has {len(value)} characters; use at least {MIN_TOKEN} "
                "(e.g. `openssl rand -hex 32`)"
            )
        if any(c.isspace() for c in value):
            raise ConfigError(f"{where}: the token has white space inside; use one word")
        token = SecretStr(value)
    return ActionsConfig(token=token, proxy_header=settings.actions_trust_proxy_header)


# -- refusals --------------------------------------------------------------------------------------------


class ActionFailure(BaseModel):
    """The body of every refused or failed action."""

    error: str
    field: str | None = Field(default=None, description="the header, path parameter or body field at fault")


class Refused(Exception):
    """An action refused with ``status``; :meth:`response` is what the client gets."""

    def __init__(self, status: int, error: str, field: str | None = None) -> None:
        super().__init__(error)
        self.status = status
        self.error = error
        self.field = field

    def response(self) -> web.Response:
        headers = {"WWW-Authenticate": 'Bearer realm="reconciler"'} if self.status == 401 else None
        body = ActionFailure(error=self.error, field=self.field).model_dump_json(exclude_none=True)
        return web.Response(text=body, status=self.status, content_type="application/json", headers=headers)


# -- who is asking ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Actor:
    """Who asked: ``identity`` goes into the ``Requested-By`` trailer."""

    identity: str
    method: Literal["token", "proxy"]


def check_origin(request: web.Request) -> None:
    """Refuse (403) a request a browser sent from another site (see the module docstring).

    Raises:
        Refused: a foreign or opaque ``Origin``, or ``Sec-Fetch-Site: cross-site|same-site``.
    """
    site = request.headers.get("Sec-Fetch-Site", "").lower()
    if site in ("cross-site", "same-site"):
        raise Refused(
            403, f"Sec-Fetch-Site: {site} requests may not act; use the status page", "Sec-Fetch-Site"
        )
    origin = request.headers.get("Origin")
    if origin is None:
        return  # not sent by a browser on a cross-origin request (curl, scripts, same-origin GET)
    try:
        parts = urlsplit(origin.strip())
        origin_host = parts.netloc.lower() if parts.scheme in ("http", "https") else ""
    except ValueError:
        origin_host = ""
    own = {request.host.lower()}
    forwarded = request.headers.get("X-Forwarded-Host")
    if forwarded:
        own.add(forwarded.split(",")[0].strip().lower())
    if not origin_host or origin_host not in own:
        shown = origin[:100].replace("\n", " ")
        raise Refused(
            403, f"Origin: {shown!r} is not this page's origin; actions are same-origin only", "Origin"
        )


def authenticate(request: web.Request, config: ActionsConfig) -> Actor:
    """Who sent ``request``: the trusted proxy's user when the header is configured and present, else the
    bearer token's holder (identity ``token``).

    Raises:
        Refused: 401 for missing or wrong credentials; 400 for a proxy identity that cannot be recorded;
            415 for a proxy-authenticated request that is not ``application/json``.
    """
    if config.proxy_header is not None:
        given = request.headers.get(config.proxy_header)
        if given is not None:
            try:
                identity = check_identity(given)
            except ValueError as exc:
                raise Refused(400, f"{config.proxy_header}: {exc}", config.proxy_header) from None
            if request.content_type != "application/json":
                raise Refused(
                    415,
                    "Content-Type: a request authenticated by the proxy must be application/json",
                    "Content-Type",
                )
            return Actor(identity=identity, method="proxy")
    if config.token is None:
        raise Refused(
            401,
            f"{config.proxy_header}: missing; this daemon takes identities from its proxy",
            config.proxy_header,
        )
    header = request.headers.get("Authorization")
    if not header:
        raise Refused(401, "Authorization: missing; send 'Authorization: Bearer <token>'", "Authorization")
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Refused(401, "Authorization: expected 'Bearer <token>'", "Authorization")
    if not hmac.compare_digest(value.strip().encode(), config.token.get_secret_value().encode()):
        raise Refused(401, "Authorization: wrong token", "Authorization")
    return Actor(identity="token", method="token")


# -- bodies and answers ----------------------------------------------------------------------------------


class RollbackBody(BaseModel):
    """The JSON body of a rollback action (all optional; an empty body is ``{}``)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(
        default="", max_length=MAX_REASON, description="the Reason: trailer (default 'manual rollback')"
    )
    promotion: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{7,40}$",
        description="the promotion commit the caller means to undo (the page sends the one it shows): "
        "refused with 409 when the newest one to undo is another, so a second click never undoes one more",
    )


class RollbackAnswer(BaseModel):
    """What a rollback action did."""

    environment: str
    app: str | None = None
    requested_by: str
    reverted: list[str] = Field(description="the promotion commits undone")
    commits: list[str] = Field(description="the revert (or partial rollback) commits, in order")
    message: str
    pushed_to: str | None = Field(default=None, description="the branch the commits were pushed to")
    branch: str | None = Field(default=None, description="the proposal branch (promotion.via: pr)")
    fallback: bool = Field(default=False, description="the followed branch refused the push")
    pull_request_url: str | None = None
    instructions: str = ""
    pass_triggered: bool = Field(
        default=False, description="a pass of the environment was asked for (commits on the followed branch)"
    )


class ControlBody(BaseModel):
    """The JSON body of a suspend, resume or sync action (optional; an empty body is ``{}``)."""

    model_config = ConfigDict(extra="forbid")

    reason: str = Field(default="", max_length=MAX_REASON, description="why (recorded with the action)")


class ControlAnswer(BaseModel):
    """What a suspend, resume or sync action did."""

    environment: str
    action: Literal["suspend", "resume", "sync"]
    requested_by: str
    suspended: bool = Field(description="whether the environment is suspended now")
    at: float = Field(description="UNIX time, seconds")
    reason: str = ""
    via: str = Field(
        default="",
        description="sync: 'nats' (reconciler.reconcile.request.<env> published) or 'local' (this daemon's "
        "trigger); suspend/resume: 'nats' (the reconciler-control bucket) or 'file'",
    )
    message: str


class PromoteBody(BaseModel):
    """The JSON body of a promote action (optional; an empty body promotes every image from the
    environment's ``promotion.from``)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_env: str | None = Field(
        default=None, alias="from", description="the source environment (default: promotion.from)"
    )
    app: str | None = Field(default=None, description="only this app's images (default: every image)")


class PromoteAnswer(BaseModel):
    """What a promote action did."""

    environment: str
    from_env: str = Field(serialization_alias="from")
    requested_by: str
    commit: str | None = Field(default=None, description="the promotion commit (None: nothing to promote)")
    message: str
    pushed_to: str | None = None
    branch: str | None = Field(default=None, description="the proposal branch (promotion.via: pr)")
    fallback: bool = False
    pull_request_url: str | None = None
    instructions: str = ""
    moved: list[str] = Field(default_factory=list, description="image: before -> after")
    pass_triggered: bool = False


Body = TypeVar("Body", bound=BaseModel)


def _field(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "body"


async def read_body(request: web.Request, model: type[Body]) -> Body:
    """``model`` from the request's JSON body; an empty body is ``{}``.

    Raises:
        Refused: 415 a body that is not ``application/json``; 400 invalid JSON, not an object, or a field
            the model refuses (named in ``field``).
    """
    raw = await request.read()
    if not raw.strip():
        data: Any = {}
    else:
        if request.content_type != "application/json":
            raise Refused(415, "Content-Type: the body must be application/json", "Content-Type")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise Refused(400, f"body: not valid JSON: {exc}", "body") from None
        if not isinstance(data, dict):
            raise Refused(400, "body: expected a JSON object", "body")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = _field(tuple(first["loc"]))
        return_msg = f"{where}: {first['msg']}"
        raise Refused(400, return_msg, where) from None


# -- the actions -----------------------------------------------------------------------------------------


class Actions:
    """The action endpoints of one daemon.

    Args:
        daemon: the running daemon (:class:`reconciler.runtime.Daemon`): its ``settings`` and ``envs``;
            ``auto.writer`` (its promotion clone) and ``trigger``, ``bus`` and ``is_leader`` when present.
        config: who may act (:func:`load_actions_config`).
        on_change: called with the environment's name after an action changed it (a rollback or
            promotion committed, a suspend or resume stored): the server drops what it cached of it (its
            timeline).
    """

    def __init__(
        self, daemon: Any, config: ActionsConfig, on_change: Callable[[str], None] | None = None
    ) -> None:
        self.daemon = daemon
        self.config = config
        self.on_change = on_change
        self._own_writer: GitWriter | None = None
        self._locks: dict[str, asyncio.Lock] = {}
        self._apps: dict[tuple[str, str], dict[str, set[str]]] = {}

    @property
    def settings(self) -> DaemonSettings:
        settings: DaemonSettings = self.daemon.settings
        return settings

    def writer(self) -> GitWriter:
        """The daemon's promotion clone (shared with its automatic reverts; the clone's lock orders them)."""
        writer = getattr(getattr(self.daemon, "auto", None), "writer", None)
        if isinstance(writer, GitWriter):
            return writer
        if self._own_writer is None:  # a daemon without automatic reverts: the same clone directory
            s = self.settings
            self._own_writer = GitWriter(s.repo, s.branch, s.cache_dir / "promotion")
        return self._own_writer

    def close(self) -> None:
        if self._own_writer is not None:
            with contextlib.suppress(Exception):
                self._own_writer.close()

    # -- what the page offers ----------------------------------------------------------------------------

    def targets(self, writer: GitWriter, env: Environment) -> list[RollbackTarget]:
        """What the page's buttons would undo (the environment first, then each app), from a synced clone.
        The overlay's apps are rendered once per branch head.

        Raises:
            ReconcilerError: the clone cannot be read.
        """
        head = writer.head()
        key = (env.name, head)
        apps = self._apps.get(key)
        if apps is None:
            from reconciler.promote.promotion import apps_of
            from reconciler.render.helm import environment_options as helm_options

            try:
                apps = apps_of(writer, head, env.overlay, helm=helm_options(env))
            except PromotionError:
                apps = {}
            self._apps = {k: v for k, v in self._apps.items() if k[0] != env.name}
            self._apps[key] = apps
        return [
            RollbackTarget(app=app, promotion=c.sha, short=c.short, subject=c.subject)
            for app, c in rollback_candidates(writer, env, apps=apps)
        ]

    # -- handlers -------------------------------------------------------------------------------------------

    async def rollback_env(self, request: web.Request) -> web.Response:
        """``POST /api/env/{name}/rollback``."""
        return await self._handle(request, app=None)

    async def rollback_app(self, request: web.Request) -> web.Response:
        """``POST /api/env/{name}/apps/{app}/rollback``."""
        return await self._handle(request, app=request.match_info["app"])

    async def _handle(self, request: web.Request, app: str | None) -> web.Response:
        name = request.match_info["name"]
        started = time.monotonic()
        try:
            actor = self._admit(request)
            body = await read_body(request, RollbackBody)
            answer = await self._rollback(name, app, body, actor)
        except Refused as exc:
            log.warning(
                "action.refused",
                action="rollback",
                environment=name,
                app=app,
                status=exc.status,
                error=exc.error,
                remote=request.remote,
            )
            return exc.response()
        log.info(
            "action.rollback",
            environment=name,
            app=app,
            requested_by=answer.requested_by,
            commits=answer.commits,
            pushed_to=answer.pushed_to,
            pull_request=answer.pull_request_url,
            seconds=round(time.monotonic() - started, 3),
        )
        return web.Response(text=answer.model_dump_json(), content_type="application/json")

    # -- suspend, resume, sync, promote -------------------------------------------------------------------

    async def suspend(self, request: web.Request) -> web.Response:
        """``POST /api/env/{name}/suspend``."""
        return await self._act(request, "suspend", ControlBody, self._suspend)

    async def resume(self, request: web.Request) -> web.Response:
        """``POST /api/env/{name}/resume``."""
        return await self._act(request, "resume", ControlBody, self._resume)

    async def sync(self, request: web.Request) -> web.Response:
        """``POST /api/env/{name}/sync``."""
        return await self._act(request, "sync", ControlBody, self._sync)

    async def promote(self, request: web.Request) -> web.Response:
        """``POST /api/env/{name}/promote``."""
        return await self._act(request, "promote", PromoteBody, self._promote)

    async def _act(
        self,
        request: web.Request,
        action: str,
        model: type[Body],
        run: Callable[[str, Any, Actor], Any],
    ) -> web.Response:
        name = request.match_info["name"]
        started = time.monotonic()
        try:
            actor = self._admit(request)
            body = await read_body(request, model)
            self._check_env(name)
            answer: BaseModel = await run(name, body, actor)
        except Refused as exc:
            log.warning(
                "action.refused",
                action=action,
                environment=name,
                status=exc.status,
                error=exc.error,
                remote=request.remote,
            )
            return exc.response()
        log.info(
            f"action.{action}",
            environment=name,
            requested_by=actor.identity,
            seconds=round(time.monotonic() - started, 3),
        )
        return web.Response(text=answer.model_dump_json(by_alias=True), content_type="application/json")

    def _check_env(self, name: str) -> None:
        if getattr(self.daemon, "is_leader", True) is False:
            raise Refused(503, "this daemon is a standby; send actions to the leader")
        if name not in self.daemon.envs:
            known = ", ".join(self.daemon.envs) or "none"
            raise Refused(404, f"unknown environment {name!r} (known: {known})", "environment")

    def _store(self) -> ControlStore:
        store = getattr(self.daemon, "control", None)
        if not isinstance(store, ControlStore):
            raise Refused(503, "this daemon keeps no suspensions")
        return store

    async def _suspend(self, name: str, body: ControlBody, actor: Actor) -> ControlAnswer:
        return await self._set_suspended(name, body, actor, suspend=True)

    async def _resume(self, name: str, body: ControlBody, actor: Actor) -> ControlAnswer:
        return await self._set_suspended(name, body, actor, suspend=False)

    async def _set_suspended(
        self, name: str, body: ControlBody, actor: Actor, *, suspend: bool
    ) -> ControlAnswer:
        """Suspend or resume ``name`` through the control store (the same functions as the CLI); a
        resumption also asks for a pass."""
        store = self._store()
        run = suspend_environment if suspend else resume_environment
        try:
            state = await run(
                store,
                name,
                by=actor.identity,
                reason=body.reason,
                writer=self.writer(),
                publish=getattr(self.daemon, "publish_event", None),
            )
        except ControlUnavailable as exc:
            raise Refused(503, str(exc)) from None
        env_state = self.daemon.envs.get(name)
        if env_state is not None:
            env_state.suspension = state if suspend else None
        if self.on_change is not None:
            self.on_change(name)
        if suspend:
            message = suspension_text(state) + "; no passes until resumed"
        else:
            via = await self._ask_pass(name, "resume")
            message = f"resumed by {actor.identity}; a pass was asked for ({via})"
        return ControlAnswer(
            environment=name,
            action="suspend" if suspend else "resume",
            requested_by=actor.identity,
            suspended=suspend,
            at=state.at,
            reason=state.reason,
            via="nats" if store.uses_nats else "file",
            message=message,
        )

    async def _ask_pass(self, name: str, reason: str) -> str:
        """Ask for a pass of ``name``: on NATS when connected (whichever replica reconciles it takes the
        request), else with this daemon's trigger; returns ``nats`` or ``local``."""
        bus = getattr(self.daemon, "bus", None)
        if bus is not None and getattr(bus, "connected", False):
            from reconciler.bus import reconcile_request_subject

            try:
                payload = json.dumps({"environment": name, "reason": reason}).encode()
                await bus.publish(reconcile_request_subject(name), payload)
                return "nats"
            except Exception as exc:
                log.warning("action.request_not_published", environment=name, error=str(exc))
        trigger = getattr(self.daemon, "trigger", None)
        if trigger is not None:
            fut = trigger(name, reason)
            if isinstance(fut, asyncio.Future):
                fut.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        return "local"

    async def _sync(self, name: str, body: ControlBody, actor: Actor) -> ControlAnswer:
        store = self._store()
        suspended = await is_suspended(store, name)
        if suspended is not None:
            raise Refused(409, f"{name} is {suspension_text(suspended)}; resume it first")
        bus = getattr(self.daemon, "bus", None)
        publish = getattr(self.daemon, "publish_event", None)
        if bus is not None and getattr(bus, "connected", False):
            try:
                record = await request_sync(
                    bus,
                    name,
                    by=actor.identity,
                    reason=body.reason,
                    writer=self.writer(),
                    publish=publish,
                )
            except ReconcilerError as exc:
                raise Refused(503, f"the request could not be published: {exc}") from None
            via = "nats"
        else:
            via = await self._ask_pass(name, "sync")
            record = await record_action(
                ControlRecord(environment=name, action="sync", by=actor.identity, reason=body.reason),
                writer=self.writer(),
                publish=publish,
            )
        return ControlAnswer(
            environment=name,
            action="sync",
            requested_by=actor.identity,
            suspended=False,
            at=record.at,
            reason=record.reason,
            via=via,
            message=f"a pass of {name} was asked for by {actor.identity}",
        )

    async def _promote(self, name: str, body: PromoteBody, actor: Actor) -> PromoteAnswer:
        from reconciler.promote.promotion import promote

        env = self.daemon.envs[name].env
        source = body.from_env or (env.promotion.from_env if env is not None else None)
        if not source:
            raise Refused(400, f"{name} names no promotion.from; say where from", "from")
        host = host_config(self.settings.repo)
        if env is not None and env.promotion.via == "pr" and (host is None or not host.token):
            raise Refused(
                409,
                f"{name} takes changes by pull request (promotion.via: pr) and this daemon has no Git host "
                "API token to open one (RECONCILER_GIT_HOST_TOKEN); use `reconciler promote` instead",
            )
        lock = self._locks.setdefault(name, asyncio.Lock())
        writer = self.writer()

        def run() -> Any:
            from reconciler.reconcile import load_environments

            with writer.locked():
                writer.sync()
                invalid: dict[str, str] = {}
                envs = load_environments(writer.workdir, invalid=invalid)
                for n in (source, name):
                    if n in invalid:
                        raise ConfigError(invalid[n])
                    if n not in envs:
                        raise UnknownEnvironment(f"unknown environment {n!r} at the branch head")
                try:
                    return promote(
                        writer,
                        envs,
                        source,
                        name,
                        app=body.app,
                        all_images=body.app is None,
                        host=host,
                        probes=getattr(getattr(self.daemon, "ctx", None), "probes", None),
                        requested_by=actor.identity,
                    )
                finally:
                    with contextlib.suppress(ReconcilerError):
                        writer.sync()

        async with lock:
            try:
                result = await asyncio.to_thread(run)
            except Exception as exc:
                raise _promote_refusal(exc, name) from None
        if result.commit is None:
            raise Refused(409, f"nothing to promote: {result.message}")
        if result.pr_error:
            raise Refused(
                503,
                f"the branch {result.branch} is pushed but the pull request not opened: {result.pr_error}",
            )
        if self.on_change is not None:
            self.on_change(name)
        triggered = False
        if result.pushed_to == self.settings.branch:
            await self._ask_pass(name, "promotion")
            triggered = True
        from reconciler.bus import promotion_subject
        from reconciler.promote.records import PromotionEvent

        event = PromotionEvent(
            environment=name,
            kind="promoted" if result.mode == "push" else "proposed",
            revision=result.commit,
            promotions=[result.commit],
            pushed_to=result.pushed_to,
            fallback=result.fallback,
            url=result.pull_request.url if result.pull_request else None,
            message=result.message,
        )
        await self._emit(promotion_subject(name), event.model_dump_json().encode(), event.msg_id)
        return PromoteAnswer(
            environment=name,
            from_env=source,
            requested_by=actor.identity,
            commit=result.commit,
            message=result.message,
            pushed_to=result.pushed_to,
            branch=result.branch,
            fallback=result.fallback,
            pull_request_url=result.pull_request.url if result.pull_request else None,
            instructions=result.instructions,
            moved=[f"{c.name}: {c.before or '(none)'} -> {c.after.ref}" for c in result.plan.changes],
            pass_triggered=triggered,
        )

    async def _emit(self, subject: str, data: bytes, msg_id: str) -> None:
        """Publish an event the way the daemon does (notifier and NATS), or on the bus alone."""
        publish = getattr(self.daemon, "publish_event", None)
        if publish is not None:
            await publish(subject, data, msg_id)
            return
        bus = getattr(self.daemon, "bus", None)
        if bus is None or not getattr(bus, "connected", False):
            return
        try:
            await bus.publish(subject, data, msg_id=msg_id)
        except Exception as exc:  # the action is in Git; the event is a courtesy
            log.warning("action.event_not_published", subject=subject, error=str(exc))

    def _admit(self, request: web.Request) -> Actor:
        """Enabled, same-origin and authenticated, in that order (nothing about the environments is said
        to a caller that is not)."""
        if not self.config.enabled:
            raise Refused(403, self.config.disabled_reason)
        check_origin(request)
        return authenticate(request, self.config)

    async def _rollback(self, name: str, app: str | None, body: RollbackBody, actor: Actor) -> RollbackAnswer:
        daemon = self.daemon
        if getattr(daemon, "is_leader", True) is False:
            raise Refused(503, "this daemon is a standby; send actions to the leader")
        if name not in daemon.envs:
            known = ", ".join(daemon.envs) or "none"
            raise Refused(404, f"unknown environment {name!r} (known: {known})", "environment")
        s = self.settings
        lock = self._locks.setdefault(name, asyncio.Lock())
        async with lock:
            try:
                result = await asyncio.to_thread(
                    rollback_environment,
                    self.writer(),
                    name,
                    app=app,
                    reason=body.reason,
                    host=host_config(s.repo),
                    requested_by=actor.identity,
                    expected=body.promotion,
                    require_host=True,
                )
            except Exception as exc:
                raise _refusal(exc, name, app) from None
        if not result.commits:
            raise Refused(409, f"nothing to roll back: {result.message}")
        if self.on_change is not None:
            self.on_change(name)
        triggered = self._trigger(name, result)
        await self._publish(result, body.reason)
        return RollbackAnswer(
            environment=name,
            app=app,
            requested_by=actor.identity,
            reverted=result.reverted,
            commits=result.commits,
            message=result.message,
            pushed_to=result.pushed_to,
            branch=result.branch,
            fallback=result.fallback,
            pull_request_url=result.pull_request.url if result.pull_request else None,
            instructions=result.instructions,
            pass_triggered=triggered,
        )

    def _trigger(self, name: str, result: RollbackResult) -> bool:
        """Ask for a pass when the commits are on the followed branch."""
        trigger = getattr(self.daemon, "trigger", None)
        if trigger is None or result.pushed_to != self.settings.branch:
            return False
        fut = trigger(name, "rollback")
        if isinstance(fut, asyncio.Future):
            fut.add_done_callback(lambda f: None if f.cancelled() else f.exception())
        return True

    async def _publish(self, result: RollbackResult, reason: str) -> None:
        event = rollback_event(result, reason)
        if event is None:
            return
        from reconciler.bus import promotion_subject

        await self._emit(promotion_subject(event.environment), event.model_dump_json().encode(), event.msg_id)


def _refusal(exc: Exception, name: str, app: str | None) -> Refused:
    """The answer for an exception of :func:`rollback_environment`."""
    message = str(exc)
    if isinstance(exc, UnknownEnvironment):
        return Refused(404, message, "environment")
    if isinstance(exc, UnknownApp):
        return Refused(404, message, "app")
    if isinstance(exc, UnexpectedTarget):
        return Refused(409, message, "promotion")
    if isinstance(exc, (NothingToRollBack, RollbackConflict, NoPullRequestHost)):
        return Refused(409, message)
    if isinstance(exc, ConfigError):
        return Refused(409, f"envs/{name}.yaml is invalid at the branch head: {message}")
    if isinstance(exc, ReconcilerError):  # PromotionError, SourceError: Git refused or is unreachable
        return Refused(503 if exc.retryable else 409, message)
    if isinstance(exc, ValueError):
        return Refused(400, message)
    log.error("action.crashed", environment=name, app=app, error=repr(exc))
    return Refused(500, f"internal error: {exc!r}")


def _promote_refusal(exc: Exception, name: str) -> Refused:
    """The answer for an exception of :func:`reconciler.promote.promotion.promote`."""
    from reconciler.promote.promotion import RuleError

    if isinstance(exc, UnknownEnvironment):
        return Refused(404, str(exc), "from")
    if isinstance(exc, RuleError):
        return Refused(409, str(exc), "from")
    return _refusal(exc, name, None)


def add_routes(app: web.Application, actions: Actions) -> None:
    """Add the action endpoints and the page's script to ``app``."""
    app.router.add_post("/api/env/{name}/suspend", actions.suspend)
    app.router.add_post("/api/env/{name}/resume", actions.resume)
    app.router.add_post("/api/env/{name}/sync", actions.sync)
    app.router.add_post("/api/env/{name}/promote", actions.promote)
    app.router.add_post("/api/env/{name}/rollback", actions.rollback_env)
    app.router.add_post("/api/env/{name}/apps/{app}/rollback", actions.rollback_app)
    app.router.add_get("/static/actions.js", _script)


async def _script(_: web.Request) -> web.Response:
    text = (STATIC / "actions.js").read_text(encoding="utf-8")
    return web.Response(
        text=text,
        content_type="text/javascript",
        charset="utf-8",
        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"},
    )
