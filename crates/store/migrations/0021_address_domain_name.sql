-- The domain name (PTR record) an elastic IP's owner set with
-- ModifyAddressAttribute; NULL: the default reverse name.
ALTER TABLE addresses ADD COLUMN ptr_record TEXT;
