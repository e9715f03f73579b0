-- Tutoring sessions (issue 7). A session's whole TeachingContext is kept in
-- `context` (what Redis holds, so Redis can be rebuilt from here); the columns
-- beside it are the parts analytics query. `seq` counts transitions: an input
-- is applied only to the seq it was decided on, so concurrent inputs serialise.

CREATE TABLE teaching_sessions (
    id               uuid PRIMARY KEY,
    user_id          uuid REFERENCES users (id) ON DELETE SET NULL,
    course_id        text NOT NULL,
    module_index     integer NOT NULL CHECK (module_index >= 0),
    sub_topic_index  integer NOT NULL CHECK (sub_topic_index >= 0),
    total_segments   integer NOT NULL CHECK (total_segments >= 1),
    segment_index    integer NOT NULL CHECK (segment_index >= 0),
    state            text NOT NULL
        CHECK (state IN ('teaching', 'answering_question', 'paused', 'completed', 'ended')),
    seq              integer NOT NULL CHECK (seq >= 0),
    context          jsonb NOT NULL,
    inputs           integer NOT NULL DEFAULT 0,
    questions_asked  integer NOT NULL DEFAULT 0,
    interruptions    integer NOT NULL DEFAULT 0,
    repeats          integer NOT NULL DEFAULT 0,
    skips            integer NOT NULL DEFAULT 0,
    confusions       integer NOT NULL DEFAULT 0,
    pauses           integer NOT NULL DEFAULT 0,
    started_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    ended_at         timestamptz
);
CREATE INDEX teaching_sessions_user ON teaching_sessions (user_id, started_at DESC);
CREATE INDEX teaching_sessions_started ON teaching_sessions (started_at);

-- Every transition, in order: seq 0 is the session's start.
CREATE TABLE teaching_transitions (
    session_id   uuid NOT NULL REFERENCES teaching_sessions (id) ON DELETE CASCADE,
    seq          integer NOT NULL CHECK (seq >= 0),
    input        text,
    intent       text,
    from_state   text,
    to_state     text NOT NULL,
    action       text NOT NULL,
    segment_index integer NOT NULL,
    confusion    smallint NOT NULL,
    at           timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, seq)
);

-- Each question a student asked, and the answer when one was generated.
CREATE TABLE teaching_questions (
    session_id    uuid NOT NULL REFERENCES teaching_sessions (id) ON DELETE CASCADE,
    seq           integer NOT NULL,
    question      text NOT NULL,
    segment_index integer NOT NULL,
    answer        text,
    model         text,
    cached        boolean,
    asked_at      timestamptz NOT NULL DEFAULT now(),
    answered_at   timestamptz,
    PRIMARY KEY (session_id, seq),
    FOREIGN KEY (session_id, seq) REFERENCES teaching_transitions (session_id, seq) ON DELETE CASCADE
);
