"""Selecting resources: Kubernetes label selectors and kustomize's patch/replacement target selectors.

Label selectors are parsed as k8s.io/apimachinery's ``labels.Parse`` does (the copy kustomize's kyaml
embeds): comma-separated requirements ``key``, ``!key``, ``key=value``, ``key==value``, ``key!=value``,
``key in (a,b)``, ``key notin (a,b)``, ``key>1``, ``key<1``, keys validated as qualified names and values as
label values. ``!=`` and ``notin`` also match objects without the key.

Targets (kustomize's ``types.Selector`` with ``SelectorRegex``): group, version, kind, name and namespace
are regular expressions matched against the whole value; for patches a name matches the original or the
current name, a namespace the original or current *effective* namespace (``default`` when unset), plus the
label and annotation selectors.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from typing import Any

from reconciler.render.errors import RenderError
from reconciler.render.patterns import full_match
from reconciler.render.resource import ResId, ResMap, Resource

_SPECIAL = "=!(),><"
_WS = " \t\r\n"
_TOKENS = {
    ")": ")",
    ",": ",",
    "!": "!",
    "==": "==",
    "=": "=",
    ">": ">",
    "in": "in",
    "<": "<",
    "!=": "!=",
    "notin": "notin",
    "(": "(",
}
_ID = "id"
_END = "end"
_ERR = "error"

_NAME = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
_DNS1123_SUB = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


def _lex(text: str) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    i, n = 0, len(text)
    while True:
        while i < n and text[i] in _WS:
            i += 1
        if i >= n:
            out.append((_END, ""))
            return out
        if text[i] in _SPECIAL:
            buf = ""
            last: tuple[str, str] | None = None
            while i < n and text[i] in _SPECIAL:
                buf += text[i]
                if buf in _TOKENS:
                    last = (_TOKENS[buf], buf)
                    i += 1
                elif last is not None:
                    break
                else:
                    i += 1
            if last is None:
                out.append((_ERR, f"error expected: keyword found '{buf}'"))
            else:
                out.append(last)
            continue
        start = i
        while i < n and text[i] not in _SPECIAL and text[i] not in _WS:
            i += 1
        word = text[start:i]
        out.append((_TOKENS[word], word) if word in ("in", "notin") else (_ID, word))


def _validate_key(key: str) -> str | None:
    prefix, sep, name = key.rpartition("/")
    if sep and (not prefix or len(prefix) > 253 or not _DNS1123_SUB.match(prefix)):
        return f"invalid label key {key!r}: prefix part must be a lowercase DNS subdomain"
    if not name or len(name) > 63 or not _NAME.match(name):
        return f"invalid label key {key!r}: name part must consist of alphanumerics, '-', '_' or '.'"
    return None


def _validate_value(value: str) -> str | None:
    if len(value) > 63 or not _LABEL_VALUE.match(value):
        return f"invalid label value {value!r}: at most 63 alphanumerics, '-', '_' or '.'"
    return None


@dataclass(frozen=True)
class Requirement:
    """One parsed label-selector requirement."""

    key: str
    op: str
    values: tuple[str, ...]

    def matches(self, labels: dict[str, str]) -> bool:
        """Whether ``labels`` satisfies the requirement."""
        has = self.key in labels
        if self.op in ("in", "=", "=="):
            return has and labels[self.key] in self.values
        if self.op in ("notin", "!="):
            return not has or labels[self.key] not in self.values
        if self.op == "exists":
            return has
        if self.op == "!":
            return not has
        if not has:
            return False
        try:
            mine, theirs = int(labels[self.key], 10), int(self.values[0], 10)
        except ValueError:
            return False
        return mine > theirs if self.op == ">" else mine < theirs


@functools.lru_cache(maxsize=512)
def parse_label_selector(text: str) -> tuple[Requirement, ...]:
    """Parse a label selector (k8s.io/apimachinery ``labels.Parse``, see :class:`_SelectorParser`).

    Raises:
        ValueError: with the parser's message for invalid selectors.
    """
    return _SelectorParser(text).selector()


class _SelectorParser:
    """The label selector grammar of k8s.io/apimachinery ``pkg/labels`` over :func:`_lex`'s tokens:
    requirements separated by commas, each ``[!]key``, ``key op value`` or ``key in|notin (values)``."""

    def __init__(self, text: str) -> None:
        self.toks = _lex(text)
        self.pos = 0

    def look(self, values: bool = True) -> tuple[str, str]:
        """The next token without taking it; ``values``: ``in``/``notin`` read as identifiers."""
        tok, lit = self.toks[self.pos]
        if values and tok in ("in", "notin"):
            tok = _ID
        return tok, lit

    def take(self, values: bool = True) -> tuple[str, str]:
        t = self.look(values)
        self.pos += 1
        return t

    def selector(self) -> tuple[Requirement, ...]:
        """Every requirement up to the end of the text."""
        reqs: list[Requirement] = []
        while True:
            tok, lit = self.look()
            if tok == _END:
                return tuple(reqs)
            if tok not in (_ID, "!"):
                raise ValueError(f"found '{lit}', expected: !, identifier, or 'end of string'")
            reqs.append(self.requirement())
            t, lit = self.take()
            if t == _END:
                return tuple(reqs)
            if t != ",":
                raise ValueError(f"found '{lit}', expected: ',' or 'end of string'")
            t2, lit2 = self.look()
            if t2 not in (_ID, "!"):
                raise ValueError(f"found '{lit2}', expected: identifier after ','")

    def requirement(self) -> Requirement:
        """One requirement: ``!key`` (does not exist), ``key`` (exists) or a key, operator and values."""
        op = ""
        tok, lit = self.take()
        if tok == "!":
            op = "!"
            tok, lit = self.take()
        if tok != _ID:
            raise ValueError(f"unable to parse requirement: found '{lit}', expected: identifier")
        key = lit
        err = _validate_key(key)
        if err:
            raise ValueError(f"unable to parse requirement: {err}")
        values: set[str] = set()
        if self.look()[0] in (_END, ","):
            if op != "!":
                op = "exists"
        elif op == "!":
            raise ValueError(
                f"unable to parse requirement: found '{self.look()[1]}', expected: ',' or 'end of string'"
            )
        else:
            op = self.operator()
            values = self.value_set() if op in ("in", "notin") else self.exact_value(op)
            for v in values:
                verr = _validate_value(v)
                if verr:
                    raise ValueError(f"unable to parse requirement: {verr}")
        return Requirement(key, op, tuple(sorted(values)))

    def operator(self) -> str:
        otok, olit = self.take(values=False)
        if otok not in ("in", "notin", "=", "==", "!=", ">", "<"):
            raise ValueError(
                f"unable to parse requirement: found '{olit}', expected: '=', '!=', '==', 'in', notin'"
            )
        return otok

    def value_set(self) -> set[str]:
        """The parenthesised values of ``in``/``notin`` (an empty or missing item is the empty string)."""
        values: set[str] = set()
        t, lit2 = self.take()
        if t != "(":
            raise ValueError(f"unable to parse requirement: found '{lit2}' expected: '('")
        t, lit2 = self.look()
        if t == ")":
            self.take()
            values.add("")
        elif t in (_ID, ","):
            self.identifiers(values)
            t, _ = self.take()
            if t != ")":
                raise ValueError(f"unable to parse requirement: found '{lit2}', expected: ')'")
        else:
            raise ValueError(f"unable to parse requirement: found '{lit2}', expected: ',', ')' or identifier")
        if not values:
            raise ValueError(
                "unable to parse requirement: for 'in', 'notin' operators, values set can't be empty"
            )
        return values

    def identifiers(self, values: set[str]) -> None:
        """The comma-separated identifiers of a value set, up to (not taking) the closing parenthesis."""
        while True:
            t, lit3 = self.take()
            if t == _ID:
                values.add(lit3)
                t2, lit4 = self.look()
                if t2 == ",":
                    continue
                if t2 == ")":
                    return
                raise ValueError(f"unable to parse requirement: found '{lit4}', expected: ',' or ')'")
            if t == ",":
                if not values:
                    values.add("")
                t2, _ = self.look()
                if t2 == ")":
                    values.add("")
                    return
                if t2 == ",":
                    self.take()
                    values.add("")
                continue
            raise ValueError(f"unable to parse requirement: found '{lit3}', expected: ',', or identifier")

    def exact_value(self, op: str) -> set[str]:
        """The one value after ``=``, ``==``, ``!=``, ``>`` or ``<`` (an integer for the last two)."""
        values: set[str] = set()
        t, lit3 = self.look()
        if t in (_END, ","):
            values.add("")
        else:
            t, lit3 = self.take()
            if t != _ID:
                raise ValueError(f"unable to parse requirement: found '{lit3}', expected: identifier")
            values.add(lit3)
        if op in (">", "<"):
            try:
                int(next(iter(values)), 10)
            except ValueError:
                raise ValueError(
                    "unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer"
                ) from None
        return values


def selector_matches(text: str, values: dict[str, str], *, where: str | None = None) -> bool:
    """Whether a label selector ``text`` matches the string map ``values`` (empty selector: always).

    Raises:
        RenderError: for an invalid selector.
    """
    if not text:
        return True
    try:
        reqs = parse_label_selector(text)
    except ValueError as exc:
        raise RenderError(f"invalid selector {text!r}: {exc}", path=where) from None
    return all(r.matches(values) for r in reqs)


def _string_map(res: Resource, field: str) -> dict[str, str]:
    meta = res.obj.get("metadata")
    raw = meta.get(field) if isinstance(meta, dict) else None
    if not isinstance(raw, dict):
        return {}
    out = {}
    for k, v in raw.items():
        if isinstance(v, (dict, list)) or v is None:
            out[k] = ""
        elif v is True or v is False:
            out[k] = "true" if v else "false"
        else:
            out[k] = str(v)
    return out


def matches_selector(
    res: Resource, sel: dict[str, Any], *, labels_only: bool = False, where: str | None = None
) -> bool:
    """The label and annotation selectors of ``sel`` match ``res``."""
    return selector_matches(
        str(sel.get("labelSelector") or ""), _string_map(res, "labels"), where=where
    ) and (
        selector_matches(
            str(sel.get("annotationSelector") or ""), _string_map(res, "annotations"), where=where
        )
    )


def _rx_match(pattern: str, value: str, where: str | None) -> bool:
    if not pattern:
        return True
    return full_match("^(?:" + pattern + ")$", value, where=where)


def gvk_regex_matches(
    sel: dict[str, Any], group: str, version: str, kind: str, *, where: str | None = None
) -> bool:
    """kustomize's ``SelectorRegex.MatchGvk``."""
    return (
        _rx_match(str(sel.get("group") or ""), group, where)
        and _rx_match(str(sel.get("version") or ""), version, where)
        and _rx_match(str(sel.get("kind") or ""), kind, where)
    )


def selector_regex_matches(sel: dict[str, Any], rid: ResId, *, where: str | None = None) -> bool:
    """kustomize's ``TargetSelectorRegex.Selects``: gvk, name and (raw) namespace regular expressions."""
    return (
        gvk_regex_matches(sel, rid.group, rid.version, rid.kind, where=where)
        and _rx_match(str(sel.get("name") or ""), rid.name, where)
        and _rx_match(str(sel.get("namespace") or ""), rid.namespace, where)
    )


_TARGET_FIELDS = {"group", "version", "kind", "name", "namespace", "labelSelector", "annotationSelector"}


def check_target(target: Any, *, where: str | None) -> dict[str, Any]:
    """Validate a patch ``target`` mapping.

    Raises:
        RenderError: for a non-mapping target or unknown fields.
    """
    if not isinstance(target, dict):
        raise RenderError("patch target must be a mapping", path=where)
    unknown = set(target) - _TARGET_FIELDS
    if unknown:
        raise RenderError(f"patch target: unknown field(s) {sorted(unknown)}", path=where)
    return target


def select(resmap: ResMap, target: dict[str, Any], *, where: str | None = None) -> list[Resource]:
    """Resources selected by a patch ``target`` (kustomize's ``ResMap.Select``)."""
    name = str(target.get("name") or "")
    ns = str(target.get("namespace") or "")
    out = []
    for res in resmap:
        cur, org = res.cur_id(), res.org_id()
        if ns and not (
            _rx_match(ns, org.effective_namespace, where) or _rx_match(ns, cur.effective_namespace, where)
        ):
            continue
        if name and not (_rx_match(name, org.name, where) or _rx_match(name, cur.name, where)):
            continue
        if not gvk_regex_matches(target, cur.group, cur.version, cur.kind, where=where):
            continue
        if not matches_selector(res, target, where=where):
            continue
        out.append(res)
    return out
