"""Loopback stand-ins for the agent endpoints of the local cluster, whose kwok pods run no processes.

``reconciler up`` starts the real servers on 127.0.0.1 (:mod:`reconciler.devcluster.agents`) and keeps
the probe setting ``RECONCILER_PROBE_ADDRESSES=@<file>`` (:mod:`reconciler.probe.targets`) pointing the
cluster's in-cluster origins at them:

* **MCP servers.** A Deployment whose container runs the image :data:`EVERYTHING_IMAGE`
  (``docker.io/mcp/everything``, any Docker Hub spelling) stands for the MCP reference server
  ``@modelcontextprotocol/server-everything``, and the image's tag is the npm version it runs (a digest
  after the tag is allowed). Each Service whose selector selects that Deployment's pods has its
  in-cluster origin ``http://<service>.<namespace>.svc.cluster.local:<port>`` (every port) mapped to the
  loopback server-everything of *that* version: one process per pinned version
  (:data:`reconciler.devcluster.agents.SERVER_EVERYTHING_VERSIONS`), shared by every environment. A
  version that is not pinned gets no stand-in (the probe then leaves the object as its conditions say).
* **Agents.** Every kagent ``Agent``'s A2A origin ``http://<agent>.<namespace>.svc.cluster.local:8080``
  is mapped to the deterministic A2A echo agent (:mod:`reconciler.devcluster.a2a_agent`).

The mapping follows the cluster through three watches (Deployments, Services, kagent Agents; the same
list-then-watch loop as the daemon's drift watches, resumed from the last resourceVersion, re-listed only
after a 410), so a Deployment that moves to another version is served by that version's process within
one watch event, and an idle cluster costs three open watch connections and nothing else. The file is
rewritten (atomically) only when the mapping changes; the daemon reads it again on its next use (one
``stat`` per use). In-cluster no stand-in is needed: ``RECONCILER_PROBE_DIRECT=true`` (``deploy/``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reconciler.cluster.client import KubeClient
from reconciler.devcluster.agents import (
    SERVER_EVERYTHING_VERSIONS,
    ServerProcess,
    start_a2a_agent,
    start_server_everything,
)
from reconciler.errors import KubeError, NotFoundError
from reconciler.model.imagepolicy import normalise_image, split_image_reference
from reconciler.probe.targets import write_addresses

log = logging.getLogger("reconciler.standins")

#: The image repository that stands for the MCP reference server; the tag is its npm version.
EVERYTHING_IMAGE = "docker.io/mcp/everything"
#: Port of a kagent Agent's A2A server behind Service ``<agent name>``.
AGENT_A2A_PORT = 8080
#: Seconds a watch stays open before it is resumed (from the last resourceVersion; no re-list).
WATCH_SECONDS = 300

Obj = Mapping[str, Any]
_DEPLOYMENT = ("apps", "v1", "Deployment")
_SERVICE = ("", "v1", "Service")
_AGENT = ("kagent.dev", "v1alpha2", "Agent")


@dataclass(frozen=True)
class StandIn:
    """One mapped origin: ``origin`` (in-cluster) → ``target`` (loopback), served by ``server`` for
    ``owner``."""

    origin: str
    target: str
    server: str
    owner: str

    def describe(self) -> str:
        """``http://everything.agents-dev.svc.cluster.local:3001 → server-everything 2025.9.25 (…)``."""
        return f"{self.origin} → {self.server} at {self.target} ({self.owner})"


def _meta(obj: Obj) -> Mapping[str, Any]:
    meta = obj.get("metadata")
    return meta if isinstance(meta, Mapping) else {}


def _spec(obj: Obj) -> Mapping[str, Any]:
    spec = obj.get("spec")
    return spec if isinstance(spec, Mapping) else {}


def everything_version(deployment: Obj) -> str | None:
    """The npm version of server-everything that ``deployment`` runs (the tag of its
    :data:`EVERYTHING_IMAGE` container), or ``None`` when no container runs that image (or it has no
    tag)."""
    template = _spec(deployment).get("template")
    pod = template.get("spec") if isinstance(template, Mapping) else None
    containers = pod.get("containers") if isinstance(pod, Mapping) else None
    for c in containers if isinstance(containers, list) else []:
        image = c.get("image") if isinstance(c, Mapping) else None
        if not isinstance(image, str) or not image:
            continue
        try:
            repository = normalise_image(image)
        except ValueError:
            continue
        if repository == EVERYTHING_IMAGE:
            _, tag, _ = split_image_reference(image)
            return tag or None
    return None


def _pod_labels(deployment: Obj) -> dict[str, str]:
    template = _spec(deployment).get("template")
    meta = template.get("metadata") if isinstance(template, Mapping) else None
    labels = meta.get("labels") if isinstance(meta, Mapping) else None
    return {str(k): str(v) for k, v in labels.items()} if isinstance(labels, Mapping) else {}


def _selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(str(k)) == str(v) for k, v in selector.items())


def _origin(name: str, namespace: str, port: object) -> str:
    return f"http://{name}.{namespace}.svc.cluster.local:{port}"


def compute_standins(
    deployments: Iterable[Obj],
    services: Iterable[Obj],
    agents: Iterable[Obj],
    servers: Mapping[str, str],
    a2a: str | None,
) -> tuple[list[StandIn], list[str]]:
    """Which in-cluster origins the loopback servers stand in for (see the module docstring).

    Args:
        deployments: live (or rendered) Deployments.
        services: Services.
        agents: kagent Agents.
        servers: npm version → loopback origin of the server-everything running that version.
        a2a: loopback origin of the A2A echo agent (``None``: Agents are not mapped).

    Returns:
        the stand-ins, sorted by origin, and notes on server-everything Deployments that get none (a
        version that is not pinned, no Service selecting them).
    """
    runs: dict[str, list[tuple[str, dict[str, str], str]]] = {}  # namespace → (name, pod labels, version)
    notes: list[str] = []
    for d in deployments:
        version = everything_version(d)
        if version is None:
            continue
        meta = _meta(d)
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        if version not in servers:
            pinned = ", ".join(sorted(servers)) or "none"
            notes.append(
                f"Deployment {ns}/{name} runs {EVERYTHING_IMAGE}:{version}: no stand-in for that version "
                f"(running: {pinned})"
            )
            continue
        runs.setdefault(ns, []).append((name, _pod_labels(d), version))
    out: dict[str, StandIn] = {}
    fronted: set[tuple[str, str]] = set()
    for s in services:
        meta, spec = _meta(s), _spec(s)
        ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
        selector = spec.get("selector")
        if not isinstance(selector, Mapping) or ns not in runs:
            continue
        match = next(((n, v) for n, labels, v in sorted(runs[ns]) if _selects(selector, labels)), None)
        if match is None:
            continue
        fronted.add((ns, match[0]))
        for port in spec.get("ports") or []:
            if not isinstance(port, Mapping) or port.get("port") is None:
                continue
            if str(port.get("protocol") or "TCP") != "TCP":
                continue
            origin = _origin(name, ns, port["port"])
            out[origin] = StandIn(
                origin=origin,
                target=servers[match[1]],
                server=f"server-everything {match[1]}",
                owner=f"Service {ns}/{name} → Deployment {match[0]}",
            )
    for ns, items in sorted(runs.items()):
        for name, _, version in sorted(items):
            if (ns, name) not in fronted:
                notes.append(f"Deployment {ns}/{name} ({version}): no Service selects its pods yet")
    if a2a is not None:
        for a in agents:
            meta = _meta(a)
            ns, name = str(meta.get("namespace") or ""), str(meta.get("name") or "")
            if ns and name:
                origin = _origin(name, ns, AGENT_A2A_PORT)
                out.setdefault(
                    origin,
                    StandIn(origin=origin, target=a2a, server="A2A echo agent", owner=f"Agent {ns}/{name}"),
                )
    return [out[k] for k in sorted(out)], notes


def _slim(kind: str, obj: Obj) -> dict[str, Any] | None:
    """The part of a live object the mapping reads (``None``: the object does not matter to it)."""
    meta = _meta(obj)
    head = {"metadata": {"namespace": meta.get("namespace"), "name": meta.get("name")}}
    if kind == "Deployment":
        version = everything_version(obj)
        if version is None:
            return None
        pod = {"containers": [{"image": f"{EVERYTHING_IMAGE}:{version}"}]}
        return {**head, "spec": {"template": {"metadata": {"labels": _pod_labels(obj)}, "spec": pod}}}
    if kind == "Service":
        spec = _spec(obj)
        return {**head, "spec": {"selector": spec.get("selector"), "ports": spec.get("ports")}}
    return head


class StandIns:
    """The loopback servers and the mapping file that point the cluster's origins at them.

    Args:
        kubeconfig: the local cluster's kubeconfig (the watches read it).
        work_dir: where the mapping file (``probe-addresses.json``) and the servers' logs go.
        versions: the server-everything versions to run (each pinned in ``tools/mcp/install.sh``).
        on_change: called (from a watch thread) with a line per origin mapped, moved or removed.
    """

    def __init__(
        self,
        kubeconfig: Path,
        work_dir: Path,
        *,
        versions: Sequence[str] = SERVER_EVERYTHING_VERSIONS,
        on_change: Callable[[list[str]], None] | None = None,
    ) -> None:
        self.kubeconfig = kubeconfig
        self.work_dir = work_dir
        self.mapping_file = work_dir / "probe-addresses.json"
        self.versions = tuple(versions)
        self.on_change = on_change
        self.servers: dict[str, ServerProcess] = {}
        self.agent: ServerProcess | None = None
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._store: dict[str, dict[tuple[str, str], dict[str, Any]]] = {
            "Deployment": {},
            "Service": {},
            "Agent": {},
        }
        self._standins: dict[str, StandIn] = {}
        self._fixed: dict[str, StandIn] = {}
        self._notes: list[str] = []
        self._threads: list[threading.Thread] = []
        self._listed: dict[str, threading.Event] = {k: threading.Event() for k in self._store}
        self.writes = 0  # how many times the mapping file was written (for tests)

    # ------------------------------------------------------------------ lifecycle
    @property
    def setting(self) -> str:
        """The value of ``RECONCILER_PROBE_ADDRESSES`` that points at the mapping file."""
        return f"@{self.mapping_file}"

    def start(self, *, watch: bool = True, timeout: float = 20.0) -> None:
        """Start a server-everything per version and the A2A agent on loopback, write the mapping file
        and (``watch``) start following the cluster. Stops what it started when something fails.

        Raises:
            ComponentError: node or npm is missing, an install failed, or a server did not listen.
        """
        logs = self.work_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        write_addresses(self.mapping_file, {})
        try:
            for version in self.versions:
                self.servers[version] = start_server_everything(logs, version=version)
            self.agent = start_a2a_agent(logs)
        except BaseException:  # also Ctrl-C while npm installs: leave nothing running
            self.stop()
            raise
        if watch:
            for gvk in (_DEPLOYMENT, _SERVICE, _AGENT):
                t = threading.Thread(target=self._follow, args=(gvk,), daemon=True, name=f"standins-{gvk[2]}")
                self._threads.append(t)
                t.start()
            deadline = time.monotonic() + timeout
            for event in self._listed.values():  # the first mapping, before anyone probes
                event.wait(max(0.0, deadline - time.monotonic()))

    def terminate(self) -> None:
        """Ask every server to stop (SIGTERM to its process group) without waiting; :meth:`stop` then
        finds them gone. For a daemon that is shutting down: it probes nothing more."""
        self._stop.set()
        for server in [*self.servers.values(), *([self.agent] if self.agent else [])]:
            if server.pid > 0:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.killpg(server.pid, signal.SIGTERM)

    def stop(self) -> None:
        """Stop the watches and every server (all asked at once, then each waited for; SIGKILL after
        5 s); remove the mapping file. Safe to call twice."""
        self.terminate()
        for server in [*self.servers.values(), *([self.agent] if self.agent else [])]:
            try:
                server.stop()
            except Exception as exc:  # keep stopping the others
                log.warning("stopping %s: %s", server.name, exc)
        self.servers.clear()
        self.agent = None
        with self._lock:  # a watch event being handled now writes nothing after this (it sees the stop)
            self.mapping_file.unlink(missing_ok=True)

    # ------------------------------------------------------------------ what runs
    def server_origins(self) -> dict[str, str]:
        """npm version → loopback origin of its server-everything."""
        return {v: f"http://127.0.0.1:{s.port}" for v, s in self.servers.items()}

    def a2a_origin(self) -> str | None:
        """Loopback origin of the A2A echo agent (``None`` when not running)."""
        return self.agent.url if self.agent is not None else None

    def describe(self) -> list[str]:
        """One line per running server (for ``reconciler up``'s output)."""
        lines = [f"server-everything {v} (MCP, streamable HTTP) on {s.url}" for v, s in self.servers.items()]
        if self.agent is not None:
            lines.append(f"A2A echo agent (a2a-sdk) on {self.agent.url}")
        return lines

    def standins(self) -> list[StandIn]:
        """The origins mapped now."""
        with self._lock:
            return list(self._standins.values())

    def notes(self) -> list[str]:
        """server-everything Deployments that get no stand-in, and why."""
        with self._lock:
            return list(self._notes)

    def serving(self, origin: str) -> StandIn | None:
        """What serves the in-cluster ``origin`` now (``None``: nothing)."""
        with self._lock:
            return self._standins.get(origin)

    # ------------------------------------------------------------------ the mapping
    def update(
        self, kind: str, objects: Iterable[Obj], *, replace: bool = False, deleted: bool = False
    ) -> None:
        """Take live ``objects`` of ``kind`` (``Deployment``, ``Service``, ``Agent``): all of them
        (``replace``: a list), changed ones, or ``deleted`` ones; then rewrite the mapping file when the
        mapping changed."""
        with self._lock:
            store = self._store[kind]
            if replace:
                store.clear()
            for obj in objects:
                meta = _meta(obj)
                key = (str(meta.get("namespace") or ""), str(meta.get("name") or ""))
                slim = None if deleted else _slim(kind, obj)
                if slim is None:
                    store.pop(key, None)
                else:
                    store[key] = slim
            self._recompute()

    def add(self, standin: StandIn) -> None:
        """Map one more origin, whatever the cluster holds (a server started by someone else, such as
        reconciler's own MCP server in ``reconciler up``); the mapping file is rewritten at once."""
        with self._lock:
            self._fixed[standin.origin] = standin
            self._recompute()

    def _recompute(self) -> None:
        """Recompute the mapping from the store (holding the lock); write the file when it changed."""
        found, notes = compute_standins(
            self._store["Deployment"].values(),
            self._store["Service"].values(),
            self._store["Agent"].values(),
            self.server_origins(),
            self.a2a_origin(),
        )
        new = {s.origin: s for s in found}
        new.update(self._fixed)
        old = self._standins
        self._notes = notes
        if {k: v.target for k, v in new.items()} == {k: v.target for k, v in old.items()}:
            self._standins = new
            return
        if self._stop.is_set():
            return
        write_addresses(self.mapping_file, {k: v.target for k, v in new.items()})
        self.writes += 1
        self._standins = new
        lines = [f"{s.origin} → {s.server} ({s.owner})" for k, s in new.items() if old.get(k) != s]
        lines += [f"{k}: no stand-in any more" for k in old if k not in new]
        if self.on_change is not None and lines:
            try:
                self.on_change(lines)
            except Exception:  # a printer must not stop the watch
                log.exception("stand-in change callback failed")

    # ------------------------------------------------------------------ watches
    def _follow(self, gvk: tuple[str, str, str]) -> None:
        group, version, kind = gvk
        client = KubeClient(self.kubeconfig)
        rv = ""
        try:
            while not self._stop.is_set():
                try:
                    if not rv:
                        items, rv = client.list(group, version, kind)
                        self.update(kind, items, replace=True)
                        self._listed[kind].set()
                    for etype, obj in client.watch(
                        group, version, kind, resource_version=rv, timeout_seconds=WATCH_SECONDS
                    ):
                        if self._stop.is_set():
                            return
                        rv = str(_meta(obj).get("resourceVersion") or rv)
                        if etype in ("ADDED", "MODIFIED", "DELETED"):
                            self.update(kind, [obj], deleted=etype == "DELETED")
                except NotFoundError:  # the kind is not served (no CRD): nothing to map for it
                    self._listed[kind].set()
                    self._stop.wait(30.0)
                except KubeError as exc:
                    if exc.status == 410:  # too old: list again
                        rv = ""
                    else:
                        self._stop.wait(1.0)
                except Exception:
                    log.exception("stand-in watch of %s failed", kind)
                    rv = ""
                    self._stop.wait(1.0)
        finally:
            client.close()
