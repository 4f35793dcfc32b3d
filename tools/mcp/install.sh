#!/usr/bin/env bash
# Install the pinned MCP reference server (npm @modelcontextprotocol/server-everything) into the tool
# cache, keyed by version: ${RECONCILER_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/reconciler}/tools/server-everything-<version>/.
# A warm cache costs nothing (no npm call). Prints the path of the server's entry point (dist/index.js).
# Needs node and npm; the packages come from the npm registry only.
set -euo pipefail
VERSION=2026.8.31
PKG=@modelcontextprotocol/server-everything
cache=${RECONCILER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/reconciler}
dest=$cache/tools/server-everything-$VERSION
entry=$dest/node_modules/$PKG/dist/index.js
if [[ ! -f $dest/.installed ]]; then
  command -v npm >/dev/null || { echo "error: npm is required to install $PKG" >&2; exit 2; }
  tmp=$(mktemp -d "$cache/tools/.server-everything-$VERSION.XXXXXX" 2>/dev/null || { mkdir -p "$cache/tools"; mktemp -d "$cache/tools/.server-everything-$VERSION.XXXXXX"; })
  echo "[mcp] installing $PKG@$VERSION into $dest" >&2
  npm install --prefix "$tmp" --no-audit --no-fund --loglevel=error --save-exact "$PKG@$VERSION" >&2
  touch "$tmp/.installed"
  rm -rf "$dest"
  mv "$tmp" "$dest"
fi
[[ -f $entry ]] || { echo "error: $entry missing after install" >&2; exit 1; }
echo "$entry"
