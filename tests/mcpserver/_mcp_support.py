"""Helpers for the MCP server tests: an environment repository on a real bare remote (the promotion
tests' three environments, with ``mcp.allow`` on staging and a Secret in the base), reconciler's MCP
server started on 127.0.0.1 from a thread, and the official SDK client in either protocol era."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "promote"))

from _promote_support import Remote, git, make_remote, three_envs

from reconciler.mcpserver.access import Access, TokensFile
from reconciler.mcpserver.server import RunningServer, ToolServer, start_http_thread
from reconciler.mcpserver.tools import Backend
from reconciler.promote.records import Outcome, OutcomeRecord, record_outcome
from reconciler.source.gitops import GitWriter

__all__ = ["Remote", "git"]

OPS_TOKEN = "ops-token-0123456789abcdef"
READER_TOKEN = "reader-token-0123456789abcdef"
BUSY_TOKEN = "busy-token-0123456789abcdef"

SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: model-key
stringData:
  apiKey: do-not-show-me
data:
  other: c2VjcmV0
"""


def repo_files(staging_allow: str = "[proposePromotion, proposeRollback, requestSync]") -> dict[str, str]:
    """The promotion tests' three environments; staging allows the write tools ``staging_allow``."""
    files = three_envs()
    files["envs/staging.yaml"] += f"mcp: {{allow: {staging_allow}}}\n"
    files["overlays/base/kustomization.yaml"] = "resources:\n- deployment.yaml\n- secret.yaml\n"
    files["overlays/base/secret.yaml"] = SECRET
    return files


def make_repo(root: Path) -> Remote:
    """The repository, with dev's head recorded healthy (so it can be promoted)."""
    remote = make_remote(root, repo_files())
    w = GitWriter(str(remote.bare), "main", root.parent / f"{root.name}-setup-cache", backoff=0.01)
    w.sync()
    head = remote.head()
    record_outcome(w, head, OutcomeRecord(environment="dev", outcome=Outcome.HEALTHY, revision=head))
    w.close()
    return remote


def tokens() -> TokensFile:
    """Three callers: ``ops`` (every write tool), ``reader`` (none), ``busy`` (1 call/s, burst 5)."""
    return TokensFile.model_validate(
        {
            "callers": [
                {"identity": "ops", "token": OPS_TOKEN, "allow": ["proposePromotion", "proposeRollback"]},
                {"identity": "reader", "token": READER_TOKEN},
                {"identity": "busy", "token": BUSY_TOKEN, "ratePerSecond": 1, "burst": 5},
            ]
        }
    )


def start(
    remote: Remote | None,
    cache: Path,
    *,
    access: Access | None = None,
    nats_url: str | None = None,
    kubeconfig: Path | None = None,
) -> RunningServer:
    """reconciler's MCP server on a free 127.0.0.1 port, serving from a thread."""
    backend = Backend(
        repo=str(remote.bare) if remote else None,
        cache_dir=cache,
        nats_url=nats_url,
        kubeconfig=kubeconfig,
    )
    return start_http_thread(ToolServer(backend, access or Access(tokens=tokens())), "127.0.0.1", 0)


@asynccontextmanager
async def client(url: str, token: str | None = OPS_TOKEN, mode: str = "auto") -> AsyncIterator[Client]:
    """The SDK client (``mode``: ``auto`` negotiates 2026-07-28, ``legacy`` the initialize handshake)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with (
        httpx.AsyncClient(headers=headers, timeout=60) as http,
        Client(streamable_http_client(url, http_client=http), mode=mode) as c,  # type: ignore[arg-type]
    ):
        yield c


def structured(result: Any) -> dict[str, Any]:
    """The structured content of a successful tool result."""
    assert not result.is_error, result.content
    assert isinstance(result.structured_content, dict)
    return result.structured_content
