//! The [`Inventory`] over the controller's store ([`MetalIndex`]): systems,
//! profiles and groups persist in its database, reservations are its
//! single transactions, and power settings, profiles and states are kept as
//! JSON this crate reads back.

use std::sync::Arc;

use async_trait::async_trait;

use mallee_store::metal::{
    MetalGroup, MetalProfile, MetalReservation, MetalSelection, MetalSystemRecord,
};
use mallee_store::{MetalIndex, StoreError};

use crate::engine::now_millis;
use crate::inventory::{Inventory, InventoryError, Selection};
use crate::model::{Distro, Install, Profile, State, System, Wipe};

/// An inventory kept in the controller's store.
#[derive(Clone)]
pub struct StoreInventory {
    store: Arc<dyn MetalIndex>,
}

impl std::fmt::Debug for StoreInventory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreInventory").finish_non_exhaustive()
    }
}

fn backend(e: StoreError) -> InventoryError {
    match e {
        StoreError::Conflict(what) => InventoryError::Exists {
            what: "record",
            name: what,
        },
        StoreError::NotFound(what) => InventoryError::NotFound {
            what: "record",
            name: what,
        },
        other => InventoryError::Backend(other.to_string()),
    }
}

fn corrupt(what: &str, e: impl std::fmt::Display) -> InventoryError {
    InventoryError::Backend(format!("stored {what} cannot be read: {e}"))
}

fn json<T: serde::Serialize>(v: &T) -> Result<String, InventoryError> {
    serde_json::to_string(v).map_err(|e| InventoryError::Backend(e.to_string()))
}

/// A system as a store record.
pub fn to_record(s: &System, now: i64) -> Result<MetalSystemRecord, InventoryError> {
    Ok(MetalSystemRecord {
        name: s.name.clone(),
        mac: s.mac.to_string(),
        ip: s.ip.to_string(),
        hostname: s.hostname.clone(),
        group_name: s.group.clone(),
        power: json(&s.power)?,
        disk: s.disk.clone(),
        owner: s.owner.clone(),
        profile: s.profile.clone(),
        netboot: s.netboot,
        state_name: s.state.name().to_owned(),
        state: json(&s.state)?,
        token: s.token.clone(),
        state_since: s.state_since,
        deadline: s.deadline,
        last_event: s.last_event.clone(),
        created_at: now,
        updated_at: now,
        variables: json(&s.variables)?,
        wipe: s.wipe.map(|w| w.as_str().to_owned()),
    })
}

/// A store record as a system.
pub fn from_record(r: &MetalSystemRecord) -> Result<System, InventoryError> {
    Ok(System {
        name: r.name.clone(),
        mac: r.mac.parse().map_err(|e| corrupt("MAC", e))?,
        ip: r.ip.parse().map_err(|e| corrupt("IP", e))?,
        hostname: r.hostname.clone(),
        group: r.group_name.clone(),
        power: serde_json::from_str(&r.power).map_err(|e| corrupt("power settings", e))?,
        disk: r.disk.clone(),
        owner: r.owner.clone(),
        profile: r.profile.clone(),
        netboot: r.netboot,
        state: serde_json::from_str(&r.state).map_err(|e| corrupt("state", e))?,
        token: r.token.clone(),
        state_since: r.state_since,
        deadline: r.deadline,
        last_event: r.last_event.clone(),
        variables: serde_json::from_str(&r.variables).map_err(|e| corrupt("variables", e))?,
        wipe: r
            .wipe
            .as_deref()
            .map(str::parse::<Wipe>)
            .transpose()
            .map_err(|e| corrupt("wipe policy", e))?,
    })
}

impl StoreInventory {
    /// An inventory over `store`.
    pub fn new(store: Arc<dyn MetalIndex>) -> Self {
        Self { store }
    }

    /// Adds (or describes) a group.
    pub async fn put_group(&self, name: &str, description: &str) -> Result<(), InventoryError> {
        self.put_group_with_wipe(name, description, None).await
    }

    /// Adds (or describes) a group, setting its disk wipe policy if `wipe`
    /// is given (else a stored policy is kept).
    pub async fn put_group_with_wipe(
        &self,
        name: &str,
        description: &str,
        wipe: Option<Wipe>,
    ) -> Result<(), InventoryError> {
        crate::model::check_name("group name", name)
            .map_err(|e| InventoryError::Backend(e.to_string()))?;
        self.store
            .put_metal_group(&MetalGroup {
                name: name.to_owned(),
                description: description.to_owned(),
                created_at: now_millis(),
                wipe: wipe.map(|w| w.as_str().to_owned()),
            })
            .await
            .map_err(backend)
    }

    /// Adds a system (its group must exist).
    pub async fn add_system(&self, system: &System) -> Result<(), InventoryError> {
        self.store
            .create_metal_system(&to_record(system, now_millis())?)
            .await
            .map_err(backend)
    }

    /// Adds or replaces a profile.
    pub async fn put_profile(&self, profile: &Profile) -> Result<(), InventoryError> {
        crate::model::check_name("profile name", &profile.name)
            .map_err(|e| InventoryError::Backend(e.to_string()))?;
        self.store
            .put_metal_profile(&MetalProfile {
                name: profile.name.clone(),
                distro: match &profile.install {
                    Install::Installer { distro, .. } => Some(distro.clone()),
                    Install::Image { .. } => None,
                },
                spec: json(profile)?,
                created_at: now_millis(),
            })
            .await
            .map_err(backend)
    }

    /// Every profile.
    pub async fn profiles(&self) -> Result<Vec<Profile>, InventoryError> {
        self.store
            .metal_profiles()
            .await
            .map_err(backend)?
            .iter()
            .map(|p| serde_json::from_str(&p.spec).map_err(|e| corrupt("profile", e)))
            .collect()
    }
}

#[async_trait]
impl Inventory for StoreInventory {
    async fn systems(&self) -> Result<Vec<System>, InventoryError> {
        self.store
            .metal_systems()
            .await
            .map_err(backend)?
            .iter()
            .map(from_record)
            .collect()
    }

    async fn system(&self, name: &str) -> Result<Option<System>, InventoryError> {
        self.store
            .metal_system(name)
            .await
            .map_err(backend)?
            .as_ref()
            .map(from_record)
            .transpose()
    }

    async fn save_state(&self, system: &System) -> Result<(), InventoryError> {
        if self
            .store
            .save_metal_state(&to_record(system, now_millis())?)
            .await
            .map_err(backend)?
        {
            Ok(())
        } else {
            Err(InventoryError::NotFound {
                what: "system",
                name: system.name.clone(),
            })
        }
    }

    async fn profile(&self, name: &str) -> Result<Option<Profile>, InventoryError> {
        self.store
            .metal_profile(name)
            .await
            .map_err(backend)?
            .map(|p| serde_json::from_str(&p.spec).map_err(|e| corrupt("profile", e)))
            .transpose()
    }

    async fn group_wipe(&self, group: &str) -> Result<Option<Wipe>, InventoryError> {
        self.store
            .metal_groups()
            .await
            .map_err(backend)?
            .into_iter()
            .find(|g| g.name == group)
            .and_then(|g| g.wipe)
            .map(|w| {
                w.parse::<Wipe>()
                    .map_err(|e| corrupt("group wipe policy", e))
            })
            .transpose()
    }

    async fn distro(&self, name: &str) -> Result<Option<Distro>, InventoryError> {
        Ok(self
            .store
            .metal_distros()
            .await
            .map_err(backend)?
            .into_iter()
            .find(|d| d.name == name)
            .map(|d| Distro {
                name: d.name,
                kernel: d.kernel,
                initrd: d.initrd,
                kernel_args: d.kernel_args,
            }))
    }

    async fn reserve(
        &self,
        selection: &Selection,
        owner: &str,
        now: i64,
    ) -> Result<Vec<System>, InventoryError> {
        let sel = match selection {
            Selection::Group { group, count } => MetalSelection::Group {
                group: group.clone(),
                count: *count,
            },
            Selection::Names(n) => MetalSelection::Names(n.clone()),
        };
        let state = State::Reserved;
        match self
            .store
            .reserve_metal_systems(&sel, owner, state.name(), &json(&state)?, now)
            .await
            .map_err(backend)?
        {
            MetalReservation::Reserved(records) => records.iter().map(from_record).collect(),
            MetalReservation::NotEnoughFree { free } => {
                let (group, wanted) = match selection {
                    Selection::Group { group, count } => (group.clone(), *count),
                    Selection::Names(n) => (String::new(), n.len()),
                };
                Err(InventoryError::NotEnoughFree {
                    group,
                    wanted,
                    free,
                })
            }
            MetalReservation::NotFree { name, state_name } => Err(InventoryError::NotFree {
                name,
                state: state_name,
            }),
            MetalReservation::Unknown(what) => Err(InventoryError::NotFound {
                what: "group or system",
                name: what,
            }),
        }
    }
}
