//! Volumes (`crate::volumes`): the row decoder, SQL and parameter order
//! both backends use.

use super::{Binder, StoreRow};
use crate::StoreResult;
use crate::volumes::VolumeRecord;

pub(crate) const INSERT: &str =
    "INSERT INTO volumes (volume_id, account_id, zone, node_id, size_gib, state, desired,
       instance_id, device, attach_state, attach_time, generation, revision, details,
       created_at, updated_at)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)";
pub(crate) const BY_ID: &str = "SELECT * FROM volumes WHERE volume_id = $1";
pub(crate) const OF_ACCOUNT: &str =
    "SELECT * FROM volumes WHERE account_id = $1 ORDER BY volume_id";
pub(crate) const ALL: &str = "SELECT * FROM volumes ORDER BY volume_id";
pub(crate) const OF_INSTANCE: &str =
    "SELECT * FROM volumes WHERE instance_id = $1 ORDER BY device, volume_id";
/// Changes a volume whose revision is still the one read ([`bind_update`]).
pub(crate) const UPDATE: &str =
    "UPDATE volumes SET node_id = $1, size_gib = $2, state = $3, desired = $4,
       instance_id = $5, device = $6, attach_state = $7, attach_time = $8, generation = $9,
       revision = revision + 1, details = $10, updated_at = $11
     WHERE volume_id = $12 AND revision = $13";
pub(crate) const DELETE: &str = "DELETE FROM volumes WHERE volume_id = $1 AND revision = $2";

pub(crate) fn volume_from_row(row: &impl StoreRow) -> StoreResult<VolumeRecord> {
    Ok(VolumeRecord {
        volume_id: row.try_get("volume_id")?,
        account_id: row.try_get("account_id")?,
        zone: row.try_get("zone")?,
        node_id: row.try_get("node_id")?,
        size_gib: row.try_get("size_gib")?,
        state: row.try_get("state")?,
        desired: row.try_get("desired")?,
        instance_id: row.try_get("instance_id")?,
        device: row.try_get("device")?,
        attach_state: row.try_get("attach_state")?,
        attach_time: row.try_get("attach_time")?,
        generation: row.try_get("generation")?,
        revision: row.try_get("revision")?,
        details: row.try_get("details")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
    })
}

/// What a conflicting attachment is called in the error.
pub(crate) fn attachment_of(record: &VolumeRecord) -> String {
    format!(
        "device {} of {}",
        record.device.as_deref().unwrap_or(""),
        record.instance_id.as_deref().unwrap_or("")
    )
}

/// Binds [`INSERT`]'s parameters.
pub(crate) fn bind_insert<Q: Binder>(query: Q, volume: &VolumeRecord) -> Q {
    query
        .arg(&volume.volume_id)
        .arg(&volume.account_id)
        .arg(&volume.zone)
        .arg(&volume.node_id)
        .arg(volume.size_gib)
        .arg(&volume.state)
        .arg(&volume.desired)
        .arg(&volume.instance_id)
        .arg(&volume.device)
        .arg(&volume.attach_state)
        .arg(volume.attach_time)
        .arg(volume.generation)
        .arg(volume.revision)
        .arg(&volume.details)
        .arg(volume.created_at)
        .arg(volume.updated_at)
}

/// Binds [`UPDATE`]'s parameters.
pub(crate) fn bind_update<Q: Binder>(query: Q, record: &VolumeRecord) -> Q {
    query
        .arg(&record.node_id)
        .arg(record.size_gib)
        .arg(&record.state)
        .arg(&record.desired)
        .arg(&record.instance_id)
        .arg(&record.device)
        .arg(&record.attach_state)
        .arg(record.attach_time)
        .arg(record.generation)
        .arg(&record.details)
        .arg(record.updated_at)
        .arg(&record.volume_id)
        .arg(record.revision)
}
