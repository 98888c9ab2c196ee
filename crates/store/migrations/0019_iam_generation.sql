-- Bumped in the same transaction as every change to an account's IAM
-- users, groups, roles, policies and memberships, and read with each
-- access key: a controller may keep a caller's parsed policies for as
-- long as the account's generation stays the same, whichever process
-- (controller or `mallee admin`) made the change.
ALTER TABLE accounts ADD COLUMN iam_generation INTEGER NOT NULL DEFAULT 0;
