"""The write fence (reconciler/cluster/client.py WRITE_FENCE): a write made where the fence refuses is
never sent; reads are not fenced; the fence follows asyncio tasks into their worker threads."""

from __future__ import annotations

import asyncio
import contextvars
from pathlib import Path

import pytest

from reconciler.cluster.client import WRITE_FENCE, KubeClient
from reconciler.errors import FencedError, ServerError
from reconciler.runtime.shards import ShardMember

UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: kube-token}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: u}
current-context: nowhere
"""
CM = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x", "namespace": "d"}, "data": {}}
PATH = "/api/v1/namespaces/d/configmaps/x"


@pytest.fixture
def client(tmp_path: Path) -> KubeClient:
    path = tmp_path / "kubeconfig"
    path.write_text(UNREACHABLE_KUBECONFIG)
    return KubeClient(path, retry=None)


def _refuse() -> None:
    raise FencedError("environment/dev", "lease lost")


def test_a_fenced_write_is_never_sent_and_reads_are_not_fenced(client: KubeClient) -> None:
    ctx = contextvars.copy_context()
    ctx.run(WRITE_FENCE.set, _refuse)
    for method in ("POST", "PUT", "PATCH", "DELETE"):  # every write of apply/create/replace/delete
        with pytest.raises(FencedError):
            ctx.run(client.request, method, PATH, body=CM)
    assert not any(client.calls.values())  # nothing reached the wire, not even an attempt
    with pytest.raises(ServerError):  # a read goes out (and finds nobody at 127.0.0.1:9)
        ctx.run(client.request, "GET", PATH)
    with pytest.raises(ServerError):  # outside the fenced context writes go out
        client.request("PATCH", PATH, body=CM)
    assert client.calls["get"] == 1 and client.calls["patch"] == 1


async def test_the_fence_follows_a_task_into_its_threads(client: KubeClient) -> None:
    member = ShardMember("nats://127.0.0.1:9", "inst", "r0", lambda: ["dev"], ttl=4.0, period=1.0)

    async def worker() -> None:
        WRITE_FENCE.set(member.fence("dev"))  # as the daemon's worker of "dev" does
        with pytest.raises(FencedError, match="no longer holds the lease"):
            await asyncio.to_thread(client.request, "PATCH", PATH, body=CM)

    await asyncio.create_task(worker())
    assert WRITE_FENCE.get() is None  # the task's setting stays in the task
