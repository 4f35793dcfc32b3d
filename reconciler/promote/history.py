"""The promotion history of an environment, read from Git alone: commit trailers, merges, reverts and the
outcome notes (``refs/notes/reconciler``).

Trailers written by promotions (see :mod:`reconciler.promote.promotion`)::

    Promotion-From: dev
    Promotion-To: staging
    Source-Revision: main@sha1:<40 hex>
    Image: ghcr.io/acme/clock-mcp=ghcr.io/acme/clock-mcp:0.1.1@sha256:<64 hex>
    Tool-Grant: agents-prod/helpdesk <- RemoteMCPServer agents-prod/everything: get-sum

(one ``Tool-Grant`` per Agent and server that the promotion gives tools it could not call before)

and by rollbacks: ``Rollback-Of: <sha>``, ``Reason: <text>``, ``Rollback-Env: <env>``,
``Rollback-By: reconciler`` (automatic), ``Requested-By: <identity>`` (asked for through the daemon's
actions API or status page: ``token`` or the user a trusted proxy named). A revert made by hand with
``git revert`` is recognised by the ``This reverts commit <sha>.`` line Git writes.

A partial rollback (``reconciler rollback ENV --app NAME``) also carries ``Rollback-App: <name>`` and the
``Image:`` trailers of the entries it restored: it undoes only that app's part of the promotion(s) it
names, so it is not a revert of the whole commit (:func:`effective_reverts` leaves it out;
:func:`partial_rollbacks` lists it).
"""

from __future__ import annotations

from collections.abc import Iterable

from pydantic import BaseModel, Field

from reconciler.errors import SourceError
from reconciler.model import Environment
from reconciler.model.imagepolicy import split_image_reference
from reconciler.promote.overlay import KUSTOMIZATION_NAMES, ImageEntry, OverlayError, read_images
from reconciler.promote.records import (
    SETTLED,
    Outcome,
    OutcomeRecord,
    ToolCallRecord,
    parse_tool_calls,
    records_by_commit,
)
from reconciler.source.gitops import CommitInfo, GitWriter

TRAILER_FROM = "Promotion-From"
TRAILER_TO = "Promotion-To"
TRAILER_SOURCE = "Source-Revision"
TRAILER_IMAGE = "Image"
TRAILER_APP = "Promotion-App"
TRAILER_TOOL_GRANT = "Tool-Grant"
TRAILER_ROLLBACK_OF = "Rollback-Of"
TRAILER_REASON = "Reason"
TRAILER_ROLLBACK_ENV = "Rollback-Env"
TRAILER_ROLLBACK_BY = "Rollback-By"
TRAILER_ROLLBACK_APP = "Rollback-App"
TRAILER_REQUESTED_BY = "Requested-By"


# --------------------------------------------------------------------------- image references


def split_ref(ref: str) -> tuple[str, str | None, str | None]:
    """``repository[:tag][@digest]`` → ``(repository, tag, digest)``; a ``:`` in the host part (a port)
    is not a tag."""
    repo, tag, digest = split_image_reference(ref)
    return repo, tag or None, digest or None


def image_trailer(name: str, entry: ImageEntry) -> str:
    """The value of an ``Image:`` trailer: ``<name>=<repository>[:tag][@digest]``."""
    return f"{name}={entry.ref}"


def image_trailers(commit: CommitInfo) -> dict[str, str]:
    """The commit's ``Image:`` trailers as image name → reference."""
    out: dict[str, str] = {}
    for value in commit.trailer(TRAILER_IMAGE):
        name, sep, ref = value.partition("=")
        if sep and name.strip() and ref.strip():
            out[name.strip()] = ref.strip()
    return out


# --------------------------------------------------------------------------- reverts


def _resolver(log: Iterable[CommitInfo]) -> dict[str, CommitInfo]:
    return {c.sha: c for c in log}


def _find(by_sha: dict[str, CommitInfo], prefix: str) -> CommitInfo | None:
    if prefix in by_sha:
        return by_sha[prefix]
    if len(prefix) < 7:
        return None
    matches = [c for sha, c in by_sha.items() if sha.startswith(prefix)]
    return matches[0] if len(matches) == 1 else None


def is_partial_rollback(commit: CommitInfo) -> bool:
    """Whether ``commit`` rolled back one app of a promotion (a ``Rollback-App`` trailer)."""
    return bool(commit.first(TRAILER_ROLLBACK_APP))


def effective_reverts(log: list[CommitInfo]) -> dict[str, CommitInfo]:
    """Commits whose change is currently undone: reverted commit id → the revert commit.

    ``log`` is newest first, as :meth:`GitWriter.log` returns it (Git never lists a parent before its
    children); it is walked oldest first. A revert of a revert re-applies the original (it leaves the
    map). Reverts of commits outside ``log`` are keyed by the id they name. A partial rollback (see
    :func:`is_partial_rollback`) undoes only one app of a promotion and is not counted here (see
    :func:`partial_rollbacks`); a revert of a partial rollback is (the partial rollback is then undone).
    """
    by_sha = _resolver(log)
    undone: dict[str, CommitInfo] = {}
    for commit in reversed(log):
        target_id = commit.reverts
        if not target_id or is_partial_rollback(commit):
            continue
        target = _find(by_sha, target_id)
        key = target.sha if target else target_id
        if target is not None and target.reverts:
            original = _find(by_sha, target.reverts)
            okey = original.sha if original else target.reverts
            if okey in undone and undone[okey].sha == target.sha:
                del undone[okey]
                continue
        undone[key] = commit
    return undone


def is_reverted(log: list[CommitInfo], sha: str) -> CommitInfo | None:
    """The revert commit that currently undoes ``sha`` (``None`` when it is in effect)."""
    undone = effective_reverts(log)
    if sha in undone:
        return undone[sha]
    return next((c for k, c in undone.items() if k.startswith(sha) or sha.startswith(k)), None)


def partial_rollbacks(log: list[CommitInfo]) -> dict[str, dict[str, CommitInfo]]:
    """Promotions with an app rolled back by a partial rollback in effect: promotion id → app name → the
    partial rollback commit (the newest one per app).

    A partial rollback that a revert undid (see :func:`effective_reverts`) does not count. Promotions
    outside ``log`` are keyed by the id the ``Rollback-Of`` trailer names.

    Args:
        log: commits of the branch, newest first, as :meth:`GitWriter.log` returns them.
    """
    by_sha = _resolver(log)
    undone = effective_reverts(log)
    out: dict[str, dict[str, CommitInfo]] = {}
    for commit in reversed(log):
        app = commit.first(TRAILER_ROLLBACK_APP)
        if not app or commit.sha in undone:
            continue
        for of in commit.trailer(TRAILER_ROLLBACK_OF):
            target = _find(by_sha, of)
            out.setdefault(target.sha if target else of, {})[app] = commit
    return out


def _partially_held(log: list[CommitInfo]) -> Iterable[tuple[CommitInfo, str, CommitInfo, str, str]]:
    """(promotion, app, partial rollback, image name, reference the promotion set) for every image entry
    that a partial rollback in effect restored."""
    by_sha = _resolver(log)
    for sha, apps in partial_rollbacks(log).items():
        promotion = by_sha.get(sha)
        if promotion is None:
            continue
        promoted = image_trailers(promotion)
        for app, rollback in apps.items():
            for name in image_trailers(rollback):
                ref = promoted.get(name)
                if ref is not None:
                    yield promotion, app, rollback, name, ref


def reverted_images(log: list[CommitInfo]) -> dict[str, set[str]]:
    """Image versions held back because the commit that introduced them was reverted.

    For every commit currently undone by a revert (see :func:`effective_reverts`), its ``Image:``
    trailers give image name → the tag and the digest it moved to; both are returned, so automation
    can skip a candidate whose tag *or* digest is held back while a newer version still promotes. A
    partial rollback in effect (see :func:`partial_rollbacks`) holds back only the versions its promotion
    set for the entries it restored (its own ``Image:`` trailers name them): the other apps of that
    promotion are not held back. A reverted partial rollback holds nothing back (the versions it had
    restored are not bad ones).

    Args:
        log: commits of the branch, newest first, as :meth:`GitWriter.log` returns them (include at
            least the reverted commits and their reverts).

    Returns:
        image name (as the ``images:`` entry's ``name``) → set of tags and ``sha256:…`` digests.
    """
    by_sha = _resolver(log)
    held: dict[str, set[str]] = {}
    for sha in effective_reverts(log):
        commit = by_sha.get(sha)
        if commit is None or is_partial_rollback(commit):
            continue
        for name, ref in image_trailers(commit).items():
            _, tag, digest = split_ref(ref)
            versions = held.setdefault(name, set())
            versions.update(v for v in (tag, digest) if v)
    for _, _, _, name, ref in _partially_held(log):
        _, tag, digest = split_ref(ref)
        held.setdefault(name, set()).update(v for v in (tag, digest) if v)
    return held


def held_back_reason(log: list[CommitInfo], image: str, version: str) -> str | None:
    """Why ``version`` (a tag or digest) of ``image`` is held back, e.g. ``0.1.6 is held back because its
    promotion was rolled back in 1a2b3c4``; ``None`` when it is not."""
    by_sha = _resolver(log)
    for sha, revert in effective_reverts(log).items():
        commit = by_sha.get(sha)
        if commit is None or is_partial_rollback(commit):
            continue
        ref = image_trailers(commit).get(image)
        if ref is None:
            continue
        _, tag, digest = split_ref(ref)
        if version in (tag, digest):
            return (
                f"{version} is held back because its promotion was rolled back in {revert.short} "
                f"(revert of {commit.short})"
            )
    for commit, app, rollback, name, ref in _partially_held(log):
        _, tag, digest = split_ref(ref)
        if name == image and version in (tag, digest):
            return (
                f"{version} is held back because its promotion was rolled back in {rollback.short} "
                f"(rollback of app {app} from {commit.short})"
            )
    return None


# --------------------------------------------------------------------------- promotions and outcomes


def promotions_into(log: list[CommitInfo], env: str) -> list[CommitInfo]:
    """Promotion commits (``Promotion-To: <env>``) of ``log``, in log order; reverts never count."""
    return [c for c in log if c.first(TRAILER_TO) == env and not c.reverts]


def outcome_index(notes: dict[str, str], env: str) -> dict[str, list[OutcomeRecord]]:
    """Records of ``env`` by the commits they concern (the applied revision and its promotions),
    oldest first."""
    index: dict[str, list[OutcomeRecord]] = {}
    for sha, records in records_by_commit(notes).items():
        for rec in records:
            if rec.environment != env:
                continue
            for key in {sha, rec.revision, *rec.promotions}:
                bucket = index.setdefault(key, [])
                if not any(r.same(rec) and r.at == rec.at for r in bucket):
                    bucket.append(rec)
    for bucket in index.values():
        bucket.sort(key=lambda r: r.at)
    return index


def last_healthy(log: list[CommitInfo], notes: dict[str, str], env: str) -> str | None:
    """The newest commit of ``log`` (newest first) whose health gate passed in ``env``: recorded
    ``healthy``, or ``unverified`` where the environment's ``health.unverified`` let the gate pass
    (``warn``/``pass``). A later failed gate of the same revision counts, not the earlier pass."""
    last: dict[str, OutcomeRecord] = {}
    for records in records_by_commit(notes).values():
        for rec in records:
            if rec.environment == env and rec.outcome in SETTLED:
                seen = last.get(rec.revision)
                if seen is None or rec.at >= seen.at:
                    last[rec.revision] = rec
    healthy = {sha for sha, rec in last.items() if not rec.gate_failed}
    return next((c.sha for c in log if c.sha in healthy), None)


def last_recorded(log: list[CommitInfo], notes: dict[str, str], env: str) -> str | None:
    """The newest commit of ``log`` with an outcome record of ``env`` (the last revision it applied;
    ``blocked`` records name revisions that were never applied and do not count)."""
    seen = {
        rec.revision
        for records in records_by_commit(notes).values()
        for rec in records
        if rec.environment == env and rec.outcome is not Outcome.BLOCKED
    }
    return next((c.sha for c in log if c.sha in seen), None)


# --------------------------------------------------------------------------- timeline


class ImageMove(BaseModel):
    """One image whose version a commit changed in an environment's overlay."""

    name: str
    before: str | None = Field(description="repository[:tag][@digest] before, None when added")
    after: str | None = Field(description="after, None when removed")


class HistoryEntry(BaseModel):
    """One line of ``reconciler history ENV``; times are UNIX seconds."""

    sha: str
    kind: str = Field(
        description="promotion | rollback | change | rewind (the branch was rewound to this commit: a "
        "force-push took the one applied before off the branch) | suspend | resume | sync (actions on the "
        "environment, from the notes under refs/notes/reconciler-control; sha: the branch head then) | "
        "mcp-call (a write tool called through reconciler's MCP server; sha: the branch head it was called "
        "at, or the commit it made)"
    )
    subject: str
    at: float = Field(description="when it reached the branch (the merge time for a merged pull request)")
    author: str
    merged_by: str | None = None
    merge_commit: str | None = None
    from_env: str | None = None
    source_revision: str | None = None
    moved: list[ImageMove] = Field(default_factory=list)
    outcome: str | None = None
    outcomes: list[OutcomeRecord] = Field(default_factory=list)
    reverted_by: str | None = None
    rolled_back_apps: dict[str, str] = Field(
        default_factory=dict,
        description="apps of this promotion undone by a partial rollback in effect: app → rollback commit",
    )
    rollback_of: str | None = None
    rollback_app: str | None = Field(default=None, description="the app a partial rollback undid")
    undoes: list[str] = Field(
        default_factory=list, description="every commit a rollback undoes (one for a revert)"
    )
    reason: str | None = None
    automatic: bool = False
    requested_by: str | None = Field(
        default=None,
        description="who asked for a rollback or promotion through the daemon's actions (Requested-By), or "
        "who suspended, resumed or synced the environment",
    )
    tool_grants: list[str] = Field(default_factory=list, description="new tool grants (Tool-Grant trailers)")
    rewound_from: str | None = Field(
        default=None, description="rewind: the commit applied before, which left the branch"
    )
    tool_call: ToolCallRecord | None = Field(
        default=None, description="mcp-call: the tool, the caller's identity, the arguments and the result"
    )


def kustomization_file(writer: GitWriter, rev: str, overlay: str) -> str | None:
    """The path of ``overlay``'s kustomization file at ``rev`` (``None`` when it has none)."""
    for name in KUSTOMIZATION_NAMES:
        path = f"{overlay.rstrip('/')}/{name}"
        if writer.read_file(rev, path) is not None:
            return path
    return None


def overlay_images(writer: GitWriter, rev: str, overlay: str) -> dict[str, ImageEntry]:
    """``images:`` of ``overlay``'s kustomization at ``rev`` by name (empty when unreadable)."""
    path = kustomization_file(writer, rev, overlay)
    if path is None:
        return {}
    try:
        return {e.name: e for e in read_images(writer.read_file(rev, path) or "", path)}
    except OverlayError:
        return {}


def images_moved(writer: GitWriter, sha: str, parent: str | None, overlay: str) -> list[ImageMove]:
    """Images whose reference differs in ``overlay`` between ``parent`` (default ``sha^``) and ``sha``."""
    before = overlay_images(writer, parent or f"{sha}^", overlay)
    after = overlay_images(writer, sha, overlay)
    moves: list[ImageMove] = []
    for name in sorted(set(before) | set(after)):
        b, a = before.get(name), after.get(name)
        if (b.ref if b else None) != (a.ref if a else None):
            moves.append(ImageMove(name=name, before=b.ref if b else None, after=a.ref if a else None))
    return moves


def _merges(writer: GitWriter, log: list[CommitInfo]) -> dict[str, CommitInfo]:
    """commit id → the merge commit that brought it into the branch (for commits of merged branches)."""
    merged: dict[str, CommitInfo] = {}
    for commit in reversed([c for c in log if c.is_merge]):
        try:
            brought = writer.log(rev=f"{commit.parents[0]}..{commit.parents[1]}", max_count=200)
        except SourceError:
            continue
        for c in brought:
            merged.setdefault(c.sha, commit)
    return merged


def timeline(
    writer: GitWriter, env: Environment, *, limit: int = 50, rev: str = "HEAD"
) -> list[HistoryEntry]:
    """The history of ``env``, newest first: promotions into it (with who merged them), rollbacks and
    other commits that changed its overlay, each with the versions it moved and its recorded outcome, and
    the rewinds of the branch the daemon applied (``rewind``: from its ``rewound`` records; the commit that
    left the branch is no longer in the log, so its own entry is gone, but its records stay in the notes).

    Args:
        writer: a synced clone (call :meth:`GitWriter.sync` first).
        env: the environment.
        limit: at most this many entries.
        rev: the branch head to read from.
    """
    log = writer.log(rev=rev, max_count=max(200, limit * 4))
    touching = {c.sha for c in writer.log(rev=rev, max_count=max(200, limit * 4), paths=[env.overlay])}
    by_sha = _resolver(log)
    notes = writer.notes()
    index = outcome_index(notes, env.name)
    undone = effective_reverts(log)
    partial = partial_rollbacks(log)
    merged_in = _merges(writer, log)
    entries: list[HistoryEntry] = []
    for c in log:
        if c.is_merge:
            continue
        target = _find(by_sha, c.reverts) if c.reverts else None
        is_promotion = c.first(TRAILER_TO) == env.name and not c.reverts
        is_rollback = c.reverts is not None and (
            c.first(TRAILER_ROLLBACK_ENV) == env.name
            or (target is not None and target.first(TRAILER_TO) == env.name)
            or c.sha in touching
        )
        if not (is_promotion or is_rollback or c.sha in touching):
            continue
        merge = merged_in.get(c.sha)
        records = list(index.get(c.sha, []))
        if merge is not None:
            records += [r for r in index.get(merge.sha, []) if r not in records]
        records.sort(key=lambda r: r.at)
        settled = [
            r for r in records if r.outcome in SETTLED or r.outcome in (Outcome.REVERTED, Outcome.BLOCKED)
        ]
        reverted_by = undone.get(c.sha)
        undoes = [
            (found.sha if (found := _find(by_sha, of)) else of) for of in c.trailer(TRAILER_ROLLBACK_OF)
        ] or ([target.sha if target else c.reverts] if c.reverts else [])
        entries.append(
            HistoryEntry(
                sha=c.sha,
                kind="promotion" if is_promotion else "rollback" if is_rollback else "change",
                subject=c.subject,
                at=merge.committed_at if merge else c.committed_at,
                author=f"{c.author_name} <{c.author_email}>",
                merged_by=f"{merge.committer_name} <{merge.committer_email}>" if merge else None,
                merge_commit=merge.sha if merge else None,
                from_env=c.first(TRAILER_FROM),
                source_revision=c.first(TRAILER_SOURCE),
                moved=images_moved(writer, c.sha, None, env.overlay),
                outcome=settled[-1].outcome.value if settled else None,
                outcomes=records,
                reverted_by=reverted_by.sha if reverted_by else None,
                rolled_back_apps={app: r.sha for app, r in sorted(partial.get(c.sha, {}).items())},
                rollback_of=target.sha if target else c.reverts,
                rollback_app=c.first(TRAILER_ROLLBACK_APP) if c.reverts else None,
                undoes=undoes,
                reason=c.first(TRAILER_REASON),
                automatic=c.first(TRAILER_ROLLBACK_BY) == "reconciler",
                requested_by=c.first(TRAILER_REQUESTED_BY) if is_rollback or is_promotion else None,
                tool_grants=list(c.trailer(TRAILER_TOOL_GRANT)),
            )
        )
        if len(entries) >= limit:
            break
    for rec in sorted(
        {r.line(): r for rs in index.values() for r in rs if r.outcome is Outcome.REWOUND}.values(),
        key=lambda r: r.at,
    ):
        at = by_sha.get(rec.revision)
        entries.append(
            HistoryEntry(
                sha=rec.revision,
                kind="rewind",
                subject=at.subject if at is not None else "",
                at=rec.at,
                author="reconciler",
                outcome=Outcome.REWOUND.value,
                outcomes=[rec],
                reason=rec.message,
                rewound_from=rec.rewound_from or None,
            )
        )
    from reconciler.model.control import control_records

    for ctl in control_records(writer, env.name):  # suspend, resume and sync: notes, not commits
        at = by_sha.get(ctl.revision)
        entries.append(
            HistoryEntry(
                sha=ctl.revision,
                kind=ctl.action,
                subject=at.subject if at is not None else "",
                at=ctl.at,
                author=ctl.by,
                reason=ctl.reason or None,
                requested_by=ctl.by,
            )
        )
    for sha, text in notes.items():
        for call in parse_tool_calls(text):
            if call.environment != env.name:
                continue
            entries.append(
                HistoryEntry(
                    sha=call.commit or sha,
                    kind="mcp-call",
                    subject=f"{call.tool} through MCP" + (f": {call.message}" if call.message else ""),
                    at=call.at,
                    author=call.caller,
                    outcome="ok" if call.ok else "failed",
                    requested_by=call.caller,
                    tool_call=call,
                )
            )
    entries.sort(key=lambda e: e.at, reverse=True)
    return entries[:limit]
