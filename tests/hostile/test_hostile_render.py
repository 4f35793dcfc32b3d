"""The renderer refuses every hostile repository with a RenderError naming the file (and line) at fault:
YAML bombs, deep nesting, duplicate keys, invalid UTF-8 and syntax in every file the renderer reads, paths
and symlinks that leave the repository, remote references, cycles, invalid kustomization fields, invalid
patches and manifests that are not objects. Each build runs in a child process bounded in time and memory,
so a denial of service fails the case instead of the machine."""

from __future__ import annotations

from pathlib import Path

import pytest
from _hostile_corpus import (
    STOLEN,
    RepoCase,
    assert_refused,
    bounded,
    huge_sizes,
    params,
    redos_cases,
    render_cases,
    write_case,
)

from reconciler.render import RenderError, build, load_yaml_documents

CASES = render_cases()


def _build(root: Path) -> int:
    return len(build(root / "overlays" / "dev", root=root))


def test_corpus_is_large_and_ids_are_unique() -> None:
    ids = [c.id for c in CASES]
    assert len(ids) == len(set(ids))
    assert len(ids) >= 300


def test_baseline_renders(tmp_path: Path) -> None:
    """The repository every case modifies is valid: the refusals below come from the hostile part."""
    root = write_case(tmp_path, RepoCase("baseline", {}, expect=None))  # type: ignore[arg-type]
    objs = build(root / "overlays" / "dev", root=root)
    assert sorted(o["kind"] for o in objs) == ["ConfigMap", "Deployment", "Service"]


def test_outside_file_would_render(tmp_path: Path) -> None:
    """The file the escapes aim at is a valid manifest, so only the load restrictor can stop them."""
    assert load_yaml_documents(STOLEN.decode(), path="stolen.yaml")[0]["data"] == {
        "secret": "stolen-sentinel"
    }


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", params(CASES))
def test_render_refuses(case: RepoCase, tmp_path: Path) -> None:
    root = write_case(tmp_path, case)
    out = bounded(_build, root, seconds=20)
    assert_refused(out, RenderError, case.expect)
    assert "stolen-sentinel" not in out.message + out.value


def _limit() -> int:
    import reconciler.render as render

    return int(render.DEFAULT_MAX_FILE_BYTES)


@pytest.mark.timeout(180)
@pytest.mark.parametrize("where", ["resource", "kustomization", "patch"])
@pytest.mark.parametrize("shape", ["many-keys", "long-scalar", "many-documents"])
def test_render_refuses_huge_files(shape: str, where: str, tmp_path: Path) -> None:
    """A file over the renderer's size limit is refused before it is parsed."""
    from _hostile_corpus import BASE_RESOURCES, Expect, K, kust

    data = huge_sizes(_limit())[shape]
    h = "overlays/dev/huge.yaml"
    files = {
        "resource": {K: kust(resources=(*BASE_RESOURCES, "huge.yaml")), h: data},
        "kustomization": {K: data},
        "patch": {K: kust("patches:\n- path: huge.yaml\n"), h: data},
    }[where]
    path = K if where == "kustomization" else h
    case = RepoCase(f"huge/{where}/{shape}", files, Expect(path, None, ("size", "bytes", "large", "limit")))
    root = write_case(tmp_path, case)
    assert_refused(bounded(_build, root, seconds=60), RenderError, case.expect)


@pytest.mark.timeout(120)
@pytest.mark.parametrize("case", params(redos_cases()))
def test_render_regex_is_linear(case: RepoCase, tmp_path: Path) -> None:
    """A selector pattern that backtracks catastrophically in Python's ``re`` finishes at once: it renders
    (no match, as with kustomize's RE2) or is refused with a RenderError naming the kustomization."""
    out = bounded(_build, write_case(tmp_path, case), seconds=20)
    assert out.kind in ("returned", "raised"), f"denial of service: {out.message}"
    if out.kind == "raised":
        assert_refused(out, RenderError, case.expect)
