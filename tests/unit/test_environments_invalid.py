"""load_environments: one invalid file raises, or, when asked, is set aside with its error."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.errors import ConfigError
from reconciler.reconcile import load_environments


def _tree(root: Path) -> None:
    (root / "envs").mkdir()
    (root / "envs" / "dev.yaml").write_text("overlay: overlays/dev\n")
    (root / "envs" / "prod.yaml").write_text("overlay: overlays/prod\nsync: {interval: -1}\n")


def test_an_invalid_file_raises_naming_it(tmp_path: Path) -> None:
    _tree(tmp_path)
    with pytest.raises(ConfigError, match=r"envs/prod\.yaml"):
        load_environments(tmp_path)


def test_invalid_files_are_set_aside_when_asked(tmp_path: Path) -> None:
    _tree(tmp_path)
    invalid: dict[str, str] = {}
    envs = load_environments(tmp_path, invalid=invalid)
    assert sorted(envs) == ["dev"]
    assert list(invalid) == ["prod"] and "envs/prod.yaml" in invalid["prod"] and "interval" in invalid["prod"]


def test_a_missing_envs_directory_still_raises(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no envs/ directory"):
        load_environments(tmp_path, invalid={})
