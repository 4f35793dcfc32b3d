"""Byte-for-byte parity with the real `kustomize build` on the corpus and the shared render cases."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from reconciler.render import RenderError, build, dump_yaml, load_yaml_documents

HERE = Path(__file__).parent
CORPUS = HERE / "corpus"
CASES = Path(__file__).resolve().parents[1] / "cases"
OVERLAYS = sorted(
    p.name for p in CORPUS.iterdir() if p.is_dir() and not p.name.startswith("_") and p.name != "errors"
)
ERROR_OVERLAYS = sorted(p.name for p in (CORPUS / "errors").iterdir() if p.is_dir())
RENDER_CASES = {
    "01": ("01-render-crb-subject-namespace", "overlay"),
    "02": ("02-render-patch-delete-missing-item", "."),
    "04": ("04-render-images-digest-initcontainers", "."),
    "07": ("07-render-generator-nameref-base-namespace", "overlay"),
}


def _kustomize(exe: Path, directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(exe), "build", str(directory)], capture_output=True, text=True, check=False, timeout=120
    )


def test_corpus_is_large_enough() -> None:
    assert len(OVERLAYS) >= 70
    assert len(ERROR_OVERLAYS) >= 25


def test_corpus_files_are_generated_from_make_corpus(tmp_path: Path) -> None:
    """The committed corpus is what make_corpus.py writes (nobody edited a generated file by hand)."""
    import make_corpus

    written: dict[str, str] = {}

    def capture(base: Path, files: dict[str, str]) -> None:
        for name, text in files.items():
            written[str((base / name).relative_to(CORPUS))] = text

    original = make_corpus.write
    make_corpus.write = capture
    try:
        make_corpus.main()
    finally:
        make_corpus.write = original
    for rel, text in written.items():
        assert (CORPUS / rel).read_text() == text, rel


@pytest.mark.parametrize("name", OVERLAYS)
def test_corpus_matches_kustomize(name: str, kustomize_bin: Path) -> None:
    directory = CORPUS / name
    ref = _kustomize(kustomize_bin, directory)
    assert ref.returncode == 0, ref.stderr
    ours = dump_yaml(build(directory, root=CORPUS))
    assert ours == ref.stdout


@pytest.mark.parametrize("name", ERROR_OVERLAYS)
def test_corpus_errors_fail_like_kustomize(name: str, kustomize_bin: Path) -> None:
    directory = CORPUS / "errors" / name
    ref = _kustomize(kustomize_bin, directory)
    assert ref.returncode != 0, "kustomize accepted an input the corpus marks as an error"
    with pytest.raises(RenderError) as info:
        build(directory, root=CORPUS)
    assert info.value.path is not None


def _keyed(objs: list[dict[str, Any]]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    out = {}
    for o in objs:
        meta = o.get("metadata") or {}
        out[(o["apiVersion"], o["kind"], meta.get("namespace", ""), meta["name"])] = o
    return out


@pytest.mark.parametrize("case", sorted(RENDER_CASES))
def test_shared_render_case(case: str, kustomize_bin: Path) -> None:
    folder, sub = RENDER_CASES[case]
    directory = (CASES / folder / sub).resolve()
    assert directory.is_dir(), f"vendored case {folder} is missing from tests/cases"
    ours = build(directory, root=CASES / folder)
    expected = load_yaml_documents((CASES / folder / "expected.yaml").read_text(), path="expected.yaml")
    assert _keyed(ours) == _keyed(expected)
    assert "$patch" not in dump_yaml(ours)
    ref = _kustomize(kustomize_bin, directory)
    assert ref.returncode == 0, ref.stderr
    assert dump_yaml(ours) == ref.stdout
