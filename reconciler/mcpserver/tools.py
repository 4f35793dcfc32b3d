"""What each tool of reconciler's MCP server does, as plain synchronous functions over the code behind the
command line: ``reconciler status`` (:func:`reconciler.cli_observe.cluster_status`), ``history``
(:func:`reconciler.promote.history.timeline`), ``diff`` (:func:`reconciler.cli_observe.pending_change`),
``build`` (:func:`reconciler.reconcile.render_environment`), ``promote --pr``
(:func:`reconciler.promote.promotion.promote`) and ``rollback``
(:func:`reconciler.promote.rollback.rollback_environment`). The answers are pydantic models: the tools'
output schemas.

Errors: :class:`InvalidArgument` for input that names nothing that exists (an unknown environment, app or
ref), :class:`Forbidden` for a rule that refuses the call, :class:`~reconciler.errors.ReconcilerError` for
everything the repository, the cluster or the bus did not allow.
"""

from __future__ import annotations

import contextlib
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, Field

from reconciler.errors import ReconcilerError
from reconciler.observe.status import EnvSummary, PendingChange, ProtocolReport
from reconciler.promote.history import HistoryEntry

if TYPE_CHECKING:
    from reconciler.cluster.client import KubeClient
    from reconciler.mcpserver.livecache import ReadCount, WatchedReader
    from reconciler.model import Environment
    from reconciler.promote.records import ToolCallRecord
    from reconciler.source.gitops import GitWriter

#: What a Secret's values become in rendered objects.
MASK = "<masked>"


class InvalidArgument(ReconcilerError):
    """A tool argument names something that does not exist (an environment, app or ref)."""


class Forbidden(ReconcilerError):
    """A rule refuses the call before anything is done: the environment's or the caller's allow-list, or
    the environment's promotion rules (``promotion.from``, ``promotion.via``)."""


# --------------------------------------------------------------------------- answers (output schemas)


class EnvironmentsAnswer(BaseModel):
    """``listEnvironments``: each environment's applied revision, sync state and verdict (as
    ``reconciler status -o json``)."""

    head: str = Field(
        default="", description="the followed branch's latest revision ('' without a repository)"
    )
    environments: list[EnvSummary]
    checked_at: str = Field(
        default="", description="when the cluster state shown was read (UTC, ISO 8601): the time of the call"
    )
    read_from: str = Field(
        default="api",
        description="'watch': every object from list+watch mirrors open at checked_at (current up to the "
        "API server's delivery of watch events); 'api': read from the API server during the call; "
        "'watch+api': some of each (kinds that cannot be listed and watched are read directly)",
    )


class ObjectHealth(BaseModel):
    """One object of an environment's inventory and its health."""

    object: str = Field(description="Kind/namespace/name")
    state: str = Field(description="Healthy, Progressing, Degraded, Unverified or Failed")
    reason: str = ""
    judge: str = Field(default="", description="who would judge an Unverified object")


class HealthAnswer(BaseModel):
    """``getObjectHealth``: every object the environment last applied, with its health and why."""

    environment: str
    revision: str = Field(description="the revision last applied")
    verdict: str = Field(description="the set's verdict in words")
    objects: list[ObjectHealth]
    checked_at: str = Field(default="", description="when the objects were read (UTC, ISO 8601)")
    read_from: str = Field(default="api", description="'watch' or 'api', as in listEnvironments")


class HistoryAnswer(BaseModel):
    """``getHistory``: the environment's timeline, newest first (as ``reconciler history -o json``)."""

    environment: str
    entries: list[HistoryEntry]


class DiffAnswer(BaseModel):
    """``diffEnvironment``/``getDrift``: what applying a revision would change (server-side dry-run)."""

    environment: str
    ref: str = Field(description="the ref or revision compared")
    differs: bool
    change: PendingChange


class RenderAnswer(BaseModel):
    """``renderEnvironment``: the environment's rendered objects at a ref (Secret values masked)."""

    environment: str
    revision: str
    count: int
    objects: list[dict[str, Any]]


class PolicyVersion(BaseModel):
    """One image policy of an environment: what Git runs and the newest pushed version seen."""

    environment: str
    policy: str
    image: str
    rule: dict[str, Any] = Field(description="the policy (semver range, alphabetical or numerical order)")
    in_git: list[str] = Field(description="the overlay's images: entries that deploy it (reference)")
    latest_seen: str | None = Field(
        default=None, description="the newest pushed version the bus holds (registry.image.pushed.*)"
    )
    latest_seen_at: str | None = None
    latest_accepted: bool | None = Field(default=None, description="whether the policy accepts latest_seen")
    note: str = ""


class ImagePoliciesAnswer(BaseModel):
    """``getImagePolicies``."""

    policies: list[PolicyVersion]


class ToolGrant(BaseModel):
    """What one Agent may call on one MCP server (an empty toolNames grants every tool)."""

    agent: str
    server: str
    tools: list[str] | None = Field(description="the tool names granted; null = every tool the server lists")


class ProtocolsAnswer(BaseModel):
    """``getProtocols``: MCP/A2A probe results of the environment's servers and agents, and its Agents'
    tool grants (from the desired set at the branch head)."""

    environment: str
    report: ProtocolReport
    grants: list[ToolGrant]


class WriteAnswer(BaseModel):
    """What a write tool did."""

    tool: str
    environment: str
    caller: str
    ok: bool
    message: str
    commit: str | None = None
    branch: str | None = None
    pushed_to: str | None = None
    url: str | None = Field(default=None, description="the pull request, when one was opened")
    instructions: str = Field(
        default="", description="how to open the pull request when no host token is set"
    )
    detail: dict[str, Any] = Field(default_factory=dict, description="the full result of the operation")


# --------------------------------------------------------------------------- the backend


#: Guards the lazy making of :attr:`Backend._reader` (tools run from several threads).
_READER_LOCK = threading.Lock()


@contextlib.contextmanager
def _counting(client: Any) -> Iterator[ReadCount]:
    """``client.counting()`` for a watch-backed reader; for a plain client, a count of no mirror reads."""
    from reconciler.mcpserver.livecache import ReadCount, WatchedReader

    if isinstance(client, WatchedReader):
        with client.counting() as count:
            yield count
    else:
        yield ReadCount()


def _now() -> str:
    """Now in UTC, ISO 8601 to the millisecond."""
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds")


def mask_secrets(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` with every ``data``/``stringData`` value of a Secret replaced by :data:`MASK` (other
    objects unchanged)."""
    if obj.get("kind") != "Secret" or str(obj.get("apiVersion", "")) != "v1":
        return obj
    out = dict(obj)
    for key in ("data", "stringData"):
        values = out.get(key)
        if isinstance(values, dict):
            out[key] = {k: MASK for k in values}
    return out


@dataclass
class Backend:
    """Where the tools read and write.

    Args:
        repo: the environment repository (path or clone URL); ``None``: tools that need it refuse.
        branch: the followed branch.
        kubeconfig: the cluster (``None``: ``$KUBECONFIG`` or in-cluster, as ``reconciler status``).
        context: the kubeconfig context.
        nats_url: the bus, for ``requestSync``, events and latest image versions (``None``: none).
        cache_dir: where the clones live (default ``reconciler.paths.default_cache_dir()``).
        watch_cache: answer ``listEnvironments`` and ``getObjectHealth`` from list+watch mirrors of the
            kinds they read (:class:`reconciler.mcpserver.livecache.WatchedReader`): the same answer as
            direct reads, without one GET per object on each call. ``False``: read the API server on
            each call.
    """

    repo: str | None = None
    branch: str = "main"
    kubeconfig: Path | None = None
    context: str | None = None
    nats_url: str | None = None
    cache_dir: Path | None = None
    watch_cache: bool = True
    _client: KubeClient | None = field(default=None, repr=False)
    _reader: WatchedReader | None = field(default=None, repr=False)

    # -- plumbing ----------------------------------------------------------------------------------

    def _cache(self) -> Path:
        from reconciler.paths import default_cache_dir

        return self.cache_dir or default_cache_dir()

    def _need_repo(self) -> str:
        if not self.repo:
            raise ReconcilerError("this server has no environment repository (start it with --repo)")
        return self.repo

    def client(self) -> KubeClient:
        """The cluster client (made once)."""
        from reconciler.cluster.client import KubeClient

        if self._client is None:
            self._client = KubeClient(self.kubeconfig, self.context)
        return self._client

    def reader(self) -> Any:
        """The client the status tools read through: the watch-backed reader (made once) when
        :attr:`watch_cache` is on, else :meth:`client`."""
        if not self.watch_cache:
            return self.client()
        with _READER_LOCK:
            if self._reader is None:
                from reconciler.cluster.client import KubeClient
                from reconciler.mcpserver.livecache import WatchedReader

                self._reader = WatchedReader(self.client(), KubeClient(self.kubeconfig, self.context))
            return self._reader

    def writer(self) -> GitWriter:
        """A working clone of the repository (the same one the CLI commands use)."""
        from reconciler.source.gitops import GitWriter

        return GitWriter(self._need_repo(), self.branch, self._cache())

    def environments(self) -> dict[str, Environment]:
        """The environments at the branch head.

        Raises:
            ReconcilerError: no repository, or it cannot be fetched.
        """
        from reconciler.reconcile import load_environments
        from reconciler.source import GitSource

        source = GitSource(self._need_repo(), self.branch, self._cache())
        return load_environments(source.snapshot(source.fetch()).root)

    def environment(self, name: str) -> Environment:
        """One environment at the branch head.

        Raises:
            InvalidArgument: it is not defined.
        """
        envs = self.environments()
        if name not in envs:
            raise InvalidArgument(
                f"unknown environment {name!r}: envs/ defines {', '.join(sorted(envs)) or 'none'}"
            )
        return envs[name]

    def _inventory(self, name: str) -> Any:
        from reconciler.cli_observe import _inventories

        inv = _inventories(self.reader()).get(name)
        if inv is None or not inv.revision:
            known = self.environments() if self.repo else {}
            if self.repo and name not in known:
                raise InvalidArgument(
                    f"unknown environment {name!r}: envs/ defines {', '.join(sorted(known)) or 'none'}"
                )
            raise InvalidArgument(f"environment {name!r} has not been reconciled yet (no inventory)")
        return inv

    # -- read tools ---------------------------------------------------------------------------------

    def list_environments(self, names: list[str] | None = None, health: bool = True) -> EnvironmentsAnswer:
        """Status of ``names`` (default every environment), as ``reconciler status``."""
        from reconciler.cli_observe import probe_service, repo_environments, status_by_cluster
        from reconciler.observe.status import NOT_PROBED

        invalid: dict[str, str] = {}
        head, repo_envs, defined = (
            repo_environments(self.repo, self.branch, self._cache(), invalid=invalid)
            if self.repo
            else ("", [], {})
        )
        if names and self.repo:
            unknown = [n for n in names if n not in repo_envs]
            if unknown:
                raise InvalidArgument(
                    f"unknown environment {', '.join(map(repr, unknown))}: envs/ defines "
                    f"{', '.join(repo_envs) or 'none'}"
                )
        client = self.reader()
        checked_at = _now()
        with _counting(client) as count:
            probes, note = probe_service(client) if health else (None, NOT_PROBED)
            envs = status_by_cluster(
                client,
                names or None,
                head=head,
                repo_envs=repo_envs,
                defined=defined,
                health=health,
                probes=probes,
                probe_note=note,
                per_cluster_errors=bool(self.repo),
                invalid=invalid,
            )
        read_from = count.source
        return EnvironmentsAnswer(head=head, environments=envs, checked_at=checked_at, read_from=read_from)

    def object_health(self, name: str) -> HealthAnswer:
        """Each object of ``name``'s inventory, read live and judged."""
        from reconciler.cli_observe import probe_service
        from reconciler.model import verdict
        from reconciler.reconcile import assess_health

        checked_at = _now()
        client = self.reader()
        with _counting(client) as count:
            inv = self._inventory(name)
            probes, _ = probe_service(client)
            health = assess_health(client, inv.entries, probe=probes)
        read_from = count.source
        v = verdict(health)
        return HealthAnswer(
            environment=name,
            revision=inv.revision,
            verdict=v.message,
            objects=[
                ObjectHealth(object=k, state=h.state.value, reason=h.message, judge=h.judge)
                for k, h in health.items()
            ],
            checked_at=checked_at,
            read_from=read_from,
        )

    def history(self, name: str, limit: int = 50) -> HistoryAnswer:
        """``reconciler history NAME``."""
        from reconciler.promote.history import timeline
        from reconciler.reconcile import load_environments

        writer = self.writer()
        try:
            with writer.locked():
                writer.sync()
                envs = load_environments(writer.workdir)
                if name not in envs:
                    raise InvalidArgument(
                        f"unknown environment {name!r}: envs/ defines {', '.join(sorted(envs)) or 'none'}"
                    )
                entries = timeline(writer, envs[name], limit=limit)
        finally:
            writer.close()
        return HistoryAnswer(environment=name, entries=entries)

    def diff(self, name: str, ref: str | None = None) -> DiffAnswer:
        """``reconciler diff NAME`` at ``ref`` (default the branch head): a server-side dry-run."""
        from reconciler.cli_observe import UnknownEnvironmentError, pending_change
        from reconciler.errors import SourceError

        try:
            pending = pending_change(
                self._need_repo(), self.branch, name, self.kubeconfig, self.context, self._cache(), ref=ref
            )
        except UnknownEnvironmentError as exc:
            raise InvalidArgument(str(exc.message)) from None
        except SourceError as exc:
            if ref and ("does not exist" in str(exc) or "not a Git ref" in str(exc)):
                raise InvalidArgument(str(exc)) from None
            raise
        if not pending.ok:
            raise ReconcilerError(
                f"dry-run of {name} at {pending.revision or ref or self.branch} failed: {pending.error}"
            )
        return DiffAnswer(environment=name, ref=ref or self.branch, differs=pending.differs, change=pending)

    def drift(self, name: str) -> DiffAnswer:
        """What differs between the cluster and the revision ``name`` last applied (a dry-run at it)."""
        inv = self._inventory(name)
        sha = str(inv.revision).partition("@sha1:")[2] or str(inv.revision)
        answer = self.diff(name, sha)
        answer.ref = inv.revision
        return answer

    def render(self, name: str, ref: str | None = None) -> RenderAnswer:
        """``reconciler build NAME`` at ``ref`` (default the branch head), Secret values masked."""
        from reconciler.errors import SourceError
        from reconciler.reconcile import load_environment, render_environment
        from reconciler.source import GitSource

        source = GitSource(self._need_repo(), self.branch, self._cache())
        try:
            rev = source.resolve(ref) if ref else source.fetch()
        except SourceError as exc:
            if ref:
                raise InvalidArgument(str(exc)) from None
            raise
        snapshot = source.snapshot(rev)
        path = snapshot.root / "envs" / f"{name}.yaml"
        if not path.exists():
            raise InvalidArgument(f"unknown environment {name!r}: envs/{name}.yaml does not exist at {rev}")
        env = load_environment(path, shown=f"envs/{name}.yaml")
        objects = [mask_secrets(o) for o in render_environment(env, snapshot)]
        return RenderAnswer(environment=name, revision=str(rev), count=len(objects), objects=objects)

    def protocols(self, name: str) -> ProtocolsAnswer:
        """The probe results of ``name``'s MCP servers and agents, and its Agents' tool grants."""
        from reconciler.cli_observe import cluster_protocols, probe_service
        from reconciler.probe.contract import requirements

        inv = self._inventory(name)
        client = self.client()
        probes, note = probe_service(client)
        report = cluster_protocols(client, inv.entries, probes, note or None)
        grants: list[ToolGrant] = []
        if self.repo:
            rendered = self.render(name)
            env = self.environment(name)
            for req in requirements(rendered.objects, namespace=env.namespace or ""):
                grants.append(
                    ToolGrant(
                        agent=req.agent,
                        server=str(req.server),
                        tools=None if req.tools is None else list(req.tools),
                    )
                )
        return ProtocolsAnswer(environment=name, report=report, grants=grants)

    def image_policies(self, name: str | None = None) -> ImagePoliciesAnswer:
        """Every image policy (of ``name``, or of every environment) with the versions Git runs and the
        newest pushed version the bus holds."""
        from reconciler.promote.history import overlay_images
        from reconciler.promote.images import matching_entries, policies_of

        envs = self.environments()
        if name is not None and name not in envs:
            raise InvalidArgument(f"unknown environment {name!r}: envs/ defines {', '.join(sorted(envs))}")
        writer = self.writer()
        out: list[PolicyVersion] = []
        try:
            with writer.locked():
                head = writer.sync()
                for env in [envs[name]] if name else [envs[n] for n in sorted(envs)]:
                    entries = list(overlay_images(writer, head, env.overlay).values())
                    for policy in policies_of(env):
                        matched = matching_entries(entries, policy)
                        out.append(
                            PolicyVersion(
                                environment=env.name,
                                policy=policy.name,
                                image=policy.image,
                                rule=policy.policy.model_dump(mode="json", exclude_none=True, by_alias=True),
                                in_git=[e.ref for e, _ in matched],
                            )
                        )
        finally:
            writer.close()
        if out:
            self._latest_seen(out, {(e.name, p.name): p for e in envs.values() for p in policies_of(e)})
        return ImagePoliciesAnswer(policies=out)

    def _latest_seen(self, rows: list[PolicyVersion], policies: dict[tuple[str, str], Any]) -> None:
        """Fill ``latest_seen`` from the REGISTRY stream's last message per image (when a bus is set)."""
        if not self.nats_url:
            for r in rows:
                r.note = "no bus configured (--nats): latest pushed version unknown"
            return
        import asyncio

        from reconciler.bus import STREAM_REGISTRY, Bus, image_pushed_subject
        from reconciler.model.imagepolicy import normalise_image
        from webhooks.events import ImagePushed

        async def go() -> None:
            bus = Bus(self.nats_url or "", name="reconciler-mcp")
            await bus.connect()
            try:
                for r in rows:
                    best: tuple[int, ImagePushed] | None = None
                    for spelling in {r.image, normalise_image(r.image)}:
                        try:
                            msg = await bus.js.get_last_msg(STREAM_REGISTRY, image_pushed_subject(spelling))
                        except Exception:  # nats-py raises NotFoundError (its own family) for no message
                            continue
                        try:
                            event = ImagePushed.model_validate_json(msg.data or b"")
                        except ValueError:
                            continue
                        if best is None or (msg.seq or 0) > best[0]:
                            best = (msg.seq or 0, event)
                    if best is None:
                        r.note = "no pushed version seen on the bus"
                        continue
                    event = best[1]
                    r.latest_seen = event.reference
                    r.latest_seen_at = event.pushed_at.isoformat()
                    policy = policies.get((r.environment, r.policy))
                    if policy is not None:
                        verdict = policy.verdict(event.tag)
                        r.latest_accepted = verdict.allowed
                        r.note = verdict.reason
            finally:
                await bus.close()

        try:
            asyncio.run(go())
        except ReconcilerError as exc:
            for r in rows:
                r.note = f"bus unreachable: {exc}"

    # -- write tools --------------------------------------------------------------------------------

    def propose_promotion(self, from_env: str, to_env: str, app: str | None, all_images: bool) -> WriteAnswer:
        """What ``reconciler promote FROM TO (--app APP | --all) --pr`` does: the same branch and commit,
        and the pull request when a Git host token is configured."""
        from reconciler.probe.service import service_from_env
        from reconciler.promote.hosts import host_config
        from reconciler.promote.promotion import PromotionError, RuleError, promote
        from reconciler.reconcile import load_environments

        repo = self._need_repo()
        writer = self.writer()
        host = host_config(repo)
        try:
            with writer.locked():
                writer.sync()
                envs = load_environments(writer.workdir)
                for n in (from_env, to_env):
                    if n not in envs:
                        raise InvalidArgument(
                            f"unknown environment {n!r}: envs/ defines {', '.join(sorted(envs)) or 'none'}"
                        )
                try:
                    result = promote(
                        writer,
                        envs,
                        from_env,
                        to_env,
                        app=app,
                        all_images=all_images,
                        mode="pr",
                        host=host,
                        probes=service_from_env(),
                    )
                except RuleError as exc:
                    raise Forbidden(str(exc)) from None
                except PromotionError as exc:
                    if app and f"belongs to app {app!r}" in str(exc):
                        raise InvalidArgument(f"unknown app {app!r}: {exc}") from None
                    raise
                self._tidy(writer)
        finally:
            writer.close()
        if result.commit:
            from reconciler.promote.records import PromotionEvent

            self._publish_promotion(
                PromotionEvent(
                    environment=to_env,
                    kind="proposed",
                    revision=result.commit,
                    promotions=[result.commit],
                    pushed_to=result.pushed_to,
                    fallback=result.fallback,
                    url=result.pull_request.url if result.pull_request else None,
                    message=result.message,
                )
            )
        return WriteAnswer(
            tool="proposePromotion",
            environment=to_env,
            caller="",
            ok=not result.pr_error,
            message=result.message
            + (f"; pull request not opened: {result.pr_error}" if result.pr_error else ""),
            commit=result.commit,
            branch=result.branch,
            pushed_to=result.pushed_to,
            url=result.pull_request.url if result.pull_request else None,
            instructions=result.instructions,
            detail=result.model_dump(mode="json"),
        )

    def propose_rollback(
        self, name: str, app: str | None, to: str | None, reason: str, caller: str
    ) -> WriteAnswer:
        """What ``reconciler rollback NAME [--app APP] [--to COMMIT]`` does by the environment's
        ``promotion.via`` (a branch and pull request, or a direct revert where ``via: push``), with
        ``Requested-By: <caller>``."""
        from reconciler.promote.hosts import host_config
        from reconciler.promote.promotion import RuleError
        from reconciler.promote.rollback import (
            UnknownApp,
            UnknownEnvironment,
            rollback_environment,
            rollback_event,
        )

        repo = self._need_repo()
        writer = self.writer()
        try:
            result = rollback_environment(
                writer, name, to=to, app=app, reason=reason, host=host_config(repo), requested_by=caller
            )
        except (UnknownEnvironment, UnknownApp) as exc:
            raise InvalidArgument(str(exc)) from None
        except RuleError as exc:
            raise Forbidden(str(exc)) from None
        finally:
            writer.close()
        event = rollback_event(result, reason)
        if event is not None:
            self._publish_promotion(event)
        return WriteAnswer(
            tool="proposeRollback",
            environment=name,
            caller=caller,
            ok=not result.pr_error,
            message=result.message,
            commit=result.commits[-1] if result.commits else None,
            branch=result.branch,
            pushed_to=result.pushed_to,
            url=result.pull_request.url if result.pull_request else None,
            instructions=result.instructions,
            detail=result.model_dump(mode="json"),
        )

    def request_sync(self, name: str) -> WriteAnswer:
        """Publish a reconcile request for ``name`` on ``reconciler.reconcile.request.<name>``."""
        import asyncio

        from reconciler.bus import Bus, reconcile_request_subject

        self.environment(name)
        if not self.nats_url:
            raise ReconcilerError("requestSync needs the bus: this server has no --nats URL")
        subject = reconcile_request_subject(name)

        async def go() -> int:
            bus = Bus(self.nats_url or "", name="reconciler-mcp")
            await bus.connect()
            try:
                return await bus.publish(subject, b"{}", msg_id=f"mcp-sync-{uuid.uuid4().hex}")
            finally:
                await bus.close()

        seq = asyncio.run(go())
        return WriteAnswer(
            tool="requestSync",
            environment=name,
            caller="",
            ok=True,
            message=f"reconcile of {name} requested on {subject} (stream sequence {seq})",
            detail={"subject": subject, "sequence": seq},
        )

    def set_suspended(self, name: str, suspended: bool, reason: str, by: str) -> WriteAnswer:
        """Suspend or resume ``name`` in the ``reconciler-control`` key-value bucket, which every daemon
        replica reads before each pass (``reconciler.runtime.control``); the action's event goes out on
        ``reconciler.control.<env>`` and the call is recorded like every write tool call.

        Raises:
            ReconcilerError: this server has no ``--nats`` URL, or NATS refused the write.
            ValueError: ``reason`` is too long.
        """
        import asyncio

        from reconciler.bus import Bus
        from reconciler.runtime.control import (
            ControlStore,
            resume_environment,
            suspend_environment,
            suspension_text,
        )

        self.environment(name)
        tool = "suspendEnvironment" if suspended else "resumeEnvironment"
        if not self.nats_url:
            raise ReconcilerError(f"{tool} needs the bus: this server has no --nats URL")

        async def go() -> str:
            bus = Bus(self.nats_url or "", name="reconciler-mcp")
            await bus.connect()
            try:
                store = ControlStore(self._cache() / "control", bus)
                run = suspend_environment if suspended else resume_environment
                state = await run(store, name, by=f"mcp:{by}", reason=reason)
            finally:
                await bus.close()
            return suspension_text(state) if state.suspended else f"{name} resumed by mcp:{by}"

        text = asyncio.run(go())
        return WriteAnswer(tool=tool, environment=name, caller="", ok=True, message=text, detail={})

    # -- records ------------------------------------------------------------------------------------

    def record(self, record: ToolCallRecord) -> str:
        """Write ``record`` in ``refs/notes/reconciler`` (on the followed branch's head commit) and publish
        it on ``reconciler.mcp.<env>``; returns what could not be recorded ('' when all was)."""
        from reconciler.errors import SourceError
        from reconciler.promote.records import record_tool_call

        problems: list[str] = []
        writer = self.writer()
        try:
            with writer.locked():
                head = writer.sync()
                record_tool_call(writer, head, record)
        except SourceError as exc:
            problems.append(f"note not written: {exc}")
        finally:
            writer.close()
        if self.nats_url:
            problems += self._publish_call(record)
        return "; ".join(problems)

    def _publish_call(self, record: ToolCallRecord) -> list[str]:
        import asyncio

        from reconciler.bus import Bus, mcp_call_subject

        async def go() -> None:
            bus = Bus(self.nats_url or "", name="reconciler-mcp")
            await bus.connect()
            try:
                await bus.publish(
                    mcp_call_subject(record.environment),
                    record.model_dump_json().encode(),
                    msg_id=f"mcp:{record.tool}:{record.caller}:{record.at}",
                )
            finally:
                await bus.close()

        try:
            asyncio.run(go())
        except ReconcilerError as exc:
            return [f"event not published: {exc}"]
        return []

    def _publish_promotion(self, event: Any) -> None:
        if not self.nats_url:
            return
        import asyncio
        import contextlib

        from reconciler.bus import Bus, promotion_subject

        async def go() -> None:
            bus = Bus(self.nats_url or "", name="reconciler-mcp")
            await bus.connect()
            try:
                await bus.publish(
                    promotion_subject(event.environment),
                    event.model_dump_json().encode(),
                    msg_id=event.msg_id,
                )
            finally:
                await bus.close()

        # the change is made; its NATS event is only a notification
        with contextlib.suppress(ReconcilerError):
            asyncio.run(go())

    @staticmethod
    def _tidy(writer: GitWriter) -> None:
        import contextlib

        from reconciler.errors import SourceError

        with contextlib.suppress(SourceError):
            writer.sync()

    def close(self) -> None:
        """Release the cluster client."""
        if self._reader is not None:
            self._reader.close()
            self._reader = None
        if self._client is not None:
            self._client.close()
            self._client = None


def now() -> float:
    """UNIX time, seconds (for records)."""
    return time.time()
