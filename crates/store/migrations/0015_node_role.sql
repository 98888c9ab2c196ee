-- What a host does for its zone: `compute` runs instances, `storage` holds
-- the zone's volumes and exports them over NBD to the compute nodes.
ALTER TABLE nodes ADD COLUMN role TEXT NOT NULL DEFAULT 'compute';
