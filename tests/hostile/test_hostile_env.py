"""The environment loader (``envs/<env>.yaml``) refuses every hostile file with a ConfigError naming the
file and the field (or line) at fault."""

from __future__ import annotations

from pathlib import Path

import pytest
from _hostile_corpus import ENV, RepoCase, assert_refused, bounded, env_cases, params, write_tree

from reconciler.errors import ConfigError
from reconciler.reconcile import load_environment

CASES = env_cases()


def _load(path: Path) -> str:
    return load_environment(path).model_dump_json()


def test_baseline_env_loads(tmp_path: Path) -> None:
    from _hostile_corpus import env_file

    write_tree(tmp_path, {ENV: env_file()})
    env = load_environment(tmp_path / ENV)
    assert (env.name, env.overlay, env.namespace) == ("dev", "overlays/dev", "hostile")


@pytest.mark.timeout(60)
@pytest.mark.parametrize("case", params(CASES))
def test_env_loader_refuses(case: RepoCase, tmp_path: Path) -> None:
    write_tree(tmp_path, case.files)
    out = bounded(_load, tmp_path / ENV, seconds=20)
    assert_refused(out, ConfigError, case.expect)
