"""One test (or more) per comparison rule of reconciler.cluster.drift.diff_paths."""

from __future__ import annotations

import base64
import copy
from typing import Any

import pytest

from reconciler.cluster.drift import (
    DriftInputError,
    controller_owned_pointers,
    diff_fields,
    diff_paths,
    hpa_targets,
    json_pointer_to_path,
    without_controller_owned,
)

C = "spec.template.spec.containers[name=web]"


def deployment() -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "agents", "labels": {"app": "web"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {
                            "name": "web",
                            "image": "registry.example.test/web:1.0",
                            "args": ["--port", "8080"],
                            "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                            "ports": [{"name": "http", "containerPort": 8080}],
                            "resources": {"requests": {"cpu": "250m", "memory": "512Mi"}},
                            "volumeMounts": [{"name": "data", "mountPath": "/data"}],
                        }
                    ],
                    "volumes": [{"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}],
                },
            },
        },
    }


def container(obj: dict[str, Any], index: int = 0) -> dict[str, Any]:
    c: dict[str, Any] = obj["spec"]["template"]["spec"]["containers"][index]
    return c


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    s: dict[str, Any] = obj["spec"]["template"]["spec"]
    return s


# ---------------------------------------------------------------- desired is a subset of live


def test_identical_objects_are_in_sync() -> None:
    assert diff_paths(deployment(), deployment()) == []


def test_server_defaults_status_and_bookkeeping_are_ignored() -> None:
    live = deployment()
    live["metadata"].update(
        uid="u-1", resourceVersion="42", generation=3, creationTimestamp="2025-01-01T00:00:00Z", selfLink="/x"
    )
    live["metadata"]["annotations"] = {"deployment.kubernetes.io/revision": "3"}
    live["spec"]["strategy"] = {"type": "RollingUpdate"}
    live["spec"]["template"]["metadata"]["creationTimestamp"] = None
    container(live).update(imagePullPolicy="IfNotPresent", terminationMessagePath="/dev/termination-log")
    pod_spec(live)["dnsPolicy"] = "ClusterFirst"
    live["status"] = {"replicas": 2, "readyReplicas": 1}
    assert diff_paths(deployment(), live) == []


def test_status_and_bookkeeping_in_desired_are_not_compared() -> None:
    desired = deployment()
    desired["status"] = {"replicas": 9}
    desired["metadata"].update(
        resourceVersion="1", uid="x", generation=1, creationTimestamp="2020-01-01T00:00:00Z"
    )
    live = deployment()
    live["metadata"].update(resourceVersion="2", uid="y", generation=5)
    assert diff_paths(desired, live) == []


def test_changed_scalar_reported() -> None:
    live = deployment()
    container(live)["image"] = "registry.example.test/web:1.1"
    live["spec"]["replicas"] = 3
    assert diff_paths(deployment(), live) == ["spec.replicas", f"{C}.image"]


def test_missing_live_field_reported() -> None:
    desired = deployment()
    pod_spec(desired)["serviceAccountName"] = "web"
    assert diff_paths(desired, deployment()) == ["spec.template.spec.serviceAccountName"]


def test_missing_live_map_reports_its_leaves() -> None:
    desired = deployment()
    pod_spec(desired)["securityContext"] = {"runAsUser": 1000, "runAsNonRoot": True}
    assert diff_paths(desired, deployment()) == [
        "spec.template.spec.securityContext.runAsNonRoot",
        "spec.template.spec.securityContext.runAsUser",
    ]


def test_type_change_reported() -> None:
    live = deployment()
    pod_spec(live)["volumes"][0]["emptyDir"] = "oops"
    assert diff_paths(deployment(), live) == ["spec.template.spec.volumes[name=data].emptyDir"]


def test_labels_and_annotations_compare_only_desired_keys() -> None:
    desired = deployment()
    desired["metadata"]["annotations"] = {"example.com/owner": "team-a"}
    live = deployment()
    live["metadata"]["labels"]["added-by-someone"] = "x"
    live["metadata"]["annotations"] = {"example.com/owner": "team-a", "other": "y"}
    assert diff_paths(desired, live) == []
    live["metadata"]["annotations"]["example.com/owner"] = "team-b"
    live["metadata"]["labels"]["app"] = "other"
    assert diff_paths(desired, live) == ['metadata.annotations["example.com/owner"]', "metadata.labels.app"]


def test_label_removed_live_is_drift() -> None:
    live = deployment()
    del live["metadata"]["labels"]["app"]
    assert diff_paths(deployment(), live) == ["metadata.labels.app"]


# ---------------------------------------------------------------- quantities


@pytest.mark.parametrize(
    ("desired_value", "live_value"),
    [
        ("1000m", "1"),
        ("1000M", "1G"),
        ("2048Mi", "2Gi"),
        ("0.5", "500m"),
        (0.5, "500m"),
        (1, "1000m"),
        ("2", 2),
    ],
)
def test_quantities_compared_by_value(desired_value: Any, live_value: Any) -> None:
    desired, live = deployment(), deployment()
    container(desired)["resources"]["limits"] = {"cpu": desired_value}
    container(live)["resources"]["limits"] = {"cpu": live_value}
    assert diff_paths(desired, live) == []


@pytest.mark.parametrize(("desired_value", "live_value"), [("1G", "1Gi"), ("1000M", "2G"), ("500m", "5")])
def test_different_quantities_reported(desired_value: str, live_value: str) -> None:
    desired, live = deployment(), deployment()
    container(desired)["resources"]["requests"]["memory"] = desired_value
    container(live)["resources"]["requests"]["memory"] = live_value
    assert diff_paths(desired, live) == [f"{C}.resources.requests.memory"]


def test_quantities_elsewhere() -> None:
    pvc: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {"name": "d", "namespace": "a"},
        "spec": {"resources": {"requests": {"storage": "10240Mi"}}},
    }
    live_pvc = copy.deepcopy(pvc)
    live_pvc["spec"]["resources"]["requests"]["storage"] = "10Gi"
    assert diff_paths(pvc, live_pvc) == []

    desired, live = deployment(), deployment()
    pod_spec(desired)["overhead"] = {"cpu": "250m", "memory": "120M"}
    pod_spec(live)["overhead"] = {"cpu": "0.25", "memory": "120000k"}
    pod_spec(live)["volumes"][0]["emptyDir"]["sizeLimit"] = "1024Mi"
    assert diff_paths(desired, live) == []

    quota: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {"name": "q"},
        "spec": {"hard": {"requests.cpu": "4"}},
    }
    live_quota = copy.deepcopy(quota)
    live_quota["spec"]["hard"]["requests.cpu"] = "4000m"
    assert diff_paths(quota, live_quota) == []

    limit_range: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": {"name": "l"},
        "spec": {"limits": [{"type": "Container", "default": {"memory": "1Gi"}, "max": {"cpu": "2"}}]},
    }
    live_lr = copy.deepcopy(limit_range)
    live_lr["spec"]["limits"][0].update(default={"memory": "1024Mi"}, max={"cpu": "2000m"})
    assert diff_paths(limit_range, live_lr) == []
    live_lr["spec"]["limits"][0]["max"]["cpu"] = "3"
    assert diff_paths(limit_range, live_lr) == ["spec.limits[0].max.cpu"]


def test_quantity_rule_does_not_apply_outside_quantity_fields() -> None:
    desired: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "data": {"size": "1000m"},
    }
    live = copy.deepcopy(desired)
    live["data"]["size"] = "1"
    assert diff_paths(desired, live) == ["data.size"]


def test_non_quantity_string_under_a_quantity_name_compared_as_text() -> None:
    desired: dict[str, Any] = {
        "apiVersion": "x.example/v1",
        "kind": "Thing",
        "metadata": {"name": "t"},
        "spec": {"limits": {"mode": "strict"}},
    }
    live = copy.deepcopy(desired)
    assert diff_paths(desired, live) == []
    live["spec"]["limits"]["mode"] = "lax"
    assert diff_paths(desired, live) == ["spec.limits.mode"]


# ---------------------------------------------------------------- numbers and int-or-string


def test_int_or_string_and_numbers_by_value() -> None:
    desired: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s"},
        "spec": {
            "ports": [{"port": 80, "targetPort": "8080"}],
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 10.0}},
        },
    }
    live = copy.deepcopy(desired)
    live["spec"]["ports"][0].update(targetPort=8080, protocol="TCP")
    live["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"] = 10
    assert diff_paths(desired, live) == []
    live["spec"]["ports"][0]["targetPort"] = 8081
    assert diff_paths(desired, live) == ["spec.ports[port=80,protocol=TCP].targetPort"]


@pytest.mark.parametrize(
    ("desired_value", "live_value"), [("25%", 25), (True, "true"), (1, True), ("http", 80), ("1e3", 1000)]
)
def test_values_that_only_look_alike_differ(desired_value: Any, live_value: Any) -> None:
    desired, live = deployment(), deployment()
    desired["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": desired_value}}
    live["spec"]["strategy"] = {"rollingUpdate": {"maxSurge": live_value}}
    assert diff_paths(desired, live) == ["spec.strategy.rollingUpdate.maxSurge"]


# ---------------------------------------------------------------- empty vs absent


def test_empty_desired_equals_absent_live() -> None:
    desired = deployment()
    desired["metadata"]["annotations"] = {}
    container(desired)["envFrom"] = []
    container(desired)["securityContext"] = {}
    pod_spec(desired)["nodeSelector"] = None
    pod_spec(desired)["affinity"] = {"nodeAffinity": {}}
    assert diff_paths(desired, deployment()) == []


def test_empty_live_equals_absent_desired() -> None:
    live = deployment()
    live["metadata"]["annotations"] = {}
    container(live)["securityContext"] = {}
    pod_spec(live)["securityContext"] = {}
    assert diff_paths(deployment(), live) == []


def test_empty_desired_map_against_empty_live_map() -> None:
    desired = deployment()
    del container(desired)["resources"]
    container(desired)["resources"] = {}
    live = deployment()
    container(live)["resources"] = {}
    assert diff_paths(desired, live) == []


def test_empty_atomic_list_in_desired_against_filled_live_list_is_drift() -> None:
    desired, live = deployment(), deployment()
    container(desired)["args"] = []
    assert diff_paths(desired, live) == [f"{C}.args[0]", f"{C}.args[1]"]


def test_empty_keyed_list_in_desired_owns_no_items() -> None:
    desired, live = deployment(), deployment()
    container(desired)["env"] = []
    assert diff_paths(desired, live) == []


def test_zero_values_equal_absent_for_omitempty_fields() -> None:
    desired = deployment()
    container(desired)["volumeMounts"][0].update(readOnly=False, subPath="")
    pod_spec(desired)["hostNetwork"] = False
    assert diff_paths(desired, deployment()) == []


def test_zero_value_with_non_zero_default_is_not_absent() -> None:
    desired = deployment()
    pod_spec(desired)["automountServiceAccountToken"] = False
    assert diff_paths(desired, deployment()) == ["spec.template.spec.automountServiceAccountToken"]


def test_empty_string_map_entry_is_a_value() -> None:
    desired = deployment()
    desired["metadata"]["annotations"] = {"example.com/flag": ""}
    assert diff_paths(desired, deployment()) == ['metadata.annotations["example.com/flag"]']


# ---------------------------------------------------------------- lists


def test_keyed_lists_ignore_order_and_live_only_items() -> None:
    desired, live = deployment(), deployment()
    container(live)["env"].reverse()
    container(live)["env"].append({"name": "INJECTED", "value": "x"})
    pod_spec(live)["containers"].append({"name": "istio-proxy", "image": "proxy"})
    pod_spec(live)["containers"].reverse()
    pod_spec(live)["volumes"].append({"name": "token", "projected": {}})
    container(live, 1)["volumeMounts"].append({"name": "token", "mountPath": "/var/run/secrets"})
    assert diff_paths(desired, live) == []


def test_keyed_list_items_addressed_by_merge_key() -> None:
    desired, live = deployment(), deployment()
    container(live)["env"][1]["value"] = "changed"
    del container(live)["volumeMounts"][0]
    pod_spec(desired)["imagePullSecrets"] = [{"name": "regcred"}]
    assert diff_paths(desired, live) == [
        f"{C}.env[name=B].value",
        f"{C}.volumeMounts[mountPath=/data]",
        "spec.template.spec.imagePullSecrets[name=regcred]",
    ]


def test_missing_container_reported_as_item() -> None:
    desired = deployment()
    pod_spec(desired)["initContainers"] = [{"name": "init", "image": "busybox"}]
    assert diff_paths(desired, deployment()) == ["spec.template.spec.initContainers[name=init]"]


def test_container_ports_keyed_by_port_and_defaulted_protocol() -> None:
    desired, live = deployment(), deployment()
    container(live)["ports"] = [
        {"name": "metrics", "containerPort": 9090, "protocol": "TCP"},
        {"name": "http", "containerPort": 8080, "protocol": "TCP"},
    ]
    assert diff_paths(desired, live) == []
    container(live)["ports"][1]["protocol"] = "UDP"
    assert diff_paths(desired, live) == [f"{C}.ports[containerPort=8080,protocol=TCP]"]


def test_service_ports_keyed_by_port_and_protocol() -> None:
    desired: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "s", "namespace": "a"},
        "spec": {"ports": [{"name": "dns", "port": 53, "protocol": "UDP"}, {"name": "dns-tcp", "port": 53}]},
    }
    live = copy.deepcopy(desired)
    live["spec"]["ports"] = [
        {"name": "dns-tcp", "port": 53, "protocol": "TCP", "targetPort": 53},
        {"name": "dns", "port": 53, "protocol": "UDP", "targetPort": 53},
    ]
    assert diff_paths(desired, live) == []
    live["spec"]["ports"][0]["name"] = "renamed"
    assert diff_paths(desired, live) == ["spec.ports[port=53,protocol=TCP].name"]


def test_atomic_lists_by_index() -> None:
    desired, live = deployment(), deployment()
    pod_spec(desired)["tolerations"] = [{"key": "gpu", "operator": "Exists"}]
    pod_spec(live)["tolerations"] = [
        {"key": "gpu", "operator": "Exists"},
        {"key": "extra", "operator": "Exists"},
    ]
    container(live)["args"] = ["--port", "9090"]
    assert diff_paths(desired, live) == [f"{C}.args[1]", "spec.template.spec.tolerations[1]"]
    container(live)["args"] = ["8080", "--port"]
    pod_spec(live)["tolerations"].pop()
    assert diff_paths(desired, live) == [f"{C}.args[0]", f"{C}.args[1]"]
    container(live)["args"] = ["--port"]
    assert diff_paths(desired, live) == [f"{C}.args[1]"]


def test_atomic_list_of_maps_is_a_subset_per_item() -> None:
    desired, live = deployment(), deployment()
    pod_spec(desired)["tolerations"] = [{"key": "gpu", "operator": "Exists"}]
    pod_spec(live)["tolerations"] = [{"key": "gpu", "operator": "Exists", "effect": "NoSchedule"}]
    assert diff_paths(desired, live) == []


def test_duplicate_merge_key_in_desired_is_bad_input() -> None:
    desired = deployment()
    container(desired)["env"].append({"name": "A", "value": "again"})
    with pytest.raises(DriftInputError, match=r"Deployment agents/web: duplicate list item \[name=A\]"):
        diff_paths(desired, deployment())


def test_list_without_merge_key_values_falls_back_to_index() -> None:
    desired, live = deployment(), deployment()
    pod_spec(desired)["volumes"] = [{"emptyDir": {}}]  # no name: not keyable
    pod_spec(live)["volumes"] = [{"emptyDir": {}}]
    assert diff_paths(desired, live) == []


# ---------------------------------------------------------------- Secret


def _secret(**fields: Any) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "a"},
        "type": "Opaque",
        **fields,
    }


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_secret_string_data_against_live_data() -> None:
    desired = _secret(stringData={"token": "s3cr3t-value", "user": "bot"})
    live = _secret(data={"token": _b64("s3cr3t-value"), "user": _b64("bot"), "extra": _b64("x")})
    assert diff_paths(desired, live) == []
    live["data"]["token"] = _b64("other-value")
    del live["data"]["user"]
    result = diff_paths(desired, live)
    assert result == ["data.token", "data.user"]  # where the live object holds them
    fields = diff_fields(desired, live)
    assert [(f.live, f.git) for f in fields] == [
        ("data.token", "stringData.token"),
        ("data.user", "stringData.user"),
    ]
    assert [str(f) for f in fields] == [
        "data.token (from stringData.token)",
        "data.user (from stringData.user)",
    ]
    assert not any("s3cr3t" in str(f) or "other-value" in str(f) for f in fields)


def test_secret_ignore_pointer_on_data_covers_string_data() -> None:
    desired = _secret(stringData={"token": "a", "user": "b"})
    live = _secret(data={"token": _b64("rotated"), "user": _b64("c")})
    assert diff_paths(desired, live, ignore=["/data/token"]) == ["data.user"]
    assert diff_paths(desired, live, ignore=["/stringData/user"]) == ["data.token"]


def test_secret_data_compared_decoded_and_string_data_wins() -> None:
    desired = _secret(data={"a": _b64("one"), "b": _b64("old")}, stringData={"b": "new"})
    live = _secret(data={"a": _b64("one"), "b": _b64("new")})
    assert diff_paths(desired, live) == []
    live["data"]["a"] = _b64("two")
    assert diff_paths(desired, live) == ["data.a"]
    assert [(f.live, f.git) for f in diff_fields(desired, live)] == [("data.a", "data.a")]
    live["data"]["b"] = _b64("old")  # data says old, stringData (which wins on write) says new
    assert [str(f) for f in diff_fields(desired, live)] == ["data.a", "data.b (from stringData.b)"]
    live["data"]["b"] = _b64("new")
    live["data"]["a"] = "!!not base64!!"
    assert diff_paths(desired, live) == ["data.a"]


def test_secret_bad_desired_data_names_key_not_value() -> None:
    desired = _secret(data={"password": "hunter2!!"})
    with pytest.raises(DriftInputError) as err:
        diff_paths(desired, _secret(data={}))
    assert "data.password" in str(err.value)
    assert "hunter2" not in str(err.value)


def test_secret_type_and_labels_still_compared() -> None:
    desired = _secret(stringData={"k": "v"})
    live = _secret(data={"k": _b64("v")})
    live["type"] = "kubernetes.io/tls"
    assert diff_paths(desired, live) == ["type"]


# ---------------------------------------------------------------- managedFields


def _with_managed(
    live: dict[str, Any], manager: str, fields: dict[str, Any], operation: str = "Apply"
) -> None:
    entry = {
        "manager": manager,
        "operation": operation,
        "apiVersion": "apps/v1",
        "fieldsType": "FieldsV1",
        "fieldsV1": fields,
    }
    live["metadata"].setdefault("managedFields", []).append(entry)


def test_owned_field_no_longer_desired_is_reported() -> None:
    desired, live = deployment(), deployment()
    live["metadata"]["annotations"] = {"example.com/team": "a", "kept-by-other": "b"}
    pod_spec(live)["priorityClassName"] = "high"
    container(live)["env"].append({"name": "OLD", "value": "1"})
    _with_managed(
        live,
        "reconciler",
        {
            "f:metadata": {"f:annotations": {"f:example.com/team": {}}, "f:labels": {"f:app": {}}},
            "f:spec": {
                "f:replicas": {},
                "f:template": {
                    "f:spec": {
                        "f:priorityClassName": {},
                        "f:containers": {
                            'k:{"name":"web"}': {
                                ".": {},
                                "f:env": {
                                    'k:{"name":"OLD"}': {".": {}, "f:value": {}},
                                    'k:{"name":"A"}': {".": {}},
                                },
                                "f:ports": {
                                    'k:{"containerPort":8080,"protocol":"TCP"}': {".": {}, "f:name": {}}
                                },
                            }
                        },
                    }
                },
            },
        },
    )
    _with_managed(live, "someone-else", {"f:metadata": {"f:annotations": {"f:kept-by-other": {}}}})
    assert diff_paths(desired, live) == [
        'metadata.annotations["example.com/team"]',
        f"{C}.env[name=OLD]",
        "spec.template.spec.priorityClassName",
    ]
    # another manager name sees nothing of its own
    assert diff_paths(desired, live, field_manager="other") == []


def test_owned_fields_of_update_or_subresource_entries_are_not_ours() -> None:
    desired, live = deployment(), deployment()
    pod_spec(live)["priorityClassName"] = "high"
    _with_managed(
        live, "reconciler", {"f:spec": {"f:template": {"f:spec": {"f:priorityClassName": {}}}}}, "Update"
    )
    assert diff_paths(desired, live) == []


def test_owned_field_already_gone_from_live_is_not_reported() -> None:
    desired, live = deployment(), deployment()
    _with_managed(
        live, "reconciler", {"f:spec": {"f:paused": {}, "f:template": {"f:spec": {"f:tolerations": {}}}}}
    )
    assert diff_paths(desired, live) == []


def test_owned_set_and_index_entries() -> None:
    desired, live = deployment(), deployment()
    desired["metadata"]["finalizers"] = ["example.com/a"]
    live["metadata"]["finalizers"] = ["example.com/a", "example.com/b"]
    container(live)["args"] = ["--port", "8080", "--debug"]
    _with_managed(
        live,
        "reconciler",
        {
            "f:metadata": {"f:finalizers": {'v:"example.com/a"': {}, 'v:"example.com/b"': {}}},
            "f:spec": {
                "f:template": {"f:spec": {"f:containers": {'k:{"name":"web"}': {"f:args": {"i:2": {}}}}}}
            },
        },
    )
    assert diff_paths(desired, live) == ["metadata.finalizers[example.com/b]", f"{C}.args[2]"]
    # finalizers are a set: values only live has are not drift, missing desired values are
    del live["metadata"]["managedFields"]
    assert diff_paths(desired, live) == [f"{C}.args[2]"]  # an atomic list must match in length
    container(live)["args"].pop()
    assert diff_paths(desired, live) == []
    live["metadata"]["finalizers"] = ["example.com/b"]
    assert diff_paths(desired, live) == ["metadata.finalizers[example.com/a]"]


def test_malformed_managed_fields_are_bad_input() -> None:
    live = deployment()
    _with_managed(live, "reconciler", {"f:spec": {"x:weird": {}}})
    with pytest.raises(DriftInputError, match="unknown fieldsV1 key 'x:weird' at spec"):
        diff_paths(deployment(), live)
    live = deployment()
    _with_managed(
        live, "reconciler", {"f:spec": {"f:template": {"f:spec": {"f:containers": {"k:{bad json": {}}}}}}
    )
    with pytest.raises(DriftInputError, match="bad list key"):
        diff_paths(deployment(), live)


# ---------------------------------------------------------------- ignore pointers


def test_ignore_pointers_exclude_subtrees() -> None:
    desired, live = deployment(), deployment()
    live["spec"]["replicas"] = 7
    desired["metadata"]["annotations"] = {"foo/bar": "x", "tilde~key": "y"}
    live["metadata"]["annotations"] = {"foo/bar": "changed", "tilde~key": "changed"}
    container(live)["image"] = "other"
    assert diff_paths(desired, live) == [
        'metadata.annotations["foo/bar"]',
        'metadata.annotations["tilde~key"]',
        "spec.replicas",
        f"{C}.image",
    ]
    ignore = ["/spec/replicas", "/metadata/annotations/foo~1bar", "/metadata/annotations/tilde~0key"]
    assert diff_paths(desired, live, ignore=ignore) == [f"{C}.image"]
    assert diff_paths(desired, live, ignore=[*ignore, "/spec/template/spec/containers/0"]) == []
    assert diff_paths(desired, live, ignore=[""]) == []


def test_ignore_applies_to_owned_fields_too() -> None:
    desired, live = deployment(), deployment()
    del desired["spec"]["replicas"]
    _with_managed(live, "reconciler", {"f:spec": {"f:replicas": {}}})
    assert diff_paths(desired, live) == ["spec.replicas"]
    assert diff_paths(desired, live, ignore=controller_owned_pointers(hpa_targeted=True)) == []


def test_bad_ignore_pointer_raises() -> None:
    with pytest.raises(ValueError, match="must be empty or start with '/'"):
        diff_paths(deployment(), deployment(), ignore=["spec/replicas"])


@pytest.mark.parametrize(
    ("pointer", "tokens"),
    [
        ("", []),
        ("/", [""]),
        ("/spec/replicas", ["spec", "replicas"]),
        ("/metadata/annotations/foo~1bar", ["metadata", "annotations", "foo/bar"]),
        ("/a~0b", ["a~b"]),
        ("/a~01", ["a~1"]),  # ~01 is '~' followed by '1', not '/'
        ("/items/0", ["items", "0"]),
    ],
)
def test_json_pointer_to_path(pointer: str, tokens: list[str]) -> None:
    assert json_pointer_to_path(pointer) == tokens


@pytest.mark.parametrize("pointer", ["spec", "/a~2", "/a~", "/~x"])
def test_json_pointer_rejects_bad_input(pointer: str) -> None:
    with pytest.raises(ValueError, match="JSON pointer"):
        json_pointer_to_path(pointer)


def test_non_mapping_input_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        diff_paths([], deployment())  # type: ignore[arg-type]


# ---------------------------------------------------------------- controller-owned fields


def _hpa(api_version: str = "autoscaling/v2", **ref: Any) -> dict[str, Any]:
    return {
        "apiVersion": api_version,
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "h", "namespace": "agents"},
        "spec": {"scaleTargetRef": ref, "minReplicas": 2, "maxReplicas": 5},
    }


def test_hpa_targets() -> None:
    objs = [
        deployment(),
        _hpa(apiVersion="apps/v1", kind="Deployment", name="web"),
        _hpa("autoscaling/v1", kind="StatefulSet", name="db"),
        {
            "apiVersion": "keda.sh/v1alpha1",
            "kind": "ScaledObject",
            "metadata": {"name": "so", "namespace": "jobs"},
            "spec": {"scaleTargetRef": {"name": "worker"}},
        },
        {
            "apiVersion": "example.com/v1",
            "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "x"},
            "spec": {},
        },
    ]
    assert hpa_targets(objs) == {
        ("Deployment", "agents", "web"),
        ("StatefulSet", "agents", "db"),
        ("Deployment", "jobs", "worker"),
    }
    assert hpa_targets([deployment()]) == set()


def test_hpa_without_target_is_bad_input() -> None:
    with pytest.raises(DriftInputError, match=r"HorizontalPodAutoscaler agents/h: spec\.scaleTargetRef"):
        hpa_targets([_hpa(name="web")])


def test_without_controller_owned() -> None:
    desired = deployment()
    stripped = without_controller_owned(desired, hpa_targeted=True)
    assert "replicas" not in stripped["spec"]
    assert desired["spec"]["replicas"] == 2
    kept = without_controller_owned(desired, hpa_targeted=False)
    assert kept == desired and kept is not desired
    live = deployment()
    live["spec"]["replicas"] = 6
    assert diff_paths(stripped, live) == []
    assert diff_paths(kept, live) == ["spec.replicas"]
