-- Registered images (AMI, AKI, ARI): each points at one object in the object
-- store, whose size and ETag at registration are recorded so nodes can
-- verify what they fetch. Deregistering deletes the row.
CREATE TABLE images (
    image_id             TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id           TEXT NOT NULL REFERENCES accounts(account_id),
    name                 TEXT NOT NULL,
    description          TEXT,
    image_type           TEXT NOT NULL CHECK (image_type IN ('machine', 'kernel', 'ramdisk')),
    architecture         TEXT NOT NULL,
    virtualization_type  TEXT NOT NULL CHECK (virtualization_type IN ('hvm', 'paravirtual')),
    root_device_name     TEXT NOT NULL,
    root_device_type     TEXT NOT NULL,
    kernel_id            TEXT,
    ramdisk_id           TEXT,
    location             TEXT NOT NULL,
    bucket               TEXT NOT NULL,
    object_key           TEXT NOT NULL,
    size                 INTEGER NOT NULL CHECK (size >= 0),
    etag                 TEXT NOT NULL,
    disk_format          TEXT NOT NULL CHECK (disk_format IN ('raw', 'qcow2', 'none')),
    state                TEXT NOT NULL CHECK (state IN ('pending', 'available', 'deregistered')),
    is_public            INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    -- AWS: an AMI name is unique among the images of one account.
    UNIQUE (account_id, name)
);
CREATE INDEX images_public ON images(is_public) WHERE is_public = 1;

-- Accounts an image is shared with (LaunchPermission UserId). Account ids
-- are not checked against `accounts`: AWS accepts any well-formed id.
CREATE TABLE image_launch_permissions (
    image_id    TEXT NOT NULL REFERENCES images(image_id) ON DELETE CASCADE,
    account_id  TEXT NOT NULL,
    PRIMARY KEY (image_id, account_id)
);
CREATE INDEX image_launch_permissions_by_account ON image_launch_permissions(account_id, image_id);
