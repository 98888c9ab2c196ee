-- IAM: what each user carries beyond its name (path, tags, inline
-- policies, group memberships, attached managed policies, login profile)
-- as one JSON document owned by the identity layer, with a compare-and-set
-- revision; when each access key was last used; and the account's other
-- IAM entities (groups, roles, managed policies, instance profiles), each
-- one JSON document.
ALTER TABLE users ADD COLUMN details TEXT NOT NULL DEFAULT '{}';
ALTER TABLE users ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;

ALTER TABLE access_keys ADD COLUMN last_used_at INTEGER;
ALTER TABLE access_keys ADD COLUMN last_used_service TEXT;
ALTER TABLE access_keys ADD COLUMN last_used_region TEXT;

CREATE TABLE iam_entities (
    account_id  TEXT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    entity_id   TEXT NOT NULL UNIQUE,
    details     TEXT NOT NULL,
    revision    INTEGER NOT NULL DEFAULT 0,
    created_at  INTEGER NOT NULL,
    PRIMARY KEY (account_id, kind, name)
);
