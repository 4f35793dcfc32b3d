"""``reconciler probe``: speak to one MCP server (or, with ``--a2a``, one A2A agent) and judge it."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from typing import Annotated

import typer

# only the defaults the options show: the probes (aiohttp, mcp_types, a2a-sdk, pydantic) are imported
# when `reconciler probe` runs
from reconciler.probe.defaults import DEFAULT_MAX_RESPONSE_BYTES, DEFAULT_MAX_TOOLS, DEFAULT_TIMEOUT


class ProbeOutput(StrEnum):
    """``-o`` values."""

    text = "text"
    json = "json"
    yaml = "yaml"


class ProbeTransport(StrEnum):
    """``--transport`` values."""

    auto = "auto"
    streamable_http = "streamable-http"
    sse = "sse"


#: The colour of a verdict (``HealthState`` values).
_COLOUR = {"Healthy": "green", "Degraded": "yellow", "Failed": "red"}


def _headers(pairs: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter("--header wants K=V (the value given is not shown)")
        out[key.strip()] = value
    return out


def probe_cmd(
    url: Annotated[
        str, typer.Argument(help="MCP endpoint (…/mcp, or …/sse for the legacy transport) or A2A base URL")
    ],
    a2a: Annotated[
        bool, typer.Option("--a2a", help="probe an A2A agent's card instead of an MCP server")
    ] = False,
    header: Annotated[
        list[str] | None,
        typer.Option("--header", "-H", help="request header K=V (repeatable; never printed)"),
    ] = None,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="seconds for the whole probe")
    ] = DEFAULT_TIMEOUT,
    max_bytes: Annotated[
        int, typer.Option("--max-bytes", min=1024, help="cap on one response or event, bytes")
    ] = DEFAULT_MAX_RESPONSE_BYTES,
    max_tools: Annotated[
        int, typer.Option("--max-tools", min=1, help="tools listed at most")
    ] = DEFAULT_MAX_TOOLS,
    transport: Annotated[
        ProbeTransport, typer.Option("--transport", help="MCP transport")
    ] = ProbeTransport.auto,
    skill: Annotated[
        list[str] | None, typer.Option("--skill", help="with --a2a: a skill id or name the card must list")
    ] = None,
    output: Annotated[ProbeOutput, typer.Option("-o", "--output")] = ProbeOutput.text,
) -> None:
    """Probe an MCP server (handshake + every tools/list page) or an A2A agent card; exit 0 when healthy,
    1 otherwise."""
    import asyncio

    from rich.console import Console
    from rich.markup import escape

    from reconciler.model import HealthState
    from reconciler.probe import ProbeLimits, probe_a2a, probe_mcp

    headers = _headers(header or [])
    limits = ProbeLimits(timeout=timeout, max_response_bytes=max_bytes, max_tools=max_tools)
    console = Console(width=None if sys.stdout.isatty() else 160)
    if a2a:
        card = asyncio.run(probe_a2a(url, headers, expected_skills=skill or [], limits=limits))
        data = card.summary()
        state, reason = card.state, card.reason
    else:
        mcp = asyncio.run(probe_mcp(url, headers, limits=limits, transport=transport.value))
        data = mcp.summary()
        state, reason = mcp.state, mcp.reason
    if output is ProbeOutput.json:
        sys.stdout.write(json.dumps(data, indent=2) + "\n")
    elif output is ProbeOutput.yaml:
        from ruamel.yaml import YAML

        y = YAML(typ="safe", pure=True)
        y.default_flow_style = False
        y.dump(data, sys.stdout)
    else:
        colour = _COLOUR.get(state, "white")
        console.print(
            f"[bold {colour}]{state.value}[/] {escape(reason)} ({data['latency']:.3f} s)", highlight=False
        )
        if a2a:
            console.print(f"agent: {escape(card.name)} {escape(card.version)} (card {card.card_path or '-'})")
            rows = [(s.id, s.description) for s in card.skills]
            title = "skill"
        else:
            console.print(
                f"protocol version: {mcp.protocol_version or '-'} ({mcp.era or '-'}, {mcp.transport})"
            )
            console.print(f"server: {escape(mcp.server_name or '-')} {escape(mcp.server_version)}")
            rows = [(t.name, t.description) for t in mcp.tools]
            title = "tool"
        if rows:
            from rich.table import Table

            table = Table(title_justify="left", box=None)
            table.add_column(title)
            table.add_column("description", overflow="fold")
            for name, desc in rows:
                table.add_row(escape(name), escape(desc.splitlines()[0] if desc else ""))
            console.print(table)
    raise typer.Exit(0 if state is HealthState.HEALTHY else 1)


def register(app: typer.Typer) -> None:
    """Add ``probe`` to the ``reconciler`` command line."""
    app.command("probe")(probe_cmd)
