-- Test lifecycle (issue 4): an administrator may keep a test alive past the
-- sliding TTL (long exams); the sweeper leaves it alone until then.
ALTER TABLE test_sessions ADD COLUMN keep_until timestamptz;
