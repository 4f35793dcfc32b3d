"""Promotion: move the versions one environment runs into the next one's overlay, as a reviewed commit.

``promote(FROM, TO)`` reads the ``images:`` of FROM's overlay at the revision last verified healthy in
FROM (a ``healthy`` outcome note, see :mod:`reconciler.promote.records`), pins each by digest, writes them
into TO's overlay with a round-trip edit (:mod:`reconciler.promote.overlay`) and commits with trailers
(:mod:`reconciler.promote.history`) — on the branch ``promote/<to>/<short-sha>`` for a pull request,
or directly on the followed branch when TO's rules allow a push. Merging the pull request is what
promotes: the daemon then reconciles TO on the merge commit.

The rules come from TO's ``envs/<to>.yaml``: ``promotion.from`` (the only allowed source),
``promotion.requireHealth`` (``healthy``: use FROM's last verified-healthy revision; ``any``: FROM's
latest) and ``promotion.via`` (``push`` allows a direct push; ``pr`` requires a pull request).
"""

from __future__ import annotations

import asyncio
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field

from reconciler.errors import ReconcilerError, SourceError
from reconciler.model import Environment, ToolContractPolicy
from reconciler.probe.contract import ContractReport, requirements
from reconciler.probe.service import ProbeService
from reconciler.promote.history import (
    TRAILER_APP,
    TRAILER_FROM,
    TRAILER_IMAGE,
    TRAILER_SOURCE,
    TRAILER_TO,
    TRAILER_TOOL_GRANT,
    image_trailer,
    image_trailers,
    kustomization_file,
    last_healthy,
    split_ref,
)
from reconciler.promote.hosts import (
    HostConfig,
    HostError,
    PullRequest,
    manual_instructions,
    open_pull_request,
)
from reconciler.promote.overlay import ImageEntry, OverlayError, read_images, set_images
from reconciler.render import RemoteOptions, RenderError, build
from reconciler.render.helm import HelmOptions
from reconciler.render.helm import environment_options as helm_options
from reconciler.render.remote import environment_options
from reconciler.source.gitops import CommitInfo, GitWriter

Mode = Literal["push", "pr"]
_APP_LABELS = ("app.kubernetes.io/name", "app.kubernetes.io/instance", "app")


class PromotionError(ReconcilerError):
    """A promotion or rollback cannot be made; the message says why and what to do."""


def wrap_source_error(what: str, exc: SourceError) -> PromotionError:
    """A :class:`PromotionError` for a Git failure, as retryable as the failure itself."""
    err = PromotionError(f"{what}: {exc}")
    err.retryable = exc.retryable
    return err


class RuleError(PromotionError):
    """The environments' promotion rules forbid what was asked."""


class ToolContractError(PromotionError):
    """The promotion would leave an Agent of the target without a tool it requires (or with one whose
    input schema changed incompatibly); nothing was committed or proposed."""

    def __init__(self, message: str, report: ContractReport) -> None:
        super().__init__(message)
        self.report = report


class ImageChange(BaseModel):
    """One image a promotion moves in the target overlay."""

    name: str
    before: str | None = Field(description="the target's reference before, None when it had no entry")
    after: ImageEntry


class PromotionPlan(BaseModel):
    """What a promotion would write (computed before anything is committed)."""

    from_env: str
    to_env: str
    source_sha: str
    source_revision: str = Field(description="branch@sha1:<sha> of the source revision")
    app: str | None = None
    file: str = Field(description="the target overlay's kustomization file")
    changes: list[ImageChange] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list, description="images the target already runs")
    warnings: list[str] = Field(default_factory=list)
    tool_grants: list[str] = Field(
        default_factory=list, description="tools the promotion newly grants to the target's Agents"
    )
    tool_contract: str = Field(default="", description="what the tool-contract check found (one line)")


class PromotionResult(BaseModel):
    """What a promotion did."""

    plan: PromotionPlan
    mode: Mode
    commit: str | None = None
    branch: str | None = None
    pushed_to: str | None = None
    fallback: bool = False
    pull_request: PullRequest | None = None
    instructions: str = ""
    pr_error: str = Field(
        default="",
        description="why the pull request could not be opened though the host has a token (its branch is "
        "pushed; running the command again opens it)",
    )
    message: str = ""


def check_rules(envs: dict[str, Environment], from_env: str, to_env: str, mode: Mode | None) -> Mode:
    """Check TO's promotion rules for a promotion from FROM and return the mode to use.

    Raises:
        RuleError: an unknown environment, a source other than ``promotion.from``, or ``push`` asked for
            an environment that requires a pull request.
    """
    for name in (from_env, to_env):
        if name not in envs:
            raise RuleError(
                f"environment {name!r} is not defined in envs/ (defined: {', '.join(sorted(envs))})"
            )
    if from_env == to_env:
        raise RuleError(f"cannot promote {to_env!r} into itself")
    target = envs[to_env]
    allowed = target.promotion.from_env
    if allowed is None:
        raise RuleError(
            f"envs/{to_env}.yaml allows no promotions (promotion.from is not set); "
            f"set promotion.from: {from_env} to allow them"
        )
    if allowed != from_env:
        raise RuleError(f"envs/{to_env}.yaml accepts promotions only from {allowed!r}, not from {from_env!r}")
    if mode == "push" and target.promotion.via == "pr":
        raise RuleError(f"envs/{to_env}.yaml requires a pull request (promotion.via: pr); use --pr")
    return mode or target.promotion.via


def source_revision(writer: GitWriter, envs: dict[str, Environment], from_env: str, to_env: str) -> str:
    """The commit whose FROM overlay is promoted: the last one whose health gate passed in FROM
    (``requireHealth: healthy``; see :func:`last_healthy`) or the branch head (``any``).

    Raises:
        PromotionError: no revision of FROM was recorded healthy.
    """
    if envs[to_env].promotion.require_health == "any":
        return writer.head()
    log = writer.log(max_count=1000)
    sha = last_healthy(log, writer.notes(), from_env)
    if sha is None:
        raise PromotionError(
            f"no revision of {from_env!r} has passed its health gate yet (no passing outcome in "
            f"refs/notes/reconciler); let the daemon reconcile {from_env!r}, or set "
            f"promotion.requireHealth: any in envs/{to_env}.yaml"
        )
    return sha


def _walk_images(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for k, v in value.items():
            if k == "image" and isinstance(v, str):
                yield v
            else:
                yield from _walk_images(v)
    elif isinstance(value, list):
        for v in value:
            yield from _walk_images(v)


def _app_names(obj: dict[str, Any]) -> set[str]:
    meta = obj.get("metadata") or {}
    labels = meta.get("labels") or {}
    return {str(meta.get("name", ""))} | {str(labels[k]) for k in _APP_LABELS if k in labels}


def apps_of(
    writer: GitWriter,
    sha: str,
    overlay: str,
    *,
    remote: RemoteOptions | None = None,
    helm: HelmOptions | None = None,
) -> dict[str, set[str]]:
    """Every app of ``overlay`` rendered at ``sha`` → the repositories of the images its objects use (an
    object belongs to the apps it is named after or labelled with: ``app.kubernetes.io/name``,
    ``app.kubernetes.io/instance`` or ``app``; an app whose objects use no image maps to an empty set).

    Raises:
        PromotionError: the overlay does not render at ``sha``.
    """
    with tempfile.TemporaryDirectory(prefix="reconciler-promote-") as tmp:
        root = writer.export(sha, Path(tmp) / "tree")
        try:
            objects = build(root / overlay, root=root, remote=remote, helm=helm)
        except RenderError as exc:
            raise PromotionError(f"{overlay} at {sha[:7]} does not render: {exc}") from None
    apps: dict[str, set[str]] = {}
    for obj in objects:
        repos = {split_ref(ref)[0] for ref in _walk_images(obj)}
        for name in _app_names(obj):
            if name:
                apps.setdefault(name, set()).update(repos)
    return apps


def app_repositories(writer: GitWriter, sha: str, overlay: str, app: str) -> set[str]:
    """Repositories of the images that ``app``'s objects use in ``overlay`` rendered at ``sha`` (objects
    named ``app`` or labelled ``app.kubernetes.io/name``/``instance`` or ``app`` = ``app``; see
    :func:`apps_of`).

    Raises:
        PromotionError: the overlay does not render, or no object belongs to ``app``.
    """
    apps = apps_of(writer, sha, overlay)
    found = apps.get(app, set())
    if not found:
        raise PromotionError(
            f"no object of {overlay} at {sha[:7]} belongs to app {app!r} (known: {', '.join(sorted(apps))})"
        )
    return found


def app_entries(entries: list[ImageEntry], repositories: set[str]) -> list[ImageEntry]:
    """The ``images:`` entries that deploy one of ``repositories`` (by ``newName`` or ``name``), as
    ``promote --app`` selects them."""
    return [e for e in entries if e.repository in repositories or e.name in repositories]


def _digest_from_log(log: list[CommitInfo], entry: ImageEntry) -> str | None:
    for commit in log:
        ref = image_trailers(commit).get(entry.name)
        if ref is None:
            continue
        repo, tag, digest = split_ref(ref)
        if digest and repo == entry.repository and (entry.new_tag is None or tag == entry.new_tag):
            return digest
    return None


def plan_promotion(
    writer: GitWriter,
    envs: dict[str, Environment],
    from_env: str,
    to_env: str,
    *,
    app: str | None = None,
    all_images: bool = False,
    allow_unpinned: bool = False,
    source: str | None = None,
) -> PromotionPlan:
    """Work out what promoting FROM into TO writes, from a synced clone (nothing is changed).

    Args:
        writer: a clone synced with :meth:`GitWriter.sync`.
        envs: the environments (``envs/*.yaml`` at the branch head).
        from_env: the source environment.
        to_env: the target environment.
        app: only the images of this app (see :func:`app_repositories`).
        all_images: every image of FROM's overlay.
        allow_unpinned: promote a tag without a digest when none can be found (a warning instead of an
            error).
        source: the source commit (default: :func:`source_revision`).

    Raises:
        PromotionError: neither ``app`` nor ``all_images``, an overlay without a kustomization, an
            unknown app, or a version that cannot be pinned by digest.
    """
    if (app is None) == (not all_images):
        raise PromotionError("choose what to promote: --app NAME or --all")
    src_env, dst_env = envs[from_env], envs[to_env]
    sha = source or source_revision(writer, envs, from_env, to_env)
    src_file = kustomization_file(writer, sha, src_env.overlay)
    if src_file is None:
        raise PromotionError(f"{src_env.overlay} has no kustomization.yaml at {sha[:7]}")
    dst_file = kustomization_file(writer, "HEAD", dst_env.overlay)
    if dst_file is None:
        raise PromotionError(f"{dst_env.overlay} has no kustomization.yaml at the branch head")
    try:
        src_images = read_images(writer.read_file(sha, src_file) or "", src_file)
        dst_images = {e.name: e for e in read_images(writer.read_file("HEAD", dst_file) or "", dst_file)}
    except OverlayError as exc:
        raise PromotionError(str(exc)) from None
    if app is not None:
        repos = app_repositories(writer, sha, src_env.overlay, app)
        src_images = app_entries(src_images, repos)
        if not src_images:
            raise PromotionError(
                f"{src_file} at {sha[:7]} pins no image of app {app!r} ({', '.join(sorted(repos))}); "
                "nothing to promote"
            )
    plan = PromotionPlan(
        from_env=from_env,
        to_env=to_env,
        source_sha=sha,
        source_revision=f"{writer.branch}@sha1:{sha}",
        app=app,
        file=dst_file,
    )
    log: list[CommitInfo] | None = None
    for entry in src_images:
        pinned = entry
        if not entry.digest:
            log = log if log is not None else writer.log(rev=sha, max_count=1000)
            digest = _digest_from_log(log, entry)
            if digest:
                pinned = entry.model_copy(update={"digest": digest})
            elif allow_unpinned:
                plan.warnings.append(f"{entry.name}: {entry.ref} is not pinned by digest")
            else:
                raise PromotionError(
                    f"{entry.name}: {src_file} at {sha[:7]} has {entry.ref} without a digest and no "
                    f"commit records one (Image: trailer); pin it (digest: sha256:…) or pass --allow-unpinned"
                )
        before = dst_images.get(entry.name)
        if before is not None and before.ref == pinned.ref:
            plan.unchanged.append(entry.name)
            continue
        plan.changes.append(ImageChange(name=entry.name, before=before.ref if before else None, after=pinned))
    return plan


def _short_name(name: str) -> str:
    return name.rsplit("/", 1)[-1]


def commit_message(plan: PromotionPlan) -> tuple[str, dict[str, str | list[str]]]:
    """The promotion commit's message and trailers."""
    what = plan.app or ", ".join(
        f"{_short_name(c.name)} {c.after.new_tag or c.after.digest}" for c in plan.changes
    )
    subject = f"promote({plan.to_env}): {what} from {plan.from_env} @ {plan.source_sha[:7]}"
    lines = [f"{c.name}: {c.before or '(none)'} -> {c.after.ref}" for c in plan.changes]
    message = subject + "\n\n" + "\n".join(lines)
    trailers: dict[str, str | list[str]] = {
        TRAILER_FROM: plan.from_env,
        TRAILER_TO: plan.to_env,
        TRAILER_SOURCE: plan.source_revision,
    }
    if plan.app:
        trailers[TRAILER_APP] = plan.app
    trailers[TRAILER_IMAGE] = [image_trailer(c.name, c.after) for c in plan.changes]
    if plan.tool_grants:
        message += "\n\nNew tool grants:\n" + "\n".join(f"- {g}" for g in plan.tool_grants)
        trailers[TRAILER_TOOL_GRANT] = list(plan.tool_grants)
    return message, trailers


def _render_at(writer: GitWriter, sha: str | None, env: Environment) -> list[dict[str, Any]]:
    """``env``'s overlay rendered at ``sha`` (``None``: the clone's working tree, with uncommitted
    changes)."""
    if sha is None:
        return build(
            writer.workdir / env.overlay,
            root=writer.workdir,
            remote=environment_options(env),
            helm=helm_options(env),
        )
    with tempfile.TemporaryDirectory(prefix="reconciler-promote-") as tmp:
        root = writer.export(sha, Path(tmp) / "tree")
        return build(root / env.overlay, root=root, remote=environment_options(env), helm=helm_options(env))


def check_tool_contract(
    writer: GitWriter,
    plan: PromotionPlan,
    src_env: Environment,
    dst_env: Environment,
    probes: ProbeService | None,
) -> ContractReport | None:
    """The target's tool contract after the promotion written (uncommitted) in the clone's working tree
    (:func:`reconciler.reconcile.toolgate.promotion_check`). Records new grants and the verdict in
    ``plan``; ``None`` when the target's ``health.toolContract`` is ``off``.

    Raises:
        ToolContractError: the contract breaks and the target enforces it.
        PromotionError: an overlay does not render.
    """
    from reconciler.reconcile.toolgate import promotion_check

    policy = dst_env.health.tool_contract
    if policy is ToolContractPolicy.OFF:
        return None
    try:
        after = _render_at(writer, None, dst_env)
        before = _render_at(writer, "HEAD", dst_env)
        source = _render_at(writer, plan.source_sha, src_env)
    except RenderError as exc:
        raise PromotionError(f"tool contract: an overlay does not render: {exc}") from None
    if probes is None:
        if any(r.tools is not None for r in requirements(after, namespace=dst_env.namespace or "")):
            plan.tool_contract = "not checked: no protocol probe reaches the MCP servers"
            plan.warnings.append(
                "tool contract not checked: no protocol probe reaches the MCP servers (set "
                "RECONCILER_PROBE_ADDRESSES, or RECONCILER_PROBE_DIRECT=true in-cluster)"
            )
        return None
    report = promotion_check(
        probes,
        source=source,
        source_namespace=src_env.namespace or "",
        target_before=before,
        target_after=after,
        target_namespace=dst_env.namespace or "",
    )
    plan.tool_grants = [g.describe() for g in report.grants]
    plan.tool_contract = report.summary()
    if report.unverified:
        plan.warnings.append(f"tool contract unverified for: {', '.join(report.unverified)}")
    if not report.ok:
        what = f"promotion {plan.from_env} → {plan.to_env} blocked by the tool contract: {report.summary()}"
        if policy is ToolContractPolicy.ENFORCE:
            raise ToolContractError(what, report)
        plan.warnings.append(what)
    return report


def promotion_branch(plan: PromotionPlan) -> str:
    """``promote/<to>/<short source sha>``."""
    return f"promote/{plan.to_env}/{plan.source_sha[:7]}"


def run_async(coro: Any) -> Any:
    """Run a coroutine from synchronous code (in a fresh event loop, or a worker thread when a loop is
    already running in this thread)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result()


class Published(BaseModel):
    """Where committed changes went."""

    commits: list[str] = Field(default_factory=list, description="the new commits, oldest first")
    branch: str | None = None
    pushed_to: str | None = None
    fallback: bool = False
    pull_request: PullRequest | None = None
    instructions: str = ""
    pr_error: str = ""


def publish(
    writer: GitWriter,
    *,
    count: int,
    mode: Mode,
    branch: str,
    host: HostConfig | None,
    title: str,
    body: str,
) -> Published:
    """Push the clone's last ``count`` commits: directly to the followed branch (``push``; rebased and
    retried when another writer pushed first, on a fallback branch when it is protected), or on
    ``branch`` with a pull request opened through ``host`` (``pr``; without a token the result says
    where to open it; when the host keeps failing past its retry budget, ``pr_error`` says why and the
    branch stays pushed, so that running the command again reuses it and opens the pull request once).
    Shared by promotions and rollbacks.

    Raises:
        SourceError: the push failed.
    """
    out = Published()
    if mode == "push":
        pushed = writer.push()
        out.pushed_to, out.fallback = pushed.pushed_to, pushed.fallback
        if pushed.fallback:
            out.instructions = (
                f"{writer.branch} refused the push ({pushed.reason}); pushed to {pushed.pushed_to}: "
                + manual_instructions(host, writer.url, pushed.pushed_to, writer.branch)
            )
    else:
        writer.switch(branch)
        existing = writer.remote_branches(branch).get(branch)
        if existing and writer.tree(existing) == writer.tree("HEAD"):
            writer.reset_hard(existing)
        else:
            writer.push(branch=branch, force=True)
        out.branch = out.pushed_to = branch
        if host is not None and host.token:
            try:
                out.pull_request = run_async(
                    open_pull_request(host, head=branch, base=writer.branch, title=title, body=body)
                )
            except HostError as exc:
                out.pr_error = str(exc)
                out.instructions = f"could not open the pull request ({exc}); " + manual_instructions(
                    host, writer.url, branch, writer.branch
                )
        else:
            out.instructions = manual_instructions(host, writer.url, branch, writer.branch)
    out.commits = [c.sha for c in reversed(writer.log(rev="HEAD", max_count=count))]
    return out


def promote(
    writer: GitWriter,
    envs: dict[str, Environment],
    from_env: str,
    to_env: str,
    *,
    app: str | None = None,
    all_images: bool = False,
    mode: Mode | None = None,
    host: HostConfig | None = None,
    allow_unpinned: bool = False,
    probes: ProbeService | None = None,
    requested_by: str | None = None,
) -> PromotionResult:
    """Promote FROM's versions into TO (see the module docstring). Call on a clone fresh from
    :meth:`GitWriter.sync`, holding :meth:`GitWriter.locked`.

    Before anything is committed, TO's tool contract is checked (:func:`check_tool_contract`) with
    ``probes``; new tool grants go into the commit message (the pull request's body) and ``Tool-Grant:``
    trailers. ``requested_by`` (who asked through the daemon's actions) goes into a ``Requested-By``
    trailer.

    Raises:
        RuleError: TO's rules forbid it.
        ToolContractError: an Agent of TO would lose a tool it requires (``toolContract: enforce``).
        PromotionError: nothing can be promoted as asked, or the push failed.
    """
    chosen = check_rules(envs, from_env, to_env, mode)
    plan = plan_promotion(
        writer, envs, from_env, to_env, app=app, all_images=all_images, allow_unpinned=allow_unpinned
    )
    result = PromotionResult(plan=plan, mode=chosen)
    if not plan.changes:
        result.message = f"{to_env} already runs what {from_env} runs at {plan.source_sha[:7]}; nothing to do"
        return result
    target = writer.workdir / plan.file
    original = target.read_text(encoding="utf-8")
    try:
        text = set_images(original, [c.after for c in plan.changes], plan.file)
    except OverlayError as exc:
        raise PromotionError(str(exc)) from None
    target.write_text(text, encoding="utf-8")
    try:
        check_tool_contract(writer, plan, envs[from_env], envs[to_env], probes)
    except PromotionError:
        target.write_text(original, encoding="utf-8")  # nothing half done: the clone is as it was
        raise
    message, trailers = commit_message(plan)
    if requested_by is not None:  # who asked through the daemon's actions (the status page's button)
        from reconciler.promote.history import TRAILER_REQUESTED_BY
        from reconciler.promote.rollback import check_identity

        trailers[TRAILER_REQUESTED_BY] = check_identity(requested_by)
    if writer.commit(message, trailers=trailers) is None:
        result.message = f"{to_env} already runs what {from_env} runs at {plan.source_sha[:7]}; nothing to do"
        return result
    try:
        out = publish(
            writer,
            count=1,
            mode=chosen,
            branch=promotion_branch(plan),
            host=host,
            title=message.splitlines()[0],
            body=message.split("\n\n", 1)[1],
        )
    except SourceError as exc:
        raise wrap_source_error(f"promotion {from_env} → {to_env}", exc) from None
    result.commit = out.commits[-1]
    result.branch, result.pushed_to, result.fallback = out.branch, out.pushed_to, out.fallback
    result.pull_request, result.instructions = out.pull_request, out.instructions
    result.pr_error = out.pr_error
    if chosen == "push":
        result.message = f"promoted {from_env} → {to_env}: {result.commit[:7]} pushed to {out.pushed_to}"
    else:
        result.message = f"promotion {from_env} → {to_env} proposed on {out.branch} ({result.commit[:7]})"
    return result
