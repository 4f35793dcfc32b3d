"""The A2A probe against the a2a-sdk echo agent (reconciler.devcluster.a2a_agent) on loopback."""

from __future__ import annotations

import aiohttp

from reconciler.devcluster.agents import ServerProcess
from reconciler.model import HealthState
from reconciler.probe import probe_a2a


async def test_card_of_the_echo_agent(a2a_agent: ServerProcess) -> None:
    r = await probe_a2a(a2a_agent.url, expected_skills=["echo", "Reverse"])
    assert r.state is HealthState.HEALTHY, r.reason
    assert (r.card_path, r.name, r.version, r.protocol_versions) == (
        "/.well-known/agent-card.json",
        "echo-agent",
        "1.0.0",
        ["1.0"],
    )
    assert [s.id for s in r.skills] == ["echo", "reverse"]
    assert r.missing_skills == []


async def test_missing_skill_is_degraded(a2a_agent: ServerProcess) -> None:
    r = await probe_a2a(a2a_agent.url + "/.well-known/agent-card.json", expected_skills=["echo", "translate"])
    assert r.state is HealthState.DEGRADED
    assert r.missing_skills == ["translate"]
    assert r.reason == "missing skills: translate"


async def test_the_agent_really_answers(a2a_agent: ServerProcess) -> None:
    """The served agent is a working A2A agent, not only a card: SendMessage is echoed."""
    body = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "SendMessage",
        "params": {"message": {"messageId": "m1", "role": "ROLE_USER", "parts": [{"text": "ping"}]}},
    }
    async with (
        aiohttp.ClientSession() as http,
        http.post(a2a_agent.url + "/", json=body, headers={"A2A-Version": "1.0"}) as resp,
    ):
        reply = await resp.json()
    assert reply["result"]["message"]["parts"] == [{"text": "echo: ping"}]
