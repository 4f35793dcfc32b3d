#!/usr/bin/env bash
# Install a pinned version of the MCP reference server (npm @modelcontextprotocol/server-everything) into
# the tool cache, keyed by version: ${RECONCILER_CACHE_DIR:-${XDG_CACHE_HOME:-~/.cache}/reconciler}/tools/server-everything-<version>/.
# Usage: install.sh [VERSION]   (default 2026.8.31; only the pinned versions below are accepted)
#        install.sh --all       (every pinned version; prints one entry point per line)
# A warm cache costs nothing (no npm call). Prints the path of the server's entry point (dist/index.js).
# Needs node and npm; the packages come from the npm registry only.
#
# The pinned set: two real releases whose tool lists differ, so the demo can show a new server version
# dropping a tool an Agent uses — 2025.9.25 lists `add`; 2026.8.31 renamed it `get-sum`. Both serve
# Streamable HTTP on /mcp with `dist/index.js streamableHttp` and take the port from $PORT.
set -euo pipefail
PINNED=(2025.9.25 2026.8.31)
DEFAULT=2026.8.31
PKG=@modelcontextprotocol/server-everything
cache=${RECONCILER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/reconciler}

install_one() {
  local version=$1 dest entry tmp
  dest=$cache/tools/server-everything-$version
  entry=$dest/node_modules/$PKG/dist/index.js
  if [[ ! -f $dest/.installed ]]; then
    command -v npm >/dev/null || { echo "error: npm is required to install $PKG" >&2; exit 2; }
    mkdir -p "$cache/tools"
    tmp=$(mktemp -d "$cache/tools/.server-everything-$version.XXXXXX")
    echo "[mcp] installing $PKG@$version into $dest" >&2
    # --prefer-offline: a warm npm cache (~/.npm) answers without asking the registry
    npm install --prefix "$tmp" --no-audit --no-fund --prefer-offline --loglevel=error --save-exact \
      "$PKG@$version" >&2
    touch "$tmp/.installed"
    rm -rf "$dest"
    mv "$tmp" "$dest"
  fi
  [[ -f $entry ]] || { echo "error: $entry missing after install" >&2; exit 1; }
  echo "$entry"
}

if [[ ${1:-} == --all ]]; then
  for v in "${PINNED[@]}"; do install_one "$v"; done
  exit 0
fi
VERSION=${1:-$DEFAULT}
for v in "${PINNED[@]}"; do
  if [[ $v == "$VERSION" ]]; then
    install_one "$VERSION"
    exit 0
  fi
done
echo "error: $PKG@$VERSION is not pinned (pinned: ${PINNED[*]})" >&2
exit 2
