"""Write an admin kubeconfig for the local cluster (certificates embedded)."""

from __future__ import annotations

import base64
import contextlib
import io
from pathlib import Path

from ruamel.yaml import YAML

CONTEXT = "reconciler-local"


def write_kubeconfig(path: Path, server: str, pki: Path) -> Path:
    """Write a kubeconfig with one cluster/user/context named ``reconciler-local`` and return ``path``
    (an identical existing file is left as it is)."""

    def b64(name: str) -> str:
        return base64.b64encode((pki / name).read_bytes()).decode()

    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CONTEXT, "cluster": {"server": server, "certificate-authority-data": b64("ca.crt")}}
        ],
        "users": [
            {
                "name": "admin",
                "user": {"client-certificate-data": b64("admin.crt"), "client-key-data": b64("admin.key")},
            }
        ],
        "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "admin"}}],
        "current-context": CONTEXT,
        "preferences": {},
    }
    yaml = YAML(typ="safe")
    yaml.default_flow_style = False
    buf = io.StringIO()
    yaml.dump(doc, buf)
    text = buf.getvalue()
    with contextlib.suppress(OSError):
        if path.read_text() == text:  # unchanged: clients watching the file have nothing to reload
            return path
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.chmod(0o600)
    tmp.replace(path)
    return path
