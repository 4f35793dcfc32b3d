"""The reconciler daemon.

Triggers (poll timers, watchdog on a local repository, NATS messages on ``reconciler.git.push.>`` and
``reconciler.reconcile.request.<env>``, drift seen by watches) are coalesced per environment: at most one
pass runs and at most one is pending. Passes run in a worker thread (they do blocking I/O); results are
published on ``reconciler.result.<env>``. Each environment has a target cluster (its ``context`` or
``cluster.secretRef``; :mod:`reconciler.cluster.targets`) with its own client, inventory and watches.
Watches (one per managed kind and target cluster, not per object) compare each
changed managed object with its desired state and correct drift directly (``drift: correct``) or only
report it (``drift: warn``), publishing ``reconciler.drift.<env>`` with the differing paths (never values).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential, wait_random

from reconciler.bus import (
    IMAGE_AUTOMATION_DURABLE,
    STREAM_EVENTS,
    TRIGGERS_DURABLE,
    Bus,
    BusError,
    drift_subject,
    installation_durable,
    result_subject,
)
from reconciler.cluster import drift as driftlib
from reconciler.cluster.client import WRITE_FENCE, KubeClient
from reconciler.cluster.health import judge
from reconciler.cluster.inventory import InventoryStore, public_source
from reconciler.cluster.manager import FIELD_MANAGER, Desired, ResourceManager, sendable
from reconciler.cluster.targets import Target
from reconciler.errors import ConfigError, KubeError, ReconcilerError, SourceError
from reconciler.failpoints import failpoint
from reconciler.model import (
    Action,
    ChangeSet,
    DriftMode,
    Environment,
    HealthStatus,
    ObjectRef,
    PassResult,
    Revision,
    ref_of,
    sensitive,
)
from reconciler.observe.logging import log_context
from reconciler.observe.notify import Notifier, SecretReader
from reconciler.observe.status import ProbeTimes, ProtocolReport, protocol_report
from reconciler.promote.auto import AutoRollback
from reconciler.promote.hosts import StatusState
from reconciler.promote.images import ImageAutomation, run_consumer
from reconciler.promote.statuses import CommitStatuses, commit_statuses, gate_status, sha_of
from reconciler.reconcile import (
    SETTLED,
    PassContext,
    assess_health,
    load_environment,
    load_environments,
    run_pass,
)
from reconciler.render.sops import local_key_file
from reconciler.runtime.control import ControlStore, Suspension, is_suspended, suspension_text
from reconciler.runtime.rollouts import RolloutRunner
from reconciler.runtime.shards import ShardMember
from reconciler.settings import DaemonSettings
from reconciler.source import GitSource, RepoWatcher
from reconciler.source.gitops import GitWriter

if TYPE_CHECKING:
    from reconciler.probe.service import ProbeService
    from reconciler.promote.scan import TagScanner

log = logging.getLogger("reconciler.daemon")
ResultHook = Callable[[PassResult], None]
DriftHook = Callable[[dict[str, Any]], None]
#: Backoff of the initial load of the repository while it cannot be read: the first wait in seconds
#: (doubled after each failed attempt), the longest wait in seconds, and the random jitter added to each.
SOURCE_RETRY_INITIAL = 0.5
SOURCE_RETRY_MAX = 10.0
SOURCE_RETRY_JITTER = 0.5
#: Seconds without a subscriber after which JetStream deletes an installation's durable consumers (an
#: installation that changed its environments or repository leaves its old ones behind).
CONSUMER_INACTIVE_THRESHOLD = 7 * 24 * 3600.0
#: Seconds a fetched head serves further poll passes: environments whose polls fall due together share
#: one ``git fetch`` (triggers other than polls always fetch).
POLL_FETCH_TTL = 5.0
#: Seconds after which a poll makes a full pass even when the drift watches vouch for the live state.
FULL_RESYNC = 600.0
#: Seconds between two health readings of a health gate at least, and its first wait (a reading judges
#: the drift watches' copies when they hold every object, else lists the environment's objects per kind
#: and namespace); a drift watch that sees one of the environment's objects change ends the wait early,
#: and a stop ends it at once.
GATE_POLL_SECONDS = 1.0
#: The longest a health gate waits between readings when no watch reports a change (seconds; the wait
#: doubles from GATE_POLL_SECONDS up to this; without drift watches it stays GATE_POLL_SECONDS).
GATE_POLL_MAX_SECONDS = 5.0
#: Seconds between two "in progress" notes on a trigger message whose passes have not ended (a third of
#: the consumer's 30 s ack wait, reconciler.bus.client.DEFAULT_ACK_WAIT).
TRIGGER_PROGRESS_SECONDS = 10.0
#: Threads for health gates, apart from the passes' pool: a gate waits up to ``health.timeout`` seconds,
#: so gates sharing the passes' few threads (CPUs + 4) held every pass up behind them (bench/scale); a
#: waiting gate sleeps between readings, so many of them cost little, and at 100 environments 16 made
#: gates wait for a thread longer than for health.
GATE_THREADS = 32
#: How long :meth:`Daemon.stop` waits for health gates to end (seconds): a waiting gate ends at once; one
#: writing its record or revert finishes it (each Git command has its own timeout) rather than leave a
#: half-written record behind or write into a checkout its owner is about to remove.
GATE_STOP_SECONDS = 60.0
#: Seconds a drift watch asks the server to keep it open; it then goes on from its last resourceVersion.
WATCH_SECONDS = 60
#: A drift-watch key: the target cluster's id (reconciler.cluster.targets.Target.id) and the object's key
_CKey = tuple[str, tuple[str, str, str, str]]
#: Failures of the initial load that a later attempt can cure (remote down, envs/ not readable yet).
_SOURCE_RETRYABLE = (SourceError, ConfigError, OSError)


def _version(obj: dict[str, Any]) -> str:
    """``obj``'s ``metadata.resourceVersion`` (``""`` when it has none)."""
    return str((obj.get("metadata") or {}).get("resourceVersion") or "")


def _same_version(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """True when ``a`` and ``b`` carry the same non-empty ``metadata.resourceVersion`` (the same write)."""
    return _version(a) != "" and _version(a) == _version(b)


def _newer_than(obj: dict[str, Any], rv: str) -> bool:
    """True when ``obj``'s resourceVersion is a larger number than ``rv`` (etcd revisions are numbers;
    the API server asks clients not to compare them, so anything else counts as not newer)."""
    own = _version(obj)
    return own.isdigit() and rv.isdigit() and int(own) > int(rv)


def installation_id(settings: DaemonSettings) -> str:
    """A short, stable id of what a daemon reconciles: the first 10 hex digits of the sha256 of its
    repository (without credentials), branch and environment selection. Daemons of one installation
    (a leader and its standbys) share NATS consumers; different installations never do."""
    key = "\0".join([public_source(settings.repo), settings.branch, ",".join(sorted(settings.envs))])
    return hashlib.sha256(key.encode()).hexdigest()[:10]


@dataclass
class _EnvState:
    name: str
    env: Environment | None = None
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    waiters: list[asyncio.Future[PassResult]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)
    running: bool = False
    settling: bool = False
    passes: int = 0
    last: PassResult | None = None
    applied: PassResult | None = None  # the last pass that succeeded
    # live objects the drift watches saw change while a pass ran, checked again after it (by key)
    missed: dict[_CKey, dict[str, Any]] = field(default_factory=dict)
    full_at: float = 0.0  # monotonic time of the last full pass that succeeded
    # monotonic time at which the fetch behind this environment's last pass started: a poll may share
    # another poll's fetch only when that fetch started later (else it could apply an older head)
    fetched_at: float = 0.0
    # monotonic time of the oldest trigger no pass has taken yet (None: none waits); the pass that takes
    # it may use a head whose fetch started after it, which sees every push made before the trigger
    requested_at: float | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)  # its worker and poll timer
    gate: str = ""  # the last health gate: "passed" or "failed: <outcome>: <message>" ("" before any)
    # MCP servers' and agents' protocol health from the probe cache after the last pass or health reading
    protocols: ProtocolReport | None = None
    probe_times: ProbeTimes = field(default_factory=ProbeTimes)
    # the suspension read before the last pass (runtime/control.py); None: not suspended
    suspension: Suspension | None = None
    # set by the drift watches when one of its objects changed (status included), and on stop: wakes a
    # health gate waiting between readings
    seen_change: threading.Event = field(default_factory=threading.Event)


class Daemon:
    """Runs reconcile passes for the configured environments until stopped.

    Args:
        settings: repository, environments, cluster and NATS settings.
        on_result: called (in the event loop) after every pass.
        on_drift: called (in the event loop) for every drift event.
    """

    def __init__(
        self,
        settings: DaemonSettings,
        *,
        on_result: ResultHook | None = None,
        on_drift: DriftHook | None = None,
    ) -> None:
        self.settings = settings
        self.on_result = on_result
        self.on_drift = on_drift
        self.source = GitSource(settings.repo, settings.branch, settings.cache_dir)
        self.client = KubeClient(settings.kubeconfig, settings.context)
        self.ctx = PassContext(
            source=self.source,
            client=self.client,
            prometheus_url=settings.prometheus_url,
            sops_key_file=local_key_file(settings.sops_age_key_file),
        )
        self.targets = self.ctx.clusters  # one client per target cluster (reconciler.cluster.targets)
        self.targets.watch_inventories = True  # ownership checks read no inventory per pass
        self.bus: Bus | None = None
        self.envs: dict[str, _EnvState] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: list[asyncio.Task[Any]] = []
        self._stop = asyncio.Event()
        self._stopping = threading.Event()
        self._gates: ThreadPoolExecutor | None = None  # the health gates' threads (GATE_THREADS)
        # drift watches: one per (target cluster, kind); the index maps (cluster, object) to its environment
        self._watchers: dict[tuple[str, tuple[str, str, str]], threading.Thread] = {}
        self._index: dict[_CKey, tuple[str, Desired]] = {}
        self._index_lock = threading.Lock()
        self._repo_watcher: RepoWatcher | None = None
        self.drift_events: list[dict[str, Any]] = []
        self._background: set[asyncio.Task[Any]] = set()
        self.auto = AutoRollback(GitWriter(settings.repo, settings.branch, settings.cache_dir / "promotion"))
        self.images: ImageAutomation | None = None
        self._image_task: asyncio.Task[Any] | None = None
        self.scanner: TagScanner | None = None  # tag scanning of image policies with scan: (with NATS)
        self.is_leader: bool | None = True  # None: undecided, False: standby (set by the leader elector)
        # sharded (reconciler run --shard): passes, drift corrections and one-writer jobs only for what this
        # replica holds the lease of (runtime/shards.py); set before start()
        self.shards: ShardMember | None = None
        self.trigger_inactive_threshold = CONSUMER_INACTIVE_THRESHOLD
        self.source_loaded = False  # the initial fetch, snapshot and envs/ load succeeded
        self.source_error = ""  # the last failure of the initial load while it is retried ("" once loaded)
        self.source_attempts = 0  # failed attempts of the initial load
        self.bus_error = ""  # why NATS cannot be reached while the daemon keeps trying ("" when connected)
        self.installation = installation_id(settings)
        self.trigger_durable = installation_durable(TRIGGERS_DURABLE, self.installation)
        self.image_durable = installation_durable(IMAGE_AUTOMATION_DURABLE, self.installation)
        self._head_time: datetime | None = None  # the branch's head commit time at start-up (UTC)
        # the last poll fetch (revision, monotonic time), shared by polls within POLL_FETCH_TTL
        self._polled: tuple[Revision, float] | None = None  # the last poll's head and its fetch's start
        self._triggered: tuple[Revision, float] | None = None  # the same for passes asked for
        self._fetch_lock = asyncio.Lock()
        # the drift watches' view: live objects of desired keys, and the kinds whose watch is listed and
        # running (a kind leaves the set while its watch is broken)
        self._live: dict[_CKey, dict[str, Any]] = {}
        self._watching: set[tuple[str, tuple[str, str, str]]] = set()
        self._envs_at = ""  # the commit whose envs/ the set of environments follows
        self._envs_started = 0.0  # when the pass that read it started (UNIX seconds)
        self.removed: dict[str, dict[str, Any]] = {}  # environments whose file a commit removed
        self.statuses = commit_statuses(settings)
        # suspensions: <cache_dir>/control/<env>.json, and the reconciler-control bucket with NATS
        self.control = ControlStore(settings.cache_dir / "control")
        self.notifier: Notifier | None = Notifier(self._environment_of, SecretReader(self.client))
        self.rollouts = RolloutRunner(
            self,
            self.client,
            self.source.url,
            self.auto if settings.promotion_records else None,
            settings.prometheus_url,
            probes=self.ctx.probes,
            targets=self.targets,
        )

    def _target(self, env_name: str) -> Target:
        """The target cluster of ``env_name``'s last desired set (of its file when no pass applied one)."""
        target = self.ctx.last_target.get(env_name)
        if target is None:
            state = self.envs.get(env_name)
            target = self.targets.target_of(state.env if state is not None else None)
        return target

    # -- lifecycle --------------------------------------------------------------------------------

    async def start(self) -> None:
        """Resolve the environments, connect to NATS and start every trigger.

        While the branch cannot be fetched or ``envs/`` cannot be read (remote unreachable, Git server
        restarting, an invalid environment file), the initial load is retried without end: exponential
        backoff from :data:`SOURCE_RETRY_INITIAL` s up to :data:`SOURCE_RETRY_MAX` s, plus up to
        :data:`SOURCE_RETRY_JITTER` s of jitter. Meanwhile :attr:`source_error` holds the last failure and
        each failed attempt logs a warning. When :meth:`stop` is called during that wait, returns without
        starting anything. Cancelling the call is safe; :meth:`stop` releases whatever it had started.

        Raises:
            ReconcilerError: when an environment named in the settings is not defined in ``envs/`` at the
                fetched revision (a configuration error: not retried).
        """
        self._loop = asyncio.get_running_loop()
        self.auto.publish = self.thread_publisher
        loaded = await self._load_source()
        if loaded is None or self._stop.is_set():  # stopped while waiting for the repository
            return
        rev, available, invalid = loaded
        with contextlib.suppress(ReconcilerError, ValueError, OSError):  # a committer clock ahead: now
            head = datetime.fromisoformat(self.source.commit_info(rev.sha)["date"]).astimezone(UTC)
            self._head_time = min(head, datetime.now(UTC))
        names = self.settings.envs or sorted({*available, *invalid})
        for name in names:
            if name in invalid:  # its passes report the error until a commit fixes the file
                log.warning("environment %s is invalid at %s: %s", name, rev, invalid[name])
                self.envs[name] = _EnvState(name=name, env=None)
                continue
            if name not in available:
                raise ReconcilerError(
                    f"environment {name!r} is not defined in envs/ at {rev} "
                    f"(defined: {', '.join(sorted(available)) or 'none'})"
                )
            self.envs[name] = _EnvState(name=name, env=available[name])
        if self.settings.nats_url:
            self.bus = Bus(self.settings.nats_url, name="reconciler-daemon")
            self.control.bus = self.bus
            try:
                await self.bus.connect()
            except Exception as exc:  # BusError, or JetStream refusing a stream: keep trying meanwhile
                self._bus_failed(1, exc)
                await self.bus.close()
                self._spawn(self._connect_bus())
            else:
                self._start_bus_consumers()
        self._envs_at = rev.sha
        for state in self.envs.values():
            self._start_env(state)
        self._start_scanner()
        local = Path(self.settings.repo).expanduser()
        if self.settings.watch_local and local.exists():
            loop = self._loop

            def on_change() -> None:
                with contextlib.suppress(RuntimeError):  # the loop closed while the callback ran
                    loop.call_soon_threadsafe(self.trigger_all, "git-watch")

            self._repo_watcher = RepoWatcher(local, on_change, ref=f"refs/heads/{self.settings.branch}")
            self._repo_watcher.start()
        self.trigger_all("startup")

    def _start_env(self, state: _EnvState) -> None:
        """Start the worker and the poll timer of one environment."""
        state.tasks = [
            asyncio.create_task(self._worker(state), name=f"worker-{state.name}"),
            asyncio.create_task(self._poll(state), name=f"poll-{state.name}"),
        ]
        self._tasks.extend(state.tasks)

    async def _follow_environments(self, result: PassResult) -> None:
        """Make the set of environments follow ``envs/`` at the revision a pass read (only when the
        settings name no environments, i.e. "every environment in envs/"): a file a commit added starts
        its environment; a file a commit removed stops it, and its objects stay in the cluster with their
        inventory (reported as orphaned) unless the file said ``deletionPolicy: delete`` before, which
        prunes them. Anchors: Flux's Kustomization ``prune`` on deletion and Argo CD's
        ``ApplicationSet`` ``preserveResourcesOnDeletion``."""
        if self.settings.envs or "@sha1:" not in result.revision or self._stop.is_set():
            return
        sha = result.revision.rsplit("@sha1:", 1)[1]
        if sha == self._envs_at or result.started_at < self._envs_started:
            return  # the same commit, or a pass that fetched before the one the set follows now
        self._envs_at, self._envs_started = sha, result.started_at

        def read() -> set[str]:
            envs_dir = self.source.snapshot(Revision(branch=self.settings.branch, sha=sha)).root / "envs"
            return {p.stem for p in envs_dir.glob("*.yaml")} if envs_dir.is_dir() else set()

        try:
            names = await asyncio.to_thread(read)
        except (ReconcilerError, OSError) as exc:
            log.warning("cannot read envs/ at %s: %s", sha[:7], exc)
            self._envs_at = ""
            return
        for name in sorted(names - set(self.envs)):
            log.info("environment %s added at %s: reconciling it", name, sha[:7])
            state = _EnvState(name=name)
            self.envs[name] = state
            self._start_env(state)
            self.trigger(name, "env-added")
        for name in sorted(set(self.envs) - names):
            await self._remove_env(self.envs[name], sha)

    async def _remove_env(self, state: _EnvState, sha: str) -> None:
        """Stop an environment whose file left ``envs/``; see :meth:`_follow_environments`."""
        del self.envs[state.name]
        for t in state.tasks:
            t.cancel()
            with contextlib.suppress(ValueError):
                self._tasks.remove(t)
        for w in state.waiters:
            if not w.done():
                w.set_exception(ReconcilerError(f"environment {state.name!r} was removed from envs/"))
        with self._index_lock:  # drift watches stop correcting its objects
            for key in [k for k, (e, _) in self._index.items() if e == state.name]:
                del self._index[key]
                self._live.pop(key, None)
        self.ctx.last_desired.pop(state.name, None)
        target = self.ctx.last_target.pop(state.name, None) or self.targets.target_of(state.env)
        policy = state.env.deletion_policy if state.env is not None else "orphan"
        if self.shards is not None:  # its replica (the lease holder) keeps or prunes its objects
            if not self.shards.may_write(state.name):
                self.removed[state.name] = {"revision": sha, "policy": policy, "at": time.time()}
                return
            WRITE_FENCE.set(self.shards.fence(state.name))
        try:
            client = await asyncio.to_thread(self.targets.client_of, target, state.name)
            store = InventoryStore(
                client, source=self.source.url, on_written=self.targets.inventory_written(target)
            )
            inventory = await asyncio.to_thread(store.load, state.name)
            if policy == "delete":
                manager = ResourceManager(client, sync_cache=self.ctx.sync_cache)
                pruned, keep = await asyncio.to_thread(manager.prune, inventory, [], allow_mass_prune=True)
                if keep:
                    await asyncio.to_thread(
                        store.save, inventory.model_copy(update={"entries": keep}), inventory
                    )
                    log.warning(
                        "environment %s removed at %s: %d objects not deleted (kept in its inventory)",
                        state.name,
                        sha[:7],
                        len(keep),
                    )
                else:
                    await asyncio.to_thread(store.delete, state.name)
                log.warning(
                    "environment %s removed at %s (deletionPolicy: delete): %d objects deleted",
                    state.name,
                    sha[:7],
                    pruned.count(Action.DELETED),
                )
            elif not inventory.entries:
                log.warning("environment %s removed at %s: it had applied nothing", state.name, sha[:7])
            else:
                log.warning(
                    "environment %s removed at %s: its %d objects are kept, orphaned, with their inventory "
                    "(set deletionPolicy: delete before removing a file to prune them)",
                    state.name,
                    sha[:7],
                    len(inventory.entries),
                )
        except (KubeError, ConfigError) as exc:
            log.warning(
                "environment %s removed at %s: its inventory could not be read: %s", state.name, sha[:7], exc
            )
        self.removed[state.name] = {"revision": sha, "policy": policy, "at": time.time()}

    def _start_bus_consumers(self) -> None:
        """Start what runs on NATS once connected: the trigger consumer and image automation."""
        assert self.bus is not None and self._loop is not None
        self.bus_error = ""
        self.auto.publish = self.thread_publisher
        self._tasks.append(asyncio.create_task(self._consume_triggers(), name="nats-triggers"))
        if any(st.env is not None and st.env.image_policies for st in self.envs.values()):
            bus, images = self.bus, self._image_automation()

            def consume(stop: asyncio.Event) -> Any:
                return run_consumer(
                    bus,
                    images,
                    stop,
                    durable=self.image_durable,
                    ack_wait=self.settings.image_ack_wait,
                    start_time=self._head_time,
                    inactive_threshold=CONSUMER_INACTIVE_THRESHOLD,
                )

            self._image_task = asyncio.create_task(
                consume(self._stop)
                if self.shards is None
                else self.shards.while_singleton(consume, self._stop),
                name="image-automation",
            )

    def _image_automation(self) -> ImageAutomation:
        """The daemon's one image automation (its own clone), shared by the NATS consumer and the tag scan
        (its writer's lock serialises them), made on first use."""
        if self.images is None:
            self.images = ImageAutomation(
                GitWriter(self.settings.repo, self.settings.branch, self.settings.cache_dir),
                load_environments,
                only=set(self.envs),
                probes=self.ctx.probes,
            )
        return self.images

    def _start_scanner(self) -> None:
        """Start the tag scan when an environment has image policies (at start-up: it needs no NATS, so a
        version is promoted also while NATS or the webhooks are down). It scans the policies with
        ``scan:`` as the environments read by the latest passes say (no Git I/O until a scan is due); a
        push it makes starts a pass of every environment."""
        if not any(st.env is not None and st.env.image_policies for st in self.envs.values()):
            return
        from reconciler.promote.scan import TagScanner, run_scanner

        def environments() -> dict[str, Environment]:
            return {n: st.env for n, st in self.envs.items() if st.env is not None}

        self.scanner = TagScanner(
            self._image_automation(), secrets=self._read_secret, environments=environments
        )
        self._tasks.append(
            asyncio.create_task(
                run_scanner(self.scanner, self._stop, on_push=lambda: self.trigger_all("image-scan")),
                name="image-tag-scan",
            )
        )

    def _read_secret(self, namespace: str, name: str) -> dict[str, bytes] | None:
        """A Secret's data, decoded (image policies' ``scan.credentials.secretRef``); ``None`` when absent."""
        obj = self.client.get(ObjectRef(kind="Secret", namespace=namespace, name=name))
        if obj is None:
            return None
        data = obj.get("data") or {}
        return {str(k): base64.b64decode(v) for k, v in data.items() if isinstance(v, str)}

    def _bus_failed(self, attempt: int, exc: BaseException, delay: float | None = None) -> None:
        """Record and log (one warning, no traceback) a failed connection attempt to NATS."""
        self.bus_error = " ".join(str(exc).split()) or type(exc).__name__
        log.warning(
            "cannot connect to NATS %s (attempt %d)%s: %s; reconciling by poll meanwhile",
            self.settings.nats_url,
            attempt,
            f", retrying in {delay:.1f} s" if delay is not None else "",
            self.bus_error,
        )

    async def _connect_bus(self) -> None:
        """Connect to NATS in the background (the daemon started while NATS was down), with the same
        backoff as the source (:data:`SOURCE_RETRY_INITIAL` … :data:`SOURCE_RETRY_MAX` s plus jitter), then
        start the NATS consumers. Passes run on poll and watch triggers meanwhile."""
        assert self.bus is not None
        bus = self.bus

        async def attempt() -> bool:
            if self._stop.is_set():
                return False
            try:
                await bus.connect()
            except Exception:
                await bus.close()
                raise
            return True

        def failed(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome is not None else None
            delay = state.next_action.sleep if state.next_action is not None else None
            self._bus_failed(state.attempt_number + 1, exc or RuntimeError("unknown"), delay)

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential(multiplier=SOURCE_RETRY_INITIAL, max=SOURCE_RETRY_MAX)
            + wait_random(0, SOURCE_RETRY_JITTER),
            sleep=self._sleep_unless_stopped,
            before_sleep=failed,
            reraise=True,
        )
        if not await retrying(attempt):
            return
        if self._stop.is_set():  # stopped while the last attempt connected
            await bus.close()
            return
        log.info("connected to NATS %s", self.settings.nats_url)
        self._start_bus_consumers()

    async def _load_source(self) -> tuple[Revision, dict[str, Environment], dict[str, str]] | None:
        """Fetch the branch, extract its snapshot and load ``envs/`` (environments, and the errors of
        invalid files by name), retrying the failures in :data:`_SOURCE_RETRYABLE` until it works;
        ``None`` when :meth:`stop` is called first."""

        def read() -> tuple[Revision, dict[str, Environment], dict[str, str]]:
            rev = self.source.fetch()
            invalid: dict[str, str] = {}
            return rev, load_environments(self.source.snapshot(rev).root, invalid=invalid), invalid

        async def attempt() -> tuple[Revision, dict[str, Environment], dict[str, str]] | None:
            if self._stop.is_set():
                return None
            return await asyncio.to_thread(read)

        retrying = AsyncRetrying(
            retry=retry_if_exception_type(_SOURCE_RETRYABLE),
            wait=wait_exponential(multiplier=SOURCE_RETRY_INITIAL, max=SOURCE_RETRY_MAX)
            + wait_random(0, SOURCE_RETRY_JITTER),
            sleep=self._sleep_unless_stopped,
            before_sleep=self._source_failed,
            reraise=True,
        )
        loaded: tuple[Revision, dict[str, Environment], dict[str, str]] | None = await retrying(attempt)
        if loaded is not None:
            if self.source_attempts:
                log.info(
                    "loaded %s (%s) at %s after %d failed attempts",
                    self.source.url,
                    self.settings.branch,
                    loaded[0],
                    self.source_attempts,
                )
            self.source_loaded, self.source_error = True, ""
        return loaded

    def _source_failed(self, state: RetryCallState) -> None:
        """Record and log (one warning, no traceback) a failed attempt of the initial load."""
        exc = state.outcome.exception() if state.outcome is not None else None
        delay = state.next_action.sleep if state.next_action is not None else 0.0
        self.source_attempts = state.attempt_number
        self.source_error = " ".join(str(exc).split()) or type(exc).__name__  # Git stderr: one line
        log.warning(
            "cannot load the environments from %s (%s), attempt %d, retrying in %.1f s: %s",
            self.source.url,
            self.settings.branch,
            state.attempt_number,
            delay,
            self.source_error,
        )

    async def _sleep_unless_stopped(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when :meth:`stop` is called meanwhile."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)

    async def stop(self) -> None:
        """Stop triggers, workers, watches and the NATS connection."""
        self._stop.set()
        self._stopping.set()
        for state in self.envs.values():  # a gate waiting between readings ends now
            state.seen_change.set()
        if self._image_task is not None:  # let a batch in progress finish and be acknowledged
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._image_task, 30)
            self._image_task = None
        if self._repo_watcher is not None:
            self._repo_watcher.stop()
        await self.rollouts.stop()
        if self._gates is not None:  # a gate still waiting sees _stopping and ends; one writing finishes
            gates, self._gates = self._gates, None
            gates.shutdown(wait=False, cancel_futures=True)
            ended = asyncio.to_thread(gates.shutdown, wait=True)
            try:
                await asyncio.wait_for(ended, GATE_STOP_SECONDS)
            except TimeoutError:
                log.warning("stop: health gates still running after %.0f s; left behind", GATE_STOP_SECONDS)
        if self.notifier is not None:  # what is queued gets a moment, then is dropped
            await self.notifier.drain(2.0)
            await self.notifier.close()
        for t in self._tasks:
            t.cancel()
        for t in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
        if self.bus is not None:
            await self.bus.close()
        self.targets.close()
        self.client.close()

    async def run_forever(self) -> None:
        """:meth:`start`, then wait until :meth:`stop` is called or the task is cancelled."""
        await self.start()
        try:
            await self._stop.wait()
        finally:
            await self.stop()

    # -- triggers and coalescing ------------------------------------------------------------------

    def trigger(self, env: str, reason: str) -> asyncio.Future[PassResult]:
        """Ask for a pass of ``env``; returns a future resolved by the next pass that starts after now.

        Coalesced: while a pass runs, any number of triggers make one pending pass.
        """
        assert self._loop is not None
        fut: asyncio.Future[PassResult] = self._loop.create_future()
        state = self.envs.get(env)
        if state is None:
            fut.set_exception(ReconcilerError(f"unknown environment {env!r}"))
            return fut
        state.waiters.append(fut)
        state.reasons.append(reason)
        if state.requested_at is None:
            state.requested_at = time.monotonic()
        state.wake.set()
        return fut

    def trigger_all(self, reason: str) -> list[asyncio.Future[PassResult]]:
        """Trigger every environment."""
        return [self.trigger(name, reason) for name in self.envs]

    async def _poll(self, state: _EnvState) -> None:
        while True:
            interval = self.settings.poll_interval or (state.env.sync.interval if state.env else 30.0)
            await asyncio.sleep(interval)
            self.trigger(state.name, "poll")

    async def _worker(self, state: _EnvState) -> None:
        if self.shards is not None:  # this task's writes (and its threads') stop when the lease may lapse
            WRITE_FENCE.set(self.shards.fence(state.name))
        while True:
            await state.wake.wait()
            state.wake.clear()
            waiters, state.waiters = state.waiters, []
            reasons, state.reasons = state.reasons, []
            since, state.requested_at = state.requested_at, None
            reason = ",".join(sorted(set(reasons))) or "unknown"
            skip = ""
            if self.shards is not None and not self.shards.may_start(state.name):
                owner = self.shards.owner(state.name)
                skip = f"not reconciled by replica {self.shards.replica}: " + (
                    f"replica {owner} holds it" if owner else "its lease is not held here"
                )
            else:
                suspended = await self._suspended(state)
                if suspended is not None:  # no pass: nothing applied, pruned or corrected until resumed
                    log.info("%s is suspended (by %s): no pass (%s)", state.name, suspended.by, reason)
                    skip = suspension_text(suspended)
            if skip:
                skipped = PassResult(
                    environment=state.name,
                    ok=False,
                    error=skip,
                    started_at=time.time(),
                    duration=0.0,
                    trigger=reason,
                )
                for w in waiters:
                    if not w.done():
                        w.set_result(skipped)
                continue
            state.running = True
            try:
                with log_context(environment=state.name):
                    result = await self._pass(state, reason, since or time.monotonic())
            except Exception as exc:  # a bug in a pass must not stop the daemon
                log.exception("pass for %s crashed", state.name)
                result = PassResult(
                    environment=state.name,
                    ok=False,
                    error=f"internal error: {exc!r}",
                    started_at=time.time(),
                    duration=0.0,
                    trigger=reason,
                )
            finally:
                missed = self._end_pass(state)
            state.passes += 1
            state.last = result
            if result.ok:
                state.applied = result
            self._after_pass(state, result)
            await asyncio.to_thread(self._read_protocols, state)
            if missed:  # a change during the pass may postdate what it read: look at the objects again
                self._spawn(self._recheck(state.name, missed))
            for w in waiters:
                if not w.done():
                    w.set_result(result)
            await self._publish(result_subject(state.name), result.model_dump_json().encode())
            if self.on_result is not None:
                self.on_result(result)
            self._spawn(self._follow_environments(result))
            laid = self.ctx.rollouts.get(state.name)
            rolling = laid is not None and any(st.active for st in laid.states.values())
            self._report_pass(state, result, rolling)
            if laid is not None and state.env is not None and result.ok:
                self.rollouts.after_pass(state.env, laid.states)
            # a revision being rolled out is settled (health gate, record) once its rollout has ended
            if (
                self.settings.promotion_records
                and result.ok
                and state.env is not None
                and not state.settling
                and not rolling
            ):
                state.settling = True
                self._spawn(self._settle(state, state.env, result))
            if self.settings.promotion_records and result.blocked and state.env is not None:
                self._spawn(asyncio.to_thread(self.auto.record_blocked, state.env, result))

    async def _suspended(self, state: _EnvState) -> Suspension | None:
        """Whether ``state``'s environment is suspended now (:mod:`reconciler.runtime.control`; read from the
        store, which falls back to the last known value); kept in ``state.suspension``."""
        try:
            state.suspension = await is_suspended(self.control, state.name)
        except Exception as exc:  # an unreadable store: the last value read
            log.warning("cannot read the suspension of %s: %s", state.name, exc)
        return state.suspension

    def _environment_of(self, name: str) -> Environment | None:
        state = self.envs.get(name)
        return state.env if state is not None else None

    def _statuses_for(self, env_name: str) -> CommitStatuses | None:
        """The poster of ``env_name``'s commit statuses: its ``commit-status`` notification target's, else
        the daemon's (``commit_status``). Blocking (a Secret may be read)."""
        state = self.envs.get(env_name)
        if self.notifier is not None and state is not None and state.env is not None:
            try:
                own = self.notifier.commit_statuses(state.env, self.settings.repo)
            except ReconcilerError as exc:
                log.warning("commit statuses of %s not posted: %s", env_name, exc)
                return None
            if own is not None:
                return own
        return self.statuses

    def _post_status(self, env_name: str, sha: str, status: StatusState, description: str) -> None:
        """Post one commit status of ``env_name`` (see :meth:`_statuses_for`); blocking."""
        poster = self._statuses_for(env_name)
        if poster is not None:
            poster.report(env_name, sha, status, description)

    def suspended_now(self, env: str) -> bool:
        """Whether ``env`` was suspended when last read (no I/O; for the rollout runner)."""
        state = self.envs.get(env)
        return state is not None and state.suspension is not None

    async def publish_event(self, subject: str, data: bytes, msg_id: str | None = None) -> None:
        """The one place the daemon's events leave it: handed to the notifier (when the environment has
        notification targets; never blocks) and published on NATS (when connected). A NATS failure is
        logged. No value the SOPS render step decrypted goes out (:mod:`reconciler.model.sensitive`)."""
        if sensitive.known():
            data = sensitive.mask(data.decode("utf-8", "replace")).encode("utf-8")
        if self.notifier is not None:
            self.notifier.offer(subject, data)
        if self.bus is None:
            return
        try:
            await self.bus.publish(subject, data, msg_id=msg_id)
        except BusError as exc:
            log.warning("could not publish %s: %s", subject, exc)

    def thread_publisher(self, subject: str, data: bytes, msg_id: str) -> None:
        """:meth:`publish_event` from a worker thread (the automatic rollback's publisher); waits at most
        10 s for it and raises what it raised."""
        assert self._loop is not None
        coro = self.publish_event(subject, data, msg_id)
        try:
            fut = asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # the loop has closed (the daemon stopped): nothing to publish on
            coro.close()
            raise
        fut.result(10.0)

    # -- rollouts (runtime/rollouts.py) -------------------------------------------------------------

    def rollout_base(self, env: str) -> list[dict[str, Any]] | None:
        """``env``'s rendered objects before its rollouts were laid over them (the last pass)."""
        laid = self.ctx.rollouts.get(env)
        return laid.base if laid is not None else None

    def replace_desired(self, env: str, objects: list[dict[str, Any]]) -> None:
        """Replace the desired copies of ``objects`` in ``env``'s last desired set and the drift index, so
        drift correction keeps what a rollout just wrote."""
        by_key = {ref_of(o).key: o for o in objects}
        cid = self._target(env).id
        with self._index_lock:
            desired = self.ctx.last_desired.get(env) or []
            for i, d in enumerate(desired):
                if d.key in by_key:
                    desired[i] = Desired(d.ref, by_key[d.key], d.ignore)
                    if self._index.get((cid, d.key), ("", None))[0] == env:
                        self._index[(cid, d.key)] = (env, desired[i])

    async def _pass(self, state: _EnvState, reason: str, since: float) -> PassResult:
        """One pass of ``state``'s environment for ``reason``, asked for at ``since`` (monotonic).

        Every pass applies a head fetched after it was asked for (:meth:`_shared_head`: passes triggered
        together, such as ``reconciler sync`` of every environment, share one ``git fetch``; polls also
        share a recent one, :data:`POLL_FETCH_TTL`). A pass started only by polls, when the branch still
        points at the revision the last pass applied, may be verified from the drift watches' view
        instead of the API server (see :meth:`_verified_by_watch`); every other pass is a full one.
        """
        revision: Revision | None = None
        poll = reason == "poll"
        try:
            revision, fetched = await self._shared_head(
                not_before=state.fetched_at if poll else max(since, state.fetched_at), poll=poll
            )
            state.fetched_at = max(state.fetched_at, fetched)
        except SourceError:  # run_pass fetches again and reports the failure as the pass's error
            state.fetched_at = time.monotonic()
        if poll and revision is not None:
            desired = self.ctx.last_desired.get(state.name)
            if self.ctx.probes is not None and desired:  # probes (only past their cache window) off the loop
                namespace = (state.env.namespace if state.env else None) or ""
                await asyncio.to_thread(self.ctx.probes.prefetch, [d.obj for d in desired], namespace)
            verified = self._verified_by_watch(state, revision)
            if verified is not None:
                return verified
        result = await asyncio.to_thread(run_pass, self.ctx, state.name, revision=revision, trigger=reason)
        if result.ok:
            state.full_at = time.monotonic()
        return result

    async def _shared_head(self, not_before: float = 0.0, *, poll: bool = True) -> tuple[Revision, float]:
        """The branch's head for a pass and when its fetch started (monotonic): a head fetched before, when
        that fetch started at ``not_before`` or later (a ``poll`` takes only another poll's, within
        :data:`POLL_FETCH_TTL` seconds; a pass asked for takes any), else fetched now. ``not_before`` is at
        least when the fetch behind the environment's last pass started: without that bound, a poll could
        reuse a head fetched just before a commit that a push-triggered pass has applied since, and apply
        the older revision again. A triggered pass also passes the time it was asked for, so the head it
        gets includes every push before.

        Raises:
            SourceError: the fetch failed.
        """
        async with self._fetch_lock:
            now = time.monotonic()
            if poll:  # polls share polls' fetches only: a triggered pass's never keeps a poll from fetching
                if (
                    self._polled is not None
                    and now - self._polled[1] < POLL_FETCH_TTL
                    and self._polled[1] >= not_before
                ):
                    return self._polled
            else:
                for head in (self._triggered, self._polled):
                    if head is not None and head[1] >= not_before:
                        return head
            started = time.monotonic()
            rev = await asyncio.to_thread(self.source.fetch)
            if poll:
                self._polled = (rev, started)
                return self._polled
            self._triggered = (rev, started)
            return self._triggered

    def _verified_by_watch(self, state: _EnvState, revision: Revision) -> PassResult | None:
        """A poll pass answered from the drift watches, or ``None`` when a full pass is needed.

        It applies when the last pass succeeded at ``revision`` (nothing new in Git), a full pass ran
        within :data:`FULL_RESYNC` seconds, the watch of every desired kind is listed and running, no
        change seen during a pass waits for a re-check, and every desired object's live copy from the
        watches compares in sync (:func:`reconciler.cluster.drift.diff_paths`, the comparison drift
        correction uses). The watches have compared every change of these objects as it happened, so a
        call to the API server would find the same; this is how Argo CD compares against its cluster
        cache. Health is judged from the same live copies. Nothing is written.
        """
        applied, last = state.applied, state.last
        if applied is None or last is not applied or applied.revision != str(revision):
            return None
        if time.monotonic() - state.full_at > FULL_RESYNC:
            return None
        started, t0 = time.time(), time.monotonic()
        watched = self._watched_copies(state)
        if watched is None:
            return None
        live, desired = watched
        changes = ChangeSet()
        for d in desired:
            try:
                if driftlib.diff_paths(d.obj, live[d.key], ignore=d.ignore, field_manager=FIELD_MANAGER):
                    return None
            except (ValueError, TypeError):
                return None
            changes.add(d.ref, Action.UNCHANGED)
        return PassResult(
            environment=state.name,
            revision=applied.revision,
            ok=True,
            changes=changes,
            health=self._judge_watched(state, live, desired),
            started_at=started,
            duration=round(time.monotonic() - t0, 4),
            trigger="poll",
            verified_by="watch",
        )

    def _watched_copies(
        self, state: _EnvState
    ) -> tuple[dict[tuple[str, str, str, str], dict[str, Any]], list[Desired]] | None:
        """The drift watches' live copies of every object ``state``'s last pass left desired, with that
        desired set; ``None`` unless every one of them is there, the watch of each kind is listed and
        running, and no change seen during a pass waits for a re-check."""
        desired = self.ctx.last_desired.get(state.name)
        if not self.settings.drift_watch or desired is None or state.env is None:
            return None
        target = self._target(state.name)
        with self._index_lock:
            if state.missed:
                return None
            watching = {gvk for cid, gvk in self._watching if cid == target.id}
            live: dict[tuple[str, str, str, str], dict[str, Any]] = {}
            for d in desired:
                obj = self._live.get((target.id, d.key))
                if obj is None or (d.ref.group, d.ref.version, d.ref.kind) not in watching:
                    return None
                live[d.key] = obj
        return live, desired

    def _judge_watched(
        self,
        state: _EnvState,
        live: dict[tuple[str, str, str, str], dict[str, Any]],
        desired: list[Desired],
    ) -> dict[str, HealthStatus]:
        """Health of ``desired`` judged from the watches' copies ``live`` (a related object no watch
        holds, such as an Agent's Deployment, is read from the API server)."""
        target = self._target(state.name)

        def lookup(ref: ObjectRef) -> dict[str, Any] | None:
            cached = live.get(ref.key)
            if cached is not None:
                return cached
            try:
                return self.targets.client_of(target, state.name).get(ref)
            except (KubeError, ConfigError):
                return None

        after = state.env.health.no_controller_after if state.env is not None else 60.0
        return {
            str(d.ref): judge(live[d.key], lookup=lookup, no_controller_after=after, probe=self.ctx.mcp_probe)
            for d in desired
        }

    def watched_health(self, name: str) -> dict[str, HealthStatus] | None:
        """Health of environment ``name``'s desired objects judged from the drift watches' copies, with no
        call to the API server for them (as Argo CD judges from its cluster cache): the watches have seen
        every change of these objects, status included, as it happened. ``None`` when they do not hold
        all of them (a watch not running, an object not seen yet): read the API server instead. Blocking
        only for probes past their cache window and related objects no watch holds."""
        state = self.envs.get(name)
        if state is None:
            return None
        watched = self._watched_copies(state)
        if watched is None:
            return None
        live, desired = watched
        from reconciler.probe.service import ProbeService

        if isinstance(self.ctx.probes, ProbeService):  # every endpoint at once; judging reads the cache
            self.ctx.probes.prefetch(list(live.values()))
        return self._judge_watched(state, live, desired)

    def _gate_pool(self) -> ThreadPoolExecutor:
        """The health gates' own threads (made on first use), so waiting gates never hold up passes."""
        if self._gates is None:
            self._gates = ThreadPoolExecutor(GATE_THREADS, thread_name_prefix="reconciler-gate")
        return self._gates

    async def _settle(self, state: _EnvState, env: Environment, result: PassResult) -> None:
        """Health gate and promotion record for the pass's revision (in the background, so triggers for
        this environment are not held up); reverts a failed promotion when ``onFailure: revert``. A sharded
        replica that handed the environment over meanwhile leaves both to the new holder."""
        if self._stopping.is_set() or (self.shards is not None and not self.shards.may_write(state.name)):
            state.settling = False  # stopping: the next start settles it
            return
        stopping = self._stopping

        def wait(timeout: float) -> dict[str, HealthStatus]:
            refs = [d.ref for d in self.ctx.last_desired.get(env.name, [])]
            client = self.ctx.client_for(env)
            deadline = time.monotonic() + timeout
            interval = GATE_POLL_SECONDS
            while True:
                if stopping.is_set():
                    raise ReconcilerError("daemon stopping")
                state.seen_change.clear()  # a change from here on makes the next reading come early
                # judged from the drift watches' copies when they hold every object (they saw each change,
                # status included), else read from the API server: a hundred gates waiting together
                # would otherwise list every kind of every environment each few seconds
                health = self.watched_health(env.name)
                if health is None or set(health) != {str(r) for r in refs}:
                    health = assess_health(
                        client,
                        refs,
                        no_controller_after=env.health.no_controller_after,
                        probe=self.ctx.mcp_probe,
                    )
                self._read_protocols(state)
                settled = all(h.state in SETTLED for h in health.values())
                if settled or time.monotonic() >= deadline:
                    return health
                # Read again when a watch saw one of its objects change, after the interval at the
                # latest (it doubles up to GATE_POLL_MAX_SECONDS: what no watch reports, such as an MCP
                # server starting to answer, or a kind nobody watches, is still read again), never
                # sooner than GATE_POLL_SECONDS after the last reading.
                started = time.monotonic()
                state.seen_change.wait(max(0.0, min(interval, deadline - started)))
                rest = GATE_POLL_SECONDS - (time.monotonic() - started)
                if rest > 0 and not stopping.is_set():
                    stopping.wait(min(rest, max(0.0, deadline - time.monotonic())))
                if self.settings.drift_watch:  # else nothing wakes it early: keep reading every second
                    interval = min(interval * 2, GATE_POLL_MAX_SECONDS)

        sha = sha_of(result.revision)
        gating = False

        def wait_reported(timeout: float) -> dict[str, HealthStatus]:
            nonlocal gating
            if not gating:  # only when the gate runs (not for a settled sha)
                gating = True
                self._post_status(env.name, sha, "pending", "applied; waiting for the health gate")
            return wait(timeout)

        try:
            decision = await asyncio.get_running_loop().run_in_executor(
                self._gate_pool(), self.auto.after_pass, env, result, wait_reported
            )
            if decision.passed is not None and decision.outcome is not None:
                state.gate = "passed" if decision.passed else f"failed: {decision.outcome.value}"
                await asyncio.to_thread(self._post_status, env.name, sha, *gate_status(decision))
        except ReconcilerError:
            return
        finally:
            state.settling = False
        if decision.retrigger:
            self.trigger(state.name, "rollback")

    def _report_pass(self, state: _EnvState, result: PassResult, rolling: bool) -> None:
        """The commit status of a pass that failed, was blocked, or began or continues a rollout (the
        health gate's statuses are posted by :meth:`_settle`)."""
        sha = sha_of(result.revision)
        env = state.env
        own = env is not None and any(t.type == "commit-status" for t in env.notifications)
        if not sha or (self.statuses is None and not own):
            return
        if result.blocked:
            status: tuple[StatusState, str] = ("failure", f"blocked, nothing applied: {result.error}")
        elif not result.ok:
            status = ("failure", f"pass failed, nothing applied: {result.error}")
        elif rolling:
            status = ("pending", "applied; progressive rollout running")
        else:
            return
        self._spawn(asyncio.to_thread(self._post_status, state.name, sha, *status))

    def _after_pass(self, state: _EnvState, result: PassResult) -> None:
        """Refresh the environment settings and the drift-watch index from the pass."""
        with contextlib.suppress(ReconcilerError, OSError):
            rev = result.revision.rsplit("@sha1:", 1)[-1]
            path = self.source.snapshot_dir / rev / "envs" / f"{state.name}.yaml"
            if rev and path.is_file():  # this environment's file only: another one's error is not ours
                state.env = load_environment(path, shown=f"envs/{state.name}.yaml")
        desired = self.ctx.last_desired.get(state.name)
        if desired is None:
            return
        target = self._target(state.name)
        keys = {(target.id, d.key) for d in desired}
        with self._index_lock:
            for key in [k for k, (e, _) in self._index.items() if e == state.name]:
                del self._index[key]
                if key not in keys:  # the watches' copies of objects still desired stay valid
                    self._live.pop(key, None)
            for d in desired:
                self._index[(target.id, d.key)] = (state.name, d)
        # what the pass's health reading saw after its writes: the view is never older than the pass (a
        # watch event may still be on its way), and a gate or status judging the view sees the pass's writes
        self._take_reading(target.id, list(self.ctx.last_live.pop(state.name, {}).values()))
        if self.settings.drift_watch:
            with self._index_lock:
                missing = [d.ref for d in desired if (target.id, d.key) not in self._live]
            if missing:  # created by this pass before they were indexed: read them once, like a relist
                self._spawn(asyncio.to_thread(self._prime, target, missing))
            for d in desired:
                gvk = (d.ref.group, d.ref.version, d.ref.kind)
                if (target.id, gvk) not in self._watchers:
                    t = threading.Thread(
                        target=self._watch_kind,
                        args=(target, gvk),
                        daemon=True,
                        name=f"watch-{target.label}-{d.ref.kind}",
                    )
                    self._watchers[(target.id, gvk)] = t
                    t.start()

    def _read_protocols(self, state: _EnvState) -> None:
        """Set ``state.protocols`` from what the probe service last found for the environment's desired
        objects (MCP servers, agents): its cache only, nothing is probed for it. Without a probe service
        the report lists nothing and says so. Blocking (a ``headersFrom`` Secret may be read): call it
        from a worker thread."""
        desired = self.ctx.last_desired.get(state.name) or []
        try:
            state.protocols = protocol_report(
                [d.obj for d in desired], self.ctx.probes, times=state.probe_times
            )
        except Exception:  # a status must never break a pass or the health gate
            log.exception("reading the protocol health of %s failed", state.name)

    def _spawn(self, coro: Any) -> None:
        """Run ``coro`` in the background, keeping a reference until it ends."""
        task = asyncio.create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _publish(self, subject: str, data: bytes) -> None:
        await self.publish_event(subject, data)

    async def _consume_triggers(self) -> None:
        assert self.bus is not None
        async for msg in self.bus.consume(
            STREAM_EVENTS,
            self.trigger_durable,
            ["reconciler.git.push.>", "reconciler.reconcile.request.>", "reconciler.git.pr.>"],
            batch=1,
            wait=5.0,
            inactive_threshold=self.trigger_inactive_threshold,
        ):
            if msg.subject.startswith("reconciler.git.pr."):
                if self.shards is not None and not self.shards.holds_singleton():
                    await msg.ack()  # checked by the replica running the one-writer jobs
                    continue
                self._spawn(self._check_pull_request(msg))
                continue
            if msg.subject.startswith("reconciler.reconcile.request."):
                env = msg.subject.rsplit(".", 1)[-1]
                futures = [self.trigger(env, "request")] if env in self.envs else []
            else:
                futures = self.trigger_all("git-push")
            self._spawn(self._ack_when_done(msg, futures))

    async def _check_pull_request(self, msg: Any) -> None:
        """A pull request into the followed branch was opened or moved: check its head
        (:func:`reconciler.promote.check.check_change`, with a dry-run pass on this cluster), post the
        result as the commit status ``reconciler/check`` and its Markdown in the pull request's body.
        Without a Git host token nothing is checked; a malformed event, and one about another repository
        (whose branch of the same name is not the pull request's), is dropped. The message is acknowledged
        once the status is posted (or given up)."""
        from reconciler.promote.check import CHECK_CONTEXT, CHECK_SECTION, check_change
        from reconciler.promote.hosts import HostError, post_commit_status, set_pull_request_section
        from webhooks.events import PullRequestChanged

        try:
            event = PullRequestChanged.model_validate_json(msg.data)
        except ValueError as exc:
            log.warning("dropping a malformed pull-request event: %s", exc)
            await msg.ack()
            return
        if (
            self.statuses is None
            or event.base_ref != self.settings.branch
            or not _names_repository(event, self.statuses.config.repo)
        ):  # not ours: one receiver and one NATS may serve many repositories
            await msg.ack()
            return
        config = self.statuses.config
        try:
            report = await asyncio.to_thread(
                check_change,
                self.settings.repo,
                event.base_ref,
                event.head_ref,
                self.settings.cache_dir / "checks",
                only=list(self.envs),
                client=self.client,
            )
            await post_commit_status(
                config,
                report.head,
                context=CHECK_CONTEXT,
                state="success" if report.ok else "failure",
                description=report.summary(),
            )
            await set_pull_request_section(config, event.number, CHECK_SECTION, report.markdown())
            log.info("pull request #%s: %s %s", event.number, CHECK_CONTEXT, report.summary())
        except (ReconcilerError, HostError) as exc:
            log.warning("pull request #%s: check not posted: %s", event.number, exc)
        with contextlib.suppress(Exception):
            await msg.ack()

    @staticmethod
    async def _ack_when_done(msg: Any, futures: list[asyncio.Future[PassResult]]) -> None:
        """Acknowledge ``msg`` once the passes it asked for have ended; meanwhile tell JetStream every
        :data:`TRIGGER_PROGRESS_SECONDS` that it is in progress, so passes that wait their turn (a push to
        many environments) longer than the consumer's ack wait are not delivered and run again."""
        pending = {f for f in futures if not f.done()}
        while pending:
            _done, pending = await asyncio.wait(pending, timeout=TRIGGER_PROGRESS_SECONDS)
            if pending:
                with contextlib.suppress(Exception):
                    await msg.in_progress()
        for f in futures:  # retrieved: a failed trigger (an unknown environment) is not logged as unseen
            if not f.cancelled():
                f.exception()
        with contextlib.suppress(Exception):
            await msg.ack()
            failpoint("ack")

    # -- drift watches ----------------------------------------------------------------------------

    def _watch_kind(self, target: Target, gvk: tuple[str, str, str]) -> None:
        """Watch one kind in one target cluster until the daemon stops.

        List, then watch from the list's resourceVersion; a watch the server ends (after
        :data:`WATCH_SECONDS`) goes on from the last resourceVersion it delivered (an event's or a
        bookmark's), so only an error (a 410 Gone at once, any other after a second) lists again, as
        client-go's reflector does (the Kubernetes API concepts, "Efficient detection of changes"). A relist
        drops from the view what it no longer holds (deleted while no watch ran). A cluster that is down is
        tried again every second."""
        group, version, kind = gvk
        cid = target.id
        client: KubeClient | None = None
        while client is None and not self._stopping.is_set():
            try:
                client = self.targets.open(target)
            except (KubeError, ConfigError) as exc:
                log.warning("watch of %s in cluster %s cannot start: %s", kind, target.label, exc)
                time.sleep(1.0)
        if client is None:
            return
        try:
            while not self._stopping.is_set():
                try:
                    items, rv = client.list(group, version, kind)
                    self._relisted(cid, gvk, items, rv)
                    with self._index_lock:
                        self._watching.add((cid, gvk))
                    while not self._stopping.is_set():
                        opened, events = time.monotonic(), 0
                        for etype, obj in client.watch(
                            group, version, kind, resource_version=rv, timeout_seconds=WATCH_SECONDS
                        ):
                            if self._stopping.is_set():
                                return
                            events += 1
                            rv = _version(obj) or rv
                            if etype in ("MODIFIED", "ADDED", "DELETED"):
                                self._on_live(cid, obj, deleted=etype == "DELETED")
                        if not events and time.monotonic() - opened < 1.0:
                            time.sleep(1.0)  # ended at once with nothing: not in a tight loop (client-go too)
                except KubeError as exc:
                    with self._index_lock:
                        self._watching.discard((cid, gvk))
                    if exc.status != 410:
                        time.sleep(1.0)
                except Exception:
                    with self._index_lock:
                        self._watching.discard((cid, gvk))
                    log.exception("watch of %s in cluster %s failed", kind, target.label)
                    time.sleep(1.0)
        finally:
            client.close()

    def _relisted(self, cid: str, gvk: tuple[str, str, str], items: list[dict[str, Any]], rv: str) -> None:
        """Take a list of one kind in cluster ``cid`` at resourceVersion ``rv`` into the watches' view: each
        item as a watch event, and each held copy of that kind the list no longer has as deleted (unless
        the copy is newer than the list: a read that came after it)."""
        present: set[_CKey] = set()
        for obj in items:
            try:
                key = (cid, ref_of(obj).key)
            except ValueError:
                continue
            present.add(key)
            with self._index_lock:
                held = self._live.get(key)
            if held is None or not _same_version(held, obj):  # the same write was compared already
                self._on_live(cid, obj)
        group, _, kind = gvk
        with self._index_lock:
            gone = [
                obj
                for key, obj in self._live.items()
                if key[0] == cid
                and key[1][0] == group
                and key[1][1] == kind
                and key not in present
                and not _newer_than(obj, rv)
            ]
        for obj in gone:
            self._on_live(cid, obj, deleted=True)

    def _prime(self, target: Target, refs: list[ObjectRef]) -> None:
        """Give the watches' view the live copies of ``refs`` (objects a pass created before they were
        in the drift index, whose watch events were therefore not kept): one list per kind and namespace,
        each listed item taken as a watch event is (never over a newer copy). Failures are left to the next
        relist."""
        groups: dict[tuple[str, str, str, str], None] = {}
        for r in refs:
            groups[(r.group, r.version, r.kind, r.namespace)] = None
        try:
            client = self.targets.client_of(target)
        except (KubeError, ConfigError):
            return
        for group, version, kind, ns in groups:
            if self._stopping.is_set():
                return
            try:
                items, _ = client.list(group, version, kind, namespace=ns or None)
            except KubeError:
                continue
            for obj in items:
                self._on_live(target.id, obj)

    def _end_pass(self, state: _EnvState) -> list[dict[str, Any]]:
        """Mark ``state``'s pass finished; returns the live objects the drift watches saw change meanwhile
        (they were left to the pass, which may have read them before the change)."""
        with self._index_lock:
            state.running = False
            missed, state.missed = state.missed, {}
        return list(missed.values())

    async def _recheck(self, env_name: str, objs: list[dict[str, Any]]) -> None:
        """Read the current state of ``objs`` (live objects of ``env_name``'s cluster whose change a pass
        overlapped) and check them for drift against the desired state the pass left."""
        target = self._target(env_name)
        for obj in objs:
            try:
                ref = ref_of(obj)
                client = await asyncio.to_thread(self.targets.client_of, target, env_name)
                live = await asyncio.to_thread(client.get, ref)
            except (ValueError, KubeError, ConfigError) as exc:
                log.warning("drift re-check of %s failed: %s", obj.get("metadata", {}).get("name"), exc)
                continue
            self._on_live(target.id, live if live is not None else obj, deleted=live is None)

    def _take_reading(self, cid: str, objs: list[dict[str, Any]]) -> None:
        """Put a pass's own reading of its objects in cluster ``cid`` into the watches' view (where it is
        not older than the copy held), without comparing it again: the pass compared these objects with
        desired state itself, and reported what it found."""
        with self._index_lock:
            for obj in objs:
                try:
                    key = (cid, ref_of(obj).key)
                except ValueError:
                    continue
                held = self._live.get(key)
                if key in self._index and (held is None or not _newer_than(held, _version(obj))):
                    self._live[key] = obj

    def _on_live(self, cid: str, obj: dict[str, Any], *, deleted: bool = False) -> None:
        """A live object seen in the target cluster ``cid`` (:attr:`Target.id`) by a watch or a read."""
        try:
            key = (cid, ref_of(obj).key)
        except ValueError:
            return
        with self._index_lock:
            entry = self._index.get(key)
            if entry is None:
                return
            held = self._live.get(key)
            if held is not None and _newer_than(held, _version(obj)):
                return  # a reading older than the copy held (a read that raced a watch event): never back
            if deleted:
                self._live.pop(key, None)
            else:
                self._live[key] = obj
            env_name, d = entry
            state = self.envs.get(env_name)
            if state is None:
                return
            state.seen_change.set()  # a health gate waiting reads again
            if state.running:  # the pass owns the object now; look again when it has finished
                state.missed[key] = obj
                return
        if deleted:
            fields = [driftlib.FieldDrift(live="(object deleted)", git="(object deleted)")]
        else:
            try:
                fields = driftlib.diff_fields(d.obj, obj, ignore=d.ignore, field_manager=FIELD_MANAGER)
            except (ValueError, TypeError):
                return
        if not fields:
            return
        assert self._loop is not None
        self._loop.call_soon_threadsafe(self._drift_found, env_name, d, fields, obj)

    def _drift_found(
        self, env_name: str, d: Desired, fields: list[driftlib.FieldDrift], live: dict[str, Any]
    ) -> None:
        """Report (or correct, then report) drift of ``d``.

        The event's ``paths`` are the live object's dot paths; ``fields`` pairs each with the path in Git
        it came from (``{"live": "data.token", "git": "stringData.token"}``). Never a value.
        """
        state = self.envs[env_name]
        if self.shards is not None and not self.shards.may_start(env_name):
            return  # another replica's environment: its drift watch corrects it
        mode = state.env.sync.drift if state.env else DriftMode.CORRECT
        if state.suspension is not None:
            mode = DriftMode.WARN  # reported, never corrected, while suspended
        managers = sorted(
            {
                str(m.get("manager"))
                for m in (live.get("metadata") or {}).get("managedFields") or []
                if m.get("manager") != FIELD_MANAGER
            }
        )
        event = {
            "environment": env_name,
            "object": str(d.ref),
            "cluster": self._target(env_name).label,
            "ref": d.ref.model_dump(),
            "paths": [f.live for f in fields],
            "fields": [{"live": f.live, "git": f.git} for f in fields],
            "mode": "suspended" if state.suspension is not None else mode.value,
            "managers": managers,
            "detected_at": time.time(),
            "corrected": False,
        }
        if mode is DriftMode.CORRECT:
            self._spawn(self._correct(env_name, d, event, live))
        else:
            self._emit_drift(event)

    async def _correct(self, env_name: str, d: Desired, event: dict[str, Any], live: dict[str, Any]) -> None:
        """Correct one drifted object: apply it again from the last pass's desired state, or run a pass
        when it was deleted, or when the stored inventory shows that another writer (``reconciler
        reconcile``, a second daemon) applied a different revision since that pass: writing our older
        desired state back would undo theirs, so a pass decides from the branch's latest commit."""
        if self.shards is not None:
            WRITE_FENCE.set(self.shards.fence(env_name))
        try:
            state = self.envs[env_name]
            if await self._suspended(state) is not None:  # suspended meanwhile: report only
                event["mode"] = "suspended"
                self._emit_drift(event)
                return
            ours = state.last.revision if state.last is not None else ""
            client = await asyncio.to_thread(self.targets.client_of, self._target(env_name), env_name)
            store = InventoryStore(client, source=self.source.url)
            stored = (await asyncio.to_thread(store.load, env_name)).revision
            if stored and ours and stored != ours:
                event["superseded_by"] = stored
                await self.trigger(env_name, "drift")
            elif event["paths"] == ["(object deleted)"]:
                await self.trigger(env_name, "drift")
            else:
                sent = sendable(d, live)
                await asyncio.to_thread(client.apply, sent, d.ref, field_manager=FIELD_MANAGER)
            event["corrected"] = True
            event["corrected_at"] = time.time()
        except (KubeError, ConfigError) as exc:
            event["error"] = str(exc)
        self._emit_drift(event)

    def _emit_drift(self, event: dict[str, Any]) -> None:
        self.drift_events.append(event)
        del self.drift_events[:-200]
        if self.on_drift is not None:
            self.on_drift(event)
        self._spawn(self._publish(drift_subject(event["environment"]), json.dumps(event).encode()))

    # -- read-only views for programs that embed the daemon (reconciler/demo.py) --------------------

    @property
    def probes(self) -> ProbeService | None:
        """The protocol probe service the passes and health gates use (MCP servers' tools, A2A agent
        cards); ``None`` when the daemon probes nothing."""
        return self.ctx.probes

    def settled(self, env: str, revision: str) -> bool:
        """Whether ``env``'s health gate has finished with ``revision`` (a pass's revision such as
        ``main@sha1:<sha>``, or the bare sha): its outcome recorded by the automatic rollback
        (reconciler/promote/auto.py) and no gate of ``env`` still running. ``False`` for an unknown
        environment. No I/O."""
        state = self.envs.get(env)
        sha = revision.rsplit("@sha1:", 1)[-1]
        return state is not None and not state.settling and self.auto.is_settled(env, sha)

    def gate(self, env: str) -> str:
        """``env``'s last health gate: ``"passed"``, ``"failed: <outcome>"``, or ``""`` before any gate
        (or for an unknown environment) — what ``/api/status`` shows as ``gate``."""
        state = self.envs.get(env)
        return state.gate if state is not None else ""


def _names_repository(event: Any, repo: str) -> bool:
    """Whether a :class:`webhooks.events.PullRequestChanged` is about the Git host's repository ``repo``
    (``owner/name``, as :class:`reconciler.promote.hosts.HostConfig` has it): by the event's full name, else
    by the path of its clone URL; case-insensitive, as the hosts treat them."""
    from reconciler.promote.hosts import parse_remote

    names = {event.full_name or ""}
    parsed = parse_remote(event.repository)
    if parsed is not None:
        names.add(parsed[1])
    return repo.strip("/").lower() in {n.strip("/").lower() for n in names if n}
