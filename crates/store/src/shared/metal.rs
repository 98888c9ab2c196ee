//! Bare-metal systems (`crate::metal`): what both backends share.

use super::StoreRow;
use crate::StoreResult;
use crate::metal::{MetalProfile, MetalSystemRecord};

pub(crate) fn system_from_row(row: &impl StoreRow) -> StoreResult<MetalSystemRecord> {
    Ok(MetalSystemRecord {
        name: row.try_get("name")?,
        mac: row.try_get("mac")?,
        ip: row.try_get("ip")?,
        hostname: row.try_get("hostname")?,
        group_name: row.try_get("group_name")?,
        power: row.try_get("power")?,
        disk: row.try_get("disk")?,
        owner: row.try_get("owner")?,
        profile: row.try_get("profile")?,
        netboot: row.try_get::<i64>("netboot")? != 0,
        state_name: row.try_get("state_name")?,
        state: row.try_get("state")?,
        token: row.try_get("token")?,
        state_since: row.try_get("state_since")?,
        deadline: row.try_get("deadline")?,
        last_event: row.try_get("last_event")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        variables: row.try_get("variables")?,
        wipe: row.try_get("wipe")?,
    })
}

pub(crate) fn profile_from_row(r: &impl StoreRow) -> StoreResult<MetalProfile> {
    Ok(MetalProfile {
        name: r.try_get("name")?,
        distro: r.try_get("distro")?,
        spec: r.try_get("spec")?,
        created_at: r.try_get("created_at")?,
    })
}
