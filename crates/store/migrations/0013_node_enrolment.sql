-- Cluster membership: the one-time tokens nodes enrol with, the
-- certificates the cluster CA issued to nodes (revoked when a node is
-- removed), and what each node's agent says about itself.

CREATE TABLE node_enrolment_tokens (
    token_id       TEXT PRIMARY KEY NOT NULL,
    -- SHA-256 (hex) of the token's secret; the secret itself is not kept.
    secret_sha256  TEXT NOT NULL,
    -- The zone a node enrolling with it serves.
    zone           TEXT NOT NULL,
    created_at     INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    -- When a node enrolled with it, and which (then it is spent).
    used_at        INTEGER,
    used_by        TEXT
);

CREATE TABLE node_certificates (
    -- Serial number (hex): what revocation names.
    serial         TEXT PRIMARY KEY NOT NULL,
    node_id        TEXT NOT NULL,
    zone           TEXT NOT NULL,
    -- SHA-256 (hex) of the certificate.
    fingerprint    TEXT NOT NULL,
    issued_at      INTEGER NOT NULL,
    expires_at     INTEGER NOT NULL,
    -- The token it was issued for; NULL when the controller issued it to
    -- its own in-process node (`mallee up`).
    token_id       TEXT REFERENCES node_enrolment_tokens (token_id),
    -- Set when the node was removed: its handshakes fail from then on.
    revoked_at     INTEGER
);
CREATE INDEX node_certificates_by_node ON node_certificates (node_id);

-- The agent's release and the accelerator it uses, from its latest
-- registration (`updated_at` is its latest heartbeat).
ALTER TABLE nodes ADD COLUMN version TEXT NOT NULL DEFAULT '';
ALTER TABLE nodes ADD COLUMN accel TEXT NOT NULL DEFAULT '';
