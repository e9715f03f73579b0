-- Polytomous items (graded response, generalized and plain partial credit):
-- ordered options, each mapped to a score 0…m, beside the right/wrong items.
-- Forward only, and the release before this one keeps working on what it
-- knows (dichotomous pools): every new column is nullable, nothing dropped.

ALTER TABLE questions
    -- NULL: a dichotomous item (1PL–4PL, from a, b, c, d).
    ADD COLUMN model text CHECK (model IN ('grm', 'gpcm', 'pcm')),
    -- A polytomous item's thresholds (GRM) or steps (GPCM, PCM), b1…bm; its b is NULL.
    ADD COLUMN thresholds double precision[],
    -- A polytomous item's key: the score (0…m) of each option, in option order.
    -- Like correct_answer, it never goes to Redis nor into a response.
    ADD COLUMN option_scores smallint[],
    ALTER COLUMN b DROP NOT NULL,
    ALTER COLUMN correct_answer DROP NOT NULL,
    ADD CONSTRAINT questions_model_fields CHECK (coalesce(
        CASE WHEN model IS NULL THEN
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

-- The score of each response (0…m; 1/0 for a dichotomous item); `correct`
-- keeps meaning "got the item's top score". Nullable so that the previous
-- release, which writes `correct` alone, still records answers (during a
-- deploy, or after a rollback): readers take such a row's score from `correct`.
ALTER TABLE test_responses ADD COLUMN score smallint CHECK (score BETWEEN 0 AND 9);
UPDATE test_responses SET score = CASE WHEN correct THEN 1 ELSE 0 END;
