"""The one place that talks HTTP to a Kubernetes API server.

A thin layer over the ``kubernetes`` package's ``ApiClient`` (which handles kubeconfig authentication:
client certificates, tokens, exec plugins) that speaks raw JSON: discovery, get, list, server-side apply
(``application/apply-patch+yaml``, see https://kubernetes.io/docs/reference/using-api/server-side-apply/),
delete and watch. Every call is counted in :attr:`KubeClient.calls` so benchmarks and tests can assert how
many reads and writes a pass made.
"""

from __future__ import annotations

import contextvars
import json
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import urllib3
from kubernetes import client as k8s_client
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException

from reconciler import errors
from reconciler.cluster.retry import (
    DEFAULT_POLICY,
    IDEMPOTENT_METHODS,
    RetryPolicy,
    call_with_retry,
    retry_after_from_response,
    set_retry_after,
)
from reconciler.errors import KubeError, NotFoundError, ServerError, kube_error
from reconciler.model import ObjectRef

#: The ``reason`` of a :class:`ServerError` for an API server that could not be reached (status 0).
UNREACHABLE = "Unreachable"
WRITE_VERBS = frozenset({"apply", "create", "update", "patch", "delete"})
#: A check run before every request that is not a read (POST, PUT, PATCH, DELETE) made from the current
#: context (an asyncio task and the threads ``asyncio.to_thread`` starts from it inherit it). It raises
#: :class:`FencedError` when the caller may no longer write: a sharded daemon sets it per environment so
#: that a replica whose lease on the environment may have expired stops writing before another replica
#: takes the environment over (``reconciler/runtime/shards.py``).
WRITE_FENCE: contextvars.ContextVar[Callable[[], None] | None] = contextvars.ContextVar(
    "reconciler_write_fence", default=None
)
# urllib3 itself only re-opens connections that failed before the request was sent; every retry after an
# answer (429, 5xx, Retry-After) is :func:`reconciler.cluster.retry.call_with_retry`'s, counted in ``calls``.
_TRANSPORT_RETRIES = urllib3.Retry(
    total=3,
    connect=3,
    read=0,
    redirect=0,
    status=0,
    other=0,
    respect_retry_after_header=False,
    raise_on_status=False,
)


@dataclass(frozen=True)
class ResourceInfo:
    """What discovery says about one kind: its plural resource name and whether it is namespaced."""

    group: str
    version: str
    kind: str
    plural: str
    namespaced: bool

    def collection_path(self, namespace: str | None) -> str:
        """The URL path of the kind's collection, in ``namespace`` when namespaced and given."""
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            return f"{base}/namespaces/{quote(namespace, safe='')}/{self.plural}"
        return f"{base}/{self.plural}"

    def object_path(self, namespace: str | None, name: str) -> str:
        """The URL path of one object."""
        return f"{self.collection_path(namespace)}/{quote(name, safe='')}"


class KubeClient:
    """A Kubernetes API client for one kubeconfig context.

    Args:
        kubeconfig: path of a kubeconfig file; ``None`` uses ``$KUBECONFIG`` or ``~/.kube/config``,
            and in-cluster configuration when running in a pod.
        context: the kubeconfig context; ``None`` uses the current context.
        timeout: per-request timeout in seconds (watches use their own).
        retry: how :meth:`request` retries throttled (429) and server errors (5xx, unreachable), see
            :mod:`reconciler.cluster.retry`; ``None`` disables retries.
        config_data: a kubeconfig already parsed (e.g. read from a Secret), used instead of a file;
            ``context`` then names one of its contexts.

    Raises:
        KubeError: from the constructor when the kubeconfig cannot be loaded.
    """

    def __init__(
        self,
        kubeconfig: Path | None = None,
        context: str | None = None,
        timeout: float = 30.0,
        retry: RetryPolicy | None = DEFAULT_POLICY,
        *,
        config_data: dict[str, Any] | None = None,
    ):
        self._kubeconfig = kubeconfig
        self._context = context
        self._config_data = config_data
        self._config_stamp = _file_stamp(kubeconfig)
        cfg = self._load_config()
        self.host: str = cfg.host
        self._api = k8s_client.ApiClient(cfg)
        self._timeout = timeout
        self._resources: dict[tuple[str, str, str], ResourceInfo] = {}
        self._lock = threading.Lock()
        self._retry = retry
        self.calls: Counter[str] = Counter()

    @property
    def kubeconfig(self) -> Path | None:
        """The kubeconfig file this client was made from (``None``: the default file, or in-cluster)."""
        return self._kubeconfig

    @property
    def context(self) -> str | None:
        """The kubeconfig context asked for (``None``: the current one)."""
        return self._context

    @property
    def timeout(self) -> float:
        """The per-request timeout in seconds."""
        return self._timeout

    @property
    def retry(self) -> RetryPolicy | None:
        """The retry policy of :meth:`request`."""
        return self._retry

    def _load_config(self) -> k8s_client.Configuration:
        """The client configuration from the kubeconfig (or the pod's service account).

        Raises:
            KubeError: the kubeconfig cannot be loaded (reason ``ConfigError``).
        """
        cfg = k8s_client.Configuration()
        kubeconfig = self._kubeconfig
        try:
            if self._config_data is not None:
                k8s_config.load_kube_config_from_dict(  # type: ignore[no-untyped-call]
                    self._config_data, context=self._context, client_configuration=cfg
                )
            elif kubeconfig is None and Path("/var/run/secrets/kubernetes.io/serviceaccount/token").exists():
                k8s_config.load_incluster_config(client_configuration=cfg)  # type: ignore[no-untyped-call]
            else:
                k8s_config.load_kube_config(  # type: ignore[no-untyped-call]
                    config_file=str(kubeconfig) if kubeconfig else None,
                    context=self._context,
                    client_configuration=cfg,
                )
        except Exception as exc:  # the kubernetes package raises several unrelated types here
            local = errors.local_kubeconfig_hint()
            hint = "" if kubeconfig else f" (pass --kubeconfig; for the local cluster: {local})"
            raise KubeError(
                str(kubeconfig or "kubeconfig"), 0, "ConfigError", f"cannot load: {exc}{hint}"
            ) from None
        cfg.connection_pool_maxsize = 16
        return cfg

    def reload_if_changed(self) -> bool:
        """Load the kubeconfig file again when it changed since it was loaded (its size, modification time
        or inode): a cluster that came back with another address or new certificates is reached without
        restarting the process. Called after every failed connection; returns whether it reloaded.
        A kubeconfig that cannot be loaded (being rewritten) keeps the previous configuration."""
        stamp = _file_stamp(self._kubeconfig)
        if stamp is None or stamp == self._config_stamp:
            return False
        try:
            cfg = self._load_config()
        except KubeError:
            return False
        with self._lock:
            old, self._api = self._api, k8s_client.ApiClient(cfg)
            self.host = cfg.host
            self._config_stamp = stamp
            self._resources.clear()
        old.close()  # type: ignore[no-untyped-call]
        return True

    def close(self) -> None:
        """Release the connection pool."""
        self._api.close()  # type: ignore[no-untyped-call]

    # -- raw HTTP -----------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        verb: str | None = None,
        obj: str | None = None,
        timeout: float | None = None,
    ) -> Any:
        """Make one API call and return the decoded JSON body (``None`` for an empty body).

        Args:
            method: HTTP method.
            path: URL path (``/api/v1/namespaces``).
            body: a JSON-serialisable value or ``bytes``/``str`` sent as is.
            query: query parameters.
            content_type: the request body's media type.
            verb: the name counted in :attr:`calls` (defaults to the lower-cased method).
            obj: how errors name the object (``Kind/namespace/name``); defaults to the path.
            timeout: seconds; defaults to the client's timeout.

        Retries throttled and server errors with backoff (the client's ``retry`` policy; server errors
        only for idempotent methods); every attempt is counted in :attr:`calls`, every retry also as
        ``"retry"``.

        Raises:
            KubeError: a typed subclass by HTTP status (``ConflictError``, ``InvalidError`` ...); after
                retries, the last attempt's error. :class:`FencedError` when :data:`WRITE_FENCE` refuses a
                write (nothing is sent).
        """

        fence = WRITE_FENCE.get() if method.upper() not in ("GET", "HEAD") else None

        def once() -> Any:
            if fence is not None:  # again before each retry: the lease may run out meanwhile
                fence()
            return self._request_once(method, path, body, query, content_type, verb, obj, timeout)

        if self._retry is None:
            return once()
        return call_with_retry(
            once,
            policy=self._retry,
            idempotent=method.upper() in IDEMPOTENT_METHODS,
            on_retry=lambda _exc, _attempt, _wait: self._count("retry"),
        )

    def _count(self, verb: str) -> None:
        with self._lock:
            self.calls[verb] += 1

    def _request_once(
        self,
        method: str,
        path: str,
        body: Any,
        query: dict[str, str] | None,
        content_type: str,
        verb: str | None,
        obj: str | None,
        timeout: float | None,
    ) -> Any:
        self._count(verb or method.lower())
        url = path + ("?" + urlencode(query) if query else "")
        headers = {"Accept": "application/json", "Content-Type": content_type}
        try:
            try:
                resp = self._send(method, url, headers, body, timeout or self._timeout)
                data = resp.read()
            except (urllib3.exceptions.HTTPError, OSError):
                if not self.reload_if_changed():
                    raise
                # the kubeconfig changed (another address, new certificates): once more with it
                resp = self._send(method, url, headers, body, timeout or self._timeout)
                data = resp.read()
        except ApiException as exc:
            raise self._error(obj or path, exc.status, exc.reason, exc.body) from None
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ServerError(obj or path, 0, UNREACHABLE, f"API server {self.host}: {exc}") from None
        if resp.status >= 300:
            err = self._error(obj or path, resp.status, resp.reason, data)
            raise set_retry_after(err, retry_after_from_response(resp.headers, _decoded(data)))
        if not data:
            return None
        return json.loads(data)

    def _send(self, method: str, url: str, headers: dict[str, str], body: Any, timeout: Any) -> Any:
        """Send one request with the kubeconfig's authentication; returns the urllib3 response."""
        _, full_url, all_headers, _, _ = self._api.param_serialize(
            method, url, header_params=dict(headers), auth_settings=["BearerToken"]
        )
        if isinstance(body, str):
            body = body.encode()
        return self._api.rest_client.pool_manager.request(
            method,
            full_url,
            body=body if isinstance(body, bytes) or body is None else json.dumps(body).encode(),
            headers=all_headers,
            retries=_TRANSPORT_RETRIES,
            timeout=urllib3.Timeout(connect=timeout[0], read=timeout[1])
            if isinstance(timeout, tuple)
            else urllib3.Timeout(total=timeout),
            preload_content=False,
        )

    @staticmethod
    def _error(obj: str, status_code: Any, http_reason: Any, body: Any) -> KubeError:
        reason, message = "", str(http_reason or "")
        try:
            status = json.loads(body or b"{}")
            reason = str(status.get("reason", ""))
            message = str(status.get("message", message))
        except (ValueError, AttributeError):
            pass
        return kube_error(obj, int(status_code or 0), reason, message)

    # -- discovery ----------------------------------------------------------------------------------

    def resource(self, group: str, version: str, kind: str) -> ResourceInfo:
        """Discovery for one kind, cached; refreshed once when the kind is unknown (new CRDs).

        Raises:
            NotFoundError: when the API server does not serve the kind.
        """
        key = (group, version, kind)
        with self._lock:
            info = self._resources.get(key)
        if info is not None:
            return info
        path = f"/api/{version}" if not group else f"/apis/{group}/{version}"
        try:
            listing = self.request("GET", path, verb="discovery")
        except NotFoundError:
            listing = {"resources": []}
        found: ResourceInfo | None = None
        with self._lock:
            for r in listing.get("resources", []):
                if "/" in r["name"]:
                    continue
                ri = ResourceInfo(group, version, r["kind"], r["name"], bool(r["namespaced"]))
                self._resources[(group, version, r["kind"])] = ri
                if r["kind"] == kind:
                    found = ri
        if found is None:
            api_version = f"{group}/{version}" if group else version
            raise NotFoundError(
                f"{kind} ({api_version})",
                404,
                "NoKindMatch",
                f"the server does not serve {kind} in {api_version}",
            )
        return found

    def equivalent_resources(self) -> list[tuple[ResourceInfo, ...]]:
        """The resources the API server serves as one stored resource under several groups or versions.

        Read from the per-group-version discovery documents (``/api/v1``, ``/apis/<group>/<version>``):
        resources with the same ``storageVersionHash`` share storage, so one object is visible through
        each of them with the same ``metadata.uid`` (e.g. ``events`` in core ``v1`` and in
        ``events.k8s.io/v1``). Subresources are left out. Aggregated discovery
        (``apidiscovery.k8s.io/v2``) does not carry the hash, hence one call per group version.

        Returns:
            One tuple per stored resource that is served more than once, sorted by group and version.

        Raises:
            KubeError: a discovery document could not be read.
        """
        paths = [
            f"/api/{v}" for v in (self.request("GET", "/api", verb="discovery") or {}).get("versions", [])
        ]
        for group in (self.request("GET", "/apis", verb="discovery") or {}).get("groups", []):
            paths.extend(f"/apis/{v['groupVersion']}" for v in group.get("versions", []))
        by_hash: dict[str, list[ResourceInfo]] = {}
        for path in paths:
            listing = self.request("GET", path, verb="discovery") or {}
            group, _, version = str(listing.get("groupVersion", "")).rpartition("/")
            for r in listing.get("resources", []):
                digest = r.get("storageVersionHash")
                if "/" in r["name"] or not digest:
                    continue
                info = ResourceInfo(group, version, r["kind"], r["name"], bool(r["namespaced"]))
                by_hash.setdefault(str(digest), []).append(info)
        return sorted(
            (
                tuple(sorted(found, key=lambda i: (i.group, i.version)))
                for found in by_hash.values()
                if len(found) > 1
            ),
            key=lambda t: (t[0].group, t[0].plural),
        )

    def forget_discovery(self) -> None:
        """Drop cached discovery (after CRDs were applied or deleted)."""
        with self._lock:
            self._resources.clear()

    # -- objects ------------------------------------------------------------------------------------

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        """The live object, or ``None`` when it does not exist."""
        info = self.resource(ref.group, ref.version, ref.kind)
        try:
            out: dict[str, Any] = self.request(
                "GET", info.object_path(ref.namespace, ref.name), verb="get", obj=str(ref)
            )
        except NotFoundError:
            return None
        return out

    def list(
        self, group: str, version: str, kind: str, *, namespace: str | None = None, label_selector: str = ""
    ) -> tuple[list[dict[str, Any]], str]:
        """All objects of a kind (in ``namespace`` or cluster-wide) and the list's resourceVersion."""
        info = self.resource(group, version, kind)
        query = {"labelSelector": label_selector} if label_selector else None
        out = self.request("GET", info.collection_path(namespace), query=query, verb="list", obj=kind)
        items: list[dict[str, Any]] = out.get("items", [])
        api_version = f"{group}/{version}" if group else version
        for item in items:  # list items come without apiVersion/kind
            item.setdefault("apiVersion", api_version)
            item.setdefault("kind", kind)
        return items, str(out.get("metadata", {}).get("resourceVersion", ""))

    def apply(
        self,
        obj: dict[str, Any],
        ref: ObjectRef,
        *,
        field_manager: str,
        force: bool = True,
        dry_run: bool = False,
    ) -> dict[str, Any]:
        """Server-side apply one object and return the object the server stored (or would store).

        Raises:
            ConflictError: another field manager owns a field and ``force`` is false.
            InvalidError: the object failed validation.
        """
        info = self.resource(ref.group, ref.version, ref.kind)
        query = {"fieldManager": field_manager, "force": "true" if force else "false"}
        if dry_run:
            query["dryRun"] = "All"
        out: dict[str, Any] = self.request(
            "PATCH",
            info.object_path(ref.namespace if info.namespaced else None, ref.name),
            body=json.dumps(obj),
            query=query,
            content_type="application/apply-patch+yaml",
            verb="dry-run" if dry_run else "apply",
            obj=str(ref),
        )
        return out

    def create(self, obj: dict[str, Any], ref: ObjectRef) -> dict[str, Any]:
        """Create one object (POST).

        Raises:
            ConflictError: when it already exists.
        """
        info = self.resource(ref.group, ref.version, ref.kind)
        out: dict[str, Any] = self.request(
            "POST",
            info.collection_path(ref.namespace if info.namespaced else None),
            body=obj,
            verb="create",
            obj=str(ref),
        )
        return out

    def replace(self, obj: dict[str, Any], ref: ObjectRef) -> dict[str, Any]:
        """Replace one object (PUT); ``metadata.resourceVersion`` in ``obj`` makes it a compare-and-swap.

        Raises:
            ConflictError: when the object changed since that resourceVersion.
        """
        info = self.resource(ref.group, ref.version, ref.kind)
        out: dict[str, Any] = self.request(
            "PUT",
            info.object_path(ref.namespace if info.namespaced else None, ref.name),
            body=obj,
            verb="update",
            obj=str(ref),
        )
        return out

    def delete(self, ref: ObjectRef, *, propagation: str = "Background") -> bool:
        """Delete one object; ``False`` when it was already gone."""
        info = self.resource(ref.group, ref.version, ref.kind)
        try:
            self.request(
                "DELETE",
                info.object_path(ref.namespace if info.namespaced else None, ref.name),
                body={"kind": "DeleteOptions", "apiVersion": "v1", "propagationPolicy": propagation},
                verb="delete",
                obj=str(ref),
            )
        except NotFoundError:
            return False
        return True

    def watch(
        self,
        group: str,
        version: str,
        kind: str,
        *,
        resource_version: str,
        namespace: str | None = None,
        timeout_seconds: int = 300,
        label_selector: str = "",
    ) -> Iterator[tuple[str, dict[str, Any]]]:
        """Yield ``(type, object)`` watch events (ADDED, MODIFIED, DELETED, BOOKMARK) until the server
        ends the watch (after ``timeout_seconds``); ``label_selector`` limits it to matching objects.

        Raises:
            KubeError: when the watch cannot start; ``ERROR`` events with 410 raise ``KubeError`` with
                status 410 (the caller must re-list).
        """
        info = self.resource(group, version, kind)
        query = {
            "watch": "true",
            "resourceVersion": resource_version,
            "allowWatchBookmarks": "true",
            "timeoutSeconds": str(timeout_seconds),
        }
        if label_selector:
            query["labelSelector"] = label_selector
        self._count("watch")
        url = info.collection_path(namespace) + "?" + urlencode(query)
        try:
            resp = self._send("GET", url, {"Accept": "application/json"}, None, (10, timeout_seconds + 30))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            self.reload_if_changed()
            raise ServerError(kind, 0, UNREACHABLE, str(exc)) from None
        if resp.status >= 300:
            raise self._error(kind, resp.status, resp.reason, resp.read())
        buf = b""
        api_version = f"{group}/{version}" if group else version
        try:
            for chunk in resp.stream(65536, decode_content=True):
                buf += chunk
                if b"\n" not in chunk:
                    continue
                *lines, buf = buf.split(b"\n")  # one split per chunk: events are one JSON line each
                for line in lines:
                    if not line.strip():
                        continue
                    event = json.loads(line)
                    etype = event.get("type", "")
                    eobj = event.get("object") or {}
                    if etype == "ERROR":
                        raise kube_error(
                            kind,
                            int(eobj.get("code", 500)),
                            str(eobj.get("reason", "")),
                            str(eobj.get("message", "")),
                        )
                    eobj.setdefault("apiVersion", api_version)
                    eobj.setdefault("kind", kind)
                    yield etype, eobj
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ServerError(kind, 0, "WatchBroken", str(exc)) from None
        finally:
            resp.release_conn()


def _file_stamp(path: Path | None) -> tuple[int, int, int] | None:
    """``(inode, size, mtime in ns)`` of ``path``; ``None`` when there is no such file (or no path)."""
    if path is None:
        return None
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _decoded(data: bytes) -> Any:
    """``data`` as JSON, or ``None`` when it is not JSON."""
    try:
        return json.loads(data or b"null")
    except ValueError:
        return None
