"""The ownership guard's holders lookup: restricted to the keys a pass asks about it answers exactly as the
full map does, and the key set of a parsed inventory version is built once and leaves with that version."""

from __future__ import annotations

import json
import random
from typing import Any

from reconciler.cluster import ownership
from reconciler.model import Inventory, ObjectRef

KINDS = (("", "ConfigMap"), ("apps", "Deployment"), ("", "Service"))


def _ref(rng: random.Random) -> ObjectRef:
    group, kind = rng.choice(KINDS)
    return ObjectRef(
        group=group, version="v1", kind=kind, namespace=f"ns{rng.randrange(3)}", name=f"o{rng.randrange(12)}"
    )


def _stored(env: str, uid: str, rv: str, refs: list[ObjectRef]) -> dict[str, Any]:
    entries = [r.model_dump() for r in refs]
    return {"metadata": {"uid": uid, "resourceVersion": rv}, "data": {"entries": json.dumps(entries)}}


def test_holders_of_the_asked_keys_equal_the_full_map_restricted() -> None:
    rng = random.Random(19)
    for _ in range(200):
        others = [
            (
                f"environment {i!r}",
                Inventory(environment=str(i), entries=[_ref(rng) for _ in range(rng.randrange(8))]),
            )
            for i in range(rng.randrange(1, 6))
        ]
        asked = {_ref(rng).key for _ in range(rng.randrange(10))}
        full = ownership.holders(others)
        only = ownership.holders(others, only=asked)
        assert only.keys() == full.keys() & asked
        for key in only:
            assert sorted(only[key]) == sorted(full[key])


def test_a_parsed_inventory_keeps_its_keys_until_a_newer_version_replaces_it() -> None:
    a = [ObjectRef(kind="ConfigMap", namespace="n", name="a")]
    b = [ObjectRef(kind="ConfigMap", namespace="n", name="b")]
    first = ownership._parsed("dev", _stored("dev", "uid-holders-1", "10", a))
    assert ownership._parsed("dev", _stored("dev", "uid-holders-1", "10", a)) is first  # same version: shared
    assert ownership.entry_keys(first) == frozenset(r.key for r in a)
    assert id(first) in ownership._KEYS
    second = ownership._parsed("dev", _stored("dev", "uid-holders-1", "11", b))
    assert ownership.entry_keys(second) == frozenset(r.key for r in b)
    assert id(first) not in ownership._KEYS or ownership._KEYS[id(first)][0] is not first
    # an inventory parsed elsewhere (not through the cache) still answers, built on the spot
    loose = Inventory(environment="x", entries=b)
    assert ownership.entry_keys(loose) == frozenset(r.key for r in b)
