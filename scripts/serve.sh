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

# The CJK font PDF letters are drawn in (Debian's fonts-wqy-zenhei; COLLECTIONS_PDF_FONT overrides).
font=${COLLECTIONS_PDF_FONT:-/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc}
ensure_cjk_font() {
  [ -f "$font" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "serve.sh: installing the CJK font for PDF letters (apt-get install fonts-wqy-zenhei)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-zenhei; } >&2 || true
  fi
  [ -f "$font" ]
}
ensure_cjk_font || echo "serve.sh: warning: the CJK font $font is missing and could not be installed (as root: apt-get install fonts-wqy-zenhei); PDF letters will answer 503" >&2

exec .venv/bin/collections-es serve "$@"
