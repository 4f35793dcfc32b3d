"""Unit tests: the Environment model and loader, apply ordering, subjects, the committed JSON schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.bus import git_push_subject, reconcile_request_subject, subject_token
from reconciler.cluster.manager import ApplyError, PruneBlocked, ResourceManager, prepare
from reconciler.cluster.ordering import apply_order, stage_of
from reconciler.errors import ConfigError
from reconciler.model import Action, Inventory, ObjectRef, ref_of
from reconciler.model.environment import environment_json_schema
from reconciler.reconcile import load_environment, load_environments

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schema_is_current() -> None:
    committed = json.loads((ROOT / "deploy/schema/environment.schema.json").read_text())
    assert committed == environment_json_schema(), (
        "run: reconciler schema > deploy/schema/environment.schema.json"
    )


def test_example_environments_load() -> None:
    envs = load_environments(ROOT)
    assert sorted(envs) == ["dev", "prod", "staging"]
    assert envs["prod"].on_failure == "revert"
    assert envs["staging"].promotion.from_env == "dev"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("overlay: overlays/dev\nsync: {drift: sometimes}\n", "sync.drift"),
        ("overlay: ../outside\n", "overlay"),
        ("overlay: overlays/dev\nunknown: 1\n", "unknown"),
        ("overlay: overlays/dev\nsync:\n  interval: -1\n", "sync.interval"),
        ("overlay: [unclosed\n", "dev.yaml:"),
        ("overlay: a\noverlay: b\n", "dev.yaml:"),
        ("sync:\n  ignore:\n  - paths: [spec/replicas]\noverlay: x\n", "sync.ignore.0.paths"),
    ],
)
def test_environment_errors_name_file_and_field(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "dev.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as exc:
        load_environment(path)
    assert str(path) in str(exc.value) and needle in str(exc.value)


def _obj(api_version: str, kind: str, name: str, ns: str = "agents", spec: dict | None = None) -> dict:
    meta = {"name": name, **({"namespace": ns} if ns else {})}
    return {"apiVersion": api_version, "kind": kind, "metadata": meta, **({"spec": spec} if spec else {})}


def test_stage_zero_only_core_namespace() -> None:
    assert stage_of(ObjectRef(kind="Namespace", name="a")) == 0
    assert stage_of(ObjectRef(group="example.io", kind="Namespace", name="a")) == 1
    assert stage_of(ObjectRef(group="apiextensions.k8s.io", kind="CustomResourceDefinition", name="x")) == 0


def test_reference_order_for_agent_platform() -> None:
    objs = [
        _obj(
            "kagent.dev/v1alpha2",
            "Agent",
            "helpdesk",
            spec={
                "declarative": {
                    "modelConfig": "gpt",
                    "tools": [
                        {"type": "Agent", "agent": {"name": "triage"}},
                        {"type": "McpServer", "mcpServer": {"kind": "RemoteMCPServer", "name": "docs"}},
                    ],
                }
            },
        ),
        _obj("kagent.dev/v1alpha2", "Agent", "triage", spec={"byo": {}}),
        _obj("gateway.networking.k8s.io/v1", "HTTPRoute", "r", spec={"parentRefs": [{"name": "agw"}]}),
        _obj("kagent.dev/v1alpha2", "RemoteMCPServer", "docs", spec={"url": "http://x"}),
        _obj("kagent.dev/v1alpha2", "ModelConfig", "gpt", spec={"apiKeySecret": "key"}),
        _obj("gateway.networking.k8s.io/v1", "Gateway", "agw", spec={"gatewayClassName": "agentgateway"}),
        _obj("v1", "Secret", "key"),
        _obj("v1", "Namespace", "agents", ns=""),
        _obj("example.io/v1", "Namespace", "custom"),
    ]
    stages = apply_order([(ref_of(o), o) for o in objs])
    assert [r.name for r, _ in stages[0]] == ["agents"]
    names = [f"{r.kind}/{r.name}" for r, _ in stages[1]]
    assert names.index("Secret/key") < names.index("ModelConfig/gpt") < names.index("Agent/helpdesk")
    assert names.index("Gateway/agw") < names.index("HTTPRoute/r")
    assert names.index("RemoteMCPServer/docs") < names.index("Agent/helpdesk")
    assert names.index("Agent/triage") < names.index("Agent/helpdesk")
    assert "Namespace/custom" in names


def test_subjects_are_single_tokens() -> None:
    assert git_push_subject("github.com/acme/envs") == "reconciler.git.push.github_com_acme_envs"
    assert reconcile_request_subject("prod") == "reconciler.reconcile.request.prod"
    assert subject_token("") == "_" and "." not in subject_token("a.b>c*")


def test_prepare_rejects_duplicates_and_drops_hpa_replicas() -> None:
    dep = _obj("apps/v1", "Deployment", "web", spec={"replicas": 1})
    hpa = _obj(
        "autoscaling/v2",
        "HorizontalPodAutoscaler",
        "web",
        spec={"scaleTargetRef": {"kind": "Deployment", "name": "web"}},
    )
    prepared = prepare([dep, hpa])
    assert "replicas" not in prepared[0].obj["spec"] and "/spec/replicas" in prepared[0].ignore
    with pytest.raises(ApplyError, match="appears twice"):
        prepare([dep, dep])


class FakeClient:
    """An in-memory stand-in for KubeClient's get/delete."""

    def __init__(self, live: dict[str, dict]) -> None:
        self.live = live
        self.deleted: list[str] = []
        self.fail: set[str] = set()

    def get(self, ref: ObjectRef) -> dict | None:
        return self.live.get(str(ref))

    def delete(self, ref: ObjectRef, propagation: str = "Background") -> bool:
        from reconciler.errors import ServerError

        if str(ref) in self.fail:
            raise ServerError(str(ref), 500, "InternalError", "etcd timeout")
        self.deleted.append(str(ref))
        return self.live.pop(str(ref), None) is not None


def _inv(*refs: ObjectRef) -> Inventory:
    return Inventory(environment="dev", entries=list(refs))


def test_prune_rules() -> None:
    a = ObjectRef(kind="ConfigMap", namespace="n", name="a")
    b = ObjectRef(kind="ConfigMap", namespace="n", name="b")
    keep = ObjectRef(kind="ConfigMap", namespace="n", name="keep")
    dep_v1beta = ObjectRef(group="apps", version="v1beta2", kind="Deployment", namespace="n", name="d")
    client = FakeClient({str(r): {"metadata": {}} for r in (a, b, dep_v1beta)})
    client.live[str(keep)] = {"metadata": {"annotations": {"reconciler.dev/prune": "disabled"}}}
    desired = prepare([_obj("apps/v1", "Deployment", "d", ns="n"), _obj("v1", "ConfigMap", "other", ns="n")])
    rm = ResourceManager(client)  # type: ignore[arg-type]
    # three of five would go: blocked unless allowed
    inventory = _inv(a, b, keep, dep_v1beta, ObjectRef(kind="ConfigMap", namespace="n", name="other"))
    with pytest.raises(PruneBlocked):
        rm.prune(inventory, desired)
    assert client.deleted == []
    client.fail.add(str(b))
    changes, kept = rm.prune(inventory, desired, allow_mass_prune=True)
    assert sorted(client.deleted) == [str(a)]  # the apiVersion migration deleted nothing
    assert kept == [b]  # failed delete stays in the inventory and is retried
    actions = {str(c.ref): c.action for c in changes.entries}
    assert actions[str(keep)] is Action.SKIPPED and actions[str(b)] is Action.FAILED
