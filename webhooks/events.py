"""Normalised events that the webhook receivers publish to NATS and the daemon consumes.

Every receiver turns its provider's payload into one of two shapes:

* :class:`ImagePushed` — a registry reported that a tagged image (manifest or index) was pushed.
  Published on ``registry.image.pushed.<image>`` (see :func:`reconciler.bus.image_pushed_subject`).
* :class:`GitPushed` — a Git host reported that a ref moved. Published on
  ``reconciler.git.push.<repository>`` (see :func:`reconciler.bus.git_push_subject`).

The JSON body of a message is ``model_dump_json()``; the daemon reads it back with
``ImagePushed.model_validate_json(data)``. The name grammar follows the OCI Distribution
Specification v1.1 (§ "Pulling manifests": ``<name>``, ``<reference>``) and the OCI image-spec
descriptor digest grammar (https://github.com/opencontainers/image-spec/blob/main/descriptor.md#digests).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, computed_field, field_validator

__all__ = [
    "DOCKER_HUB",
    "ZERO_SHA",
    "GitPushed",
    "ImagePushed",
    "normalise_registry",
]

DOCKER_HUB = "docker.io"
ZERO_SHA = "0" * 40  # Git hosts' "no commit" marker for created/deleted refs

# OCI distribution spec: path components separated by '/', each [a-z0-9]+ joined by '.', '_', '__' or '-+'.
_REPO_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
REPOSITORY_RE = re.compile(rf"^{_REPO_COMPONENT}(?:/{_REPO_COMPONENT})*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")
DIGEST_RE = re.compile(r"^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$")
# host[:port]; host is a DNS name, an IPv4 address or a bracketed IPv6 address.
REGISTRY_RE = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?$"
)
GIT_SHA_RE = re.compile(r"^(?:[0-9a-f]{40}|[0-9a-f]{64})$")


def _git_sha(value: str) -> str:
    value = value.lower()
    if not GIT_SHA_RE.match(value):
        raise ValueError(f"{value!r} is not a 40- or 64-hex Git object id")
    return value


#: A Git object id (SHA-1 or SHA-256 hex), lower-cased.
GitSha = Annotated[str, AfterValidator(_git_sha)]

# Host names that all mean Docker Hub (the Docker CLI normalises them to docker.io).
_DOCKER_HUB_ALIASES = frozenset(
    {"docker.io", "index.docker.io", "registry-1.docker.io", "registry.hub.docker.com"}
)


def normalise_registry(host: str) -> str:
    """Return the canonical form of a registry host: lowercased, Docker Hub aliases → ``docker.io``.

    Args:
        host: ``host`` or ``host:port`` as a registry reports it (no scheme, no path).

    Raises:
        ValueError: when ``host`` is not a valid ``host[:port]``.
    """
    value = host.strip().lower()
    if value in _DOCKER_HUB_ALIASES:
        return DOCKER_HUB
    if not REGISTRY_RE.match(value):
        raise ValueError(f"registry {host!r} is not a valid host[:port]")
    port = value.rsplit(":", 1)[1] if ":" in value and not value.endswith("]") else None
    if port is not None and not 0 < int(port) < 65536:
        raise ValueError(f"registry {host!r}: port out of range")
    return value


def _check_repository(value: str) -> str:
    if not REPOSITORY_RE.match(value) or len(value) > 255:
        raise ValueError(
            f"repository {value!r} is not a valid OCI repository name (lowercase path components, no host)"
        )
    return value


def _check_tag(value: str | None) -> str | None:
    if value is not None and not TAG_RE.match(value):
        raise ValueError(f"tag {value!r} is not a valid OCI tag ([A-Za-z0-9_][A-Za-z0-9._-]{{0,127}})")
    return value


def _check_digest(value: str | None) -> str | None:
    if value is not None and not DIGEST_RE.match(value):
        raise ValueError(f"digest {value!r} is not sha256:<64 hex> or sha512:<128 hex>")
    return value


def _check_aware(value: datetime) -> datetime:
    if value.tzinfo is None:
        raise ValueError("pushed_at must carry a time zone")
    return value.astimezone(UTC)


def _utcnow() -> datetime:
    return datetime.now(UTC)


class ImagePushed(BaseModel):
    """A registry reported a pushed image.

    Attributes:
        registry: registry host with its port, lowercase (``ghcr.io``, ``harbor.example:8443``);
            Docker Hub is always ``docker.io``.
        repository: the repository path without the host (``acme-ai/planner``); Docker Hub's
            ``library/`` prefix is kept exactly as the provider spells it.
        tag: the pushed tag (case-sensitive), or ``None`` when the provider reported none.
        digest: ``sha256:<hex>`` of the pushed manifest or index, when reported.
        media_type: the manifest media type, when reported.
        pushed_at: when the registry says the push happened (UTC); the receive time when it says nothing.
        source: ``<provider>/<receiver name>``.
        delivery_id: the provider's delivery id, or a sha256 of receiver name + body when it sends none.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    registry: Annotated[str, AfterValidator(normalise_registry)]
    repository: Annotated[str, AfterValidator(_check_repository)]
    tag: Annotated[str | None, AfterValidator(_check_tag)] = None
    digest: Annotated[str | None, AfterValidator(_check_digest)] = None
    media_type: str | None = None
    pushed_at: Annotated[datetime, AfterValidator(_check_aware)] = Field(default_factory=_utcnow)
    source: str = Field(min_length=1)
    delivery_id: str = Field(min_length=1)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def image(self) -> str:
        """``registry/repository`` (no tag, no digest): the name image policies match on."""
        return f"{self.registry}/{self.repository}"

    @property
    def reference(self) -> str:
        """The full pull reference: ``image[:tag][@digest]``."""
        ref = self.image
        if self.tag:
            ref += f":{self.tag}"
        if self.digest:
            ref += f"@{self.digest}"
        return ref


class GitPushed(BaseModel):
    """A Git host reported that a ref moved.

    Attributes:
        repository: the repository's clone URL as the host reports it (HTTPS when available), or its
            full name (``owner/name``) when the host sends no URL.
        full_name: ``owner/name`` (``project/slug`` on Bitbucket Data Center) when known.
        urls: every URL the host reported for the repository (clone HTTPS, clone SSH, web page).
        ref: the full ref name (``refs/heads/main``, ``refs/tags/v1``).
        before: the commit the ref pointed to before the push; 40 zeros when the ref was created.
        after: the commit it points to now; 40 zeros when the ref was deleted.
        source: ``<provider>/<receiver name>``.
        delivery_id: the provider's delivery id, or a sha256 of receiver name + body.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    repository: str = Field(min_length=1)
    full_name: str | None = None
    urls: list[str] = Field(default_factory=list)
    ref: str = Field(min_length=1)
    before: GitSha
    after: GitSha
    source: str = Field(min_length=1)
    delivery_id: str = Field(min_length=1)

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str) -> str:
        if not value.startswith("refs/") or any(c in value for c in " ~^:?*[\\") or ".." in value:
            raise ValueError(f"ref {value!r} is not a full Git ref name (refs/heads/..., refs/tags/...)")
        return value

    @property
    def created(self) -> bool:
        """The ref did not exist before this push."""
        return set(self.before) == {"0"}

    @property
    def deleted(self) -> bool:
        """The push deleted the ref."""
        return set(self.after) == {"0"}


class PullRequestChanged(BaseModel):
    """A Git host reported that a pull request was opened, reopened, or its head moved (new commits).

    Attributes:
        repository: the repository's clone URL as the host reports it, or its full name.
        full_name: ``owner/name`` when known.
        number: the pull request's number on the host.
        action: the host's word (``opened``, ``synchronize``/``synchronized``, ``reopened``).
        head_ref: the branch proposing the change (``promote/staging/abc1234``).
        head_sha: the head commit the host saw.
        base_ref: the branch it would be merged into.
        source: ``<provider>/<receiver name>``.
        delivery_id: the provider's delivery id.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    repository: str = Field(min_length=1)
    full_name: str | None = None
    number: int = Field(ge=1)
    action: str = Field(min_length=1)
    head_ref: str = Field(min_length=1)
    head_sha: GitSha
    base_ref: str = Field(min_length=1)
    source: str = Field(min_length=1)
    delivery_id: str = Field(min_length=1)
