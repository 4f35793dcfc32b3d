"""What happened to an applied revision, kept in Git: outcome records in notes (``refs/notes/reconciler``)
and the matching NATS events (``reconciler.promotion.<env>``).

A note holds one JSON object per line (JSON Lines, https://jsonlines.org/), one line per
(environment, outcome) of that commit, because every environment applies every commit of the branch.
Lines that are not records (a person's comment) are kept and ignored.
"""

from __future__ import annotations

import json
import time
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from reconciler.model.remote import RemoteBase
from reconciler.source.gitops import NOTES_REF, GitWriter


class Outcome(StrEnum):
    """The outcome of applying a revision to an environment."""

    APPLIED = "applied"  # applied; the health deadline runs from the record's time
    HEALTHY = "healthy"  # verdict Healthy: every object judged healthy
    UNVERIFIED = "unverified"  # verdict Unverified: some objects nobody judged (never "healthy")
    DEGRADED = "degraded"  # verdict Degraded
    FAILED = "failed"  # verdict Failed (an object is gone)
    TIMED_OUT = "timed-out"  # verdict still Progressing at the deadline
    REVERTED = "reverted"  # the daemon pushed revert commit(s) of the promotion(s)
    REVERT_FAILED = "revert-failed"
    BLOCKED = "blocked"  # a guard stopped the pass before any write: the revision was never applied
    ROLLOUT = "rollout"  # a step of a progressive rollout (canary weight, measured values, verdict)
    # the branch was rewound (a force-push): the revision applied before is not in this one's history;
    # this one was applied instead (``rewound_from`` names the one that left the branch)
    REWOUND = "rewound"


#: The outcomes of a health gate (the other ones record what happened before or after it).
SETTLED = frozenset(
    {Outcome.HEALTHY, Outcome.UNVERIFIED, Outcome.DEGRADED, Outcome.FAILED, Outcome.TIMED_OUT}
)
#: Gate outcomes that fail the gate whatever the environment's ``health.unverified`` says.
FAILED = frozenset({Outcome.DEGRADED, Outcome.FAILED, Outcome.TIMED_OUT})


class OutcomeRecord(BaseModel):
    """One line of a note: what applying ``revision`` to ``environment`` led to.

    ``promotions`` are the promotion commits that revision brought into the environment (a merge
    commit brings the commits of its pull request); ``revert`` the revert commits the daemon made.
    Times are UNIX seconds.
    """

    model_config = ConfigDict(extra="ignore")

    environment: str
    outcome: Outcome
    revision: str = Field(description="the applied commit id")
    at: float = Field(default_factory=time.time)
    promotions: list[str] = Field(default_factory=list)
    revert: list[str] = Field(default_factory=list)
    pushed_to: str | None = None
    message: str = ""
    unhealthy: dict[str, str] = Field(default_factory=dict, description="object → state: reason")
    verdict: str = Field(
        default="", description="the set's verdict: Healthy, Progressing, Degraded, Unverified, Failed"
    )
    passed: bool | None = Field(
        default=None, description="whether the gate passed (None: a record written before this field)"
    )
    unverified: int = Field(default=0, description="objects nobody judged")
    missing: list[str] = Field(default_factory=list, description="controllers missing to judge them")
    remote_bases: list[RemoteBase] = Field(
        default_factory=list,
        description="the remote bases and files the applied render used, pinned (commit or SHA-256)",
    )
    rewound_from: str = Field(
        default="", description="rewound: the commit applied before, no longer in this revision's history"
    )

    @property
    def gate_failed(self) -> bool:
        """Whether this gate outcome failed the gate (``passed``, or for older records the outcome)."""
        if self.outcome not in SETTLED:
            return False
        return not self.passed if self.passed is not None else self.outcome in FAILED

    def line(self) -> str:
        """The record as one compact JSON line (keys sorted)."""
        data = self.model_dump(mode="json", exclude_defaults=False)
        if not data["remote_bases"]:
            del data["remote_bases"]  # records of renders without remote bases keep their old shape
        if not data["rewound_from"]:
            del data["rewound_from"]  # only rewound records name the commit that left the branch
        return json.dumps(data, sort_keys=True)

    def same(self, other: OutcomeRecord) -> bool:
        """Whether both record the same outcome of the same revision in the same environment (for
        ``rollout`` records, also the same step: each step of a rollout is a line of its own; for
        ``rewound`` ones, the same commit left the branch)."""
        key = (self.environment, self.outcome, self.revision)
        if key != (other.environment, other.outcome, other.revision):
            return False
        if self.outcome is Outcome.REWOUND:
            return self.rewound_from == other.rewound_from
        return self.outcome is not Outcome.ROLLOUT or self.message == other.message


class PromotionEvent(BaseModel):
    """The NATS message published on ``reconciler.promotion.<env>``."""

    environment: str
    kind: Literal["outcome", "rollback", "rollback-failed", "proposed", "promoted"]
    outcome: Outcome | None = None
    revision: str = ""
    promotions: list[str] = Field(default_factory=list)
    revert: list[str] = Field(default_factory=list)
    pushed_to: str | None = None
    verdict: str = ""
    passed: bool | None = None
    fallback: bool = False
    url: str | None = None
    message: str = ""
    at: float = Field(default_factory=time.time)

    @property
    def msg_id(self) -> str:
        """The ``Nats-Msg-Id`` (JetStream drops a repeat inside its duplicate window)."""
        what = self.outcome.value if self.outcome else ",".join(self.revert) or self.pushed_to or ""
        return f"promotion:{self.environment}:{self.kind}:{what}:{self.revision}"


def parse_note(text: str) -> list[OutcomeRecord]:
    """The outcome records of a note's text; other lines are ignored."""
    out: list[OutcomeRecord] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            out.append(OutcomeRecord.model_validate_json(line))
        except ValidationError:
            continue
    return out


def records_by_commit(notes: dict[str, str]) -> dict[str, list[OutcomeRecord]]:
    """Parse every note (commit id → text, as :meth:`GitWriter.notes` returns) into records."""
    return {sha: recs for sha, text in notes.items() if (recs := parse_note(text))}


def record_outcome(writer: GitWriter, sha: str, record: OutcomeRecord, ref: str = NOTES_REF) -> bool:
    """Append ``record`` to the note on commit ``sha`` and push the notes ref, unless the note already
    has the same (environment, outcome, revision).

    Returns:
        ``True`` when written, ``False`` when already recorded.

    Raises:
        SourceError: the notes ref could not be fetched or pushed.
    """
    return record_outcomes(writer, [(sha, record)], ref)[0]


def record_outcomes(
    writer: GitWriter, items: list[tuple[str, OutcomeRecord]], ref: str = NOTES_REF
) -> list[bool]:
    """:func:`record_outcome` for several ``(sha, record)`` at once: one fetch and one push of the notes
    ref (:meth:`GitWriter.add_notes`).

    Returns:
        For each item, whether it was written (``False``: already recorded, or the same record earlier in
        ``items``).

    Raises:
        SourceError: the notes ref could not be fetched or pushed (nothing of ``items`` was recorded).
    """
    out = [False] * len(items)
    with writer.locked():
        writer.fetch_notes(ref)
        known: dict[str, list[OutcomeRecord]] = {}
        todo: list[int] = []
        for i, (sha, record) in enumerate(items):
            if sha not in known:
                known[sha] = parse_note(writer.note(sha, ref) or "")
            if any(r.same(record) for r in known[sha]):
                continue
            known[sha].append(record)
            todo.append(i)
        if todo:
            written = writer.add_notes([(items[i][0], items[i][1].line()) for i in todo], ref)
            for i, w in zip(todo, written, strict=True):
                out[i] = w
    return out


class ToolCallRecord(BaseModel):
    """One line of a note recording a write call made through reconciler's MCP server
    (:mod:`reconciler.mcpserver`): who called which tool with which arguments, and what it did. Written on
    the followed branch's head commit at the time of the call (``kind`` tells it from outcome records,
    which :func:`parse_note` reads; :func:`parse_tool_calls` reads these). Times are UNIX seconds."""

    model_config = ConfigDict(extra="ignore")

    kind: Literal["mcp-call"] = "mcp-call"
    environment: str
    tool: str
    caller: str = Field(description="the caller's identity (its bearer token's, never the token)")
    arguments: dict[str, object] = Field(default_factory=dict)
    at: float = Field(default_factory=time.time)
    ok: bool = True
    message: str = ""
    commit: str | None = Field(default=None, description="the commit the call made, if any")
    branch: str | None = Field(default=None, description="the branch it pushed, if any")
    url: str | None = Field(default=None, description="the pull request it opened, if any")

    def line(self) -> str:
        """The record as one compact JSON line (keys sorted)."""
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)


def parse_tool_calls(text: str) -> list[ToolCallRecord]:
    """The MCP tool-call records of a note's text; other lines are ignored."""
    out: list[ToolCallRecord] = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{") or '"mcp-call"' not in line:
            continue
        try:
            out.append(ToolCallRecord.model_validate_json(line))
        except ValidationError:
            continue
    return out


def record_tool_call(writer: GitWriter, sha: str, record: ToolCallRecord, ref: str = NOTES_REF) -> bool:
    """Append ``record`` to the note on commit ``sha`` and push the notes ref.

    Raises:
        SourceError: the notes ref could not be fetched or pushed.
    """
    with writer.locked():
        writer.fetch_notes(ref)
        return writer.add_note(sha, record.line(), ref, append=True)
