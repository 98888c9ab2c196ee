//! Objects (`crate::objects`): row decoding and value conversions both
//! backends' object index operations use.

use super::StoreRow;

use crate::objects::{
    Bucket, MultipartUpload, ObjectEncryption, ObjectMetadata, ObjectRecord, Part, Tags, Versioning,
};
use crate::{StoreError, StoreResult};

pub(crate) fn to_i64(value: u64, what: &str) -> StoreResult<i64> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

pub(crate) fn to_u64(value: i64, what: &str) -> StoreResult<u64> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("negative {what} {value}")))
}

pub(crate) fn to_json<T: serde::Serialize>(value: &T) -> StoreResult<String> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

pub(crate) fn from_json<T: serde::de::DeserializeOwned>(text: &str, what: &str) -> StoreResult<T> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("{what}: {e}")))
}

/// The smallest string greater than every string that starts with `prefix`,
/// or `None` when no such bound exists (empty prefix, or only `char::MAX`).
/// UTF-8 byte order is code point order, so incrementing the last code point
/// (dropping trailing `char::MAX`) gives the exclusive upper bound.
pub(crate) fn prefix_upper_bound(prefix: &str) -> Option<String> {
    let mut chars: Vec<char> = prefix.chars().collect();
    while let Some(last) = chars.pop() {
        let next = match u32::from(last) {
            0xD7FF => Some('\u{E000}'),
            code => char::from_u32(code + 1),
        };
        if let Some(next) = next {
            chars.push(next);
            return Some(chars.into_iter().collect());
        }
    }
    None
}

pub(crate) fn bucket_from_row(row: &impl StoreRow) -> StoreResult<Bucket> {
    Ok(Bucket {
        name: row.try_get("name")?,
        account_id: row.try_get("account_id")?,
        region: row.try_get("region")?,
        acl_json: row.try_get("acl_json")?,
        created_at: row.try_get("created_at")?,
        policy: row.try_get("policy")?,
        tags: tags_from_row(row, "bucket tags")?,
        versioning: {
            let state: String = row.try_get("versioning")?;
            Versioning::parse(&state)
                .ok_or_else(|| StoreError::Corrupt(format!("bucket versioning {state:?}")))?
        },
        settings: {
            let settings: Option<String> = row.try_get("settings")?;
            match settings {
                Some(json) => from_json(&json, "bucket settings")?,
                None => Default::default(),
            }
        },
    })
}

pub(crate) fn object_from_row(row: &impl StoreRow) -> StoreResult<ObjectRecord> {
    let segments: String = row.try_get("segments")?;
    let metadata: String = row.try_get("metadata")?;
    Ok(ObjectRecord {
        bucket: row.try_get("bucket")?,
        key: row.try_get("key")?,
        segments: from_json(&segments, "object segments")?,
        size: to_u64(row.try_get("size")?, "object size")?,
        etag: row.try_get("etag")?,
        last_modified: row.try_get("last_modified")?,
        metadata: from_json::<ObjectMetadata>(&metadata, "object metadata")?,
        acl_json: row.try_get("acl_json")?,
        owner_account: row.try_get("owner_account")?,
        tags: tags_from_row(row, "object tags")?,
        version_id: row.try_get("version_id")?,
        delete_marker: row.try_get::<i64>("delete_marker")? != 0,
        encryption: encryption_from_row(row)?,
    })
}

pub(crate) fn encryption_from_row(row: &impl StoreRow) -> StoreResult<Option<ObjectEncryption>> {
    let json: Option<String> = row.try_get("encryption")?;
    json.map(|json| from_json(&json, "encryption")).transpose()
}

pub(crate) fn tags_from_row(row: &impl StoreRow, what: &str) -> StoreResult<Tags> {
    let tags: String = row.try_get("tags")?;
    from_json(&tags, what)
}

pub(crate) fn upload_from_row(row: &impl StoreRow) -> StoreResult<MultipartUpload> {
    let metadata: String = row.try_get("metadata")?;
    Ok(MultipartUpload {
        upload_id: row.try_get("upload_id")?,
        bucket: row.try_get("bucket")?,
        key: row.try_get("key")?,
        owner_account: row.try_get("owner_account")?,
        initiated: row.try_get("initiated")?,
        metadata: from_json(&metadata, "upload metadata")?,
        acl_json: row.try_get("acl_json")?,
        tags: tags_from_row(row, "upload tags")?,
        encryption: encryption_from_row(row)?,
    })
}

pub(crate) fn part_from_row(row: &impl StoreRow) -> StoreResult<Part> {
    let part_number: i64 = row.try_get("part_number")?;
    Ok(Part {
        upload_id: row.try_get("upload_id")?,
        part_number: u32::try_from(part_number)
            .map_err(|_| StoreError::Corrupt(format!("part number {part_number}")))?,
        blob_id: row.try_get("blob_id")?,
        size: to_u64(row.try_get("size")?, "part size")?,
        etag: row.try_get("etag")?,
        last_modified: row.try_get("last_modified")?,
    })
}

// SQL that reads the same in both dialects, named after the `Store`
// method (or helper) that runs it and, where that runs several statements,
// after what the statement does.

pub(crate) const CREATE_BUCKET: &str =
    "INSERT INTO buckets (name, account_id, region, acl_json, created_at, policy, tags, versioning)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";

pub(crate) const DELETE_BUCKET_SELECT_OBJECTS: &str =
    "SELECT EXISTS (SELECT 1 FROM objects WHERE bucket = $1)";

pub(crate) const DELETE_BUCKET_SELECT_MULTIPART_PARTS: &str =
    "SELECT p.blob_id FROM multipart_parts p
    JOIN multipart_uploads u ON u.upload_id = p.upload_id WHERE u.bucket = $1
    ORDER BY u.upload_id, p.part_number";

pub(crate) const DELETE_BUCKET_DELETE_MULTIPART_UPLOADS: &str =
    "DELETE FROM multipart_uploads WHERE bucket = $1";

pub(crate) const DELETE_BUCKET_DELETE_BUCKETS: &str = "DELETE FROM buckets WHERE name = $1";

pub(crate) const SET_BUCKET_ACL: &str = "UPDATE buckets SET acl_json = $1 WHERE name = $2";

pub(crate) const SET_BUCKET_POLICY: &str = "UPDATE buckets SET policy = $1 WHERE name = $2";

pub(crate) const SET_BUCKET_TAGS: &str = "UPDATE buckets SET tags = $1 WHERE name = $2";

pub(crate) const SET_BUCKET_SETTING_INSERT_BUCKET_SETTINGS: &str =
    "INSERT INTO bucket_settings (bucket, name, value) VALUES ($1, $2, $3)
    ON CONFLICT (bucket, name) DO UPDATE SET value = excluded.value";

pub(crate) const SET_BUCKET_SETTING_DELETE_BUCKET_SETTINGS: &str =
    "DELETE FROM bucket_settings WHERE bucket = $1 AND name = $2";

pub(crate) const SET_BUCKET_VERSIONING: &str = "UPDATE buckets SET versioning = $1 WHERE name = $2";

pub(crate) const CREATE_UPLOAD: &str =
    "INSERT INTO multipart_uploads (upload_id, bucket, key, owner_account, initiated, metadata, acl_json, tags, encryption)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(crate) const UPLOAD: &str = "SELECT * FROM multipart_uploads WHERE upload_id = $1";

pub(crate) const UPLOADS: &str =
    "SELECT * FROM multipart_uploads WHERE bucket = $1 ORDER BY key, initiated, upload_id";

pub(crate) const PARTS: &str =
    "SELECT * FROM multipart_parts WHERE upload_id = $1 ORDER BY part_number";

pub(crate) const OBJECT: &str =
    "SELECT * FROM objects WHERE bucket = $1 AND key = $2 AND is_latest = 1 AND delete_marker = 0";

pub(crate) const OBJECT_VERSION_BY_ID: &str =
    "SELECT * FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3";

pub(crate) const OBJECT_VERSION_LATEST: &str =
    "SELECT * FROM objects WHERE bucket = $1 AND key = $2 AND is_latest = 1";

pub(crate) const SET_OBJECT_ACL_OF_VERSION: &str = "UPDATE objects SET acl_json = $1 WHERE bucket = $2 AND key = $3 AND delete_marker = 0 AND version_id = $4";

pub(crate) const SET_OBJECT_ACL_OF_LATEST: &str = "UPDATE objects SET acl_json = $1 WHERE bucket = $2 AND key = $3 AND delete_marker = 0 AND is_latest = 1";

pub(crate) const SET_OBJECT_TAGS_OF_VERSION: &str = "UPDATE objects SET tags = $1 WHERE bucket = $2 AND key = $3 AND delete_marker = 0 AND version_id = $4";

pub(crate) const SET_OBJECT_TAGS_OF_LATEST: &str = "UPDATE objects SET tags = $1 WHERE bucket = $2 AND key = $3 AND delete_marker = 0 AND is_latest = 1";

pub(crate) const LIST_VERSIONS_SEQ_OF_MARKER: &str =
    "SELECT seq FROM objects WHERE bucket = $1 AND key = $2 AND version_id = $3";

pub(crate) const LIST_VERSIONS_OF_KEY_BEFORE_SEQ: &str =
    "SELECT * FROM objects WHERE bucket = $1 AND key = $2 AND seq < $3
    ORDER BY seq DESC LIMIT $4";

pub(crate) const LIST_VERSIONS_AFTER_KEY_IN_PREFIX: &str = "SELECT * FROM objects WHERE bucket = $1 AND key > $2 AND key < $3 ORDER BY key, seq DESC LIMIT $4";

pub(crate) const LIST_VERSIONS_AFTER_KEY: &str =
    "SELECT * FROM objects WHERE bucket = $1 AND key > $2 ORDER BY key, seq DESC LIMIT $3";

pub(crate) const LIST_VERSIONS_FROM_KEY_IN_PREFIX: &str = "SELECT * FROM objects WHERE bucket = $1 AND key >= $2 AND key < $3 ORDER BY key, seq DESC LIMIT $4";

pub(crate) const LIST_VERSIONS_FROM_KEY: &str =
    "SELECT * FROM objects WHERE bucket = $1 AND key >= $2 ORDER BY key, seq DESC LIMIT $3";

pub(crate) const LIST_OBJECTS_AFTER_KEY_IN_PREFIX: &str = "SELECT * FROM objects WHERE bucket = $1 AND key > $2 AND key < $3 AND is_latest = 1 AND delete_marker = 0 ORDER BY key LIMIT $4";

pub(crate) const LIST_OBJECTS_AFTER_KEY: &str = "SELECT * FROM objects WHERE bucket = $1 AND key > $2 AND is_latest = 1 AND delete_marker = 0 ORDER BY key LIMIT $3";

pub(crate) const LIST_OBJECTS_FROM_KEY_IN_PREFIX: &str = "SELECT * FROM objects WHERE bucket = $1 AND key >= $2 AND key < $3 AND is_latest = 1 AND delete_marker = 0 ORDER BY key LIMIT $4";

pub(crate) const LIST_OBJECTS_FROM_KEY: &str = "SELECT * FROM objects WHERE bucket = $1 AND key >= $2 AND is_latest = 1 AND delete_marker = 0 ORDER BY key LIMIT $3";

pub(crate) const ACCOUNT_USAGE: &str =
    "SELECT used_bytes FROM account_storage WHERE account_id = $1";

pub(crate) const SET_ACCOUNT_QUOTA: &str =
    "INSERT INTO account_storage (account_id, used_bytes, quota_bytes) VALUES ($1, 0, $2)
    ON CONFLICT (account_id) DO UPDATE SET quota_bytes = excluded.quota_bytes";

pub(crate) const ACCOUNT_QUOTA: &str =
    "SELECT quota_bytes FROM account_storage WHERE account_id = $1";

#[cfg(test)]
mod tests {
    use super::prefix_upper_bound;

    #[test]
    fn prefix_upper_bounds() {
        assert_eq!(prefix_upper_bound(""), None);
        assert_eq!(prefix_upper_bound("a").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("a/").as_deref(), Some("a0"));
        assert_eq!(prefix_upper_bound("a\u{7f}").as_deref(), Some("a\u{80}"));
        assert_eq!(
            prefix_upper_bound("a\u{D7FF}").as_deref(),
            Some("a\u{E000}")
        );
        assert_eq!(prefix_upper_bound("a\u{10FFFF}").as_deref(), Some("b"));
        assert_eq!(prefix_upper_bound("\u{10FFFF}"), None);
    }
}
