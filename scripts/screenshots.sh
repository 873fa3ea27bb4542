#!/usr/bin/env bash
# Screenshots of the console's pages, from a generated scenario, in Debian's chromium.
#   bash scripts/screenshots.sh [--out docs/console] [--only worklist,receivable]
# The pages are listed in tests/browser/screenshots.py (PAGES: name, path, role); a page the
# app does not serve yet is skipped and said so. Uses .venv with the test extra (as
# scripts/test.sh makes it) and installs chromium when missing (as root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if ! .venv/bin/python -c '' 2>/dev/null; then
  echo "screenshots.sh: creating .venv with ${PYTHON:-python3.11}" >&2
  "${PYTHON:-python3.11}" -m venv --clear .venv
fi
# .venv/.installed holds "<sha256 of pyproject.toml> <extras>" of the last install.
digest=$(.venv/bin/python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')
if [ "$(cat .venv/.installed 2>/dev/null)" != "$digest test" ]; then
  echo "screenshots.sh: installing collections-es[test] into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[test]'
  echo "$digest test" > .venv/.installed
fi

# shellcheck source=scripts/chromium.sh
. scripts/chromium.sh
ensure_chromium screenshots.sh || exit 1

exec .venv/bin/python -m tests.browser.screenshots "$@"
