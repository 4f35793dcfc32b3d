"""A RemoteMCPServer judged by speaking MCP to it: only via $RECONCILER_PROBE_ADDRESSES, which maps
in-cluster origins to the loopback servers that stand in for them on the local cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from reconciler.cluster.health import judge
from reconciler.devcluster.agents import ServerProcess, start_server_everything
from reconciler.devcluster.process import free_port
from reconciler.errors import ConfigError
from reconciler.model import HealthState
from reconciler.probe.service import ProbeService, service_from_env
from reconciler.probe.targets import ENV_VAR, ProbeAddresses

IN_CLUSTER = "http://everything.tools.svc.cluster.local:8080"
NOW = 1_800_000_000.0


def _rmcps(
    url: str, *, protocol: str = "STREAMABLE_HTTP", status: dict[str, Any] | None = None
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": "kagent.dev/v1alpha2",
        "kind": "RemoteMCPServer",
        "metadata": {
            "name": "everything",
            "namespace": "tools",
            "generation": 1,
            "creationTimestamp": "2026-12-01T00:00:00Z",
        },
        "spec": {"description": "reference server", "url": url, "protocol": protocol},
    }
    if status is not None:
        obj["status"] = status
    return obj


def _origin(server: ServerProcess) -> str:
    return f"http://127.0.0.1:{server.port}"


def mcp_health_probe(addresses: ProbeAddresses, ttl: float = 30.0) -> ProbeService:
    return ProbeService(addresses=addresses, ttl=ttl)


def test_no_controller_and_no_probe_stays_unverified(everything_http: ServerProcess) -> None:
    h = judge(_rmcps(f"{IN_CLUSTER}/mcp"), now=NOW)
    assert h.state is HealthState.UNVERIFIED


def test_mapped_url_is_probed(everything_http: ServerProcess) -> None:
    probe = mcp_health_probe(ProbeAddresses(addresses={IN_CLUSTER: _origin(everything_http)}))
    h = judge(_rmcps(f"{IN_CLUSTER}/mcp"), now=NOW, probe=probe)
    assert h.state is HealthState.HEALTHY, h.message
    assert h.message.startswith(
        f"no controller status; MCP probe of {everything_http.url}: handshake MCP 2025-11-25"
    )


def test_unmapped_url_stays_unverified(everything_http: ServerProcess) -> None:
    probe = mcp_health_probe(ProbeAddresses(addresses={IN_CLUSTER: _origin(everything_http)}))
    h = judge(_rmcps("http://other.tools.svc.cluster.local:8080/mcp"), now=NOW, probe=probe)
    assert h.state is HealthState.UNVERIFIED


def test_sse_protocol_uses_the_legacy_transport(everything_sse: ServerProcess) -> None:
    probe = mcp_health_probe(ProbeAddresses(addresses={IN_CLUSTER: _origin(everything_sse)}))
    h = judge(_rmcps(f"{IN_CLUSTER}/sse", protocol="SSE"), now=NOW, probe=probe)
    assert h.state is HealthState.HEALTHY, h.message


def test_accepted_status_but_unreachable_endpoint_is_not_healthy() -> None:
    status = {
        "observedGeneration": 1,
        "conditions": [
            {"type": "Accepted", "status": "True", "reason": "Reconciled", "observedGeneration": 1}
        ],
        "discoveredTools": [{"name": "echo", "description": "echo"}],
    }
    obj = _rmcps(f"{IN_CLUSTER}/mcp", status=status)
    assert judge(obj, now=NOW).state is HealthState.HEALTHY
    probe = mcp_health_probe(ProbeAddresses(addresses={IN_CLUSTER: f"http://127.0.0.1:{free_port()}"}))
    h = judge(obj, now=NOW, probe=probe)
    assert h.state is HealthState.FAILED
    assert "cannot connect" in h.message


def test_verdicts_are_cached_for_ttl(probe_logs: Path) -> None:
    server = start_server_everything(probe_logs)
    addresses = ProbeAddresses(addresses={IN_CLUSTER: _origin(server)})
    cached, fresh = mcp_health_probe(addresses, ttl=300), mcp_health_probe(addresses, ttl=0)
    obj = _rmcps(f"{IN_CLUSTER}/mcp")
    try:
        assert cached.judge(obj) is not None
        assert (fresh.judge(obj) or pytest.fail("no probe")).state is HealthState.HEALTHY
    finally:
        server.stop()
    assert (cached.judge(obj) or pytest.fail("no probe")).state is HealthState.HEALTHY
    assert cached.requests == 1
    assert (fresh.judge(obj) or pytest.fail("no probe")).state is HealthState.FAILED
    assert fresh.requests == 2


def test_setting_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.delenv("RECONCILER_PROBE_DIRECT", raising=False)
    assert service_from_env() is None
    monkeypatch.setenv("RECONCILER_PROBE_DIRECT", "true")
    direct = service_from_env()
    assert direct is not None and direct.address("http://x.y.svc:80/mcp") == "http://x.y.svc:80/mcp"
    monkeypatch.delenv("RECONCILER_PROBE_DIRECT")
    monkeypatch.setenv(ENV_VAR, f'{{"{IN_CLUSTER}/": "http://127.0.0.1:4000/ignored"}}')
    addresses = ProbeAddresses.from_env()
    assert addresses is not None
    assert addresses.resolve(f"{IN_CLUSTER}/mcp?x=1") == "http://127.0.0.1:4000/mcp?x=1"
    assert addresses.resolve("http://everything.tools.svc.cluster.local:9090/mcp") is None
    # the short Service spelling finds the entry written in full
    assert addresses.resolve("http://everything.tools.svc:8080/mcp") == "http://127.0.0.1:4000/mcp"
    monkeypatch.setenv(ENV_VAR, f'{{"{IN_CLUSTER}": "http://10.0.0.5:4000"}}')
    with pytest.raises(ConfigError, match="not a loopback address"):
        ProbeAddresses.from_env()
    monkeypatch.setenv(ENV_VAR, "not json")
    with pytest.raises(ConfigError, match="is not JSON"):
        ProbeAddresses.from_env()
    monkeypatch.setenv(ENV_VAR, '["a list"]')
    with pytest.raises(ConfigError, match=ENV_VAR):
        ProbeAddresses.from_env()
