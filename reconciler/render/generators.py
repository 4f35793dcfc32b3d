"""ConfigMap/Secret generators and kustomize's content-hash name suffix.

Key/value sources are read in kustomize's order: ``envs`` files (``KEY=VALUE`` lines, ``#`` comments and
blank lines skipped), then ``literals`` (``KEY=VALUE``; one pair of surrounding quotes is removed), then
``files`` (``[key=]path``; key defaults to the file's base name). The hash suffix is kustomize's
(api/hasher): SHA-256 over a compact JSON encoding of kind, name, data (and binaryData / type, stringData),
first ten hex digits with ``0 1 3 a e`` mapped to ``g h k m t``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import posixpath
import re
from collections.abc import Callable
from typing import Any

from reconciler.render.errors import RenderError
from reconciler.render.resource import Resource

_ENV_NAME = re.compile(r"^[-._a-zA-Z][-._a-zA-Z0-9]*$")


def _go_json(value: Any) -> str:
    """Go's ``encoding/json.Marshal`` output (sorted keys, HTML-safe escapes)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def _encode(hex_digest: str) -> str:
    table = {"0": "g", "1": "h", "3": "k", "a": "m", "e": "t"}
    return "".join(table.get(c, c) for c in hex_digest[:10])


def content_hash(obj: dict[str, Any]) -> str:
    """kustomize's 10-character hash of a ConfigMap, Secret or any other object."""
    kind = obj.get("kind")
    # kustomize looks the name up as a single field called "metadata/name", which never exists, so the
    # name always enters the hash as "" (observable behaviour of kustomize v5's hasher).
    name = obj.get("metadata/name", "")

    def val(key: str) -> Any:
        v = obj.get(key)
        return "" if v is None else v

    if kind == "ConfigMap":
        m: dict[str, Any] = {"kind": "ConfigMap", "name": name, "data": val("data")}
        if isinstance(obj.get("binaryData"), dict):
            m["binaryData"] = obj["binaryData"]
    elif kind == "Secret":
        m = {"kind": "Secret", "type": val("type"), "name": name, "data": val("data")}
        if isinstance(obj.get("stringData"), dict):
            m["stringData"] = obj["stringData"]
    else:
        m = obj
    return _encode(hashlib.sha256(_go_json(m).encode()).hexdigest())


def _strip_quotes(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


LoadFn = Callable[[str], bytes]


def _pairs(args: dict[str, Any], load: LoadFn, where: str) -> list[tuple[str, bytes | str]]:
    pairs: list[tuple[str, bytes | str]] = []
    for env in args.get("envs") or ([args["env"]] if args.get("env") else []):
        content = load(str(env)).decode("utf-8", errors="strict")
        for n, line in enumerate(content.splitlines()):
            if n == 0:
                line = line.lstrip("\ufeff")
            line = line.lstrip()
            if not line or line.startswith("#"):
                continue
            key, sep, value = line.partition("=")
            if not _ENV_NAME.match(key):
                raise RenderError(f"invalid environment variable name {key!r} in {env}", path=where)
            pairs.append((key, value if sep else ""))
    for lit in args.get("literals") or []:
        lit = str(lit)
        key, sep, value = lit.partition("=")
        if not sep or not key:
            raise RenderError(f"invalid literal source {lit!r}, expected key=value", path=where)
        pairs.append((key, _strip_quotes(value)))
    for src in args.get("files") or []:
        src = str(src)
        key, sep, fpath = src.partition("=")
        if not sep:
            key, fpath = posixpath.basename(src), src
        elif not key or not fpath:
            raise RenderError(f"invalid file source {src!r}", path=where)
        pairs.append((key, load(fpath)))
    seen: set[str] = set()
    for key, _ in pairs:
        if key in seen:
            raise RenderError(
                f"key {key!r} appears more than once in generator {args.get('name')!r}", path=where
            )
        seen.add(key)
    return pairs


def generate(
    kind: str,
    args: dict[str, Any],
    options: dict[str, Any],
    load: LoadFn,
    *,
    where: str,
    namespace: str | None,
) -> Resource:
    """Build one ConfigMap (``kind="ConfigMap"``) or Secret from generator ``args``.

    Args:
        kind: ``ConfigMap`` or ``Secret``.
        args: one ``configMapGenerator``/``secretGenerator`` entry.
        options: the kustomization's ``generatorOptions`` (per-entry ``options`` override them).
        load: reads a file relative to the kustomization directory (load-restricted).
        where: the kustomization file, for errors.
        namespace: unused placeholder for the kustomization namespace (generators keep their own).

    Raises:
        RenderError: for a missing name, bad sources, duplicate keys or unreadable files.
    """
    name = args.get("name")
    if not isinstance(name, str) or not name:
        raise RenderError(f"{kind} generator entry needs a 'name'", path=where)
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": {"name": name}}
    if args.get("namespace"):
        obj["metadata"]["namespace"] = str(args["namespace"])
    merged_opts = dict(options or {})
    own = args.get("options") or {}
    for key in ("labels", "annotations"):
        if own.get(key) or merged_opts.get(key):
            combined = dict(merged_opts.get(key) or {})
            combined.update(own.get(key) or {})
            merged_opts[key] = combined
    for key in ("disableNameSuffixHash", "immutable"):
        merged_opts[key] = bool(merged_opts.get(key)) or bool(own.get(key))
    data: dict[str, str] = {}
    binary: dict[str, str] = {}
    for key, value in _pairs(args, load, where):
        if kind == "Secret":
            raw = value if isinstance(value, bytes) else value.encode()
            data[key] = base64.b64encode(raw).decode()
        elif isinstance(value, bytes):
            try:
                data[key] = value.decode("utf-8")
            except UnicodeDecodeError:
                binary[key] = base64.b64encode(value).decode()
        else:
            data[key] = value
    if data:
        obj["data"] = data
    if binary:
        obj["binaryData"] = binary
    if kind == "Secret":
        obj["type"] = str(args.get("type") or "Opaque")
    if merged_opts.get("labels"):
        obj["metadata"]["labels"] = {str(k): str(v) for k, v in merged_opts["labels"].items()}
    if merged_opts.get("annotations"):
        obj["metadata"]["annotations"] = {str(k): str(v) for k, v in merged_opts["annotations"].items()}
    if merged_opts.get("immutable"):
        obj["immutable"] = True
    behavior = str(args.get("behavior") or "create")
    if behavior not in ("create", "merge", "replace"):
        raise RenderError(f"invalid generator behavior {behavior!r}", path=where)
    res = Resource(obj=obj, source=where, behavior=behavior)
    res.needs_hash = not bool(merged_opts.get("disableNameSuffixHash"))
    return res


def merge_generated(existing: Resource, new: Resource) -> None:
    """Fold a ``behavior: merge`` or ``replace`` generator result into the resource it targets."""
    old = existing.obj
    if new.behavior == "replace":
        for key in ("data", "binaryData"):
            old.pop(key, None)
    for key in ("data", "binaryData"):
        if key in new.obj:
            merged = dict(old.get(key) or {}) if new.behavior == "merge" else {}
            merged.update(new.obj[key])
            old[key] = merged
    for key in ("labels", "annotations"):
        if key in new.obj["metadata"]:
            merged = dict(old.get("metadata", {}).get(key) or {})
            merged.update(new.obj["metadata"][key])
            existing.meta[key] = merged
    if "immutable" in new.obj:
        old["immutable"] = new.obj["immutable"]
    # the merged object keeps the hash setting of the object it was folded into (kustomize v5 behaviour)
