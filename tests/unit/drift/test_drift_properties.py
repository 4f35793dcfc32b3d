"""Property tests for reconciler.cluster.drift.diff_paths (hypothesis).

* an object compared with itself (or a copy) never drifts;
* a changed or removed leaf is always reported, at exactly its path;
* a Deployment whose live copy has reordered keyed lists, server defaults and quantities spelled in
  another unit is in sync, and a changed image is reported at exactly its path.
"""

from __future__ import annotations

import copy
from decimal import Decimal
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.cluster.drift import diff_paths

# Field names without a special meaning to the comparator (no merge keys, quantities, metadata, ...).
FIELDS = st.sampled_from(["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota"])
SCALARS = st.one_of(
    st.text(alphabet="abcxyz-_./: 0123456789", max_size=12),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.booleans(),
)
TREES = st.recursive(
    SCALARS,
    lambda children: st.one_of(
        st.lists(children, min_size=1, max_size=4),
        st.dictionaries(FIELDS, children, min_size=1, max_size=4),
    ),
    max_leaves=25,
)


@st.composite
def manifests(draw: st.DrawFn) -> dict[str, Any]:
    spec = draw(st.dictionaries(FIELDS, TREES, min_size=1, max_size=5))
    labels = draw(st.dictionaries(FIELDS, st.text(alphabet="abc123", max_size=5), max_size=3))
    return {
        "apiVersion": "example.test/v1",
        "kind": "Widget",
        "metadata": {"name": "w", "namespace": "ns", "labels": labels},
        "spec": spec,
    }


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _leaves(v, (*path, k))]
    if isinstance(node, list):
        return [p for i, v in enumerate(node) for p in _leaves(v, (*path, i))]
    return [path]


def _render(path: tuple[Any, ...]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path).lstrip(".")


def _get(node: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        node = node[p]
    return node


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    return f"{value}~changed"


@settings(max_examples=300, deadline=None, database=None)
@given(manifests())
def test_object_equals_itself(obj: dict[str, Any]) -> None:
    assert diff_paths(obj, obj) == []
    assert diff_paths(obj, copy.deepcopy(obj)) == []


@settings(max_examples=300, deadline=None, database=None)
@given(manifests(), st.data())
def test_changed_leaf_is_reported_at_its_path(obj: dict[str, Any], data: st.DataObject) -> None:
    leaves = _leaves(obj["spec"], ("spec",)) + _leaves(obj["metadata"]["labels"], ("metadata", "labels"))
    leaf = data.draw(st.sampled_from(leaves))
    live = copy.deepcopy(obj)
    parent = _get(live, leaf[:-1])
    parent[leaf[-1]] = _changed(parent[leaf[-1]])
    assert diff_paths(obj, live) == [_render(leaf)]


@settings(max_examples=200, deadline=None, database=None)
@given(manifests(), st.data())
def test_removed_non_zero_leaf_is_reported(obj: dict[str, Any], data: st.DataObject) -> None:
    leaves = [
        p
        for p in _leaves(obj["spec"], ("spec",))
        if isinstance(p[-1], str) and _get(obj, p) not in ("", 0, False)
    ]
    if not leaves:
        return
    leaf = data.draw(st.sampled_from(leaves))
    live = copy.deepcopy(obj)
    del _get(live, leaf[:-1])[leaf[-1]]
    assert diff_paths(obj, live) == [_render(leaf)]


# ------------------------------------------------------------------ a realistic workload

NAMES = st.text(alphabet="abcdefghij", min_size=1, max_size=6)


def _cpu_spellings(millis: int) -> tuple[str, str]:
    canonical = str(millis // 1000) if millis % 1000 == 0 else str(Decimal(millis) / 1000)
    return f"{millis}m", canonical


def _memory_spellings(mebibytes: int) -> tuple[str, str]:
    other = f"{mebibytes // 1024}Gi" if mebibytes % 1024 == 0 else f"{mebibytes * 1024}Ki"
    return f"{mebibytes}Mi", other


@st.composite
def workloads(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any], list[str]]:
    """(desired Deployment, equivalent live Deployment, container names)."""
    names = draw(st.lists(NAMES, min_size=1, max_size=3, unique=True))
    d_containers, l_containers = [], []
    for name in names:
        env_names = draw(st.lists(NAMES.map(str.upper), max_size=4, unique=True))
        env = [
            {"name": e, "value": draw(st.text(alphabet="xyz1", min_size=1, max_size=4))} for e in env_names
        ]
        ports = draw(st.lists(st.integers(1, 65535), max_size=3, unique=True))
        cpu = _cpu_spellings(draw(st.integers(1, 64000)))
        mem = _memory_spellings(draw(st.integers(1, 65536)))
        image = f"registry.example.test/{name}:{draw(st.integers(0, 99))}"
        d_containers.append(
            {
                "name": name,
                "image": image,
                "env": env,
                "ports": [{"containerPort": p} for p in ports],
                "resources": {"requests": {"cpu": cpu[0], "memory": mem[0]}},
            }
        )
        l_containers.append(
            {
                "name": name,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "env": list(reversed(env)),
                "ports": [{"containerPort": p, "protocol": "TCP"} for p in reversed(ports)],
                "resources": {"requests": {"cpu": cpu[1], "memory": mem[1]}},
                "terminationMessagePath": "/dev/termination-log",
            }
        )
    desired = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "app", "namespace": "agents", "annotations": {}},
        "spec": {"replicas": 1, "template": {"spec": {"containers": d_containers}}},
    }
    live = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": "app",
            "namespace": "agents",
            "uid": "u",
            "resourceVersion": "7",
            "generation": 2,
        },
        "spec": {
            "replicas": 1,
            "progressDeadlineSeconds": 600,
            "template": {
                "metadata": {"creationTimestamp": None},
                "spec": {"containers": list(reversed(l_containers)), "dnsPolicy": "ClusterFirst"},
            },
        },
        "status": {"replicas": 1},
    }
    return desired, live, names


@settings(max_examples=200, deadline=None, database=None)
@given(workloads())
def test_equivalent_live_workload_is_in_sync(case: tuple[dict[str, Any], dict[str, Any], list[str]]) -> None:
    desired, live, _ = case
    assert diff_paths(desired, live) == []


@settings(max_examples=200, deadline=None, database=None)
@given(workloads(), st.data())
def test_changed_image_or_request_is_reported(
    case: tuple[dict[str, Any], dict[str, Any], list[str]], data: st.DataObject
) -> None:
    desired, live, names = case
    name = data.draw(st.sampled_from(names))
    target = next(c for c in live["spec"]["template"]["spec"]["containers"] if c["name"] == name)
    if data.draw(st.booleans()):
        target["image"] += "-hotfix"
        field = "image"
    else:
        target["resources"]["requests"]["memory"] = "70000Mi"  # above any generated request
        field = "resources.requests.memory"
    assert diff_paths(desired, live) == [f"spec.template.spec.containers[name={name}].{field}"]
