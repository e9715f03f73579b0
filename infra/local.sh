#!/usr/bin/env bash
# lectern's local stack. Makes sure PostgreSQL and Redis are installed (from
# Debian's packages) and running on their standard loopback ports, then:
#   infra/local.sh serve   the whole API on http://127.0.0.1:3000 (LECTERN_ADDR)
#   infra/local.sh test    every test, on a database made for this run
#   infra/local.sh up      only the services
set -euo pipefail
cd "$(dirname "$0")/.."

PGHOST=127.0.0.1 PGPORT=5432 PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER
REDIS_PORT=6379

log() { printf '[local] %s\n' "$*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    log "need root for: $*"; exit 1
  fi
}

apt_install() {
  log "installing $* from Debian's packages"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

ensure_postgres() {
  local fresh=
  if ! command -v pg_ctlcluster >/dev/null || ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
    apt_install postgresql postgresql-client
    fresh=1
  fi
  local version
  version=$(ls /etc/postgresql | sort -V | tail -n 1)
  if [ -n "$fresh" ]; then
    # A cluster this script installed is for development only: trust loopback connections.
    local hba="/etc/postgresql/$version/main/pg_hba.conf"
    as_root sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  fi
  if ! pg_isready -q; then
    log "starting PostgreSQL $version"
    as_root pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    [ -n "$fresh" ] && as_root pg_ctlcluster --skip-systemctl-redirect "$version" main reload || true
  fi
  for _ in $(seq 1 30); do pg_isready -q && break; sleep 1; done
  pg_isready -q || { log "PostgreSQL did not come up on $PGHOST:$PGPORT"; exit 1; }
}

ensure_redis() {
  command -v redis-server >/dev/null || apt_install redis-server
  if ! redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping >/dev/null 2>&1; then
    log "starting Redis"
    local dir=/var/lib/redis logfile=/var/log/redis/ci.log
    [ -w "$(dirname "$logfile")" ] || logfile=/tmp/lectern-redis.log
    [ -w "$dir" ] || dir=/tmp
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$REDIS_PORT" --save "" --appendonly no \
      --dir "$dir" --logfile "$logfile"
  fi
  for _ in $(seq 1 30); do redis-cli -p "$REDIS_PORT" ping >/dev/null 2>&1 && break; sleep 0.2; done
  redis-cli -p "$REDIS_PORT" ping >/dev/null || { log "Redis did not come up on port $REDIS_PORT"; exit 1; }
}

ensure_database() {
  psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$1'" | grep -q 1 ||
    psql -d postgres -qc "CREATE DATABASE \"$1\""
}

up() {
  ensure_postgres
  ensure_redis
  command -v cargo >/dev/null || { log "cargo not found: install Rust (https://rustup.rs)"; exit 1; }
}

case "${1:-}" in
  up)
    up
    ;;
  serve)
    up
    ensure_database lectern
    export DATABASE_URL=${DATABASE_URL:-postgres://$PGUSER@$PGHOST:$PGPORT/lectern}
    export REDIS_URL=${REDIS_URL:-redis://127.0.0.1:$REDIS_PORT}
    exec cargo run -p lectern-local
    ;;
  test)
    up
    # A database of this run's own (each test then makes its own schema and Redis prefix inside it).
    db="lectern_test_$(date +%s)_$$"
    ensure_database "$db"
    trap 'psql -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true' EXIT
    export LECTERN_TEST_DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$db"
    export LECTERN_TEST_REDIS_URL="redis://127.0.0.1:$REDIS_PORT"
    if cargo nextest --version >/dev/null 2>&1; then
      cargo nextest run --workspace --no-fail-fast
    else
      cargo test --workspace --no-fail-fast
    fi
    ;;
  *)
    echo "usage: infra/local.sh serve|test|up" >&2
    exit 2
    ;;
esac
