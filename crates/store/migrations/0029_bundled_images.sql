-- Bundled images (RegisterImage of a bundle manifest) and the X.509
-- signing certificates their manifests are signed with.
--
-- An image can now be `failed` (a bundle that did not verify or unbundle,
-- or a CreateImage whose snapshot failed), with EC2's StateReason; a
-- bundled image records its manifest while the cloud unbundles it.
-- SQLite cannot change a CHECK constraint in place, so the table is
-- rebuilt; the launch permissions that reference it are kept aside, as
-- dropping the table deletes them (ON DELETE CASCADE).
CREATE TEMPORARY TABLE saved_launch_permissions AS SELECT * FROM image_launch_permissions;

CREATE TABLE images_new (
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
    state                TEXT NOT NULL CHECK (state IN ('pending', 'available', 'failed', 'deregistered')),
    is_public            INTEGER NOT NULL DEFAULT 0,
    created_at           INTEGER NOT NULL,
    block_device_mappings TEXT NOT NULL DEFAULT '[]',
    -- EC2's StateReason of a failed image (code, message).
    state_reason_code    TEXT,
    state_reason_message TEXT,
    -- `BUCKET/KEY` of the bundle manifest of an image registered from
    -- one; NULL for every other image.
    bundle_manifest      TEXT,
    UNIQUE (account_id, name)
);
INSERT INTO images_new (image_id, account_id, name, description, image_type, architecture,
    virtualization_type, root_device_name, root_device_type, kernel_id, ramdisk_id, location,
    bucket, object_key, size, etag, disk_format, state, is_public, created_at, block_device_mappings)
SELECT image_id, account_id, name, description, image_type, architecture,
    virtualization_type, root_device_name, root_device_type, kernel_id, ramdisk_id, location,
    bucket, object_key, size, etag, disk_format, state, is_public, created_at, block_device_mappings
FROM images;
DROP TABLE images;
ALTER TABLE images_new RENAME TO images;
CREATE INDEX images_public ON images(is_public) WHERE is_public = 1;
CREATE INDEX images_bundled_pending ON images(state) WHERE bundle_manifest IS NOT NULL;
INSERT INTO image_launch_permissions SELECT * FROM saved_launch_permissions;
DROP TABLE saved_launch_permissions;

-- IAM signing certificates (X.509, PEM): what bundle manifests are
-- signed with, and what the user's copy of a bundle key is wrapped for.
CREATE TABLE signing_certificates (
    certificate_id  TEXT PRIMARY KEY NOT NULL,
    account_id      TEXT NOT NULL,
    user_name       TEXT NOT NULL,
    body            TEXT NOT NULL,
    active          INTEGER NOT NULL DEFAULT 1,
    uploaded_at     INTEGER NOT NULL,
    FOREIGN KEY (account_id, user_name) REFERENCES users(account_id, user_name)
        ON DELETE CASCADE ON UPDATE CASCADE
);
CREATE INDEX signing_certificates_by_user ON signing_certificates(account_id, user_name);
