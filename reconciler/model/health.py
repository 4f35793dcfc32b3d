"""Health of live objects, as judged by ``reconciler.cluster.health``."""

from __future__ import annotations

from enum import StrEnum

from pydantic import BaseModel, ConfigDict


class HealthState(StrEnum):
    """kstatus-style health states.

    ``NO_CONTROLLER`` means the object's kind is served but no controller has ever written its status
    (for example a kagent Agent on a cluster without kagent): it is reported, never taken as healthy.
    """

    HEALTHY = "Healthy"
    PROGRESSING = "Progressing"
    DEGRADED = "Degraded"
    UNKNOWN = "Unknown"
    NO_CONTROLLER = "NoController"
    MISSING = "Missing"


class HealthStatus(BaseModel):
    """The health of one object with a human-readable reason."""

    model_config = ConfigDict(frozen=True)

    state: HealthState
    message: str = ""

    @property
    def healthy(self) -> bool:
        """True only for :attr:`HealthState.HEALTHY`."""
        return self.state is HealthState.HEALTHY
