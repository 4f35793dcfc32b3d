"""Promotion and rollback end to end on the real control plane, NATS and bare Git remotes.

Promote dev → staging through a branch and its merge, see it in ``history``, apply a manual revert, then
promote a release whose pods are never admitted (a ValidatingAdmissionPolicy in the staging namespace
refuses its image, so the Deployment reports ReplicaFailure and never becomes Ready; kwok itself marks
every pod readiness gate True, so a gate nobody sets does not keep pods unready on this cluster): the
health gate fails, the daemon side pushes one revert commit, the previous version is healthy again, and a
restart in the middle of that sequence makes no duplicate commit.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import nats
import pytest
from _promote_support import (
    BASE_DEPLOYMENT,
    CLOCK,
    DIGEST_A,
    DIGEST_B,
    DIGEST_C,
    Remote,
    git,
    kustomization,
    make_remote,
)

from reconciler.bus import promotion_subject
from reconciler.cluster.client import KubeClient
from reconciler.model import Environment, HealthStatus, ObjectRef, PassResult
from reconciler.promote.auto import AutoRollback, Decision, bus_publisher
from reconciler.promote.history import timeline
from reconciler.promote.promotion import promote
from reconciler.promote.records import Outcome, parse_note
from reconciler.reconcile import PassContext, load_environments, run_pass, wait_for_health
from reconciler.runtime import Daemon
from reconciler.settings import DaemonSettings
from reconciler.source import GitSource
from reconciler.source.gitops import GitWriter

pytestmark = pytest.mark.integration

VAP = ObjectRef(group="admissionregistration.k8s.io", kind="ValidatingAdmissionPolicy", name="")
VAPB = ObjectRef(group="admissionregistration.k8s.io", kind="ValidatingAdmissionPolicyBinding", name="")


class Names:
    def __init__(self) -> None:
        suffix = uuid.uuid4().hex[:6]
        self.dev = f"dev-{suffix}"
        self.stg = f"stg-{suffix}"
        self.ns_dev = f"t-{self.dev}"
        self.ns_stg = f"t-{self.stg}"
        self.policy = f"deny-bad-release-{suffix}"


def _repo_files(n: Names, *, timeout: float) -> dict[str, str]:
    return {
        f"envs/{n.dev}.yaml": f"overlay: overlays/dev\nnamespace: {n.ns_dev}\n"
        "sync: {interval: 3600, allowMassPrune: true}\nhealth: {timeout: 60, noControllerAfter: 5}\n"
        "promotion: {via: push}\n",
        f"envs/{n.stg}.yaml": f"overlay: overlays/staging\nnamespace: {n.ns_stg}\n"
        "sync: {interval: 3600, allowMassPrune: true}\n"
        f"health: {{timeout: {timeout:g}, noControllerAfter: 5}}\n"
        f"promotion: {{from: {n.dev}, via: pr, requireHealth: healthy}}\nonFailure: revert\n",
        "overlays/base/kustomization.yaml": "resources:\n- deployment.yaml\n",
        "overlays/base/deployment.yaml": BASE_DEPLOYMENT,
        "overlays/dev/kustomization.yaml": kustomization("0.2.0", DIGEST_B),
        "overlays/staging/kustomization.yaml": kustomization("0.1.0", DIGEST_A),
    }


@pytest.fixture
def names(kube: KubeClient) -> Iterator[Names]:
    """Two namespaces and a ValidatingAdmissionPolicy that refuses pods of the bad release (digest C) in
    the staging namespace only."""
    n = Names()
    for ns in (n.ns_dev, n.ns_stg):
        kube.apply(
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}},
            ObjectRef(kind="Namespace", name=ns),
            field_manager="tests",
        )
    policy = VAP.model_copy(update={"name": n.policy})
    binding = VAPB.model_copy(update={"name": n.policy})
    kube.apply(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicy",
            "metadata": {"name": n.policy},
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
                        "expression": f"!object.spec.containers.exists(c, c.image.contains('{DIGEST_C}'))",
                        "message": "this release is known bad",
                    }
                ],
            },
        },
        policy,
        field_manager="tests",
    )
    kube.apply(
        {
            "apiVersion": "admissionregistration.k8s.io/v1",
            "kind": "ValidatingAdmissionPolicyBinding",
            "metadata": {"name": n.policy},
            "spec": {
                "policyName": n.policy,
                "validationActions": ["Deny"],
                "matchResources": {
                    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": n.ns_stg}}
                },
            },
        },
        binding,
        field_manager="tests",
    )
    time.sleep(1.5)  # the API server loads admission policies asynchronously
    yield n
    kube.delete(binding)
    kube.delete(policy)
    for ns in (n.ns_dev, n.ns_stg):
        kube.delete(ObjectRef(kind="Namespace", name=ns))


def _image(kube: KubeClient, ns: str) -> str:
    live = kube.get(ObjectRef(group="apps", kind="Deployment", namespace=ns, name="clock-mcp")) or {}
    return str(live["spec"]["template"]["spec"]["containers"][0]["image"])


def _waiter(
    ctx: PassContext, env: Environment, stop: threading.Event | None = None
) -> Callable[[float], dict[str, HealthStatus]]:
    def wait(timeout: float) -> dict[str, HealthStatus]:
        refs = [d.ref for d in ctx.last_desired.get(env.name, [])]
        deadline = time.monotonic() + timeout
        while True:
            if stop is not None and stop.is_set():
                raise RuntimeError("daemon stopping")  # a crash in the middle of the wait
            health = wait_for_health(
                ctx.client, refs, timeout=min(1.0, max(0.0, deadline - time.monotonic())), interval=0.3
            )
            done = all(
                h.state.value in ("Healthy", "Degraded", "Unverified", "Failed") for h in health.values()
            )
            if done or time.monotonic() >= deadline:
                return health

    return wait


def _envs(remote: Remote, tmp_path: Path) -> dict[str, Environment]:
    w = GitWriter(str(remote.bare), "main", tmp_path / f"envs-{uuid.uuid4().hex[:4]}")
    w.sync()
    return load_environments(w.workdir)


def _settle(auto: AutoRollback, ctx: PassContext, env: Environment) -> tuple[PassResult, Decision]:
    result = run_pass(ctx, env.name, trigger="test")
    assert result.ok, result.error
    return result, auto.after_pass(env, result, _waiter(ctx, env))


def _notes(remote: Remote, sha: str, env: str) -> list[str]:
    text = git(remote.bare, "notes", "--ref=reconciler", "show", sha, check=False)
    return [r.outcome.value for r in parse_note(text) if r.environment == env]


def _reverts_of(remote: Remote, sha: str) -> int:
    log = git(remote.bare, "log", "--format=%(trailers:key=Rollback-Of,valueonly)", "main")
    return sum(1 for line in log.splitlines() if line.strip() == sha)


def _promote_and_merge(writer: GitWriter, remote: Remote, n: Names, tmp_path: Path) -> tuple[str, str]:
    with writer.locked():
        writer.sync()
        result = promote(writer, _envs(remote, tmp_path), n.dev, n.stg, all_images=True)
    assert result.commit and result.branch
    return result.commit, remote.merge(result.branch, who="Mia Merger <mia@example.test>")


def test_promote_history_manual_revert_and_automatic_rollback(
    kube: KubeClient, names: Names, tmp_path: Path, cache_dir: Path
) -> None:
    n = names
    remote = make_remote(tmp_path / "repo", _repo_files(n, timeout=40))
    envs = _envs(remote, tmp_path)
    dev, stg = envs[n.dev], envs[n.stg]
    ctx = PassContext(source=GitSource(str(remote.bare), "main", cache_dir), client=kube)
    writer = GitWriter(str(remote.bare), "main", tmp_path / "cli", backoff=0.05)
    auto = AutoRollback(GitWriter(str(remote.bare), "main", cache_dir, backoff=0.05))

    # dev runs 0.2.0@B and is verified healthy; staging runs 0.1.0@A
    _, d = _settle(auto, ctx, dev)
    assert d.outcome is Outcome.HEALTHY, d
    _, d = _settle(auto, ctx, stg)
    assert d.outcome is Outcome.HEALTHY and d.promotions == []
    assert _image(kube, n.ns_stg) == f"{CLOCK}:0.1.0@{DIGEST_A}"

    # promote dev → staging through a branch; the merge is what promotes
    promotion, merge = _promote_and_merge(writer, remote, n, tmp_path)
    result, d = _settle(auto, ctx, stg)
    assert result.revision == f"main@sha1:{merge}"
    assert _image(kube, n.ns_stg) == f"{CLOCK}:0.2.0@{DIGEST_B}"
    assert d.outcome is Outcome.HEALTHY and d.promotions == [promotion], d
    assert _notes(remote, promotion, n.stg) == ["applied", "healthy"]
    writer.sync()
    entry = timeline(writer, stg)[0]
    assert (entry.kind, entry.sha, entry.merged_by, entry.outcome) == (
        "promotion",
        promotion,
        "Mia Merger <mia@example.test>",
        "healthy",
    )
    assert entry.moved[0].after == f"{CLOCK}:0.2.0@{DIGEST_B}"

    # a person reverts the promotion by hand: an ordinary change, applied; the daemon reverts nothing
    remote.pull()
    git(remote.work, "revert", "--no-edit", promotion, who="Rita Reviewer <rita@example.test>")
    git(remote.work, "push", "-q", "origin", "HEAD:main")
    _, d = _settle(auto, ctx, stg)
    assert d.outcome is Outcome.HEALTHY and d.promotions == [] and not d.revert_commits
    assert _image(kube, n.ns_stg) == f"{CLOCK}:0.1.0@{DIGEST_A}"
    writer.sync()
    entries = timeline(writer, stg)
    assert next(e for e in entries if e.sha == promotion).reverted_by == remote.head()

    # a bad release reaches dev (fine there), is verified, promoted and merged
    remote.pull()
    remote.write("overlays/dev/kustomization.yaml", kustomization("0.3.0", DIGEST_C))
    remote.commit("dev: clock 0.3.0")
    _, d = _settle(auto, ctx, dev)
    assert d.outcome is Outcome.HEALTHY
    bad_promotion, bad_merge = _promote_and_merge(writer, remote, n, tmp_path)
    commits_before = remote.count()

    # the daemon is killed while it waits for staging's health gate...
    crashed = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "crashed", backoff=0.05))
    stop = threading.Event()
    stop.set()
    result = run_pass(ctx, n.stg, trigger="test")
    assert result.ok and _image(kube, n.ns_stg) == f"{CLOCK}:0.3.0@{DIGEST_C}"
    with pytest.raises(RuntimeError, match="daemon stopping"):
        crashed.after_pass(stg, result, _waiter(ctx, stg, stop))
    assert _notes(remote, bad_merge, n.stg) == ["applied"] and remote.count() == commits_before

    # ...and restarted: the gate fails (ReplicaFailure), one revert commit is pushed
    restarted = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "restarted", backoff=0.05))
    d = restarted.after_pass(stg, run_pass(ctx, n.stg, trigger="restart"), _waiter(ctx, stg))
    assert d.outcome is Outcome.DEGRADED and d.reverted == [bad_promotion] and len(d.revert_commits) == 1, d
    assert remote.count() == commits_before + 1 and _reverts_of(remote, bad_promotion) == 1
    assert _notes(remote, bad_merge, n.stg) == ["applied", "degraded", "reverted"]
    # a third instance (another restart) on the same revision: nothing more
    again = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "again", backoff=0.05))
    assert again.after_pass(stg, result, _waiter(ctx, stg)).skipped == "already settled"

    # the revert is applied: the previous version is healthy again, and it is never reverted itself
    result, d = _settle(restarted, ctx, stg)
    assert result.revision == f"main@sha1:{remote.head()}"
    assert _image(kube, n.ns_stg) == f"{CLOCK}:0.1.0@{DIGEST_A}"
    assert d.outcome is Outcome.HEALTHY and d.promotions == [] and not d.revert_commits, d
    assert remote.count() == commits_before + 1
    writer.sync()
    auto_rollback = next(e for e in timeline(writer, stg) if e.kind == "rollback" and e.automatic)
    assert auto_rollback.rollback_of == bad_promotion and "health gate degraded" in (
        auto_rollback.reason or ""
    )


async def test_daemon_records_events_and_reverts_once_across_a_restart(
    kubeconfig: Path, kube: KubeClient, names: Names, tmp_path: Path, cache_dir: Path, nats_url: str
) -> None:
    n = names
    remote = make_remote(tmp_path / "repo", _repo_files(n, timeout=40))
    envs = await asyncio.to_thread(_envs, remote, tmp_path)
    writer = GitWriter(str(remote.bare), "main", tmp_path / "cli", backoff=0.05)
    # dev verified healthy (driven directly)
    ctx = PassContext(source=GitSource(str(remote.bare), "main", tmp_path / "dev-cache"), client=kube)
    dev_auto = AutoRollback(GitWriter(str(remote.bare), "main", tmp_path / "dev-cache", backoff=0.05))
    await asyncio.to_thread(lambda: _settle(dev_auto, ctx, envs[n.dev]))
    remote.pull()
    remote.write("overlays/dev/kustomization.yaml", kustomization("0.3.0", DIGEST_C))
    remote.commit("dev: clock 0.3.0")
    await asyncio.to_thread(lambda: _settle(dev_auto, ctx, envs[n.dev]))

    events: list[dict[str, Any]] = []
    listener = await nats.connect(nats_url, name="test-listener")

    async def on_event(msg: Any) -> None:
        events.append(json.loads(msg.data))

    await listener.subscribe(promotion_subject(n.stg), cb=on_event)
    await listener.flush()  # the server has the subscription before anything is published
    crashed: list[str] = []

    def start_daemon(stop: threading.Event) -> tuple[Daemon, list[Decision]]:
        settings = DaemonSettings(
            repo=str(remote.bare),
            envs=[n.stg],
            kubeconfig=kubeconfig,
            nats_url=nats_url,
            cache_dir=cache_dir,
            watch_local=False,
            poll_interval=3600,
            drift_watch=False,
            promotion_records=False,  # this test drives its own AutoRollback to crash it mid-wait
        )
        decisions: list[Decision] = []
        lock = threading.Lock()
        daemon = Daemon(settings)
        holder: dict[str, AutoRollback] = {}

        def on_result(result: PassResult) -> None:
            loop = asyncio.get_running_loop()
            if "auto" not in holder:
                assert daemon.bus is not None
                holder["auto"] = AutoRollback(
                    GitWriter(str(remote.bare), "main", cache_dir, backoff=0.05),
                    bus_publisher(daemon.bus, loop),
                )
            env = daemon.envs[result.environment].env
            assert env is not None

            def settle() -> None:
                with lock:
                    try:
                        d = holder["auto"].after_pass(env, result, _waiter(daemon.ctx, env, stop))
                    except RuntimeError:
                        crashed.append(result.revision)
                        return
                decisions.append(d)
                if d.retrigger:
                    loop.call_soon_threadsafe(daemon.trigger, env.name, "rollback")

            task = loop.create_task(asyncio.to_thread(settle))
            daemon._background.add(task)
            task.add_done_callback(daemon._background.discard)

        daemon.on_result = on_result
        return daemon, decisions

    first_stop = threading.Event()
    first, first_decisions = start_daemon(first_stop)
    await first.start()
    try:
        await _until(lambda: any(d.outcome is Outcome.HEALTHY for d in first_decisions), 60)
        promotion, merge = await asyncio.to_thread(_promote_and_merge, writer, remote, n, tmp_path)
        count = remote.count()
        first_stop.set()  # the daemon will be killed while it waits for the gate
        await first.trigger(n.stg, "git-push")
        await _until(lambda: _notes(remote, merge, n.stg) == ["applied"], 30)
        await _until(lambda: crashed, 30)
    finally:
        await first.stop()
        await asyncio.sleep(0.5)
    assert remote.count() == count

    second, decisions = start_daemon(threading.Event())
    await second.start()
    try:
        await _until(lambda: any(d.revert_commits for d in decisions), 60)
        revert = next(d for d in decisions if d.revert_commits).revert_commits[-1]
        # the daemon reconciles the revert commit it pushed: the previous version is healthy again
        await _until(
            lambda: any(d.revision == revert and d.outcome is Outcome.HEALTHY for d in decisions), 60
        )
        assert _image(kube, n.ns_stg) == f"{CLOCK}:0.1.0@{DIGEST_A}"
        await _until(lambda: any(e["kind"] == "rollback" for e in events), 10)
    finally:
        await second.stop()
        await listener.close()
    assert remote.count() == count + 1 and _reverts_of(remote, promotion) == 1
    assert _notes(remote, merge, n.stg) == ["applied", "degraded", "reverted"]
    kinds = [(e["kind"], e.get("outcome"), e["revision"]) for e in events if e["revision"] in (merge, revert)]
    assert ("outcome", "degraded", merge) in kinds and ("rollback", "reverted", merge) in kinds
    assert ("outcome", "healthy", revert) in kinds


async def _until(pred: Callable[[], Any], timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = await asyncio.to_thread(pred)
        if value:
            return value
        await asyncio.sleep(0.2)
    raise AssertionError(f"not within {timeout} s")
