#!/usr/bin/env bash
# Build the local control plane's binaries from the pinned Go modules in this folder,
# each only when missing, into a cache directory outside Git keyed by version.
#
#   tools/controlplane/build.sh [k8s|etcd|kwok|kustomize|prometheus|gitea|opa|conftest|registry|crane|all]
#   (default: all = etcd, kwok, k8s; kustomize, prometheus, gitea, opa, conftest, registry and crane are
#   built when named)
#   prints the binary directory on its last line of stdout.
#
# Cache: $RECONCILER_CACHE_DIR (default ${XDG_CACHE_HOME:-$HOME/.cache}/reconciler)/bin/<name>-<version>/
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
K8S_VERSION=1.36.3
ETCD_VERSION=3.6.16
KWOK_VERSION=0.8.0
KUSTOMIZE_VERSION=5.8.1
# the Go module version of Prometheus 3.16.0
PROMETHEUS_VERSION=0.316.0
# Gitea (the optional local Git forge, `reconciler cluster up --forge`); its module zip's hash, as
# sum.golang.org records it, is checked after download
GITEA_VERSION=1.27.3
GITEA_SUM=h1:SRnjvw24ASELKCqyYvAWIlzwOqyFMgfD+UkqQ9SE5eU=
# Open Policy Agent (the policy engine of every pass, issue 18; tools/opa/ pins it) and conftest (only
# the anchor of bench/policy; tools/conftest/ pins it, with its own OPA dependency)
OPA_VERSION=1.22.4
CONFTEST_VERSION=0.71.1
# CNCF Distribution (the local OCI registry, `reconciler cluster up --registry`; tools/registry/ pins it)
# and crane (pushes test images and indexes to it; tools/crane/ pins it). Module hashes: their go.sum.
REGISTRY_VERSION=3.1.2
CRANE_VERSION=0.22.1
CACHE="${RECONCILER_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/reconciler}"
BIN="$CACHE/bin"

say() { printf '[controlplane] %s\n' "$*" >&2; }

if ! command -v go >/dev/null 2>&1; then
  say "ERROR: the Go toolchain (go 1.26+) is required to build the local control plane and was not found on PATH."
  say "Install Go from your package manager or https://go.dev/dl, or point RECONCILER_KUBECONFIG at an existing cluster."
  exit 3
fi
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local

build() { # name version dir pkg-or-dot outfile [ldflags]
  local name=$1 version=$2 dir=$3 pkg=$4 out=$5 ldflags=${6:-"-s -w"}
  local dest="$BIN/$name-$version"
  if [[ -x "$dest/$out" ]]; then
    say "$name $version: cached at $dest"
    return 0
  fi
  mkdir -p "$dest"
  say "$name $version: building (first time only; this can take several minutes) ..."
  local start=$SECONDS tmp="$dest/.$out.tmp.$$"
  (cd "$HERE/$dir" && go build -trimpath -ldflags "$ldflags" -o "$tmp" "$pkg") || {
    rm -f "$tmp"; say "ERROR: building $name $version failed (see the go output above)"; exit 4; }
  mv -f "$tmp" "$dest/$out"
  say "$name $version: built in $((SECONDS - start)) s -> $dest/$out"
}

build_k8s() {
  local minor=${K8S_VERSION#1.}; minor=${minor%%.*}
  local ldf="-s -w" p
  for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldf="$ldf -X $p.gitVersion=v$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
  done
  build k8s "$K8S_VERSION" k8s . k8s "$ldf"
  local n
  for n in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    ln -sfn k8s "$BIN/k8s-$K8S_VERSION/$n"
  done
}

kwok_stages() { # kwok's own default Stages (node-initialize, heartbeat with lease, pod fast), from its module
  local dest="$BIN/kwok-$KWOK_VERSION/stages.yaml"
  [[ -s "$dest" ]] && return 0
  local dir
  dir=$(cd "$HERE/kwok" && go mod download -json "sigs.k8s.io/kwok@v$KWOK_VERSION" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  local f first=1
  : > "$dest.tmp"
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml; do
    [[ $first == 1 ]] || printf -- '---\n' >> "$dest.tmp"
    first=0
    cat "$dir/kustomize/stage/$f" >> "$dest.tmp"
  done
  mv -f "$dest.tmp" "$dest"
}

# Gitea's Go module is served by the proxy as code.gitea.io/gitea, but its go.mod names the module
# gitea.dev (which the proxy does not serve), so it cannot be required from a wrapper module. Instead a
# workspace file generated at build time (the module cache's path differs per machine) makes the
# downloaded module the main module: its own go.mod, go.sum and replace lines apply unchanged. No build
# tags: SQLite is the pure-Go modernc.org/sqlite driver by default (models/db/driver_sqlite_modernc.go,
# `//go:build !sqlite_mattn`), and without `bindata` the templates, locales and public files are read
# from disk, so they are copied next to the binary (app.ini's [server] STATIC_ROOT_PATH points there).
build_gitea() {
  local dest="$BIN/gitea-$GITEA_VERSION"
  if [[ -x "$dest/gitea" ]]; then
    say "gitea $GITEA_VERSION: cached at $dest"
    return 0
  fi
  mkdir -p "$dest"
  say "gitea $GITEA_VERSION: building (first time only; about 3 minutes on 2 cores) ..."
  local start=$SECONDS work json dir sum
  work=$(mktemp -d "$dest/.work.XXXXXX")
  # outside any module and workspace; the zip's hash is checked against GOSUMDB by go and against the pin here
  json=$(cd "$work" && GOWORK=off go mod download -json "code.gitea.io/gitea@v$GITEA_VERSION") || {
    printf '%s\n' "$json" >&2; rm -rf "$work"; say "ERROR: downloading gitea $GITEA_VERSION failed"; exit 4; }
  dir=$(printf '%s' "$json" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Dir"])')
  sum=$(printf '%s' "$json" | python3 -c 'import json,sys;print(json.load(sys.stdin)["Sum"])')
  if [[ "$sum" != "$GITEA_SUM" ]]; then
    rm -rf "$work"; say "ERROR: gitea $GITEA_VERSION module hash $sum is not the pinned $GITEA_SUM"; exit 4
  fi
  printf 'go %s\n\nuse %s\n' "$(go env GOVERSION | sed 's/^go//')" "$dir" > "$work/go.work"
  local ldflags="-s -w -X main.Version=$GITEA_VERSION -X main.Tags="
  (cd "$work" && GOWORK="$work/go.work" go build -trimpath -ldflags "$ldflags" -o "$work/gitea" gitea.dev) || {
    rm -rf "$work"; say "ERROR: building gitea $GITEA_VERSION failed (see the go output above)"; exit 4; }
  local d
  for d in templates options public; do
    rm -rf "${dest:?}/$d"
    cp -R "$dir/$d" "$dest/$d"
    chmod -R u+w,go+rX "$dest/$d"
  done
  chmod 0755 "$dest"
  mv -f "$work/gitea" "$dest/gitea"
  rm -rf "$work"
  say "gitea $GITEA_VERSION: built in $((SECONDS - start)) s -> $dest/gitea"
}

what=${1:-all}
case "$what" in
  k8s) build_k8s ;;
  etcd) build etcd "$ETCD_VERSION" etcd . etcd ;;
  kwok) build kwok "$KWOK_VERSION" kwok sigs.k8s.io/kwok/cmd/kwok kwok; kwok_stages ;;
  kustomize) build kustomize "$KUSTOMIZE_VERSION" kustomize sigs.k8s.io/kustomize/kustomize/v5 kustomize ;;
  prometheus) build prometheus "$PROMETHEUS_VERSION" ../prometheus github.com/prometheus/prometheus/cmd/prometheus prometheus ;;
  gitea) build_gitea ;;
  opa) build opa "$OPA_VERSION" ../opa github.com/open-policy-agent/opa opa \
         "-s -w -X github.com/open-policy-agent/opa/v1/version.Version=$OPA_VERSION" ;;
  conftest) build conftest "$CONFTEST_VERSION" ../conftest github.com/open-policy-agent/conftest conftest \
         "-s -w -X github.com/open-policy-agent/conftest/internal/version.Version=$CONFTEST_VERSION" ;;
  registry) build registry "$REGISTRY_VERSION" ../registry github.com/distribution/distribution/v3/cmd/registry registry \
         "-s -w -X github.com/distribution/distribution/v3/version.version=v$REGISTRY_VERSION" ;;
  crane) build crane "$CRANE_VERSION" ../crane github.com/google/go-containerregistry/cmd/crane crane ;;
  all) build etcd "$ETCD_VERSION" etcd . etcd
       build kwok "$KWOK_VERSION" kwok sigs.k8s.io/kwok/cmd/kwok kwok; kwok_stages
       build_k8s ;;
  *) say "usage: $0 [k8s|etcd|kwok|kustomize|prometheus|gitea|opa|conftest|registry|crane|all]"; exit 2 ;;
esac
echo "$BIN"
