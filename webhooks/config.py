"""Receiver settings: a YAML or JSON file listing the webhook receivers.

Example (YAML; keys may be camelCase or snake_case)::

    host: 127.0.0.1
    port: 9292
    natsUrl: nats://127.0.0.1:4222
    maxBodyBytes: 1048576
    receivers:
      - name: ghcr-acme
        provider: github            # package / registry_package / push events
        secretEnv: GHCR_HOOK_SECRET
      - name: harbor
        provider: harbor
        secret: "Bearer harbor-hook-token"   # the Authorization header value Harbor sends
      - name: dockerhub
        provider: dockerhub         # signs nothing: POST /hook/dockerhub/<secret>
        secretEnv: DOCKERHUB_HOOK_TOKEN
      - name: ce
        provider: cloudevents
        secret: path-token-value
        mappings:
          - type: com.example.registry.artifact.pushed
            image: data.repository
            tag: data.tag
            digest: data.digest
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from enum import StrEnum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic.alias_generators import to_camel, to_snake
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from reconciler.errors import ConfigError

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "AuthMode",
    "AuthOverride",
    "CloudEventMapping",
    "Provider",
    "ReceiverConfig",
    "WebhookSettings",
    "load_settings",
]

DEFAULT_MAX_BODY_BYTES = 1024 * 1024  # 1 MiB


class Provider(StrEnum):
    """The payload formats a receiver understands."""

    GITHUB = "github"  # push, package, registry_package (GHCR), ping
    GHCR = "ghcr"  # alias of github, for readability
    GITLAB = "gitlab"  # push/tag push hooks + container registry notifications
    GITEA = "gitea"  # also Forgejo
    BITBUCKET = "bitbucket"  # Bitbucket Cloud
    BITBUCKET_SERVER = "bitbucket-server"  # Bitbucket Data Center / Server
    DOCKERHUB = "dockerhub"
    HARBOR = "harbor"
    QUAY = "quay"
    ACR = "acr"
    GAR = "gar"  # Google Artifact Registry via a Pub/Sub push subscription
    DISTRIBUTION = "distribution"  # CNCF Distribution registry notifications (also GitLab's registry)
    CLOUDEVENTS = "cloudevents"  # CloudEvents 1.0 structured/binary, incl. CDEvents artifact.published
    GENERIC = "generic"  # generic HMAC-signed JSON


class AuthMode(StrEnum):
    """How a delivery proves it comes from the configured sender."""

    HMAC = "hmac"  # HMAC-SHA256 of the raw body in a header
    TOKEN = "token"  # a shared token in a header
    PATH = "path"  # a secret token as the last URL path segment


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class AuthOverride(_Model):
    """Replace a provider's default verification (e.g. a CloudEvents sender that signs with HMAC).

    Attributes:
        mode: ``hmac``, ``token`` or ``path``.
        header: the header carrying the signature/token (ignored for ``path``).
        prefix: text before the hex digest in an ``hmac`` header (``sha256=``; empty for none).
    """

    mode: AuthMode
    header: str | None = None
    prefix: str = "sha256="

    @model_validator(mode="after")
    def _header_needed(self) -> AuthOverride:
        if self.mode is not AuthMode.PATH and not self.header:
            raise ValueError(f"auth.header is required for auth.mode={self.mode.value}")
        return self


class CloudEventMapping(_Model):
    """Where to find the image in a CloudEvent of one ``type``.

    Paths are dotted: ``data.repository`` reads the event data; any other first segment reads a
    CloudEvents context attribute (``subject``, ``source``). ``image`` may be a full reference
    (``host/repo:tag@digest``); ``tag``/``digest`` paths, when given, take precedence over it.
    """

    type: str = Field(min_length=1)
    image: str = Field(min_length=1)
    tag: str | None = None
    digest: str | None = None


class ReceiverConfig(_Model):
    """One receiver: endpoint ``POST /hook/<name>`` (``/hook/<name>/<token>`` for path-token auth).

    Attributes:
        name: URL-safe receiver name.
        provider: the payload format.
        secret: the shared secret / token, inline.
        secret_env: name of an environment variable holding it (``secretEnv`` in the file).
        auth: optional override of the provider's default verification.
        mappings: CloudEvents type → image mapping (``cloudevents`` only; CDEvents
            ``dev.cdevents.artifact.published.*`` are understood without a mapping).
    """

    name: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
    provider: Provider
    secret: SecretStr | None = None
    secret_env: str | None = None
    auth: AuthOverride | None = None
    mappings: list[CloudEventMapping] = Field(default_factory=list)

    @model_validator(mode="before")
    @classmethod
    def _singular_mapping(cls, data: Any) -> Any:
        # Accept the single-mapping spelling used by the acceptance cases (``event_mapping: {...}``).
        if isinstance(data, dict):
            for key in ("event_mapping", "eventMapping"):
                if key in data:
                    data = dict(data)
                    single = data.pop(key)
                    data.setdefault("mappings", [single])
        return data

    @model_validator(mode="after")
    def _one_secret(self) -> ReceiverConfig:
        if (self.secret is None) == (self.secret_env is None):
            raise ValueError(f"receiver {self.name!r}: give exactly one of secret or secretEnv")
        if self.mappings and self.provider is not Provider.CLOUDEVENTS:
            raise ValueError(f"receiver {self.name!r}: mappings apply to provider cloudevents only")
        return self

    def secret_bytes(self) -> bytes:
        """The secret as UTF-8 bytes, reading ``secret_env`` from the environment when configured.

        Raises:
            ConfigError: when the variable is unset or empty, or the secret is empty.
        """
        if self.secret is not None:
            value = self.secret.get_secret_value()
        else:
            value = os.environ.get(self.secret_env or "", "")
            if not value:
                raise ConfigError(
                    f"receiver {self.name!r}: environment variable {self.secret_env} is unset or empty"
                )
        if not value:
            raise ConfigError(f"receiver {self.name!r}: secret is empty")
        return value.encode()


class WebhookSettings(_Model):
    """The webhook server's settings.

    Attributes:
        host: listen address (loopback by default; put a TLS-terminating proxy in front).
        port: listen port.
        nats_url: ``nats://host:port`` of the JetStream server.
        max_body_bytes: request bodies above this many bytes are refused with 413 (default 1 MiB).
        publish_timeout: seconds to wait for the JetStream acknowledgement before answering 503.
        receivers: the receivers; names must be unique.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=9292, ge=0, le=65535)
    nats_url: str = "nats://127.0.0.1:4222"
    max_body_bytes: int = Field(default=DEFAULT_MAX_BODY_BYTES, ge=1)
    publish_timeout: float = Field(default=5.0, gt=0)
    receivers: list[ReceiverConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> WebhookSettings:
        seen: set[str] = set()
        for r in self.receivers:
            if r.name in seen:
                raise ValueError(f"duplicate receiver name {r.name!r}")
            seen.add(r.name)
        return self

    def receiver(self, name: str) -> ReceiverConfig | None:
        """The receiver called ``name``, or ``None``."""
        return next((r for r in self.receivers if r.name == name), None)


def _line_of(doc: Any, loc: Sequence[int | str]) -> int | None:
    """1-based line of the deepest key/item of ``loc`` found in a ruamel round-trip document."""
    line: int | None = None
    node = doc
    for part in loc:
        lc = getattr(node, "lc", None)
        try:
            if isinstance(part, str) and isinstance(node, dict):
                part = next((k for k in (part, to_snake(part)) if k in node), part)
            if isinstance(part, str) and isinstance(node, dict) and part in node:
                if lc is not None:
                    line = lc.key(part)[0] + 1
                node = node[part]
            elif isinstance(part, int) and isinstance(node, list) and 0 <= part < len(node):
                if lc is not None:
                    line = lc.item(part)[0] + 1
                node = node[part]
            else:
                break
        except (KeyError, IndexError, TypeError, AttributeError):
            break
    return line


def load_settings(path: str | Path) -> WebhookSettings:
    """Read and validate a settings file (``.json`` as JSON, anything else as YAML 1.2).

    Raises:
        ConfigError: the file is unreadable or not valid YAML/JSON, or a field is invalid; the
            message names the file, the field path and (for YAML) the line.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    try:
        raw: Any = json.loads(text) if p.suffix == ".json" else YAML(typ="rt").load(text)
    except (json.JSONDecodeError, YAMLError) as exc:
        raise ConfigError(f"{p}: not valid {'JSON' if p.suffix == '.json' else 'YAML'}: {exc}") from None
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: the top level must be a mapping")
    try:
        return WebhookSettings.model_validate(_plain(raw))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            loc = [x for x in err["loc"] if isinstance(x, (str, int))]
            field = ".".join(str(x) for x in loc) or "<top>"
            line = _line_of(raw, loc)
            where = f" (line {line})" if line else ""
            problems.append(f"{field}{where}: {err['msg']}")
        raise ConfigError(f"{p}: invalid settings: " + "; ".join(problems)) from None


def _plain(value: Any) -> Any:
    """Convert ruamel round-trip containers to plain dicts/lists/scalars."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value
