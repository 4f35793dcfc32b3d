"""Write an admin kubeconfig for the local cluster (certificates embedded), and add a cluster to a
kubeconfig of several under a context name of its own."""

from __future__ import annotations

import base64
import contextlib
import io
from pathlib import Path
from typing import Any

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


def add_context(dest: Path, source: Path, name: str) -> Path:
    """Add to the kubeconfig ``dest`` the current context of the kubeconfig ``source`` as context ``name``
    (its cluster and user entries renamed ``name`` too, so that clusters whose files use the same names, as
    every local cluster's ``reconciler-local`` does, stay apart), replacing entries of that name. ``dest``
    is created (mode 0600) when missing; its current context is set only when it has none. Returns
    ``dest``. Follows the kubeconfig format (clusters, users and contexts as named lists).

    Raises:
        ValueError: ``source`` has no current context or names a cluster or user it does not hold, or
            ``dest`` is not a kubeconfig.
        OSError: a file cannot be read or written.
    """
    yaml = YAML(typ="safe")
    src = yaml.load(source.read_text())
    if not isinstance(src, dict):
        raise ValueError(f"{source}: not a kubeconfig (a mapping)")
    current = src.get("current-context")
    context = _entry(src, "contexts", current, source)["context"]
    cluster = _entry(src, "clusters", context.get("cluster"), source)["cluster"]
    user = _entry(src, "users", context.get("user"), source)["user"]
    doc = (yaml.load(dest.read_text()) if dest.exists() else None) or {"apiVersion": "v1", "kind": "Config"}
    if not isinstance(doc, dict):
        raise ValueError(f"{dest}: not a kubeconfig (a mapping)")
    for key, body in (
        ("clusters", {"cluster": cluster}),
        ("users", {"user": user}),
        ("contexts", {"context": {"cluster": name, "user": name}}),
    ):
        kept = [e for e in doc.get(key) or [] if isinstance(e, dict) and e.get("name") != name]
        doc[key] = [*kept, {"name": name, **body}]
    doc["current-context"] = doc.get("current-context") or name
    yaml.default_flow_style = False
    buf = io.StringIO()
    yaml.dump(doc, buf)
    tmp = dest.with_name(dest.name + ".tmp")
    tmp.write_text(buf.getvalue())
    tmp.chmod(0o600)
    tmp.replace(dest)
    return dest


def _entry(doc: dict[str, Any], key: str, name: object, path: Path) -> dict[str, Any]:
    """The entry called ``name`` of the named list ``key`` of a kubeconfig read from ``path``."""
    entries = doc.get(key)
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("name") == name and isinstance(entry.get(key[:-1]), dict):
            return entry
    raise ValueError(f"{path}: {key} has no entry named {name!r}")
