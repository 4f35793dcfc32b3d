"""Apply order: stages and a dependency order derived from the references between objects.

Stage 0 holds what other objects need to exist at all: CustomResourceDefinitions, core Namespaces and
cluster-wide RBAC. Stage 1 holds everything else, sorted so that an object comes after the objects it
references (agent-platform-formats.md §8.1: Secrets/ConfigMaps → ModelConfig → MCP servers → Services →
gateway → RemoteMCPServer → Agents), with kind rank as the tie-break and for kinds without known references.
External Secrets Operator objects come before what consumes their output: a SecretStore after the Secrets
its provider's credentials name, an ExternalSecret after its store, and every object that references the
Secret an ExternalSecret writes (``spec.target.name``, default its own name) after that ExternalSecret, so
workloads mounting it are created once the operator can fill it. Deletion uses the reverse order.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from reconciler.model import ObjectRef

_STAGE0_KINDS = {
    ("apiextensions.k8s.io", "CustomResourceDefinition"),
    ("", "Namespace"),
    ("rbac.authorization.k8s.io", "ClusterRole"),
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"),
    ("", "ResourceQuota"),
    ("", "LimitRange"),
    ("scheduling.k8s.io", "PriorityClass"),
    ("storage.k8s.io", "StorageClass"),
}

# rank by (group, kind); lower first. Unknown kinds get DEFAULT_RANK.
_RANKS: dict[tuple[str, str], int] = {
    ("apiextensions.k8s.io", "CustomResourceDefinition"): 0,
    ("", "Namespace"): 1,
    ("", "ResourceQuota"): 2,
    ("", "LimitRange"): 2,
    ("scheduling.k8s.io", "PriorityClass"): 2,
    ("storage.k8s.io", "StorageClass"): 2,
    ("rbac.authorization.k8s.io", "ClusterRole"): 3,
    ("rbac.authorization.k8s.io", "ClusterRoleBinding"): 4,
    ("", "ServiceAccount"): 10,
    ("", "Secret"): 10,
    ("", "ConfigMap"): 10,
    ("rbac.authorization.k8s.io", "Role"): 11,
    ("rbac.authorization.k8s.io", "RoleBinding"): 12,
    ("", "PersistentVolume"): 13,
    ("", "PersistentVolumeClaim"): 14,
    ("external-secrets.io", "ClusterSecretStore"): 15,
    ("external-secrets.io", "SecretStore"): 15,
    ("external-secrets.io", "ExternalSecret"): 16,
    ("external-secrets.io", "ClusterExternalSecret"): 16,
    ("kagent.dev", "ModelConfig"): 20,
    ("kagent.dev", "ModelProviderConfig"): 20,
    ("kagent.dev", "MCPServer"): 30,
    ("", "Service"): 31,
    ("apps", "Deployment"): 32,
    ("apps", "StatefulSet"): 32,
    ("apps", "DaemonSet"): 32,
    ("batch", "Job"): 32,
    ("batch", "CronJob"): 32,
    ("autoscaling", "HorizontalPodAutoscaler"): 33,
    ("policy", "PodDisruptionBudget"): 33,
    ("networking.k8s.io", "NetworkPolicy"): 33,
    ("agentgateway.dev", "AgentgatewayParameters"): 40,
    ("gateway.networking.k8s.io", "GatewayClass"): 41,
    ("gateway.networking.k8s.io", "Gateway"): 42,
    ("agentgateway.dev", "AgentgatewayBackend"): 43,
    ("gateway.networking.k8s.io", "ReferenceGrant"): 44,
    ("gateway.networking.k8s.io", "HTTPRoute"): 45,
    ("agentgateway.dev", "AgentgatewayPolicy"): 46,
    ("kagent.dev", "RemoteMCPServer"): 50,
    ("kagent.dev", "Agent"): 60,
}
DEFAULT_RANK = 35


def stage_of(ref: ObjectRef) -> int:
    """0 for CRDs, core Namespaces and cluster-wide prerequisites; 1 for the rest.

    A kind named ``Namespace`` in another API group is an ordinary object (stage 1).
    """
    return 0 if (ref.group, ref.kind) in _STAGE0_KINDS else 1


def rank_of(ref: ObjectRef) -> int:
    """The kind's rank (lower applies first)."""
    return _RANKS.get((ref.group, ref.kind), DEFAULT_RANK)


def _names(value: Any) -> Iterable[str]:
    if isinstance(value, str) and value:
        yield value


def references(obj: Mapping[str, Any], ref: ObjectRef) -> set[tuple[str, str, str]]:
    """``(kind, namespace, name)`` of the objects ``obj`` refers to (same-namespace unless stated).

    Follows the reference fields listed in agent-platform-formats.md §8.1 for the agent-platform kinds, and
    ConfigMap/Secret/ServiceAccount/PVC references of pod templates.
    """
    ns = ref.namespace
    out: set[tuple[str, str, str]] = set()
    spec = obj.get("spec")
    if not isinstance(spec, Mapping):
        return out

    def add(kind: str, name: Any, namespace: Any = None) -> None:
        for n in _names(name):
            out.add((kind, str(namespace or ns), n))

    def pod_spec(ps: Any) -> None:
        if not isinstance(ps, Mapping):
            return
        add("ServiceAccount", ps.get("serviceAccountName"))
        for v in ps.get("volumes") or []:
            if not isinstance(v, Mapping):
                continue
            add("ConfigMap", (v.get("configMap") or {}).get("name"))
            add("Secret", (v.get("secret") or {}).get("secretName"))
            add("PersistentVolumeClaim", (v.get("persistentVolumeClaim") or {}).get("claimName"))
        for key in ("containers", "initContainers"):
            for c in ps.get(key) or []:
                if not isinstance(c, Mapping):
                    continue
                for ef in c.get("envFrom") or []:
                    add("ConfigMap", (ef.get("configMapRef") or {}).get("name"))
                    add("Secret", (ef.get("secretRef") or {}).get("name"))
                for e in c.get("env") or []:
                    vf = e.get("valueFrom") or {} if isinstance(e, Mapping) else {}
                    add("ConfigMap", (vf.get("configMapKeyRef") or {}).get("name"))
                    add("Secret", (vf.get("secretKeyRef") or {}).get("name"))

    kind, group = ref.kind, ref.group
    if group in ("apps", "batch") and isinstance(spec.get("template"), Mapping):
        pod_spec(spec["template"].get("spec"))
    elif (group, kind) == ("kagent.dev", "ModelConfig"):
        add("Secret", spec.get("apiKeySecret"))
        add("Secret", (spec.get("tls") or {}).get("caCertSecretRef"))
    elif (group, kind) == ("kagent.dev", "ModelProviderConfig"):
        add("Secret", (spec.get("secretRef") or {}).get("name"))
    elif (group, kind) == ("kagent.dev", "MCPServer"):
        dep = spec.get("deployment") or {}
        for s in dep.get("secretRefs") or []:
            add("Secret", s.get("name") if isinstance(s, Mapping) else None)
        for c in dep.get("configMapRefs") or []:
            add("ConfigMap", c.get("name") if isinstance(c, Mapping) else None)
        add("ServiceAccount", dep.get("serviceAccountName"))
    elif (group, kind) == ("kagent.dev", "RemoteMCPServer"):
        for h in spec.get("headersFrom") or []:
            vf = (h.get("valueFrom") or {}) if isinstance(h, Mapping) else {}
            add(str(vf.get("type") or "Secret"), vf.get("name"))
    elif (group, kind) == ("kagent.dev", "Agent"):
        decl = spec.get("declarative") or {}
        add("ModelConfig", decl.get("modelConfig"))
        add("ModelConfig", (decl.get("memory") or {}).get("modelConfig"))
        for t in decl.get("tools") or []:
            if not isinstance(t, Mapping):
                continue
            mcp = t.get("mcpServer") or {}
            if mcp:
                add(str(mcp.get("kind") or "MCPServer"), mcp.get("name"), mcp.get("namespace"))
            agent = t.get("agent") or {}
            if agent:
                add("Agent", agent.get("name"), agent.get("namespace"))
        smf = decl.get("systemMessageFrom") or {}
        add(str(smf.get("type") or "ConfigMap"), smf.get("name"))
    elif (group, kind) == ("gateway.networking.k8s.io", "HTTPRoute"):
        for p in spec.get("parentRefs") or []:
            if isinstance(p, Mapping):
                add(str(p.get("kind") or "Gateway"), p.get("name"), p.get("namespace"))
        for rule in spec.get("rules") or []:
            for b in (rule.get("backendRefs") or []) if isinstance(rule, Mapping) else []:
                if isinstance(b, Mapping):
                    add(str(b.get("kind") or "Service"), b.get("name"), b.get("namespace"))
    elif (group, kind) == ("agentgateway.dev", "AgentgatewayBackend"):
        for t in (spec.get("mcp") or {}).get("targets") or []:
            br = ((t.get("static") or {}).get("backendRef") or {}) if isinstance(t, Mapping) else {}
            add(str(br.get("kind") or "Service"), br.get("name"), br.get("namespace"))
    elif (group, kind) == ("agentgateway.dev", "AgentgatewayPolicy"):
        for t in spec.get("targetRefs") or []:
            if isinstance(t, Mapping):
                add(str(t.get("kind") or ""), t.get("name"), t.get("namespace"))
    elif (group, kind) == ("gateway.networking.k8s.io", "Gateway"):
        add("GatewayClass", spec.get("gatewayClassName"), "")
    elif group == _ESO and kind in ("ExternalSecret", "ClusterExternalSecret"):
        es = (spec.get("externalSecretSpec") or {}) if kind == "ClusterExternalSecret" else spec
        stores = [es.get("secretStoreRef")]
        for entry in [*(es.get("data") or []), *(es.get("dataFrom") or [])]:
            if isinstance(entry, Mapping):
                stores.append((entry.get("sourceRef") or {}).get("storeRef"))
        for store in stores:
            if isinstance(store, Mapping):
                store_kind = str(store.get("kind") or "SecretStore")
                add(store_kind, store.get("name"), "" if store_kind == "ClusterSecretStore" else None)
    elif group == _ESO and kind in ("SecretStore", "ClusterSecretStore"):
        for name, namespace in _secret_refs(spec.get("provider")):
            add("Secret", name, namespace)
    return out


_ESO = "external-secrets.io"


def _secret_refs(value: Any, depth: int = 0) -> Iterable[tuple[Any, Any]]:
    """``(name, namespace)`` of every ``*SecretRef``/``secretRef`` mapping (with a ``name``) inside a
    SecretStore's ``spec.provider`` (the providers' credential references, at any depth)."""
    if depth > 8:
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if str(key).lower().endswith("secretref") and isinstance(item, Mapping) and item.get("name"):
                yield item.get("name"), item.get("namespace")
            else:
                yield from _secret_refs(item, depth + 1)
    elif isinstance(value, list):
        for item in value:
            yield from _secret_refs(item, depth + 1)


def produces(obj: Mapping[str, Any], ref: ObjectRef) -> set[tuple[str, str, str]]:
    """``(kind, namespace, name)`` of objects ``obj`` makes in the cluster that are not in the desired set:
    the Secret an ExternalSecret writes (``spec.target.name``, default the ExternalSecret's name)."""
    if ref.group != _ESO or ref.kind != "ExternalSecret":
        return set()
    spec = obj.get("spec")
    target = (spec.get("target") or {}) if isinstance(spec, Mapping) else {}
    name = target.get("name") if isinstance(target, Mapping) else None
    return {("Secret", ref.namespace, str(name or ref.name))}


def apply_order(
    items: list[tuple[ObjectRef, dict[str, Any]]],
) -> list[list[tuple[ObjectRef, dict[str, Any]]]]:
    """Split into stages and order each stage: referenced objects first (a stable topological sort
    whose ready set is ordered by kind rank, then namespace and name); cycles fall back to rank order."""
    stages: list[list[tuple[ObjectRef, dict[str, Any]]]] = [[], []]
    for ref, obj in items:
        stages[stage_of(ref)].append((ref, obj))
    return [_topo(stage) for stage in stages]


def _topo(items: list[tuple[ObjectRef, dict[str, Any]]]) -> list[tuple[ObjectRef, dict[str, Any]]]:
    def sort_key(i: int) -> tuple[int, str, str, str]:
        r = items[i][0]
        return (rank_of(r), r.kind, r.namespace, r.name)

    index = {(r.kind, r.namespace, r.name): i for i, (r, _) in enumerate(items)}
    producers: dict[tuple[str, str, str], int] = {}  # e.g. the ExternalSecret writing a Secret
    for i, (ref, obj) in enumerate(items):
        for made in produces(obj, ref):
            producers.setdefault(made, i)
    deps: dict[int, set[int]] = {i: set() for i in range(len(items))}
    for i, (ref, obj) in enumerate(items):
        for target in references(obj, ref):
            j = index.get(target)
            if j is None:
                j = index.get((target[0], "", target[2]))
            if j is not None and j != i:
                deps[i].add(j)
            p = producers.get(target)
            if p is not None and p != i:
                deps[i].add(p)
    done: set[int] = set()
    out: list[int] = []
    remaining = sorted(range(len(items)), key=sort_key)
    while remaining:
        progressed = False
        for i in remaining:
            if deps[i] <= done:
                out.append(i)
                done.add(i)
                remaining.remove(i)
                progressed = True
                break
        if not progressed:  # a cycle: take the lowest-ranked remaining object
            i = remaining.pop(0)
            out.append(i)
            done.add(i)
    return [items[i] for i in out]
