-- Launch templates (EC2) and their numbered versions. A version's launch
-- data is JSON owned by the compute layer. Version numbers only grow:
-- `latest_version` is the highest ever given, even once deleted.
CREATE TABLE launch_templates (
    template_id     TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id      TEXT NOT NULL,
    name            TEXT NOT NULL,
    default_version INTEGER NOT NULL,
    latest_version  INTEGER NOT NULL,
    created_at      INTEGER NOT NULL,
    created_by      TEXT NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE launch_template_versions (
    template_id  TEXT NOT NULL REFERENCES launch_templates(template_id) ON DELETE CASCADE,
    version      INTEGER NOT NULL,
    description  TEXT,
    data         TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    created_by   TEXT NOT NULL,
    PRIMARY KEY (template_id, version)
);
