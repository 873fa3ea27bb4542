# Sourced by scripts/serve.sh, scripts/test.sh and scripts/screenshots.sh: the steps they share.
# Each function takes the calling script's name first, for its messages.

# ensure_venv <script> <extras>: .venv with python3.11 (PYTHON overrides), the package installed
# editable with <extras> ("" for none). .venv/.installed holds "<sha256 of pyproject.toml> <extras>"
# of the last install, so the install runs only when pyproject.toml or the extras changed; an
# install with extras serves a caller that wants none.
ensure_venv() {
  local me=$1 extras=$2 digest installed
  if ! .venv/bin/python -c '' 2>/dev/null; then
    echo "$me: creating .venv with ${PYTHON:-python3.11}" >&2
    "${PYTHON:-python3.11}" -m venv --clear .venv
  fi
  digest=$(.venv/bin/python -c 'import hashlib; print(hashlib.sha256(open("pyproject.toml", "rb").read()).hexdigest())')
  installed=$(cat .venv/.installed 2>/dev/null || true)
  if [ "$installed" = "$digest ${extras:-base}" ] || { [ -z "$extras" ] && [ "${installed%% *}" = "$digest" ]; }; then
    [ -x .venv/bin/collections-es ] && return 0
  fi
  echo "$me: installing collections-es${extras:+[$extras]} into .venv" >&2
  .venv/bin/python -m pip install --quiet --disable-pip-version-check -e ".${extras:+[$extras]}"
  echo "$digest ${extras:-base}" > .venv/.installed
}

# ensure_cjk_font <script>: the CJK font PDF letters are drawn in (Debian's fonts-wqy-zenhei;
# COLLECTIONS_PDF_FONT overrides), installed with apt-get as root when missing. 0 when it is there.
ensure_cjk_font() {
  local me=$1 font=${COLLECTIONS_PDF_FONT:-/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc}
  [ -f "$font" ] && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "$me: installing the CJK font for PDF letters (apt-get install fonts-wqy-zenhei)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-wqy-zenhei; } >&2 || true
  fi
  [ -f "$font" ] && return 0
  echo "$me: the CJK font $font is missing and could not be installed (as root: apt-get install fonts-wqy-zenhei)" >&2
  return 1
}

# in_ci: CI=true (any case).
in_ci() {
  [ "$(tr '[:upper:]' '[:lower:]' <<<"${CI:-}")" = "true" ]
}
