"""Install CustomResourceDefinitions from a directory and wait until they are Established."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from reconciler.cluster.client import KubeClient
from reconciler.cluster.manager import ResourceManager
from reconciler.errors import ConfigError
from reconciler.model import ObjectRef, ref_of
from reconciler.paths import default_cache_dir

FIELD_MANAGER = "reconciler-crds"
REPO_CRDS = Path(__file__).resolve().parents[2] / "deploy" / "crds"


def _parse(path: Path, data: bytes) -> list[dict[str, Any]]:
    yaml = YAML(typ="safe")
    out: list[dict[str, Any]] = []
    for doc in yaml.load_all(data):
        if not doc:
            continue
        if doc.get("kind") != "CustomResourceDefinition":
            raise ConfigError(f"{path}: expected a CustomResourceDefinition, found {doc.get('kind')!r}")
        out.append(doc)
    return out


def load_crds(directory: Path, cache_dir: Path | None = None) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in ``*.yaml`` files under ``directory`` (recursively), sorted by path.

    Parsed files are cached as JSON under ``cache_dir/crds/<sha256 of the file>.json`` (the large upstream
    CRDs take seconds to parse as YAML).

    Raises:
        ConfigError: when a file holds something that is not a CRD.
    """
    out: list[dict[str, Any]] = []
    for path in sorted(directory.rglob("*.yaml")):
        data = path.read_bytes()
        cached = cache_dir / "crds" / f"{hashlib.sha256(data).hexdigest()}.json" if cache_dir else None
        if cached is not None and cached.exists():
            out.extend(json.loads(cached.read_bytes()))
            continue
        docs = _parse(path, data)
        if cached is not None:
            cached.parent.mkdir(parents=True, exist_ok=True)
            tmp = cached.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(json.dumps(docs))
            tmp.replace(cached)
        out.extend(docs)
    return out


def install_crds(client: KubeClient, directory: Path = REPO_CRDS, timeout: float = 60.0) -> list[ObjectRef]:
    """Server-side apply every CRD in ``directory`` and wait until each is Established.

    Returns the CRDs' refs. Raises ``KubeError`` on a rejected CRD and ``ApplyError`` on a timeout.
    """
    refs = []
    for crd in load_crds(directory, default_cache_dir()):
        ref = ref_of(crd)
        client.apply(crd, ref, field_manager=FIELD_MANAGER)
        refs.append(ref)
    ResourceManager(client).wait_established(refs, timeout)
    client.forget_discovery()
    return refs
