"""Commit statuses on the Git host: each environment's outcome, posted on the commit the daemon applied,
with the context ``reconciler/<env>`` (the same idea as Flux notification-controller's Git commit-status
providers, https://fluxcd.io/flux/components/notification/providers/#git-commit-status-updates, and
Argo CD's commit status notifications).

What is posted for a revision of an environment:

* ``pending`` — applied, the health gate is waiting (or a progressive rollout is running);
* ``success`` — the health gate passed (``Healthy``, or ``Unverified`` where the environment allows it:
  the description says which, so nothing unjudged reads as healthy);
* ``failure`` — the pass failed (render, validation, apply), a guard blocked it, or the health gate
  failed (the description has the verdict, and says when the daemon reverted the promotion).

A status is posted only when it differs from the last one this daemon posted for that environment and
commit, so an idle daemon posts nothing. Host errors are logged and never stop a pass; the host client
retries transient ones (:mod:`reconciler.promote.hosts`).
"""

from __future__ import annotations

import asyncio
import logging
import os
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from reconciler.promote.hosts import HostConfig, HostError, StatusState, host_config, post_commit_status

if TYPE_CHECKING:
    from reconciler.promote.auto import Decision
    from reconciler.settings import DaemonSettings

log = logging.getLogger(__name__)

#: The status context prefix: ``reconciler/<env>``.
CONTEXT_PREFIX = "reconciler"


def context_of(environment: str) -> str:
    """The status context of ``environment`` (``reconciler/staging``)."""
    return f"{CONTEXT_PREFIX}/{environment}"


class CommitStatuses:
    """Posts environments' outcomes as commit statuses on one Git host.

    Args:
        config: the host (with a token).
        target_url: the link shown with each status (e.g. the status page), or ``None``.
    """

    def __init__(self, config: HostConfig, target_url: str | None = None) -> None:
        self.config = config
        self.target_url = target_url
        self._last: dict[str, tuple[str, StatusState, str]] = {}
        self._lock = threading.Lock()
        #: (environment, sha, state, description) of every status posted, for tests
        self.posted: list[tuple[str, str, StatusState, str]] = []

    def report(self, environment: str, sha: str, state: StatusState, description: str) -> bool:
        """Post ``state`` for ``environment`` on commit ``sha`` (40 hex digits) unless it is what was last
        posted. Blocking (one HTTP request or a few, with the host client's retries): call it from a worker
        thread. Returns whether a status was posted; a host error is logged and returns ``False``."""
        if not sha:
            return False
        key = (sha, state, description)
        with self._lock:
            if self._last.get(environment) == key:
                return False
            self._last[environment] = key
        try:
            asyncio.run(
                post_commit_status(
                    self.config,
                    sha,
                    context=context_of(environment),
                    state=state,
                    description=description,
                    target_url=self.target_url,
                )
            )
        except HostError as exc:
            with self._lock:
                if self._last.get(environment) == key:
                    del self._last[environment]  # try again at the next outcome
            log.warning("commit status %s on %s: %s", context_of(environment), sha[:12], exc)
            return False
        with self._lock:
            self.posted.append((environment, sha, state, description))
        return True


def gate_status(decision: Decision) -> tuple[StatusState, str]:
    """The status of a health gate's decision: ``success`` when it passed (the description says
    ``Unverified`` when nobody judged some objects), else ``failure`` with the outcome and whether the
    promotion was reverted."""
    outcome = decision.outcome.value if decision.outcome is not None else "unknown"
    verdict = decision.verdict
    if decision.passed:
        if verdict is not None and not verdict.healthy:
            return "success", f"health gate passed as {verdict.state.value}: {verdict.message}".strip(": ")
        return "success", "health gate passed: Healthy"
    text = f"health gate failed: {outcome}"
    if verdict is not None and verdict.message:
        text += f": {verdict.message}"
    if decision.reverted:
        text = f"reverted ({', '.join(c[:12] for c in decision.reverted)}); " + text
    return "failure", text


def commit_statuses(
    settings: DaemonSettings, environ: Mapping[str, str] | None = None
) -> CommitStatuses | None:
    """The daemon's commit-status poster: ``None`` when ``settings.commit_status`` is off, the repository
    is a local path or its host unknown, or no token is configured (see :func:`host_config`).

    Raises:
        ConfigError: ``RECONCILER_GIT_HOST`` names no known host kind.
    """
    if not settings.commit_status:
        return None
    config = host_config(settings.repo, environ=dict(os.environ if environ is None else environ))
    if config is None or not config.token:
        return None
    return CommitStatuses(config)


def sha_of(revision: str) -> str:
    """The commit of a revision ``branch@sha1:<sha>`` (``""`` when it names none)."""
    return revision.rsplit("@sha1:", 1)[-1] if "@sha1:" in revision else ""
