"""The tool-contract gate of a promotion, on a real bare remote and real MCP servers on 127.0.0.1: dev runs
the tools server's next version (the mcp-SDK server ``v2``: ``greet`` gone, ``add`` needs a new
parameter, ``shout`` new), staging the current one. Promoting dev → staging would break staging's
helpdesk Agent: refused before anything is committed. With ``toolContract: warn`` it is proposed, and the
tool it newly grants (through an empty ``toolNames``) is in the pull request's body, the trailers and the
history."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "promote"))

from _promote_support import DIGEST_A, DIGEST_B, git, make_remote

from reconciler.devcluster.agents import ServerProcess
from reconciler.probe.service import ProbeService
from reconciler.probe.targets import ProbeAddresses
from reconciler.promote.history import timeline
from reconciler.promote.promotion import ToolContractError, promote
from reconciler.reconcile import load_environments
from reconciler.source.gitops import GitWriter

TOOLS = "ghcr.io/acme/tools"

AGENTS = """\
apiVersion: kagent.dev/v1alpha2
kind: Agent
metadata: {name: helpdesk}
spec:
  type: Declarative
  declarative:
    modelConfig: default
    tools:
    - type: McpServer
      mcpServer: {apiGroup: kagent.dev, kind: RemoteMCPServer, name: tools, toolNames: [add, greet]}
---
apiVersion: kagent.dev/v1alpha2
kind: Agent
metadata: {name: greedy}
spec:
  type: Declarative
  declarative:
    modelConfig: default
    tools:
    - type: McpServer
      mcpServer: {apiGroup: kagent.dev, kind: RemoteMCPServer, name: tools}
"""

DEPLOYMENT = f"""\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: tools, labels: {{app.kubernetes.io/name: tools}}}}
spec:
  selector: {{matchLabels: {{app.kubernetes.io/name: tools}}}}
  template:
    metadata: {{labels: {{app.kubernetes.io/name: tools}}}}
    spec:
      containers:
      - {{name: server, image: "{TOOLS}:0.0.1"}}
"""


def _remote_server(ns: str) -> str:
    return (
        "apiVersion: kagent.dev/v1alpha2\nkind: RemoteMCPServer\nmetadata: {name: tools}\n"
        f"spec: {{url: 'http://tools.{ns}.svc.cluster.local:8000/mcp', protocol: STREAMABLE_HTTP}}\n"
    )


def _overlay(ns: str, tag: str, digest: str, extra: str = "") -> str:
    return (
        f"namespace: {ns}\nresources:\n- ../base\n- remote.yaml\n"
        f"images:\n- name: {TOOLS}\n  newTag: {tag}\n  digest: {digest}\n{extra}"
    )


DEV_ADAPTED = """\
patches:
- target: {kind: Agent, name: helpdesk}
  patch: |-
    - op: replace
      path: /spec/declarative/tools/0/mcpServer/toolNames
      value: [add, shout]
"""


def _files(staging_policy: str = "") -> dict[str, str]:
    health = f"health: {{toolContract: {staging_policy}}}\n" if staging_policy else ""
    return {
        "envs/dev.yaml": "overlay: overlays/dev\nnamespace: agents-dev\npromotion: {via: push}\n",
        "envs/staging.yaml": "overlay: overlays/staging\nnamespace: agents-staging\n"
        "promotion: {from: dev, via: pr, requireHealth: any}\n" + health,
        "overlays/base/kustomization.yaml": "resources:\n- deployment.yaml\n- agents.yaml\n",
        "overlays/base/deployment.yaml": DEPLOYMENT,
        "overlays/base/agents.yaml": AGENTS,
        "overlays/dev/kustomization.yaml": _overlay("agents-dev", "2.0.0", DIGEST_B, DEV_ADAPTED),
        "overlays/dev/remote.yaml": _remote_server("agents-dev"),
        "overlays/staging/kustomization.yaml": _overlay("agents-staging", "1.0.0", DIGEST_A),
        "overlays/staging/remote.yaml": _remote_server("agents-staging"),
    }


@pytest.fixture
def probes(sdk_server: ServerProcess, sdk_server_v2: ServerProcess) -> ProbeService:
    return ProbeService(
        addresses=ProbeAddresses(
            addresses={
                "http://tools.agents-dev.svc.cluster.local:8000": f"http://127.0.0.1:{sdk_server_v2.port}",
                "http://tools.agents-staging.svc.cluster.local:8000": f"http://127.0.0.1:{sdk_server.port}",
            }
        )
    )


def test_a_promotion_that_breaks_an_agent_is_refused_before_anything_is_committed(
    tmp_path: Path, probes: ProbeService
) -> None:
    remote = make_remote(tmp_path / "repo", _files())
    head = remote.head()
    w = GitWriter(str(remote.bare), "main", tmp_path / "cache", backoff=0.01)
    w.sync()
    with pytest.raises(ToolContractError) as caught:
        promote(w, load_environments(w.workdir), "dev", "staging", all_images=True, probes=probes)
    message = str(caught.value)
    assert message.startswith("promotion dev → staging blocked by the tool contract: ")
    assert (
        "Agent agents-staging/helpdesk requires tool 'greet' of RemoteMCPServer agents-staging/tools, "
        "which does not list it" in message
    )
    assert (
        "tool 'add' of RemoteMCPServer agents-staging/tools, whose input schema changed incompatibly: "
        in (message)
    )
    assert "new required parameter 'precision'" in message
    # nothing committed, pushed or left in the clone
    assert remote.head() == head
    assert git(remote.bare, "branch", "--list", "promote/*") == ""
    assert git(w.workdir, "status", "--porcelain") == ""
    # without probes the contract is not checked, and the promotion says so rather than passing silently
    w.sync()
    unchecked = promote(w, load_environments(w.workdir), "dev", "staging", all_images=True, mode="pr")
    assert unchecked.plan.tool_contract == "not checked: no protocol probe reaches the MCP servers"
    assert any("tool contract not checked" in x for x in unchecked.plan.warnings)
    w.close()


def test_warn_proposes_it_and_new_grants_reach_the_body_trailers_and_history(
    tmp_path: Path, probes: ProbeService
) -> None:
    remote = make_remote(tmp_path / "repo", _files(staging_policy="warn"))
    w = GitWriter(str(remote.bare), "main", tmp_path / "cache", backoff=0.01)
    w.sync()
    envs = load_environments(w.workdir)
    result = promote(w, envs, "dev", "staging", all_images=True, mode="pr", probes=probes)
    assert result.branch and result.commit
    grant = (
        "agents-staging/greedy <- RemoteMCPServer agents-staging/tools: shout "
        "(every tool of the server: toolNames is empty)"
    )
    assert result.plan.tool_grants == [grant]
    assert any(
        x.startswith("promotion dev → staging blocked by the tool contract") for x in result.plan.warnings
    )
    body = git(remote.bare, "log", "-1", "--format=%B", result.commit)
    assert f"New tool grants:\n- {grant}" in body
    assert f"Tool-Grant: {grant}" in body
    remote.merge(result.branch)
    w.sync()
    entries = timeline(w, envs["staging"])
    promoted = next(e for e in entries if e.kind == "promotion")
    assert promoted.tool_grants == [grant]
    w.close()


def test_image_automation_does_not_commit_a_version_that_breaks_an_agent_where_it_runs(
    tmp_path: Path, probes: ProbeService
) -> None:
    """Image automation for staging: 2.0.0 already runs in dev, where its server lacks a tool staging's
    helpdesk requires: not committed (``blocked``, the reason names agent, server and tool). 3.0.0 runs
    nowhere yet: committed (the apply and health gates judge it once it runs)."""
    from reconciler.promote.images import ImageAutomation, UpdateOutcome
    from webhooks.events import ImagePushed

    files = _files()
    files["envs/staging.yaml"] += (
        "imagePolicies:\n- name: tools\n  image: ghcr.io/acme/tools\n"
        "  policy:\n    semver: {range: '>=0.0.0'}\n"
    )
    files["envs/staging.yaml"] = files["envs/staging.yaml"].replace("via: pr", "via: push")
    remote = make_remote(tmp_path / "repo", files)
    head = remote.head()
    auto = ImageAutomation(
        GitWriter(str(remote.bare), "main", tmp_path / "cache", backoff=0.01),
        load_environments,
        probes=probes,
    )

    def push(tag: str) -> ImagePushed:
        return ImagePushed(
            registry="ghcr.io", repository="acme/tools", tag=tag, source="test/ghcr", delivery_id=f"d-{tag}"
        )

    [blocked] = auto.handle(push("2.0.0")).updates
    assert blocked.outcome is UpdateOutcome.BLOCKED, blocked
    assert blocked.reason.startswith("tool contract (the version runs in dev): ")
    assert "Agent agents-staging/helpdesk requires tool 'greet' of RemoteMCPServer agents-staging/tools" in (
        blocked.reason
    )
    assert remote.head() == head
    [pushed] = auto.handle(push("3.0.0")).updates
    assert pushed.outcome is UpdateOutcome.PUSHED and remote.head() != head
