-- VPCs, subnets and security groups (EC2-VPC). Every row is also a
-- resource (tags and ownership are generic); deleting the resource row
-- deletes the record.
CREATE TABLE vpcs (
    vpc_id       TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL REFERENCES accounts(account_id),
    cidr         TEXT NOT NULL,
    is_default   INTEGER NOT NULL,
    created_at   INTEGER NOT NULL
);
CREATE INDEX vpcs_by_account ON vpcs(account_id);
-- One default VPC per account, even when two first requests race.
CREATE UNIQUE INDEX vpcs_one_default ON vpcs(account_id) WHERE is_default = 1;

CREATE TABLE subnets (
    subnet_id                TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    vpc_id                   TEXT NOT NULL REFERENCES vpcs(vpc_id),
    account_id               TEXT NOT NULL REFERENCES accounts(account_id),
    zone                     TEXT NOT NULL,
    cidr                     TEXT NOT NULL,
    default_for_az           INTEGER NOT NULL,
    map_public_ip_on_launch  INTEGER NOT NULL,
    created_at               INTEGER NOT NULL,
    UNIQUE (vpc_id, cidr)
);
CREATE INDEX subnets_by_account ON subnets(account_id);
CREATE UNIQUE INDEX subnets_one_default ON subnets(vpc_id, zone) WHERE default_for_az = 1;

CREATE TABLE security_groups (
    group_id     TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id   TEXT NOT NULL REFERENCES accounts(account_id),
    vpc_id       TEXT NOT NULL REFERENCES vpcs(vpc_id),
    name         TEXT NOT NULL,
    description  TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    UNIQUE (vpc_id, name)
);
CREATE INDEX security_groups_by_account ON security_groups(account_id);

-- One row per protocol, port range and peer (a CIDR or a group), as AWS's
-- sgr- rules. Ports are NULL for protocols without ports.
CREATE TABLE security_group_rules (
    rule_id              TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    group_id             TEXT NOT NULL REFERENCES security_groups(group_id) ON DELETE CASCADE,
    account_id           TEXT NOT NULL REFERENCES accounts(account_id),
    egress               INTEGER NOT NULL,
    protocol             TEXT NOT NULL,
    from_port            INTEGER,
    to_port              INTEGER,
    cidr                 TEXT,
    referenced_group_id  TEXT REFERENCES security_groups(group_id),
    description          TEXT,
    created_at           INTEGER NOT NULL,
    CHECK ((cidr IS NULL) <> (referenced_group_id IS NULL))
);
CREATE UNIQUE INDEX security_group_rules_flow ON security_group_rules(
    group_id, egress, protocol, COALESCE(from_port, -2), COALESCE(to_port, -2),
    COALESCE(cidr, ''), COALESCE(referenced_group_id, ''));
CREATE INDEX security_group_rules_by_account ON security_group_rules(account_id);
CREATE INDEX security_group_rules_by_peer ON security_group_rules(referenced_group_id)
    WHERE referenced_group_id IS NOT NULL;

-- Which groups each instance is in (position keeps the order given at
-- launch). Memberships go with the instance and with the group.
CREATE TABLE instance_security_groups (
    instance_id  TEXT NOT NULL REFERENCES instances(instance_id) ON DELETE CASCADE,
    group_id     TEXT NOT NULL REFERENCES security_groups(group_id) ON DELETE CASCADE,
    position     INTEGER NOT NULL,
    PRIMARY KEY (instance_id, group_id)
);
CREATE INDEX instance_security_groups_by_group ON instance_security_groups(group_id);

-- Raised by every change to groups, rules and memberships.
CREATE TABLE firewall_generation (
    id          INTEGER PRIMARY KEY CHECK (id = 1),
    generation  INTEGER NOT NULL
);
INSERT INTO firewall_generation (id, generation) VALUES (1, 0);
