-- S3 bucket policies: the document exactly as PutBucketPolicy received it
-- (GetBucketPolicy returns it unchanged), NULL when the bucket has none.
-- It lives in the bucket's row, so deleting the bucket deletes it.
ALTER TABLE buckets ADD COLUMN policy TEXT;
