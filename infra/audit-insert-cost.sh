#!/usr/bin/env bash
# The audit trail's insert cost as the table grows: in a scratch schema with
# V17 applied, pgbench inserts entries as the API does (one INSERT per entry,
# 8 clients) for DURATION seconds at each size, after loading rows up to it.
# Prints the size, inserts/s and mean latency. Leaves nothing behind.
#
# The loaded rows are spread over the SPREAD months before this one (default
# 24: the default retention), as a deployment's trail is, so the inserts go
# to a partition of this month's size only; SPREAD=0 loads them all into this
# month (one month's partition that large: the cost that does grow).
#
#   infra/audit-insert-cost.sh [DATABASE_URL] [SIZES...]   (default sizes: 0 1000000 3000000)
set -euo pipefail
cd "$(dirname "$0")/.."
URL=${1:-postgres://postgres@127.0.0.1:5432/postgres}
shift || true
if (($#)); then SIZES=("$@"); else SIZES=(0 1000000 3000000); fi
DURATION=${DURATION:-10}
SPREAD=${SPREAD:-24}
SCHEMA=audit_cost_$$
psql_() { psql "$URL" -v ON_ERROR_STOP=1 -qAt "$@"; }
trap 'psql_ -c "DROP SCHEMA IF EXISTS $SCHEMA CASCADE" >/dev/null 2>&1 || true' EXIT
psql_ -c "CREATE SCHEMA $SCHEMA"
PGOPTIONS="-c search_path=$SCHEMA" psql_ -f migrations/V17__audit_trail.sql >/dev/null
PGOPTIONS="-c search_path=$SCHEMA" psql_ -c "SELECT audit_ensure_partition((now() - make_interval(months => m))::date)
                                             FROM generate_series(1, $SPREAD) AS m" >/dev/null
script=$(mktemp)
cat >"$script" <<SQL
\set org random(1, 50)
INSERT INTO $SCHEMA.audit_log (actor_id, action, resource_type, resource_id, organization_id,
                               subject_id, ip, request_id, detail)
VALUES (gen_random_uuid(), 'pool.created', 'pool', gen_random_uuid()::text,
        ('00000000-0000-0000-0000-0000000000' || lpad(:org::text, 2, '0'))::uuid,
        gen_random_uuid(), '203.0.113.7', gen_random_uuid()::text, '{"items": 5}');
SQL
loaded=0
printf '%12s %12s %12s\n' rows inserts/s latency_ms
for size in "${SIZES[@]}"; do
  while (( loaded < size )); do
    n=$(( size - loaded < 500000 ? size - loaded : 500000 ))
    psql_ -c "INSERT INTO $SCHEMA.audit_log (at, actor_id, action, resource_type, resource_id,
                organization_id, subject_id, ip, request_id, detail)
              SELECT now() - make_interval(months => CASE WHEN $SPREAD = 0 THEN 0 ELSE g % $SPREAD + 1 END),
                     gen_random_uuid(), 'pool.created', 'pool', g::text,
                     ('00000000-0000-0000-0000-0000000000' || lpad((g % 50 + 1)::text, 2, '0'))::uuid,
                     gen_random_uuid(), '203.0.113.7', g::text, '{\"items\": 5}'
              FROM generate_series(1, $n) g" >/dev/null
    loaded=$(( loaded + n ))
    echo "loaded $loaded" >&2
  done
  psql_ -c "VACUUM ANALYZE $SCHEMA.audit_log" >/dev/null
  psql_ -c "CHECKPOINT" >/dev/null
  out=$(pgbench -n -c 8 -j 2 -T "$DURATION" -f "$script" "$URL" 2>&1)
  tps=$(grep -oP 'tps = \K[0-9.]+' <<<"$out" | head -1)
  lat=$(grep -oP 'latency average = \K[0-9.]+' <<<"$out")
  printf '%12s %12s %12s\n' "$size" "$tps" "$lat"
done
rm -f "$script"
