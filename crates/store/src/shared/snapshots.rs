//! Snapshots (`crate::snapshots`): the row decoder, SQL and parameter
//! order both backends use.

use super::{Binder, StoreRow};
use crate::snapshots::{SnapshotData, SnapshotRecord};
use crate::{Segment, StoreError, StoreResult};

/// Takes [`bind_insert`]'s parameters.
pub(crate) const INSERT: &str =
    "INSERT INTO snapshots (snapshot_id, account_id, volume_id, volume_size_gib, node_id,
       state, desired, progress, segments, data_size, sha256, disk_format, generation,
       revision, details, created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17)";
pub(crate) const BY_ID: &str = "SELECT * FROM snapshots WHERE snapshot_id = $1";
pub(crate) const BY_REVISION: &str =
    "SELECT * FROM snapshots WHERE snapshot_id = $1 AND revision = $2";
pub(crate) const OF_ACCOUNT: &str =
    "SELECT * FROM snapshots WHERE account_id = $1 ORDER BY snapshot_id";
pub(crate) const ALL: &str = "SELECT * FROM snapshots ORDER BY snapshot_id";
/// Other accounts' snapshots shared with `$1` (or with all).
pub(crate) const SHARED_WITH: &str =
    "SELECT * FROM snapshots s WHERE s.account_id <> $1 AND EXISTS (
       SELECT 1 FROM snapshot_permissions p
       WHERE p.snapshot_id = s.snapshot_id AND p.grantee IN ($1, 'all'))
     ORDER BY s.snapshot_id";
/// Changes a snapshot whose revision is still the one read
/// ([`bind_update`]).
pub(crate) const UPDATE: &str =
    "UPDATE snapshots SET node_id = $1, state = $2, desired = $3, progress = $4,
       segments = $5, data_size = $6, sha256 = $7, disk_format = $8, generation = $9,
       revision = revision + 1, details = $10, updated_at = $11
     WHERE snapshot_id = $12 AND revision = $13";
pub(crate) const DELETE: &str = "DELETE FROM snapshots WHERE snapshot_id = $1";
pub(crate) const PERMISSIONS: &str =
    "SELECT grantee FROM snapshot_permissions WHERE snapshot_id = $1 ORDER BY grantee";
pub(crate) const GRANT: &str = "INSERT INTO snapshot_permissions (snapshot_id, grantee)
     VALUES ($1, $2) ON CONFLICT (snapshot_id, grantee) DO NOTHING";
pub(crate) const REVOKE: &str =
    "DELETE FROM snapshot_permissions WHERE snapshot_id = $1 AND grantee = $2";
pub(crate) const RESET_PERMISSIONS: &str =
    "DELETE FROM snapshot_permissions WHERE snapshot_id = $1";

pub(crate) fn snapshot_from_row(row: &impl StoreRow) -> StoreResult<SnapshotRecord> {
    let segments: Option<String> = row.try_get("segments")?;
    let data = match segments {
        None => None,
        Some(json) => {
            let segments: Vec<Segment> = serde_json::from_str(&json)
                .map_err(|e| StoreError::Corrupt(format!("snapshot segments: {e}")))?;
            let size: i64 = row.try_get("data_size")?;
            let sha256: Option<String> = row.try_get("sha256")?;
            let format: Option<String> = row.try_get("disk_format")?;
            Some(SnapshotData {
                segments,
                size: u64::try_from(size)
                    .map_err(|_| StoreError::Corrupt(format!("snapshot size {size}")))?,
                sha256: sha256
                    .ok_or_else(|| StoreError::Corrupt("snapshot without sha256".into()))?,
                format: format
                    .ok_or_else(|| StoreError::Corrupt("snapshot without format".into()))?,
            })
        }
    };
    Ok(SnapshotRecord {
        snapshot_id: row.try_get("snapshot_id")?,
        account_id: row.try_get("account_id")?,
        volume_id: row.try_get("volume_id")?,
        volume_size_gib: row.try_get("volume_size_gib")?,
        node_id: row.try_get("node_id")?,
        state: row.try_get("state")?,
        desired: row.try_get("desired")?,
        progress: row.try_get("progress")?,
        data,
        generation: row.try_get("generation")?,
        revision: row.try_get("revision")?,
        details: row.try_get("details")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// The data columns of a record: segments JSON, size, sha256, format.
type DataColumns = (Option<String>, Option<i64>, Option<String>, Option<String>);

fn data_columns(record: &SnapshotRecord) -> StoreResult<DataColumns> {
    let Some(data) = &record.data else {
        return Ok((None, None, None, None));
    };
    let segments = serde_json::to_string(&data.segments)
        .map_err(|e| StoreError::Corrupt(format!("snapshot segments: {e}")))?;
    let size = i64::try_from(data.size)
        .map_err(|_| StoreError::Corrupt(format!("snapshot size {}", data.size)))?;
    Ok((
        Some(segments),
        Some(size),
        Some(data.sha256.clone()),
        Some(data.format.clone()),
    ))
}

/// Binds [`INSERT`]'s parameters (fails on data that cannot be stored).
pub(crate) fn bind_insert<Q: Binder>(query: Q, snapshot: &SnapshotRecord) -> StoreResult<Q> {
    let (segments, size, sha256, format) = data_columns(snapshot)?;
    Ok(query
        .arg(&snapshot.snapshot_id)
        .arg(&snapshot.account_id)
        .arg(&snapshot.volume_id)
        .arg(snapshot.volume_size_gib)
        .arg(&snapshot.node_id)
        .arg(&snapshot.state)
        .arg(&snapshot.desired)
        .arg(snapshot.progress)
        .arg(segments)
        .arg(size)
        .arg(sha256)
        .arg(format)
        .arg(snapshot.generation)
        .arg(snapshot.revision)
        .arg(&snapshot.details)
        .arg(snapshot.created_at)
        .arg(snapshot.updated_at))
}

/// Binds [`UPDATE`]'s parameters (fails on data that cannot be stored).
pub(crate) fn bind_update<Q: Binder>(query: Q, record: &SnapshotRecord) -> StoreResult<Q> {
    let (segments, size, sha256, format) = data_columns(record)?;
    Ok(query
        .arg(&record.node_id)
        .arg(&record.state)
        .arg(&record.desired)
        .arg(record.progress)
        .arg(segments)
        .arg(size)
        .arg(sha256)
        .arg(format)
        .arg(record.generation)
        .arg(&record.details)
        .arg(record.updated_at)
        .arg(&record.snapshot_id)
        .arg(record.revision))
}
