-- Pretest items: uncalibrated items (or items with provisional parameters)
-- served in live tests at seeded positions, recorded, and never scored.
-- Forward only; the release before this one keeps working on pools without
-- pretest items, and fails loudly (a NULL exposure it cannot read) rather
-- than serve a pretest item as an operational one.

ALTER TABLE questions
    ADD COLUMN pretest boolean NOT NULL DEFAULT false,
    -- A pretest item awaiting calibration has no parameters yet.
    ALTER COLUMN a DROP NOT NULL,
    -- The Sympson–Hetter parameter is about selection, and a pretest item is
    -- never selected: it has none.
    ALTER COLUMN exposure DROP NOT NULL,
    ADD CONSTRAINT questions_pretest_fields CHECK (
        (exposure IS NULL) = pretest AND (a IS NOT NULL OR pretest)),
    -- V8's rule for each kind of item, plus a pretest item without parameters:
    -- a right/wrong one keeps its correct answer, a polytomous one its model
    -- and option scores (its highest score, 1 to 9, is its number of
    -- categories less one).
    DROP CONSTRAINT questions_model_fields,
    ADD CONSTRAINT questions_model_fields CHECK (coalesce(
        CASE
        WHEN a IS NULL THEN
            b IS NULL AND thresholds IS NULL
            AND CASE WHEN model IS NULL THEN
                correct_answer IS NOT NULL AND option_scores IS NULL
            ELSE
                correct_answer IS NULL
                AND cardinality(option_scores) = cardinality(options)
                AND array_position(option_scores, NULL) IS NULL
                AND 0 <= ALL (option_scores)
                AND 9 >= ALL (option_scores)
                AND 1 <= ANY (option_scores)
            END
        WHEN model IS NULL THEN
            b IS NOT NULL AND correct_answer IS NOT NULL
            AND thresholds IS NULL AND option_scores IS NULL
        ELSE
            b IS NULL AND correct_answer IS NULL
            AND (model <> 'pcm' OR a = 1)
            AND cardinality(thresholds) BETWEEN 1 AND 9
            AND array_position(thresholds, NULL) IS NULL
            AND cardinality(option_scores) = cardinality(options)
            AND array_position(option_scores, NULL) IS NULL
            AND 0 <= ALL (option_scores)
            AND cardinality(thresholds) >= ALL (option_scores)
        END, false));

-- Which responses answered a pretest item: recorded like any other, never
-- estimated on. The release before writes none (it serves no pretest item).
ALTER TABLE test_responses ADD COLUMN pretest boolean NOT NULL DEFAULT false;

-- How many of a test's answers were to pretest items: `items_answered` counts
-- every answer (it orders them), results count the others.
ALTER TABLE test_sessions ADD COLUMN pretest_answered integer NOT NULL DEFAULT 0
    CHECK (pretest_answered >= 0);
