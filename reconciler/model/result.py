"""Results of a reconcile pass: revision, changeset, inventory."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, Field, computed_field

from reconciler.model.health import HealthStatus, Verdict, verdict
from reconciler.model.objects import ObjectRef
from reconciler.model.policy import PolicyFinding
from reconciler.model.remote import RemoteBase


class Revision(BaseModel):
    """A resolved source revision, printed like Flux: ``main@sha1:<40 hex>``."""

    branch: str
    sha: str

    def __str__(self) -> str:
        return f"{self.branch}@sha1:{self.sha}"

    @property
    def short(self) -> str:
        """The first 7 characters of the commit id."""
        return self.sha[:7]


class Action(StrEnum):
    """What a pass did, or would do, to one object."""

    CREATED = "created"
    CONFIGURED = "configured"
    UNCHANGED = "unchanged"
    DELETED = "deleted"
    SKIPPED = "skipped"
    FAILED = "failed"


class Change(BaseModel):
    """One entry of a :class:`ChangeSet`."""

    ref: ObjectRef
    action: Action
    diff: str = ""
    message: str = ""


class ChangeSet(BaseModel):
    """Every object a pass touched or considered, in apply order."""

    entries: list[Change] = Field(default_factory=list)

    def add(self, ref: ObjectRef, action: Action, diff: str = "", message: str = "") -> None:
        """Append one entry."""
        self.entries.append(Change(ref=ref, action=action, diff=diff, message=message))

    def count(self, action: Action) -> int:
        """How many entries have ``action``."""
        return sum(1 for e in self.entries if e.action is action)

    def summary(self) -> dict[str, int]:
        """Counts by action name, omitting zeros."""
        out: dict[str, int] = {}
        for e in self.entries:
            out[e.action.value] = out.get(e.action.value, 0) + 1
        return out


class Inventory(BaseModel):
    """The set of objects an environment applied, stored in the cluster between passes."""

    environment: str
    revision: str = ""
    entries: list[ObjectRef] = Field(default_factory=list)
    digests: dict[str, str] = Field(
        default_factory=dict,
        description="sha256 of each entry's desired manifest as last applied, by str(ref)",
    )


class PassOutcome(StrEnum):
    """How a pass ended: ``Succeeded`` (the revision is applied), ``Blocked`` (a guard stopped it before
    any write: mass prune, policy, validation; the reason is the pass's error) or ``Failed`` (it could
    not finish: the source, render, API server or an object failed)."""

    SUCCEEDED = "Succeeded"
    BLOCKED = "Blocked"
    FAILED = "Failed"


class PassResult(BaseModel):
    """The outcome of one reconcile pass over one environment (published on NATS).

    ``ok`` is true only for a pass that applied its revision; a pass a guard stopped has ``ok`` false
    and ``blocked`` true, and its revision is only attempted, never applied.
    """

    environment: str
    revision: str = ""
    ok: bool
    blocked: bool = Field(default=False, description="a guard stopped the pass before any write")
    error: str = ""
    warnings: list[str] = Field(
        default_factory=list,
        description="what a check reported without stopping the pass (toolContract: warn)",
    )
    policy: list[PolicyFinding] = Field(
        default_factory=list,
        description="what the environment's policies said about the rendered objects before any write: "
        "denials (the pass is blocked), warnings and excused results",
    )
    changes: ChangeSet = Field(default_factory=ChangeSet)
    health: dict[str, HealthStatus] = Field(default_factory=dict)
    started_at: float = Field(description="UNIX time, seconds")
    duration: float = Field(description="seconds")
    trigger: str = ""
    remote_bases: list[RemoteBase] = Field(
        default_factory=list,
        description="every remote base and remote file the render used, pinned (the commit each Git ref "
        "resolved to, the SHA-256 of each file fetched over HTTP): with the revision, what reproduces the "
        "pass",
    )
    cluster: str = Field(
        default="",
        description="the target cluster the pass read and wrote: a kubeconfig context's name, "
        "secret:<namespace>/<name> (a kubeconfig Secret), in-cluster, or default ('' when the pass failed "
        "before it knew)",
    )
    verified_by: str = Field(
        default="",
        description="'watch' for a poll answered from the drift watches' live copies without asking the "
        "API server (nothing changed since the last full pass); '' for a full pass",
    )

    @computed_field  # type: ignore[prop-decorator]
    @property
    def outcome(self) -> PassOutcome:
        """:class:`PassOutcome` of the pass."""
        if self.ok:
            return PassOutcome.SUCCEEDED
        return PassOutcome.BLOCKED if self.blocked else PassOutcome.FAILED

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verdict(self) -> Verdict | None:
        """The verdict on the pass's objects (``None`` when their health was not read), published with
        the result so NATS consumers use the same vocabulary as the gate and the status page."""
        return verdict(self.health) if self.health else None
