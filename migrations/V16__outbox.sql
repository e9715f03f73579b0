-- Events for integrators (issue 22): a transactional outbox. A change that
-- integrators hear about (a test completed, ended, abandoned or timed out, an
-- assignment completed by a student, results released, a calibration
-- finished, a user erased) inserts its event here in the same transaction,
-- so an event exists exactly when its change committed. The `events`
-- function publishes unpublished rows to EventBridge in `seq` order, at least
-- once, and marks them published only after EventBridge accepted them;
-- `event_id` is what consumers de-duplicate on.
CREATE TABLE outbox (
    seq           bigserial PRIMARY KEY,
    event_id      uuid NOT NULL UNIQUE,
    detail_type   text NOT NULL,
    resource_kind text NOT NULL,
    resource_id   uuid NOT NULL,
    detail        jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    -- Failed publications so far, and the last one's error (for operators).
    attempts      integer NOT NULL DEFAULT 0,
    last_error    text
);

-- What the publisher reads: the unpublished rows, oldest first.
CREATE INDEX outbox_unpublished ON outbox (seq) WHERE published_at IS NULL;
