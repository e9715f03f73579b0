-- The audit trail (issue 22): an append-only record of sign-ins (success and
-- failure), sign-outs and revocations, account and role changes, every staff
-- write, every staff read of one student's data and the admin operations.
-- Each entry is written in the same transaction as the change it records; the
-- API never updates nor deletes one. Only retention removes entries, a whole
-- month at a time (DROP of a partition), so no row is ever rewritten.
--
-- Inserts stay O(1) at 100 million rows: the table is range-partitioned by
-- month on `at`, so every index an insert touches is one month's; each index
-- is led by or ends in `id` (a sequence), so an insert lands on the right
-- edge of its leaf range instead of a random page. There is no primary key
-- index to maintain besides.
CREATE SEQUENCE audit_log_id_seq AS bigint;

CREATE TABLE audit_log (
    id              bigint NOT NULL DEFAULT nextval('audit_log_id_seq'),
    at              timestamptz NOT NULL DEFAULT now(),
    -- Who: the signed-in caller (NULL: anonymous, or the system itself).
    actor_id        uuid,
    -- What: `<resource>.<verb>`, e.g. `pool.created`, `sign_in.failed`.
    action          text NOT NULL CHECK (action ~ '^[a-z_]+\.[a-z_]+$'),
    -- Which resource.
    resource_type   text NOT NULL,
    resource_id     text,
    -- The resource's organization, when it has one.
    organization_id uuid,
    -- The person the entry is about (the student read, the account changed).
    subject_id      uuid,
    -- From where, and which request (API Gateway's request id).
    ip              inet,
    request_id      text,
    -- The change itself, without secrets or answers.
    detail          jsonb NOT NULL DEFAULT '{}'
) PARTITION BY RANGE (at);
ALTER SEQUENCE audit_log_id_seq OWNED BY audit_log.id;

-- Rows for a month without a partition yet land here, so a late partition
-- maintenance never fails a write; `audit_ensure_partition` moves them out.
CREATE TABLE audit_log_default PARTITION OF audit_log DEFAULT;

-- The reads: the newest first, for the deployment, one organization, one
-- actor or one subject. Declared on the parent: every partition gets them.
CREATE INDEX audit_log_id ON audit_log (id);
CREATE INDEX audit_log_org ON audit_log (organization_id, id);
CREATE INDEX audit_log_actor ON audit_log (actor_id, id);
CREATE INDEX audit_log_subject ON audit_log (subject_id, id);

-- The partition of the month that holds `month`, made if missing (rows the
-- default partition took for that month are moved into it first). Returns
-- whether it made one.
CREATE FUNCTION audit_ensure_partition(month date) RETURNS boolean
LANGUAGE plpgsql AS $$
DECLARE
    lo timestamptz := date_trunc('month', month::timestamp) AT TIME ZONE 'UTC';
    hi timestamptz := (date_trunc('month', month::timestamp) + interval '1 month') AT TIME ZONE 'UTC';
    part text := 'audit_log_p' || to_char(date_trunc('month', month::timestamp), 'YYYYMM');
    home text := current_schema();
BEGIN
    -- One maker at a time (two sweepers at once): the second sees the first's.
    PERFORM pg_advisory_xact_lock(hashtext('lectern audit_log partitions'));
    IF to_regclass(quote_ident(home) || '.' || quote_ident(part)) IS NOT NULL THEN
        RETURN false;
    END IF;
    IF EXISTS (SELECT 1 FROM audit_log_default WHERE at >= lo AND at < hi) THEN
        EXECUTE format('CREATE TABLE %I (LIKE audit_log INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
        EXECUTE format(
            'WITH moved AS (DELETE FROM audit_log_default WHERE at >= $1 AND at < $2 RETURNING *)
             INSERT INTO %I SELECT * FROM moved', part) USING lo, hi;
        EXECUTE format('ALTER TABLE audit_log ATTACH PARTITION %I FOR VALUES FROM (%L) TO (%L)',
                       part, lo, hi);
    ELSE
        EXECUTE format('CREATE TABLE %I PARTITION OF audit_log FOR VALUES FROM (%L) TO (%L)',
                       part, lo, hi);
    END IF;
    RETURN true;
END
$$;

-- Retention: drops the monthly partitions that end at or before `cutoff`
-- (and deletes the default partition's rows older than it). Returns how many
-- partitions it dropped.
CREATE FUNCTION audit_drop_before(cutoff timestamptz) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    part record;
    dropped integer := 0;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('lectern audit_log partitions'));
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'audit_log'::regclass AND c.relname ~ '^audit_log_p[0-9]{6}$'
    LOOP
        IF (to_date(substr(part.relname, 12), 'YYYYMM') + interval '1 month')
               AT TIME ZONE 'UTC' <= cutoff THEN
            EXECUTE format('DROP TABLE %I', part.relname);
            dropped := dropped + 1;
        END IF;
    END LOOP;
    DELETE FROM audit_log_default WHERE at < cutoff;
    RETURN dropped;
END
$$;

-- This month and the next three, so the sweeper (which keeps them coming)
-- can stop for months before the default partition takes a row.
SELECT audit_ensure_partition((now() + make_interval(months => m))::date)
FROM generate_series(0, 3) AS m;
