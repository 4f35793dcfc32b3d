"""Suspending, resuming and syncing environments: the public API behind ``reconciler suspend|resume|sync``,
the status page's buttons and the daemon's actions (``POST /api/env/<name>/suspend|resume|sync``).

**Suspension.** A suspended environment gets no passes: nothing is applied or pruned and drift is reported,
never corrected, until it is resumed (the same idea as Flux's ``spec.suspend`` and ``flux suspend``). The
state of an environment is one :class:`Suspension` document:

* with NATS (the daemon's ``nats_url``), in the JetStream key-value bucket :data:`CONTROL_BUCKET`
  (``reconciler-control``), key = the environment's name: every daemon replica reads the same value, and it
  survives restarts of the daemon and of NATS (file storage). Each daemon also keeps the last value it read
  in its state directory (below), which it uses while NATS cannot be reached; a suspension or resumption
  asked for while NATS is unreachable is refused (:class:`ControlUnavailable`), since the other replicas
  could not see it;
* without NATS, in ``<cache_dir>/control/<env>.json`` (the daemon's state directory): it survives restarts of
  that daemon, which is then the only replica.

A daemon reads the state before every pass (one key-value read) and before it corrects drift.

**Record.** Every action is a :class:`ControlRecord`: published on NATS as ``reconciler.control.<env>`` (when
there is a bus) and, when a Git clone is given, appended as a JSON line to the note on the branch head under
:data:`CONTROL_NOTES_REF` (``refs/notes/reconciler-control``), so that ``reconciler history ENV`` lists who
suspended, resumed or synced the environment, when and why (:func:`control_records`).

**Sync.** :func:`request_sync` publishes ``reconciler.reconcile.request.<env>`` (the subject the daemons'
trigger consumers take): the daemon that reconciles the environment runs a pass at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from reconciler.bus.subjects import control_subject, reconcile_request_subject, subject_token
from reconciler.errors import ReconcilerError
from reconciler.model.control import (
    CONTROL_NOTES_REF,
    MAX_REASON,
    ControlAction,
    ControlRecord,
    Suspension,
    control_records,
)
from reconciler.observe.logging import get_logger

if TYPE_CHECKING:
    from reconciler.bus import Bus
    from reconciler.source.gitops import GitWriter

log = get_logger("reconciler.control")

#: The JetStream key-value bucket holding every environment's :class:`Suspension` (key: its name).
CONTROL_BUCKET = "reconciler-control"
#: Revisions of each key the bucket keeps (the history of suspensions).
BUCKET_HISTORY = 16


class ControlUnavailable(ReconcilerError):
    """The store of suspensions cannot be written now (NATS unreachable): nothing was changed."""

    retryable = True


def suspension_text(state: Suspension) -> str:
    """``suspended by <who> at <UTC time>: <reason>`` (what the status page and a skipped pass say)."""
    from datetime import UTC, datetime

    when = datetime.fromtimestamp(state.at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return f"suspended by {state.by} at {when}" + (f": {state.reason}" if state.reason else "")


# -- the store ---------------------------------------------------------------------------------------------


class ControlStore:
    """The suspensions of one installation: JetStream key-value when ``bus`` is given, with the files under
    ``directory`` as the last known values; the files alone without a bus.

    Args:
        directory: where ``<env>.json`` files live (created when needed), e.g. ``<cache_dir>/control``.
        bus: the NATS connection (``None``: no NATS). It may be disconnected: reads then use the files,
            writes raise :class:`ControlUnavailable`.
    """

    def __init__(self, directory: Path, bus: Bus | None = None) -> None:
        self.directory = directory
        self.bus = bus
        self._kv: Any = None

    # -- files

    def _path(self, env: str) -> Path:
        return self.directory / f"{subject_token(env)}.json"

    def read_file(self, env: str) -> Suspension | None:
        """The last known state of ``env`` from its file (``None``: never suspended, or unreadable)."""
        path = self._path(env)
        try:
            return Suspension.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except (OSError, ValidationError, ValueError) as exc:
            log.warning("control.file_unreadable", path=str(path), error=str(exc).splitlines()[0])
            return None

    def write_file(self, state: Suspension) -> None:
        """Write ``state`` to its file atomically (a temporary file renamed over it)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".control-", suffix=".json")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(state.model_dump_json())
            os.replace(tmp, self._path(state.environment))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    # -- key-value

    @property
    def uses_nats(self) -> bool:
        """Whether the key-value bucket is the store (a bus was given)."""
        return self.bus is not None

    async def _bucket(self) -> Any:
        assert self.bus is not None
        if self._kv is None:
            from nats.js.api import KeyValueConfig, StorageType
            from nats.js.errors import BucketNotFoundError

            js = self.bus.js
            try:
                self._kv = await js.key_value(CONTROL_BUCKET)
            except BucketNotFoundError:
                self._kv = await js.create_key_value(
                    KeyValueConfig(bucket=CONTROL_BUCKET, history=BUCKET_HISTORY, storage=StorageType.FILE)
                )
        return self._kv

    async def get(self, env: str) -> Suspension | None:
        """The state of ``env``: from the bucket when NATS is connected (and written to its file), else from
        its file. ``None``: never suspended."""
        if self.bus is None or not self.bus.connected:
            return self.read_file(env)
        from nats.js.errors import KeyDeletedError, KeyNotFoundError

        try:
            kv = await self._bucket()
            entry = await kv.get(subject_token(env))
        except (KeyNotFoundError, KeyDeletedError):
            state = None
        except Exception as exc:  # NATS went away meanwhile: the last known value
            self._kv = None
            log.warning("control.kv_unreadable", environment=env, error=str(exc) or type(exc).__name__)
            return self.read_file(env)
        else:
            try:
                state = Suspension.model_validate_json(entry.value or b"")
            except ValidationError as exc:
                log.warning("control.kv_invalid", environment=env, error=str(exc).splitlines()[0])
                return self.read_file(env)
        current = self.read_file(env)
        if state is not None and state != current:
            with contextlib.suppress(OSError):
                self.write_file(state)
        elif state is None and current is not None:
            with contextlib.suppress(OSError):
                self._path(env).unlink()
        return state

    async def put(self, state: Suspension) -> None:
        """Store ``state`` (in the bucket and the file, or the file alone without NATS).

        Raises:
            ControlUnavailable: NATS is configured but cannot be reached, or refused the write.
            OSError: the file cannot be written (no NATS).
        """
        if self.bus is not None:
            if not self.bus.connected:
                raise ControlUnavailable(
                    f"NATS {self.bus.url} is not reachable: the suspension of {state.environment!r} is kept "
                    f"in the key-value bucket {CONTROL_BUCKET}, which every replica reads; try again"
                )
            try:
                kv = await self._bucket()
                await kv.put(subject_token(state.environment), state.model_dump_json().encode())
            except Exception as exc:
                self._kv = None
                raise ControlUnavailable(f"NATS refused the write to {CONTROL_BUCKET}: {exc}") from None
        self.write_file(state)


# -- the actions ------------------------------------------------------------------------------------------


def _record_note(writer: GitWriter, record: ControlRecord) -> str:
    """Append ``record`` to the note on the branch head; returns the head (the record's revision)."""
    with writer.locked():
        head = writer.sync()
        record.revision = head
        writer.add_note(head, json.dumps(record.model_dump(mode="json"), sort_keys=True), CONTROL_NOTES_REF)
    return head


#: Publishes an event: ``(subject, data, msg_id)`` (the daemon's
#: :meth:`reconciler.runtime.Daemon.publish_event`, which also hands it to the notifier).
Publish = Callable[[str, bytes, str], Awaitable[None]]


async def record_action(
    record: ControlRecord,
    *,
    bus: Bus | None = None,
    writer: GitWriter | None = None,
    publish: Publish | None = None,
) -> ControlRecord:
    """Keep ``record``: a note on the branch head under :data:`CONTROL_NOTES_REF` (when ``writer`` is given;
    a Git failure is logged, the action stands) and the event ``reconciler.control.<env>`` (with
    ``publish`` when given, else on ``bus`` when connected). Returns it with its ``revision`` set when
    noted."""
    import asyncio

    if writer is not None:
        try:
            await asyncio.to_thread(_record_note, writer, record)
        except ReconcilerError as exc:
            log.warning("control.note_not_written", environment=record.environment, error=str(exc))
    data = record.model_dump_json().encode()
    if publish is not None:
        await publish(control_subject(record.environment), data, record.msg_id)
    elif bus is not None and bus.connected:
        try:
            await bus.publish(control_subject(record.environment), data, msg_id=record.msg_id)
        except ReconcilerError as exc:
            log.warning("control.event_not_published", environment=record.environment, error=str(exc))
    return record


def _reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if len(reason) > MAX_REASON:
        raise ValueError(f"reason: at most {MAX_REASON} characters")
    return reason


async def suspend_environment(
    store: ControlStore,
    env: str,
    *,
    by: str,
    reason: str = "",
    writer: GitWriter | None = None,
    publish: Publish | None = None,
) -> Suspension:
    """Suspend ``env``: from now on no daemon runs a pass of it until :func:`resume_environment`. Suspending
    a suspended environment again replaces who/when/why.

    Args:
        store: where suspensions live (:class:`ControlStore`; its bus also carries the event).
        env: the environment's name.
        by: who asks (recorded).
        reason: why (recorded; white space collapsed; at most :data:`MAX_REASON` characters).
        writer: a clone of the environment repository to note the action in (``None``: no note).
        publish: publishes the action's event (default: on the store's bus, when connected).

    Raises:
        ControlUnavailable: NATS is configured and unreachable (nothing changed).
        ValueError: ``reason`` is too long.
    """
    return await _set_suspended(store, env, True, by=by, reason=reason, writer=writer, publish=publish)


async def resume_environment(
    store: ControlStore,
    env: str,
    *,
    by: str,
    reason: str = "",
    writer: GitWriter | None = None,
    publish: Publish | None = None,
) -> Suspension:
    """Resume ``env`` (passes run again; resuming an environment that is not suspended records the
    resumption all the same). Arguments and errors as :func:`suspend_environment`. The caller asks for a
    pass (:func:`request_sync`, or the daemon's own trigger)."""
    return await _set_suspended(store, env, False, by=by, reason=reason, writer=writer, publish=publish)


async def _set_suspended(
    store: ControlStore,
    env: str,
    suspended: bool,
    *,
    by: str,
    reason: str,
    writer: GitWriter | None,
    publish: Publish | None,
) -> Suspension:
    """Store the new state of ``env``, then record the action (note and event) and log it."""
    state = Suspension(environment=env, suspended=suspended, by=by, reason=_reason(reason))
    await store.put(state)
    action: ControlAction = "suspend" if suspended else "resume"
    await record_action(
        ControlRecord(environment=env, action=action, by=by, at=state.at, reason=state.reason),
        bus=store.bus,
        writer=writer,
        publish=publish,
    )
    log.info(
        "control.suspended" if suspended else "control.resumed", environment=env, by=by, reason=state.reason
    )
    return state


async def is_suspended(store: ControlStore, env: str) -> Suspension | None:
    """The :class:`Suspension` of ``env`` when it is suspended, else ``None`` (never suspended, or
    resumed). Reads the bucket (or the file without NATS) as :meth:`ControlStore.get` does."""
    state = await store.get(env)
    return state if state is not None and state.suspended else None


async def request_sync(
    bus: Bus,
    env: str,
    *,
    by: str,
    reason: str = "",
    writer: GitWriter | None = None,
    publish: Publish | None = None,
) -> ControlRecord:
    """Ask for an immediate pass of ``env``: publishes ``reconciler.reconcile.request.<env>``, which the
    daemon that reconciles it takes (a suspended environment still gets none), and records the request.

    Raises:
        BusError: NATS refused the request or is not connected.
    """
    record = ControlRecord(environment=env, action="sync", by=by, reason=_reason(reason))
    payload = json.dumps({"environment": env, "by": by, "reason": record.reason, "at": record.at})
    # Its own Nats-Msg-Id: the record's event below goes to the same stream, which would drop it as a repeat.
    await bus.publish(reconcile_request_subject(env), payload.encode(), msg_id=f"{record.msg_id}:request")
    await record_action(record, bus=bus, writer=writer, publish=publish)
    return record


__all__ = [
    "CONTROL_BUCKET",
    "CONTROL_NOTES_REF",
    "MAX_REASON",
    "ControlAction",
    "ControlRecord",
    "ControlStore",
    "ControlUnavailable",
    "Suspension",
    "control_records",
    "is_suspended",
    "record_action",
    "request_sync",
    "resume_environment",
    "suspend_environment",
    "suspension_text",
]
