-- S3 versioning. A bucket's state: '' (never enabled), 'Enabled' or
-- 'Suspended'.
ALTER TABLE buckets ADD COLUMN versioning TEXT NOT NULL DEFAULT '';

-- Every version of every object, delete markers included, replaces the
-- table of current objects. `seq` orders a key's versions by when they
-- were written (version ids are opaque); the primary key serves listings
-- of versions (by key, newest first) and the partial index listings of
-- current objects, so delete markers and older versions cost them nothing.
-- Objects written before versioning existed are their key's `null`
-- version, as in S3.
CREATE TABLE object_versions (
    bucket         TEXT NOT NULL REFERENCES buckets(name),
    key            TEXT NOT NULL,
    seq            INTEGER NOT NULL CHECK (seq > 0),
    version_id     TEXT NOT NULL,
    is_latest      INTEGER NOT NULL CHECK (is_latest IN (0, 1)),
    delete_marker  INTEGER NOT NULL DEFAULT 0 CHECK (delete_marker IN (0, 1)),
    segments       TEXT NOT NULL, -- JSON array of {blob_id, size}
    size           INTEGER NOT NULL CHECK (size >= 0),
    etag           TEXT NOT NULL,
    last_modified  INTEGER NOT NULL,
    metadata       TEXT NOT NULL, -- JSON ObjectMetadata
    acl_json       TEXT NOT NULL,
    owner_account  TEXT NOT NULL,
    tags           TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (bucket, key, seq DESC)
);
INSERT INTO object_versions (bucket, key, seq, version_id, is_latest, delete_marker, segments,
        size, etag, last_modified, metadata, acl_json, owner_account, tags)
    SELECT bucket, key, 1, 'null', 1, 0, segments, size, etag, last_modified, metadata,
        acl_json, owner_account, tags FROM objects;
DROP TABLE objects;
ALTER TABLE object_versions RENAME TO objects;
CREATE UNIQUE INDEX objects_by_version ON objects(bucket, key, version_id);
CREATE UNIQUE INDEX objects_latest ON objects(bucket, key) WHERE is_latest = 1;
CREATE INDEX objects_current ON objects(bucket, key) WHERE is_latest = 1 AND delete_marker = 0;
