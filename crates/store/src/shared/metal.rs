//! Bare-metal systems (`crate::metal`): what both backends share.

use super::{Binder, StoreRow};
use crate::StoreResult;
use crate::metal::{MetalProfile, MetalSystemRecord};

/// The administrator's columns of `metal_systems`, in [`bind_admin`]'s order.
macro_rules! admin_columns {
    () => {
        "mac, ip, hostname, group_name, power, disk, variables, wipe"
    };
}

/// The ownership and state columns, in [`bind_state`]'s order.
macro_rules! state_columns {
    () => {
        "owner, profile, netboot, state_name, state, token, state_since, deadline, last_event"
    };
}

/// Every column: the name and times, then the administrator's, then the
/// state's.
macro_rules! system_columns {
    () => {
        concat!(
            "name, created_at, updated_at, ",
            admin_columns!(),
            ", ",
            state_columns!()
        )
    };
}

/// A new system: name and times, then [`bind_admin`], then [`bind_state`].
pub(crate) const INSERT_SYSTEM: &str = concat!(
    "INSERT INTO metal_systems (",
    system_columns!(),
    ") VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)"
);
/// `updated_at`, then [`bind_admin`], then the name.
pub(crate) const UPDATE_ADMIN: &str = concat!(
    "UPDATE metal_systems SET updated_at = $1, (",
    admin_columns!(),
    ") = ($2, $3, $4, $5, $6, $7, $8, $9) WHERE name = $10"
);
/// `updated_at`, then [`bind_state`], then the name.
pub(crate) const UPDATE_STATE: &str = concat!(
    "UPDATE metal_systems SET updated_at = $1, (",
    state_columns!(),
    ") = ($2, $3, $4, $5, $6, $7, $8, $9, $10) WHERE name = $11"
);
pub(crate) const SYSTEM_BY_NAME: &str = concat!(
    "SELECT ",
    system_columns!(),
    " FROM metal_systems WHERE name = $1"
);
pub(crate) const SYSTEMS: &str = concat!(
    "SELECT ",
    system_columns!(),
    " FROM metal_systems ORDER BY name"
);

/// Binds a system's values of `admin_columns!`.
pub(crate) fn bind_admin<Q: Binder>(query: Q, s: &MetalSystemRecord) -> Q {
    query
        .arg(&s.mac)
        .arg(&s.ip)
        .arg(&s.hostname)
        .arg(&s.group_name)
        .arg(&s.power)
        .arg(&s.disk)
        .arg(&s.variables)
        .arg(&s.wipe)
}

/// Binds a system's values of `state_columns!`.
pub(crate) fn bind_state<Q: Binder>(query: Q, s: &MetalSystemRecord) -> Q {
    query
        .arg(&s.owner)
        .arg(&s.profile)
        .arg(i64::from(s.netboot))
        .arg(&s.state_name)
        .arg(&s.state)
        .arg(&s.token)
        .arg(s.state_since)
        .arg(s.deadline)
        .arg(&s.last_event)
}

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
// after what the statement does.

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

pub(crate) const RESERVE_METAL_SYSTEMS_FREE_IN_GROUP: &str = "SELECT name FROM metal_systems
    WHERE group_name = $1 AND state_name = 'free' AND owner IS NULL ORDER BY name";

pub(crate) const RESERVE_METAL_SYSTEMS_STATE_OF_SYSTEM: &str =
    "SELECT state_name, owner FROM metal_systems WHERE name = $1";

pub(crate) const RESERVE_METAL_SYSTEMS_UPDATE_METAL_SYSTEMS: &str =
    "UPDATE metal_systems SET owner = $1, state_name = $2, state = $3, state_since = $4,
    deadline = NULL, updated_at = $5 WHERE name = $6";
