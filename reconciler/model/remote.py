"""Remote bases: the allow-list patterns of ``render.remoteBases.allow`` and the record of what a render
fetched (:class:`RemoteBase`, kept in the pass result so a pass can be reproduced).

A pattern is ``[SCHEME://]HOST[:PORT][/PATH]``:

* ``HOST`` is a host name or address; ``*`` matches any run of characters other than ``/`` and ``:``
  (``*.example.com``, or ``*`` for every host). Compared without regard to case.
* ``:PORT``, when given, must be the remote's port; without it any port matches.
* ``/PATH`` restricts the repository (or, for a file fetched over HTTP, the URL path): the remote's path
  must start with the pattern's segments, each compared as a glob where ``*`` stays within one segment
  (``github.com/acme/*`` allows every repository of ``acme``; ``github.com/acme/base`` only that one). A
  trailing ``.git`` is ignored on both sides.
* ``SCHEME://``, when given, must be the remote's scheme (``https``, ``http``, ``ssh`` (also for
  ``git@host:org/repo``), ``file``). ``file://`` remotes (repositories on the reconciler's own disk) are
  only matched by a pattern that names the ``file`` scheme, e.g. ``file:///srv/git/*``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cached_property

from pydantic import BaseModel, Field

_SCHEME_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9+.-]*)://(.*)$", re.DOTALL)
_SCP_RE = re.compile(r"^(?:[^@/]*@)?(\[[^\]]*\]|[^:/]+):(.*)$", re.DOTALL)


class RemoteBase(BaseModel):
    """A remote base (a Git repository) or remote file (fetched over HTTP) a render used, pinned to what
    was fetched: the commit for Git, the content's SHA-256 for a file."""

    url: str = Field(description="the entry as written in the kustomization")
    kustomization: str = Field(description="the kustomization file naming it")
    repo: str = Field(default="", description="the Git clone URL; '' for a file fetched over HTTP")
    ref: str = Field(default="", description="the ref asked for ('' for the remote's HEAD)")
    commit: str = Field(default="", description="the commit the ref resolved to")
    sha256: str = Field(default="", description="for a file fetched over HTTP: its content's SHA-256")

    def pinned(self) -> str:
        """``<url> @ <commit or sha256:…>``: one line for logs and the CLI."""
        return f"{self.url} @ {self.commit or 'sha256:' + self.sha256}"


@dataclass(frozen=True)
class RemoteTarget:
    """Where a remote lives, as the allow-list compares it."""

    scheme: str
    host: str
    port: str
    path: str

    def __str__(self) -> str:
        host = self.host + (f":{self.port}" if self.port else "")
        return f"{host}/{self.path}" if self.scheme != "file" else f"file:///{self.path}"


def _norm_path(path: str) -> str:
    path = "/".join(p for p in path.split("/") if p)
    return path.removesuffix(".git")


def target_of(url: str) -> RemoteTarget:
    """The scheme, host, port and path of a clone URL (``https://…``, ``ssh://…``, ``file://…``, SCP-style
    ``user@host:path``) or of a file URL."""
    m = _SCHEME_RE.match(url)
    if m is None:
        s = _SCP_RE.match(url)
        if s is None:
            return RemoteTarget("", "", "", _norm_path(url))
        return RemoteTarget("ssh", s.group(1).lower(), "", _norm_path(s.group(2)))
    scheme, rest = m.group(1).lower(), m.group(2)
    if scheme == "file":
        return RemoteTarget("file", "", "", _norm_path(rest))
    authority, _, path = rest.partition("/")
    authority = authority.rpartition("@")[2]
    path = path.split("?", 1)[0].split("#", 1)[0]
    host, port = authority, ""
    if authority.startswith("["):
        close = authority.find("]")
        host, tail = authority[: close + 1], authority[close + 1 :]
        port = tail[1:] if tail.startswith(":") else ""
    elif ":" in authority:
        host, _, port = authority.partition(":")
    return RemoteTarget(scheme, host.lower(), port, _norm_path(path))


def _glob(text: str, star: str) -> re.Pattern[str]:
    return re.compile("".join(star if c == "*" else re.escape(c) for c in text), re.IGNORECASE)


@dataclass(frozen=True)
class HostPattern:
    """One allow-list entry (see the module docstring)."""

    text: str

    @classmethod
    def parse(cls, text: str) -> HostPattern:
        """Check the syntax of a pattern.

        Raises:
            ValueError: an empty pattern, or one with spaces, a query, a fragment or user information.
        """
        pattern = cls(text)
        if not text or text != text.strip() or any(c.isspace() for c in text):
            raise ValueError(f"remote pattern {text!r} must be a non-empty word without spaces")
        if any(c in text for c in "?#@"):
            raise ValueError(f"remote pattern {text!r} must not hold '?', '#' or '@' (no query or user)")
        parts = pattern._parts
        if parts.scheme != "file" and not parts.host:
            raise ValueError(f"remote pattern {text!r} names no host")
        if parts.port and not (parts.port.isdigit() or parts.port == "*"):
            raise ValueError(f"remote pattern {text!r}: the port must be a number")
        return pattern

    @cached_property
    def _parts(self) -> RemoteTarget:
        m = _SCHEME_RE.match(self.text)
        scheme, rest = (m.group(1).lower(), m.group(2)) if m else ("", self.text)
        if scheme == "file":
            return RemoteTarget("file", "", "", _norm_path(rest))
        authority, _, path = rest.partition("/")
        host, _, port = authority.partition(":")
        return RemoteTarget(scheme, host, port, _norm_path(path))

    def matches(self, target: RemoteTarget) -> bool:
        """Whether the remote ``target`` is allowed by this pattern."""
        want = self._parts
        if want.scheme:
            if want.scheme != target.scheme:
                return False
        elif target.scheme == "file":
            return False
        if target.scheme != "file":
            if not _glob(want.host, "[^/:]*").fullmatch(target.host):
                return False
            if want.port and want.port != "*" and want.port != target.port:
                return False
        if not want.path:
            return True
        need = want.path.split("/")
        have = target.path.split("/") if target.path else []
        if len(have) < len(need):
            return False
        return all(_glob(p, "[^/]*").fullmatch(h) for p, h in zip(need, have, strict=False))


def allowed_by(patterns: list[str], url: str) -> str | None:
    """The first of ``patterns`` allowing the remote at ``url``, or ``None``."""
    target = target_of(url)
    for text in patterns:
        if HostPattern(text).matches(target):
            return text
    return None


__all__ = ["HostPattern", "RemoteBase", "RemoteTarget", "allowed_by", "target_of"]
