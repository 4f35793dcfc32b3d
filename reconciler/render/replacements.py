"""The ``replacements`` transformer: copy a field value from a source object into target fields.

Follows kustomize v5's ReplacementTransformer: ``source`` selects exactly one object (group/version/kind/
name/namespace) and a ``fieldPath`` (default ``metadata.name``); each ``targets[]`` entry selects objects
(``select``, minus ``reject``) and ``fieldPaths``; ``options`` ``delimiter``/``index`` replace one part of a
delimited string and ``create`` adds missing fields. Field paths are dot-separated; ``[key=value]`` picks a
list element by a field value, a number picks by index.
"""

from __future__ import annotations

import re
from typing import Any

from reconciler.render.errors import RenderError
from reconciler.render.resource import ResMap, Resource


def _split(path: str) -> list[str]:
    parts: list[str] = []
    cur = ""
    depth = 0
    for ch in path:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "." and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    parts.append(cur)
    out: list[str] = []
    for p in parts:
        m = re.match(r"^([^\[]+)(\[.*\])$", p)
        if m:
            out += [m.group(1), m.group(2)]
        else:
            out.append(p)
    return out


def _get(node: Any, parts: list[str]) -> Any:
    for p in parts:
        if p.startswith("[") and p.endswith("]"):
            k, _, v = p[1:-1].partition("=")
            if not isinstance(node, list):
                return None
            node = next((i for i in node if isinstance(i, dict) and str(i.get(k)) == v), None)
        elif isinstance(node, list) and p.isdigit():
            i = int(p)
            node = node[i] if i < len(node) else None
        elif isinstance(node, dict):
            node = node.get(p)
        else:
            return None
        if node is None:
            return None
    return node


def _set(node: Any, parts: list[str], value: Any, create: bool, opts: dict[str, Any]) -> None:
    for idx, p in enumerate(parts):
        last = idx == len(parts) - 1
        if p.startswith("[") and p.endswith("]"):
            k, _, v = p[1:-1].partition("=")
            if not isinstance(node, list):
                return
            found = next((i for i in node if isinstance(i, dict) and str(i.get(k)) == v), None)
            if found is None:
                if not create:
                    return
                found = {k: v}
                node.append(found)
            node = found
            continue
        if isinstance(node, list) and p.isdigit():
            i = int(p)
            if i >= len(node):
                return
            if last:
                node[i] = _value(node[i], value, opts)
                return
            node = node[i]
            continue
        if not isinstance(node, dict):
            return
        if last:
            if p not in node and not create:
                return
            node[p] = _value(node.get(p), value, opts)
            return
        if p not in node or node[p] is None:
            if not create:
                return
            node[p] = [] if parts[idx + 1].startswith("[") else {}
        node = node[p]


def _value(old: Any, value: Any, opts: dict[str, Any]) -> Any:
    if isinstance(old, str) and not isinstance(value, (str, dict, list)) and value is not None:
        value = ("true" if value else "false") if isinstance(value, bool) else str(value)
    delim = opts.get("delimiter")
    if delim and isinstance(old, str):
        pieces = old.split(delim)
        index = int(opts.get("index", 0))
        if index < 0:
            pieces.insert(0, str(value))
        elif index >= len(pieces):
            pieces.append(str(value))
        else:
            pieces[index] = str(value)
        return delim.join(pieces)
    return value


def _matches(res: Resource, sel: dict[str, Any]) -> bool:
    rid = res.cur_id()
    for key, cur in (
        ("group", rid.group),
        ("version", rid.version),
        ("kind", rid.kind),
        ("name", rid.name),
        ("namespace", rid.namespace),
    ):
        want = sel.get(key)
        if want not in (None, "") and want != cur:
            return False
    return True


def apply(resmap: ResMap, entries: list[dict[str, Any]], *, where: str) -> None:
    """Apply replacement entries in order.

    Raises:
        RenderError: when a source matches no or several objects, or its field is missing.
    """
    for entry in entries:
        src = entry.get("source") or {}
        sources = [r for r in resmap if _matches(r, src)]
        if len(sources) != 1:
            raise RenderError(
                f"replacement source {src} matched {len(sources)} objects, expected 1", path=where
            )
        fpath = str(src.get("fieldPath") or "metadata.name")
        value = _get(sources[0].obj, _split(fpath))
        if value is None:
            raise RenderError(f"replacement source field {fpath!r} not found", path=where)
        sopts = src.get("options") or {}
        if sopts.get("delimiter") and isinstance(value, str):
            value = value.split(sopts["delimiter"])[int(sopts.get("index", 0))]
        for target in entry.get("targets") or []:
            sel = target.get("select") or {}
            rejects = target.get("reject") or []
            opts = target.get("options") or {}
            for res in resmap:
                if not _matches(res, sel) or any(_matches(res, r) for r in rejects):
                    continue
                for tpath in target.get("fieldPaths") or ["metadata.name"]:
                    _set(res.obj, _split(str(tpath)), value, bool(opts.get("create")), opts)
