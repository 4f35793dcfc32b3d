"""kustomize's remote-target parsing: which ``resources``/``components`` entries are Git repositories, and
how they split into a clone URL, a path inside the repository and query parameters.

A port of kustomize api v0.21.1 (kustomize v5.8.1) ``api/internal/git/repospec.go``
(``NewRepoSpecFromURL``, ``parseQuery``, ``extractHost``, ``parsePathParts``) with its error texts, and of
``api/internal/loader/fileloader.go`` ``IsRemoteFile`` (an ``http``/``https`` URL names a file fetched over
HTTP). Go library behaviour the parser relies on is reproduced too: ``net/url.ParseQuery`` (any malformed
pair makes the whole query fall back to the defaults), ``strconv.Atoi``, ``strconv.ParseBool`` and
``time.ParseDuration`` for the ``timeout`` parameter.

Accepted forms (see :func:`parse_repo_spec`): ``https://``, ``http://``, ``ssh://`` and ``file://`` URLs,
SCP-style ``user@host:org/repo``, ``github.com/org/repo`` and ``github.com:org/repo`` shorthands, each
optionally prefixed by go-getter's ``git::`` (stripped). The repository ends at ``_git/<name>``, at a
``//`` separator, at the first ``.git``, or otherwise after two path segments (``org/repo``; every segment
for ``file://``). Query parameters: ``ref`` (or ``version``; ``ref`` wins), ``timeout`` (integer seconds or
a Go duration such as ``1m30s``; default 27 s) and ``submodules`` (a Go boolean; default true).
``git://`` URLs are not accepted by kustomize ("failed to parse scheme").
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

#: kustomize's ``defaultTimeout`` for each Git command of a clone (seconds).
DEFAULT_TIMEOUT = 27.0
#: kustomize's ``defaultSubmodules``.
DEFAULT_SUBMODULES = True

_FILE = "file://"
_HTTP = "http://"
_HTTPS = "https://"
_SSH = "ssh://"
_USER_RE = re.compile(r"^([a-zA-Z][a-zA-Z0-9-]*)@")
_ALL_SEGMENTS = -999999
_ORG_REPO_SEGMENTS = 2


class RepoSpecError(ValueError):
    """The text is not a remote Git target (kustomize's message, e.g. ``failed to parse scheme``)."""


@dataclass(frozen=True)
class RepoSpec:
    """kustomize's ``RepoSpec``: a Git repository, a ref and a kustomization directory inside it.

    Attributes:
        raw: the entry as written (used, as kustomize does, to detect cycles).
        host: scheme, user and host, e.g. ``https://github.com/`` or ``git@github.com:``.
        repo_path: the repository's path on the host, e.g. ``org/repo`` or ``org/repo.git``.
        kust_root_path: the directory inside the repository ('' for its root).
        ref: the branch, tag or commit to fetch ('' for the remote's ``HEAD``).
        timeout: seconds for each Git command (the ``timeout`` parameter), ``None`` when not given.
        submodules: whether submodules are fetched too.
    """

    raw: str
    host: str
    repo_path: str
    kust_root_path: str = ""
    ref: str = ""
    timeout: float | None = None
    submodules: bool = DEFAULT_SUBMODULES

    @property
    def clone_spec(self) -> str:
        """What kustomize passes to ``git fetch`` (``RepoSpec.CloneSpec``)."""
        return self.host + self.repo_path

    def display(self, rel: str | None = None) -> str:
        """``<clone URL>//<path>[?ref=<ref>]``: how a path of this repository (relative to its root; by
        default the kustomization directory) is named in messages."""
        path = self.kust_root_path if rel is None else rel
        text = f"{self.clone_spec}//{path}"
        return f"{text}?ref={self.ref}" if self.ref else text


def is_remote_file(text: str) -> bool:
    """Whether a file path is an ``http``/``https`` URL kustomize loads over HTTP (``IsRemoteFile``)."""
    m = re.match(r"^([a-zA-Z][a-zA-Z0-9+.-]*):", text)
    if m is None or m.group(1).lower() not in ("http", "https"):
        return False
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in text):
        return False  # Go's url.Parse: "invalid control character in URL"
    try:
        urlsplit(text)
    except ValueError:
        return False
    return True


def parse_repo_spec(text: str) -> RepoSpec:
    """kustomize's ``NewRepoSpecFromURL``.

    Raises:
        RepoSpecError: the text is not a remote Git target; kustomize then treats it as a local path.
    """
    if text.startswith("/"):
        raise RepoSpecError(f"uri looks like abs path: {text}")
    n, _, query = text.partition("?")
    ref, timeout, submodules = parse_query(query)
    host, n = _extract_host(n)
    default_len = _ALL_SEGMENTS if host.startswith(_FILE) else _ORG_REPO_SEGMENTS
    repo_path, kust_root = _parse_path_parts(n, default_len)
    return RepoSpec(
        raw=text,
        host=host,
        repo_path=repo_path,
        kust_root_path=kust_root,
        ref=ref,
        timeout=timeout,
        submodules=submodules,
    )


def _parse_path_parts(n: str, default_len: int) -> tuple[str, str]:
    ok, repo_path, kust_root = _explicit_marker_split(n)
    if not ok:
        ok, repo_path, kust_root = _default_length_split(n, default_len)
    if not ok or not repo_path:
        raise RepoSpecError("failed to parse repo path segment")
    if _exits_repo(kust_root):
        raise RepoSpecError(f"url path exits repo: {n}")
    return repo_path, kust_root.removeprefix("/")


def _explicit_marker_split(n: str) -> tuple[bool, str, str]:
    i = n.find("_git/")
    if i >= 0:
        head = n[: i + len("_git/")]
        segments = n[i + len("_git/") :].split("/")
        return True, head + segments[0], "/".join(segments[1:])
    i = n.find("//")
    if i >= 0:
        return True, n[:i], n[i + 2 :]
    i = n.find(".git")
    if i >= 0:
        return True, n[: i + 4], n[i + 4 :]
    return False, "", ""


def _default_length_split(n: str, length: int) -> tuple[bool, str, str]:
    if length == _ALL_SEGMENTS:
        return True, n, ""
    segments = n.split("/")
    if len(segments) >= length:
        return True, "/".join(segments[:length]), "/".join(segments[length:])
    return False, "", ""


def _exits_repo(kust_root: str) -> bool:
    cleaned = posixpath.normpath(kust_root.removeprefix("/"))
    return cleaned.split("/")[0] == ".."


def _trim_prefix_ignore_case(s: str, prefix: str) -> tuple[str, bool]:
    if len(prefix) <= len(s) and s[: len(prefix)].lower() == prefix:
        return s[len(prefix) :], True
    return s, False


def _extract_host(n: str) -> tuple[str, str]:
    n, _ = _trim_prefix_ignore_case(n, "git::")
    scheme = ""
    for prefix in (_SSH, _HTTPS, _HTTP, _FILE):
        n, found = _trim_prefix_ignore_case(n, prefix)
        if found:
            scheme = prefix
            break
    username = ""
    m = _USER_RE.match(n)
    if m is not None:
        username = m.group(1) + "@"
        n = n[len(username) :]
    lower = n.lower()
    std_github = lower.startswith("github.com/") or lower.startswith("github.com:")
    accept_scp = scheme == "" and (username != "" or std_github)
    if scheme == "" and not accept_scp:
        raise RepoSpecError("failed to parse scheme")
    if scheme == _FILE:
        return scheme, username + n
    host, rest = n, ""
    sep = _find_path_separator(n, accept_scp)
    if sep >= 0:
        host, rest = n[: sep + 1], n[sep + 1 :]
    if std_github:
        if scheme.startswith(_SSH) or username:
            scheme, host = "", "github.com:"
        else:
            scheme, username, host = _HTTPS, "", "github.com/"
    if not host:
        raise RepoSpecError("failed to parse host segment")
    return scheme + username + host, rest


def _find_path_separator(host_path: str, accept_scp: bool) -> int:
    sep = host_path.find("/")
    if accept_scp:
        colon = host_path.find(":")
        if sep == -1 or 0 < colon < sep:
            sep = colon
    return sep


# -- query parameters (Go's net/url, strconv and time semantics) ----------------------------------------


def parse_query(query: str) -> tuple[str, float | None, bool]:
    """kustomize's ``parseQuery``: ``(ref, timeout seconds or None for the default, submodules)``."""
    values = _go_parse_query(query)
    if values is None:
        return "", None, DEFAULT_SUBMODULES
    ref = values.get("version", "")
    if values.get("ref"):
        ref = values["ref"]
    timeout: float | None = None
    raw = values.get("timeout", "")
    if raw:
        as_int = _go_atoi(raw)
        if as_int is not None and as_int > 0:
            timeout = float(as_int)
        else:
            seconds = go_parse_duration(raw)
            if seconds is not None and seconds > 0:
                timeout = seconds
    submodules = DEFAULT_SUBMODULES
    raw = values.get("submodules", "")
    if raw:
        parsed = _go_parse_bool(raw)
        if parsed is not None:
            submodules = parsed
    return ref, timeout, submodules


def _go_parse_query(query: str) -> dict[str, str] | None:
    """``url.ParseQuery``'s first value of each key, or ``None`` when Go would report an error."""
    out: dict[str, str] = {}
    failed = False
    while query:
        key, _, query = query.partition("&")
        if ";" in key:
            failed = True
            continue
        if not key:
            continue
        k, _, v = key.partition("=")
        uk, uv = _go_query_unescape(k), _go_query_unescape(v)
        if uk is None or uv is None:
            failed = True
            continue
        out.setdefault(uk, uv)
    return None if failed else out


def _go_query_unescape(s: str) -> str | None:
    data = s.encode("utf-8", "surrogateescape")
    out = bytearray()
    i = 0
    while i < len(data):
        c = data[i]
        if c == ord("%"):
            pair = data[i + 1 : i + 3]
            if len(pair) < 2 or not all(chr(b) in "0123456789abcdefABCDEF" for b in pair):
                return None
            out.append(int(pair, 16))
            i += 3
            continue
        out.append(ord(" ") if c == ord("+") else c)
        i += 1
    return out.decode("utf-8", "surrogateescape")


def _go_atoi(s: str) -> int | None:
    m = re.fullmatch(r"[+-]?[0-9]+", s)
    if m is None:
        return None
    value = int(s)
    return value if -(1 << 63) <= value < (1 << 63) else None


def _go_parse_bool(s: str) -> bool | None:
    if s in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if s in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    return None


_UNITS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5
    "μs": 1_000,  # U+03BC
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}


def go_parse_duration(s: str) -> float | None:
    """Go's ``time.ParseDuration`` in seconds, or ``None`` for a malformed (or overflowing) duration."""
    neg = False
    if s[:1] in ("-", "+"):
        neg = s[0] == "-"
        s = s[1:]
    if s == "0":
        return 0.0
    if not s:
        return None
    total = 0.0
    nanos = 0
    while s:
        m = re.match(r"([0-9]*)(?:\.([0-9]*))?", s)
        assert m is not None
        whole, frac = m.group(1), m.group(2)
        if not whole and not frac:
            return None
        s = s[m.end() :]
        u = re.match(r"[^0-9.]*", s)
        assert u is not None
        unit = u.group(0)
        if not unit:
            return None  # missing unit
        if unit not in _UNITS:
            return None  # unknown unit
        s = s[len(unit) :]
        scale = _UNITS[unit]
        nanos += int(whole or "0") * scale
        if frac:
            total += int(frac) / (10 ** len(frac)) * scale
        if nanos + total > (1 << 63) - 1:
            return None
    seconds = (nanos + int(total)) / 1e9
    return -seconds if neg else seconds


__all__ = [
    "DEFAULT_SUBMODULES",
    "DEFAULT_TIMEOUT",
    "RepoSpec",
    "RepoSpecError",
    "go_parse_duration",
    "is_remote_file",
    "parse_query",
    "parse_repo_spec",
]
