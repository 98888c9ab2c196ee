-- Bare-metal zone (Metaleuca): groups (resource pools), distros (kernel +
-- initrd pairs), profiles (what to install), systems (machines) with their
-- ownership and provisioning state. Power settings, profile specs and
-- provisioning states are JSON owned by mallee-metal.
CREATE TABLE metal_groups (
    name        TEXT PRIMARY KEY,
    description TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

CREATE TABLE metal_distros (
    name        TEXT PRIMARY KEY,
    kernel      TEXT NOT NULL,
    initrd      TEXT NOT NULL,
    kernel_args TEXT NOT NULL DEFAULT '',
    created_at  INTEGER NOT NULL
);

CREATE TABLE metal_profiles (
    name       TEXT PRIMARY KEY,
    distro     TEXT REFERENCES metal_distros (name),
    spec       TEXT NOT NULL,
    created_at INTEGER NOT NULL
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
    netboot     INTEGER NOT NULL DEFAULT 0,
    state_name  TEXT NOT NULL,
    state       TEXT NOT NULL,
    token       TEXT UNIQUE,
    state_since INTEGER NOT NULL,
    deadline    INTEGER,
    last_event  TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);

CREATE INDEX metal_systems_by_group ON metal_systems (group_name, state_name, name);
CREATE INDEX metal_systems_by_owner ON metal_systems (owner);
