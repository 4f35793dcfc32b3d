"""A watch-backed read view of the cluster for the MCP server's status tools (``listEnvironments``,
``getObjectHealth``): each (kind, namespace) the tools read is listed once and then followed by a watch,
so a call costs no API round trip for objects that did not change.

:class:`WatchedReader` stands in for a :class:`reconciler.cluster.client.KubeClient` where the status code
reads (:func:`reconciler.cli_observe.status_by_cluster`, :func:`reconciler.reconcile.assess_health`):
``get`` and ``list`` are answered from the mirror of that kind and namespace when its watch is open;
everything else (and every read of a mirror that is not listed, or whose watch broke and is not listed
again yet) goes to the API server as before. The answers are therefore the same as a direct read's, later
only by the time the API server takes to deliver a watch event (milliseconds on one host).

A mirror that nobody read for ``idle`` seconds stops its watch. Mirrors whose list is refused (RBAC, an
unknown kind) are not retried for ``retry_after`` seconds: their reads go to the API server.

The list-then-watch protocol followed is the Kubernetes API's (``resourceVersion`` of the list, watch
from it, ``410 Gone`` means list again, ``allowWatchBookmarks``), as used in
:meth:`reconciler.cluster.client.KubeClient.watch`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.errors import KubeError

if TYPE_CHECKING:
    from collections.abc import Iterator

    from reconciler.cluster.client import KubeClient
    from reconciler.model import ObjectRef

log = logging.getLogger(__name__)

#: (group, version, kind, namespace or None for cluster-wide, label selector)
MirrorKey = tuple[str, str, str, str | None, str]


@dataclass
class ReadCount:
    """Reads made inside :meth:`WatchedReader.counting`."""

    mirror: int = 0
    direct: int = 0

    @property
    def source(self) -> str:
        """``watch`` (every read from a mirror), ``api`` (every read direct, or none made) or
        ``watch+api``."""
        if self.mirror and self.direct:
            return "watch+api"
        return "watch" if self.mirror else "api"


@dataclass
class _Mirror:
    """The listed and watched objects of one kind in one namespace (or cluster-wide)."""

    key: MirrorKey
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    resource_version: str = ""
    live: bool = False  # listed, and its watch is open: reads may use it
    last_used: float = field(default_factory=time.monotonic)
    stopped: bool = False
    listed: threading.Event = field(default_factory=threading.Event)
    failed_at: float | None = None  # monotonic time its list was refused


class WatchedReader:
    """A :class:`~reconciler.cluster.client.KubeClient` whose ``get``/``list`` are answered from watched
    mirrors (see the module docstring); every other attribute is the wrapped client's.

    Args:
        client: the client reads fall back to (owned by the caller).
        watch_client: the client the watches stream on (owned by this reader; closed by :meth:`close`),
            so long-lived watches take no connection from ``client``'s pool.
        idle: seconds after the last read at which a mirror's watch stops.
        watch_timeout: seconds of each watch request (the server ends it; the mirror watches again).
        retry_after: seconds during which a kind whose list was refused is read directly.
    """

    def __init__(
        self,
        client: KubeClient,
        watch_client: KubeClient,
        *,
        idle: float = 600.0,
        watch_timeout: int = 60,
        retry_after: float = 60.0,
    ) -> None:
        self._client = client
        self._watch_client = watch_client
        self._idle = idle
        self._watch_timeout = watch_timeout
        self._retry_after = retry_after
        self._lock = threading.Lock()
        self._mirrors: dict[MirrorKey, _Mirror] = {}
        self._closed = False
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._client, name)

    # -- reads ----------------------------------------------------------------------------------------

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The object (the mirror's own dict: callers must not change it), or ``None`` when it does not
        exist.

        Raises:
            KubeError: the kind is unknown, or the direct read failed.
        """
        info = self._client.resource(ref.group, ref.version, ref.kind)
        namespace = ref.namespace if info.namespaced else None
        mirror = self._mirror((ref.group, ref.version, ref.kind, namespace, ""))
        self._note(mirror is not None)
        if mirror is None:
            return self._client.get(ref)
        with self._lock:
            obj = mirror.objects.get((ref.namespace if info.namespaced else "", ref.name))
        return obj

    def list(
        self, group: str, version: str, kind: str, *, namespace: str | None = None, label_selector: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """All objects of a kind (as :meth:`reconciler.cluster.client.KubeClient.list`; the mirror's own
        dicts: callers must not change them).

        Raises:
            KubeError: the kind is unknown, or the direct read failed.
        """
        mirror = self._mirror((group, version, kind, namespace, label_selector))
        self._note(mirror is not None)
        if mirror is None:
            return self._client.list(group, version, kind, namespace=namespace, label_selector=label_selector)
        with self._lock:
            items = list(mirror.objects.values())
            rv = mirror.resource_version
        return items, rv

    @contextlib.contextmanager
    def counting(self) -> Iterator[ReadCount]:
        """Count the reads this thread makes inside the block: from mirrors, and directly."""
        count = ReadCount()
        self._local.count = count
        try:
            yield count
        finally:
            self._local.count = None

    def _note(self, from_mirror: bool) -> None:
        count: ReadCount | None = getattr(self._local, "count", None)
        if count is not None:
            if from_mirror:
                count.mirror += 1
            else:
                count.direct += 1

    def live_mirrors(self) -> int:
        """How many mirrors are listed and watched now."""
        with self._lock:
            return sum(1 for m in self._mirrors.values() if m.live)

    def close(self) -> None:
        """Stop every watch (each thread ends when its watch request does) and close the watch client."""
        with self._lock:
            self._closed = True
            for m in self._mirrors.values():
                m.stopped = True
                m.live = False
        self._watch_client.close()

    # -- mirrors ----------------------------------------------------------------------------------------

    def _mirror(self, key: MirrorKey) -> _Mirror | None:
        """The live mirror of ``key`` (started and listed on first use), or ``None``: read directly."""
        now = time.monotonic()
        with self._lock:
            if self._closed:
                return None
            m = self._mirrors.get(key)
            if m is not None and (
                m.stopped or (m.failed_at is not None and now - m.failed_at > self._retry_after)
            ):
                m = None
            if m is None:
                m = _Mirror(key)
                self._mirrors[key] = m
                threading.Thread(
                    target=self._follow, args=(m,), daemon=True, name=f"mcp-watch-{key[2]}"
                ).start()
            m.last_used = now
        if not m.listed.wait(timeout=30.0):
            return None
        with self._lock:
            return m if m.live else None

    def _relist(self, m: _Mirror) -> None:
        group, version, kind, namespace, selector = m.key
        items, rv = self._watch_client.list(
            group, version, kind, namespace=namespace, label_selector=selector
        )
        objects = {_key_of(o): o for o in items}
        with self._lock:
            m.objects, m.resource_version, m.live = objects, rv, not m.stopped

    def _follow(self, m: _Mirror) -> None:
        """List ``m`` and follow it with watches until it is stopped or idle."""
        group, version, kind, namespace, _ = m.key
        while not m.stopped:
            try:
                self._relist(m)
            except KubeError as exc:
                log.info("MCP status cache: %s not listed (%s); read directly", m.key, exc)
                with self._lock:
                    m.failed_at, m.live = time.monotonic(), False
                m.listed.set()
                return
            except Exception:  # a broken stream or server: read directly until it lists again
                log.exception("MCP status cache: %s list failed", m.key)
                with self._lock:
                    m.live = False
                m.listed.set()
                time.sleep(1.0)
                continue
            m.listed.set()
            while not m.stopped:
                if time.monotonic() - m.last_used > self._idle:
                    with self._lock:
                        m.stopped, m.live = True, False
                    return
                try:
                    for etype, obj in self._watch_client.watch(
                        group,
                        version,
                        kind,
                        resource_version=m.resource_version,
                        namespace=namespace,
                        timeout_seconds=self._watch_timeout,
                    ):
                        self._event(m, etype, obj)
                        if m.stopped:
                            return
                except Exception as exc:  # 410 Gone, a broken stream: list again (reads go direct meanwhile)
                    log.info("MCP status cache: watch of %s ended (%s); listing again", m.key, exc)
                    with self._lock:
                        m.live = False
                    if not (isinstance(exc, KubeError) and exc.status == 410):
                        time.sleep(0.5)
                    break

    def _event(self, m: _Mirror, etype: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        rv = str(meta.get("resourceVersion", ""))
        selector = m.key[4]
        with self._lock:
            if etype == "BOOKMARK":
                m.resource_version = rv or m.resource_version
                return
            if etype == "DELETED" or (selector and not _matches(obj, selector)):
                m.objects.pop(_key_of(obj), None)
            elif etype in ("ADDED", "MODIFIED"):
                m.objects[_key_of(obj)] = obj
            m.resource_version = rv or m.resource_version


def _key_of(obj: dict[str, Any]) -> tuple[str, str]:
    meta = obj.get("metadata") or {}
    return str(meta.get("namespace") or ""), str(meta.get("name") or "")


def _matches(obj: dict[str, Any], selector: str) -> bool:
    """Whether ``obj``'s labels match an equality or existence selector (``a``, ``a=b``, ``a!=b``, comma-
    separated): the watch (:meth:`reconciler.cluster.client.KubeClient.watch`) is not filtered by the
    server, so its events are filtered here."""
    labels = (obj.get("metadata") or {}).get("labels") or {}
    for term in filter(None, (t.strip() for t in selector.split(","))):
        if "!=" in term:
            k, _, v = term.partition("!=")
            if labels.get(k.strip()) == v.strip():
                return False
        elif "=" in term:
            k, _, v = term.partition("=")
            if labels.get(k.strip().rstrip("=")) != v.strip().lstrip("="):
                return False
        elif term not in labels:
            return False
    return True
