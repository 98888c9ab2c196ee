//! The bare-metal zone's inventory: groups, distros, profiles and systems
//! with their ownership and provisioning state, kept by [`MetalIndex`].
//!
//! The store treats power settings, profile specs and states as opaque
//! JSON (`mallee-metal` owns their meaning) plus a `state_name` it can
//! query: a system is free when its `state_name` is `free` and it has no
//! owner. It guarantees unique names, MACs, addresses and tokens, and that
//! a reservation takes all the systems it asked for or none.

use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::{StoreResult, UnixMillis};

/// A group of systems (a resource pool).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetalGroup {
    /// Unique name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Disk wipe policy of its systems that have none of their own
    /// (`None`: not set). [`MetalIndex::put_metal_group`] keeps a stored
    /// policy when this is `None`.
    #[serde(default)]
    pub wipe: Option<String>,
}

/// A kernel + initrd pair installers boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetalDistro {
    /// Unique name.
    pub name: String,
    /// Kernel location (path or object).
    pub kernel: String,
    /// Initrd location.
    pub initrd: String,
    /// Kernel arguments.
    pub kernel_args: String,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// What to install.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetalProfile {
    /// Unique name.
    pub name: String,
    /// The distro it boots, if it is an installer profile.
    pub distro: Option<String>,
    /// The profile (JSON owned by `mallee-metal`).
    pub spec: String,
    /// Creation time.
    pub created_at: UnixMillis,
}

/// One machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetalSystemRecord {
    /// Unique name.
    pub name: String,
    /// Provisioning MAC (unique).
    pub mac: String,
    /// Provisioning address (unique).
    pub ip: String,
    /// Host name.
    pub hostname: String,
    /// Group.
    pub group_name: String,
    /// Power settings (JSON).
    pub power: String,
    /// Target disk.
    pub disk: Option<String>,
    /// Owner (`None`: free).
    pub owner: Option<String>,
    /// Current profile.
    pub profile: Option<String>,
    /// Netboot flag.
    pub netboot: bool,
    /// State name (`free`, `reserved`, …).
    pub state_name: String,
    /// Full state (JSON).
    pub state: String,
    /// Provisioning token (unique).
    pub token: Option<String>,
    /// When the state last changed.
    pub state_since: UnixMillis,
    /// When the current step times out.
    pub deadline: Option<UnixMillis>,
    /// Last event heard.
    pub last_event: Option<String>,
    /// Creation time.
    pub created_at: UnixMillis,
    /// Last change.
    pub updated_at: UnixMillis,
    /// The administrator's per-system template variables (a JSON object).
    pub variables: String,
    /// The administrator's disk wipe policy (`None`: the group's).
    #[serde(default)]
    pub wipe: Option<String>,
}

/// Which free systems a reservation takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetalSelection {
    /// `count` free systems of a group, in name order.
    Group {
        /// The group.
        group: String,
        /// How many.
        count: usize,
    },
    /// These systems; each must be free.
    Names(Vec<String>),
}

/// The outcome of [`MetalIndex::reserve_metal_systems`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetalReservation {
    /// All of them were reserved (as they are now).
    Reserved(Vec<MetalSystemRecord>),
    /// The group has fewer free systems than asked for; nothing reserved.
    NotEnoughFree {
        /// How many are free.
        free: usize,
    },
    /// A named system is not free; nothing reserved.
    NotFree {
        /// The system.
        name: String,
        /// Its state name.
        state_name: String,
    },
    /// No such group or system.
    Unknown(String),
}

/// Bare-metal inventory persistence.
#[async_trait]
pub trait MetalIndex: Send + Sync {
    /// Adds or replaces a group.
    async fn put_metal_group(&self, group: &MetalGroup) -> StoreResult<()>;
    /// Every group, by name.
    async fn metal_groups(&self) -> StoreResult<Vec<MetalGroup>>;
    /// Removes a group; `Conflict` while systems are in it. `false` if absent.
    async fn delete_metal_group(&self, name: &str) -> StoreResult<bool>;

    /// Adds or replaces a distro.
    async fn put_metal_distro(&self, distro: &MetalDistro) -> StoreResult<()>;
    /// Every distro, by name.
    async fn metal_distros(&self) -> StoreResult<Vec<MetalDistro>>;
    /// Removes a distro; `Conflict` while profiles use it. `false` if absent.
    async fn delete_metal_distro(&self, name: &str) -> StoreResult<bool>;

    /// Adds or replaces a profile; `NotFound` if its distro does not exist.
    async fn put_metal_profile(&self, profile: &MetalProfile) -> StoreResult<()>;
    /// Every profile, by name.
    async fn metal_profiles(&self) -> StoreResult<Vec<MetalProfile>>;
    /// One profile.
    async fn metal_profile(&self, name: &str) -> StoreResult<Option<MetalProfile>>;
    /// Removes a profile. `false` if absent.
    async fn delete_metal_profile(&self, name: &str) -> StoreResult<bool>;

    /// Adds a system. `Conflict` naming the clash when its name, MAC, IP
    /// or token is taken; `NotFound` when its group does not exist.
    async fn create_metal_system(&self, system: &MetalSystemRecord) -> StoreResult<()>;
    /// Changes a system's administrative fields (MAC, IP, hostname, group,
    /// power, disk, variables); ownership and state are left alone. `false` if absent.
    async fn update_metal_system_admin(&self, system: &MetalSystemRecord) -> StoreResult<bool>;
    /// Stores a system's ownership and state fields (owner, profile,
    /// netboot, state_name, state, token, state_since, deadline,
    /// last_event). `false` if absent.
    async fn save_metal_state(&self, system: &MetalSystemRecord) -> StoreResult<bool>;
    /// One system.
    async fn metal_system(&self, name: &str) -> StoreResult<Option<MetalSystemRecord>>;
    /// Every system, by name.
    async fn metal_systems(&self) -> StoreResult<Vec<MetalSystemRecord>>;
    /// Removes a free system; `Conflict` if it is owned. `false` if absent.
    async fn delete_metal_system(&self, name: &str) -> StoreResult<bool>;
    /// Reserves the selected free systems for `owner` in one transaction,
    /// setting `state_name`/`state` to the given reserved state and
    /// `state_since` to `now`: all of them, or none.
    async fn reserve_metal_systems(
        &self,
        selection: &MetalSelection,
        owner: &str,
        reserved_state_name: &str,
        reserved_state: &str,
        now: UnixMillis,
    ) -> StoreResult<MetalReservation>;
}
