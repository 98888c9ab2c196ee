-- Elastic IP domain names, and instances' primary interfaces as resources.

-- The domain name (PTR record) an elastic IP's owner set with
-- ModifyAddressAttribute; NULL: the default reverse name.
ALTER TABLE addresses ADD COLUMN ptr_record TEXT;

-- Each instance's primary network interface (`eni-…`, kept in the
-- instance's launch details) is a `network-interface` resource, so it
-- can carry tags (RunInstances TagSpecification, CreateTags); it goes
-- with its instance.
CREATE TABLE instance_interfaces (
    interface_id  TEXT PRIMARY KEY NOT NULL REFERENCES resources(resource_id) ON DELETE CASCADE,
    instance_id   TEXT NOT NULL REFERENCES instances(instance_id) ON DELETE CASCADE
);
CREATE INDEX instance_interfaces_by_instance ON instance_interfaces(instance_id);
INSERT INTO resources (resource_id, account_id, resource_type, created_at)
    SELECT json_extract(details, '$.network_interface_id'), account_id, 'network-interface', created_at
    FROM instances
    WHERE COALESCE(json_extract(details, '$.network_interface_id'), '') <> '';
INSERT INTO instance_interfaces (interface_id, instance_id)
    SELECT json_extract(details, '$.network_interface_id'), instance_id
    FROM instances
    WHERE COALESCE(json_extract(details, '$.network_interface_id'), '') <> '';
