"""Who may call which MCP tool: bearer tokens mapping to an identity and an allow-list, per-caller rate
limits, and the environment file's ``mcp.allow`` (``reconciler.model.environment.McpAccess``).

The tokens file (``--tokens-file``, ``$RECONCILER_MCP_TOKENS_FILE``; in-cluster a mounted Secret) is YAML
or JSON::

    callers:
      - identity: platform-ops            # recorded with every write call (notes, history, NATS)
        tokenSha256: "<64 hex>"           # SHA-256 of the token (or token: "<the token itself>")
        allow: [proposePromotion, requestSync]   # write tools this caller may call; reads are always allowed
        ratePerSecond: 10                 # sustained tool calls per second (default 10)
        burst: 20                         # calls allowed at once (default 2 x ratePerSecond)

Tokens are compared by their SHA-256 digest in constant time and are never logged. A write tool runs only
when both the caller's ``allow`` and the environment's ``mcp.allow`` name it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from reconciler.errors import ConfigError

#: The tools that change something (through Git or the bus): refused unless allowed.
WriteTool = Literal[
    "proposePromotion", "proposeRollback", "requestSync", "suspendEnvironment", "resumeEnvironment"
]
WRITE_TOOLS: tuple[str, ...] = (
    "proposePromotion",
    "proposeRollback",
    "requestSync",
    "suspendEnvironment",
    "resumeEnvironment",
)

#: JSON-RPC error codes of refusals (the server-defined range of JSON-RPC 2.0, -32000 to -32099).
FORBIDDEN = -32003
RATE_LIMITED = -32029
UNAUTHORIZED = -32001

ENV_TOKENS_FILE = "RECONCILER_MCP_TOKENS_FILE"


class CallerSpec(BaseModel):
    """One caller of the tokens file."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    identity: str = Field(min_length=1, max_length=200, description="who the caller is (one line)")
    token: str | None = Field(default=None, min_length=16, description="the bearer token itself")
    token_sha256: str | None = Field(
        default=None, alias="tokenSha256", pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the token, hex"
    )
    allow: list[WriteTool] = Field(default_factory=list, description="write tools this caller may call")
    rate_per_second: float = Field(default=10.0, gt=0, le=10_000, alias="ratePerSecond")
    burst: int | None = Field(default=None, ge=1, le=100_000)

    @field_validator("identity")
    @classmethod
    def _one_line(cls, value: str) -> str:
        from reconciler.promote.rollback import check_identity

        return check_identity(value)

    @model_validator(mode="after")
    def _one_token(self) -> CallerSpec:
        if (self.token is None) == (self.token_sha256 is None):
            raise ValueError("give exactly one of token and tokenSha256")
        return self

    @property
    def digest(self) -> str:
        """The token's SHA-256, hex."""
        if self.token_sha256 is not None:
            return self.token_sha256
        assert self.token is not None
        return hashlib.sha256(self.token.encode()).hexdigest()


class TokensFile(BaseModel):
    """The tokens file: its callers."""

    model_config = ConfigDict(extra="forbid")

    callers: list[CallerSpec] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> TokensFile:
        seen: set[str] = set()
        for i, c in enumerate(self.callers):
            if c.digest in seen:
                raise ValueError(f"callers[{i}] ({c.identity}): the same token as an earlier caller")
            seen.add(c.digest)
        return self


def load_tokens(path: Path) -> TokensFile:
    """Read and check a tokens file (YAML or JSON).

    Raises:
        ConfigError: naming the file and the field at fault (never a token's value).
    """
    from ruamel.yaml import YAML
    from ruamel.yaml.error import YAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror or exc}") from None
    try:
        data = YAML(typ="safe", pure=True).load(text) if text.strip() else {}
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" line {mark.line + 1}" if mark is not None else ""
        raise ConfigError(f"{path}{where}: not YAML: {getattr(exc, 'problem', exc)}") from None
    try:
        return TokensFile.model_validate(json.loads(json.dumps(data, default=str)))
    except ValidationError as exc:
        first = exc.errors()[0]
        loc = ".".join(str(p) for p in first["loc"]) or "(top)"
        raise ConfigError(f"{path}: {loc}: {first['msg']}") from None


@dataclass
class Caller:
    """An authenticated caller: identity, the write tools it may call, its rate limit."""

    identity: str
    allow: frozenset[str]
    rate_per_second: float = 10.0
    burst: int = 20


@dataclass
class _Bucket:
    tokens: float
    at: float


@dataclass
class RateLimiter:
    """A token bucket per caller identity (``rate_per_second`` refill, ``burst`` capacity), thread-safe."""

    _buckets: dict[str, _Bucket] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self, caller: Caller, now: float | None = None) -> bool:
        """Spend one call of ``caller``'s bucket; ``False`` when it is empty (the call must be refused)."""
        t = time.monotonic() if now is None else now
        with self._lock:
            b = self._buckets.get(caller.identity)
            if b is None:
                b = self._buckets[caller.identity] = _Bucket(float(caller.burst), t)
            b.tokens = min(float(caller.burst), b.tokens + (t - b.at) * caller.rate_per_second)
            b.at = t
            if b.tokens < 1.0:
                return False
            b.tokens -= 1.0
            return True


@dataclass
class Access:
    """The server's callers. Without a tokens file every HTTP caller is ``anonymous`` and read-only; a
    stdio caller is the local user (``local``), allowed the write tools the environment files allow (it
    could run ``reconciler promote`` itself)."""

    tokens: TokensFile | None = None
    anonymous_rate: float = 10.0
    limiter: RateLimiter = field(default_factory=RateLimiter)

    def __post_init__(self) -> None:
        self._by_digest: dict[str, Caller] = {}
        for c in self.tokens.callers if self.tokens else []:
            burst = c.burst if c.burst is not None else max(1, int(c.rate_per_second * 2))
            self._by_digest[c.digest] = Caller(c.identity, frozenset(c.allow), c.rate_per_second, burst)

    @property
    def required(self) -> bool:
        """Whether HTTP callers must present a token."""
        return self.tokens is not None

    def authenticate(self, authorization: str | None) -> Caller | str:
        """The caller for an ``Authorization`` header value, or why it is refused (a message that never
        contains the token)."""
        if not self.required:
            return Caller("anonymous", frozenset(), self.anonymous_rate, max(1, int(self.anonymous_rate * 2)))
        if not authorization:
            return "missing bearer token: send 'Authorization: Bearer <token>'"
        scheme, _, token = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return "the Authorization header is not 'Bearer <token>'"
        digest = hashlib.sha256(token.strip().encode()).hexdigest()
        for known, caller in self._by_digest.items():
            if hmac.compare_digest(known, digest):
                return caller
        return "unknown bearer token"

    def local(self) -> Caller:
        """The stdio caller."""
        return Caller(
            "local", frozenset(WRITE_TOOLS), self.anonymous_rate, max(1, int(self.anonymous_rate * 2))
        )

    def write_refusal(self, caller: Caller, tool: str, env_name: str, env_allow: list[str]) -> str | None:
        """Why ``caller`` may not call write tool ``tool`` on environment ``env_name`` (``None``: it may)."""
        if tool not in env_allow:
            allowed = ", ".join(env_allow) or "none"
            return (
                f"tool {tool} is disabled for environment {env_name!r}: envs/{env_name}.yaml "
                f"mcp.allow does not list it (allowed: {allowed})"
            )
        if tool not in caller.allow:
            if caller.identity == "anonymous":
                return f"tool {tool} needs an authenticated caller: the server has no tokens file"
            return f"caller {caller.identity!r} may not call {tool} (its allow-list in the tokens file)"
        return None
