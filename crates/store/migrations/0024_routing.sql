-- Internet gateways, route tables (routes and associations) and NAT
-- gateways. Gateways and tables are resources (tags and ownership are
-- generic); deleting the resource row deletes the record.

-- An internet gateway, attached to at most one VPC (vpc_id NULL: detached)
-- and a VPC to at most one gateway.
CREATE TABLE internet_gateways (
    internet_gateway_id  TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id           TEXT NOT NULL REFERENCES accounts(account_id),
    vpc_id               TEXT REFERENCES vpcs(vpc_id),
    created_at           INTEGER NOT NULL
);
CREATE INDEX internet_gateways_by_account ON internet_gateways(account_id);
CREATE UNIQUE INDEX internet_gateways_one_per_vpc ON internet_gateways(vpc_id)
    WHERE vpc_id IS NOT NULL;

CREATE TABLE route_tables (
    route_table_id  TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id      TEXT NOT NULL REFERENCES accounts(account_id),
    vpc_id          TEXT NOT NULL REFERENCES vpcs(vpc_id),
    created_at      INTEGER NOT NULL
);
CREATE INDEX route_tables_by_account ON route_tables(account_id);
CREATE INDEX route_tables_by_vpc ON route_tables(vpc_id);

-- One route per destination of a table. target_kind: local, gateway,
-- nat-gateway, instance, network-interface; target_id is the VPC's CIDR
-- owner for local (the VPC id) and the target's id otherwise. origin:
-- CreateRouteTable (the local route, the default VPC's internet route) or
-- CreateRoute.
CREATE TABLE routes (
    route_table_id  TEXT NOT NULL REFERENCES route_tables(route_table_id) ON DELETE CASCADE,
    destination     TEXT NOT NULL,
    target_kind     TEXT NOT NULL,
    target_id       TEXT NOT NULL,
    origin          TEXT NOT NULL,
    position        INTEGER NOT NULL,
    PRIMARY KEY (route_table_id, destination)
);

-- Which table a subnet uses (subnet_id NULL: the VPC's main table). A
-- subnet has at most one association, a VPC exactly one main one (made
-- with its main table); a subnet's association goes with the subnet.
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

-- A NAT gateway (public connectivity: an elastic IP in a subnet). Deleted
-- ones stay listed (state 'deleted') as on AWS; no foreign key to the
-- subnet, which a deleted gateway must not keep alive.
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
    created_at      INTEGER NOT NULL,
    deleted_at      INTEGER
);
CREATE INDEX nat_gateways_by_account ON nat_gateways(account_id);
-- An elastic IP serves one live NAT gateway.
CREATE UNIQUE INDEX nat_gateways_live_allocation ON nat_gateways(allocation_id)
    WHERE state <> 'deleted';
