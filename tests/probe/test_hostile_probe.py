"""The probes against hostile fixtures (tests/probe/hostile_servers.py): every case ends within its time
budget with a clear Degraded/Failed reason, never an exception, and never buffers past the size cap."""

from __future__ import annotations

import asyncio
import time
import tracemalloc

import pytest
from hostile_servers import Hostile

from reconciler.model import HealthState
from reconciler.probe import ProbeLimits, probe_a2a, probe_mcp

Served = tuple[str, Hostile]


async def test_hang_after_connect_times_out(hostile: Served) -> None:
    base, _ = hostile
    t0 = time.monotonic()
    r = await asyncio.wait_for(probe_mcp(f"{base}/hang", limits=ProbeLimits(timeout=1.0)), 5)
    assert time.monotonic() - t0 < 2.5
    assert r.state is HealthState.FAILED
    assert r.reason == "handshake failed: timed out after 1 s during initialize"


async def test_http_500(hostile: Served) -> None:
    base, _ = hostile
    r = await probe_mcp(f"{base}/http500", limits=ProbeLimits(timeout=5))
    assert r.state is HealthState.FAILED
    assert r.reason == "handshake failed: initialize: HTTP 500"


async def test_malformed_json(hostile: Served) -> None:
    base, _ = hostile
    r = await probe_mcp(f"{base}/malformed", limits=ProbeLimits(timeout=5))
    assert r.state is HealthState.FAILED
    assert r.reason.startswith("handshake failed: initialize: malformed JSON (JSONDecodeError")


async def test_json_that_is_not_jsonrpc(hostile: Served) -> None:
    base, _ = hostile
    r = await probe_mcp(f"{base}/not-jsonrpc", limits=ProbeLimits(timeout=5))
    assert r.state is HealthState.FAILED
    assert r.reason == "handshake failed: initialize: malformed JSON-RPC (not a JSON-RPC 2.0 object)"


async def test_cursor_loop_is_degraded(hostile: Served) -> None:
    base, seen = hostile
    r = await probe_mcp(f"{base}/loop", limits=ProbeLimits(timeout=5))
    assert r.state is HealthState.DEGRADED
    assert r.reason == "tool listing incomplete: cursor loop: nextCursor 'a' came back on page 3"
    assert r.pages == 3
    # the handshake was the 2025-11-25 one, with the session echoed and the version header sent
    lists = [h for h, b in seen.seen["/loop"] if b.get("method") == "tools/list"]
    assert all(h["Mcp-Session-Id"] == "sess-1" and h["MCP-Protocol-Version"] == "2025-11-25" for h in lists)


async def test_stateless_empty_cursor_is_a_page(hostile: Served) -> None:
    base, seen = hostile
    r = await probe_mcp(f"{base}/stateless-paged", limits=ProbeLimits(timeout=5))
    assert r.state is HealthState.HEALTHY, r.reason
    assert (r.era, r.protocol_version, r.server_name, r.server_version) == (
        "stateless",
        "2026-07-28",
        "paged",
        "3.0",
    )
    assert [t.name for t in r.tools] == ["tool-0", "tool-1", "tool-2"]
    assert r.pages == 3
    methods = [b["method"] for _, b in seen.seen["/stateless-paged"]]
    assert methods == ["server/discover", "tools/list", "tools/list", "tools/list"]  # no initialize


async def test_discover_naming_only_handshake_versions_falls_back(hostile: Served) -> None:
    base, _seen = hostile
    r = await probe_mcp(f"{base}/needs-handshake-version", limits=ProbeLimits(timeout=5))
    assert r.state is HealthState.HEALTHY, r.reason
    assert (r.era, r.protocol_version) == ("handshake", "2025-11-25")
    assert [t.name for t in r.tools] == ["tool-7"]


async def test_ten_thousand_tools_stop_at_the_cap(hostile: Served) -> None:
    base, _ = hostile
    r = await probe_mcp(f"{base}/many-tools", limits=ProbeLimits(timeout=10, max_tools=2000))
    assert r.state is HealthState.DEGRADED
    assert r.reason == (
        "tool listing incomplete: more than 2000 tools listed (max_tools); listing stopped at page 5"
    )
    assert len(r.tools) == 2000


async def test_ten_thousand_tools_within_a_raised_cap_are_healthy(hostile: Served) -> None:
    base, _ = hostile
    r = await probe_mcp(f"{base}/many-tools", limits=ProbeLimits(timeout=20, max_tools=10_000))
    assert r.state is HealthState.HEALTHY, r.reason
    assert len(r.tools) == 10_000 and r.pages == 20


@pytest.mark.parametrize(("route", "what"), [("huge", "response"), ("huge-event", "event")])
async def test_twenty_megabytes_hit_the_size_cap(hostile: Served, route: str, what: str) -> None:
    base, _ = hostile
    cap = 4 * 1024 * 1024
    tracemalloc.start()
    try:
        r = await probe_mcp(f"{base}/{route}", limits=ProbeLimits(timeout=10, max_response_bytes=cap))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert r.state is HealthState.FAILED
    assert r.reason == f"handshake failed: initialize: {what} exceeds the {cap}-byte cap"
    assert peak < 3 * cap, f"peak {peak} bytes"


async def test_headers_are_sent_and_never_reported(hostile: Served, caplog: pytest.LogCaptureFixture) -> None:
    base, _ = hostile
    caplog.set_level("DEBUG")
    good = await probe_mcp(f"{base}/auth", {"Authorization": "Bearer s3cret-token"})
    assert good.state is HealthState.HEALTHY, good.reason
    bad = await probe_mcp(f"{base}/auth", {"Authorization": "Bearer wrong-s3cret"})
    assert bad.state is HealthState.FAILED
    assert bad.reason == "handshake failed: initialize: HTTP 401"
    for text in (bad.model_dump_json(), good.model_dump_json(), caplog.text):
        assert "s3cret" not in text


async def test_a2a_card_not_json(hostile: Served) -> None:
    base, _ = hostile
    r = await probe_a2a(f"{base}/card-not-json", limits=ProbeLimits(timeout=5))
    assert r.state is HealthState.FAILED
    assert r.reason.startswith("agent card at /.well-known/agent-card.json: malformed JSON")


async def test_a2a_card_at_the_old_path(hostile: Served) -> None:
    base, _ = hostile
    r = await probe_a2a(f"{base}/card-old/", expected_skills=["summarize"])
    assert r.state is HealthState.HEALTHY, r.reason
    assert (r.card_path, r.name, r.protocol_versions) == ("/.well-known/agent.json", "old-agent", ["0.3.0"])


async def test_a2a_card_missing_required_fields(hostile: Served) -> None:
    base, _ = hostile
    r = await probe_a2a(f"{base}/card-incomplete")
    assert r.state is HealthState.DEGRADED
    assert "required fields missing or empty" in r.reason and "description" in r.reason


async def test_a2a_no_card(hostile: Served) -> None:
    base, _ = hostile
    r = await probe_a2a(f"{base}/nothing-here")
    assert r.state is HealthState.FAILED
    assert r.reason == "no agent card: HTTP 404 at /.well-known/agent-card.json and /.well-known/agent.json"


async def test_a2a_hang_times_out(hostile: Served) -> None:
    base, _ = hostile
    t0 = time.monotonic()
    r = await probe_a2a(f"{base}/hang/.well-known/agent-card.json", limits=ProbeLimits(timeout=1))
    assert r.state is HealthState.FAILED
    assert time.monotonic() - t0 < 2.5
