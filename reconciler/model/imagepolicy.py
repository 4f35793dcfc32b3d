"""Image policies: which pushed image versions an environment accepts, and which of two is newer.

An :class:`ImagePolicy` is one entry of ``imagePolicies:`` in ``envs/<env>.yaml``::

    imagePolicies:
    - name: planner
      image: harbor.registry.test:8443/ml-agents/planner   # any Docker Hub spelling works too
      policy:
        semver: {range: ">=0.1.0 <1.0.0"}                   # or alphabetical/numerical: {order: asc}
      filterTags: {pattern: '^v(?P<v>\\d+\\.\\d+\\.\\d+)$', extract: '$v'}
      digest: pin                                           # write newTag + digest; default none
      scan: {interval: 60}                                  # also list the registry's tags (optional)

The field names and semantics follow Flux's ``ImagePolicy`` (``spec.policy.semver.range``,
``spec.policy.alphabetical.order``, ``spec.policy.numerical.order``, ``spec.filterTags.pattern`` /
``extract``; https://fluxcd.io/flux/components/image/imagepolicies/). Semver ranges follow the constraint
grammar of Masterminds/semver v3 (comparators, ``,``/space for AND, ``||`` for OR, hyphen ranges, ``x``
wildcards, ``~`` and ``^``; https://github.com/Masterminds/semver#checking-version-constraints), evaluated
with the :mod:`semver` package. A pre-release version matches a constraint group only when a comparator
of that group carries a pre-release itself (``>=1.0.0-0`` admits every pre-release from 1.0.0 on).

Repository names are compared after normalisation as the Docker CLI does it
(https://github.com/distribution/reference, ``ParseNormalizedNamed``): no host → ``docker.io``;
``index.docker.io``/``registry-1.docker.io``/``registry.hub.docker.com`` → ``docker.io``; a one-component
Docker Hub path gets ``library/``.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any, Literal

import semver
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "DOCKER_HUB",
    "ImagePolicy",
    "OrderPolicy",
    "PolicyChoice",
    "RegistryCredentials",
    "SecretReference",
    "SemverPolicy",
    "SemverRange",
    "TagFilter",
    "TagScan",
    "TagVerdict",
    "normalise_image",
    "parse_semver_tag",
    "split_image_reference",
]

DOCKER_HUB = "docker.io"
_HUB_ALIASES = frozenset({"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"})
_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
_PATH_RE = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_HOST_RE = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)
_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_TEMPLATE_FIELDS = frozenset({"env", "image", "entry", "policy", "old", "new", "digest"})


# --------------------------------------------------------------------------- repository names


def split_image_reference(ref: str) -> tuple[str, str | None, str | None]:
    """Split ``name[:tag][@digest]`` into ``(name, tag, digest)``; a ``:`` inside the host part
    (``host:8443/repo``) is a port, never a tag.

    Args:
        ref: an image reference as written in a manifest or an ``images:`` entry.
    """
    digest: str | None = None
    if "@" in ref:
        ref, _, digest = ref.partition("@")
    tag: str | None = None
    colon = ref.rfind(":")
    if colon > ref.rfind("/"):
        ref, tag = ref[:colon], ref[colon + 1 :]
    return ref, tag, digest


def normalise_image(name: str) -> str:
    """The canonical ``host/path`` of a repository name, for comparing names spelled differently.

    ``nginx``, ``library/nginx``, ``docker.io/nginx`` and ``index.docker.io/library/nginx`` all give
    ``docker.io/library/nginx``; other hosts are lowercased and kept with their port
    (``Harbor.test:8443/a/b`` → ``harbor.test:8443/a/b``). A tag or digest is dropped.

    Args:
        name: a repository name, with or without a host, tag or digest.

    Raises:
        ValueError: when the path is not a valid OCI repository name (lowercase components).
    """
    bare, _, _ = split_image_reference(name.strip())
    first, sep, rest = bare.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost" or first.startswith("[")):
        host, path = first.lower(), rest
        if not _HOST_RE.match(host):
            raise ValueError(f"image {name!r}: {first!r} is not a valid registry host[:port]")
    else:
        host, path = DOCKER_HUB, bare
    if host in _HUB_ALIASES:
        host = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    if not _PATH_RE.match(path):
        raise ValueError(
            f"image {name!r}: repository path {path!r} is not a valid OCI name "
            "(lowercase components of [a-z0-9] joined by '.', '_', '__' or '-')"
        )
    return f"{host}/{path}"


def _try_normalise(name: str) -> str | None:
    try:
        return normalise_image(name)
    except ValueError:
        return None


# --------------------------------------------------------------------------- semver ranges


def parse_semver_tag(tag: str) -> semver.Version | None:
    """``tag`` as a semantic version (SemVer 2.0.0, an optional leading ``v``), or ``None``."""
    text = tag[1:] if tag[:1] in ("v", "V") else tag
    try:
        return semver.Version.parse(text)
    except (ValueError, TypeError):
        return None


_WILD = frozenset({"x", "X", "*"})
_PARTIAL_RE = re.compile(
    r"^v?(?P<major>\d+|[xX*])(?:\.(?P<minor>\d+|[xX*]))?(?:\.(?P<patch>\d+|[xX*]))?"
    r"(?:-(?P<pre>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?(?:\+(?P<build>[0-9A-Za-z-]+(?:\.[0-9A-Za-z-]+)*))?$"
)
_OP_SPACE_RE = re.compile(r"(>=|<=|=>|=<|!=|~>|>|<|=|~|\^)\s+")
_HYPHEN_RE = re.compile(r"(\S+)\s+-\s+(\S+)")
_COMPARATOR_RE = re.compile(r"^(>=|<=|=>|=<|!=|~>|>|<|=|~|\^)?(.+)$")


@dataclass(frozen=True)
class _Partial:
    numbers: tuple[int, ...]  # the parts given before the first wildcard (0 to 3 of them)
    pre: str | None

    def floor(self) -> semver.Version:
        n = (*self.numbers, 0, 0, 0)[:3]
        return semver.Version(n[0], n[1], n[2], prerelease=self.pre)

    def next_up(self) -> semver.Version:
        """The first version after every version this partial names (``1.2`` → ``1.3.0-0``)."""
        n = self.numbers
        if len(n) == 1:
            return semver.Version(n[0] + 1, 0, 0, prerelease="0")
        if len(n) == 2:
            return semver.Version(n[0], n[1] + 1, 0, prerelease="0")
        return semver.Version(n[0], n[1], n[2] + 1, prerelease="0")


def _parse_partial(text: str, where: str) -> _Partial:
    m = _PARTIAL_RE.match(text)
    if not m:
        raise ValueError(f"{where}: {text!r} is not a version (X.Y.Z, with optional x/* wildcards)")
    numbers: list[int] = []
    for part in (m["major"], m["minor"], m["patch"]):
        if part is None or part in _WILD:
            break
        numbers.append(int(part))
    if m["pre"] is not None and len(numbers) != 3:
        raise ValueError(f"{where}: {text!r}: a pre-release needs a full X.Y.Z version")
    return _Partial(tuple(numbers), m["pre"])


_Check = Callable[[semver.Version], bool]


def _cmp(op: str, bound: semver.Version) -> _Check:
    if op == ">=":
        return lambda v: v >= bound
    if op == ">":
        return lambda v: v > bound
    if op == "<":
        return lambda v: v < bound
    if op == "<=":
        return lambda v: v <= bound
    if op == "==":
        return lambda v: v == bound
    return lambda v: v != bound


def _between(lo: semver.Version | None, hi: semver.Version | None) -> _Check:
    return lambda v: (lo is None or v >= lo) and (hi is None or v < hi)


def _comparator(op: str, p: _Partial) -> _Check:
    n = len(p.numbers)
    everything: _Check = lambda v: True  # noqa: E731
    nothing: _Check = lambda v: False  # noqa: E731
    if op in ("", "="):
        if n == 3:
            return _cmp("==", p.floor())
        return everything if n == 0 else _between(p.floor(), p.next_up())
    if op == "!=":
        if n == 3:
            return _cmp("!=", p.floor())
        if n == 0:
            return nothing
        inside = _between(p.floor(), p.next_up())
        return lambda v: not inside(v)
    if op == ">":
        if n == 0:
            return nothing
        return _cmp(">", p.floor()) if n == 3 else _cmp(">=", p.next_up())
    if op == ">=":
        return _cmp(">=", p.floor())
    if op == "<":
        return nothing if n == 0 else _cmp("<", p.floor())
    if op == "<=":
        if n == 0:
            return everything
        return _cmp("<=", p.floor()) if n == 3 else _cmp("<", p.next_up())
    if op == "~":
        if n == 0:
            return everything
        if n == 1:
            return _between(p.floor(), p.next_up())
        return _between(p.floor(), semver.Version(p.numbers[0], p.numbers[1] + 1, 0, prerelease="0"))
    # caret: keep the left-most non-zero part fixed
    if n == 0:
        return everything
    major = p.numbers[0]
    if major > 0 or n == 1:
        return _between(p.floor(), semver.Version(major + 1, 0, 0, prerelease="0"))
    minor = p.numbers[1]
    if minor > 0 or n == 2:
        return _between(p.floor(), semver.Version(0, minor + 1, 0, prerelease="0"))
    return _between(p.floor(), semver.Version(0, 0, p.numbers[2] + 1, prerelease="0"))


@dataclass(frozen=True)
class _Group:
    checks: tuple[_Check, ...]
    allows_prerelease: bool

    def contains(self, v: semver.Version) -> bool:
        if v.prerelease and not self.allows_prerelease:
            return False
        return all(c(v) for c in self.checks)


class SemverRange:
    """A parsed semver constraint such as ``>=1.2.0 <2.0.0 || ^3.1``.

    Args:
        text: the constraint (Masterminds/semver v3 grammar; ``*`` or empty = every release version).

    Raises:
        ValueError: naming the part of ``text`` that is not a comparator.
    """

    def __init__(self, text: str) -> None:
        self.text = text
        self._groups: list[_Group] = []
        for raw_group in text.split("||"):
            group = _HYPHEN_RE.sub(lambda m: f">={m[1]} <={m[2]}", raw_group.strip())
            group = _OP_SPACE_RE.sub(lambda m: m[1], group)
            checks: list[_Check] = []
            allows_pre = False
            for token in (t for t in re.split(r"[\s,]+", group) if t):
                m = _COMPARATOR_RE.match(token)
                if not m:  # pragma: no cover - the pattern accepts any non-empty token
                    raise ValueError(f"semver range {text!r}: cannot read {token!r}")
                op = {"=>": ">=", "=<": "<=", "~>": "~"}.get(m[1] or "", m[1] or "")
                partial = _parse_partial(m[2], f"semver range {text!r}")
                allows_pre = allows_pre or partial.pre is not None
                checks.append(_comparator(op, partial))
            self._groups.append(_Group(tuple(checks), allows_pre))

    def __contains__(self, version: semver.Version) -> bool:
        return any(g.contains(version) for g in self._groups)

    def __repr__(self) -> str:
        return f"SemverRange({self.text!r})"


# --------------------------------------------------------------------------- the policy model


class SemverPolicy(BaseModel):
    """Accept tags (or their extracted part) that are semantic versions inside ``range``; highest wins."""

    model_config = ConfigDict(extra="forbid")

    range: str = Field(default="*", description="semver constraint, e.g. '>=1.0.0 <2.0.0' or '^1.2'")

    @field_validator("range")
    @classmethod
    def _parses(cls, value: str) -> str:
        SemverRange(value)
        return value


class OrderPolicy(BaseModel):
    """Order tags alphabetically or numerically: ``asc`` picks the highest, ``desc`` the lowest."""

    model_config = ConfigDict(extra="forbid")

    order: Literal["asc", "desc"] = "asc"


class PolicyChoice(BaseModel):
    """Exactly one of ``semver``, ``alphabetical``, ``numerical``."""

    model_config = ConfigDict(extra="forbid")

    semver: SemverPolicy | None = None
    alphabetical: OrderPolicy | None = None
    numerical: OrderPolicy | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> PolicyChoice:
        given = [k for k in ("semver", "alphabetical", "numerical") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(
                "policy: set exactly one of semver, alphabetical, numerical"
                + (f" (found {', '.join(given)})" if given else "")
            )
        return self

    @property
    def kind(self) -> Literal["semver", "alphabetical", "numerical"]:
        """Which ordering is set."""
        if self.semver is not None:
            return "semver"
        return "alphabetical" if self.alphabetical is not None else "numerical"


def _go_named_groups(pattern: str) -> str:
    """Accept Go/RE2's ``(?<name>…)`` spelling too (Python wants ``(?P<name>…)``)."""
    return re.sub(r"\(\?<([A-Za-z_][A-Za-z0-9_]*)>", r"(?P<\1>", pattern)


_EXTRACT_RE = re.compile(r"\$(?:\$|\{([A-Za-z0-9_]+)\}|([A-Za-z0-9_]+))")


def _expand(template: str, m: re.Match[str]) -> str:
    """Go's ``Regexp.Expand``: ``$name``/``${name}``/``$1``; ``$$`` is a literal ``$``."""

    def one(t: re.Match[str]) -> str:
        name = t[1] or t[2]
        if name is None:
            return "$"
        if name.isdigit():
            idx = int(name)
            return (m.group(idx) or "") if idx <= (m.re.groups or 0) else ""
        return (m.groupdict().get(name) or "") if name in m.re.groupindex else ""

    return _EXTRACT_RE.sub(one, template)


class TagFilter(BaseModel):
    """Consider only tags matching ``pattern``; order by ``extract`` (``$name``, ``${name}``, ``$1``) when
    given, else by the whole tag."""

    model_config = ConfigDict(extra="forbid")

    pattern: str = Field(description="regular expression (Python/RE2 syntax) a tag must match")
    extract: str = Field(default="", description="what to order by, e.g. '$ts' for the group ts")

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(_go_named_groups(value))
        except re.error as exc:
            raise ValueError(f"filterTags.pattern {value!r}: {exc}") from None
        return value

    @model_validator(mode="after")
    def _extract_refs(self) -> TagFilter:
        rx = self.regex
        for t in _EXTRACT_RE.finditer(self.extract):
            name = t[1] or t[2]
            if name is None:
                continue
            known = int(name) <= rx.groups if name.isdigit() else name in rx.groupindex
            if not known:
                raise ValueError(
                    f"filterTags.extract {self.extract!r}: pattern {self.pattern!r} has no group {name!r}"
                )
        return self

    @property
    def regex(self) -> re.Pattern[str]:
        """The compiled pattern."""
        return re.compile(_go_named_groups(self.pattern))

    def apply(self, tag: str) -> str | None:
        """The value to order ``tag`` by, or ``None`` when ``tag`` does not match the pattern."""
        m = self.regex.search(tag)
        if m is None:
            return None
        return _expand(self.extract, m) if self.extract else tag


class SecretReference(BaseModel):
    """A Kubernetes Secret in the environment's cluster holding registry credentials."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="the Secret's name")
    namespace: str | None = Field(
        default=None, description="its namespace (default: the environment's namespace)"
    )


class RegistryCredentials(BaseModel):
    """Where the credentials for the registry's tag list come from: exactly one of ``secretRef`` and
    ``file``. Both hold either a Docker config (``{"auths": {"<host>": {"auth": base64("user:pass")}}}``
    or ``username``/``password`` per host; a Secret of type ``kubernetes.io/dockerconfigjson`` keeps it in
    ``.dockerconfigjson``) or, for a Secret of type ``kubernetes.io/basic-auth``, ``username`` and
    ``password``. They are sent as HTTP basic authentication, or exchanged for a bearer token at the
    token endpoint the registry's ``WWW-Authenticate`` challenge names."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    secret_ref: SecretReference | None = Field(default=None, alias="secretRef")
    file: str | None = Field(
        default=None, description="path of a Docker config JSON file on the daemon's host (read at each scan)"
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> RegistryCredentials:
        if (self.secret_ref is None) == (self.file is None):
            raise ValueError("credentials: set exactly one of secretRef and file")
        return self


class TagScan(BaseModel):
    """List the image's tags in its registry (OCI distribution API ``GET /v2/<name>/tags/list``, following
    ``Link`` pagination) every ``interval`` seconds and on demand (``reconciler images scan``), and apply
    the newest allowed tag as a webhook event would: webhooks are the fast path, the scan the guarantee
    that a version whose webhook was lost is still promoted, exactly once (a tag already in Git makes no
    commit). As Flux's ``ImageRepository`` ``spec.interval`` and argocd-image-updater's check interval."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    interval: float = Field(
        default=60.0,
        ge=0,
        description="seconds between scans (0: only on demand); Flux's examples use 1 minute, "
        "argocd-image-updater 2 minutes",
    )
    plain_http: bool | None = Field(
        default=None,
        alias="plainHttp",
        description="talk HTTP instead of HTTPS (default: only for localhost and 127.0.0.1 registries)",
    )
    credentials: RegistryCredentials | None = Field(
        default=None, description="credentials (default: anonymous, with an anonymous bearer token if asked)"
    )
    requests_per_second: float = Field(
        default=5.0, gt=0, alias="requestsPerSecond", description="most requests per second to the registry"
    )
    timeout: float = Field(
        default=60.0, gt=0, description="seconds one scan of the image may take, retries and waits included"
    )
    max_tags: int = Field(
        default=10000, ge=1, alias="maxTags", description="a tag list longer than this fails the scan"
    )
    max_pages: int = Field(
        default=100, ge=1, alias="maxPages", description="tag list pages followed before the scan fails"
    )


@dataclass(frozen=True)
class TagVerdict:
    """What a policy says about one tag.

    Attributes:
        tag: the tag.
        allowed: whether the policy accepts it.
        reason: why not (empty when allowed).
        key: the value tags are ordered by (``semver.Version``, ``Decimal`` or ``str``); ``None`` when
            the tag cannot be ordered by this policy.
    """

    tag: str
    allowed: bool
    reason: str = ""
    key: Any = None


class ImagePolicy(BaseModel):
    """Which versions of one image an environment takes automatically (an ``imagePolicies:`` entry).

    Attributes:
        name: a DNS label naming the policy (used in trailers and pull-request branch names).
        image: the repository to follow, any spelling (``nginx``, ``docker.io/library/nginx``,
            ``host:port/path``); no tag, no digest.
        policy: ``semver: {range}``, ``alphabetical: {order}`` or ``numerical: {order}``.
        filter_tags: optional ``filterTags: {pattern, extract}``.
        digest: ``pin`` writes ``newTag`` and ``digest`` (when the event carries a digest); ``none``
            writes only ``newTag`` and drops a stale ``digest``.
        commit_message: optional message template overriding the automation's; fields ``{env}``,
            ``{image}``, ``{entry}``, ``{policy}``, ``{old}``, ``{new}``, ``{digest}``.
        scan: optional tag scanning of the registry (:class:`TagScan`); without it only webhook events
            move the version.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    image: str = Field(description="repository to follow (no tag or digest); Docker Hub in any spelling")
    policy: PolicyChoice
    filter_tags: TagFilter | None = Field(default=None, alias="filterTags")
    digest: Literal["pin", "none"] = "none"
    commit_message: str | None = Field(default=None, alias="commitMessage")
    scan: TagScan | None = Field(
        default=None,
        description="also list the registry's tags at an interval (default: webhooks only); see TagScan",
    )

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _NAME_RE.match(value) or len(value) > 63:
            raise ValueError(f"image policy name {value!r} must be a DNS label (a-z, 0-9, '-')")
        return value

    @field_validator("image")
    @classmethod
    def _repository(cls, value: str) -> str:
        _, tag, digest = split_image_reference(value)
        if tag is not None or digest is not None:
            raise ValueError(f"image {value!r}: give the repository only, without a tag or digest")
        normalise_image(value)
        return value

    @field_validator("commit_message")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        if value is not None:
            check_message_template(value)
        return value

    # -- matching ------------------------------------------------------------------------------

    @property
    def repository(self) -> str:
        """The normalised repository (:func:`normalise_image`)."""
        return normalise_image(self.image)

    def matches(self, image: str) -> bool:
        """Whether ``image`` (any spelling, tag/digest ignored) is this policy's repository."""
        return _try_normalise(image) == self.repository

    # -- ordering ------------------------------------------------------------------------------

    def _key(self, value: str) -> tuple[Any, str]:
        kind = self.policy.kind
        if kind == "semver":
            v = parse_semver_tag(value)
            return (v, "" if v is not None else f"{value!r} is not a semantic version")
        if kind == "numerical":
            try:
                d = Decimal(value)
            except InvalidOperation:
                return None, f"{value!r} is not a number"
            return (d, "") if d.is_finite() else (None, f"{value!r} is not a finite number")
        return value, ""

    def verdict(self, tag: str | None) -> TagVerdict:
        """Whether the policy accepts ``tag`` and the value it orders it by.

        Args:
            tag: a pushed tag; ``None`` for a push by digest only (never accepted: policies are tag-based).
        """
        if tag is None or tag == "":
            return TagVerdict(tag or "", False, "no tag in the event and the policy is tag-based")
        value = tag
        if self.filter_tags is not None:
            extracted = self.filter_tags.apply(tag)
            if extracted is None:
                return TagVerdict(tag, False, f"tag {tag!r} does not match {self.filter_tags.pattern!r}")
            value = extracted
        key, why = self._key(value)
        if key is None:
            return TagVerdict(tag, False, why)
        if self.policy.semver is not None:
            rng = SemverRange(self.policy.semver.range)
            if key not in rng:
                return TagVerdict(tag, False, f"{value} is outside the range {rng.text!r}", key)
        return TagVerdict(tag, True, "", key)

    def _ordered_key(self, tag: str) -> Any:
        """The ordering key of a tag already in Git (filter and range not enforced); ``None`` when the
        tag cannot be ordered by this policy at all."""
        value = tag
        if self.filter_tags is not None:
            extracted = self.filter_tags.apply(tag)
            if extracted is None:
                return None
            value = extracted
        return self._key(value)[0]

    def _descending(self) -> bool:
        order = self.policy.alphabetical or self.policy.numerical
        return order is not None and order.order == "desc"

    def is_newer(self, candidate: str, current: str | None) -> bool:
        """Whether ``candidate`` (an allowed tag) should replace ``current`` (the tag in Git).

        ``current`` is ``None`` or cannot be ordered by this policy (``latest``, a tag outside the
        filter) → ``True``; otherwise ``candidate`` must be strictly newer in the policy's order (so a
        redelivery or an older tag never moves the version back).
        """
        cand = self.verdict(candidate)
        if not cand.allowed:
            return False
        if current is None:
            return True
        cur = self._ordered_key(current)
        if cur is None:
            return True
        return bool(cand.key < cur) if self._descending() else bool(cand.key > cur)

    def latest(self, tags: Iterable[str]) -> str | None:
        """The tag the policy selects among ``tags`` (for a periodic scan of a registry's tag list), or
        ``None`` when it accepts none of them. Ties (``1.0.0+a`` vs ``1.0.0+b``) keep the first seen."""
        best: TagVerdict | None = None
        for tag in tags:
            v = self.verdict(tag)
            if not v.allowed:
                continue
            if best is None or (v.key < best.key if self._descending() else v.key > best.key):
                best = v
        return best.tag if best is not None else None

    def newest(self, tags: Iterable[str], count: int) -> list[str]:
        """The ``count`` tags the policy ranks highest among ``tags`` (allowed ones only), best first: the
        candidates a tag scan resolves (:meth:`latest` is the first of them)."""
        allowed = [v for v in (self.verdict(t) for t in tags) if v.allowed]
        allowed.sort(key=lambda v: v.key, reverse=not self._descending())
        return [v.tag for v in allowed[:count]]


def check_message_template(template: str) -> str:
    """Validate a commit message template: ``str.format`` fields from ``{env}``, ``{image}``,
    ``{entry}``, ``{policy}``, ``{old}``, ``{new}``, ``{digest}`` only, and a non-empty first line.

    Raises:
        ValueError: naming the unknown field or the syntax problem.
    """
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"commit message template {template!r}: {exc}") from None
    unknown = sorted(fields - _TEMPLATE_FIELDS)
    if unknown:
        raise ValueError(
            f"commit message template {template!r}: unknown field(s) {', '.join(unknown)} "
            f"(known: {', '.join(sorted(_TEMPLATE_FIELDS))})"
        )
    if not template.strip():
        raise ValueError("commit message template must not be empty")
    return template
