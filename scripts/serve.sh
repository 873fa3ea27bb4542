#!/usr/bin/env bash
# Quick start: run the service (SQLite under ./var/ unless DATABASE_URL says otherwise).
#   bash scripts/serve.sh [--host 127.0.0.1] [--port 8000]
# Creates .venv with python3.11 when missing and installs the package into it
# (editable); the install is skipped while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
ensure_venv serve.sh ""
ensure_cjk_font serve.sh || echo "serve.sh: warning: PDF letters will answer 503 without the CJK font" >&2

exec .venv/bin/collections-es serve "$@"
