"""Read and write the ``images:`` of an overlay's ``kustomization.yaml``, keeping the file as it was.

Edits use ruamel.yaml's round-trip mode (comments, quotes, key order and flow style are kept) with the
file's own indentation (guessed by ``ruamel.yaml.util.load_yaml_guess_indent``). After dumping, the
result is compared line by line with the original: any difference outside the ``images:`` entries is
refused rather than written, so a promotion commit changes only the lines it must.

An ``images:`` entry follows kustomize's ``Image`` type
(https://kubectl.docs.kubernetes.io/references/kustomize/kustomization/images/): ``name`` (the image
name to match in the manifests), optional ``newName``, ``newTag`` and ``digest``.
"""

from __future__ import annotations

import difflib
import io
from typing import Any

from pydantic import BaseModel, ConfigDict, Field
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import CommentMark, YAMLError
from ruamel.yaml.tokens import CommentToken
from ruamel.yaml.util import load_yaml_guess_indent

from reconciler.errors import ReconcilerError

KUSTOMIZATION_NAMES = ("kustomization.yaml", "kustomization.yml", "Kustomization")


class OverlayError(ReconcilerError):
    """An overlay's kustomization file cannot be read or edited safely; the message names the file."""


class ImageEntry(BaseModel):
    """One ``images:`` entry of a kustomization."""

    model_config = ConfigDict(populate_by_name=True, frozen=True)

    name: str
    new_name: str | None = Field(default=None, alias="newName")
    new_tag: str | None = Field(default=None, alias="newTag")
    digest: str | None = None

    @property
    def repository(self) -> str:
        """The repository the manifests end up with (``newName`` when set, else ``name``)."""
        return self.new_name or self.name

    @property
    def ref(self) -> str:
        """``repository[:tag][@digest]`` as kustomize renders it."""
        out = self.repository
        if self.new_tag:
            out += f":{self.new_tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out

    @property
    def version(self) -> str:
        """``tag@digest``, ``tag`` or ``@digest``; ``""`` when neither is set."""
        if self.new_tag and self.digest:
            return f"{self.new_tag}@{self.digest}"
        if self.digest:
            return f"@{self.digest}"
        return self.new_tag or ""

    def same_version(self, other: ImageEntry) -> bool:
        """Whether both entries render the same image reference."""
        return self.ref == other.ref


def _yaml(text: str) -> YAML:
    try:
        _, indent, block_seq_indent = load_yaml_guess_indent(text)
    except YAMLError:
        indent, block_seq_indent = None, None
    y = YAML(typ="rt")
    y.preserve_quotes = True
    y.width = 4096
    seq = indent or 2
    offset = block_seq_indent or 0
    y.indent(mapping=max(2, seq - offset) if offset else seq, sequence=seq, offset=offset)
    y.explicit_start = text.lstrip().startswith("---")
    return y


def _load(text: str, path: str) -> tuple[YAML, Any]:
    y = _yaml(text)
    try:
        data = y.load(text)
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise OverlayError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if data is None:
        data = CommentedMap()
    if not isinstance(data, dict):
        raise OverlayError(f"{path}: a kustomization must be a mapping, found {type(data).__name__}")
    return y, data


def read_images(text: str, path: str = "kustomization.yaml") -> list[ImageEntry]:
    """The ``images:`` entries of a kustomization, in file order.

    Raises:
        OverlayError: invalid YAML or a malformed entry, naming ``path`` and the line.
    """
    _, data = _load(text, path)
    images = data.get("images")
    if images is None:
        return []
    if not isinstance(images, list):
        raise OverlayError(f"{path}: images must be a list")
    out: list[ImageEntry] = []
    for i, item in enumerate(images):
        line = _line_of(images, i)
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise OverlayError(f"{path}:{line}: images[{i}] must be a mapping with a name")
        values = {k: str(v) for k, v in item.items() if k in ("name", "newName", "newTag", "digest") and v}
        out.append(ImageEntry.model_validate(values))
    return out


def _line_of(seq: Any, index: int) -> int:
    try:
        return int(seq.lc.item(index)[0]) + 1
    except (AttributeError, KeyError, IndexError, TypeError):
        return 0


def set_images(text: str, updates: list[ImageEntry], path: str = "kustomization.yaml") -> str:
    """Write ``updates`` into the kustomization's ``images:`` (matched by ``name``; missing entries are
    appended, missing ``images:`` is added) and return the new text.

    Only the changed keys are touched: an entry's ``newName``/``newTag``/``digest`` are set to the update's
    values, and removed when the update has none. Comments, quoting and layout stay as they were.

    Raises:
        OverlayError: invalid YAML, a malformed ``images:``, or an edit that would reformat lines outside
            the ``images:`` entries (nothing is written then).
    """
    y, data = _load(text, path)
    images = data.get("images")
    if images is None:
        images = CommentedSeq()
        data["images"] = images
    if not isinstance(images, list):
        raise OverlayError(f"{path}: images must be a list")
    for update in updates:
        entry = next((e for e in images if isinstance(e, dict) and e.get("name") == update.name), None)
        if entry is None:
            entry = CommentedMap()
            entry["name"] = update.name
            images.append(entry)
        for key, value in (
            ("newName", update.new_name),
            ("newTag", update.new_tag),
            ("digest", update.digest),
        ):
            if value:
                if str(entry.get(key, "")) != value:
                    entry[key] = _like(entry.get(key), value)
            elif key in entry:
                if isinstance(entry, CommentedMap):
                    _delete_keeping_comments(entry, key)
                else:
                    del entry[key]
    buf = io.StringIO()
    y.dump(data, buf)
    out = buf.getvalue()
    if not text.endswith("\n") and out.endswith("\n") and text.strip():
        out = out[:-1]
    _check_only_images_changed(text, out, path)
    return out


def _delete_keeping_comments(m: CommentedMap, key: str) -> None:
    """Delete ``key`` from ``m``; the comment lines that followed its value (ruamel keeps them on the
    key) move to the previous key, so a comment between entries is not lost with the deleted key."""
    keys = list(m.keys())
    index = keys.index(key)
    info = m.ca.items.pop(key, None)
    del m[key]
    token = info[2] if info and len(info) > 2 else None
    if token is None or index == 0:
        return
    following = token.value.split("\n", 1)[1] if "\n" in token.value else ""
    if not following:
        return
    prev = keys[index - 1]
    prev_info = m.ca.items.get(prev)
    if prev_info and len(prev_info) > 2 and prev_info[2] is not None:
        prev_info[2].value = prev_info[2].value.rstrip("\n") + "\n" + following
    else:
        m.ca.items[prev] = [None, None, CommentToken("\n" + following, CommentMark(0), None), None]


def _like(old: Any, value: str) -> Any:
    """``value`` in the old scalar's quoting style (so ``'1.0'`` stays single-quoted)."""
    cls = type(old)
    if old is not None and cls is not str and isinstance(old, str):
        try:
            return cls(value)
        except TypeError:
            return value
    return value


def _images_span(text: str) -> tuple[int, int]:
    """0-based [start, end) line span of the ``images:`` key and its value in ``text`` (or the end)."""
    lines = text.splitlines()
    start = None
    for i, line in enumerate(lines):
        if line.startswith("images:"):
            start = i
            break
    if start is None:
        return len(lines), len(lines)
    end = start + 1
    while end < len(lines):
        line = lines[end]
        if line and not line[0].isspace() and not line.startswith(("-", "#")):
            break
        end += 1
    return start, end


def _check_only_images_changed(before: str, after: str, path: str) -> None:
    a = before.splitlines()
    b = after.splitlines()
    a_start, a_end = _images_span(before)
    b_start, b_end = _images_span(after)
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=a, b=b, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        inside_a = i1 == i2 or (a_start <= i1 and i2 <= a_end)
        inside_b = j1 == j2 or (b_start <= j1 and j2 <= b_end)
        if not (inside_a and inside_b):
            raise OverlayError(
                f"{path}:{i1 + 1}: editing images: would also rewrite other lines "
                f"({a[i1] if i1 < len(a) else ''!r} → {b[j1] if j1 < len(b) else ''!r}); "
                "edit this file by hand"
            )
