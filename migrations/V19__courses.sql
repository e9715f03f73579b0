-- Courses as data (issue 23). A course belongs to one organization and is
-- known there by its `key` (the importer's file names it; a re-import of the
-- same key writes a new version). Versions are immutable: a tutoring session
-- keeps the one it started on. A version's `content` is the whole document
-- (modules → sub-topics → segments with their Markdown text and check
-- questions); `segments` counts its segments, for listings.
CREATE TABLE courses (
    id             uuid PRIMARY KEY,
    org_id         uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    key            text NOT NULL CHECK (length(key) BETWEEN 1 AND 100),
    title          text NOT NULL CHECK (length(btrim(title)) BETWEEN 1 AND 200),
    latest_version integer NOT NULL DEFAULT 1 CHECK (latest_version >= 1),
    created_by     uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, key)
);

CREATE TABLE course_versions (
    course_id  uuid NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    version    integer NOT NULL CHECK (version >= 1),
    content    jsonb NOT NULL,
    segments   integer NOT NULL CHECK (segments >= 1),
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (course_id, version)
);

-- A session on a course of this table names its version; sessions from
-- before this migration keep their free-text course id and no version.
ALTER TABLE teaching_sessions ADD COLUMN course_version integer;
-- Set by the sweeper when the Redis state expired and nothing happened for
-- the idle limit; the session is then ended.
ALTER TABLE teaching_sessions ADD COLUMN abandoned_at timestamptz;
CREATE INDEX teaching_sessions_open ON teaching_sessions (updated_at) WHERE ended_at IS NULL;

-- A student's progress through one course, across sessions. Written in the
-- statement that records each transition, so it counts every input exactly
-- once, as the transitions do. `completed` holds segment keys (stable across
-- versions); the position is where the next session begins.
CREATE TABLE course_progress (
    user_id          uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    course_id        uuid NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    org_id           uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    completed        text[] NOT NULL DEFAULT '{}',
    time_spent_ms    bigint NOT NULL DEFAULT 0 CHECK (time_spent_ms >= 0),
    questions_asked  integer NOT NULL DEFAULT 0,
    sessions         integer NOT NULL DEFAULT 0,
    module_index     integer NOT NULL DEFAULT 0,
    sub_topic_index  integer NOT NULL DEFAULT 0,
    segment_index    integer NOT NULL DEFAULT 0,
    last_session_id  uuid,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, course_id)
);
CREATE INDEX course_progress_course ON course_progress (course_id);

-- The semantic answer cache: answers to students' questions about one
-- segment of one course version, with the question's embedding (unit length),
-- reused for a later question whose embedding is close enough. The question's
-- text is not kept (it is the student's; an erasure could not find it here).
-- At most
-- SEMANTIC_CACHE_CAP rows per segment; the least used are evicted.
CREATE TABLE answer_vectors (
    id             bigserial PRIMARY KEY,
    course_id      uuid NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
    course_version integer NOT NULL,
    segment_key    text NOT NULL,
    style          text NOT NULL,
    model          text NOT NULL,
    embedding      real[] NOT NULL,
    answer         text NOT NULL,
    answer_model   text NOT NULL,
    tokens         integer NOT NULL DEFAULT 0,
    uses           integer NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    last_used_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX answer_vectors_segment ON answer_vectors (course_id, course_version, segment_key, id);
