-- Object store (S3) metadata. Object data lives in blob files outside the
-- database; these rows point at them by blob id.

-- Bucket names are one namespace across all accounts.
CREATE TABLE buckets (
    name        TEXT PRIMARY KEY NOT NULL,
    account_id  TEXT NOT NULL REFERENCES accounts(account_id),
    region      TEXT NOT NULL,
    acl_json    TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);
CREATE INDEX buckets_by_account ON buckets(account_id, name);

-- Current object versions. `key` uses the default BINARY collation, so
-- ORDER BY key and range comparisons are UTF-8 byte order and listings by
-- prefix are range scans of the primary key index.
CREATE TABLE objects (
    bucket         TEXT NOT NULL REFERENCES buckets(name),
    key            TEXT NOT NULL,
    segments       TEXT NOT NULL, -- JSON array of {blob_id, size}
    size           INTEGER NOT NULL CHECK (size >= 0),
    etag           TEXT NOT NULL,
    last_modified  INTEGER NOT NULL,
    metadata       TEXT NOT NULL, -- JSON ObjectMetadata
    acl_json       TEXT NOT NULL,
    owner_account  TEXT NOT NULL,
    PRIMARY KEY (bucket, key)
);

CREATE TABLE multipart_uploads (
    upload_id      TEXT PRIMARY KEY NOT NULL,
    bucket         TEXT NOT NULL REFERENCES buckets(name),
    key            TEXT NOT NULL,
    owner_account  TEXT NOT NULL,
    initiated      INTEGER NOT NULL,
    metadata       TEXT NOT NULL, -- JSON ObjectMetadata
    acl_json       TEXT NOT NULL
);
-- upload_id breaks ties so listings are stable and need no sort.
CREATE INDEX multipart_uploads_by_key ON multipart_uploads(bucket, key, initiated, upload_id);

CREATE TABLE multipart_parts (
    upload_id      TEXT NOT NULL REFERENCES multipart_uploads(upload_id) ON DELETE CASCADE,
    part_number    INTEGER NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
    blob_id        TEXT NOT NULL,
    size           INTEGER NOT NULL CHECK (size >= 0),
    etag           TEXT NOT NULL,
    last_modified  INTEGER NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

-- Bytes of completed objects in the buckets each account owns (parts of
-- uploads in progress do not count), and the account's quota (NULL: none).
-- Kept in the same transaction as every object change.
CREATE TABLE account_storage (
    account_id   TEXT PRIMARY KEY NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
    used_bytes   INTEGER NOT NULL DEFAULT 0 CHECK (used_bytes >= 0),
    quota_bytes  INTEGER CHECK (quota_bytes IS NULL OR quota_bytes >= 0)
);
