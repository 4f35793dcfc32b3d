"""Replacements into YAML held in a string field (reconciler/render/embedded.py): what the renderer does
not model is refused with an error naming the kustomization and the field, never written differently
from kustomize (parity where it is modelled: corpus/parity-replacement-embedded-yaml*)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.render import RenderError, build
from reconciler.render.embedded import dump_embedded_yaml, parse_embedded_yaml

RESOURCES = """\
apiVersion: v1
kind: ConfigMap
metadata:
  name: src
data:
  host: db.example.test
---
apiVersion: v1
kind: Thing
metadata:
  name: obj
spec:
  value: {a: 1}
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: tgt
data:
  commented.yaml: |
    # kept by kustomize
    db:
      host: x
  plain.yaml: |
    db:
      host: x
"""


def _render(tmp_path: Path, source: str, field: str) -> None:
    (tmp_path / "res.yaml").write_text(RESOURCES)
    (tmp_path / "kustomization.yaml").write_text(
        "resources:\n- res.yaml\nreplacements:\n"
        f"- source: {{{source}}}\n  targets:\n  - select: {{name: tgt}}\n    fieldPaths: [{field}]\n"
    )
    build(tmp_path, root=tmp_path)


def test_comments_in_the_yaml_are_refused(tmp_path: Path) -> None:
    with pytest.raises(RenderError) as info:
        _render(tmp_path, "name: src, fieldPath: data.host", "data.commented\\.yaml.db.host")
    assert str(info.value).endswith(
        "replacement into the YAML held in field 'data.commented.yaml': comments in that YAML are not "
        "supported (kustomize keeps them as written)"
    )
    assert info.value.path is not None and info.value.path.endswith("kustomization.yaml")


def test_a_mapping_source_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RenderError, match="replacement of a mapping or sequence into the YAML held in field"):
        _render(tmp_path, "kind: Thing, fieldPath: spec.value", "data.plain\\.yaml.db")


def test_a_path_that_does_not_reach_into_the_yaml_is_not_refused(tmp_path: Path) -> None:
    # kustomize follows the path as usual when it does not reach a field of the YAML: here it is missing
    with pytest.raises(RenderError, match="unable to find field"):
        _render(tmp_path, "name: src, fieldPath: data.host", "data.commented\\.yaml.nothing.here")


def test_round_trip_keeps_order_styles_and_tags() -> None:
    text = "b: 'x'\na: !!int 5\nc:\n- \"y\"\n- 010\nd: |\n  two\n  lines\n"
    parsed = parse_embedded_yaml(text)
    assert parsed is not None and parsed[1] is None
    assert dump_embedded_yaml(parsed[0]) == text.strip()
    assert parse_embedded_yaml("a: [1, 2]\n") == (None, "flow collections")
    assert parse_embedded_yaml("a: &x 1\nb: *x\n") is not None
    assert parse_embedded_yaml("a: b: c") is None  # not YAML
