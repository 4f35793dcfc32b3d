"""The ``promote``, ``rollback`` and ``history`` commands; :func:`register` adds them to the main app.

Exit codes: 0 ok (also when there was nothing to do), 1 failed, 2 usage error or a promotion rule
forbids what was asked.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

# typer only: rich, promotion, rollback, history, the Git host clients and the probes are imported by
# the commands that use them, so that the command line starts fast (tests/unit/test_cli_imports.py)
from reconciler.cli_console import lazy_console
from reconciler.errors import ConfigError, ReconcilerError

if TYPE_CHECKING:
    from reconciler.model import Environment
    from reconciler.promote.history import HistoryEntry
    from reconciler.promote.hosts import HostConfig
    from reconciler.promote.records import PromotionEvent
    from reconciler.source.gitops import GitWriter

console = lazy_console()
err = lazy_console(stderr=True)

Repo = Annotated[
    str,
    typer.Option("--repo", envvar="RECONCILER_REPO", help="environment repository (path or clone URL)"),
]
Branch = Annotated[str, typer.Option("--branch", envvar="RECONCILER_BRANCH", help="the followed branch")]
CacheDir = Annotated[
    Path | None,
    typer.Option("--cache-dir", envvar="RECONCILER_CACHE_DIR", help="where the working clone lives"),
]
Push = Annotated[bool, typer.Option("--push", help="commit directly on the branch (if the rules allow)")]
Pr = Annotated[bool, typer.Option("--pr", help="commit on a branch and open a pull request")]
HostKind = Annotated[
    str | None,
    typer.Option(
        "--host", help="github, gitlab or gitea (default: $RECONCILER_GIT_HOST, else from the remote URL)"
    ),
]
HostRepo = Annotated[
    str | None, typer.Option("--host-repo", help="owner/name (GitHub, Gitea) or the GitLab project path")
]
HostApi = Annotated[str | None, typer.Option("--host-api", help="API base URL of the Git host")]
Nats = Annotated[
    str | None, typer.Option("--nats", envvar="RECONCILER_NATS_URL", help="publish the event here")
]
OutputOpt = Annotated[str, typer.Option("-o", "--output", help="text, json or yaml")]
CheckKube = Annotated[
    Path | None,
    typer.Option(
        "--kubeconfig",
        help="with --pr: the pull request's check (status reconciler/check) adds a dry-run pass here",
    ),
]


def _check_pull_request(
    repo: str,
    base: str,
    head: str | None,
    config: HostConfig | None,
    kubeconfig: Path | None,
    cache: Path | None,
    number: int | None = None,
) -> str:
    """Run ``reconciler check`` on a pull request just opened from ``head``, post its result as the
    commit status ``reconciler/check`` on the head commit and put its Markdown report in the pull
    request's body (section ``reconciler-check``, replaced on every run), when the host has a token.
    Returns a line to print; never raises (the pull request is open either way, and its status says what
    the check found)."""
    if head is None or config is None or not config.token:
        return ""
    import asyncio

    from reconciler.paths import default_cache_dir
    from reconciler.promote.check import CHECK_CONTEXT, CHECK_SECTION, check_change
    from reconciler.promote.hosts import post_commit_status, set_pull_request_section

    try:
        client = None
        if kubeconfig is not None:
            from reconciler.cluster.client import KubeClient

            client = KubeClient(kubeconfig)
        report = check_change(repo, base, head, cache or default_cache_dir(), client=client)
        state: Literal["success", "failure"] = "success" if report.ok else "failure"
        asyncio.run(
            post_commit_status(
                config, report.head, context=CHECK_CONTEXT, state=state, description=report.summary()
            )
        )
        if number is not None:
            asyncio.run(set_pull_request_section(config, number, CHECK_SECTION, report.markdown()))
    except ReconcilerError as exc:
        return f"check not posted: {exc}"
    verdict = "passed" if report.ok else "FAILED"
    return f"check {verdict} ({CHECK_CONTEXT} on {report.head[:12]}): {report.summary()}"


def _pr_not_opened(
    pr_error: str, branch: str | None, commit: str | None, base: str, config: HostConfig | None, repo: str
) -> typer.Exit:
    """The error of a ``--pr`` run whose branch was pushed but whose pull request the host did not open
    within its retry budget: what failed, the state left behind, and how to finish."""
    from reconciler.promote.hosts import manual_instructions

    head = branch or "?"
    return _fail(
        f"could not open the pull request from {head} into {base}: {pr_error}\n"
        f"the branch {head} is pushed (commit {(commit or '?')[:7]}) and {base} is unchanged; run the same "
        "command again to open the pull request (it reuses the branch, so no second one is made), or "
        + manual_instructions(config, repo, head, base)
    )


def _fail(message: str, code: int = 1) -> typer.Exit:
    from rich.markup import escape

    # escaped: Git and host errors carry brackets ("[Errno 111]", "[rejected]") that are not markup
    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    return typer.Exit(code)


def _tidy(writer: GitWriter) -> None:
    """Put the working clone back on the branch head after a promotion or rollback was published. Only
    housekeeping (every command syncs first): when the remote cannot be reached now, the outcome already
    made — and its error, when the pull request could not be opened — is what the command reports."""
    import contextlib

    from reconciler.errors import SourceError

    with contextlib.suppress(SourceError):
        writer.sync()


def _writer(repo: str, branch: str, cache_dir: Path | None) -> GitWriter:
    from reconciler.paths import default_cache_dir
    from reconciler.source.gitops import GitWriter

    return GitWriter(repo, branch, cache_dir or default_cache_dir())


def _envs(writer: GitWriter, *needed: str) -> dict[str, Environment]:
    """The environments at the clone's head. An invalid ``envs/*.yaml`` matters only when it is one of
    ``needed`` (its ConfigError is raised); the others are left out.

    Raises:
        ConfigError: ``envs/`` is missing, or the file of a ``needed`` environment is invalid.
    """
    from reconciler.reconcile import load_environments

    invalid: dict[str, str] = {}
    envs = load_environments(writer.workdir, invalid=invalid)
    for name in needed:
        if name in invalid:
            raise ConfigError(invalid[name])
    return envs


def _mode(push: bool, pr: bool) -> Literal["push", "pr"] | None:
    if push and pr:
        raise _fail("choose one of --push and --pr", 2)
    return "push" if push else "pr" if pr else None


def _host(repo: str, kind: str | None, host_repo: str | None, api: str | None) -> HostConfig | None:
    from reconciler.promote.hosts import as_kind, host_config

    try:
        return host_config(repo, kind=as_kind(kind), repo=host_repo, api_url=api)
    except ConfigError as exc:
        raise _fail(f"--host: {exc}" if kind is not None else str(exc), 2) from None


def _publish(nats: str | None, event: PromotionEvent) -> None:
    if not nats:
        return
    import asyncio

    from reconciler.bus import Bus, promotion_subject

    async def go() -> None:
        bus = Bus(nats, name="reconciler-cli")
        await bus.connect()
        try:
            await bus.publish(
                promotion_subject(event.environment), event.model_dump_json().encode(), msg_id=event.msg_id
            )
        finally:
            await bus.close()

    try:
        asyncio.run(go())
    except ReconcilerError as exc:
        err.print(f"[yellow]warning:[/] event not published: {exc}", highlight=False)


def _check_output(output: str) -> None:
    if output not in ("text", "json", "yaml"):
        raise _fail(f"-o must be text, json or yaml, not {output!r}", 2)


def _emit(data: Any, output: str) -> None:
    """Write ``data`` (JSON-compatible) as JSON or YAML to standard output."""
    if output == "json":
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
        return
    from ruamel.yaml import YAML

    y = YAML(typ="safe", pure=True)
    y.default_flow_style = False
    y.dump(data, sys.stdout)


def promote_cmd(
    from_env: Annotated[str, typer.Argument(metavar="FROM", help="the source environment")],
    to_env: Annotated[str, typer.Argument(metavar="TO", help="the target environment")],
    repo: Repo,
    app_name: Annotated[str | None, typer.Option("--app", help="promote only this app's images")] = None,
    all_images: Annotated[bool, typer.Option("--all", help="promote every image of FROM's overlay")] = False,
    push: Push = False,
    pr: Pr = False,
    allow_unpinned: Annotated[
        bool, typer.Option("--allow-unpinned", help="promote a tag that no digest is known for")
    ] = False,
    branch: Branch = "main",
    cache_dir: CacheDir = None,
    host: HostKind = None,
    host_repo: HostRepo = None,
    host_api: HostApi = None,
    nats: Nats = None,
    kubeconfig: CheckKube = None,
    output: OutputOpt = "text",
) -> None:
    """Promote the versions FROM runs (pinned by digest, from its last verified-healthy revision) into
    TO's overlay: a commit on promote/<to>/<sha> with a pull request, or a direct push where allowed."""
    from reconciler.probe.service import service_from_env
    from reconciler.promote.promotion import RuleError, promote
    from reconciler.promote.records import PromotionEvent

    _check_output(output)
    if (app_name is None) == (not all_images):
        raise _fail("choose what to promote: --app NAME or --all", 2)
    mode = _mode(push, pr)
    writer = _writer(repo, branch, cache_dir)
    host_cfg = _host(repo, host, host_repo, host_api)
    try:
        with writer.locked():
            writer.sync()
            result = promote(
                writer,
                _envs(writer, from_env, to_env),
                from_env,
                to_env,
                app=app_name,
                all_images=all_images,
                mode=mode,
                host=host_cfg,
                allow_unpinned=allow_unpinned,
                probes=service_from_env(),
            )
            _tidy(writer)
    except RuleError as exc:
        raise _fail(str(exc), 2) from None
    except ReconcilerError as exc:
        raise _fail(str(exc)) from None
    finally:
        writer.close()
    if result.commit:
        _publish(
            nats,
            PromotionEvent(
                environment=to_env,
                kind="promoted" if result.mode == "push" else "proposed",
                revision=result.commit,
                promotions=[result.commit],
                pushed_to=result.pushed_to,
                fallback=result.fallback,
                url=result.pull_request.url if result.pull_request else None,
                message=result.message,
            ),
        )
    checked = (
        _check_pull_request(
            repo, branch, result.branch, host_cfg, kubeconfig, cache_dir, result.pull_request.number
        )
        if result.pull_request
        else ""
    )
    failed = (
        _pr_not_opened(result.pr_error, result.branch, result.commit, branch, host_cfg, repo)
        if result.pr_error
        else None
    )
    if output != "text":
        _emit({**result.model_dump(mode="json"), "check": checked or None}, output)
        if failed is not None:
            raise failed
        return
    console.print(result.message, highlight=False, markup=False)
    for c in result.plan.changes:
        console.print(f"  {c.name}: {c.before or '(none)'} -> {c.after.ref}", highlight=False, markup=False)
    for w in result.plan.warnings:
        err.print(f"[yellow]warning:[/] {w}", highlight=False)
    for g in result.plan.tool_grants:
        console.print(f"  new tool grant: {g}", highlight=False, markup=False)
    if result.pull_request:
        verb = "opened" if result.pull_request.created else "already open"
        console.print(f"pull request #{result.pull_request.number} {verb}: {result.pull_request.url}")
    if failed is not None:
        raise failed
    if result.instructions:
        console.print(result.instructions, highlight=False, markup=False)
    if checked:
        console.print(checked, highlight=False, markup=False)


def rollback_cmd(
    env_name: Annotated[str, typer.Argument(metavar="ENV", help="the environment to roll back")],
    repo: Repo,
    to: Annotated[
        str | None,
        typer.Option(
            "--to", help="return ENV to its versions at this commit (default: undo the last promotion)"
        ),
    ] = None,
    app_name: Annotated[
        str | None,
        typer.Option(
            "--app",
            help="roll back only this app: one commit restoring its images: entries (not a git revert)",
        ),
    ] = None,
    reason: Annotated[str, typer.Option("--reason", help="recorded in the Reason: trailer")] = "",
    push: Push = False,
    pr: Pr = False,
    branch: Branch = "main",
    cache_dir: CacheDir = None,
    host: HostKind = None,
    host_repo: HostRepo = None,
    host_api: HostApi = None,
    nats: Nats = None,
    kubeconfig: CheckKube = None,
    output: OutputOpt = "text",
) -> None:
    """Roll ENV back with `git revert` of its promotion commit(s), on a branch or directly per its rules;
    with --app, set only that app's images back to their values before its last promotion (or, with
    --to, before every promotion after COMMIT), leaving the promotion's other apps in place."""
    from reconciler.promote.promotion import PromotionError, RuleError
    from reconciler.promote.rollback import (
        RollbackConflict,
        UnknownEnvironment,
        rollback_environment,
        rollback_event,
    )

    _check_output(output)
    mode = _mode(push, pr)
    writer = _writer(repo, branch, cache_dir)
    host_cfg = _host(repo, host, host_repo, host_api)
    try:
        result = rollback_environment(
            writer,
            env_name,
            to=to,
            app=app_name,
            reason=reason,
            mode=mode,
            host=host_cfg,
        )
    except (UnknownEnvironment, RuleError) as exc:
        raise _fail(str(exc), 2) from None
    except RollbackConflict as exc:
        raise _fail(str(exc)) from None
    except (PromotionError, ReconcilerError) as exc:
        raise _fail(str(exc)) from None
    finally:
        writer.close()
    event = rollback_event(result, reason)
    if event is not None:
        _publish(nats, event)
    checked = (
        _check_pull_request(
            repo, branch, result.branch, host_cfg, kubeconfig, cache_dir, result.pull_request.number
        )
        if result.pull_request
        else ""
    )
    failed = (
        _pr_not_opened(
            result.pr_error,
            result.branch,
            result.commits[-1] if result.commits else None,
            branch,
            host_cfg,
            repo,
        )
        if result.pr_error
        else None
    )
    if output != "text":
        _emit({**result.model_dump(mode="json"), "check": checked or None}, output)
        if failed is not None:
            raise failed
        return
    console.print(result.message, highlight=False, markup=False)
    for m in result.restored:
        console.print(f"  {m.name}: {m.before or '(none)'} -> {m.after}", highlight=False, markup=False)
    if result.pull_request:
        console.print(f"pull request #{result.pull_request.number}: {result.pull_request.url}")
    if failed is not None:
        raise failed
    if result.instructions:
        console.print(result.instructions, highlight=False, markup=False)
    if checked:
        console.print(checked, highlight=False, markup=False)


def _when(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _version(ref: str | None) -> str:
    """``tag@sha256:<12 hex>`` of an image reference, for tables (JSON output keeps it whole)."""
    from reconciler.promote.history import split_ref

    if not ref:
        return "-"
    repo, tag, digest = split_ref(ref)
    short = f"{digest[:19]}" if digest else ""
    return f"{tag or ''}@{short}".strip("@") if (tag or short) else repo


def _row(e: HistoryEntry) -> list[str]:
    from reconciler.promote.records import Outcome

    moved = "\n".join(
        f"{m.name.rsplit('/', 1)[-1]}: {_version(m.before)} -> {_version(m.after)}" for m in e.moved
    )
    if e.kind == "promotion":
        what = f"promotion from {e.from_env}" if e.from_env else "image update"
    else:
        what = e.kind
    notes: list[str] = [f"merged in {e.merge_commit[:7]}"] if e.merge_commit else []
    if e.reverted_by:
        notes.append(f"reverted by {e.reverted_by[:7]}")
    for app, sha in e.rolled_back_apps.items():
        notes.append(f"app {app} rolled back in {sha[:7]}")
    if e.rollback_of:
        undoes = ", ".join(s[:7] for s in e.undoes or [e.rollback_of])
        app = f" (app {e.rollback_app})" if e.rollback_app else ""
        notes.append(f"undoes {undoes}{app}" + (" (automatic)" if e.automatic else ""))
    if e.rewound_from:
        notes.append(f"{e.rewound_from[:7]} left the branch (rewound)")
    if e.reason:
        notes.append(e.reason)
    if e.requested_by:
        notes.append(f"requested by {e.requested_by}")
    if e.tool_grants:
        notes.append("new tool grants: " + "; ".join(e.tool_grants))
    if e.tool_call is not None:
        args = ", ".join(f"{k}={v}" for k, v in sorted(e.tool_call.arguments.items()))
        notes.append(
            f"MCP {e.tool_call.tool}({args})" + (f" -> {e.tool_call.url}" if e.tool_call.url else "")
        )
    steps = [r.message for r in e.outcomes if r.outcome is Outcome.ROLLOUT]
    if steps:
        notes.append("rollout: " + "; ".join(steps))
    who = e.merged_by or e.author
    return [_when(e.at), what, e.sha[:7], who, moved, e.outcome or "-", "; ".join(notes)]


def history_cmd(
    env_name: Annotated[str, typer.Argument(metavar="ENV", help="the environment")],
    repo: Repo,
    limit: Annotated[int, typer.Option("--limit", min=1, help="at most this many entries")] = 50,
    branch: Branch = "main",
    cache_dir: CacheDir = None,
    output: OutputOpt = "text",
) -> None:
    """ENV's timeline from commit trailers and notes: when, who merged, what moved, outcome, rollbacks."""
    from rich.table import Table

    from reconciler.promote.history import timeline

    _check_output(output)
    writer = _writer(repo, branch, cache_dir)
    try:
        with writer.locked():
            writer.sync()
            envs = _envs(writer, env_name)
            if env_name not in envs:
                raise _fail(
                    f"environment {env_name!r} is not defined in envs/ ({', '.join(sorted(envs))})", 2
                )
            entries = timeline(writer, envs[env_name], limit=limit)
    except ReconcilerError as exc:
        raise _fail(str(exc)) from None
    finally:
        writer.close()
    if output != "text":
        _emit([e.model_dump(mode="json") for e in entries], output)
        return
    table = Table(title=f"history of {env_name}", show_lines=True)
    for col in ("when (UTC)", "what", "commit", "merged/made by", "moved", "outcome", "notes"):
        table.add_column(col, overflow="fold")
    for e in entries:
        table.add_row(*_row(e))
    console.print(table)


def check_cmd(
    repo: Repo,
    head: Annotated[str, typer.Option("--head", help="the branch proposing the change")],
    base: Annotated[str, typer.Option("--base", help="the branch it would be merged into")] = "main",
    env: Annotated[
        list[str] | None, typer.Option("--env", help="check only this environment (repeatable)")
    ] = None,
    kubeconfig: Annotated[
        Path | None, typer.Option("--kubeconfig", help="also run a dry-run pass of each touched environment")
    ] = None,
    context: Annotated[str | None, typer.Option("--context", help="kubeconfig context")] = None,
    post_status: Annotated[
        bool,
        typer.Option(
            "--post-status", help="post the result as the commit status reconciler/check on the head"
        ),
    ] = False,
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="exit 3 when the change touches an environment and passes")
    ] = False,
    cache_dir: CacheDir = None,
    host: HostKind = None,
    host_repo: HostRepo = None,
    host_api: HostApi = None,
    output: Annotated[
        str,
        typer.Option("-o", "--output", help="text, json, markdown, junit (JUnit XML) or sarif (SARIF 2.1.0)"),
    ] = "text",
) -> None:
    """Check branch HEAD against BASE before it is merged: render every environment the change touches at
    both, list the objects it adds, changes and removes, judge the head by the environment's policies
    (policies/ and policies.paths: deny/violation fail, warn is listed), and with --kubeconfig run a
    dry-run pass of each (server-side dry-run; nothing is written). -o text, json, markdown, junit (JUnit
    XML) or sarif (SARIF 2.1.0). Exit 0 passed, 1 failed (a policy denied, a render or dry-run failed), 3
    passed with changes (--exit-code)."""
    import asyncio

    from reconciler.paths import default_cache_dir
    from reconciler.promote.check import CHECK_CONTEXT, check_change
    from reconciler.promote.hosts import HostError, post_commit_status

    if output not in ("text", "json", "markdown", "junit", "sarif"):
        raise _fail(f"-o must be text, json, markdown, junit or sarif, not {output!r}", 2)
    config = _host(repo, host, host_repo, host_api) if post_status else None
    if post_status and (config is None or not config.token):
        raise _fail(
            "--post-status needs a Git host with a token (RECONCILER_GIT_HOST, RECONCILER_GIT_HOST_TOKEN)", 2
        )
    client = None
    if kubeconfig is not None:
        from reconciler.cluster.client import KubeClient

        client = KubeClient(kubeconfig, context)
    try:
        report = check_change(
            repo, base, head, cache_dir or default_cache_dir(), only=env or None, client=client
        )
    except ReconcilerError as exc:
        raise _fail(str(exc)) from None
    if config is not None:
        try:
            asyncio.run(
                post_commit_status(
                    config,
                    report.head,
                    context=CHECK_CONTEXT,
                    state="success" if report.ok else "failure",
                    description=report.summary(),
                )
            )
        except HostError as exc:
            raise _fail(f"posting {CHECK_CONTEXT}: {exc}") from None
    if output == "json":
        _emit({**report.model_dump(mode="json"), "ok": report.ok}, "json")
    elif output in ("junit", "sarif"):
        from reconciler import __version__
        from reconciler.promote.check_formats import junit, sarif

        if output == "junit":
            sys.stdout.write(junit(report))
        else:
            _emit(sarif(report, version=__version__), "json")
    elif output == "markdown":
        sys.stdout.write(report.markdown())
    else:
        console.print(report.markdown(), highlight=False, markup=False)
    if not report.ok:
        raise typer.Exit(1)
    if exit_code and report.environments:
        raise typer.Exit(3)


def register(app: typer.Typer) -> None:
    """Add the ``promote``, ``rollback``, ``history`` and ``check`` commands to ``app``."""
    app.command("check")(check_cmd)
    app.command("promote")(promote_cmd)
    app.command("rollback")(rollback_cmd)
    app.command("history")(history_cmd)
