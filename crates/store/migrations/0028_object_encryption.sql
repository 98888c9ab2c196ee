-- S3 encryption at rest: how a version's data (or an upload's parts) is
-- encrypted, as JSON ({"algorithm", "wrapped_key" | "customer_key_digest"});
-- NULL for data stored in the clear. The data key itself is only ever
-- stored wrapped under the cloud's master key, which lives outside the
-- database and the object files.
ALTER TABLE objects ADD COLUMN encryption TEXT;
ALTER TABLE multipart_uploads ADD COLUMN encryption TEXT;
