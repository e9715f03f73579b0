#!/usr/bin/env bash
# lectern's local stack. Makes sure PostgreSQL and Redis are installed (from
# Debian's packages) and running on their standard loopback ports, then:
#   infra/local.sh serve   the whole API on http://127.0.0.1:3000 (LECTERN_ADDR)
#   infra/local.sh test    every test, on a database made for this run; then the
#                          integration suite again against a 3-primary Redis Cluster
#   infra/local.sh up      only the services
set -euo pipefail
cd "$(dirname "$0")/.."

PGHOST=127.0.0.1 PGPORT=5432 PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER
REDIS_PORT=6379
# The Redis Cluster the integration suite runs against once more (loopback only).
CLUSTER_PORTS=${LECTERN_CLUSTER_PORTS:-"7101 7102 7103"}

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

cluster_ok() {
  local first=${CLUSTER_PORTS%% *}
  redis-cli -p "$first" cluster info 2>/dev/null | grep -q '^cluster_state:ok' &&
    [ "$(redis-cli -p "$first" cluster nodes 2>/dev/null | grep -c master)" -eq "$(wc -w <<<"$CLUSTER_PORTS")" ]
}

ensure_redis_cluster() {
  local port dir nodes=()
  for port in $CLUSTER_PORTS; do
    nodes+=("127.0.0.1:$port")
    redis-cli -p "$port" ping >/dev/null 2>&1 && continue
    dir=/tmp/lectern-redis-cluster/$port
    mkdir -p "$dir" && rm -f "$dir/nodes.conf"
    redis-server --daemonize yes --bind 127.0.0.1 --port "$port" --cluster-enabled yes \
      --cluster-config-file "$dir/nodes.conf" --save "" --appendonly no --dir "$dir" --logfile "$dir/redis.log"
  done
  for port in $CLUSTER_PORTS; do
    for _ in $(seq 1 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
  done
  cluster_ok && return
  log "creating a Redis Cluster of ${nodes[*]}"
  # Nodes left from an earlier cluster (or a half-made one) start again empty.
  for port in $CLUSTER_PORTS; do
    redis-cli -p "$port" flushall >/dev/null 2>&1 || true
    redis-cli -p "$port" cluster reset hard >/dev/null
  done
  redis-cli --cluster create "${nodes[@]}" --cluster-replicas 0 --cluster-yes >/dev/null
  for _ in $(seq 1 100); do cluster_ok && return; sleep 0.1; done
  log "the Redis Cluster did not come up on ports $CLUSTER_PORTS"
  exit 1
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
    run_tests() {
      if cargo nextest --version >/dev/null 2>&1; then
        cargo nextest run --no-fail-fast "$@"
      else
        cargo test --no-fail-fast "$@"
      fi
    }
    # The function binaries, which the Lambda emulator tests run as Lambda would.
    cargo build --workspace --bins --quiet
    run_tests --workspace
    log "the integration suite again, against a Redis Cluster"
    ensure_redis_cluster
    LECTERN_TEST_REDIS_URL="redis://127.0.0.1:${CLUSTER_PORTS%% *}" LECTERN_TEST_REDIS_CLUSTER=true \
      run_tests -p lectern-tests
    ;;
  *)
    echo "usage: infra/local.sh serve|test|up" >&2
    exit 2
    ;;
esac
