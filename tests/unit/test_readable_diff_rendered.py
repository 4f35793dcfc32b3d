"""A changed object straight from the renderer (its mappings keep YAML text and styles in the renderer's own
types) gets a readable diff like any other object."""

from __future__ import annotations

from pathlib import Path

from reconciler.cluster.manager import readable_diff
from reconciler.model import ObjectRef
from reconciler.render import build


def test_readable_diff_of_a_rendered_object(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [sa.yaml]\ncommonLabels: {team: a}\n")
    (tmp_path / "sa.yaml").write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: web\n  labels:\n    tier: 'front'\n"
    )
    (obj,) = build(tmp_path, root=tmp_path)
    live = {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": {"name": "web", "labels": {"tier": "back", "team": "a"}},
    }
    diff = readable_diff(ObjectRef(kind="ServiceAccount", namespace="", name="web"), obj, live)
    assert "-    tier: back" in diff and "+    tier: front" in diff
