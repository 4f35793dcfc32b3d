"""The kustomization field ``crds:``: field specs read from OpenAPI definitions of custom resources.

A port of kustomize's ``api/internal/accumulator/loadconfigfromcrds.go``. Each file holds a map of OpenAPI
type names to ``{Schema: ..., Dependencies: [...]}`` (JSON when the file starts with ``{``, YAML
otherwise). A definition whose schema has ``kind``, ``apiVersion`` and ``metadata`` properties is a
resource type whose kind is the last dot-separated part of its name; its properties are walked, following
``$ref`` to other definitions of the file, and the extensions on them become field specs:

* ``x-kubernetes-annotation`` → ``commonAnnotations``;
* ``x-kubernetes-label-selector`` → ``commonLabels``;
* ``x-kubernetes-identity`` → ``namePrefix``;
* ``x-kubernetes-object-ref-api-version`` with ``x-kubernetes-object-ref-kind`` → a ``nameReference`` to
  that kind (the api version as its version) at ``<path>/<x-kubernetes-object-ref-name-key or name>``.

Extension values count only when they are strings, and extension names are matched exactly in lower case,
as kube-openapi's ``Extensions.GetString`` does.
"""

from __future__ import annotations

import json
from typing import Any

from reconciler.render.errors import RenderError
from reconciler.render.fieldspecs import FieldSpec, NameRef, TransformerConfig
from reconciler.render.yamlio import load_yaml_value

_X_ANNOTATION = "x-kubernetes-annotation"
_X_LABEL_SELECTOR = "x-kubernetes-label-selector"
_X_IDENTITY = "x-kubernetes-identity"
_X_VERSION = "x-kubernetes-object-ref-api-version"
_X_KIND = "x-kubernetes-object-ref-kind"
_X_NAME_KEY = "x-kubernetes-object-ref-name-key"


def config_from_crds(data: bytes, *, where: str) -> TransformerConfig:
    """The field specs of one ``crds:`` file (kustomize's ``LoadConfigFromCRDs`` for one path).

    Raises:
        RenderError: for an empty or malformed file, or a cycle of ``$ref`` between definitions.
    """
    schemas = _parse(data, where)
    out = TransformerConfig()
    for name in sorted(schemas):
        props = _properties(schemas[name], where)
        if not {"kind", "apiVersion", "metadata"} <= props.keys():
            continue
        kind = name.split(".")[-1]
        one = TransformerConfig()
        _load(one, kind, schemas, name, [], (), where)
        out.merge(one, where=where)
    return out


def _parse(data: bytes, where: str) -> dict[str, dict[str, Any] | None]:
    prefix = f"unable to parse open API definition from '{where}'"
    if not data:
        raise RenderError(f"{prefix}: the file is empty", path=where)
    if data[:1] == b"{":
        try:
            raw: Any = json.loads(data)
        except (ValueError, UnicodeDecodeError) as exc:
            raise RenderError(f"{prefix}: {exc}", path=where) from None
    else:
        try:
            raw = load_yaml_value(data, path=where, yaml11=True)
        except RenderError as exc:
            raise RenderError(f"{prefix}: {exc}", path=where) from None
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise RenderError(f"{prefix}: the file must hold a mapping of type names to definitions", path=where)
    out: dict[str, dict[str, Any] | None] = {}
    for name, definition in raw.items():
        if not isinstance(name, str):
            raise RenderError(f"{prefix}: type names must be strings", path=where)
        if definition is None:
            out[name] = None
            continue
        if not isinstance(definition, dict):
            raise RenderError(f"{prefix}: the definition of {name!r} must be a mapping", path=where)
        schema: Any = None
        for key, value in definition.items():  # Go's JSON decoder matches field names case-insensitively
            if isinstance(key, str) and key.lower() == "schema":
                schema = value
        if schema is not None and not isinstance(schema, dict):
            raise RenderError(f"{prefix}: the schema of {name!r} must be a mapping", path=where)
        out[name] = schema
    return out


def _properties(schema: dict[str, Any] | None, where: str) -> dict[str, dict[str, Any]]:
    if schema is None:
        return {}
    props = schema.get("properties")
    if props is None:
        return {}
    if not isinstance(props, dict):
        raise RenderError("unable to parse open API definition: 'properties' must be a mapping", path=where)
    out: dict[str, dict[str, Any]] = {}
    for key, value in props.items():
        if value is None:
            value = {}
        if not isinstance(key, str) or not isinstance(value, dict):
            raise RenderError("unable to parse open API definition: a property must be a mapping", path=where)
        out[key] = value
    return out


def _string(prop: dict[str, Any], key: str) -> str | None:
    value = prop.get(key)
    return value if isinstance(value, str) else None


def _load(
    config: TransformerConfig,
    kind: str,
    schemas: dict[str, dict[str, Any] | None],
    type_name: str,
    path: list[str],
    seen: tuple[str, ...],
    where: str,
) -> None:
    if type_name not in schemas:
        return
    if type_name in seen:
        raise RenderError(f"the open API definitions refer to {type_name!r} recursively", path=where)
    for prop_name, prop in _properties(schemas[type_name], where).items():
        here = "/".join([*path, prop_name])
        if _string(prop, _X_ANNOTATION) is not None:
            config.merge(TransformerConfig(common_annotations=[FieldSpec(here, kind=kind)]), where=where)
        if _string(prop, _X_LABEL_SELECTOR) is not None:
            config.merge(TransformerConfig(common_labels=[FieldSpec(here, kind=kind)]), where=where)
        if _string(prop, _X_IDENTITY) is not None:
            config.merge(TransformerConfig(name_prefix=[FieldSpec(here, kind=kind)]), where=where)
        version = _string(prop, _X_VERSION)
        ref_kind = _string(prop, _X_KIND)
        if version is not None and ref_kind is not None:
            name_key = _string(prop, _X_NAME_KEY)
            spec = FieldSpec(f"{here}/{name_key if name_key is not None else 'name'}", kind=kind)
            config.merge(
                TransformerConfig(name_reference=[NameRef(ref_kind, version=version, fieldspecs=(spec,))]),
                where=where,
            )
        ref = prop.get("$ref")
        if isinstance(ref, str):
            _load(config, kind, schemas, ref, [*path, prop_name], (*seen, type_name), where)
