-- Accounts (issue 5): a user signs in with a password (argon2id PHC string) or
-- through an OpenID Connect provider, or both. Emails are stored normalised
-- (trimmed, lower case), so the UNIQUE constraint is case-insensitive.
ALTER TABLE users
    ADD COLUMN display_name  text,
    ADD COLUMN password_hash text,
    ADD COLUMN updated_at    timestamptz NOT NULL DEFAULT now(),
    ADD CONSTRAINT users_email_normalised CHECK (email = lower(btrim(email)));

-- Who a user is at an OpenID Connect provider: `sub` is stable there, the email
-- may change, so sign-ins find the user by (provider, subject).
CREATE TABLE user_identities (
    provider   text NOT NULL,
    subject    text NOT NULL,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (provider, subject)
);
CREATE INDEX user_identities_user ON user_identities (user_id);
