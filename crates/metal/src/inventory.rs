//! Where the engine keeps systems and profiles: the [`Inventory`] trait
//! (the controller implements it over its store) and [`MemoryInventory`]
//! for labs and tests.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Mutex, PoisonError};

use async_trait::async_trait;

use crate::model::{Distro, Profile, State, System, Wipe};

/// Errors from an inventory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InventoryError {
    /// Fewer free systems than asked for; nothing was reserved.
    #[error("only {free} free system(s) in group {group}, {wanted} requested: nothing reserved")]
    NotEnoughFree {
        /// The group.
        group: String,
        /// How many were asked for.
        wanted: usize,
        /// How many are free.
        free: usize,
    },
    /// A named system is not free; nothing was reserved.
    #[error("system {name} is not free (it is {state}): nothing reserved")]
    NotFree {
        /// The system.
        name: String,
        /// Its state.
        state: String,
    },
    /// No such system, profile or group.
    #[error("no {what} named {name}")]
    NotFound {
        /// What was looked for.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// Already exists.
    #[error("a {what} named {name} already exists")]
    Exists {
        /// What.
        what: &'static str,
        /// Its name.
        name: String,
    },
    /// The backend failed.
    #[error("inventory: {0}")]
    Backend(String),
}

/// Which systems to reserve.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// `count` free systems of `group` (in name order).
    Group {
        /// The group.
        group: String,
        /// How many.
        count: usize,
    },
    /// These systems, all of which must be free.
    Names(Vec<String>),
}

/// Storage of systems and profiles.
#[async_trait]
pub trait Inventory: Send + Sync + fmt::Debug {
    /// Every system, in name order.
    async fn systems(&self) -> Result<Vec<System>, InventoryError>;
    /// One system.
    async fn system(&self, name: &str) -> Result<Option<System>, InventoryError>;
    /// Stores a system's ownership and provisioning fields (owner, profile,
    /// netboot, state, token, state_since, deadline, last_event); the
    /// administrator's fields (MAC, IP, power, group, …) are left as stored.
    async fn save_state(&self, system: &System) -> Result<(), InventoryError>;
    /// One profile.
    async fn profile(&self, name: &str) -> Result<Option<Profile>, InventoryError>;
    /// One distro (what installer profiles boot). Inventories that keep
    /// no distros have none: their installer profiles cannot boot.
    async fn distro(&self, name: &str) -> Result<Option<Distro>, InventoryError> {
        let _ = name;
        Ok(None)
    }
    /// The disk wipe policy of group `group` (what its systems without a
    /// policy of their own get). Inventories that keep none: `None`.
    async fn group_wipe(&self, group: &str) -> Result<Option<Wipe>, InventoryError> {
        let _ = group;
        Ok(None)
    }
    /// Reserves the selected free systems for `owner` in one transaction:
    /// all of them, or none (then the error says why). They become
    /// [`State::Reserved`] with `state_since = now`.
    async fn reserve(
        &self,
        selection: &Selection,
        owner: &str,
        now: i64,
    ) -> Result<Vec<System>, InventoryError>;
}

/// An inventory in memory.
#[derive(Debug, Default)]
pub struct MemoryInventory {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    systems: BTreeMap<String, System>,
    profiles: BTreeMap<String, Profile>,
    distros: BTreeMap<String, Distro>,
    group_wipes: BTreeMap<String, Wipe>,
}

impl MemoryInventory {
    /// An empty inventory.
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Adds a system (name, MAC and IP must be unique).
    pub fn add_system(&self, system: System) -> Result<(), InventoryError> {
        let mut i = self.lock();
        if let Some(other) = i
            .systems
            .values()
            .find(|s| s.name == system.name || s.mac == system.mac || s.ip == system.ip)
        {
            return Err(InventoryError::Exists {
                what: "system (same name, MAC or IP)",
                name: other.name.clone(),
            });
        }
        i.systems.insert(system.name.clone(), system);
        Ok(())
    }

    /// Adds or replaces a profile.
    pub fn put_profile(&self, profile: Profile) {
        self.lock().profiles.insert(profile.name.clone(), profile);
    }

    /// Adds or replaces a distro.
    pub fn put_distro(&self, distro: Distro) {
        self.lock().distros.insert(distro.name.clone(), distro);
    }

    /// Sets (or with `None` clears) a group's disk wipe policy.
    pub fn set_group_wipe(&self, group: &str, wipe: Option<Wipe>) {
        let mut i = self.lock();
        match wipe {
            Some(w) => i.group_wipes.insert(group.to_owned(), w),
            None => i.group_wipes.remove(group),
        };
    }
}

/// Picks the systems a selection names from `systems` (all in name order),
/// or says why it cannot. Shared by inventory backends.
pub fn select<'a>(
    systems: &'a [System],
    selection: &Selection,
) -> Result<Vec<&'a System>, InventoryError> {
    match selection {
        Selection::Group { group, count } => {
            if !systems.iter().any(|s| &s.group == group) {
                return Err(InventoryError::NotFound {
                    what: "group",
                    name: group.clone(),
                });
            }
            let free: Vec<&System> = systems
                .iter()
                .filter(|s| &s.group == group && s.state == State::Free && s.owner.is_none())
                .collect();
            if free.len() < *count || *count == 0 {
                return Err(InventoryError::NotEnoughFree {
                    group: group.clone(),
                    wanted: *count,
                    free: free.len(),
                });
            }
            Ok(free.into_iter().take(*count).collect())
        }
        Selection::Names(names) => names
            .iter()
            .map(|n| {
                let s = systems.iter().find(|s| &s.name == n).ok_or_else(|| {
                    InventoryError::NotFound {
                        what: "system",
                        name: n.clone(),
                    }
                })?;
                if s.state != State::Free || s.owner.is_some() {
                    return Err(InventoryError::NotFree {
                        name: n.clone(),
                        state: s.state.name().to_owned(),
                    });
                }
                Ok(s)
            })
            .collect(),
    }
}

#[async_trait]
impl Inventory for MemoryInventory {
    async fn systems(&self) -> Result<Vec<System>, InventoryError> {
        Ok(self.lock().systems.values().cloned().collect())
    }

    async fn system(&self, name: &str) -> Result<Option<System>, InventoryError> {
        Ok(self.lock().systems.get(name).cloned())
    }

    async fn save_state(&self, system: &System) -> Result<(), InventoryError> {
        let mut i = self.lock();
        let s = i
            .systems
            .get_mut(&system.name)
            .ok_or_else(|| InventoryError::NotFound {
                what: "system",
                name: system.name.clone(),
            })?;
        s.owner.clone_from(&system.owner);
        s.profile.clone_from(&system.profile);
        s.netboot = system.netboot;
        s.state = system.state.clone();
        s.token.clone_from(&system.token);
        s.state_since = system.state_since;
        s.deadline = system.deadline;
        s.last_event.clone_from(&system.last_event);
        Ok(())
    }

    async fn profile(&self, name: &str) -> Result<Option<Profile>, InventoryError> {
        Ok(self.lock().profiles.get(name).cloned())
    }

    async fn distro(&self, name: &str) -> Result<Option<Distro>, InventoryError> {
        Ok(self.lock().distros.get(name).cloned())
    }

    async fn group_wipe(&self, group: &str) -> Result<Option<Wipe>, InventoryError> {
        Ok(self.lock().group_wipes.get(group).copied())
    }

    async fn reserve(
        &self,
        selection: &Selection,
        owner: &str,
        now: i64,
    ) -> Result<Vec<System>, InventoryError> {
        let mut i = self.lock();
        let all: Vec<System> = i.systems.values().cloned().collect();
        let names: Vec<String> = select(&all, selection)?
            .into_iter()
            .map(|s| s.name.clone())
            .collect();
        let mut out = Vec::new();
        for n in names {
            if let Some(s) = i.systems.get_mut(&n) {
                s.owner = Some(owner.to_owned());
                s.state = State::Reserved;
                s.state_since = now;
                s.deadline = None;
                out.push(s.clone());
            }
        }
        Ok(out)
    }
}
