"""Shared loading of the golden health cases (see ``test_golden.py`` for the file format)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from reconciler.cluster.health import assess
from reconciler.model import HealthState, ObjectRef, ref_of

GOLDEN = Path(__file__).parent / "golden"
CASES = sorted(GOLDEN.glob("*.yaml"))
_KEYS = {"description", "now", "noControllerAfter", "useLookup", "object", "related", "expect"}


def load_case(path: Path) -> dict[str, Any]:
    """Load and validate one golden file; errors name the file and the offending key."""
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path.name}: top level must be a mapping")
    unknown = set(data) - _KEYS
    if unknown:
        raise ValueError(f"{path.name}: unknown keys {sorted(unknown)}")
    for key in ("description", "now", "object", "expect"):
        if key not in data:
            raise ValueError(f"{path.name}: missing key {key!r}")
    expect = data["expect"]
    if not isinstance(expect, dict) or set(expect) != {"state", "message"}:
        raise ValueError(f"{path.name}: expect must have exactly 'state' and 'message'")
    HealthState(expect["state"])  # raises ValueError naming the bad state
    return data


def epoch(value: Any) -> float:
    """RFC 3339 string (or a datetime the YAML loader made) as UNIX seconds."""
    if isinstance(value, datetime):
        return value.timestamp()
    return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()


class RecordingLookup:
    """A lookup over the case's related objects that records every reference it was asked for."""

    def __init__(self, related: list[dict[str, Any]]) -> None:
        self.objects = {ref_of(o).key: o for o in related}
        self.calls: list[ObjectRef] = []

    def __call__(self, ref: ObjectRef) -> dict[str, Any] | None:
        self.calls.append(ref)
        return self.objects.get(ref.key)


def run_case(data: Mapping[str, Any]) -> tuple[Any, RecordingLookup]:
    lookup = RecordingLookup(list(data.get("related") or []))
    status = assess(
        data["object"],
        lookup=lookup if data.get("useLookup", True) else None,
        now=epoch(data["now"]),
        no_controller_after=float(data.get("noControllerAfter", 60.0)),
    )
    return status, lookup
