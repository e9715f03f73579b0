-- Auth sessions in PostgreSQL as well as in Redis, so that losing Redis
-- (FLUSHALL, a failover without replicas) signs nobody out: a session Redis
-- no longer has is rebuilt from here on its next use. Written at sign-in, at
-- revocation (the row is deleted) and, at most once per touch interval, to
-- carry the idle deadline forward: never on every request.
--
-- Only the token's SHA-256 is kept, never the token.

CREATE TABLE auth_sessions (
    token_hash     text PRIMARY KEY CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    id             uuid NOT NULL UNIQUE,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    -- The session as at sign-in (the encoding Redis holds).
    record         bytea NOT NULL,
    -- The idle deadline as last written here (Redis may hold a later one, by
    -- at most a touch interval's worth), and the absolute one.
    idle_until     timestamptz NOT NULL,
    absolute_until timestamptz NOT NULL,
    CHECK (idle_until <= absolute_until)
);

-- A user's sessions (log out everywhere, erasure) and the sweep of dead rows.
CREATE INDEX auth_sessions_user ON auth_sessions (user_id);
CREATE INDEX auth_sessions_absolute ON auth_sessions (absolute_until);
