#!/usr/bin/env bash
# Quick start: run the service (SQLite under ./var/ unless DATABASE_URL says otherwise).
#   bash scripts/serve.sh [--host 127.0.0.1] [--port 8000]
# Creates .venv with python3.11 when missing and installs the package into it
# (editable); the install is skipped while pyproject.toml is unchanged.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! .venv/bin/python -c '' 2>/dev/null; then
  echo "serve.sh: creating .venv with ${PYTHON:-python3.11}" >&2
  "${PYTHON:-python3.11}" -m venv --clear .venv
fi
# .venv/.installed holds "<sha256 of pyproject.toml> <extras>" of the last install.
digest=$(.venv/bin/python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')
if [ ! -x .venv/bin/collections-es ] || [ "$(cut -d' ' -f1 .venv/.installed 2>/dev/null)" != "$digest" ]; then
  echo "serve.sh: installing collections-es into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e .
  echo "$digest base" > .venv/.installed
fi

exec .venv/bin/collections-es serve "$@"
