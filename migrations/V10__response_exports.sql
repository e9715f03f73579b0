-- Exports of a pool's recorded responses (`GET /v1/pools/{id}/responses`).
-- Each export has its own random key: the person ids it writes are
-- HMAC-SHA256(key, test id), the same on every page of that export and
-- unlinkable across exports. The key never leaves the server; the row also
-- records who exported what, and when.
CREATE TABLE response_exports (
    id          uuid PRIMARY KEY,
    pool_id     uuid NOT NULL REFERENCES item_pools (id) ON DELETE CASCADE,
    created_by  uuid REFERENCES users (id) ON DELETE SET NULL,
    key         bytea NOT NULL CHECK (length(key) = 32),
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- A pool's tests in id order: an export walks them (and each one's responses
-- by seq, on test_responses' UNIQUE (session_id, seq)) from its cursor, so a
-- page costs the same wherever it starts and whatever other pools hold.
CREATE INDEX test_sessions_pool ON test_sessions (pool_id, id);
