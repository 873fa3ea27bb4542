#!/usr/bin/env bash
# Screenshots of the console's pages, from a generated scenario, in Debian's chromium.
#   bash scripts/screenshots.sh [--out docs/console] [--only worklist,receivable]
# The pages are listed in tests/browser/screenshots.py (PAGES: name, path, role); a page the
# app does not serve yet is skipped and said so. Uses .venv with the test extra (as
# scripts/test.sh makes it) and installs chromium when missing (as root).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
ensure_venv screenshots.sh test

# shellcheck source=scripts/chromium.sh
. scripts/chromium.sh
ensure_chromium screenshots.sh || exit 1

exec .venv/bin/python -m tests.browser.screenshots "$@"
