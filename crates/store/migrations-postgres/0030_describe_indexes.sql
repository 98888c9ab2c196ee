-- Describe actions answered by the database (issue 18): the same named
-- indexes as SQLite's 0030. SQLite indexes five fields of the launch
-- details through generated columns (which its column list does not
-- show); here they are expression indexes on the same JSON paths
-- (`InstanceField::detail_path`), so the schemas keep the same columns.
CREATE INDEX instances_by_account_id ON instances(account_id, instance_id);
CREATE INDEX instances_by_account_state ON instances(account_id, state);
CREATE INDEX instances_by_account_vpc ON instances(account_id, COALESCE((details::jsonb) ->> 'vpc_id', ''));
CREATE INDEX instances_by_account_subnet ON instances(account_id, COALESCE((details::jsonb) ->> 'subnet_id', ''));
CREATE INDEX instances_by_account_type ON instances(account_id, ((details::jsonb) #>> '{spec,instance_type}'));
CREATE INDEX instances_by_account_image ON instances(account_id, ((details::jsonb) #>> '{spec,metadata,ami_id}'));
CREATE INDEX instances_by_account_key ON instances(account_id, ((details::jsonb) ->> 'key_name'));

CREATE INDEX tags_by_key_value ON tags(tag_key, tag_value);

CREATE UNIQUE INDEX resources_by_account_id ON resources(account_id, resource_id);
