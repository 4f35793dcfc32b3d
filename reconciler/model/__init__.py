"""The project's vocabulary: plain data types shared by every stage, with no I/O.

Each name is imported from its module on first use, so that importing one module of the package (say
``reconciler.model.health``, as the probes do) does not build every pydantic model of the others
(``environment``, ``imagepolicy``, ``rollout``).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from reconciler.model.environment import (
        DriftMode,
        Environment,
        IgnoreRule,
        PolicySettings,
        PromotionPolicy,
        RemoteBasesPolicy,
        RenderSettings,
        SyncPolicy,
    )
    from reconciler.model.health import (
        SETTLED_STATES,
        VERDICT_ORDER,
        HealthState,
        HealthStatus,
        ToolContractPolicy,
        UnverifiedPolicy,
        Verdict,
        gate_passes,
        verdict,
    )
    from reconciler.model.objects import ObjectRef, gvk_of, ref_of
    from reconciler.model.policy import PolicyFinding
    from reconciler.model.remote import RemoteBase
    from reconciler.model.result import (
        Action,
        Change,
        ChangeSet,
        Inventory,
        PassOutcome,
        PassResult,
        Revision,
    )

#: The module each public name lives in.
_HOMES = {
    **dict.fromkeys(
        (
            "DriftMode",
            "Environment",
            "IgnoreRule",
            "PolicySettings",
            "PromotionPolicy",
            "RemoteBasesPolicy",
            "RenderSettings",
            "SyncPolicy",
        ),
        "environment",
    ),
    **dict.fromkeys(
        (
            "SETTLED_STATES",
            "VERDICT_ORDER",
            "HealthState",
            "HealthStatus",
            "ToolContractPolicy",
            "UnverifiedPolicy",
            "Verdict",
            "gate_passes",
            "verdict",
        ),
        "health",
    ),
    **dict.fromkeys(("ObjectRef", "gvk_of", "ref_of"), "objects"),
    "PolicyFinding": "policy",
    "RemoteBase": "remote",
    **dict.fromkeys(
        ("Action", "Change", "ChangeSet", "Inventory", "PassOutcome", "PassResult", "Revision"), "result"
    ),
}

__all__ = [
    "SETTLED_STATES",
    "VERDICT_ORDER",
    "Action",
    "Change",
    "ChangeSet",
    "DriftMode",
    "Environment",
    "HealthState",
    "HealthStatus",
    "IgnoreRule",
    "Inventory",
    "ObjectRef",
    "PassOutcome",
    "PassResult",
    "PolicyFinding",
    "PolicySettings",
    "PromotionPolicy",
    "RemoteBase",
    "RemoteBasesPolicy",
    "RenderSettings",
    "Revision",
    "SyncPolicy",
    "ToolContractPolicy",
    "UnverifiedPolicy",
    "Verdict",
    "gate_passes",
    "gvk_of",
    "ref_of",
    "verdict",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"{__name__}.{home}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
