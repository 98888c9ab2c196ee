-- mallee's PostgreSQL schema: the same tables, columns, keys and indexes
-- as SQLite's migrations 0001..0029 (crates/store/migrations) produce,
-- written in PostgreSQL's dialect. It carries version 29 so that the two
-- directories keep the same numbering from here on.
--
-- RULE: every schema change is a new migration with the same number in
-- BOTH directories, crates/store/migrations (SQLite) and
-- crates/store/migrations-postgres (this one), and the store conformance
-- suite runs against both backends.
--
-- Dialect choices: every SQLite INTEGER (ids, counts, millisecond
-- timestamps and 0/1 flags alike) is BIGINT, so the backend reads and
-- binds i64 everywhere as SQLite's does and `flag = 1` predicates and
-- partial indexes keep their meaning; TEXT stays TEXT (the database must
-- use the "C" collation so that ORDER BY sorts bytewise as SQLite does,
-- which the store checks when it opens). PostgreSQL's primary keys carry
-- no sort order: objects' (bucket, key, seq) is scanned backwards.

CREATE TABLE accounts (
    account_id   TEXT PRIMARY KEY NOT NULL,
    name         TEXT NOT NULL UNIQUE,
    is_admin     BIGINT NOT NULL DEFAULT 0,
    created_at   BIGINT NOT NULL,
    iam_generation BIGINT NOT NULL DEFAULT 0);

CREATE TABLE users (
    account_id   TEXT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
    user_name    TEXT NOT NULL,
    user_id      TEXT NOT NULL UNIQUE,
    created_at   BIGINT NOT NULL, details TEXT NOT NULL DEFAULT '{}', revision BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (account_id, user_name)
);

CREATE TABLE access_keys (
    access_key_id     TEXT PRIMARY KEY NOT NULL,
    secret_access_key TEXT NOT NULL,
    account_id        TEXT NOT NULL,
    user_name         TEXT NOT NULL,
    active            BIGINT NOT NULL DEFAULT 1,
    created_at        BIGINT NOT NULL, last_used_at BIGINT, last_used_service TEXT, last_used_region TEXT,
    -- Deferrable: renaming a user renames its keys in the same
    -- transaction, checked at commit (SQLite's defer_foreign_keys).
    FOREIGN KEY (account_id, user_name) REFERENCES users(account_id, user_name) ON DELETE CASCADE
        DEFERRABLE INITIALLY IMMEDIATE
);

CREATE TABLE signing_certificates (
    certificate_id  TEXT PRIMARY KEY NOT NULL,
    account_id      TEXT NOT NULL,
    user_name       TEXT NOT NULL,
    body            TEXT NOT NULL,
    active          BIGINT NOT NULL DEFAULT 1,
    uploaded_at     BIGINT NOT NULL,
    FOREIGN KEY (account_id, user_name) REFERENCES users(account_id, user_name)
        ON DELETE CASCADE ON UPDATE CASCADE
);

CREATE INDEX signing_certificates_by_user ON signing_certificates(account_id, user_name);

CREATE TABLE iam_entities (
    account_id  TEXT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
    kind        TEXT NOT NULL,
    name        TEXT NOT NULL,
    entity_id   TEXT NOT NULL UNIQUE,
    details     TEXT NOT NULL,
    revision    BIGINT NOT NULL DEFAULT 0,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (account_id, kind, name)
);

CREATE TABLE sts_sessions (
    access_key_id     TEXT PRIMARY KEY NOT NULL,
    secret_access_key TEXT NOT NULL,
    session_token     TEXT NOT NULL,
    account_id        TEXT NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
    user_name         TEXT NOT NULL,
    role_name         TEXT,
    session_name      TEXT NOT NULL,
    details           TEXT NOT NULL DEFAULT '{}',
    expires_at        BIGINT NOT NULL,
    created_at        BIGINT NOT NULL
);

CREATE INDEX sts_sessions_by_expiry ON sts_sessions(expires_at);

CREATE TABLE resources (
    resource_id   TEXT PRIMARY KEY NOT NULL,
    account_id    TEXT NOT NULL REFERENCES accounts(account_id),
    resource_type TEXT NOT NULL,
    created_at    BIGINT NOT NULL
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
    created_at   BIGINT NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE settings (
    name   TEXT PRIMARY KEY NOT NULL,
    value  TEXT NOT NULL
);

CREATE TABLE nodes (
    node_id          TEXT PRIMARY KEY NOT NULL,
    zone             TEXT NOT NULL,
    address          TEXT NOT NULL,
    cores_max        BIGINT NOT NULL,
    cores_free       BIGINT NOT NULL,
    memory_mib_max   BIGINT NOT NULL,
    memory_mib_free  BIGINT NOT NULL,
    disk_gib_max     BIGINT NOT NULL,
    disk_gib_free    BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    underlay_ip TEXT, version TEXT NOT NULL DEFAULT '', accel TEXT NOT NULL DEFAULT '', disabled BIGINT NOT NULL DEFAULT 0, role TEXT NOT NULL DEFAULT 'compute');

CREATE TABLE buckets (
    name        TEXT PRIMARY KEY NOT NULL,
    account_id  TEXT NOT NULL REFERENCES accounts(account_id),
    region      TEXT NOT NULL,
    acl_json    TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    policy TEXT, tags TEXT NOT NULL DEFAULT '{}', versioning TEXT NOT NULL DEFAULT '');

CREATE INDEX buckets_by_account ON buckets(account_id, name);

CREATE TABLE bucket_settings (
    bucket  TEXT NOT NULL REFERENCES buckets(name) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (bucket, name)
);

CREATE TABLE objects (
    bucket         TEXT NOT NULL REFERENCES buckets(name),
    key            TEXT NOT NULL,
    seq            BIGINT NOT NULL CHECK (seq > 0),
    version_id     TEXT NOT NULL,
    is_latest      BIGINT NOT NULL CHECK (is_latest IN (0, 1)),
    delete_marker  BIGINT NOT NULL DEFAULT 0 CHECK (delete_marker IN (0, 1)),
    segments       TEXT NOT NULL, -- JSON array of {blob_id, size}
    size           BIGINT NOT NULL CHECK (size >= 0),
    etag           TEXT NOT NULL,
    last_modified  BIGINT NOT NULL,
    metadata       TEXT NOT NULL, -- JSON ObjectMetadata
    acl_json       TEXT NOT NULL,
    owner_account  TEXT NOT NULL,
    tags           TEXT NOT NULL DEFAULT '{}', encryption TEXT,
    PRIMARY KEY (bucket, key, seq)
);

CREATE UNIQUE INDEX objects_by_version ON objects(bucket, key, version_id);

CREATE UNIQUE INDEX objects_latest ON objects(bucket, key) WHERE is_latest = 1;

CREATE INDEX objects_current ON objects(bucket, key) WHERE is_latest = 1 AND delete_marker = 0;

CREATE TABLE multipart_uploads (
    upload_id      TEXT PRIMARY KEY NOT NULL,
    bucket         TEXT NOT NULL REFERENCES buckets(name),
    key            TEXT NOT NULL,
    owner_account  TEXT NOT NULL,
    initiated      BIGINT NOT NULL,
    metadata       TEXT NOT NULL, -- JSON ObjectMetadata
    acl_json       TEXT NOT NULL,
    tags TEXT NOT NULL DEFAULT '{}', encryption TEXT);

CREATE INDEX multipart_uploads_by_key ON multipart_uploads(bucket, key, initiated, upload_id);

CREATE TABLE multipart_parts (
    upload_id      TEXT NOT NULL REFERENCES multipart_uploads(upload_id) ON DELETE CASCADE,
    part_number    BIGINT NOT NULL CHECK (part_number BETWEEN 1 AND 10000),
    blob_id        TEXT NOT NULL,
    size           BIGINT NOT NULL CHECK (size >= 0),
    etag           TEXT NOT NULL,
    last_modified  BIGINT NOT NULL,
    PRIMARY KEY (upload_id, part_number)
);

CREATE TABLE account_storage (
    account_id   TEXT PRIMARY KEY NOT NULL REFERENCES accounts(account_id) ON DELETE CASCADE,
    used_bytes   BIGINT NOT NULL DEFAULT 0 CHECK (used_bytes >= 0),
    quota_bytes  BIGINT CHECK (quota_bytes IS NULL OR quota_bytes >= 0)
);

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
    size                 BIGINT NOT NULL CHECK (size >= 0),
    etag                 TEXT NOT NULL,
    disk_format          TEXT NOT NULL CHECK (disk_format IN ('raw', 'qcow2', 'none')),
    state                TEXT NOT NULL CHECK (state IN ('pending', 'available', 'failed', 'deregistered')),
    is_public            BIGINT NOT NULL DEFAULT 0,
    created_at           BIGINT NOT NULL,
    block_device_mappings TEXT NOT NULL DEFAULT '[]',
    -- EC2's StateReason of a failed image (code, message).
    state_reason_code    TEXT,
    state_reason_message TEXT,
    -- `BUCKET/KEY` of the bundle manifest of an image registered from
    -- one; NULL for every other image.
    bundle_manifest      TEXT,
    UNIQUE (account_id, name)
);

CREATE INDEX images_public ON images(is_public) WHERE is_public = 1;

CREATE INDEX images_bundled_pending ON images(state) WHERE bundle_manifest IS NOT NULL;

CREATE TABLE image_launch_permissions (
    image_id    TEXT NOT NULL REFERENCES images(image_id) ON DELETE CASCADE,
    account_id  TEXT NOT NULL,
    PRIMARY KEY (image_id, account_id)
);

CREATE INDEX image_launch_permissions_by_account ON image_launch_permissions(account_id, image_id);

CREATE TABLE launch_templates (
    template_id     TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id      TEXT NOT NULL,
    name            TEXT NOT NULL,
    default_version BIGINT NOT NULL,
    latest_version  BIGINT NOT NULL,
    created_at      BIGINT NOT NULL,
    created_by      TEXT NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE launch_template_versions (
    template_id  TEXT NOT NULL REFERENCES launch_templates(template_id) ON DELETE CASCADE,
    version      BIGINT NOT NULL,
    description  TEXT,
    data         TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    created_by   TEXT NOT NULL,
    PRIMARY KEY (template_id, version)
);

CREATE TABLE reservations (
    reservation_id  TEXT PRIMARY KEY NOT NULL,
    account_id      TEXT NOT NULL REFERENCES accounts(account_id),
    client_token    TEXT,
    request_hash    TEXT NOT NULL,
    created_at      BIGINT NOT NULL
);

CREATE UNIQUE INDEX reservations_by_token ON reservations(account_id, client_token)
    WHERE client_token IS NOT NULL;

CREATE TABLE instances (
    instance_id     TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    reservation_id  TEXT NOT NULL REFERENCES reservations(reservation_id),
    account_id      TEXT NOT NULL REFERENCES accounts(account_id),
    launch_index    BIGINT NOT NULL,
    node_id         TEXT NOT NULL,
    zone            TEXT NOT NULL,
    network_id      TEXT NOT NULL,
    private_ip      TEXT NOT NULL,
    mac             TEXT NOT NULL,
    state           TEXT NOT NULL,
    desired         TEXT NOT NULL,
    generation      BIGINT NOT NULL,
    revision        BIGINT NOT NULL,
    details         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL,
    terminated_at   BIGINT
);

CREATE INDEX instances_by_account ON instances(account_id);

CREATE INDEX instances_by_reservation ON instances(reservation_id);

CREATE UNIQUE INDEX instances_private_ip ON instances(network_id, private_ip)
    WHERE terminated_at IS NULL;

CREATE UNIQUE INDEX instances_mac ON instances(mac) WHERE terminated_at IS NULL;

CREATE TABLE dhcp_options (
    dhcp_options_id  TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id       TEXT NOT NULL REFERENCES accounts(account_id),
    configurations   TEXT NOT NULL,
    created_at       BIGINT NOT NULL
);

CREATE INDEX dhcp_options_by_account ON dhcp_options(account_id);

CREATE TABLE vpcs (
    vpc_id       TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL REFERENCES accounts(account_id),
    cidr         TEXT NOT NULL,
    is_default   BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    enable_dns_support BIGINT NOT NULL DEFAULT 1, enable_dns_hostnames BIGINT NOT NULL DEFAULT 1, enable_network_address_usage_metrics BIGINT NOT NULL DEFAULT 0, dhcp_options_id TEXT REFERENCES dhcp_options(dhcp_options_id));

CREATE INDEX vpcs_by_account ON vpcs(account_id);

CREATE UNIQUE INDEX vpcs_one_default ON vpcs(account_id) WHERE is_default = 1;

CREATE INDEX vpcs_by_dhcp_options ON vpcs(dhcp_options_id) WHERE dhcp_options_id IS NOT NULL;

CREATE TABLE subnets (
    subnet_id                TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    vpc_id                   TEXT NOT NULL REFERENCES vpcs(vpc_id),
    account_id               TEXT NOT NULL REFERENCES accounts(account_id),
    zone                     TEXT NOT NULL,
    cidr                     TEXT NOT NULL,
    default_for_az           BIGINT NOT NULL,
    map_public_ip_on_launch  BIGINT NOT NULL,
    created_at               BIGINT NOT NULL, vni BIGINT,
    UNIQUE (vpc_id, cidr)
);

CREATE INDEX subnets_by_account ON subnets(account_id);

CREATE UNIQUE INDEX subnets_one_default ON subnets(vpc_id, zone) WHERE default_for_az = 1;

CREATE UNIQUE INDEX subnets_vni ON subnets(vni);

CREATE TABLE vni_counter (
    id    BIGINT PRIMARY KEY CHECK (id = 1),
    last  BIGINT NOT NULL
);

CREATE TABLE security_groups (
    group_id     TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL REFERENCES accounts(account_id),
    vpc_id       TEXT NOT NULL REFERENCES vpcs(vpc_id),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    created_at   BIGINT NOT NULL,
    UNIQUE (vpc_id, name)
);

CREATE INDEX security_groups_by_account ON security_groups(account_id);

CREATE TABLE security_group_rules (
    rule_id              TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    group_id             TEXT NOT NULL REFERENCES security_groups(group_id) ON DELETE CASCADE,
    account_id           TEXT NOT NULL REFERENCES accounts(account_id),
    egress               BIGINT NOT NULL,
    protocol             TEXT NOT NULL,
    from_port            BIGINT,
    to_port              BIGINT,
    cidr                 TEXT,
    referenced_group_id  TEXT REFERENCES security_groups(group_id),
    description          TEXT,
    created_at           BIGINT NOT NULL,
    CHECK ((cidr IS NULL) <> (referenced_group_id IS NULL))
);

CREATE UNIQUE INDEX security_group_rules_flow ON security_group_rules(
    group_id, egress, protocol, COALESCE(from_port, -2), COALESCE(to_port, -2),
    COALESCE(cidr, ''), COALESCE(referenced_group_id, ''));

CREATE INDEX security_group_rules_by_account ON security_group_rules(account_id);

CREATE INDEX security_group_rules_by_peer ON security_group_rules(referenced_group_id)
    WHERE referenced_group_id IS NOT NULL;

CREATE TABLE instance_security_groups (
    instance_id  TEXT NOT NULL REFERENCES instances(instance_id) ON DELETE CASCADE,
    group_id     TEXT NOT NULL REFERENCES security_groups(group_id) ON DELETE CASCADE,
    position     BIGINT NOT NULL,
    PRIMARY KEY (instance_id, group_id)
);

CREATE INDEX instance_security_groups_by_group ON instance_security_groups(group_id);

CREATE TABLE firewall_generation (
    id          BIGINT PRIMARY KEY CHECK (id = 1),
    generation  BIGINT NOT NULL
);

CREATE TABLE instance_interfaces (
    interface_id  TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    instance_id   TEXT NOT NULL REFERENCES instances(instance_id) ON DELETE CASCADE
);

CREATE INDEX instance_interfaces_by_instance ON instance_interfaces(instance_id);

CREATE TABLE internet_gateways (
    internet_gateway_id  TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id           TEXT NOT NULL REFERENCES accounts(account_id),
    vpc_id               TEXT REFERENCES vpcs(vpc_id),
    created_at           BIGINT NOT NULL
);

CREATE INDEX internet_gateways_by_account ON internet_gateways(account_id);

CREATE UNIQUE INDEX internet_gateways_one_per_vpc ON internet_gateways(vpc_id)
    WHERE vpc_id IS NOT NULL;

CREATE TABLE route_tables (
    route_table_id  TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id      TEXT NOT NULL REFERENCES accounts(account_id),
    vpc_id          TEXT NOT NULL REFERENCES vpcs(vpc_id),
    created_at      BIGINT NOT NULL
);

CREATE INDEX route_tables_by_account ON route_tables(account_id);

CREATE INDEX route_tables_by_vpc ON route_tables(vpc_id);

CREATE TABLE routes (
    route_table_id  TEXT NOT NULL REFERENCES route_tables(route_table_id) ON DELETE CASCADE,
    destination     TEXT NOT NULL,
    target_kind     TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    origin          TEXT NOT NULL,
    position        BIGINT NOT NULL,
    PRIMARY KEY (route_table_id, destination)
);

CREATE TABLE route_table_associations (
    association_id  TEXT PRIMARY KEY NOT NULL,
    route_table_id  TEXT NOT NULL REFERENCES route_tables(route_table_id),
    vpc_id          TEXT NOT NULL REFERENCES vpcs(vpc_id),
    subnet_id       TEXT REFERENCES subnets(subnet_id) ON DELETE CASCADE,
    UNIQUE (subnet_id)
);

CREATE INDEX route_table_associations_by_table ON route_table_associations(route_table_id);

CREATE UNIQUE INDEX route_table_associations_one_main ON route_table_associations(vpc_id)
    WHERE subnet_id IS NULL;

CREATE TABLE nat_gateways (
    nat_gateway_id  TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id      TEXT NOT NULL REFERENCES accounts(account_id),
    vpc_id          TEXT NOT NULL,
    subnet_id       TEXT NOT NULL,
    allocation_id   TEXT NOT NULL,
    public_ip       TEXT NOT NULL,
    private_ip      TEXT NOT NULL,
    interface_id    TEXT NOT NULL,
    state           TEXT NOT NULL,
    client_token    TEXT,
    created_at      BIGINT NOT NULL,
    deleted_at      BIGINT
);

CREATE INDEX nat_gateways_by_account ON nat_gateways(account_id);

CREATE UNIQUE INDEX nat_gateways_live_allocation ON nat_gateways(allocation_id)
    WHERE state <> 'deleted';

CREATE TABLE addresses (
    allocation_id    TEXT PRIMARY KEY NOT NULL,
    account_id       TEXT NOT NULL REFERENCES accounts(account_id),
    public_ip        TEXT NOT NULL,
    -- The zone whose public range the address comes from (its network
    -- border group): it can only be used by instances of that zone.
    zone             TEXT NOT NULL,
    domain           TEXT NOT NULL,
    association_id   TEXT,
    -- No foreign key: an auto-assigned address is recorded just before the
    -- reservation that creates its instance.
    instance_id      TEXT,
    private_ip       TEXT,
    auto_assigned    BIGINT NOT NULL,
    -- The auto-assigned address this elastic IP displaced from its
    -- instance, given back (when still free) when it is disassociated.
    replaced_auto_ip TEXT,
    revision         BIGINT NOT NULL,
    created_at       BIGINT NOT NULL,
    ptr_record TEXT);

CREATE UNIQUE INDEX addresses_public_ip ON addresses(public_ip);

CREATE UNIQUE INDEX addresses_association ON addresses(association_id)
    WHERE association_id IS NOT NULL;

CREATE UNIQUE INDEX addresses_instance ON addresses(instance_id)
    WHERE instance_id IS NOT NULL;

CREATE INDEX addresses_by_account ON addresses(account_id);

CREATE TABLE volumes (
    volume_id       TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id      TEXT NOT NULL REFERENCES accounts(account_id),
    zone            TEXT NOT NULL,
    -- The node whose disk holds the volume's data.
    node_id         TEXT NOT NULL,
    size_gib        BIGINT NOT NULL,
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
    attach_time     BIGINT,
    generation      BIGINT NOT NULL,
    revision        BIGINT NOT NULL,
    details         TEXT NOT NULL,
    created_at      BIGINT NOT NULL,
    updated_at      BIGINT NOT NULL
);

CREATE INDEX volumes_by_account ON volumes(account_id);

CREATE UNIQUE INDEX volumes_attachment ON volumes(instance_id, device)
    WHERE instance_id IS NOT NULL;

CREATE TABLE snapshots (
    snapshot_id      TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id       TEXT NOT NULL REFERENCES accounts(account_id),
    -- The captured volume (no foreign key: a snapshot outlives its volume).
    volume_id        TEXT NOT NULL,
    volume_size_gib  BIGINT NOT NULL,
    -- Node that captures the volume's data; NULL for imported snapshots.
    node_id          TEXT,
    -- EC2 snapshot state: pending, completed, error.
    state            TEXT NOT NULL,
    -- What the controller drives the snapshot toward: completed, deleted.
    desired          TEXT NOT NULL,
    progress         BIGINT NOT NULL CHECK (progress BETWEEN 0 AND 100),
    segments         TEXT, -- JSON array of {blob_id, size}
    data_size        BIGINT,
    sha256           TEXT,
    disk_format      TEXT CHECK (disk_format IN ('raw', 'qcow2')),
    generation       BIGINT NOT NULL,
    revision         BIGINT NOT NULL,
    details          TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL
);

CREATE INDEX snapshots_by_account ON snapshots(account_id);

CREATE INDEX snapshots_by_volume ON snapshots(volume_id);

CREATE TABLE snapshot_permissions (
    snapshot_id  TEXT NOT NULL REFERENCES snapshots(snapshot_id) ON DELETE CASCADE,
    grantee      TEXT NOT NULL,
    PRIMARY KEY (snapshot_id, grantee)
);

CREATE INDEX snapshot_permissions_by_grantee ON snapshot_permissions(grantee, snapshot_id);

CREATE TABLE metal_groups (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL,
    wipe TEXT);

CREATE TABLE metal_distros (
    name        TEXT PRIMARY KEY,
    kernel      TEXT NOT NULL,
    initrd      TEXT NOT NULL,
    kernel_args TEXT NOT NULL DEFAULT '',
    created_at  BIGINT NOT NULL
);

CREATE TABLE metal_profiles (
    name       TEXT PRIMARY KEY,
    distro     TEXT REFERENCES metal_distros (name),
    spec       TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE TABLE metal_systems (
    name        TEXT PRIMARY KEY,
    mac         TEXT NOT NULL UNIQUE,
    ip          TEXT NOT NULL UNIQUE,
    hostname    TEXT NOT NULL,
    group_name  TEXT NOT NULL REFERENCES metal_groups (name),
    power       TEXT NOT NULL,
    disk        TEXT,
    owner       TEXT,
    profile     TEXT,
    netboot     BIGINT NOT NULL DEFAULT 0,
    state_name  TEXT NOT NULL,
    state       TEXT NOT NULL,
    token       TEXT UNIQUE,
    state_since BIGINT NOT NULL,
    deadline    BIGINT,
    last_event  TEXT,
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL,
    variables TEXT NOT NULL DEFAULT '{}', wipe TEXT);

CREATE INDEX metal_systems_by_group ON metal_systems (group_name, state_name, name);

CREATE INDEX metal_systems_by_owner ON metal_systems (owner);

CREATE TABLE node_enrolment_tokens (
    token_id       TEXT PRIMARY KEY NOT NULL,
    -- SHA-256 (hex) of the token's secret; the secret itself is not kept.
    secret_sha256  TEXT NOT NULL,
    -- The zone a node enrolling with it serves.
    zone           TEXT NOT NULL,
    created_at     BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    -- When a node enrolled with it, and which (then it is spent).
    used_at        BIGINT,
    used_by        TEXT
);

CREATE TABLE node_certificates (
    -- Serial number (hex): what revocation names.
    serial         TEXT PRIMARY KEY NOT NULL,
    node_id        TEXT NOT NULL,
    zone           TEXT NOT NULL,
    -- SHA-256 (hex) of the certificate.
    fingerprint    TEXT NOT NULL,
    issued_at      BIGINT NOT NULL,
    expires_at     BIGINT NOT NULL,
    -- The token it was issued for; NULL when the controller issued it to
    -- its own in-process node (`mallee up`).
    token_id       TEXT REFERENCES node_enrolment_tokens (token_id),
    -- Set when the node was removed: its handshakes fail from then on.
    revoked_at     BIGINT
);

CREATE INDEX node_certificates_by_node ON node_certificates (node_id);

INSERT INTO firewall_generation (id, generation) VALUES (1, 0);

INSERT INTO vni_counter (id, last) VALUES (1, 0);
