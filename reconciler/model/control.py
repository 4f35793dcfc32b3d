"""Suspensions and actions on environments (suspend, resume, sync), as stored and recorded; see
reconciler/runtime/control.py for how they are used."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field, ValidationError

if TYPE_CHECKING:
    from reconciler.source.gitops import GitWriter

#: The Git notes ref holding :class:`ControlRecord` lines (on the branch head at the time of the action).
CONTROL_NOTES_REF = "refs/notes/reconciler-control"
MAX_REASON = 500
ControlAction = Literal["suspend", "resume", "sync"]


class Suspension(BaseModel):
    """Whether one environment is suspended, and who changed that, when and why."""

    environment: str
    suspended: bool
    by: str = Field(description="who suspended or resumed it (the action's identity, or the CLI user)")
    at: float = Field(default_factory=time.time, description="UNIX time, seconds")
    reason: str = Field(default="", max_length=MAX_REASON)


class ControlRecord(BaseModel):
    """One action on an environment, as published on ``reconciler.control.<env>`` and kept in a note."""

    environment: str
    action: ControlAction
    by: str
    at: float = Field(default_factory=time.time, description="UNIX time, seconds")
    reason: str = ""
    revision: str = Field(default="", description="the branch head when it was done ('' when unknown)")

    @property
    def msg_id(self) -> str:
        """The ``Nats-Msg-Id`` of its event."""
        return f"control:{self.environment}:{self.action}:{self.at:.6f}"


def control_records(writer: GitWriter, env: str) -> list[ControlRecord]:
    """Every :class:`ControlRecord` of ``env`` in the notes under :data:`CONTROL_NOTES_REF` of a synced
    clone (:meth:`GitWriter.sync` fetches every notes ref), oldest first; other lines are ignored."""
    out: list[ControlRecord] = []
    for text in writer.notes(CONTROL_NOTES_REF).values():
        for line in text.splitlines():
            if not line.strip().startswith("{"):
                continue
            try:
                rec = ControlRecord.model_validate_json(line)
            except ValidationError:
                continue
            if rec.environment == env:
                out.append(rec)
    out.sort(key=lambda r: r.at)
    return out
