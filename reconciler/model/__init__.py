"""The project's vocabulary: plain data types shared by every stage, with no I/O."""

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
from reconciler.model.result import Action, Change, ChangeSet, Inventory, PassOutcome, PassResult, Revision

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
