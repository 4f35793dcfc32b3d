"""``reconciler probe`` on the real servers: output shapes and exit codes."""

from __future__ import annotations

import json
import subprocess
import sys

from ruamel.yaml import YAML
from typer.testing import CliRunner

from reconciler.cli import app
from reconciler.devcluster.agents import ServerProcess
from reconciler.devcluster.process import free_port

runner = CliRunner()


def test_json_shape_for_server_everything(everything_http: ServerProcess) -> None:
    out = runner.invoke(app, ["probe", everything_http.url, "-o", "json", "--timeout", "10"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.stdout)
    assert data["protocolVersion"] == "2025-11-25"
    assert data["serverInfo"] == {"name": "mcp-servers/everything", "version": data["serverInfo"]["version"]}
    assert data["serverInfo"]["version"]
    echo = next(t for t in data["tools"] if t["name"] == "echo")
    assert set(echo) == {"name", "description"} and echo["description"]
    assert data["state"] == "Healthy"


def test_text_output_lists_tools(everything_sse: ServerProcess) -> None:
    out = runner.invoke(app, ["probe", everything_sse.url])
    assert out.exit_code == 0, out.output
    assert "protocol version: 2025-11-25 (handshake, sse)" in out.stdout
    assert "mcp-servers/everything" in out.stdout
    assert "get-sum" in out.stdout


def test_unreachable_exits_1() -> None:
    out = runner.invoke(app, ["probe", f"http://127.0.0.1:{free_port()}/mcp", "-o", "yaml", "--timeout", "2"])
    assert out.exit_code == 1
    data = YAML(typ="safe").load(out.stdout)
    assert data["state"] == "Failed" and "cannot connect" in data["reason"]


def test_a2a_with_expected_skills(a2a_agent: ServerProcess) -> None:
    ok = runner.invoke(app, ["probe", a2a_agent.url, "--a2a", "--skill", "echo", "-o", "json"])
    assert ok.exit_code == 0, ok.output
    assert [s["id"] for s in json.loads(ok.stdout)["skills"]] == ["echo", "reverse"]
    missing = runner.invoke(app, ["probe", a2a_agent.url, "--a2a", "--skill", "translate"])
    assert missing.exit_code == 1
    assert "missing skills: translate" in missing.stdout


def test_bad_header_is_a_usage_error_that_hides_the_value() -> None:
    out = runner.invoke(app, ["probe", "http://127.0.0.1:1/mcp", "--header", "Bearer-topsecret"])
    assert out.exit_code == 2
    assert "topsecret" not in out.output


def test_installed_entry_point(sdk_server: ServerProcess) -> None:
    """The installed ``reconciler`` command, as a user runs it, on the stateless 2026-07-28 server."""
    exe = [sys.executable, "-c", "from reconciler.cli import main; main()"]
    proc = subprocess.run(
        [*exe, "probe", sdk_server.url, "-o", "json"], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["protocolVersion"] == "2026-07-28"
