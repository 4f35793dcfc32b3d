"""Rollback: ``git revert`` of promotion commits, an ordinary change the daemon then applies.

Each reverted promotion gets its own true revert commit (Git's ``Revert "…"`` / ``This reverts commit
<sha>.`` message) with the trailers ``Rollback-Of: <sha>``, ``Reason: <text>``, ``Rollback-Env: <env>``
and, when the daemon made it, ``Rollback-By: reconciler``. A revert that conflicts with a later commit
is refused as a whole: nothing is committed, the clone is reset to the branch head, and the error names
the later commit that changed the same lines.

A partial rollback (``rollback(..., app=NAME)``, ``reconciler rollback ENV --app NAME``) undoes one app
of a multi-app promotion: one new commit that sets only that app's ``images:`` entries back to the values
they had before the promotion (a round-trip edit, :func:`~reconciler.promote.overlay.set_images`), with
the trailers ``Rollback-Of``, ``Rollback-App: <name>``, ``Rollback-Env``, ``Reason`` and ``Image:`` for
each restored entry. The promotion's other images stay in effect (see
:func:`~reconciler.promote.history.partial_rollbacks`).

A rollback asked for through the daemon's actions API (the status page's buttons) also carries
``Requested-By: <identity>``: ``token`` for a bearer-token request, else the user a trusted proxy named.
:func:`rollback_environment` is what ``reconciler rollback`` and that API both run.
"""

from __future__ import annotations

import contextlib
import re

from pydantic import BaseModel, Field

from reconciler.errors import SourceError
from reconciler.model import Environment
from reconciler.promote.history import (
    TRAILER_IMAGE,
    TRAILER_REASON,
    TRAILER_REQUESTED_BY,
    TRAILER_ROLLBACK_APP,
    TRAILER_ROLLBACK_BY,
    TRAILER_ROLLBACK_ENV,
    TRAILER_ROLLBACK_OF,
    TRAILER_TO,
    ImageMove,
    effective_reverts,
    image_trailer,
    kustomization_file,
    overlay_images,
    partial_rollbacks,
    promotions_into,
)
from reconciler.promote.hosts import HostConfig, PullRequest
from reconciler.promote.overlay import ImageEntry, OverlayError, read_images, set_images
from reconciler.promote.promotion import (
    Mode,
    PromotionError,
    RuleError,
    app_entries,
    apps_of,
    publish,
    wrap_source_error,
)
from reconciler.promote.records import PromotionEvent
from reconciler.render.helm import environment_options as helm_options
from reconciler.render.remote import environment_options
from reconciler.source.gitops import CommitInfo, GitWriter, NothingToRevert, RevertConflict

#: The longest ``Requested-By`` identity recorded.
MAX_IDENTITY = 200
_IDENTITY_RE = re.compile(r"^[^\x00-\x1f\x7f]+$")


class NothingToRollBack(PromotionError):
    """No promotion in effect is left to roll back (for the app, or after ``to``); nothing was committed."""


class UnknownEnvironment(PromotionError):
    """The environment is not defined in ``envs/`` at the branch head."""


class UnknownApp(PromotionError):
    """No object of the environment's overlay that uses an image belongs to the app."""


class UnexpectedTarget(PromotionError):
    """The caller named the promotion it meant to undo, and the newest one in effect is another (someone
    rolled it back meanwhile, or promoted again); nothing was committed."""


class NoPullRequestHost(RuleError):
    """The environment takes changes by pull request and no Git host API token is configured to open one."""


def check_identity(identity: str) -> str:
    """``identity`` as a ``Requested-By`` value: stripped, one line, no control characters, at most
    :data:`MAX_IDENTITY` characters.

    Raises:
        ValueError: it is empty, too long or has a control character (a line break).
    """
    value = identity.strip()
    if not value:
        raise ValueError("the identity is empty")
    if len(value) > MAX_IDENTITY:
        raise ValueError(f"the identity is longer than {MAX_IDENTITY} characters")
    if not _IDENTITY_RE.match(value):
        raise ValueError("the identity has a control character (a line break?)")
    return value


class RollbackConflict(PromotionError):
    """Reverting a promotion conflicts with a later commit; nothing was committed.

    Attributes:
        commit: the promotion that could not be reverted.
        conflicting: the later commit that changed the same lines (``""`` when unknown).
        entry: for a partial rollback, the ``images:`` entry changed since (``""`` otherwise).
    """

    def __init__(self, message: str, commit: str, conflicting: str, entry: str = "") -> None:
        super().__init__(message)
        self.commit = commit
        self.conflicting = conflicting
        self.entry = entry


class RollbackResult(BaseModel):
    """What a rollback did."""

    environment: str
    app: str | None = Field(default=None, description="the app a partial rollback undid")
    reverted: list[str] = Field(default_factory=list, description="the promotion commits undone")
    restored: list[ImageMove] = Field(
        default_factory=list, description="partial rollback: each entry, from its current to its old value"
    )
    commits: list[str] = Field(default_factory=list, description="the revert commits, in order")
    branch: str | None = None
    pushed_to: str | None = None
    fallback: bool = False
    pull_request: PullRequest | None = None
    instructions: str = ""
    pr_error: str = Field(
        default="", description="why the pull request could not be opened (see PromotionResult.pr_error)"
    )
    message: str = ""
    requested_by: str | None = Field(default=None, description="the Requested-By trailer, if any")


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
            raise NothingToRollBack(f"nothing to roll back: no promotion into {env.name} after {base[:7]}")
        return targets
    live = [c for c in promotions_into(log, env.name) if c.sha not in undone]
    if not live:
        raise NothingToRollBack(f"nothing to roll back: no promotion into {env.name} is in effect")
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
    requested_by: str | None = None,
) -> list[str]:
    """Make one revert commit per target (newest first) on the clone's current head (``requested_by``:
    the ``Requested-By`` trailer, see :func:`check_identity`).

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
        if requested_by:
            trailers[TRAILER_REQUESTED_BY] = check_identity(requested_by)
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


# --------------------------------------------------------------------------- partial rollback (one app)


class AppRollbackPlan(BaseModel):
    """What a partial rollback writes (computed before anything is committed)."""

    app: str
    environment: str
    file: str = Field(description="the environment's kustomization file")
    targets: list[CommitInfo] = Field(
        description="the promotions whose change of the app is undone, newest first"
    )
    restore: list[ImageEntry] = Field(description="the app's entries with the values they had before")
    moves: list[ImageMove] = Field(description="each entry, from its current value to the restored one")
    text: str = Field(description="the kustomization file after the edit")


Changed = dict[str, tuple[ImageEntry | None, ImageEntry | None]]


def _changed_entries(writer: GitWriter, commit: CommitInfo, overlay: str) -> Changed:
    """``images:`` entries of ``overlay`` that ``commit`` changed against its first parent: name →
    (before, after), ``None`` where the entry is absent."""
    before = overlay_images(writer, commit.parents[0], overlay) if commit.parents else {}
    after = overlay_images(writer, commit.sha, overlay)
    out: Changed = {}
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name), after.get(name)
        if b != a:
            out[name] = (b, a)
    return out


def _app_changes(changed: Changed, repositories: set[str]) -> Changed:
    """The changes of entries that deploy one of ``repositories`` before or after the commit."""
    return {
        name: pair
        for name, pair in changed.items()
        if app_entries([e for e in pair if e is not None], repositories)
    }


def _conflict(
    env: Environment, app: str, file: str, name: str, promotion: CommitInfo, by: CommitInfo | None, now: str
) -> RollbackConflict:
    who = f"by {by.sha} ({by.subject!r})" if by else "by a later commit"
    return RollbackConflict(
        f"cannot roll back app {app!r} in {env.name}: in {file} the images entry {name} was changed since "
        f"promotion {promotion.short} {who} (now {now}); nothing was committed. Set the version "
        "explicitly instead (edit the overlay, or promote a known-good version).",
        promotion.sha,
        by.sha if by else "",
        entry=name,
    )


def plan_app_rollback(
    writer: GitWriter,
    env: Environment,
    app: str,
    *,
    to: str | None = None,
    log: list[CommitInfo] | None = None,
) -> AppRollbackPlan:
    """Work out the partial rollback of ``app`` in ``env`` from a synced clone (nothing is changed).

    The targets are the promotions into ``env`` in effect (not reverted, and this app not already rolled
    back from them) that changed the ``images:`` entries of ``app``: the newest one, or with ``to`` every
    one after that commit. The app's entries are the ones deploying a repository its objects use, as
    ``promote --app`` finds them (:func:`~reconciler.promote.promotion.apps_of`), rendered at each
    promotion (at the branch head when the overlay does not render there). Each entry is restored to the
    value it had before the oldest target that changed it.

    Args:
        writer: a clone synced with :meth:`GitWriter.sync`.
        env: the environment.
        app: the app to roll back.
        to: roll back the app's changes of every promotion after this commit.
        log: the branch's commits, newest first (default: read from ``writer``).

    Raises:
        RollbackConflict: an entry of the app was changed since by a commit that is neither a promotion
            nor a rollback, or no longer has the value the promotion set (the error names the entry and
            the commit).
        PromotionError: ``env``'s overlay has no kustomization or does not render, an unknown app (the
            error lists the known ones), ``to`` is not a commit of the branch, no promotion in effect
            changed the app, a promotion added the entry (a partial rollback does not delete entries),
            or there is nothing left to roll back.
    """
    log = log if log is not None else writer.log(max_count=1000)
    head = writer.head()
    file = kustomization_file(writer, head, env.overlay)
    if file is None:
        raise PromotionError(f"{env.overlay} has no kustomization.yaml at the branch head")
    remote = environment_options(env)
    head_apps = apps_of(writer, head, env.overlay, remote=remote, helm=helm_options(env))
    if not head_apps.get(app):
        known = ", ".join(sorted(n for n, repos in head_apps.items() if repos)) or "none"
        raise UnknownApp(
            f"unknown app {app!r} in {env.name}: no object of {env.overlay} at {head[:7]} that uses an "
            f"image belongs to it (known apps: {known})"
        )
    undone = effective_reverts(log)
    partial = partial_rollbacks(log)
    live = [c for c in promotions_into(log, env.name) if c.sha not in undone]
    where = ""
    if to is not None:
        base = writer.resolve(to)
        if not writer.is_ancestor(base, "HEAD"):
            raise PromotionError(f"{to} is not a commit of {writer.branch}")
        after = {c.sha for c in writer.log(rev=f"{base}..HEAD", max_count=1000)}
        live = [c for c in live if c.sha in after]
        where = f" after {base[:7]}"
    if not live:
        raise NothingToRollBack(f"nothing to roll back: no promotion into {env.name}{where} is in effect")

    targets: list[tuple[CommitInfo, Changed]] = []
    already: list[str] = []
    for commit in live:
        if app in partial.get(commit.sha, {}):
            already.append(f"{commit.short} in {partial[commit.sha][app].short}")
            continue
        changed = _changed_entries(writer, commit, env.overlay)
        if not changed:
            continue
        try:
            repos = (
                apps_of(writer, commit.sha, env.overlay, remote=remote, helm=helm_options(env)).get(app)
                or head_apps[app]
            )
        except PromotionError:
            repos = head_apps[app]
        mine = _app_changes(changed, repos)
        if mine:
            targets.append((commit, mine))
            if to is None:
                break
    if not targets:
        done = f"; already rolled back: {', '.join(already)}" if already else ""
        raise NothingToRollBack(
            f"nothing to roll back: no promotion into {env.name}{where} in effect changed the images of app "
            f"{app!r} ({', '.join(sorted(head_apps[app]))}){done}"
        )

    before: dict[str, ImageEntry | None] = {}
    expected: dict[str, ImageEntry | None] = {}
    promoted_by: dict[str, CommitInfo] = {}
    for commit, mine in targets:  # newest first: the oldest target's "before" wins
        for name, (b, a) in mine.items():
            before[name] = b
            expected.setdefault(name, a)
            promoted_by.setdefault(name, commit)
    oldest = targets[-1][0]
    for name, value in before.items():
        if value is None:
            added_by = next(c for c, mine in reversed(targets) if name in mine)
            raise PromotionError(
                f"cannot roll back app {app!r} in {env.name}: promotion {added_by.short} added the images "
                f"entry {name} to {file} (it had none before); a partial rollback does not delete entries: "
                "remove it by hand, or roll back the whole promotion"
            )
    original = (writer.workdir / file).read_text(encoding="utf-8")  # byte for byte (read_file strips)
    try:
        current = {e.name: e for e in read_images(original, file)}
    except OverlayError as exc:
        raise PromotionError(str(exc)) from None

    # entries changed by hand since: by a commit that neither promoted nor rolled back
    chosen = {c.sha for c, _ in targets}
    later = writer.log(rev=f"{oldest.sha}..HEAD", paths=[file], max_count=1000)
    for commit in reversed(later):
        if commit.is_merge or commit.sha in chosen or commit.reverts or commit.first(TRAILER_TO) == env.name:
            continue
        hit = sorted(set(_changed_entries(writer, commit, env.overlay)) & set(before))
        if hit:
            now = current[hit[0]].ref if hit[0] in current else "(no entry)"
            raise _conflict(env, app, file, hit[0], promoted_by[hit[0]], commit, now)
    # and entries whose value is no longer the one the promotion set
    for name in sorted(before):
        if current.get(name) != expected[name]:
            since = writer.log(rev=f"{promoted_by[name].sha}..HEAD", paths=[file], max_count=1000)
            by = next(
                (c for c in since if not c.is_merge and name in _changed_entries(writer, c, env.overlay)),
                None,
            )
            now = current[name].ref if name in current else "(no entry)"
            raise _conflict(env, app, file, name, promoted_by[name], by, now)

    order = [n for n in current if n in before] + sorted(n for n in before if n not in current)
    restore = [e for n in order if (e := before[n]) is not None]
    try:
        text = set_images(original, restore, file)
    except OverlayError as exc:
        raise PromotionError(str(exc)) from None
    if text == original:
        raise NothingToRollBack(
            f"nothing to roll back: the images of app {app!r} in {file} already have the values from "
            f"before {oldest.short}"
        )
    moves = [
        ImageMove(name=e.name, before=current[e.name].ref if e.name in current else None, after=e.ref)
        for e in restore
        if current.get(e.name) != e
    ]
    return AppRollbackPlan(
        app=app,
        environment=env.name,
        file=file,
        targets=[c for c, _ in targets],
        restore=restore,
        moves=moves,
        text=text,
    )


def _label(entry: ImageEntry) -> str:
    """``<short name> <tag or digest>`` for a commit subject."""
    return f"{entry.name.rsplit('/', 1)[-1]} {entry.new_tag or entry.digest or entry.repository}"


def app_rollback_message(
    plan: AppRollbackPlan, *, reason: str, automatic: bool = False, requested_by: str | None = None
) -> tuple[str, dict[str, str | list[str]]]:
    """The partial rollback commit's message and trailers (``Rollback-Of`` for each target,
    ``Rollback-App``, ``Rollback-Env``, ``Reason``, ``Rollback-By`` when automatic, ``Requested-By`` when
    given, and one ``Image:`` per restored entry)."""
    shas = ", ".join(t.short for t in plan.targets)
    versions = ", ".join(_label(e) for e in plan.restore)
    subject = f"rollback({plan.environment}): app {plan.app} back to {versions} (undoes {shas})"
    what = "promotion" if len(plan.targets) == 1 else "promotions"
    lines = [
        f"Rolls back app {plan.app} of {what} {shas}; the other images of the {what} stay in effect.",
        "",
        *(f"- {t.sha} {t.subject}" for t in plan.targets),
        "",
        *(f"{m.name}: {m.before or '(none)'} -> {m.after}" for m in plan.moves),
    ]
    trailers: dict[str, str | list[str]] = {
        TRAILER_ROLLBACK_OF: [t.sha for t in plan.targets],
        TRAILER_ROLLBACK_APP: plan.app,
        TRAILER_ROLLBACK_ENV: plan.environment,
        TRAILER_REASON: reason.replace("\n", " ").strip() or "rollback",
    }
    if automatic:
        trailers[TRAILER_ROLLBACK_BY] = "reconciler"
    if requested_by:
        trailers[TRAILER_REQUESTED_BY] = check_identity(requested_by)
    trailers[TRAILER_IMAGE] = [image_trailer(e.name, e) for e in plan.restore]
    return subject + "\n\n" + "\n".join(lines), trailers


def rollback_app(
    writer: GitWriter,
    env: Environment,
    app: str,
    *,
    to: str | None = None,
    reason: str = "",
    mode: Mode | None = None,
    automatic: bool = False,
    host: HostConfig | None = None,
    requested_by: str | None = None,
    expected: str | None = None,
) -> RollbackResult:
    """Roll back one app of ``env`` (see :func:`plan_app_rollback`): one commit restoring only that app's
    ``images:`` entries, pushed directly or on ``rollback/<env>/<app>-<short sha>`` with a pull request,
    as :func:`rollback` does. Call on a clone fresh from :meth:`GitWriter.sync`, holding
    :meth:`GitWriter.locked`.

    ``requested_by`` and ``expected`` are as in :func:`rollback`.

    Raises:
        RollbackConflict: an entry of the app was changed since (nothing committed or pushed).
        UnexpectedTarget: the newest promotion to undo is not ``expected``.
        PromotionError: see :func:`plan_app_rollback`; or the push failed.
    """
    if requested_by is not None:
        requested_by = check_identity(requested_by)
    plan = plan_app_rollback(writer, env, app, to=to)
    _expect(expected, plan.targets[0], f"of app {app!r} in {env.name}")
    chosen: Mode = mode or env.promotion.via
    reason = reason or ("health gate failed" if automatic else "manual rollback")
    message, trailers = app_rollback_message(
        plan, reason=reason, automatic=automatic, requested_by=requested_by
    )
    result = RollbackResult(
        environment=env.name,
        app=app,
        reverted=[t.sha for t in plan.targets],
        restored=plan.moves,
        requested_by=requested_by,
    )
    (writer.workdir / plan.file).write_text(plan.text, encoding="utf-8")
    if writer.commit(message, trailers=trailers) is None:  # pragma: no cover - the plan changed the file
        result.message = f"app {app} of {env.name} already has its old versions; nothing to do"
        return result
    shas = ", ".join(t.short for t in plan.targets)
    try:
        out = publish(
            writer,
            count=1,
            mode=chosen,
            branch=f"rollback/{env.name}/{app}-{plan.targets[0].short}",
            host=host,
            title=message.splitlines()[0],
            body=f"Reason: {reason}\n\n" + message.split("\n\n", 1)[1],
        )
    except SourceError as exc:
        raise wrap_source_error(f"rollback of app {app} in {env.name}", exc) from None
    result.commits = out.commits
    result.branch, result.pushed_to, result.fallback = out.branch, out.pushed_to, out.fallback
    result.pull_request, result.instructions = out.pull_request, out.instructions
    result.pr_error = out.pr_error
    result.message = f"rolled back app {app} of {shas} in {env.name}; pushed to {out.pushed_to}"
    return result


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
    app: str | None = None,
    requested_by: str | None = None,
    expected: str | None = None,
) -> RollbackResult:
    """Revert promotions into ``env`` and push the revert commit(s) directly or on a branch; with
    ``app``, roll back only that app's images instead (:func:`rollback_app`: one commit, not a revert).

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
        app: roll back only this app (see :func:`plan_app_rollback`); not with ``commits``.
        requested_by: who asked (the ``Requested-By`` trailer; see :func:`check_identity`).
        expected: the promotion commit (or a prefix of at least 7 hex digits) the caller means to undo:
            the newest target must be it, else :class:`UnexpectedTarget` (a page that was out of date,
            or a second click, never rolls back one promotion more).

    Raises:
        RollbackConflict: a revert conflicts, or an entry of ``app`` was changed since (nothing committed
            or pushed).
        NothingToRollBack: no promotion in effect is left to roll back.
        UnknownApp: ``app`` is not an app of ``env``.
        UnexpectedTarget: the newest target is not ``expected``.
        PromotionError: ``app`` with ``commits``, or the push failed.
        ValueError: ``requested_by`` is not a valid identity.
    """
    if requested_by is not None:
        requested_by = check_identity(requested_by)
    if app is not None:
        if commits is not None:
            raise PromotionError("a partial rollback (app) takes to, not a list of commits")
        return rollback_app(
            writer,
            env,
            app,
            to=to,
            reason=reason,
            mode=mode,
            automatic=automatic,
            host=host,
            requested_by=requested_by,
            expected=expected,
        )
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
    _expect(expected, targets[0], f"in {env.name}")
    chosen: Mode = mode or env.promotion.via
    reason = reason or ("health gate failed" if automatic else "manual rollback")
    made = revert_commits(writer, env, targets, reason=reason, automatic=automatic, requested_by=requested_by)
    result = RollbackResult(
        environment=env.name, reverted=[t.sha for t in targets], requested_by=requested_by
    )
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
    result.pr_error = out.pr_error
    result.message = (
        f"reverted {', '.join(t.sha[:7] for t in targets)} in {env.name}; pushed to {out.pushed_to}"
    )
    return result


def _expect(expected: str | None, newest: CommitInfo, where: str) -> None:
    """Raise :class:`UnexpectedTarget` unless ``newest`` is the ``expected`` commit (``None``: any)."""
    if expected is None:
        return
    want = expected.strip().lower()
    if len(want) < 7 or not re.fullmatch(r"[0-9a-f]+", want):
        raise ValueError(f"expected: {expected!r} is not a commit id (at least 7 hex digits)")
    if not newest.sha.startswith(want):
        raise UnexpectedTarget(
            f"the newest promotion to roll back {where} is {newest.short} ({newest.subject!r}), not "
            f"{want[:12]}: it was rolled back or superseded meanwhile; nothing was committed"
        )


def rollback_environment(
    writer: GitWriter,
    env_name: str,
    *,
    to: str | None = None,
    app: str | None = None,
    reason: str = "",
    mode: Mode | None = None,
    host: HostConfig | None = None,
    requested_by: str | None = None,
    expected: str | None = None,
    require_host: bool = False,
) -> RollbackResult:
    """What ``reconciler rollback ENV [--app NAME]`` and the daemon's rollback action both do: under the
    clone's lock, sync it, read ``envs/`` at the branch head, check ``ENV``'s rules and :func:`rollback`;
    then sync again.

    Args:
        writer: the clone (synced here).
        env_name: the environment.
        to, app, reason, mode, host, requested_by, expected: see :func:`rollback`.
        require_host: refuse (:class:`NoPullRequestHost`, before anything is committed) when the change
            goes by pull request and ``host`` has no API token to open one; without it the branch is
            pushed and the result says where to open the pull request by hand (the CLI's way).

    Raises:
        UnknownEnvironment: ``env_name`` is not in ``envs/``.
        RuleError: ``mode`` is ``push`` and the environment says ``promotion.via: pr``; or
            :class:`NoPullRequestHost`.
        ConfigError: the environment's file is invalid.
        PromotionError, RollbackConflict, ValueError: see :func:`rollback`.
    """
    from reconciler.errors import ConfigError
    from reconciler.reconcile import load_environments

    with writer.locked():
        writer.sync()
        invalid: dict[str, str] = {}
        envs = load_environments(writer.workdir, invalid=invalid)
        if env_name in invalid:
            raise ConfigError(invalid[env_name])
        if env_name not in envs:
            raise UnknownEnvironment(
                f"environment {env_name!r} is not defined in envs/ ({', '.join(sorted(envs))})"
            )
        env = envs[env_name]
        if mode == "push" and env.promotion.via == "pr":
            raise RuleError(f"envs/{env_name}.yaml requires a pull request (promotion.via: pr); use --pr")
        if require_host and (mode or env.promotion.via) == "pr" and (host is None or not host.token):
            raise NoPullRequestHost(
                f"envs/{env_name}.yaml takes changes by pull request (promotion.via: pr) and this daemon "
                "cannot open one: no Git host API token (set RECONCILER_GIT_HOST_TOKEN, or GITHUB_TOKEN / "
                "GITLAB_TOKEN, and RECONCILER_GIT_HOST when the remote URL does not name the host); or run "
                f"`reconciler rollback {env_name}"
                + (f" --app {app}" if app else "")
                + " --pr`, which pushes the branch and says where to open it. Nothing was committed."
            )
        result = rollback(
            writer,
            env,
            to=to,
            reason=reason,
            mode=mode,
            host=host,
            app=app,
            requested_by=requested_by,
            expected=expected,
        )
        # only housekeeping: the outcome is made (and a pull request the host could not open is in
        # result.pr_error); a remote unreachable now must not hide it
        with contextlib.suppress(SourceError):
            writer.sync()
    return result


def rollback_event(result: RollbackResult, reason: str = "") -> PromotionEvent | None:
    """The ``rollback`` event published on ``reconciler.promotion.<env>`` for a rollback that committed
    something (``None`` otherwise)."""
    if not result.commits:
        return None
    what = (f"app {result.app}: " if result.app else "") + (reason or "manual rollback")
    if result.requested_by:
        what += f" (requested by {result.requested_by})"
    return PromotionEvent(
        environment=result.environment,
        kind="rollback",
        revision=result.commits[-1],
        promotions=result.reverted,
        revert=result.commits,
        pushed_to=result.pushed_to,
        fallback=result.fallback,
        url=result.pull_request.url if result.pull_request else None,
        message=what,
    )


def rollback_candidates(
    writer: GitWriter,
    env: Environment,
    *,
    apps: dict[str, set[str]] | None = None,
    log: list[CommitInfo] | None = None,
    limit: int = 50,
) -> list[tuple[str, CommitInfo]]:
    """What a rollback would undo now, read from a synced clone without changing it: ``("", promotion)``
    for the whole environment (the newest promotion in effect, as :func:`rollback_targets` picks it),
    then ``(app, promotion)`` for each app, by name: the newest promotion in effect that changed the app's
    ``images:`` entries and that was not rolled back for that app.

    For speed the apps' repositories are taken from the overlay at the branch head only (``apps``, default
    :func:`~reconciler.promote.promotion.apps_of` of the head); :func:`plan_app_rollback` also looks at
    each promotion's own render and refuses what cannot be undone, so an offered app rollback may still
    be refused (pass its promotion as ``expected`` to be sure it undoes the one offered). Only the
    ``limit`` newest promotions in effect are looked at for apps.

    Raises:
        SourceError: the clone cannot be read.
    """
    log = log if log is not None else writer.log(max_count=1000)
    try:
        newest = rollback_targets(writer, env, log=log)[0]
    except PromotionError:
        return []
    out: list[tuple[str, CommitInfo]] = [("", newest)]
    if apps is None:
        try:
            apps = apps_of(writer, writer.head(), env.overlay, helm=helm_options(env))
        except PromotionError:
            return out
    undone = effective_reverts(log)
    partial = partial_rollbacks(log)
    live = [c for c in promotions_into(log, env.name) if c.sha not in undone][:limit]
    wanted = {name: repos for name, repos in apps.items() if repos}
    found: dict[str, CommitInfo] = {}
    for commit in live:  # newest first
        changed = _changed_entries(writer, commit, env.overlay)
        for app, repos in wanted.items():
            if app not in found and app not in partial.get(commit.sha, {}) and _app_changes(changed, repos):
                found[app] = commit
        if len(found) == len(wanted):
            break
    return out + sorted(found.items())
