"""What a policy said about one rendered object (``reconciler.policy`` evaluates; passes, ``reconciler
check`` and the JUnit/SARIF outputs report)."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field


class Severity(StrEnum):
    """``deny`` for conftest's failure rules (``deny*``, ``violation*``), ``warn`` for ``warn*``, and
    ``exception`` for a result a package's ``exception`` rule excused."""

    DENY = "deny"
    WARN = "warn"
    EXCEPTION = "exception"


class PolicyFinding(BaseModel):
    """One message of one rule about one object."""

    severity: Severity
    package: str = Field(description="the Rego package, e.g. policies.images")
    rule: str = Field(description="the rule's name, e.g. deny_latest_tag")
    file: str = Field(description="the policy file defining the rule, relative to the repository root")
    line: int | None = Field(
        default=None, description="the rule's line, when exactly one definition of it is in that file"
    )
    object: str = Field(description="Kind/namespace/name (Kind/name when cluster-scoped)")
    message: str
    details: dict[str, Any] | None = Field(
        default=None, description="the other keys of a rule that returned an object with a msg"
    )

    @property
    def rule_id(self) -> str:
        """``package.rule``: the SARIF rule id."""
        return f"{self.package}.{self.rule}"

    @property
    def where(self) -> str:
        """``file:line`` (``file`` alone when the line is not known)."""
        return f"{self.file}:{self.line}" if self.line else self.file

    def __str__(self) -> str:
        return f"{self.where}: {self.rule_id}: {self.object}: {self.message}"
