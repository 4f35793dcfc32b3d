"""Patch engines: strategic merge (Kubernetes SMP as kustomize's kyaml applies it) and JSON 6902.

Strategic merge follows the Kubernetes strategic-merge-patch conventions (kubernetes/community,
contributors/devel/sig-api-machinery/strategic-merge-patch.md) with kustomize v5's choices:
- lists with a merge key merge element-wise; the elements named by the patch come first in patch order,
  the other original elements follow;
- ``$patch: delete`` / ``$patch: replace`` on maps and list elements, ``$deleteFromPrimitiveList/<field>``,
  and ``null`` (deletes a key);
- lists without a known merge key whose elements all carry ``name`` merge by ``name`` (kyaml's inference
  for custom resources); other lists are replaced;
- deleting an element that is not present is a no-op, and directive keys never reach the output.

JSON patch follows RFC 6902 with RFC 6901 pointers (``~1`` = ``/``, ``~0`` = ``~``).
"""

from __future__ import annotations

import copy
from typing import Any

from reconciler.render.errors import RenderError

# Merge keys of list fields in the built-in Kubernetes API (patchMergeKey), by field name.
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "env": "name",
    "volumes": "name",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "imagePullSecrets": "name",
    "hostAliases": "ip",
    "resourceClaims": "name",
    "conditions": "type",
    "ownerReferences": "uid",
    "topologySpreadConstraints": "topologyKey",
}
# Lists merged as sets of scalars (patchStrategy: merge without key).
PRIMITIVE_MERGE = frozenset({"finalizers"})
# Lists that are replaced as a whole in the built-in API even though elements carry a name.
ATOMIC = frozenset({"args", "command", "envFrom", "tolerations", "subjects", "rules", "readinessGates"})


def _ports_key(parent_path: tuple[str, ...]) -> str:
    # Service ports merge on "port"; container ports on "containerPort".
    return (
        "containerPort"
        if parent_path and parent_path[-1] in ("containers", "initContainers", "ephemeralContainers")
        else "port"
    )


def _merge_key(field: str, path: tuple[str, ...], patch_list: list[Any], dest_list: list[Any]) -> str | None:
    if field in ATOMIC:
        return None
    if field == "ports":
        return _ports_key(path)
    if field in MERGE_KEYS:
        return MERGE_KEYS[field]
    items = [i for i in patch_list + dest_list if not (isinstance(i, dict) and set(i) <= {"$patch"})]
    if items and all(isinstance(i, dict) and "name" in i for i in items):
        return "name"
    return None


def _strip_directives(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            k: _strip_directives(v)
            for k, v in value.items()
            if k != "$patch"
            and not k.startswith("$setElementOrder/")
            and not k.startswith("$retainKeys")
            and not k.startswith("$deleteFromPrimitiveList/")
        }
    if isinstance(value, list):
        out = []
        for item in value:
            if (
                isinstance(item, dict)
                and item.get("$patch") in ("delete", "replace")
                and (item.get("$patch") == "replace" or True)
            ):
                if item.get("$patch") == "delete":
                    continue
                if set(item) == {"$patch"}:
                    continue
            out.append(_strip_directives(item))
        return out
    return value


def strategic_merge(dest: Any, patch: Any, path: tuple[str, ...] = ()) -> Any:
    """Return ``dest`` with the strategic-merge ``patch`` applied (inputs are not modified).

    Args:
        dest: the current value (map, list or scalar).
        patch: the patch value.
        path: field names from the object root, used to pick list merge keys.

    Raises:
        RenderError: for an unknown ``$patch`` directive value.
    """
    if isinstance(patch, dict) and isinstance(dest, dict):
        directive = patch.get("$patch")
        if directive == "delete":
            return _DELETE
        if directive == "replace":
            return _strip_directives({k: v for k, v in patch.items() if k != "$patch"})
        if directive not in (None, "merge"):
            raise RenderError(f"unknown $patch directive {directive!r} at {'.'.join(path) or '<root>'}")
        out = dict(dest)
        for key, pval in patch.items():
            if key == "$patch" or key.startswith("$setElementOrder/") or key.startswith("$retainKeys"):
                continue
            if key.startswith("$deleteFromPrimitiveList/"):
                field = key.split("/", 1)[1]
                if isinstance(out.get(field), list) and isinstance(pval, list):
                    out[field] = [v for v in out[field] if v not in pval]
                continue
            if pval is None:
                out.pop(key, None)
                continue
            if key in out and out[key] is not None:
                merged = strategic_merge(out[key], pval, (*path, key))
                if merged is _DELETE:
                    out.pop(key, None)
                else:
                    out[key] = merged
            else:
                if isinstance(pval, dict) and pval.get("$patch") == "delete":
                    continue
                out[key] = _strip_directives(copy.deepcopy(pval))
        return out
    if isinstance(patch, list) and isinstance(dest, list):
        field = path[-1] if path else ""
        return _merge_list(dest, patch, field, path[:-1])
    if isinstance(patch, dict) and patch.get("$patch") == "delete":
        return _DELETE
    return _strip_directives(copy.deepcopy(patch))


class _Delete:
    pass


_DELETE: Any = _Delete()


def _merge_list(dest: list[Any], patch: list[Any], field: str, parent: tuple[str, ...]) -> list[Any]:
    if any(isinstance(i, dict) and i.get("$patch") == "replace" for i in patch):
        return [
            _strip_directives(copy.deepcopy(i))
            for i in patch
            if not (isinstance(i, dict) and i.get("$patch") == "replace")
        ]
    if field in PRIMITIVE_MERGE and all(not isinstance(i, (dict, list)) for i in patch):
        new = [i for i in patch if i not in dest]
        return new + [i for i in dest]
    key = _merge_key(field, parent, patch, dest)
    if key is None:
        return _strip_directives(copy.deepcopy(patch))  # type: ignore[no-any-return]
    # kyaml (ListIncreaseDirection "prepend"): elements named by the patch come first, in patch order
    # (merged with their counterpart), followed by the remaining original elements in their order.
    head: list[Any] = []
    used: set[int] = set()
    for item in patch:
        if not isinstance(item, dict):
            continue
        kval = item.get(key)
        idx = next(
            (i for i, d in enumerate(dest) if i not in used and isinstance(d, dict) and d.get(key) == kval),
            None,
        )
        if idx is not None:
            used.add(idx)
        if item.get("$patch") == "delete":
            continue
        if idx is None:
            head.append(_strip_directives(copy.deepcopy(item)))
        else:
            head.append(strategic_merge(dest[idx], item, (*parent, field)))
    tail = [copy.deepcopy(d) for i, d in enumerate(dest) if i not in used]
    return head + tail


def apply_strategic_merge(obj: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any] | None:
    """Apply a strategic-merge patch to a whole object; ``None`` when the patch deletes the object."""
    merged = strategic_merge(obj, patch)
    if merged is _DELETE:
        return None
    assert isinstance(merged, dict)
    return merged


# -- JSON patch (RFC 6902) ----------------------------------------------------------------------------


def _pointer(ptr: str, *, where: str) -> list[str]:
    if ptr == "":
        return []
    if not ptr.startswith("/"):
        raise RenderError(f"JSON pointer {ptr!r} must start with '/'", path=where)
    return [p.replace("~1", "/").replace("~0", "~") for p in ptr[1:].split("/")]


def _resolve(doc: Any, parts: list[str], ptr: str, where: str) -> Any:
    cur = doc
    for p in parts:
        if isinstance(cur, dict):
            if p not in cur:
                raise RenderError(f"JSON patch path {ptr!r}: key {p!r} not found", path=where)
            cur = cur[p]
        elif isinstance(cur, list):
            try:
                i = int(p)
            except ValueError:
                raise RenderError(f"JSON patch path {ptr!r}: {p!r} is not a list index", path=where) from None
            if not 0 <= i < len(cur):
                raise RenderError(f"JSON patch path {ptr!r}: index {i} out of range", path=where)
            cur = cur[i]
        else:
            raise RenderError(f"JSON patch path {ptr!r} goes through a scalar", path=where)
    return cur


def _remove(doc: Any, parts: list[str], ptr: str, where: str) -> Any:
    if not parts:
        raise RenderError("JSON patch cannot remove the whole document", path=where)
    parent = _resolve(doc, parts[:-1], ptr, where)
    last = parts[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise RenderError(f"JSON patch remove {ptr!r}: key {last!r} not found", path=where)
        return parent.pop(last)
    if isinstance(parent, list):
        try:
            i = int(last)
        except ValueError:
            raise RenderError(f"JSON patch path {ptr!r}: {last!r} is not a list index", path=where) from None
        if not 0 <= i < len(parent):
            raise RenderError(f"JSON patch remove {ptr!r}: index {i} out of range", path=where)
        return parent.pop(i)
    raise RenderError(f"JSON patch path {ptr!r} goes through a scalar", path=where)


def _add(doc: Any, parts: list[str], value: Any, ptr: str, where: str, *, replace: bool = False) -> Any:
    if not parts:
        return value
    parent = _resolve(doc, parts[:-1], ptr, where)
    last = parts[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise RenderError(f"JSON patch replace {ptr!r}: key {last!r} not found", path=where)
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-" and not replace:
            parent.append(value)
            return doc
        try:
            i = int(last)
        except ValueError:
            raise RenderError(f"JSON patch path {ptr!r}: {last!r} is not a list index", path=where) from None
        if replace:
            if not 0 <= i < len(parent):
                raise RenderError(f"JSON patch replace {ptr!r}: index {i} out of range", path=where)
            parent[i] = value
        else:
            if not 0 <= i <= len(parent):
                raise RenderError(f"JSON patch add {ptr!r}: index {i} out of range", path=where)
            parent.insert(i, value)
    else:
        raise RenderError(f"JSON patch path {ptr!r} goes through a scalar", path=where)
    return doc


def apply_json6902(obj: dict[str, Any], ops: list[Any], *, where: str) -> dict[str, Any]:
    """Apply RFC 6902 operations to a copy of ``obj``.

    Raises:
        RenderError: naming ``where`` for malformed operations, missing paths and failed ``test`` ops.
    """
    doc: Any = copy.deepcopy(obj)
    for n, op in enumerate(ops):
        if (
            not isinstance(op, dict)
            or not isinstance(op.get("op"), str)
            or not isinstance(op.get("path"), str)
        ):
            raise RenderError(f"JSON patch operation #{n} needs string 'op' and 'path'", path=where)
        kind, ptr = op["op"], op["path"]
        parts = _pointer(ptr, where=where)
        if kind in ("add", "replace", "test") and "value" not in op:
            raise RenderError(f"JSON patch operation #{n} ({kind}) has no 'value'", path=where)
        if kind == "add":
            doc = _add(doc, parts, copy.deepcopy(op["value"]), ptr, where)
        elif kind == "replace":
            doc = _add(doc, parts, copy.deepcopy(op["value"]), ptr, where, replace=True)
        elif kind == "remove":
            _remove(doc, parts, ptr, where)
        elif kind in ("move", "copy"):
            src = op.get("from")
            if not isinstance(src, str):
                raise RenderError(f"JSON patch operation #{n} ({kind}) needs 'from'", path=where)
            sparts = _pointer(src, where=where)
            value = copy.deepcopy(_resolve(doc, sparts, src, where))
            if kind == "move":
                _remove(doc, sparts, src, where)
            doc = _add(doc, parts, value, ptr, where)
        elif kind == "test":
            if _resolve(doc, parts, ptr, where) != op["value"]:
                raise RenderError(f"JSON patch test failed at {ptr!r}", path=where)
        else:
            raise RenderError(f"unknown JSON patch operation {kind!r}", path=where)
    if not isinstance(doc, dict):
        raise RenderError("JSON patch turned the object into a non-mapping", path=where)
    return doc
