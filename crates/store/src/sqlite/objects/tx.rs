//! The steps of object-index writes, applied inside one [`Batch`]: a write
//! transaction that the committer ([`super::commit`]) fills with the
//! changes of many callers, or with one change alone.
//!
//! Every step reads and checks first and writes only once nothing can
//! refuse the change any more, so a step that is refused (bucket or upload
//! gone, quota exceeded) has written nothing and the batch goes on without
//! it: a [`Failure::Refused`]. An error of the database itself, or any error
//! once a step has started writing, is a [`Failure::Broken`]: the batch's
//! transaction is rolled back and its changes are applied again one by one.
//!
//! Storage use is read once per account and batch, changed in memory as
//! the batch's steps charge and credit it, and written back before the
//! commit; bucket owners are looked up once per batch (the batch holds the
//! write lock, so neither can change under it).

use std::collections::{HashMap, HashSet};

use sqlx::sqlite::SqliteRow;
use sqlx::{Row, Sqlite, SqlitePool, Transaction};

use super::rows::*;
use crate::objects::{Expiry, ObjectIndexError, ObjectRecord, Part, Segment};
use crate::{StoreError, StoreResult};

/// Why a step failed.
#[derive(Debug)]
pub(super) enum Failure {
    /// Refused before it wrote anything: only this change fails.
    Refused(StoreError),
    /// The database failed, or the step failed part-way: the whole
    /// transaction must be discarded.
    Broken(StoreError),
}

impl From<StoreError> for Failure {
    /// Errors of the database (which may have rolled the transaction back
    /// on its own) break the batch; every other error is a refusal.
    fn from(err: StoreError) -> Self {
        match err {
            StoreError::Database(_) | StoreError::Migration(_) => Self::Broken(err),
            other => Self::Refused(other),
        }
    }
}

impl From<sqlx::Error> for Failure {
    fn from(err: sqlx::Error) -> Self {
        Self::Broken(err.into())
    }
}

impl Failure {
    /// The failure as one that breaks the batch (for a step that has
    /// already written).
    fn into_broken(self) -> Self {
        match self {
            Self::Refused(err) | Self::Broken(err) => Self::Broken(err),
        }
    }
}

/// Marks an error of a step's write phase: it breaks the batch whatever it is.
fn broken(err: impl Into<StoreError>) -> Failure {
    Failure::Broken(err.into())
}

/// One change to the object index.
#[derive(Debug, Clone)]
pub(super) enum Change {
    /// `ObjectIndex::put_object`.
    Put(ObjectRecord),
    /// `ObjectIndex::delete_object`: the key's latest version.
    DeleteLatest {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
    },
    /// `ObjectIndex::delete_version`.
    DeleteVersion {
        /// The bucket.
        bucket: String,
        /// The key.
        key: String,
        /// The version.
        version_id: String,
    },
    /// `ObjectIndex::expire`.
    Expire {
        /// The version as the lifecycle pass saw it.
        found: ObjectRecord,
        /// What to do to it.
        expiry: Expiry,
    },
    /// `ObjectIndex::put_part`.
    PutPart(Part),
    /// `ObjectIndex::complete_upload`.
    Complete {
        /// The upload.
        upload_id: String,
        /// The object it becomes.
        object: ObjectRecord,
    },
    /// `ObjectIndex::abort_upload`.
    Abort(String),
}

/// What a change returns to its caller.
#[derive(Debug)]
pub(super) enum Outcome {
    /// Blob ids to delete (put, complete, abort).
    Blobs(Vec<String>),
    /// The deleted version and its blob ids, if there was one.
    Deleted(Option<Box<(ObjectRecord, Vec<String>)>>),
    /// Blob ids to delete, or `None` when the expiry did not apply.
    Expired(Option<Vec<String>>),
    /// The blob id of the part replaced.
    Part(Option<String>),
}

impl Outcome {
    /// An internal error: a change's outcome of the wrong kind.
    fn mismatch(self) -> StoreError {
        StoreError::Corrupt(format!("object index outcome of another change: {self:?}"))
    }

    /// The blob ids of a put, complete or abort.
    pub(super) fn blobs(self) -> StoreResult<Vec<String>> {
        match self {
            Self::Blobs(blobs) => Ok(blobs),
            other => Err(other.mismatch()),
        }
    }

    /// The version a delete removed.
    pub(super) fn deleted(self) -> StoreResult<Option<(ObjectRecord, Vec<String>)>> {
        match self {
            Self::Deleted(deleted) => Ok(deleted.map(|deleted| *deleted)),
            other => Err(other.mismatch()),
        }
    }

    /// The blob ids an expiry freed.
    pub(super) fn expired(self) -> StoreResult<Option<Vec<String>>> {
        match self {
            Self::Expired(expired) => Ok(expired),
            other => Err(other.mismatch()),
        }
    }

    /// The part a part replaced.
    pub(super) fn part(self) -> StoreResult<Option<String>> {
        match self {
            Self::Part(part) => Ok(part),
            other => Err(other.mismatch()),
        }
    }
}

/// An account's storage use as the batch has changed it.
#[derive(Debug)]
struct Usage {
    used: u64,
    quota: Option<u64>,
    changed: bool,
}

/// A write transaction and what its steps learnt about buckets and use.
#[derive(Debug)]
pub(super) struct Batch {
    tx: Transaction<'static, Sqlite>,
    owners: HashMap<String, Option<String>>,
    usage: HashMap<String, Usage>,
}

/// The rows a write of `bucket/key` version `version_id` touches: the
/// version it replaces, and the key's latest (the same row when the
/// latest is replaced; the query may return it twice).
const WRITE_TARGETS: &str = "SELECT seq, version_id, segments, size, is_latest FROM objects
     WHERE bucket = ?1 AND key = ?2 AND version_id = ?3
     UNION ALL SELECT seq, version_id, segments, size, is_latest FROM objects
     WHERE bucket = ?1 AND key = ?2 AND is_latest = 1";

/// Inserts (with `$verb`) a key's new latest version, numbered after
/// every version the key has.
macro_rules! insert_version {
    ($verb:literal) => {
        concat!(
            $verb,
            " INTO objects (bucket, key, seq, version_id, is_latest, delete_marker, segments,
                size, etag, last_modified, metadata, acl_json, owner_account, tags, encryption)
             VALUES (?1, ?2,
                (SELECT COALESCE(MAX(seq), 0) + 1 FROM objects WHERE bucket = ?1 AND key = ?2),
                ?3, 1, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
        )
    };
}

impl Batch {
    /// Starts a write transaction that takes the write lock up front, so
    /// concurrent writers queue on the busy timeout instead of failing on
    /// a read-to-write lock upgrade.
    pub(super) async fn begin(pool: &SqlitePool) -> StoreResult<Self> {
        Ok(Self {
            tx: pool.begin_with("BEGIN IMMEDIATE").await?,
            owners: HashMap::new(),
            usage: HashMap::new(),
        })
    }

    /// Writes back the storage use the steps changed, then commits.
    pub(super) async fn commit(mut self) -> StoreResult<()> {
        for (account_id, usage) in &self.usage {
            if !usage.changed {
                continue;
            }
            sqlx::query(
                "INSERT INTO account_storage (account_id, used_bytes) VALUES (?, ?)
                 ON CONFLICT (account_id) DO UPDATE SET used_bytes = excluded.used_bytes",
            )
            .bind(account_id)
            .bind(to_i64(usage.used, "used bytes")?)
            .execute(&mut *self.tx)
            .await?;
        }
        self.tx.commit().await?;
        Ok(())
    }

    /// Applies one change.
    pub(super) async fn apply(&mut self, change: &Change) -> Result<Outcome, Failure> {
        Ok(match change {
            Change::Put(object) => Outcome::Blobs(self.put_object(object).await?),
            Change::DeleteLatest { bucket, key } => {
                Outcome::Deleted(self.delete_latest(bucket, key).await?.map(Box::new))
            }
            Change::DeleteVersion {
                bucket,
                key,
                version_id,
            } => Outcome::Deleted(
                self.delete_version(bucket, key, version_id)
                    .await?
                    .map(Box::new),
            ),
            Change::Expire { found, expiry } => Outcome::Expired(self.expire(found, expiry).await?),
            Change::PutPart(part) => Outcome::Part(self.put_part(part).await?),
            Change::Complete { upload_id, object } => {
                Outcome::Blobs(self.complete_upload(upload_id, object).await?)
            }
            Change::Abort(upload_id) => Outcome::Blobs(self.abort_upload(upload_id).await?),
        })
    }

    /// The owner of a bucket, `None` when it does not exist.
    async fn owner(&mut self, bucket: &str) -> Result<Option<String>, Failure> {
        if let Some(owner) = self.owners.get(bucket) {
            return Ok(owner.clone());
        }
        let owner: Option<String> =
            sqlx::query_scalar("SELECT account_id FROM buckets WHERE name = ?")
                .bind(bucket)
                .fetch_optional(&mut *self.tx)
                .await?;
        self.owners.insert(bucket.to_owned(), owner.clone());
        Ok(owner)
    }

    /// An account's storage use; an account without a row uses nothing
    /// and has no quota.
    async fn usage(&mut self, account_id: &str) -> Result<&mut Usage, Failure> {
        if !self.usage.contains_key(account_id) {
            let row: Option<(i64, Option<i64>)> = sqlx::query_as(
                "SELECT used_bytes, quota_bytes FROM account_storage WHERE account_id = ?",
            )
            .bind(account_id)
            .fetch_optional(&mut *self.tx)
            .await?;
            let (used, quota) = match row {
                None => (0, None),
                Some((used, quota)) => (
                    to_u64(used, "used bytes")?,
                    quota.map(|q| to_u64(q, "quota")).transpose()?,
                ),
            };
            self.usage.insert(
                account_id.to_owned(),
                Usage {
                    used,
                    quota,
                    changed: false,
                },
            );
        }
        self.usage
            .get_mut(account_id)
            .ok_or_else(|| Failure::Broken(StoreError::Corrupt("usage cache".into())))
    }

    /// Writes `object` as its key's latest version: replaces the version
    /// with its id if one is kept, charges the bucket owner (every kept
    /// version counts), enforces its quota (before writing anything) and
    /// returns the blob ids of the replaced version that `object` does not
    /// use.
    async fn put_object(&mut self, object: &ObjectRecord) -> Result<Vec<String>, Failure> {
        let Some(owner) = self.owner(&object.bucket).await? else {
            return Err(Failure::Refused(StoreError::NotFound(
                object.bucket.clone(),
            )));
        };
        // Everything the INSERT binds is encoded before anything is written.
        let segments = to_json(&object.segments)?;
        let size = to_i64(object.size, "object size")?;
        let metadata = to_json(&object.metadata)?;
        let tags = to_json(&object.tags)?;
        let encryption = object.encryption.as_ref().map(to_json).transpose()?;
        let targets: Vec<(i64, String, String, i64, i64)> = sqlx::query_as(WRITE_TARGETS)
            .bind(&object.bucket)
            .bind(&object.key)
            .bind(&object.version_id)
            .fetch_all(&mut *self.tx)
            .await?;
        let replaced = targets.iter().find(|t| t.1 == object.version_id);
        let latest = targets.iter().find(|t| t.4 != 0);
        let (old_segments, old_size) = match replaced {
            Some((_, _, segments, size, _)) => (
                from_json::<Vec<Segment>>(segments, "object segments")?,
                to_u64(*size, "object size")?,
            ),
            None => (Vec::new(), 0),
        };
        let usage = self.usage(&owner).await?;
        let new_used = usage
            .used
            .saturating_sub(old_size)
            .checked_add(object.size)
            .ok_or_else(|| {
                StoreError::Corrupt(format!("object size {} out of range", object.size))
            })?;
        // Only growth is refused: a change that frees space (or keeps usage
        // level) goes through even when a lowered quota is already exceeded.
        if let Some(quota) = usage.quota
            && new_used > quota
            && new_used > usage.used
        {
            return Err(Failure::Refused(
                ObjectIndexError::QuotaExceeded { quota }.into(),
            ));
        }
        let replaced_seq = replaced.map(|t| t.0);
        let sql = match (replaced_seq, latest.map(|t| t.0)) {
            // The new version takes the place of the latest: REPLACE
            // removes exactly that row, which holds both the version id and
            // the latest flag the new row takes.
            (Some(replaced), Some(latest)) if replaced == latest => {
                insert_version!("INSERT OR REPLACE")
            }
            (replaced, latest) => {
                if let Some(seq) = replaced {
                    sqlx::query("DELETE FROM objects WHERE bucket = ? AND key = ? AND seq = ?")
                        .bind(&object.bucket)
                        .bind(&object.key)
                        .bind(seq)
                        .execute(&mut *self.tx)
                        .await
                        .map_err(broken)?;
                }
                if let Some(seq) = latest {
                    sqlx::query(
                        "UPDATE objects SET is_latest = 0 WHERE bucket = ? AND key = ? AND seq = ?",
                    )
                    .bind(&object.bucket)
                    .bind(&object.key)
                    .bind(seq)
                    .execute(&mut *self.tx)
                    .await
                    .map_err(broken)?;
                }
                insert_version!("INSERT")
            }
        };
        sqlx::query(sql)
            .bind(&object.bucket)
            .bind(&object.key)
            .bind(&object.version_id)
            .bind(i64::from(object.delete_marker))
            .bind(segments)
            .bind(size)
            .bind(&object.etag)
            .bind(object.last_modified)
            .bind(metadata)
            .bind(&object.acl_json)
            .bind(&object.owner_account)
            .bind(tags)
            .bind(encryption)
            .execute(&mut *self.tx)
            .await
            .map_err(broken)?;
        if let Some(usage) = self.usage.get_mut(&owner) {
            usage.used = new_used;
            usage.changed = true;
        }
        let kept: HashSet<&str> = object.segments.iter().map(|s| s.blob_id.as_str()).collect();
        let mut freed = Vec::new();
        for segment in old_segments {
            if !kept.contains(segment.blob_id.as_str()) && !freed.contains(&segment.blob_id) {
                freed.push(segment.blob_id);
            }
        }
        Ok(freed)
    }

    /// Deletes the latest version of `bucket/key`, if any.
    async fn delete_latest(
        &mut self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<(ObjectRecord, Vec<String>)>, Failure> {
        let row = sqlx::query(
            "SELECT o.*, b.account_id AS bucket_owner FROM objects o
             JOIN buckets b ON b.name = o.bucket
             WHERE o.bucket = ? AND o.key = ? AND o.is_latest = 1",
        )
        .bind(bucket)
        .bind(key)
        .fetch_optional(&mut *self.tx)
        .await?;
        match row {
            Some(row) => self.delete_row(&row).await.map(Some),
            None => Ok(None),
        }
    }

    /// Deletes the version `version_id` of `bucket/key` (`None` when
    /// absent), making the next newest the latest when it was, and
    /// crediting the bucket owner; returns it and its blob ids.
    async fn delete_version(
        &mut self,
        bucket: &str,
        key: &str,
        version_id: &str,
    ) -> Result<Option<(ObjectRecord, Vec<String>)>, Failure> {
        let row = sqlx::query(
            "SELECT o.*, b.account_id AS bucket_owner FROM objects o
             JOIN buckets b ON b.name = o.bucket
             WHERE o.bucket = ? AND o.key = ? AND o.version_id = ?",
        )
        .bind(bucket)
        .bind(key)
        .bind(version_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        match row {
            Some(row) => self.delete_row(&row).await.map(Some),
            None => Ok(None),
        }
    }

    /// Deletes the version `row` (with its bucket's owner as
    /// `bucket_owner`) read in this batch.
    async fn delete_row(
        &mut self,
        row: &SqliteRow,
    ) -> Result<(ObjectRecord, Vec<String>), Failure> {
        let object = object_from_row(row)?;
        let owner: String = row.try_get("bucket_owner")?;
        let seq: i64 = row.try_get("seq")?;
        let was_latest = row.try_get::<i64, _>("is_latest")? != 0;
        let usage = self.usage(&owner).await?;
        usage.used = usage.used.saturating_sub(object.size);
        usage.changed = true;
        sqlx::query("DELETE FROM objects WHERE bucket = ? AND key = ? AND seq = ?")
            .bind(&object.bucket)
            .bind(&object.key)
            .bind(seq)
            .execute(&mut *self.tx)
            .await
            .map_err(broken)?;
        if was_latest {
            sqlx::query(
                "UPDATE objects SET is_latest = 1 WHERE bucket = ?1 AND key = ?2
                 AND seq = (SELECT MAX(seq) FROM objects WHERE bucket = ?1 AND key = ?2)",
            )
            .bind(&object.bucket)
            .bind(&object.key)
            .execute(&mut *self.tx)
            .await
            .map_err(broken)?;
        }
        let mut blobs: Vec<String> = Vec::with_capacity(object.segments.len());
        for segment in &object.segments {
            if !blobs.contains(&segment.blob_id) {
                blobs.push(segment.blob_id.clone());
            }
        }
        Ok((object, blobs))
    }

    /// Carries out a lifecycle expiry if `found` is unchanged and where the
    /// expiry expects it; `None` when it is not.
    async fn expire(
        &mut self,
        found: &ObjectRecord,
        expiry: &Expiry,
    ) -> Result<Option<Vec<String>>, Failure> {
        let row = sqlx::query(
            "SELECT is_latest, delete_marker, last_modified, etag,
                (SELECT count(*) FROM objects WHERE bucket = ?1 AND key = ?2) AS versions
             FROM objects WHERE bucket = ?1 AND key = ?2 AND version_id = ?3",
        )
        .bind(&found.bucket)
        .bind(&found.key)
        .bind(&found.version_id)
        .fetch_optional(&mut *self.tx)
        .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let latest = row.try_get::<i64, _>("is_latest")? != 0;
        let marker = row.try_get::<i64, _>("delete_marker")? != 0;
        let unchanged = row.try_get::<i64, _>("last_modified")? == found.last_modified
            && row.try_get::<String, _>("etag")? == found.etag
            && marker == found.delete_marker;
        let in_place = match expiry {
            Expiry::DeleteCurrent | Expiry::Marker(_) => latest,
            Expiry::DeleteNoncurrent => !latest,
            Expiry::DeleteLoneMarker => marker && row.try_get::<i64, _>("versions")? == 1,
        };
        if !unchanged || !in_place {
            return Ok(None);
        }
        let blobs = match expiry {
            Expiry::Marker(marker) => self.put_object(marker).await?,
            _ => self
                .delete_version(&found.bucket, &found.key, &found.version_id)
                .await?
                .map(|(_, blobs)| blobs)
                .unwrap_or_default(),
        };
        Ok(Some(blobs))
    }

    /// `NotFound` unless the upload exists.
    async fn require_upload(&mut self, upload_id: &str) -> Result<(), Failure> {
        let found: Option<i64> = sqlx::query_scalar(UPLOAD_EXISTS)
            .bind(upload_id)
            .fetch_optional(&mut *self.tx)
            .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(Failure::Refused(StoreError::NotFound(upload_id.to_owned()))),
        }
    }

    /// Stores a part, returning the blob id of the part it replaced.
    async fn put_part(&mut self, part: &Part) -> Result<Option<String>, Failure> {
        self.require_upload(&part.upload_id).await?;
        let size = to_i64(part.size, "part size")?;
        let old: Option<String> = sqlx::query_scalar(
            "SELECT blob_id FROM multipart_parts WHERE upload_id = ? AND part_number = ?",
        )
        .bind(&part.upload_id)
        .bind(i64::from(part.part_number))
        .fetch_optional(&mut *self.tx)
        .await?;
        sqlx::query(
            "INSERT INTO multipart_parts (upload_id, part_number, blob_id, size, etag, last_modified)
             VALUES (?, ?, ?, ?, ?, ?)
             ON CONFLICT (upload_id, part_number) DO UPDATE SET blob_id = excluded.blob_id,
                size = excluded.size, etag = excluded.etag, last_modified = excluded.last_modified",
        )
        .bind(&part.upload_id)
        .bind(i64::from(part.part_number))
        .bind(&part.blob_id)
        .bind(size)
        .bind(&part.etag)
        .bind(part.last_modified)
        .execute(&mut *self.tx)
        .await
        .map_err(broken)?;
        Ok(old.filter(|old| *old != part.blob_id))
    }

    /// Turns an upload into `object`; returns the blob ids to delete.
    async fn complete_upload(
        &mut self,
        upload_id: &str,
        object: &ObjectRecord,
    ) -> Result<Vec<String>, Failure> {
        self.require_upload(upload_id).await?;
        let mut freed = self.put_object(object).await?;
        let used: HashSet<&str> = object.segments.iter().map(|s| s.blob_id.as_str()).collect();
        // The object is written: whatever fails now breaks the batch.
        let parts = self
            .remove_upload(upload_id)
            .await
            .map_err(Failure::into_broken)?;
        for blob in parts {
            if !used.contains(blob.as_str()) && !freed.contains(&blob) {
                freed.push(blob);
            }
        }
        Ok(freed)
    }

    /// Removes an upload and its parts, returning their blob ids.
    async fn abort_upload(&mut self, upload_id: &str) -> Result<Vec<String>, Failure> {
        self.require_upload(upload_id).await?;
        self.remove_upload(upload_id).await
    }

    /// Removes an upload (which must exist) and its parts, returning the
    /// parts' blob ids ordered by part number.
    async fn remove_upload(&mut self, upload_id: &str) -> Result<Vec<String>, Failure> {
        let blobs: Vec<String> = sqlx::query_scalar(
            "SELECT blob_id FROM multipart_parts WHERE upload_id = ? ORDER BY part_number",
        )
        .bind(upload_id)
        .fetch_all(&mut *self.tx)
        .await?;
        sqlx::query("DELETE FROM multipart_parts WHERE upload_id = ?")
            .bind(upload_id)
            .execute(&mut *self.tx)
            .await
            .map_err(broken)?;
        sqlx::query("DELETE FROM multipart_uploads WHERE upload_id = ?")
            .bind(upload_id)
            .execute(&mut *self.tx)
            .await
            .map_err(broken)?;
        Ok(blobs)
    }
}
