"""Which in-cluster MCP endpoints the health stage may probe, and how this machine reaches them.

Pods on the local cluster's kwok nodes run no processes, so an in-cluster URL such as
``http://docs-mcp.tools.svc.cluster.local:8080/mcp`` leads nowhere from the daemon. The setting
``RECONCILER_PROBE_ADDRESSES`` (a JSON object) maps in-cluster origins to loopback origins where the real
server runs, e.g. ``{"http://docs-mcp.tools.svc.cluster.local:8080": "http://127.0.0.1:41234"}``. Only
mapped URLs are probed; every other MCP server or agent keeps the verdict its conditions give
(``Unverified`` when no controller wrote them). Targets must be loopback addresses: the setting is for the
local cluster. A host written ``name.ns.svc`` matches an entry written ``name.ns.svc.cluster.local`` and
the other way round.

The value is the JSON object itself, or ``@/path/to/file.json``: a file holding the same object
(:class:`AddressFile`), read again whenever its modification time (or size, or inode) changes — one
``stat`` per use, no polling thread — so whoever runs the loopback servers can move an origin to another
server while the daemon runs (``reconciler up`` does: :mod:`reconciler.devcluster.standins`).
In-cluster (``deploy/``) no mapping is needed: ``RECONCILER_PROBE_DIRECT=true`` probes every URL as it
is (:mod:`reconciler.probe.service`).
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import threading
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator

from reconciler.errors import ConfigError

#: The environment variable holding the mapping (a JSON object, in-cluster origin → loopback origin), or
#: ``@`` and the path of a file holding it.
ENV_VAR = "RECONCILER_PROBE_ADDRESSES"

log = logging.getLogger("reconciler.probe")


def _origin(url: str) -> str:
    """``scheme://host:port`` of ``url``, with a Service host written short (``name.ns.svc``) in its full
    form (``name.ns.svc.cluster.local``), so one mapping entry covers both spellings."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"not an http(s) URL: {url!r}")
    netloc = parts.netloc.lower()
    host = parts.hostname.lower()
    if host.endswith(".svc") and host.count(".") == 2:
        netloc = netloc.replace(host, host + ".cluster.local", 1)
    return f"{parts.scheme}://{netloc}"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ProbeAddresses(BaseModel):
    """In-cluster origin (``scheme://host:port``) → loopback origin (``http://127.0.0.1:port``)."""

    model_config = ConfigDict(frozen=True)

    addresses: dict[str, str]

    @field_validator("addresses")
    @classmethod
    def _check(cls, value: dict[str, str]) -> dict[str, str]:
        out: dict[str, str] = {}
        for source, target in value.items():
            host = urlsplit(target).hostname or ""
            if not _is_loopback(host):
                raise ValueError(f"{ENV_VAR}: target of {source!r} is not a loopback address: {target!r}")
            out[_origin(source)] = _origin(target)
        return out

    def resolve(self, url: str) -> str | None:
        """``url`` with its origin replaced by the mapped loopback origin (path and query kept), or
        ``None`` when its origin is not mapped or ``url`` is not an http(s) URL."""
        try:
            origin = _origin(url)
        except ValueError:
            return None
        target = self.addresses.get(origin)
        if target is None:
            return None
        rest = urlsplit(url)
        tail = rest.path + (f"?{rest.query}" if rest.query else "")
        return target + tail

    @classmethod
    def parse(cls, text: str, where: str = ENV_VAR) -> ProbeAddresses:
        """The mapping in ``text`` (a JSON object); ``where`` names its origin in errors.

        Raises:
            ConfigError: ``text`` is not a JSON object of strings, or a target is not loopback.
        """
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise ConfigError(f"{where} is not JSON: {e}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a JSON object (in-cluster origin → loopback origin)")
        try:
            return cls(addresses=data)
        except ValidationError as e:
            first = e.errors()[0]
            msg = str(first["msg"]).removeprefix("Value error, ").replace(f"{ENV_VAR}: ", "")
            raise ConfigError(f"{where}: {msg}") from None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProbeAddresses | None:
        """The mapping in ``$RECONCILER_PROBE_ADDRESSES`` now (for ``@file``, the file's current
        content); ``None`` when it is unset or empty.

        Raises:
            ConfigError: the value (or the file) is not a JSON object of strings, a target is not
                loopback, or the file cannot be read.
        """
        source = addresses_from_env(environ)
        return source.current() if isinstance(source, AddressFile) else source


class AddressFile:
    """``RECONCILER_PROBE_ADDRESSES=@path``: the mapping in a JSON file, read again when the file changes.

    :meth:`current` costs one ``stat``; the file is parsed again only when its (inode, size, mtime)
    changed, so a writer that replaces the file (write a temporary file, then rename) is seen at the next
    use. The first read must succeed (:meth:`load`); a later version that cannot be read or parsed is
    logged (once per version, naming the file) and the last good mapping stays in use, so a half-edited
    file never fails a pass. A file that disappears later maps nothing.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._stamp: tuple[int, int, int] | None = None
        self._bad: tuple[int, int, int] | None = None
        self._current = ProbeAddresses(addresses={})
        self.reloads = 0  # how many times the file was parsed (for tests)

    @property
    def where(self) -> str:
        """How errors name the setting: ``RECONCILER_PROBE_ADDRESSES file /path``."""
        return f"{ENV_VAR} file {self.path}"

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def _read(self) -> ProbeAddresses:
        try:
            text = self.path.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"{self.where} cannot be read: {e.strerror or e}") from None
        return ProbeAddresses.parse(text, self.where) if text.strip() else ProbeAddresses(addresses={})

    def load(self) -> AddressFile:
        """Read the file now (the first read); returns ``self``.

        Raises:
            ConfigError: the file is missing or unreadable, or not a valid mapping (the message names it).
        """
        with self._lock:
            stamp = self._stat()
            if stamp is None:
                raise ConfigError(f"{self.where} does not exist")
            self._current, self._stamp, self._bad = self._read(), stamp, None
            self.reloads += 1
            return self

    def current(self) -> ProbeAddresses:
        """The mapping as the file holds it now (see the class docstring)."""
        stamp = self._stat()
        with self._lock:
            if stamp == self._stamp or (stamp is not None and stamp == self._bad):
                return self._current
            if stamp is None:
                if self._stamp is not None:
                    log.warning("%s was removed: no URL is mapped until it is back", self.where)
                self._current, self._stamp = ProbeAddresses(addresses={}), None
                return self._current
            try:
                self._current = self._read()
            except ConfigError as exc:
                self._bad = stamp
                log.warning("%s; keeping the last good mapping", exc)
                return self._current
            self._stamp, self._bad = stamp, None
            self.reloads += 1
            return self._current

    def resolve(self, url: str) -> str | None:
        """:meth:`ProbeAddresses.resolve` on the current mapping."""
        return self.current().resolve(url)


def addresses_from_env(environ: Mapping[str, str] | None = None) -> ProbeAddresses | AddressFile | None:
    """The setting ``$RECONCILER_PROBE_ADDRESSES``: an inline mapping, a file (``@path``, read once now
    and again whenever it changes), or ``None`` when unset or empty.

    Raises:
        ConfigError: the inline value or the file is not a valid mapping, or the file cannot be read;
            the message names the setting and, for ``@path``, the file.
    """
    raw = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
    if not raw:
        return None
    if raw.startswith("@"):
        path = raw[1:].strip()
        if not path:
            raise ConfigError(f"{ENV_VAR}=@: expected @/path/to/file.json")
        return AddressFile(Path(path).expanduser()).load()
    return ProbeAddresses.parse(raw)


def write_addresses(path: Path, addresses: Mapping[str, str]) -> None:
    """Write ``addresses`` to ``path`` for :class:`AddressFile` readers: to a temporary file first, then
    renamed over ``path``, so a reader never sees half a file and always sees a new inode.

    Raises:
        ConfigError: a target is not loopback or an origin is not an http(s) URL (nothing is written).
    """
    ProbeAddresses.parse(json.dumps(dict(addresses)), f"{ENV_VAR} file {path}")  # validate first
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    tmp.write_text(json.dumps(dict(sorted(addresses.items())), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
