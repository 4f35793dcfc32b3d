"""Safe YAML loading with kustomize's reading rules, and `kustomize build`-identical YAML output.

Loading: libyaml (PyYAML's C parser, the same parser family as go-yaml) composes the node tree; this module
builds plain values from it with the scalar rules of go-yaml v3 (``resolve.go``), which kustomize's kyaml
uses: only ``true``/``false`` (three spellings each) are booleans, ``~``/``null``/empty are null, integers
follow Go's ``strconv.ParseInt(s, 0, 64)`` after removing ``_`` (so ``0777`` is octal, ``0x1F`` hex, ``0b101``
binary), then unsigned 64-bit integers, then floats matching ``[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?
[0-9]+)?`` that parse without a range error; timestamps keep their text as :class:`YamlTimestamp` (printed
as Go's JSON form of the time). Mapping keys keep their text (kyaml decodes objects into
``map[string]interface{}``). Duplicate keys are refused (yaml.v3 refuses them when kyaml decodes), ``<<``
merge keys are applied with explicit keys winning. kyaml's own readings are kept where kustomize acts on
them: the text of nulls (:class:`YamlMap`) and the value of folded scalars (:func:`kyaml_folded_value`).
Hostile input is bounded: nesting deeper than :data:`MAX_DEPTH` (libyaml's own limit is 1000), alias
expansion beyond :data:`MAX_EXPANDED_NODES` nodes, invalid UTF-8.

Output follows what `kustomize build` does (api/resource.AsYAML): each object is converted to JSON and then
to YAML with sigs.k8s.io/yaml's JSONToYAML, i.e. go-yaml v2 (`go.yaml.in/yaml/v2`) with its defaults:
map keys sorted by go-yaml's "natural" key order, two-space indentation, block sequences not indented
under a mapping key, 80-column line folding of long plain/quoted scalars, literal block style for strings
containing a newline, double quotes for strings that would otherwise read back as another type, keys longer
than 128 bytes or holding line breaks written after ``? ``. The scalar analysis and writing rules below
follow go-yaml v2's emitter (a port of libyaml's emitter.c), quirks included (a value starting with a byte
order mark is escaped whole); strings first pass through the JSON round trip (:func:`_through_json`).
"""

from __future__ import annotations

import decimal
import functools
import json
import math
import re
import struct
import unicodedata
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.render.errors import RenderError

#: Upper bound on the number of values one YAML stream may expand to through aliases ("billion laughs").
MAX_EXPANDED_NODES = 1_000_000
#: Deepest nesting of mappings and sequences accepted (after alias expansion).
MAX_DEPTH = 1000
#: Longest unquoted number accepted. go-yaml would read a longer one as a string (it is out of 64-bit
#: range); no manifest has such a number, so it is refused as hostile input instead.
MAX_NUMBER_DIGITS = 1000
_NUMBER_LIKE = re.compile(
    r"^[-+]?(0[xX][0-9a-fA-F_]+|0[oO][0-7_]+|0[bB][01_]+|[0-9_]*\.?[0-9_]*([eE][-+]?[0-9]+)?)$"
)

_BaseLoader: Any = getattr(yaml, "CSafeLoader", None) or yaml.SafeLoader
_PLAIN = "!reconciler/plain"
_STR_TAG = "tag:yaml.org,2002:str"
_INT_TAG = "tag:yaml.org,2002:int"
_FLOAT_TAG = "tag:yaml.org,2002:float"
_BOOL_TAG = "tag:yaml.org,2002:bool"
_NULL_TAG = "tag:yaml.org,2002:null"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"
_MERGE_TAG = "tag:yaml.org,2002:merge"
_SEQ_TAG = "tag:yaml.org,2002:seq"
_MAP_TAG = "tag:yaml.org,2002:map"


class _Loader(_BaseLoader):  # type: ignore[misc]
    """Composer only: tags implicit plain scalars with a marker so resolution happens in :func:`_resolve`."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is ScalarNode:
            return _PLAIN if implicit[0] else _STR_TAG
        return _SEQ_TAG if kind is SequenceNode else _MAP_TAG


_V3_RESOLVE: dict[str, Any] = {
    "true": True,
    "True": True,
    "TRUE": True,
    "false": False,
    "False": False,
    "FALSE": False,
    "": None,
    "~": None,
    "null": None,
    "Null": None,
    "NULL": None,
    ".nan": math.nan,
    ".NaN": math.nan,
    ".NAN": math.nan,
    ".inf": math.inf,
    ".Inf": math.inf,
    ".INF": math.inf,
    "+.inf": math.inf,
    "+.Inf": math.inf,
    "+.INF": math.inf,
    "-.inf": -math.inf,
    "-.Inf": -math.inf,
    "-.INF": -math.inf,
}
#: go-yaml v2 (YAML 1.1) spellings of booleans that v3 reads as strings; kustomize reads kustomization files,
#: transformer configurations and JSON patches through sigs.k8s.io/yaml, which uses v2.
_V2_BOOLS: dict[str, bool] = {
    **dict.fromkeys(["y", "Y", "yes", "Yes", "YES", "on", "On", "ON"], True),
    **dict.fromkeys(["n", "N", "no", "No", "NO", "off", "Off", "OFF"], False),
}
#: Plain scalar texts go-yaml v3 reads as null.
_NULL_TEXTS = frozenset(["", "~", "null", "Null", "NULL"])
_V3_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_GO_INT_BODY = {
    "x": re.compile(r"[0-9a-fA-F]+"),
    "o": re.compile(r"[0-7]+"),
    "b": re.compile(r"[01]+"),
}
_DEC = re.compile(r"[0-9]+")
_OCT = re.compile(r"[0-7]+")


def go_parse_int(text: str, *, unsigned: bool = False) -> int | None:
    """The value of Go's ``strconv.ParseInt(text, 0, 64)`` (or ``ParseUint``), ``None`` when it fails."""
    body, neg = text, False
    if body[:1] in ("+", "-"):
        if unsigned:
            return None
        neg = body[0] == "-"
        body = body[1:]
    if not body:
        return None
    base = 10
    if len(body) > 1 and body[0] == "0":
        p = body[1].lower()
        if p in _GO_INT_BODY:
            base = {"x": 16, "o": 8, "b": 2}[p]
            if not _GO_INT_BODY[p].fullmatch(body[2:]):
                return None
            body = body[2:]
        elif _OCT.fullmatch(body[1:]):
            base, body = 8, body[1:]
        else:
            return None
    elif not _DEC.fullmatch(body):
        return None
    if len(body.lstrip("0")) > 64:
        return None  # beyond 64 bits in any base (and beyond Python's digit limit for str -> int)
    value = int(body, base)
    if unsigned:
        return value if value < 2**64 else None
    value = -value if neg else value
    return value if -(2**63) <= value < 2**63 else None


_DAYS = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def _go_num(text: str, pos: int) -> tuple[int, int] | None:
    """Go time.Parse ``getnum`` (not fixed width): one or two digits at ``pos``."""
    if pos >= len(text) or not "0" <= text[pos] <= "9":
        return None
    if pos + 1 < len(text) and "0" <= text[pos + 1] <= "9":
        return int(text[pos : pos + 2]), pos + 2
    return int(text[pos]), pos + 1


def go_timestamp(text: str) -> tuple[int, int, int, int, int, int, int, int] | None:
    """go-yaml v3's ``parseTimestamp``: ``text`` read with Go's ``time.Parse`` in the layouts
    ``2006-1-2T15:4:5.999999999Z07:00`` (``T`` or ``t``), ``2006-1-2 15:4:5.999999999`` and ``2006-1-2``
    (go.yaml.in/yaml/v3 resolve.go), as (year, month, day, hour, minute, second, nanosecond, offset in
    seconds), or ``None``."""
    if len(text) < 8 or not text[:4].isdigit() or not text[:4].isascii() or text[4] != "-":
        return None
    year = int(text[:4])
    got = _go_num(text, 5)
    if got is None or got[1] >= len(text) or text[got[1]] != "-":
        return None
    month, pos = got[0], got[1] + 1
    got = _go_num(text, pos)
    if got is None:
        return None
    day, pos = got
    hour = minute = second = nsec = offset = 0
    if pos < len(text):
        sep = text[pos]
        if sep not in "Tt ":
            return None
        fields = []
        pos += 1
        for n in range(3):
            if n:
                if pos >= len(text) or text[pos] != ":":
                    return None
                pos += 1
            got = _go_num(text, pos)
            if got is None:
                return None
            fields.append(got[0])
            pos = got[1]
        hour, minute, second = fields
        if pos + 1 < len(text) and text[pos] in ".," and "0" <= text[pos + 1] <= "9":
            end = pos + 1
            while end < len(text) and "0" <= text[end] <= "9":
                end += 1
            digits = text[pos + 1 : end][:9]
            nsec = int(digits) * 10 ** (9 - len(digits))
            pos = end
        if sep != " ":
            if text[pos:] == "Z":
                pos += 1
            else:
                zone = text[pos : pos + 6]
                if (
                    len(zone) < 6
                    or zone[0] not in "+-"
                    or zone[3] != ":"
                    or not (zone[1:3] + zone[4:6]).isdigit()
                    or not (zone[1:3] + zone[4:6]).isascii()
                ):
                    return None
                hours, minutes = int(zone[1:3]), int(zone[4:6])
                if hours > 24 or minutes > 60:
                    return None
                offset = (hours * 60 + minutes) * 60 * (-1 if zone[0] == "-" else 1)
                pos += 6
        if pos != len(text) or hour >= 24 or minute >= 60 or second >= 60:
            return None
    if not 1 <= month <= 12:
        return None
    leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
    if not 1 <= day <= _DAYS[month - 1] + (1 if month == 2 and leap else 0):
        return None
    return year, month, day, hour, minute, second, nsec, offset


def _v3_timestamp(s: str) -> bool:
    return go_timestamp(s) is not None


class YamlTimestamp(str):
    """A plain scalar go-yaml v3 reads as a timestamp (``2024-01-02``): its text everywhere kustomize uses a
    node's text, and in the output the form Go's JSON encoding gives the ``time.Time`` kyaml decodes it to
    (RFC 3339 with nanoseconds: ``2024-01-02T00:00:00Z``, see :meth:`json_text`)."""

    __slots__ = ()

    def json_text(self) -> str:
        """Go's ``time.Time.MarshalJSON`` of the parsed value.

        Raises:
            RenderError: for a zone offset of 24 hours or more, which Go refuses to encode.
        """
        parts = go_timestamp(str(self))
        if parts is None:  # pragma: no cover - only made from texts that parse
            return str(self)
        year, month, day, hour, minute, second, nsec, offset = parts
        text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
        if nsec:
            text += "." + f"{nsec:09d}".rstrip("0")
        if offset == 0:
            return text + "Z"
        hours, minutes = divmod(abs(offset) // 60, 60)
        if hours > 23:
            raise RenderError(f"Time.MarshalJSON: timezone hour outside of range [0,23] ({self})")
        return f"{text}{'-' if offset < 0 else '+'}{hours:02d}:{minutes:02d}"


def _parse_go_float(text: str) -> float | None:
    """``strconv.ParseFloat(text, 64)`` for decimal forms: ``None`` on syntax or range errors."""
    try:
        value = float(text)
    except ValueError:
        return None
    if math.isinf(value):
        return None
    return value


def resolve_plain(text: str, *, yaml11: bool = False) -> Any:
    """The value go-yaml v3 (or with ``yaml11``, go-yaml v2) gives an untagged plain scalar."""
    if yaml11 and text in _V2_BOOLS:
        return _V2_BOOLS[text]
    if text in _V3_RESOLVE:
        return _V3_RESOLVE[text]
    c = text[0]
    if c == ".":
        value = _parse_go_float(text) if _V3_FLOAT.match(text) else None
        return text if value is None else value
    if c not in "+-0123456789":
        return text
    if _v3_timestamp(text):
        return text if yaml11 else YamlTimestamp(text)
    plain = text.replace("_", "")
    if plain:
        iv = go_parse_int(plain)
        if iv is not None:
            return iv
        uv = go_parse_int(plain, unsigned=True)
        if uv is not None:
            return uv
        if _V3_FLOAT.match(plain):
            fv = _parse_go_float(plain)
            if fv is not None:
                return fv
    return text


def _resolve_tagged(tag: str, text: str, path: str, line: int) -> Any:
    """A scalar with an explicit ``!!int``/``!!float``/``!!bool``/``!!null``/``!!str`` tag."""
    if tag in (_STR_TAG, _TIMESTAMP_TAG) or not tag.startswith("tag:yaml.org,2002:"):
        return text
    value = resolve_plain(text) if text else None
    short = tag.rsplit(":", 1)[1]
    if tag == _FLOAT_TAG and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    ok = {
        _INT_TAG: isinstance(value, int) and not isinstance(value, bool),
        _FLOAT_TAG: isinstance(value, float),
        _BOOL_TAG: isinstance(value, bool),
        _NULL_TAG: value is None,
    }.get(tag)
    if ok is None:
        return text
    if not ok:
        raise RenderError(f"cannot decode `{text}` as a !!{short}", path=path, line=line)
    return value


class YamlMap(dict[str, Any]):
    """A mapping read from YAML that held null values, with the source text of each (``null_text``).

    kyaml keeps a null's text in its node (``key:`` has none, ``key: ~`` has ``~``) and acts on it: a
    strategic-merge patch keeps a null of the target only when it has text (kyaml/yaml/merge2/merge2.go
    ``VisitMap``, ``MakePersistentNullNode``) and reports an unknown ``$patch`` directive by its text
    (merge2/smpdirective.go). For ``metadata.annotations``, read as text, the keys that were nulls are
    listed too, and ``typed`` holds the text and the value go-yaml gives each annotation whose text reads
    as another type (``1.50``, ``0x1F``, ``True``, ``~``): a JSON patch turns the object into JSON and back
    (api/filters/patchjson6902), and such an annotation's text becomes its JSON spelling (``1.5``, ``31``,
    ``true``, ``null``). Plain dicts (made by transformers) have no such record: their nulls read as
    ``null``. ``texts`` (strategic-merge patches only, see :func:`load_yaml_documents_with_lines`) holds
    the source text of each plain scalar read as another type than a string (``0x2F``, ``1.50``), which
    kyaml writes as it is where the patched field was a quoted string. ``quoted`` (objects read from
    files) names the keys whose string value was written quoted or as a block scalar: a strategic-merge
    patch's value there takes that style (kyaml ``FieldSetter``), so a number patched over it is a string;
    ``unquoted`` names keys a patch set to a string while keeping the field's plain style.
    """

    __slots__ = ("null_text", "quoted", "texts", "typed", "unquoted")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.null_text: dict[str, str] = {}
        self.typed: dict[str, tuple[str, Any]] = {}
        self.texts: dict[str, str] = {}
        self.quoted: set[str] = set()
        self.unquoted: set[str] = set()


def null_text(mapping: Any, key: str) -> str | None:
    """The source text of the null at ``mapping[key]`` (``"null"`` when it was made, not read), or
    ``None`` when the value there is not a null read from YAML nor a null at all."""
    if isinstance(mapping, YamlMap) and key in mapping.null_text:
        return mapping.null_text[key]
    return "null" if isinstance(mapping, dict) and key in mapping and mapping[key] is None else None


#: go-yaml's line breaks (``is_break``).
_GO_BREAKS = "\r\n\x85\u2028\u2029"


def kyaml_folded_value(value: str) -> str:
    """What kustomize outputs for a string read from a folded (``>``) block scalar of a resource.

    kustomize writes every object out with go-yaml v3 and reads it back before converting it to JSON
    (kyaml/yaml/rnode.go ``MarshalJSON``), and a node keeps the folded style it was read with. go-yaml v3's
    folded writer (go.yaml.in/yaml/v3 emitterc.go ``yaml_emitter_write_folded_scalar``) decides whether to
    double a line break by looking at the start of the whole value instead of the next line, so lines that
    are more indented than the text around them gain a blank line before them, and a value that starts
    with a blank has its single line breaks folded into spaces. When go-yaml's analysis
    (``yaml_emitter_analyze_scalar``) rules out block styles (a trailing space, a space before a line
    break, characters it does not print), the value is written double-quoted and comes back unchanged.
    Line folding at the 80-column width is not modelled (it changes only over-long more-indented lines).
    """
    if not value:
        return value
    prev_space = False
    last = len(value) - 1
    for i, ch in enumerate(value):
        if ch != "\t" and not _is_printable(ch):
            return value
        if ch == " ":
            if i == last:
                return value
            prev_space = True
        elif ch in _GO_BREAKS:
            if prev_space:
                return value
            prev_space = False
        else:
            prev_space = False
    k = 0
    while value[k] in _GO_BREAKS and k < last:
        k += 1
    double = value[k] not in " \t" and value[k] not in _GO_BREAKS
    hints = "2" if value[0] in " " + _GO_BREAKS else ""
    if value[-1] not in _GO_BREAKS:
        hints += "-"
    elif len(value) == 1 or value[-2] in _GO_BREAKS:
        hints += "+"
    out = ["k: >", hints, "\n"]
    breaks = True
    leading_blank = True
    for ch in value:
        if ch in _GO_BREAKS:
            if not breaks and not leading_blank and ch == "\n" and double:
                out.append("\n")
            out.append(ch)
            breaks = True
        else:
            if breaks:
                out.append("  ")
                leading_blank = ch in " \t"
            out.append(ch)
            breaks = False
    if not breaks:
        out.append("\n")
    loader = _Loader("".join(out))
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        # a value starting with a tab is written without an indentation hint and cannot be read back
        raise ValueError((exc.problem or "invalid YAML").strip()) from None
    finally:
        loader.dispose()
    return str(node.value[0][1].value)


class _Builder:
    """Turns composed nodes into plain values, counting every value built (alias bombs)."""

    __slots__ = ("budget", "keep_text", "kyaml", "path", "quotes", "v2_keys", "yaml11")

    def __init__(
        self,
        path: str,
        *,
        yaml11: bool = False,
        kyaml: bool = False,
        v2_keys: bool = False,
        keep_text: bool = False,
        quotes: bool = False,
    ) -> None:
        self.path = path
        self.quotes = quotes
        self.budget = MAX_EXPANDED_NODES
        self.yaml11 = yaml11
        self.kyaml = kyaml
        self.v2_keys = v2_keys
        self.keep_text = keep_text

    def fail(self, message: str, node: Node) -> RenderError:
        return RenderError(message, path=self.path, line=node.start_mark.line + 1)

    def value(self, node: Node, depth: int) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise self.fail(f"document expands to more than {MAX_EXPANDED_NODES} nodes through aliases", node)
        if isinstance(node, ScalarNode):
            tag = node.tag
            if tag == _PLAIN:
                text = node.value
                if len(text) > MAX_NUMBER_DIGITS and _NUMBER_LIKE.match(text):
                    raise self.fail(
                        f"number with {len(text)} digits is too large (limit {MAX_NUMBER_DIGITS} digits)",
                        node,
                    )
                return resolve_plain(text, yaml11=self.yaml11)
            if tag == _STR_TAG:
                if node.style == ">" and self.kyaml:
                    try:
                        return kyaml_folded_value(node.value)
                    except ValueError as exc:
                        raise self.fail(
                            f"invalid YAML when kustomize writes this folded text: {exc}", node
                        ) from None
                return node.value
            return _resolve_tagged(tag, node.value, self.path, node.start_mark.line + 1)
        if depth >= MAX_DEPTH:
            raise self.fail(f"nesting deeper than {MAX_DEPTH} levels", node)
        if isinstance(node, SequenceNode):
            return [self.value(item, depth + 1) for item in node.value]
        if isinstance(node, MappingNode):
            return self.mapping(node, depth, raw_values=False, string_keys=False)
        raise self.fail("unsupported YAML node", node)

    def key(self, node: Node, string_keys: bool) -> str:
        """A mapping key: its text in string-keyed maps, else it must resolve to a string."""
        if not isinstance(node, ScalarNode):
            raise self.fail("mapping key is not a scalar", node)
        if node.tag == _STR_TAG:
            return str(node.value)
        if string_keys:
            return str(node.value)
        if self.yaml11 and self.v2_keys and node.tag == _PLAIN:
            text = v2_key_text(resolve_plain(node.value, yaml11=True))
            if text is not None:
                return text
        # keys follow go-yaml v3 even in kustomization files (a key like ``on`` stays a string)
        resolved = resolve_plain(node.value) if node.tag == _PLAIN else None
        if isinstance(resolved, str):
            return str(resolved)
        raise self.fail(
            f"mapping key {node.value!r} is not a string (objects need string keys to convert to JSON)", node
        )

    def mapping(
        self, node: MappingNode, depth: int, *, raw_values: bool, string_keys: bool
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        lines: dict[str, int] = {}
        merges: list[Node] = []
        nulls: dict[str, str] | None = None
        typed: dict[str, tuple[str, Any]] | None = None
        texts: dict[str, str] | None = None
        quoted: set[str] | None = None
        for knode, vnode in node.value:
            if isinstance(knode, ScalarNode) and (
                knode.tag == _MERGE_TAG or (knode.tag == _PLAIN and knode.value == "<<")
            ):
                merges.append(vnode)
                continue
            key = self.key(knode, string_keys)
            if key in lines:
                if not self.yaml11:
                    raise self.fail(
                        f'duplicate mapping key "{key}" (already defined at line {lines[key]})', knode
                    )
                # sigs.k8s.io/yaml reads with go-yaml v2, which lets a repeated key replace the earlier one
                out.pop(key, None)
                if nulls is not None:
                    nulls.pop(key, None)
            lines[key] = knode.start_mark.line + 1
            if raw_values and isinstance(vnode, ScalarNode):
                self.budget -= 1
                out[key] = vnode.value
                is_null = vnode.tag == _NULL_TAG or (vnode.tag == _PLAIN and vnode.value in _NULL_TEXTS)
                if vnode.tag != _STR_TAG:
                    value = self.value(vnode, depth + 1)
                    if not isinstance(value, str):
                        typed = {} if typed is None else typed
                        typed[key] = (vnode.value, value)
            else:
                out[key] = self.value(vnode, depth + 1)
                is_null = out[key] is None
                if self.quotes and isinstance(vnode, ScalarNode) and vnode.style and type(out[key]) is str:
                    quoted = set() if quoted is None else quoted
                    quoted.add(key)
                if self.keep_text and isinstance(vnode, ScalarNode) and vnode.tag == _PLAIN:
                    got = out[key]
                    if got is not None and (not isinstance(got, str) or isinstance(got, YamlTimestamp)):
                        texts = {} if texts is None else texts
                        texts[key] = vnode.value
            if is_null and isinstance(vnode, ScalarNode):
                if nulls is None:
                    nulls = {}
                nulls[key] = vnode.value
        for mnode in merges:
            sources = mnode.value if isinstance(mnode, SequenceNode) else [mnode]
            for src in sources:
                if not isinstance(src, MappingNode):
                    raise self.fail("map merge requires map or sequence of maps as the value", src)
                merged = self.mapping(src, depth + 1, raw_values=False, string_keys=string_keys)
                for k, v in merged.items():
                    if k not in out:
                        out[k] = v
                        text = null_text(merged, k)
                        if text is not None and text != "null":
                            nulls = {} if nulls is None else nulls
                            nulls[k] = text
        if nulls is None and typed is None and texts is None and quoted is None:
            return out
        result = YamlMap(out)
        result.null_text = nulls or {}
        result.typed = typed or {}
        result.texts = texts or {}
        result.quoted = quoted or set()
        return result

    def document(self, node: MappingNode) -> dict[str, Any]:
        doc = self.mapping(node, 0, raw_values=False, string_keys=True)
        meta_node = next(
            (v for k, v in node.value if isinstance(k, ScalarNode) and k.value == "metadata"), None
        )
        if isinstance(meta_node, MappingNode) and isinstance(doc.get("metadata"), dict):
            ann = next(
                (v for k, v in meta_node.value if isinstance(k, ScalarNode) and k.value == "annotations"),
                None,
            )
            if isinstance(ann, MappingNode):
                # kustomize rewrites metadata.annotations as strings of their scalar text at the end of
                # every build (RemoveBuildAnnotations); keep that text here
                doc["metadata"]["annotations"] = self.mapping(ann, 2, raw_values=True, string_keys=True)
        return doc


def _decode(data: str | bytes, path: str) -> str:
    if isinstance(data, str):
        return data
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise RenderError(f"invalid UTF-8 (byte offset {exc.start})", path=path, line=line) from None


def compose_documents(data: str | bytes, *, path: str) -> list[Node]:
    """The composed node of every document of a YAML stream (empty documents left out).

    Raises:
        RenderError: naming ``path`` and the 1-based line for invalid YAML or invalid UTF-8.
    """
    text = _decode(data, path)
    loader = _Loader(text)
    nodes: list[Node] = []
    try:
        while loader.check_node():
            node = loader.get_node()
            if node is None:
                continue
            if isinstance(node, ScalarNode) and node.tag == _PLAIN and node.value in ("", "~", "null"):
                continue
            nodes.append(node)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        problem = (exc.problem or exc.context or "invalid YAML").strip()
        raise RenderError(f"invalid YAML: {problem}", path=path, line=line) from None
    except yaml.YAMLError as exc:
        raise RenderError(f"invalid YAML: {str(exc).strip()}", path=path) from None
    except RecursionError:
        raise RenderError(f"invalid YAML: nesting deeper than {MAX_DEPTH} levels", path=path) from None
    finally:
        loader.dispose()
    return nodes


def load_yaml_documents(data: str | bytes, *, path: str, kyaml: bool = False) -> list[dict[str, Any]]:
    """Load every document of a multi-document YAML stream as a plain dict.

    Args:
        data: the YAML source (``---``-separated documents), text or UTF-8 bytes.
        path: the file name used in error messages.
        kyaml: read the documents as kustomize reads objects and patches (kyaml): folded block scalars
            take the value kustomize outputs for them (:func:`kyaml_folded_value`).

    Returns:
        One dict per non-empty document, in file order (str keys; values dict/list/str/int/float/bool/None).
        Empty documents (only comments, nothing, or an explicit null) are skipped. Scalars follow go-yaml
        v3's rules (see the module docstring); ``metadata.annotations`` values keep their text.

    Raises:
        RenderError: naming ``path`` and the 1-based line for invalid YAML or UTF-8, duplicate keys,
            documents that are not mappings, nesting deeper than :data:`MAX_DEPTH`, and alias expansion
            beyond :data:`MAX_EXPANDED_NODES` values.
    """
    return [doc for doc, _ in load_yaml_documents_with_lines(data, path=path, kyaml=kyaml)]


def load_yaml_documents_with_lines(
    data: str | bytes, *, path: str, kyaml: bool = True, keep_text: bool = False
) -> list[tuple[dict[str, Any], int]]:
    """Like :func:`load_yaml_documents` (reading objects as kyaml does unless ``kyaml`` is false), with the
    1-based line where each document starts; ``keep_text`` records the text of plain scalars that are no
    strings (:attr:`YamlMap.texts`), as strategic-merge patches need."""
    docs: list[tuple[dict[str, Any], int]] = []
    builder = _Builder(path, kyaml=kyaml, keep_text=keep_text, quotes=True)
    for node in compose_documents(data, path=path):
        line = node.start_mark.line + 1
        if not isinstance(node, MappingNode):
            raise RenderError(
                "document is not a mapping (expected a Kubernetes object)", path=path, line=line
            )
        try:
            docs.append((builder.document(node), line))
        except RecursionError:
            raise RenderError(f"nesting deeper than {MAX_DEPTH} levels", path=path, line=line) from None
    return docs


def key_lines(data: str | bytes, *, path: str) -> dict[str, int]:
    """The 1-based line of every top-level key of a single-mapping YAML document (for error messages)."""
    nodes = compose_documents(data, path=path)
    if not nodes or not isinstance(nodes[0], MappingNode):
        return {}
    return {str(k.value): k.start_mark.line + 1 for k, _ in nodes[0].value if isinstance(k, ScalarNode)}


def load_yaml_value(data: str | bytes, *, path: str, yaml11: bool = False, v2_keys: bool = False) -> Any:
    """Load a single-document YAML value of any shape (a kustomization, a JSON patch list...).

    Args:
        data: the YAML source.
        path: the file name used in error messages.
        yaml11: read plain scalars as go-yaml v2 does (``yes``/``on``/``no``/``off``... are booleans) and let
            a repeated mapping key replace the earlier one, as kustomize reads kustomization files,
            transformer configurations and JSON patches.
        v2_keys: with ``yaml11``, nested mapping keys are resolved as go-yaml v2 resolves them and written
            as sigs.k8s.io/yaml writes them into JSON (:func:`v2_key_text`: ``y`` -> ``true``, ``1.50``
            -> ``1.5``, ``010`` -> ``8``), as kustomize reads a JSON patch; a null key is refused.

    Returns ``None`` for an empty document. Same rules and errors as :func:`load_yaml_documents`; a stream
    with more than one document is an error.
    """
    nodes = compose_documents(data, path=path)
    if not nodes:
        return None
    builder = _Builder(path, yaml11=yaml11, v2_keys=v2_keys)
    values = []
    try:
        for node in nodes:
            if isinstance(node, MappingNode):
                values.append(builder.mapping(node, 0, raw_values=False, string_keys=True))
            else:
                values.append(builder.value(node, 0))
    except RecursionError:
        raise RenderError(f"nesting deeper than {MAX_DEPTH} levels", path=path) from None
    if len(nodes) > 1:
        raise RenderError(
            "expected a single YAML document, found more than one",
            path=path,
            line=nodes[1].start_mark.line + 1,
        )
    return values[0]


# --------------------------------------------------------------------------------------------------
# Output: go-yaml v2 emitter behaviour
# --------------------------------------------------------------------------------------------------

_BEST_WIDTH = 80
_BEST_INDENT = 2

_BASE60 = re.compile(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$")
_YAML_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_RESOLVE_MAP = {
    *[
        "y",
        "Y",
        "yes",
        "Yes",
        "YES",
        "true",
        "True",
        "TRUE",
        "on",
        "On",
        "ON",
        "n",
        "N",
        "no",
        "No",
        "NO",
        "false",
        "False",
        "FALSE",
        "off",
        "Off",
        "OFF",
    ],
    "",
    "~",
    "null",
    "Null",
    "NULL",
    ".nan",
    ".NaN",
    ".NAN",
    ".inf",
    ".Inf",
    ".INF",
    "+.inf",
    "+.Inf",
    "+.INF",
    "-.inf",
    "-.Inf",
    "-.INF",
    "<<",
}


def _go_parse_int(s: str) -> bool:
    """Whether Go's ``strconv.ParseInt(s, 0, 64)`` or ``ParseUint(s, 0, 64)`` accepts ``s``."""
    return go_parse_int(s) is not None or go_parse_int(s, unsigned=True) is not None


_DOT_FLOAT = re.compile(r"^\.[0-9]+([eE][+-]?[0-9]+)?$")


def _valid_timestamp(s: str) -> bool:
    """go-yaml v2 reads ``s`` as a timestamp (same layouts as v3's, go-yaml v2 resolve.go)."""
    return go_timestamp(s) is not None


def _resolves_to_non_string(s: str) -> bool:
    """Whether go-yaml v2 would read the plain scalar ``s`` as something other than a string."""
    if s in _RESOLVE_MAP:
        return True
    c = s[0]
    if c == ".":
        # strconv.ParseFloat: digits after the point, an optional exponent, no range error
        return bool(_DOT_FLOAT.match(s)) and _parse_go_float(s) is not None
    if c in "+-0123456789":
        if _valid_timestamp(s):
            return True
        plain = s.replace("_", "")
        if _go_parse_int(plain):
            return True
        if _YAML_FLOAT.match(plain) and _parse_go_float(plain) is not None:
            return True
        if plain.startswith("0b") and re.fullmatch(r"[01]+", plain[2:]):
            return True
        if plain.startswith("-0b") and re.fullmatch(r"[01]+", plain[3:]):
            return True
    return False


def _is_printable(ch: str) -> bool:
    o = ord(ch)
    if o == 0x0A or 0x20 <= o <= 0x7E:
        return True
    if 0xA0 <= o <= 0xD7FF:
        return True
    return 0xE000 <= o <= 0xFFFD and o != 0xFEFF


_BREAKS = "\r\n\x85\u2028\u2029"


class _Analysis:
    __slots__ = ("block_allowed", "block_plain_allowed", "multiline", "single_quoted_allowed")

    def __init__(self, value: str) -> None:
        self.multiline = False
        self.block_plain_allowed = True
        self.single_quoted_allowed = True
        self.block_allowed = True
        if not value:
            self.block_allowed = False
            return
        block_ind = False
        line_breaks = special = False
        leading_space = leading_break = trailing_space = trailing_break = False
        break_space = space_break = False
        previous_space = previous_break = False
        if value.startswith("---") or value.startswith("..."):
            block_ind = True
        preceded_by_ws = True
        n = len(value)
        for i, ch in enumerate(value):
            followed_by_ws = i + 1 >= n or value[i + 1] in " \t" + _BREAKS
            if i == 0:
                if ch in "#,[]{}&*!|>'\"%@`":
                    block_ind = True
                elif ch in "?:":
                    if followed_by_ws:
                        block_ind = True
                elif ch == "-" and followed_by_ws:
                    block_ind = True
            elif ch == ":":
                if followed_by_ws:
                    block_ind = True
            elif ch == "#" and preceded_by_ws:
                block_ind = True
            if not _is_printable(ch):
                special = True
            if ch == " ":
                if i == 0:
                    leading_space = True
                if i == n - 1:
                    trailing_space = True
                if previous_break:
                    break_space = True
                previous_space, previous_break = True, False
            elif ch in _BREAKS:
                line_breaks = True
                if i == 0:
                    leading_break = True
                if i == n - 1:
                    trailing_break = True
                if previous_space:
                    space_break = True
                previous_space, previous_break = False, True
            else:
                previous_space = previous_break = False
            preceded_by_ws = ch in " \t" + _BREAKS
        self.multiline = line_breaks
        if leading_space or leading_break or trailing_space or trailing_break:
            self.block_plain_allowed = False
        if trailing_space:
            self.block_allowed = False
        if break_space:
            self.block_plain_allowed = False
            self.single_quoted_allowed = False
        if space_break or special:
            self.block_plain_allowed = False
            self.single_quoted_allowed = False
            self.block_allowed = False
        if line_breaks:
            self.block_plain_allowed = False
        if block_ind:
            self.block_plain_allowed = False


def _key_less(a: str, b: str) -> bool:
    """go-yaml v2's ordering of string map keys (letters before other runes, digit runs numerically)."""
    n = min(len(a), len(b))
    for i in range(n):
        ca, cb = a[i], b[i]
        if ca == cb:
            continue
        al, bl = ca.isalpha(), cb.isalpha()
        if al and bl:
            return ca < cb
        if al or bl:
            return bl
        an = bn = 0
        if ca == "0" or cb == "0":
            j = i - 1
            while j >= 0 and _is_digit(a[j]):
                if a[j] != "0":
                    an = bn = 1
                    break
                j -= 1
        ai = i
        while ai < len(a) and _is_digit(a[ai]):
            an = an * 10 + (ord(a[ai]) - 48)
            ai += 1
        bi = i
        while bi < len(b) and _is_digit(b[bi]):
            bn = bn * 10 + (ord(b[bi]) - 48)
            bi += 1
        if an != bn:
            return an < bn
        if ai != bi:
            return ai < bi
        return ca < cb
    return len(a) < len(b)


def _is_digit(ch: str) -> bool:
    return unicodedata.category(ch) == "Nd"


@functools.lru_cache(maxsize=16384)
def _sorted_key_set(keys: frozenset[str]) -> tuple[str, ...]:
    def cmp(x: str, y: str) -> int:
        if _key_less(x, y):
            return -1
        if _key_less(y, x):
            return 1
        return 0

    return tuple(sorted(keys, key=functools.cmp_to_key(cmp)))


def _sorted_keys(keys: list[str]) -> tuple[str, ...]:
    """Map keys in go-yaml v2's order (cached per key set: objects share key sets)."""
    return _sorted_key_set(frozenset(keys))


_JSON_CONTROL = re.compile("[\x7f-\x84\x86-\x9f]")


def _through_json(text: str, key: bool) -> str:
    """A string as go-yaml v2 reads it back from the JSON kustomize prints objects through
    (api/resource ``AsYAML``: Go's ``encoding/json``, then sigs.k8s.io/yaml ``JSONToYAML``). JSON leaves
    U+007F-U+009F unescaped; go-yaml refuses those characters in its input, except U+0085 (NEL), which it
    reads as a line break: inside the quoted string it folds like one, inside a key it ends the flow mapping.

    Raises:
        RenderError: as kustomize fails on such a string.
    """
    if _JSON_CONTROL.search(text):
        raise RenderError("yaml: control characters are not allowed")
    if "\x85" not in text:
        return text
    if key:
        raise RenderError("yaml: did not find expected ',' or '}' (a key holds U+0085)")
    quoted = json.dumps(text, ensure_ascii=False).replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")
    node = yaml.compose(quoted, Loader=_BaseLoader)
    return str(node.value) if isinstance(node, ScalarNode) else text


_BREAK_RE = re.compile("[\r\n\x85\u2028\u2029]")


@functools.lru_cache(maxsize=65536)
def _key_form(key: str) -> tuple[str, bool]:
    """A map key's text after the JSON round trip, and whether go-yaml v2 writes it as a simple key
    (``yaml_emitter_check_simple_key``: one line of at most 128 bytes; else it is written after ``? `` and
    its value after ``: `` on the next line)."""
    text = _through_json(key, True)
    return text, len(text.encode("utf-8")) <= 128 and not _BREAK_RE.search(text)


@functools.lru_cache(maxsize=65536)
def _value_form(value: str) -> tuple[str, str]:
    """A string value's text after the JSON round trip and the style go-yaml v2 writes it in."""
    text = _through_json(value, False)
    return text, _string_style(text, False)


@functools.lru_cache(maxsize=65536)
def _string_style(text: str, simple_key: bool) -> str:
    """The scalar style go-yaml v2 picks for a string (``plain``, ``single``, ``double``, ``literal``)."""
    can_plain = not _resolves_to_non_string(text) and not (
        text and text[0] in "+-0123456789" and ":" in text and _BASE60.match(text)
    )
    if "\n" in text:
        style = "literal"
    elif can_plain:
        style = "plain"
    else:
        style = "double"
    analysis = _Analysis(text)
    if simple_key and analysis.multiline:
        style = "double"
    if style == "plain":
        if not analysis.block_plain_allowed:
            style = "single"
        if not text and simple_key:
            style = "single"
    if style == "single" and not analysis.single_quoted_allowed:
        style = "double"
    if style == "literal" and (not analysis.block_allowed or simple_key):
        style = "double"
    return style


class _Emitter:
    """Block-style emitter reproducing go-yaml v2's output for JSON-shaped data."""

    #: the column beyond which long scalars are folded (go-yaml v2: 80; v3 does not fold)
    width = _BEST_WIDTH

    def __init__(self) -> None:
        self.out: list[str] = []
        self.column = 0
        self.whitespace = True
        self.indention = True
        self.indent = -1

    # -- primitives ------------------------------------------------------------------------------
    def put(self, s: str) -> None:
        self.out.append(s)
        self.column += len(s)

    def put_break(self) -> None:
        self.out.append("\n")
        self.column = 0

    def _write_break(self, ch: str) -> None:
        """go-yaml ``write_break``: a line feed starts a new line; other breaks are copied as they are."""
        if ch == "\n":
            self.put_break()
        else:
            self.out.append(ch)
            self.column = 0
        self.indention = True

    def write_indent(self) -> None:
        indent = max(self.indent, 0)
        if not self.indention or self.column > indent or (self.column == indent and not self.whitespace):
            self.put_break()
        if self.column < indent:
            self.put(" " * (indent - self.column))
        self.whitespace = True
        self.indention = True

    def write_indicator(self, ind: str, need_ws: bool, is_ws: bool, is_indention: bool) -> None:
        if need_ws and not self.whitespace:
            self.put(" ")
        self.put(ind)
        self.whitespace = is_ws
        self.indention = self.indention and is_indention

    # -- nodes -----------------------------------------------------------------------------------
    def node(self, value: Any, *, mapping_ctx: bool, simple_key: bool = False) -> None:
        if isinstance(value, dict):
            if not value:
                self.write_indicator("{", True, True, False)
                self.write_indicator("}", False, False, False)
            else:
                self.mapping(value)
        elif isinstance(value, list):
            if not value:
                self.write_indicator("[", True, True, False)
                self.write_indicator("]", False, False, False)
            else:
                self.sequence(value, mapping_ctx)
        else:
            self.scalar(value, simple_key)

    def mapping(self, value: dict[str, Any]) -> None:
        saved = self.indent
        self.indent = 0 if self.indent < 0 else self.indent + _BEST_INDENT
        for key in _sorted_keys(list(value)):
            self.write_indent()
            text, simple = _key_form(key)
            if simple:
                self.scalar(text, True)
                self.write_indicator(":", False, False, False)
            else:
                self.write_indicator("?", True, False, True)
                self.scalar(text, False)
                self.write_indent()
                self.write_indicator(":", True, False, True)
            self.node(value[key], mapping_ctx=True)
        self.indent = saved

    def sequence(self, value: list[Any], mapping_ctx: bool) -> None:
        saved = self.indent
        indentless = mapping_ctx and not self.indention
        if self.indent < 0:
            self.indent = 0
        elif not indentless:
            self.indent += _BEST_INDENT
        for item in value:
            self.write_indent()
            self.write_indicator("-", True, False, True)
            self.node(item, mapping_ctx=False)
        self.indent = saved

    def scalar(self, value: Any, simple_key: bool) -> None:
        if value is None:
            text, style = "null", "plain"
        elif value is True:
            text, style = "true", "plain"
        elif value is False:
            text, style = "false", "plain"
        elif isinstance(value, int):
            text, style = str(value), "plain"
        elif isinstance(value, float):
            text, style = _format_float(value), "plain"
        elif simple_key:
            text = value if isinstance(value, str) else str(value)
            style = _string_style(text, True)
        else:
            if type(value) is not str:
                value = value.json_text() if isinstance(value, YamlTimestamp) else str(value)
            text, style = _value_form(value)
        saved = self.indent
        self.indent = _BEST_INDENT if self.indent < 0 else self.indent + _BEST_INDENT
        allow_breaks = not simple_key
        if style == "plain":
            self.write_plain(text, allow_breaks)
        elif style == "single":
            self.write_single(text, allow_breaks)
        elif style == "double":
            self.write_double(text, allow_breaks)
        else:
            self.write_literal(text)
        self.indent = saved

    def write_plain(self, value: str, allow_breaks: bool) -> None:
        if not self.whitespace:
            self.put(" ")
        last_space = value.rfind(" ")
        if value and (not allow_breaks or last_space < 0 or self.column + last_space <= self.width):
            # no space can be reached beyond the folding column: write in one piece
            self.out.append(value)
            self.column += len(value)
            self.whitespace = False
            self.indention = False
            return
        spaces = False
        n = len(value)
        i = 0
        while i < n:
            ch = value[i]
            if ch == " ":
                nxt_space = i + 1 < n and value[i + 1] == " "
                if allow_breaks and not spaces and self.column > self.width and not nxt_space:
                    self.write_indent()
                else:
                    self.put(ch)
                spaces = True
            else:
                self.put(ch)
                self.indention = False
                spaces = False
            i += 1
        self.whitespace = False
        self.indention = False

    def write_single(self, value: str, allow_breaks: bool) -> None:
        self.write_indicator("'", True, False, False)
        spaces = breaks = False
        n = len(value)
        for i, ch in enumerate(value):
            if ch == " ":
                nxt_space = i + 1 < n and value[i + 1] == " "
                if (
                    allow_breaks
                    and not spaces
                    and self.column > self.width
                    and 0 < i < n - 1
                    and not nxt_space
                ):
                    self.write_indent()
                else:
                    self.put(ch)
                spaces = True
            elif ch in _BREAKS:
                if not breaks and ch == "\n":
                    self.put_break()
                self._write_break(ch)
                breaks = True
            else:
                if breaks:
                    self.write_indent()
                if ch == "'":
                    self.put("'")
                self.put(ch)
                self.indention = False
                spaces = breaks = False
        self.write_indicator("'", False, False, False)
        self.whitespace = False
        self.indention = False

    def write_double(self, value: str, allow_breaks: bool) -> None:
        self.write_indicator('"', True, False, False)
        spaces = False
        n = len(value)
        escapes = {
            "\x00": "0",
            "\x07": "a",
            "\x08": "b",
            "\t": "t",
            "\n": "n",
            "\x0b": "v",
            "\x0c": "f",
            "\r": "r",
            "\x1b": "e",
            '"': '"',
            "\\": "\\",
            "\x85": "N",
            "\xa0": "_",
            "\u2028": "L",
            "\u2029": "P",
        }
        # go-yaml v2's is_bom looks at the start of the value, not at the current character: a value that
        # starts with a byte order mark has every character escaped
        bom = value.startswith("\ufeff")
        for i, ch in enumerate(value):
            o = ord(ch)
            if bom or not _is_printable(ch) or ch in _BREAKS or ch in '"\\':
                self.put("\\")
                if ch in escapes:
                    self.put(escapes[ch])
                elif o <= 0xFF:
                    self.put(f"x{o:02X}")
                elif o <= 0xFFFF:
                    self.put(f"u{o:04X}")
                else:
                    self.put(f"U{o:08X}")
                spaces = False
            elif ch == " ":
                if allow_breaks and not spaces and self.column > self.width and 0 < i < n - 1:
                    self.write_indent()
                    if i + 1 < n and value[i + 1] == " ":
                        self.put("\\")
                else:
                    self.put(ch)
                spaces = True
            else:
                self.put(ch)
                spaces = False
        self.write_indicator('"', False, False, False)
        self.whitespace = False
        self.indention = False

    def write_literal(self, value: str) -> None:
        self.write_indicator("|", True, False, False)
        if value[:1] in (" ",) or value[:1] in _BREAKS:
            self.write_indicator(str(_BEST_INDENT), False, False, False)
        chomp = ""
        if not value or value[-1] not in _BREAKS:
            chomp = "-"
        elif len(value) == 1 or value[-2] in _BREAKS:
            chomp = "+"
        if chomp:
            self.write_indicator(chomp, False, False, False)
        self.put_break()
        self.indention = True
        self.whitespace = True
        breaks = True
        for ch in value:
            if ch in _BREAKS:
                self._write_break(ch)
                breaks = True
            else:
                if breaks:
                    self.write_indent()
                self.put(ch)
                self.indention = False
                breaks = False


def _float32_shortest(value: float) -> str:
    """The shortest decimal digits that read back as ``value`` rounded to a 32-bit float."""
    single = struct.unpack("<f", struct.pack("<f", value))[0]
    for precision in range(1, 10):
        text = f"{single:.{precision}g}"
        if struct.unpack("<f", struct.pack("<f", float(text)))[0] == single:
            return text
    return repr(single)


def v2_key_text(value: Any) -> str | None:
    """The text sigs.k8s.io/yaml gives a mapping key go-yaml v2 resolved to ``value`` when it converts
    YAML to JSON (its ``convertToJSONableObject``): strings as they are, booleans ``true``/``false``,
    integers in decimal, floats as ``strconv.FormatFloat(key, 'g', -1, 32)`` (``1.50`` -> ``1.5``,
    ``1e6`` -> ``1e+06``; infinities and NaN as ``.inf``, ``-.inf``, ``.nan``); ``None`` for keys it
    refuses (null, and integers that fit no signed 64 bits)."""
    if isinstance(value, str):
        return value
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value) if -(2**63) <= value < 2**63 else None
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return _go_shortest_g(value, _float32_shortest(value))
    return None


def _go_shortest_g(value: float, shortest: str | None = None) -> str:
    """Go's ``strconv.FormatFloat(value, 'g', -1, 64)`` (shortest digits; %e when exp < -4 or >= 6);
    ``shortest`` gives other digits to print (a 32-bit float's)."""
    sign, digits, exponent = decimal.Decimal(shortest or repr(value)).normalize().as_tuple()
    ds = "".join(map(str, digits)) or "0"
    dp = len(ds) + int(exponent)
    exp = dp - 1
    neg = "-" if sign else ""
    if exp < -4 or exp >= 6:
        mant = ds[0] + ("." + ds[1:] if len(ds) > 1 else "")
        return f"{neg}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{ds}"
    if dp >= len(ds):
        return f"{neg}{ds}{'0' * (dp - len(ds))}"
    return f"{neg}{ds[:dp]}.{ds[dp:]}"


def json_scalar_text(value: Any) -> str:
    """The text of a scalar after kustomize converted its object to JSON and back (a JSON patch): Go's
    ``encoding/json`` spelling (``null``, ``true``, ``31``, ``1.5``, ``1e-7``, ``1e+21``).

    Raises:
        RenderError: for NaN and infinities, which JSON cannot hold.
    """
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            raise RenderError(f"json: unsupported value: {value!r}")
        a = abs(value)
        if a != 0 and (a < 1e-6 or a >= 1e21):
            text = _go_shortest_g(value)
            return re.sub(r"e-0(\d)$", r"e-\1", text)
        sign, digits, exponent = decimal.Decimal(repr(value)).normalize().as_tuple()
        return f"{'-' if sign else ''}{decimal.Decimal((0, digits, int(exponent))):f}"
    return str(value)


def format_scalar_float(value: float) -> str:
    """The text of a float scalar as kustomize compares it (NaN/infinity as YAML spells them)."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    return _format_float(value)


def _format_float(value: float) -> str:
    """Print a float as `kustomize build` does: Go's JSON encoding of the value read back and written by
    go-yaml v2 (integral values that fit 64 bits become integers, others use ``FormatFloat('g', -1)``)."""
    if math.isnan(value) or math.isinf(value):
        raise RenderError(f"json: unsupported value: {value!r} (NaN and infinities have no JSON form)")
    if value == int(value) and abs(value) < 1e21:
        iv = int(value)
        if abs(iv) <= 2**53:
            return str(iv)
        # JSON writes the shortest digits that read back as this float, padded with zeros
        text = json_scalar_text(value)
        if -(2**63) <= int(text) < 2**64:
            return text
    return _go_shortest_g(value)


def dump_object(obj: dict[str, Any]) -> str:
    """Serialise one object as `kustomize build` prints it (without the ``---`` separator)."""
    em = _Emitter()
    em.node(obj, mapping_ctx=False)
    text = "".join(em.out)
    if not text.endswith("\n"):
        text += "\n"
    return text


def dump_yaml(objects: list[dict[str, Any]]) -> str:
    """Serialise objects exactly as `kustomize build` prints them.

    Args:
        objects: rendered objects (plain dicts as returned by ``build``).

    Returns:
        The documents joined by ``---`` lines; ``""`` for an empty list.
    """
    return "---\n".join(dump_object(o) for o in objects)
