#!/usr/bin/env bash
# Build the pinned Helm CLI (a test-only tool: the tests run `helm template` on deploy/helm/reconciler)
# from the Go module in this folder, only when missing, into a cache directory outside Git.
#
#   tools/helm/build.sh        prints the path of the helm binary on its last line of stdout.
#
# Cache: $RECONCILER_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/reconciler)/bin/helm-<version>/helm
# Exit codes: 3 no Go toolchain, 4 build failed.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HELM_VERSION=4.3.2   # keep equal to the helm.sh/helm/v4 version in go.mod
CACHE="${RECONCILER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/reconciler}"
DEST="$CACHE/bin/helm-$HELM_VERSION"

say() { printf '[helm] %s\n' "$*" >&2; }

if [[ -x "$DEST/helm" ]]; then
  say "helm $HELM_VERSION: cached at $DEST"
  echo "$DEST/helm"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  say "ERROR: the Go toolchain (go 1.26+) is required to build helm and was not found on PATH."
  exit 3
fi
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

mkdir -p "$DEST"
say "helm $HELM_VERSION: building (first time only; this can take several minutes) ..."
start=$SECONDS
tmp="$DEST/.helm.tmp.$$"
ldflags="-s -w -X helm.sh/helm/v4/internal/version.version=v$HELM_VERSION"
ldflags="$ldflags -X helm.sh/helm/v4/internal/version.gitTreeState=clean"
(cd "$HERE" && go build -trimpath -ldflags "$ldflags" -o "$tmp" helm.sh/helm/v4/cmd/helm) || {
  rm -f "$tmp"; say "ERROR: building helm $HELM_VERSION failed (see the go output above)"; exit 4; }
mv -f "$tmp" "$DEST/helm"
say "helm $HELM_VERSION: built in $((SECONDS - start)) s -> $DEST/helm"
echo "$DEST/helm"
