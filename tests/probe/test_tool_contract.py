"""The tool contract between kagent Agents and their MCP servers: requirements read from Agents, input
schema compatibility, grants, and the gate before an apply and before a promotion — judged against real
MCP servers on 127.0.0.1 (the mcp-SDK server in two versions, the reference server, the hostile
fixtures for headers)."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hostile_servers import Hostile

from reconciler.cluster.health import judge
from reconciler.cluster.manager import digest
from reconciler.devcluster.agents import ServerProcess
from reconciler.model import HealthState
from reconciler.probe.contract import ServerRef, check, requirements, schema_changes
from reconciler.probe.models import ToolInfo
from reconciler.probe.service import ProbeService, a2a_target, mcp_target, secret_reader
from reconciler.probe.targets import ProbeAddresses
from reconciler.reconcile.toolgate import apply_check, promotion_check

NOW = 1_800_000_000.0


def _agent(name: str, ns: str, *tools: dict[str, Any], a2a_skills: list[str] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {"type": "Declarative", "declarative": {"modelConfig": "m", "tools": list(tools)}}
    if a2a_skills is not None:
        spec["declarative"]["a2aConfig"] = {"skills": [{"id": s, "name": s} for s in a2a_skills]}
    return {
        "apiVersion": "kagent.dev/v1alpha2",
        "kind": "Agent",
        "metadata": {
            "name": name,
            "namespace": ns,
            "generation": 1,
            "creationTimestamp": "2026-12-01T00:00:00Z",
        },
        "spec": spec,
    }


def _uses(server: str, *names: str, kind: str = "RemoteMCPServer") -> dict[str, Any]:
    ref: dict[str, Any] = {"apiGroup": "kagent.dev", "kind": kind, "name": server}
    if names:
        ref["toolNames"] = list(names)
    return {"type": "McpServer", "mcpServer": ref}


def _remote(name: str, ns: str, headers: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "url": f"http://{name}.{ns}.svc.cluster.local:8000/mcp",
        "protocol": "STREAMABLE_HTTP",
    }
    if headers:
        spec["headersFrom"] = headers
    return {
        "apiVersion": "kagent.dev/v1alpha2",
        "kind": "RemoteMCPServer",
        "metadata": {
            "name": name,
            "namespace": ns,
            "generation": 1,
            "creationTimestamp": "2026-12-01T00:00:00Z",
        },
        "spec": spec,
    }


def _deployment(name: str, ns: str, image: str) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": ns},
        "spec": {"template": {"spec": {"containers": [{"name": "s", "image": image}]}}},
    }


def _origin(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.port}"


# ----------------------------------------------------------------------------------------- pure rules


def test_requirements_read_every_agent_tool_reference() -> None:
    agent = _agent(
        "helpdesk",
        "",
        _uses("tools", "add", "greet"),
        _uses("docs-mcp", kind=""),  # no kind: an MCPServer; no toolNames: every tool
        {"type": "Agent", "agent": {"name": "research"}},
        {"type": "McpServer", "mcpServer": {"kind": "ConfigMap", "name": "x"}},  # not a server kind
        "not a mapping",
    )
    agent["metadata"].pop("namespace")
    reqs = requirements([agent, _deployment("x", "ns", "img")], namespace="agents-dev")
    assert [(r.agent, str(r.server), r.tools, r.path) for r in reqs] == [
        (
            "agents-dev/helpdesk",
            "RemoteMCPServer agents-dev/tools",
            ("add", "greet"),
            "spec.declarative.tools[0]",
        ),
        ("agents-dev/helpdesk", "MCPServer agents-dev/docs-mcp", None, "spec.declarative.tools[1]"),
    ]


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ({"type": "object", "properties": {"a": {"type": "integer"}}}, None, []),
        (
            {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
            {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "b": {"type": "string"}},
                "required": ["a"],
            },
            [],  # an optional parameter is compatible
        ),
        (
            {"type": "object", "properties": {"a": {"type": "integer"}}},
            {
                "type": "object",
                "properties": {"a": {"type": "integer"}, "p": {"type": "integer"}},
                "required": ["p"],
            },
            ["new required parameter 'p'"],
        ),
        (
            {"type": "object", "properties": {"a": {"type": "integer"}}},
            {"type": "object", "properties": {"a": {"type": "string"}}},
            ["type in 'a' changed from integer to string"],
        ),
        (
            {"type": "object", "properties": {"a": {"type": "integer"}}},
            {"type": "object", "properties": {"a": {"type": "number"}}},
            [],  # wider: every integer is a number
        ),
        (
            {
                "type": "object",
                "properties": {"opts": {"type": "object", "properties": {"x": {"type": "string"}}}},
            },
            {
                "type": "object",
                "properties": {
                    "opts": {"type": "object", "properties": {"x": {"type": "string"}}, "required": ["y"]}
                },
            },
            ["new required parameter 'opts.y'"],
        ),
        (
            {"type": "object", "properties": {"a": {"type": "integer"}, "gone": {"type": "string"}}},
            {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": False},
            ["parameter 'gone' removed (unknown parameters are refused)"],
        ),
    ],
)
def test_schema_changes(old: dict[str, Any], new: dict[str, Any] | None, expected: list[str]) -> None:
    assert schema_changes(old, new if new is not None else old) == expected


def test_check_reports_missing_tools_schema_breaks_and_grants() -> None:
    server = ServerRef(kind="RemoteMCPServer", namespace="ns", name="tools")
    other = ServerRef(kind="MCPServer", namespace="ns", name="docs")
    s1 = {"type": "object", "properties": {"q": {"type": "string"}}}
    s2 = {
        "type": "object",
        "properties": {"q": {"type": "string"}, "n": {"type": "integer"}},
        "required": ["n"],
    }
    before_tools = {
        server: [ToolInfo(name="search", schema_sha256="1", input_schema=s1), ToolInfo(name="old")],
        other: [ToolInfo(name="read")],
    }
    after_tools = {
        server: [ToolInfo(name="search", schema_sha256="2", input_schema=s2), ToolInfo(name="new")],
        other: [ToolInfo(name="read"), ToolInfo(name="write")],
        # a server nobody could list
        ServerRef(kind="RemoteMCPServer", namespace="ns", name="dark"): None,
    }
    before = requirements(
        [_agent("a", "ns", _uses("tools", "search", "old"), _uses("docs", kind="MCPServer"))]
    )
    after = requirements(
        [
            _agent("a", "ns", _uses("tools", "search", "old", "new"), _uses("docs", kind="MCPServer")),
            _agent("b", "ns", _uses("dark", "x")),
        ]
    )
    report = check(after, after_tools, before=before, tools_before=before_tools)
    assert [(v.agent, v.tool, v.reason) for v in report.violations] == [
        ("ns/a", "search", "schema"),
        ("ns/a", "old", "missing"),
    ]
    assert (
        "Agent ns/a requires tool 'old' of RemoteMCPServer ns/tools, which does not list it"
        in report.summary()
    )
    assert "new required parameter 'n'" in report.violations[0].message
    assert [g.describe() for g in report.grants] == [
        "ns/a <- RemoteMCPServer ns/tools: new",
        "ns/a <- MCPServer ns/docs: write (every tool of the server: toolNames is empty)",
    ]
    assert report.unverified == ["RemoteMCPServer ns/dark"]
    assert not report.ok and report.checked == 2


def test_targets_of_each_kind() -> None:
    svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "clock", "namespace": "t", "annotations": {"agentgateway.dev/mcp-path": "rpc"}},
        "spec": {
            "ports": [{"port": 80, "name": "web"}, {"port": 3000, "appProtocol": "agentgateway.dev/mcp-sse"}]
        },
    }
    t = mcp_target(svc)
    assert t is not None and (t.url, t.transport) == ("http://clock.t.svc.cluster.local:3000/rpc", "sse")
    kmcp = {
        "apiVersion": "kagent.dev/v1alpha1",
        "kind": "MCPServer",
        "metadata": {"name": "docs-mcp"},
        "spec": {"deployment": {"port": 3000}},
    }
    t = mcp_target(kmcp, "agents-dev")
    assert t is not None and t.url == "http://docs-mcp.agents-dev.svc.cluster.local:3000/mcp"
    a = a2a_target(_agent("helpdesk", "agents-dev", a2a_skills=["triage"]))
    assert a is not None and (a.url, a.skills) == (
        "http://helpdesk.agents-dev.svc.cluster.local:8080",
        ("triage",),
    )
    a2a_svc = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "research", "namespace": "t"},
        "spec": {"ports": [{"port": 8080, "appProtocol": "kgateway.dev/a2a"}]},
    }
    assert (a2a_target(a2a_svc) or pytest.fail("no target")).url == "http://research.t.svc.cluster.local:8080"
    assert mcp_target(_deployment("x", "t", "i")) is None and a2a_target(_deployment("x", "t", "i")) is None


# ----------------------------------------------------------------------------------- on real servers


def test_apply_check_blocks_a_missing_tool_and_skips_a_changed_server(
    sdk_server: ServerProcess, sdk_server_v2: ServerProcess
) -> None:
    probes = ProbeService(
        addresses=ProbeAddresses(
            addresses={
                "http://tools.dev.svc.cluster.local:8000": _origin(sdk_server_v2),
                "http://tools.prod.svc.cluster.local:8000": _origin(sdk_server),
            }
        )
    )
    desired = [
        _remote("tools", "dev"),
        _deployment("tools", "dev", "ghcr.io/acme/tools:2.0.0"),
        _agent("helpdesk", "dev", _uses("tools", "add", "greet")),
    ]
    refs = {("RemoteMCPServer", "dev", "tools"): "r", ("Deployment", "dev", "tools"): "d"}
    applied = {"r": digest(desired[0]), "d": digest(desired[1])}
    report = apply_check(probes, desired, namespace="dev", applied_digests=applied, refs=refs)
    assert [(v.tool, v.reason) for v in report.violations] == [("greet", "missing")]
    assert "Agent dev/helpdesk requires tool 'greet' of RemoteMCPServer dev/tools" in report.summary()
    # the revision changes the server's Deployment: nobody can list the new version's tools yet
    changed = {"r": digest(desired[0]), "d": "an older digest"}
    report = apply_check(probes, desired, namespace="dev", applied_digests=changed, refs=refs)
    assert report.ok and report.unverified == ["RemoteMCPServer dev/tools"]
    # the same Agent against the version that lists both tools holds
    prod = [_remote("tools", "prod"), _agent("helpdesk", "prod", _uses("tools", "add", "greet"))]
    prod_refs = {("RemoteMCPServer", "prod", "tools"): "p"}
    report = apply_check(
        probes, prod, namespace="prod", applied_digests={"p": digest(prod[0])}, refs=prod_refs
    )
    assert report.ok and report.checked == 1
    # a first apply (nothing applied yet): the server is new, its tools are judged after it runs
    report = apply_check(probes, prod, namespace="prod", applied_digests={}, refs=prod_refs)
    assert report.ok and report.checked == 0 and report.unverified == ["RemoteMCPServer prod/tools"]


def test_promotion_check_uses_the_source_version_of_a_moved_server(
    sdk_server: ServerProcess, sdk_server_v2: ServerProcess
) -> None:
    probes = ProbeService(
        addresses=ProbeAddresses(
            addresses={
                "http://tools.dev.svc.cluster.local:8000": _origin(sdk_server_v2),
                "http://tools.prod.svc.cluster.local:8000": _origin(sdk_server),
            }
        )
    )
    source = [_remote("tools", "dev"), _deployment("tools", "dev", "ghcr.io/acme/tools:2.0.0")]
    agent = _agent("helpdesk", "prod", _uses("tools", "add", "greet"))
    greedy = _agent("greedy", "prod", _uses("tools"))  # every tool of the server
    before = [
        _remote("tools", "prod"),
        _deployment("tools", "prod", "ghcr.io/acme/tools:1.0.0"),
        agent,
        greedy,
    ]
    after = [
        _remote("tools", "prod"),
        _deployment("tools", "prod", "ghcr.io/acme/tools:2.0.0"),
        agent,
        greedy,
    ]
    report = promotion_check(
        probes,
        source=source,
        source_namespace="dev",
        target_before=before,
        target_after=after,
        target_namespace="prod",
    )
    assert sorted((v.agent, v.tool, v.reason) for v in report.violations) == [
        ("prod/helpdesk", "add", "schema"),
        ("prod/helpdesk", "greet", "missing"),
    ]
    assert "new required parameter 'precision'" in report.summary()
    assert [g.describe() for g in report.grants] == [
        "prod/greedy <- RemoteMCPServer prod/tools: shout (every tool of the server: toolNames is empty)"
    ]
    # a promotion that does not move the server keeps judging the target's own version
    unmoved = promotion_check(
        probes,
        source=source,
        source_namespace="dev",
        target_before=before,
        target_after=before,
        target_namespace="prod",
    )
    assert unmoved.ok and unmoved.grants == []


async def test_headers_from_a_secret_reach_the_server_and_never_the_result(
    hostile: tuple[str, Hostile],
) -> None:
    base, _ = hostile
    port = base.rsplit(":", 1)[1].split("/")[0]
    token = "Bearer s3cret-token"
    secrets = {
        ("Secret", "tools", "auth-token"): {
            "data": {"authorization": base64.b64encode(token.encode()).decode()}
        }
    }
    probes = ProbeService(
        addresses=ProbeAddresses(
            addresses={"http://auth.tools.svc.cluster.local:8000": f"http://127.0.0.1:{port}"}
        ),
        secrets=secret_reader(lambda kind, ns, name: secrets.get((kind, ns, name))),
    )
    header = [
        {
            "name": "Authorization",
            "valueFrom": {"type": "Secret", "name": "auth-token", "key": "authorization"},
        }
    ]
    obj = _remote("auth", "tools", header)
    obj["spec"]["url"] = "http://auth.tools.svc.cluster.local:8000/auth"
    result = await _in_thread(probes.mcp, obj)
    assert result is not None and result.state is HealthState.HEALTHY, result
    assert "s3cret" not in result.model_dump_json()
    # the key is missing: the probe fails and says where it looked, without any value
    header[0]["valueFrom"]["key"] = "nope"
    missing = await _in_thread(probes.mcp, obj)
    assert missing is not None and missing.state is HealthState.FAILED
    assert missing.reason == "header Authorization: Secret tools/auth-token key 'nope' does not exist"
    # no Secret reader (e.g. `reconciler probe` without a cluster): a clear failure, no request
    sent = probes.requests
    bare = ProbeService(addresses=probes.addresses)
    nobody = await _in_thread(bare.mcp, obj)
    assert nobody is not None and "cannot be read here" in nobody.reason and probes.requests == sent


async def _in_thread(fn: Any, *args: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args)


def test_agent_health_names_a_missing_tool_and_its_card(
    everything_http: ServerProcess, a2a_agent: ServerProcess
) -> None:
    probes = ProbeService(
        addresses=ProbeAddresses(
            addresses={
                "http://tools.dev.svc.cluster.local:8000": _origin(everything_http),
                "http://helpdesk.dev.svc.cluster.local:8080": a2a_agent.url,
            }
        )
    )
    server = _remote("tools", "dev")
    objects = {("RemoteMCPServer", "tools"): server}

    def lookup(ref: Any) -> dict[str, Any] | None:
        return objects.get((ref.kind, ref.name))

    ok = _agent("helpdesk", "dev", _uses("tools", "echo", "get-sum"), a2a_skills=["echo"])
    h = judge(ok, lookup=lookup, now=NOW, probe=probes)
    assert h.state is HealthState.HEALTHY, h.message
    assert h.message.startswith("no controller status; A2A card:")
    broken = _agent("helpdesk", "dev", _uses("tools", "echo", "add"), a2a_skills=["echo"])
    h = judge(broken, lookup=lookup, now=NOW, probe=probes)
    assert h.state is HealthState.DEGRADED
    assert "requires tool 'add' of RemoteMCPServer dev/tools, which does not list it" in h.message
    # a skill the card does not list: the card's own verdict
    h = judge(
        _agent("helpdesk", "dev", a2a_skills=["echo", "translate"]), lookup=lookup, now=NOW, probe=probes
    )
    assert h.state is HealthState.DEGRADED and "translate" in h.message
    # an Agent with no card reachable and no broken contract stays unjudged
    other = _agent("elsewhere", "dev", _uses("tools", "echo"))
    assert judge(other, lookup=lookup, now=NOW, probe=probes).state is HealthState.UNVERIFIED
