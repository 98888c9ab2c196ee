-- Accounts, users and access keys: who may call the API.
CREATE TABLE accounts (
    account_id   TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL UNIQUE,
    is_admin     INTEGER NOT NULL DEFAULT 0,
    created_at   INTEGER NOT NULL
);

CREATE TABLE users (
    account_id   TEXT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
    user_name    TEXT NOT NULL,
    user_id      TEXT NOT NULL UNIQUE,
    created_at   INTEGER NOT NULL,
    PRIMARY KEY (account_id, user_name)
);

CREATE TABLE access_keys (
    access_key_id     TEXT PRIMARY KEY NOT NULL,
    secret_access_key TEXT NOT NULL,
    account_id        TEXT NOT NULL,
    user_name         TEXT NOT NULL,
    active            INTEGER NOT NULL DEFAULT 1,
    created_at        INTEGER NOT NULL,
    FOREIGN KEY (account_id, user_name) REFERENCES users(account_id, user_name) ON DELETE CASCADE
);

-- Every taggable resource has a row here, so ownership checks and tags are
-- generic over resource types.
CREATE TABLE resources (
    resource_id   TEXT PRIMARY KEY NOT NULL,
    account_id    TEXT NOT NULL REFERENCES accounts(account_id),
    resource_type TEXT NOT NULL,
    created_at    INTEGER NOT NULL
);
CREATE INDEX resources_by_account ON resources(account_id, resource_type);

CREATE TABLE tags (
    resource_id  TEXT NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    tag_key      TEXT NOT NULL,
    tag_value    TEXT NOT NULL,
    PRIMARY KEY (resource_id, tag_key)
);

CREATE TABLE key_pairs (
    key_pair_id  TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL REFERENCES accounts(account_id),
    name         TEXT NOT NULL,
    key_type     TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    public_key   TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (account_id, name)
);

-- Small typed settings the controller keeps (for example: bootstrap done).
CREATE TABLE settings (
    name   TEXT PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL
);

-- Node agents and the capacity they last reported (Eucalyptus'
-- DescribeResource): maximum and currently free cores, memory and disk.
CREATE TABLE nodes (
    node_id          TEXT PRIMARY KEY NOT NULL,
    zone             TEXT NOT NULL,
    address          TEXT NOT NULL,
    cores_max        INTEGER NOT NULL,
    cores_free       INTEGER NOT NULL,
    memory_mib_max   INTEGER NOT NULL,
    memory_mib_free  INTEGER NOT NULL,
    disk_gib_max     INTEGER NOT NULL,
    disk_gib_free    INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
