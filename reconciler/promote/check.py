"""The check a proposed change gets before it is merged (``reconciler check``, and the ``reconciler/check``
commit status on a promotion pull request's head): for every environment the change touches, render the
base and the head, summarise what changes, and — with a cluster — run the head through a dry-run pass
(server-side dry-run of what would be written, with the pass's own guards), so a branch protection rule
that requires ``reconciler/check`` keeps an invalid promotion from being merged.

An environment is *touched* when its file (``envs/<env>.yaml``) changed, when its rendered objects
differ between base and head, or when it renders at only one of them. Nothing is ever written to the
cluster or to Git here.

The head of every touched environment is also judged by its policies (``reconciler.policy``: the
repository's ``policies/`` and the environment's ``policies.paths`` at the head): a deny or violation, or
policies that cannot be evaluated, fail the check; warnings are listed. Without a cluster, the namespaces
of objects that have none are filled in from the environment's ``namespace`` by kustomize's built-in
scopes and the CRDs in the rendered set (the pass asks the API server).
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from reconciler.cluster.client import KubeClient
from reconciler.cluster.targets import ClusterTargets
from reconciler.errors import ReconcilerError
from reconciler.model import Environment, PolicyFinding, Revision
from reconciler.model.policy import Severity
from reconciler.policy import PolicyEvaluator
from reconciler.promote.check_policy import judge
from reconciler.reconcile import PassContext, run_pass
from reconciler.reconcile.environments import load_environments
from reconciler.reconcile.pass_ import render_environment
from reconciler.render import RenderError
from reconciler.render.resource import is_cluster_scoped
from reconciler.source import GitSource, Snapshot

#: The commit-status context of the check.
CHECK_CONTEXT = "reconciler/check"
#: The marked section of a pull request's body that holds the check's Markdown report.
CHECK_SECTION = "reconciler-check"


class EnvCheck(BaseModel):
    """One touched environment: what its objects do between base and head, and whether the head passes."""

    environment: str
    ok: bool
    error: str = Field(default="", description="the render, validation or dry-run failure (empty when ok)")
    added: list[str] = Field(default_factory=list, description="Kind/namespace/name at head only")
    changed: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list, description="at base only: the head prunes them")
    dry_run: str = Field(
        default="skipped", description="passed | failed | skipped (no cluster, or the policies refused)"
    )
    policies: str = Field(
        default="none",
        description="passed | denied | failed (could not be evaluated) | none (no policies) | skipped "
        "(did not render)",
    )
    policy: list[PolicyFinding] = Field(
        default_factory=list, description="what the policies said about the head's objects"
    )
    refused_by: str = Field(
        default="",
        description="which layer refused the head (empty when ok): render (kustomize build or envs/ file), "
        "policy (OPA, the repository's policies), guard (a pass guard such as the tool contract or "
        "ownership), admission (a ValidatingAdmissionPolicy or admission webhook in the dry-run), "
        "api-server (the API server's own validation in the dry-run)",
    )

    @property
    def denials(self) -> list[PolicyFinding]:
        """The policies' deny and violation results."""
        return [f for f in self.policy if f.severity is Severity.DENY]

    @property
    def warnings(self) -> list[PolicyFinding]:
        """The policies' warn results."""
        return [f for f in self.policy if f.severity is Severity.WARN]


class CheckReport(BaseModel):
    """The check of ``head`` against ``base``."""

    base: str = Field(description="the base commit")
    head: str = Field(description="the head commit")
    environments: list[EnvCheck] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every touched environment rendered and (with a cluster) passed its dry-run."""
        return all(e.ok for e in self.environments)

    def summary(self) -> str:
        """One line for a commit status: ``2 environments: staging ok, prod FAILED: …``."""
        if not self.environments:
            return "no environment changes"
        parts = [
            f"{e.environment} ok"
            if e.ok
            else f"{e.environment} FAILED ({e.refused_by or 'error'}): {e.error}"
            for e in self.environments
        ]
        n = len(self.environments)
        return f"{n} environment{'s' if n != 1 else ''}: " + ", ".join(parts)

    def markdown(self) -> str:
        """The report as Markdown (a pull request comment or body section)."""
        lines = [f"### reconciler check: {'passed' if self.ok else 'FAILED'}", ""]
        lines.append(f"`{self.base[:12]}` → `{self.head[:12]}`")
        if not self.environments:
            lines += ["", "No environment changes."]
        for e in self.environments:
            verdict = "ok" if e.ok else "FAILED"
            lines += ["", f"**{e.environment}**: {verdict} (policies: {e.policies}, dry-run: {e.dry_run})"]
            if e.error:
                lines.append(f"> refused by {e.refused_by or 'an error'}: {e.error}")
            for f in e.policy:
                lines.append(
                    f"- policy {f.severity.value}: `{f.rule_id}` `{f.object}`: {f.message} ({f.where})"
                )
            for word, items in (("added", e.added), ("changed", e.changed), ("removed", e.removed)):
                if items:
                    lines.append(f"- {word}: " + ", ".join(f"`{i}`" for i in items))
        return "\n".join(lines) + "\n"


#: Words of the API server's answers when an admission plugin, not its own validation, refused a request
#: (ValidatingAdmissionPolicy: "ValidatingAdmissionPolicy '…' with binding '…' denied request"; webhooks:
#: "admission webhook \"…\" denied the request").
_ADMISSION_WORDS = ("validatingadmissionpolicy", "admission webhook", "denied request", "denied the request")


def refusing_layer(error: str, *, blocked: bool = False) -> str:
    """Which layer refused a dry-run pass, from its error and whether a guard stopped it (see
    :attr:`EnvCheck.refused_by`)."""
    lowered = error.lower()
    if lowered.startswith("policy denied") or "policy denied" in lowered[:80]:
        return "policy"
    if any(w in lowered for w in _ADMISSION_WORDS):
        return "admission"
    if blocked:
        return "guard"
    return "api-server"


def _key(obj: dict[str, Any], default_namespace: str) -> str:
    meta = obj.get("metadata") or {}
    group, _, version = str(obj.get("apiVersion") or "").rpartition("/")
    kind = str(obj.get("kind") or "")
    ns = meta.get("namespace") or ("" if is_cluster_scoped(group, version, kind) else default_namespace)
    return f"{kind}/{ns + '/' if ns else ''}{meta.get('name')}"


def _render_objects(snapshot: Snapshot, env: Environment) -> tuple[list[dict[str, Any]], str]:
    try:
        return render_environment(env, snapshot), ""
    except (RenderError, ReconcilerError, OSError) as exc:
        return [], str(exc)


def _keyed(objects: list[dict[str, Any]], env: Environment) -> dict[str, str]:
    return {_key(o, env.namespace or ""): json.dumps(o, sort_keys=True) for o in objects}


def _render(snapshot: Snapshot, env: Environment) -> tuple[dict[str, str], str]:
    """``{Kind/ns/name: canonical JSON}`` of ``env`` at ``snapshot``, or ``({}, error)``; objects without a
    namespace are shown in the environment's (as the pass places them)."""
    objects, error = _render_objects(snapshot, env)
    return (_keyed(objects, env), "") if not error else ({}, error)


def _environments(snapshot: Snapshot) -> tuple[dict[str, Environment], dict[str, str]]:
    invalid: dict[str, str] = {}
    envs = load_environments(snapshot.root, invalid=invalid) if (snapshot.root / "envs").is_dir() else {}
    return envs, invalid


def check_change(
    url: str,
    base: str,
    head: str,
    cache_dir: Path,
    *,
    only: list[str] | None = None,
    client: KubeClient | None = None,
) -> CheckReport:
    """Check branch ``head`` of the repository at ``url`` against branch ``base`` (see the module
    docstring). ``only`` limits the environments; ``client`` adds a dry-run pass of each touched one.

    Raises:
        SourceError: a branch cannot be fetched.
    """
    sources = {b: GitSource(url, b, cache_dir) for b in {base, head}}
    revs: dict[str, Revision] = {b: s.fetch() for b, s in sources.items()}
    snaps = {b: sources[b].snapshot(revs[b]) for b in sources}
    base_envs, _ = _environments(snaps[base])
    head_envs, head_bad = _environments(snaps[head])
    names = sorted(set(base_envs) | set(head_envs) | set(head_bad))
    if only:
        names = [n for n in names if n in only]
    report = CheckReport(base=revs[base].sha, head=revs[head].sha)
    evaluator = PolicyEvaluator()
    # each environment's own target cluster (its context or cluster.secretRef), closed at the end
    targets = ClusterTargets(client) if client is not None else None
    for name in names:
        if name in head_bad:
            report.environments.append(EnvCheck(environment=name, ok=False, error=head_bad[name]))
            continue
        env = head_envs.get(name)
        if env is None:  # removed by the change: its objects are pruned once merged
            before, _ = _render(snaps[base], base_envs[name])
            report.environments.append(
                EnvCheck(environment=name, ok=True, removed=sorted(before), error="", dry_run="skipped")
            )
            continue
        head_objects, error = _render_objects(snaps[head], env)
        after = _keyed(head_objects, env) if not error else {}
        before, _ = _render(snaps[base], base_envs[name]) if name in base_envs else ({}, "")
        file_changed = name not in base_envs or base_envs[name] != env
        if not error and after == before and not file_changed:
            continue  # not touched
        check = EnvCheck(
            environment=name,
            ok=not error,
            error=error,
            added=sorted(set(after) - set(before)),
            changed=sorted(k for k in set(after) & set(before) if after[k] != before[k]),
            removed=sorted(set(before) - set(after)),
            policies="skipped" if error else "none",
        )
        if error:
            check.refused_by = "render"
        if check.ok:
            env_client = client
            if targets is not None:  # discovery (which kinds are namespaced) on the environment's cluster
                with contextlib.suppress(ReconcilerError):  # an unknown context: the dry-run reports it
                    env_client = targets.client_for(env)
            judge(check, evaluator, snaps[head], env, head_objects, env_client)
            if not check.ok:
                check.refused_by = "policy"
        if check.ok and client is not None:
            # the probe service as the daemon configures it ($RECONCILER_PROBE_*): the tool-contract gate
            ctx = PassContext(source=sources[head], client=client, policy=evaluator, targets=targets)
            result = run_pass(
                ctx, name, revision=revs[head], trigger="check", dry_run=True, with_health=False
            )
            check.dry_run = "passed" if result.ok else "failed"
            if not result.ok:
                check.ok, check.error = False, result.error
                check.refused_by = refusing_layer(result.error, blocked=result.blocked)
        report.environments.append(check)
    if targets is not None:
        targets.close()
    return report
