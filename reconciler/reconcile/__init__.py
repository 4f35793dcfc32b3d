"""One synchronous reconcile pass over one environment: source → render → plan → apply → prune → health."""

from reconciler.reconcile.environments import load_environment, load_environments
from reconciler.reconcile.pass_ import (
    SETTLED,
    PassContext,
    assess_health,
    render_environment,
    run_pass,
    summarize,
    wait_for_health,
)
from reconciler.render.remote import environment_options as remote_options

__all__ = [
    "SETTLED",
    "PassContext",
    "assess_health",
    "load_environment",
    "load_environments",
    "remote_options",
    "render_environment",
    "run_pass",
    "summarize",
    "wait_for_health",
]
