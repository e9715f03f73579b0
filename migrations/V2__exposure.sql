-- Sympson–Hetter exposure control (issue 3): the probability that an item is
-- administered once the selector picks it. 1 = no control.
ALTER TABLE questions
    ADD COLUMN exposure double precision NOT NULL DEFAULT 1
        CHECK (exposure > 0 AND exposure <= 1);
