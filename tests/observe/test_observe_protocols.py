"""Protocol health in the status, without servers: the report built from probe results (a stand-in probe
service), its one-line wording, the summary fields, the ``Protocols`` section of ``reconciler status`` and
the age of a result."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from rich.console import Console

from reconciler.cli_observe import print_status
from reconciler.model import HealthState, PassResult
from reconciler.observe.status import (
    NOT_PROBED,
    NOT_PROBED_STATE,
    AgentCardStatus,
    EnvSummary,
    ProbeTimes,
    ProtocolReport,
    ProtocolStatus,
    age,
    protocol_detail,
    protocol_report,
    protocols_overview,
    summarize_env,
)
from reconciler.probe.models import A2AProbeResult, McpProbeResult, SkillInfo, ToolInfo
from reconciler.probe.service import ProbeService
from reconciler.probe.targets import ProbeAddresses

RMCPS = {
    "apiVersion": "kagent.dev/v1alpha2",
    "kind": "RemoteMCPServer",
    "metadata": {"name": "docs", "namespace": "tools"},
    "spec": {
        "url": "http://docs.tools.svc.cluster.local:8080/mcp",
        "headersFrom": [{"name": "Authorization", "value": "Bearer s3cr3t"}],
    },
}
AGENT = {
    "apiVersion": "kagent.dev/v1alpha2",
    "kind": "Agent",
    "metadata": {"name": "helper", "namespace": "agents"},
    "spec": {"declarative": {"a2aConfig": {"skills": [{"id": "search"}, {"id": "translate"}]}}},
}
SERVICE = {  # an A2A port; nothing maps it
    "apiVersion": "v1",
    "kind": "Service",
    "metadata": {"name": "gw", "namespace": "agents"},
    "spec": {"ports": [{"port": 9000, "appProtocol": "kgateway.dev/a2a"}]},
}
MCP_OK = McpProbeResult(
    url="http://127.0.0.1:1/mcp",
    state=HealthState.HEALTHY,
    reason="handshake MCP 2025-11-25, 3 tools",
    transport="streamable-http",
    protocol_version="2025-11-25",
    server_name="docs",
    server_version="1.2.0",
    tools=[ToolInfo(name=n) for n in ("search", "fetch", "list")],
    latency=0.0123456,
)
CARD = A2AProbeResult(
    url="http://127.0.0.1:2",
    state=HealthState.DEGRADED,
    reason="missing skills: translate",
    name="helper",
    version="0.3.0",
    skills=[SkillInfo(id="search", name="Search")],
    missing_skills=["translate"],
)


class Stub(ProbeService):
    """A probe service answering from fixed results; counts what would have been probed."""

    def __init__(self, mcp: McpProbeResult | None, card: A2AProbeResult | None) -> None:
        super().__init__(
            addresses=ProbeAddresses(
                addresses={
                    "http://docs.tools.svc.cluster.local:8080": "http://127.0.0.1:1",
                    "http://helper.agents.svc.cluster.local:8080": "http://127.0.0.1:2",
                }
            )
        )
        self.mcp_result, self.card_result, self.probed = mcp, card, 0

    def known_mcp(self, obj: Mapping[str, Any], namespace: str = "") -> McpProbeResult | None:
        return self.mcp_result if obj["kind"] == "RemoteMCPServer" else None

    def known_a2a(self, obj: Mapping[str, Any], namespace: str = "") -> A2AProbeResult | None:
        return self.card_result if obj["kind"] == "Agent" else None

    def mcp(self, obj: Mapping[str, Any], namespace: str = "") -> McpProbeResult | None:
        self.probed += 1
        return self.known_mcp(obj)

    def a2a(self, obj: Mapping[str, Any], namespace: str = "") -> A2AProbeResult | None:
        self.probed += 1
        return self.known_a2a(obj)


def test_report_from_results_and_not_probed_endpoints() -> None:
    stub = Stub(MCP_OK, CARD)
    report = protocol_report([AGENT, SERVICE, {"kind": "ConfigMap"}, RMCPS], stub, now=100.0)
    assert stub.probed == 0  # only the cache is read unless asked to probe
    assert (report.probed, report.targets, report.note) == (True, 3, "")
    assert [(p.object, p.protocol, p.state) for p in report.items] == [
        ("RemoteMCPServer tools/docs", "mcp", "Healthy"),
        ("Agent agents/helper", "a2a", "Degraded"),
        ("Service agents/gw", "a2a", NOT_PROBED_STATE),
    ]
    mcp, agent, gw = report.items
    assert (mcp.tools, mcp.protocol_version, mcp.server, mcp.transport) == (
        3,
        "2025-11-25",
        "docs 1.2.0",
        "streamable-http",
    )
    assert (mcp.url, mcp.checked_at, mcp.latency) == (
        "http://docs.tools.svc.cluster.local:8080/mcp",
        100.0,
        0.0123,
    )
    assert "s3cr3t" not in report.model_dump_json()  # headers are never part of the status
    assert agent.card == AgentCardStatus(
        name="helper", version="0.3.0", skills=1, missing_skills=["translate"]
    )
    assert agent.url == "http://helper.agents.svc.cluster.local:8080" and agent.tools is None
    assert (gw.probed, gw.checked_at, gw.card) == (False, None, None)
    assert gw.reason == "not probed: RECONCILER_PROBE_ADDRESSES does not map its URL"
    protocol_report([RMCPS, AGENT], stub, probe=True)
    assert stub.probed == 2


def test_not_yet_probed_failed_and_unlisted_are_never_healthy() -> None:
    report = protocol_report([RMCPS, AGENT], Stub(None, None))
    assert [(p.state, p.reason) for p in report.items] == [
        (NOT_PROBED_STATE, "not probed yet"),
        (NOT_PROBED_STATE, "not probed yet"),
    ]
    failed = MCP_OK.model_copy(update={"state": HealthState.FAILED, "reason": "connection refused"})
    degraded = MCP_OK.model_copy(update={"state": HealthState.DEGRADED, "reason": "cursor loop at page 2"})
    no_card = CARD.model_copy(update={"state": HealthState.FAILED, "reason": "HTTP 404"})
    f, card = protocol_report([RMCPS, AGENT], Stub(failed, no_card)).items
    assert (f.state, f.tools, f.protocol_version, f.server) == ("Failed", None, "", "")
    assert protocol_detail(f) == "connection refused"
    assert (card.state, card.card) == ("Failed", None) and protocol_detail(card) == "HTTP 404"
    (d,) = protocol_report([RMCPS], Stub(degraded, None)).items
    assert d.tools is None  # a listing that did not finish counts nothing
    assert protocol_detail(d) == "MCP 2025-11-25, server docs 1.2.0, cursor loop at page 2"


def test_without_a_probe_service_the_report_says_why() -> None:
    report = protocol_report([RMCPS, AGENT, SERVICE], None)
    assert report == ProtocolReport(probed=False, note=NOT_PROBED, targets=3)
    assert "RECONCILER_PROBE_ADDRESSES" in NOT_PROBED
    assert protocol_report([], None, note="not probed: bad mapping").note == "not probed: bad mapping"


def test_detail_lines() -> None:
    mcp, agent = protocol_report([RMCPS, AGENT], Stub(MCP_OK, CARD)).items
    assert protocol_detail(mcp) == "3 tools, MCP 2025-11-25, server docs 1.2.0"
    assert protocol_detail(agent) == "card helper 0.3.0, 1 skill, missing skills: translate"
    one = ProtocolStatus(object="RemoteMCPServer a/b", protocol="mcp", state="Healthy", tools=1)
    assert protocol_detail(one) == "1 tool"
    bare = ProtocolStatus(object="Agent a/b", protocol="a2a", state="Healthy", card=AgentCardStatus(skills=0))
    assert protocol_detail(bare) == "card (unnamed), 0 skills"


def test_probe_times_keep_the_time_a_result_was_first_seen() -> None:
    times = ProbeTimes()
    stub = Stub(MCP_OK, CARD)
    first = protocol_report([RMCPS, AGENT], stub, times=times, now=100.0)
    again = protocol_report([RMCPS, AGENT], stub, times=times, now=130.0)
    assert [p.checked_at for p in first.items] == [p.checked_at for p in again.items] == [100.0, 100.0]
    stub.mcp_result = MCP_OK.model_copy()  # a new probe: a new result object
    newer = protocol_report([RMCPS, AGENT], stub, times=times, now=160.0)
    assert [p.checked_at for p in newer.items] == [160.0, 100.0]
    protocol_report([RMCPS], stub, times=times, now=170.0)  # the agent left: forgotten
    stub.mcp_result = None
    assert [p.checked_at for p in protocol_report([AGENT], stub, times=times, now=200.0).items] == [200.0]


def test_summary_fields_and_overview() -> None:
    last = PassResult(
        environment="dev", revision="main@sha1:" + "1" * 40, ok=True, started_at=1.0, duration=1
    )
    report = protocol_report([RMCPS, AGENT, SERVICE], Stub(MCP_OK, CARD))
    s = summarize_env("dev", last, protocols=report)
    assert (s.protocols, s.protocols_probed, s.protocols_note, s.protocol_targets) == (
        report.items,
        True,
        "",
        3,
    )
    assert protocols_overview(s) == "protocols: 1 Degraded, 1 NotProbed, 1 Healthy"
    assert EnvSummary.model_validate_json(s.model_dump_json()) == s
    plain = summarize_env("dev", last)
    assert (plain.protocols, plain.protocols_probed, plain.protocol_targets) == ([], False, 0)
    assert protocols_overview(plain) == ""
    off = summarize_env("dev", last, protocols=protocol_report([RMCPS], None))
    assert protocols_overview(off) == f"1 MCP server/agent {NOT_PROBED}"
    old = EnvSummary.model_validate({"name": "dev"})  # a server without these fields
    assert (old.protocols, old.protocols_probed, old.protocols_note) == ([], False, "")


def _text(envs: list[EnvSummary]) -> str:
    buf = io.StringIO()
    print_status(Console(file=buf, width=200, no_color=True, highlight=False, soft_wrap=True), envs)
    return buf.getvalue()


def test_status_text_has_a_protocols_section_only_when_there_is_something_to_say() -> None:
    last = PassResult(
        environment="dev", revision="main@sha1:" + "1" * 40, ok=True, started_at=1.0, duration=1
    )
    before = _text([summarize_env("dev", last)])
    assert "Protocols" not in before
    assert _text([summarize_env("dev", last, protocols=protocol_report([], None))]) == before

    report = protocol_report([RMCPS, AGENT, SERVICE], Stub(MCP_OK, CARD))
    dev = summarize_env("dev", last, protocols=report)
    prod = summarize_env("prod", None, protocols=protocol_report([RMCPS, AGENT], None))
    out = _text([dev, prod])
    assert out.startswith(before.splitlines()[0].rstrip()[:20])  # the table comes first, as before
    section = out[out.index("\nProtocols\n") :].splitlines()
    line = {
        n: next(s for s in section if n in s) for n in ("tools/docs", "agents/helper", "agents/gw", "prod ")
    }
    assert "MCP" in line["tools/docs"] and "Healthy" in line["tools/docs"]
    assert "3 tools, MCP 2025-11-25, server docs 1.2.0" in line["tools/docs"]
    assert "A2A" in line["agents/helper"] and "Degraded" in line["agents/helper"]
    assert "card helper 0.3.0, 1 skill, missing skills: translate" in line["agents/helper"]
    assert NOT_PROBED_STATE in line["agents/gw"] and "Healthy" not in line["agents/gw"]
    assert "2 MCP servers/agents" in line["prod "] and NOT_PROBED in line["prod "]


def test_age() -> None:
    assert age(None) == "never"
    assert [age(1000.0 - d, now=1000.0) for d in (3, 600)] == ["3 s ago", "10 min ago"]
    assert age(0.0, now=7200.0 * 24) == "never"
    assert age(1.0, now=1.0 + 7200) == "2 h ago" and age(1.0, now=1.0 + 3 * 86400) == "3 d ago"


def test_status_text_names_the_replica_only_for_a_sharded_daemon() -> None:
    last = PassResult(
        environment="dev", revision="main@sha1:" + "1" * 40, ok=True, started_at=1.0, duration=1
    )
    plain = _text([summarize_env("dev", last), summarize_env("prod", None)])
    assert "replica" not in plain
    dev = summarize_env("dev", last).model_copy(update={"owner": "reconciler-0"})
    sharded = _text([dev, summarize_env("prod", None)])
    assert "replica" in sharded
    assert [line.split()[-1] for line in sharded.splitlines()[1:3]] == ["reconciler-0", "-"]
