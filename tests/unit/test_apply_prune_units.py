"""Unit tests for the pure parts of issue 15: same-object prune decisions, the cluster-scoped stage,
Secret diffs and drift-event paths (on the real server: tests/integration/test_apply_prune_faults.py)."""

from __future__ import annotations

from reconciler.cluster.manager import readable_diff
from reconciler.model import ObjectRef
from reconciler.observe.events import DriftEvent, drift_note


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
