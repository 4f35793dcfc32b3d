"""reconciler's MCP server on the real session cluster and NATS: environments with applied revision, sync
state and verdict (the same answer as `reconciler status -o json`), per-object health, a diff against a
Git ref, drift after a live edit, protocol probes and tool grants, image policies, and requestSync
publishing the reconcile request and the call event on the bus."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from _mcp_support import OPS_TOKEN, Remote, client, make_remote, repo_files, start, structured
from mcp.shared.exceptions import MCPError
from typer.testing import CliRunner

from reconciler.cluster.client import KubeClient
from reconciler.mcpserver.access import Access, TokensFile
from reconciler.mcpserver.server import RunningServer
from reconciler.model import ObjectRef
from reconciler.reconcile import PassContext, run_pass
from reconciler.source import GitSource

pytestmark = pytest.mark.integration


@pytest.fixture
def env_name() -> str:
    return f"mcp-{uuid.uuid4().hex[:6]}"


@pytest.fixture
def remote(tmp_path: Path, namespace: str, env_name: str) -> Remote:
    files = repo_files(staging_allow="[requestSync]")
    dev = files.pop("envs/dev.yaml").replace("agents-dev", namespace)
    dev += "mcp: {allow: [requestSync, suspendEnvironment, resumeEnvironment]}\n"
    dev += "imagePolicies:\n- {name: clock, image: ghcr.io/acme/clock-mcp, "
    dev += "policy: {semver: {range: '>=0.1.0'}}}\n"
    files[f"envs/{env_name}.yaml"] = dev.replace("overlays/dev", f"overlays/{env_name}")
    files[f"overlays/{env_name}/kustomization.yaml"] = files.pop("overlays/dev/kustomization.yaml")
    return make_remote(tmp_path / "repo", files)


@pytest.fixture
def applied(remote: Remote, kube: KubeClient, tmp_path: Path, env_name: str) -> Iterator[str]:
    """One pass of the environment; its inventory deleted afterwards."""
    ctx = PassContext(source=GitSource(str(remote.bare), "main", tmp_path / "pass-cache"), client=kube)
    result = run_pass(ctx, env_name, trigger="test", with_health=False)
    assert result.ok, result.error
    yield result.revision
    from reconciler.cluster.inventory import NAMESPACE

    items, _ = kube.list(
        "", "v1", "ConfigMap", namespace=NAMESPACE, label_selector="reconciler.dev/environment"
    )
    for item in items:
        if (item["metadata"].get("labels") or {}).get("reconciler.dev/environment") == env_name:
            kube.delete(ObjectRef(kind="ConfigMap", namespace=NAMESPACE, name=item["metadata"]["name"]))


@pytest.fixture
def server(remote: Remote, tmp_path: Path, kubeconfig: Path, nats_url: str) -> Iterator[RunningServer]:
    callers = TokensFile.model_validate(
        {
            "callers": [
                {
                    "identity": "ops",
                    "token": OPS_TOKEN,
                    "allow": ["requestSync", "suspendEnvironment", "resumeEnvironment"],
                }
            ]
        }
    )
    srv = start(
        remote,
        tmp_path / "mcp-cache",
        access=Access(tokens=callers),
        nats_url=nats_url,
        kubeconfig=kubeconfig,
    )
    yield srv
    srv.stop()


@pytest.mark.parametrize("mode", ["auto", "legacy"])
async def test_environments_health_diff_and_drift(
    server: RunningServer,
    remote: Remote,
    applied: str,
    env_name: str,
    namespace: str,
    kube: KubeClient,
    kubeconfig: Path,
    tmp_path: Path,
    mode: str,
) -> None:
    from reconciler.cli import app

    async with client(server.url, mode=mode) as c:
        envs = structured(await c.call_tool("listEnvironments", {"environments": [env_name]}))
        (summary,) = envs["environments"]
        assert summary["name"] == env_name and summary["revision"] == applied and summary["sync"] == "Synced"
        assert summary["health"] and summary["verdict"] and summary["objects"] == 2
        # the same answer as `reconciler status ENV --repo R -o json` in a new process (no checked_at race:
        # no probes here)
        res = CliRunner().invoke(
            app,
            ["status", env_name, "--repo", str(remote.bare), "--kubeconfig", str(kubeconfig), "-o", "json"],
        )
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout) == envs["environments"]

        health = structured(await c.call_tool("getObjectHealth", {"environment": env_name}))
        objects = {o["object"]: o for o in health["objects"]}
        assert set(objects) == {f"Deployment/{namespace}/clock-mcp", f"Secret/{namespace}/model-key"}
        assert all(o["state"] and o["reason"] for o in objects.values()), objects

        drift = structured(await c.call_tool("getDrift", {"environment": env_name}))
        assert drift["ref"] == applied and not drift["differs"]
        kube.apply(
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "clock-mcp", "namespace": namespace},
                "spec": {"replicas": 3},
            },
            ObjectRef(group="apps", kind="Deployment", namespace=namespace, name="clock-mcp"),
            field_manager="someone-else",
            force=True,
        )
        drift = structured(await c.call_tool("getDrift", {"environment": env_name}))
        assert drift["differs"], drift
        entry = drift["change"]["entries"][0]
        assert entry["object"] == f"Deployment/{namespace}/clock-mcp" and "replicas" in entry["diff"]

        remote.write(
            f"overlays/{env_name}/kustomization.yaml",
            remote.read(f"overlays/{env_name}/kustomization.yaml").replace("0.2.0", "0.3.0"),
        )
        new_head = remote.commit("clock 0.3.0")
        diff = structured(await c.call_tool("diffEnvironment", {"environment": env_name, "ref": new_head}))
        assert diff["differs"] and any("0.3.0" in e["diff"] for e in diff["change"]["entries"])
        res = CliRunner().invoke(
            app,
            [
                *["diff", env_name, "--repo", str(remote.bare), "--ref", new_head[:12]],
                *["--kubeconfig", str(kubeconfig), "-o", "json"],
            ],
        )
        assert res.exit_code == 0, res.output
        assert json.loads(res.stdout)["entries"] == diff["change"]["entries"]
        with pytest.raises(MCPError) as err:
            await c.call_tool("diffEnvironment", {"environment": env_name, "ref": "v9.9.9"})
        assert err.value.code == -32602 and "'v9.9.9' does not exist" in err.value.message
        with pytest.raises(MCPError) as err:
            await c.call_tool("getObjectHealth", {"environment": "nowhere"})
        assert err.value.code == -32602 and "unknown environment 'nowhere'" in err.value.message


async def test_request_sync_protocols_and_image_policies(
    server: RunningServer, applied: str, env_name: str, namespace: str, nats_url: str
) -> None:
    import nats

    from reconciler.bus import Bus, mcp_call_subject, reconcile_request_subject

    bus = Bus(nats_url, name="test")
    await bus.connect()  # the streams exist before anything is published
    await bus.ensure_streams()
    await bus.close()
    nc = await nats.connect(nats_url)
    got: dict[str, list[bytes]] = {}

    async def seen(msg: nats.aio.msg.Msg) -> None:
        got.setdefault(msg.subject, []).append(msg.data)

    await nc.subscribe(reconcile_request_subject(env_name), cb=seen)
    await nc.subscribe(mcp_call_subject(env_name), cb=seen)
    await nc.flush()  # the server has the subscriptions before anything is published
    try:
        async with client(server.url) as c:
            answer = structured(await c.call_tool("requestSync", {"environment": env_name}))
            assert answer["ok"] and answer["caller"] == "ops" and "stream sequence" in answer["message"]
            protocols = structured(await c.call_tool("getProtocols", {"environment": env_name}))
            assert protocols["grants"] == []  # no Agent in this environment
            assert protocols["report"]["items"] == []
            policies = structured(await c.call_tool("getImagePolicies", {"environment": env_name}))
            (policy,) = policies["policies"]
            assert policy["policy"] == "clock" and policy["in_git"][0].startswith(
                "ghcr.io/acme/clock-mcp:0.2.0@"
            )
            assert policy["latest_seen"] is None and "no pushed version" in policy["note"]
        for _ in range(50):
            if len(got) == 2:
                break
            await asyncio.sleep(0.1)
    finally:
        await nc.close()
    assert got[reconcile_request_subject(env_name)] == [b"{}"]
    (event,) = got[mcp_call_subject(env_name)]
    record = json.loads(event)
    assert (
        record["caller"] == "ops"
        and record["tool"] == "requestSync"
        and record["arguments"] == {"environment": env_name}
    )
    assert namespace and applied


async def test_suspend_and_resume_through_the_control_bucket(
    server: RunningServer, env_name: str, nats_url: str, tmp_path: Path
) -> None:
    """suspendEnvironment / resumeEnvironment write the reconciler-control bucket every daemon replica
    reads before a pass; a forbidden environment is refused and nothing is written."""
    from reconciler.bus import Bus
    from reconciler.runtime.control import ControlStore, is_suspended

    async def state() -> object:
        bus = Bus(nats_url, name="test")
        await bus.connect()
        try:
            return await is_suspended(ControlStore(tmp_path / "control", bus), env_name)
        finally:
            await bus.close()

    async with client(server.url) as c:
        answer = structured(
            await c.call_tool("suspendEnvironment", {"environment": env_name, "reason": "maintenance"})
        )
        assert answer["ok"] and answer["caller"] == "ops"
        assert "suspended by mcp:ops" in answer["message"] and "maintenance" in answer["message"]
        suspended = await state()
        assert suspended is not None and getattr(suspended, "by", "") == "mcp:ops"
        # staging does not list suspendEnvironment in its mcp.allow: refused, nothing written
        with pytest.raises(MCPError) as err:
            await c.call_tool("suspendEnvironment", {"environment": "staging"})
        assert "suspendEnvironment is disabled for environment 'staging'" in err.value.message
        answer = structured(await c.call_tool("resumeEnvironment", {"environment": env_name}))
        assert answer["ok"] and "resumed" in answer["message"]
    assert await state() is None
