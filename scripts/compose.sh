# Sourced by scripts/test.sh: a compose command, so tests/integration/test_compose.py can run
# `docker compose config` on docker-compose.yml. The docker compose plugin when there is one;
# else Debian's docker-compose (installed with apt-get as root when missing).
# ensure_compose <script name>: 0 when one is there, else 1 with the reason printed.
ensure_compose() {
  local me=$1
  if command -v docker >/dev/null && docker compose version >/dev/null 2>&1; then return 0; fi
  command -v docker-compose >/dev/null && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "$me: installing docker-compose to check docker-compose.yml (apt-get install docker-compose)" >&2
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends docker-compose; } >&2 || true
  fi
  command -v docker-compose >/dev/null && return 0
  echo "$me: neither the docker compose plugin nor docker-compose is installed (as root: apt-get install docker-compose)" >&2
  return 1
}
