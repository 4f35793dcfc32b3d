"""The ``envs/<env>.yaml`` file format: one :class:`Environment` per file.

Its JSON schema (``reconciler schema`` or :func:`environment_json_schema`) is what editors use.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from reconciler.model.health import ToolContractPolicy, UnverifiedPolicy
from reconciler.model.imagepolicy import ImagePolicy
from reconciler.model.remote import HostPattern
from reconciler.model.rollout import RolloutSpec

_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


class DriftMode(StrEnum):
    """What to do when another field manager changes fields this environment owns."""

    CORRECT = "correct"
    WARN = "warn"


class IgnoreRule(BaseModel):
    """Fields never compared or corrected: RFC 6901 JSON pointers, for objects matching the target."""

    model_config = ConfigDict(extra="forbid")

    paths: list[str] = Field(min_length=1, description="RFC 6901 JSON pointers, e.g. /spec/replicas")
    group: str | None = None
    kind: str | None = None
    name: str | None = Field(default=None, description="exact name or a regular expression")
    namespace: str | None = None

    @field_validator("paths")
    @classmethod
    def _pointers(cls, value: list[str]) -> list[str]:
        for p in value:
            if p and not p.startswith("/"):
                raise ValueError(f"JSON pointer {p!r} must start with '/' (RFC 6901)")
        return value

    @field_validator("name")
    @classmethod
    def _pattern(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"name {value!r} is not a valid regular expression: {exc}") from None
        return value


class SyncPolicy(BaseModel):
    """How and how often the environment is reconciled."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    interval: float = Field(default=30.0, gt=0, description="poll interval in seconds")
    prune: bool = True
    drift: DriftMode = DriftMode.CORRECT
    ignore: list[IgnoreRule] = Field(default_factory=list)
    allow_mass_prune: bool = Field(
        default=False, alias="allowMassPrune", description="allow a pass to delete over half the inventory"
    )


class HealthGate(BaseModel):
    """Health required after an apply: every object healthy within ``timeout`` seconds (objects nobody
    judged are ``Unverified``, handled as ``unverified`` says)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    timeout: float = Field(default=120.0, gt=0, description="seconds")
    no_controller_after: float = Field(
        default=60.0,
        gt=0,
        alias="noControllerAfter",
        description="seconds until a custom resource whose status was never written counts as Unverified "
        "(no controller)",
    )
    unverified: UnverifiedPolicy = Field(
        default=UnverifiedPolicy.WARN,
        description="what the gate does when objects are Unverified (nobody judged them): fail (the gate "
        "fails; onFailure: revert reverts), warn (the gate passes with a warning) or pass; the outcome is "
        "recorded as unverified in every case, never healthy",
    )
    tool_contract: ToolContractPolicy = Field(
        default=ToolContractPolicy.ENFORCE,
        alias="toolContract",
        description="what happens when an Agent requires a tool its MCP server does not list or whose input "
        "schema changed incompatibly: enforce (the pass is blocked before any write, a promotion into "
        "this environment is refused), warn (reported only) or off (not checked); judged from protocol "
        "probes, or a RemoteMCPServer's status.discoveredTools",
    )


class PolicySettings(BaseModel):
    """Which policy directories (Rego v1, conftest conventions; see ``reconciler.policy``) judge this
    environment's rendered objects before any write."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    paths: list[str] = Field(
        default_factory=list,
        description="directories of Rego policies and their data files, relative to the repository root, "
        "evaluated in addition to policies/ (or instead of it with replace: true)",
    )
    replace: bool = Field(
        default=False,
        description="true: only paths apply, not the repository's policies/ (paths: [] with replace: true "
        "turns policies off for this environment)",
    )
    timeout: float = Field(
        default=10.0,
        gt=0,
        le=300,
        description="seconds one evaluation of the environment's policies may take; past it the pass fails "
        "with nothing applied",
    )

    @field_validator("paths")
    @classmethod
    def _inside(cls, value: list[str]) -> list[str]:
        for v in value:
            p = Path(v)
            if not v.strip() or p.is_absolute() or ".." in p.parts:
                raise ValueError(f"policy path {v!r} must be a directory inside the repository")
        return value


class PromotionPolicy(BaseModel):
    """Where this environment's versions come from and how they arrive."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_env: str | None = Field(
        default=None, alias="from", description="the only allowed source environment"
    )
    via: Literal["push", "pr"] = "pr"
    require_health: Literal["healthy", "any"] = Field(default="healthy", alias="requireHealth")


class RemoteBasesPolicy(BaseModel):
    """Which remote bases and resources (Git URLs and ``http(s)://`` files named in the overlay's
    kustomizations, at any depth) a render may fetch, and the bounds of each fetch. None by default."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    allow: list[str] = Field(
        default_factory=list,
        description="host patterns, [SCHEME://]HOST[:PORT][/PATH]: e.g. github.com/acme/* (every repository "
        "of acme on github.com), gitlab.example.com (any repository there), 127.0.0.1:9418, "
        "file:///srv/git/* (local repositories need the file scheme); '*' stays within a host name or "
        "one path segment, and the remote's path must start with the pattern's",
    )
    timeout: float = Field(
        default=27.0,
        gt=0,
        le=300,
        description="seconds one fetch of a remote repository (all its Git commands together) or one HTTP "
        "request may take (kustomize's default); a URL's ?timeout= replaces it, up to 300",
    )
    max_bytes: int = Field(
        default=64 << 20,
        gt=0,
        alias="maxBytes",
        description="largest checked-out tree of one remote repository (bytes, submodules included); a "
        "larger one fails the render and is deleted",
    )

    @field_validator("allow")
    @classmethod
    def _patterns(cls, value: list[str]) -> list[str]:
        for text in value:
            HostPattern.parse(text)
        return value


class RenderSettings(BaseModel):
    """How the environment's overlay is rendered."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    remote_bases: RemoteBasesPolicy = Field(
        default_factory=RemoteBasesPolicy,
        alias="remoteBases",
        description="remote bases and resources the overlay may use (none unless allowed here)",
    )


class SecretRef(BaseModel):
    """A Secret in the target cluster, by name (and namespace)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(min_length=1, description="the Secret's name")
    namespace: str = Field(
        default="reconciler-system",
        min_length=1,
        description="the Secret's namespace (default reconciler-system, where the reconciler keeps its "
        "inventories: not the agents' namespace, whose readers should not see the key)",
    )


class Decryption(BaseModel):
    """How SOPS-encrypted manifests of the overlay are decrypted at render time (reconciler/render/sops.py).

    Modelled on Flux's Kustomization ``spec.decryption``: ``provider: sops`` and a ``secretRef`` whose keys
    ending in ``.agekey`` each hold age identities. Keys from the daemon's local key file
    (``--sops-age-key-file``, ``$RECONCILER_SOPS_AGE_KEY_FILE`` or ``$SOPS_AGE_KEY_FILE``) are used too;
    an encrypted file is decrypted whenever some key is available, with or without this field."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    provider: Literal["sops"] = Field(default="sops", description="the only provider: SOPS with age keys")
    secret_ref: SecretRef | None = Field(
        default=None,
        alias="secretRef",
        description="a Secret in the target cluster whose keys ending in .agekey hold age identities "
        "(AGE-SECRET-KEY-1... lines), read at every pass",
    )


class Environment(BaseModel):
    """One deployment environment: where it runs and how it is kept in sync.

    Loaded from ``envs/<name>.yaml``; ``name`` defaults to the file's stem.
    """

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str
    overlay: str = Field(
        description="path of the environment's kustomization, relative to the repository root"
    )
    namespace: str | None = Field(default=None, description="default namespace for namespaced objects")
    context: str | None = Field(default=None, description="kubeconfig context of the target cluster")
    sync: SyncPolicy = Field(default_factory=SyncPolicy)
    health: HealthGate = Field(default_factory=HealthGate)
    promotion: PromotionPolicy = Field(default_factory=PromotionPolicy)
    on_failure: Literal["revert", "none"] = Field(default="none", alias="onFailure")
    deletion_policy: Literal["orphan", "delete"] = Field(
        default="orphan",
        alias="deletionPolicy",
        description="what happens to this environment's objects when a commit removes this file: orphan "
        "(kept in the cluster, reported, inventory kept) or delete (pruned with the inventory)",
    )
    image_policies: list[ImagePolicy] = Field(
        default_factory=list,
        alias="imagePolicies",
        description="image automation: which pushed image versions this environment takes",
    )
    policies: PolicySettings = Field(
        default_factory=PolicySettings,
        description="policy as code: the repository's policies/ (and these directories) are evaluated on "
        "the rendered objects of every pass before any write; a deny or violation fails the pass, a warn is "
        "reported",
    )
    rollouts: list[RolloutSpec] = Field(
        default_factory=list,
        description="progressive delivery: per app, a canary or blue/green rollout through an HTTPRoute's "
        "backend weights, gated by PromQL analysis, rolled back in Git on failure",
    )
    render: RenderSettings = Field(
        default_factory=RenderSettings, description="rendering options: remote bases the overlay may fetch"
    )
    decryption: Decryption | None = Field(
        default=None,
        description="SOPS decryption of the overlay's encrypted manifests (age keys): the key Secret to "
        "read; files that carry SOPS metadata are decrypted after policies judged them (still encrypted) "
        "and before anything is applied; a file no key opens, or changed after encryption, fails the pass "
        "with nothing applied",
    )

    @field_validator("rollouts")
    @classmethod
    def _one_rollout_per_app(cls, value: list[RolloutSpec]) -> list[RolloutSpec]:
        seen: set[str] = set()
        for i, r in enumerate(value):
            if r.app in seen:
                raise ValueError(f"rollouts[{i}]: app {r.app!r} has a rollout already")
            seen.add(r.app)
        return value

    @field_validator("name")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _NAME_RE.match(value) or len(value) > 63:
            raise ValueError(f"environment name {value!r} must be a DNS label (a-z, 0-9, '-')")
        return value

    @field_validator("namespace")
    @classmethod
    def _namespace_label(cls, value: str | None) -> str | None:
        if value is not None and (not _NAME_RE.match(value) or len(value) > 63):
            raise ValueError(f"namespace {value!r} must be a DNS label (a-z, 0-9, '-'; at most 63)")
        return value

    @field_validator("overlay")
    @classmethod
    def _relative(cls, value: str) -> str:
        p = Path(value)
        if not value.strip() or p.is_absolute() or ".." in p.parts:
            raise ValueError(f"overlay {value!r} must be a path inside the repository")
        return value


def environment_json_schema() -> dict[str, Any]:
    """The JSON schema of ``envs/*.yaml`` (Draft 2020-12, as pydantic emits it)."""
    schema = Environment.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "reconciler Environment"
    return schema
