"""The renderer's built-in field-spec tables and schema data equal kustomize's own (pinned v5.8.1 module).

kustomize keeps its default transformer configuration as YAML inside Go string constants
(api/internal/konfig/builtinpluginconsts). This test reads them from the Go module cache of
tools/controlplane/kustomize and compares them, entry for entry, with :class:`TransformerConfig.defaults`
(plus the documented agent-platform image fields). It also checks the generated schema module against the
generator's current output (``go run ./schemadump``).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

from reconciler.render import _k8s_schema
from reconciler.render.fieldspecs import PLATFORM_IMAGE_SPECS, FieldSpec, TransformerConfig
from reconciler.render.yamlio import load_yaml_value

REPO = Path(__file__).resolve().parents[2]
MODULE_DIR = REPO / "tools" / "controlplane" / "kustomize"
ORDER = (
    "nameprefix",
    "namesuffix",
    "commonlabels",
    "templatelabels",
    "commonannotations",
    "namespace",
    "varreference",
    "namereference",
    "images",
    "replicas",
)


def _kustomize_api_dir() -> Path:
    assert shutil.which("go"), "the Go toolchain (a project requirement) is not on PATH"
    env = dict(os.environ, GOFLAGS="-mod=mod")
    proc = subprocess.run(
        ["go", "list", "-m", "-f", "{{.Dir}}", "sigs.k8s.io/kustomize/api"],
        cwd=MODULE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    path = Path(proc.stdout.strip())
    assert proc.returncode == 0 and (path / "internal").is_dir(), (
        f"kustomize api module: {proc.stderr.strip()}"
    )
    return path


def _go_tables() -> dict[str, Any]:
    consts = _kustomize_api_dir() / "internal" / "konfig" / "builtinpluginconsts"
    strings: dict[str, tuple[str, str]] = {}
    for f in consts.glob("*.go"):
        text = f.read_text()
        for name, body, extra in re.findall(r"(\w+)\s*=\s*`(.*?)`(?:\s*\+\s*(\w+))?", text, re.S):
            strings[name] = (body, extra)
    resolved = {name: body + (strings[extra][0] if extra else "") for name, (body, extra) in strings.items()}
    doc = "\n".join(
        resolved[n]
        for n in (
            "namePrefixFieldSpecs",
            "nameSuffixFieldSpecs",
            "commonLabelFieldSpecs",
            "templateLabelFieldSpecs",
            "commonAnnotationFieldSpecs",
            "namespaceFieldSpecs",
            "varReferenceFieldSpecs",
            "nameReferenceFieldSpecs",
            "imagesFieldSpecs",
            "replicasFieldSpecs",
        )
    )
    value = load_yaml_value(doc, path="builtinpluginconsts")
    assert isinstance(value, dict)
    return value


def _specs(raw: list[dict[str, Any]]) -> set[tuple[str, str, str, str, bool]]:
    return {
        (
            str(e.get("group") or ""),
            str(e.get("version") or ""),
            str(e.get("kind") or ""),
            e["path"],
            bool(e.get("create")),
        )
        for e in raw
    }


def _ours(specs: list[FieldSpec]) -> set[tuple[str, str, str, str, bool]]:
    return {(s.group, s.version, s.kind, s.path, s.create) for s in specs}


def test_fieldspec_tables_equal_kustomize() -> None:
    go = _go_tables()
    ours = TransformerConfig.defaults()
    pairs = {
        "namePrefix": ours.name_prefix,
        "nameSuffix": ours.name_suffix,
        "commonLabels": ours.common_labels,
        "templateLabels": ours.template_labels,
        "commonAnnotations": ours.common_annotations,
        "namespace": ours.namespace,
        "replicas": ours.replicas,
        "varReference": ours.var_reference,
    }
    for key, specs in pairs.items():
        assert _ours(specs) == _specs(go[key]), key
    platform = _ours(list(PLATFORM_IMAGE_SPECS))
    assert _ours(ours.images) - platform == _specs(go["images"])


def test_name_reference_table_equals_kustomize() -> None:
    go = _go_tables()["nameReference"]
    theirs = {
        (str(e.get("group") or ""), str(e.get("version") or ""), e["kind"]): _specs(e["fieldSpecs"])
        for e in go
    }
    ours = {
        (r.group, r.version, r.kind): _ours(list(r.fieldspecs))
        for r in TransformerConfig.defaults().name_reference
    }
    assert ours.keys() == theirs.keys()
    for key, specs in theirs.items():
        assert ours[key] == specs, key


def test_generated_schema_is_current() -> None:
    assert shutil.which("go"), "the Go toolchain (a project requirement) is not on PATH"
    env = dict(os.environ, GOFLAGS="-mod=mod", CGO_ENABLED="0")
    proc = subprocess.run(
        ["go", "run", "./schemadump"],
        cwd=MODULE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, f"schemadump: {proc.stderr.strip()[:500]}"
    data = json.loads(proc.stdout)
    namespaced = {tuple(k.split("|", 1)): v for k, v in data["namespaced"].items()}
    assert namespaced == _k8s_schema.NAMESPACED
    # every list with a merge strategy in the schema is present with the same keys
    for name, node in data["defs"].items():
        for field, prop in (node.get("p") or {}).items():
            if prop.get("t") == "array" and "merge" in str(prop.get("s", "")).split(","):
                kept = _k8s_schema.DEFINITIONS[name]["props"][field]
                assert kept["merge"] == tuple(prop.get("k") or ()), (name, field)
    for key, name in data["gvk"].items():
        api, kind = key.split("|", 1)
        if name in _k8s_schema.DEFINITIONS:
            assert _k8s_schema.ROOTS[(api, kind)] == name
