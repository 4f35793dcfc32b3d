"""Daemon settings (pydantic-settings): command-line values override ``RECONCILER_*`` variables."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_cache_dir() -> Path:
    """``$RECONCILER_CACHE_DIR`` or ``${XDG_CACHE_HOME:-~/.cache}/reconciler``."""
    env = os.environ.get("RECONCILER_CACHE_DIR")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "reconciler"


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
