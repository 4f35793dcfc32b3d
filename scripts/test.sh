#!/usr/bin/env bash
# Run every check: ruff, mypy (strict on reconciler/ and webhooks/) and all tests, unit and
# integration (the integration fixtures start a real local control plane and NATS themselves).
# Arguments go to pytest.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
./scripts/setup.sh --with-browser
bash tools/controlplane/build.sh all >/dev/null
bash tools/controlplane/build.sh kustomize >/dev/null
bash tools/controlplane/build.sh prometheus >/dev/null
bash tools/controlplane/build.sh gitea >/dev/null
bash tools/controlplane/build.sh opa >/dev/null
bash tools/controlplane/build.sh conftest >/dev/null
bash tools/controlplane/build.sh registry >/dev/null
bash tools/controlplane/build.sh crane >/dev/null
bash tools/helm/build.sh >/dev/null
echo "[test] ruff" >&2
.venv/bin/ruff check .
.venv/bin/ruff format --check . >/dev/null
echo "[test] mypy --strict reconciler webhooks" >&2
.venv/bin/mypy
echo "[test] pytest" >&2
exec .venv/bin/pytest "$@"
