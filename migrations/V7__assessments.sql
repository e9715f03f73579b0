-- Assessments (issue 19): staff-owned test designs, assignments with windows
-- and attempts, accommodations, server-side deadlines, exam mode, release of
-- results.

-- A named test design of an organization. Its versions are immutable: an edit
-- is a new version, so a test (and an assignment) keeps the design it started on.
CREATE TABLE assessments (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name           text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    latest_version integer NOT NULL DEFAULT 1 CHECK (latest_version >= 1),
    created_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id)
);
CREATE INDEX assessments_org ON assessments (org_id, created_at DESC);

CREATE TABLE assessment_versions (
    assessment_id uuid NOT NULL REFERENCES assessments (id) ON DELETE CASCADE,
    version       integer NOT NULL CHECK (version >= 1),
    pool_id       uuid NOT NULL REFERENCES item_pools (id),
    -- NULL: each test takes the pool's latest version at its start.
    pool_version  integer CHECK (pool_version >= 1),
    -- The validated design (services::assessments::Design): mode, engine
    -- configuration, blueprint, enemy sets, time limit, levels, scale.
    design        jsonb NOT NULL,
    created_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (assessment_id, version)
);

-- An assessment version given to a class (all of its students, or the ones
-- chosen in assignment_students) between two times, with a number of attempts.
CREATE TABLE assignments (
    id                 uuid PRIMARY KEY,
    org_id             uuid NOT NULL,
    assessment_id      uuid NOT NULL,
    assessment_version integer NOT NULL,
    class_id           uuid NOT NULL,
    -- Only the students listed in assignment_students (else the whole class).
    chosen             boolean NOT NULL DEFAULT false,
    opens_at           timestamptz NOT NULL,
    closes_at          timestamptz NOT NULL,
    max_attempts       integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 100),
    released_at        timestamptz,
    released_by        uuid REFERENCES users (id) ON DELETE SET NULL,
    created_by         uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    CHECK (closes_at > opens_at),
    FOREIGN KEY (org_id, assessment_id) REFERENCES assessments (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (assessment_id, assessment_version) REFERENCES assessment_versions,
    FOREIGN KEY (org_id, class_id) REFERENCES classes (org_id, id) ON DELETE CASCADE
);
CREATE INDEX assignments_org ON assignments (org_id, created_at DESC);
CREATE INDEX assignments_class ON assignments (class_id, created_at DESC);

CREATE TABLE assignment_students (
    assignment_id uuid NOT NULL REFERENCES assignments (id) ON DELETE CASCADE,
    student_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    PRIMARY KEY (assignment_id, student_id)
);
CREATE INDEX assignment_students_student ON assignment_students (student_id);

-- Extra time for one student on one assignment, and who granted it.
CREATE TABLE accommodations (
    assignment_id uuid NOT NULL REFERENCES assignments (id) ON DELETE CASCADE,
    student_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    extra_time_s  integer NOT NULL CHECK (extra_time_s BETWEEN 0 AND 604800),
    granted_by    uuid REFERENCES users (id) ON DELETE SET NULL,
    granted_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (assignment_id, student_id)
);

-- A test knows its assignment, attempt, mode and deadline; a test past its
-- deadline ends as timed_out.
ALTER TABLE test_sessions
    ADD COLUMN assignment_id uuid REFERENCES assignments (id),
    ADD COLUMN attempt       integer CHECK (attempt >= 1),
    ADD COLUMN deadline      timestamptz,
    -- When the question being served was served.
    ADD COLUMN served_at     timestamptz,
    -- Whether the final results reached the student's long-term proficiency
    -- (an exam's wait for the release of its results).
    ADD COLUMN proficiency_applied boolean NOT NULL DEFAULT true,
    ADD CHECK ((assignment_id IS NULL) = (attempt IS NULL));
ALTER TABLE test_sessions DROP CONSTRAINT test_sessions_status_check;
ALTER TABLE test_sessions ADD CONSTRAINT test_sessions_status_check
    CHECK (status IN ('active', 'completed', 'ended', 'abandoned', 'timed_out'));
UPDATE test_sessions SET served_at = updated_at WHERE status IN ('active', 'completed');
-- Two starts of the same attempt: one row, whatever the race.
CREATE UNIQUE INDEX test_sessions_attempt ON test_sessions (assignment_id, student_id, attempt)
    WHERE assignment_id IS NOT NULL;
CREATE INDEX test_sessions_deadline ON test_sessions (deadline)
    WHERE deadline IS NOT NULL AND status IN ('active', 'completed');

ALTER TABLE test_responses ADD COLUMN served_at timestamptz;
