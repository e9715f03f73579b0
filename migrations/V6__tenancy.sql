-- Tenancy (issue 18): organizations, memberships with a role per organization,
-- classes with their teachers and enrolled students, and invitation codes.
-- Every resource that is not global belongs to an organization. Authorization
-- reads these tables on each decision (never a copy made at sign-in), so a
-- role or membership change takes effect on the next request.

CREATE TABLE organizations (
    id         uuid PRIMARY KEY,
    name       text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    -- Short name for URLs and people: lower case letters, digits and dashes.
    slug       text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9](-?[a-z0-9])*$' AND length(slug) <= 63),
    created_at timestamptz NOT NULL DEFAULT now()
);

-- The deployment's data before tenancy lives here.
INSERT INTO organizations (id, name, slug)
VALUES ('00000000-0000-0000-0000-000000000001', 'Default organization', 'default');

-- A person may belong to several organizations, with one role in each.
CREATE TABLE memberships (
    org_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    role       text NOT NULL CHECK (role IN ('org_admin', 'teacher', 'student')),
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

-- Every existing user joins the default organization with their current role;
-- `users.role` keeps only whether one is a platform admin (`admin`).
INSERT INTO memberships (org_id, user_id, role)
SELECT '00000000-0000-0000-0000-000000000001', id,
       CASE role WHEN 'admin' THEN 'org_admin' ELSE role END
FROM users;

CREATE TABLE classes (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL REFERENCES organizations (id) ON DELETE CASCADE,
    name       text NOT NULL CHECK (length(btrim(name)) BETWEEN 1 AND 200),
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (org_id, id)
);

-- Teachers and students of a class are members of its organization: the
-- composite keys make that a constraint, and removing a membership removes
-- the person from the organization's classes.
CREATE TABLE class_teachers (
    class_id   uuid NOT NULL,
    org_id     uuid NOT NULL,
    user_id    uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (class_id, user_id),
    FOREIGN KEY (org_id, class_id) REFERENCES classes (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX class_teachers_user ON class_teachers (user_id);

CREATE TABLE class_students (
    class_id   uuid NOT NULL,
    org_id     uuid NOT NULL,
    user_id    uuid NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (class_id, user_id),
    FOREIGN KEY (org_id, class_id) REFERENCES classes (org_id, id) ON DELETE CASCADE,
    FOREIGN KEY (org_id, user_id) REFERENCES memberships (org_id, user_id) ON DELETE CASCADE
);
CREATE INDEX class_students_user ON class_students (user_id);

-- Codes an org admin hands out so that students join a class themselves. Only
-- the code's SHA-256 is kept; `uses` is claimed with a conditional UPDATE.
CREATE TABLE invitations (
    id         uuid PRIMARY KEY,
    org_id     uuid NOT NULL,
    class_id   uuid NOT NULL,
    code_hash  text NOT NULL UNIQUE,
    max_uses   integer NOT NULL CHECK (max_uses BETWEEN 1 AND 10000),
    uses       integer NOT NULL DEFAULT 0 CHECK (uses >= 0 AND uses <= max_uses),
    expires_at timestamptz NOT NULL,
    created_by uuid REFERENCES users (id) ON DELETE SET NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (org_id, class_id) REFERENCES classes (org_id, id) ON DELETE CASCADE
);
CREATE INDEX invitations_class ON invitations (class_id, created_at DESC);

-- Pools belong to an organization; NULL marks a shared pool that a platform
-- admin published: every organization may use it, only platform admins change it.
ALTER TABLE item_pools ADD COLUMN org_id uuid REFERENCES organizations (id);
UPDATE item_pools SET org_id = '00000000-0000-0000-0000-000000000001';
CREATE INDEX item_pools_org ON item_pools (org_id);

-- A test or tutoring session belongs to the organization it was taken in;
-- NULL: taken outside any (a shared pool, a user of no organization), seen by
-- the student and platform admins only.
ALTER TABLE test_sessions ADD COLUMN org_id uuid REFERENCES organizations (id);
UPDATE test_sessions SET org_id = '00000000-0000-0000-0000-000000000001';
CREATE INDEX test_sessions_org_active ON test_sessions (org_id, started_at DESC)
    WHERE status IN ('active', 'completed');

ALTER TABLE teaching_sessions ADD COLUMN org_id uuid REFERENCES organizations (id);
UPDATE teaching_sessions SET org_id = '00000000-0000-0000-0000-000000000001';
CREATE INDEX teaching_sessions_org ON teaching_sessions (org_id, started_at DESC);

-- Long-term proficiency is kept per organization: one school's results are not
-- another's to read. NULL: from tests taken outside any organization.
ALTER TABLE student_proficiencies ADD COLUMN org_id uuid REFERENCES organizations (id) ON DELETE CASCADE;
UPDATE student_proficiencies SET org_id = '00000000-0000-0000-0000-000000000001';
ALTER TABLE student_proficiencies DROP CONSTRAINT student_proficiencies_pkey;
ALTER TABLE student_proficiencies
    ADD CONSTRAINT student_proficiencies_key UNIQUE NULLS NOT DISTINCT (student_id, org_id, concept);
