"""The daemon's HTTP server with an in-memory stand-in daemon (a real Git repository, an unreachable API
server): health, readiness, metrics, the status pages and their JSON, HTML escaping."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer
from prometheus_client.parser import text_string_to_metric_families
from reconciler_testing import EnvRepo

from reconciler.model import Action, ChangeSet, Environment, HealthState, HealthStatus, ObjectRef, PassResult
from reconciler.observe import Metrics, Observer
from reconciler.observe.status import NOT_PROBED, AgentCardStatus, EnvSummary, ProtocolReport, ProtocolStatus
from reconciler.runtime.http import build_app, git_log_timeline
from reconciler.settings import DaemonSettings
from reconciler.source import GitSource

UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: nowhere
  cluster: {server: "https://127.0.0.1:9", insecure-skip-tls-verify: true}
users:
- name: u
  user: {token: test-token}
contexts:
- name: nowhere
  context: {cluster: nowhere, user: u}
current-context: nowhere
"""
EVIL = '<script>alert("x")</script>'


@dataclass
class FakeState:
    name: str
    env: Environment | None = None
    running: bool = False
    passes: int = 0
    last: PassResult | None = None
    protocols: ProtocolReport | None = None  # the daemon's last reading of the probe cache

    earlier: PassResult | None = None  # a successful pass before ``last``

    @property
    def applied(self) -> PassResult | None:
        """The daemon's last successful pass: the last pass when it succeeded, else ``earlier``."""
        return self.last if self.last is not None and self.last.ok else self.earlier


class FakeBus:
    connected = False
    js: Any = None


@dataclass
class FakeDaemon:
    settings: DaemonSettings
    source: GitSource
    envs: dict[str, FakeState] = field(default_factory=dict)
    drift_events: list[dict[str, Any]] = field(default_factory=list)
    bus: FakeBus | None = field(default_factory=FakeBus)
    client: Any = None
    on_result: Any = None
    on_drift: Any = None


def _result(sha: str, error: str = "") -> PassResult:
    changes = ChangeSet()
    dep = ObjectRef(group="apps", kind="Deployment", namespace="agents", name="clock")
    changes.add(dep, Action.CREATED)
    changes.add(ObjectRef(kind="ConfigMap", namespace="agents", name=EVIL), Action.UNCHANGED)
    return PassResult(
        environment="dev",
        revision=f"main@sha1:{sha}",
        ok=not error,
        error=error,
        changes=changes,
        health={str(dep): HealthStatus(state=HealthState.DEGRADED, message="0/1 available")},
        started_at=time.time() - 5,
        duration=1.25,
        trigger="poll",
    )


@pytest.fixture
async def served(
    env_repo: EnvRepo, tmp_path: Path
) -> AsyncIterator[tuple[TestClient[Any, Any], FakeDaemon, list[str]]]:
    env_repo.write("envs/dev.yaml", "overlay: overlays/dev\nnamespace: agents\n")
    env_repo.write("overlays/dev/kustomization.yaml", "resources: []\n")
    first = env_repo.commit("dev: start")
    env_repo.write("overlays/dev/kustomization.yaml", "resources: []\nnamePrefix: a-\n")
    second = env_repo.commit(
        "promote(dev): clock from staging @ 1a2b3c4\n\nPromotion-From: staging\nPromotion-To: dev\n"
    )
    env_repo.write("README.md", "unrelated\n")
    env_repo.commit("docs only")
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
    settings = DaemonSettings(
        repo=str(env_repo.remote),
        kubeconfig=kubeconfig,
        nats_url="nats://127.0.0.1:9",
        cache_dir=tmp_path / "c",
    )
    source = GitSource(str(env_repo.remote), "main", settings.cache_dir)
    source.fetch()
    daemon = FakeDaemon(settings=settings, source=source)
    daemon.envs["dev"] = FakeState(name="dev", env=Environment(name="dev", overlay="overlays/dev"), passes=1)
    daemon.envs["prod"] = FakeState(name="prod")
    metrics = Metrics()
    observer = Observer(metrics)
    observer.attach(daemon)
    result = _result(first, error=EVIL)
    daemon.envs["dev"].last = result
    daemon.on_result(result)
    drift = {
        "environment": "dev",
        "object": "Deployment/agents/clock",
        "paths": ["spec.template.spec.containers[name=server].image"],
        "mode": "correct",
        "managers": ["kubectl-edit"],
        "detected_at": time.time(),
        "corrected": True,
    }
    secret_drift = {
        "environment": "dev",
        "object": "Secret/agents/api-key",
        "paths": ["data.token"],
        "fields": [{"live": "data.token", "git": "stringData.token"}],
        "mode": "warn",
        "managers": ["kubectl-edit"],
        "detected_at": time.time(),
        "corrected": False,
    }
    for event in (drift, secret_drift):
        daemon.drift_events.append(event)
        daemon.on_drift(event)
    # health_ttl=0: the pages show the health the last pass read (the live reading is tested below)
    client = TestClient(TestServer(build_app(daemon, metrics=metrics, health_ttl=0)))
    await client.start_server()
    try:
        yield client, daemon, [first, second]
    finally:
        await client.close()


async def test_healthz_and_readiness_name_each_failed_check(served: Any) -> None:
    client, _daemon, _ = served
    assert (await client.get("/healthz")).status == 200
    resp = await client.get("/readyz")
    assert resp.status == 503
    body = await resp.json()
    assert body["ready"] is False
    checks = body["checks"]
    assert checks["git"]["ok"] is True
    assert checks["kubernetes"]["ok"] is False and "127.0.0.1:9" in checks["kubernetes"]["detail"]
    assert checks["nats"] == {"ok": False, "detail": "nats://127.0.0.1:9: not connected"}
    assert checks["leadership"]["ok"] is True


async def test_readiness_waits_for_a_leadership_decision(served: Any) -> None:
    client, daemon, _ = served
    daemon.is_leader = None
    body = await (await client.get("/readyz")).json()
    assert body["checks"]["leadership"]["ok"] is False


async def test_metrics_serve_what_the_hooks_observed(served: Any) -> None:
    client, _, _ = served
    resp = await client.get("/metrics")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for f in text_string_to_metric_families(await resp.text())
        for s in f.samples
    }
    assert samples[("reconciler_reconcile_total", (("environment", "dev"), ("result", "failure")))] == 1
    assert samples[("reconciler_drift_corrected_total", (("environment", "dev"),))] == 1
    om = await client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert om.headers["Content-Type"].startswith("application/openmetrics-text")
    assert (await om.text()).rstrip().endswith("# EOF")


async def test_overview_lists_environments_escaped(served: Any) -> None:
    client, _, (first, _) = served
    resp = await client.get("/")
    assert resp.status == 200 and resp.content_type == "text/html"
    html = await resp.text()
    assert '<meta http-equiv="refresh" content="5">' in html
    assert 'data-env="dev"' in html and 'data-env="prod"' in html
    assert f"main@{first[:7]}" in html
    assert ">Failed<" in html and ">NotReconciled<" in html
    assert EVIL not in html and "&lt;script&gt;" in html
    status = await (await client.get("/api/status")).json()
    rows = [EnvSummary.model_validate(r) for r in status]
    assert [(r.name, r.sync.value) for r in rows] == [("dev", "Failed"), ("prod", "NotReconciled")]
    assert rows[0].health == "Degraded" and rows[0].health_counts == {"Degraded": 1}


async def test_environment_page_objects_drift_timeline_and_failed_dry_run(served: Any) -> None:
    client, _, (first, second) = served
    resp = await client.get("/env/dev")
    assert resp.status == 200
    html = await resp.text()
    assert 'data-object="Deployment/agents/clock"' in html and "0/1 available" in html
    assert 'data-drift-object="Deployment/agents/clock"' in html and "kubectl-edit" in html
    assert "corrected" in html
    # a write-only field: the live path and the Git path it came from
    assert "data.token (from stringData.token)" in html
    # the dry-run could not reach the API server: the page says so instead of failing
    assert "Dry-run of" in html and "failed" in html
    # timeline: the two commits touching the environment, newest first; README-only commit left out
    assert html.index(f'data-sha="{second}"') < html.index(f'data-sha="{first}"')
    assert "docs only" not in html
    assert "from staging" in html and "k-promotion" in html
    detail = await (await client.get("/api/env/dev")).json()
    assert [(c["sha"], c["kind"], c["applied"], c["pending"]) for c in detail["timeline"]] == [
        (second, "promotion", False, False),
        (first, "change", False, False),
    ]
    assert EVIL not in html


async def test_protocol_health_on_the_pages_and_in_the_api(served: Any) -> None:
    client, daemon, _ = served
    checked = time.time() - 4
    daemon.envs["dev"].protocols = ProtocolReport(
        probed=True,
        targets=2,
        items=[
            ProtocolStatus(
                object="RemoteMCPServer tools/docs",
                protocol="mcp",
                state="Healthy",
                url="http://docs.tools.svc.cluster.local:8080/mcp",
                transport="streamable-http",
                tools=3,
                protocol_version="2025-11-25",
                server="docs 1.2.0",
                checked_at=checked,
            ),
            ProtocolStatus(
                object=f"Agent agents/{EVIL}",
                protocol="a2a",
                state="Degraded",
                reason="missing skills: translate",
                card=AgentCardStatus(name="helper", version="0.3.0", skills=1, missing_skills=["translate"]),
            ),
        ],
    )
    daemon.envs["prod"].protocols = ProtocolReport(probed=False, note=NOT_PROBED, targets=1)
    rows = {r["name"]: r for r in await (await client.get("/api/status")).json()}
    assert [(p["object"], p["state"], p["tools"]) for p in rows["dev"]["protocols"]] == [
        ("RemoteMCPServer tools/docs", "Healthy", 3),
        (f"Agent agents/{EVIL}", "Degraded", None),
    ]
    assert rows["dev"]["protocols"][1]["card"]["missing_skills"] == ["translate"]
    assert (rows["prod"]["protocols"], rows["prod"]["protocols_note"]) == ([], NOT_PROBED)

    index = await (await client.get("/")).text()
    assert "protocols: 1 Degraded, 1 Healthy" in index
    assert f"1 MCP server/agent {NOT_PROBED}" in index

    before = time.time()
    html = await (await client.get("/env/dev")).text()
    after = time.time()
    table = html[html.index('<table id="protocols">') :]
    table = table[: table.index("</table>")]
    assert 'data-protocol-object="RemoteMCPServer tools/docs"' in table
    assert "3 tools, MCP 2025-11-25, server docs 1.2.0" in table
    # the probe's age as the page rendered it: 4 s when answered at once, more on a loaded machine, never
    # more than the seconds that had passed since the probe when the answer arrived
    shown = re.search(r'<span title="[^"]*">([^<]*)</span>', table[table.index("server docs 1.2.0") :])
    assert shown is not None, table
    assert shown[1] in {f"{n} s ago" for n in range(round(before - checked), round(after - checked) + 1)}, (
        shown[1],
        before - checked,
        after - checked,
    )
    assert "card helper 0.3.0, 1 skill, missing skills: translate" in table
    assert "http://docs.tools.svc.cluster.local:8080/mcp" in table
    assert EVIL not in html and "&lt;script&gt;" in table
    prod = await (await client.get("/env/prod")).text()
    assert '<table id="protocols">' not in prod and f"1 MCP server(s) and agent(s): {NOT_PROBED}" in prod


async def test_a_daemon_that_reports_no_protocols_shows_no_protocols(served: Any) -> None:
    client, _, _ = served
    rows = await (await client.get("/api/status")).json()
    assert [(r["protocols"], r["protocols_probed"], r["protocol_targets"]) for r in rows] == [
        ([], False, 0)
    ] * 2
    assert 'data-testid="protocols"' not in await (await client.get("/")).text()


async def test_timeline_marks_applied_and_pending(served: Any) -> None:
    client, daemon, (first, _second) = served
    ok = _result(first)
    daemon.envs["dev"].last = ok
    detail = await (await client.get("/api/env/dev")).json()
    assert [(c["applied"], c["pending"]) for c in detail["timeline"]] == [(False, True), (True, False)]


async def test_a_failed_pass_leaves_the_applied_revision_and_its_objects_on_the_page(served: Any) -> None:
    client, daemon, (first, second) = served
    daemon.envs["dev"].earlier = _result(first)
    failed = PassResult(
        environment="dev",
        revision=f"main@sha1:{second}",
        ok=False,
        error="envs/dev.yaml: sync.interval: Input should be greater than 0",
        started_at=time.time(),
        duration=0.1,
        trigger="git-push",
    )
    daemon.envs["dev"].last = failed
    detail = await (await client.get("/api/env/dev")).json()
    s = detail["summary"]
    assert (s["revision"], s["attempted"], s["sync"]) == (f"main@sha1:{first}", failed.revision, "Failed")
    assert "sync.interval" in s["error"]
    assert [r["object"] for r in detail["objects"]] == ["Deployment/agents/clock", f"ConfigMap/agents/{EVIL}"]
    html = await (await client.get("/env/dev")).text()
    assert "No objects applied yet" not in html, html[html.find('<table id="objects"') :][:600]
    assert f"Pass of <code>main@{second[:7]}</code> failed" in html


async def test_unknown_environment_is_404(served: Any) -> None:
    client, _, _ = served
    for path in ("/env/nope", "/api/env/nope", "/api/env/nope/diff"):
        resp = await client.get(path)
        assert resp.status == 404
        assert "unknown environment 'nope'" in await resp.text()


async def test_live_health_replaces_the_pass_reading(served: Any) -> None:
    _, daemon, _ = served
    client = TestClient(TestServer(build_app(daemon, health_ttl=5.0)))
    await client.start_server()
    try:
        detail = await (await client.get("/api/env/dev")).json()
    finally:
        await client.close()
    rows = {r["object"]: r for r in detail["objects"]}
    # the API server is unreachable: the live reading says Unverified (with why), not the stale Degraded
    assert rows["Deployment/agents/clock"]["health"] == "Unverified"
    assert "127.0.0.1:9" in rows["Deployment/agents/clock"]["message"]
    assert detail["summary"]["health"] == "Unverified"


def test_git_log_timeline_reads_trailers_from_the_cache_clone(
    served_repo: tuple[GitSource, list[str]],
) -> None:
    source, (first, second) = served_repo
    entries = git_log_timeline(source, Environment(name="dev", overlay="overlays/dev"), "dev")
    assert [(e.sha, e.kind, e.from_env) for e in entries] == [
        (second, "promotion", "staging"),
        (first, "change", ""),
    ]
    assert entries[0].trailers == {"Promotion-From": "staging", "Promotion-To": "dev"}


@pytest.fixture
def served_repo(env_repo: EnvRepo, tmp_path: Path) -> tuple[GitSource, list[str]]:
    env_repo.write("envs/dev.yaml", "overlay: overlays/dev\n")
    env_repo.write("overlays/dev/kustomization.yaml", "resources: []\n")
    first = env_repo.commit("dev: start")
    env_repo.write("overlays/dev/kustomization.yaml", "resources: []\nnamePrefix: a-\n")
    second = env_repo.commit("promote(dev): x\n\nPromotion-From: staging\nPromotion-To: dev\n")
    env_repo.write("README.md", "unrelated\n")
    env_repo.commit("docs only")
    source = GitSource(str(env_repo.remote), "main", tmp_path / "c2")
    source.fetch()
    return source, [first, second]


class FakeShards:
    """The replica holding each environment, as a sharded daemon's ShardMember reports it."""

    def __init__(self, owners: dict[str, str]) -> None:
        self.owners = owners
        self.replica = "reconciler-7d9f-abcde"
        self.error = ""  # the lease bucket answers (readiness)
        self.held = {n for n, r in owners.items() if r == self.replica}
        self.live = sorted(set(owners.values()))

    def may_write(self, name: str) -> bool:
        return name in self.held

    def owner(self, name: str) -> str:
        return self.owners.get(name, "")


async def test_sharded_daemon_shows_the_replica_holding_each_environment(served: Any) -> None:
    client, daemon, _ = served
    daemon.shards = FakeShards({"dev": "reconciler-7d9f-abcde"})
    rows = [EnvSummary.model_validate(r) for r in await (await client.get("/api/status")).json()]
    assert {r.name: r.owner for r in rows} == {"dev": "reconciler-7d9f-abcde", "prod": ""}
    html = await (await client.get("/")).text()
    assert 'data-testid="owner">replica reconciler-7d9f-abcde<' in html
    page = await (await client.get("/env/dev")).text()
    assert 'data-testid="owner">reconciler-7d9f-abcde<' in page
