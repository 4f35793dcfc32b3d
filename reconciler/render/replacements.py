"""The ``replacements`` transformer: copy a field value from a source object into target fields.

Follows kustomize v5's replacement filter (api/filters/replacement):

- ``source`` selects exactly one object by exact group/version/kind, name and namespace among current and
  earlier ids (``sourceValue``, a string, gives an untagged literal instead); its ``fieldPath`` (default
  ``metadata.name``) must hold a value: missing, null, ``{}`` and ``[]`` are refused (kyaml
  ``IsNilOrEmpty``), ``""``, ``0`` and ``false`` are values; ``options.delimiter``/``index`` pick one part
  of a delimited string;
- each target's ``select`` and ``reject`` match ids with anchored regular expressions (group, version, kind,
  name, namespace) plus label/annotation selectors; a target path is dot-separated, ``[field=regex]`` picks
  the list elements whose field matches the (unanchored) regular expression, a number picks by index, ``*``
  every element; with ``options.create`` missing fields are created;
- a scalar target keeps its type and receives the source's text (``options.delimiter``/``index`` replace,
  prepend (negative index) or append one part of it), which must read as that type (go-yaml's ``cannot
  decode`` error otherwise; a null target takes only null texts); a map or list target is replaced by the
  source value; a created field or list element takes the text untagged (read again as YAML).

Writing into JSON or YAML held inside a string field (kustomize 5.8's structured-data paths) is supported
(YAML: :mod:`reconciler.render.embedded`, which names what it does not model).
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from reconciler.render import embedded
from reconciler.render.errors import RenderError
from reconciler.render.patches import scalar_text
from reconciler.render.patterns import compile_pattern, search
from reconciler.render.resource import ResId, ResMap, Resource
from reconciler.render.selectors import matches_selector, selector_regex_matches
from reconciler.render.yamlio import YamlTimestamp, json_scalar_text, load_yaml_value, resolve_plain


def split_path(path: str) -> list[str]:
    """kyaml's ``SmarterPathSplitter`` on ``.``: ``[k=v]`` kept whole; ``[a.b]`` becomes the key ``a.b``."""
    raw = path.split(".")
    parts: list[str] = []
    for piece in raw:
        if parts and parts[-1].endswith("\\"):
            parts[-1] = parts[-1][:-1] + "." + piece
        else:
            parts.append(piece)
    out: list[str] = []
    i = 0
    while i < len(parts):
        elem = parts[i]
        if elem.startswith("[") and not elem.endswith("]"):
            j = i
            while j + 1 < len(parts) and not parts[j].endswith("]"):
                j += 1
                elem += "." + parts[j]
            i = j
        if elem.startswith("[") and elem.endswith("]") and "=" not in elem:
            elem = elem[1:-1]
        out.append(elem)
        i += 1
    return out


_LIST_INDEX = re.compile(r"^\[([^=\]]*)=(.*)\]$")


def _lookup(node: Any, parts: list[str]) -> Any:
    """kyaml ``Lookup`` for a source field: exact ``[k=v]`` element match, numeric index, plain fields."""
    for part in parts:
        if node is None:
            return None
        m = _LIST_INDEX.match(part)
        if m:
            if not isinstance(node, list):
                return None
            key, value = m.group(1), m.group(2)
            node = next(
                (
                    e
                    for e in node
                    if (isinstance(e, dict) and key and scalar_text(e.get(key)) == value and key in e)
                    or (not key and not isinstance(e, (dict, list)) and scalar_text(e) == value)
                ),
                None,
            )
        elif isinstance(node, list):
            if part.isdigit() and int(part) < len(node):
                node = node[int(part)]
            else:
                return None
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node


def _ids(res: Resource) -> list[ResId]:
    cur = res.cur_id()
    return [ResId(cur.group, cur.version, cur.kind, cur.name, cur.namespace), *res.prev_ids()]


def _source(resmap: ResMap, src: dict[str, Any], where: str) -> Resource:
    group, version = _gv(src)
    kind, name, ns = str(src.get("kind") or ""), str(src.get("name") or ""), str(src.get("namespace") or "")
    want = ResId(group, version, kind, name, ns)
    matches = []
    for res in resmap:
        for rid in _ids(res):
            if (
                (not name or name == rid.name)
                and (not ns or want.ns_equals(rid))
                and rid.gvk_selected_by(group, version, kind)
            ):
                matches.append(res)
                break
    if len(matches) > 1:
        raise RenderError(f"multiple matches for replacement source selector {_brief(src)}", path=where)
    if not matches:
        raise RenderError(f"nothing selected by replacement source selector {_brief(src)}", path=where)
    return matches[0]


def _gv(sel: dict[str, Any]) -> tuple[str, str]:
    return str(sel.get("group") or ""), str(sel.get("version") or "")


def _brief(sel: dict[str, Any]) -> str:
    return ", ".join(f"{k}={sel[k]}" for k in ("group", "version", "kind", "name", "namespace") if sel.get(k))


def _source_value(resmap: ResMap, entry: dict[str, Any], where: str) -> Any:
    if entry.get("sourceValue") is not None and entry.get("source") is not None:
        raise RenderError("replacement: value and resource selectors are mutually exclusive", path=where)
    if entry.get("sourceValue") is not None:
        # an untagged scalar (kyaml NewScalarRNode): where it replaces a whole node, its text is read
        # again as YAML ("" and "~" become null, "0" a number)
        text = str(entry["sourceValue"])
        return _Scalar(text, resolve_plain(text))
    src = entry.get("source")
    if not isinstance(src, dict):
        raise RenderError("replacements must specify a source and at least one target", path=where)
    res = _source(resmap, src, where)
    fpath = str(src.get("fieldPath") or "metadata.name")
    value = _lookup(res.obj, split_path(fpath))
    if value is None or (isinstance(value, (dict, list)) and not value):
        # kyaml IsNilOrEmpty: missing, null, {} and [] are refused; "", 0 and false are values
        raise RenderError(f"fieldPath `{fpath}` is missing for replacement source {_brief(src)}", path=where)
    opts = src.get("options") or {}
    delim = opts.get("delimiter")
    if delim:
        if isinstance(value, (dict, list)):
            raise RenderError("delimiter option can only be used with scalar nodes", path=where)
        pieces = scalar_text(value).split(str(delim))
        index = _int_option(opts, where)
        if index >= len(pieces) or index < 0:
            raise RenderError(
                f"options.index {index} is out of bounds for value {scalar_text(value)}", path=where
            )
        # the piece keeps the source node's tag (getRefinedValue copies the node and sets its text)
        return _Scalar(pieces[index], _typed(pieces[index], value, where))
    return copy.deepcopy(value)


class _Scalar:
    """A source value given as text: ``text`` is what a scalar target receives, ``original`` the value that
    takes the place of a map or list target."""

    def __init__(self, text: str, original: Any) -> None:
        self.text = text
        self.original = original


def _int_option(opts: dict[str, Any], where: str) -> int:
    index = opts.get("index", 0)
    if isinstance(index, bool) or not isinstance(index, int):
        raise RenderError("replacement options.index must be an integer", path=where)
    return index


def _as_text(value: Any) -> str:
    return value.text if isinstance(value, _Scalar) else scalar_text(value)


def _typed(text: str, like: Any, where: str) -> Any:
    """``text`` read with the YAML type of ``like``: kustomize sets only the text of a scalar target, which
    keeps its tag, and go-yaml refuses a text of another type when the object is converted to JSON
    (go.yaml.in/yaml/v3 resolve.go: any text is a ``!!str``, an integer text is accepted as a ``!!float``).

    Raises:
        RenderError: ``cannot decode !!<type of text> `text` as a !!<tag of the target>``.
    """
    resolved = resolve_plain(text) if text else None
    if isinstance(like, YamlTimestamp):
        if isinstance(resolved, YamlTimestamp):
            return resolved
    elif isinstance(like, str):
        return text
    if like is None:
        if resolved is None:
            return None
    elif isinstance(like, bool):
        if isinstance(resolved, bool):
            return resolved
    elif isinstance(like, int):
        if isinstance(resolved, int) and not isinstance(resolved, bool):
            return resolved
    elif isinstance(like, float) and isinstance(resolved, (int, float)) and not isinstance(resolved, bool):
        return float(resolved)
    raise RenderError(f"cannot decode {_tag(resolved)} `{text}` as a {_tag(like)}", path=where)


def _tag(value: Any) -> str:
    """go-yaml's short tag for a resolved plain scalar."""
    if value is None:
        return "!!null"
    if isinstance(value, bool):
        return "!!bool"
    if isinstance(value, int):
        return "!!int"
    if isinstance(value, float):
        return "!!float"
    return "!!timestamp" if isinstance(value, YamlTimestamp) else "!!str"


def _set_field(container: Any, key: Any, value: Any, opts: dict[str, Any], where: str, created: bool) -> None:
    target = container[key]
    delim = opts.get("delimiter")
    if delim:
        if isinstance(target, (dict, list)):
            raise RenderError("delimiter option can only be used with scalar nodes", path=where)
        parts = ("" if target is _CREATED else scalar_text(target)).split(str(delim))
        index = _int_option(opts, where)
        text = _as_text(value)
        if index < 0:
            parts.insert(0, text)
        elif index >= len(parts):
            parts.append(text)
        else:
            parts[index] = text
        value = _Scalar(str(delim).join(parts), value.original if isinstance(value, _Scalar) else value)
    if isinstance(target, (dict, list)) and not created:
        container[key] = copy.deepcopy(value.original if isinstance(value, _Scalar) else value)
        return
    if isinstance(value, (dict, list)) and created:
        container[key] = copy.deepcopy(value)
        return
    text = _as_text(value)
    container[key] = resolve_plain(text) if created else _typed(text, target, where)


class _Missing:
    pass


class _Appended:
    """The ``create`` of a search repeated after appending a list element: creates below, not another
    element at this level."""

    def __init__(self, create: Any) -> None:
        self.create = create


_CREATED = _Missing()


def _match_targets(
    node: Any, parts: list[str], create: Any, out: list[tuple[Any, Any, bool]], where: str
) -> None:
    """kyaml ``PathMatcher`` collecting (container, key, created) of every field ``parts`` reaches."""
    if not parts:
        return
    part = parts[0]
    rest = parts[1:]
    last = not rest
    if part.lstrip("-").isdigit():
        if not isinstance(node, list):
            raise RenderError(f"replacement target path segment {part!r} expects a list", path=where)
        idx = int(part)
        created = False
        if idx == len(node) and create is not None:
            node.append(_new_node(rest[0] if rest else "", create))
            created = True
        if idx >= len(node) or idx < 0:
            raise RenderError(f"index {idx} specified but only {len(node)} elements found", path=where)
        _descend(node, idx, rest, create, out, where, created)
        return
    m = _LIST_INDEX.match(part)
    if m:
        if not isinstance(node, list):
            raise RenderError(f"replacement target path segment {part!r} expects a list", path=where)
        field, pattern = m.group(1), m.group(2)
        compile_pattern(pattern, where=where)
        again = isinstance(create, _Appended)
        if isinstance(create, _Appended):
            create = create.create
        found = False
        for i, elem in enumerate(node):
            if field:
                if not isinstance(elem, dict) or field not in elem or elem[field] is None:
                    continue
                if not search(pattern, scalar_text(elem[field]).strip(), where=where):
                    continue
                found = True
                if last:
                    out.append((node, i, False))
                else:
                    _match_targets(elem, rest, create, out, where)
            else:
                if isinstance(elem, (dict, list)) or not search(
                    pattern, scalar_text(elem).strip(), where=where
                ):
                    continue
                found = True
                # an element appended just before is an untagged scalar: the text it receives is read again
                out.append((node, i, again and i == len(node) - 1))
        if not found and create is not None and not again:
            # kyaml PathMatcher.doSeq appends an element holding the match text and searches again, still
            # creating what the rest of the path needs (a text its own pattern does not match makes kustomize
            # recurse without end; here the search simply ends)
            node.append({field: resolve_plain(pattern)} if field else resolve_plain(pattern))
            _match_targets(node, parts, _Appended(create), out, where)
        return
    if part == "*":
        if not isinstance(node, list):
            raise RenderError("replacement target wildcard '*' expects a list", path=where)
        for i in range(len(node)):
            _descend(node, i, rest, create, out, where, False)
        return
    if not isinstance(node, dict):
        raise RenderError(f"replacement target path segment {part!r} expects a mapping", path=where)
    created = False
    if part not in node:
        if create is None:
            return
        node[part] = _new_node(rest[0] if rest else "", create)
        created = True
    _descend(node, part, rest, create, out, where, created)


def _new_node(next_part: str, create: Any) -> Any:
    if next_part == "":
        return {} if create == "map" else [] if create == "seq" else _CREATED
    if next_part.lstrip("-").isdigit() or _LIST_INDEX.match(next_part) or next_part == "*":
        return []
    return {}


def _descend(
    container: Any,
    key: Any,
    rest: list[str],
    create: Any,
    out: list[tuple[Any, Any, bool]],
    where: str,
    created: bool,
) -> None:
    value = container[key]
    if not rest:
        out.append((container, key, created or value is _CREATED))
        return
    if value is None or isinstance(value, (str, int, float, bool)):
        # kyaml PathMatcher.handleStructuredDataInScalar: the path goes on into the YAML or JSON the text
        # holds, but in a copy: what is set there is lost (setValueInStructuredData writes such fields)
        inner = _parse_inner(value, where)
        if isinstance(inner, (dict, list)):
            _match_targets(inner, rest, create, out, where)
        return
    _match_targets(value, rest, create, out, where)


def _parse_inner(value: Any, where: str) -> Any:
    """The YAML (or JSON) a scalar's text holds, ``None`` when it does not parse."""
    try:
        return load_yaml_value(scalar_text(value), path=where)
    except RenderError:
        return None


def _structured(
    obj: Any, parts: list[str], value: Any, opts: dict[str, Any], create: Any, where: str
) -> bool:
    """kustomize 5.8's ``setValueInStructuredData`` (api/filters/replacement): when a scalar on the way holds
    JSON or YAML and the rest of the path reaches fields in it, set them there and write the text back.
    JSON text is written again as Go's ``encoding/json`` does (indented by two spaces when the text had
    line breaks and double spaces, else compact; keys sorted); YAML text as kyaml writes it
    (:mod:`reconciler.render.embedded`).

    Returns:
        Whether the path was handled this way (else kustomize follows the path as usual).
    """
    if len(parts) < 2:
        return False
    tree: Any = None
    problem: str | None = None
    for i in range(1, len(parts)):
        holder = _lookup_holder(obj, parts[:i])
        if holder is None or isinstance(holder[0][holder[1]], (dict, list)):
            continue
        container, key = holder
        text = scalar_text(container[key])
        is_json = text.strip()[:1] in ("{", "[")
        if is_json:
            inner = _parse_inner(container[key], where)
            if inner is None and text.strip() not in ("", "~", "null", "Null", "NULL"):
                continue  # not YAML: try a longer prefix
            break
        parsed = embedded.parse_embedded_yaml(text)
        if parsed is None:
            continue
        tree, problem = parsed
        break
    else:
        return False
    found: list[tuple[Any, Any, bool]] = []
    if not is_json:
        if not isinstance(tree, (dict, list)):
            return False
        try:
            _match_targets(tree, parts[i:], create, found, where)
        except RenderError:
            return False
        if not found:
            return False
        held = ".".join(parts[:i])
        if problem:
            raise RenderError(
                f"replacement into the YAML held in field {held!r}: {problem} in that YAML are not "
                "supported (kustomize keeps them as written)",
                path=where,
            )
        source = value.original if isinstance(value, _Scalar) else value
        if isinstance(source, (dict, list)):
            raise RenderError(
                f"replacement of a mapping or sequence into the YAML held in field {held!r} is not "
                "supported (kustomize writes the source's nodes in the styles of the source's file)",
                path=where,
            )
        for fcontainer, fkey, created in found:
            embedded.set_embedded(fcontainer, fkey, copy.deepcopy(source), created)
        container[key] = embedded.dump_embedded_yaml(tree)
        return True
    if not isinstance(inner, (dict, list)):
        return False
    try:
        _match_targets(inner, parts[i:], create, found, where)
    except RenderError:
        return False
    if not found:
        return False
    plain = {k: v for k, v in opts.items() if k != "delimiter"}
    for fcontainer, fkey, created in found:
        _set_field(fcontainer, fkey, value, plain, where, created)
    container[key] = _go_json_text(inner, pretty="\n" in text and "  " in text)
    return True


def _lookup_holder(obj: Any, parts: list[str]) -> tuple[Any, Any] | None:
    """kyaml ``Lookup`` of ``parts``, as the container and key of the field found."""
    node: Any = obj
    holder: tuple[Any, Any] | None = None
    for part in parts:
        m = _LIST_INDEX.match(part)
        if m and isinstance(node, list):
            field, want = m.group(1), m.group(2)
            idx = next(
                (
                    n
                    for n, e in enumerate(node)
                    if (field and isinstance(e, dict) and field in e and scalar_text(e[field]) == want)
                    or (not field and not isinstance(e, (dict, list)) and scalar_text(e) == want)
                ),
                None,
            )
            if idx is None:
                return None
            holder = (node, idx)
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            holder = (node, int(part))
        elif isinstance(node, dict) and part in node:
            holder = (node, part)
        else:
            return None
        held: Any = holder[0]
        node = held[holder[1]]
    return holder


def _go_json_text(value: Any, *, pretty: bool) -> str:
    """``json.Marshal`` (or ``MarshalIndent`` with two spaces) of a value decoded by go-yaml: sorted keys,
    Go's float spelling, ``<``, ``>``, ``&``, U+2028 and U+2029 escaped."""
    floats: list[str] = []

    def conv(v: Any) -> Any:
        if isinstance(v, dict):
            return {str(k): conv(x) for k, x in v.items()}
        if isinstance(v, list):
            return [conv(x) for x in v]
        if isinstance(v, float):
            floats.append(json_scalar_text(v))
            return f"\x00{len(floats) - 1}\x00"
        if isinstance(v, YamlTimestamp):
            return v.json_text()
        return v

    text = json.dumps(
        conv(value),
        sort_keys=True,
        ensure_ascii=False,
        indent=2 if pretty else None,
        separators=(",", ": ") if pretty else (",", ":"),
    )
    for old, new in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028")):
        text = text.replace(old, new)
    text = text.replace("\u2029", "\\u2029")
    for n, ftext in enumerate(floats):
        text = text.replace(f'"\\u0000{n}\\u0000"', ftext)
    return text


def apply(resmap: ResMap, entries: list[tuple[Any, str]]) -> None:
    """Apply replacement entries in order; each entry comes with the file it was written in.

    Raises:
        RenderError: naming that file when a source matches no or several objects, its field is missing, a
            target field is missing (without ``create``), or a value does not fit the target's type.
    """
    for entry, where in entries:
        if not isinstance(entry, dict):
            raise RenderError("replacement entries must be mappings", path=where)
        targets = entry.get("targets")
        if (entry.get("source") is None and entry.get("sourceValue") is None) or targets is None:
            raise RenderError("replacements must specify a source and at least one target", path=where)
        value = _source_value(resmap, entry, where)
        if not isinstance(targets, list):
            raise RenderError("replacement targets must be a list", path=where)
        for target in targets:
            if not isinstance(target, dict) or not isinstance(target.get("select"), dict):
                raise RenderError("target must specify resources to select", path=where)
            sel = target["select"]
            rejects = [r for r in (target.get("reject") or []) if isinstance(r, dict)]
            opts = target.get("options") or {}
            create = None
            if opts.get("create"):
                create = "map" if isinstance(value, dict) else "seq" if isinstance(value, list) else "scalar"
            paths = target.get("fieldPaths") or ["metadata.name"]
            for res in resmap:
                if not matches_selector(res, sel, labels_only=True, where=where):
                    continue
                if any(
                    (r.get("annotationSelector") or r.get("labelSelector"))
                    and matches_selector(res, r, labels_only=True, where=where)
                    for r in rejects
                ):
                    continue
                ids = _ids(res)
                if any(
                    _rid_fields(r) and any(selector_regex_matches(r, i, where=where) for i in ids)
                    for r in rejects
                ):
                    continue
                if not any(selector_regex_matches(sel, i, where=where) for i in ids):
                    continue
                for fpath in paths:
                    parts = split_path(str(fpath))
                    if _structured(res.obj, parts, value, opts, create, where):
                        continue
                    found: list[tuple[Any, Any, bool]] = []
                    _match_targets(res.obj, parts, create, found, where)
                    if not found:
                        verb = "find or create" if create is not None else "find"
                        raise RenderError(
                            f"unable to {verb} field {str(fpath)!r} in replacement target {res.cur_id()}",
                            path=where,
                        )
                    for container, key, created in found:
                        _set_field(container, key, value, opts, where, created)


def _rid_fields(sel: dict[str, Any]) -> bool:
    return any(sel.get(k) for k in ("group", "version", "kind", "name", "namespace"))


def load_replacement_file(text: bytes, *, path: str) -> list[dict[str, Any]]:
    """Entries of a ``replacements: - path: FILE`` file (one replacement mapping or a list of them).

    Raises:
        RenderError: when the file holds neither, or an entry has unknown fields.
    """
    value = load_yaml_value(text, path=path, yaml11=True)
    if isinstance(value, dict):
        entries = [value]
    elif isinstance(value, list) and all(isinstance(v, dict) for v in value):
        entries = list(value)
    else:
        raise RenderError(
            "unsupported replacement type encountered within replacement path (expected a mapping or a list "
            "of mappings)",
            path=path,
        )
    for entry in entries:
        check_entry(entry, where=path, strict=False)
    return entries


_ENTRY_FIELDS = {"source", "sourceValue", "targets", "path"}


def check_entry(entry: Any, *, where: str, strict: bool = True) -> None:
    """Validate the shape of one replacement entry. ``strict=False`` ignores unknown fields, as kustomize
    reads replacement files (``yaml.Unmarshal``, api/internal/builtins/ReplacementTransformer.go); the
    entries of a kustomization are read strictly.

    Raises:
        RenderError: for a non-mapping entry, unknown fields, or a source/targets of the wrong type.
    """
    if not isinstance(entry, dict):
        raise RenderError("replacement entries must be mappings", path=where)
    unknown = set(entry) - _ENTRY_FIELDS
    if unknown and strict:
        raise RenderError(f"replacement: unknown field(s) {sorted(unknown)}", path=where)
    value = entry.get("sourceValue")
    if value is not None and not isinstance(value, str):
        raise RenderError(
            f"json: cannot unmarshal {_json_type(value)} into Go struct field "
            "ReplacementField.replacements.Replacement.sourceValue of type string",
            path=where,
        )
    if entry.get("source") is not None and not isinstance(entry["source"], dict):
        raise RenderError("replacement source must be a mapping", path=where)
    if entry.get("targets") is not None and not isinstance(entry["targets"], list):
        raise RenderError("replacement targets must be a list", path=where)
    _check_options((entry.get("source") or {}).get("options"), "source", where)
    for target in entry.get("targets") or []:
        if isinstance(target, dict):
            _check_options(target.get("options"), "targets", where)


_OPTION_TYPES = {"create": ("bool", bool), "delimiter": ("string", str), "index": ("int", int)}


def _check_options(opts: Any, part: str, where: str) -> None:
    """The ``options`` of a source or target decode into kustomize's ``FieldOptions`` through JSON: a value
    of another type is refused (an integral float is an integer, a null the zero value)."""
    if not isinstance(opts, dict):
        return
    for key, (go_type, want) in _OPTION_TYPES.items():
        value = opts.get(key)
        if value is None:
            continue
        if want is int and isinstance(value, float) and value.is_integer():
            opts[key] = int(value)
            continue
        if isinstance(value, want) and (want is bool or not isinstance(value, bool)):
            continue
        raise RenderError(
            f"json: cannot unmarshal {_json_type(value)} into Go struct field "
            f"FieldOptions.replacements.Replacement.{part}.options.{key} of type {go_type}",
            path=where,
        )


def _json_type(value: Any) -> str:
    """The JSON type name Go's ``encoding/json`` reports for a value it cannot decode into a string."""
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "object" if isinstance(value, dict) else "array" if isinstance(value, list) else "string"
