"""Unit tests of the renderer's parts on small inputs."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.render import RenderCache, RenderError, build, dump_yaml, load_yaml_documents
from reconciler.render.generators import content_hash
from reconciler.render.patches import apply_json6902, apply_strategic_merge
from reconciler.render.transformers import new_image


def write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        p = root / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text)


# -- errors and YAML loading -----------------------------------------------------------------------


def test_render_error_format() -> None:
    assert str(RenderError("boom", path="a.yaml", line=3)) == "a.yaml:3: boom"
    assert str(RenderError("boom", path="a.yaml")) == "a.yaml: boom"
    assert str(RenderError("boom")) == "boom"


def test_invalid_yaml_names_path_and_line() -> None:
    with pytest.raises(RenderError) as info:
        load_yaml_documents("a: 1\nb: [x\n", path="f.yaml")
    assert info.value.path == "f.yaml"
    assert info.value.line == 3


def test_duplicate_keys_rejected() -> None:
    with pytest.raises(RenderError) as info:
        load_yaml_documents("kind: A\nkind: B\n", path="d.yaml")
    assert info.value.line == 2


def test_non_mapping_document_rejected_and_empty_skipped() -> None:
    assert load_yaml_documents("---\n# only a comment\n---\na: 1\n", path="x") == [{"a": 1}]
    with pytest.raises(RenderError) as info:
        load_yaml_documents("a: 1\n---\n- x\n", path="l.yaml")
    assert info.value.line == 3


def test_alias_bomb_bounded() -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev = f"*a{i - 1}"
        lines.append(f"a{i}: &a{i} [{', '.join([prev] * 10)}]")
    with pytest.raises(RenderError, match="aliases"):
        load_yaml_documents("\n".join(lines) + "\n", path="bomb.yaml")


def test_timestamps_stay_strings_and_are_quoted_on_output() -> None:
    docs = load_yaml_documents("apiVersion: v1\nkind: X\nd: 2024-01-02\n", path="t")
    assert docs[0]["d"] == "2024-01-02"
    assert 'd: "2024-01-02"' in dump_yaml(docs)


# -- output format ---------------------------------------------------------------------------------


def test_dump_sorts_keys_and_quotes_like_go_yaml() -> None:
    text = dump_yaml(
        [{"kind": "A", "apiVersion": "v1", "data": {"b": "true", "a": "8", "c": "", "m": "x\ny"}}]
    )
    assert text == 'apiVersion: v1\ndata:\n  a: "8"\n  b: "true"\n  c: ""\n  m: |-\n    x\n    y\nkind: A\n'


def test_dump_wraps_long_plain_strings_at_80_columns() -> None:
    value = " ".join(["word"] * 30)
    text = dump_yaml([{"a": value}])
    first = text.splitlines()[0]
    assert len(first) > 80 and "\n  word" in text


# -- patches ---------------------------------------------------------------------------------------


def test_smp_delete_absent_is_noop_and_order_kept() -> None:
    obj = {"spec": {"containers": [{"name": "a", "env": [{"name": "X"}, {"name": "Y"}, {"name": "Z"}]}]}}
    patch = {
        "spec": {
            "containers": [
                {
                    "name": "a",
                    "env": [{"name": "Y", "$patch": "delete"}, {"name": "NOPE", "$patch": "delete"}],
                },
                {"name": "ghost", "$patch": "delete"},
            ]
        }
    }
    out = apply_strategic_merge(obj, patch)
    assert out == {"spec": {"containers": [{"name": "a", "env": [{"name": "X"}, {"name": "Z"}]}]}}


def test_smp_volume_mounts_merge_on_mount_path_and_replace_directive() -> None:
    obj = {"spec": {"volumeMounts": [{"mountPath": "/a", "name": "x"}], "ports": [{"containerPort": 1}]}}
    patch = {
        "spec": {
            "volumeMounts": [{"mountPath": "/a", "readOnly": True}],
            "ports": [{"$patch": "replace"}, {"containerPort": 2}],
        }
    }
    out = apply_strategic_merge(obj, patch)
    assert out is not None
    assert out["spec"]["volumeMounts"] == [{"mountPath": "/a", "name": "x", "readOnly": True}]
    assert out["spec"]["ports"] == [{"containerPort": 2}]


def test_json6902_escaping_and_errors() -> None:
    obj = {"metadata": {"annotations": {"a/b": "1", "c~d": "2"}}}
    out = apply_json6902(
        obj,
        [
            {"op": "replace", "path": "/metadata/annotations/a~1b", "value": "x"},
            {"op": "remove", "path": "/metadata/annotations/c~0d"},
        ],
        where="p",
    )
    assert out == {"metadata": {"annotations": {"a/b": "x"}}}
    with pytest.raises(RenderError, match="not found"):
        apply_json6902(obj, [{"op": "replace", "path": "/nope", "value": 1}], where="p")


# -- images ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("image", "entry", "expected"),
    [
        ("r/app:1", {"name": "r/app", "newTag": "2"}, "r/app:2"),
        ("r/app@sha256:aa", {"name": "r/app", "newName": "m/app"}, "m/app@sha256:aa"),
        ("r/app:1", {"name": "r/app", "digest": "sha256:bb"}, "r/app@sha256:bb"),
        ("r/app", {"name": "r/app", "newTag": "3", "digest": "sha256:cc"}, "r/app:3@sha256:cc"),
        ("host:5000/app:1", {"name": "host:5000/app", "newTag": "2"}, "host:5000/app:2"),
        ("r/other:1", {"name": "r/app", "newTag": "2"}, None),
    ],
)
def test_new_image(image: str, entry: dict[str, str], expected: str | None) -> None:
    assert new_image(image, entry) == expected


def test_agent_and_mcpserver_images_without_configuration(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [a.yaml]\nimages:\n- name: reg/agent\n  newTag: '2'\n"
            "- name: reg/mcp\n  newName: mirror/mcp\n",
            "a.yaml": "apiVersion: kagent.dev/v1alpha2\nkind: Agent\nmetadata: {name: a}\nspec:\n"
            "  type: BYO\n  byo:\n    deployment: {image: reg/agent:1}\n"
            "---\napiVersion: kagent.dev/v1alpha2\n"
            "kind: Agent\nmetadata: {name: b}\nspec:\n  declarative:\n    deployment: {image: reg/agent}\n"
            "---\napiVersion: kagent.dev/v1alpha1\nkind: MCPServer\nmetadata: {name: m}\n"
            "spec:\n  deployment: {image: 'reg/mcp:5'}\n",
        },
    )
    objs = {o["metadata"]["name"]: o for o in build(tmp_path, root=tmp_path)}
    assert objs["a"]["spec"]["byo"]["deployment"]["image"] == "reg/agent:2"
    assert objs["b"]["spec"]["declarative"]["deployment"]["image"] == "reg/agent:2"
    assert objs["m"]["spec"]["deployment"]["image"] == "mirror/mcp:5"


# -- generators ------------------------------------------------------------------------------------


def test_hash_changes_with_content() -> None:
    a = {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"K": "1"}}
    b = {"kind": "ConfigMap", "metadata": {"name": "x"}, "data": {"K": "2"}}
    assert content_hash(a) != content_hash(b)
    assert len(content_hash(a)) == 10


# -- build: load restrictor, remote refs, discovery ------------------------------------------------


def test_remote_resource_refused(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": "resources:\n- https://github.com/x/y//base?ref=v1\n"})
    with pytest.raises(RenderError, match="remote"):
        build(tmp_path, root=tmp_path)


def test_file_outside_root_refused(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "outside.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            "repo/app/kustomization.yaml": "resources: [../../outside.yaml]\n",
        },
    )
    with pytest.raises(RenderError, match="load restrictor"):
        build(tmp_path / "repo" / "app", root=tmp_path / "repo")


def test_kustomization_discovery_variants(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "a/Kustomization": "resources: [cm.yaml]\n",
            "a/cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\n",
            "b/kustomization.yml": "resources: [../a]\nnamespace: n\n",
        },
    )
    assert build(tmp_path / "b", root=tmp_path)[0]["metadata"] == {"name": "x", "namespace": "n"}
    write(tmp_path, {"b/kustomization.yaml": "resources: []\n"})
    with pytest.raises(RenderError, match="multiple kustomization files"):
        build(tmp_path / "b", root=tmp_path)


def test_unknown_kustomization_field_names_file(tmp_path: Path) -> None:
    write(tmp_path, {"kustomization.yaml": "resourcez: [a.yaml]\n"})
    with pytest.raises(RenderError) as info:
        build(tmp_path, root=tmp_path)
    assert info.value.path == "kustomization.yaml"
    assert "resourcez" in info.value.message


def test_cache_reuses_until_content_changes(tmp_path: Path) -> None:
    write(
        tmp_path,
        {
            "kustomization.yaml": "resources: [cm.yaml]\n",
            "cm.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: '1'}\n",
        },
    )
    cache = RenderCache()
    first = build(tmp_path, root=tmp_path, cache=cache)
    first[0]["data"]["a"] = "mutated"
    again = build(tmp_path, root=tmp_path, cache=cache)
    assert again[0]["data"]["a"] == "1" and cache.hits == 1
    (tmp_path / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: '2'}\n"
    )
    assert build(tmp_path, root=tmp_path, cache=cache)[0]["data"]["a"] == "2"
    assert cache.misses == 2
