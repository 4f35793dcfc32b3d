"""``vars:`` (kustomize's deprecated variables): ``$(NAME)`` in chosen fields becomes a field of an object.

Follows kustomize v5.8 (sigs.k8s.io/kustomize/api v0.21):

- parsing (api/types/var.go, api/types/kustomization.go ``Unmarshal``): each entry has ``name``, ``objref``
  (``apiVersion``, ``group``, ``version``, ``kind``, ``name``, ``namespace``) and ``fieldref``
  (``fieldPath``); keys match without regard to case and unknown keys are refused, as Go's JSON decoder
  does; ``objref.apiVersion`` overrides the group and version (``Target.GVK``); ``fieldPath`` defaults to
  ``metadata.name`` (``Var.Defaulting``);
- declaring (api/internal/accumulator/resaccumulator.go ``MergeVars``, called by
  api/internal/target/kusttarget.go after the kustomization's transformers): the objref is matched against
  every current and earlier id of the accumulated objects, by exact group, version, kind and name, plus the
  effective namespace when the objref names one; two matches are an error, one match records the var's name
  on the object (it travels with the object, also through generator merges), none is only an error when the
  var is resolved; a name already in the var set is an error (``VarSet.Merge``); a base's vars join its
  parent's set (``MergeAccumulator``), a component's are added to the set it is built into;
- resolving (``ResolveVars`` after hashes and name references, at the top only): vars in name order, each
  read from the first object carrying its name at ``fieldPath`` (kyaml ``RNode.GetFieldValue``:
  ``SmarterPathSplitter`` on ``.``, ``a[0]`` as ``a.0``, ``[k=v]`` element matches, ``-`` for the last
  element); then every field named by the ``varReference`` field specs (api/filters/refvar, walked like
  api/filters/fieldspec, nothing created) is expanded: strings, the string values of a mapping, the items of
  a list (which must all be strings);
- expansion (api/filters/refvar/expand.go ``DoReplacements``): ``$(NAME)`` of a known var with a string,
  number or boolean value is replaced, a field that is exactly ``$(NAME)`` takes the value with its type;
  ``$$`` becomes ``$``; unknown names, values that are mappings or lists, and an unclosed ``$(`` stay as
  written.

Not reproduced: kustomize's byte-wise handling of a ``$`` followed by a non-ASCII character (it splits the
UTF-8 sequence), and the warning about vars never used.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from reconciler.render.errors import RenderError
from reconciler.render.fieldspecs import FieldSpec
from reconciler.render.patches import scalar_text
from reconciler.render.resource import ResMap, Resource, split_api_version

DEFAULT_FIELD_PATH = "metadata.name"

#: JSON key (lowercase) -> (field name, Go struct path, Go type) for the fields of one var
_VAR_FIELDS = {
    "name": ("name", "Var.vars.name", "string"),
    "objref": ("objref", "Var.vars.objref", "types.Target"),
    "fieldref": ("fieldref", "Var.vars.fieldref", "types.FieldSelector"),
}
_TARGET_FIELDS = {
    "apiversion": ("apiVersion", "Target.vars.objref.apiVersion", "string"),
    "group": ("group", "Target.vars.objref.Gvk.group", "string"),
    "version": ("version", "Target.vars.objref.Gvk.version", "string"),
    "kind": ("kind", "Target.vars.objref.Gvk.kind", "string"),
    "name": ("name", "Target.vars.objref.name", "string"),
    "namespace": ("namespace", "Target.vars.objref.namespace", "string"),
}
_SELECTOR_FIELDS = {"fieldpath": ("fieldPath", "FieldSelector.vars.fieldref.fieldPath", "string")}


@dataclass(frozen=True)
class Var:
    """One ``vars:`` entry (``types.Var``) and the kustomization file declaring it."""

    name: str
    kind: str
    obj_name: str
    where: str
    api_version: str = ""
    group: str = ""
    version: str = ""
    namespace: str = ""
    field_path: str = ""

    def with_gvk(self) -> Var:
        """``Target.GVK``: ``apiVersion`` (``group/version`` or ``version``) overrides group and version."""
        group, version = self.group, self.version
        if self.api_version:
            parts = self.api_version.split("/")
            if len(parts) == 2:
                group, version = parts
            elif len(parts) == 1:
                version = parts[0]
        return replace(self, group=group, version=version)

    def defaulted(self) -> Var:
        """``Var.Defaulting``: the group/version applied and ``metadata.name`` for an empty field path."""
        return replace(self.with_gvk(), field_path=self.field_path or DEFAULT_FIELD_PATH)

    def describe(self) -> str:
        """The var as kustomize prints it in errors (Go's ``%v`` of ``types.Var``)."""
        gvk = ".".join([self.kind or "[noKind]", self.version or "[noVer]", self.group or "[noGrp]"])
        return f"{{{self.name} {gvk} {{{self.field_path}}}}}"

    def matches(self, group: str, version: str, kind: str, name: str, effective_namespace: str) -> bool:
        """``MergeVars``' id match (call on :meth:`with_gvk`): exact group/version/kind/name, and the
        effective namespace when the objref names a namespace."""
        if (self.group, self.version, self.kind, self.obj_name) != (group, version, kind, name):
            return False
        # an objref's id is never cluster-scoped: its effective namespace is the one it names
        return not self.namespace or self.namespace == effective_namespace


#: the var set of an accumulation: name -> defaulted var, in the order declared
VarSet = dict[str, Var]


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "string"


def _decode(raw: dict[str, Any], fields: dict[str, tuple[str, str, str]], where: str) -> dict[str, Any]:
    """Go's JSON decoding of one object into a struct: case-insensitive keys, unknown keys refused, string
    fields type-checked (null leaves the zero value)."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        spec = fields.get(str(key).lower())
        if spec is None:
            raise RenderError(f'invalid Kustomization: json: unknown field "{key}"', path=where)
        name, go_path, go_type = spec
        if value is None:
            out.pop(name, None)
            continue
        want_object = go_type.startswith("types.")
        if (not want_object and not isinstance(value, str)) or (want_object and not isinstance(value, dict)):
            raise RenderError(
                f"invalid Kustomization: json: cannot unmarshal {_json_type(value)} into Go struct field "
                f"{go_path} of type {go_type}",
                path=where,
            )
        out[name] = value
    return out


def parse_vars(raw: list[Any] | None, *, where: str) -> list[Var]:
    """The ``vars:`` of a kustomization, as kustomize decodes them.

    Raises:
        RenderError: naming ``where`` for unknown keys and values of the wrong type.
    """
    out: list[Var] = []
    for entry in raw or []:
        if entry is None:
            entry = {}
        if not isinstance(entry, dict):
            raise RenderError(
                f"invalid Kustomization: json: cannot unmarshal {_json_type(entry)} into Go struct field "
                "Kustomization.vars of type types.Var",
                path=where,
            )
        fields = _decode(entry, _VAR_FIELDS, where)
        target = _decode(fields.get("objref") or {}, _TARGET_FIELDS, where)
        selector = _decode(fields.get("fieldref") or {}, _SELECTOR_FIELDS, where)
        out.append(
            Var(
                name=fields.get("name", ""),
                kind=target.get("kind", ""),
                obj_name=target.get("name", ""),
                where=where,
                api_version=target.get("apiVersion", ""),
                group=target.get("group", ""),
                version=target.get("version", ""),
                namespace=target.get("namespace", ""),
                field_path=selector.get("fieldPath", ""),
            )
        )
    return out


def merge_vars(resmap: ResMap, varset: VarSet, incoming: list[Var], *, where: str) -> None:
    """kustomize's ``ResAccumulator.MergeVars``: record each var on the one object its objref matches, then
    add the vars to ``varset``.

    Raises:
        RenderError: naming ``where`` when an objref matches several objects or a name is already declared.
    """
    for var in incoming:
        target = var.with_gvk()
        matched = [
            res
            for res in resmap.items
            if any(
                target.matches(rid.group, rid.version, rid.kind, rid.name, rid.effective_namespace)
                for rid in res.all_ids()
            )
        ]
        if len(matched) > 1:
            raise RenderError(
                f"merging vars: found {len(matched)} resId matches for var {target.describe()} (unable to "
                "disambiguate)",
                path=where,
            )
        if matched:
            matched[0].ref_var_names.append(var.name)
    for var in incoming:
        _add(varset, var.defaulted(), where, "merging vars")


def merge_var_sets(varset: VarSet, other: VarSet, *, directory: str, where: str) -> None:
    """Add the vars of the base built from ``directory`` to its parent's set (``VarSet.MergeSet``).

    Raises:
        RenderError: naming ``where`` (the base's kustomization file) when a name is already declared.
    """
    for var in other.values():
        _add(varset, var, where, f"recursed merging from path '{directory}'")


def _add(varset: VarSet, var: Var, where: str, context: str) -> None:
    known = varset.get(var.name)
    if known is not None:
        also = f" (also declared in {known.where})" if known.where != var.where else ""
        raise RenderError(f"{context}: var '{var.name}' already encountered{also}", path=where)
    varset[var.name] = var


# -- resolving ----------------------------------------------------------------------------------------


_INT = re.compile(r"[+-]?[0-9]+")
_SLICE_INDEX = re.compile(r"^(.*)\[([0-9]+)\]$")
_MISSING = object()


def split_field_path(path: str) -> list[str]:
    """kyaml's ``SmarterPathSplitter(path, ".")`` then ``convertSliceIndex`` and ``cleanPath``."""
    raw = path.split(".")
    if len(raw) > 1 and raw[0] == "":
        raw = raw[1:]
    split: list[str] = [raw[0]]
    for piece in raw[1:]:
        if split[-1].endswith("\\"):
            split[-1] = split[-1][:-1] + "." + piece
        else:
            split.append(piece)
    smarter: list[str] = []
    i = 0
    while i < len(split):
        elem = split[i]
        if elem.startswith("[") and not elem.endswith("]"):
            bracketed = [elem]
            while i < len(split) - 1:
                i += 1
                bracketed.append(split[i])
                if split[i].endswith("]"):
                    break
            joined = ".".join(bracketed)
            smarter.append(joined if "=" in joined else joined.strip("[]"))
        else:
            smarter.append(elem)
        i += 1
    out: list[str] = []
    for part in smarter:
        m = _SLICE_INDEX.match(part) if part.endswith("]") else None
        if m is None:
            out.append(part)
            continue
        if m.group(1):
            out.append(m.group(1))
        out.append(m.group(2))
    return [p.strip() for p in out if p.strip()]


def field_value(obj: dict[str, Any], path: str) -> Any:
    """The value at a var's field path (kyaml ``RNode.GetFieldValue``), or ``_MISSING`` when kyaml finds
    nothing or fails (kustomize reports both the same way)."""
    node: Any = obj
    for part in split_field_path(path):
        if _INT.fullmatch(part):
            index = int(part)
            if index < 0 or not isinstance(node, list):
                return _MISSING
            if index >= len(node):
                return _MISSING
            node = node[index]
        elif part == "-":
            if not isinstance(node, list) or not node:
                return _MISSING
            node = node[-1]
        elif part == "*":
            return _MISSING
        elif part.startswith("[") and part.endswith("]"):
            key, eq, value = part[1:-1].partition("=")
            if not eq or not isinstance(node, list):
                return _MISSING
            if key:
                node = next(
                    (
                        e
                        for e in node
                        if isinstance(e, dict)
                        and key in e
                        and not isinstance(e[key], (dict, list))
                        and scalar_text(e[key]) == value
                    ),
                    _MISSING,
                )
            else:
                node = next((e for e in node if scalar_text(e) == value), _MISSING)
            if node is _MISSING:
                return _MISSING
        elif isinstance(node, dict):
            if part not in node:
                return _MISSING
            node = node[part]
        else:
            return _MISSING
    if isinstance(node, int) and not isinstance(node, bool) and not -(2**63) <= node < 2**63:
        return _MISSING  # strconv.Atoi fails
    if node is None:
        return "null"
    return node


def _go_value_text(value: Any) -> str:
    """Go's ``fmt.Sprintf("%v", value)`` for a string, boolean, integer or float."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float_g(value)
    return str(value)


def _go_float_g(value: float) -> str:
    """``strconv.FormatFloat(value, 'g', -1, 64)`` (what ``%v`` prints for a float64)."""
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    sign, digits, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
    assert isinstance(exponent, int)
    ds = "".join(map(str, digits)) or "0"
    if ds == "0":
        return "-0" if sign else "0"
    point = len(ds) + exponent
    exp = point - 1
    neg = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if point <= 0:
        return f"{neg}0.{'0' * -point}{ds}"
    if point >= len(ds):
        return f"{neg}{ds}{'0' * (point - len(ds))}"
    return f"{neg}{ds[:point]}.{ds[point:]}"


def _read_name(rest: str) -> tuple[str, bool, int]:
    """``tryReadVariableName``: what follows a ``$`` (text, whether it names a var, characters used)."""
    first = rest[0]
    if first == "$":
        return "$", False, 1
    if first == "(":
        close = rest.find(")", 1)
        if close >= 0:
            return rest[1:close], True, close + 1
        return "$(", False, 1
    return "$" + first, False, 1


def expand(text: str, lookup: Callable[[str], Any]) -> Any:
    """``DoReplacements``: expand ``$(NAME)`` references in ``text``; a text that is exactly one reference
    becomes the looked-up value itself (which may be a number or a boolean)."""
    if "$" not in text:
        return text
    out: list[str] = []
    checkpoint = 0
    cursor = 0
    while cursor < len(text):
        if text[cursor] == "$" and cursor + 1 < len(text):
            out.append(text[checkpoint:cursor])
            read, is_var, advance = _read_name(text[cursor + 1 :])
            if is_var:
                mapped = lookup(read)
                if text == f"$({read})":
                    return mapped
                out.append(_go_value_text(mapped))
            else:
                out.append(read)
            cursor += advance
            checkpoint = cursor + 1
        cursor += 1
    return "".join(out) + text[checkpoint:]


class _Fail(Exception):
    pass


def _object_id(obj: dict[str, Any]) -> str:
    group, version = split_api_version(str(obj.get("apiVersion") or ""))
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name, ns = str((meta or {}).get("name") or ""), str((meta or {}).get("namespace") or "")
    gvk = ".".join([str(obj.get("kind") or "") or "[noKind]", version or "[noVer]", group or "[noGrp]"])
    return f"{gvk}/{name or '[noName]'}.{ns or '[noNs]'}"


def _substitute(res: Resource, spec: FieldSpec, lookup: Callable[[str], Any]) -> None:
    """Expand references in the fields ``spec`` names in ``res`` (api/filters/refvar ``Filter``)."""
    obj = res.obj
    group, version = split_api_version(str(obj.get("apiVersion") or ""))
    kind = obj.get("kind")
    if not spec.matches(group, version, kind if isinstance(kind, str) else ""):
        return
    segments = spec.segments()

    def set_value(container: Any, key: Any) -> None:
        node = container[key]
        if node is None:
            return
        if isinstance(node, str):
            container[key] = expand(node, lookup)
        elif isinstance(node, dict):
            for k, v in node.items():
                if isinstance(v, str):
                    node[k] = expand(v, lookup)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                if not isinstance(item, str):
                    raise _Fail("invalid value type expect a string")
                node[i] = expand(item, lookup)

    def walk(container: Any, key: Any, idx: int) -> None:
        node = container[key]
        if idx == len(segments):
            set_value(container, key)
            return
        if node is None:
            return
        if isinstance(node, list):
            for i in range(len(node)):
                try:
                    walk(node, i, idx)
                except _Fail as exc:
                    raise _Fail(f"visit traversal on path: [{' '.join(segments[idx:])}]: {exc}") from None
            return
        if not isinstance(node, dict):
            raise _Fail("expected sequence or mapping node")
        name = segments[idx].removesuffix("[]")
        if not name:
            raise _Fail("cannot set or create an empty field name")
        if name in node:
            walk(node, name, idx + 1)

    try:
        walk([obj], 0, 0)
    except _Fail as exc:
        raise RenderError(
            f"considering field '{spec.path}' of object {_object_id(obj)}: {exc}", path=res.source or None
        ) from None


def resolve(resmap: ResMap, varset: VarSet, specs: list[FieldSpec]) -> None:
    """kustomize's ``ResAccumulator.ResolveVars``: read every var's value, then expand ``$(NAME)`` in the
    fields named by ``specs`` (the ``varReference`` table) of every object.

    Raises:
        RenderError: naming the var's kustomization file when no object carries the var or its field is
            missing; naming the object's file when a list field holds a value that is not a string.
    """
    if not varset:
        return
    values: dict[str, Any] = {}
    for name in sorted(varset):
        var = varset[name]
        holder = next((r for r in resmap.items if name in r.ref_var_names), None)
        if holder is None:
            raise RenderError(
                f"var '{var.describe()}' cannot be mapped to a field in the set of known resources",
                path=var.where,
            )
        value = field_value(holder.obj, var.field_path)
        if value is _MISSING:
            raise RenderError(
                f"field specified in var '{var.describe()}' not found in corresponding resource",
                path=var.where,
            )
        values[name] = value

    def lookup(key: str) -> Any:
        value = values.get(key)
        if isinstance(value, (str, int, float)):
            return value
        return f"$({key})"

    for res in resmap.items:
        for spec in specs:
            _substitute(res, spec, lookup)


__all__ = [
    "DEFAULT_FIELD_PATH",
    "Var",
    "VarSet",
    "expand",
    "field_value",
    "merge_var_sets",
    "merge_vars",
    "parse_vars",
    "resolve",
    "split_field_path",
]
