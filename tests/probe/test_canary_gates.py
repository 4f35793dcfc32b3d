"""Protocol probe gates of a rollout step (reconciler/rollout/gates.py) against real servers on 127.0.0.1:
the mcp-SDK server as the stable version, its next version (which breaks a tool) and the MCP reference
server as canaries, the a2a-sdk agent for A2A, and a port where nothing listens."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.devcluster.agents import ServerProcess
from reconciler.devcluster.process import free_port
from reconciler.model.rollout import ProbeGate, SampleOutcome
from reconciler.probe.service import ProbeService
from reconciler.probe.targets import ProbeAddresses
from reconciler.rollout.gates import probe_sample


def _service(name: str, app_protocol: str = "mcp", port: int = 80) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": "shop"},
        "spec": {"selector": {"app": "clock"}, "ports": [{"port": port, "appProtocol": app_protocol}]},
    }


def _origin(url: str) -> str:
    return url.split("/mcp")[0].rstrip("/")


def _probes(**origins: str) -> ProbeService:
    return ProbeService(
        addresses=ProbeAddresses(
            addresses={f"http://{name}.shop.svc.cluster.local:80": origin for name, origin in origins.items()}
        )
    )


GATE = ProbeGate(name="protocol")


async def test_a_canary_that_keeps_the_tools_passes(sdk_server: ServerProcess) -> None:
    probes = _probes(**{"clock": _origin(sdk_server.url), "clock-canary": _origin(sdk_server.url)})
    smp = await probe_sample(GATE, _service("clock-canary"), _service("clock"), probes)
    assert smp.outcome is SampleOutcome.PASSED, smp.message
    assert "keeps the stable version's" in smp.message


async def test_a_canary_that_breaks_a_tool_fails_and_says_which(
    sdk_server: ServerProcess, sdk_server_v2: ServerProcess
) -> None:
    probes = _probes(**{"clock": _origin(sdk_server.url), "clock-canary": _origin(sdk_server_v2.url)})
    smp = await probe_sample(GATE, _service("clock-canary"), _service("clock"), probes)
    assert smp.outcome is SampleOutcome.FAILED
    assert "tool 'greet' dropped" in smp.message and "precision" in smp.message
    # without the tool comparison, the same canary is a healthy MCP server
    loose = await probe_sample(ProbeGate(tools=False), _service("clock-canary"), _service("clock"), probes)
    assert loose.outcome is SampleOutcome.PASSED, loose.message


async def test_a_canary_nobody_answers_for_fails(everything_http: ServerProcess) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    probes = _probes(**{"clock": _origin(everything_http.url), "clock-canary": dead})
    smp = await probe_sample(GATE, _service("clock-canary"), _service("clock"), probes)
    assert smp.outcome is SampleOutcome.FAILED and smp.message.startswith("MCP probe Failed")


async def test_no_way_to_the_canary_is_no_evidence_and_no_mcp_port_is_an_error() -> None:
    smp = await probe_sample(GATE, _service("clock-canary"), None, _probes())
    assert smp.outcome is SampleOutcome.INCONCLUSIVE and "RECONCILER_PROBE_ADDRESSES" in smp.message
    smp = await probe_sample(GATE, _service("clock-canary"), None, None)
    assert smp.outcome is SampleOutcome.INCONCLUSIVE
    plain = _service("clock-canary", app_protocol="http")
    smp = await probe_sample(GATE, plain, None, _probes())
    assert smp.outcome is SampleOutcome.ERROR and "appProtocol" in smp.message


@pytest.mark.parametrize("protocol", ["auto", "a2a"])
async def test_an_a2a_canary_is_judged_by_its_card(a2a_agent: ServerProcess, protocol: str) -> None:
    probes = _probes(**{"helper-canary": a2a_agent.url.rstrip("/")})
    gate = ProbeGate.model_validate({"protocol": protocol})
    smp = await probe_sample(gate, _service("helper-canary", "agentgateway.dev/a2a"), None, probes)
    assert smp.outcome is SampleOutcome.PASSED, smp.message
    dead = _probes(**{"helper-canary": f"http://127.0.0.1:{free_port()}"})
    smp = await probe_sample(gate, _service("helper-canary", "agentgateway.dev/a2a"), None, dead)
    assert smp.outcome is SampleOutcome.FAILED
