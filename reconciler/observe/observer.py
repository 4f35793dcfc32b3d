"""One object that turns the daemon's results and drift reports into metrics, log lines and Kubernetes
Events; :meth:`Observer.attach` chains it onto a daemon's ``on_result``/``on_drift`` hooks."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from pydantic import ValidationError

from reconciler.model import Action, ObjectRef, PassResult
from reconciler.observe.events import DriftEvent, EventRecorder
from reconciler.observe.logging import get_logger, log_context
from reconciler.observe.metrics import Metrics, default_metrics

ResultHook = Callable[[PassResult], None]
DriftHook = Callable[[dict[str, Any]], None]


class Hooked(Protocol):
    """What :meth:`Observer.attach` needs: the daemon's two hook attributes."""

    on_result: ResultHook | None
    on_drift: DriftHook | None


class GitTimer(Protocol):
    """A Git source that times its fetches (:class:`reconciler.source.GitSource`)."""

    @property
    def last_fetch_seconds(self) -> float: ...


class Observer:
    """Metrics, structured log lines and Kubernetes Events for every pass and drift report.

    Args:
        metrics: where to count (default :func:`default_metrics`, the process-wide registry).
        recorder: writes Kubernetes Events; ``None`` writes none.

    :attr:`refs` maps ``str(ref)`` to the full :class:`ObjectRef` of every managed object (from each
    pass's changeset), for drift events that name their object only as ``Kind/namespace/name``.
    """

    def __init__(self, metrics: Metrics | None = None, recorder: EventRecorder | None = None) -> None:
        self.metrics = metrics or default_metrics()
        self.recorder = recorder
        self.refs: dict[str, ObjectRef] = {}
        self.log = get_logger("reconciler.observe")
        self.source: GitTimer | None = None

    def on_result(self, result: PassResult) -> None:
        """Count the pass, log it (one line for the pass, one per changed object) and queue its Events."""
        self.metrics.observe_pass(result)
        self._observe_fetch(result)
        for c in result.changes.entries:
            if c.action is not Action.DELETED:
                self.refs[str(c.ref)] = c.ref
        with log_context(environment=result.environment, revision=result.revision or None):
            level = "info" if result.ok else "error"
            getattr(self.log, level)(
                "pass.finished",
                ok=result.ok,
                trigger=result.trigger,
                duration_s=result.duration,
                changes=result.changes.summary(),
                error=result.error or None,
                warnings=result.warnings or None,
            )
            for c in result.changes.entries:
                if c.action in (Action.UNCHANGED, Action.SKIPPED):
                    continue
                h = result.health.get(str(c.ref))
                self.log.info(
                    "object." + c.action.value,
                    object=str(c.ref),
                    health=h.state.value if h else None,
                    message=c.message or None,
                )
        if self.recorder is not None:
            self.recorder.submit_pass(result)

    def _observe_fetch(self, result: PassResult) -> None:
        """The pass's Git fetch: its duration from the source when it succeeded (the pass has a revision);
        a failure when the pass stopped at ``git fetch``/``git clone`` (duration: the whole pass)."""
        if self.source is None:
            return
        if result.revision:
            self.metrics.observe_git("fetch", self.source.last_fetch_seconds)
        elif result.error.startswith(("git fetch", "git clone")):
            self.metrics.observe_git("fetch", result.duration, ok=False)

    def on_drift(self, event: dict[str, Any]) -> None:
        """Count the drift report, log it and queue its Event (paths only, never values)."""
        self.metrics.observe_drift(event)
        try:
            drift = DriftEvent.model_validate(event)
        except ValidationError as exc:
            self.log.warning("drift.malformed_event", error=str(exc))
            return
        with log_context(environment=drift.environment, object=drift.object):
            verb = "corrected" if drift.corrected else "failed" if drift.error else "detected"
            self.log.warning(
                "drift." + verb,
                paths=drift.described_paths(),
                mode=drift.mode,
                managers=drift.managers,
                error=drift.error or None,
            )
        if self.recorder is not None:
            self.recorder.submit_drift(drift, self.refs)

    def attach(self, daemon: Hooked, source: GitTimer | None = None) -> None:
        """Chain :meth:`on_result` and :meth:`on_drift` after the daemon's existing hooks (kept).

        Args:
            daemon: the daemon (its ``on_result``/``on_drift`` are replaced by chains).
            source: the daemon's Git source, whose ``last_fetch_seconds`` each pass's fetch metric reads.
        """
        prev_result, prev_drift = daemon.on_result, daemon.on_drift
        self.source = source

        def result_hook(result: PassResult) -> None:
            if prev_result is not None:
                prev_result(result)
            self.on_result(result)

        def drift_hook(event: dict[str, Any]) -> None:
            if prev_drift is not None:
                prev_drift(event)
            self.on_drift(event)

        daemon.on_result = result_hook
        daemon.on_drift = drift_hook

    def close(self, timeout: float = 10.0) -> None:
        """Flush (waiting up to ``timeout`` seconds) and stop the event recorder."""
        if self.recorder is not None:
            self.recorder.close(timeout=timeout)
