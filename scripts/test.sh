#!/usr/bin/env bash
# Quick start: run the tests (arguments go to pytest).
#   bash scripts/test.sh [pytest args...]
# Creates .venv with python3.11 when missing, installs the package with its
# test extra, installs Debian's chromium for the browser tests when missing (as
# root; under CI=true a missing chromium fails, otherwise those tests skip),
# prepares the test database on the local PostgreSQL, runs pytest.
# PostgreSQL: with COLLECTIONS_TEST_DATABASE_URL unset, the server on
# 127.0.0.1:5432 is started if needed and the role `collections` and the
# database `collections_test` are created (as superuser `postgres`); with it
# set, that database is only checked. Unreachable: under CI=true this fails,
# otherwise a warning is printed and the PostgreSQL tests skip.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/lib.sh
. scripts/lib.sh
ensure_venv test.sh test
if ! ensure_cjk_font test.sh; then
  echo "test.sh: error: the PDF letter test will fail without the CJK font" >&2
  if in_ci; then exit 1; fi
fi

# The browser the tests under tests/browser drive (Debian's chromium; scripts/chromium.sh).
# shellcheck source=scripts/chromium.sh
. scripts/chromium.sh
if ! ensure_chromium test.sh; then
  if in_ci; then
    echo "test.sh: error: CI=true requires the browser tests to run" >&2
    exit 1
  fi
  echo "test.sh: warning: the browser tests will be skipped" >&2
fi

# A compose command for the check of docker-compose.yml (scripts/compose.sh).
# shellcheck source=scripts/compose.sh
. scripts/compose.sh
if ! ensure_compose test.sh; then
  if in_ci; then
    echo "test.sh: error: CI=true requires docker-compose.yml to be checked by docker compose" >&2
    exit 1
  fi
  echo "test.sh: warning: the docker compose config check will be skipped" >&2
fi

url_given=${COLLECTIONS_TEST_DATABASE_URL:+yes}
export COLLECTIONS_TEST_DATABASE_URL=${COLLECTIONS_TEST_DATABASE_URL:-postgresql://collections@127.0.0.1:5432/collections_test}
shown_url=$(sed -E 's#//([^:/@]*):[^@]*@#//\1:***@#' <<<"$COLLECTIONS_TEST_DATABASE_URL")

local_server_up() {
  pg_isready -q -h 127.0.0.1 -p 5432 -t 2
}

start_local_server() {
  local_server_up && return 0
  command -v pg_ctlcluster >/dev/null || return 1
  local conf
  for conf in /etc/postgresql/*/main; do
    [ -d "$conf" ] || continue
    echo "test.sh: starting PostgreSQL cluster $conf" >&2
    pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$conf")")" main start >&2 || true
  done
  for _ in $(seq 30); do
    local_server_up && return 0
    sleep 0.5
  done
  return 1
}

create_test_database() {
  psql -h 127.0.0.1 -p 5432 -U postgres -w -X -q -v ON_ERROR_STOP=1 <<'SQL'
SELECT 'CREATE ROLE collections LOGIN CREATEDB'
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'collections') \gexec
ALTER ROLE collections LOGIN CREATEDB;
SELECT 'CREATE DATABASE collections_test OWNER collections'
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = 'collections_test') \gexec
ALTER DATABASE collections_test OWNER TO collections;
-- A throwaway test database: a commit need not wait for its WAL to reach the disk. Only a
-- crash of the server itself could lose a commit; the tests kill clients, never the server.
ALTER DATABASE collections_test SET synchronous_commit = off;
SQL
}

# The suite runs on every core (below), and several workers each hold a few connections
# (pools, projection leaders, the crash test's subprocesses): PostgreSQL's default 100
# slots run out. On the local server this script manages, raise them (a restart).
MIN_CONNECTIONS=400
ensure_connection_slots() {
  local have conf
  have=$(psql -h 127.0.0.1 -p 5432 -U postgres -w -X -A -t -c 'SHOW max_connections') || return 1
  [ "$have" -ge "$MIN_CONNECTIONS" ] && return 0
  echo "test.sh: raising max_connections on the local PostgreSQL from $have to $MIN_CONNECTIONS (restart)" >&2
  psql -h 127.0.0.1 -p 5432 -U postgres -w -X -q -c "ALTER SYSTEM SET max_connections = $MIN_CONNECTIONS" || return 1
  for conf in /etc/postgresql/*/main; do
    [ -d "$conf" ] || continue
    pg_ctlcluster --skip-systemctl-redirect "$(basename "$(dirname "$conf")")" main restart >&2 || return 1
  done
  for _ in $(seq 30); do
    local_server_up && return 0
    sleep 0.5
  done
  return 1
}

# Sets `problem` and returns 1 when the test database cannot be used.
prepare_postgres() {
  if ! command -v psql >/dev/null || ! command -v pg_isready >/dev/null; then
    problem="the PostgreSQL client tools (psql, pg_isready) are not installed"
    return 1
  fi
  if [ -z "$url_given" ]; then
    start_local_server || { problem="no PostgreSQL server answers on 127.0.0.1:5432"; return 1; }
    create_test_database || { problem="could not create role/database collections_test as user postgres"; return 1; }
    ensure_connection_slots || { problem="could not raise max_connections on the local PostgreSQL to $MIN_CONNECTIONS"; return 1; }
  fi
  psql "$COLLECTIONS_TEST_DATABASE_URL" -w -X -q -t -c 'SELECT 1' >/dev/null \
    || { problem="cannot connect to $shown_url"; return 1; }
}

problem=""
if ! prepare_postgres; then
  if in_ci; then
    echo "test.sh: error: $problem; CI=true requires the PostgreSQL tests to run" >&2
    exit 1
  fi
  echo "test.sh: warning: $problem; the PostgreSQL tests will be skipped" >&2
fi

# The suite runs on every core and one more (pytest-xdist): much of a test's time is spent
# waiting on PostgreSQL, the browser or a subprocess, so a core would idle with one worker
# each (ADR 0044). COLLECTIONS_TEST_WORKERS=N sets how many processes, 0 runs it in this
# one; arguments that choose (-n, -p no:xdist) win.
workers=${COLLECTIONS_TEST_WORKERS:-$(( $(nproc) + 1 ))}
case " $* " in
  *" -n"*|*" --numprocesses"*|*"no:xdist"*) workers=0 ;;
esac
if [ "$workers" != 0 ]; then
  # worksteal: a worker that finishes early takes tests queued on the other, so the few
  # long tests (schemathesis, the crash test) do not leave one core idle at the end.
  set -- -n "$workers" --dist worksteal "$@"
fi
exec .venv/bin/python -m pytest "$@"
