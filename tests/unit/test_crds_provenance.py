"""The vendored upstream CRDs in deploy/crds are byte-for-byte the copies listed in PROVENANCE.md."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from reconciler.cluster.crds import load_crds

CRDS = Path(__file__).resolve().parents[2] / "deploy" / "crds"


def test_vendored_crds_match_recorded_sha256() -> None:
    text = (CRDS / "PROVENANCE.md").read_text()
    recorded = dict(
        (path, digest) for digest, path in re.findall(r"^([0-9a-f]{64})  (\S+\.yaml)$", text, re.M)
    )
    assert len(recorded) == 14
    for path, digest in recorded.items():
        assert hashlib.sha256((CRDS / path).read_bytes()).hexdigest() == digest, path


def test_load_crds_cache_gives_same_objects(tmp_path: Path) -> None:
    fresh = load_crds(CRDS)
    cold = load_crds(CRDS, tmp_path)
    warm = load_crds(CRDS, tmp_path)
    assert fresh == cold == warm
    assert {c["spec"]["names"]["kind"] for c in fresh} >= {"Agent", "ModelConfig", "MCPServer", "HTTPRoute"}
