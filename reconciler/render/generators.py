"""ConfigMap/Secret generators and kustomize's content-hash name suffix.

Key/value sources are read in kustomize's order (api/kv): ``envs`` files (lines ``KEY=VALUE``; a line
without ``=`` gives an empty value; leading blanks, blank lines and ``#`` comments skipped; a BOM on the
first line dropped; the value is kept verbatim), then ``literals`` (``KEY=VALUE``; one pair of matching
surrounding quotes removed), then ``files`` (``[key=]path``; key defaults to the file's base name). A key
may appear once. ConfigMap values that are not UTF-8 go to ``binaryData``; Secret values and binary data are
base64-encoded with kyaml's 70-column line wrapping. Options (labels, annotations, immutable,
disableNameSuffixHash) merge as kustomize's ``MergeGlobalOptionsIntoLocal``: an entry's own labels and
annotations win, the flags are or-ed.

``behavior`` (:func:`generation_behavior`; ``merge|replace``, api/resmap ``appendReplaceOrMerge``): the
generated object takes the place of the one it targets, with that one's name, namespace and earlier
identities, labels and annotations merged (the generated ones win), data and binaryData merged for
``merge``; it keeps a hash suffix only when both had one.

The hash suffix is kustomize's (api/hasher): SHA-256 over Go's JSON encoding of kind, name (always empty:
kustomize looks the name up as a single field called ``metadata/name``), data and binaryData (ConfigMap) or
type, data and stringData (Secret); first ten hex digits with ``0 1 3 a e`` mapped to ``g h k m t``.
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


def _hash_value(obj: dict[str, Any], key: str) -> Any:
    if key not in obj or obj[key] is None:
        return ""
    value = obj[key]
    if isinstance(value, (dict, list)):
        return value
    if value is True:
        return "true"
    if value is False:
        return "false"
    return str(value)


def content_hash(obj: dict[str, Any]) -> str:
    """kustomize's 10-character hash of a generated ConfigMap or Secret.

    Raises:
        RenderError: for other kinds (kustomize hashes only generated objects, which are these two).
    """
    kind = obj.get("kind")
    if kind == "ConfigMap":
        m: dict[str, Any] = {"kind": "ConfigMap", "name": "", "data": _hash_value(obj, "data")}
        if isinstance(obj.get("binaryData"), dict):
            m["binaryData"] = obj["binaryData"]
    elif kind == "Secret":
        m = {"kind": "Secret", "type": _hash_value(obj, "type"), "name": "", "data": _hash_value(obj, "data")}
        if isinstance(obj.get("stringData"), dict):
            m["stringData"] = obj["stringData"]
    else:
        raise RenderError(f"cannot compute a name hash for kind {kind!r}")
    return _encode(hashlib.sha256(_go_json(m).encode()).hexdigest())


def encode_base64(data: bytes) -> str:
    """kyaml's ``encodeBase64``: standard base64, wrapped with a newline after every 70 characters when the
    encoding is 70 characters or longer (including after the last line)."""
    enc = base64.b64encode(data).decode("ascii")
    if len(enc) < 70:
        return enc
    return "".join(enc[i : i + 70] + "\n" for i in range(0, len(enc), 70))


def _strip_quotes(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


LoadFn = Callable[[str], bytes]


_CONFIG_KEY = re.compile(r"^[-._a-zA-Z0-9]+$")


def _str_list(args: dict[str, Any], key: str, where: str) -> list[str]:
    value = args.get(key)
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise RenderError(f"generator {args.get('name')!r}: {key} must be a list of strings", path=where)
    return list(value)


def _pairs(args: dict[str, Any], load: LoadFn, where: str, name: str) -> list[tuple[str, bytes]]:
    pairs: list[tuple[str, bytes]] = []
    envs = _str_list(args, "envs", where)
    if args.get("env"):
        if not isinstance(args["env"], str):
            raise RenderError(f"generator {name!r}: env must be a string", path=where)
        envs.append(args["env"])
    for env in envs:
        content = load(str(env))
        for n, raw in enumerate(content.splitlines()):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise RenderError(
                    f"env source files: line {n + 1} of {env} has invalid UTF-8", path=where
                ) from None
            if n == 0:
                line = line.removeprefix("\ufeff")
            line = line.lstrip()
            if not line or line.startswith("#"):
                continue
            key, _, value = line.partition("=")
            pairs.append((key, value.encode("utf-8")))
    for lit in _str_list(args, "literals", where):
        if lit.startswith("=") or "=" not in lit:
            raise RenderError(
                f"literal sources: invalid literal source {lit}, expected key=value", path=where
            )
        key, _, value = lit.partition("=")
        pairs.append((key, _strip_quotes(value).encode("utf-8")))
    for src in _str_list(args, "files", where):
        count = src.count("=")
        if count == 0:
            key, fpath = posixpath.basename(src), src
        elif count == 1 and src.startswith("="):
            raise RenderError(
                f"file sources: missing key name for file path {src[1:]!r} in source {src!r}", path=where
            )
        elif count == 1 and src.endswith("="):
            raise RenderError(
                f"file sources: missing file path for key name {src[:-1]!r} in source {src!r}", path=where
            )
        elif count > 1:
            raise RenderError(f"file sources: source {src!r} key name or file path contains '='", path=where)
        else:
            key, fpath = src.split("=", 1)
        pairs.append((key, load(fpath)))
    seen: set[str] = set()
    for key, _ in pairs:
        if not _CONFIG_KEY.match(key) or len(key) > 253 or key in (".", "..") or key.startswith(".."):
            raise RenderError(
                f"{name}: invalid data key {key!r} (keys consist of alphanumerics, '-', '_' or '.', at most "
                "253 characters)",
                path=where,
            )
        if key in seen:
            raise RenderError(f"configmap {name} illegally repeats the key `{key}`", path=where)
        seen.add(key)
    return pairs


_ARG_FIELDS = {
    "name",
    "namespace",
    "behavior",
    "files",
    "literals",
    "envs",
    "env",
    "options",
    "type",
}
_OPTION_FIELDS = {"labels", "annotations", "disableNameSuffixHash", "immutable"}


def _merged_options(own: Any, global_opts: Any, where: str) -> dict[str, Any]:
    for opts, label in ((own, "options"), (global_opts, "generatorOptions")):
        if opts is None:
            continue
        if not isinstance(opts, dict):
            raise RenderError(f"{label} must be a mapping", path=where)
        unknown = set(opts) - _OPTION_FIELDS
        if unknown:
            raise RenderError(f"{label}: unknown field(s) {sorted(unknown)}", path=where)
    for opts, label in ((own, "options"), (global_opts, "generatorOptions")):
        for key in ("labels", "annotations"):
            value = (opts or {}).get(key)
            if isinstance(value, dict) and None in value.values():  # null is "" (Go's JSON decoding)
                value = opts[key] = {k: "" if v is None else v for k, v in value.items()}
            if value is not None and (
                not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
            ):
                raise RenderError(f"{label}.{key} must map strings to strings", path=where)
        for key in ("disableNameSuffixHash", "immutable"):
            value = (opts or {}).get(key)
            if value is not None and not isinstance(value, bool):
                raise RenderError(f"{label}.{key} must be true or false", path=where)
    own = dict(own or {})
    glob = global_opts or {}
    out: dict[str, Any] = {}
    for key in ("labels", "annotations"):
        mine = own.get(key)
        theirs = glob.get(key)
        if mine is None:
            merged = dict(theirs) if theirs is not None else None
        else:
            merged = dict(mine)
            for k, v in (theirs or {}).items():
                merged.setdefault(k, v)
        if merged is not None:
            out[key] = {str(k): _str_value(v, where) for k, v in merged.items()}
    for key in ("disableNameSuffixHash", "immutable"):
        out[key] = bool(own.get(key)) or bool(glob.get(key))
    return out


def _str_value(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise RenderError(f"generator option value {value!r} must be a string", path=where)
    return value


def generate(kind: str, args: Any, options: Any, load: LoadFn, *, where: str) -> Resource:
    """Build one ConfigMap (``kind="ConfigMap"``) or Secret from a generator entry.

    Args:
        kind: ``ConfigMap`` or ``Secret``.
        args: one ``configMapGenerator``/``secretGenerator`` entry.
        options: the kustomization's ``generatorOptions`` (the entry's ``options`` take precedence).
        load: reads a file relative to the kustomization directory (load-restricted).
        where: the kustomization file, for errors.

    Raises:
        RenderError: for a missing name, unknown fields, bad sources, repeated keys or unreadable files.
    """
    if not isinstance(args, dict):
        raise RenderError(f"{kind} generator entries must be mappings", path=where)
    unknown = set(args) - _ARG_FIELDS - ({"type"} if kind == "Secret" else set())
    if kind == "ConfigMap":
        unknown |= {"type"} & set(args)
    if unknown:
        raise RenderError(
            f"{kind} generator {args.get('name')!r}: unknown field(s) {sorted(unknown)}", path=where
        )
    name = args.get("name")
    if not isinstance(name, str) or not name:
        raise RenderError(f"a {kind.lower()} must have a name", path=where)
    behavior = generation_behavior(args.get("behavior"), kind, where)
    opts = _merged_options(args.get("options"), options, where)
    meta: dict[str, Any] = {"name": name}
    namespace = args.get("namespace")
    if namespace is not None and not isinstance(namespace, str):
        raise RenderError(f"generator {name!r}: namespace must be a string, not {namespace!r}", path=where)
    if namespace:
        meta["namespace"] = namespace
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": kind, "metadata": meta}
    pairs = _pairs(args, load, where, name)
    if kind == "Secret":
        stype = args.get("type")
        if stype is not None and not isinstance(stype, str):
            raise RenderError(f"secret {name!r}: type must be a string", path=where)
        obj["type"] = stype or "Opaque"
        obj["data"] = {k: encode_base64(v) for k, v in sorted(pairs)}
    else:
        data: dict[str, str] = {}
        binary: dict[str, str] = {}
        for k, v in sorted(pairs):
            try:
                data[k] = v.decode("utf-8")
            except UnicodeDecodeError:
                binary[k] = encode_base64(v)
        if data:
            obj["data"] = data
        if binary:
            obj["binaryData"] = binary
    if opts.get("labels"):
        meta["labels"] = dict(opts["labels"])
    if opts.get("annotations"):
        meta["annotations"] = dict(opts["annotations"])
    if opts["immutable"]:
        obj["immutable"] = True
    res = Resource(obj=obj, source=where, behavior=behavior)
    res.needs_hash = not opts["disableNameSuffixHash"]
    return res


def generation_behavior(value: Any, kind: str, where: str) -> str:
    """kustomize's ``types.NewGenerationBehavior`` (api/types/generationbehavior.go): exactly ``create``,
    ``merge`` or ``replace``; any other string, empty or absent is ``unspecified``, which adds the object
    like ``create`` but is refused when the name is taken.

    Raises:
        RenderError: when ``behavior`` is not a string (kustomize fails to decode the kustomization).
    """
    if value is None:
        return "unspecified"
    if not isinstance(value, str):
        found = {bool: "bool", int: "number", float: "number", dict: "object"}.get(type(value), "array")
        field = "ConfigMapArgs.configMapGenerator" if kind == "ConfigMap" else "SecretArgs.secretGenerator"
        raise RenderError(
            f"json: cannot unmarshal {found} into Go struct field {field}.GeneratorArgs.behavior of type "
            "string",
            path=where,
        )
    return value if value in ("create", "merge", "replace") else "unspecified"


def _string_map(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    out = {}
    for k, v in value.items():
        if v is None:
            out[k] = ""
        elif v is True or v is False:
            out[k] = "true" if v else "false"
        elif isinstance(v, (dict, list)):
            out[k] = ""
        else:
            out[k] = str(v)
    return out


def merge_generated(existing: Resource, new: Resource) -> Resource:
    """The resource replacing ``existing`` for a ``behavior: merge`` or ``replace`` generator result."""
    raw_meta = existing.obj.get("metadata")
    old_meta: dict[str, Any] = raw_meta if isinstance(raw_meta, dict) else {}
    meta = new.meta
    labels = _string_map(old_meta.get("labels")) | _string_map(meta.get("labels"))
    annotations = _string_map(old_meta.get("annotations")) | _string_map(meta.get("annotations"))
    for key, value in (("labels", labels), ("annotations", annotations)):
        if value:
            meta[key] = dict(sorted(value.items()))
        else:
            meta.pop(key, None)
    new.set_name(existing.name)
    new.set_namespace(existing.namespace)
    if new.behavior == "merge":
        for key in ("data", "binaryData"):
            merged = _string_map(existing.obj.get(key)) | _string_map(new.obj.get(key))
            if merged:
                new.obj[key] = dict(sorted(merged.items()))
            else:
                new.obj.pop(key, None)
    new.previous = list(existing.previous)
    new.prefixes = list(existing.prefixes)
    new.suffixes = list(existing.suffixes)
    new.needs_hash = existing.needs_hash and new.needs_hash
    new.behavior = existing.behavior
    return new


_BUILTIN_GENERATORS = {"ConfigMapGenerator": "ConfigMap", "SecretGenerator": "Secret"}


def builtin_generator_args(conf: Any, *, where: str, shown: str) -> tuple[str, dict[str, Any]]:
    """The kind (``ConfigMap``/``Secret``) and generator entry of one ``generators:`` configuration, as
    kustomize's builtin ``ConfigMapGenerator``/``SecretGenerator`` plugins read it
    (api/internal/builtins/ConfigMapGenerator.go): the entry's fields at the top level (others ignored),
    ``name`` and ``namespace`` defaulting to ``metadata``'s; the kustomization's ``generatorOptions`` do not
    apply.

    Raises:
        RenderError: naming the kustomization file for anything but a builtin ConfigMap/Secret generator
            (generator plugins are not supported).
    """
    if not isinstance(conf, dict):
        raise RenderError(f"generator configuration in {shown} must be a mapping", path=where)
    api, kind = conf.get("apiVersion"), conf.get("kind")
    if api != "builtin" or kind not in _BUILTIN_GENERATORS:
        raise RenderError(
            f"generator plugins are not supported: only the builtin ConfigMapGenerator and SecretGenerator "
            f"(apiVersion: builtin) can be used in 'generators', got apiVersion {api!r} kind {kind!r} "
            f"(from {shown})",
            path=where,
        )
    meta = conf.get("metadata")
    meta = meta if isinstance(meta, dict) else {}
    if not isinstance(meta.get("name"), str) or not meta["name"]:
        raise RenderError(
            f"missing metadata.name in generator configuration {kind} (from {shown})", path=where
        )
    out_kind = _BUILTIN_GENERATORS[kind]
    fields = _ARG_FIELDS - ({"type"} if out_kind == "ConfigMap" else set())
    args = {k: v for k, v in conf.items() if k in fields}
    for key in ("name", "namespace"):
        if not args.get(key) and meta.get(key):
            args[key] = meta[key]
    return out_kind, args
