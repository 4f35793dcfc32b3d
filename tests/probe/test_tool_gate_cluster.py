"""The tool-contract gate before an apply, on the real control plane and a real MCP server (the mcp-SDK
server on 127.0.0.1, reached through ``RECONCILER_PROBE_ADDRESSES``-style mapping): an Agent that starts
requiring a tool its (unchanged) server does not list is a Blocked pass that writes nothing; the probe's
verdict judges the RemoteMCPServer and the Agent's contract; ``toolContract: warn`` applies with a
warning; the server's Secret-held header is resolved from the cluster."""

from __future__ import annotations

import base64
from pathlib import Path

import pytest
from reconciler_testing import EnvRepo

from reconciler.cluster.client import KubeClient
from reconciler.devcluster.agents import ServerProcess
from reconciler.model import HealthState, ObjectRef, PassOutcome
from reconciler.probe.service import ProbeService
from reconciler.probe.targets import ProbeAddresses
from reconciler.reconcile import PassContext, run_pass
from reconciler.source import GitSource

pytestmark = pytest.mark.integration

AGENT = """\
apiVersion: kagent.dev/v1alpha2
kind: Agent
metadata: {{name: helpdesk}}
spec:
  type: Declarative
  description: answers questions
  declarative:
    modelConfig: default
    tools:
    - type: McpServer
      mcpServer: {{apiGroup: kagent.dev, kind: RemoteMCPServer, name: tools, toolNames: [{tools}]}}
"""


def _write(repo: EnvRepo, ns: str, tools: str, policy: str = "enforce") -> None:
    repo.write(
        "envs/dev.yaml",
        f"overlay: overlays/dev\nnamespace: {ns}\nsync: {{interval: 3600}}\n"
        f"health: {{noControllerAfter: 1, toolContract: {policy}}}\n",
    )
    repo.write("overlays/dev/kustomization.yaml", "resources:\n- remote.yaml\n- agent.yaml\n- token.yaml\n")
    repo.write(
        "overlays/dev/remote.yaml",
        "apiVersion: kagent.dev/v1alpha2\nkind: RemoteMCPServer\nmetadata: {name: tools}\n"
        "spec:\n  description: the tools\n"
        f"  url: http://tools.{ns}.svc.cluster.local:8000/mcp\n  protocol: STREAMABLE_HTTP\n"
        "  headersFrom:\n  - name: X-Tenant\n    valueFrom: {type: Secret, name: tools-token, key: tenant}\n",
    )
    tenant = base64.b64encode(b"acme").decode()
    repo.write(
        "overlays/dev/token.yaml",
        f"apiVersion: v1\nkind: Secret\nmetadata: {{name: tools-token}}\ndata: {{tenant: {tenant}}}\n",
    )
    repo.write("overlays/dev/agent.yaml", AGENT.format(tools=tools))


def test_an_agent_requiring_a_tool_its_server_lacks_is_blocked_before_any_write(
    env_repo: EnvRepo, kube: KubeClient, namespace: str, cache_dir: Path, sdk_server: ServerProcess
) -> None:
    probes = ProbeService(
        addresses=ProbeAddresses(
            addresses={
                f"http://tools.{namespace}.svc.cluster.local:8000": f"http://127.0.0.1:{sdk_server.port}"
            }
        )
    )
    ctx = PassContext(source=GitSource(str(env_repo.remote), "main", cache_dir), client=kube, probes=probes)
    assert probes.secrets is not None, "the pass context reads headersFrom Secrets from the cluster"
    agent = ObjectRef(
        group="kagent.dev", version="v1alpha2", kind="Agent", namespace=namespace, name="helpdesk"
    )
    _write(env_repo, namespace, "add, greet")
    env_repo.commit("helpdesk uses add and greet")

    first = run_pass(ctx, "dev")
    assert first.ok, first.error
    server = first.health[f"RemoteMCPServer/{namespace}/tools"]
    assert server.state is HealthState.HEALTHY, server.message
    assert "MCP probe of http://127.0.0.1:" in server.message and "2 tools" in server.message
    # the Agent: no kagent here and no card reachable; its contract holds, so nothing judged it healthy
    assert first.health[f"Agent/{namespace}/helpdesk"].state in (
        HealthState.PROGRESSING,
        HealthState.UNVERIFIED,
    )

    _write(env_repo, namespace, "add, greet, shout")
    env_repo.commit("helpdesk also wants shout")
    blocked = run_pass(ctx, "dev")
    assert blocked.outcome is PassOutcome.BLOCKED and not blocked.ok
    assert blocked.error == (
        f"tool contract: Agent {namespace}/helpdesk requires tool 'shout' of RemoteMCPServer "
        f"{namespace}/tools, which does not list it (2 tools listed)"
    )
    live = kube.get(agent) or {}
    names = live["spec"]["declarative"]["tools"][0]["mcpServer"]["toolNames"]
    assert names == ["add", "greet"], "a blocked pass writes nothing"

    _write(env_repo, namespace, "add, greet, shout", policy="warn")
    env_repo.commit("report only")
    warned = run_pass(ctx, "dev")
    assert warned.ok and warned.outcome is PassOutcome.SUCCEEDED, warned.error
    assert warned.warnings and "requires tool 'shout'" in warned.warnings[0]
    assert (kube.get(agent) or {})["spec"]["declarative"]["tools"][0]["mcpServer"]["toolNames"][-1] == "shout"
    h = warned.health[f"Agent/{namespace}/helpdesk"]
    assert h.state is HealthState.DEGRADED and "requires tool 'shout'" in h.message


def test_reconciler_check_runs_the_tool_contract_gate_on_a_branch(
    env_repo: EnvRepo,
    kube: KubeClient,
    namespace: str,
    cache_dir: Path,
    sdk_server: ServerProcess,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A branch whose Agent requires a tool its server does not list fails ``reconciler check`` with the
    tool contract named as the refusing layer (a guard of the dry-run pass), before anyone merges it."""
    import json
    import subprocess

    from reconciler.promote.check import check_change

    origin = f"http://tools.{namespace}.svc.cluster.local:8000"
    monkeypatch.setenv(
        "RECONCILER_PROBE_ADDRESSES", json.dumps({origin: f"http://127.0.0.1:{sdk_server.port}"})
    )
    _write(env_repo, namespace, "add, greet")
    env_repo.commit("helpdesk uses add and greet")
    ctx = PassContext(source=GitSource(str(env_repo.remote), "main", cache_dir), client=kube)
    assert run_pass(ctx, "dev").ok
    git = ["git", "-C", str(env_repo.work)]
    subprocess.run([*git, "checkout", "-q", "-b", "more-tools"], check=True)
    _write(env_repo, namespace, "add, greet, shout")
    subprocess.run([*git, "commit", "-qam", "helpdesk also wants shout"], check=True)
    subprocess.run([*git, "push", "-q", "origin", "more-tools"], check=True)
    report = check_change(str(env_repo.remote), "main", "more-tools", cache_dir / "check", client=kube)
    (dev,) = report.environments
    assert not dev.ok and dev.refused_by == "guard", dev
    assert dev.error.startswith("tool contract: ") and "shout" in dev.error, dev.error
