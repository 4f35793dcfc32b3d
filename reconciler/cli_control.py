"""The ``suspend``, ``resume`` and ``sync`` commands; :func:`register` adds them to the main app.

Each works one of three ways, the first that applies:

* ``--server URL``: the running daemon's action (``POST /api/env/<env>/suspend|resume|sync``), with the
  actions token (``--token-file`` or ``$RECONCILER_ACTIONS_TOKEN``); the daemon records who (``token``);
* ``--nats URL``: the JetStream key-value bucket ``reconciler-control`` (suspend, resume) and the subject
  ``reconciler.reconcile.request.<env>`` (sync), the same code the daemon's actions run
  (:mod:`reconciler.runtime.control`); with ``--repo`` the action is also noted in Git for
  ``reconciler history``;
* neither (suspend, resume only): the file ``<cache_dir>/control/<env>.json`` that a daemon without NATS
  on this machine, with the same ``--cache-dir``, reads before each pass.

Exit codes: 0 ok, 1 failed (server, NATS or Git unreachable; refused), 2 usage error.
"""

from __future__ import annotations

import getpass
import json
import os
import sys
from pathlib import Path
from typing import Annotated, Any, Literal

import typer

from reconciler.cli_console import lazy_console
from reconciler.errors import ReconcilerError

console = lazy_console()
err = lazy_console(stderr=True)

Env = Annotated[str, typer.Argument(metavar="ENV", help="the environment")]
Server = Annotated[
    str | None,
    typer.Option("--server", help="a running daemon's HTTP address (http://127.0.0.1:9090): act through it"),
]
TokenFile = Annotated[
    Path | None,
    typer.Option(
        "--token-file",
        envvar="RECONCILER_ACTIONS_TOKEN_FILE",
        help="with --server: the actions token (default $RECONCILER_ACTIONS_TOKEN)",
    ),
]
Nats = Annotated[
    str | None,
    typer.Option("--nats", envvar="RECONCILER_NATS_URL", help="act on NATS (the reconciler-control bucket)"),
]
RepoOpt = Annotated[
    str | None,
    typer.Option(
        "--repo", envvar="RECONCILER_REPO", help="with --nats or a local file: note the action in this repo"
    ),
]
Branch = Annotated[str, typer.Option("--branch", envvar="RECONCILER_BRANCH", help="the followed branch")]
CacheDir = Annotated[
    Path | None,
    typer.Option("--cache-dir", envvar="RECONCILER_CACHE_DIR", help="the daemon's state directory"),
]
Reason = Annotated[str, typer.Option("--reason", help="why (recorded with the action)")]
Output = Annotated[str, typer.Option("-o", "--output", help="text or json")]


def _fail(message: str, code: int = 1) -> typer.Exit:
    from rich.markup import escape

    err.print(f"[bold red]error:[/] {escape(message)}", highlight=False, markup=True)
    return typer.Exit(code)


def _me() -> str:
    """Who runs the command: ``user@host``."""
    try:
        user = getpass.getuser()
    except Exception:
        user = "unknown"
    return f"{user}@{os.uname().nodename}"


def _token(token_file: Path | None) -> str:
    if token_file is not None:
        try:
            return token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise _fail(f"--token-file {token_file}: {exc.strerror or exc}", 2) from None
    token = os.environ.get("RECONCILER_ACTIONS_TOKEN", "").strip()
    if not token:
        raise _fail("--server needs the actions token: --token-file or $RECONCILER_ACTIONS_TOKEN", 2)
    return token


def _via_server(server: str, env: str, action: str, reason: str, token_file: Path | None) -> dict[str, Any]:
    """POST the action to the daemon; its JSON answer."""
    import httpx

    url = f"{server.rstrip('/')}/api/env/{env}/{action}"
    headers = {"Authorization": f"Bearer {_token(token_file)}"}
    try:
        resp = httpx.post(url, json={"reason": reason} if reason else {}, headers=headers, timeout=60.0)
    except httpx.HTTPError as exc:
        raise _fail(f"{server}: {exc}") from None
    try:
        body: dict[str, Any] = resp.json()
    except ValueError:
        body = {"error": resp.text[:300]}
    if resp.status_code != 200:
        raise _fail(f"{action} refused (HTTP {resp.status_code}): {body.get('error', '')}")
    return body


async def _direct(
    action: Literal["suspend", "resume", "sync"],
    env: str,
    reason: str,
    nats: str | None,
    repo: str | None,
    branch: str,
    cache_dir: Path | None,
) -> dict[str, Any]:
    """Run the action with :mod:`reconciler.runtime.control` (NATS, or the local file)."""
    from reconciler.bus import Bus
    from reconciler.paths import default_cache_dir
    from reconciler.runtime.control import (
        ControlStore,
        request_sync,
        resume_environment,
        suspend_environment,
        suspension_text,
    )

    cache = cache_dir or default_cache_dir()
    writer = None
    if repo:
        from reconciler.source.gitops import GitWriter

        writer = GitWriter(repo, branch, cache / "promotion-cli")
    bus = Bus(nats, name="reconciler-cli") if nats else None
    try:
        if bus is not None:
            await bus.connect()
        store = ControlStore(cache / "control", bus)
        by = _me()
        if action == "sync":
            assert bus is not None
            record = await request_sync(bus, env, by=by, reason=reason, writer=writer)
            return {"environment": env, "action": "sync", "requested_by": by, "via": "nats", "at": record.at}
        run = suspend_environment if action == "suspend" else resume_environment
        state = await run(store, env, by=by, reason=reason, writer=writer)
        if action == "resume" and bus is not None:
            from reconciler.bus import reconcile_request_subject

            await bus.publish(reconcile_request_subject(env), json.dumps({"environment": env}).encode())
        message = (
            suspension_text(state) + "; no passes until resumed" if state.suspended else f"resumed by {by}"
        )
        return {
            "environment": env,
            "action": action,
            "requested_by": by,
            "suspended": state.suspended,
            "at": state.at,
            "reason": state.reason,
            "via": "nats" if bus is not None else "file",
            "message": message,
        }
    finally:
        if bus is not None:
            await bus.close()
        if writer is not None:
            writer.close()


def _run(
    action: Literal["suspend", "resume", "sync"],
    env: str,
    reason: str,
    server: str | None,
    token_file: Path | None,
    nats: str | None,
    repo: str | None,
    branch: str,
    cache_dir: Path | None,
    output: str,
) -> None:
    import asyncio

    if output not in ("text", "json"):
        raise _fail(f"-o must be text or json, not {output!r}", 2)
    if action == "sync" and not server and not nats:
        raise _fail("sync needs --server (a running daemon) or --nats (its NATS)", 2)
    try:
        if server:
            answer = _via_server(server, env, action, reason, token_file)
        else:
            answer = asyncio.run(_direct(action, env, reason, nats, repo, branch, cache_dir))
    except (ReconcilerError, ValueError, OSError) as exc:
        raise _fail(str(exc)) from None
    if output == "json":
        sys.stdout.write(json.dumps(answer, indent=2) + "\n")
        return
    message = answer.get("message") or f"a pass of {env} was asked for by {answer.get('requested_by')}"
    console.print(message, highlight=False, markup=False)


def suspend_cmd(
    env: Env,
    reason: Reason = "",
    server: Server = None,
    token_file: TokenFile = None,
    nats: Nats = None,
    repo: RepoOpt = None,
    branch: Branch = "main",
    cache_dir: CacheDir = None,
    output: Output = "text",
) -> None:
    """Suspend ENV: no passes (no apply, no prune, no drift correction) until `reconciler resume ENV`; the
    status shows Suspended with who, when and why."""
    _run("suspend", env, reason, server, token_file, nats, repo, branch, cache_dir, output)


def resume_cmd(
    env: Env,
    reason: Reason = "",
    server: Server = None,
    token_file: TokenFile = None,
    nats: Nats = None,
    repo: RepoOpt = None,
    branch: Branch = "main",
    cache_dir: CacheDir = None,
    output: Output = "text",
) -> None:
    """Resume a suspended ENV and ask for a pass of it."""
    _run("resume", env, reason, server, token_file, nats, repo, branch, cache_dir, output)


def sync_cmd(
    env: Env,
    reason: Reason = "",
    server: Server = None,
    token_file: TokenFile = None,
    nats: Nats = None,
    repo: RepoOpt = None,
    branch: Branch = "main",
    cache_dir: CacheDir = None,
    output: Output = "text",
) -> None:
    """Ask for a pass of ENV now (refused while it is suspended, through --server)."""
    _run("sync", env, reason, server, token_file, nats, repo, branch, cache_dir, output)


def register(app: typer.Typer) -> None:
    """Add the ``suspend``, ``resume`` and ``sync`` commands to ``app``."""
    app.command("suspend")(suspend_cmd)
    app.command("resume")(resume_cmd)
    app.command("sync")(sync_cmd)
