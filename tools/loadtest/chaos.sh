#!/usr/bin/env bash
# Chaos under load in one command: builds lectern-local and lectern-loadtest
# (release), makes sure PostgreSQL and Redis are installed and running, then
# runs `lectern-loadtest --chaos` with 32 students for 40 s, or with the
# lectern-loadtest flags given instead (e.g. --duration-secs 15 --think-ms 100).
# The run has its own redis-server (killed and restarted), its own database
# (behind a proxy that cuts every connection) and its own lectern-local: the
# shared Redis and PostgreSQL are never stopped. Exit code 2: the check failed.
set -euo pipefail
cd "$(dirname "$0")/../.."
infra/local.sh up
cargo build --release -q -p lectern-local -p lectern-loadtest
bin=${CARGO_TARGET_DIR:-target}/release
[ $# -gt 0 ] || set -- --students 32 --duration-secs 40
exec "$bin/lectern-loadtest" --chaos --server-bin "$bin/lectern-local" "$@"
