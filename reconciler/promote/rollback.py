"""Rollback: ``git revert`` of promotion commits, an ordinary change the daemon then applies.

Each reverted promotion gets its own true revert commit (Git's ``Revert "…"`` / ``This reverts commit
<sha>.`` message) with the trailers ``Rollback-Of: <sha>``, ``Reason: <text>``, ``Rollback-Env: <env>``
and, when the daemon made it, ``Rollback-By: reconciler``. A revert that conflicts with a later commit
is refused as a whole: nothing is committed, the clone is reset to the branch head, and the error names
the later commit that changed the same lines.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from reconciler.errors import SourceError
from reconciler.model import Environment
from reconciler.promote.history import (
    TRAILER_REASON,
    TRAILER_ROLLBACK_BY,
    TRAILER_ROLLBACK_ENV,
    TRAILER_ROLLBACK_OF,
    effective_reverts,
    promotions_into,
)
from reconciler.promote.hosts import HostConfig, PullRequest
from reconciler.promote.promotion import Mode, PromotionError, publish, wrap_source_error
from reconciler.source.gitops import CommitInfo, GitWriter, NothingToRevert, RevertConflict


class RollbackConflict(PromotionError):
    """Reverting a promotion conflicts with a later commit; nothing was committed.

    Attributes:
        commit: the promotion that could not be reverted.
        conflicting: the later commit that changed the same lines (``""`` when unknown).
    """

    def __init__(self, message: str, commit: str, conflicting: str) -> None:
        super().__init__(message)
        self.commit = commit
        self.conflicting = conflicting


class RollbackResult(BaseModel):
    """What a rollback did."""

    environment: str
    reverted: list[str] = Field(default_factory=list, description="the promotion commits undone")
    commits: list[str] = Field(default_factory=list, description="the revert commits, in order")
    branch: str | None = None
    pushed_to: str | None = None
    fallback: bool = False
    pull_request: PullRequest | None = None
    instructions: str = ""
    message: str = ""


def rollback_targets(
    writer: GitWriter, env: Environment, *, to: str | None = None, log: list[CommitInfo] | None = None
) -> list[CommitInfo]:
    """The promotion commits into ``env`` to revert, newest first: every one after ``to`` (so ``env``
    returns to the versions it had at ``to``), or the newest one when ``to`` is ``None``; commits
    already reverted are skipped.

    Raises:
        PromotionError: ``to`` is not a commit of the branch, or nothing is left to revert.
    """
    log = log if log is not None else writer.log(max_count=1000)
    undone = effective_reverts(log)
    if to is not None:
        base = writer.resolve(to)
        if not writer.is_ancestor(base, "HEAD"):
            raise PromotionError(f"{to} is not a commit of {writer.branch}")
        after = {c.sha for c in writer.log(rev=f"{base}..HEAD", max_count=1000)}
        targets = [c for c in promotions_into(log, env.name) if c.sha in after and c.sha not in undone]
        if not targets:
            raise PromotionError(f"nothing to roll back: no promotion into {env.name} after {base[:7]}")
        return targets
    live = [c for c in promotions_into(log, env.name) if c.sha not in undone]
    if not live:
        raise PromotionError(f"nothing to roll back: no promotion into {env.name} is in effect")
    return live[:1]


def _conflicting_commit(writer: GitWriter, target: CommitInfo) -> CommitInfo | None:
    files = writer.changed_files(target.sha)
    if not files:
        return None
    later = writer.log(rev=f"{target.sha}..HEAD", paths=files, max_count=50)
    return next((c for c in later if not c.is_merge), later[0] if later else None)


def revert_commits(
    writer: GitWriter,
    env: Environment,
    targets: list[CommitInfo],
    *,
    reason: str,
    automatic: bool = False,
) -> list[str]:
    """Make one revert commit per target (newest first) on the clone's current head.

    Returns:
        the revert commit ids (empty when every target's change was already undone).

    Raises:
        RollbackConflict: a revert conflicts; the clone is back at the head it started from.
    """
    start = writer.head()
    made: list[str] = []
    for target in targets:
        trailers: dict[str, str | list[str]] = {
            TRAILER_ROLLBACK_OF: target.sha,
            TRAILER_REASON: reason.replace("\n", " ").strip() or "rollback",
            TRAILER_ROLLBACK_ENV: env.name,
        }
        if automatic:
            trailers[TRAILER_ROLLBACK_BY] = "reconciler"
        try:
            made.append(writer.revert(target.sha, trailers=trailers))
        except NothingToRevert:
            continue
        except RevertConflict:
            writer.reset_hard(start)
            h = _conflicting_commit(writer, target)
            where = f"later commit {h.sha} ({h.subject!r}) changed the same lines" if h else "later commits"
            raise RollbackConflict(
                f"cannot roll back {target.sha[:7]} ({target.subject!r}): {where}; nothing was committed. "
                "Set the version explicitly instead (edit the overlay, or promote a known-good version).",
                target.sha,
                h.sha if h else "",
            ) from None
    return made


def rollback(
    writer: GitWriter,
    env: Environment,
    *,
    to: str | None = None,
    commits: list[str] | None = None,
    reason: str = "",
    mode: Mode | None = None,
    automatic: bool = False,
    host: HostConfig | None = None,
) -> RollbackResult:
    """Revert promotions into ``env`` and push the revert commit(s) directly or on a branch.

    Call on a clone fresh from :meth:`GitWriter.sync`, holding :meth:`GitWriter.locked`.

    Args:
        writer: the synced clone.
        env: the environment rolled back.
        to: return ``env`` to its versions at this commit (see :func:`rollback_targets`).
        commits: exactly these promotion commits (ignored ones already reverted).
        reason: recorded in the ``Reason:`` trailer.
        mode: ``push`` or ``pr``; default the environment's ``promotion.via``.
        automatic: the daemon's own rollback (``Rollback-By: reconciler``).
        host: the Git host for the pull request.

    Raises:
        RollbackConflict: a revert conflicts (nothing committed or pushed).
        PromotionError: nothing to roll back, or the push failed.
    """
    log = writer.log(max_count=1000)
    if commits is not None:
        undone = effective_reverts(log)
        by_sha = {c.sha: c for c in log}
        targets = []
        for sha in commits:
            full = writer.resolve(sha)
            if full in undone:
                continue
            if full not in by_sha:
                raise PromotionError(f"{sha} is not a commit of {writer.branch}")
            targets.append(by_sha[full])
        if not targets:
            return RollbackResult(environment=env.name, message="already rolled back; nothing to do")
    else:
        targets = rollback_targets(writer, env, to=to, log=log)
    chosen: Mode = mode or env.promotion.via
    reason = reason or ("health gate failed" if automatic else "manual rollback")
    made = revert_commits(writer, env, targets, reason=reason, automatic=automatic)
    result = RollbackResult(environment=env.name, reverted=[t.sha for t in targets])
    if not made:
        result.message = "every target is already undone; nothing to do"
        return result
    try:
        out = publish(
            writer,
            count=len(made),
            mode=chosen,
            branch=f"rollback/{env.name}/{targets[0].sha[:7]}",
            host=host,
            title=f"rollback({env.name}): revert {', '.join(t.sha[:7] for t in targets)}",
            body=f"Reason: {reason}\n\n" + "\n".join(f"- {t.sha} {t.subject}" for t in targets),
        )
    except SourceError as exc:
        raise wrap_source_error(f"rollback of {env.name}", exc) from None
    result.commits = out.commits
    result.branch, result.pushed_to, result.fallback = out.branch, out.pushed_to, out.fallback
    result.pull_request, result.instructions = out.pull_request, out.instructions
    result.message = (
        f"reverted {', '.join(t.sha[:7] for t in targets)} in {env.name}; pushed to {out.pushed_to}"
    )
    return result
