"""``reconciler up --demo``: a narrated scenario on the real local cluster, NATS, webhooks and Git that
exits 0 only when every step really happened (each step checks its outcome on the cluster and in Git).

1. bootstrap: every environment of the example repository reconciled, health recorded;
2. a registry webhook (GitHub Packages, HMAC-signed) announces a new clock MCP server image;
3. image automation commits it to dev's overlay, and dev's Deployment runs it;
4. promote dev → staging through a branch (``promote/staging/<sha>``) and its merge;
5. a new MCP server version drops a tool an Agent uses: dev moves the reference server
   (``docker.io/mcp/everything``) from 2025.9.25 to 2026.8.31, which renamed ``add`` to ``get-sum``, and
   adapts its helpdesk Agent; the loopback stand-in for dev's pods now runs 2026.8.31 (the probe lists
   ``get-sum``, no ``add``); promoting it into staging, whose helpdesk still requires ``add``, is blocked
   by the tool contract before anything is committed or pushed;
6. a manual edit in staging (another field manager changes the image) is corrected;
7. a release that prod's admission policy refuses (its pods are never created) fails prod's health gate;
8. the daemon pushes the revert commit itself, prod is back on the previous version;
9. a canary that passes: dev gains a small app (Deployment, Service, HTTPRoute ``greeter``) with a
   ``rollouts:`` entry; its next version goes to 50 % then 100 % of the route, each step gated on the
   canary's error rate in Prometheus, and becomes the stable version (the canary objects are pruned);
10. a canary whose error rate breaks the threshold: at its first step (10 %) half its requests fail, so it
    is aborted (weight 0 at once) and its commit reverted in Git (``Rollback-Of``, a ``Reason`` quoting the
    query, the value and the threshold);
11. ``history prod`` is printed.

The metrics of steps 9 and 10 come from a **fixture** (:mod:`reconciler.devcluster.agw_fixture`): no
gateway data plane runs locally, so it exports agentgateway-named metrics for traffic it simulates by the
route's weights on the API server, and the cluster's Prometheus scrapes it.

The protocol probes reach real servers: ``reconciler up`` runs the stand-ins
(:mod:`reconciler.devcluster.standins`) and points ``RECONCILER_PROBE_ADDRESSES`` at their mapping file.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import subprocess
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web
from rich.console import Console
from rich.markup import escape

from reconciler.cluster.client import KubeClient
from reconciler.devcluster.agw_fixture import RunningFixture
from reconciler.devcluster.standins import StandIns
from reconciler.errors import ReconcilerError
from reconciler.model import HealthState, ObjectRef, PassResult
from reconciler.runtime import Daemon
from reconciler.settings import DaemonSettings
from reconciler.source.gitops import GitWriter

CLOCK = "ghcr.io/acme/clock-mcp"
NEW_TAG = "0.1.2"
NEW_DIGEST = "sha256:" + hashlib.sha256(b"clock-mcp 0.1.2").hexdigest()
HOOK_SECRET = "demo-webhook-secret"  # a test value for the local receiver only
POLICY = "reconciler-demo-prod-admission"
#: The MCP reference server of the example (its tag is the npm version a loopback stand-in runs).
EVERYTHING = "docker.io/mcp/everything"
EVERYTHING_OLD = "2025.9.25"  # lists the tool "add"
EVERYTHING_NEW = "2026.8.31"  # renamed it "get-sum"
#: kwok pulls no image: a digest of our own making, as for the clock server above
EVERYTHING_NEW_DIGEST = "sha256:" + hashlib.sha256(f"mcp/everything {EVERYTHING_NEW}".encode()).hexdigest()
#: dev's helpdesk Agent adapted to 2026.8.31: its second tool entry is RemoteMCPServer "everything"
HELPDESK_TOOLS_PATCH = """\
# dev runs server-everything 2026.8.31, which renamed the tool "add" to "get-sum"
- op: test
  path: /spec/declarative/tools/1/mcpServer/name
  value: everything
- op: replace
  path: /spec/declarative/tools/1/mcpServer/toolNames
  value: [echo, get-sum]
"""
HELPDESK_TOOLS_ENTRY = """\
- path: helpdesk-tools.yaml
  target:
    group: kagent.dev
    kind: Agent
    name: helpdesk
"""

#: The canary steps' app in dev (an addition to the demo's copy of the example, not to the example).
GREETER = "greeter"
GREETER_IMAGE = "ghcr.io/acme/greeter"
GREETER_LABELS = "{app.kubernetes.io/name: greeter}"
GREETER_MANIFESTS = f"""\
# the canary steps' app (added by `reconciler up --demo`)
apiVersion: apps/v1
kind: Deployment
metadata: {{name: {GREETER}}}
spec:
  replicas: 1
  selector: {{matchLabels: {GREETER_LABELS}}}
  template:
    metadata: {{labels: {GREETER_LABELS}}}
    spec: {{containers: [{{name: server, image: "{GREETER_IMAGE}:0.0.0", ports: [{{containerPort: 8080}}]}}]}}
---
apiVersion: v1
kind: Service
metadata: {{name: {GREETER}}}
spec: {{selector: {GREETER_LABELS}, ports: [{{port: 80, targetPort: 8080}}]}}
---
apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: {GREETER}}}
spec:
  parentRefs: [{{name: agw, sectionName: http}}]
  hostnames: [greeter.agents.example.internal]
  rules:
  - backendRefs: [{{name: {GREETER}, port: 80}}]
"""
#: The canary's error ratio over the last 10 s, by agentgateway's request counter (as the README's).
_SERIES = 'agentgateway_requests_total{route="{{namespace}}/{{route}}",backend="{{namespace}}/{{canary}}"'
ERROR_RATE = f'(sum(rate({_SERIES},status=~"5.."}}[10s])) or vector(0)) / sum(rate({_SERIES}}}[10s]))'


def _greeter_rollout(steps: list[int]) -> str:
    """The ``rollouts:`` entry of dev for greeter (JSON is YAML)."""
    entry = {
        "app": GREETER,
        "route": GREETER,
        "strategy": {"canary": {"steps": steps, "interval": 3}},
        "analysis": {
            "initialDelay": 3,
            "queries": [
                {
                    "name": "error-rate",
                    "query": ERROR_RATE,
                    "max": 0.05,
                    "interval": 0.5,
                    "inconclusiveLimit": 20,
                }
            ],
        },
    }
    return "# canary rollouts (added by `reconciler up --demo`)\nrollouts:\n- " + json.dumps(entry) + "\n"


class DemoFailed(ReconcilerError):
    """A step of the demo did not happen."""


def _deployment(ns: str) -> ObjectRef:
    return ObjectRef(group="apps", version="v1", kind="Deployment", namespace=ns, name="clock-mcp")


def _image(kube: KubeClient, ns: str) -> str:
    live = kube.get(_deployment(ns)) or {}
    containers = ((live.get("spec") or {}).get("template") or {}).get("spec", {}).get("containers") or [{}]
    return str(containers[0].get("image", ""))


async def _until(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.25) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = await asyncio.to_thread(check)
        if value:
            return value
        if time.monotonic() > deadline:
            raise DemoFailed(f"{what}: not within {timeout:.0f} s")
        await asyncio.sleep(interval)


def _package_event(tag: str, digest: str) -> dict[str, Any]:
    """A GitHub ``registry_package`` ``published`` event for ghcr.io/acme/clock-mcp (the fields GitHub
    documents; only the ones the receiver reads matter)."""
    return {
        "action": "published",
        "registry_package": {
            "name": "clock-mcp",
            "namespace": "acme",
            "package_type": "CONTAINER",
            "owner": {"login": "acme"},
            "registry": {"url": "https://ghcr.io/acme", "host": "ghcr.io", "type": "docker"},
            "package_version": {
                "version": digest,
                "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "container_metadata": {
                    "tag": {"name": tag, "digest": digest},
                    "manifest": {
                        "digest": digest,
                        "media_type": "application/vnd.oci.image.manifest.v1+json",
                    },
                },
            },
        },
        "sender": {"login": "acme-ci"},
    }


class Demo:
    """The scenario; ``run`` returns 0 when every step was verified."""

    def __init__(
        self,
        console: Console,
        kubeconfig: Path,
        nats_url: str,
        remote: Path,
        cache_dir: Path,
        *,
        standins: StandIns | None = None,
        prometheus_url: str | None = None,
        metrics: RunningFixture | None = None,
    ):
        self.console = console
        self.standins = standins
        self.prometheus_url = prometheus_url
        self.metrics = metrics
        self.kubeconfig = kubeconfig
        self.nats_url = nats_url
        self.remote = remote
        self.cache_dir = cache_dir
        self.kube = KubeClient(kubeconfig)
        self.results: list[PassResult] = []
        self.drift: list[dict[str, Any]] = []
        self.step = 0

    def say(self, text: str) -> None:
        """Print a narrated line."""
        self.console.print(f"  {escape(text)}", highlight=False)

    async def _step(self, title: str, body: Callable[[], Awaitable[str]]) -> None:
        self.step += 1
        self.console.print(f"\n[bold cyan]{self.step}. {title}[/]", highlight=False)
        t0 = time.monotonic()
        outcome = await body()
        self.console.print(
            f"  [green]✓[/] {escape(outcome)} ({time.monotonic() - t0:.1f} s)", highlight=False
        )

    async def run(self) -> int:
        """Run every step; 0 when all were verified, 1 otherwise."""
        settings = DaemonSettings(
            repo=str(self.remote),
            kubeconfig=self.kubeconfig,
            nats_url=self.nats_url,
            cache_dir=self.cache_dir / "daemon",
            poll_interval=5,
            watch_local=True,
            prometheus_url=self.prometheus_url,
        )
        self.daemon = Daemon(settings, on_result=self.results.append, on_drift=self.drift.append)
        runner = None
        try:
            runner, url = await self._start_webhooks()
            await self.daemon.start()
            await self._step("Bootstrap every environment", self.bootstrap)
            await self._step(
                "A registry webhook announces a new clock MCP server image", lambda: self.webhook(url)
            )
            await self._step("Promote dev → staging through a branch and its merge", self.promote_staging)
            await self._step(
                "A new MCP server version drops a tool an Agent uses: the promotion is blocked before merge",
                self.tool_contract,
            )
            await self._step("A manual edit in staging is corrected", self.drift_staging)
            await self._step("A bad release reaches prod and fails its health gate", self.bad_release)
            await self._step("A canary in dev that passes its analysis becomes stable", self.canary_good)
            await self._step(
                "A canary whose error rate breaks the threshold is aborted at 10 % and reverted in Git",
                self.canary_bad,
            )
            await self._step("history prod", self.history)
        except (DemoFailed, ReconcilerError) as exc:
            self.console.print(f"  [bold red]✗ {escape(str(exc))}[/]", highlight=False)
            return 1
        finally:
            await self.daemon.stop()
            if runner is not None:
                await runner.cleanup()
            await asyncio.to_thread(self._cleanup_policy)
            self.kube.close()
        self.console.print("\n[bold green]demo complete: every step verified[/]")
        return 0

    async def _start_webhooks(self) -> tuple[web.AppRunner, str]:
        from reconciler.bus import Bus
        from reconciler.devcluster.process import free_port
        from webhooks.config import WebhookSettings
        from webhooks.server import build_app

        bus = Bus(self.nats_url, name="reconciler-demo-webhooks")
        await bus.connect()
        self._webhook_bus = bus
        cfg = WebhookSettings.model_validate(
            {"receivers": [{"name": "ghcr", "provider": "github", "secret": HOOK_SECRET}]}
        )
        app = build_app(cfg, bus)
        runner = web.AppRunner(app)
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        return runner, f"http://127.0.0.1:{port}"

    # -- steps --------------------------------------------------------------------------------------

    def _last(self, env: str) -> PassResult | None:
        return next((r for r in reversed(self.results) if r.environment == env), None)

    def _at(self, env: str, sha: str) -> bool:
        last = self._last(env)
        return last is not None and last.revision.endswith(sha)

    def _settled(self, env: str) -> bool:
        last = self._last(env)
        if last is None or not last.ok:
            return False
        return self.daemon.settled(env, last.revision)

    async def bootstrap(self) -> str:
        for env in ("dev", "staging", "prod"):
            await _until(f"first pass of {env}", functools.partial(self._last, env), 120)
            last = self._last(env)
            assert last is not None
            if not last.ok:
                raise DemoFailed(f"{env}: {last.error}")
            await _until(f"health gate of {env}", functools.partial(self._settled, env), 180)
            health = last.health
            counts: dict[str, int] = {}
            for h in health.values():
                counts[h.state.value] = counts.get(h.state.value, 0) + 1
            self.say(
                f"{env}: {len(last.changes.entries)} objects at {last.revision[-40:][:7]}; health "
                + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            )
        self.before_prod = await asyncio.to_thread(_image, self.kube, "agents-prod")
        return (
            "dev, staging and prod reconciled; custom resources without a controller reported as Unverified"
        )

    async def webhook(self, url: str) -> str:
        body = json.dumps(_package_event(NEW_TAG, NEW_DIGEST)).encode()
        sig = "sha256=" + hmac.new(HOOK_SECRET.encode(), body, hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/json",
            "X-GitHub-Event": "registry_package",
            "X-GitHub-Delivery": str(uuid.uuid4()),
            "X-Hub-Signature-256": sig,
        }
        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{url}/hook/ghcr", data=body, headers=headers) as resp,
        ):
            text = await resp.text()
            if resp.status != 202:
                raise DemoFailed(f"webhook answered {resp.status}: {text}")
        self.say(f"POST /hook/ghcr → 202 ({CLOCK}:{NEW_TAG}@{NEW_DIGEST[:19]}…)")
        want = f"{CLOCK}:{NEW_TAG}"
        await _until(
            "dev's Deployment on the new image", lambda: _image(self.kube, "agents-dev").startswith(want), 60
        )
        writer = GitWriter(str(self.remote), "main", self.cache_dir / "demo-git")
        await asyncio.to_thread(writer.sync)
        commit = (await asyncio.to_thread(writer.log, max_count=5))[0]
        self.say(f"commit {commit.sha[:7]} {commit.subject!r} by {commit.author_name}")
        await _until("dev's pass on the new revision", functools.partial(self._at, "dev", commit.sha), 60)
        await _until("dev's health gate on the new revision", lambda: self._settled("dev"), 120)
        return f"dev runs {_image(self.kube, 'agents-dev')}"

    async def _merge(self, branch: str, message: str) -> str:
        writer = GitWriter(str(self.remote), "main", self.cache_dir / "demo-git")

        def merge() -> str:
            with writer.locked():
                writer.sync()
                repo = writer.repo  # the clone's GitPython handle
                repo.git.fetch("origin", f"+refs/heads/{branch}:refs/remotes/origin/{branch}")
                repo.git.merge("--no-ff", "-m", message, f"origin/{branch}")
                writer.push()
                return str(repo.head.commit.hexsha)

        return await asyncio.to_thread(merge)

    async def _promote(self, from_env: str, to_env: str) -> str:
        from reconciler.promote.promotion import promote
        from reconciler.reconcile import load_environments

        writer = GitWriter(str(self.remote), "main", self.cache_dir / "demo-promote")

        def run() -> str:
            with writer.locked():
                writer.sync()
                envs = load_environments(writer.workdir)
                result = promote(
                    writer, envs, from_env, to_env, app="clock-mcp", mode="pr", probes=self.daemon.probes
                )
            if not result.plan.changes:
                raise DemoFailed(f"promote {from_env} → {to_env}: {result.message}")
            for c in result.plan.changes:
                after = c.after
                ref = f"{after.new_name or after.name}:{after.new_tag or ''}@{after.digest or ''}"
                self.say(f"{c.name}: {c.before or '(none)'} → {ref}")
            if result.plan.tool_contract:
                self.say(f"tool contract of {to_env}: {result.plan.tool_contract}")
            branch = result.branch or ""
            self.say(f"pushed branch {branch} ({result.message or 'pull request ready'})")
            return branch

        return await asyncio.to_thread(run)

    async def promote_staging(self) -> str:
        branch = await self._promote("dev", "staging")
        sha = await self._merge(branch, f"Merge {branch}: promote clock-mcp to staging")
        self.say(f"merged {branch} into main as {sha[:7]}")
        await _until("staging's pass on the merge", functools.partial(self._at, "staging", sha), 60)
        await _until(
            "staging's Deployment on the promoted image",
            lambda: NEW_DIGEST in _image(self.kube, "agents-staging"),
            60,
        )
        await _until("staging's health gate", lambda: self._settled("staging"), 120)
        return f"staging runs {_image(self.kube, 'agents-staging')}"

    def _everything_image(self, ns: str) -> str:
        live = self.kube.get(
            ObjectRef(group="apps", version="v1", kind="Deployment", namespace=ns, name="everything")
        )
        containers = (
            (((live or {}).get("spec") or {}).get("template") or {}).get("spec", {}).get("containers")
        )
        return str((containers or [{}])[0].get("image", ""))

    def _promote_branches(self) -> dict[str, str]:
        """``promote/staging/*`` branches of the remote, name → commit (read from the remote itself)."""
        out = subprocess.run(
            ["git", "ls-remote", "--heads", str(self.remote), "refs/heads/promote/staging/*"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return {
            ref.removeprefix("refs/heads/"): sha
            for sha, _, ref in (ln.partition("\t") for ln in out.splitlines())
        }

    def _remote_head(self) -> str:
        out = subprocess.run(
            ["git", "ls-remote", str(self.remote), "refs/heads/main"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        return out.split("\t", 1)[0]

    async def tool_contract(self) -> str:
        from reconciler.promote.overlay import ImageEntry, set_images
        from reconciler.promote.promotion import ToolContractError, promote
        from reconciler.reconcile import assess_health, load_environments

        probes, standins = self.daemon.probes, self.standins
        if probes is None or standins is None:
            raise DemoFailed(
                "no protocol probes: this step needs the loopback stand-ins that `reconciler up` starts"
            )
        dev_origin = "http://everything.agents-dev.svc.cluster.local:3001"
        staging_image = await asyncio.to_thread(self._everything_image, "agents-staging")
        if f":{EVERYTHING_OLD}" not in staging_image:
            raise DemoFailed(f"staging should run {EVERYTHING}:{EVERYTHING_OLD}, runs {staging_image!r}")
        writer = GitWriter(str(self.remote), "main", self.cache_dir / "demo-git")
        file = "overlays/dev/kustomization.yaml"

        def commit() -> str:
            with writer.locked():
                writer.sync()
                path = writer.workdir / file
                text = set_images(
                    path.read_text(encoding="utf-8"),
                    [ImageEntry(name=EVERYTHING, new_tag=EVERYTHING_NEW, digest=EVERYTHING_NEW_DIGEST)],
                    file,
                )
                if not text.rstrip().splitlines()[-1].startswith(("- path:", "  ")):
                    raise DemoFailed(f"{file} does not end with its patches: list")
                path.write_text(text.rstrip("\n") + "\n" + HELPDESK_TOOLS_ENTRY, encoding="utf-8")
                (path.parent / "helpdesk-tools.yaml").write_text(HELPDESK_TOOLS_PATCH, encoding="utf-8")
                sha = writer.commit(
                    f"dev: server-everything {EVERYTHING_NEW}; helpdesk uses get-sum (add was renamed)",
                    trailers={"Image": f"{EVERYTHING}={EVERYTHING}:{EVERYTHING_NEW}@{EVERYTHING_NEW_DIGEST}"},
                )
                if sha is None:
                    raise DemoFailed("the dev change made no commit")
                writer.push()
                return sha

        sha = await asyncio.to_thread(commit)
        self.say(
            f"commit {sha[:7]} to dev: {EVERYTHING} {EVERYTHING_OLD} → {EVERYTHING_NEW}, "
            "helpdesk toolNames [echo, add] → [echo, get-sum]"
        )
        await _until("dev's pass on the new revision", functools.partial(self._at, "dev", sha), 60)
        last = self._last("dev")
        if last is None or not last.ok:
            raise DemoFailed(f"dev did not apply {sha[:7]}: {last.error if last else 'no pass'}")
        await _until(
            f"dev's Deployment on {EVERYTHING_NEW}",
            lambda: EVERYTHING_NEW in self._everything_image("agents-dev"),
            60,
        )

        def served() -> Any:
            found = standins.serving(dev_origin)
            return found if found is not None and found.server.endswith(EVERYTHING_NEW) else None

        stand_in = await _until(f"the stand-in for dev's pods on {EVERYTHING_NEW}", served, 30)
        self.say(f"stand-in: {stand_in.origin} → {stand_in.server} at {stand_in.target}")
        await _until("dev's health gate on the new revision", lambda: self._settled("dev"), 120)
        gate = self.daemon.gate("dev")
        if gate != "passed":
            raise DemoFailed(f"dev's health gate on {sha[:7]}: {gate}")
        rmcps = ObjectRef(
            group="kagent.dev",
            version="v1alpha2",
            kind="RemoteMCPServer",
            namespace="agents-dev",
            name="everything",
        )
        live = await asyncio.to_thread(self.kube.get, rmcps)
        listed = await asyncio.to_thread(probes.mcp, live or {})
        names = {t.name for t in listed.tools} if listed is not None and listed.healthy else set()
        if "get-sum" not in names or "add" in names:
            raise DemoFailed(f"dev's everything should list get-sum and no add: {sorted(names)}")
        self.say(f"probe of dev's RemoteMCPServer everything: {len(names)} tools, get-sum listed, no add")
        helpdesk = ObjectRef(
            group="kagent.dev", version="v1alpha2", kind="Agent", namespace="agents-dev", name="helpdesk"
        )
        h = (await asyncio.to_thread(assess_health, self.kube, [helpdesk], probe=probes))[str(helpdesk)]
        self.say(f"dev's health gate passed on {sha[:7]}; helpdesk {h.state.value}: {h.message}")

        branches_before, head_before = (
            await asyncio.to_thread(self._promote_branches),
            await asyncio.to_thread(self._remote_head),
        )
        promo = GitWriter(str(self.remote), "main", self.cache_dir / "demo-promote")

        def run() -> tuple[ToolContractError | None, str]:
            with promo.locked():
                promo.sync()
                envs = load_environments(promo.workdir)
                try:
                    result = promote(
                        promo, envs, "dev", "staging", app="everything", mode="pr", probes=probes
                    )
                except ToolContractError as exc:
                    dirty = promo.repo.git.status("--porcelain")
                    return exc, dirty
                return None, f"not blocked: {result.message}"

        blocked, detail = await asyncio.to_thread(run)
        if blocked is None:
            raise DemoFailed(f"promote dev → staging (everything): {detail}")
        self.console.print(f"  [red]promotion blocked:[/] {escape(str(blocked))}", highlight=False)
        message = str(blocked)
        for needed in ("helpdesk", "RemoteMCPServer", "everything", "'add'"):
            if needed not in message:
                raise DemoFailed(f"the blocked promotion's message does not name {needed}: {message}")
        if detail:
            raise DemoFailed(f"the promotion left changes in its clone: {detail}")
        branches_after, head_after = (
            await asyncio.to_thread(self._promote_branches),
            await asyncio.to_thread(self._remote_head),
        )
        if branches_after != branches_before or head_after != head_before:
            raise DemoFailed(
                f"the blocked promotion pushed something: {branches_after} (main {head_after[:7]})"
            )
        if f"promote/staging/{sha[:7]}" in branches_after:
            raise DemoFailed(f"promote/staging/{sha[:7]} exists")
        staging_now = await asyncio.to_thread(self._everything_image, "agents-staging")
        if f":{EVERYTHING_OLD}" not in staging_now:
            raise DemoFailed(f"staging should still run {EVERYTHING_OLD}: {staging_now}")
        self.say(f"no promote/staging/* branch or commit was made; staging still runs {staging_now}")
        return "the tool contract stopped the promotion before any commit"

    async def drift_staging(self) -> str:
        n = len(self.drift)
        await asyncio.to_thread(
            self.kube.apply,
            {
                "apiVersion": "apps/v1",
                "kind": "Deployment",
                "metadata": {"name": "clock-mcp", "namespace": "agents-staging"},
                "spec": {
                    "template": {
                        "spec": {"containers": [{"name": "server", "image": "ghcr.io/acme/hotfix:manual"}]}
                    }
                },
            },
            _deployment("agents-staging"),
            field_manager="kubectl-edit",
        )
        self.say("kubectl-edit set the image to ghcr.io/acme/hotfix:manual")
        t0 = time.monotonic()
        await _until("drift correction", lambda: any(d.get("corrected") for d in self.drift[n:]), 15, 0.05)
        await _until(
            "staging's image restored", lambda: NEW_DIGEST in _image(self.kube, "agents-staging"), 15
        )
        event = next(d for d in self.drift[n:] if d.get("corrected"))
        return f"corrected in {time.monotonic() - t0:.2f} s: {', '.join(event['paths'])}"

    def _install_policy(self) -> None:
        policy = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": POLICY},
            "spec": {
                "failurePolicy": "Fail",
                "matchConstraints": {
                    "resourceRules": [
                        {
                            "apiGroups": [""],
                            "apiVersions": ["v1"],
                            "operations": ["CREATE"],
                            "resources": ["pods"],
                        }
                    ]
                },
                "validations": [
                    {
                        "expression": f"!object.spec.containers.exists(c, c.image.contains('{NEW_DIGEST}'))",
                        "message": "image not signed for production",
                    }
                ],
            },
        }
        binding = {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": POLICY},
            "spec": {
                "policyName": POLICY,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "agents-prod"}}
                },
            },
        }
        for obj in (policy, binding):
            ref = ObjectRef(group="admissionregistration.k8s.io", version="v1", kind=obj["kind"], name=POLICY)
            self.kube.apply(obj, ref, field_manager="reconciler-demo")
        time.sleep(1.5)  # admission policies load asynchronously

    def _cleanup_policy(self) -> None:
        for kind in ("ValidatingAdmissionPolicyBinding", "ValidatingAdmissionPolicy"):
            with contextlib.suppress(ReconcilerError):
                self.kube.delete(
                    ObjectRef(group="admissionregistration.k8s.io", version="v1", kind=kind, name=POLICY)
                )

    async def bad_release(self) -> str:
        await asyncio.to_thread(self._install_policy)
        self.say("prod admits only signed images: the new release is not (a ValidatingAdmissionPolicy)")
        branch = await self._promote("staging", "prod")
        merge_sha = await self._merge(branch, f"Merge {branch}: promote clock-mcp to prod")
        self.say(f"merged {branch} into main as {merge_sha[:7]}")
        await _until(
            "prod's Deployment on the bad release", lambda: NEW_DIGEST in _image(self.kube, "agents-prod"), 60
        )

        def degraded() -> bool:
            from reconciler.reconcile import assess_health

            h = assess_health(self.kube, [_deployment("agents-prod")])
            return any(v.state is HealthState.DEGRADED for v in h.values())

        await _until("prod's Deployment degraded", degraded, 120)
        self.say("prod's clock-mcp Deployment: Degraded (pods refused by admission)")
        writer = GitWriter(str(self.remote), "main", self.cache_dir / "demo-git")

        def revert_commit() -> Any:
            writer.sync()
            return next((c for c in writer.log(max_count=10) if c.first("Rollback-Of")), None)

        commit = await _until("the daemon's revert commit", revert_commit, 300, 1.0)
        of, reason = (commit.first("Rollback-Of") or "")[:7], commit.first("Reason")
        self.say(f"revert {commit.sha[:7]} {commit.subject!r} (Rollback-Of: {of}, Reason: {reason})")
        await _until(
            "prod back on the previous version",
            lambda: _image(self.kube, "agents-prod") == self.before_prod,
            120,
        )

        def healthy() -> bool:
            from reconciler.reconcile import assess_health

            h = assess_health(self.kube, [_deployment("agents-prod")])
            return all(v.state is HealthState.HEALTHY for v in h.values())

        await _until("prod healthy again", healthy, 120)
        return f"prod healthy on {self.before_prod}"

    # -- canaries -----------------------------------------------------------------------------------

    def _deployment_image(self, name: str) -> str | None:
        ref = ObjectRef(group="apps", version="v1", kind="Deployment", namespace="agents-dev", name=name)
        live = self.kube.get(ref)
        if live is None:
            return None
        return str(live["spec"]["template"]["spec"]["containers"][0].get("image", ""))

    def _weights(self) -> list[tuple[str, int]]:
        ref = ObjectRef(
            group="gateway.networking.k8s.io",
            version="v1",
            kind="HTTPRoute",
            namespace="agents-dev",
            name=GREETER,
        )
        rules = (((self.kube.get(ref) or {}).get("spec") or {}).get("rules")) or [{}]
        return [(str(b["name"]), int(b.get("weight", 1))) for b in rules[0].get("backendRefs") or []]

    def _rollout(self) -> Any:
        from reconciler.cluster.rollouts import RolloutStore

        return RolloutStore(self.kube, str(self.remote)).load("dev", GREETER)

    def _commit_dev(self, message: str, edit: Callable[[Path], None]) -> str:
        writer = GitWriter(str(self.remote), "main", self.cache_dir / "demo-git")
        with writer.locked():
            writer.sync()
            edit(writer.workdir)
            sha = writer.commit(message)
            if sha is None:
                raise DemoFailed(f"{message!r} made no commit")
            writer.push()
            return sha

    async def _dev_pass(self, sha: str) -> None:
        await _until("dev's pass on the new revision", functools.partial(self._at, "dev", sha), 60)
        last = self._last("dev")
        if last is None or not last.ok:
            raise DemoFailed(f"dev did not apply {sha[:7]}: {last.error if last else 'no pass'}")

    def _set_greeter(self, workdir: Path, tag: str) -> None:
        from reconciler.promote.overlay import ImageEntry, set_images

        file = "overlays/dev/kustomization.yaml"
        path = workdir / file
        path.write_text(
            set_images(path.read_text(encoding="utf-8"), [ImageEntry(name=GREETER_IMAGE, new_tag=tag)], file),
            encoding="utf-8",
        )

    def _traffic(self, canary_errors: float) -> None:
        assert self.metrics is not None
        self.metrics.route(
            "agents-dev",
            GREETER,
            {"rate": 50, "backends": {f"{GREETER}-canary": {"errorRatio": canary_errors}}},
        )

    def _canary_quiet(self) -> bool:
        import urllib.parse
        import urllib.request

        promql = f'sum(rate(agentgateway_requests_total{{backend="agents-dev/{GREETER}-canary"}}[10s])) > 0'
        url = f"{self.prometheus_url}/api/v1/query?query={urllib.parse.quote(promql)}"
        with urllib.request.urlopen(url, timeout=5) as resp:
            return not json.loads(resp.read())["data"]["result"]

    async def canary_good(self) -> str:
        from reconciler.model.rollout import RolloutPhase

        if self.metrics is None or not self.prometheus_url:
            raise DemoFailed("no Prometheus or metrics fixture: this step needs what `reconciler up` starts")
        self.say(
            f"metrics: Prometheus {self.prometheus_url} scrapes a FIXTURE ({self.metrics.url}) that "
            "simulates the route's traffic by its weights (no gateway data plane runs locally)"
        )

        def add_app(workdir: Path) -> None:
            overlay = workdir / "overlays" / "dev"
            (overlay / "greeter.yaml").write_text(GREETER_MANIFESTS, encoding="utf-8")
            kustomization = overlay / "kustomization.yaml"
            text = kustomization.read_text(encoding="utf-8")
            if "\nresources:\n" not in text:
                raise DemoFailed("overlays/dev/kustomization.yaml has no resources: list")
            kustomization.write_text(text.replace("\nresources:\n", "\nresources:\n- greeter.yaml\n", 1))
            self._set_greeter(workdir, "1.0.0")
            env = workdir / "envs" / "dev.yaml"
            env.write_text(env.read_text(encoding="utf-8").rstrip("\n") + "\n" + _greeter_rollout([50, 100]))

        sha = await asyncio.to_thread(
            self._commit_dev,
            "dev: greeter 1.0.0 (Deployment, Service, HTTPRoute) with a canary rollout",
            add_app,
        )
        self.say(
            f"commit {sha[:7]}: greeter 1.0.0; rollouts: canary steps [50, 100], interval 3 s, "
            "error rate max 5 %"
        )
        await self._dev_pass(sha)
        first = await _until("greeter's first version", self._rollout, 30)
        if first.phase is not RolloutPhase.SUCCEEDED:
            raise DemoFailed(f"greeter's first version: {first.phase.value}: {first.message}")
        await _until("dev's health gate", lambda: self._settled("dev"), 120)
        self.say(f"greeter {GREETER_IMAGE}:1.0.0 applied as it is (the first version is the stable one)")

        await asyncio.to_thread(self._traffic, 0.0)
        self.say("fixture: 50 requests/s on route agents-dev/greeter; the canary answers without errors")
        sha = await asyncio.to_thread(
            self._commit_dev, "dev: greeter 1.1.0", functools.partial(self._set_greeter, tag="1.1.0")
        )
        self.say(f"commit {sha[:7]}: greeter 1.1.0")
        await self._dev_pass(sha)
        canary = await _until(
            "the canary Deployment", lambda: self._deployment_image(f"{GREETER}-canary"), 30
        )
        self.say(f"canary {GREETER}-canary runs {canary}; route weights {self._weights()}")

        def done() -> Any:
            st = self._rollout()
            if st is not None and st.phase is RolloutPhase.ABORTED:
                raise DemoFailed(f"the good canary was aborted: {st.message}")
            return st if st is not None and st.phase is RolloutPhase.SUCCEEDED else None

        state = await _until("the rollout's success", done, 90)
        for line in state.history:
            self.say(f"  {line}")
        await _until(
            "greeter on 1.1.0",
            lambda: self._deployment_image(GREETER) == f"{GREETER_IMAGE}:1.1.0",
            30,
        )
        await _until("the canary pruned", lambda: self._deployment_image(f"{GREETER}-canary") is None, 30)
        weights = await asyncio.to_thread(self._weights)
        if weights != [(GREETER, 1)]:
            raise DemoFailed(f"the route should be Git's again (one backend): {weights}")
        return f"greeter runs {GREETER_IMAGE}:1.1.0; canary pruned; route back to one backend"

    async def canary_bad(self) -> str:
        from reconciler.model.rollout import RolloutPhase

        def steps(workdir: Path) -> None:
            env = workdir / "envs" / "dev.yaml"
            text = env.read_text(encoding="utf-8")
            if '"steps": [50, 100]' not in text:
                raise DemoFailed("envs/dev.yaml has no greeter rollout with steps [50, 100]")
            env.write_text(text.replace('"steps": [50, 100]', '"steps": [10, 50, 100]'), encoding="utf-8")

        sha = await asyncio.to_thread(self._commit_dev, "dev: greeter canary steps 10, 50, 100", steps)
        self.say(f"commit {sha[:7]}: greeter's canary steps [10, 50, 100]")
        await self._dev_pass(sha)
        # the query's 10 s window must not hold the good canary's requests (same Service name), which would
        # dilute the new canary's error ratio: wait until Prometheus sees no traffic on greeter-canary
        await _until("the previous canary's traffic out of the 10 s window", self._canary_quiet, 40, 1.0)
        await asyncio.to_thread(self._traffic, 0.5)
        self.say("fixture: the canary now fails half its requests (503)")
        bad = await asyncio.to_thread(
            self._commit_dev, "dev: greeter 1.2.0", functools.partial(self._set_greeter, tag="1.2.0")
        )
        self.say(f"commit {bad[:7]}: greeter 1.2.0")
        await self._dev_pass(bad)

        def aborted() -> Any:
            st = self._rollout()
            if st is not None and st.phase is RolloutPhase.SUCCEEDED and bad[:7] in st.revision:
                raise DemoFailed("the bad canary succeeded")
            return st if st is not None and st.phase is RolloutPhase.ABORTED else None

        state = await _until("the rollout's abort", aborted, 60)
        self.say(f"rollout aborted: {state.message}")
        weights = dict(await asyncio.to_thread(self._weights))
        if weights.get(f"{GREETER}-canary", 0) != 0 or weights.get(GREETER) != 100:
            raise DemoFailed(f"the canary should have weight 0 at once: {weights}")
        self.say(f"route weights at the abort: {sorted(weights.items())}")
        if "at weight 10%" not in state.message and not any("10%" in h for h in state.history):
            raise DemoFailed(f"the abort should be at the first step (10 %): {state.message}")
        writer = GitWriter(str(self.remote), "main", self.cache_dir / "demo-git")

        def revert_commit() -> Any:
            writer.sync()
            return next((c for c in writer.log(max_count=10) if c.first("Rollback-Of") == bad), None)

        commit = await _until("the revert commit in Git", revert_commit, 60, 1.0)
        reason = commit.first("Reason") or ""
        self.say(f"revert {commit.sha[:7]} {commit.subject!r}")
        self.say(f"  Rollback-Of: {commit.first('Rollback-Of')}")
        self.say(f"  Reason: {reason}")
        for needed in ("error-rate", "(max 0.05)", "Failed", "step 1/3 at weight 10%"):
            if needed not in reason:
                raise DemoFailed(f"the revert's Reason does not name {needed!r}: {reason}")
        await _until(
            "the canary pruned after the revert",
            lambda: self._deployment_image(f"{GREETER}-canary") is None,
            60,
        )
        image = await asyncio.to_thread(self._deployment_image, GREETER)
        if image != f"{GREETER_IMAGE}:1.1.0":
            raise DemoFailed(f"greeter should stay on 1.1.0: {image}")
        return f"1.2.0 never reached more than 10 %; greeter stays on {image}, reverted in Git"

    async def history(self) -> str:
        import sys

        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "reconciler.cli",
            "history",
            "prod",
            "--repo",
            str(self.remote),
            "--cache-dir",
            str(self.cache_dir / "demo-history"),
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        out, _ = await proc.communicate()
        text = out.decode(errors="replace")
        self.console.print(text, highlight=False, markup=False, end="")
        if proc.returncode != 0:
            raise DemoFailed(f"history prod exited {proc.returncode}")
        if "Rollback" not in text and "revert" not in text.lower():
            raise DemoFailed("history prod does not show the rollback")
        return "history printed"
