"""Policy as code: the environment repository's Rego policies, evaluated by OPA on the rendered objects
of every pass before any write (:mod:`reconciler.policy.engine`), and the pinned OPA binary
(:mod:`reconciler.policy.opa`)."""

from reconciler.policy.engine import (
    DEFAULT_DIR,
    PolicyError,
    PolicyEvaluator,
    PolicyReport,
    PolicySet,
    data_document,
    evaluate,
    load_policy_set,
    object_ref,
)
from reconciler.policy.opa import EngineUnavailable, ensure_conftest, ensure_opa

__all__ = [
    "DEFAULT_DIR",
    "EngineUnavailable",
    "PolicyError",
    "PolicyEvaluator",
    "PolicyReport",
    "PolicySet",
    "data_document",
    "ensure_conftest",
    "ensure_opa",
    "evaluate",
    "load_policy_set",
    "object_ref",
]
