-- Custom VPCs: DHCP options sets and which one each VPC uses, and a
-- primary interface id for every instance launched before instances got
-- one (migration 0021 made resources of the ids instances already had).

-- One DHCP options set; `configurations` is JSON: [[key, [value, ...]], ...]
-- in the order given. Deleting its resource row deletes it.
CREATE TABLE dhcp_options (
    dhcp_options_id  TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    account_id       TEXT NOT NULL REFERENCES accounts(account_id),
    configurations   TEXT NOT NULL,
    created_at       INTEGER NOT NULL
);
CREATE INDEX dhcp_options_by_account ON dhcp_options(account_id);

-- The set a VPC uses; NULL: AWS's `default` (no options set).
ALTER TABLE vpcs ADD COLUMN dhcp_options_id TEXT REFERENCES dhcp_options(dhcp_options_id);
CREATE INDEX vpcs_by_dhcp_options ON vpcs(dhcp_options_id) WHERE dhcp_options_id IS NOT NULL;

-- Instances in a VPC (bare-metal ones have none) without an interface id
-- get one, `eni-` + 17 hex digits as every id, kept in their details and
-- made a `network-interface` resource as 0021 did.
UPDATE instances
   SET details = json_set(details, '$.network_interface_id',
                          'eni-' || lower(substr(hex(randomblob(9)), 1, 17)))
 WHERE COALESCE(json_extract(details, '$.vpc_id'), '') <> ''
   AND COALESCE(json_extract(details, '$.network_interface_id'), '') = '';
INSERT INTO resources (resource_id, account_id, resource_type, created_at)
    SELECT json_extract(details, '$.network_interface_id'), account_id, 'network-interface', created_at
    FROM instances
    WHERE COALESCE(json_extract(details, '$.network_interface_id'), '') <> ''
      AND json_extract(details, '$.network_interface_id') NOT IN (SELECT resource_id FROM resources);
INSERT INTO instance_interfaces (interface_id, instance_id)
    SELECT json_extract(details, '$.network_interface_id'), instance_id
    FROM instances
    WHERE COALESCE(json_extract(details, '$.network_interface_id'), '') <> ''
      AND json_extract(details, '$.network_interface_id') NOT IN (SELECT interface_id FROM instance_interfaces);
