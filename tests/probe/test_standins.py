"""The local stand-ins' mapping (reconciler.devcluster.standins: Deployments of docker.io/mcp/everything and
the Services selecting them, and kagent Agents → loopback origins) and the file form of the setting
RECONCILER_PROBE_ADDRESSES=@file (reconciler.probe.targets.AddressFile), which the daemon reads again when
the stand-ins rewrite it. No cluster and no server: unit tests."""

from __future__ import annotations

import json
import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest

from reconciler.devcluster.standins import StandIns, compute_standins, everything_version
from reconciler.errors import ConfigError
from reconciler.probe.service import service_from_env
from reconciler.probe.targets import ENV_VAR, AddressFile, ProbeAddresses, addresses_from_env, write_addresses

OLD, NEW = "2025.9.25", "2026.8.31"
SERVERS = {OLD: "http://127.0.0.1:41001", NEW: "http://127.0.0.1:41002"}
A2A = "http://127.0.0.1:41003"


def deployment(ns: str, name: str, image: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    labels = labels or {"app.kubernetes.io/name": name}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"namespace": ns, "name": name},
        "spec": {
            "selector": {"matchLabels": labels},
            "template": {
                "metadata": {"labels": {**labels, "app.kubernetes.io/component": "mcp-server"}},
                "spec": {"containers": [{"name": "server", "image": image}]},
            },
        },
    }


def service(ns: str, name: str, selector: dict[str, str], *ports: int) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"namespace": ns, "name": name},
        "spec": {"selector": selector, "ports": [{"name": f"p{p}", "port": p} for p in ports]},
    }


def agent(ns: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "kagent.dev/v1alpha2", "kind": "Agent", "metadata": {"namespace": ns, "name": name}}


EVERYTHING = {"app.kubernetes.io/name": "everything"}


# --------------------------------------------------------------------------------------------- mapping


@pytest.mark.parametrize(
    ("image", "version"),
    [
        ("docker.io/mcp/everything:2025.9.25", "2025.9.25"),
        ("mcp/everything:2026.8.31", "2026.8.31"),  # any Docker Hub spelling
        ("index.docker.io/mcp/everything:2026.8.31@sha256:" + "a" * 64, "2026.8.31"),
        ("docker.io/mcp/everything@sha256:" + "a" * 64, None),  # no tag: no version
        ("ghcr.io/mcp/everything:2025.9.25", None),  # another registry
        ("ghcr.io/acme/clock-mcp:0.1.0", None),
    ],
)
def test_everything_version_is_the_tag_of_the_image(image: str, version: str | None) -> None:
    assert everything_version(deployment("ns", "x", image)) == version


def test_services_map_to_the_server_of_their_deployments_version_and_agents_to_the_a2a_agent() -> None:
    deployments = [
        deployment("agents-dev", "everything", f"docker.io/mcp/everything:{NEW}@sha256:" + "b" * 64),
        deployment("agents-staging", "everything", f"docker.io/mcp/everything:{OLD}"),
        deployment("agents-prod", "everything", "docker.io/mcp/everything:2099.1.1"),  # not pinned
        deployment("agents-dev", "clock-mcp", "ghcr.io/acme/clock-mcp:0.1.1"),
    ]
    services = [
        service("agents-dev", "everything", EVERYTHING, 3001),
        service("agents-staging", "everything", EVERYTHING, 3001, 9090),
        service("agents-staging", "other", {"app.kubernetes.io/name": "nothing"}, 80),
        service("agents-prod", "everything", EVERYTHING, 3001),
        service("agents-dev", "clock-mcp", {"app.kubernetes.io/name": "clock-mcp"}, 3000),
        service("elsewhere", "everything", EVERYTHING, 3001),  # no such Deployment in its namespace
    ]
    agents = [agent("agents-dev", "helpdesk"), agent("agents-staging", "research")]
    found, notes = compute_standins(deployments, services, agents, SERVERS, A2A)
    mapping = {s.origin: s.target for s in found}
    assert mapping == {
        "http://everything.agents-dev.svc.cluster.local:3001": SERVERS[NEW],
        "http://everything.agents-staging.svc.cluster.local:3001": SERVERS[OLD],
        "http://everything.agents-staging.svc.cluster.local:9090": SERVERS[OLD],
        "http://helpdesk.agents-dev.svc.cluster.local:8080": A2A,
        "http://research.agents-staging.svc.cluster.local:8080": A2A,
    }
    by_origin = {s.origin: s for s in found}
    dev = by_origin["http://everything.agents-dev.svc.cluster.local:3001"]
    assert dev.server == f"server-everything {NEW}"
    assert dev.owner == "Service agents-dev/everything → Deployment everything"
    assert any("agents-prod/everything" in n and "2099.1.1" in n and "no stand-in" in n for n in notes), notes
    # the result is a valid probe setting
    assert ProbeAddresses(addresses=mapping).resolve(dev.origin + "/mcp") == SERVERS[NEW] + "/mcp"
    # without the A2A agent, agents are not mapped
    found, _ = compute_standins(deployments, services, agents, SERVERS, None)
    assert all(":8080" not in s.origin for s in found)


class _NoServers(StandIns):
    """StandIns that start no process: the servers' origins are given (only the mapping is tested)."""

    def server_origins(self) -> dict[str, str]:
        return dict(SERVERS)

    def a2a_origin(self) -> str | None:
        return A2A


def _standins(tmp_path: Path, changes: list[list[str]] | None = None) -> StandIns:
    return _NoServers(
        tmp_path / "kubeconfig", tmp_path, on_change=changes.append if changes is not None else None
    )


def test_the_mapping_file_follows_the_deployments_and_the_daemon_reads_it_again(tmp_path: Path) -> None:
    changes: list[list[str]] = []
    s = _standins(tmp_path, changes)
    s.update(
        "Deployment",
        [deployment("agents-dev", "everything", f"docker.io/mcp/everything:{OLD}")],
        replace=True,
    )
    s.update("Service", [service("agents-dev", "everything", EVERYTHING, 3001)], replace=True)
    s.update("Agent", [agent("agents-dev", "helpdesk")], replace=True)
    origin = "http://everything.agents-dev.svc.cluster.local:3001"
    assert json.loads(s.mapping_file.read_text()) == {
        origin: SERVERS[OLD],
        "http://helpdesk.agents-dev.svc.cluster.local:8080": A2A,
    }
    probes = service_from_env({ENV_VAR: s.setting})
    assert probes is not None and isinstance(probes.addresses, AddressFile)
    assert probes.address(origin + "/mcp") == SERVERS[OLD] + "/mcp"
    assert probes.address("http://everything.agents-dev.svc:3001/mcp") == SERVERS[OLD] + "/mcp"

    # a new version of the Deployment: the same origin now leads to that version's server
    writes = s.writes
    s.update("Deployment", [deployment("agents-dev", "everything", f"mcp/everything:{NEW}")])
    assert s.writes == writes + 1
    assert probes.address(origin + "/mcp") == SERVERS[NEW] + "/mcp"
    assert s.serving(origin) is not None and s.serving(origin).server == f"server-everything {NEW}"  # type: ignore[union-attr]
    assert changes[-1] == [
        f"{origin} → server-everything {NEW} (Service agents-dev/everything → Deployment everything)"
    ]

    # an event that changes nothing mapped writes nothing (and the daemon parses nothing)
    assert isinstance(probes.addresses, AddressFile)
    reloads = probes.addresses.reloads
    s.update("Deployment", [deployment("agents-dev", "clock-mcp", "ghcr.io/acme/clock-mcp:0.1.1")])
    s.update("Service", [service("agents-dev", "clock-mcp", {"app.kubernetes.io/name": "clock-mcp"}, 3000)])
    assert s.writes == writes + 1
    assert probes.address(origin + "/mcp") == SERVERS[NEW] + "/mcp"
    assert probes.addresses.reloads == reloads

    # the Deployment goes: its Service leads nowhere
    s.update("Deployment", [deployment("agents-dev", "everything", f"mcp/everything:{NEW}")], deleted=True)
    assert probes.address(origin + "/mcp") is None
    assert changes[-1] == [f"{origin}: no stand-in any more"]
    s.stop()  # no process of its own to stop; the file goes
    assert not s.mapping_file.exists()


# --------------------------------------------------------------------------- RECONCILER_PROBE_ADDRESSES=@file


def test_file_setting_errors_name_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.json"
    with pytest.raises(ConfigError, match=f"{ENV_VAR} file {missing} does not exist"):
        addresses_from_env({ENV_VAR: f"@{missing}"})
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match=f"{ENV_VAR} file {bad} is not JSON"):
        addresses_from_env({ENV_VAR: f"@{bad}"})
    bad.write_text('["a list"]')
    with pytest.raises(ConfigError, match=f"{ENV_VAR} file {bad}: expected a JSON object"):
        addresses_from_env({ENV_VAR: f"@{bad}"})
    bad.write_text('{"http://x.y.svc.cluster.local:80": "http://10.0.0.5:80"}')
    with pytest.raises(ConfigError, match=f"{ENV_VAR} file {bad}: target of .* is not a loopback address"):
        ProbeAddresses.from_env({ENV_VAR: f"@{bad}"})
    with pytest.raises(ConfigError, match=re.escape("@/path/to/file.json")):
        addresses_from_env({ENV_VAR: "@"})
    # the inline form is unchanged
    inline = addresses_from_env({ENV_VAR: '{"http://x.y.svc:80": "http://127.0.0.1:4000"}'})
    assert isinstance(inline, ProbeAddresses)
    assert inline.resolve("http://x.y.svc.cluster.local:80/mcp") == "http://127.0.0.1:4000/mcp"
    with pytest.raises(ConfigError, match=f"{ENV_VAR} is not JSON"):
        addresses_from_env({ENV_VAR: "{"})
    with pytest.raises(ConfigError, match="not a loopback address"):
        write_addresses(tmp_path / "w.json", {"http://x.y.svc:80": "http://10.0.0.1:80"})
    assert not (tmp_path / "w.json").exists()


def test_file_is_read_again_only_when_it_changes_and_a_bad_edit_keeps_the_last_good_mapping(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "probe-addresses.json"
    origin = "http://everything.tools.svc.cluster.local:3001"
    write_addresses(path, {origin: "http://127.0.0.1:4000"})
    source = addresses_from_env({ENV_VAR: f"@{path}"})
    assert isinstance(source, AddressFile) and source.reloads == 1
    for _ in range(100):  # a stat per use, nothing parsed while the file stays the same
        assert source.resolve(f"{origin}/mcp") == "http://127.0.0.1:4000/mcp"
    assert source.reloads == 1

    write_addresses(path, {origin: "http://127.0.0.1:5000"})
    assert source.resolve(f"{origin}/mcp") == "http://127.0.0.1:5000/mcp"
    assert source.reloads == 2

    # an edit in place (same inode) with an older mtime is still seen: size and mtime both count
    text = json.dumps({origin: "http://127.0.0.1:6000", "http://a.b.svc:1": "http://127.0.0.1:1"})
    path.write_text(text)
    os.utime(path, ns=(1, 1))
    assert source.resolve(f"{origin}/mcp") == "http://127.0.0.1:6000/mcp"

    with caplog.at_level(logging.WARNING, logger="reconciler.probe"):
        path.write_text("{half a file")
        assert source.resolve(f"{origin}/mcp") == "http://127.0.0.1:6000/mcp"
        assert source.resolve(f"{origin}/mcp") == "http://127.0.0.1:6000/mcp"
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 1 and str(path) in warnings[0] and "keeping the last good mapping" in warnings[0]

    path.unlink()
    assert source.resolve(f"{origin}/mcp") is None
    write_addresses(path, {origin: "http://127.0.0.1:7000"})
    assert source.resolve(f"{origin}/mcp") == "http://127.0.0.1:7000/mcp"


def test_a_service_with_a_file_that_maps_nothing_yet_still_probes_later(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    write_addresses(path, {})
    probes = service_from_env({ENV_VAR: f"@{path}"})
    assert probes is not None and not probes.enabled
    write_addresses(path, {"http://x.y.svc.cluster.local:80": "http://127.0.0.1:4000"})
    assert probes.enabled and probes.address("http://x.y.svc:80/mcp") == "http://127.0.0.1:4000/mcp"


def test_cluster_down_stops_standins_left_by_a_killed_up(tmp_path: Path) -> None:
    """`reconciler up` keeps its stand-ins under <state dir>/standins; when up was killed before it could
    stop them, `reconciler cluster down` stops them (and nothing outside that directory)."""
    from reconciler.devcluster import LocalCluster
    from reconciler.devcluster.agents import start_a2a_agent
    from reconciler.devcluster.process import alive

    state = tmp_path / "state"
    left = start_a2a_agent(state / "standins" / "logs")
    elsewhere = start_a2a_agent(tmp_path / "elsewhere")
    try:
        said: list[str] = []
        LocalCluster(state).down(progress=said.append)
        assert not alive(left.pid)
        assert said == [f"stopping stand-in pid {left.pid}"]
        assert alive(elsewhere.pid)
    finally:
        left.stop()
        elsewhere.stop()
