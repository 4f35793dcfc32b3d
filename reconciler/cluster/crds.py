"""Install CustomResourceDefinitions from a directory and wait until they are Established."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from reconciler.cluster.client import KubeClient
from reconciler.cluster.manager import ResourceManager
from reconciler.errors import ConfigError
from reconciler.model import ObjectRef, ref_of

FIELD_MANAGER = "reconciler-crds"
REPO_CRDS = Path(__file__).resolve().parents[2] / "deploy" / "crds"


def load_crds(directory: Path) -> list[dict[str, Any]]:
    """Every CustomResourceDefinition in ``*.yaml`` files under ``directory`` (recursively), sorted by path.

    Raises:
        ConfigError: when a file holds something that is not a CRD.
    """
    yaml = YAML(typ="safe")
    out: list[dict[str, Any]] = []
    for path in sorted(directory.rglob("*.yaml")):
        with path.open("rb") as f:
            for doc in yaml.load_all(f):
                if not doc:
                    continue
                if doc.get("kind") != "CustomResourceDefinition":
                    raise ConfigError(
                        f"{path}: expected a CustomResourceDefinition, found {doc.get('kind')!r}"
                    )
                out.append(doc)
    return out


def install_crds(client: KubeClient, directory: Path = REPO_CRDS, timeout: float = 60.0) -> list[ObjectRef]:
    """Server-side apply every CRD in ``directory`` and wait until each is Established.

    Returns the CRDs' refs. Raises ``KubeError`` on a rejected CRD and ``ApplyError`` on a timeout.
    """
    refs = []
    for crd in load_crds(directory):
        ref = ref_of(crd)
        client.apply(crd, ref, field_manager=FIELD_MANAGER)
        refs.append(ref)
    ResourceManager(client).wait_established(refs, timeout)
    client.forget_discovery()
    return refs
