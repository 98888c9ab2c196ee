-- Reservations and instances (RunInstances). An instance row is the
-- controller's desired state for it plus the last state it observed; the
-- launch details the store does not query are one JSON document.
CREATE TABLE reservations (
    reservation_id  TEXT PRIMARY KEY NOT NULL,
    account_id      TEXT NOT NULL REFERENCES accounts(account_id),
    client_token    TEXT,
    request_hash    TEXT NOT NULL,
    created_at      INTEGER NOT NULL
);
-- ClientToken idempotency: one reservation per token and account.
CREATE UNIQUE INDEX reservations_by_token ON reservations(account_id, client_token)
    WHERE client_token IS NOT NULL;

CREATE TABLE instances (
    instance_id     TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    reservation_id  TEXT NOT NULL REFERENCES reservations(reservation_id),
    account_id      TEXT NOT NULL REFERENCES accounts(account_id),
    launch_index    INTEGER NOT NULL,
    node_id         TEXT NOT NULL,
    zone            TEXT NOT NULL,
    network_id      TEXT NOT NULL,
    private_ip      TEXT NOT NULL,
    mac             TEXT NOT NULL,
    state           TEXT NOT NULL,
    desired         TEXT NOT NULL,
    generation      INTEGER NOT NULL,
    revision        INTEGER NOT NULL,
    details         TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    terminated_at   INTEGER
);
CREATE INDEX instances_by_account ON instances(account_id);
CREATE INDEX instances_by_reservation ON instances(reservation_id);
-- A private address belongs to at most one live instance of a network; a
-- terminated instance gives its address back.
CREATE UNIQUE INDEX instances_private_ip ON instances(network_id, private_ip)
    WHERE terminated_at IS NULL;
CREATE UNIQUE INDEX instances_mac ON instances(mac) WHERE terminated_at IS NULL;
