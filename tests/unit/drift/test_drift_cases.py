"""Shared acceptance cases 11, 13 and 15 (drift) as tests of reconciler.cluster.drift.

Each case's expected.json is the assertion; each has a control ``live-changed.yaml`` with one real
change, so a comparator that never reports drift fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from reconciler.cluster.drift import diff_paths, hpa_targets, without_controller_owned

CASES = Path(__file__).resolve().parents[2] / "cases"
DRIFT_CASES = [
    "11-drift-statefulset-quantity-normalization",
    "13-drift-empty-vs-missing-fields",
    "15-drift-hpa-owned-replicas",
]
# Case files name the reconciler's manager "gitops-reconciler"; check with both that name and the default.
MANAGERS = ["reconciler", "gitops-reconciler"]


def _load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in YAML(typ="safe").load_all(path.read_text()) if doc]


def _key(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    return f"{obj['apiVersion']}/{obj['kind']}/{meta.get('namespace', '')}/{meta['name']}"


def _desired_for_apply(case: str) -> dict[str, dict[str, Any]]:
    """What the apply engine would compare and send: controller-owned fields removed."""
    desired = _load(CASES / case / "desired.yaml")
    targets = hpa_targets(desired)
    out = {}
    for obj in desired:
        meta = obj["metadata"]
        targeted = (obj["kind"], meta.get("namespace", ""), meta["name"]) in targets
        out[_key(obj)] = without_controller_owned(obj, hpa_targeted=targeted)
    return out


def _comparisons() -> list[tuple[str, str, str, list[str]]]:
    rows = []
    for case in DRIFT_CASES:
        expected = json.loads((CASES / case / "expected.json").read_text())
        desired = _load(CASES / case / "desired.yaml")
        for cmp in expected["comparisons"]:
            per_object = cmp.get("per_object") or {_key(desired[0]): cmp["differing_paths"]}
            for key, paths in per_object.items():
                rows.append((case, cmp["live"], key, paths))
    return rows


@pytest.mark.parametrize("manager", MANAGERS)
@pytest.mark.parametrize(("case", "live_file", "key", "expected"), _comparisons())
def test_case_expected_paths(case: str, live_file: str, key: str, expected: list[str], manager: str) -> None:
    desired = _desired_for_apply(case)[key]
    live = {_key(o): o for o in _load(CASES / case / live_file)}[key]
    assert diff_paths(desired, live, field_manager=manager) == sorted(expected)


def test_every_case_has_a_drifting_control() -> None:
    drifting = {
        case for case, live_file, _, paths in _comparisons() if paths and live_file == "live-changed.yaml"
    }
    assert drifting == set(DRIFT_CASES)


def test_case11_self_heal_converges() -> None:
    case = "11-drift-statefulset-quantity-normalization"
    desired = _load(CASES / case / "desired.yaml")[0]
    live = _load(CASES / case / "live-changed.yaml")[0]
    path = "spec.template.spec.containers[name=store].resources.requests.memory"
    assert diff_paths(desired, live) == [path]
    # the corrective apply sets the desired value; the API server stores it canonically (1000M -> 1G)
    live["spec"]["template"]["spec"]["containers"][0]["resources"]["requests"]["memory"] = "1G"
    assert diff_paths(desired, live) == []


def test_case13_no_sync_loop() -> None:
    case = "13-drift-empty-vs-missing-fields"
    desired = {_key(o): o for o in _load(CASES / case / "desired.yaml")}
    live = {_key(o): o for o in _load(CASES / case / "live.yaml")}
    # comparing repeatedly (as after each self-heal) stays in sync
    for _ in range(3):
        assert all(diff_paths(desired[k], live[k]) == [] for k in desired)


def test_case15_replicas_neither_compared_nor_sent() -> None:
    case = "15-drift-hpa-owned-replicas"
    raw = _load(CASES / case / "desired.yaml")
    assert hpa_targets(raw) == {("Deployment", "agents", "chat-frontend")}
    deployment = _desired_for_apply(case)["apps/v1/Deployment/agents/chat-frontend"]
    assert "replicas" not in deployment["spec"]  # the apply payload leaves replicas to the HPA
    assert raw[0]["spec"]["replicas"] == 1  # the input was not modified
    live = _load(CASES / case / "live-changed.yaml")[0]
    assert diff_paths(deployment, live) == ["spec.template.spec.containers[name=web].image"]
    # without the HPA rule the replica count would be (wrongly) corrected back to 1
    assert "spec.replicas" in diff_paths(raw[0], live)
    # with the HPA also only present live, the rule still holds
    assert hpa_targets(_load(CASES / case / "live.yaml")) == {("Deployment", "agents", "chat-frontend")}
