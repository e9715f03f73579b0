-- Data rights (issue 22): one row per erased account, written in the
-- erasure's transaction. It holds no personal data: the erased user's id (a
-- random UUID nothing else in PostgreSQL resolves any more), who erased it and
-- when, the organizations it belonged to (whose admins may see the erasure
-- again), what was done, and the tests and tutoring sessions whose Redis state
-- is removed after the commit. `redis_cleared_at` is set once Redis's half is
-- done; until then a retry of the erasure, or the sweeper, finishes it.
CREATE TABLE erasures (
    user_id           uuid PRIMARY KEY,
    erased_at         timestamptz NOT NULL DEFAULT now(),
    erased_by         uuid,
    organizations     uuid[] NOT NULL,
    report            jsonb NOT NULL,
    tests             uuid[] NOT NULL,
    teaching_sessions uuid[] NOT NULL,
    redis_cleared_at  timestamptz
);
CREATE INDEX erasures_pending ON erasures (erased_at) WHERE redis_cleared_at IS NULL;
