"""The daemon started while its Git remote is unreachable (the bare repository moved away) keeps running:
it retries the first fetch with backoff, answers /healthz, reports the source failure on /readyz, the
status JSON and one warning per attempt, stops cleanly on request, and starts normally once the remote is
back. An unknown ``--env`` at a revision that was fetched still fails fast.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from _fault_support import EnvRepo, wait_for
from reconciler_testing import daemon_settings, until

from reconciler.cluster.client import KubeClient
from reconciler.devcluster.process import free_port
from reconciler.model import ObjectRef, PassResult
from reconciler.runtime import Daemon
from reconciler.runtime.daemon import SOURCE_RETRY_INITIAL, SOURCE_RETRY_JITTER, SOURCE_RETRY_MAX
from reconciler.runtime.http import start_http
from reconciler.settings import DaemonSettings

pytestmark = pytest.mark.integration

RECONCILER = Path(sys.executable).parent / "reconciler"
HANG_GUARD = 60.0  # seconds: only keeps a broken build from hanging the suite, never a performance bound


def _seed(repo: EnvRepo, namespace: str, value: str = "one") -> None:
    """envs/dev.yaml and an overlay with one ConfigMap ``boot`` (``data.key: value``), pushed."""
    repo.write(
        "envs/dev.yaml",
        f"overlay: overlays/dev\nnamespace: {namespace}\n"
        "sync: {interval: 3600}\nhealth: {noControllerAfter: 5}\n",
    )
    repo.write("overlays/dev/kustomization.yaml", "resources:\n- cm.yaml\n")
    repo.write(
        "overlays/dev/cm.yaml",
        f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: boot\ndata:\n  key: {value}\n",
    )
    repo.commit(f"dev: boot ({value})")


@pytest.fixture
def remote_away(env_repo: EnvRepo) -> Iterator[Path]:
    """Moves the bare remote away (unreachable) for the test; puts it back afterwards if the test did not.
    Yields where it was moved."""
    away = env_repo.remote.with_name("remote-away.git")
    yield away
    if away.exists() and not env_repo.remote.exists():
        away.rename(env_repo.remote)


def _get(port: int, path: str) -> tuple[int, Any]:
    """``GET http://127.0.0.1:<port><path>``: the status and the JSON body."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=15) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def _settings(env_repo: EnvRepo, kubeconfig: Path, cache: Path) -> DaemonSettings:
    return daemon_settings(env_repo.remote, kubeconfig, cache, poll_interval=0.5, drift_watch=False)


@pytest.fixture
async def started_http(
    env_repo: EnvRepo, kubeconfig: Path, tmp_path: Path
) -> AsyncIterator[tuple[Daemon, int]]:
    """An in-process daemon (not started) and its HTTP server on 127.0.0.1 (a free port)."""
    daemon = Daemon(_settings(env_repo, kubeconfig, tmp_path / "cache"))
    runner = await start_http(daemon, "127.0.0.1", 0)
    try:
        yield daemon, int(runner.addresses[0][1])
    finally:
        await daemon.stop()
        await runner.cleanup()


def _retry_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [
        r
        for r in caplog.records
        if r.name == "reconciler.daemon" and r.levelno == logging.WARNING and "cannot load" in r.getMessage()
    ]


async def test_daemon_started_while_remote_unreachable_starts_when_it_returns(
    env_repo: EnvRepo,
    remote_away: Path,
    kube: KubeClient,
    namespace: str,
    started_http: tuple[Daemon, int],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="reconciler.daemon")
    _seed(env_repo, namespace)
    daemon, port = started_http
    url = str(env_repo.remote)
    ref = ObjectRef(kind="ConfigMap", namespace=namespace, name="boot")
    results: list[PassResult] = []
    daemon.on_result = results.append
    env_repo.remote.rename(remote_away)

    starting = asyncio.create_task(daemon.start())
    await until(lambda: daemon.source_attempts >= 3, HANG_GUARD, "three failed attempts")
    assert not starting.done(), "start() gave up while the remote was unreachable"
    assert not daemon.source_loaded and url in daemon.source_error

    # the process is alive; not ready, and the reason names the repository
    assert (await asyncio.to_thread(_get, port, "/healthz")) == (200, {"status": "ok"})

    def not_ready_for_the_source() -> Any:
        status, body = _get(port, "/readyz")
        detail = body["checks"]["git"]["detail"]
        return (status, body) if status == 503 and url in detail and "cannot load" in detail else None

    _, ready = await asyncio.to_thread(
        wait_for, not_ready_for_the_source, HANG_GUARD, "/readyz names the source"
    )
    assert ready["ready"] is False and ready["checks"]["git"]["ok"] is False
    assert "cannot load the environments" in ready["checks"]["git"]["detail"]
    status, rows = await asyncio.to_thread(_get, port, "/api/status")
    assert status == 200 and [r["name"] for r in rows] == ["dev"]
    assert url in rows[0]["error"] and rows[0]["ok"] is None

    # one warning per failed attempt, naming the repository, without a traceback; growing backoff
    warnings = _retry_warnings(caplog)
    assert len(warnings) == daemon.source_attempts
    assert all(url in w.getMessage() and w.exc_info is None and not w.exc_text for w in warnings)
    delays = [
        float(m.group(1)) for w in warnings if (m := re.search(r"retrying in ([0-9.]+) s", w.getMessage()))
    ]
    assert len(delays) == len(warnings)
    assert SOURCE_RETRY_INITIAL <= delays[0] <= SOURCE_RETRY_INITIAL + SOURCE_RETRY_JITTER + 0.05
    assert all(d <= SOURCE_RETRY_MAX + SOURCE_RETRY_JITTER + 0.05 for d in delays)
    assert delays[2] > delays[0]

    # nothing was started or applied meanwhile
    assert daemon.envs == {} and not results
    assert kube.get(ref) is None
    assert daemon.client.calls["apply"] == 0

    # the remote is back: start() completes unattended and the first pass applies the environment
    remote_away.rename(env_repo.remote)
    await asyncio.wait_for(starting, HANG_GUARD)
    assert daemon.source_loaded and daemon.source_error == ""
    assert list(daemon.envs) == ["dev"]
    ok = await until(lambda: [r for r in results if r.ok], HANG_GUARD, "the first pass after the remote")
    assert ok[0].environment == "dev"
    assert (kube.get(ref) or {}).get("data") == {"key": "one"}

    def ready_now() -> Any:
        status, body = _get(port, "/readyz")
        return body if status == 200 else None

    body = await asyncio.to_thread(wait_for, ready_now, HANG_GUARD, "/readyz ready once the remote is back")
    assert body["checks"]["git"]["ok"] is True and url in body["checks"]["git"]["detail"]
    status, rows = await asyncio.to_thread(_get, port, "/api/status")
    assert [(r["name"], r["ok"], r["error"]) for r in rows][:1] == [("dev", True, "")]
    assert any("after" in r.getMessage() and "failed attempts" in r.getMessage() for r in caplog.records)


async def test_stop_while_waiting_for_the_remote_returns_cleanly(
    env_repo: EnvRepo,
    remote_away: Path,
    kubeconfig: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="reconciler.daemon")
    env_repo.remote.rename(remote_away)
    daemon = Daemon(_settings(env_repo, kubeconfig, tmp_path / "cache"))
    starting = asyncio.create_task(daemon.start())
    try:
        await until(lambda: daemon.source_attempts >= 2, HANG_GUARD, "two failed attempts")
        await daemon.stop()
        assert await asyncio.wait_for(starting, HANG_GUARD) is None  # returns, does not raise
    finally:
        if not starting.done():
            starting.cancel()
    # nothing was started; every failed attempt was logged once
    assert not daemon.source_loaded and daemon.envs == {} and daemon._tasks == [] and daemon.bus is None
    assert len(_retry_warnings(caplog)) == daemon.source_attempts


def _run_argv(env_repo: EnvRepo, kubeconfig: Path, *extra: str) -> list[str]:
    return [
        str(RECONCILER),
        "run",
        "--repo",
        str(env_repo.remote),
        "--kubeconfig",
        str(kubeconfig),
        "--log-format",
        "text",
        *extra,
    ]


def _env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "RECONCILER_CACHE_DIR": str(tmp_path / "cli-cache"), "COLUMNS": "200"}


def test_cli_run_waits_for_an_unreachable_remote_and_stops_on_sigterm(
    env_repo: EnvRepo, remote_away: Path, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    _seed(env_repo, namespace)
    url = str(env_repo.remote)
    env_repo.remote.rename(remote_away)
    port = free_port()
    log = tmp_path / "daemon.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            _run_argv(env_repo, kubeconfig, "--env", "dev", "--http", f"127.0.0.1:{port}"),
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(tmp_path),
        )
    try:

        def not_ready_for_the_source() -> Any:
            try:
                status, body = _get(port, "/readyz")
            except (urllib.error.URLError, OSError):
                return None
            detail = body["checks"]["git"]["detail"]
            return (
                body if status == 503 and url in detail and "cannot load the environments" in detail else None
            )

        wait_for(not_ready_for_the_source, HANG_GUARD, "/readyz of `reconciler run` names the source")
        wait_for(lambda: log.read_text().count("cannot load the environments") >= 2, HANG_GUARD, "warnings")
        assert proc.poll() is None, log.read_text()
        assert _get(port, "/healthz") == (200, {"status": "ok"})
        text = log.read_text()
        lines = [line for line in text.splitlines() if "cannot load the environments" in line]
        assert all(url in line and "warn" in line.lower() for line in lines), lines
        assert "Traceback" not in text and "reconciling dev" not in text
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=HANG_GUARD) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert "Traceback" not in log.read_text()


def test_cli_run_unknown_env_still_fails_fast(
    env_repo: EnvRepo, kubeconfig: Path, namespace: str, tmp_path: Path
) -> None:
    _seed(env_repo, namespace)
    proc = subprocess.run(
        _run_argv(env_repo, kubeconfig, "--env", "nope", "--http", ""),
        capture_output=True,
        text=True,
        env=_env(tmp_path),
        timeout=HANG_GUARD,
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "environment 'nope' is not defined in envs/" in proc.stderr
    assert "(defined: dev)" in proc.stderr
    assert "cannot load the environments" not in proc.stdout + proc.stderr


async def test_one_invalid_environment_file_does_not_stop_the_others(
    env_repo: EnvRepo, kubeconfig: Path, kube: KubeClient, namespace: str, tmp_path: Path
) -> None:
    """At start-up an invalid envs/prod.yaml leaves dev running; prod's passes name the file and field,
    and prod starts reconciling with the commit that fixes it, without a restart."""
    _seed(env_repo, namespace)
    # prod's own overlay (one owner per object: rendering dev's objects again would block prod's pass)
    env_repo.write("overlays/prod/kustomization.yaml", "resources:\n- ../dev\nnamePrefix: prod-\n")
    broken = f"overlay: overlays/prod\nnamespace: {namespace}\nsync: {{interval: -5}}\n"
    env_repo.write("envs/prod.yaml", broken)
    env_repo.commit("prod: a broken interval")
    settings = _settings(env_repo, kubeconfig, tmp_path / "cache").model_copy(update={"envs": []})
    results: list[PassResult] = []
    daemon = Daemon(settings, on_result=results.append)
    await daemon.start()
    try:
        assert sorted(daemon.envs) == ["dev", "prod"]
        dev = await until(lambda: [r for r in results if r.environment == "dev" and r.ok], HANG_GUARD, "dev")
        assert dev
        assert kube.get(ObjectRef(kind="ConfigMap", namespace=namespace, name="boot")) is not None
        bad = await until(lambda: [r for r in results if r.environment == "prod"], HANG_GUARD, "prod's pass")
        assert not bad[0].ok and "envs/prod.yaml" in bad[0].error and "interval" in bad[0].error
        env_repo.write("envs/prod.yaml", f"overlay: overlays/prod\nnamespace: {namespace}\n")
        env_repo.commit("prod: fixed")
        fixed = await until(
            lambda: [r for r in results if r.environment == "prod" and r.ok], HANG_GUARD, "prod after the fix"
        )
        assert fixed
    finally:
        await daemon.stop()
