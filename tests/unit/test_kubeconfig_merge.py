"""``add_context``: several local clusters in one kubeconfig, each under a context of its own
(``reconciler cluster kubeconfig --merge-into``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from reconciler.devcluster.kubeconfig import CONTEXT, add_context


def _local(path: Path, server: str) -> Path:
    """A kubeconfig shaped as every local cluster writes it: all entries named alike."""
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": CONTEXT, "cluster": {"server": server}}],
                "users": [{"name": "admin", "user": {"token": server}}],
                "contexts": [{"name": CONTEXT, "context": {"cluster": CONTEXT, "user": "admin"}}],
                "current-context": CONTEXT,
            }
        )
    )
    return path


def test_two_local_clusters_stay_apart_and_the_first_stays_current(tmp_path: Path) -> None:
    a = _local(tmp_path / "a", "https://127.0.0.1:6443")
    b = _local(tmp_path / "b", "https://127.0.0.1:7443")
    out = tmp_path / "fleet"
    add_context(out, a, "alpha")
    add_context(out, b, "beta")
    doc = yaml.safe_load(out.read_text())
    assert doc["current-context"] == "alpha"
    contexts = {c["name"]: c["context"] for c in doc["contexts"]}
    assert contexts == {name: {"cluster": name, "user": name} for name in ("alpha", "beta")}
    servers = {c["name"]: c["cluster"]["server"] for c in doc["clusters"]}
    assert servers == {"alpha": "https://127.0.0.1:6443", "beta": "https://127.0.0.1:7443"}
    assert {u["name"]: u["user"]["token"] for u in doc["users"]}["beta"] == "https://127.0.0.1:7443"
    assert out.stat().st_mode & 0o777 == 0o600

    # adding a name again replaces its entries (a cluster restarted on another port)
    add_context(out, _local(tmp_path / "b2", "https://127.0.0.1:8443"), "beta")
    doc = yaml.safe_load(out.read_text())
    assert [c["name"] for c in doc["contexts"]] == ["alpha", "beta"]
    assert {c["name"]: c["cluster"]["server"] for c in doc["clusters"]}["beta"] == "https://127.0.0.1:8443"


def test_a_source_without_its_current_context_is_refused_naming_it(tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    bad.write_text(yaml.safe_dump({"contexts": [], "current-context": "gone"}))
    out = tmp_path / "fleet"
    with pytest.raises(ValueError, match=r"bad: contexts has no entry named 'gone'"):
        add_context(out, bad, "x")
    assert not out.exists()
