"""Crash consistency: the daemon is SIGKILLed at a failpoint of a pass (fetch, render, inventory, apply,
prune, record, commit, push, ack) once per run of a scripted workload — 100 runs by default — and
restarted. After every run: it converged (Git, cluster and inventory match the harness's model), no
webhook event was lost (JetStream redelivers what the dead daemon had not acknowledged), the inventory
listed every live object the reconciler had written at the moment of death; at the end: no empty commit
and no version or webhook event committed twice.

``RECONCILER_CRASH_RUNS`` (default 100) and ``RECONCILER_CRASH_SEED`` (default 20261129) choose the
workload; the figures are printed as ``RELIABILITY crash.*`` lines and in the session summary.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections import Counter
from pathlib import Path

import pytest
from _crash_support import (
    DaemonProcess,
    Model,
    Repo,
    Webhooks,
    differences,
    initial_configmaps,
    percentile,
    plan_workload,
    untracked,
    wait_until,
)
from reconciler_testing import report_figure

from reconciler.cluster.client import KubeClient

pytestmark = pytest.mark.integration

RUNS = int(os.environ.get("RECONCILER_CRASH_RUNS", "100"))
SEED = int(os.environ.get("RECONCILER_CRASH_SEED", "20261129"))
ACK_WAIT = 2.0  # seconds before JetStream redelivers an image event the dead daemon held
CONVERGE_TIMEOUT = 90.0


@pytest.mark.timeout(3600)
def test_sigkill_at_failpoints_converges_and_loses_nothing(
    tmp_path: Path, kube: KubeClient, kubeconfig: Path, nats_url: str, namespace: str
) -> None:
    steps = plan_workload(RUNS, SEED)
    model = Model(configmaps=initial_configmaps())
    cleanup = contextlib.ExitStack()
    repo = Repo(tmp_path / "repo", namespace, model)
    cleanup.callback(repo.close)
    hooks = Webhooks(tmp_path, nats_url)
    cleanup.callback(hooks.close)
    daemon = DaemonProcess(tmp_path, repo.url, kubeconfig, nats_url, ACK_WAIT)
    cleanup.callback(daemon.stop)
    print(f"crash harness: {RUNS} runs, seed {SEED}, log {daemon.log}")
    kills: Counter[str] = Counter()
    unreached: list[str] = []
    not_converged: list[str] = []
    inventory_losses: list[str] = []
    recovery: list[float] = []
    pushed_at = int(time.time())
    try:
        daemon.start()
        first = wait_until(lambda: not differences(kube, repo, model), CONVERGE_TIMEOUT, 0.2)
        assert first, f"the first start did not converge: {differences(kube, repo, model)}"
        for step in steps:
            model.apply(step)
            before = after = ""
            if step.add or step.edit or step.remove:
                before, after = repo.change(step, model)
            daemon.arm(step.point, step.hit)
            if after:
                assert hooks.git_pushed(repo.url, before, after) == 202
            if step.version:
                pushed_at += 1
                assert hooks.image_pushed(step.version, pushed_at) == 202
                if step.duplicate == "same":
                    assert hooks.image_pushed(step.version, pushed_at) == 202
                elif step.duplicate == "again":
                    assert hooks.image_pushed(step.version, pushed_at + 1000) == 202
            label = f"run {step.index} ({step.kind}, {step.point}={step.hit})"
            code = daemon.wait_dead(CONVERGE_TIMEOUT)
            if code is None:  # the step never reached its point: stop it like a crash anyway
                unreached.append(label)
                daemon.stop()
            else:
                fired = daemon.last_failpoint()
                assert code == -9, f"{label}: the daemon exited with {code}, not by SIGKILL; see {daemon.log}"
                kills[fired or "?"] += 1
            assert wait_until(daemon.group_gone, 10), f"{label}: processes of the daemon's group survived"
            lost = untracked(kube, repo.url, namespace)
            if lost:
                inventory_losses.append(f"{label}: {lost}")
            t0 = time.monotonic()
            daemon.start()
            if wait_until(lambda: not differences(kube, repo, model), CONVERGE_TIMEOUT, 0.1):
                recovery.append(time.monotonic() - t0)
            else:
                not_converged.append(f"{label}: {differences(kube, repo, model)}")
        audit = repo.audit(model.versions)
    finally:
        cleanup.close()
    duplicates = sum(n - 1 for n in audit["duplicate_versions"].values()) + sum(
        n - 1 for n in audit["duplicate_events"].values()
    )
    converged = RUNS - len(not_converged)
    summary = {
        "runs": RUNS,
        "killed": sum(kills.values()),
        "converged": converged,
        "events_lost": len(audit["lost"]),
        "duplicate_commits": duplicates,
        "empty_commits": len(audit["empty"]),
        "inventory_losses": len(inventory_losses),
        "commits": audit["commits"],
        "image_versions": len(model.versions),
        "seed": SEED,
    }
    report_figure("crash.recovery-p50", percentile(recovery, 0.5), **summary)
    report_figure("crash.recovery-p95", percentile(recovery, 0.95))
    report_figure("crash.recovery-max", max(recovery, default=0.0))
    print("kills by failpoint: " + ", ".join(f"{p} {n}" for p, n in sorted(kills.items())))
    assert not unreached, f"failpoints never reached: {unreached}"
    assert not not_converged, f"{len(not_converged)} runs did not converge: {not_converged[:5]}"
    assert not inventory_losses, f"objects missing from the inventory at a crash: {inventory_losses[:5]}"
    assert not audit["lost"], f"image versions never committed: {audit['lost']}"
    assert not audit["empty"], f"empty commits: {audit['empty']}"
    assert not audit["duplicate_versions"], f"versions committed twice: {audit['duplicate_versions']}"
    assert not audit["duplicate_events"], f"webhook events committed twice: {audit['duplicate_events']}"
    assert sum(kills.values()) == RUNS
    assert set(kills) >= {"apply", "prune", "commit", "push", "ack", "render"} or RUNS < 50, kills
