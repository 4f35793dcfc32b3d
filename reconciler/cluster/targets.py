"""Target clusters: which cluster each environment is reconciled into, and one API client per cluster.

An environment names its cluster in ``envs/<env>.yaml`` (:class:`reconciler.model.Environment`):

* ``context: <name>``: a context of the daemon's kubeconfig (``--kubeconfig``);
* ``cluster: {secretRef: {name, namespace?, key?}}``: a Secret in the daemon's own cluster whose key
  (default ``value``) holds a kubeconfig of the target cluster, its current context used (the convention
  of Flux's ``spec.kubeConfig.secretRef``);
* neither: the daemon's own cluster (its ``--context``, else the kubeconfig's current context, else the
  pod's in-cluster configuration).

:class:`ClusterTargets` hands out one :class:`~reconciler.cluster.client.KubeClient` per target cluster,
cached per kubeconfig context and per Secret content (a Secret whose kubeconfig changed gets a new client).
Everything cluster-specific (inventory, drift watches, health) follows the client it is given, so one
client per cluster means one inventory, watch set and health view per cluster.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import config as k8s_config

from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import NAMESPACE
from reconciler.cluster.ownership import InventoryWatch
from reconciler.errors import ConfigError, KubeError
from reconciler.model import Environment, ObjectRef

#: Seconds a kubeconfig read from a Secret is used before the Secret is read again (a rotated credential
#: is picked up within this time).
SECRET_TTL = 10.0
#: The service account token that marks a process running in a pod (in-cluster configuration).
_IN_CLUSTER_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


@dataclass(frozen=True)
class Target:
    """One target cluster, as environments name it.

    Attributes:
        source: ``default`` (the daemon's own cluster), ``context`` (a context of the daemon's kubeconfig)
            or ``secret`` (a kubeconfig in a Secret of the daemon's own cluster).
        name: the context's name; for a Secret ``<namespace>/<name>``; for the default, the daemon's context
            name when known, else ``in-cluster`` or ``default``.
        key: the Secret's data key (``secret`` only).
    """

    source: str
    name: str
    key: str = ""

    @property
    def label(self) -> str:
        """How status and errors name the cluster: the context name, ``secret:<ns>/<name>``,
        ``in-cluster`` or ``default``."""
        return f"secret:{self.name}" if self.source == "secret" else self.name

    @property
    def id(self) -> str:
        """A stable identity: equal for environments that share the cluster."""
        return f"{self.source}:{self.name}:{self.key}"


class ClusterTargets:
    """The API client of each environment's target cluster.

    Args:
        default: the client of the daemon's own cluster (owned by the caller; never closed here). Clients
            of other contexts use its kubeconfig file, timeout and retry policy.
        secret_namespace: the namespace of a ``cluster.secretRef`` that names none.

    Thread-safe: passes, drift watches and the status page ask for clients from several threads.
    """

    def __init__(self, default: KubeClient, *, secret_namespace: str = NAMESPACE) -> None:
        self.default = default
        self.secret_namespace = secret_namespace
        self._lock = threading.Lock()
        self._contexts: dict[str, KubeClient] = {}
        # Secret target id -> (sha256 of the kubeconfig, parsed kubeconfig, client, monotonic time read)
        self._secrets: dict[str, tuple[str, dict[str, Any], KubeClient, float]] = {}
        self._retired: list[KubeClient] = []  # clients of replaced Secret contents, closed by close()
        #: keep each cluster's inventories by a watch (:meth:`inventories`); a daemon sets it
        self.watch_inventories = False
        self._inventory_watches: dict[str, InventoryWatch] = {}
        self._default_target = self._resolve_default()

    # -- naming -------------------------------------------------------------------------------------------

    def _resolve_default(self) -> Target:
        if self.default.context:
            return Target("default", self.default.context)
        kubeconfig = self.default.kubeconfig
        if kubeconfig is None and _IN_CLUSTER_TOKEN.exists():
            return Target("default", "in-cluster")
        return Target("default", _current_context(kubeconfig))

    @property
    def default_target(self) -> Target:
        """The daemon's own cluster."""
        return self._default_target

    def target_of(self, env: Environment | None) -> Target:
        """The cluster ``env`` names (the default for ``None``, an environment whose file is invalid).

        A context equal to the daemon's own context is the default target (one client, one watch set).
        """
        if env is None:
            return self._default_target
        if env.cluster is not None and env.cluster.secret_ref is not None:
            ref = env.cluster.secret_ref
            return Target("secret", f"{ref.namespace or self.secret_namespace}/{ref.name}", ref.key)
        if env.context and env.context != self._default_target.name:
            return Target("context", env.context)
        return self._default_target

    def label(self, env: Environment | None) -> str:
        """:attr:`Target.label` of ``env``'s cluster."""
        return self.target_of(env).label

    # -- clients ------------------------------------------------------------------------------------------

    def client_for(self, env: Environment | None) -> KubeClient:
        """The (cached) client of ``env``'s target cluster; see :meth:`client_of`."""
        return self.client_of(self.target_of(env), env.name if env is not None else "")

    def client_of(self, target: Target, env_name: str = "") -> KubeClient:
        """The (cached) client of ``target``.

        Raises:
            ConfigError: the context is not in the daemon's kubeconfig, or the Secret holds no usable
                kubeconfig (names the environment, the cluster and what is wrong).
            KubeError: the Secret could not be read from the daemon's own cluster.
        """
        if target.source == "default":
            return self.default
        if target.source == "context":
            with self._lock:
                client = self._contexts.get(target.name)
                if client is None:
                    client = self._context_client(target, env_name)
                    self._contexts[target.name] = client
                return client
        return self._secret_client(target, env_name)

    def open(self, target: Target, env_name: str = "") -> KubeClient:
        """A new client of ``target`` for the caller alone (a long-running watch); the caller closes it.

        Raises:
            ConfigError, KubeError: as :meth:`client_of`.
        """
        if target.source == "default":
            d = self.default
            return KubeClient(d.kubeconfig, d.context, d.timeout, d.retry)
        if target.source == "context":
            return self._context_client(target, env_name)
        self._secret_client(target, env_name)  # reads (or re-reads) the Secret
        with self._lock:
            _, data, client, _ = self._secrets[target.id]
        return KubeClient(None, None, client.timeout, client.retry, config_data=data)

    def opened(self) -> dict[str, KubeClient]:
        """The clients made so far by :attr:`Target.label`, the default's included."""
        with self._lock:
            out = {self._default_target.label: self.default}
            out.update(self._contexts)
            out.update({f"secret:{i.split(':')[1]}": v[2] for i, v in self._secrets.items()})
        return out

    def inventories(self, target: Target) -> list[dict[str, Any]] | None:
        """``target``'s stored inventory ConfigMaps as its :class:`InventoryWatch` holds them (started on
        the first call), or ``None`` (list them instead) unless :attr:`watch_inventories` is set and the
        watch is listed and running."""
        if not self.watch_inventories:
            return None
        with self._lock:
            watch = self._inventory_watches.get(target.id)
            if watch is None:
                watch = InventoryWatch(lambda: self.open(target), name=target.label).start()
                self._inventory_watches[target.id] = watch
        return watch.items()

    def inventory_written(self, target: Target) -> Callable[[dict[str, Any], bool], None] | None:
        """What an :class:`~reconciler.cluster.inventory.InventoryStore` of ``target`` tells of each
        inventory it stores or deletes (:meth:`InventoryWatch.saw` of the cluster's watch), or ``None``
        when no watch runs."""
        with self._lock:
            watch = self._inventory_watches.get(target.id)
        return watch.saw if watch is not None else None

    def close(self) -> None:
        """Close every client this registry made (not the default) and stop the inventory watches."""
        with self._lock:
            watches = list(self._inventory_watches.values())
            self._inventory_watches.clear()
        for w in watches:
            w.close()
        with self._lock:
            clients = [*self._contexts.values(), *(v[2] for v in self._secrets.values()), *self._retired]
            self._contexts.clear()
            self._secrets.clear()
            self._retired.clear()
        for c in clients:
            c.close()

    def _where(self, env_name: str) -> str:
        return f"environment {env_name}: " if env_name else ""

    def _context_client(self, target: Target, env_name: str) -> KubeClient:
        kubeconfig = self.default.kubeconfig
        shown = str(kubeconfig) if kubeconfig else "the default kubeconfig"
        try:
            contexts, _ = k8s_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
                config_file=str(kubeconfig) if kubeconfig else None
            )
        except Exception as exc:
            raise ConfigError(
                f"{self._where(env_name)}context {target.name!r}: {shown} cannot be read: {exc}"
            ) from None
        names = sorted(str(c.get("name")) for c in contexts or [])
        if target.name not in names:
            raise ConfigError(
                f"{self._where(env_name)}context {target.name!r} is not in {shown} "
                f"(contexts: {', '.join(names) or 'none'})"
            )
        try:
            return KubeClient(kubeconfig, target.name, self.default.timeout, self.default.retry)
        except KubeError as exc:
            raise ConfigError(f"{self._where(env_name)}context {target.name!r}: {exc}") from None

    def _secret_client(self, target: Target, env_name: str) -> KubeClient:
        now = time.monotonic()
        with self._lock:
            cached = self._secrets.get(target.id)
        if cached is not None and now - cached[3] < SECRET_TTL:
            return cached[2]
        namespace, name = target.name.split("/", 1)
        where = f"{self._where(env_name)}cluster.secretRef {namespace}/{name}"
        try:
            secret = self.default.get(ObjectRef(kind="Secret", namespace=namespace, name=name))
        except KubeError as exc:
            if cached is not None:  # the daemon's own cluster is unreachable: keep the last kubeconfig
                return cached[2]
            raise KubeError(f"Secret/{namespace}/{name}", exc.status, exc.reason, f"{where}: {exc}") from None
        if secret is None:
            raise ConfigError(f"{where}: the Secret does not exist")
        raw = (secret.get("data") or {}).get(target.key)
        if raw is None:
            keys = ", ".join(sorted(secret.get("data") or {})) or "none"
            raise ConfigError(f"{where}: the Secret has no key {target.key!r} (keys: {keys})")
        try:
            text = base64.b64decode(raw, validate=True)
            data = yaml.safe_load(text)
        except (binascii.Error, ValueError, yaml.YAMLError) as exc:
            raise ConfigError(f"{where}: key {target.key!r} does not hold a kubeconfig: {exc}") from None
        if not isinstance(data, dict) or not data.get("clusters"):
            raise ConfigError(f"{where}: key {target.key!r} does not hold a kubeconfig (no clusters)")
        digest = hashlib.sha256(text).hexdigest()
        if cached is not None and cached[0] == digest:
            with self._lock:
                self._secrets[target.id] = (digest, cached[1], cached[2], now)
            return cached[2]
        try:
            client = KubeClient(None, None, self.default.timeout, self.default.retry, config_data=data)
        except KubeError as exc:
            raise ConfigError(f"{where}: the kubeconfig cannot be used: {exc}") from None
        with self._lock:
            old = self._secrets.get(target.id)
            self._secrets[target.id] = (digest, data, client, now)
            if old is not None:  # a pass may still use it: closed with the registry
                self._retired.append(old[2])
        return client


#: (kubeconfig path, its (inode, size, mtime ns)) -> its current context's name: parsed once per content
#: (``status`` and the MCP server's ``listEnvironments`` make a ClusterTargets per answer).
_CURRENT_CONTEXTS: dict[tuple[str, tuple[int, int, int] | None], str] = {}


def _current_context(kubeconfig: Path | None) -> str:
    """The name of ``kubeconfig``'s (default: ``$KUBECONFIG`` or ``~/.kube/config``) current context, or
    ``default`` when there is no such file or it names no current context."""
    import os

    path = str(kubeconfig) if kubeconfig else (os.environ.get("KUBECONFIG") or "")
    try:
        st = os.stat(path) if path and os.pathsep not in path else None
    except OSError:
        st = None
    key = (path, (st.st_ino, st.st_size, st.st_mtime_ns) if st else None)
    if st is not None and key in _CURRENT_CONTEXTS:
        return _CURRENT_CONTEXTS[key]
    try:
        _, active = k8s_config.list_kube_config_contexts(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig) if kubeconfig else None
        )
    except Exception:  # no kubeconfig file, or one without a current context
        return "default"
    name = str((active or {}).get("name") or "default")
    if st is not None:
        _CURRENT_CONTEXTS[key] = name
    return name
