"""Real protocol health on the local cluster: `reconciler up`'s loopback stand-ins follow the cluster's
Deployments of docker.io/mcp/everything (one real server-everything per pinned version) and its kagent
Agents (the a2a-sdk echo agent), and a pass whose PassContext reads RECONCILER_PROBE_ADDRESSES=@file judges
an example-like environment by speaking MCP and A2A. Moving the Deployment to 2026.8.31 (which renamed the
tool `add`) moves the Service's origin to that version's server: the Agent that requires `add` turns
Degraded, and the next pass is Blocked by the tool contract."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from reconciler_testing import EnvRepo

from reconciler.cluster.client import KubeClient
from reconciler.cluster.inventory import InventoryStore
from reconciler.devcluster.standins import StandIns
from reconciler.model import HealthState, ObjectRef
from reconciler.probe.service import service_from_env
from reconciler.probe.targets import ENV_VAR
from reconciler.reconcile import PassContext, assess_health, run_pass
from reconciler.source import GitSource

OLD, NEW = "2025.9.25", "2026.8.31"

OVERLAY = """\
resources:
- everything.yaml
- helpdesk.yaml
images:
- name: docker.io/mcp/everything
  newTag: {tag}
"""
EVERYTHING = """\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: everything
spec:
  replicas: 1
  selector:
    matchLabels: {{app.kubernetes.io/name: everything}}
  template:
    metadata:
      labels: {{app.kubernetes.io/name: everything}}
    spec:
      containers:
      - name: server
        image: docker.io/mcp/everything:2025.9.25
        args: [streamableHttp]
        ports:
        - {{name: mcp, containerPort: 3001}}
---
apiVersion: v1
kind: Service
metadata:
  name: everything
spec:
  selector: {{app.kubernetes.io/name: everything}}
  ports:
  - {{name: mcp, port: 3001, targetPort: mcp, appProtocol: agentgateway.dev/mcp}}
---
apiVersion: kagent.dev/v1alpha2
kind: RemoteMCPServer
metadata:
  name: everything
spec:
  description: the MCP reference server
  protocol: STREAMABLE_HTTP
  url: http://everything.{ns}.svc.cluster.local:3001/mcp
"""
HELPDESK = """\
apiVersion: kagent.dev/v1alpha2
kind: Agent
metadata:
  name: helpdesk
spec:
  type: Declarative
  description: helps
  declarative:
    modelConfig: gpt-mini
    systemMessage: You help.
    tools:
    - type: McpServer
      mcpServer: {apiGroup: kagent.dev, kind: RemoteMCPServer, name: everything, toolNames: [echo, add]}
"""


def _until(what: str, check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.1)


@pytest.fixture
def standins(kubeconfig: Path, tmp_path: Path) -> Iterator[StandIns]:
    running = StandIns(kubeconfig, tmp_path / "standins")
    running.start()
    try:
        yield running
    finally:
        running.stop()


def test_a_pass_judges_mcp_servers_and_agents_by_probe_through_the_standins(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path, standins: StandIns
) -> None:
    env = f"probe-{uuid.uuid4().hex[:6]}"
    env_repo.write(
        f"envs/{env}.yaml",
        f"overlay: overlays/{env}\nnamespace: {namespace}\nhealth: {{noControllerAfter: 5}}\n",
    )
    env_repo.write(f"overlays/{env}/kustomization.yaml", OVERLAY.format(tag=OLD))
    env_repo.write(f"overlays/{env}/everything.yaml", EVERYTHING.format(ns=namespace))
    env_repo.write(f"overlays/{env}/helpdesk.yaml", HELPDESK)
    env_repo.commit(f"{env}: the reference server and an agent that uses it")

    probes = service_from_env({ENV_VAR: standins.setting})
    assert probes is not None
    ctx = PassContext(source=GitSource(str(env_repo.remote), "main", cache_dir), client=kube, probes=probes)
    origin = f"http://everything.{namespace}.svc.cluster.local:3001"
    rmcps = ObjectRef(
        group="kagent.dev", version="v1alpha2", kind="RemoteMCPServer", namespace=namespace, name="everything"
    )
    helpdesk = ObjectRef(
        group="kagent.dev", version="v1alpha2", kind="Agent", namespace=namespace, name="helpdesk"
    )
    try:
        first = run_pass(ctx, env)
        assert first.ok, first.error
        served = _until("the stand-in for the Service", lambda: standins.serving(origin))
        assert served.server == f"server-everything {OLD}"
        assert standins.serving(f"http://helpdesk.{namespace}.svc.cluster.local:8080") is not None
        health = assess_health(kube, [rmcps, helpdesk], probe=probes)
        server, agent = health[str(rmcps)], health[str(helpdesk)]
        assert server.state is HealthState.HEALTHY, server.message
        assert server.message.startswith(f"no controller status; MCP probe of {served.target}/mcp: handshake")
        assert agent.state is HealthState.HEALTHY, agent.message
        assert agent.message.startswith("no controller status; A2A card"), agent.message

        # a new server version that renamed `add`: the Service's origin moves to that version's server
        env_repo.write(f"overlays/{env}/kustomization.yaml", OVERLAY.format(tag=NEW))
        env_repo.commit(f"{env}: server-everything {NEW}")
        moved = run_pass(ctx, env)  # the server changes with this revision: the gate leaves it to health
        assert moved.ok, moved.error
        served = _until(
            f"the stand-in on {NEW}",
            lambda: (s := standins.serving(origin)) is not None and s.server.endswith(NEW) and s,
        )
        assert served.target == standins.server_origins()[NEW]
        agent = assess_health(kube, [helpdesk], probe=probes)[str(helpdesk)]
        assert agent.state is HealthState.DEGRADED, agent.message
        assert f"requires tool 'add' of RemoteMCPServer {namespace}/everything" in agent.message

        # the next pass holds the contract against the running server: Blocked before any write
        blocked = run_pass(ctx, env)
        assert blocked.blocked and not blocked.ok, blocked
        assert "tool contract" in blocked.error and "'add'" in blocked.error, blocked.error
    finally:
        InventoryStore(kube, source=ctx.source.url).delete(env)
