-- S3 bucket sub-resources that are one document each (CORS rules, the
-- public access block, ownership controls, lifecycle rules): the document
-- as the object store encodes it (JSON), by setting name. Each lives and
-- dies with its bucket.
CREATE TABLE bucket_settings (
    bucket  TEXT NOT NULL REFERENCES buckets(name) ON DELETE CASCADE,
    name    TEXT NOT NULL,
    value   TEXT NOT NULL,
    PRIMARY KEY (bucket, name)
);
