"""Safe YAML loading and `kustomize build`-identical YAML output.

Loading uses ruamel.yaml's pure-Python safe loader (YAML 1.2 core schema, as kustomize's kyaml/yaml.v3
reads manifests): duplicate keys are rejected, timestamps stay strings (yaml.v3 keeps timestamp-looking
scalars as strings when decoding into untyped values), alias expansion is bounded.

Output follows what `kustomize build` does (api/resource.AsYAML): each object is converted to JSON and then
to YAML with sigs.k8s.io/yaml's JSONToYAML, i.e. go-yaml v2 (`go.yaml.in/yaml/v2`) with its defaults:
map keys sorted by go-yaml's "natural" key order, two-space indentation, block sequences not indented
under a mapping key, 80-column line folding of long plain/quoted scalars, literal block style for strings
containing a newline, double quotes for strings that would otherwise read back as another type. The scalar
analysis and writing rules below follow go-yaml v2's emitter (a port of libyaml's emitter.c).
"""

from __future__ import annotations

import io
import json
import math
import re
import unicodedata
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.constructor import SafeConstructor
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.render.errors import RenderError

#: Upper bound on the number of nodes a document may expand to through aliases ("billion laughs").
MAX_EXPANDED_NODES = 1_000_000


class _Constructor(SafeConstructor):
    """Safe constructor that keeps timestamps as strings and rejects duplicate keys."""


def _timestamp_as_string(constructor: SafeConstructor, node: ScalarNode) -> str:
    return str(node.value)


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _timestamp_as_string)


def _new_yaml() -> YAML:
    y = YAML(typ="safe", pure=True)
    y.Constructor = _Constructor
    y.allow_duplicate_keys = False
    return y


def _expanded_size(node: Node, memo: dict[int, int], depth: int = 0) -> int:
    """Number of nodes ``node`` expands to when aliases are copied out (memoised per node identity)."""
    key = id(node)
    if key in memo:
        return memo[key]
    if depth > 1000:
        raise ValueError("nesting deeper than 1000 levels")
    memo[key] = 1  # recursive structures count once while being measured
    total = 1
    if isinstance(node, SequenceNode):
        for child in node.value:
            total += _expanded_size(child, memo, depth + 1)
    elif isinstance(node, MappingNode):
        for k, v in node.value:
            total += _expanded_size(k, memo, depth + 1) + _expanded_size(v, memo, depth + 1)
    if total > MAX_EXPANDED_NODES:
        raise ValueError(f"document expands to more than {MAX_EXPANDED_NODES} nodes through aliases")
    memo[key] = total
    return total


def _plain(value: Any, path: str, line: int) -> Any:
    """Deep-copy a constructed value into plain dict/list/scalars with str keys."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if isinstance(k, bool) or k is None:
                key = json.dumps(k)
            elif isinstance(k, (int, float, str)):
                key = str(k)
            else:
                raise RenderError(f"mapping key {k!r} is not a scalar", path=path, line=line)
            out[key] = _plain(v, path, line)
        return out
    if isinstance(value, list):
        return [_plain(v, path, line) for v in value]
    if isinstance(value, bytes):
        import base64

        return base64.b64encode(value).decode()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def load_yaml_documents(text: str, *, path: str) -> list[dict[str, Any]]:
    """Load every document of a multi-document YAML stream as a plain dict.

    Args:
        text: the YAML source (``---``-separated documents).
        path: the file name used in error messages.

    Returns:
        One dict per non-empty document, in file order (str keys; values dict/list/str/int/float/bool/None).
        Empty documents (only comments or nothing) are skipped; so is a document that is exactly a list of
        objects? No: a top-level list is an error, like every other non-mapping document, except that a
        ``kind: List`` object is returned as is (the caller flattens it).

    Raises:
        RenderError: naming ``path`` and the 1-based line for invalid YAML, duplicate keys, documents that
            are not mappings, and alias expansion beyond :data:`MAX_EXPANDED_NODES` nodes.
    """
    y = _new_yaml()
    docs: list[dict[str, Any]] = []
    try:
        for node in y.compose_all(io.StringIO(text)):
            if node is None:
                continue
            line = node.start_mark.line + 1
            if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null":
                continue
            try:
                _expanded_size(node, {})
            except ValueError as exc:
                raise RenderError(str(exc), path=path, line=line) from None
            if not isinstance(node, MappingNode):
                raise RenderError(
                    "document is not a mapping (expected a Kubernetes object)", path=path, line=line
                )
            constructor = y.constructor
            value = constructor.construct_document(node)
            docs.append(_plain(value, path, line))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line_no = mark.line + 1 if mark is not None else None
        problem = exc.problem or exc.context or "invalid YAML"
        raise RenderError(f"invalid YAML: {problem}", path=path, line=line_no) from None
    except YAMLError as exc:
        raise RenderError(f"invalid YAML: {exc}", path=path) from None
    except RecursionError:
        raise RenderError("invalid YAML: nesting too deep", path=path) from None
    return docs


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
_GO_FLOAT = re.compile(
    r"^[+-]?(?:(?:[0-9](?:_?[0-9])*)?\.?(?:[0-9](?:_?[0-9])*)?(?:[eE][+-]?[0-9]+)?|inf|infinity|nan)$",
    re.IGNORECASE,
)
_TIMESTAMP = re.compile(
    r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}"
    r"(?:(?:[Tt]| )[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:\.[0-9]{1,9})?(?:Z|[+-][0-9]{2}:[0-9]{2})?)?$"
)


def _go_parse_int(s: str) -> bool:
    """Whether Go's ``strconv.ParseInt(s, 0, 64)`` or ``ParseUint(s, 0, 64)`` accepts ``s``."""
    body = s
    neg = False
    if body[:1] in "+-" and body:
        neg = body[0] == "-"
        body = body[1:]
    if not body:
        return False
    low = body.lower()
    try:
        if low.startswith("0x"):
            v = int(body[2:], 16) if body[2:] and re.fullmatch(r"[0-9a-fA-F]+", body[2:]) else None
        elif low.startswith("0o"):
            v = int(body[2:], 8) if re.fullmatch(r"[0-7]+", body[2:]) else None
        elif low.startswith("0b"):
            v = int(body[2:], 2) if re.fullmatch(r"[01]+", body[2:]) else None
        elif body.startswith("0") and len(body) > 1:
            v = int(body[1:], 8) if re.fullmatch(r"[0-7]+", body[1:]) else None
        else:
            v = int(body) if re.fullmatch(r"[0-9]+", body) else None
    except ValueError:
        return False
    if v is None:
        return False
    if neg:
        return v <= 2**63
    return v < 2**64


def _valid_timestamp(s: str) -> bool:
    if not _TIMESTAMP.match(s):
        return False
    parts = re.split(r"[-Tt :.Z+]", s)
    try:
        month, day = int(parts[1]), int(parts[2])
    except (ValueError, IndexError):
        return False
    return 1 <= month <= 12 and 1 <= day <= 31


def _resolves_to_non_string(s: str) -> bool:
    """Whether go-yaml v2 would read the plain scalar ``s`` as something other than a string."""
    if s in _RESOLVE_MAP:
        return True
    c = s[0]
    if c == ".":
        return bool(_GO_FLOAT.match(s)) and s not in (".",) and any(ch.isdigit() for ch in s)
    if c in "+-0123456789":
        if _valid_timestamp(s):
            return True
        plain = s.replace("_", "")
        if _go_parse_int(plain):
            return True
        if _YAML_FLOAT.match(plain):
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


def _sorted_keys(keys: list[str]) -> list[str]:
    import functools

    def cmp(x: str, y: str) -> int:
        if _key_less(x, y):
            return -1
        if _key_less(y, x):
            return 1
        return 0

    return sorted(keys, key=functools.cmp_to_key(cmp))


class _Emitter:
    """Block-style emitter reproducing go-yaml v2's output for JSON-shaped data."""

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
            self.scalar(key, True)
            self.write_indicator(":", False, False, False)
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
        else:
            text = str(value)
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
        spaces = False
        n = len(value)
        i = 0
        while i < n:
            ch = value[i]
            if ch == " ":
                nxt_space = i + 1 < n and value[i + 1] == " "
                if allow_breaks and not spaces and self.column > _BEST_WIDTH and not nxt_space:
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
                    and self.column > _BEST_WIDTH
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
                self.put_break()
                self.indention = True
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
        for i, ch in enumerate(value):
            o = ord(ch)
            if not _is_printable(ch) or (ch == "\ufeff" and i == 0) or ch in _BREAKS or ch in '"\\':
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
                if allow_breaks and not spaces and self.column > _BEST_WIDTH and 0 < i < n - 1:
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
                self.put_break()
                self.indention = True
                breaks = True
            else:
                if breaks:
                    self.write_indent()
                self.put(ch)
                self.indention = False
                breaks = False


def _format_float(value: float) -> str:
    """Format a float the way a JSON round trip through Go and go-yaml v2 prints it."""
    if math.isnan(value):
        return ".nan"
    if math.isinf(value):
        return ".inf" if value > 0 else "-.inf"
    if value == int(value) and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mant, _, exp = text.partition("e")
        sign = "-" if exp.startswith("-") else "+"
        digits = exp.lstrip("+-").rjust(2, "0")
        text = f"{mant}e{sign}{digits}"
    return text


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
