# Sourced by scripts/test.sh and scripts/screenshots.sh: Debian's chromium, which the browser
# tests drive through Playwright for Python (ADR 0042). Never `playwright install`: it downloads
# its own browser builds. COLLECTIONS_CHROMIUM names another chromium binary.
# ensure_chromium <script name>: 0 when chromium is there (installing it with apt-get as root
# when missing), else 1 with the reason printed.
ensure_chromium() {
  local me=$1 binary=${COLLECTIONS_CHROMIUM:-chromium}
  command -v "$binary" >/dev/null && return 0
  if [ -z "${COLLECTIONS_CHROMIUM:-}" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "$me: installing chromium for the browser tests (apt-get install chromium)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium; } >&2 || true
  fi
  command -v "$binary" >/dev/null && return 0
  echo "$me: $binary is missing and could not be installed (as root: apt-get update && apt-get install chromium)" >&2
  return 1
}
