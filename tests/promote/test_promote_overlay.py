"""Round-trip edits of a kustomization's images: only the changed lines differ."""

from __future__ import annotations

import difflib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.promote.overlay import ImageEntry, OverlayError, read_images, set_images

COMPACT = """\
# staging overlay (comment kept)
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: agents-staging   # trailing comment
resources:
- namespace.yaml
- ../base/mcp-servers/clock
images:
- name: ghcr.io/acme/clock-mcp   # the clock
  newTag: 0.1.0   # pinned
- name: ghcr.io/acme/helpdesk
  newTag: "1.0"
patches:
- path: replicas.yaml
"""

INDENTED = """\
---
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - a.yaml
images:
  - name: 'ghcr.io/acme/clock-mcp'
    newTag: '0.1.0'
    digest: sha256:aaaa

  # a comment between entries
  - name: other
    newName: registry.example.test/other
configMapGenerator:
  - name: x
    literals: [a=1, b=2]
"""


def _changed(before: str, after: str) -> list[str]:
    return [
        line
        for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
        if line[:1] in "+-" and not line.startswith(("+++", "---"))
    ]


def test_read_images() -> None:
    assert read_images(COMPACT) == [
        ImageEntry(name="ghcr.io/acme/clock-mcp", newTag="0.1.0"),
        ImageEntry(name="ghcr.io/acme/helpdesk", newTag="1.0"),
    ]
    other = read_images(INDENTED)[1]
    assert other.repository == "registry.example.test/other" and other.ref == "registry.example.test/other"


def test_only_the_changed_lines_differ_compact() -> None:
    update = ImageEntry(name="ghcr.io/acme/clock-mcp", newTag="0.2.0", digest="sha256:" + "b" * 64)
    out = set_images(COMPACT, [update])
    assert _changed(COMPACT, out) == [
        "-  newTag: 0.1.0   # pinned",
        "+  newTag: 0.2.0   # pinned",
        "+  digest: sha256:" + "b" * 64,
    ]
    assert read_images(out)[0] == update


def test_only_the_changed_lines_differ_indented_and_quoted() -> None:
    out = set_images(
        INDENTED, [ImageEntry(name="ghcr.io/acme/clock-mcp", newTag="0.2.0", digest="sha256:bbbb")]
    )
    assert _changed(INDENTED, out) == [
        "-    newTag: '0.1.0'",
        "-    digest: sha256:aaaa",
        "+    newTag: '0.2.0'",
        "+    digest: sha256:bbbb",
    ]
    assert out.startswith("---\n")


def test_new_entry_and_removed_digest() -> None:
    out = set_images(
        INDENTED,
        [ImageEntry(name="ghcr.io/acme/clock-mcp", newTag="0.3.0"), ImageEntry(name="new/one", newTag="1")],
    )
    assert _changed(INDENTED, out) == [
        "-    newTag: '0.1.0'",
        "-    digest: sha256:aaaa",
        "+    newTag: '0.3.0'",
        "+  - name: new/one",
        "+    newTag: '1'",
    ]


def test_missing_images_key_is_added_at_the_end() -> None:
    text = "resources:\n- a.yaml\n"
    out = set_images(text, [ImageEntry(name="x", newTag="2.0.0")])
    assert out == "resources:\n- a.yaml\nimages:\n- name: x\n  newTag: 2.0.0\n"


def test_no_change_is_byte_identical() -> None:
    same = ImageEntry(name="ghcr.io/acme/clock-mcp", newTag="0.1.0")
    assert set_images(COMPACT, [same]) == COMPACT


def test_errors_name_file_and_line() -> None:
    with pytest.raises(OverlayError, match=r"overlays/dev/kustomization.yaml:\d+: invalid YAML"):
        read_images("images:\n- name: a\n  newTag: [\n", "overlays/dev/kustomization.yaml")
    with pytest.raises(OverlayError, match=r"k.yaml:2: images\[0\] must be a mapping"):
        read_images("images:\n- just-a-string\n", "k.yaml")
    with pytest.raises(OverlayError, match="images must be a list"):
        set_images("images: {a: b}\n", [ImageEntry(name="a", newTag="1")], "k.yaml")


tags = st.from_regex(r"\A[0-9]{1,2}\.[0-9]{1,2}\.[0-9]{1,2}(-rc[0-9])?\Z")


@settings(max_examples=60, deadline=None)
@given(tag=tags, digest=st.one_of(st.none(), st.from_regex(r"\Asha256:[0-9a-f]{64}\Z")))
def test_round_trip_property(tag: str, digest: str | None) -> None:
    update = ImageEntry(name="ghcr.io/acme/helpdesk", newTag=tag, digest=digest)
    for text in (COMPACT, INDENTED):
        out = set_images(text, [update])
        entries = {e.name: e for e in read_images(out)}
        assert entries["ghcr.io/acme/helpdesk"].ref == update.ref
        # everything outside the edited entry is untouched
        removed = [line for line in _changed(text, out) if line.startswith("-")]
        assert all("newTag" in line or "digest" in line for line in removed)
        assert set_images(out, [update]) == out
