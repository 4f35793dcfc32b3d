"""The example environment repository (envs/ + overlays/) models the agent platform this project serves.

These tests read the rendered overlays (no cluster): what the platform must contain, that its references
resolve inside each environment, its security and resource settings, byte parity with the real kustomize,
and how dev, staging and prod differ."""

from __future__ import annotations

import re
from decimal import Decimal
from typing import Any

import pytest
from _platform_support import (
    ENVS,
    ROOT,
    by_kind,
    image_repository,
    images,
    kustomization,
    kustomize_binary,
    load_env_file,
    one,
    render_env,
    run_tool,
    workloads,
)

from reconciler.cluster.quantity import parse_quantity
from reconciler.reconcile import load_environment, load_environments
from reconciler.render import dump_yaml

DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")
Objs = list[dict[str, Any]]


@pytest.fixture(scope="module")
def rendered() -> dict[str, Objs]:
    return {env: render_env(env) for env in ENVS}


def _selects(selector: dict[str, Any], labels: dict[str, str]) -> bool:
    """A NetworkPolicy/PDB-style label selector (matchLabels only; empty selects everything)."""
    assert not selector.get("matchExpressions"), "the example uses matchLabels only"
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def _pod_labels(objs: Objs) -> dict[str, dict[str, str]]:
    """``workload → labels of its pods``, including the pods kagent and kmcp create from CRs."""
    out: dict[str, dict[str, str]] = {}
    for o in objs:
        kind, name, spec = o["kind"], o["metadata"]["name"], o.get("spec") or {}
        if kind in ("Deployment", "StatefulSet"):
            out[f"{kind}/{name}"] = dict(spec["template"]["metadata"]["labels"])
        elif kind == "Agent":  # kagent: selector labels app=kagent, kagent=<name>, plus deployment.labels
            block = (spec.get("declarative") or spec.get("byo") or {}).get("deployment") or {}
            out[f"{kind}/{name}"] = {"app": "kagent", "kagent": name, **(block.get("labels") or {})}
        elif kind == "MCPServer":  # kmcp: app.kubernetes.io/name and /instance = <name>, plus labels
            block = spec.get("deployment") or {}
            out[f"{kind}/{name}"] = {
                "app.kubernetes.io/name": name,
                "app.kubernetes.io/instance": name,
                **(block.get("labels") or {}),
            }
    return out


# ---------------------------------------------------------------------------------------------------
# Rendering


@pytest.mark.parametrize("env", ENVS)
def test_overlay_renders_byte_identical_to_kustomize(env: str) -> None:
    reference = run_tool([kustomize_binary(), "build", ROOT / "overlays" / env])
    assert dump_yaml(render_env(env)) == reference


@pytest.mark.parametrize("env", ENVS)
def test_environment_file_matches_its_overlay(env: str, rendered: dict[str, Objs]) -> None:
    environment = load_environment(ROOT / "envs" / f"{env}.yaml")
    assert environment.overlay == f"overlays/{env}"
    assert environment.namespace == kustomization(env)["namespace"] == f"agents-{env}"
    namespaces = by_kind(rendered[env], "Namespace")
    assert list(namespaces) == [environment.namespace]
    assert {o["metadata"].get("namespace") for o in rendered[env] if o["kind"] != "Namespace"} == {
        environment.namespace
    }
    # custom resources report Unverified quickly on a cluster without their controllers
    assert 0 < environment.health.no_controller_after <= 30
    assert load_env_file(env)["overlay"] == environment.overlay


def test_promotion_chain() -> None:
    envs = load_environments(ROOT)
    assert sorted(envs) == sorted(ENVS)
    assert envs["dev"].promotion.from_env is None and envs["dev"].promotion.via == "push"
    assert envs["staging"].promotion.from_env == "dev"
    assert envs["prod"].promotion.from_env == "staging" and envs["prod"].promotion.via == "pr"


# ---------------------------------------------------------------------------------------------------
# The parts of the platform


@pytest.mark.parametrize("env", ENVS)
def test_langgraph_service_has_checkpoint_volume_hpa_pdb_and_probes(
    env: str, rendered: dict[str, Objs]
) -> None:
    objs = rendered[env]
    sts = one(objs, "StatefulSet", "research-graph")
    templates = {t["metadata"]["name"]: t for t in sts["spec"]["volumeClaimTemplates"]}
    assert "checkpoints" in templates
    assert parse_quantity(templates["checkpoints"]["spec"]["resources"]["requests"]["storage"]) > 0
    (graph,) = sts["spec"]["template"]["spec"]["containers"]
    mounts = {m["name"]: m["mountPath"] for m in graph["volumeMounts"]}
    checkpoint_env = {e["name"]: e.get("value") for e in graph["env"]}["LANGGRAPH_CHECKPOINT_DIR"]
    assert mounts["checkpoints"] == checkpoint_env
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert graph[probe]["httpGet"]["port"] in {p["name"] for p in graph["ports"]}, probe
    governing = one(objs, "Service", sts["spec"]["serviceName"])
    assert governing["spec"]["clusterIP"] == "None"

    hpa = one(objs, "HorizontalPodAutoscaler", "research-graph")
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "name": "research-graph",
    }
    # the HPA's range covers the StatefulSet's own replica count, so the first apply is within bounds
    assert hpa["spec"]["minReplicas"] <= sts["spec"]["replicas"] <= hpa["spec"]["maxReplicas"]
    assert hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pod_labels = sts["spec"]["template"]["metadata"]["labels"]
    pdb = one(objs, "PodDisruptionBudget", "research-graph")
    assert _selects(pdb["spec"]["selector"], pod_labels)
    assert _selects(sts["spec"]["selector"], pod_labels)


@pytest.mark.parametrize("env", ENVS)
def test_two_typescript_mcp_servers(env: str, rendered: dict[str, Objs]) -> None:
    objs = rendered[env]
    # one as Deployment + Service ...
    dep = one(objs, "Deployment", "clock-mcp")
    svc = one(objs, "Service", "clock-mcp")
    (server,) = dep["spec"]["template"]["spec"]["containers"]
    assert _selects({"matchLabels": svc["spec"]["selector"]}, dep["spec"]["template"]["metadata"]["labels"])
    assert svc["spec"]["ports"][0]["targetPort"] in {p["name"] for p in server["ports"]}
    assert server["readinessProbe"] and server["livenessProbe"]
    # ... one as a kmcp MCPServer serving streamable HTTP itself
    mcp = one(objs, "MCPServer", "docs-mcp")
    assert mcp["apiVersion"] == "kagent.dev/v1alpha1"
    assert mcp["spec"]["transportType"] == "http"
    assert mcp["spec"]["httpTransport"]["targetPort"] == mcp["spec"]["deployment"]["port"]


@pytest.mark.parametrize("env", ENVS)
def test_agents_model_and_tools_resolve(env: str, rendered: dict[str, Objs]) -> None:
    objs = rendered[env]
    agents = by_kind(objs, "Agent")
    assert {a["spec"]["type"] for a in agents.values()} == {"Declarative", "BYO"}
    secrets = by_kind(objs, "Secret")

    helpdesk = agents["helpdesk"]["spec"]["declarative"]
    model = one(objs, "ModelConfig", helpdesk["modelConfig"])["spec"]
    key_secret = secrets[model["apiKeySecret"]]  # the API key comes from a Secret reference
    assert model["apiKeySecretKey"] in _secret_keys(key_secret)

    remote_tools = [t["mcpServer"] for t in helpdesk["tools"] if t["type"] == "McpServer"]
    assert remote_tools and all(t["kind"] == "RemoteMCPServer" for t in remote_tools)
    sub_agents = [t["agent"]["name"] for t in helpdesk["tools"] if t["type"] == "Agent"]
    assert sub_agents == ["research"] and agents["research"]["spec"]["type"] == "BYO"
    research = agents["research"]["spec"]["byo"]["deployment"]
    graph_url = {e["name"]: e.get("value") for e in research["env"]}["LANGGRAPH_URL"]
    graph_svc = one(objs, "Service", "research-graph")
    assert graph_url == f"http://research-graph:{graph_svc['spec']['ports'][0]['port']}"

    # a RemoteMCPServer points through the gateway, at a route whose backend multiplexes MCP targets, or
    # directly at an MCP Service of the environment (the reference server "everything")
    namespace = kustomization(env)["namespace"]
    services = by_kind(objs, "Service")
    gateways = by_kind(objs, "Gateway")
    assert {t["name"] for t in remote_tools} == {"platform-tools", "everything"}
    for tool in remote_tools:
        remote = one(objs, "RemoteMCPServer", tool["name"])["spec"]
        m = re.fullmatch(
            r"http://([a-z0-9-]+)\.([a-z0-9-]+)\.svc\.cluster\.local:(\d+)(/[^?#]*)", remote["url"]
        )
        assert m, remote["url"]
        gateway_name, ns, port, path = m.group(1), m.group(2), int(m.group(3)), m.group(4)
        assert ns == namespace
        if gateway_name not in gateways:  # a Service that serves MCP itself, selecting an MCP server's pods
            svc = services[gateway_name]
            (svc_port,) = [p for p in svc["spec"]["ports"] if p["port"] == port]
            assert svc_port["appProtocol"] == "agentgateway.dev/mcp"
            assert svc["metadata"]["annotations"]["agentgateway.dev/mcp-path"] == path
            dep = one(objs, "Deployment", gateway_name)
            assert _selects(
                {"matchLabels": svc["spec"]["selector"]}, dep["spec"]["template"]["metadata"]["labels"]
            )
            assert tool["toolNames"], "an Agent names the tools it uses"
            continue
        gateway = one(objs, "Gateway", gateway_name)
        assert port in {lst["port"] for lst in gateway["spec"]["listeners"]}
        for header in remote.get("headersFrom") or []:
            ref = header["valueFrom"]
            assert ref["type"] == "Secret" and ref["key"] in _secret_keys(secrets[ref["name"]])
        backend = _backend_for(objs, gateway_name, path)
        targets = [t["name"] for t in backend["spec"]["mcp"]["targets"]]
        assert backend["spec"]["mcp"].get("prefixMode") == "Always"
        for name in tool["toolNames"]:  # multiplexed tool names are <target>_<tool>
            assert name.split("_", 1)[0] in targets, name


def _secret_keys(secret: dict[str, Any]) -> set[str]:
    """The keys a Secret of the example holds: its values are SOPS-encrypted in Git (policies/secrets.rego
    refuses plaintext data in Git) and it names its keys in an annotation, which agree."""
    values = {**(secret.get("stringData") or {}), **(secret.get("data") or {})}
    assert values and all(str(v).startswith("ENC[AES256_GCM,data:") for v in values.values()), (
        "every Secret value in Git is SOPS ciphertext"
    )
    assert isinstance(secret.get("sops"), dict) and secret["sops"].get("mac")
    named = set(secret["metadata"]["annotations"]["platform.acme.dev/secret-keys"].split(","))
    assert named == set(values)
    return named


def _backend_for(objs: Objs, gateway: str, path: str) -> dict[str, Any]:
    """The AgentgatewayBackend an HTTPRoute attached to ``gateway`` sends ``path`` to."""
    for route in by_kind(objs, "HTTPRoute").values():
        if gateway not in {p["name"] for p in route["spec"]["parentRefs"]} or route["spec"].get("hostnames"):
            continue
        for rule in route["spec"]["rules"]:
            prefixes = [m["path"]["value"] for m in rule.get("matches", []) if "path" in m]
            if any(path.startswith(p) for p in prefixes):
                (ref,) = rule["backendRefs"]
                assert (ref["group"], ref["kind"]) == ("agentgateway.dev", "AgentgatewayBackend")
                return one(objs, "AgentgatewayBackend", ref["name"])
    raise AssertionError(f"no HTTPRoute on Gateway {gateway} matches {path}")


@pytest.mark.parametrize("env", ENVS)
def test_gateway_routes_backends_and_policies_resolve(env: str, rendered: dict[str, Objs]) -> None:
    objs = rendered[env]
    names = {(o["kind"], o["metadata"]["name"]) for o in objs}
    services = by_kind(objs, "Service")
    mcp_servers = by_kind(objs, "MCPServer")
    agents = by_kind(objs, "Agent")

    for gw in by_kind(objs, "Gateway").values():
        assert gw["spec"]["gatewayClassName"] == "agentgateway"
        params = gw["spec"]["infrastructure"]["parametersRef"]
        assert (params["kind"], params["name"]) in names
    for route in by_kind(objs, "HTTPRoute").values():
        for parent in route["spec"]["parentRefs"]:
            gateway = one(objs, "Gateway", parent["name"])
            if "sectionName" in parent:
                assert parent["sectionName"] in {lst["name"] for lst in gateway["spec"]["listeners"]}
        for rule in route["spec"]["rules"]:
            for ref in rule["backendRefs"]:
                kind = ref.get("kind", "Service")
                if kind == "Service":  # in the set, or the Service kagent makes for an Agent (port 8080)
                    assert ref["name"] in services or (ref["name"] in agents and ref["port"] == 8080), ref
                else:
                    assert (kind, ref["name"]) in names, ref

    mcp_backends = [b for b in by_kind(objs, "AgentgatewayBackend").values() if "mcp" in b["spec"]]
    assert mcp_backends
    for backend in mcp_backends:
        assert len(backend["spec"]["mcp"]["targets"]) >= 2  # both MCP servers behind one endpoint
        for target in backend["spec"]["mcp"]["targets"]:
            name, port = target["static"]["backendRef"]["name"], target["static"]["port"]
            if name in services:
                assert port in {p["port"] for p in services[name]["spec"]["ports"]}
            else:  # the Service kmcp creates for an MCPServer has its name and deployment.port
                assert mcp_servers[name]["spec"]["deployment"]["port"] == port

    policies = list(by_kind(objs, "AgentgatewayPolicy").values())
    for policy in policies:
        for ref in policy["spec"]["targetRefs"]:
            assert (ref["kind"], ref["name"]) in names, ref
    jwt = [p["spec"]["traffic"] for p in policies if "jwtAuthentication" in p["spec"].get("traffic", {})]
    assert len(jwt) == 1 and jwt[0]["rateLimit"]["local"]
    for provider in jwt[0]["jwtAuthentication"]["providers"]:
        ref = provider["jwks"]["remote"]["backendRef"]
        assert (ref["kind"], ref["name"]) in names
    authz = [p for p in policies if "authorization" in p["spec"].get("backend", {}).get("mcp", {})]
    assert len(authz) == 1
    assert {(r["kind"], r["name"]) for r in authz[0]["spec"]["targetRefs"]} == {
        ("AgentgatewayBackend", b["metadata"]["name"]) for b in mcp_backends
    }


@pytest.mark.parametrize("env", ENVS)
def test_network_policies_cover_every_workload(env: str, rendered: dict[str, Objs]) -> None:
    objs = rendered[env]
    policies = list(by_kind(objs, "NetworkPolicy").values())
    deny = [p for p in policies if p["spec"]["podSelector"] == {} and "ingress" not in p["spec"]]
    assert deny and "Ingress" in deny[0]["spec"]["policyTypes"]
    allow = [p for p in policies if p not in deny]
    for workload, labels in _pod_labels(objs).items():
        opened = [p for p in allow if _selects(p["spec"]["podSelector"], labels) and p["spec"].get("ingress")]
        assert opened, f"no NetworkPolicy lets anything reach {workload}"
        for policy in opened:  # every opening names ports: nothing is open wholesale
            assert all(rule.get("ports") for rule in policy["spec"]["ingress"]), policy["metadata"]["name"]


@pytest.mark.parametrize("env", ENVS)
def test_requests_limits_non_root_read_only(env: str, rendered: dict[str, Objs]) -> None:
    found = list(workloads(rendered[env]))
    assert {w.where.split("/")[0] for w in found} == {"Deployment", "StatefulSet", "Agent", "MCPServer"}
    for w in found:
        assert w.pod_security.get("runAsNonRoot") is True, w.where
        assert w.pod_security.get("seccompProfile") == {"type": "RuntimeDefault"}, w.where
        for c in w.containers:
            where = f"{w.where}/{c['name']}"
            res = c["resources"] or {}
            assert parse_quantity(res["requests"]["cpu"]) > 0, where
            assert parse_quantity(res["requests"]["memory"]) > 0, where
            assert parse_quantity(res["limits"]["memory"]) >= parse_quantity(res["requests"]["memory"]), where
            sc = c["securityContext"] or {}
            assert sc.get("readOnlyRootFilesystem") is True, where
            assert sc.get("allowPrivilegeEscalation") is False, where
            assert sc.get("capabilities", {}).get("drop") == ["ALL"], where
        # a read-only root needs a writable /tmp from a volume
        assert any("emptyDir" in v for v in w.volumes), w.where
    for o in rendered[env]:
        if o["kind"] in ("Deployment", "StatefulSet"):
            assert o["spec"]["template"]["spec"]["automountServiceAccountToken"] is False


# ---------------------------------------------------------------------------------------------------
# Images and environment differences


@pytest.mark.parametrize("env", ENVS)
def test_every_image_has_an_images_entry(env: str, rendered: dict[str, Objs]) -> None:
    running = images(rendered[env])
    entries = {e["name"]: e for e in kustomization(env)["images"]}
    assert {image_repository(i) for i in running.values()} == set(entries)
    assert {"ghcr.io/acme/clock-mcp", "ghcr.io/acme/research-graph", "ghcr.io/acme/research-agent"} <= set(
        entries
    )
    for where, image in running.items():
        entry = entries[image_repository(image)]
        assert image.split("@")[0].endswith(f":{entry['newTag']}"), where
        if env in ("staging", "prod"):  # promoted versions, pinned by digest (policies/images.rego)
            assert DIGEST.search(image) and image.endswith(entry["digest"]), where
        else:
            assert "@" not in image and "digest" not in entry, where


def _mem(value: str) -> Decimal:
    return parse_quantity(value)


def test_environments_differ_in_replicas_resources_images_and_policies(rendered: dict[str, Objs]) -> None:
    dev, staging, prod = (rendered[e] for e in ENVS)

    def replicas(objs: Objs) -> tuple[int, int, int, int]:
        return (
            one(objs, "Deployment", "clock-mcp")["spec"]["replicas"],
            one(objs, "MCPServer", "docs-mcp")["spec"]["deployment"]["replicas"],
            one(objs, "HorizontalPodAutoscaler", "research-graph")["spec"]["minReplicas"],
            one(objs, "HorizontalPodAutoscaler", "research-graph")["spec"]["maxReplicas"],
        )

    assert all(d < s < p for d, s, p in zip(replicas(dev), replicas(staging), replicas(prod), strict=True))

    def graph(objs: Objs) -> tuple[Decimal, Decimal]:
        sts = one(objs, "StatefulSet", "research-graph")["spec"]
        limits = sts["template"]["spec"]["containers"][0]["resources"]["limits"]["memory"]
        storage = sts["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"]
        return _mem(limits), _mem(storage)

    assert graph(dev)[0] < graph(prod)[0] and graph(dev)[1] < graph(prod)[1]

    def limit(objs: Objs) -> tuple[str, int]:
        traffic = one(objs, "AgentgatewayPolicy", "gateway-auth")["spec"]["traffic"]
        return traffic["jwtAuthentication"].get("mode", "Strict"), traffic["rateLimit"]["local"][0][
            "requests"
        ]

    assert limit(dev)[0] == "Optional" and limit(staging)[0] == limit(prod)[0] == "Strict"
    assert limit(dev)[1] > limit(staging)[1] > limit(prod)[1]

    def rules(objs: Objs) -> list[str]:
        spec = one(objs, "AgentgatewayPolicy", "platform-tools-authz")["spec"]
        return list(spec["backend"]["mcp"]["authorization"]["policy"]["matchExpressions"])

    assert rules(dev) == ["true"] and rules(dev) != rules(staging) != rules(prod)
    assert images(dev) != images(staging)  # dev runs newer versions than it promoted


def test_dev_image_policies_follow_every_image_entry() -> None:
    """dev takes new releases automatically: one policy per `images:` entry of its overlay, each accepting
    the version dev runs now (so automation moves forward from it); staging and prod have none."""
    envs = load_environments(ROOT)
    policies = envs["dev"].image_policies
    entries = kustomization("dev")["images"]
    for entry in entries:
        (policy,) = [p for p in policies if p.matches(entry["name"])]
        verdict = policy.verdict(entry["newTag"])
        assert verdict.allowed, (entry, verdict.reason)
    assert len(policies) == len(entries)
    assert envs["staging"].image_policies == [] and envs["prod"].image_policies == []
