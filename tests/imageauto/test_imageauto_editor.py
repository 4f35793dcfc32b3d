"""The ``images:`` editor of image automation: matching by name or newName, in-place edits that change
only the newTag/digest lines, comments and layout kept, never a second entry."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.model.imagepolicy import ImagePolicy
from reconciler.promote.images import edit_image_entries, matching_entries
from reconciler.promote.overlay import ImageEntry, OverlayError, read_images

CASES = Path(__file__).resolve().parents[1] / "cases"
CASE25 = CASES / "25-webhook-harbor-match-newname-with-port"
CASE28 = CASES / "28-git-no-empty-or-duplicate-commits"
DIGEST = "sha256:" + "c" * 64


def policy(image: str, **kw: Any) -> ImagePolicy:
    data: dict[str, Any] = {"name": "p", "image": image, "policy": {"semver": {"range": "*"}}}
    data.update(kw)
    return ImagePolicy.model_validate(data)


def changed_lines(a: str, b: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(a.splitlines(), b.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def update(text: str, image: str, tag: str, pin: str | None = None, **kw: Any) -> str:
    p = policy(image, **kw)
    found = matching_entries(read_images(text), p)
    assert found, f"no entry for {image}"
    ups = [ImageEntry(name=e.name, newName=e.new_name, newTag=tag, digest=pin) for e, _ in found]
    return edit_image_entries(text, ups, "kustomization.yaml")


def test_case25_matches_on_new_name_and_equals_expected_file() -> None:
    before = (CASE25 / "repo-before/clusters/prod/ml/kustomization.yaml").read_text()
    expected = (CASE25 / "expected-repo/clusters/prod/ml/kustomization.yaml").read_text()
    p = policy("harbor.registry.test:8443/ml-agents/planner")
    found = matching_entries(read_images(before), p)
    assert [(e.name, how) for e, how in found] == [("planner", "newName")]
    after = update(before, "harbor.registry.test:8443/ml-agents/planner", "0.1.1")
    assert after == expected
    assert len(read_images(after)) == 3
    assert changed_lines(before, after) == ["-  newTag: 0.1.0", "+  newTag: 0.1.1"]


def test_case25_neighbours_are_not_matched() -> None:
    before = (CASE25 / "repo-before/clusters/prod/ml/kustomization.yaml").read_text()
    entries = read_images(before)
    assert [e.name for e, _ in matching_entries(entries, policy("harbor.registry.test:8443/ml-agents"))] == []
    assert [
        e.name for e, _ in matching_entries(entries, policy("mirror.registry.test/ml-agents/planner"))
    ] == ["mirror-planner"]
    # the short alias 'planner' is only the name to look for: with a newName it never matches as docker.io
    assert matching_entries(entries, policy("docker.io/library/planner")) == []


def test_case28_keeps_the_trailing_comment_and_changes_one_line() -> None:
    before = (CASE28 / "repo-before/clusters/prod/tools/kustomization.yaml").read_text()
    after = update(before, "quay.io/acme-ai/tool-gateway", "2.0.2")
    expected = json_diff(CASE28)
    assert changed_lines(before, after) == expected


def json_diff(case: Path) -> list[str]:
    import json

    steps = json.loads((case / "expected.json").read_text())["after_each_step"]
    return [line for s in steps if "commit" in s for line in s["commit"]["diff"]]


def test_longer_value_keeps_the_comment_column() -> None:
    before = "images:\n- name: ghcr.io/a/b\n  newTag: 1.0.0      # pinned by automation\n"
    after = update(before, "ghcr.io/a/b", "1.0.10")
    assert after == "images:\n- name: ghcr.io/a/b\n  newTag: 1.0.10     # pinned by automation\n"


@pytest.mark.parametrize(
    ("entry_name", "image"),
    [
        ("nginx", "docker.io/library/nginx"),
        ("docker.io/nginx", "nginx"),
        ("index.docker.io/library/nginx", "library/nginx"),
        ("acme/web", "registry-1.docker.io/acme/web"),
    ],
)
def test_docker_hub_spellings_match(entry_name: str, image: str) -> None:
    before = f"resources:\n- d.yaml\nimages:\n- name: {entry_name}\n  newTag: 1.0.0\n"
    after = update(before, image, "1.1.0")
    assert after == before.replace("1.0.0", "1.1.0")


def test_quoting_is_kept_and_ambiguous_tags_stay_strings() -> None:
    before = (
        'images:\n  - name: ghcr.io/a/b  # the app\n    newTag: "0.1.0"\n'
        "  - name: ghcr.io/a/c\n    newTag: x\n"
    )
    after = update(before, "ghcr.io/a/b", "0.2.0")
    assert changed_lines(before, after) == ['-    newTag: "0.1.0"', '+    newTag: "0.2.0"']
    after2 = update(before, "ghcr.io/a/c", "1.10")
    assert read_images(after2)[1].new_tag == "1.10"  # not the float 1.1
    assert len(changed_lines(before, after2)) == 2


def test_digest_pin_adds_exactly_one_line() -> None:
    before = (
        "images:\n# app\n- name: ghcr.io/a/b\n  newTag: 1.0.0\n"
        "# other\n- name: ghcr.io/a/c\n  newTag: 2.0.0\n"
    )
    after = update(before, "ghcr.io/a/b", "1.1.0", DIGEST, digest="pin")
    assert changed_lines(before, after) == ["-  newTag: 1.0.0", "+  newTag: 1.1.0", f"+  digest: {DIGEST}"]
    assert read_images(after)[0].ref == f"ghcr.io/a/b:1.1.0@{DIGEST}"


def test_stale_digest_is_removed_or_the_edit_refused_never_a_lost_comment() -> None:
    before = f"images:\n- name: ghcr.io/a/b\n  newTag: 1.0.0\n  digest: {DIGEST}\n# keep me\nnamespace: x\n"
    try:
        after = update(before, "ghcr.io/a/b", "1.1.0")
    except OverlayError as exc:
        assert "kustomization.yaml" in str(exc)
        return
    assert "# keep me" in after
    assert sorted(changed_lines(before, after)) == sorted(
        ["-  newTag: 1.0.0", "+  newTag: 1.1.0", f"-  digest: {DIGEST}"]
    )


def test_flow_style_entry() -> None:
    before = "images:\n- {name: ghcr.io/a/b, newTag: 1.0.0}   # flow\n- name: ghcr.io/a/c\n  newTag: 1.0.0\n"
    after = update(before, "ghcr.io/a/b", "1.0.1")
    assert read_images(after)[0].new_tag == "1.0.1"
    assert read_images(after)[1].new_tag == "1.0.0"
    assert len(changed_lines(before, after)) == 2


def test_unknown_entry_and_broken_yaml_are_errors_naming_the_file() -> None:
    with pytest.raises(OverlayError, match=r"overlays/dev/kustomization.yaml: no images entry named 'x'"):
        edit_image_entries(
            "images:\n- name: a\n", [ImageEntry(name="x", newTag="1")], "overlays/dev/kustomization.yaml"
        )
    with pytest.raises(OverlayError, match=r"overlays/dev/kustomization.yaml:\d+: invalid YAML"):
        edit_image_entries("images:\n- name: [a\n", [], "overlays/dev/kustomization.yaml")


# --------------------------------------------------------------------------- property: one line changes

_comment = st.one_of(st.just(""), st.from_regex(r"\A  # [a-z ]{0,12}\Z"))


@settings(max_examples=60, deadline=None)
@given(
    indented=st.booleans(),
    quote=st.sampled_from(["", "'", '"']),
    comments=st.lists(_comment, min_size=6, max_size=6),
    others=st.integers(0, 3),
    target=st.integers(0, 3),
    minor=st.integers(1, 40),
)
def test_only_the_new_tag_line_changes(
    indented: bool, quote: str, comments: list[str], others: int, target: int, minor: int
) -> None:
    pad = "  " if indented else ""
    lines = ["apiVersion: kustomize.config.k8s.io/v1beta1" + comments[0], "kind: Kustomization", "images:"]
    names = [f"ghcr.io/acme/svc{i}" for i in range(others + 1)]
    for i, name in enumerate(names):
        lines.append(f"{pad}# entry {i}")
        lines.append(f"{pad}- name: {name}{comments[1]}")
        lines.append(f"{pad}  newTag: {quote}1.0.0{quote}{comments[2]}")
    lines += ["resources:" + comments[3], f"{pad}- deploy.yaml{comments[4]}", "namespace: apps" + comments[5]]
    before = "\n".join(lines) + "\n"
    chosen = names[min(target, others)]
    after = update(before, chosen, f"1.{minor}.0")
    diff = changed_lines(before, after)
    assert len(diff) == 2 and diff[0].startswith("-") and diff[1].startswith("+")
    old, new = diff[0][1:], diff[1][1:]
    value = f"{quote}1.{minor}.0{quote}"
    assert new.split("#")[0].rstrip() == old.split("#")[0].rstrip().replace(f"{quote}1.0.0{quote}", value)
    assert new.partition("#")[2] == old.partition("#")[2]  # the comment text is kept
    idx = after.splitlines().index(new)
    assert after.splitlines()[idx - 1].lstrip(" -").startswith(f"name: {chosen}")
    assert [e.name for e in read_images(after)] == names


@pytest.mark.parametrize(
    ("before", "tag", "after"),
    [
        (
            "resources:\n    - a.yaml\nimages:\n  -  name: ghcr.io/a/b\n     newTag: 1.0.0   # c\n",
            "1.10",
            "resources:\n    - a.yaml\nimages:\n  -  name: ghcr.io/a/b\n     newTag: '1.10'  # c\n",
        ),
        (
            'images:\n- name: b\n  newTag:   "1.0.0"\n  newName:   "ghcr.io/a/b"\n',
            "1.1.0",
            'images:\n- name: b\n  newTag:   "1.1.0"\n  newName:   "ghcr.io/a/b"\n',
        ),
        (
            "images:\n- name: b\n  newName:   ghcr.io/a/b\n  newTag:   1.0.0  # short\n",
            "1.0.1",
            "images:\n- name: b\n  newName:   ghcr.io/a/b\n  newTag:   1.0.1  # short\n",
        ),
    ],
)
def test_spacing_ruamel_does_not_keep_is_kept_by_replacing_the_value_token(
    before: str, tag: str, after: str
) -> None:
    assert update(before, "ghcr.io/a/b", tag) == after
    assert read_images(after)[0].new_tag == tag


def test_a_structural_edit_that_would_reformat_other_lines_is_refused() -> None:
    before = "resources:\n    - a.yaml\nimages:\n  -  name: ghcr.io/a/b\n     newTag: 1.0.0\n"
    with pytest.raises(OverlayError, match=r"kustomization.yaml:\d+: updating images would change more"):
        update(before, "ghcr.io/a/b", "1.1.0", DIGEST, digest="pin")
