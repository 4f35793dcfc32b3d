"""Turn kustomize's own `api/krusty` Go tests into kustomization directories on disk.

kustomize's `api/krusty/*_test.go` files (shipped in the `sigs.k8s.io/kustomize/api` Go module that
tools/controlplane/kustomize builds from) describe each test as a small in-memory file tree written
through a test harness, followed by a build::

    th := kusttest_test.MakeHarness(t)
    th.WriteF("base/deployment.yaml", `...`)
    th.WriteK("base", `...`)        // base/kustomization.yaml, with a Kustomization header prepended
    m := th.Run("base", th.MakeDefaultOptions())
    th.AssertActualEqualsExpected(m, `...`)

This module reads those files at test time (they are never copied into this repository) and replays
the harness calls it understands into :class:`KrustyCase` values; :func:`materialize` writes a case
to a directory so that both the real `kustomize build` and our renderer can run on it. Only the
*inputs* are taken from the Go tests: the expected output is whatever the real kustomize prints.

What is understood (anything else makes the whole test function skipped, counted by reason):

* a tiny Go lexer (raw and interpreted string literals, comments, automatic semicolons) and a
  statement splitter, enough for gofmt-formatted test code;
* string expressions: backquoted (raw) literals, double-quoted literals with Go escapes, ``+``
  concatenation, parentheses, ``filepath.Join``/``path.Join``, and identifiers bound to such strings
  (locals, parameters, package-level ``const``/``var`` of any file of the package);
* harness calls ``WriteK``, ``WriteC``, ``WriteF``, ``Run``/``RunWithErr`` with default options
  (``MakeDefaultOptions``/``MakeOptionsPluginsDisabled``, directly or through an unmodified options
  variable); every ``Run`` is one case (a test function building twice yields ``Name`` and ``Name#2``);
* package helper functions taking the harness and string parameters (``writeBase(th)``), replayed
  inline;
* statements that touch neither the harness nor a helper (assertions, ``if err != nil`` ...) are
  ignored: they only check results.

The in-memory file system of the harness is rooted at ``/``; relative and absolute paths both map to
the case's root directory.
"""

from __future__ import annotations

import posixpath
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

# What the harness puts before the text given to WriteK / WriteC (the file is kustomization.yaml).
_KUSTOMIZATION_HEADER = "\napiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"
_COMPONENT_HEADER = "\napiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\n"
_KUSTOMIZATION_FILE = "kustomization.yaml"
_KUSTOMIZATION_NAMES = frozenset({"kustomization.yaml", "kustomization.yml", "Kustomization"})

_DEFAULT_OPTIONS = frozenset({"MakeDefaultOptions", "MakeOptionsPluginsDisabled"})
_REMOTE = re.compile(r"(?:https?|ssh|file|git)://|git@|github\.com/|gitlab\.com/|bitbucket\.org/")

# Scans of a test function's tokens (joined by spaces, helpers' bodies included) done before replaying
# it, in order: the first hit names the skip reason.
_SCANS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("Helm", re.compile(r"helm", re.I)),
    (
        "plugins",
        re.compile(
            r"\b(?:MakeEnhancedHarness|MakeOptionsPluginsEnabled|PrepBuiltin|BuildGoPlugin|PrepExecPlugin)\b"
        ),
    ),
    (
        "fsys tricks",
        re.compile(r"\b(?:GetFSys|MakeHarnessWithFs|MakeFsOnDisk|MakeKustomizer)\b|\bfilesys \. "),
    ),
    ("reads files from disk (os.*)", re.compile(r"\bos \. ")),
    ("WriteLegacyConfigs", re.compile(r"\bWriteLegacyConfigs\b")),
)


class Unsupported(Exception):
    """The extractor cannot replay a test function; ``reason`` is the (countable) category."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class KrustyCase:
    """One build of one Go test function: the files written before it, and where it ran."""

    name: str  # Go test function name, "#2"... for its later builds
    source: str  # the _test.go file it came from
    files: dict[str, str]  # POSIX path relative to the case root -> content
    target: str  # the built directory relative to the case root ("." for the root)
    expect_error: bool  # the Go test used RunWithErr


@dataclass
class Extraction:
    """Everything found in one krusty directory."""

    cases: list[KrustyCase] = field(default_factory=list)
    functions: int = 0  # Test* functions seen
    skipped: Counter[str] = field(default_factory=Counter)  # skip reason -> number of functions


# ---------------------------------------------------------------------------------------------- lexer

_TOKEN = re.compile(
    r"""
     (?P<ws>[ \t\r\f]+)
    |(?P<nl>\n)
    |(?P<lcom>//[^\n]*)
    |(?P<bcom>/\*.*?\*/)
    |(?P<raw>`[^`]*`)
    |(?P<str>"(?:[^"\\\n]|\\.)*")
    |(?P<rune>'(?:[^'\\\n]|\\.)*')
    |(?P<ident>[^\W\d]\w*)
    |(?P<num>\.?\d(?:[eEpP][+-]|[\w.])*)
    |(?P<op>\.\.\.|&\^=|<<=|>>=|&&|\|\||<-|\+\+|--|==|!=|<=|>=|:=|[-+*/%&|^]=|<<|>>|&\^|[-+*/%&|^<>=!()\[\]{},;.:~])
    """,
    re.S | re.X,
)
_KEYWORDS_ENDING_STATEMENTS = frozenset({"break", "continue", "fallthrough", "return"})


@dataclass(frozen=True)
class Token:
    kind: str  # ident, num, raw, str, rune, op
    text: str


def tokenize(source: str) -> list[Token]:
    """Go tokens of ``source`` with the semicolons Go inserts at line ends; comments dropped."""
    out: list[Token] = []

    def newline() -> None:
        if not out:
            return
        last = out[-1]
        if (
            last.kind in {"num", "raw", "str", "rune"}
            or (last.kind == "ident")
            or last.text in {")", "]", "}", "++", "--"}
        ):
            out.append(Token("op", ";"))

    pos = 0
    while pos < len(source):
        m = _TOKEN.match(source, pos)
        if m is None:
            raise Unsupported(f"unlexable Go source near {source[pos : pos + 20]!r}")
        pos = m.end()
        kind = m.lastgroup
        assert kind is not None
        text = m.group()
        if kind == "nl" or (kind == "bcom" and "\n" in text):
            newline()
        elif kind not in {"ws", "lcom", "bcom"}:
            out.append(Token(kind, text))
    newline()
    return out


_ESCAPES = {"a": "\a", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", "v": "\v", "\\": "\\"}


def unquote(literal: str) -> str:
    """The value of a Go string literal (raw: verbatim minus carriage returns; interpreted: escapes)."""
    if literal.startswith("`"):
        return literal[1:-1].replace("\r", "")  # the Go spec drops CRs from raw strings
    body = literal[1:-1]
    out: list[str] = []
    raw_bytes = bytearray()  # \x and octal escapes are bytes, decoded as UTF-8 together

    def flush() -> None:
        if raw_bytes:
            out.append(raw_bytes.decode("utf-8", errors="surrogateescape"))
            raw_bytes.clear()

    i = 0
    while i < len(body):
        c = body[i]
        if c != "\\":
            flush()
            out.append(c)
            i += 1
            continue
        e = body[i + 1]
        if e in _ESCAPES or e == '"':
            flush()
            out.append(_ESCAPES.get(e, e))
            i += 2
        elif e == "x":
            raw_bytes.append(int(body[i + 2 : i + 4], 16))
            i += 4
        elif e in "01234567":
            raw_bytes.append(int(body[i + 1 : i + 4], 8))
            i += 4
        elif e in "uU":
            width = 4 if e == "u" else 8
            flush()
            out.append(chr(int(body[i + 2 : i + 2 + width], 16)))
            i += 2 + width
        else:
            raise Unsupported(f"unknown escape \\{e}")
    flush()
    return "".join(out)


# ------------------------------------------------------------------------------------- declarations


@dataclass(frozen=True)
class GoFunc:
    name: str
    params: list[tuple[str, str]]  # (name, type text)
    body: list[Token]  # tokens between the braces
    source: str  # file name


def _match(tokens: list[Token], start: int) -> int:
    """Index just past the bracket group opening at ``tokens[start]``."""
    pairs = {"(": ")", "[": "]", "{": "}"}
    depth = 0
    for i in range(start, len(tokens)):
        t = tokens[i]
        if t.kind != "op":
            continue
        if t.text in pairs:
            depth += 1
        elif t.text in pairs.values():
            depth -= 1
            if depth == 0:
                return i + 1
    raise Unsupported("unbalanced brackets")


def split_statements(tokens: list[Token]) -> list[list[Token]]:
    """Split a token run at the semicolons outside any bracket; empty statements dropped."""
    out: list[list[Token]] = []
    cur: list[Token] = []
    depth = 0
    for t in tokens:
        if t.kind == "op" and t.text in "([{":
            depth += 1
        elif t.kind == "op" and t.text in ")]}":
            depth -= 1
        if depth == 0 and t.kind == "op" and t.text == ";":
            if cur:
                out.append(cur)
            cur = []
        else:
            cur.append(t)
    if cur:
        out.append(cur)
    return out


def _split_commas(tokens: list[Token]) -> list[list[Token]]:
    out: list[list[Token]] = [[]]
    depth = 0
    for t in tokens:
        if t.kind == "op" and t.text in "([{":
            depth += 1
        elif t.kind == "op" and t.text in ")]}":
            depth -= 1
        if depth == 0 and t.kind == "op" and t.text == ",":
            out.append([])
        else:
            out[-1].append(t)
    return [part for part in out if part]


def _params(tokens: list[Token]) -> list[tuple[str, str]]:
    """``(a, b string, th kusttest_test.Harness)`` -> [(a, string), (b, string), (th, ...)]."""
    out: list[tuple[str, str]] = []
    pending: list[str] = []
    for part in _split_commas(tokens):
        if len(part) == 1:
            pending.append(part[0].text)
            continue
        type_text = "".join(t.text for t in part[1:])
        for name in [*pending, part[0].text]:
            out.append((name, type_text))
        pending = []
    out.extend((name, name) for name in pending)  # unnamed parameters: the type alone
    return out


@dataclass
class Package:
    """The package-level functions and string constants/variables of a krusty directory."""

    funcs: dict[str, GoFunc] = field(default_factory=dict)
    globals: dict[str, list[Token]] = field(default_factory=dict)  # name -> expression tokens
    order: list[str] = field(default_factory=list)  # Test* functions, in file and source order

    def add_file(self, name: str, source: str) -> None:
        tokens = tokenize(source)
        i = 0
        while i < len(tokens):
            t = tokens[i]
            if t.kind == "ident" and t.text == "func":
                i = self._add_func(tokens, i + 1, name)
            elif t.kind == "ident" and t.text in {"const", "var"}:
                i = self._add_values(tokens, i + 1)
            else:  # package, import, type: skip to the end of the declaration
                while i < len(tokens) and tokens[i].text != ";":
                    if tokens[i].text in "([{" and tokens[i].kind == "op":
                        i = _match(tokens, i)
                    else:
                        i += 1
                i += 1

    def _add_func(self, tokens: list[Token], i: int, source: str) -> int:
        if tokens[i].text == "(":  # a method: not a helper we can call
            i = _match(tokens, i)
        name = tokens[i].text
        close = _match(tokens, i + 1)
        params = _params(tokens[i + 2 : close - 1])
        j = close
        while tokens[j].text != "{":  # result types
            j = _match(tokens, j) if tokens[j].text in "([" else j + 1
        end = _match(tokens, j)
        self.funcs[name] = GoFunc(name, params, tokens[j + 1 : end - 1], source)
        if name.startswith("Test") and params == [("t", "*testing.T")]:
            self.order.append(name)
        return end

    def _add_values(self, tokens: list[Token], i: int) -> int:
        if tokens[i].text == "(":
            end = _match(tokens, i)
            specs = split_statements(tokens[i + 1 : end - 1])
        else:
            end = i
            while end < len(tokens) and tokens[end].text != ";":
                end = _match(tokens, end) if tokens[end].text in "([{" else end + 1
            specs = [tokens[i:end]]
        for spec in specs:
            eq = next((k for k, t in enumerate(spec) if t.text == "="), None)
            if eq is not None and spec[0].kind == "ident" and (eq == 1 or spec[1].text != ","):
                self.globals[spec[0].text] = spec[eq + 1 :]
        return end


# ------------------------------------------------------------------------------------- interpreter


class _Failed:
    """A name bound to a value the extractor could not compute (only fatal when used)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason


_Value = str | _Failed


def _go_clean(path: str) -> str:
    if not path:
        return "."
    cleaned = posixpath.normpath(path)
    return "/" + cleaned.lstrip("/") if cleaned.startswith("//") else cleaned


@dataclass
class _Frame:
    env: dict[str, _Value]
    harness: set[str]  # names bound to the harness
    options: dict[str, bool]  # options variables -> still default


class _Replay:
    """Replays one test function's harness calls into files and builds."""

    def __init__(self, package: Package, test: GoFunc) -> None:
        self.package = package
        self.test = test
        self.files: dict[str, str] = {}
        self.builds: list[tuple[dict[str, str], str, bool]] = []
        self.global_cache: dict[str, _Value] = {}
        self.evaluating: set[str] = set()
        self.depth = 0

    # -- expressions

    def lookup(self, name: str, frame: _Frame) -> str:
        value: _Value
        if name in frame.env:
            value = frame.env[name]
        elif name in self.package.globals:
            if name not in self.global_cache:
                if name in self.evaluating:
                    raise Unsupported("recursive constant")
                self.evaluating.add(name)
                try:
                    self.global_cache[name] = self.string(self.package.globals[name], _Frame({}, set(), {}))
                except Unsupported as exc:
                    self.global_cache[name] = _Failed(exc.reason)
                finally:
                    self.evaluating.discard(name)
            value = self.global_cache[name]
        else:
            raise Unsupported("unknown identifier")
        if isinstance(value, _Failed):
            raise Unsupported(value.reason)
        return value

    def string(self, tokens: list[Token], frame: _Frame) -> str:
        """The value of a string expression, or Unsupported naming what could not be evaluated."""
        value, rest = self._sum(tokens, frame)
        if rest:
            raise Unsupported("unsupported expression")
        return value

    def _sum(self, tokens: list[Token], frame: _Frame) -> tuple[str, list[Token]]:
        value, rest = self._term(tokens, frame)
        while rest and rest[0].text == "+":
            more, rest = self._term(rest[1:], frame)
            value += more
        return value, rest

    def _term(self, tokens: list[Token], frame: _Frame) -> tuple[str, list[Token]]:
        if not tokens:
            raise Unsupported("unsupported expression")
        t = tokens[0]
        if t.kind in {"raw", "str"}:
            return unquote(t.text), tokens[1:]
        if t.text == "(":
            end = _match(tokens, 0)
            return self.string(tokens[1 : end - 1], frame), tokens[end:]
        if t.kind != "ident":
            raise Unsupported("unsupported expression")
        if len(tokens) >= 4 and tokens[1].text == "." and tokens[3].text == "(":
            call = f"{t.text}.{tokens[2].text}"
            end = _match(tokens, 3)
            args = _split_commas(tokens[4 : end - 1])
            if call == "strings.ReplaceAll" and len(args) == 3:
                text, old, new = (self.string(a, frame) for a in args)
                return text.replace(old, new), tokens[end:]
            if call not in {"filepath.Join", "path.Join"}:
                raise Unsupported(call if call in {"fmt.Sprintf", "strings.Repeat"} else "helper call")
            parts = [self.string(a, frame) for a in args]
            return _go_clean("/".join(p for p in parts if p)) if any(parts) else "", tokens[end:]
        if len(tokens) >= 2 and tokens[1].text in {"(", ".", "["}:
            raise Unsupported("helper call" if tokens[1].text == "(" else "unsupported expression")
        return self.lookup(t.text, frame), tokens[1:]

    # -- statements

    def run_body(self, body: list[Token], frame: _Frame) -> None:
        for statement in split_statements(body):
            if statement[0].text == "return":
                if len(statement) > 1:
                    raise Unsupported("return with a value")
                return
            self.statement(statement, frame)

    def _touches(self, tokens: list[Token], frame: _Frame) -> bool:
        """Whether ``tokens`` use the harness or an options variable (a helper can only write through th)."""
        return any(t.kind == "ident" and (t.text in frame.harness or t.text in frame.options) for t in tokens)

    def statement(self, s: list[Token], frame: _Frame) -> None:
        head = s[0].text
        texts = [t.text for t in s]
        if head in {"if", "for", "switch", "select", "go", "defer", "{"}:
            if self._touches(s, frame) or "MakeHarness" in texts:
                raise Unsupported(f"`{head}` around harness calls")
            return
        if texts[:3] == ["t", ".", "Run"]:
            raise Unsupported("subtests (t.Run)")
        if texts[:2] == ["t", "."] and len(texts) > 2 and texts[2].startswith("Skip"):
            raise Unsupported("skipped upstream (t.Skip)")
        if head in {"var", "const"}:
            self._declare(s[1:], frame)
            return
        # NAME := ... / NAME = ...
        if len(s) >= 3 and s[0].kind == "ident" and s[1].text in {":=", "="}:
            self._assign(head, s[2:], frame)
            return
        if len(s) >= 3 and s[0].kind == "ident" and s[1].text == "," and (":=" in texts or "=" in texts):
            if self._touches(s, frame):
                raise Unsupported("multiple assignment from the harness")
            for t in s[: texts.index(":=" if ":=" in texts else "=")]:
                if t.kind == "ident":
                    frame.env[t.text] = _Failed("unknown identifier")
            return
        if head in frame.harness and len(s) >= 4 and s[1].text == "." and s[3].text == "(":
            self._harness_call(s[2].text, s, frame)
            return
        if head in frame.options and len(s) >= 2 and s[1].text == ".":
            frame.options[head] = False  # a field of the options is set
            return
        if head in self.package.funcs and len(s) >= 2 and s[1].text == "(" and self._touches(s[1:], frame):
            self._call_helper(self.package.funcs[head], s, frame)
            return
        if head in {"require", "assert"} and self._touches(s, frame):
            self._nested_builds(s, frame)
            return
        if self._touches(s, frame):
            raise Unsupported("unsupported statement")
        if "MakeHarness" in texts:
            raise Unsupported("harness inside a closure")
        # anything else only checks results (assertions, t.Fatalf...)

    def _nested_builds(self, s: list[Token], frame: _Frame) -> None:
        """Builds inside an assertion: ``require.Error(t, th.RunWithErr(dir, options))``."""
        k = 0
        while k < len(s):
            if s[k].text in frame.harness or s[k].text in frame.options:
                if not (
                    s[k].text in frame.harness
                    and k + 3 < len(s)
                    and s[k + 1].text == "."
                    and s[k + 2].text in {"Run", "RunWithErr"}
                    and s[k + 3].text == "("
                ):
                    raise Unsupported("unsupported statement")
                end = _match(s, k + 3)
                self._harness_call(s[k + 2].text, s[k:end], frame)
                k = end
            else:
                k += 1

    def _declare(self, spec: list[Token], frame: _Frame) -> None:
        if spec and spec[0].text == "(":
            for inner in split_statements(spec[1 : _match(spec, 0) - 1]):
                self._declare(inner, frame)
            return
        texts = [t.text for t in spec]
        if "=" not in texts:
            if self._touches(spec, frame):
                raise Unsupported("unsupported statement")
            frame.env[spec[0].text] = _Failed("unknown identifier")
            return
        eq = texts.index("=")
        if eq > 1 and spec[1].text == ",":
            raise Unsupported("multiple assignment")
        self._assign(spec[0].text, spec[eq + 1 :], frame)

    def _assign(self, name: str, rhs: list[Token], frame: _Frame) -> None:
        texts = [t.text for t in rhs]
        if rhs[0].text in frame.harness and len(rhs) >= 3 and rhs[1].text == ".":
            method = texts[2]
            if method in _DEFAULT_OPTIONS and texts[3:] == ["(", ")"]:
                frame.options[name] = True
                return
            if method in {"Run", "RunWithErr"}:
                self._harness_call(method, rhs, frame)
                return
            raise Unsupported(f"th.{method}")
        if rhs[0].kind == "ident" and rhs[0].text == "kusttest_test" and len(rhs) >= 3:
            if texts[2] == "MakeHarness" and texts[3:] == ["(", "t", ")"]:
                frame.harness.add(name)
                return
            raise Unsupported(f"kusttest_test.{texts[2]}")
        if self._touches(rhs, frame):
            raise Unsupported("unsupported statement")
        try:
            frame.env[name] = self.string(rhs, frame)
        except Unsupported as exc:
            frame.env[name] = _Failed(exc.reason)

    def _harness_call(self, method: str, s: list[Token], frame: _Frame) -> None:
        texts = [t.text for t in s]
        end = _match(s, 3)
        if end != len(s):
            raise Unsupported("unsupported statement")
        args = _split_commas(s[4 : end - 1])
        if method.startswith("Assert"):
            self._nested_builds(s[4 : end - 1], frame)
            return
        if method in {"WriteK", "WriteC", "WriteF"} and len(args) == 2:
            path = self.string(args[0], frame)
            content = self.string(args[1], frame)
            if method == "WriteK":
                self._write(posixpath.join(path, _KUSTOMIZATION_FILE), _KUSTOMIZATION_HEADER + content)
            elif method == "WriteC":
                self._write(posixpath.join(path, _KUSTOMIZATION_FILE), _COMPONENT_HEADER + content)
            else:
                self._write(path, content)
            return
        if method in {"Run", "RunWithErr"} and len(args) == 2:
            target = self.string(args[0], frame)
            option = [t.text for t in args[1]]
            if len(option) == 1 and option[0] in frame.options:
                if not frame.options[option[0]]:
                    raise Unsupported("non-default options")
            elif not (
                len(option) == 5
                and option[0] in frame.harness
                and option[2] in _DEFAULT_OPTIONS
                and option[3:] == ["(", ")"]
            ):
                raise Unsupported("non-default options")
            self.builds.append((dict(self.files), _relative(target), method == "RunWithErr"))
            return
        raise Unsupported(f"th.{texts[2]}")

    def _write(self, path: str, content: str) -> None:
        rel = _relative(path)
        if rel == "." or any(other.startswith(rel + "/") for other in self.files):
            raise Unsupported("file over a directory")
        parents = rel.split("/")
        for k in range(1, len(parents)):
            if "/".join(parents[:k]) in self.files:
                raise Unsupported("file over a directory")
        self.files[rel] = content

    def _call_helper(self, func: GoFunc, s: list[Token], frame: _Frame) -> None:
        end = _match(s, 1)
        if end != len(s):
            raise Unsupported("helper call")
        args = _split_commas(s[2 : end - 1])
        if len(args) != len(func.params) or self.depth > 8:
            raise Unsupported("helper call")
        inner = _Frame({}, set(), {})
        for (name, type_text), arg in zip(func.params, args, strict=True):
            if type_text == "kusttest_test.Harness" and len(arg) == 1 and arg[0].text in frame.harness:
                inner.harness.add(name)
            elif type_text == "string":
                try:
                    inner.env[name] = self.string(arg, frame)
                except Unsupported as exc:
                    inner.env[name] = _Failed(exc.reason)
            elif type_text == "*testing.T":
                continue
            else:
                raise Unsupported("helper call")
        self.depth += 1
        try:
            self.run_body(func.body, inner)
        finally:
            self.depth -= 1


def _relative(path: str) -> str:
    """A harness path (rooted at ``/`` in its in-memory file system) relative to the case root."""
    cleaned = _go_clean(path).lstrip("/")
    if cleaned.startswith(".."):
        raise Unsupported("path above the root")
    return cleaned or "."


# ------------------------------------------------------------------------------------------- public


def load_package(krusty_dir: Path) -> Package:
    """Parse every ``*_test.go`` of ``krusty_dir`` (package ``krusty_test``)."""
    package = Package()
    for go_file in sorted(krusty_dir.glob("*_test.go")):
        package.add_file(go_file.name, go_file.read_text(encoding="utf-8"))
    return package


def _scan_reason(func: GoFunc, package: Package) -> str | None:
    text = " ".join(t.text for t in func.body)
    callees = [package.funcs[t.text] for t in func.body if t.kind == "ident" and t.text in package.funcs]
    text += " ".join(" ".join(t.text for t in callee.body) for callee in callees)
    for reason, pattern in _SCANS:
        if pattern.search(text):
            return reason
    return None


def extract(krusty_dir: Path) -> Extraction:
    """Every replayable build of the Test* functions of ``krusty_dir``, with skip counts by reason."""
    package = load_package(krusty_dir)
    result = Extraction()
    for name in package.order:
        func = package.funcs[name]
        result.functions += 1
        reason = _scan_reason(func, package)
        if reason is not None:
            result.skipped[reason] += 1
            continue
        replay = _Replay(package, func)
        try:
            replay.run_body(func.body, _Frame({}, set(), {}))
            if not replay.builds:
                raise Unsupported("no default build")
            for files, _target, _ in replay.builds:
                for path, content in files.items():
                    if posixpath.basename(path) not in _KUSTOMIZATION_NAMES:
                        continue
                    if _REMOTE.search(content):
                        raise Unsupported("remote URL")
                    if "../" * (path.count("/") + 1) in content:
                        # the in-memory file system's root is its own parent; a disk directory's is not
                        raise Unsupported("path above the root")
        except Unsupported as exc:
            result.skipped[exc.reason] += 1
            continue
        for k, (files, target, expect_error) in enumerate(replay.builds, start=1):
            case_name = name if k == 1 else f"{name}#{k}"
            result.cases.append(KrustyCase(case_name, func.source, files, target, expect_error))
    return result


def materialize(case: KrustyCase, root: Path) -> Path:
    """Write ``case``'s files under ``root``; returns the directory to build."""
    for rel, content in case.files.items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(content, encoding="utf-8")
    target = root / case.target
    target.mkdir(parents=True, exist_ok=True)
    return target
