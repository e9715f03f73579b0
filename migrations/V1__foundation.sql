-- Foundation schema: users, item pools and their questions, adaptive tests and
-- their responses, long-term proficiency. PostgreSQL is the source of truth;
-- Redis only holds state that can be rebuilt from these tables.

CREATE TABLE users (
    id          uuid PRIMARY KEY,
    email       text NOT NULL UNIQUE,
    role        text NOT NULL DEFAULT 'student' CHECK (role IN ('student', 'teacher', 'admin')),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE item_pools (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    description text,
    -- Bumped whenever items are added; a running test keeps the version it started on.
    version     integer NOT NULL DEFAULT 1 CHECK (version >= 1),
    item_count  integer NOT NULL DEFAULT 0 CHECK (item_count >= 0),
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE questions (
    id             text PRIMARY KEY,
    pool_id        uuid NOT NULL REFERENCES item_pools (id) ON DELETE CASCADE,
    -- Order within the pool; the engine's item index is this order.
    position       integer NOT NULL,
    -- The pool version that first contains this question.
    added_in       integer NOT NULL,
    content        text NOT NULL,
    options        text[] NOT NULL CHECK (cardinality(options) >= 2),
    correct_answer text NOT NULL CHECK (correct_answer = ANY (options)),
    concepts       text[] NOT NULL CHECK (cardinality(concepts) >= 1),
    a              double precision NOT NULL CHECK (a > 0),
    b              double precision NOT NULL,
    c              double precision NOT NULL DEFAULT 0,
    d              double precision NOT NULL DEFAULT 1,
    CHECK (0 <= c AND c < d AND d <= 1),
    UNIQUE (pool_id, position)
);

CREATE TABLE test_sessions (
    id               uuid PRIMARY KEY,
    pool_id          uuid NOT NULL REFERENCES item_pools (id),
    pool_version     integer NOT NULL,
    student_id       uuid REFERENCES users (id) ON DELETE SET NULL,
    status           text NOT NULL CHECK (status IN ('active', 'completed', 'ended', 'abandoned')),
    config           jsonb NOT NULL,
    -- Seeds the selector's randomness so a test replays identically.
    seed             bigint NOT NULL,
    prior_mean       double precision NOT NULL,
    prior_sd         double precision NOT NULL,
    theta            double precision NOT NULL,
    se               double precision NOT NULL,
    items_answered   integer NOT NULL DEFAULT 0,
    correct_count    integer NOT NULL DEFAULT 0,
    current_question text REFERENCES questions (id),
    concepts         jsonb,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz
);
CREATE INDEX test_sessions_student ON test_sessions (student_id, started_at DESC);
CREATE INDEX test_sessions_active ON test_sessions (status, updated_at) WHERE status = 'active';

CREATE TABLE test_responses (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    session_id   uuid NOT NULL REFERENCES test_sessions (id) ON DELETE CASCADE,
    seq          integer NOT NULL CHECK (seq >= 1),
    question_id  text NOT NULL REFERENCES questions (id),
    response     text NOT NULL,
    correct      boolean NOT NULL,
    theta_before double precision NOT NULL,
    se_before    double precision NOT NULL,
    theta_after  double precision NOT NULL,
    se_after     double precision NOT NULL,
    answered_at  timestamptz NOT NULL DEFAULT now(),
    -- The final guarantee of exactly-once answers.
    UNIQUE (session_id, question_id),
    UNIQUE (session_id, seq)
);

CREATE TABLE student_proficiencies (
    student_id uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- '' is the overall ability; any other value is a concept name.
    concept    text NOT NULL,
    theta      double precision NOT NULL,
    se         double precision NOT NULL,
    n          integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (student_id, concept)
);
