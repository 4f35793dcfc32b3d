"""YAML held inside a string field, edited as kustomize v5.8.1's replacements edit it.

A replacement whose field path goes on past a string field whose text is YAML (``data.config\\.yaml.db.host``)
sets the field inside that YAML (``setValueInStructuredData`` in the kustomize api module's
``filters/replacement``): the text is parsed into go-yaml v3 nodes, the fields are set in the nodes and the
text is written again by kyaml's encoder (go-yaml v3 with two-space indentation and sequences not indented
under their key, no line folding), white space around it trimmed. So keys keep their order and every
scalar its style (plain, quoted, literal) and tag: a target that held a number keeps the ``!!int`` tag and,
given a text that is no number, is written ``!!int text``; a string that would read as another type is
double-quoted; a field the replacement creates is untagged and written plain where it can be.

Not modelled, and refused with an error naming the kustomization instead of writing other text than
kustomize: a mapping or sequence as the source (kustomize writes its nodes in the styles of the source's
file, which the renderer does not keep), comments (kyaml keeps them), anchors and aliases, tags on
mappings and sequences, non-empty flow collections, folded (``>``) scalars, several documents and keys
longer than 128 characters. Text that starts with ``{`` or ``[`` is JSON and handled in
:mod:`reconciler.render.replacements`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from reconciler.render.patches import scalar_text
from reconciler.render.yamlio import YamlTimestamp, _Analysis, _Emitter, resolve_plain

_STYLES = {None: "plain", "": "plain", "'": "single", '"': "double", "|": "literal"}
_UNSUPPORTED_TOKENS = {
    yaml.AnchorToken: "anchors",
    yaml.AliasToken: "aliases",
    yaml.DirectiveToken: "directives",
    yaml.DocumentStartToken: "document markers",
    yaml.DocumentEndToken: "document markers",
}
_COMMENT = re.compile(r"(?:^|[ \t])#", re.M)
_IMPLICIT = "?"  # the tag our loader gives a node without an explicit one
_SHORT = "tag:yaml.org,2002:"


class _NodeLoader(yaml.SafeLoader):
    """Composes nodes without resolving implicit tags (go-yaml v3 resolves them; see resolved_tag)."""

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        return _IMPLICIT


@dataclass
class YamlScalar:
    """A scalar node of the embedded YAML: its text, its short tag (``""`` for a node kustomize creates),
    its style (``plain``, ``single``, ``double``, ``literal``) and whether the tag was written
    (``!!int 5``)."""

    text: str
    tag: str
    style: str
    explicit: bool = False

    def __str__(self) -> str:
        return self.text


class YamlMapping(dict[str, Any]):
    """A mapping node of the embedded YAML; ``keys_as`` holds each key's tag and style as written."""

    keys_as: dict[str, tuple[str, str]]

    def __init__(self) -> None:
        super().__init__()
        self.keys_as = {}


def resolved_tag(text: str) -> str:
    """The tag go-yaml v3 resolves an untagged plain scalar to (``!!str``, ``!!int``, ``!!null``...)."""
    value = resolve_plain(text) if text else None
    if value is None:
        return "!!null"
    if isinstance(value, bool):
        return "!!bool"
    if isinstance(value, int):
        return "!!int"
    if isinstance(value, float):
        return "!!float"
    return "!!timestamp" if isinstance(value, YamlTimestamp) else "!!str"


class _Unsupported(Exception):
    pass


def parse_embedded_yaml(text: str) -> tuple[Any, str | None] | None:
    """The node tree of the YAML ``text`` holds (:class:`YamlMapping`, lists and :class:`YamlScalar`) and
    what in it is not modelled (``"comments"``, ``"anchors"``... or ``None``); ``None`` when the text is no
    YAML (go-yaml v3 would not parse it: kustomize then follows the field path as usual). An empty text
    gives a ``None`` tree."""
    try:
        tokens = list(yaml.scan(text, Loader=yaml.SafeLoader))
        nodes = list(yaml.compose_all(text, Loader=_NodeLoader))
    except yaml.YAMLError:
        return None
    except RecursionError:
        return None
    problem = next(
        (what for token in tokens for kind, what in _UNSUPPORTED_TOKENS.items() if isinstance(token, kind)),
        "comments" if _COMMENT.search(text) else None,
    )
    if not nodes:
        return None, problem
    try:
        tree = _tree(nodes[0])
    except _Unsupported as exc:
        return None if str(exc) == "" else (None, str(exc))
    return tree, problem or ("several documents" if len(nodes) > 1 else None)


def _tree(node: Node) -> Any:
    if isinstance(node, ScalarNode):
        if node.style not in _STYLES:
            raise _Unsupported("folded (>) scalars")
        style = _STYLES[node.style]
        if node.tag != _IMPLICIT:
            tag = "!!" + node.tag[len(_SHORT) :] if node.tag.startswith(_SHORT) else node.tag
            return YamlScalar(node.value, tag, style, explicit=True)
        return YamlScalar(node.value, resolved_tag(node.value) if style == "plain" else "!!str", style)
    if node.tag != _IMPLICIT:
        raise _Unsupported("explicit tags on mappings and sequences")
    if isinstance(node, (MappingNode, SequenceNode)) and node.flow_style and node.value:
        raise _Unsupported("flow collections")
    if isinstance(node, SequenceNode):
        return [_tree(item) for item in node.value]
    assert isinstance(node, MappingNode)
    out = YamlMapping()
    for knode, vnode in node.value:
        if not isinstance(knode, ScalarNode) or knode.style not in _STYLES or knode.tag != _IMPLICIT:
            raise _Unsupported("complex or tagged keys")
        key = knode.value
        if key in out:
            raise _Unsupported("")  # go-yaml v3 refuses duplicate keys: no YAML to kustomize
        if len(key) > 128:
            raise _Unsupported("keys longer than 128 characters")
        style = _STYLES[knode.style]
        out.keys_as[key] = (resolved_tag(key) if style == "plain" else "!!str", style)
        out[key] = _tree(vnode)
    return out


def set_embedded(container: Any, key: Any, value: Any, created: bool) -> None:
    """Set ``container[key]`` to the text of the replacement's scalar source ``value`` as kustomize does in
    embedded YAML: a scalar target keeps its tag and style and takes the text; a mapping or sequence
    target becomes the scalar; a created field is untagged."""
    text = scalar_text(value)
    target = container[key]
    if isinstance(target, YamlScalar) and not created:
        container[key] = YamlScalar(text, target.tag, target.style, target.explicit)
    elif isinstance(target, (dict, list)) and not created:
        container[key] = _python_scalar(value)
    elif created:
        container[key] = YamlScalar(text, "", "plain")
    else:  # a scalar kustomize's path search wrote (a list element it appended)
        container[key] = YamlScalar(text, resolved_tag(scalar_text(target)), "plain")


def dump_embedded_yaml(tree: Any) -> str:
    """The text kyaml writes for ``tree`` (``RNode.String()``), trimmed as kustomize trims it."""
    emitter = _V3Emitter()
    emitter.node(tree, mapping_ctx=False)
    return "".join(emitter.out).strip()


def _python_scalar(value: Any) -> YamlScalar:
    """A source value's scalar: the tag of its type, plain (quoted by the encoder when needed)."""
    text = scalar_text(value)
    if value is None:
        return YamlScalar("null", "!!null", "plain")
    if isinstance(value, bool):
        return YamlScalar(text, "!!bool", "plain")
    if isinstance(value, int):
        return YamlScalar(text, "!!int", "plain")
    if isinstance(value, float):
        return YamlScalar(text, "!!float", "plain")
    return YamlScalar(text, "!!str", "plain")


class _V3Emitter(_Emitter):
    """go-yaml v3's encoder of a node tree as kyaml configures it (see the module docstring)."""

    width = (1 << 31) - 1

    def node(self, value: Any, *, mapping_ctx: bool, simple_key: bool = False) -> None:
        if isinstance(value, (dict, list)):
            super().node(value, mapping_ctx=mapping_ctx, simple_key=simple_key)
        elif isinstance(value, YamlScalar):
            self.node_scalar(value, simple_key)
        else:
            self.node_scalar(_python_scalar(value), simple_key)

    def mapping(self, value: dict[str, Any]) -> None:
        saved = self.indent
        self.indent = 0 if self.indent < 0 else self.indent + 2
        keys_as = value.keys_as if isinstance(value, YamlMapping) else {}
        for key, item in value.items():
            self.write_indent()
            tag, style = keys_as.get(key, ("", "plain"))
            self.node_scalar(YamlScalar(key, tag, style), True)
            self.write_indicator(":", False, False, False)
            self.node(item, mapping_ctx=True)
        self.indent = saved

    def node_scalar(self, node: YamlScalar, simple_key: bool) -> None:
        text, tag, force = node.text, node.tag, False
        if tag and not node.explicit:
            if (tag == "!!str" and node.style != "plain") or resolved_tag(text) == tag:
                tag = ""
            elif tag == "!!str":
                tag, force = "", True
        style = node.style
        if style == "plain" and "\n" in text:
            style = "literal"
        elif style == "plain" and force:
            style = "double"
        analysis = _Analysis(text)
        if simple_key and analysis.multiline:
            style = "double"
        if style == "plain" and (not analysis.block_plain_allowed or (not text and simple_key)):
            style = "single"
        if style == "single" and not analysis.single_quoted_allowed:
            style = "double"
        if style == "literal" and (not analysis.block_allowed or simple_key):
            style = "double"
        if tag:
            self.write_indicator(tag, True, False, False)
        saved = self.indent
        self.indent = 2 if self.indent < 0 else self.indent + 2
        if style == "plain":
            if text:
                self.write_plain(text, not simple_key)
        elif style == "single":
            self.write_single(text, not simple_key)
        elif style == "double":
            self.write_double(text, not simple_key)
        else:
            self.write_literal(text)
        self.indent = saved
