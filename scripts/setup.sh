#!/usr/bin/env bash
# Create .venv (Python 3.11+) and install reconciler with its development dependencies. Idempotent.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
  echo "error: Python 3.11 or newer is required (found: $("$PY" --version 2>&1 || echo none))" >&2
  exit 2
fi
if [[ ! -x .venv/bin/python ]]; then
  echo "[setup] creating .venv" >&2
  "$PY" -m venv .venv
fi
stamp=.venv/.installed-$(sha256sum pyproject.toml | cut -c1-16)
if [[ ! -f $stamp ]]; then
  echo "[setup] installing Python dependencies into .venv" >&2
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e '.[dev]'
  rm -f .venv/.installed-*
  touch "$stamp"
fi

# The pinned MCP reference server versions that `reconciler up` runs as stand-ins for the example's MCP
# server pods, and that the probe tests use (tools/mcp/install.sh --all: npm into the tool cache, keyed by
# version; a warm cache makes no network call).
if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  bash tools/mcp/install.sh --all >/dev/null
  # the pinned MCP Inspector, whose CLI the tests of reconciler's own MCP server drive
  bash tools/mcp/install-inspector.sh >/dev/null
else
  echo "[setup] warning: node and npm are not installed: \`reconciler up\` runs no MCP stand-ins and the probe tests fail" >&2
fi

# The status-page test drives Debian's Chromium with Playwright (never a downloaded browser).
if [[ "${1:-}" == "--with-browser" ]] && ! command -v chromium >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing Debian's chromium for the status-page test" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "[setup] warning: chromium is not installed (apt-get install chromium); the status-page test will fail" >&2
  fi
fi
