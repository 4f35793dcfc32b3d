"""Unit tests of the apply engine's helpers: ignored fields on update, immutable-field errors, the in-sync
cache and the error text, with in-memory objects only."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from reconciler.cluster.manager import (
    Desired,
    SyncCache,
    elide_values,
    forbidden_changes,
    is_immutable_change,
    prepare,
    recreate_propagation,
    respect_ignored,
)
from reconciler.errors import ConflictError, InvalidError
from reconciler.model import IgnoreRule

DEPLOY: dict[str, Any] = {
    "apiVersion": "apps/v1",
    "kind": "Deployment",
    "metadata": {"name": "web", "namespace": "ns"},
    "spec": {
        "replicas": 1,
        "template": {
            "metadata": {"annotations": {"rollout": "1"}, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "main", "image": "reg.test/web:1"}]},
        },
    },
}


def _live(**changes: Any) -> dict[str, Any]:
    live = copy.deepcopy(DEPLOY)
    live["metadata"].update(uid="u-1", resourceVersion="7")
    live["spec"]["template"]["metadata"]["annotations"] = changes.get(
        "annotations", {"rollout": "2", "kubectl.kubernetes.io/restartedAt": "now"}
    )
    live["spec"]["template"]["spec"]["containers"][0]["image"] = changes.get("image", "evil/web:6")
    return live


def test_respect_ignored_sends_live_values_at_ignored_pointers_only() -> None:
    sent = respect_ignored(DEPLOY, _live(), ["/spec/template/metadata/annotations"])
    # the ignored map keeps its live values, only for the keys desired sets (no takeover of other keys)
    assert sent["spec"]["template"]["metadata"]["annotations"] == {"rollout": "2"}
    # everything else is desired's, so the apply still corrects the image
    assert sent["spec"]["template"]["spec"]["containers"][0]["image"] == "reg.test/web:1"
    assert DEPLOY["spec"]["template"]["metadata"]["annotations"] == {"rollout": "1"}  # input untouched


def test_respect_ignored_drops_what_live_does_not_have_and_handles_indices() -> None:
    live = _live(annotations={})
    del live["spec"]["template"]["metadata"]["annotations"]
    sent = respect_ignored(DEPLOY, live, ["/spec/template/metadata/annotations/rollout"])
    assert "rollout" not in sent["spec"]["template"]["metadata"]["annotations"]
    sent = respect_ignored(DEPLOY, _live(), ["/spec/template/spec/containers/0/image"])
    assert sent["spec"]["template"]["spec"]["containers"][0]["image"] == "evil/web:6"


def test_respect_ignored_is_identity_on_create_without_rules_and_for_absent_paths() -> None:
    assert respect_ignored(DEPLOY, None, ["/spec/replicas"]) is DEPLOY
    assert respect_ignored(DEPLOY, _live(), []) is DEPLOY
    assert respect_ignored(DEPLOY, _live(), [""]) is DEPLOY
    assert respect_ignored(DEPLOY, _live(), ["/spec/paused"]) == DEPLOY
    with pytest.raises(ValueError, match="RFC 6901"):
        respect_ignored(DEPLOY, _live(), ["spec/replicas"])


@pytest.mark.parametrize(
    ("message", "immutable"),
    [
        ('Deployment.apps "web" is invalid: spec.selector: Invalid value: {"a":1}: field is immutable', True),
        (
            'Service "s": spec.clusterIPs[0]: Invalid value: ["10.96.0.9"]: may not change once set',
            True,
        ),
        (
            'StatefulSet.apps "db" is invalid: spec: Forbidden: updates to statefulset spec for fields other '
            "than 'replicas', 'ordinals', 'template' ... are forbidden",
            True,
        ),
        ('PersistentVolumeClaim "d" is invalid: spec: Forbidden: spec is immutable after creation', True),
        (
            'Service "s" is invalid: spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535',
            False,
        ),
    ],
)
def test_is_immutable_change(message: str, immutable: bool) -> None:
    assert is_immutable_change(InvalidError("Kind/ns/n", 422, "Invalid", message)) is immutable
    assert not is_immutable_change(ConflictError("Kind/ns/n", 409, "Conflict", message))


STS_REFUSAL = (
    'StatefulSet.apps "a" is invalid: spec: Forbidden: updates to statefulset spec for fields other than '
    "'replicas', 'ordinals', 'template', 'updateStrategy', 'revisionHistoryLimit', "
    "'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden"
)


def test_forbidden_changes_names_the_fields_a_statefulset_refusal_is_about() -> None:
    paths = [
        "spec.template.spec.containers[name=agent].image",
        "spec.volumeClaimTemplates[0].spec.resources.requests.storage",
        "spec.replicas",
        "spec.serviceName",
        "metadata.labels.app",
    ]
    assert forbidden_changes(STS_REFUSAL, paths) == [
        "spec.volumeClaimTemplates[0].spec.resources.requests.storage",
        "spec.serviceName",
    ]
    # a message that names its field itself: nothing added
    assert forbidden_changes('Service "s" is invalid: spec.clusterIP: may not change once set', paths) == []


def _sts(selector: dict[str, str], when_deleted: str = "Retain") -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": {"name": "a", "namespace": "ns", "uid": "u-1"},
        "spec": {
            "selector": {"matchLabels": selector},
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": when_deleted, "whenScaled": "Retain"},
        },
    }


def test_recreate_propagation_keeps_a_statefulsets_pods_and_claims() -> None:
    live = _sts({"app": "a"}, "Delete")
    same = prepare([_sts({"app": "a"})])[0]
    moved = prepare([_sts({"app": "b"})])[0]
    assert recreate_propagation(same, live) == ("Orphan", "")  # adopted by the new StatefulSet
    assert recreate_propagation(same, live, ["data-a-0"]) == ("Orphan", "")
    assert recreate_propagation(moved, live) == ("Foreground", "")  # no claim is its dependent
    propagation, refusal = recreate_propagation(moved, live, ["data-a-1", "data-a-0"])
    assert propagation == "" and "data-a-0, data-a-1" in refusal and "whenDeleted: Retain" in refusal
    deploy = prepare([DEPLOY])[0]
    assert recreate_propagation(deploy, copy.deepcopy(DEPLOY), ["x"]) == ("Foreground", "")


def test_elide_values_keeps_short_values_and_elides_dumps() -> None:
    long_value = '{"Spec":{"Containers":[' + ",".join(['{"Name":"c"}'] * 20) + "]}}"
    msg = f'Job.batch "j" is invalid: spec.template: Invalid value: {long_value}: field is immutable'
    assert (
        elide_values(msg)
        == 'Job.batch "j" is invalid: spec.template: Invalid value: <elided>: field is immutable'
    )
    short = "spec.ports[0].port: Invalid value: 70000: must be between 1 and 65535, inclusive"
    assert elide_values(short) == short
    odd = "x: Invalid value: not json at all"
    assert elide_values(odd) == odd


def test_sync_cache_hits_only_for_the_same_desired_rules_and_live_version() -> None:
    cache = SyncCache()
    (d,) = prepare([copy.deepcopy(DEPLOY)])
    live = _live()
    assert not cache.in_sync(d, "digest-1", live)
    cache.remember(d, "digest-1", live)
    assert cache.in_sync(d, "digest-1", live)
    assert not cache.in_sync(d, "digest-2", live)  # desired changed
    newer = copy.deepcopy(live)
    newer["metadata"]["resourceVersion"] = "8"
    assert not cache.in_sync(d, "digest-1", newer)  # live changed (any change bumps resourceVersion)
    recreated = copy.deepcopy(live)
    recreated["metadata"]["uid"] = "u-2"
    assert not cache.in_sync(d, "digest-1", recreated)  # deleted and created again
    (with_rule,) = prepare([copy.deepcopy(DEPLOY)], [IgnoreRule(paths=["/spec/replicas"])])
    assert not cache.in_sync(with_rule, "digest-1", live)  # the ignore rules changed
    cache.forget(d.key)
    assert not cache.in_sync(d, "digest-1", live)
    no_version = copy.deepcopy(live)
    del no_version["metadata"]["resourceVersion"]
    cache.remember(d, "digest-1", no_version)
    assert not cache.in_sync(d, "digest-1", no_version)  # never trusts an object without a version


def test_desired_keeps_its_ignore_pointers() -> None:
    (d,) = prepare([copy.deepcopy(DEPLOY)], [IgnoreRule(kind="Deployment", paths=["/spec/replicas"])])
    assert isinstance(d, Desired) and d.ignore == ["/spec/replicas"]
