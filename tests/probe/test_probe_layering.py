"""reconciler.probe sits beside cluster/render: of the project it imports only reconciler.model and
reconciler.errors (leaves), so that cluster/ and reconcile/ can both use it."""

from __future__ import annotations

import ast
from pathlib import Path

import reconciler.probe

PROBE = Path(reconciler.probe.__file__).parent


def test_probe_imports_only_model() -> None:
    found: set[str] = set()
    for path in PROBE.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add(node.module)
            elif isinstance(node, ast.Import):
                found.update(a.name for a in node.names)
    ours = {m for m in found if m.startswith("reconciler")}
    assert ours, "the walk found no project imports at all"
    allowed = ("reconciler.model", "reconciler.probe", "reconciler.errors")
    assert {m for m in ours if not m.startswith(allowed)} == set()
