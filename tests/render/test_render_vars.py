"""``vars:`` and Component roots: the corpus errors fail with kustomize's words, and the pieces of
reconciler.render.refvars behave as kustomize's refvar expansion and kyaml's field lookup do."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.render import RenderError, build
from reconciler.render.refvars import (
    Var,
    _go_float_g,
    expand,
    field_value,
    parse_vars,
    split_field_path,
)

CORPUS = Path(__file__).parent / "corpus"

#: error case -> (text found in both kustomize's and our message, the file our error names)
ERROR_TEXT = {
    "vars-duplicate": ("var 'X' already encountered", "errors/vars-duplicate/kustomization.yaml"),
    "vars-duplicate-overlay": (
        "var 'APP_PORT' already encountered",
        "errors/vars-duplicate-overlay/kustomization.yaml",
    ),
    "vars-duplicate-bases": ("var 'APP_SERVICE' already encountered", "_bases/vars-other/kustomization.yaml"),
    "vars-diamond": ("' already encountered", "errors/vars-diamond/b/kustomization.yaml"),
    "vars-objref-missing": (
        "var '{X Service.v1.[noGrp] {metadata.name}}' cannot be mapped to a field in the set of known "
        "resources",
        "errors/vars-objref-missing/kustomization.yaml",
    ),
    "vars-objref-no-apiversion": (
        "var '{X Service.[noVer].[noGrp] {metadata.name}}' cannot be mapped to a field",
        "errors/vars-objref-no-apiversion/kustomization.yaml",
    ),
    "vars-objref-ambiguous": (
        "found 2 resId matches for var {X Service.v1.[noGrp] {}} (unable to disambiguate)",
        "errors/vars-objref-ambiguous/kustomization.yaml",
    ),
    "vars-objref-prefixed-name": (
        "var '{X Service.v1.[noGrp] {metadata.name}}' cannot be mapped",
        "errors/vars-objref-prefixed-name/kustomization.yaml",
    ),
    "vars-fieldref-missing": (
        "field specified in var '{X Service.v1.[noGrp] {spec.ports[3].port}}' not found in corresponding "
        "resource",
        "errors/vars-fieldref-missing/kustomization.yaml",
    ),
    "vars-args-not-string": (
        "considering field 'spec/containers/args' of object Pod.v1.[noGrp]/p.[noNs]: visit traversal on "
        "path: [args]: invalid value type expect a string",
        "errors/vars-args-not-string/pod.yaml",
    ),
    "vars-unknown-field": (
        'invalid Kustomization: json: unknown field "path"',
        "errors/vars-unknown-field/kustomization.yaml",
    ),
    "vars-wrong-type": (
        "invalid Kustomization: json: cannot unmarshal array into Go struct field "
        "Target.vars.objref.Gvk.kind of type string",
        "errors/vars-wrong-type/kustomization.yaml",
    ),
    "component-root-merge-missing": (
        "does not exist; cannot merge or replace",
        "errors/component-root-merge-missing/kustomization.yaml",
    ),
    "component-root-patch-no-target": (
        "no matches for Id ConfigMap.v1.[noGrp]/absent",
        "errors/component-root-patch-no-target/kustomization.yaml",
    ),
    "component-root-kustomization-version": (
        "apiVersion for Component should be kustomize.config.k8s.io/v1alpha1",
        "errors/component-root-kustomization-version/kustomization.yaml",
    ),
    "component-root-resource-component": (
        "expected kind != 'Component' for path",
        "errors/component-root-resource-component/kustomization.yaml",
    ),
}


@pytest.mark.parametrize("name", sorted(ERROR_TEXT))
def test_error_words_match_kustomize(name: str, kustomize_bin: Path) -> None:
    text, where = ERROR_TEXT[name]
    directory = CORPUS / "errors" / name
    ref = subprocess.run(
        [str(kustomize_bin), "build", str(directory)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert ref.returncode != 0
    assert text in ref.stderr
    with pytest.raises(RenderError) as info:
        build(directory, root=CORPUS)
    assert text in info.value.message
    assert info.value.path == where


def test_component_directories_build() -> None:
    objs = build(CORPUS / "_components" / "debug", root=CORPUS)
    assert [(o["kind"], o["metadata"]["name"]) for o in objs] == [("ConfigMap", "debug-flags-fhttc6m6bb")]


def _values(values: dict[str, Any]) -> Any:
    def lookup(key: str) -> Any:
        value = values.get(key)
        return value if isinstance(value, (str, int, float)) else f"$({key})"

    return lookup


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("$(A)", "alpha"),
        ("$(N)", 8080),
        ("$(B)", False),
        ("$(F)", 1.5),
        ("x$(N)", "x8080"),
        ("$(B)/$(F)", "false/1.5"),
        ("$$(A)", "$(A)"),
        ("$$$(A)", "$alpha"),
        ("$$", "$"),
        ("$", "$"),
        ("a$", "a$"),
        ("$(", "$("),
        ("$(A", "$(A"),
        ("$(MISSING)", "$(MISSING)"),
        ("$(M)", "$(M)"),
        ("pre $(M) post", "pre $(M) post"),
        ("$x $(A)", "$x alpha"),
        ("$()", "$()"),
        ("$(A)$(A)", "alphaalpha"),
        ("no refs", "no refs"),
    ],
)
def test_expand(text: str, expected: Any) -> None:
    got = expand(text, _values({"A": "alpha", "N": 8080, "B": False, "F": 1.5, "M": {"k": "v"}}))
    assert got == expected and type(got) is type(expected)


@pytest.mark.parametrize(
    ("path", "parts"),
    [
        ("metadata.name", ["metadata", "name"]),
        ("spec.ports[0].port", ["spec", "ports", "0", "port"]),
        ("spec.ports.[name=http].port", ["spec", "ports", "[name=http]", "port"]),
        ("metadata.annotations.[a.b/c]", ["metadata", "annotations", "a.b/c"]),
        ("spec.containers.[name=a.b].image", ["spec", "containers", "[name=a.b]", "image"]),
        ("data.a\\.b", ["data", "a.b"]),
        (".spec", ["spec"]),
        ("a[1][2]", ["a[1]", "2"]),
        ("[0]", ["0"]),
    ],
)
def test_split_field_path(path: str, parts: list[str]) -> None:
    assert split_field_path(path) == parts


def test_field_value() -> None:
    obj: dict[str, Any] = {
        "metadata": {"name": "n", "annotations": {"a.b/c": "x"}},
        "spec": {
            "ports": [{"name": "http", "port": 80}, {"name": "m", "port": 90}],
            "flag": True,
            "no": None,
        },
    }
    assert field_value(obj, "metadata.name") == "n"
    assert field_value(obj, "spec.ports[1].port") == 90
    assert field_value(obj, "spec.ports.-.name") == "m"
    assert field_value(obj, "spec.ports.[port=90].name") == "m"
    assert field_value(obj, "metadata.annotations.[a.b/c]") == "x"
    assert field_value(obj, "spec.flag") is True
    assert field_value(obj, "spec.no") == "null"
    assert field_value(obj, "spec.ports") == obj["spec"]["ports"]
    missing = field_value(obj, "spec.nope")
    for path in ("spec.ports.5", "spec.ports.name", "metadata.name.x", "spec.ports.[port]", "spec.ports.*"):
        assert field_value(obj, path) is missing


def test_parse_vars_matches_keys_without_case_and_defaults() -> None:
    raw = [
        {"NAME": "A", "ObjRef": {"APIVersion": "apps/v1", "Kind": "Deployment", "name": "d"}},
        {
            "name": "B",
            "objref": {"apiVersion": "v1", "group": "g", "kind": "K", "name": "k"},
            "fieldref": {"fieldpath": "spec.x"},
        },
        None,
    ]
    a, b, empty = parse_vars(raw, where="k.yaml")
    assert a.defaulted().describe() == "{A Deployment.v1.apps {metadata.name}}"
    assert a.describe() == "{A Deployment.[noVer].[noGrp] {}}"
    assert b.defaulted().describe() == "{B K.v1.g {spec.x}}"
    assert empty.defaulted().describe() == "{ [noKind].[noVer].[noGrp] {metadata.name}}"
    assert isinstance(a, Var) and a.where == "k.yaml"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (["x"], "cannot unmarshal string into Go struct field Kustomization.vars of type types.Var"),
        ([{"name": 1}], "cannot unmarshal number into Go struct field Var.vars.name of type string"),
        (
            [{"objref": "x"}],
            "cannot unmarshal string into Go struct field Var.vars.objref of type types.Target",
        ),
        (
            [{"fieldref": {"fieldPath": True}}],
            "cannot unmarshal bool into Go struct field FieldSelector.vars.fieldref.fieldPath of type string",
        ),
        ([{"objref": {"uid": "u"}}], 'json: unknown field "uid"'),
    ],
)
def test_parse_vars_errors(raw: list[Any], message: str) -> None:
    with pytest.raises(RenderError) as info:
        parse_vars(raw, where="k.yaml")
    assert message in info.value.message
    assert info.value.path == "k.yaml"


def test_float_text_is_go_v() -> None:
    # fmt.Sprintf("%v", f) for these values, printed by Go 1.2x
    cases = {
        1000000.0: "1e+06",
        123456.0: "123456",
        1e20: "1e+20",
        1e21: "1e+21",
        0.0001: "0.0001",
        0.00001: "1e-05",
        1.5: "1.5",
        3.0: "3",
        12345678.9: "1.23456789e+07",
        -2.5: "-2.5",
        0.0: "0",
    }
    for value, text in cases.items():
        assert _go_float_g(value) == text
