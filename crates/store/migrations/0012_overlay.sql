-- The VXLAN overlay across nodes. Every subnet is a segment with its own
-- VNI, taken from a counter that only goes up, so no two subnets (of any
-- VPC, even after one is deleted) ever share one. Subnets stored before
-- this migration are numbered in the order they were stored.
ALTER TABLE subnets ADD COLUMN vni INTEGER;
UPDATE subnets SET vni = (SELECT COUNT(*) FROM subnets AS s WHERE s.rowid <= subnets.rowid);
CREATE UNIQUE INDEX subnets_vni ON subnets(vni);
CREATE TABLE vni_counter (
    id    INTEGER PRIMARY KEY CHECK (id = 1),
    last  INTEGER NOT NULL
);
INSERT INTO vni_counter (id, last) VALUES (1, (SELECT COUNT(*) FROM subnets));

-- Each node's address on the network between nodes (NULL: it takes no
-- part in the overlay).
ALTER TABLE nodes ADD COLUMN underlay_ip TEXT;
