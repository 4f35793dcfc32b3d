"""The ``envs/<env>.yaml`` file format: one :class:`Environment` per file.

Its JSON schema (``reconciler schema`` or :func:`environment_json_schema`) is what editors use.
"""

from __future__ import annotations

import re
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

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


class HelmSettings(BaseModel):
    """Whether the overlay's kustomizations may inflate Helm charts (``helmCharts``), as ``kustomize build
    --enable-helm`` does. Off by default."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    enabled: bool = Field(
        default=False,
        description="inflate helmCharts (and helmChartInflationGenerator) with the pinned helm binary; when "
        "false a kustomization with charts fails the render. Charts are read from the repository "
        "(helmGlobals.chartHome); a chart that is not there is pulled only from a repository that "
        "remoteBases.allow allows",
    )
    timeout: float = Field(
        default=120.0, gt=0, le=900, description="seconds each helm command (template, pull) may take"
    )
    kube_version: str | None = Field(
        default=None,
        alias="kubeVersion",
        description="replaces every chart's kubeVersion (Capabilities.KubeVersion), like kustomize's "
        "--helm-kube-version",
    )
    api_versions: list[str] = Field(
        default_factory=list,
        alias="apiVersions",
        description="when set, replaces every chart's apiVersions (Capabilities.APIVersions), like "
        "kustomize's --helm-api-versions",
    )


class RenderSettings(BaseModel):
    """How the environment's overlay is rendered."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    remote_bases: RemoteBasesPolicy = Field(
        default_factory=RemoteBasesPolicy,
        alias="remoteBases",
        description="remote bases and resources the overlay may use (none unless allowed here)",
    )
    helm: HelmSettings = Field(
        default_factory=HelmSettings,
        description="Helm charts in the overlay's kustomizations (helmCharts): off unless enabled here",
    )


class NotificationSecretRef(BaseModel):
    """Where a notification target's address and token are: a Secret the daemon reads, or a path on the
    daemon's machine; never in Git. Keys: ``address`` (the URL) and ``token`` (see
    reconciler/observe/notify.py)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, description="a Secret (keys: address, token) the daemon reads")
    namespace: str | None = Field(
        default=None, description="the Secret's namespace (default: the environment's namespace)"
    )
    file: str | None = Field(
        default=None,
        description="instead of a Secret: an absolute path on the daemon's machine, either a directory with "
        "one file per key (a mounted Secret) or a YAML/JSON file mapping the keys",
    )

    @model_validator(mode="after")
    def _one_source(self) -> NotificationSecretRef:
        if (self.name is None) == (self.file is None):
            raise ValueError("set exactly one of name (a Secret) and file (a path on the daemon's machine)")
        if self.file is not None and not Path(self.file).is_absolute():
            raise ValueError(
                f"file {self.file!r} must be an absolute path on the daemon's machine (never a file in Git)"
            )
        if self.name is not None and (
            not _NAME_RE.match(self.name.replace(".", "-")) or len(self.name) > 253
        ):
            raise ValueError(f"Secret name {self.name!r} is not a valid object name")
        return self


class NotificationTarget(BaseModel):
    """One receiver of the environment's notifications (reconciler/observe/notify.py; the anchor is Flux's
    notification-controller Provider and Alert)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(description="names the target in logs and metrics (unique in the environment)")
    type: Literal["slack", "webhook", "commit-status"] = Field(
        description='slack: a Slack-compatible incoming webhook ({"text": ...}); webhook: a JSON POST, '
        "signed with X-Reconciler-Signature: sha256=<hex HMAC-SHA256 of the body> when the secret has a "
        "token; commit-status: the reconciler/<env> commit statuses, posted with the secret's token"
    )
    secret_ref: NotificationSecretRef = Field(
        alias="secretRef",
        description="where the address (URL) and token are: a Secret or a file, never Git",
    )
    event_severity: Literal["info", "error"] = Field(
        default="error",
        alias="eventSeverity",
        description="error: failed passes and gates, rollbacks, drift, promotions, suspend/resume; info: "
        "also successful syncs that changed objects, passed gates and sync requests (not for "
        "commit-status)",
    )
    events: list[
        Literal[
            "pass-failed",
            "gate-failed",
            "rollback",
            "drift",
            "promotion",
            "suspend",
            "resume",
            "sync",
            "gate-passed",
            "sync-requested",
        ]
    ] = Field(default_factory=list, description="only these kinds (default: every kind of that severity)")

    @field_validator("name")
    @classmethod
    def _label(cls, value: str) -> str:
        if not _NAME_RE.match(value) or len(value) > 63:
            raise ValueError(f"notification target name {value!r} must be a DNS label (a-z, 0-9, '-')")
        return value


class KubeconfigSecretRef(BaseModel):
    """A Secret holding a kubeconfig of the target cluster (the convention of Flux's
    ``spec.kubeConfig.secretRef``): read through the daemon's own cluster client, its current context used."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    name: str = Field(description="the Secret's name")
    namespace: str | None = Field(
        default=None,
        description="the Secret's namespace (default: reconciler-system, where the daemon keeps inventories)",
    )
    key: str = Field(default="value", description="the data key holding the kubeconfig (YAML)")

    @field_validator("name", "namespace")
    @classmethod
    def _dns(cls, value: str | None) -> str | None:
        if value is not None and (
            not re.match(r"^[a-z0-9]([-.a-z0-9]*[a-z0-9])?$", value) or len(value) > 253
        ):
            raise ValueError(f"{value!r} is not a valid Kubernetes object name")
        return value


class ClusterSpec(BaseModel):
    """The target cluster given by something else than a kubeconfig context."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    secret_ref: KubeconfigSecretRef | None = Field(
        default=None,
        alias="secretRef",
        description="a Secret (in the daemon's own cluster) whose key holds a kubeconfig of the target "
        "cluster",
    )


class McpAccess(BaseModel):
    """What agents may do to this environment through reconciler's MCP server (``reconciler mcp serve``,
    ``reconciler run --mcp``): its read tools always; the write tools listed here, for callers whose
    bearer token allows them too. Every write goes through Git or the bus, never to the cluster."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    allow: list[
        Literal[
            "proposePromotion", "proposeRollback", "requestSync", "suspendEnvironment", "resumeEnvironment"
        ]
    ] = Field(
        default_factory=list,
        description="write tools enabled for this environment: proposePromotion (a promotion into it, as "
        "`reconciler promote --pr`), proposeRollback (as `reconciler rollback`, by the environment's "
        "promotion.via), requestSync (a NATS reconcile request), suspendEnvironment / resumeEnvironment (as "
        "`reconciler suspend/resume --nats`: the reconciler-control key-value bucket); none by default "
        "(read-only)",
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


def _first_repeat(names: list[str]) -> int | None:
    """The index of the first name that occurred before in ``names``, else ``None``."""
    seen: set[str] = set()
    for i, name in enumerate(names):
        if name in seen:
            return i
        seen.add(name)
    return None


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
    context: str | None = Field(
        default=None,
        description="kubeconfig context of the target cluster, one of the daemon's kubeconfig "
        "(--kubeconfig); unset: the daemon's own cluster (its --context, or the current context, or "
        "in-cluster)",
    )
    cluster: ClusterSpec | None = Field(
        default=None,
        description="the target cluster by a kubeconfig Secret (cluster.secretRef), for a daemon running "
        "in a cluster; not together with context",
    )
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
        default_factory=RenderSettings,
        description="rendering options: remote bases the overlay may fetch, Helm charts",
    )
    notifications: list[NotificationTarget] = Field(
        default_factory=list,
        description="where this environment's events go: Slack-compatible webhooks, signed JSON webhooks "
        "and Git host commit statuses (failed passes and gates, rollbacks, drift, promotions; successful "
        "syncs with eventSeverity: info)",
    )

    mcp: McpAccess = Field(
        default_factory=McpAccess,
        description="MCP server access: which write tools agents may call on this environment (read-only "
        "by default)",
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
        i = _first_repeat([r.app for r in value])
        if i is not None:
            raise ValueError(f"rollouts[{i}]: app {value[i].app!r} has a rollout already")
        return value

    @field_validator("notifications")
    @classmethod
    def _unique_targets(cls, value: list[NotificationTarget]) -> list[NotificationTarget]:
        i = _first_repeat([t.name for t in value])
        if i is not None:
            raise ValueError(f"notifications[{i}]: a target named {value[i].name!r} exists already")
        if sum(t.type == "commit-status" for t in value) > 1:
            raise ValueError("notifications: at most one target of type commit-status")
        return value

    @field_validator("context")
    @classmethod
    def _context_name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("context must not be empty (leave it out for the daemon's own cluster)")
        return value

    @field_validator("cluster")
    @classmethod
    def _one_target(cls, value: ClusterSpec | None, info: ValidationInfo) -> ClusterSpec | None:
        if value is not None and value.secret_ref is not None and info.data.get("context"):
            raise ValueError(
                "context and cluster.secretRef both name the target cluster: keep only one of them"
            )
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
