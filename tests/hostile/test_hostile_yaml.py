"""``load_yaml_documents`` (the loader behind every manifest, kustomization and environment file) refuses
every hostile YAML text with a RenderError naming the file and, where it is known, the line; tags never
construct language objects or run code."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from _hostile_corpus import (
    BASE_RESOURCES,
    TAG_PAYLOADS,
    TEXT_PAYLOADS,
    Expect,
    K,
    Payload,
    RepoCase,
    assert_refused,
    bounded,
    kust,
    params,
    write_case,
)

from reconciler.render import RenderError, build, load_yaml_documents


def _load(text: str) -> int:
    return len(load_yaml_documents(text, path="overlays/dev/hostile.yaml"))


@pytest.mark.timeout(60)
@pytest.mark.parametrize("payload", params(TEXT_PAYLOADS, key=lambda p: f"yaml/{p.id}"))
def test_loader_refuses(payload: Payload) -> None:
    out = bounded(_load, payload.data.decode("utf-8"), seconds=20)
    assert_refused(out, RenderError, Expect("overlays/dev/hostile.yaml", payload.line, payload.words))


def _plain(value: Any) -> bool:
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool))


def _object(tagged: bytes) -> bytes:
    return b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: tagged\ndata:\n  " + tagged


def _load_tagged(text: str) -> str:
    docs = load_yaml_documents(text, path="tagged.yaml")
    return "plain" if all(_plain(d) for d in docs) else f"not plain data: {docs!r}"


def _build_tagged(root: Path) -> str:
    objs = build(root / "overlays" / "dev", root=root)
    return "plain" if all(_plain(o) for o in objs) else f"not plain data: {objs!r}"


@pytest.mark.timeout(60)
@pytest.mark.parametrize("entry", ["loader", "renderer"])
@pytest.mark.parametrize("name", sorted(TAG_PAYLOADS))
def test_tags_never_execute(name: str, entry: str, tmp_path: Path) -> None:
    sentinel = tmp_path / "executed"
    data = _object(TAG_PAYLOADS[name].replace(b"@SENTINEL@", str(sentinel).encode()))
    if entry == "loader":
        out = bounded(_load_tagged, data.decode(), seconds=20)
        where = "tagged.yaml"
    else:
        case = RepoCase(
            f"tag/{name}",
            {K: kust(resources=(*BASE_RESOURCES, "tagged.yaml")), "overlays/dev/tagged.yaml": data},
            Expect("overlays/dev/tagged.yaml"),
        )
        out = bounded(_build_tagged, write_case(tmp_path, case), seconds=20)
        where = "overlays/dev/tagged.yaml"
    assert not sentinel.exists(), "a YAML tag executed code"
    assert out.kind in ("returned", "raised"), out.message
    if out.kind == "raised":
        assert (out.exc_module, out.exc_type) == (RenderError.__module__, "RenderError"), out.value
        assert where in out.message
    else:
        assert out.value == "'plain'", out.value
