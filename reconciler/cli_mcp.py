"""``reconciler mcp serve``: reconciler as an MCP server (see :mod:`reconciler.mcpserver`).

Exit codes: 0 stopped, 1 failed (the address is taken, the tokens file is unreadable), 2 usage error.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

# typer only: the MCP SDK, uvicorn, the cluster client and the promotion code are imported by the command
# when it runs, so that the command line starts fast (tests/unit/test_cli_imports.py)

mcp_app = typer.Typer(
    help="reconciler as an MCP server: agents read GitOps state and propose changes through Git.",
    no_args_is_help=True,
    rich_markup_mode=None,
)


def _fail(message: str, code: int = 1) -> typer.Exit:
    sys.stderr.write(f"error: {message}\n")
    return typer.Exit(code)


@mcp_app.command("serve")
def serve_cmd(
    repo: Annotated[
        str | None,
        typer.Option(
            envvar="RECONCILER_REPO",
            help="environment repository (path or clone URL): history, diff, render and write tools need it",
        ),
    ] = None,
    branch: Annotated[str, typer.Option(envvar="RECONCILER_BRANCH", help="the followed branch")] = "main",
    kubeconfig: Annotated[Path | None, typer.Option(help="kubeconfig (default: $KUBECONFIG)")] = None,
    context: Annotated[str | None, typer.Option(help="kubeconfig context")] = None,
    nats: Annotated[
        str | None,
        typer.Option(
            envvar="RECONCILER_NATS_URL", help="NATS URL: requestSync, call events, latest image versions"
        ),
    ] = None,
    http: Annotated[
        str | None,
        typer.Option(
            "--http", help="serve Streamable HTTP on HOST:PORT, endpoint /mcp (default 127.0.0.1:9091)"
        ),
    ] = None,
    stdio: Annotated[
        bool, typer.Option("--stdio", help="serve one client over standard input/output")
    ] = False,
    tokens_file: Annotated[
        Path | None,
        typer.Option(
            envvar="RECONCILER_MCP_TOKENS_FILE",
            help="bearer tokens: identity, allowed write tools, rate limit (without: anonymous, read-only)",
        ),
    ] = None,
    cache_dir: Annotated[
        Path | None, typer.Option(envvar="RECONCILER_CACHE_DIR", help="where the working clones live")
    ] = None,
) -> None:
    """Serve reconciler's MCP tools: read environments, health, history, diffs, renders, drift, image
    policies and protocol probes; propose promotions and rollbacks through Git and request syncs on the
    bus, where envs/<env>.yaml mcp.allow and the caller's token allow it."""
    from reconciler.errors import ReconcilerError
    from reconciler.mcpserver.access import Access, load_tokens
    from reconciler.mcpserver.server import DEFAULT_HTTP, ToolServer, parse_address, serve_http, serve_stdio
    from reconciler.mcpserver.tools import Backend

    if stdio and http:
        raise _fail("choose one of --http and --stdio", 2)
    try:
        host, port = parse_address(http or DEFAULT_HTTP)
    except ValueError as exc:
        raise _fail(f"--http: {exc}", 2) from None
    try:
        access = Access(tokens=load_tokens(tokens_file) if tokens_file else None)
    except ReconcilerError as exc:
        raise _fail(str(exc)) from None
    backend = Backend(
        repo=repo, branch=branch, kubeconfig=kubeconfig, context=context, nats_url=nats, cache_dir=cache_dir
    )
    tools = ToolServer(backend, access)
    try:
        if stdio:
            serve_stdio(tools)
        else:
            sys.stderr.write(f"MCP server on http://{host}:{port}/mcp\n")
            serve_http(tools, host, port)
    except OSError as exc:
        raise _fail(f"cannot serve on {host}:{port}: {exc.strerror or exc}") from None
    finally:
        backend.close()


def register(app: typer.Typer) -> None:
    """Add ``reconciler mcp`` to the command line."""
    app.add_typer(mcp_app, name="mcp")
