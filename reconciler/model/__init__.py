"""The project's vocabulary: plain data types shared by every stage, with no I/O."""

from reconciler.model.environment import DriftMode, Environment, IgnoreRule, PromotionPolicy, SyncPolicy
from reconciler.model.health import HealthState, HealthStatus
from reconciler.model.objects import ObjectRef, gvk_of, ref_of
from reconciler.model.result import Action, Change, ChangeSet, Inventory, PassResult, Revision

__all__ = [
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
    "PassResult",
    "PromotionPolicy",
    "Revision",
    "SyncPolicy",
    "gvk_of",
    "ref_of",
]
