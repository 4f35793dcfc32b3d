"""Daemon settings (pydantic-settings): command-line values override ``RECONCILER_*`` variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from reconciler.paths import default_cache_dir

#: Headers an authenticating proxy sets that ``actions_trust_proxy_header`` may name (oauth2-proxy's
#: ``--pass-user-headers`` and ``--set-xauthrequest`` names).
PROXY_IDENTITY_HEADERS = (
    "X-Forwarded-User",
    "X-Forwarded-Email",
    "X-Forwarded-Preferred-Username",
    "X-Auth-Request-User",
    "X-Auth-Request-Email",
    "X-Auth-Request-Preferred-Username",
)


class DaemonSettings(BaseSettings):
    """Everything ``reconciler run`` needs."""

    model_config = SettingsConfigDict(env_prefix="RECONCILER_", extra="ignore")

    repo: str = Field(description="clone URL or local path of the environment repository")
    branch: str = "main"
    envs: list[str] = Field(
        default_factory=list, description="environments to reconcile; empty = all in envs/"
    )
    kubeconfig: Path | None = None
    context: str | None = None
    nats_url: str | None = None
    prometheus_url: str | None = Field(
        default=None,
        description="Prometheus base URL for rollout analysis (RECONCILER_PROMETHEUS_URL); an environment's "
        "rollouts[].analysis.prometheus wins",
    )
    cache_dir: Path = Field(default_factory=default_cache_dir)
    sops_age_key_file: Path | None = Field(
        default=None,
        description="local age key file (AGE-SECRET-KEY-1... lines) for SOPS-encrypted manifests "
        "(RECONCILER_SOPS_AGE_KEY_FILE, reconciler run --sops-age-key-file; else $SOPS_AGE_KEY_FILE); used "
        "with the keys of an environment's decryption.secretRef",
    )
    watch_local: bool = Field(default=True, description="watch a local repository path with watchdog")
    poll_interval: float | None = Field(
        default=None, gt=0, description="override every environment's interval (s)"
    )
    drift_watch: bool = True
    image_ack_wait: float = Field(
        default=30.0,
        gt=0,
        description="seconds before JetStream redelivers an image event a crashed daemon had not "
        "acknowledged (RECONCILER_IMAGE_ACK_WAIT)",
    )
    commit_status: bool = Field(
        default=True,
        description="post each environment's outcome (pass failed or blocked, health gate pending, passed "
        "or failed) as a commit status reconciler/<env> on the commit, when the repository's Git host is "
        "known and has a token (RECONCILER_GIT_HOST, RECONCILER_GIT_HOST_TOKEN …; promote/statuses.py); "
        "RECONCILER_COMMIT_STATUS=false turns it off",
    )
    promotion_records: bool = Field(
        default=True,
        description="after each new revision: wait for the health gate, record the outcome as a Git note "
        "and, with onFailure: revert, revert failed promotions",
    )
    shard: bool = Field(
        default=False,
        description="share the environments with the other replicas of this installation through "
        "per-environment leases in the NATS key-value bucket reconciler-leases; each environment is "
        "reconciled by one replica at a time (RECONCILER_SHARD, reconciler run --shard; needs nats_url)",
    )
    replica_id: str = Field(
        default="",
        description="this replica's unique name among the shards (RECONCILER_REPLICA_ID, e.g. the pod "
        "name); '' = host name and process id",
    )
    shard_lease_ttl: float = Field(
        default=10.0,
        ge=4.0,
        description="seconds an environment's lease stays held without renewal (renewed every ttl/8 s); "
        "a dead replica's environments are taken over within 1.25 x ttl seconds, and a replica whose "
        "renewals fail stops writing 0.75 x ttl seconds after its last one (RECONCILER_SHARD_LEASE_TTL)",
    )
    nats_replicas: int = Field(
        default=1,
        ge=1,
        le=5,
        description="copies of the lease bucket a clustered NATS keeps, when the daemon creates it "
        "(RECONCILER_NATS_REPLICAS; 3 for a three-node JetStream cluster)",
    )
    actions_token: SecretStr | None = Field(
        default=None,
        description="bearer token that enables the actions API and the status page's buttons "
        "(RECONCILER_ACTIONS_TOKEN); prefer actions_token_file",
    )
    actions_token_file: Path | None = Field(
        default=None,
        description="file holding that token (RECONCILER_ACTIONS_TOKEN_FILE, reconciler run "
        "--actions-token-file), e.g. a mounted Secret; read when the HTTP server starts",
    )
    actions_trust_proxy_header: str | None = Field(
        default=None,
        description="accept the identity an authenticating proxy (oauth2-proxy) puts in this header "
        f"instead of the token ({', '.join(PROXY_IDENTITY_HEADERS)}; RECONCILER_ACTIONS_TRUST_PROXY_HEADER). "
        "Only when every request reaches the daemon through that proxy",
    )

    @field_validator("actions_trust_proxy_header")
    @classmethod
    def _known_proxy_header(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        for name in PROXY_IDENTITY_HEADERS:
            if name.lower() == value.strip().lower():
                return name
        raise ValueError(
            f"{value!r} is not a header an authenticating proxy sets: use one of "
            + ", ".join(PROXY_IDENTITY_HEADERS)
        )
