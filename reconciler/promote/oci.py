"""A small client of the OCI distribution API for tag scanning: list a repository's tags, resolve a tag to
its manifest digest, and check that a manifest's content has the digest the registry claims.

Followed: the OCI Distribution Specification v1.1 (``GET /v2/<name>/tags/list`` with ``n``/``last`` and
the ``Link: <url>; rel="next"`` header of RFC 8288 for further pages; ``HEAD``/``GET
/v2/<name>/manifests/<reference>`` with ``Accept`` naming the OCI and Docker manifest and index media
types; the ``Docker-Content-Digest`` header), the Docker registry token authentication flow (a 401 whose
``WWW-Authenticate: Bearer realm=…,service=…,scope=…`` names a token endpoint, answered by
``{"token"|"access_token": …}``; credentials, when given, sent to it as HTTP basic authentication) and
``WWW-Authenticate: Basic`` (RFC 7617), and ``429``/``503`` with ``Retry-After`` (RFC 9110 §10.2.3, seconds
or an HTTP date).

Every request is bounded: a requests-per-second limit per client, a deadline for the whole operation
(retries and waits included), a cap on each response's size (read as a stream, stopped at the cap), a
cap on pages and tags. Everything that goes wrong raises :class:`RegistryError` naming the registry, the
repository and what happened; nothing is retried past the deadline.
"""

from __future__ import annotations

import base64
import email.utils
import hashlib
import json
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urljoin, urlsplit

import httpx
from pydantic import BaseModel, ValidationError
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt

from reconciler.errors import ReconcilerError

__all__ = [
    "MANIFEST_TYPES",
    "Credentials",
    "OciClient",
    "RegistryError",
    "credentials_from_docker_config",
]

#: What ``Accept`` asks for on manifest requests: OCI image manifest and index, Docker schema 2 manifest
#: and manifest list.
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)
_DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}$")
_CHALLENGE_RE = re.compile(r'([A-Za-z][A-Za-z0-9_-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]+))')


class RegistryError(ReconcilerError):
    """The registry could not be read as asked (unreachable, refused, malformed, over a bound, or a
    manifest whose content does not match its digest)."""

    retryable = True


@dataclass(frozen=True)
class Credentials:
    """A user name and password (or token) for the registry."""

    username: str
    password: str

    def __repr__(self) -> str:  # never print the password
        return f"Credentials(username={self.username!r}, password=***)"


def credentials_from_docker_config(data: Mapping[str, Any], host: str) -> Credentials | None:
    """The credentials for ``host`` in a Docker config (``{"auths": {host: {"auth": base64("u:p")}}}``,
    or ``username``/``password`` per host; keys may carry a scheme, e.g. ``https://host``).

    Raises:
        RegistryError: the entry for ``host`` is malformed.
    """
    auths = data.get("auths")
    if not isinstance(auths, Mapping):
        return None
    for key, entry in auths.items():
        name = str(key)
        bare = urlsplit(name).netloc if "://" in name else name.split("/", 1)[0]
        if bare != host or not isinstance(entry, Mapping):
            continue
        if isinstance(entry.get("auth"), str) and entry["auth"]:
            try:
                user, sep, password = base64.b64decode(entry["auth"], validate=True).decode().partition(":")
                if not sep:
                    raise ValueError("no ':'")
            except (ValueError, UnicodeDecodeError):
                raise RegistryError(
                    f"docker config: auths[{name!r}].auth is not base64 of user:password"
                ) from None
            return Credentials(user, password)
        if isinstance(entry.get("username"), str) and isinstance(entry.get("password"), str):
            return Credentials(entry["username"], entry["password"])
        raise RegistryError(f"docker config: auths[{name!r}] has neither auth nor username/password")
    return None


class _TagList(BaseModel):
    name: str = ""
    tags: list[str] | None = None


class _Retry(Exception):
    """A response worth retrying (429, 5xx, a transport error), after ``delay`` seconds at the earliest."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.delay = delay


@dataclass
class _Response:
    status: int
    headers: httpx.Headers
    body: bytes
    url: str


class OciClient:
    """Reads one registry.

    Args:
        host: the registry's ``host[:port]``.
        plain_http: HTTP instead of HTTPS.
        credentials: for basic authentication and the token endpoint (``None``: anonymous).
        requests_per_second: at most this many requests per second (token requests included).
        max_bytes: the largest response body read (bytes); a longer one fails the operation.
        max_pages: tag list pages followed.
        max_tags: the longest tag list accepted.
        attempts: tries per request for 429, 5xx and transport errors.
        max_retry_after: the longest ``Retry-After`` waited (seconds); a longer one fails at once.
        request_timeout: seconds per request.
        transport: an httpx transport (tests); default: the network.
        sleep: the sleep function (tests).
        clock: monotonic seconds, for the rate limit and the deadline (tests).
    """

    def __init__(
        self,
        host: str,
        *,
        plain_http: bool = False,
        credentials: Credentials | None = None,
        requests_per_second: float = 5.0,
        max_bytes: int = 4 * 1024 * 1024,
        max_pages: int = 100,
        max_tags: int = 10000,
        attempts: int = 4,
        max_retry_after: float = 30.0,
        request_timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host = host
        self.base = f"{'http' if plain_http else 'https'}://{host}"
        self.credentials = credentials
        self.interval = 1.0 / requests_per_second
        self.max_bytes = max_bytes
        self.max_pages = max_pages
        self.max_tags = max_tags
        self.attempts = attempts
        self.max_retry_after = max_retry_after
        self.sleep = sleep
        self.clock = clock
        self.requests = 0
        self._tokens: dict[str, str] = {}
        self._basic = False
        self._next_at = 0.0
        self._lock = threading.Lock()
        self._deadline = float("inf")
        self._http = httpx.Client(
            timeout=httpx.Timeout(request_timeout),
            follow_redirects=True,
            transport=transport,
            headers={"User-Agent": "reconciler-tag-scan"},
        )

    def close(self) -> None:
        """Close the connections."""
        self._http.close()

    def __enter__(self) -> OciClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- operations -----------------------------------------------------------------------------------

    def deadline(self, seconds: float) -> None:
        """Fail every operation that would still run ``seconds`` from now (retries and waits included)."""
        self._deadline = self.clock() + seconds

    def tags(self, repository: str) -> list[str]:
        """Every tag of ``repository``, following ``Link`` pages. A repository the registry does not know
        (404 ``NAME_UNKNOWN``; Distribution answers so while it holds only untagged manifests) has none.

        Raises:
            RegistryError: a page could not be read, is not a tag list, the pages loop or exceed
                ``max_pages``, or the tags exceed ``max_tags``.
        """
        url = f"{self.base}/v2/{repository}/tags/list?n=1000"
        seen: set[str] = set()
        tags: list[str] = []
        for page in range(1, self.max_pages + 2):
            if page > self.max_pages:
                raise self._error(repository, f"the tag list has more than {self.max_pages} pages (maxPages)")
            if url in seen:
                raise self._error(repository, f"the tag list's pages loop (page {page} is {url} again)")
            seen.add(url)
            resp = self._request("GET", url, repository, accept="application/json")
            if resp.status == 404 and page == 1:
                return []
            if resp.status != 200:
                raise self._error(repository, f"GET {_path(url)} answered {resp.status}{_detail(resp)}")
            try:
                parsed = _TagList.model_validate_json(resp.body)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(x) for x in first.get("loc", ())) or "body"
                raise self._error(
                    repository, f"GET {_path(url)}: not a tag list ({where}: {first.get('msg')})"
                ) from None
            tags.extend(parsed.tags or [])
            if len(tags) > self.max_tags:
                raise self._error(repository, f"the tag list has more than {self.max_tags} tags (maxTags)")
            nxt = _next_link(resp)
            if nxt is None:
                return list(dict.fromkeys(tags))
            url = urljoin(resp.url, nxt)
            if urlsplit(url).netloc != urlsplit(self.base).netloc:
                raise self._error(repository, f"the tag list's next page {url} is on another host")
        raise AssertionError("unreachable")  # pragma: no cover

    def digest(self, repository: str, reference: str) -> str:
        """The manifest digest of ``reference`` (a tag or digest): ``HEAD`` on the manifest, its
        ``Docker-Content-Digest`` header; a registry that sends none is asked with ``GET`` and the digest
        computed from the body.

        Raises:
            RegistryError: not found, refused, or a malformed digest.
        """
        url = f"{self.base}/v2/{repository}/manifests/{reference}"
        resp = self._request("HEAD", url, repository, accept=", ".join(MANIFEST_TYPES))
        if resp.status != 200:
            raise self._error(repository, f"HEAD {_path(url)} answered {resp.status}{_detail(resp)}")
        digest: str | None = resp.headers.get("Docker-Content-Digest")
        if digest is None:
            return self.verified_digest(repository, reference)
        if not _DIGEST_RE.match(digest):
            raise self._error(
                repository,
                f"HEAD {_path(url)}: Docker-Content-Digest {digest[:100]!r} is not a sha256 digest",
            )
        return digest

    def verified_digest(self, repository: str, reference: str, expected: str | None = None) -> str:
        """``GET`` the manifest of ``reference`` and return the sha256 digest of its content, after
        checking it against the ``Docker-Content-Digest`` header, the digest ``reference`` names, and
        ``expected``.

        Raises:
            RegistryError: not found, refused, or the content's digest differs from one of them.
        """
        url = f"{self.base}/v2/{repository}/manifests/{reference}"
        resp = self._request("GET", url, repository, accept=", ".join(MANIFEST_TYPES))
        if resp.status != 200:
            raise self._error(repository, f"GET {_path(url)} answered {resp.status}{_detail(resp)}")
        actual = "sha256:" + hashlib.sha256(resp.body).hexdigest()
        claims = {
            "the Docker-Content-Digest header": resp.headers.get("Docker-Content-Digest"),
            "the reference": reference if reference.startswith("sha256:") else None,
            "the digest resolved before": expected,
        }
        for what, claimed in claims.items():
            if claimed is not None and claimed != actual:
                raise self._error(
                    repository,
                    f"GET {_path(url)}: the manifest's content has digest {actual}, not {claimed} ({what})",
                )
        return actual

    # -- requests -------------------------------------------------------------------------------------

    def _error(self, repository: str, message: str) -> RegistryError:
        return RegistryError(f"registry {self.host}, repository {repository}: {message}")

    def _request(self, method: str, url: str, repository: str, *, accept: str) -> _Response:
        """One request with authentication, rate limit, retries (429/5xx/transport, ``Retry-After``
        honoured) and the size cap."""

        def wait(state: RetryCallState) -> float:
            exc = state.outcome.exception() if state.outcome is not None else None
            delay = exc.delay if isinstance(exc, _Retry) and exc.delay is not None else None
            if delay is None:
                delay = min(8.0, 0.25 * 2 ** (state.attempt_number - 1))
            if self.clock() + delay > self._deadline:
                raise self._error(repository, f"{exc} (no time left to retry within the scan's timeout)")
            return delay

        retrying = Retrying(
            retry=retry_if_exception_type(_Retry),
            stop=stop_after_attempt(self.attempts),
            wait=wait,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    resp = self._authenticated(method, url, repository, accept)
                    if resp.status == 429 or resp.status >= 500:
                        delay = _retry_after(resp.headers.get("Retry-After"))
                        if delay is not None and delay > self.max_retry_after:
                            raise self._error(
                                repository,
                                f"{method} {_path(url)} answered {resp.status} "
                                f"with Retry-After {delay:.0f} s "
                                f"(more than {self.max_retry_after:.0f} s)",
                            )
                        raise _Retry(f"{method} {_path(url)} answered {resp.status}{_detail(resp)}", delay)
                    return resp
        except _Retry as exc:
            raise self._error(repository, f"{exc.message} (after {self.attempts} attempts)") from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _authenticated(self, method: str, url: str, repository: str, accept: str) -> _Response:
        scope = f"repository:{repository}:pull"
        resp = self._send(method, url, repository, accept, self._auth_header(scope))
        if resp.status != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        scheme, params = _parse_challenge(challenge)
        if scheme == "bearer" and params.get("realm"):
            self._tokens[scope] = self._token(params, scope, repository)
        elif scheme == "basic" and self.credentials is not None and not self._basic:
            self._basic = True
        else:
            why = (
                "no credentials are configured"
                if self.credentials is None
                else "the credentials were refused"
            )
            raise self._error(
                repository, f"{method} {_path(url)} answered 401 ({why}; challenge {challenge[:200]!r})"
            )
        resp = self._send(method, url, repository, accept, self._auth_header(scope))
        if resp.status == 401:
            raise self._error(repository, f"{method} {_path(url)} answered 401 after authenticating")
        return resp

    def _auth_header(self, scope: str) -> dict[str, str]:
        token = self._tokens.get(scope)
        if token:
            return {"Authorization": f"Bearer {token}"}
        if self._basic and self.credentials is not None:
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        return {}

    def _token(self, params: dict[str, str], scope: str, repository: str) -> str:
        """A bearer token from the challenge's realm (credentials as basic auth when configured)."""
        realm = params["realm"]
        if urlsplit(realm).scheme not in ("http", "https"):
            raise self._error(repository, f"the token realm {realm[:200]!r} is not an HTTP URL")
        query: dict[str, str] = {"scope": params.get("scope") or scope}
        if params.get("service"):
            query["service"] = params["service"]
        headers: dict[str, str] = {}
        if self.credentials is not None:
            raw = f"{self.credentials.username}:{self.credentials.password}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(raw).decode()
        url = str(httpx.URL(realm, params=query))
        resp = self._send("GET", url, repository, "application/json", headers)
        if resp.status != 200:
            raise self._error(
                repository, f"the token endpoint {_path(realm)} answered {resp.status}{_detail(resp)}"
            )
        try:
            data = json.loads(resp.body)
        except ValueError:
            raise self._error(repository, f"the token endpoint {_path(realm)} did not answer JSON") from None
        token: Any = (data.get("token") or data.get("access_token")) if isinstance(data, dict) else None
        if not isinstance(token, str) or not token:
            raise self._error(repository, f"the token endpoint {_path(realm)} answered no token")
        return token

    def _send(
        self, method: str, url: str, repository: str, accept: str, headers: Mapping[str, str]
    ) -> _Response:
        self._pace(repository)
        self.requests += 1
        remaining = self._deadline - self.clock()
        if remaining <= 0:
            raise self._error(repository, f"{method} {_path(url)}: the scan's timeout passed")
        try:
            with self._http.stream(
                method,
                url,
                headers={"Accept": accept, **headers},
                timeout=min(self._http.timeout.read or 10.0, remaining),
            ) as resp:
                length = resp.headers.get("Content-Length")
                if length is not None and length.isdigit() and int(length) > self.max_bytes:
                    raise self._error(
                        repository,
                        f"{method} {_path(url)}: the answer has {int(length)} bytes "
                        f"(more than {self.max_bytes})",
                    )
                body = bytearray()
                if method != "HEAD":
                    for chunk in resp.iter_bytes():
                        body += chunk
                        if len(body) > self.max_bytes:
                            raise self._error(
                                repository,
                                f"{method} {_path(url)}: the answer is longer than {self.max_bytes} bytes",
                            )
                return _Response(resp.status_code, resp.headers, bytes(body), str(resp.url))
        except httpx.HTTPError as exc:
            raise _Retry(f"{method} {_path(url)}: {type(exc).__name__}: {exc}") from None

    def _pace(self, repository: str) -> None:
        """Wait for the rate limit's next slot."""
        with self._lock:
            now = self.clock()
            at = max(now, self._next_at)
            self._next_at = at + self.interval
        if at > now:
            if at > self._deadline:
                raise self._error(
                    repository, "the request rate limit leaves no time within the scan's timeout"
                )
            self.sleep(at - now)


def _path(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _detail(resp: _Response) -> str:
    """``: CODE: message`` from an OCI error body (``{"errors": [{"code", "message"}]}``), else ``""``."""
    try:
        data = json.loads(resp.body[:4096]) if resp.body else None
    except ValueError:
        return ""
    errors = data.get("errors") if isinstance(data, dict) else None
    if isinstance(errors, list) and errors and isinstance(errors[0], dict):
        return f": {str(errors[0].get('code', ''))[:50]}: {str(errors[0].get('message', ''))[:200]}"
    return ""


def _next_link(resp: _Response) -> str | None:
    """The ``rel="next"`` target of the ``Link`` header (RFC 8288), or ``None``."""
    for value in resp.headers.get_list("Link"):
        for part in value.split(","):
            m = re.match(r"\s*<([^>]*)>\s*;(.*)$", part)
            if m and re.search(r'rel\s*=\s*"?next"?', m[2]):
                return m[1]
    return None


def _parse_challenge(value: str) -> tuple[str, dict[str, str]]:
    """``WWW-Authenticate: Scheme k="v", k2=v2`` → ``("scheme", {k: v})`` (the first challenge)."""
    scheme, _, rest = value.strip().partition(" ")
    params = {
        m[1].lower(): (m[2] if m[2] is not None else m[3]).replace('\\"', '"')
        for m in _CHALLENGE_RE.finditer(rest)
    }
    return scheme.lower(), params


def _retry_after(value: str | None) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or ``None`` when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())
