-- EBS snapshots. A row is the controller's record of a snapshot: which
-- volume it captures, the node capturing it while it is pending, and once
-- its data is stored durably in the blob store, the segments holding that
-- data with its size, SHA-256 and disk format. `segments` is NULL until the
-- data is whole, so a snapshot can never be completed without its data.
CREATE TABLE snapshots (
    snapshot_id      TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id       TEXT NOT NULL REFERENCES accounts(account_id),
    -- The captured volume (no foreign key: a snapshot outlives its volume).
    volume_id        TEXT NOT NULL,
    volume_size_gib  INTEGER NOT NULL,
    -- Node that captures the volume's data; NULL for imported snapshots.
    node_id          TEXT,
    -- EC2 snapshot state: pending, completed, error.
    state            TEXT NOT NULL,
    -- What the controller drives the snapshot toward: completed, deleted.
    desired          TEXT NOT NULL,
    progress         INTEGER NOT NULL CHECK (progress BETWEEN 0 AND 100),
    segments         TEXT, -- JSON array of {blob_id, size}
    data_size        INTEGER,
    sha256           TEXT,
    disk_format      TEXT CHECK (disk_format IN ('raw', 'qcow2')),
    generation       INTEGER NOT NULL,
    revision         INTEGER NOT NULL,
    details          TEXT NOT NULL,
    created_at       INTEGER NOT NULL,
    updated_at       INTEGER NOT NULL
);
CREATE INDEX snapshots_by_account ON snapshots(account_id);
CREATE INDEX snapshots_by_volume ON snapshots(volume_id);

-- Accounts a snapshot is shared with (createVolumePermission UserId), or
-- 'all' for a public snapshot.
CREATE TABLE snapshot_permissions (
    snapshot_id  TEXT NOT NULL REFERENCES snapshots(snapshot_id) ON DELETE CASCADE,
    grantee      TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, grantee)
);
CREATE INDEX snapshot_permissions_by_grantee ON snapshot_permissions(grantee, snapshot_id);

-- EBS-backed images: the block device mappings of an image (JSON array of
-- {device_name, snapshot_id, volume_size_gib, delete_on_termination,
-- volume_type, virtual_name, no_device}). DeleteSnapshot looks through it
-- to refuse deleting a snapshot an image uses.
ALTER TABLE images ADD COLUMN block_device_mappings TEXT NOT NULL DEFAULT '[]';
