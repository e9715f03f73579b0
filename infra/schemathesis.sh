#!/usr/bin/env bash
# The contract check: schemathesis (from PyPI) generates requests from
# openapi.yaml and sends them to the local server (every route in one process,
# on real Redis and PostgreSQL), with every check it has; any failure fails
# this script.
#
#   infra/schemathesis.sh            the whole run (what .ci/run does)
#   infra/schemathesis.sh <args>     extra `schemathesis run` arguments, e.g.
#                                    --include-path-regex '^/v1/pools' or --seed 42
#
# It makes (once) a virtualenv with a pinned schemathesis under
# ~/.cache/lectern, builds and starts lectern-local on a free loopback port
# with a database and a Redis key prefix of this run's own (so a developer's
# `infra/local.sh serve` on :3000 is untouched), makes a platform admin with
# lectern-admin, then the fixtures (infra/schemathesis_fixtures.py: an
# organization, a class, a pool, a test, …) whose ids infra/schemathesis.toml
# puts in the generated paths. Everything it made is removed at the end.
# Settings: LECTERN_SCHEMATHESIS_MAX_EXAMPLES (examples per operation and
# phase, default 30), LECTERN_SCHEMATHESIS_VENV, LECTERN_SCHEMATHESIS_REPORT_DIR
# (JUnit report; default a temporary directory).
set -euo pipefail
cd "$(dirname "$0")/.."

SCHEMATHESIS_VERSION=4.32.5
VENV=${LECTERN_SCHEMATHESIS_VENV:-$HOME/.cache/lectern/schemathesis-venv}
MAX_EXAMPLES=${LECTERN_SCHEMATHESIS_MAX_EXAMPLES:-30}

PGHOST=127.0.0.1 PGPORT=5432 PGUSER=${PGUSER:-postgres}
export PGHOST PGPORT PGUSER

log() { printf '[schemathesis] %s\n' "$*" >&2; }

# PostgreSQL and Redis running (installed if missing), cargo present.
infra/local.sh up

if [ "$("$VENV/bin/schemathesis" --version 2>/dev/null)" != "schemathesis, version $SCHEMATHESIS_VERSION" ]; then
  log "installing schemathesis $SCHEMATHESIS_VERSION into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet --disable-pip-version-check "schemathesis==$SCHEMATHESIS_VERSION"
fi

cargo build --quiet --locked -p lectern-local -p lectern-admin
target=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')

db="lectern_contract_$(date +%s)_$$"
prefix="contract-$$:"
work=$(mktemp -d)
server=
cleanup() {
  [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null || true
  psql -d postgres -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -h 127.0.0.1 --scan --pattern "${prefix}*" 2>/dev/null |
    xargs -r -n 500 redis-cli -h 127.0.0.1 del >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
psql -d postgres -qc "CREATE DATABASE \"$db\""

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export DATABASE_URL="postgres://$PGUSER@$PGHOST:$PGPORT/$db"
export REDIS_URL=redis://127.0.0.1:6379
export REDIS_KEY_PREFIX=$prefix
export LECTERN_ADDR=127.0.0.1:$port
export LECTERN_URL=http://$LECTERN_ADDR
# An OpenID Connect provider on a closed loopback port: authorize answers its
# 302, a callback that gets as far as the code exchange its 502.
export OAUTH_PROVIDERS='{"ci": {"issuer": "http://127.0.0.1:9", "authorization_endpoint":
  "http://127.0.0.1:9/authorize", "token_endpoint": "http://127.0.0.1:9/token", "client_id": "lectern-ci",
  "client_secret": "contract-check", "redirect_uri": "http://127.0.0.1:9/callback"}}'
# Only RUST_LOG's errors: the server's log is shown when the run fails.
RUST_LOG=${RUST_LOG:-warn} "$target/debug/lectern-local" >"$work/server.log" 2>&1 &
server=$!
for _ in $(seq 1 120); do
  curl -fs "$LECTERN_URL/v1/health" >/dev/null 2>&1 && break
  kill -0 "$server" 2>/dev/null || { cat "$work/server.log" >&2; log "the server did not start"; exit 1; }
  sleep 0.5
done
curl -fs "$LECTERN_URL/v1/health" >/dev/null || { cat "$work/server.log" >&2; log "the server did not answer"; exit 1; }

export ADMIN_EMAIL="contract-admin-$$@schemathesis.example.org"
ADMIN_PASSWORD="contract admin $(date +%s%N)"
export ADMIN_PASSWORD
LECTERN_ADMIN_PASSWORD=$ADMIN_PASSWORD "$target/debug/lectern-admin" create-admin \
  --email "$ADMIN_EMAIL" --name "Contract admin" >/dev/null
fixtures=$(python3 infra/schemathesis_fixtures.py)
eval "$fixtures"

log "$LECTERN_URL: $MAX_EXAMPLES examples per operation and phase, every check"
start=$(date +%s)
status=0
"$VENV/bin/schemathesis" --no-color --config-file infra/schemathesis.toml run openapi.yaml \
  --url "$LECTERN_URL" --checks all --max-examples "$MAX_EXAMPLES" --workers 1 \
  --report junit --report-dir "${LECTERN_SCHEMATHESIS_REPORT_DIR:-$work/report}" "$@" || status=$?
log "finished in $(($(date +%s) - start)) s (exit $status)"
if [ "$status" != 0 ]; then
  log "server log (last 100 lines):"
  tail -n 100 "$work/server.log" >&2
fi
exit "$status"
