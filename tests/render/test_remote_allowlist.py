"""The allow-list of remote bases: patterns, the ``render.remoteBases`` settings of ``envs/<env>.yaml``, the
JSON schema, ``reconciler build --allow-remote``, and what a pass and its note record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError
from typer.testing import CliRunner

from reconciler.cli import app, print_result
from reconciler.model import Environment, PassResult, RemoteBase
from reconciler.model.environment import environment_json_schema
from reconciler.model.remote import HostPattern, allowed_by, target_of
from reconciler.promote.records import Outcome, OutcomeRecord, parse_note
from reconciler.reconcile import remote_options

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("url", "scheme", "host", "port", "path"),
    [
        ("https://github.com/acme/base", "https", "github.com", "", "acme/base"),
        ("https://GitHub.com/acme/base.git", "https", "github.com", "", "acme/base"),
        ("git@github.com:acme/base", "ssh", "github.com", "", "acme/base"),
        ("ssh://git@git.example.com:7999/org/repo.git", "ssh", "git.example.com", "7999", "org/repo"),
        ("https://user@host.test/a/_git/b", "https", "host.test", "", "a/_git/b"),
        ("file:///srv/git/acme/base.git", "file", "", "", "srv/git/acme/base"),
        ("http://127.0.0.1:8080/files//x.yaml?ref=1", "http", "127.0.0.1", "8080", "files/x.yaml"),
        ("https://[::1]:8443/org/repo", "https", "[::1]", "8443", "org/repo"),
    ],
)
def test_targets(url: str, scheme: str, host: str, port: str, path: str) -> None:
    t = target_of(url)
    assert (t.scheme, t.host, t.port, t.path) == (scheme, host, port, path)


@pytest.mark.parametrize(
    ("pattern", "url", "allowed"),
    [
        ("github.com/acme/*", "https://github.com/acme/base", True),
        ("github.com/acme/*", "git@github.com:acme/base.git", True),
        ("github.com/acme/*", "https://github.com/acme/base/deeper.yaml", True),
        ("github.com/acme/*", "https://github.com/other/base", False),
        ("github.com/acme/*", "https://github.com/acme", False),
        ("github.com/acme/base", "https://github.com/acme/base.git", True),
        ("github.com/acme/base", "https://github.com/acme/base-two", False),
        ("github.com", "https://github.com/anyone/anything", True),
        ("github.com", "https://github.com.evil.test/acme/base", False),
        ("*.example.com", "https://git.example.com/org/repo", True),
        ("*.example.com", "https://example.com/org/repo", False),
        ("*", "ssh://git@anything.test/org/repo", True),
        ("*", "file:///srv/git/repo", False),
        ("127.0.0.1", "https://127.0.0.1:8443/org/repo", True),
        ("127.0.0.1:9418", "https://127.0.0.1:8443/org/repo", False),
        ("127.0.0.1:8443", "https://127.0.0.1:8443/org/repo", True),
        ("https://github.com/acme/*", "git@github.com:acme/base", False),
        ("ssh://github.com/acme/*", "git@github.com:acme/base", True),
        ("file:///srv/git/*", "file:///srv/git/acme.git", True),
        ("file:///srv/git/*", "file:///home/me/repo", False),
        ("file:///", "file:///anything/at/all", True),
    ],
)
def test_patterns(pattern: str, url: str, allowed: bool) -> None:
    HostPattern.parse(pattern)
    assert (allowed_by([pattern], url) == pattern) is allowed


@pytest.mark.parametrize(
    "pattern", ["", " github.com", "github.com/a b", "user@github.com", "host?x", "/path"]
)
def test_bad_patterns(pattern: str) -> None:
    with pytest.raises(ValueError, match="remote pattern"):
        HostPattern.parse(pattern)


def test_environment_settings_and_schema() -> None:
    env = Environment.model_validate(
        {
            "name": "dev",
            "overlay": "overlays/dev",
            "render": {"remoteBases": {"allow": ["github.com/acme/*"], "timeout": 10, "maxBytes": 1000}},
        }
    )
    opts = remote_options(env, Path("/tmp/cache"), extra_allow=["127.0.0.1"])
    assert opts.allow == ["github.com/acme/*", "127.0.0.1"]
    assert (opts.timeout, opts.max_bytes) == (10, 1000)
    assert opts.setting == "render.remoteBases.allow in envs/dev.yaml"
    default = Environment.model_validate({"name": "dev", "overlay": "o"})
    assert default.render.remote_bases.allow == []
    with pytest.raises(ValidationError, match="remote pattern"):
        Environment.model_validate(
            {"name": "dev", "overlay": "o", "render": {"remoteBases": {"allow": ["a b"]}}}
        )
    with pytest.raises(ValidationError):
        Environment.model_validate({"name": "dev", "overlay": "o", "render": {"remoteBases": {"allw": []}}})
    schema = environment_json_schema()
    assert "render" in schema["properties"]
    committed = json.loads((REPO_ROOT / "deploy" / "schema" / "environment.schema.json").read_text())
    assert committed == schema, "regenerate: reconciler schema > deploy/schema/environment.schema.json"


def test_build_cli_allow_remote(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECONCILER_CACHE_DIR", str(tmp_path / "cache"))
    (tmp_path / "kustomization.yaml").write_text("resources:\n- https://127.0.0.1:1/acme/base//x?ref=v1\n")
    runner = CliRunner()
    refused = runner.invoke(app, ["build", str(tmp_path)])
    assert refused.exit_code == 1
    assert "--allow-remote" in refused.output and "127.0.0.1:1/acme/base" in refused.output
    bad = runner.invoke(app, ["build", str(tmp_path), "--allow-remote", "a b"])
    assert bad.exit_code == 2
    fetched = runner.invoke(app, ["build", str(tmp_path), "--allow-remote", "127.0.0.1"])
    assert fetched.exit_code == 1 and "ls-remote" in fetched.output  # allowed: it tried (port 1 is closed)


def test_pass_result_and_note_record_remote_bases(capsys: pytest.CaptureFixture[str]) -> None:
    base = RemoteBase(
        url="https://github.com/acme/base//deploy?ref=v1",
        kustomization="overlays/dev/kustomization.yaml",
        repo="https://github.com/acme/base",
        ref="v1",
        commit="a" * 40,
    )
    result = PassResult(environment="dev", ok=True, started_at=0, duration=0, remote_bases=[base])
    assert PassResult.model_validate_json(result.model_dump_json()).remote_bases == [base]
    print_result(result)
    assert f"remote https://github.com/acme/base//deploy?ref=v1 @ {'a' * 40}" in capsys.readouterr().out
    record = OutcomeRecord(environment="dev", outcome=Outcome.HEALTHY, revision="b" * 40, remote_bases=[base])
    assert parse_note(record.line())[0].remote_bases == [base]
    plain = OutcomeRecord(environment="dev", outcome=Outcome.HEALTHY, revision="b" * 40)
    assert "remote_bases" not in plain.line()
