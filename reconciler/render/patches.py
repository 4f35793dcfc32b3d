"""Patch engines: strategic merge (as kustomize's kyaml ``merge2`` applies it) and JSON 6902.

Strategic merge follows sigs.k8s.io/kustomize/kyaml/yaml/merge2 and yaml/walk with kustomize's option of
prepending list elements (api/filters/patchstrategicmerge):

- the schema of an object comes from kustomize's built-in Kubernetes OpenAPI document (v1.21.2, see
  :mod:`reconciler.render._k8s_schema`) by apiVersion/kind; a list merges element-wise only where that schema
  says ``x-kubernetes-patch-strategy: merge``, on the ``x-kubernetes-list-map-keys`` (else the
  ``x-kubernetes-patch-merge-key``), e.g. containers by ``name``, Service ports by ``port`` and ``protocol``,
  finalizers as a set of scalars; every other list (all lists of custom resources) is replaced by the patch's;
- merged list elements named by the patch come first, in patch order, then the remaining original ones;
- ``$patch: delete|replace|merge`` on maps, on list elements and as a list's own ``{$patch: ...}`` element;
  deleting an element that is not there does nothing; any other value, a null included, is an unknown
  strategy named by its text (``'null'``, ``'~'``, ``''``); ``$patch: replace`` at the root leaves the
  object as it was;
- ``null`` in the patch deletes a field; a null of the target that the patch does not mention is kept only
  when it was written with text (``key: null``, ``key: ~``), a bare ``key:`` is dropped, in every map the
  walk visits (kyaml merge2 ``VisitMap``; see :class:`reconciler.render.yamlio.YamlMap`);
- when a merged list has elements without the merge key, kyaml's ``ElementSetter`` (yaml/fns.go) keeps only
  the last of them and drops the keyed elements of the target (it matches nothing when given no key value);
- other ``$``-prefixed keys (``$setElementOrder/...``, ``$retainKeys``, ``$deleteFromPrimitiveList/...``) are
  not directives for kyaml and are copied like any field, as kustomize does;
- a patch's scalar set into an existing field takes that field's style (kyaml ``FieldSetter``): over a
  string written quoted or as a block scalar (:attr:`reconciler.render.yamlio.YamlMap.quoted`, every string
  of a JSON file) a number, boolean or timestamp becomes a string of the patch's text (``5`` -> ``"5"``,
  ``0x2F`` -> ``"0x2F"``); a field the patch adds keeps the patch's style.

JSON patch follows RFC 6902 with RFC 6901 pointers (``~1`` = ``/``, ``~0`` = ``~``) with the behaviour of
gopkg.in/evanphx/json-patch.v4 that kustomize uses: negative array indices count from the end, ``replace``
of a missing object key adds it, ``copy`` from a missing object key copies null, ``test`` compares JSON
values. kustomize applies it to the object's JSON form and decodes the result into Go values
(api/filters/patchjson6902, kyaml ``UnmarshalJSON``): numbers become float64, timestamps strings, and
annotations whose text reads as another type are spelled again as JSON spells the value.
"""

from __future__ import annotations

import copy
import re
from typing import Any

from reconciler.render._k8s_schema import DEFINITIONS, ROOTS
from reconciler.render.errors import RenderError
from reconciler.render.yamlio import (
    YamlMap,
    YamlTimestamp,
    format_scalar_float,
    json_scalar_text,
    null_text,
    resolve_plain,
)


class _Sentinel:
    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


#: A field that is absent (as opposed to present with a null value).
MISSING: Any = _Sentinel("MISSING")
#: The visitor's request to drop the node (kyaml's ``walk.ClearNode``).
CLEAR: Any = _Sentinel("CLEAR")

_DIRECTIVE = "$patch"


def _resolve(node: Any) -> dict[str, Any] | None:
    while isinstance(node, str):
        node = DEFINITIONS.get(node)
    return node if isinstance(node, dict) else None


def root_schema(obj: Any) -> dict[str, Any] | None:
    """The schema node kustomize's built-in OpenAPI document has for an object's apiVersion/kind."""
    if not isinstance(obj, dict):
        return None
    api, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api, str) or not isinstance(kind, str) or not api or not kind:
        return None
    name = ROOTS.get((api, kind))
    return _resolve(name) if name else None


def _field_schema(schema: dict[str, Any] | None, key: str) -> dict[str, Any] | None:
    if schema is None:
        return None
    props = schema.get("props")
    if props and key in props:
        return _resolve(props[key])
    if "additional" in schema:
        return _resolve(schema["additional"])
    return None


def _elements_schema(schema: dict[str, Any] | None) -> dict[str, Any] | None:
    if schema is None or not schema.get("array"):
        return None
    return _resolve(schema.get("items"))


def scalar_text(value: Any) -> str:
    """The YAML scalar text kyaml compares (``Node.Value``): strings as they are, ``""`` for null, missing
    fields, mappings and sequences, ``true``/``false``, numbers as `kustomize build` prints them. The one
    such function of the renderer (builder, nameref, replacements, refvars and embedded use it)."""
    if value is None or value is MISSING:
        return ""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (dict, list)):
        return ""
    if isinstance(value, float):
        return format_scalar_float(value)
    return str(value)


def _directive_text(mapping: dict[str, Any], key: str) -> str:
    """The text kyaml compares for a ``$patch`` value: a null's own text (``~``, ``null``, or none)."""
    value = mapping[key]
    if value is None:
        return null_text(mapping, key) or ""
    return scalar_text(value)


def _was_quoted(target: Any, key: str, value: Any) -> bool:
    """Whether a string field of the target was written quoted or as a block scalar (recorded when read,
    :attr:`YamlMap.quoted`; else known when its text read plain would be another type, or it holds a line
    break): kyaml's ``FieldSetter`` gives a strategic-merge patch's value that style."""
    if type(value) is not str:
        return False
    if isinstance(target, YamlMap) and key in target.quoted:
        return True
    if isinstance(target, YamlMap) and key in target.unquoted:
        return False
    return "\n" in value or not (
        isinstance(resolved := resolve_plain(value) if value else None, str)
        and not isinstance(resolved, YamlTimestamp)
    )


def _quoted_text(patch: dict[str, Any], key: str, value: Any) -> Any:
    """A patch's scalar written with a quoted style: its source text, a string (``0x2F`` stays ``0x2F``,
    a timestamp keeps its spelling)."""
    if value is None or isinstance(value, (dict, list)) or (type(value) is str):
        return value
    texts = patch.texts if isinstance(patch, YamlMap) else {}
    if key in texts:
        return texts[key]
    return str(value) if isinstance(value, YamlTimestamp) else scalar_text(value)


def _is_empty(value: Any) -> bool:
    """kyaml's ``IsNilOrEmpty`` for a field value."""
    return value is MISSING or value is None or value == "" or value == {} or value == []


def _is_missing_or_null(value: Any) -> bool:
    return value is MISSING or value is None


class _Merger:
    """One strategic-merge walk (kyaml ``walk.Walker`` with the ``merge2.Merger`` visitor)."""

    def __init__(self, where: str, *, prepend: bool = True) -> None:
        self.where = where
        # kyaml MergeOptions.ListIncreaseDirection: kustomize prepends the patch's list elements
        self.prepend = prepend
        # ids of maps changed in place whose callers keep the object (the patched object, the elements of
        # merged lists): never replaced by a YamlMap copy
        self.pinned: set[int] = set()

    def fail(self, message: str) -> RenderError:
        return RenderError(message, path=self.where)

    # -- directives -------------------------------------------------------------------------------
    def directive(self, patch: Any) -> str:
        """``determineSmpDirective``: reads and removes ``$patch`` from a map or a list's marker element."""
        if patch is MISSING:
            return "merge"
        if isinstance(patch, dict):
            if _DIRECTIVE not in patch:
                return "merge"
            value = _directive_text(patch, _DIRECTIVE)
            if value in ("delete", "replace", "merge"):
                del patch[_DIRECTIVE]
                return value
            raise self.fail(f"unknown patch strategy '{value}'")
        if isinstance(patch, list):
            marker = next((e for e in patch if isinstance(e, dict) and _DIRECTIVE in e), None)
            if marker is None or len(marker) > 1:
                return "merge"
            value = _directive_text(marker, _DIRECTIVE)
            if value in ("delete", "replace", "merge"):
                _element_set(patch, None, [_DIRECTIVE], [value])
                return value
            raise self.fail(f"unknown patch strategy '{value}'")
        tag = "!!null" if patch is None else "!!" + type(patch).__name__
        raise self.fail(f"no implemented strategic merge patch strategy for '{tag}' ('{scalar_text(patch)}')")

    # -- walking ----------------------------------------------------------------------------------
    def walk(self, dest: Any, origin: Any, schema: dict[str, Any] | None) -> Any:
        if schema is None:
            for src in (dest, origin):
                if isinstance(src, dict):
                    schema = root_schema(src)
                    if schema is not None:
                        break
        kind = next((s for s in (dest, origin) if not _is_missing_or_null(s)), MISSING)
        if kind is MISSING or isinstance(kind, dict):
            return self.walk_map(dest, origin, schema)
        if isinstance(kind, list):
            for src in (dest, origin):
                if not _is_missing_or_null(src) and not isinstance(src, list):
                    raise self.fail("cannot merge a list with a non-list value")
            if schema is not None and "merge" in schema:
                return self.walk_assoc_list(dest, origin, schema)
            return origin if origin is not MISSING else dest
        for src in (dest, origin):
            if not _is_missing_or_null(src) and isinstance(src, (dict, list)):
                raise self.fail("cannot merge a scalar with a map or list")
        return origin if origin is not MISSING else dest

    def walk_map(self, dest: Any, origin: Any, schema: dict[str, Any] | None) -> Any:
        for src in (dest, origin):
            if not _is_missing_or_null(src) and not isinstance(src, dict):
                raise self.fail("cannot merge a map with a non-map value")
        if _is_missing_or_null(dest):
            try:
                ps = self.directive(origin)
            except RenderError:
                ps = "unknown"  # kyaml ignores this error when the target has no value here
            if ps == "delete":
                return CLEAR
            if origin is MISSING and dest is None:
                return None  # a null kept in the target
            target = origin
        elif origin is None:
            return CLEAR
        else:
            ps = self.directive(origin)
            if ps == "delete":
                return CLEAR
            target = origin if ps == "replace" else dest
        if not isinstance(target, dict):
            return target
        patch = origin if isinstance(origin, dict) else None
        if (
            isinstance(patch, YamlMap)
            and patch.typed
            and not isinstance(target, YamlMap)
            and id(target) not in self.pinned
        ):
            target = YamlMap(target)  # to carry the patch's annotation types (see YamlMap.typed)
        keys = set(target) if patch is None else set(target) | set(patch)
        for key in sorted(keys):
            before = target.get(key, MISSING)
            if (
                (before is None or before == "")
                and (patch is None or key not in patch)
                and null_text(target, key) == ""
            ):
                target.pop(key)  # a null written without text is not kept (no MakePersistentNullNode)
                continue
            value = self.walk(
                before, MISSING if patch is None else patch.get(key, MISSING), _field_schema(schema, key)
            )
            if patch is not None and key in patch and value is patch[key]:
                # kyaml's FieldSetter: a field the patch adds keeps the patch's style, an existing one its
                # own; a quoted style makes the patch's scalar a string of its text
                if before is MISSING:
                    quoted = isinstance(patch, YamlMap) and key in patch.quoted
                else:
                    quoted = _was_quoted(target, key, before)
                    if quoted:
                        value = _quoted_text(patch, key, value)
                if (quoted or (type(value) is str and before is not MISSING)) and (
                    isinstance(target, YamlMap) or id(target) not in self.pinned
                ):
                    if not isinstance(target, YamlMap):
                        target = YamlMap(target)
                    (target.quoted if quoted else target.unquoted).add(key)
                    (target.unquoted if quoted else target.quoted).discard(key)
                if isinstance(target, YamlMap):  # an annotation's text now comes from the patch
                    ptyped = patch.typed.get(key) if isinstance(patch, YamlMap) else None
                    if ptyped is not None:
                        target.typed[key] = ptyped
                    else:
                        target.typed.pop(key, None)
            # a null result clears the field, except a null the target already had and the patch leaves alone
            kept_null = value is None and before is None and (patch is None or key not in patch)
            if value is MISSING or value is CLEAR or (value is None and not kept_null):
                target.pop(key, None)
            else:
                target[key] = value
        return target

    def walk_assoc_list(self, dest: Any, origin: Any, schema: dict[str, Any]) -> Any:
        if _is_missing_or_null(dest):
            target = origin
        elif origin is None:
            return CLEAR
        else:
            ps = self.directive(origin)
            if ps == "delete":
                return CLEAR
            target = origin if ps == "replace" else dest
        if _is_missing_or_null(target):
            return MISSING
        keys: list[str] = list(schema.get("merge") or ())
        elem_schema = _elements_schema(schema)
        sources = [target, origin]
        for src in sources:
            if isinstance(src, list):
                for elem in src:
                    if keys and not isinstance(elem, dict):
                        merged_by = "+".join(keys)
                        raise self.fail(
                            f"strategic merge: a list merged by {merged_by} holds an element that is not a "
                            f"mapping: {elem!r}"
                        )
                    if not keys and isinstance(elem, (dict, list)):
                        raise self.fail("strategic merge: a list merged by value holds a map or list element")
        if keys:
            values = self.element_values(sources, keys)
            return self.set_elements(values, keys, sources, elem_schema)
        return self.set_elements(self.primitive_values(sources), [""], sources, elem_schema)

    def _order(self, sources: list[Any]) -> tuple[Any, Any]:
        """kyaml ``elementValues``: the patch's elements first when prepending, else the target's."""
        return (sources[1], sources[0]) if self.prepend else (sources[0], sources[1])

    def element_values(self, sources: list[Any], keys: list[str]) -> list[list[str]]:
        out: list[list[str]] = []
        for src in self._order(sources):
            if not isinstance(src, list):
                continue
            for elem in src:
                vals = [
                    ""
                    if not isinstance(elem, dict) or _is_empty(elem.get(k, MISSING))
                    else scalar_text(elem[k])
                    for k in keys
                ]
                if vals and vals not in out:
                    out.append(vals)
        return out

    def primitive_values(self, sources: list[Any]) -> list[list[str]]:
        out: list[list[str]] = []
        seen: set[str] = set()
        for src in self._order(sources):
            if not isinstance(src, list):
                continue
            for item in src:
                text = scalar_text(item)
                if text in seen:
                    continue
                seen.add(text)
                out.append([text])
        return out

    def set_elements(
        self, values_list: list[list[str]], keys: list[str], sources: list[Any], elem_schema: Any
    ) -> Any:
        dest = sources[0]
        items: list[Any] = []
        if len(keys) > 1:
            values_list = _merge_values(values_list)
        valid_keys: list[str] = []
        valid_values: list[str] = []
        for values in values_list:
            if not values:
                continue
            valid_keys, valid_values = _validate_keys(values_list, values, keys)
            vk, vv = _validate_keys([valid_values], valid_values, valid_keys)
            elems = [_element_list(src, vk, vv) if isinstance(src, list) else MISSING for src in sources]
            self.pinned.update(id(e) for e in elems if isinstance(e, dict))
            val = self.walk(elems[0], elems[1], elem_schema)
            exit_ = False
            for i, key in enumerate(valid_keys):
                if val is MISSING or val is CLEAR or val is None or val == {}:
                    _element_set(dest, None, valid_keys, valid_values)
                    exit_ = True
                elif isinstance(val, dict) and key and key not in val and valid_values[i] != "":
                    val[key] = valid_values[i]
            if exit_:
                continue
            _element_set(items, val, valid_keys, valid_values)
        if values_list:
            if self.prepend:
                dest = _append_list(items, dest if isinstance(dest, list) else [], valid_keys)
            else:
                dest = _append_list(dest if isinstance(dest, list) else [], items, valid_keys)
        if _is_missing_or_null(dest):
            return MISSING
        return dest


def _merge_values(values_list: list[list[str]]) -> list[list[str]]:
    """kyaml ``mergeValues``: unify key tuples that agree where both are set."""
    out = [list(v) for v in values_list]
    for i in range(len(out)):
        for j in range(len(out)):
            matched, merged = _match(out[i], out[j])
            if matched:
                out[i] = merged
                out[j] = list(merged)
    return out


def _match(a: list[str], b: list[str]) -> tuple[bool, list[str]]:
    if len(a) != len(b):
        return False, []
    common = False
    res: list[str] = []
    for x, y in zip(a, b, strict=True):
        if x == y:
            common = True
            res.append(x)
            continue
        if x != "" and y != "":
            return False, []
        res.append(x if x != "" else y)
    return common, res


def _validate_keys(
    values_list: list[list[str]], values: list[str], keys: list[str]
) -> tuple[list[str], list[str]]:
    valid = {keys[i] for vals in values_list for i, v in enumerate(vals) if v != "" and i < len(keys)}
    if not valid:
        return list(keys), list(values)
    vkeys = [k for k in keys if k in valid]
    vvals = [v for i, v in enumerate(values) if v != "" or (i < len(keys) and keys[i] in valid)]
    return vkeys, vvals


def _field_matches(elem: Any, key: str, value: str) -> bool:
    """kyaml ``FieldMatcher{Name: key, StringValue: value}`` on a list element."""
    if key == "":
        if isinstance(elem, (dict, list)):
            raise RenderError("strategic merge: a list merged by value holds a map or list element")
        return scalar_text(elem) == value
    if not isinstance(elem, dict):
        raise RenderError("strategic merge: a list merged by key holds an element that is not a map")
    if key not in elem:
        return False
    return value == "" or scalar_text(elem[key]) == value


def _element_list(lst: list[Any], keys: list[str], values: list[str]) -> Any:
    """kyaml ``ElementList``: the first element whose ``keys`` equal ``values``, else MISSING."""
    if not keys or not keys[0]:
        wanted = values[0] if values else ""
        for item in lst:
            if not isinstance(item, (dict, list)) and scalar_text(item) == wanted:
                return item
        return MISSING
    for item in lst:
        if not isinstance(item, dict):
            continue
        if all(k in item and scalar_text(item[k]) == v for k, v in zip(keys, values, strict=False)):
            return item
    return MISSING


def _element_set(lst: list[Any], element: Any, keys: list[str], values: list[str]) -> None:
    """kyaml ``ElementSetter`` on ``lst`` in place: drop null/empty-map elements, replace (or with
    ``element`` None remove) the elements matching ``keys``/``values``, append when none matched."""
    keys = keys or [""]
    mapping_setter = bool(keys[0]) and bool(values) and values[0] != ""
    new: list[Any] = []
    matched = False
    for elem in lst:
        if elem is None or elem == {}:
            continue
        if not isinstance(elem, dict) and mapping_setter:
            new.append(elem)
            continue
        # as kyaml's loop: a key without a value to compare keeps the previous key's verdict, and with no
        # values at all nothing matches (every element is then dropped below)
        found = True
        hit = False
        for j, key in enumerate(keys):
            if j < len(values):
                hit = _field_matches(elem, key, values[j])
            if not hit:
                found = False
                break
        if not found:
            if values:
                new.append(elem)
            continue
        matched = True
        if element is None:
            continue
        new.append(element)
    lst[:] = new
    if element is None or element is MISSING:
        return
    if not matched:
        lst.append(element)


def _append_list(dst: list[Any], src: list[Any], keys: list[str]) -> list[Any]:
    """kyaml ``appendListNode``: set every element of ``src`` into ``dst`` by its key values."""
    for elem in list(src):
        if not keys or keys[0] == "":
            _element_set(dst, elem, [""], [scalar_text(elem)])
            continue
        vals: list[str] = []
        for key in keys:
            if not isinstance(elem, dict) or key not in elem:
                dst.append(elem)
                continue
            vals.append(scalar_text(elem[key]))
        if len(keys) > 1:
            _element_set(dst, None, keys, vals)
        _element_set(dst, elem, keys, vals)
    return dst


def apply_strategic_merge(
    obj: dict[str, Any], patch: dict[str, Any], *, where: str = ""
) -> dict[str, Any] | None:
    """Apply a strategic-merge patch to a whole object in place; ``None`` when the patch deletes it.

    A ``$patch: replace`` at the patch's root leaves the object as it was: kyaml's merge then returns the
    patch's node instead of changing the object's, and kustomize keeps the object's node unless the result
    is empty (api/resource/resource.go ``ApplyFilter``).

    Args:
        obj: the target object (changed in place and returned).
        patch: the patch; consumed (its nodes may end up inside ``obj``), pass a copy.
        where: file named in errors.

    Raises:
        RenderError: for unknown ``$patch`` values and values of incompatible shapes.
    """
    merger = _Merger(where)
    merger.pinned.add(id(obj))
    result = merger.walk(obj, patch, None)
    if result is MISSING or result is CLEAR or result is None:
        return None
    if not isinstance(result, dict):
        raise RenderError("strategic merge patch did not produce an object", path=where or None)
    return obj


# -- JSON patch (RFC 6902, evanphx/json-patch v4 behaviour) ---------------------------------------------


_INDEX = re.compile(r"^-?(0|[1-9][0-9]*)$")


def _decode_key(part: str) -> str:
    return part.replace("~1", "/").replace("~0", "~")


def check_pointer(ptr: Any, what: str, *, where: str) -> str:
    """Validate an RFC 6901 pointer (``""`` or ``/``-prefixed, ``~`` only as ``~0``/``~1``).

    Raises:
        RenderError: for anything else (kustomize's JSON patch library would silently read such paths
            differently, so they are refused).
    """
    if not isinstance(ptr, str):
        raise RenderError(f"JSON patch: {what} must be a string JSON pointer", path=where)
    if ptr and not ptr.startswith("/"):
        raise RenderError(
            f"JSON patch: {what} {ptr!r} is not a JSON pointer (must start with '/')", path=where
        )
    if re.search(r"~(?![01])", ptr):
        raise RenderError(
            f"JSON patch: {what} {ptr!r} has an invalid '~' escape (only ~0 and ~1)", path=where
        )
    return ptr


def _index(key: str, size: int, *, for_add: bool = False) -> int | None:
    """An array index as evanphx/json-patch reads it (negative counts from the end), ``None`` if invalid."""
    if not _INDEX.match(key) or len(key) > 19:
        return None
    idx = int(key, 10)
    limit = size + 1 if for_add else size
    if idx < 0:
        if idx < -limit:
            return None
        idx += limit
    if idx >= limit:
        return None
    return idx


class _IndexError(Exception):
    def __init__(self, key: str, size: int) -> None:
        super().__init__(f"invalid array index {key!r} (list of {size})")


def _find(doc: Any, path: str) -> tuple[Any, str] | None:
    """evanphx ``findObject``: the container holding the last segment of ``path`` and that segment."""
    split = path.split("/")
    if len(split) < 2:
        return None
    cur = doc
    for part in split[1:-1]:
        key = _decode_key(part)
        if isinstance(cur, dict):
            nxt = cur.get(key, MISSING)
        elif isinstance(cur, list):
            idx = _index(key, len(cur))
            if idx is None:
                raise _IndexError(key, len(cur))
            nxt = cur[idx]
        else:
            return None
        if nxt is MISSING or nxt is None or not isinstance(nxt, (dict, list)):
            return None
        cur = nxt
    return cur, _decode_key(split[-1])


def _add(container: Any, key: str, value: Any, path: str, where: str) -> None:
    if isinstance(container, dict):
        container[key] = value
        return
    if key == "-":
        container.append(value)
        return
    idx = _index(key, len(container), for_add=True)
    if idx is None:
        raise RenderError(
            f"JSON patch: error in add for path '{path}': invalid array index {key!r}", path=where
        )
    container.insert(idx, value)


def _get(container: Any, key: str) -> Any:
    if isinstance(container, dict):
        return container.get(key, MISSING)
    idx = _index(key, len(container))
    return MISSING if idx is None else container[idx]


def _remove(container: Any, key: str, path: str, where: str) -> Any:
    if isinstance(container, dict):
        if key not in container:
            raise RenderError(f"JSON patch: unable to remove nonexistent key {key!r} at '{path}'", path=where)
        return container.pop(key)
    idx = _index(key, len(container))
    if idx is None:
        raise RenderError(f"JSON patch: unable to access invalid index {key!r} at '{path}'", path=where)
    return container.pop(idx)


def apply_json6902(obj: dict[str, Any], ops: list[Any], *, where: str) -> dict[str, Any]:
    """Apply RFC 6902 operations to a copy of ``obj``.

    Raises:
        RenderError: naming ``where`` for malformed operations, missing paths and failed ``test`` ops.
    """
    doc: Any = _json_clone(obj)
    _annotations_through_json(obj, doc)
    for n, op in enumerate(ops):
        if not isinstance(op, dict):
            raise RenderError(f"JSON patch operation #{n} is not a mapping", path=where)
        kind = op.get("op")
        path = op.get("path")
        if not isinstance(kind, str):
            raise RenderError(f"JSON patch operation #{n} has no 'op'", path=where)
        if not isinstance(path, str):
            raise RenderError(f"JSON patch operation #{n} ({kind}) has no 'path'", path=where)
        check_pointer(path, "path", where=where)
        if "from" in op:
            check_pointer(op["from"], "from", where=where)
        value = _json_clone(op.get("value"))
        try:
            doc = _apply_op(doc, kind, path, op, value, where)
        except _IndexError as exc:
            raise RenderError(f"JSON patch: {kind} at {path!r}: {exc}", path=where) from None
    if not isinstance(doc, dict):
        raise RenderError("JSON patch turned the object into a non-mapping", path=where)
    return doc


_EXACT_FLOAT_INT = 2**53
_JSON_CHANGED = (dict, list, int, YamlTimestamp)


def _json_clone(value: Any) -> Any:
    """A copy of ``value`` as kustomize gets it back from a JSON patch: the patched JSON is decoded into Go
    ``interface{}`` values (kyaml/yaml/rnode.go ``UnmarshalJSON``), so every number becomes a float64 and
    integers beyond 2**53 lose their last digits, and timestamps are strings in RFC 3339 form."""
    if isinstance(value, dict):
        return {k: _json_clone(v) if isinstance(v, _JSON_CHANGED) else v for k, v in value.items()}
    if isinstance(value, list):
        return [_json_clone(v) if isinstance(v, _JSON_CHANGED) else v for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _EXACT_FLOAT_INT:
        return float(value)
    if isinstance(value, YamlTimestamp):
        return value.json_text()  # a time.Time in Go, a string in JSON
    return value


def _annotations_through_json(obj: dict[str, Any], doc: dict[str, Any]) -> None:
    """kustomize applies a JSON patch to the object's JSON form (api/filters/patchjson6902): annotations
    whose text reads as another type come back spelled as JSON spells that value (see
    :class:`reconciler.render.yamlio.YamlMap`)."""
    meta = obj.get("metadata")
    ann = meta.get("annotations") if isinstance(meta, dict) else None
    if not isinstance(ann, YamlMap) or not ann.typed:
        return
    new = doc["metadata"]["annotations"]
    for key, (text, value) in ann.typed.items():
        if new.get(key) == text:  # not set by a transformer since it was read
            new[key] = json_scalar_text(value)


def _missing(kind: str, what: str, path: str, where: str) -> RenderError:
    return RenderError(
        f"JSON patch: {kind} operation does not apply: doc is missing {what}: {path!r}", path=where
    )


def _apply_op(doc: Any, kind: str, path: str, op: dict[str, Any], value: Any, where: str) -> Any:
    """One RFC 6902 operation; returns the (possibly replaced) document."""
    if kind == "add":
        found = _find(doc, path)
        if found is None:
            raise _missing(kind, "path", path, where)
        _add(found[0], found[1], value, path, where)
    elif kind == "remove":
        found = _find(doc, path)
        if found is None:
            raise _missing(kind, "path", path, where)
        _remove(found[0], found[1], path, where)
    elif kind == "replace":
        if path == "":
            if not isinstance(value, (dict, list)):
                raise RenderError("JSON patch: replace operation value must be object or array", path=where)
            return value
        found = _find(doc, path)
        if found is None:
            raise _missing(kind, "path", path, where)
        container, key = found
        if isinstance(container, list):
            idx = _index(key, len(container))
            if idx is None:
                raise RenderError(
                    f"JSON patch: replace at {path!r}: invalid array index {key!r} "
                    f"(list of {len(container)})",
                    path=where,
                )
            container[idx] = value
        else:
            container[key] = value
    elif kind in ("move", "copy"):
        src = op.get("from")
        if not isinstance(src, str):
            raise RenderError(f"JSON patch: {kind} operation needs 'from'", path=where)
        found = _find(doc, src)
        if found is None:
            raise _missing(kind, "from path", src, where)
        moved = _get(found[0], found[1])
        if moved is MISSING and kind == "copy" and isinstance(found[0], dict):
            moved = None  # json-patch v4 reads a missing object key as null and copies that
        elif moved is MISSING:
            raise _missing(kind, "from path", src, where)
        if kind == "move":
            _remove(found[0], found[1], src, where)
        else:
            moved = copy.deepcopy(moved)
        dest = _find(doc, path)
        if dest is None:
            raise _missing(kind, "destination path", path, where)
        _add(dest[0], dest[1], moved, path, where)
    elif kind == "test":
        if path == "":
            current: Any = doc
        else:
            found = _find(doc, path)
            if found is None:
                raise RenderError(
                    f"JSON patch: test operation does not apply: is missing path: {path!r}", path=where
                )
            current = _get(found[0], found[1])
        if current is MISSING:
            current = None
        if not _json_equal(current, op.get("value")):
            raise RenderError(f"JSON patch: testing value {path!r} failed", path=where)
    else:
        raise RenderError(f"JSON patch: Unexpected kind: {kind}", path=where)
    return doc


def _json_equal(a: Any, b: Any) -> bool:
    if isinstance(a, bool) or isinstance(b, bool):
        return a is b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)
