#!/usr/bin/env bash
# Install the pinned MCP Inspector (npm @modelcontextprotocol/inspector) into the tool cache, keyed by
# version: ${RECONCILER_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/reconciler}/tools/mcp-inspector-<version>/.
# Usage: install-inspector.sh   Prints the path of its command-line entry point (the `mcp-inspector` bin).
# A warm cache costs nothing (no npm call). Needs node and npm; the packages come from the npm registry only.
# The tests of reconciler's own MCP server (tests/mcpserver/test_mcp_inspector.py) run its CLI mode
# (`--cli URL --transport http --method tools/list | tools/call`) against `reconciler mcp serve`.
set -euo pipefail
VERSION=2.12.0
PKG=@modelcontextprotocol/inspector
cache=${RECONCILER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/reconciler}
dest=$cache/tools/mcp-inspector-$VERSION
entry=$dest/node_modules/$PKG/clients/launcher/build/index.js
if [[ ! -f $dest/.installed ]]; then
  command -v npm >/dev/null || { echo "error: npm is required to install $PKG" >&2; exit 2; }
  mkdir -p "$cache/tools"
  tmp=$(mktemp -d "$cache/tools/.mcp-inspector-$VERSION.XXXXXX")
  echo "[mcp] installing $PKG@$VERSION into $dest" >&2
  npm install --prefix "$tmp" --no-audit --no-fund --prefer-offline --loglevel=error --save-exact \
    "$PKG@$VERSION" >&2
  touch "$tmp/.installed"
  rm -rf "$dest"
  mv "$tmp" "$dest"
fi
[[ -f $entry ]] || { echo "error: $entry missing after install" >&2; exit 1; }
echo "$entry"
