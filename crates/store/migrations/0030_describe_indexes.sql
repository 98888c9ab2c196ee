-- Describe actions answered by the database (issue 18): filters and pages
-- go into SQL instead of reading every row of an account.
--
-- Five instance filters read fields of the launch details, a JSON document
-- the compute layer owns; they become virtual generated columns so they
-- can be indexed. The paths are `InstanceField::detail_path` in
-- src/instances.rs (mallee-cloud tests that its records put them there).
-- A record whose details are not JSON has none of them, rather than
-- failing every query; subnet and VPC are '' when the details lack them,
-- as the compute layer reads such records.
ALTER TABLE instances ADD COLUMN instance_type TEXT GENERATED ALWAYS AS
    (CASE WHEN json_valid(details) THEN json_extract(details, '$.spec.instance_type') END) VIRTUAL;
ALTER TABLE instances ADD COLUMN image_id TEXT GENERATED ALWAYS AS
    (CASE WHEN json_valid(details) THEN json_extract(details, '$.spec.metadata.ami_id') END) VIRTUAL;
ALTER TABLE instances ADD COLUMN key_name TEXT GENERATED ALWAYS AS
    (CASE WHEN json_valid(details) THEN json_extract(details, '$.key_name') END) VIRTUAL;
ALTER TABLE instances ADD COLUMN subnet_id TEXT GENERATED ALWAYS AS
    (CASE WHEN json_valid(details) THEN COALESCE(json_extract(details, '$.subnet_id'), '') END) VIRTUAL;
ALTER TABLE instances ADD COLUMN vpc_id TEXT GENERATED ALWAYS AS
    (CASE WHEN json_valid(details) THEN COALESCE(json_extract(details, '$.vpc_id'), '') END) VIRTUAL;

-- Pages of an account's instances in id order (the keyset of NextToken),
-- and the common filters within an account.
CREATE INDEX instances_by_account_id ON instances(account_id, instance_id);
CREATE INDEX instances_by_account_state ON instances(account_id, state);
CREATE INDEX instances_by_account_vpc ON instances(account_id, vpc_id);
CREATE INDEX instances_by_account_subnet ON instances(account_id, subnet_id);
CREATE INDEX instances_by_account_type ON instances(account_id, instance_type);
CREATE INDEX instances_by_account_image ON instances(account_id, image_id);
CREATE INDEX instances_by_account_key ON instances(account_id, key_name);

-- `tag:Key=Value` filters find the tagged resources from the tag, and
-- DescribeTags' `key` filter finds its tags without a scan.
CREATE INDEX tags_by_key_value ON tags(tag_key, tag_value);

-- An account's resources in id order: DescribeTags pages (resource id,
-- key) without sorting every tag of the account first. UNIQUE (resource
-- ids are) so that SQLite knows each resource's tags follow in key order.
CREATE UNIQUE INDEX resources_by_account_id ON resources(account_id, resource_id);
