-- Public IPv4 addresses: elastic IPs (allocated by an account, listed and
-- taggable) and public IPs auto-assigned to instances at launch (neither
-- listed nor taggable; they go back to the pool with their instance).
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
    auto_assigned    INTEGER NOT NULL,
    -- The auto-assigned address this elastic IP displaced from its
    -- instance, given back (when still free) when it is disassociated.
    replaced_auto_ip TEXT,
    revision         INTEGER NOT NULL,
    created_at       INTEGER NOT NULL
);
-- Two allocations never hold the same address, however they race.
CREATE UNIQUE INDEX addresses_public_ip ON addresses(public_ip);
CREATE UNIQUE INDEX addresses_association ON addresses(association_id)
    WHERE association_id IS NOT NULL;
-- An instance has at most one public address (on its primary interface).
CREATE UNIQUE INDEX addresses_instance ON addresses(instance_id)
    WHERE instance_id IS NOT NULL;
CREATE INDEX addresses_by_account ON addresses(account_id);
