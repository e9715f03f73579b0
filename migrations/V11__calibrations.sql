-- Calibration runs of a pool's pretest items from the responses recorded in
-- live tests (fixed-item calibration: the operational items of
-- `pool_version` anchor the scale), and the promotion of calibrated items
-- into a new pool version.

CREATE TABLE calibrations (
    id            uuid PRIMARY KEY,
    pool_id       uuid NOT NULL REFERENCES item_pools (id) ON DELETE CASCADE,
    -- The version whose operational items are held fixed (the pool's current
    -- version when the run was asked for); responses of tests on it and on
    -- earlier versions are used.
    pool_version  integer NOT NULL CHECK (pool_version >= 1),
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    status        text NOT NULL DEFAULT 'queued'
                  CHECK (status IN ('queued', 'running', 'succeeded', 'failed')),
    min_responses integer NOT NULL CHECK (min_responses BETWEEN 1 AND 1000000),
    created_at    timestamptz NOT NULL DEFAULT now(),
    started_at    timestamptz,
    finished_at   timestamptz,
    -- EM figures: iterations, converged, log_likelihood, persons, responses, latent mean / sd.
    summary       jsonb,
    -- Per pretest item: its estimate (model, a, b, c, se, responses) or why it was skipped.
    results       jsonb,
    error         text,
    CHECK ((status = 'succeeded') = (results IS NOT NULL)),
    CHECK ((status = 'failed') = (error IS NOT NULL))
);

-- At most one run of a pool waiting or working: a second request loses on
-- this index (409), however close the two are.
CREATE UNIQUE INDEX calibrations_one_active ON calibrations (pool_id)
    WHERE status IN ('queued', 'running');
CREATE INDEX calibrations_pool ON calibrations (pool_id, created_at DESC);

-- A pretest item promoted in version N is a pretest item in the versions
-- before N (what tests on them were served stays so) and an operational one,
-- with its calibrated parameters and an exposure parameter, from N on.
ALTER TABLE questions
    ADD COLUMN promoted_in integer,
    ADD CONSTRAINT questions_promotion CHECK (
        promoted_in IS NULL OR (pretest AND promoted_in > added_in)),
    DROP CONSTRAINT questions_pretest_fields,
    ADD CONSTRAINT questions_pretest_fields CHECK (
        (exposure IS NULL) = (pretest AND promoted_in IS NULL)
        AND (a IS NOT NULL OR (pretest AND promoted_in IS NULL)));
