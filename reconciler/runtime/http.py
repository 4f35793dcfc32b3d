"""The daemon's HTTP server (aiohttp): ``/metrics``, ``/healthz``, ``/readyz``, the status page and its
JSON API. Bind it to 127.0.0.1 unless a Service in front of it needs otherwise.

Routes:

* ``GET /metrics`` — Prometheus text format (JetStream consumer lag sampled at scrape time).
* ``GET /healthz`` — 200 while the event loop answers.
* ``GET /readyz`` — 200 when Git is reachable and the environments were loaded from it (the daemon
  retries that first load while the remote is unreachable; the ``git`` check names its last failure
  meanwhile), the API server answers, NATS is connected (when configured) and leadership is known; 503
  otherwise. The body names each check. Checks are cached for :data:`READY_TTL` seconds, so probes
  cannot multiply the traffic.
* ``GET /`` — environments: revision, sync state, health and protocol health (HTML, refreshes itself).
* ``GET /env/<name>`` — objects and their health, the protocol health of its MCP servers (state, tool
  count, protocol version) and agents (card state, skills), recent drift, the promotion timeline and the
  diff of the pending change (a server-side dry-run of the branch's latest commit, cached for
  :data:`DIFF_TTL` seconds).
* ``GET /api/status``, ``GET /api/env/<name>``, ``GET /api/env/<name>/diff[?refresh=1]`` — the same as
  JSON (:mod:`reconciler.observe.status` models), for ``reconciler status --server``.
* ``POST /api/env/<name>/rollback``, ``POST /api/env/<name>/apps/<app>/rollback``,
  ``POST /api/env/<name>/suspend|resume|sync|promote`` — actions, off unless a token (or a trusted proxy
  header) is configured; see :mod:`reconciler.runtime.actions` for the authentication and why they are
  safe from cross-site request forgery.

HTML is rendered on the server with Jinja2 (autoescaped; templates in ``runtime/templates/``); there is no
front-end build. A ``<meta http-equiv="refresh">`` reloads the pages; an environment's page has the one
script, ``/static/actions.js`` (its "Roll back" buttons, their confirm step and result, and the reload,
which waits while a confirmation is open). Every page is sent with a ``Content-Security-Policy`` that
allows no other script and no framing.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import jinja2
from aiohttp import web
from pydantic import BaseModel, ValidationError

from reconciler.bus import STREAM_EVENTS, TRIGGERS_DURABLE
from reconciler.cluster.client import KubeClient
from reconciler.cluster.targets import ClusterTargets
from reconciler.errors import KubeError, ReconcilerError
from reconciler.model import Action, Environment, HealthStatus, PassResult
from reconciler.observe.events import DriftEvent
from reconciler.observe.logging import get_logger
from reconciler.observe.metrics import Metrics, default_metrics
from reconciler.observe.status import (
    EnvDetail,
    EnvSummary,
    PendingChange,
    RollbackTarget,
    TimelineEntry,
    age,
    commit_kind,
    diff_line_class,
    mark_applied,
    object_rows,
    parse_trailers,
    pending_from_result,
    protocol_detail,
    protocols_overview,
    summarize_env,
)
from reconciler.reconcile import PassContext, assess_health, run_pass
from reconciler.runtime.actions import Actions, ActionsConfig, add_routes, load_actions_config
from reconciler.runtime.control import ControlStore, Suspension, is_suspended
from reconciler.settings import DaemonSettings
from reconciler.source import GitSource

log = get_logger("reconciler.http")

#: The ``consumer`` label of the trigger consumer's lag metric (the durable itself is per installation:
#: ``Daemon.trigger_durable``).
TRIGGER_CONSUMER = TRIGGERS_DURABLE
DEFAULT_PORT = 9090
READY_TTL = 2.0  # seconds a readiness answer is reused
DIFF_TTL = 10.0  # seconds a pending-change dry-run is reused
HEALTH_TTL = 5.0  # seconds a live health reading is reused
DIFF_WAIT = 15.0  # seconds a page waits for a dry-run before showing the previous one
REFRESH = 5  # seconds between automatic page reloads
DRIFT_SHOWN = 20
TIMELINE_SHOWN = 20
TEMPLATES = Path(__file__).parent / "templates"
#: Sent with every HTML page: no script but the page's own file, no framing (the action buttons must not
#: be clickable through another site's frame), no plug-ins, forms and requests to this server only.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'unsafe-inline'; "
    "connect-src 'self'; img-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
}


# -- what the server needs from the daemon (runtime.daemon.Daemon has all of it) ----------------------


class EnvStateView(Protocol):
    """One environment's state in the daemon."""

    @property
    def name(self) -> str: ...
    @property
    def env(self) -> Environment | None: ...
    @property
    def running(self) -> bool: ...
    @property
    def passes(self) -> int: ...
    @property
    def last(self) -> PassResult | None: ...
    @property
    def applied(self) -> PassResult | None: ...


class BusView(Protocol):
    """The NATS connection."""

    @property
    def connected(self) -> bool: ...
    @property
    def js(self) -> Any: ...


class DaemonView(Protocol):
    """The parts of :class:`reconciler.runtime.Daemon` the server reads (never writes)."""

    @property
    def settings(self) -> DaemonSettings: ...
    @property
    def envs(self) -> Mapping[str, EnvStateView]: ...
    @property
    def drift_events(self) -> Sequence[Mapping[str, Any]]: ...
    @property
    def bus(self) -> BusView | None: ...
    @property
    def client(self) -> KubeClient: ...
    @property
    def source(self) -> GitSource: ...


# -- readiness ---------------------------------------------------------------------------------------


class Check(BaseModel):
    """One readiness check."""

    ok: bool
    detail: str = ""


class Readiness(BaseModel):
    """The ``/readyz`` body."""

    ready: bool
    checks: dict[str, Check]
    checked_at: float


def _leadership(daemon: DaemonView) -> Check:
    """Leadership is known: a daemon without leader election (no ``is_leader`` attribute) is the only
    instance; with one, ``is_leader`` is True (leader), False (follower) or None (not known yet). A sharded
    daemon (``shards`` set) is ready while its lease bucket answers; the detail says what it holds."""
    shards = getattr(daemon, "shards", None)
    if shards is not None:
        if shards.error:
            return Check(ok=False, detail=f"shard leases: {shards.error}")
        held = sorted(n for n in shards.held if shards.may_write(n))
        return Check(
            ok=True, detail=f"replica {shards.replica} of {len(shards.live)}: holds {len(held)} leases"
        )
    missing = object()
    value = getattr(daemon, "is_leader", missing)
    if value is missing:
        return Check(ok=True, detail="single instance (no leader election)")
    if value is None:
        return Check(ok=False, detail="leader election has not decided yet")
    return Check(ok=True, detail="leader" if value else "follower")


def _source_failure(daemon: DaemonView) -> str:
    """Why the daemon's first load of the repository (fetch, snapshot, ``envs/``) keeps failing, or ""
    when it succeeded, has not failed yet, or the daemon does not report it (no ``source_error``)."""
    error = str(getattr(daemon, "source_error", "") or "")
    if not error or getattr(daemon, "source_loaded", False):
        return ""
    src = daemon.source
    attempts = int(getattr(daemon, "source_attempts", 0) or 0)
    return (
        f"cannot load the environments from {src.url} ({src.branch}); "
        f"{attempts} failed attempt(s), retrying: {error[:300]}"
    )


def _not_loaded(daemon: DaemonView) -> Check | None:
    """A failed ``git`` check while the daemon's first load of the repository has not succeeded; ``None``
    once it has, or for a daemon that does not report it (no ``source_loaded`` attribute)."""
    if getattr(daemon, "source_loaded", True):
        return None
    src = daemon.source
    return Check(
        ok=False,
        detail=_source_failure(daemon) or f"loading the environments from {src.url} ({src.branch})",
    )


class _Ready:
    """Readiness checks with a short cache (one check at a time)."""

    def __init__(self, daemon: DaemonView, client: Callable[[], KubeClient]) -> None:
        self.daemon = daemon
        self.client = client
        self._last: Readiness | None = None
        self._lock = asyncio.Lock()

    def _git(self) -> Check:
        src = self.daemon.source
        try:
            out = src.repo.git.ls_remote("--heads", src.url, src.branch, kill_after_timeout=5)
        except Exception as exc:  # GitCommandError, SourceError, a timeout
            return Check(ok=False, detail=f"git ls-remote {src.url}: {str(exc).strip()[:300]}")
        if not str(out).strip():
            return Check(ok=False, detail=f"{src.url}: branch {src.branch!r} does not exist")
        return Check(ok=True, detail=f"{src.url} {src.branch}")

    def _kube(self) -> Check:
        try:
            version = self.client().request("GET", "/version", verb="version")
        except (KubeError, ReconcilerError) as exc:
            return Check(ok=False, detail=str(exc)[:300])
        return Check(ok=True, detail=f"{self.client().host} {(version or {}).get('gitVersion', '')}".strip())

    def _nats(self) -> Check:
        bus = self.daemon.bus
        url = self.daemon.settings.nats_url
        if not url:
            return Check(ok=True, detail="not configured")
        if bus is None or not bus.connected:
            why = str(getattr(self.daemon, "bus_error", "") or "")
            return Check(ok=False, detail=f"{url}: not connected" + (f" ({why})"[:300] if why else ""))
        return Check(ok=True, detail=url)

    async def get(self) -> Readiness:
        async with self._lock:
            if self._last is not None and time.time() - self._last.checked_at < READY_TTL:
                return self._last
            git, kube = await asyncio.gather(asyncio.to_thread(self._git), asyncio.to_thread(self._kube))
            checks = {
                "git": _not_loaded(self.daemon) or git,
                "kubernetes": kube,
                "nats": self._nats(),
                "leadership": _leadership(self.daemon),
            }
            self._last = Readiness(
                ready=all(c.ok for c in checks.values()), checks=checks, checked_at=time.time()
            )
            return self._last


# -- pending changes (server-side dry-run) -------------------------------------------------------------


class _Pending:
    """Dry-runs of the branch's latest commit per environment: one at a time, reused for ``ttl`` s."""

    def __init__(self, daemon: DaemonView, client: Callable[[], KubeClient], ttl: float = DIFF_TTL) -> None:
        self.daemon = daemon
        self.client = client
        self.ttl = ttl
        self.cache: dict[str, PendingChange] = {}
        self._tasks: dict[str, asyncio.Task[PendingChange]] = {}
        self._ctx: PassContext | None = None
        self._lock = threading.Lock()

    def _compute(self, env: str) -> PendingChange:
        with self._lock:
            if self._ctx is None:
                self._ctx = PassContext(source=self.daemon.source, client=self.client())
            t = time.time()
            try:
                result = run_pass(self._ctx, env, trigger="status-page", dry_run=True, with_health=False)
            except Exception as exc:  # a bug in a dry-run must not break the page
                return PendingChange(
                    environment=env, ok=False, error=f"internal error: {exc!r}", computed_at=t
                )
            return pending_from_result(result, t)

    def _fresh(self, env: str, entry: PendingChange | None) -> bool:
        if entry is None or time.time() - entry.computed_at > self.ttl:
            return False
        state = self.daemon.envs.get(env)
        last = state.last if state else None
        return last is None or entry.computed_at >= last.started_at + last.duration

    async def get(self, env: str, *, wait: float = DIFF_WAIT, refresh: bool = False) -> PendingChange | None:
        entry = self.cache.get(env)
        state = self.daemon.envs.get(env)
        if state is not None and state.running and not refresh:
            return entry
        if not refresh and self._fresh(env, entry):
            return entry
        task = self._tasks.get(env)
        if task is None or task.done():
            task = asyncio.create_task(asyncio.to_thread(self._compute, env), name=f"dry-run-{env}")
            self._tasks[env] = task

            def store(t: asyncio.Task[PendingChange]) -> None:
                if not t.cancelled() and t.exception() is None:
                    self.cache[env] = t.result()

            task.add_done_callback(store)
        try:
            return await asyncio.wait_for(asyncio.shield(task), wait)
        except TimeoutError:
            return entry

    async def close(self) -> None:
        for t in self._tasks.values():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(t), 30)


# -- Git history -----------------------------------------------------------------------------------------


def git_log_timeline(
    source: GitSource, env: Environment | None, name: str, limit: int = TIMELINE_SHOWN
) -> list[TimelineEntry]:
    """The latest commits of the branch that touch the environment (``envs/<name>.yaml`` or its overlay),
    newest first, read from the daemon's cache clone; kinds and trailers from the commit messages.

    Args:
        source: the environment repository (its cache clone, fetched by the passes).
        env: the environment's settings (for the overlay path); ``None`` looks at ``overlays/<name>``.
        name: the environment.
        limit: at most this many commits.

    Raises:
        ReconcilerError: wrapping Git errors (the caller shows the message).
    """
    overlay = env.overlay if env else f"overlays/{name}"
    try:
        commits = list(
            source.repo.iter_commits(
                f"refs/heads/{source.branch}", paths=[f"envs/{name}.yaml", overlay], max_count=limit
            )
        )
    except Exception as exc:  # GitCommandError, ValueError for a branch not fetched yet
        raise ReconcilerError(f"git log of {source.url}: {exc}") from None
    out: list[TimelineEntry] = []
    for c in commits:
        message = str(c.message)
        subject = message.splitlines()[0] if message else ""
        trailers = parse_trailers(message)
        out.append(
            TimelineEntry(
                sha=c.hexsha,
                short=c.hexsha[:7],
                date=c.committed_datetime.astimezone(UTC).isoformat(),
                author=str(c.author.name),
                subject=subject,
                kind=commit_kind(subject, trailers),
                trailers=trailers,
                from_env=trailers.get("Promotion-From", ""),
            )
        )
    return out


def history_timeline(writer: Any, env: Environment, limit: int = TIMELINE_SHOWN) -> list[TimelineEntry]:
    """The promotion history of :mod:`reconciler.promote.history` (trailers, merges, reverts and the
    outcome notes under ``refs/notes/reconciler``), newest first.

    Args:
        writer: a :class:`reconciler.source.gitops.GitWriter` (synced here).
        env: the environment.
        limit: at most this many entries.

    Raises:
        ReconcilerError: (``SourceError``) when the repository cannot be read.
    """
    from reconciler.promote.history import timeline as promote_timeline

    writer.sync()
    out = []
    for h in promote_timeline(writer, env, limit=limit):
        moved = [f"{m.name}: {m.before or '(none)'} → {m.after or '(removed)'}" for m in h.moved]
        out.append(
            TimelineEntry(
                sha=h.sha,
                short=h.sha[:7],
                date=datetime.fromtimestamp(h.at, UTC).isoformat(),
                author=h.author,
                subject=h.subject,
                kind=h.kind,
                outcome=h.outcome or "",
                from_env=h.from_env or "",
                moved=moved,
                merged_by=h.merged_by or "",
                reverted_by=h.reverted_by or "",
                reason=h.reason or "",
                automatic=h.automatic,
                requested_by=h.requested_by or "",
            )
        )
    return out


class _Timelines:
    """Timelines per environment, reused for ``ttl`` seconds; one Git read at a time.

    Uses :mod:`reconciler.promote.history` when it is installed (a private clone under
    ``<cache_dir>/status-page``, never the daemon's own), else the daemon's cache clone's ``git log``.
    With ``targets``, also what a rollback of the environment and of each app would undo (from the same
    clone; empty when the history cannot be read).
    """

    def __init__(
        self,
        daemon: DaemonView,
        ttl: float = DIFF_TTL,
        targets: Callable[[Any, Environment], list[RollbackTarget]] | None = None,
    ) -> None:
        self.daemon = daemon
        self.ttl = ttl
        self.targets = targets
        self.cache: dict[str, tuple[float, list[TimelineEntry], list[RollbackTarget]]] = {}
        self._lock = threading.Lock()
        self._writer: Any = None

    def forget(self, name: str) -> None:
        """Drop ``name``'s cached timeline (after an action changed its history)."""
        self.cache.pop(name, None)

    def _compute(
        self, name: str, env: Environment | None
    ) -> tuple[list[TimelineEntry], list[RollbackTarget]]:
        with self._lock:
            hit = self.cache.get(name)
            if hit is not None and time.time() - hit[0] < self.ttl:
                return hit[1], hit[2]
            entries: list[TimelineEntry] | None = None
            targets: list[RollbackTarget] = []
            if env is not None:
                try:
                    if self._writer is None:
                        from reconciler.source.gitops import GitWriter

                        s = self.daemon.settings
                        self._writer = GitWriter(s.repo, s.branch, s.cache_dir / "status-page")
                    entries = history_timeline(self._writer, env)
                    if self.targets is not None:
                        targets = self.targets(self._writer, env)
                except ImportError:
                    entries = None
                except ReconcilerError as exc:
                    log.warning("timeline.history_failed", environment=name, error=str(exc))
            if entries is None:
                entries = git_log_timeline(self.daemon.source, env, name)
            self.cache[name] = (time.time(), entries, targets)
            return entries, targets

    async def get(
        self, name: str, env: Environment | None, applied: str
    ) -> tuple[list[TimelineEntry], list[RollbackTarget]]:
        """The timeline (marked applied/pending against ``applied``) and the rollback targets."""
        entries, targets = await asyncio.to_thread(self._compute, name, env)
        return mark_applied([e.model_copy() for e in entries], applied), list(targets)

    def close(self) -> None:
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()


# -- live health -------------------------------------------------------------------------------------------


class _LiveHealth:
    """Each managed object's health read live, reused for ``ttl`` seconds, so the page shows a rollout
    finishing between passes: judged from the daemon's drift watches when they hold every object
    (``Daemon.watched_health``, no API call), else read from the API server (one list per kind and
    namespace). ``ttl`` 0 shows the health of the last pass only."""

    def __init__(
        self, daemon: DaemonView, client: Callable[[Environment | None], KubeClient], ttl: float
    ) -> None:
        self.daemon = daemon
        self.client = client  # the client of an environment's target cluster
        self.ttl = ttl
        self.cache: dict[str, tuple[float, dict[str, HealthStatus]]] = {}
        self._tasks: dict[str, asyncio.Task[dict[str, HealthStatus]]] = {}

    async def get(self, name: str) -> dict[str, HealthStatus] | None:
        state = self.daemon.envs[name]
        last = state.last
        if self.ttl <= 0 or last is None or state.running:
            return None
        refs = [c.ref for c in last.changes.entries if c.action in _LIVE_ACTIONS]
        if not refs:
            return None
        hit = self.cache.get(name)
        if hit is not None and time.time() - hit[0] < self.ttl and hit[0] >= last.started_at + last.duration:
            return hit[1]
        task = self._tasks.get(name)
        if task is None or task.done():
            after = state.env.health.no_controller_after if state.env else 60.0
            t0 = time.time()

            probes = getattr(getattr(self.daemon, "ctx", None), "probes", None)

            env = state.env

            watched = getattr(self.daemon, "watched_health", None)

            def read() -> dict[str, HealthStatus]:
                if watched is not None:  # the drift watches' copies: no API call for a page of 300
                    health: dict[str, HealthStatus] | None = watched(name)
                    if health is not None and all(str(r) in health for r in refs):
                        return {str(r): health[str(r)] for r in refs}
                return assess_health(self.client(env), refs, no_controller_after=after, probe=probes)

            task = asyncio.create_task(asyncio.to_thread(read), name=f"health-{name}")
            self._tasks[name] = task

            def store(t: asyncio.Task[dict[str, HealthStatus]]) -> None:
                if not t.cancelled() and t.exception() is None:
                    self.cache[name] = (t0, t.result())

            task.add_done_callback(store)
        try:
            return await asyncio.wait_for(asyncio.shield(task), 5.0)
        except Exception:  # slow or unreachable API server: fall back to the pass's reading
            return hit[1] if hit is not None else None

    async def close(self) -> None:
        for t in self._tasks.values():
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(t), 10)


_LIVE_ACTIONS = (Action.CREATED, Action.CONFIGURED, Action.UNCHANGED, Action.SKIPPED)


# -- the application -------------------------------------------------------------------------------------


@dataclass
class _Server:
    daemon: DaemonView
    metrics: Metrics
    ready: _Ready
    pending: _Pending
    timelines: _Timelines
    health: _LiveHealth
    templates: jinja2.Environment
    refresh: int
    actions: Actions
    _client: KubeClient | None = None
    _targets: ClusterTargets | None = None

    def client(self) -> KubeClient:
        """The server's own API client (its calls never mix with the passes' counters)."""
        if self._client is None:
            s = self.daemon.settings
            self._client = KubeClient(s.kubeconfig, s.context, timeout=5.0, retry=None)
        return self._client

    def targets(self) -> ClusterTargets:
        """The server's own clients of the environments' target clusters (made from :meth:`client`)."""
        if self._targets is None:
            self._targets = ClusterTargets(self.client())
        return self._targets

    def cluster(self, name: str) -> str:
        """How the status names ``name``'s target cluster: the one its last pass used, else the one its
        file names; ``""`` while its file has not been read or is invalid (no cluster is guessed)."""
        state = self.daemon.envs[name]
        last = state.last
        if last is not None and last.cluster:
            return last.cluster
        return self.targets().label(state.env) if state.env is not None else ""

    def drift(self, env: str) -> list[DriftEvent]:
        out = []
        for raw in reversed(list(self.daemon.drift_events)):
            if raw.get("environment") != env:
                continue
            with contextlib.suppress(ValidationError):
                out.append(DriftEvent.model_validate(dict(raw)))
            if len(out) >= DRIFT_SHOWN:
                break
        return out

    async def last(self, name: str) -> PassResult | None:
        """The last pass of ``name`` with its health replaced by a live reading when there is one."""
        last = self.daemon.envs[name].last
        live = await self.health.get(name)
        if last is None or live is None:
            return last
        return last.model_copy(update={"health": live})

    async def summary(self, name: str) -> EnvSummary:
        state = self.daemon.envs[name]
        applied = state.applied
        if applied is not None and state.last is not None and state.last.ok:
            applied = await self.last(name)  # the same pass, with a live health reading
        summary = summarize_env(
            name,
            await self.last(name),
            applied=applied,
            gate=getattr(state, "gate", ""),
            protocols=getattr(state, "protocols", None),
            running=state.running,
            passes=state.passes,
            pending=self.pending.cache.get(name),
            drift=self.drift(name),
            cluster=self.cluster(name),
        )
        suspension = await self._suspension(name)
        if suspension is not None:
            summary.suspended = True
            summary.suspended_by = suspension.by
            summary.suspended_at = suspension.at
            summary.suspended_reason = suspension.reason
        env = state.env
        if env is not None and env.promotion.from_env:
            summary.promote_from = env.promotion.from_env
        shards = getattr(self.daemon, "shards", None)
        if shards is not None:  # which replica holds it (sharded daemons)
            summary.owner = shards.owner(name)
        return summary

    async def _suspension(self, name: str) -> Suspension | None:
        """The environment's suspension as the store has it now (every replica's view), else the one the
        daemon read before its last pass."""
        store = getattr(self.daemon, "control", None)
        if isinstance(store, ControlStore):
            with contextlib.suppress(Exception):
                return await is_suspended(store, name)
        cached = getattr(self.daemon.envs[name], "suspension", None)
        return cached if isinstance(cached, Suspension) else None

    async def summaries(self) -> list[EnvSummary]:
        """Every environment's summary; while the first load of the repository keeps failing, the
        environments named in the settings are listed with that failure as their error."""
        out = list(await asyncio.gather(*(self.summary(n) for n in self.daemon.envs)))
        failure = _source_failure(self.daemon)
        if failure:
            out += [
                EnvSummary(name=n, error=failure)
                for n in self.daemon.settings.envs
                if n not in self.daemon.envs
            ]
        return out

    async def detail(self, name: str) -> tuple[EnvDetail, str]:
        state = self.daemon.envs[name]
        pending = await self.pending.get(name)
        applied = state.applied.revision if state.applied else ""
        timeline_error = ""
        targets: list[RollbackTarget] = []
        try:
            entries, targets = await self.timelines.get(name, state.env, applied)
        except ReconcilerError as exc:
            entries, timeline_error = [], str(exc)
        last = await self.last(name)
        # a pass that failed before it touched any object (an invalid envs/ file, a render error) says
        # nothing about the objects: show those of the revision that is applied
        shown = last if last is None or last.ok or last.changes.entries else state.applied
        return (
            EnvDetail(
                summary=await self.summary(name),
                objects=object_rows(shown),
                drift=self.drift(name),
                timeline=entries,
                pending=pending,
                rollback=targets,
            ),
            timeline_error,
        )

    def render(self, template: str, **values: Any) -> web.Response:
        values.setdefault("scripted", False)
        html = self.templates.get_template(template).render(refresh=self.refresh, now=time.time(), **values)
        return web.Response(text=html, content_type="text/html", charset="utf-8", headers=SECURITY_HEADERS)


SERVER = web.AppKey("reconciler_server", _Server)


def _ago(ts: float | None) -> str:
    return age(ts)


def _utc(ts: float | None) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC") if ts else ""


def _short(revision: str) -> str:
    branch, sep, sha = revision.partition("@sha1:")
    return f"{branch}@{sha[:7]}" if sep else revision


def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ago"] = _ago
    env.filters["utc"] = _utc
    env.filters["short"] = _short
    env.filters["diffclass"] = diff_line_class
    env.filters["protocol_detail"] = protocol_detail
    env.filters["protocols_overview"] = protocols_overview
    return env


def _json(model: BaseModel | Sequence[BaseModel], status: int = 200) -> web.Response:
    if not isinstance(model, BaseModel):
        text = "[" + ",".join(m.model_dump_json() for m in model) + "]"
    else:
        text = model.model_dump_json()
    return web.Response(text=text, status=status, content_type="application/json")


def _server(request: web.Request) -> _Server:
    return request.app[SERVER]


def _env_name(request: web.Request) -> str:
    name = request.match_info["name"]
    if name not in _server(request).daemon.envs:
        raise web.HTTPNotFound(
            text=f"unknown environment {name!r} (known: {', '.join(_server(request).daemon.envs) or 'none'})"
        )
    return name


async def _metrics(request: web.Request) -> web.Response:
    srv = _server(request)
    bus = srv.daemon.bus
    if bus is not None and bus.connected:
        try:
            durable = str(getattr(srv.daemon, "trigger_durable", TRIGGER_CONSUMER))
            info = await asyncio.wait_for(bus.js.consumer_info(STREAM_EVENTS, durable), 2.0)
            srv.metrics.set_consumer_lag(
                STREAM_EVENTS, TRIGGER_CONSUMER, int(info.num_pending or 0), int(info.num_ack_pending or 0)
            )
        except Exception as exc:  # consumer not created yet, NATS slow: serve the last values
            log.debug("metrics.consumer_info_failed", error=str(exc))
    body, content_type = srv.metrics.render(request.headers.get("Accept", ""))
    return web.Response(body=body, headers={"Content-Type": content_type})


async def _healthz(_: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def _readyz(request: web.Request) -> web.Response:
    r = await _server(request).ready.get()
    return _json(r, 200 if r.ready else 503)


async def _index(request: web.Request) -> web.Response:
    srv = _server(request)
    envs = await srv.summaries()
    ready = await srv.ready.get()
    s = srv.daemon.settings
    return srv.render("index.html", envs=envs, ready=ready, repo=s.repo, branch=s.branch)


async def _env_page(request: web.Request) -> web.Response:
    srv = _server(request)
    name = _env_name(request)
    detail, timeline_error = await srv.detail(name)
    s = srv.daemon.settings
    return srv.render(
        "env.html",
        d=detail,
        timeline_error=timeline_error,
        repo=s.repo,
        branch=s.branch,
        envs=list(srv.daemon.envs),
        actions=_page_actions(srv.actions.config, request),
        scripted=True,
    )


@dataclass(frozen=True)
class _PageActions:
    """What the environment page says about actions (never the token)."""

    enabled: bool
    reason: str
    identity: str  # the trusted proxy's user for this request ("": the page asks for the token)


def _page_actions(config: ActionsConfig, request: web.Request) -> _PageActions:
    identity = request.headers.get(config.proxy_header, "").strip() if config.proxy_header else ""
    return _PageActions(enabled=config.enabled, reason=config.disabled_reason, identity=identity[:200])


async def _api_status(request: web.Request) -> web.Response:
    srv = _server(request)
    return _json(await srv.summaries())


async def _api_env(request: web.Request) -> web.Response:
    srv = _server(request)
    detail, _ = await srv.detail(_env_name(request))
    return _json(detail)


async def _api_diff(request: web.Request) -> web.Response:
    srv = _server(request)
    name = _env_name(request)
    pending = await srv.pending.get(name, refresh=request.query.get("refresh") in ("1", "true"))
    if pending is None:
        return web.json_response({"error": "the dry-run has not finished yet; retry"}, status=503)
    return _json(pending)


def build_app(
    daemon: DaemonView,
    *,
    metrics: Metrics | None = None,
    refresh: int = REFRESH,
    diff_ttl: float = DIFF_TTL,
    health_ttl: float = HEALTH_TTL,
) -> web.Application:
    """The aiohttp application of the daemon's HTTP server.

    Args:
        daemon: the running daemon (read only; see :class:`DaemonView`).
        metrics: what ``/metrics`` serves; the same object the daemon's hooks feed (see
            :class:`reconciler.observe.Observer`); default :func:`default_metrics`.
        refresh: seconds between automatic reloads of the status pages (0: never).
        diff_ttl: seconds a pending-change dry-run (and a timeline) is reused before the next page
            view repeats it.
        health_ttl: seconds a live health reading is reused; 0 shows the health the last pass read.

    Raises:
        ConfigError: the actions' token setting is unusable (see
            :func:`reconciler.runtime.actions.load_actions_config`).
    """
    app = web.Application()

    def client() -> KubeClient:
        return srv.client()

    actions = Actions(daemon, load_actions_config(daemon.settings))
    timelines = _Timelines(daemon, ttl=diff_ttl, targets=actions.targets)
    actions.on_change = timelines.forget
    srv = _Server(
        daemon=daemon,
        metrics=metrics or default_metrics(),
        ready=_Ready(daemon, client),
        pending=_Pending(daemon, client, ttl=diff_ttl),
        timelines=timelines,
        health=_LiveHealth(daemon, lambda env: srv.targets().client_for(env), ttl=health_ttl),
        templates=_templates(),
        refresh=refresh,
        actions=actions,
    )
    app[SERVER] = srv

    async def cleanup(_: web.Application) -> None:
        await srv.pending.close()
        await srv.health.close()
        srv.timelines.close()
        actions.close()
        if srv._targets is not None:
            srv._targets.close()
        if srv._client is not None:
            srv._client.close()

    app.on_cleanup.append(cleanup)
    app.router.add_get("/metrics", _metrics)
    app.router.add_get("/healthz", _healthz)
    app.router.add_get("/readyz", _readyz)
    app.router.add_get("/", _index)
    app.router.add_get("/env/{name}", _env_page)
    app.router.add_get("/api/status", _api_status)
    app.router.add_get("/api/env/{name}", _api_env)
    app.router.add_get("/api/env/{name}/diff", _api_diff)
    add_routes(app, actions)
    return app


async def start_http(
    daemon: DaemonView,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    *,
    metrics: Metrics | None = None,
    refresh: int = REFRESH,
    diff_ttl: float = DIFF_TTL,
    health_ttl: float = HEALTH_TTL,
) -> web.AppRunner:
    """Serve :func:`build_app` on ``host:port`` until ``await runner.cleanup()``.

    Args:
        daemon: the daemon.
        host: the address to bind (127.0.0.1 by default; 0.0.0.0 only behind a Service).
        port: TCP port; 0 picks a free one (read it from ``runner.addresses[0][1]``).
        metrics: see :func:`build_app`.
        refresh: see :func:`build_app`.
        diff_ttl: see :func:`build_app`.
        health_ttl: see :func:`build_app`.

    Raises:
        OSError: when the address cannot be bound.
        ConfigError: see :func:`build_app`.
    """
    app = build_app(daemon, metrics=metrics, refresh=refresh, diff_ttl=diff_ttl, health_ttl=health_ttl)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    try:
        await site.start()
    except OSError:
        await runner.cleanup()
        raise
    log.info("http.listening", address=f"http://{host}:{runner.addresses[0][1]}/")
    return runner
