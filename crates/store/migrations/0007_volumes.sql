-- EBS volumes. A row is the controller's desired state of a volume (exists,
-- attached to an instance at a device, or deleted) plus the state it last
-- observed on the node that holds the volume's data; the details the store
-- does not query (type, IOPS, attributes, the guest's device name) are one
-- JSON document owned by the compute layer.
CREATE TABLE volumes (
    volume_id       TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id      TEXT NOT NULL REFERENCES accounts(account_id),
    zone            TEXT NOT NULL,
    -- The node whose disk holds the volume's data.
    node_id         TEXT NOT NULL,
    size_gib        INTEGER NOT NULL,
    -- EC2 volume state: creating, available, in-use, deleting, error.
    state           TEXT NOT NULL,
    -- What the controller drives the volume toward: available, attached,
    -- deleted.
    desired         TEXT NOT NULL,
    -- The instance the volume is attached to (or being attached to or
    -- detached from), at which device, and the attachment's state.
    -- No foreign key: the attachment outlives its instance's row until the
    -- reconciler records the detachment.
    instance_id     TEXT,
    device          TEXT,
    attach_state    TEXT,
    attach_time     INTEGER,
    generation      INTEGER NOT NULL,
    revision        INTEGER NOT NULL,
    details         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
CREATE INDEX volumes_by_account ON volumes(account_id);
-- A device name of an instance holds at most one volume, however
-- attachments race.
CREATE UNIQUE INDEX volumes_attachment ON volumes(instance_id, device)
    WHERE instance_id IS NOT NULL;
