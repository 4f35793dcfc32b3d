"""Installation ids: daemons of one installation share NATS consumers, different installations never."""

from __future__ import annotations

from pathlib import Path

from reconciler.bus import TRIGGERS_DURABLE, installation_durable
from reconciler.runtime.daemon import installation_id
from reconciler.settings import DaemonSettings


def _id(**kw: object) -> str:
    values: dict[str, object] = {"repo": "https://git.example/acme/envs.git", "cache_dir": Path("/x"), **kw}
    return installation_id(DaemonSettings(**values))  # type: ignore[arg-type]


def test_same_installation_same_id_and_durable() -> None:
    assert _id() == _id()
    assert _id(envs=["prod", "dev"]) == _id(envs=["dev", "prod"])
    assert _id(repo="https://bot:s3cret@git.example/acme/envs.git") == _id()  # credentials are not identity
    assert installation_durable(TRIGGERS_DURABLE, _id()) == f"reconciler-daemon-triggers-{_id()}"


def test_other_repository_branch_or_environments_other_id() -> None:
    ids = {_id(), _id(repo="https://git.example/acme/other.git"), _id(branch="release"), _id(envs=["dev"])}
    assert len(ids) == 4
