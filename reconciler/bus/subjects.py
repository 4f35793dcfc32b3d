"""NATS subjects and JetStream streams used by the project (ARCHITECTURE.md §5)."""

from __future__ import annotations

import re

STREAM_EVENTS = "RECONCILER"  # subjects reconciler.>
STREAM_REGISTRY = "REGISTRY"  # subjects registry.>
IMAGE_EVENTS = "registry.image.pushed.>"
IMAGE_AUTOMATION_DURABLE = "reconciler-image-automation"
TRIGGERS_DURABLE = "reconciler-daemon-triggers"


def installation_durable(base: str, installation: str) -> str:
    """``<base>-<installation>``: the durable consumer of one installation (repository, branch and
    environments). Every installation gets each message: installations sharing one durable would each
    get only some of them, and acknowledge the others' events without acting on them."""
    return f"{base}-{subject_token(installation)}"


_UNSAFE = re.compile(r"[^A-Za-z0-9_-]")


def subject_token(value: str) -> str:
    """Make ``value`` one safe NATS subject token: every character outside ``[A-Za-z0-9_-]`` becomes ``_``
    (so ``ghcr.io/acme/app`` → ``ghcr_io_acme_app``); empty → ``_``."""
    return _UNSAFE.sub("_", value) or "_"


def result_subject(env: str) -> str:
    """``reconciler.result.<env>``: one message per finished pass."""
    return f"reconciler.result.{subject_token(env)}"


def drift_subject(env: str) -> str:
    """``reconciler.drift.<env>``: drift detected (and whether it was corrected)."""
    return f"reconciler.drift.{subject_token(env)}"


def promotion_subject(env: str) -> str:
    """``reconciler.promotion.<env>``: promotion outcomes."""
    return f"reconciler.promotion.{subject_token(env)}"


def control_subject(env: str) -> str:
    """``reconciler.control.<env>``: an environment was suspended, resumed or a pass of it asked for
    (:class:`reconciler.runtime.control.ControlRecord`)."""
    return f"reconciler.control.{subject_token(env)}"


def reconcile_request_subject(env: str) -> str:
    """``reconciler.reconcile.request.<env>``: ask for an immediate pass."""
    return f"reconciler.reconcile.request.{subject_token(env)}"


def mcp_call_subject(env: str) -> str:
    """``reconciler.mcp.<env>``: a write call made through reconciler's MCP server (caller, tool,
    arguments, outcome)."""
    return f"reconciler.mcp.{subject_token(env)}"


def git_push_subject(repo: str) -> str:
    """``reconciler.git.push.<repo>``: a Git host reported a push."""
    return f"reconciler.git.push.{subject_token(repo)}"


def git_pull_request_subject(repo: str) -> str:
    """``reconciler.git.pr.<repo>``: a Git host reported a pull request opened or moved."""
    return f"reconciler.git.pr.{subject_token(repo)}"


def image_pushed_subject(repo: str) -> str:
    """``registry.image.pushed.<repo>``: a registry reported a pushed image."""
    return f"registry.image.pushed.{subject_token(repo)}"
