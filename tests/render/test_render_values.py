"""Values through patches, replacements and generators: the error words of corpus_values.py's error cases in
both kustomize's message and ours, and unit checks of the value rules (kyaml nulls, go-yaml folded scalars,
replacement typing, generator behaviors) that do not need the binary."""

from __future__ import annotations

import copy
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from corpus_values import MESSAGES

from reconciler.render import RenderError, build, dump_yaml, load_yaml_documents
from reconciler.render.generators import generation_behavior
from reconciler.render.patches import apply_json6902, apply_strategic_merge
from reconciler.render.yamlio import (
    YamlMap,
    json_scalar_text,
    kyaml_folded_value,
    load_yaml_documents_with_lines,
    null_text,
)

CORPUS = Path(__file__).parent / "corpus"


@pytest.mark.parametrize("name", sorted(MESSAGES))
def test_error_words_match_kustomize(name: str, kustomize_bin: Path) -> None:
    directory = CORPUS / "errors" / name
    ref = subprocess.run(
        [str(kustomize_bin), "build", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert ref.returncode != 0
    assert MESSAGES[name] in ref.stderr
    with pytest.raises(RenderError) as info:
        build(directory, root=CORPUS)
    assert MESSAGES[name] in info.value.message


def _obj(text: str) -> dict[str, Any]:
    return load_yaml_documents_with_lines(text, path="t.yaml")[0][0]


def test_null_text_is_kept_per_key() -> None:
    obj = _obj(
        "kind: A\nmetadata:\n  name: a\n  annotations:\n    e:\n    t: ~\n    s: x\nspec:\n  a:\n  b: ~\n"
    )
    spec, ann = obj["spec"], obj["metadata"]["annotations"]
    assert isinstance(spec, YamlMap) and isinstance(ann, YamlMap)
    assert (null_text(spec, "a"), null_text(spec, "b")) == ("", "~")
    assert ann == {"e": "", "t": "~", "s": "x"}
    assert (null_text(ann, "e"), null_text(ann, "t"), null_text(ann, "s")) == ("", "~", None)
    assert null_text({"x": None}, "x") == "null" and null_text({"x": 1}, "x") is None
    copied = copy.deepcopy(spec)
    assert isinstance(copied, YamlMap) and copied.null_text == {"a": "", "b": "~"}


def test_smp_drops_target_nulls_without_text_only() -> None:
    obj = _obj("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  e:\n  n: null\n  t: ~\n")
    patch = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"x": "1"}}
    out = apply_strategic_merge(obj, patch)
    assert out is not None and out["data"] == {"n": None, "t": None, "x": "1"}


@pytest.mark.parametrize(("text", "word"), [("null", "'null'"), ("", "''"), ("~", "'~'")])
def test_smp_directive_null_is_unknown_by_its_text(text: str, word: str) -> None:
    obj = _obj("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  k: v\n")
    patch = _obj(f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  $patch: {text}\n")
    with pytest.raises(RenderError, match=f"unknown patch strategy {word}"):
        apply_strategic_merge(obj, patch)


def test_json_patch_respells_typed_annotations() -> None:
    obj = _obj(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  annotations:\n    f: 1.50\n    h: 0x1F\n"
        "    e:\n    q: '1.50'\n"
    )
    out = apply_json6902(obj, [{"op": "add", "path": "/data", "value": {}}], where="p")
    assert out["metadata"]["annotations"] == {"f": "1.5", "h": "31", "e": "null", "q": "1.50"}
    assert obj["metadata"]["annotations"]["f"] == "1.50"


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (None, "null"),
        (True, "true"),
        (31, "31"),
        (1.5, "1.5"),
        (1000.0, "1000"),
        (1e-7, "1e-7"),
        (1e21, "1e+21"),
    ],
)
def test_json_scalar_text(value: Any, text: str) -> None:
    assert json_scalar_text(value) == text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("a\n  b\n", "a\n\n  b\n"),  # more-indented line gains a blank line
        (" lead\nx y\nz\n", " lead\nx y z\n"),  # leading blank: single breaks fold
        ("plain text\n", "plain text\n"),
        ("a\n\nb\n", "a\n\nb\n"),
        ("trailing space \n", "trailing space \n"),  # written double-quoted: unchanged
        ("", ""),
        ("a\n  b", "a\n\n  b"),
        ("a\n  b\n\n", "a\n\n  b\n\n"),
    ],
)
def test_kyaml_folded_value(value: str, expected: str) -> None:
    assert kyaml_folded_value(value) == expected


def test_folded_scalars_only_in_objects() -> None:
    text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  s: >\n    a\n      b\n"
    assert _obj(text)["data"]["s"] == "a\n\n  b\n"
    assert load_yaml_documents(text, path="t")[0]["data"]["s"] == "a\n  b\n"


def test_folded_scalar_starting_with_tab_fails_like_kustomize() -> None:
    with pytest.raises(RenderError, match="tab"):
        _obj("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  s: >\n    \tx\n")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("create", "create"),
        ("merge", "merge"),
        ("replace", "replace"),
        ("Merge", "unspecified"),
        ("", "unspecified"),
        (None, "unspecified"),
        ("upsert", "unspecified"),
    ],
)
def test_generation_behavior(value: Any, expected: str) -> None:
    assert generation_behavior(value, "ConfigMap", "k") == expected


def test_generation_behavior_must_be_text() -> None:
    with pytest.raises(RenderError, match="cannot unmarshal number into Go struct field SecretArgs"):
        generation_behavior(1, "Secret", "k")


def test_patch_file_keeps_final_line_breaks(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources:\n- cm.yaml\npatches:\n- path: p.yaml\n")
    (tmp_path / "cm.yaml").write_text("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n")
    (tmp_path / "p.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata:\n  s: |+\n    x\n\n"
    )
    out = build(tmp_path, root=tmp_path)
    assert out[0]["data"] == {"s": "x\n\n"}
    assert json.loads(json.dumps(out)) == out and "s: |+" in dump_yaml(out)


@pytest.mark.parametrize(
    ("data", "words"),
    [
        ({"k": "a\x7fb"}, "control characters are not allowed"),
        ({"a\x90": "v"}, "control characters are not allowed"),
        ({"a\x85": "v"}, "did not find expected ','"),
    ],
)
def test_output_fails_where_kustomize_json_round_trip_fails(data: dict[str, str], words: str) -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": data}
    with pytest.raises(RenderError, match=words):
        dump_yaml([obj])


@pytest.mark.parametrize(
    ("value", "line"),
    [
        ("a\x85b", "k: a b"),
        ("\x85\x85", "k: |2+"),
        ("\ufeffa b", '"\\uFEFF\\x61\\x20\\x62"'),
        ("a\u2028b", "k: 'a\u2028    b'"),
    ],
)
def test_output_of_unusual_strings(value: str, line: str) -> None:
    obj = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a"}, "data": {"k": value}}
    assert line in dump_yaml([obj])


def test_output_of_long_and_multiline_keys() -> None:
    obj = {"kind": "K", "data": {"k" * 129: [1], "a\rb": {"z": 1}, "k" * 128: "v"}}
    text = dump_yaml([obj])
    assert f"  ? {'k' * 129}\n  : - 1\n" in text
    assert '  ? "a\\rb"\n  : z: 1\n' in text
    assert f"  {'k' * 128}: v\n" in text


@pytest.mark.parametrize(
    ("text", "json_text"),
    [
        ("2024-01-02", "2024-01-02T00:00:00Z"),
        ("2024-1-2", "2024-01-02T00:00:00Z"),
        ("2024-01-02t10:00:00.123000+05:30", "2024-01-02T10:00:00.123+05:30"),
        ("2024-01-02 1:2:3.5", "2024-01-02T01:02:03.5Z"),
        ("2024-01-02T10:00:00,5Z", "2024-01-02T10:00:00.5Z"),
        ("2024-01-02T10:00:00.1234567891Z", "2024-01-02T10:00:00.123456789Z"),
        ("2024-01-02T10:00:00-00:00", "2024-01-02T10:00:00Z"),
        ("2024-02-29", "2024-02-29T00:00:00Z"),
    ],
)
def test_go_timestamps(text: str, json_text: str) -> None:
    from reconciler.render.yamlio import YamlTimestamp, resolve_plain

    value = resolve_plain(text)
    assert isinstance(value, YamlTimestamp) and value == text and value.json_text() == json_text


@pytest.mark.parametrize(
    "text",
    [
        "2023-02-29",
        "2024-02-30",
        "2024-13-01",
        "2024-01-02T24:00:00Z",
        "2024-01-02 10:00:00Z",
        "2024-01-02T10:00Z",
    ],
)
def test_not_go_timestamps(text: str) -> None:
    from reconciler.render.yamlio import YamlTimestamp, go_timestamp, resolve_plain

    assert go_timestamp(text) is None and not isinstance(resolve_plain(text), YamlTimestamp)


def test_timestamp_zone_past_23_hours_cannot_be_written() -> None:
    obj = {"apiVersion": "v1", "kind": "X", "t": resolve_plain_ts("2024-01-02T10:00:00+24:00")}
    with pytest.raises(RenderError, match="timezone hour"):
        dump_yaml([obj])


def resolve_plain_ts(text: str) -> Any:
    from reconciler.render.yamlio import resolve_plain

    return resolve_plain(text)
