-- S3 tags: a JSON object of key to value, '{}' for none. Each set lives in
-- the row of what it tags (a bucket, an object, or an upload whose object
-- gets it on completion), so it is replaced with the object and deleted
-- with the object, upload or bucket.
ALTER TABLE buckets ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
ALTER TABLE objects ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
ALTER TABLE multipart_uploads ADD COLUMN tags TEXT NOT NULL DEFAULT '{}';
