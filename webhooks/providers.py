"""Payload parsers: one function per provider, raw bytes + headers → normalised events.

Each parser reads ONLY the fields it needs and tolerates any shape elsewhere in the payload (GitHub's
``package_version.body`` is documented as a string but is an object for container packages — see
acceptance case 24). A needed field of the wrong type, missing, or invalid per the OCI/Git grammar raises
:class:`PayloadError` (a ``ValueError``) → HTTP 400 with the reason. Events of types a receiver does not
handle, and pushes without a tag (e.g. the per-platform manifests of a multi-arch index), are returned as
``ignored`` with a reason, never published.

Payload formats followed (public documentation of each provider):

* GitHub ``push``, ``package``, ``registry_package``, ``ping``: docs.github.com "Webhook events and payloads".
* GitLab "Push Hook"/"Tag Push Hook": docs.gitlab.com "Webhook events"; GitLab's container registry and
  CNCF Distribution send Distribution notifications (``{"events": [...]}``, distribution "notifications.md").
* Gitea/Forgejo ``push`` (GitHub-compatible payload), ``X-Gitea-Event``/``X-Gitea-Delivery``.
* Bitbucket Cloud ``repo:push`` (``push.changes[].old/new``), ``X-Request-UUID``;
  Bitbucket Data Center ``repo:refs_changed`` (``changes[].refId/fromHash/toHash``), ``X-Request-Id``.
* Docker Hub (``push_data.tag``, ``repository.repo_name``); Quay ``repo_push`` (``updated_tags``,
  ``docker_url``); Harbor 2.x default JSON (``PUSH_ARTIFACT``) and its CloudEvents format
  (``harbor.artifact.pushed``); Azure Container Registry (``action: push``, ``target``, ``request.host``);
  Google Artifact Registry notifications (``gcr`` topic, ``{action: INSERT, digest, tag}``) delivered by a
  Pub/Sub push subscription (``{"message": {"data": <base64>, "messageId"}}``).
* CloudEvents 1.0 JSON format (structured ``application/cloudevents+json``, batch, and HTTP binary mode
  with ``ce-*`` headers) and CDEvents ``dev.cdevents.artifact.published`` whose ``subject.id`` is an OCI
  package URL (purl-spec "oci" type: ``pkg:oci/<name>@<digest>?repository_url=...&tag=...``).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from pydantic import ValidationError

from webhooks.config import AuthMode, Provider, ReceiverConfig
from webhooks.events import ZERO_SHA, GitPushed, ImagePushed, PullRequestChanged
from webhooks.refs import parse_image_reference
from webhooks.verify import AuthSpec

__all__ = [
    "PROVIDERS",
    "Delivery",
    "Event",
    "ParseResult",
    "PayloadError",
    "ProviderSpec",
    "auth_spec_for",
    "parse_delivery",
]

Event = ImagePushed | GitPushed | PullRequestChanged


class PayloadError(ValueError):
    """The body is not a payload this provider understands (→ HTTP 400 with this message)."""


@dataclass(frozen=True)
class Delivery:
    """One received request.

    Attributes:
        receiver: the receiver it was addressed to.
        headers: request headers; lookups are case-insensitive when this is aiohttp's ``CIMultiDictProxy``
            (tests may pass any mapping; :meth:`header` also tries a case-insensitive scan).
        body: the raw body bytes.
        received_at: when the server received it (UTC); used when the payload carries no time.
    """

    receiver: ReceiverConfig
    headers: Mapping[str, str]
    body: bytes
    received_at: datetime = field(default_factory=lambda: datetime.now(UTC))

    def header(self, *names: str) -> str | None:
        """The first non-empty header among ``names`` (case-insensitive), or ``None``."""
        for name in names:
            value = self.headers.get(name)
            if value is None:
                low = name.lower()
                value = next((v for k, v in self.headers.items() if k.lower() == low), None)
            if value:
                return value.strip()
        return None

    def fallback_id(self) -> str:
        """``sha256:<hex>`` of receiver name + NUL + body: the delivery id when the provider sends none."""
        return "sha256:" + hashlib.sha256(self.receiver.name.encode() + b"\0" + self.body).hexdigest()

    @property
    def source(self) -> str:
        """``<provider>/<receiver>`` for the events' ``source`` field."""
        return f"{self.receiver.provider.value}/{self.receiver.name}"


@dataclass
class ParseResult:
    """What a delivery meant.

    Attributes:
        event_type: the provider's event name (for logs and the response).
        events: normalised events to publish, in payload order.
        ignored: one reason per part of the delivery that was deliberately not published.
    """

    event_type: str
    events: list[Event] = field(default_factory=list)
    ignored: list[str] = field(default_factory=list)


Parser = Callable[[Delivery], ParseResult]


@dataclass(frozen=True)
class ProviderSpec:
    """A provider's default authentication and its parser."""

    auth: AuthSpec
    parse: Parser


# --------------------------------------------------------------------------------------------------
# Field access: read only what is needed; complain precisely about what is needed and wrong.


def load_json(body: bytes) -> Any:
    """Decode a UTF-8 JSON body.

    Raises:
        PayloadError: not UTF-8, not JSON, or nested too deeply; the message gives line/column.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise PayloadError(f"body is not UTF-8 (byte {exc.start})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise PayloadError(
            f"body is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise PayloadError("body is not acceptable JSON: nested too deeply") from None
    except ValueError as exc:  # e.g. an integer literal over Python's digit limit
        raise PayloadError(f"body is not acceptable JSON: {exc}") from None


def _object(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise PayloadError(f"{where}: expected a JSON object, got {_kind(value)}")
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    return {
        dict: "object",
        list: "array",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
    }.get(type(value), type(value).__name__)


def _get(obj: Any, path: str) -> Any:
    """The value at dotted ``path`` in ``obj``, or ``None`` when any step is missing or not an object."""
    node = obj
    for part in path.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def _opt_str(obj: Any, path: str) -> str | None:
    """A string at ``path``; ``None`` when missing/null/empty. Raises PayloadError on another type."""
    value = _get(obj, path)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{path}: expected a string, got {_kind(value)}")
    return value.strip() or None


def _req_str(obj: Any, path: str) -> str:
    value = _opt_str(obj, path)
    if value is None:
        raise PayloadError(f"{path}: missing or empty")
    return value


def _list(obj: Any, path: str) -> list[Any]:
    value = _get(obj, path)
    if value is None:
        return []
    if not isinstance(value, list):
        raise PayloadError(f"{path}: expected an array, got {_kind(value)}")
    return value


def _time(value: Any, path: str, default: datetime) -> datetime:
    """RFC 3339 string or Unix seconds → aware UTC datetime; ``default`` when absent."""
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        raise PayloadError(f"{path}: expected a time, got boolean")
    try:
        if isinstance(value, (int, float)):
            return datetime.fromtimestamp(float(value), UTC)
        if isinstance(value, str):
            parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
            return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except (ValueError, OverflowError, OSError) as exc:
        raise PayloadError(f"{path}: not a valid time ({exc})") from None
    raise PayloadError(f"{path}: expected a time, got {_kind(value)}")


def _image(d: Delivery, where: str, delivery_id: str, **fields: Any) -> ImagePushed:
    try:
        return ImagePushed(source=d.source, delivery_id=delivery_id, **fields)
    except ValidationError as exc:
        raise PayloadError(f"{where}: " + "; ".join(_err(e) for e in exc.errors())) from None


def _git(d: Delivery, where: str, delivery_id: str, **fields: Any) -> GitPushed:
    try:
        return GitPushed(source=d.source, delivery_id=delivery_id, **fields)
    except ValidationError as exc:
        raise PayloadError(f"{where}: " + "; ".join(_err(e) for e in exc.errors())) from None


def _err(e: Any) -> str:
    loc = ".".join(str(x) for x in e.get("loc", ()))
    msg = str(e.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{loc}: {msg}" if loc else msg


def _ref_image(d: Delivery, where: str, delivery_id: str, ref: str, **extra: Any) -> ImagePushed:
    """An ImagePushed from a full reference string; ``extra`` tag/digest override the reference's."""
    try:
        parts = parse_image_reference(ref)
    except ValueError as exc:
        raise PayloadError(f"{where}: {exc}") from None
    fields: dict[str, Any] = {"tag": parts.tag, "digest": parts.digest}
    fields.update({k: v for k, v in extra.items() if v is not None})
    return _image(d, where, delivery_id, registry=parts.registry, repository=parts.repository, **fields)


def _no_tag(where: str) -> str:
    return (
        f"ignored: no tag ({where} is empty): "
        "an untagged manifest (e.g. one platform of an index) is not published"
    )


# --------------------------------------------------------------------------------------------------
# GitHub (push, package/registry_package for GHCR) and Gitea/Forgejo (GitHub-compatible push payload)


def _github_like_push(d: Delivery, body: Any, delivery_id: str) -> GitPushed:
    urls = [
        u
        for u in (
            _opt_str(body, p) for p in ("repository.clone_url", "repository.ssh_url", "repository.html_url")
        )
        if u
    ]
    full_name = _opt_str(body, "repository.full_name")
    repository = urls[0] if urls else full_name
    if repository is None:
        raise PayloadError("repository.clone_url / repository.full_name: missing")
    return _git(
        d,
        "push",
        delivery_id,
        repository=repository,
        full_name=full_name,
        urls=urls,
        ref=_req_str(body, "ref"),
        before=_req_str(body, "before"),
        after=_req_str(body, "after"),
    )


#: Pull-request actions that ask for a check: opened, reopened, and new commits (GitHub ``synchronize``,
#: Gitea/Forgejo ``synchronized``).
PR_ACTIONS = frozenset({"opened", "reopened", "synchronize", "synchronized"})


def _github_like_pull(d: Delivery, event: str, body: Any, delivery_id: str) -> ParseResult:
    """GitHub/Gitea ``pull_request``: a PullRequestChanged for :data:`PR_ACTIONS`, other actions ignored."""
    action = _opt_str(body, "action") or ""
    if action not in PR_ACTIONS:
        return ParseResult(event_type=event, ignored=[f"ignored: pull_request action {action!r}"])
    full_name = _opt_str(body, "repository.full_name")
    repository = _opt_str(body, "repository.clone_url") or full_name
    if repository is None:
        raise PayloadError("repository.clone_url / repository.full_name: missing")
    number = _get(body, "pull_request.number") or _get(body, "number")
    if not isinstance(number, int):
        raise PayloadError("pull_request.number: missing or not an integer")
    try:
        changed = PullRequestChanged(
            repository=repository,
            full_name=full_name,
            number=number,
            action=action,
            head_ref=_req_str(body, "pull_request.head.ref"),
            head_sha=_req_str(body, "pull_request.head.sha"),
            base_ref=_req_str(body, "pull_request.base.ref"),
            source=d.source,
            delivery_id=delivery_id,
        )
    except ValidationError as exc:
        raise PayloadError("pull_request: " + "; ".join(_err(e) for e in exc.errors())) from None
    return ParseResult(event_type=event, events=[changed])


def _github_package(d: Delivery, event: str, body: Any, delivery_id: str) -> ParseResult:
    result = ParseResult(event_type=event)
    root = "package" if event == "package" else "registry_package"
    pkg = _object(_get(body, root), root)
    action = _opt_str(body, "action") or ""
    if action not in ("published", "updated"):
        result.ignored.append(f"ignored: {event} action {action!r} is not a publish")
        return result
    ptype = (_opt_str(pkg, "package_type") or _opt_str(pkg, "ecosystem") or "").lower()
    if ptype != "container":
        result.ignored.append(f"ignored: {root}.package_type {ptype!r} is not a container image")
        return result
    name = _req_str(pkg, "name")
    owner = _opt_str(pkg, "namespace") or _req_str(pkg, "owner.login")
    registry = "ghcr.io"
    reg_url = _opt_str(pkg, "registry.url")
    if reg_url:
        host = urlsplit(reg_url if "://" in reg_url else f"https://{reg_url}").netloc
        registry = host or registry
    version = _object(_get(pkg, "package_version"), f"{root}.package_version")
    tag = _opt_str(version, "container_metadata.tag.name")
    digest = _opt_str(version, "container_metadata.tag.digest") or _opt_str(
        version, "container_metadata.manifest.digest"
    )
    if digest is None:
        v = _opt_str(version, "version")
        digest = v if v and v.startswith("sha256:") else None
    if tag is None:
        result.ignored.append(
            "ignored: package version has no tag (container_metadata.tag.name is empty): "
            "an untagged manifest (e.g. one platform of a multi-arch index) is not published"
        )
        return result
    pushed_at = _time(
        _get(version, "updated_at") or _get(version, "created_at"),
        f"{root}.package_version.updated_at",
        d.received_at,
    )
    if pushed_at.year < 1971:  # GitHub sends 0001-01-01T00:00:00Z when it has no time: not a real time
        pushed_at = d.received_at
    # OCI repository names are lowercase; GitHub owner logins are not (case 24: Acme-AI → acme-ai).
    result.events.append(
        _image(
            d,
            root,
            delivery_id,
            registry=registry,
            repository=f"{owner}/{name}".lower(),
            tag=tag,
            digest=digest,
            media_type=_opt_str(version, "container_metadata.manifest.media_type"),
            pushed_at=pushed_at,
        )
    )
    return result


def parse_github(d: Delivery) -> ParseResult:
    """GitHub ``push``/``package``/``registry_package`` (``X-GitHub-Event``); ``ping`` and others ignored."""
    event = d.header("X-GitHub-Event")
    if event is None:
        raise PayloadError("missing X-GitHub-Event header")
    delivery_id = d.header("X-GitHub-Delivery") or d.fallback_id()
    if event == "ping":
        return ParseResult(event_type=event, ignored=["ignored: ping"])
    if event not in ("push", "package", "registry_package", "pull_request"):
        return ParseResult(event_type=event, ignored=[f"ignored: GitHub event {event!r} is not handled"])
    body = _object(load_json(d.body), "body")
    if event == "pull_request":
        return _github_like_pull(d, event, body, delivery_id)
    if event == "push":
        return ParseResult(event_type=event, events=[_github_like_push(d, body, delivery_id)])
    return _github_package(d, event, body, delivery_id)


def parse_gitea(d: Delivery) -> ParseResult:
    """Gitea/Forgejo ``push`` and ``pull_request`` (``X-Gitea-Event`` / ``X-Forgejo-Event``; new commits may
    come as ``pull_request_sync``); other events ignored."""
    event = d.header("X-Gitea-Event", "X-Forgejo-Event", "X-Gogs-Event")
    if event is None:
        raise PayloadError("missing X-Gitea-Event header")
    delivery_id = d.header("X-Gitea-Delivery", "X-Forgejo-Delivery", "X-Gogs-Delivery") or d.fallback_id()
    if event not in ("push", "pull_request", "pull_request_sync"):
        return ParseResult(event_type=event, ignored=[f"ignored: Gitea event {event!r} is not handled"])
    body = _object(load_json(d.body), "body")
    if event != "push":
        return _github_like_pull(d, event, body, delivery_id)
    return ParseResult(event_type=event, events=[_github_like_push(d, body, delivery_id)])


# --------------------------------------------------------------------------------------------------
# GitLab


def _distribution_event(d: Delivery, ev: Any, where: str, fallback_id: str) -> tuple[ImagePushed | None, str]:
    """One Distribution/ACR event object → (event or None, ignore reason)."""
    ev = _object(ev, where)
    action = _opt_str(ev, "action") or ""
    if action != "push":
        return None, f"ignored: {where}.action {action!r} is not a push"
    tag = _opt_str(ev, "target.tag")
    if tag is None:
        return None, _no_tag(f"{where}.target.tag")
    repository = _req_str(ev, "target.repository")
    host = _opt_str(ev, "request.host")
    if host is None:
        url = _opt_str(ev, "target.url")
        host = urlsplit(url).netloc if url else None
    if not host:
        raise PayloadError(f"{where}.request.host: missing (and no target.url to take the registry from)")
    event_id = _opt_str(ev, "id") or fallback_id
    return _image(
        d,
        where,
        event_id,
        registry=host,
        repository=repository,
        tag=tag,
        digest=_opt_str(ev, "target.digest"),
        media_type=_opt_str(ev, "target.mediaType"),
        pushed_at=_time(_get(ev, "timestamp"), f"{where}.timestamp", d.received_at),
    ), ""


def parse_distribution(d: Delivery) -> ParseResult:
    """CNCF Distribution notification envelope ``{"events": [...]}`` (also GitLab's container registry)."""
    body = _object(load_json(d.body), "body")
    result = ParseResult(event_type="registry-notification")
    events = _list(body, "events")
    if not events and "events" not in body:
        raise PayloadError("events: missing (not a registry notification envelope)")
    fallback = d.fallback_id()
    for i, ev in enumerate(events):
        image, reason = _distribution_event(d, ev, f"events[{i}]", f"{fallback}/{i}")
        if image is not None:
            result.events.append(image)
        else:
            result.ignored.append(reason)
    return result


def parse_gitlab(d: Delivery) -> ParseResult:
    """GitLab "Push Hook"/"Tag Push Hook" (``X-Gitlab-Event``) and container registry notifications."""
    event = d.header("X-Gitlab-Event")
    if event is None:
        return parse_distribution(d)
    delivery_id = d.header("X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID") or d.fallback_id()
    if event not in ("Push Hook", "Tag Push Hook", "System Hook"):
        return ParseResult(event_type=event, ignored=[f"ignored: GitLab event {event!r} is not handled"])
    body = _object(load_json(d.body), "body")
    kind = _opt_str(body, "object_kind") or _opt_str(body, "event_name") or ""
    if kind not in ("push", "tag_push"):
        return ParseResult(event_type=event, ignored=[f"ignored: GitLab object_kind {kind!r} is not a push"])
    urls = [
        u
        for u in (
            _opt_str(body, p)
            for p in (
                "project.git_http_url",
                "project.git_ssh_url",
                "project.web_url",
                "repository.git_http_url",
                "repository.git_ssh_url",
                "repository.homepage",
            )
        )
        if u
    ]
    urls = list(dict.fromkeys(urls))
    full_name = _opt_str(body, "project.path_with_namespace")
    repository = urls[0] if urls else full_name
    if repository is None:
        raise PayloadError("project.git_http_url / project.path_with_namespace: missing")
    return ParseResult(
        event_type=event,
        events=[
            _git(
                d,
                "push",
                delivery_id,
                repository=repository,
                full_name=full_name,
                urls=urls,
                ref=_req_str(body, "ref"),
                before=_req_str(body, "before"),
                after=_req_str(body, "after"),
            )
        ],
    )


# --------------------------------------------------------------------------------------------------
# Bitbucket


def parse_bitbucket(d: Delivery) -> ParseResult:
    """Bitbucket Cloud ``repo:push``: one GitPushed per ``push.changes[]`` entry; other keys ignored."""
    event = d.header("X-Event-Key")
    if event is None:
        raise PayloadError("missing X-Event-Key header")
    if event != "repo:push":
        return ParseResult(event_type=event, ignored=[f"ignored: Bitbucket event {event!r} is not handled"])
    delivery_id = d.header("X-Request-UUID") or d.fallback_id()
    body = _object(load_json(d.body), "body")
    full_name = _opt_str(body, "repository.full_name")
    html = _opt_str(body, "repository.links.html.href")
    repository = html or full_name
    if repository is None:
        raise PayloadError("repository.links.html.href / repository.full_name: missing")
    result = ParseResult(event_type=event)
    for i, change in enumerate(_list(body, "push.changes")):
        where = f"push.changes[{i}]"
        change = _object(change, where)
        side_name = "new" if _get(change, "new") is not None else "old"
        if _get(change, side_name) is None:
            raise PayloadError(f"{where}: neither new nor old is set")
        side = _object(_get(change, side_name), f"{where}.{side_name}")
        ref_type = _req_str(side, "type")
        name = _req_str(side, "name")
        prefix = {"branch": "refs/heads/", "tag": "refs/tags/", "annotated_tag": "refs/tags/"}.get(ref_type)
        if prefix is None:
            result.ignored.append(f"ignored: {where} ref type {ref_type!r}")
            continue
        before = _opt_str(change, "old.target.hash") if _get(change, "old") is not None else None
        after = _opt_str(change, "new.target.hash") if _get(change, "new") is not None else None
        result.events.append(
            _git(
                d,
                where,
                delivery_id,
                repository=repository,
                full_name=full_name,
                urls=[html] if html else [],
                ref=prefix + name,
                before=before or ZERO_SHA,
                after=after or ZERO_SHA,
            )
        )
    if not result.events and not result.ignored:
        result.ignored.append("ignored: push.changes is empty")
    return result


def parse_bitbucket_server(d: Delivery) -> ParseResult:
    """Bitbucket Data Center ``repo:refs_changed``; ``diagnostics:ping`` and others ignored."""
    event = d.header("X-Event-Key")
    if event is None:
        raise PayloadError("missing X-Event-Key header")
    if event != "repo:refs_changed":
        return ParseResult(event_type=event, ignored=[f"ignored: Bitbucket event {event!r} is not handled"])
    delivery_id = d.header("X-Request-Id") or d.fallback_id()
    body = _object(load_json(d.body), "body")
    slug = _req_str(body, "repository.slug")
    key = _req_str(body, "repository.project.key")
    urls: list[str] = []
    clones = _list(body, "repository.links.clone")
    for i, c in enumerate(clones):
        href = _opt_str(c, "href") if isinstance(c, dict) else None
        if href and (_opt_str(c, "name") or "").lower() in ("http", "https"):
            urls.insert(0, href)
        elif href:
            urls.append(href)
        elif not isinstance(c, dict):
            raise PayloadError(f"repository.links.clone[{i}]: expected a JSON object")
    full_name = f"{key}/{slug}"
    result = ParseResult(event_type=event)
    for i, change in enumerate(_list(body, "changes")):
        where = f"changes[{i}]"
        change = _object(change, where)
        ref = _opt_str(change, "refId") or _req_str(change, "ref.id")
        result.events.append(
            _git(
                d,
                where,
                delivery_id,
                repository=urls[0] if urls else full_name,
                full_name=full_name,
                urls=urls,
                ref=ref,
                before=_req_str(change, "fromHash"),
                after=_req_str(change, "toHash"),
            )
        )
    if not result.events:
        result.ignored.append("ignored: changes is empty")
    return result


# --------------------------------------------------------------------------------------------------
# Registries


def parse_dockerhub(d: Delivery) -> ParseResult:
    """Docker Hub push webhook: ``repository.repo_name`` + ``push_data.tag`` on ``docker.io``."""
    body = _object(load_json(d.body), "body")
    repo = _req_str(body, "repository.repo_name")
    tag = _opt_str(body, "push_data.tag")
    result = ParseResult(event_type="push")
    if tag is None:
        result.ignored.append(_no_tag("push_data.tag"))
        return result
    result.events.append(
        _image(
            d,
            "repository",
            d.fallback_id(),
            registry="docker.io",
            repository=repo,
            tag=tag,
            pushed_at=_time(_get(body, "push_data.pushed_at"), "push_data.pushed_at", d.received_at),
        )
    )
    return result


def parse_quay(d: Delivery) -> ParseResult:
    """Quay ``repo_push`` notification: one event per ``updated_tags`` entry."""
    body = _object(load_json(d.body), "body")
    result = ParseResult(event_type="repo_push")
    if "updated_tags" not in body:
        result.ignored.append("ignored: not a repository push notification (no updated_tags)")
        return result
    repo = _req_str(body, "repository")
    docker_url = _opt_str(body, "docker_url")
    registry = "quay.io"
    if docker_url:
        try:
            registry = parse_image_reference(docker_url).registry
        except ValueError as exc:
            raise PayloadError(f"docker_url: {exc}") from None
    fallback = d.fallback_id()
    tags = _list(body, "updated_tags")
    for i, tag in enumerate(tags):
        if not isinstance(tag, str):
            raise PayloadError(f"updated_tags[{i}]: expected a string, got {_kind(tag)}")
        delivery_id = fallback if len(tags) == 1 else f"{fallback}/{tag}"
        result.events.append(
            _image(
                d,
                f"updated_tags[{i}]",
                delivery_id,
                registry=registry,
                repository=repo,
                tag=tag,
                pushed_at=d.received_at,
            )
        )
    if not tags:
        result.ignored.append(_no_tag("updated_tags"))
    return result


def _harbor_registry(resource_url: str, repo_full_name: str, tag: str | None, where: str) -> str:
    """The ``host[:port]`` of a Harbor ``resource_url`` (``host[:port]/<repo_full_name>[:tag|@digest]``)."""
    value = resource_url.strip()
    if "://" in value:
        value = value.split("://", 1)[1]
    value = value.split("@", 1)[0]
    if tag and value.endswith(f":{tag}"):
        value = value[: -len(tag) - 1]
    suffix = f"/{repo_full_name}"
    if value.endswith(suffix):
        return value[: -len(suffix)]
    try:
        parts = parse_image_reference(resource_url)
    except ValueError as exc:
        raise PayloadError(f"{where}.resource_url: {exc}") from None
    if parts.repository != repo_full_name:
        raise PayloadError(
            f"{where}.resource_url {resource_url!r} does not name repository {repo_full_name!r}"
        )
    return parts.registry


def parse_harbor(d: Delivery) -> ParseResult:
    """Harbor ``PUSH_ARTIFACT`` (default JSON) or ``harbor.artifact.pushed`` (CloudEvents format)."""
    body = _object(load_json(d.body), "body")
    cloudevent = "specversion" in body
    etype = _opt_str(body, "type") or ""
    result = ParseResult(event_type=etype)
    if etype not in ("PUSH_ARTIFACT", "harbor.artifact.pushed"):
        result.ignored.append(f"ignored: Harbor event type {etype!r} is not a push")
        return result
    data_key = "data" if cloudevent else "event_data"
    data = _object(_get(body, data_key), data_key)
    delivery_id = (_opt_str(body, "id") if cloudevent else None) or d.fallback_id()
    pushed_at = _time(
        _get(body, "time") if cloudevent else _get(body, "occur_at"),
        "time" if cloudevent else "occur_at",
        d.received_at,
    )
    repo = _req_str(data, "repository.repo_full_name")
    resources = _list(data, "resources")
    for i, res in enumerate(resources):
        where = f"{data_key}.resources[{i}]"
        res = _object(res, where)
        tag = _opt_str(res, "tag")
        if tag is None:
            result.ignored.append(_no_tag(f"{where}.tag"))
            continue
        registry = _harbor_registry(_req_str(res, "resource_url"), repo, tag, where)
        result.events.append(
            _image(
                d,
                where,
                delivery_id if len(resources) == 1 else f"{delivery_id}/{i}",
                registry=registry,
                repository=repo,
                tag=tag,
                digest=_opt_str(res, "digest"),
                pushed_at=pushed_at,
            )
        )
    if not resources:
        result.ignored.append(f"ignored: {data_key}.resources is empty")
    return result


def parse_acr(d: Delivery) -> ParseResult:
    """Azure Container Registry webhook: one event object (``action: push``); other actions ignored."""
    body = _object(load_json(d.body), "body")
    result = ParseResult(event_type=_opt_str(body, "action") or "")
    image, reason = _distribution_event(d, body, "body", d.fallback_id())
    if image is None:
        result.ignored.append(reason)
    else:
        result.events.append(image)
    return result


def parse_gar(d: Delivery) -> ParseResult:
    """Artifact Registry notification (``gcr`` topic) in a Pub/Sub push envelope; tagged ``INSERT`` only."""
    body = _object(load_json(d.body), "body")
    message = _object(_get(body, "message"), "message")
    delivery_id = _opt_str(message, "messageId") or _opt_str(message, "message_id") or d.fallback_id()
    raw = _req_str(message, "data")
    try:
        decoded = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        raise PayloadError("message.data: not valid base64") from None
    try:
        note = _object(load_json(decoded), "message.data")
    except PayloadError as exc:
        raise PayloadError(f"message.data: {exc}") from None
    action = _opt_str(note, "action") or ""
    result = ParseResult(event_type=action)
    if action != "INSERT":
        result.ignored.append(f"ignored: Artifact Registry action {action!r} is not INSERT")
        return result
    tag_ref = _opt_str(note, "tag")
    if tag_ref is None:
        result.ignored.append(_no_tag("message.data.tag"))
        return result
    digest = None
    digest_ref = _opt_str(note, "digest")
    if digest_ref:
        digest = digest_ref.rsplit("@", 1)[1] if "@" in digest_ref else None
    image = _ref_image(
        d,
        "message.data.tag",
        delivery_id,
        tag_ref,
        digest=digest,
        pushed_at=_time(
            _get(message, "publishTime") or _get(message, "publish_time"),
            "message.publishTime",
            d.received_at,
        ),
    )
    if image.tag is None:
        result.ignored.append(_no_tag("message.data.tag"))
        return result
    result.events.append(image)
    return result


# --------------------------------------------------------------------------------------------------
# CloudEvents / CDEvents / generic

_CE_ATTRS = ("specversion", "id", "source", "type", "subject", "time", "datacontenttype", "dataschema")
CDEVENTS_ARTIFACT_PUBLISHED = "dev.cdevents.artifact.published."


def _ce_data(ctype: str, raw: bytes, where: str) -> Any:
    if "json" in ctype.lower() or not ctype:
        try:
            return load_json(raw)
        except PayloadError as exc:
            raise PayloadError(f"{where}: {exc}") from None
    return raw.decode("utf-8", errors="replace")


def _cloudevents(d: Delivery) -> tuple[str, list[dict[str, Any]]]:
    """Decode the delivery into ``(mode, [event])``; each event is a dict of attributes + ``data``."""
    ctype = (d.header("Content-Type") or "").split(";", 1)[0].strip().lower()
    if d.header("ce-specversion") is not None:
        attrs: dict[str, Any] = {}
        for k, v in d.headers.items():
            if k.lower().startswith("ce-"):
                attrs[k[3:].lower()] = unquote(v)
        attrs["data"] = _ce_data(ctype, d.body, "body") if d.body else None
        return "binary", [attrs]
    body = load_json(d.body)
    if ctype == "application/cloudevents-batch+json" or isinstance(body, list):
        if not isinstance(body, list):
            raise PayloadError("batch body: expected a JSON array")
        return "batch", [_object(e, f"[{i}]") for i, e in enumerate(body)]
    body = _object(body, "body")
    if "specversion" in body:
        return "structured", [body]
    if isinstance(body.get("context"), dict) and "subject" in body:
        ctx = body["context"]
        return "cdevent", [
            {
                "specversion": "1.0",
                "id": ctx.get("id"),
                "source": ctx.get("source"),
                "type": ctx.get("type"),
                "time": ctx.get("timestamp"),
                "data": body,
            }
        ]
    raise PayloadError("not a CloudEvent: no ce-specversion header and no specversion attribute")


def _ce_path(event: dict[str, Any], path: str, where: str) -> str | None:
    value = _get(event, path)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PayloadError(f"{where}: {path}: expected a string, got {_kind(value)}")
    return value.strip() or None


def _purl_image(
    d: Delivery, purl: str, delivery_id: str, pushed_at: datetime, where: str
) -> tuple[ImagePushed | None, str]:
    """CDEvents ``subject.id`` as an OCI purl → ImagePushed (None + reason when not an image / untagged)."""
    if not purl.startswith("pkg:oci/"):
        return None, f"ignored: {where} {purl[:80]!r} is not an OCI package URL"
    rest = purl[len("pkg:oci/") :]
    rest, _, _subpath = rest.partition("#")
    rest, _, query = rest.partition("?")
    name, _, version = rest.partition("@")
    qualifiers = {k.lower(): v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    name = unquote(name).lower()
    digest = unquote(version) or None
    tag = qualifiers.get("tag") or None
    repo_url = qualifiers.get("repository_url")
    if not repo_url:
        raise PayloadError(f"{where}: OCI purl has no repository_url qualifier")
    repo_url = repo_url.rstrip("/")
    ref = repo_url if repo_url.rsplit("/", 1)[-1] == name else f"{repo_url}/{name}"
    if tag is None:
        return None, _no_tag(f"{where} tag qualifier")
    return _ref_image(d, where, delivery_id, ref, tag=tag, digest=digest, pushed_at=pushed_at), ""


def parse_cloudevents(d: Delivery) -> ParseResult:
    """CloudEvents 1.0 (structured, batch or binary) mapped by the receiver's ``mappings`` or CDEvents."""
    mode, events = _cloudevents(d)
    result = ParseResult(event_type=mode)
    for i, ev in enumerate(events):
        where = f"event[{i}]" if len(events) > 1 else "event"
        spec = ev.get("specversion")
        if spec != "1.0":
            raise PayloadError(f"{where}: specversion {spec!r} is not supported (1.0 only)")
        for attr in ("id", "source", "type"):
            if not isinstance(ev.get(attr), str) or not ev[attr]:
                raise PayloadError(f"{where}: required attribute {attr!r} is missing or not a string")
        if "data" not in ev and "data_base64" in ev:
            raw = ev["data_base64"]
            if not isinstance(raw, str):
                raise PayloadError(f"{where}: data_base64: expected a string")
            try:
                decoded = base64.b64decode(raw, validate=True)
            except (binascii.Error, ValueError):
                raise PayloadError(f"{where}: data_base64: not valid base64") from None
            ev = {
                **ev,
                "data": _ce_data(str(ev.get("datacontenttype") or "application/json"), decoded, where),
            }
        etype: str = ev["type"]
        delivery_id: str = ev["id"]
        pushed_at = _time(ev.get("time"), f"{where}.time", d.received_at)
        mapping = next((m for m in d.receiver.mappings if m.type == etype), None)
        if mapping is not None:
            ref = _ce_path(ev, mapping.image, where)
            if ref is None:
                raise PayloadError(f"{where}: {mapping.image}: missing (mapping for {etype})")
            tag = _ce_path(ev, mapping.tag, where) if mapping.tag else None
            digest = _ce_path(ev, mapping.digest, where) if mapping.digest else None
            image = _ref_image(d, where, delivery_id, ref, tag=tag, digest=digest, pushed_at=pushed_at)
            if image.tag is None:
                result.ignored.append(_no_tag(f"{where} {mapping.tag or mapping.image}"))
            else:
                result.events.append(image)
        elif etype.startswith(CDEVENTS_ARTIFACT_PUBLISHED):
            purl = _ce_path(ev, "data.subject.id", where)
            if purl is None:
                raise PayloadError(f"{where}: data.subject.id: missing (CDEvents artifact.published)")
            found, reason = _purl_image(d, purl, delivery_id, pushed_at, f"{where}.data.subject.id")
            if found is None:
                result.ignored.append(reason)
            else:
                result.events.append(found)
        else:
            result.ignored.append(f"ignored: CloudEvent type {etype!r} has no mapping")
    return result


def parse_generic(d: Delivery) -> ParseResult:
    """Generic JSON: ``{"image": "host/repo[:tag][@digest]", "tag"?, "digest"?, "mediaType"?, "pushedAt"?}``
    → ImagePushed, or ``{"repository", "ref", "before", "after"}`` → GitPushed. Delivery id from
    ``X-Delivery-Id``/``X-Request-Id``/``id``."""
    body = _object(load_json(d.body), "body")
    delivery_id = d.header("X-Delivery-Id", "X-Request-Id") or _opt_str(body, "id") or d.fallback_id()
    if "ref" in body:
        return ParseResult(
            event_type="git-push",
            events=[
                _git(
                    d,
                    "body",
                    delivery_id,
                    repository=_req_str(body, "repository"),
                    ref=_req_str(body, "ref"),
                    before=_opt_str(body, "before") or ZERO_SHA,
                    after=_req_str(body, "after"),
                )
            ],
        )
    image = _ref_image(
        d,
        "image",
        delivery_id,
        _req_str(body, "image"),
        tag=_opt_str(body, "tag"),
        digest=_opt_str(body, "digest"),
        media_type=_opt_str(body, "mediaType"),
        pushed_at=_time(_get(body, "pushedAt"), "pushedAt", d.received_at),
    )
    result = ParseResult(event_type="image-push")
    if image.tag is None:
        result.ignored.append(_no_tag("tag"))
    else:
        result.events.append(image)
    return result


_PATH = AuthSpec(AuthMode.PATH)
_GITHUB = ProviderSpec(AuthSpec(AuthMode.HMAC, ("X-Hub-Signature-256",), "sha256="), parse_github)

PROVIDERS: dict[Provider, ProviderSpec] = {
    Provider.GITHUB: _GITHUB,
    Provider.GHCR: _GITHUB,
    Provider.GITEA: ProviderSpec(
        AuthSpec(AuthMode.HMAC, ("X-Gitea-Signature", "X-Forgejo-Signature", "X-Gogs-Signature")), parse_gitea
    ),
    Provider.GITLAB: ProviderSpec(
        AuthSpec(AuthMode.TOKEN, ("X-Gitlab-Token", "Authorization")), parse_gitlab
    ),
    Provider.BITBUCKET: ProviderSpec(
        AuthSpec(AuthMode.HMAC, ("X-Hub-Signature",), "sha256="), parse_bitbucket
    ),
    Provider.BITBUCKET_SERVER: ProviderSpec(
        AuthSpec(AuthMode.HMAC, ("X-Hub-Signature",), "sha256="), parse_bitbucket_server
    ),
    Provider.DOCKERHUB: ProviderSpec(_PATH, parse_dockerhub),
    Provider.HARBOR: ProviderSpec(AuthSpec(AuthMode.TOKEN, ("Authorization",)), parse_harbor),
    Provider.QUAY: ProviderSpec(_PATH, parse_quay),
    Provider.ACR: ProviderSpec(_PATH, parse_acr),
    Provider.GAR: ProviderSpec(_PATH, parse_gar),
    Provider.DISTRIBUTION: ProviderSpec(AuthSpec(AuthMode.TOKEN, ("Authorization",)), parse_distribution),
    Provider.CLOUDEVENTS: ProviderSpec(_PATH, parse_cloudevents),
    Provider.GENERIC: ProviderSpec(AuthSpec(AuthMode.HMAC, ("X-Signature",), "sha256="), parse_generic),
}


def auth_spec_for(receiver: ReceiverConfig) -> AuthSpec:
    """The receiver's verification: its ``auth`` override, else its provider's default."""
    if receiver.auth is not None:
        o = receiver.auth
        return AuthSpec(o.mode, (o.header,) if o.header else (), o.prefix if o.mode is AuthMode.HMAC else "")
    return PROVIDERS[receiver.provider].auth


def parse_delivery(d: Delivery) -> ParseResult:
    """Parse an already-authenticated delivery with its receiver's provider parser.

    Raises:
        PayloadError: the body (or a header the provider always sends) is malformed.
    """
    return PROVIDERS[d.receiver.provider].parse(d)
