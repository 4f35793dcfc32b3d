"""The hostile-input corpus: repository layouts, YAML payloads, Git trees and webhook deliveries that every
entry point taking input must refuse with a clear error (issue 9).

Everything is generated: a case is data (file contents keyed by repository-relative path) plus what the
error must say (:class:`Expect`). The tests write a case into a temporary directory (or commit it to a bare
Git remote) and run it through the renderer, the environment loader, a Git snapshot, a full reconcile pass
or the webhook receivers. Every case runs as a plain test: none is expected to fail.
"""

from __future__ import annotations

import multiprocessing
import os
import resource
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

# --------------------------------------------------------------------------------------------------
# Case model


@dataclass(frozen=True)
class Link:
    """A symbolic link to ``target`` (written as is: absolute or relative)."""

    target: str


@dataclass(frozen=True)
class Fifo:
    """A named pipe (reading it would block forever)."""


FileSpec = bytes | Link | Fifo


@dataclass(frozen=True)
class Expect:
    """What a refusal must say.

    Attributes:
        where: the repository-relative file (or directory, or ``Kind/namespace/name``) the message names.
        line: the 1-based line the message must name (``path:line`` or ``line N``), when it is known.
        words: at least one of these must occur in the message (case-insensitive): what is wrong.
    """

    where: str
    line: int | None = None
    words: tuple[str, ...] = ()


@dataclass(frozen=True)
class RepoCase:
    """Files laid over the baseline repository (``None`` deletes a baseline file)."""

    id: str
    files: Mapping[str, FileSpec | None]
    expect: Expect
    outside: Mapping[str, bytes] = field(default_factory=dict)  # files written beside the repository root


@dataclass(frozen=True)
class Payload:
    """A hostile file content.

    Attributes:
        id: unique name.
        data: the bytes of the file.
        line: the line at fault (1-based) when the file is exactly ``data``, else ``None``.
        words: what the message must mention (any of).
        text: whether ``data`` is valid UTF-8 and can be given to ``load_yaml_documents`` as ``str``.
        structural: refused by the YAML layer whatever the file is used for (so the line and the words
            hold in every placement); ``False`` for documents that are valid YAML of the wrong shape.
    """

    id: str
    data: bytes
    line: int | None
    words: tuple[str, ...]
    text: bool = True
    structural: bool = True


# --------------------------------------------------------------------------------------------------


def params(cases: Iterable[Any], key: Callable[[Any], str] = lambda c: str(c.id)) -> list[Any]:
    """``pytest.param`` per case, its id ``key(case)``."""
    return [pytest.param(c, id=key(c)) for c in cases]


# --------------------------------------------------------------------------------------------------
# Message checks


def assert_clear(message: str, expect: Expect) -> None:
    """Assert that an error message names the file (and line) at fault and says what is wrong."""
    assert message.strip(), "empty error message"
    assert "Traceback (most recent call last)" not in message, message
    assert expect.where in message, f"the message does not name {expect.where!r}: {message!r}"
    if expect.line is not None:
        forms = (f"{expect.where}:{expect.line}", f"line {expect.line}", f"line: {expect.line}")
        assert any(f in message for f in forms), f"the message does not name line {expect.line}: {message!r}"
    if expect.words:
        low = message.lower()
        assert any(w.lower() in low for w in expect.words), (
            f"the message says none of {expect.words}: {message!r}"
        )


# --------------------------------------------------------------------------------------------------
# Bounded calls: parse work that could hang or eat memory runs in a forked child with limits.


@dataclass(frozen=True)
class Outcome:
    """How a bounded call ended: ``returned`` (value summary), ``raised`` (type, message), ``timeout``
    or ``died`` (the child was killed, e.g. by the memory limit)."""

    kind: str
    exc_type: str = ""
    exc_module: str = ""
    message: str = ""
    value: str = ""


def _child(conn: Any, fn: Callable[..., Any], args: tuple[Any, ...], memory: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    try:
        value = fn(*args)
    except BaseException as exc:  # report every exception type back to the test
        conn.send(
            Outcome(
                "raised",
                type(exc).__name__,
                type(exc).__module__,
                str(exc),
                value="".join(traceback.format_exception(exc))[-3000:],
            )
        )
    else:
        conn.send(Outcome("returned", value=repr(value)[:2000]))
    conn.close()


def bounded(fn: Callable[..., Any], *args: Any, seconds: float = 60.0, memory: int = 3 << 30) -> Outcome:
    """Run ``fn(*args)`` in a forked child limited to ``seconds`` and ``memory`` bytes of address space.

    A call that neither returns nor raises within the limits is a denial of service; the outcome says so
    instead of hanging the test run or exhausting the machine.
    """
    ctx = multiprocessing.get_context("fork")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(child, fn, args, memory), daemon=True)
    proc.start()
    child.close()
    try:
        if parent.poll(seconds):
            try:
                out: Outcome = parent.recv()
            except EOFError:
                out = Outcome("died", message=f"child ended without a result (exit code {proc.exitcode})")
        else:
            out = Outcome("timeout", message=f"no result within {seconds:.0f} s")
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(10)
        parent.close()
    if out.kind == "returned" or out.kind == "raised":
        return out
    return Outcome(out.kind, message=f"{out.message} (exit code {proc.exitcode})")


def assert_refused(out: Outcome, error: type[BaseException], expect: Expect) -> None:
    """Assert a bounded call raised exactly the documented ``error`` type with a clear message."""
    assert out.kind != "timeout", f"denial of service: {out.message}"
    assert out.kind != "died", f"denial of service or crash: {out.message}"
    assert out.kind == "raised", f"accepted hostile input; returned {out.value}"
    assert (out.exc_module, out.exc_type) == (error.__module__, error.__name__), (
        f"crash: raised {out.exc_module}.{out.exc_type}: {out.message}\n{out.value}"
    )
    assert_clear(out.message, expect)


# --------------------------------------------------------------------------------------------------
# Writing a repository


def write_tree(root: Path, files: Mapping[str, FileSpec | None]) -> None:
    """Write ``files`` under ``root`` (``None`` removes a file)."""
    for rel, spec in files.items():
        p = root / rel
        if spec is None:
            if p.is_symlink() or p.is_file():
                p.unlink()
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        if p.is_symlink() or p.is_file():
            p.unlink()
        if isinstance(spec, Link):
            os.symlink(spec.target, p)
        elif isinstance(spec, Fifo):
            os.mkfifo(p)
        else:
            p.write_bytes(spec)


def case_files(case: RepoCase, namespace: str = "hostile") -> dict[str, FileSpec | None]:
    """The baseline repository with the case's files laid over it."""
    files: dict[str, FileSpec | None] = dict(baseline(namespace))
    files.update(case.files)
    return files


OUT = "@OUT@"  # placeholder for the absolute path of the directory beside the repository root


def resolve_outside(files: Mapping[str, FileSpec | None], outside: Path) -> dict[str, FileSpec | None]:
    """Replace the :data:`OUT` placeholder in contents and link targets with ``outside``."""
    out: dict[str, FileSpec | None] = {}
    for rel, spec in files.items():
        if isinstance(spec, bytes):
            spec = spec.replace(OUT.encode(), str(outside).encode())
        elif isinstance(spec, Link):
            spec = Link(spec.target.replace(OUT, str(outside)))
        out[rel] = spec
    return out


def write_case(tmp: Path, case: RepoCase, namespace: str = "hostile") -> Path:
    """Write the case's repository to ``tmp/repo`` (and its outside files to ``tmp/outside``)."""
    root = tmp / "repo"
    root.mkdir(parents=True, exist_ok=True)
    outside = tmp / "outside"
    write_tree(outside, dict(case.outside))
    files = resolve_outside(case_files(case, namespace), outside)
    write_tree(root, {k: v for k, v in files.items() if v is not None})
    return root


# --------------------------------------------------------------------------------------------------
# The baseline repository: one environment, a ConfigMap, a Service and a Deployment.

CONFIGMAP = b"""apiVersion: v1
kind: ConfigMap
metadata:
  name: app-config
data:
  LOG_LEVEL: info
"""
SERVICE = b"""apiVersion: v1
kind: Service
metadata:
  name: app
spec:
  selector: {app: app}
  ports:
  - name: http
    port: 8080
"""
DEPLOYMENT = b"""apiVersion: apps/v1
kind: Deployment
metadata:
  name: app
spec:
  replicas: 1
  selector:
    matchLabels: {app: app}
  template:
    metadata:
      labels: {app: app}
    spec:
      containers:
      - name: app
        image: ghcr.io/acme/app:1.0.0
        envFrom:
        - configMapRef: {name: app-config}
"""
BASE_RESOURCES = ("configmap.yaml", "service.yaml", "deployment.yaml")
K = "overlays/dev/kustomization.yaml"
ENV = "envs/dev.yaml"
#: Content of the files outside the repository that escapes try to read (valid YAML, so a working
#: escape would render instead of failing for another reason).
STOLEN = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stolen\ndata:\n  secret: stolen-sentinel\n"


def env_file(namespace: str = "hostile") -> bytes:
    """The baseline ``envs/dev.yaml``."""
    return (
        f"overlay: overlays/dev\nnamespace: {namespace}\n"
        "sync: {interval: 3600, allowMassPrune: false}\nhealth: {noControllerAfter: 5}\n"
    ).encode()


def kust(extra: str = "", resources: Iterable[str] = BASE_RESOURCES) -> bytes:
    """A kustomization listing ``resources`` followed by ``extra`` YAML text."""
    res = "".join(f"- {r}\n" for r in resources)
    return f"resources:\n{res}{extra}".encode()


def baseline(namespace: str = "hostile") -> dict[str, bytes]:
    """The valid repository every case starts from."""
    return {
        ENV: env_file(namespace),
        K: kust(),
        "overlays/dev/configmap.yaml": CONFIGMAP,
        "overlays/dev/service.yaml": SERVICE,
        "overlays/dev/deployment.yaml": DEPLOYMENT,
    }


# --------------------------------------------------------------------------------------------------
# YAML payloads

W_ALIAS = ("alias", "expand")
W_NEST = ("nest", "deep", "depth", "recursion")
W_DUP = ("duplicate",)
W_UTF8 = ("utf-8", "utf8", "unicode", "decode", "encoding")
W_CHAR = ("character", "special", "printable", "utf-8", "control")
W_YAML = ("yaml", "invalid", "expected", "found", "could not", "not allowed", "mapping", "document")
W_TAG = ("tag", "constructor")
W_MAPPING = ("mapping", "object", "document")
W_NUMBER = ("digit", "integer", "number", "too large", "limit")
W_SIZE = ("size", "bytes", "large", "limit")


def _laughs(width: int, depth: int, *, flow: bool = True, maps: bool = False) -> bytes:
    """A "billion laughs" document: each level repeats the previous anchor ``width`` times."""
    lines = []
    for i in range(depth):
        prev = [f"*l{i - 1}" if i else "lol" for _ in range(width)]
        if maps:
            items = ", ".join(f"k{j}: {v}" for j, v in enumerate(prev))
            lines.append(f"l{i}: &l{i} {{{items}}}")
        elif flow:
            lines.append(f"l{i}: &l{i} [{', '.join(prev)}]")
        else:
            lines.append(f"l{i}: &l{i}\n" + "".join(f"  - {v}\n" for v in prev).rstrip("\n"))
    return ("\n".join(lines) + "\n").encode()


def _laughs_in_object(width: int, depth: int) -> bytes:
    """A ConfigMap-looking object whose annotations hold an alias bomb."""
    head = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\n  annotations:\n"
    body = "".join(
        f"    l{i}: &l{i} [{', '.join(f'*l{i - 1}' if i else 'lol' for _ in range(width))}]\n"
        for i in range(depth)
    )
    return (head + body).encode()


def _deep_flow(depth: int, open_: str = "[", close: str = "]") -> bytes:
    return (open_ * depth + close * depth + "\n").encode()


def _deep_flow_map(depth: int) -> bytes:
    return ("a: " + "{a: " * depth + "1" + "}" * depth + "\n").encode()


def _deep_block_map(depth: int) -> bytes:
    return ("".join("  " * i + f"k{i}:\n" for i in range(depth)) + "  " * depth + "leaf\n").encode()


def _deep_block_seq(depth: int) -> bytes:
    return ("".join("  " * i + "-\n" for i in range(depth)) + "  " * depth + "- leaf\n").encode()


def _deep_in_object(depth: int) -> bytes:
    head = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\ndata:\n  x: "
    return (head + "[" * depth + "]" * depth + "\n").encode()


def _obj(extra: str) -> bytes:
    return f"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n{extra}".encode()


def _payloads() -> list[Payload]:
    p: list[Payload] = []

    def add(pid: str, data: bytes, line: int | None, words: tuple[str, ...]) -> None:
        try:
            data.decode("utf-8")
            text = True
        except UnicodeDecodeError:
            text = False
        structural = not pid.startswith("doc-") and "second-doc" not in pid
        p.append(Payload(pid, data, line, words, text, structural=structural))

    # Alias expansion ("billion laughs") in many shapes; each expands past a million nodes.
    for w, d in ((10, 9), (10, 7), (2, 24), (1000, 3), (100, 4), (3, 16), (32, 5)):
        add(f"laughs-{w}x{d}", _laughs(w, d), None, W_ALIAS)
    add("laughs-block", _laughs(10, 8, flow=False), None, W_ALIAS)
    add("laughs-maps", _laughs(10, 8, maps=True), None, W_ALIAS)
    add("laughs-in-object", _laughs_in_object(10, 8), None, W_ALIAS)
    add(
        "laughs-second-doc",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ok}\n---\n" + _laughs(10, 8),
        None,
        W_ALIAS,
    )
    add(
        "laughs-keys-and-values",
        b"a: &a [x, x, x, x, x, x, x, x, x, x]\n"
        b"b: &b {k1: *a, k2: *a, k3: *a, k4: *a, k5: *a, k6: *a, k7: *a, k8: *a, k9: *a, k10: *a}\n"
        b"c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b, *b]\n"
        b"d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c, *c]\n"
        b"e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d, *d]\n"
        b"f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e, *e]\n"
        b"g: [*f, *f, *f, *f, *f, *f, *f, *f, *f, *f]\n",
        None,
        W_ALIAS,
    )
    # Self-referencing anchors (infinite expansion).
    add("recursive-seq", b"a: &a [*a]\n", None, W_ALIAS + W_NEST + ("recursive", "cycle"))
    add("recursive-map", b"a: &a {b: *a}\n", None, W_ALIAS + W_NEST + ("recursive", "cycle"))
    add("recursive-deep", b"a: &a {b: {c: [1, {d: *a}]}}\n", None, W_ALIAS + W_NEST + ("recursive", "cycle"))
    add("undefined-alias", b"a: *nope\n", 1, ("alias", "undefined"))

    # Deep nesting.
    for depth in (1_001, 10_000, 100_000):
        add(f"deep-flow-seq-{depth}", _deep_flow(depth), None, W_NEST)
    for depth in (1_001, 20_000):
        add(f"deep-flow-map-{depth}", _deep_flow_map(depth), None, W_NEST)
    add("deep-block-map-1500", _deep_block_map(1_500), None, W_NEST)
    add("deep-block-seq-1500", _deep_block_seq(1_500), None, W_NEST)
    add("deep-mixed-5000", ("a: " + "[{a: " * 2_500 + "1" + "}]" * 2_500 + "\n").encode(), None, W_NEST)
    add("deep-in-object-5000", _deep_in_object(5_000), None, W_NEST)

    # Duplicate keys (the later value would silently win in a lenient parser).
    add("dup-top", b"apiVersion: v1\nkind: ConfigMap\nkind: Secret\nmetadata: {name: x}\n", 3, W_DUP)
    add("dup-nested", _obj("data:\n  a: '1'\n  a: '2'\n"), 7, W_DUP)
    add("dup-flow", _obj("data: {a: '1', a: '2'}\n"), 5, W_DUP)
    add(
        "dup-metadata",
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\nmetadata: {name: b}\n",
        4,
        W_DUP,
    )
    add("dup-name", b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  name: b\n", 5, W_DUP)
    add("dup-quoted-plain", _obj("data:\n  a: '1'\n  \"a\": '2'\n"), 7, W_DUP)
    add("dup-in-list-item", _obj("items:\n- name: a\n  name: b\n"), 7, W_DUP)
    add("dup-quote-styles", _obj("data:\n  \"k\": a\n  'k': b\n"), 7, W_DUP)
    add("dup-escaped", _obj('data:\n  k: a\n  "\\x6b": b\n'), 7, W_DUP)
    add("dup-unicode-escape", _obj('data:\n  key: a\n  "\\u006bey": b\n'), 7, W_DUP)
    add("dup-long-key", _obj(f"data:\n  {'k' * 1000}: a\n  {'k' * 1000}: b\n"), 7, W_DUP)
    add("dup-deep", _obj("spec:\n  a:\n    b:\n      c: 1\n      c: 2\n"), 9, W_DUP)
    add("dup-second-doc", _obj("") + b"---\n" + _obj("data:\n  k: v\n  k: w\n"), 12, W_DUP)
    add("dup-env-overlay", b"overlay: overlays/dev\noverlay: /etc\n", 2, W_DUP)

    # Invalid UTF-8 (bytes only) and other encodings.
    bad = {
        "utf8-lone-continuation": b"\x80",
        "utf8-overlong-slash": b"\xc0\xaf",
        "utf8-overlong-3": b"\xe0\x80\xaf",
        "utf8-surrogate": b"\xed\xa0\x80",
        "utf8-above-max": b"\xf4\x90\x80\x80",
        "utf8-5-byte": b"\xf8\x88\x80\x80\x80",
        "utf8-fe": b"\xfe",
        "utf8-ff": b"\xff",
        "utf8-truncated-2": b"\xc3",
        "utf8-truncated-3": b"\xe2\x82",
        "latin1": b"caf\xe9",
        "cp1252-quotes": b"\x93quoted\x94",
    }
    for name, raw in bad.items():
        add(f"{name}-in-value", _obj("data:\n  k: ") + raw + b"\n", None, W_UTF8)
    # (decoding errors may name a byte offset instead of a line: both locate the fault exactly)
    add("utf8-in-key", _obj("data:\n") + b"  k\xff: v\n", None, W_UTF8)
    add("utf8-in-comment", b"# \xff\xfe comment\n" + _obj(""), None, W_UTF8)
    add("utf8-first-byte", b"\xff" + _obj(""), None, W_UTF8)
    add("utf8-in-block-scalar", _obj("data:\n  k: |\n    line\n") + b"    \xc3\x28\n", None, W_UTF8)
    add("utf16-le-bom", "apiVersion: v1\nkind: ConfigMap\n".encode("utf-16"), None, W_UTF8)
    add("utf16-be", "apiVersion: v1\nkind: ConfigMap\n".encode("utf-16-be"), None, W_UTF8 + W_CHAR)
    add("utf32-bom", "apiVersion: v1\n".encode("utf-32"), None, W_UTF8)

    # Characters YAML does not allow in a stream.
    for name, ch in (
        ("nul", "\x00"),
        ("soh", "\x01"),
        ("esc", "\x1b"),
        ("del", "\x7f"),
        ("c1", "\x9b"),
        ("noncharacter-fffe", "\ufffe"),
        ("noncharacter-ffff", "\uffff"),
    ):
        add(f"char-{name}", _obj(f"data:\n  k: a{ch}b\n"), None, W_CHAR)

    # Syntax errors.
    add("syntax-unclosed-flow-seq", _obj("data: [a, b\n"), None, W_YAML)
    add("syntax-unclosed-flow-map", _obj("data: {a: b\nother: 1\n"), None, W_YAML)
    add("syntax-unclosed-double-quote", _obj('data:\n  k: "abc\n'), None, W_YAML)
    add("syntax-unclosed-single-quote", _obj("data:\n  k: 'abc\n"), None, W_YAML)
    add("syntax-bad-indent", _obj("data:\n  a: 1\n    b: 2\n"), 7, W_YAML)
    add("syntax-tab-indent", _obj("data:\n\ta: 1\n"), 6, (*W_YAML, "tab", "\\t"))
    add("syntax-double-colon", _obj("data:\n  a: b: c\n"), 6, W_YAML)
    add("syntax-seq-then-map", b"- a\nb: c\n", 2, W_YAML)
    add("syntax-map-then-seq", _obj("data:\n  a: 1\n- b\n"), 7, W_YAML)
    add("syntax-block-scalar-header", _obj("data:\n  k: |x\n    v\n"), 6, W_YAML)
    add("syntax-stray-bracket", _obj("data: ]\n"), 5, W_YAML)
    add("syntax-anchor-no-node", b"a: &\n", None, (*W_YAML, "anchor"))
    add("syntax-directive-version", b"%YAML 9.9\n---\na: 1\n", 1, (*W_YAML, "version"))
    add(
        "syntax-directive-twice", b"%YAML 1.2\n%YAML 1.2\n---\na: 1\n", 2, (*W_YAML, "directive", "duplicate")
    )
    add("syntax-tag-handle-undefined", b"a: !x!y z\n", 1, W_YAML + W_TAG)
    add("syntax-doc-end-garbage", b"a: 1\n... garbage\n", 2, W_YAML)
    add("syntax-long-implicit-key", ("k" * 2000 + ": v\n").encode(), 1, W_YAML)

    # Tags for types a manifest cannot hold (code-executing tags: see TAG_PAYLOADS).
    add("tag-int-not-int", b"a: !!int abc\n", 1, (*W_TAG, "int", "invalid"))
    add("tag-float-not-float", b"a: !!float abc\n", 1, (*W_TAG, "float", "invalid"))

    # Documents that are not objects; keys that are not scalars.
    add("doc-top-list", b"- apiVersion: v1\n  kind: ConfigMap\n", 1, W_MAPPING)
    add("doc-scalar", b"just a string\n", 1, W_MAPPING)
    add("doc-number", b"42\n", 1, W_MAPPING)
    add("doc-second-is-list", _obj("") + b"---\n- a\n", 6, W_MAPPING)
    add("key-complex-seq", b"? [a, b]\n: 1\n", 1, ("key", "scalar", "hashable", "mapping"))
    add("key-complex-map", b"? {a: 1}\n: 1\n", 1, ("key", "scalar", "hashable", "mapping"))
    add("key-int", _obj("data:\n  1: a\n"), 6, ("key", "string"))
    add("key-null", _obj("data:\n  ~: a\n"), 6, ("key", "string"))

    # Numbers beyond what a conversion allows.
    add("number-5000-digits", _obj("spec:\n  n: " + "9" * 5000 + "\n"), 6, W_NUMBER)
    add("number-hex-20000-digits", _obj("spec:\n  n: 0x" + "f" * 20000 + "\n"), 6, W_NUMBER)
    return p


PAYLOADS: list[Payload] = _payloads()

#: Tags that a loader constructing language objects would execute. kustomize keeps unknown tags as data,
#: so the only requirement is that nothing runs and nothing but plain data comes back; ``@SENTINEL@`` is
#: replaced by a path whose existence would prove execution.
TAG_PAYLOADS: dict[str, bytes] = {
    "python-apply": b"k: !!python/object/apply:os.system ['touch @SENTINEL@']\n",
    "python-apply-subprocess": b"k: !!python/object/apply:subprocess.check_call [['touch', '@SENTINEL@']]\n",
    "python-new": b"k: !!python/object/new:subprocess.Popen [['touch', '@SENTINEL@']]\n",
    "python-name": b"k: !!python/name:os.system\n",
    "python-module": b"k: !!python/module:os\n",
    "python-object": b"k: !!python/object:os.PathLike {}\n",
    "ruby-object": b"k: !ruby/object:Gem::Installer {i: x}\n",
    "java-object": b"k: !!javax.script.ScriptEngineManager [!!java.net.URLClassLoader [[!!java.net.URL ['http://127.0.0.1:1/']]]]\n",
    "custom-local": b"k: !Ref other\n",
    "verbatim": b"k: !<tag:example.com,2000:x> y\n",
    "binary": b"k: !!binary aGVsbG8=\n",
    "set": b"k: !!set {a, b}\n",
    "omap": b"k: !!omap [a: 1, b: 2]\n",
    "timestamp": b"k: !!timestamp 2001-12-14t21:59:43.10-05:00\n",
}
TEXT_PAYLOADS: list[Payload] = [p for p in PAYLOADS if p.text]


# --------------------------------------------------------------------------------------------------
# Placements: where a payload can sit in a repository, and which file the error must then name.


@dataclass(frozen=True)
class Placement:
    """Where a hostile file goes: ``path`` is the file the error must name."""

    name: str
    path: str
    files: Callable[[bytes], dict[str, FileSpec | None]]
    keep_line: bool = True  # the file is exactly the payload, so the payload's line holds


def _placements() -> list[Placement]:
    h = "overlays/dev/hostile.yaml"
    target = "  target: {version: v1, kind: ConfigMap, name: app-config}\n"
    return [
        Placement("resource", h, lambda d: {K: kust(resources=(*BASE_RESOURCES, "hostile.yaml")), h: d}),
        Placement("kustomization", K, lambda d: {K: d}),
        Placement(
            "base",
            "overlays/base/kustomization.yaml",
            lambda d: {
                K: kust(resources=(*BASE_RESOURCES, "../base")),
                "overlays/base/kustomization.yaml": d,
            },
        ),
        Placement(
            "component",
            "overlays/components/hostile/kustomization.yaml",
            lambda d: {
                K: kust("components:\n- ../components/hostile\n"),
                "overlays/components/hostile/kustomization.yaml": d,
            },
        ),
        Placement("patch", h, lambda d: {K: kust("patches:\n- path: hostile.yaml\n" + target), h: d}),
        Placement(
            "strategic-merge", h, lambda d: {K: kust("patchesStrategicMerge:\n- hostile.yaml\n"), h: d}
        ),
        Placement(
            "json6902", h, lambda d: {K: kust("patchesJson6902:\n- path: hostile.yaml\n" + target), h: d}
        ),
        Placement("configurations", h, lambda d: {K: kust("configurations:\n- hostile.yaml\n"), h: d}),
        Placement("transformers", h, lambda d: {K: kust("transformers:\n- hostile.yaml\n"), h: d}),
        Placement("replacements", h, lambda d: {K: kust("replacements:\n- path: hostile.yaml\n"), h: d}),
    ]


PLACEMENTS: list[Placement] = _placements()
#: Placements whose files kustomize decodes leniently, the last of repeated keys winning (kustomization
#: files of the overlay, a base or a component; JSON 6902 patch files; configurations; replacements), so a
#: duplicate key there is rendered as kustomize renders it (tests/render corpus
#: values-kustomization-repeated-keys), not refused.
LAST_KEY_WINS = frozenset(
    {"kustomization", "base", "component", "json6902", "configurations", "replacements"}
)


def placed_cases() -> list[RepoCase]:
    """Every payload in every renderer placement."""
    out = []
    for pl in PLACEMENTS:
        for pay in PAYLOADS:
            if pay.id.startswith("dup-") and pl.name in LAST_KEY_WINS:
                continue  # kustomize renders these (the last key wins): parity, tests/render corpus
            primary = pl.name == "resource" or pay.structural
            expect = Expect(
                pl.path, pay.line if pl.keep_line and primary else None, pay.words if primary else ()
            )
            if pl.name == "json6902" and pay.id == "key-int":
                # a JSON 6902 file is read as YAML 1.1 into JSON, where the key 1 is "1" (as kustomize reads
                # it): what is refused is the object that is no list of operations
                expect = Expect(pl.path, 1, ("list",))
            out.append(RepoCase(f"render/{pl.name}/{pay.id}", pl.files(pay.data), expect))
    return out


# --------------------------------------------------------------------------------------------------
# Structural renderer cases: paths that leave the repository, symlinks, remote references, invalid
# kustomization fields, invalid patches, invalid objects.

W_ESCAPE = ("outside", "restrict", "not in or below", "security", "escape", "absolute")
W_REMOTE = ("remote", "not supported", "local files only")
OUT_REL = "../../../outside/stolen.yaml"  # from overlays/dev to <tmp>/outside/stolen.yaml


def _escape_cases() -> list[RepoCase]:
    """Every field that names a path, pointed outside the root by ``..``, by an absolute path and by a
    symlink; the outside file is valid YAML so only the load restrictor can stop it."""
    out: list[RepoCase] = []
    outside = {"stolen.yaml": STOLEN, "stolen.env": b"SECRET=stolen-sentinel\n"}
    fields: dict[str, Callable[[str, str], bytes]] = {
        "resources": lambda p, e: kust(resources=(*BASE_RESOURCES, p)),
        "bases": lambda p, e: kust(f"bases:\n- {p}\n"),
        "components": lambda p, e: kust(f"components:\n- {p}\n"),
        "patches-path": lambda p, e: kust(f"patches:\n- path: {p}\n"),
        "strategic-merge": lambda p, e: kust(f"patchesStrategicMerge:\n- {p}\n"),
        "json6902-path": lambda p, e: kust(
            f"patchesJson6902:\n- path: {p}\n  target: {{version: v1, kind: ConfigMap, name: app-config}}\n"
        ),
        "configmap-files": lambda p, e: kust(f"configMapGenerator:\n- name: gen\n  files:\n  - {p}\n"),
        "configmap-files-keyed": lambda p, e: kust(
            f"configMapGenerator:\n- name: gen\n  files:\n  - key={p}\n"
        ),
        "configmap-envs": lambda p, e: kust(f"configMapGenerator:\n- name: gen\n  envs:\n  - {e}\n"),
        "configmap-env": lambda p, e: kust(f"configMapGenerator:\n- name: gen\n  env: {e}\n"),
        "secret-files": lambda p, e: kust(f"secretGenerator:\n- name: gen\n  files:\n  - {p}\n"),
        "secret-envs": lambda p, e: kust(f"secretGenerator:\n- name: gen\n  envs:\n  - {e}\n"),
        "configurations": lambda p, e: kust(f"configurations:\n- {p}\n"),
        "transformers": lambda p, e: kust(f"transformers:\n- {p}\n"),
        "replacements-path": lambda p, e: kust(f"replacements:\n- path: {p}\n"),
    }
    dir_fields = {"resources-dir", "bases", "components"}
    fields["resources-dir"] = lambda p, e: kust(resources=(*BASE_RESOURCES, p))
    for fname, make in fields.items():
        is_dir = fname in dir_fields
        rel = "../../../outside" if is_dir else OUT_REL
        rel_env = "../../../outside/stolen.env"
        if fname in ("bases", "components") or fname == "resources-dir":
            extra_out = {"kustomization.yaml": b"resources:\n- stolen.yaml\n", **outside}
        else:
            extra_out = outside
        out.append(
            RepoCase(f"escape/dotdot/{fname}", {K: make(rel, rel_env)}, Expect(K, None, W_ESCAPE), extra_out)
        )
        # absolute paths: written by the test with the real tmp path substituted for @OUT@
        abs_p = "@OUT@" if is_dir else "@OUT@/stolen.yaml"
        out.append(
            RepoCase(
                f"escape/absolute/{fname}",
                {K: make(abs_p, "@OUT@/stolen.env")},
                Expect(K, None, W_ESCAPE),
                extra_out,
            )
        )
        link = "overlays/dev/linked" if is_dir else "overlays/dev/linked.yaml"
        link_env = "overlays/dev/linked.env"
        out.append(
            RepoCase(
                f"escape/symlink/{fname}",
                {
                    K: make(Path(link).name, Path(link_env).name),
                    link: Link("@OUT@" if is_dir else "@OUT@/stolen.yaml"),
                    link_env: Link("@OUT@/stolen.env"),
                },
                Expect(K, None, W_ESCAPE),
                extra_out,
            )
        )
    # more symlink shapes
    out += [
        RepoCase(
            "escape/symlink/dotdot-relative-link",
            {K: kust(resources=(*BASE_RESOURCES, "linked.yaml")), "overlays/dev/linked.yaml": Link(OUT_REL)},
            Expect(K, None, W_ESCAPE),
            outside,
        ),
        RepoCase(
            "escape/symlink/link-chain",
            {
                K: kust(resources=(*BASE_RESOURCES, "a.yaml")),
                "overlays/dev/a.yaml": Link("b.yaml"),
                "overlays/dev/b.yaml": Link(OUT_REL),
            },
            Expect(K, None, W_ESCAPE),
            outside,
        ),
        RepoCase(
            "escape/symlink/dir-link-then-file",
            {K: kust(resources=(*BASE_RESOURCES, "d/stolen.yaml")), "overlays/dev/d": Link("@OUT@")},
            Expect(K, None, W_ESCAPE),
            outside,
        ),
        RepoCase(
            "escape/symlink/overlay-dir-is-link",
            {
                K: None,
                "overlays/dev/configmap.yaml": None,
                "overlays/dev/service.yaml": None,
                "overlays/dev/deployment.yaml": None,
                "overlays/dev": Link("@OUT@"),
            },
            Expect("overlays/dev", None, W_ESCAPE),
            {"kustomization.yaml": b"resources:\n- stolen.yaml\n", **outside},
        ),
        RepoCase(
            "escape/symlink/kustomization-is-link",
            {K: Link("@OUT@/kustomization.yaml")},
            Expect("overlays/dev", None, W_ESCAPE),
            # resources resolve beside the link, so a read of this file renders and leaks the annotation
            {"kustomization.yaml": kust("commonAnnotations: {leaked: stolen-sentinel}\n")},
        ),
        RepoCase(
            "escape/symlink/root-link",
            {K: kust(resources=(*BASE_RESOURCES, "root/etc/hostname")), "overlays/dev/root": Link("/")},
            Expect(K, None, W_ESCAPE),
        ),
        RepoCase(
            "escape/symlink/loop",
            {
                K: kust(resources=(*BASE_RESOURCES, "a.yaml")),
                "overlays/dev/a.yaml": Link("b.yaml"),
                "overlays/dev/b.yaml": Link("a.yaml"),
            },
            Expect(K, None, ("loop", "exist", "symbolic", "symlink", "not found", "too many")),
        ),
        RepoCase(
            "escape/dotdot/deep-dotdot",
            {K: kust(resources=(*BASE_RESOURCES, "../" * 40 + "etc/hostname"))},
            Expect(K, None, W_ESCAPE),
        ),
        RepoCase(
            "escape/dotdot/dotdot-after-subdir",
            {
                K: kust(resources=(*BASE_RESOURCES, "sub/../../../../outside/stolen.yaml")),
                "overlays/dev/sub/.keep": b"",
            },
            Expect(K, None, W_ESCAPE),
            outside,
        ),
        RepoCase(
            "escape/special/fifo",
            {K: kust(resources=(*BASE_RESOURCES, "pipe.yaml")), "overlays/dev/pipe.yaml": Fifo()},
            Expect(
                K, None, ("not a regular file", "not a file", "exist", "fifo", "pipe", "not found", "special")
            ),
        ),
        RepoCase(
            "escape/special/dev-zero",
            {K: kust(resources=(*BASE_RESOURCES, "zero.yaml")), "overlays/dev/zero.yaml": Link("/dev/zero")},
            Expect(K, None, (*W_ESCAPE, "not a file")),
        ),
        RepoCase(
            "escape/special/proc-self",
            {K: kust(resources=(*BASE_RESOURCES, "/proc/self/environ"))},
            Expect(K, None, W_ESCAPE),
        ),
    ]
    # remote references
    for i, ref in enumerate(
        (
            "https://example.com/app.yaml",
            "http://127.0.0.1:1/app.yaml",
            "github.com/acme/private//deploy?ref=main",
            "git@github.com:acme/private.git",
            "git::https://example.com/repo.git",
            "file:///etc/passwd",
            "ssh://git@example.com/repo.git",
            "oci://ghcr.io/acme/chart",
        )
    ):
        out.append(
            RepoCase(
                f"remote/resources-{i}",
                {K: kust(resources=(*BASE_RESOURCES, ref))},
                Expect(K, None, W_REMOTE + W_ESCAPE + ("exist", "not found")),
            )
        )
    out.append(
        RepoCase(
            "remote/components",
            {K: kust("components:\n- https://example.com/c\n")},
            Expect(K, None, W_REMOTE),
        )
    )
    out.append(
        RepoCase(
            "remote/patch-path",
            {K: kust("patches:\n- path: https://example.com/p.yaml\n")},
            Expect(K, None, W_REMOTE),
        )
    )
    out.append(
        RepoCase(
            "remote/configmap-file",
            {K: kust("configMapGenerator:\n- name: g\n  files:\n  - https://example.com/f\n")},
            Expect(K, None, W_REMOTE),
        )
    )
    return out


def _cycle_cases() -> list[RepoCase]:
    return [
        RepoCase(
            "cycle/self",
            {K: kust(resources=(*BASE_RESOURCES, "."))},
            Expect("overlays/dev", None, ("cycle",)),
        ),
        RepoCase(
            "cycle/two",
            {
                K: kust(resources=(*BASE_RESOURCES, "../b")),
                "overlays/b/kustomization.yaml": b"resources:\n- ../dev\n",
            },
            Expect("overlays/dev", None, ("cycle",)),
        ),
        RepoCase(
            "cycle/three",
            {
                K: kust(resources=(*BASE_RESOURCES, "../b")),
                "overlays/b/kustomization.yaml": b"resources:\n- ../c\n",
                "overlays/c/kustomization.yaml": b"resources:\n- ../dev\n",
            },
            Expect("overlays/dev", None, ("cycle",)),
        ),
        RepoCase(
            "cycle/component-self",
            {
                K: kust("components:\n- ../comp\n"),
                "overlays/comp/kustomization.yaml": (
                    b"apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\ncomponents:\n- .\n"
                ),
            },
            Expect("overlays/comp", None, ("cycle",)),
        ),
        RepoCase(
            "cycle/symlink-dir-to-parent",
            {K: kust(resources=(*BASE_RESOURCES, "again")), "overlays/dev/again": Link(".")},
            Expect("overlays/dev", None, ("cycle",)),
        ),
    ]


def _kustomization_cases() -> list[RepoCase]:
    """Invalid kustomization fields: wrong types, unknown fields, unsupported features."""
    bad = {
        "resources-string": "resources: configmap.yaml\n",
        "resources-map": "resources: {a: b}\n",
        "resources-int-item": "resources:\n- 5\n",
        "resources-null-item": "resources:\n- null\n",
        "resources-list-item": "resources:\n- [a]\n",
        "unknown-field": "resources:\n- configmap.yaml\nresourcez:\n- x\n",
        "namespace-list": "resources:\n- configmap.yaml\nnamespace: [a]\n",
        "nameprefix-map": "resources:\n- configmap.yaml\nnamePrefix: {a: b}\n",
        "commonlabels-nested": "resources:\n- configmap.yaml\ncommonLabels: {a: {b: c}}\n",
        "commonlabels-list": "resources:\n- configmap.yaml\ncommonLabels: [a]\n",
        "commonannotations-list": "resources:\n- configmap.yaml\ncommonAnnotations: [a]\n",
        "images-not-map": "resources:\n- configmap.yaml\nimages:\n- 5\n",
        "images-string": "resources:\n- configmap.yaml\nimages: nginx\n",
        "replicas-string": "resources:\n- configmap.yaml\nreplicas: lots\n",
        "replicas-count-word": "resources:\n- deployment.yaml\nreplicas:\n- name: app\n  count: lots\n",
        "replicas-no-name": "resources:\n- deployment.yaml\nreplicas:\n- count: 2\n",
        "patches-string": "resources:\n- configmap.yaml\npatches: x\n",
        "patches-int-item": "resources:\n- configmap.yaml\npatches:\n- 5\n",
        "patches-empty-item": "resources:\n- configmap.yaml\npatches:\n- {}\n",
        "patches-path-and-patch": "resources:\n- configmap.yaml\npatches:\n- path: a.yaml\n  patch: x\n",
        "generator-not-map": "configMapGenerator:\n- 5\n",
        "generator-no-name": "configMapGenerator:\n- literals: [a=b]\n",
        "generator-literal-no-eq": "configMapGenerator:\n- name: g\n  literals:\n  - novalue\n",
        "generator-literal-empty-key": "configMapGenerator:\n- name: g\n  literals:\n  - =value\n",
        # an unknown behaviour word is kustomize's "unspecified" (create); a non-string one is refused
        "generator-behavior": "configMapGenerator:\n- name: g\n  behavior: [explode]\n  literals: [a=b]\n",
        "generator-merge-missing": "configMapGenerator:\n- name: g\n  behavior: merge\n  literals: [a=b]\n",
        "generator-options-labels-int": (
            "configMapGenerator:\n- name: g\n  literals: [a=b]\ngeneratorOptions: {labels: 5}\n"
        ),
        "generator-options-string": (
            "configMapGenerator:\n- name: g\n  literals: [a=b]\ngeneratorOptions: x\n"
        ),
        "generator-file-missing": "configMapGenerator:\n- name: g\n  files:\n  - nope.txt\n",
        "generator-twice": (
            "configMapGenerator:\n- name: g\n  literals: [a=b]\n- name: g\n  literals: [c=d]\n"
        ),
        "helm-charts": "helmCharts:\n- name: x\n  repo: https://example.com\n",
        "vars": "vars:\n- name: X\n  objref: {kind: Service, name: app, apiVersion: v1}\n",
        "generators-plugin": "generators:\n- plugin.yaml\n",
        "validators-plugin": "validators:\n- plugin.yaml\n",
        "kind-wrong": "kind: Deployment\nresources:\n- configmap.yaml\n",
        # a Component directory builds like a kustomization (as with kustomize), but not with the
        # Kustomization apiVersion
        "kind-component-kustomization-version": (
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Component\nresources:\n- configmap.yaml\n"
        ),
        "sort-order": "resources:\n- configmap.yaml\nsortOptions: {order: random}\n",
        "labels-fields-int": "resources:\n- configmap.yaml\nlabels:\n- pairs: {a: b}\n  fields: 5\n",
        "labels-pairs-list": "resources:\n- configmap.yaml\nlabels:\n- pairs: [a]\n",
        "replacements-no-source": "resources:\n- configmap.yaml\nreplacements:\n- targets: []\n",
        "replacements-source-missing": (
            "resources:\n- configmap.yaml\nreplacements:\n"
            "- source: {kind: Nope, name: x}\n  targets:\n"
            "  - select: {kind: ConfigMap}\n    fieldPaths: [data.x]\n"
        ),
        "replacements-bad-fieldpath": (
            "resources:\n- configmap.yaml\nreplacements:\n"
            "- source: {kind: ConfigMap, name: app-config, fieldPath: data.[[}\n"
            "  targets:\n  - select: {kind: ConfigMap}\n"
            "    fieldPaths: [data.x]\n"
        ),
        "resource-missing": "resources:\n- nope.yaml\n",
        "resource-empty-string": "resources:\n- ''\n",
        "component-missing": "components:\n- ../nope\n",
        "component-is-file": "components:\n- configmap.yaml\n",
        "transformer-missing": "resources:\n- configmap.yaml\ntransformers:\n- nope.yaml\n",
        "configurations-missing": "resources:\n- configmap.yaml\nconfigurations:\n- nope.yaml\n",
        "two-documents": "resources: []\n---\nresources: []\n",
        "empty-file": "",
        "only-comment": "# nothing here\n",
        "null-document": "~\n",
    }
    out = [RepoCase(f"kustomization/{n}", {K: t.encode()}, Expect(K, None, ())) for n, t in bad.items()]
    # words are left empty above on purpose: each message must at least name the kustomization file.
    out.append(
        RepoCase(
            "kustomization/two-kustomization-files",
            {"overlays/dev/kustomization.yml": b"resources: []\n"},
            Expect("overlays/dev", None, ("multiple", "kustomization")),
        )
    )
    out.append(
        RepoCase(
            "kustomization/missing",
            {K: None},
            Expect("overlays/dev", None, ("kustomization",)),
        )
    )
    out.append(
        RepoCase(
            "kustomization/is-a-directory",
            {K: None, K + "/x": b"y"},
            Expect("overlays/dev", None, ("kustomization",)),
        )
    )
    out.append(
        RepoCase(
            "kustomization/transformer-exec",
            {
                K: kust("transformers:\n- t.yaml\n"),
                "overlays/dev/t.yaml": b"apiVersion: example.com/v1\nkind: Exec\nmetadata:\n  name: x\n"
                b"  annotations:\n    config.kubernetes.io/function: |\n      exec:\n        path: /bin/sh\n",
            },
            Expect("overlays/dev/t.yaml", None, ("builtin", "not supported", "supported")),
        )
    )
    out.append(
        RepoCase(
            "kustomization/transformer-labels-int",
            {
                K: kust("transformers:\n- t.yaml\n"),
                "overlays/dev/t.yaml": b"apiVersion: builtin\nkind: LabelTransformer\nmetadata: {name: t}\n"
                b"labels: 5\nfieldSpecs: [{path: metadata/labels, create: true}]\n",
            },
            Expect("overlays/dev/t.yaml", None, ("labels", "mapping")),
        )
    )
    out.append(
        RepoCase(
            "kustomization/transformer-unknown-kind",
            {
                K: kust("transformers:\n- t.yaml\n"),
                "overlays/dev/t.yaml": b"apiVersion: builtin\nkind: RunShell\nmetadata: {name: t}\n",
            },
            Expect("overlays/dev/t.yaml", None, ("unsupported", "not supported", "unknown")),
        )
    )
    out.append(
        RepoCase(
            "kustomization/configurations-wrong-shape",
            {K: kust("configurations:\n- c.yaml\n"), "overlays/dev/c.yaml": b"nameReference: 5\n"},
            Expect("overlays/dev/c.yaml", None, ("list", "must", "invalid")),
        )
    )
    out.append(
        RepoCase(
            "kustomization/env-file-bad-utf8",
            {
                K: kust("configMapGenerator:\n- name: g\n  envs:\n  - a.env\n"),
                "overlays/dev/a.env": b"A=\xff\n",
            },
            Expect(K, None, W_UTF8),
        )
    )
    return out


def _patch_cases() -> list[RepoCase]:
    """Invalid JSON 6902 and strategic merge patches, inline and from files."""
    t = "  target: {version: v1, kind: ConfigMap, name: app-config}\n"
    td = "  target: {group: apps, version: v1, kind: Deployment, name: app}\n"
    json_ops = {
        "op-unknown": "- op: explode\n  path: /data\n",
        "op-missing": "- path: /data/x\n  value: y\n",
        "op-int": "- op: 5\n  path: /data/x\n",
        "path-missing": "- op: remove\n",
        "path-int": "- op: add\n  path: 5\n  value: 1\n",
        "remove-missing-key": "- op: remove\n  path: /data/nope\n",
        "replace-missing-parent": "- op: replace\n  path: /nope/deeper/x\n  value: 1\n",
        "test-fails": "- op: test\n  path: /data/LOG_LEVEL\n  value: debug\n",
        "move-from-missing": "- op: move\n  from: /nope\n  path: /data/x\n",
        "move-no-from": "- op: move\n  path: /data/x\n",
        "move-into-child": "- op: move\n  from: /data\n  path: /data/inner\n",
        "root-to-scalar": "- op: replace\n  path: ''\n  value: 1\n",
        "root-to-list": "- op: replace\n  path: ''\n  value: [1]\n",
        "ops-not-list": "{op: add, path: /data/x, value: y}\n",
        "ops-scalars": "- 1\n- 2\n",
        "ops-nested-list": "- [op, add]\n",
        "json-invalid": '[{"op": "add", "path": "/data/x" "value": 1}]\n',
    }
    dep_ops = {
        "index-out-of-range": "- op: replace\n  path: /spec/template/spec/containers/99/image\n  value: y\n",
        "index-negative-too-far": (
            "- op: replace\n  path: /spec/template/spec/containers/-5/image\n  value: y\n"
        ),
        "index-not-number": "- op: replace\n  path: /spec/template/spec/containers/first/image\n  value: y\n",
        "index-huge": "- op: add\n  path: /spec/template/spec/containers/99999999999999999999\n  value: {}\n",
    }
    out: list[RepoCase] = []
    for name, ops in json_ops.items():
        out.append(
            RepoCase(
                f"patch/json-file/{name}",
                {K: kust("patches:\n- path: p.yaml\n" + t), "overlays/dev/p.yaml": ops.encode()},
                Expect("overlays/dev/p.yaml", None, ()),
            )
        )
        inline = "".join("    " + line + "\n" for line in ops.splitlines())
        out.append(
            RepoCase(
                f"patch/json-inline/{name}",
                {K: kust("patches:\n- patch: |\n" + inline + t)},
                Expect(K, None, ()),
            )
        )
        out.append(
            RepoCase(
                f"patch/json6902/{name}",
                {K: kust("patchesJson6902:\n- path: p.yaml\n" + t), "overlays/dev/p.yaml": ops.encode()},
                Expect("overlays/dev/p.yaml", None, ()),
            )
        )
    for name, ops in dep_ops.items():
        out.append(
            RepoCase(
                f"patch/json-file/{name}",
                {K: kust("patches:\n- path: p.yaml\n" + td), "overlays/dev/p.yaml": ops.encode()},
                Expect("overlays/dev/p.yaml", None, ("index", "range", "invalid", "array", "missing")),
            )
        )
    smp = {
        "directive-unknown": (
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-config\n$patch: explode\n"
        ),
        "no-target-found": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: nope\ndata: {a: b}\n",
        "no-kind": "apiVersion: v1\nmetadata:\n  name: app-config\ndata: {a: b}\n",
        "no-name": "apiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n",
        "metadata-list": "apiVersion: v1\nkind: ConfigMap\nmetadata: [a]\n",
        "list-directive-unknown": "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app\nspec:\n"
        "  template:\n    spec:\n      containers:\n      - $patch: explode\n        name: app\n",
    }
    for name, text in smp.items():
        out.append(
            RepoCase(
                f"patch/smp-file/{name}",
                {K: kust("patchesStrategicMerge:\n- p.yaml\n"), "overlays/dev/p.yaml": text.encode()},
                Expect("overlays/dev/p.yaml", None, ()),
            )
        )
        out.append(
            RepoCase(
                f"patch/smp-patches/{name}",
                {K: kust("patches:\n- path: p.yaml\n"), "overlays/dev/p.yaml": text.encode()},
                Expect("overlays/dev/p.yaml", None, ()),
            )
        )
    out.append(
        RepoCase(
            "patch/json6902-no-target",
            {
                K: kust("patchesJson6902:\n- path: p.yaml\n"),
                "overlays/dev/p.yaml": b"- op: add\n  path: /data/x\n  value: y\n",
            },
            Expect(K, None, ("target",)),
        )
    )
    out.append(
        RepoCase(
            "patch/json-no-target",
            {K: kust("patches:\n- patch: |\n    - op: add\n      path: /data/x\n      value: y\n")},
            Expect(K, None, ("target",)),
        )
    )
    out.append(
        RepoCase(
            "patch/target-not-map",
            {
                K: kust(
                    "patches:\n- target: 5\n  patch: |\n    - op: add\n      path: /data/x\n      value: y\n"
                )
            },
            Expect(K, None, ("target",)),
        )
    )
    out.append(
        RepoCase(
            "patch/file-missing", {K: kust("patches:\n- path: nope.yaml\n")}, Expect(K, None, ("nope.yaml",))
        )
    )
    out.append(
        RepoCase(
            "patch/patch-not-string", {K: kust("patches:\n- patch: {a: b}\n")}, Expect(K, None, ("patch",))
        )
    )
    return out


def _object_cases() -> list[RepoCase]:
    """Manifests that parse as YAML but are not Kubernetes objects."""

    def res(text: bytes) -> dict[str, FileSpec | None]:
        return {K: kust(resources=(*BASE_RESOURCES, "obj.yaml")), "overlays/dev/obj.yaml": text}

    o = "overlays/dev/obj.yaml"
    objs = {
        "no-kind": b"apiVersion: v1\nmetadata:\n  name: x\n",
        "no-metadata": b"apiVersion: v1\nkind: ConfigMap\n",
        "no-name": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  labels: {a: b}\n",
        "metadata-list": b"apiVersion: v1\nkind: ConfigMap\nmetadata: [1]\n",
        "metadata-string": b"apiVersion: v1\nkind: ConfigMap\nmetadata: x\n",
        # (a name written as a number, `name: 5`, is rendered as kustomize renders it; the apply stage refuses
        # it: tests/unit/test_identify_rendered.py)
        "name-list": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [a]\n",
        "name-empty": b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ''\n",
        "kind-list": b"apiVersion: v1\nkind: [ConfigMap]\nmetadata:\n  name: x\n",
        "kind-map": b"apiVersion: v1\nkind: {a: b}\nmetadata:\n  name: x\n",
        "kind-int": b"apiVersion: v1\nkind: 5\nmetadata:\n  name: x\n",
        "api-version-list": b"apiVersion: [v1]\nkind: ConfigMap\nmetadata:\n  name: x\n",
        "list-items-not-objects": b"apiVersion: v1\nkind: List\nitems: [1, 2]\n",
        "list-items-string": b"apiVersion: v1\nkind: List\nitems: x\n",
        "duplicate-object": CONFIGMAP.replace(b"app-config", b"twice")
        + b"---\n"
        + CONFIGMAP.replace(b"app-config", b"twice"),
        "duplicate-of-base": CONFIGMAP,
    }
    out = [RepoCase(f"object/{n}", res(t), Expect(o, None, ())) for n, t in objs.items()]
    return out


def _dos_cases() -> list[RepoCase]:
    """Inputs whose cost explodes: nesting of kustomizations, fan-out through directories (a "kustomize
    bomb": each level includes the next twice, so depth 16 renders 65536 objects from 50 small files) and
    catastrophic backtracking in a patch target's name pattern."""
    out: list[RepoCase] = []
    files: dict[str, FileSpec | None] = {K: kust(resources=(*BASE_RESOURCES, "../l0"))}
    depth = 600
    for i in range(depth):
        files[f"overlays/l{i}/kustomization.yaml"] = f"resources:\n- ../l{i + 1}\n".encode()
    files[f"overlays/l{depth}/kustomization.yaml"] = b"resources:\n- cm.yaml\n"
    files[f"overlays/l{depth}/cm.yaml"] = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: deep\n"
    out.append(
        RepoCase("dos/kustomization-chain-600", files, Expect("overlays/", None, ("deep", "nest", "depth")))
    )
    fan: dict[str, FileSpec | None] = {K: kust(resources=(*BASE_RESOURCES, "../f0"))}
    levels = 16
    for i in range(levels):
        fan[f"overlays/f{i}/kustomization.yaml"] = b"resources:\n- a\n- b\n"
        for x in "ab":
            text = f"namePrefix: {x}-\nresources:\n- ../../f{i + 1}\n"
            fan[f"overlays/f{i}/{x}/kustomization.yaml"] = text.encode()
    fan[f"overlays/f{levels}/kustomization.yaml"] = b"resources:\n- cm.yaml\n"
    fan[f"overlays/f{levels}/cm.yaml"] = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: leaf\n"
    out.append(
        RepoCase(
            "dos/kustomization-fan-out-16", fan, Expect("overlays/", None, ("objects", "limit", "too many"))
        )
    )
    return out


def redos_cases() -> list[RepoCase]:
    """Patch and replacement selectors whose name pattern backtracks catastrophically on a 40-character
    name (``(a+)+$`` against ``aaa…a!``): Python's ``re`` needs hours; kustomize (Go's RE2) is linear."""
    redos = "a" * 40 + "!"
    config = CONFIGMAP.replace(b"app-config", redos.encode())
    patch = (
        "patches:\n- target: {kind: ConfigMap, name: '(a+)+$'}\n  patch: |\n"
        "    - op: add\n      path: /data/x\n      value: y\n"
    )
    ns_patch = patch.replace("name: '(a+)+$'", "namespace: '(a+)+$'")
    namespaced = config.replace(b"metadata:\n", b"metadata:\n  namespace: " + redos.encode() + b"\n")
    return [
        RepoCase(
            "dos/redos/patch-target-name", {K: kust(patch), "overlays/dev/configmap.yaml": config}, Expect(K)
        ),
        RepoCase(
            "dos/redos/patch-target-namespace",
            {K: kust(ns_patch), "overlays/dev/configmap.yaml": namespaced},
            Expect(K),
        ),
    ]


def render_cases() -> list[RepoCase]:
    """Every case for the renderer (``reconciler.render.build``)."""
    return (
        placed_cases()
        + _escape_cases()
        + _cycle_cases()
        + _kustomization_cases()
        + _patch_cases()
        + _object_cases()
        + _dos_cases()
    )


# --------------------------------------------------------------------------------------------------
# Environment files (``envs/dev.yaml``)


def env_cases() -> list[RepoCase]:
    """Hostile ``envs/dev.yaml`` contents for ``load_environment``."""
    out = [RepoCase(f"env/payload/{p.id}", {ENV: p.data}, Expect(ENV, p.line, p.words)) for p in PAYLOADS]
    semantic = {
        "overlay-missing": (b"namespace: x\n", ("overlay",)),
        "overlay-dotdot": (b"overlay: ../outside\n", ("overlay",)),
        "overlay-dotdot-inner": (b"overlay: overlays/../../outside\n", ("overlay",)),
        "overlay-absolute": (b"overlay: /etc\n", ("overlay",)),
        "overlay-int": (b"overlay: 5\n", ("overlay",)),
        "overlay-list": (b"overlay: [a]\n", ("overlay",)),
        "overlay-null": (b"overlay: null\n", ("overlay",)),
        "overlay-empty": (b"overlay: ''\n", ("overlay",)),
        "interval-negative": (b"overlay: o\nsync: {interval: -1}\n", ("interval",)),
        "interval-zero": (b"overlay: o\nsync: {interval: 0}\n", ("interval",)),
        "interval-word": (b"overlay: o\nsync: {interval: soon}\n", ("interval",)),
        "interval-nan": (b"overlay: o\nsync: {interval: .nan}\n", ("interval",)),
        "drift-unknown": (b"overlay: o\nsync: {drift: maybe}\n", ("drift",)),
        "prune-word": (b"overlay: o\nsync: {prune: 'yes please'}\n", ("prune",)),
        "sync-list": (b"overlay: o\nsync: [a]\n", ("sync",)),
        "ignore-pointer-relative": (b"overlay: o\nsync: {ignore: [{paths: [spec]}]}\n", ("paths", "pointer")),
        "ignore-no-paths": (b"overlay: o\nsync: {ignore: [{kind: Deployment, paths: []}]}\n", ("paths",)),
        "ignore-bad-regex": (
            b"overlay: o\nsync: {ignore: [{name: '((', paths: [/spec]}]}\n",
            ("name", "regular expression", "regex"),
        ),
        "ignore-unknown-field": (b"overlay: o\nsync: {ignore: [{paths: [/a], evil: 1}]}\n", ("evil",)),
        "unknown-field": (b"overlay: o\nfoo: 1\n", ("foo",)),
        "name-mismatch": (b"name: prod\noverlay: o\n", ("name",)),
        "name-not-dns": (b"name: DEV!\noverlay: o\n", ("name",)),
        "two-documents": (b"overlay: o\n---\noverlay: p\n", ("document",)),
        "empty": (b"", ("document", "empty")),
        "comment-only": (b"# nothing\n", ("document", "empty")),
        "health-timeout-zero": (b"overlay: o\nhealth: {timeout: 0}\n", ("timeout",)),
        "promotion-via": (b"overlay: o\npromotion: {via: email}\n", ("via",)),
        "on-failure": (b"overlay: o\nonFailure: explode\n", ("onFailure",)),
        "context-list": (b"overlay: o\ncontext: [a]\n", ("context",)),
        "namespace-int": (b"overlay: o\nnamespace: 5\n", ("namespace",)),
        "namespace-not-dns": (b"overlay: o\nnamespace: 'Bad Namespace!'\n", ("namespace",)),
        "namespace-traversal": (b"overlay: o\nnamespace: ../../kube-system\n", ("namespace",)),
    }
    for name, (data, words) in semantic.items():
        out.append(RepoCase(f"env/field/{name}", {ENV: data}, Expect(ENV, None, words)))
    return out


def huge_sizes(limit: int) -> dict[str, bytes]:
    """Files just over ``limit`` bytes, in three shapes (many keys, one long scalar, many documents)."""
    line_len = len(f"  k{0:09d}: {'v' * 24}\n")
    n = limit // line_len + 2
    many_keys = b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: huge\ndata:\n" + b"".join(
        f"  k{i:09d}: {'v' * 24}\n".encode() for i in range(n)
    )
    long_scalar = (
        b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: huge\ndata:\n  k: " + b"x" * (limit + 1) + b"\n"
    )
    doc = b"---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n"
    many_docs = doc * (limit // len(doc) + 2)
    out = {"many-keys": many_keys, "long-scalar": long_scalar, "many-documents": many_docs}
    assert all(len(v) > limit for v in out.values())
    return out


__all__ = [
    "ENV",
    "PAYLOADS",
    "PLACEMENTS",
    "TAG_PAYLOADS",
    "TEXT_PAYLOADS",
    "Expect",
    "Fifo",
    "K",
    "Link",
    "Outcome",
    "Payload",
    "RepoCase",
    "assert_clear",
    "assert_refused",
    "baseline",
    "bounded",
    "case_files",
    "env_cases",
    "huge_sizes",
    "params",
    "render_cases",
    "resolve_outside",
    "write_case",
    "write_tree",
]
