"""Protocol health in the status: the probe service's cache, filled by probing the real MCP reference
server and the deterministic A2A agent on loopback, read (without probing again) into each environment's
summary, and shown by ``/api/status``, the status page, ``reconciler status ENV --server`` and the
daemon's own reading. Only the last test needs the control plane (a real daemon's passes, and
``reconciler status ENV`` probing by itself); the others use a stand-in daemon."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import typer
from aiohttp.test_utils import TestClient, TestServer
from typer.testing import CliRunner

from reconciler.cli_observe import cluster_protocols, register
from reconciler.cluster.manager import Desired
from reconciler.devcluster.agents import ServerProcess
from reconciler.model import Environment, ObjectRef, PassResult, ref_of
from reconciler.observe.status import NOT_PROBED, EnvSummary, ProtocolReport, protocol_report
from reconciler.probe.service import ProbeService
from reconciler.probe.targets import ProbeAddresses
from reconciler.runtime.daemon import Daemon, _EnvState
from reconciler.runtime.http import build_app
from reconciler.settings import DaemonSettings

MCP_ORIGIN = "http://everything.tools.svc.cluster.local:8080"
AGENT_ORIGIN = "http://echo.agents.svc.cluster.local:8080"
UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: test-token}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: u}
current-context: nowhere
"""


def _objects() -> list[dict[str, Any]]:
    """A RemoteMCPServer (mapped), an Agent expecting a skill its card lacks (mapped), and an MCPServer
    whose URL no mapping covers."""
    return [
        {
            "apiVersion": "kagent.dev/v1alpha2",
            "kind": "RemoteMCPServer",
            "metadata": {"name": "everything", "namespace": "tools"},
            "spec": {"url": f"{MCP_ORIGIN}/mcp", "protocol": "STREAMABLE_HTTP", "description": "x"},
        },
        {
            "apiVersion": "kagent.dev/v1alpha2",
            "kind": "Agent",
            "metadata": {"name": "echo", "namespace": "agents"},
            "spec": {
                "type": "Declarative",
                "declarative": {"a2aConfig": {"skills": [{"id": "echo"}, {"id": "translate"}]}},
            },
        },
        {
            "apiVersion": "kagent.dev/v1alpha1",
            "kind": "MCPServer",
            "metadata": {"name": "elsewhere", "namespace": "tools"},
            "spec": {"deployment": {"port": 3000}},
        },
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings", "namespace": "agents"}},
    ]


@pytest.fixture
def probes(everything_http: ServerProcess, a2a_agent: ServerProcess) -> ProbeService:
    """A probe service whose cache holds a probe of every mapped endpoint of :func:`_objects`."""
    service = ProbeService(
        addresses=ProbeAddresses(
            addresses={
                MCP_ORIGIN: f"http://127.0.0.1:{everything_http.port}",
                AGENT_ORIGIN: f"http://127.0.0.1:{a2a_agent.port}",
            }
        )
    )
    assert service.prefetch(_objects()) == 2
    return service


def _check_report(report: ProtocolReport, probes: ProbeService) -> int:
    """The report lists the three endpoints with what the probes found; returns the tool count."""
    listed = probes.known_mcp(_objects()[0])
    assert listed is not None and listed.healthy, listed
    tools = len(listed.tools)
    assert tools > 0
    assert report.probed and report.targets == 3
    by_object = {p.object: p for p in report.items}
    assert list(by_object) == [
        "MCPServer tools/elsewhere",
        "RemoteMCPServer tools/everything",
        "Agent agents/echo",
    ]
    mcp = by_object["RemoteMCPServer tools/everything"]
    assert (mcp.protocol, mcp.state, mcp.tools, mcp.protocol_version) == (
        "mcp",
        "Healthy",
        tools,
        "2025-11-25",
    )
    assert mcp.url == f"{MCP_ORIGIN}/mcp" and mcp.server and mcp.checked_at
    agent = by_object["Agent agents/echo"]
    assert (agent.protocol, agent.state) == ("a2a", "Degraded")
    assert agent.card is not None
    assert (agent.card.name, agent.card.skills, agent.card.missing_skills) == ("echo-agent", 2, ["translate"])
    assert agent.url == AGENT_ORIGIN
    unmapped = by_object["MCPServer tools/elsewhere"]
    assert (unmapped.state, unmapped.tools) == ("NotProbed", None)
    assert "does not map its URL" in unmapped.reason
    return tools


def test_report_reads_the_cache_without_probing(probes: ProbeService) -> None:
    sent = probes.requests
    report = protocol_report(_objects(), probes)
    assert probes.requests == sent  # read from the cache only
    _check_report(report, probes)


def test_without_a_probe_service_nothing_is_listed_and_the_summary_says_why() -> None:
    report = protocol_report(_objects(), None)
    assert (report.probed, report.note, report.targets, report.items) == (False, NOT_PROBED, 3, [])


def test_the_daemon_fills_its_environment_from_the_cache(
    probes: ProbeService, tmp_path: Path, env_repo: Any
) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
    daemon = Daemon(
        DaemonSettings(repo=str(env_repo.remote), kubeconfig=kubeconfig, cache_dir=tmp_path / "c")
    )
    try:
        state = _EnvState(name="dev")
        daemon.ctx.last_desired["dev"] = [Desired(ref_of(o), o) for o in _objects()]
        daemon.ctx.probes = None
        daemon._read_protocols(state)
        assert state.protocols is not None and not state.protocols.probed
        assert (state.protocols.targets, state.protocols.note) == (3, NOT_PROBED)

        daemon.ctx.probes = probes
        sent = probes.requests
        daemon._read_protocols(state)
        assert probes.requests == sent
        _check_report(state.protocols, probes)
        first = {p.object: p.checked_at for p in state.protocols.items}
        time.sleep(0.01)
        daemon._read_protocols(state)  # the same cached results keep the time they were first seen
        assert {p.object: p.checked_at for p in state.protocols.items} == first
    finally:
        daemon.client.close()


def test_cluster_protocols_probes_the_live_objects(
    everything_http: ServerProcess, a2a_agent: ServerProcess
) -> None:
    objects = {str(ref_of(o)): o for o in _objects()}

    class Client:
        def __init__(self) -> None:
            self.gets: list[str] = []

        def get(self, ref: ObjectRef) -> dict[str, Any] | None:
            self.gets.append(str(ref))
            return objects.get(str(ref))

    fresh = ProbeService(
        addresses=ProbeAddresses(
            addresses={
                MCP_ORIGIN: f"http://127.0.0.1:{everything_http.port}",
                AGENT_ORIGIN: f"http://127.0.0.1:{a2a_agent.port}",
            }
        )
    )
    client = Client()
    report = cluster_protocols(client, [ref_of(o) for o in _objects()], fresh)
    assert fresh.requests == 2  # one probe per mapped endpoint, concurrently
    assert "ConfigMap/agents/settings" not in client.gets  # no kind that can declare an endpoint
    _check_report(report, fresh)
    none = cluster_protocols(client, [ref_of(o) for o in _objects()], None)
    assert (none.probed, none.targets, none.note) == (False, 3, NOT_PROBED)


# -- the status API, page and command line over a stand-in daemon ----------------------------------------


@dataclass
class _State:
    name: str
    env: Environment | None = None
    running: bool = False
    passes: int = 1
    last: PassResult | None = None
    protocols: ProtocolReport | None = None

    @property
    def applied(self) -> PassResult | None:
        return self.last


@dataclass
class _Daemon:
    settings: DaemonSettings
    source: Any
    envs: dict[str, _State] = field(default_factory=dict)
    drift_events: list[dict[str, Any]] = field(default_factory=list)
    bus: Any = None
    client: Any = None


@pytest.fixture
async def served(probes: ProbeService, tmp_path: Path) -> AsyncIterator[tuple[TestClient[Any, Any], int]]:
    """The HTTP server of a stand-in daemon whose environment ``dev`` holds the cache's report (and
    ``prod`` a report without probes); yields the client and the MCP server's tool count."""
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
    settings = DaemonSettings(repo=str(tmp_path / "repo"), kubeconfig=kubeconfig, cache_dir=tmp_path / "c")
    source = SimpleNamespace(url=str(tmp_path / "repo"), branch="main", repo=None)
    daemon = _Daemon(settings=settings, source=source)
    report = protocol_report(_objects(), probes)
    tools = _check_report(report, probes)
    last = PassResult(
        environment="dev", revision="main@sha1:" + "a" * 40, ok=True, started_at=time.time(), duration=0.5
    )
    daemon.envs["dev"] = _State(name="dev", last=last, protocols=report)
    daemon.envs["prod"] = _State(name="prod", protocols=protocol_report(_objects(), None))
    client = TestClient(TestServer(build_app(daemon, health_ttl=0)))
    await client.start_server()
    try:
        yield client, tools
    finally:
        await client.close()


async def test_api_status_and_the_page_show_tools_and_cards(served: tuple[TestClient[Any, Any], int]) -> None:
    client, tools = served
    rows = {r["name"]: r for r in await (await client.get("/api/status")).json()}
    dev = EnvSummary.model_validate(rows["dev"])
    assert dev.protocols_probed and dev.protocol_targets == 3
    mcp = next(p for p in dev.protocols if p.object == "RemoteMCPServer tools/everything")
    assert (mcp.state, mcp.tools, mcp.protocol_version) == ("Healthy", tools, "2025-11-25")
    agent = next(p for p in dev.protocols if p.object == "Agent agents/echo")
    assert agent.state == "Degraded" and agent.card is not None and agent.card.missing_skills == ["translate"]
    prod = rows["prod"]
    assert (prod["protocols"], prod["protocols_probed"], prod["protocol_targets"]) == ([], False, 3)
    assert prod["protocols_note"] == NOT_PROBED

    html = await (await client.get("/")).text()
    assert "protocols: 1 Degraded, 1 NotProbed, 1 Healthy" in html
    assert "3 MCP servers/agents not probed: set RECONCILER_PROBE_ADDRESSES" in html
    assert ">Healthy<" not in html.split('data-env="prod"')[1]  # nothing unprobed is shown Healthy


async def test_status_env_server_prints_the_protocols(served: tuple[TestClient[Any, Any], int]) -> None:
    client, tools = served
    url = str(client.make_url("/")).rstrip("/")
    app = typer.Typer()
    register(app)
    runner = CliRunner()

    def invoke(*args: str) -> Any:
        return runner.invoke(app, ["status", *args, "--server", url])

    text = await asyncio.to_thread(invoke, "dev")
    assert text.exit_code == 0, text.output
    out = text.stdout
    assert "prod" not in out
    lines = out[out.index("Protocols") :].splitlines()
    mcp = next(line for line in lines if "RemoteMCPServer tools/everything" in line)
    assert "Healthy" in mcp and f"{tools} tools" in mcp and "MCP 2025-11-25" in mcp
    agent = next(line for line in lines if "Agent agents/echo" in line)
    assert "Degraded" in agent and "card echo-agent 1.0.0" in agent
    assert "2 skills" in agent and "missing skills: translate" in agent
    unmapped = next(line for line in lines if "MCPServer tools/elsewhere" in line)
    assert "NotProbed" in unmapped and "Healthy" not in unmapped

    prod = await asyncio.to_thread(invoke, "prod")
    assert prod.exit_code == 0, prod.output
    assert "3 MCP servers/agents" in prod.stdout and "NotProbed" in prod.stdout
    assert "not probed: set RECONCILER_PROBE_ADDRESSES" in prod.stdout

    as_json = await asyncio.to_thread(invoke, "dev", "-o", "json")
    assert as_json.exit_code == 0, as_json.output
    (row,) = json.loads(as_json.stdout)
    by_object = {p["object"]: p for p in row["protocols"]}
    assert by_object["RemoteMCPServer tools/everything"]["tools"] == tools
    assert by_object["Agent agents/echo"]["card"]["skills"] == 2


# -- a real daemon on the local control plane ------------------------------------------------------------

OVERLAY = """\
apiVersion: kagent.dev/v1alpha2
kind: RemoteMCPServer
metadata:
  name: everything
spec:
  description: the MCP reference server
  protocol: STREAMABLE_HTTP
  url: {mcp}/mcp
---
apiVersion: kagent.dev/v1alpha2
kind: Agent
metadata:
  name: echo
spec:
  type: Declarative
  description: the deterministic echo agent
  declarative:
    modelConfig: default-model-config
    systemMessage: Echo.
    a2aConfig:
      skills:
      - {{id: echo, name: Echo, description: echoes}}
      - {{id: reverse, name: Reverse, description: reverses}}
"""


@pytest.mark.integration
async def test_the_daemon_shows_what_its_passes_probed(
    everything_http: ServerProcess,
    a2a_agent: ServerProcess,
    env_repo: Any,
    kubeconfig: Path,
    namespace: str,
    cache_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from reconciler_testing import daemon_settings, until

    from reconciler.probe.targets import ENV_VAR

    mcp = f"http://everything.{namespace}.svc.cluster.local:8080"
    agent = f"http://echo.{namespace}.svc.cluster.local:8080"
    mapping = {mcp: f"http://127.0.0.1:{everything_http.port}", agent: f"http://127.0.0.1:{a2a_agent.port}"}
    monkeypatch.setenv(ENV_VAR, json.dumps(mapping))
    env_repo.write(
        "envs/dev.yaml",
        f"overlay: overlays/dev\nnamespace: {namespace}\n"
        "sync: {interval: 3600}\nhealth: {noControllerAfter: 5}\n",
    )
    env_repo.write("overlays/dev/kustomization.yaml", "resources:\n- platform.yaml\n")
    env_repo.write("overlays/dev/platform.yaml", OVERLAY.format(mcp=mcp))
    env_repo.commit("dev: an MCP server and an agent")
    results: list[PassResult] = []
    daemon = Daemon(daemon_settings(env_repo.remote, kubeconfig, cache_dir), on_result=results.append)
    assert daemon.ctx.probes is not None
    await daemon.start()
    client = TestClient(TestServer(build_app(daemon, health_ttl=0)))
    await client.start_server()
    try:
        await until(lambda: results, 60, "first pass")
        assert results[0].ok, results[0].error
        sent = daemon.ctx.probes.requests
        assert sent >= 2  # the pass's health reading probed both; the status reads the cache
        (row,) = await (await client.get("/api/status")).json()
        s = EnvSummary.model_validate(row)
        assert (s.protocols_probed, s.protocol_targets) == (True, 2)
        by_object = {p.object: p for p in s.protocols}
        served = by_object[f"RemoteMCPServer {namespace}/everything"]
        desired = {d.ref.kind: d.obj for d in daemon.ctx.last_desired["dev"]}
        known = daemon.ctx.probes.known_mcp(desired["RemoteMCPServer"])
        assert known is not None
        assert (served.state, served.tools, served.url) == ("Healthy", len(known.tools), f"{mcp}/mcp")
        card = by_object[f"Agent {namespace}/echo"]
        assert card.state == "Healthy" and card.card is not None
        assert (card.card.name, card.card.skills, card.card.missing_skills) == ("echo-agent", 2, [])
        assert daemon.ctx.probes.requests == sent

        # reconciler status ENV without --server: reads the inventory's objects and probes them itself
        app = typer.Typer()
        register(app)
        cli = await asyncio.to_thread(
            CliRunner().invoke, app, ["status", "dev", "--kubeconfig", str(kubeconfig)]
        )
        assert cli.exit_code == 0, cli.output
        lines = cli.stdout[cli.stdout.index("Protocols") :].splitlines()
        line = next(x for x in lines if f"RemoteMCPServer {namespace}/everything" in x)
        assert "Healthy" in line and f"{len(known.tools)} tools" in line and "MCP 2025-11-25" in line
        line = next(x for x in lines if f"Agent {namespace}/echo" in x)
        assert "Healthy" in line and "card echo-agent 1.0.0, 2 skills" in line
        monkeypatch.delenv(ENV_VAR)
        unset = await asyncio.to_thread(
            CliRunner().invoke, app, ["status", "dev", "--kubeconfig", str(kubeconfig)]
        )
        assert unset.exit_code == 0, unset.output
        assert "2 MCP servers/agents" in unset.stdout and NOT_PROBED in unset.stdout
        assert "Healthy" not in unset.stdout[unset.stdout.index("Protocols") :]
    finally:
        await client.close()
        await daemon.stop()
