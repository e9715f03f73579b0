-- Idempotency-Key on the routes that create (start, sign-up, pools,
-- assessments, assignments): the row a keyed request creates carries its
-- scoped key and the SHA-256 of its request, and the UNIQUE constraint makes
-- a second row for the same key impossible, whatever Redis remembers. The
-- key is `<scope>/<key>`: the caller's user id (sign-up: `sign-up`) and the
-- client's key; the route is the table. NULL for a request without a key.

ALTER TABLE test_sessions
    ADD COLUMN idempotency_key  text,
    ADD COLUMN idempotency_hash bytea,
    ADD CONSTRAINT test_sessions_idempotency_key UNIQUE (idempotency_key);

ALTER TABLE users
    ADD COLUMN idempotency_key  text,
    ADD COLUMN idempotency_hash bytea,
    ADD CONSTRAINT users_idempotency_key UNIQUE (idempotency_key);

ALTER TABLE item_pools
    ADD COLUMN idempotency_key  text,
    ADD COLUMN idempotency_hash bytea,
    ADD CONSTRAINT item_pools_idempotency_key UNIQUE (idempotency_key);

ALTER TABLE assessments
    ADD COLUMN idempotency_key  text,
    ADD COLUMN idempotency_hash bytea,
    ADD CONSTRAINT assessments_idempotency_key UNIQUE (idempotency_key);

ALTER TABLE assignments
    ADD COLUMN idempotency_key  text,
    ADD COLUMN idempotency_hash bytea,
    ADD CONSTRAINT assignments_idempotency_key UNIQUE (idempotency_key);
