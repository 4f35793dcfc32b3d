"""Unit tests for the pure parts of issue 15: same-object prune decisions, the cluster-scoped stage,
Secret diffs and drift-event paths (on the real server: tests/integration/test_apply_prune_faults.py)."""

from __future__ import annotations

from typing import Any

import pytest

from reconciler.cluster.manager import PruneBlocked, ResourceManager, is_prerequisite, prepare, readable_diff
from reconciler.errors import NotFoundError
from reconciler.model import Action, Inventory, ObjectRef
from reconciler.observe.events import DriftEvent, drift_note


class GroupedClient:
    """get/delete over live objects keyed by (group, kind, namespace, name): one stored object may be
    entered under two groups (as the API server serves it) with one uid."""

    def __init__(self) -> None:
        self.live: dict[tuple[str, str, str, str], dict[str, Any]] = {}
        self.unserved: set[str] = set()
        self.deleted: list[str] = []

    def put(self, ref: ObjectRef, uid: str) -> None:
        self.live[ref.key] = {"metadata": {"name": ref.name, "uid": uid}}

    def get(self, ref: ObjectRef) -> dict[str, Any] | None:
        if ref.group in self.unserved:
            raise NotFoundError(str(ref), 404, "NoKindMatch", "not served")
        return self.live.get(ref.key)

    def delete(self, ref: ObjectRef, propagation: str = "Background") -> bool:
        self.deleted.append(f"{ref.api_version} {ref}")
        return self.live.pop(ref.key, None) is not None


def _event(api_version: str, name: str) -> dict[str, Any]:
    return {"apiVersion": api_version, "kind": "Event", "metadata": {"name": name, "namespace": "n"}}


CORE = ObjectRef(kind="Event", namespace="n", name="e")
EVENTS = ObjectRef(group="events.k8s.io", kind="Event", namespace="n", name="e")


def test_prune_keeps_a_stale_entry_with_the_uid_of_a_desired_object() -> None:
    client = GroupedClient()
    client.put(CORE, "uid-1")
    client.put(EVENTS, "uid-1")  # one stored object, served under both groups
    rm = ResourceManager(client)  # type: ignore[arg-type]
    changes, keep = rm.prune(
        Inventory(environment="e", entries=[CORE]), prepare([_event("events.k8s.io/v1", "e")])
    )
    assert client.deleted == [] and keep == []
    (change,) = changes.entries
    assert change.ref == CORE and change.action is Action.SKIPPED
    assert "same object as events.k8s.io/v1 Event/n/e (uid uid-1)" in change.message


def test_prune_deletes_a_same_named_object_with_another_uid() -> None:
    client = GroupedClient()
    client.put(CORE, "uid-1")
    client.put(EVENTS, "uid-2")  # two objects that only share a name: the stale one goes
    rm = ResourceManager(client)  # type: ignore[arg-type]
    changes, _keep = rm.prune(
        Inventory(environment="e", entries=[CORE]),
        prepare([_event("events.k8s.io/v1", "e")]),
        allow_mass_prune=True,
    )
    assert client.deleted == ["v1 Event/n/e"]
    assert [c.action for c in changes.entries] == [Action.DELETED]


def test_prune_of_a_kind_no_longer_served_deletes_nothing() -> None:
    client = GroupedClient()
    client.put(EVENTS, "uid-1")
    client.unserved.add("")
    rm = ResourceManager(client)  # type: ignore[arg-type]
    changes, _ = rm.prune(
        Inventory(environment="e", entries=[CORE]),
        prepare([_event("events.k8s.io/v1", "e")]),
        allow_mass_prune=True,
    )
    assert client.deleted == [] and [c.message for c in changes.entries] == ["already gone"]


def test_mass_prune_guard_does_not_count_a_moved_object() -> None:
    client = GroupedClient()
    client.put(CORE, "uid-1")
    client.put(EVENTS, "uid-1")
    gone = ObjectRef(kind="ConfigMap", namespace="n", name="gone")
    other = ObjectRef(kind="ConfigMap", namespace="n", name="other")
    client.put(gone, "uid-3")
    rm = ResourceManager(client)  # type: ignore[arg-type]
    desired = prepare([_event("events.k8s.io/v1", "e")])
    # 1 real deletion of 2 entries: allowed (the moved Event is not a deletion)
    changes, _ = rm.prune(Inventory(environment="e", entries=[CORE, gone]), desired)
    assert client.deleted == ["v1 ConfigMap/n/gone"]
    assert {c.action for c in changes.entries} == {Action.SKIPPED, Action.DELETED}
    # 2 real deletions of 3 entries: blocked, and the moved Event is not among the entries kept
    client.put(gone, "uid-3")
    client.put(other, "uid-4")
    with pytest.raises(PruneBlocked) as blocked:
        rm.prune(Inventory(environment="e", entries=[CORE, gone, other]), desired)
    assert sorted(str(r) for r in blocked.value.keep) == ["ConfigMap/n/gone", "ConfigMap/n/other"]


def test_cluster_scoped_stage() -> None:
    def ref(group: str, kind: str, namespace: str = "") -> ObjectRef:
        return ObjectRef(group=group, kind=kind, namespace=namespace, name="x")

    assert is_prerequisite(ref("", "Namespace"))
    assert is_prerequisite(ref("apiextensions.k8s.io", "CustomResourceDefinition"))
    assert is_prerequisite(ref("rbac.authorization.k8s.io", "ClusterRole"))
    # namespaced stage-0 kinds wait for the whole set to validate
    assert not is_prerequisite(ref("", "ResourceQuota", "n"))
    assert not is_prerequisite(ref("", "LimitRange", "n"))
    assert not is_prerequisite(ref("example.test", "Namespace"))
    assert not is_prerequisite(ref("", "ServiceAccount", "n"))


def test_secret_diff_names_paths_never_values() -> None:
    ref = ObjectRef(kind="Secret", namespace="n", name="s")
    desired = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "stringData": {"token": "git-value"},
    }
    live = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s"},
        "data": {"token": "bGl2ZS12YWx1ZQ=="},
    }
    diff = readable_diff(ref, desired, live, ["data.token (from stringData.token)"])
    assert diff.splitlines() == [
        "--- live/Secret/n/s",
        "+++ desired/Secret/n/s",
        " data.token (from stringData.token): Secret value differs (not shown)",
    ]
    assert readable_diff(ref, desired, live) == ""


def test_drift_event_describes_live_and_git_paths() -> None:
    event = DriftEvent.model_validate(
        {
            "environment": "dev",
            "object": "Secret/n/s",
            "paths": ["data.token", "metadata.labels.app"],
            "fields": [
                {"live": "data.token", "git": "stringData.token"},
                {"live": "metadata.labels.app", "git": "metadata.labels.app"},
            ],
            "corrected": True,
        }
    )
    assert event.described_paths() == ["data.token (from stringData.token)", "metadata.labels.app"]
    assert (
        "drift on data.token (from stringData.token), metadata.labels.app corrected" in drift_note(event)[3]
    )
    # events of older daemons carry no fields
    assert DriftEvent(environment="dev", object="x", paths=["spec.a"]).described_paths() == ["spec.a"]


def test_string_data_is_sent_as_data() -> None:
    from reconciler.cluster.drift import as_stored, stored_pointer
    from reconciler.cluster.manager import sendable

    secret = {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "s", "namespace": "n"},
        "data": {"a": "b25l", "b": "b2xk"},
        "stringData": {"b": "new", "c": "ünï"},
    }
    stored = as_stored(secret)
    assert stored["data"] == {"a": "b25l", "b": "bmV3", "c": "w7xuw68="}  # stringData wins, UTF-8
    assert "stringData" not in stored and "stringData" in secret  # the input is not modified
    config_map = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "c"},
        "stringData": {"x": "y"},
    }
    assert as_stored(config_map) == config_map
    bad = {**secret, "stringData": {"x": 1}}
    assert as_stored(bad) == bad  # the API server rejects it; its dry-run names the field
    assert stored_pointer(secret, "/stringData/c") == "/data/c"
    assert stored_pointer(config_map, "/stringData/c") == "/stringData/c"

    # an ignored key keeps its live value, whichever field the pointer names
    (d,) = prepare([secret])
    d.ignore = ["/stringData/c"]
    live = {**secret, "data": {"a": "b25l", "b": "bmV3", "c": "bGl2ZQ=="}}
    assert sendable(d, live)["data"]["c"] == "bGl2ZQ=="
    assert sendable(d, None)["data"]["c"] == "w7xuw68="


def test_fields_missing_from_the_stored_object() -> None:
    from reconciler.cluster.manager import not_stored_fields

    dep = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "n"},
        "spec": {
            "template": {"spec": {"containers": [{"name": "c", "lifecycle": {"stopSignal": "SIGUSR1"}}]}}
        },
    }
    (d,) = prepare([dep])
    stored = {
        **dep,
        "spec": {"replicas": 1, "template": {"spec": {"containers": [{"name": "c", "tty": False}]}}},
    }
    assert not_stored_fields(d, stored) == ["spec.template.spec.containers[name=c].lifecycle.stopSignal"]
    assert not_stored_fields(d, dep) == []
    d.ignore = ["/spec/template/spec/containers/0/lifecycle"]
    assert not_stored_fields(d, stored) == []
    # a Secret's stringData is stored as data: nothing is missing
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "s"}, "stringData": {"k": "v"}}
    (s,) = prepare([secret])
    assert not_stored_fields(s, {**secret, "stringData": None, "data": {"k": "dg=="}}) == []
