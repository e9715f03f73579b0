-- Disabled accounts (issue 22): an admin of the user's organization, or a
-- platform admin, may disable an account. Disabling deletes the user's auth
-- sessions in the same transaction, and a sign-in inserts its session only
-- while the account is enabled (the INSERT reads the user row FOR SHARE, so
-- a sign-in racing a disable either commits first and has its session deleted
-- by it, or waits and inserts nothing).
ALTER TABLE users ADD COLUMN disabled_at timestamptz;
