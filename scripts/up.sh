#!/usr/bin/env bash
# The quick start: install everything, build and start the local control plane and NATS, copy the
# example environment repository into a new Git repo with a bare remote, and run the daemon on it
# until Ctrl-C. Arguments go to `reconciler up` (e.g. --once).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/setup.sh
exec .venv/bin/reconciler up "$@"
