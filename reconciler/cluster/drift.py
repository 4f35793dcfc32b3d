"""Semantic comparison of desired state (rendered from Git) with live state (from the informer cache).

The apply engine calls :func:`diff_paths` for every desired object before it applies anything. An empty
result means the live object already carries everything desired says, so the object is left alone (a
no-op pass makes zero write calls). A non-empty result is the drift report: the dot paths that differ,
which the next server-side apply (field manager ``reconciler``) corrects. Values are never returned or
put into messages, so Secret data cannot leak through a drift report.

The rules, and where they come from:

* desired is a subset of live (server-side apply semantics, Kubernetes "Server-Side Apply" docs): fields
  only the live object has are server defaults, status or another manager's fields and are ignored;
  ``status`` and the bookkeeping ``metadata`` fields (managedFields, resourceVersion, uid, generation,
  creationTimestamp, selfLink, deletion*) are never compared. Map keys are compared only where desired
  sets them, which makes labels and annotations compare only the keys desired sets.
* Lists with a merge key (``x-kubernetes-list-map-keys`` of the Kubernetes API types: containers,
  env, volumes, ports, ...) are matched item by item on that key, in any order, and items only live has
  are ignored; ``metadata.finalizers`` is a set (desired values must be present); every other list is
  atomic, compared element by element (maps in it as subsets) and must have the same length.
* Fields this manager still owns according to ``metadata.managedFields`` (operation Apply, fieldsV1)
  that desired no longer sets, and that live still has, are reported too: the next apply removes them.
  They are reported at the owned leaf (``metadata.annotations["example.com/x"]``), or at the list item
  when the manager owns the item itself (``env[name=OLD]``).
* Equal values with different spellings are equal: resource quantities by value
  (:mod:`reconciler.cluster.quantity`), numbers by value, int-or-string fields (``"8080"`` == 8080).
* Empty and absent are equal: ``{}``/``[]``/null in desired equals an absent live field, an absent or empty
  live map equals a desired map whose leaves are all empty, and a desired ``""``/``false``/``0`` equals an
  absent live field (built-in types drop zero values marked omitempty) -- except for map entries (labels,
  annotations, data, selectors), where an empty string is a real value, and for the few fields whose
  absence means a non-zero default (``automountServiceAccountToken``, ``enableServiceLinks``, ...).
* v1 Secret: desired ``stringData`` is compared with live ``data`` after base64-decoding it, and desired
  ``data`` by decoded bytes.

Write-only fields (:data:`WRITE_ONLY_FIELDS`): a field Git may set that the API server never stores under
that name, because it moves the value to another field on write. The live object has only the other
field, so drift is reported at the live path together with the Git path it came from
(:class:`FieldDrift`, ``data.token`` from ``stringData.token``), and such fields are sent where the
server stores them (:func:`as_stored`), so that a key removed from Git is removed from the live object.
Secret ``stringData`` is the one such field of the built-in types that kube-apiserver 1.36 serves (its
other renames -- Service ``clusterIP`` to ``clusterIPs``, Pod ``serviceAccount`` to
``serviceAccountName``, PVC ``dataSource`` to ``dataSourceRef`` -- keep the written field too;
``tests/integration/test_apply_prune_faults.py`` checks this on the real server).

Paths: dot paths from the object root; list items with a merge key as ``containers[name=web]`` (several
keys joined by commas: ``ports[containerPort=8080,protocol=TCP]``), atomic list items by index
``args[0]``; map keys that are not plain identifiers are quoted: ``annotations["example.com/x"]``.
"""

from __future__ import annotations

import base64
import binascii
import copy
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from reconciler.cluster.quantity import QuantityError, parse_quantity

__all__ = [
    "WRITE_ONLY_FIELDS",
    "DriftInputError",
    "FieldDrift",
    "WriteOnlyField",
    "as_stored",
    "controller_owned_pointers",
    "diff_fields",
    "diff_paths",
    "hpa_targets",
    "json_pointer_to_path",
    "stored_pointer",
    "without_controller_owned",
]


class DriftInputError(ValueError):
    """A desired or live object that cannot be compared; the message names the object and path."""


@dataclass(frozen=True)
class FieldDrift:
    """One differing field: where it is on the live object and where Git wrote it.

    ``live`` and ``git`` are dot paths (format in the module docstring); they differ only for a
    write-only field (``live="data.token"``, ``git="stringData.token"``). Never carries a value.
    """

    live: str
    git: str

    def __str__(self) -> str:
        """``data.token (from stringData.token)``, or the path alone when both are the same."""
        return self.live if self.live == self.git else f"{self.live} (from {self.git})"


@dataclass(frozen=True)
class WriteOnlyField:
    """A field the API server moves to another field on write (it is never stored under its own name).

    ``git`` and ``live`` are the top-level field names (``stringData`` and ``data``) of objects of API
    group ``group`` (``""`` for core) and ``kind``; keys below them are kept.
    """

    group: str
    kind: str
    git: str
    live: str


WRITE_ONLY_FIELDS: tuple[WriteOnlyField, ...] = (
    # k8s.io/api core/v1 Secret: "stringData ... is provided as a write-only input field for convenience.
    # All keys and values are merged into the data field on write, overwriting any existing values."
    WriteOnlyField(group="", kind="Secret", git="stringData", live="data"),
)


# --------------------------------------------------------------------------------------------------
# paths


@dataclass(frozen=True)
class _Seg:
    """One step of a path: its dot-path text and the RFC 6901 tokens that address it."""

    text: str
    tokens: frozenset[str]


_Path = tuple[_Seg, ...]
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")


def _field_seg(name: str) -> _Seg:
    text = f".{name}" if _IDENT_RE.match(name) else f"[{json.dumps(name)}]"
    return _Seg(text, frozenset({name}))


def _index_seg(index: int) -> _Seg:
    return _Seg(f"[{index}]", frozenset({str(index)}))


def _key_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _item_seg(keys: Sequence[tuple[str, Any]], indices: Iterable[int]) -> _Seg:
    inner = ",".join(f"{k}={_key_text(v)}" for k, v in keys)
    return _Seg(f"[{inner}]", frozenset(str(i) for i in indices))


def _render(path: _Path) -> str:
    return "".join(s.text for s in path).lstrip(".")


def json_pointer_to_path(pointer: str) -> list[str]:
    """Split an RFC 6901 JSON pointer into its unescaped reference tokens.

    ``"/spec/replicas"`` -> ``["spec", "replicas"]``; ``"/metadata/annotations/foo~1bar"`` ->
    ``["metadata", "annotations", "foo/bar"]``; ``""`` (the whole document) -> ``[]``. ``~1`` decodes to
    ``/`` and then ``~0`` to ``~``, in that order, as RFC 6901 section 4 requires. Array indices stay
    strings (``"0"``).

    Raises:
        ValueError: when the pointer is not a string, is non-empty without a leading ``/``, or contains a
            ``~`` not followed by ``0`` or ``1``. The message quotes the pointer.
    """
    if not isinstance(pointer, str):
        raise ValueError(f"JSON pointer must be a string, got {type(pointer).__name__}")
    if pointer == "":
        return []
    if not pointer.startswith("/"):
        raise ValueError(f"JSON pointer {pointer!r} must be empty or start with '/' (RFC 6901)")
    tokens = pointer[1:].split("/")
    for token in tokens:
        if re.search(r"~(?![01])", token):
            raise ValueError(f"JSON pointer {pointer!r}: '~' must be followed by '0' or '1' (RFC 6901)")
    return [t.replace("~1", "/").replace("~0", "~") for t in tokens]


def _ignored(path: _Path, ignore: Sequence[list[str]]) -> bool:
    for tokens in ignore:
        if len(tokens) <= len(path) and all(t in seg.tokens for t, seg in zip(tokens, path, strict=False)):
            return True
    return False


# --------------------------------------------------------------------------------------------------
# field knowledge of the Kubernetes API types

_METADATA_BOOKKEEPING = frozenset(
    {
        "managedFields",
        "resourceVersion",
        "uid",
        "generation",
        "creationTimestamp",
        "selfLink",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
    }
)
_CONTAINER_LISTS = frozenset({"containers", "initContainers", "ephemeralContainers"})
_NAME_KEYED = frozenset({"volumes", "imagePullSecrets", "env", "resourceClaims", "schedulingGates"})
_QUANTITY_PARENTS = frozenset({"limits", "requests", "overhead", "hard", "capacity", "allocatable", "used"})
_LIMIT_RANGE_PARENTS = frozenset({"max", "min", "default", "defaultRequest", "maxLimitRequestRatio"})
# Map-valued fields whose entries are data: an empty string there is a value, not "unset".
_DATA_MAPS = frozenset(
    {"labels", "annotations", "data", "stringData", "binaryData", "selector", "matchLabels", "nodeSelector"}
)
# Fields whose absence means a non-zero default, so an explicit zero value is not the same as absent.
_NONZERO_DEFAULT = frozenset(
    {
        "automountServiceAccountToken",
        "enableServiceLinks",
        "hostUsers",
        "allowPrivilegeEscalation",
        "replicas",
    }
)
_KEY_DEFAULTS: dict[str, Any] = {"protocol": "TCP"}

_Keys = tuple[str, ...]


def _merge_keys(kind: str, names: tuple[str, ...]) -> _Keys | None:
    """The merge keys of the list at ``names`` (field names, ``"[]"`` for list items), or None if atomic.

    Source: ``patchMergeKey`` / ``listMapKeys`` of k8s.io/api core/v1 and apps/v1 types, and Gateway API
    ``Gateway.spec.listeners`` (list-type map keyed by name).
    """
    field = names[-1]
    in_container = len(names) >= 3 and names[-2] == "[]" and names[-3] in _CONTAINER_LISTS
    if field in _CONTAINER_LISTS or field in _NAME_KEYED:
        return ("name",)
    if field == "volumeMounts":
        return ("mountPath",)
    if field == "volumeDevices":
        return ("devicePath",)
    if field == "ports":
        if in_container:
            return ("containerPort", "protocol")
        if kind == "Service" and names == ("spec", "ports"):
            return ("port", "protocol")
        return None
    if field == "ownerReferences" and len(names) >= 2 and names[-2] == "metadata":
        return ("uid",)
    if field == "hostAliases":
        return ("ip",)
    if field == "topologySpreadConstraints":
        return ("topologyKey", "whenUnsatisfiable")
    if field == "listeners" and kind in ("Gateway", "ListenerSet") and names == ("spec", "listeners"):
        return ("name",)
    return None


def _item_key(item: Any, keys: _Keys) -> tuple[tuple[str, Any], ...] | None:
    """The key of one list item (defaults filled in), or None if the item cannot be keyed."""
    if not isinstance(item, Mapping):
        return None
    out: list[tuple[str, Any]] = []
    for k in keys:
        v = item.get(k)
        if v is None:
            if k not in _KEY_DEFAULTS:
                return None
            v = _KEY_DEFAULTS[k]
        if isinstance(v, Mapping | list):
            return None
        out.append((k, v))
    return tuple(out)


def _key_id(key: Sequence[tuple[str, Any]]) -> tuple[str, ...]:
    return tuple(f"{k}={_key_text(v)}" for k, v in key)


def _is_quantity_field(names: tuple[str, ...]) -> bool:
    if len(names) >= 1 and names[-1] == "sizeLimit":
        return True
    if len(names) < 2:
        return False
    return names[-2] in _QUANTITY_PARENTS or (names[-2] in _LIMIT_RANGE_PARENTS and "limits" in names)


_NUMERIC_RE = re.compile(r"^[+-]?[0-9]+(\.[0-9]+)?$")


def _as_number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str) and _NUMERIC_RE.match(value):
        try:
            return Decimal(value)
        except InvalidOperation:  # pragma: no cover - the regex admits only valid numbers
            return None
    return None


def _scalars_equal(desired: Any, live: Any, names: tuple[str, ...]) -> bool:
    if _is_quantity_field(names) and not isinstance(desired, bool) and not isinstance(live, bool):
        try:
            return parse_quantity(desired) == parse_quantity(live)
        except QuantityError:
            pass  # not quantities after all (a CRD field that happens to share the name)
    if isinstance(desired, bool) or isinstance(live, bool):
        return type(desired) is type(live) and desired == live
    if isinstance(desired, str) and isinstance(live, str):
        return desired == live
    d_num, l_num = _as_number(desired), _as_number(live)
    if d_num is not None and l_num is not None:
        return d_num == l_num
    return bool(desired == live)


def _is_empty(value: Any) -> bool:
    """None, an empty map/list, or a map whose values are all (recursively) empty."""
    if value is None:
        return True
    if isinstance(value, Mapping):
        return all(_is_empty(v) for v in value.values())
    if isinstance(value, list):
        return not value
    return False


def _zero_means_absent(value: Any, names: tuple[str, ...]) -> bool:
    if value is None:
        return True
    if not (value == "" or value is False or (type(value) in (int, float) and value == 0)):
        return False
    if len(names) >= 2 and names[-2] in _DATA_MAPS:
        return False
    return names[-1] not in _NONZERO_DEFAULT


# --------------------------------------------------------------------------------------------------
# desired vs live


@dataclass
class _Ctx:
    kind: str
    where: str  # "Kind namespace/name", for error messages
    out: list[_Path]
    sources: dict[_Path, _Path] = field(default_factory=dict)  # live path -> the Git path it came from


def _compare(desired: Any, live: Any, path: _Path, names: tuple[str, ...], ctx: _Ctx) -> None:
    if desired is None:
        return
    if isinstance(desired, Mapping):
        if live is None:
            live = {}
        if not isinstance(live, Mapping):
            if not _is_empty(desired):
                ctx.out.append(path)
            return
        skip: frozenset[str] = frozenset()
        if names and names[-1] == "metadata":
            skip = _METADATA_BOOKKEEPING
        elif not names:
            skip = frozenset({"status"})
        for key, d_val in desired.items():
            if not isinstance(key, str):
                raise DriftInputError(f"{ctx.where}: non-string key {key!r} at {_render(path) or '<root>'}")
            if key in skip:
                continue
            _compare(d_val, live.get(key), (*path, _field_seg(key)), (*names, key), ctx)
        return
    if isinstance(desired, list):
        if names[-2:] == ("metadata", "finalizers") and isinstance(live, list | None):
            present = live or []
            for i, value in enumerate(desired):
                if value not in present:
                    ctx.out.append((*path, _Seg(f"[{_key_text(value)}]", frozenset({str(i)}))))
            return
        keys = _merge_keys(ctx.kind, names) if names else None
        if keys is not None and _keyable(desired, keys, path, ctx):
            _compare_keyed(desired, live, keys, path, names, ctx)
            return
        if not isinstance(live, list):
            if desired:
                ctx.out.append(path)
            return
        for i, d_item in enumerate(desired):
            if i >= len(live):
                ctx.out.append((*path, _index_seg(i)))
            else:
                _compare(d_item, live[i], (*path, _index_seg(i)), (*names, "[]"), ctx)
        for i in range(len(desired), len(live)):
            ctx.out.append((*path, _index_seg(i)))
        return
    # scalar
    if live is None:
        if not _zero_means_absent(desired, names):
            ctx.out.append(path)
        return
    if isinstance(live, Mapping | list) or not _scalars_equal(desired, live, names):
        ctx.out.append(path)


def _keyable(desired: list[Any], keys: _Keys, path: _Path, ctx: _Ctx) -> bool:
    """True when every desired item carries the merge key; duplicate keys are bad input."""
    seen: set[tuple[str, ...]] = set()
    for item in desired:
        key = _item_key(item, keys)
        if key is None:
            return False
        kid = _key_id(key)
        if kid in seen:
            raise DriftInputError(
                f"{ctx.where}: duplicate list item [{','.join(kid)}] at {_render(path)} (merge key {keys})"
            )
        seen.add(kid)
    return True


def _compare_keyed(
    desired: list[Any], live: Any, keys: _Keys, path: _Path, names: tuple[str, ...], ctx: _Ctx
) -> None:
    live_items: dict[tuple[str, ...], tuple[int, Any]] = {}
    if isinstance(live, list):
        for j, item in enumerate(live):
            key = _item_key(item, keys)
            if key is not None:
                live_items.setdefault(_key_id(key), (j, item))
    for i, d_item in enumerate(desired):
        key = _item_key(d_item, keys)
        assert key is not None  # checked by _keyable
        found = live_items.get(_key_id(key))
        if found is None:
            ctx.out.append((*path, _item_seg(key, (i,))))
            continue
        j, l_item = found
        _compare(d_item, l_item, (*path, _item_seg(key, (i, j))), (*names, "[]"), ctx)


# --------------------------------------------------------------------------------------------------
# Secret data


def _decode_desired_secret(desired: Mapping[str, Any], where: str) -> dict[str, tuple[str, bytes]]:
    """key -> (field it came from, bytes); stringData wins over data, as on the API server."""
    out: dict[str, tuple[str, bytes]] = {}
    data = desired.get("data") or {}
    string_data = desired.get("stringData") or {}
    if not isinstance(data, Mapping) or not isinstance(string_data, Mapping):
        raise DriftInputError(f"{where}: Secret data and stringData must be maps")
    for key, value in data.items():
        if not isinstance(value, str):
            raise DriftInputError(f"{where}: Secret data.{key} must be a base64 string")
        try:
            out[str(key)] = ("data", base64.b64decode("".join(value.split()), validate=True))
        except (binascii.Error, ValueError) as exc:
            raise DriftInputError(f"{where}: Secret data.{key} is not valid base64") from exc
    for key, value in string_data.items():
        if not isinstance(value, str):
            raise DriftInputError(f"{where}: Secret stringData.{key} must be a string")
        out[str(key)] = ("stringData", value.encode("utf-8"))
    return out


def _compare_secret(desired: Mapping[str, Any], live: Mapping[str, Any], ctx: _Ctx) -> None:
    wanted = _decode_desired_secret(desired, ctx.where)
    live_data = live.get("data")
    live_data = live_data if isinstance(live_data, Mapping) else {}
    for key, (source, value) in wanted.items():
        # reported at the live path (data.<key>); /data/<key> and /stringData/<key> pointers in ``ignore``
        # both address it, since a stringData key ends up in live data
        path = (_Seg(".data", frozenset({source, "data"})), _field_seg(key))
        encoded = live_data.get(key)
        actual: bytes | None = None
        if isinstance(encoded, str):
            try:
                actual = base64.b64decode(encoded, validate=True)
            except (binascii.Error, ValueError):
                actual = None
        if actual != value:
            ctx.out.append(path)
            if source != "data":
                ctx.sources[path] = (_field_seg(source), _field_seg(key))


def _is_secret(obj: Mapping[str, Any]) -> bool:
    return obj.get("kind") == "Secret" and obj.get("apiVersion") == "v1"


def as_stored(obj: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``obj`` with its write-only fields moved where the API server stores them, for sending.

    For a v1 Secret, each ``stringData`` key is put into ``data`` base64-encoded (RFC 4648 section 4, the
    standard alphabet with padding, as the API server encodes ``data``), replacing a ``data`` key of the
    same name as the API server does, and ``stringData`` is dropped. Why: server-side apply records
    ownership of the fields as they were sent (``f:stringData``), while the server stores only ``data``;
    a key later removed from ``stringData`` in Git would then stay in the live ``data`` forever. Sent as
    ``data``, the key is owned as ``data.<key>`` and the next apply without it removes it.

    Args:
        obj: one manifest (not modified).

    Returns:
        A deep copy; unchanged for other objects, and for a Secret whose ``stringData`` is not a map of
        strings (the API server rejects it, and its dry-run names the field).
    """
    out = copy.deepcopy(dict(obj))
    if not _is_secret(out) or "stringData" not in out:
        return out
    string_data = out.get("stringData")
    data = out.get("data")
    if string_data is None:
        out.pop("stringData")
        return out
    if not isinstance(string_data, Mapping) or not isinstance(data, Mapping | None):
        return out
    if not all(isinstance(v, str) for v in string_data.values()):
        return out
    merged = dict(data or {})
    for key, value in string_data.items():
        merged[str(key)] = base64.b64encode(value.encode("utf-8")).decode("ascii")
    out.pop("stringData")
    out["data"] = merged
    return out


def stored_pointer(obj: Mapping[str, Any], pointer: str) -> str:
    """``pointer`` as it addresses :func:`as_stored` ``(obj)``: ``/stringData/<key>`` of a v1 Secret
    becomes ``/data/<key>``; any other pointer is returned unchanged."""
    if _is_secret(obj) and (pointer == "/stringData" or pointer.startswith("/stringData/")):
        return "/data" + pointer[len("/stringData") :]
    return pointer


# --------------------------------------------------------------------------------------------------
# managedFields: fields this manager owns that desired no longer sets


def _owned_not_desired(
    fields: Mapping[str, Any], desired: Any, live: Any, path: _Path, names: tuple[str, ...], ctx: _Ctx
) -> None:
    for fkey, sub in fields.items():
        if fkey == ".":
            continue
        prefix, sep, rest = fkey.partition(":")
        if not sep:
            raise DriftInputError(f"{ctx.where}: managedFields: bad fieldsV1 key {fkey!r} at {_render(path)}")
        children = sub if isinstance(sub, Mapping) else {}
        if prefix == "f":
            if not names and rest == "status":
                continue
            if names and names[-1] == "metadata" and rest in _METADATA_BOOKKEEPING:
                continue
            l_child = live.get(rest) if isinstance(live, Mapping) else None
            if _is_empty(l_child):
                continue  # nothing left on the live object to remove
            d_child = desired.get(rest) if isinstance(desired, Mapping) else None
            seg = _field_seg(rest)
            if d_child is None and _owns_whole(children):
                ctx.out.append((*path, seg))
            elif children:
                _owned_not_desired(children, d_child, l_child, (*path, seg), (*names, rest), ctx)
        elif prefix == "k":
            try:
                wanted = json.loads(rest)
            except json.JSONDecodeError as exc:
                raise DriftInputError(
                    f"{ctx.where}: managedFields: bad list key {fkey!r} at {_render(path)}"
                ) from exc
            if not isinstance(wanted, dict) or not wanted:
                raise DriftInputError(f"{ctx.where}: managedFields: bad list key {fkey!r} at {_render(path)}")
            order = _merge_keys(ctx.kind, names) or ()
            keys = tuple(sorted(wanted, key=lambda k: (order.index(k) if k in order else len(order), k)))
            want_id = _key_id([(k, wanted[k]) for k in keys])
            l_found = _find_keyed(live, keys, want_id)
            if l_found is None:
                continue
            d_found = _find_keyed(desired, keys, want_id)
            idx = [l_found[0]] + ([d_found[0]] if d_found else [])
            seg = _item_seg([(k, wanted[k]) for k in keys], idx)
            if d_found is None and _owns_whole(children):
                ctx.out.append((*path, seg))
            elif children:
                d_item = d_found[1] if d_found else None
                _owned_not_desired(children, d_item, l_found[1], (*path, seg), (*names, "[]"), ctx)
        elif prefix == "v":
            try:
                value = json.loads(rest)
            except json.JSONDecodeError as exc:
                raise DriftInputError(
                    f"{ctx.where}: managedFields: bad set value {fkey!r} at {_render(path)}"
                ) from exc
            in_live = isinstance(live, list) and value in live
            in_desired = isinstance(desired, list) and value in desired
            if in_live and not in_desired:
                ctx.out.append((*path, _Seg(f"[{_key_text(value)}]", frozenset({str(live.index(value))}))))
        elif prefix == "i":
            try:
                index = int(rest)
            except ValueError as exc:
                raise DriftInputError(
                    f"{ctx.where}: managedFields: bad index {fkey!r} at {_render(path)}"
                ) from exc
            if not isinstance(live, list) or index >= len(live):
                continue
            d_item = desired[index] if isinstance(desired, list) and index < len(desired) else None
            if d_item is None and _owns_whole(children):
                ctx.out.append((*path, _index_seg(index)))
            elif children:
                seg = _index_seg(index)
                _owned_not_desired(children, d_item, live[index], (*path, seg), (*names, "[]"), ctx)
        else:
            raise DriftInputError(
                f"{ctx.where}: managedFields: unknown fieldsV1 key {fkey!r} at {_render(path)}"
            )


def _owns_whole(children: Mapping[str, Any]) -> bool:
    """True when a fieldsV1 node owns the element itself: a leaf (``{}``) or one listing ``"."``."""
    return not children or "." in children


def _find_keyed(items: Any, keys: _Keys, want_id: tuple[str, ...]) -> tuple[int, Any] | None:
    if not isinstance(items, list):
        return None
    for i, item in enumerate(items):
        key = _item_key(item, keys)
        if key is not None and _key_id(key) == want_id:
            return i, item
    return None


def _owned_entries(live: Mapping[str, Any], field_manager: str, where: str) -> list[Mapping[str, Any]]:
    meta = live.get("metadata")
    entries = meta.get("managedFields") if isinstance(meta, Mapping) else None
    if not entries:
        return []
    if not isinstance(entries, list):
        raise DriftInputError(f"{where}: metadata.managedFields must be a list")
    out: list[Mapping[str, Any]] = []
    for n, entry in enumerate(entries):
        if not isinstance(entry, Mapping):
            raise DriftInputError(f"{where}: metadata.managedFields[{n}] must be a map")
        if entry.get("manager") != field_manager or entry.get("operation") != "Apply":
            continue
        if entry.get("subresource"):
            continue
        if entry.get("fieldsType", "FieldsV1") != "FieldsV1":
            raise DriftInputError(
                f"{where}: metadata.managedFields[{n}].fieldsType {entry.get('fieldsType')!r} is not FieldsV1"
            )
        fields = entry.get("fieldsV1") or {}
        if not isinstance(fields, Mapping):
            raise DriftInputError(f"{where}: metadata.managedFields[{n}].fieldsV1 must be a map")
        out.append(fields)
    return out


# --------------------------------------------------------------------------------------------------
# public entry points


def _describe(obj: Mapping[str, Any]) -> str:
    meta = obj.get("metadata")
    meta = meta if isinstance(meta, Mapping) else {}
    ns, name = meta.get("namespace"), meta.get("name")
    return f"{obj.get('kind', '?')} {ns + '/' if ns else ''}{name or '?'}"


def diff_paths(
    desired: Mapping[str, Any],
    live: Mapping[str, Any],
    *,
    ignore: Sequence[str] = (),
    field_manager: str = "reconciler",
) -> list[str]:
    """Return the sorted live dot paths where ``live`` does not carry what ``desired`` says.

    The ``live`` paths of :func:`diff_fields` (same arguments, same errors); a write-only field is
    reported where the live object holds it (``data.token``, never ``stringData.token``).
    """
    return [f.live for f in diff_fields(desired, live, ignore=ignore, field_manager=field_manager)]


def diff_fields(
    desired: Mapping[str, Any],
    live: Mapping[str, Any],
    *,
    ignore: Sequence[str] = (),
    field_manager: str = "reconciler",
) -> list[FieldDrift]:
    """Return where ``live`` does not carry what ``desired`` says, sorted by live path.

    Args:
        desired: one object as rendered from Git (a JSON-like map: apiVersion, kind, metadata, ...).
            Pass it through :func:`without_controller_owned` first when a controller owns some fields.
        live: the same object as the API server returns it (with defaults, status, managedFields).
        ignore: RFC 6901 JSON pointers (``/spec/replicas``, ``/metadata/annotations/foo~1bar``); a path
            inside one of these subtrees is never reported. Array indices in a pointer match the item's
            index in desired or in live; ``""`` ignores the whole object.
        field_manager: the field manager this reconciler applies with. Fields it still owns on ``live``
            (``metadata.managedFields`` entries of that manager with operation Apply, fieldsV1 format) that
            desired no longer sets are reported as well, since the next apply removes them.

    Returns:
        One :class:`FieldDrift` per differing live path (sorted, de-duplicated; format in the module
        docstring), with the Git path it came from; ``[]`` means in sync, so no apply is needed. Values
        are never included.

    Raises:
        DriftInputError: (a ValueError) for input that cannot be compared: duplicate merge keys in a
            desired list, invalid base64 in a desired Secret's data, malformed managedFields. Messages
            name the object and path, never a value.
        ValueError: for a malformed pointer in ``ignore`` (see :func:`json_pointer_to_path`).
        TypeError: when ``desired`` or ``live`` is not a mapping.

    Source of the semantics: Kubernetes server-side apply (merge strategy, list types, managedFields
    fieldsV1 encoding: ``f:`` field, ``k:`` list key, ``v:`` set value, ``i:`` index, ``.`` self).
    """
    if not isinstance(desired, Mapping) or not isinstance(live, Mapping):
        raise TypeError("diff_paths: desired and live must be mappings (one Kubernetes object each)")
    pointers = [json_pointer_to_path(p) for p in ignore]
    kind = desired.get("kind")
    ctx = _Ctx(kind=kind if isinstance(kind, str) else "", where=_describe(desired), out=[])

    if _is_secret(desired):
        rest = {k: v for k, v in desired.items() if k not in ("data", "stringData")}
        _compare(rest, live, (), (), ctx)
        _compare_secret(desired, live, ctx)
        desired_for_owned: Mapping[str, Any] = {
            **rest,
            "data": dict(_decode_desired_secret(desired, ctx.where)),
        }
    else:
        _compare(desired, live, (), (), ctx)
        desired_for_owned = desired

    for fields in _owned_entries(live, field_manager, ctx.where):
        _owned_not_desired(fields, desired_for_owned, live, (), (), ctx)

    found: dict[str, str] = {}
    for p in ctx.out:
        if _ignored(p, pointers):
            continue
        live_path = _render(p)
        git = ctx.sources.get(p)
        if git is not None:
            found[live_path] = _render(git)
        else:
            found.setdefault(live_path, live_path)
    return [FieldDrift(live=k, git=found[k]) for k in sorted(found)]


# --------------------------------------------------------------------------------------------------
# controller-owned fields (HPA)

_SCALER_KINDS = {"HorizontalPodAutoscaler": "autoscaling", "ScaledObject": "keda.sh"}


def hpa_targets(objects: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    """(kind, namespace, name) of workloads targeted by HorizontalPodAutoscalers in ``objects``.

    Args:
        objects: any manifests (desired or live); only ``autoscaling/*`` HorizontalPodAutoscalers and
            KEDA ``keda.sh`` ScaledObjects (which create an HPA; their kind defaults to Deployment) are
            read. The target is in the autoscaler's own namespace (``""`` when it has none, e.g. a
            desired object whose namespace is filled in later).

    Returns:
        The set of ``(scaleTargetRef.kind, namespace, scaleTargetRef.name)``.

    Raises:
        DriftInputError: when an autoscaler has no ``spec.scaleTargetRef`` with a name (and a kind, for
            an HPA); the message names the autoscaler.
    """
    out: set[tuple[str, str, str]] = set()
    for obj in objects:
        kind = obj.get("kind")
        api_version = obj.get("apiVersion")
        if not isinstance(kind, str) or kind not in _SCALER_KINDS or not isinstance(api_version, str):
            continue
        if api_version.partition("/")[0] != _SCALER_KINDS[kind]:
            continue
        spec = obj.get("spec")
        ref = spec.get("scaleTargetRef") if isinstance(spec, Mapping) else None
        if not isinstance(ref, Mapping):
            raise DriftInputError(f"{_describe(obj)}: spec.scaleTargetRef is missing")
        target_kind = ref.get("kind") or ("Deployment" if kind == "ScaledObject" else None)
        name = ref.get("name")
        if not isinstance(target_kind, str) or not isinstance(name, str) or not name:
            raise DriftInputError(f"{_describe(obj)}: spec.scaleTargetRef needs kind and name")
        meta = obj.get("metadata")
        ns = meta.get("namespace") if isinstance(meta, Mapping) else None
        out.add((target_kind, str(ns or ""), name))
    return out


def without_controller_owned(desired: dict[str, Any], *, hpa_targeted: bool) -> dict[str, Any]:
    """A copy of desired without fields a controller owns (spec.replicas when an HPA targets it).

    Args:
        desired: one desired manifest; it is not modified.
        hpa_targeted: True when an autoscaler targets this object (see :func:`hpa_targets`).

    Returns:
        A deep copy; with ``hpa_targeted`` its ``spec.replicas`` is removed, so it is neither compared
        nor sent on apply (the autoscaler owns it through the scale subresource).
    """
    out = copy.deepcopy(desired)
    if hpa_targeted:
        spec = out.get("spec")
        if isinstance(spec, dict):
            spec.pop("replicas", None)
    return out


def controller_owned_pointers(*, hpa_targeted: bool) -> list[str]:
    """JSON pointers of the fields :func:`without_controller_owned` drops, for ``diff_paths(ignore=...)``.

    Pass these too so that a ``spec.replicas`` this manager still co-owns from an earlier apply is not
    reported as "owned but no longer desired".
    """
    return ["/spec/replicas"] if hpa_targeted else []
