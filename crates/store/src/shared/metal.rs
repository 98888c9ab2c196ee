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

// SQL that reads the same in both dialects, named after the `Store`
// method (or helper) that runs it and, where that runs several statements,
// after the statement's verb and table.

pub(crate) const PUT_METAL_GROUP: &str =
    "INSERT INTO metal_groups (name, description, created_at, wipe) VALUES ($1, $2, $3, $4)
    ON CONFLICT (name) DO UPDATE SET description = excluded.description,
      wipe = COALESCE(excluded.wipe, metal_groups.wipe)";

pub(crate) const METAL_GROUPS: &str =
    "SELECT name, description, created_at, wipe FROM metal_groups ORDER BY name";

pub(crate) const DELETE_METAL_GROUP_SELECT_METAL_SYSTEMS: &str =
    "SELECT COUNT(*) FROM metal_systems WHERE group_name = $1";

pub(crate) const DELETE_METAL_GROUP_DELETE_METAL_GROUPS: &str =
    "DELETE FROM metal_groups WHERE name = $1";

pub(crate) const PUT_METAL_DISTRO: &str =
    "INSERT INTO metal_distros (name, kernel, initrd, kernel_args, created_at)
    VALUES ($1, $2, $3, $4, $5)
    ON CONFLICT (name) DO UPDATE SET kernel = excluded.kernel,
      initrd = excluded.initrd, kernel_args = excluded.kernel_args";

pub(crate) const METAL_DISTROS: &str =
    "SELECT name, kernel, initrd, kernel_args, created_at FROM metal_distros ORDER BY name";

pub(crate) const DELETE_METAL_DISTRO: &str = "DELETE FROM metal_distros WHERE name = $1";

pub(crate) const PUT_METAL_PROFILE: &str =
    "INSERT INTO metal_profiles (name, distro, spec, created_at) VALUES ($1, $2, $3, $4)
    ON CONFLICT (name) DO UPDATE SET distro = excluded.distro, spec = excluded.spec";

pub(crate) const METAL_PROFILES: &str =
    "SELECT name, distro, spec, created_at FROM metal_profiles ORDER BY name";

pub(crate) const METAL_PROFILE: &str =
    "SELECT name, distro, spec, created_at FROM metal_profiles WHERE name = $1";

pub(crate) const DELETE_METAL_PROFILE: &str = "DELETE FROM metal_profiles WHERE name = $1";

pub(crate) const DELETE_METAL_SYSTEM_SELECT_METAL_SYSTEMS: &str =
    "SELECT owner FROM metal_systems WHERE name = $1";

pub(crate) const DELETE_METAL_SYSTEM_DELETE_METAL_SYSTEMS: &str =
    "DELETE FROM metal_systems WHERE name = $1";

pub(crate) const RESERVE_METAL_SYSTEMS_SELECT_METAL_GROUPS: &str =
    "SELECT name FROM metal_groups WHERE name = $1";

pub(crate) const RESERVE_METAL_SYSTEMS_SELECT_METAL_SYSTEMS: &str = "SELECT name FROM metal_systems
    WHERE group_name = $1 AND state_name = 'free' AND owner IS NULL ORDER BY name";

pub(crate) const RESERVE_METAL_SYSTEMS_SELECT_METAL_SYSTEMS_2: &str =
    "SELECT state_name, owner FROM metal_systems WHERE name = $1";

pub(crate) const RESERVE_METAL_SYSTEMS_UPDATE_METAL_SYSTEMS: &str =
    "UPDATE metal_systems SET owner = $1, state_name = $2, state = $3, state_since = $4,
    deadline = NULL, updated_at = $5 WHERE name = $6";
