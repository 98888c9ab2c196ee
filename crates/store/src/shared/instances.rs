//! Instances (`crate::instances`): what both backends share.

use super::StoreRow;
use crate::StoreResult;
use crate::instances::{InstanceRecord, Reservation};

pub(crate) fn instance_from_row(row: &impl StoreRow) -> StoreResult<InstanceRecord> {
    Ok(InstanceRecord {
        instance_id: row.try_get("instance_id")?,
        reservation_id: row.try_get("reservation_id")?,
        account_id: row.try_get("account_id")?,
        launch_index: row.try_get("launch_index")?,
        node_id: row.try_get("node_id")?,
        zone: row.try_get("zone")?,
        network_id: row.try_get("network_id")?,
        private_ip: row.try_get("private_ip")?,
        mac: row.try_get("mac")?,
        state: row.try_get("state")?,
        desired: row.try_get("desired")?,
        generation: row.try_get("generation")?,
        revision: row.try_get("revision")?,
        details: row.try_get("details")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        terminated_at: row.try_get("terminated_at")?,
    })
}

pub(crate) fn reservation_from_row(row: &impl StoreRow) -> StoreResult<Reservation> {
    Ok(Reservation {
        reservation_id: row.try_get("reservation_id")?,
        account_id: row.try_get("account_id")?,
        client_token: row.try_get("client_token")?,
        request_hash: row.try_get("request_hash")?,
        created_at: row.try_get("created_at")?,
    })
}
