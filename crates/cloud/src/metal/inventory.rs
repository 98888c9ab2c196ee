//! The bare-metal inventory: groups, distros and systems, described by
//! everyone (other accounts' systems as taken, without whose:
//! [`super::access::as_seen_by`]) and edited by administrators
//! ([`super::access::authorize`] gates the edits before they run). Edits that change what the DHCP
//! server must know (a system's MAC or address) resynchronise it when
//! provisioning is on.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use mallee_metal::engine::now_millis;
use mallee_metal::inventory::Inventory;
use mallee_metal::power::PowerSpec;
use mallee_metal::store::{from_record, to_record};
use mallee_metal::{Mac, State, System, Wipe};
use mallee_store::metal::{MetalDistro, MetalGroup};

use super::Metal;
use super::access::as_seen_by;
use super::errors::{MetalResult, not_enabled};
use super::systems::{Target, find, lookup, not_busy};
use crate::{CloudError, Kind, Principal};

/// A group to add, or to describe anew.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGroup {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Disk wipe policy of its systems (`None`: a stored one is kept).
    pub wipe: Option<Wipe>,
}

/// A distro to add or replace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDistro {
    /// Name.
    pub name: String,
    /// Kernel location.
    pub kernel: String,
    /// Initrd location.
    pub initrd: String,
    /// Kernel arguments.
    pub kernel_args: String,
}

/// Administrative fields of a system an edit changes (`None`: kept).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SystemEdit {
    /// New MAC.
    pub mac: Option<Mac>,
    /// New address.
    pub ip: Option<Ipv4Addr>,
    /// New host name.
    pub hostname: Option<String>,
    /// New group.
    pub group: Option<String>,
    /// New power settings.
    pub power: Option<PowerSpec>,
    /// New target disk (empty: the agent picks).
    pub disk: Option<String>,
    /// New answer-file variables (replace the old ones; `{}` clears).
    pub variables: Option<BTreeMap<String, String>>,
    /// New disk wipe policy (`Some(None)`: the group's).
    pub wipe: Option<Option<Wipe>>,
}

impl SystemEdit {
    /// Applies the edit to `s`.
    fn apply(self, s: &mut System) {
        if let Some(m) = self.mac {
            s.mac = m;
        }
        if let Some(i) = self.ip {
            s.ip = i;
        }
        if let Some(h) = self.hostname {
            s.hostname = h;
        }
        if let Some(g) = self.group {
            s.group = g;
        }
        if let Some(p) = self.power {
            s.power = p;
        }
        if let Some(d) = self.disk {
            s.disk = (!d.is_empty()).then_some(d);
        }
        if let Some(v) = self.variables {
            s.variables = v;
        }
        if let Some(w) = self.wipe {
            s.wipe = w;
        }
    }
}

/// A group with how many systems it has and how many are free.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    /// Name.
    pub name: String,
    /// Free text.
    pub description: String,
    /// Its disk wipe policy (`none` unless set).
    pub wipe: String,
    /// Its systems.
    pub total: usize,
    /// Its free systems.
    pub free: usize,
}

/// Groups and their systems.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Groups {
    /// The groups.
    pub groups: Vec<GroupSummary>,
    /// Their systems (only the free ones when asked).
    pub systems: Vec<System>,
}

/// A system nobody has and that is not in use.
fn is_free(s: &System) -> bool {
    s.state == State::Free && s.owner.is_none()
}

/// Tells the DHCP server the systems' MACs and addresses anew.
async fn sync_dhcp(metal: &Metal) -> Result<(), CloudError> {
    if let Some(engine) = metal.engine() {
        engine.sync_dhcp().await.metal()?;
    }
    Ok(())
}

/// The distros.
pub async fn distros(metal: &Metal) -> Result<Vec<MetalDistro>, CloudError> {
    metal.store().metal_distros().await.metal()
}

/// Every system, or those `targets` name (in their order), as `caller`
/// sees them.
pub async fn systems(
    metal: &Metal,
    caller: &Principal,
    targets: &[Target],
) -> Result<Vec<System>, CloudError> {
    let all = metal.inventory().systems().await.metal()?;
    let chosen = if targets.is_empty() {
        all
    } else {
        targets
            .iter()
            .map(|t| find(&all, t).cloned())
            .collect::<Result<_, _>>()?
    };
    Ok(chosen.into_iter().map(|s| as_seen_by(caller, s)).collect())
}

/// Every group (or `only` that one) with its systems, all or only the free
/// ones, as `caller` sees them.
pub async fn groups(
    metal: &Metal,
    caller: &Principal,
    only: Option<&str>,
    free_only: bool,
) -> Result<Groups, CloudError> {
    let mut groups: Vec<MetalGroup> = metal.store().metal_groups().await.metal()?;
    if let Some(g) = only {
        groups.retain(|x| x.name == g);
        if groups.is_empty() {
            return Err(CloudError::not_found(
                Kind::SystemGroup,
                format!("no group named {g}"),
            ));
        }
    }
    let systems = metal.inventory().systems().await.metal()?;
    let summaries = groups
        .into_iter()
        .map(|g| {
            let members = systems.iter().filter(|s| s.group == g.name);
            GroupSummary {
                total: members.clone().count(),
                free: members.filter(|s| is_free(s)).count(),
                wipe: g.wipe.unwrap_or_else(|| "none".to_owned()),
                name: g.name,
                description: g.description,
            }
        })
        .collect::<Vec<_>>();
    let shown = systems
        .into_iter()
        .filter(|s| summaries.iter().any(|g| g.name == s.group))
        .filter(|s| !free_only || is_free(s))
        .map(|s| as_seen_by(caller, s))
        .collect();
    Ok(Groups {
        groups: summaries,
        systems: shown,
    })
}

/// Adds a group, or describes an existing one anew.
pub async fn add_group(metal: &Metal, group: NewGroup) -> Result<(), CloudError> {
    metal
        .inventory()
        .put_group_with_wipe(&group.name, &group.description, group.wipe)
        .await
        .metal()
}

/// Removes a group without systems.
pub async fn remove_group(metal: &Metal, name: &str) -> Result<(), CloudError> {
    if !metal.store().delete_metal_group(name).await.metal()? {
        return Err(CloudError::not_found(
            Kind::SystemGroup,
            format!("no group named {name}"),
        ));
    }
    Ok(())
}

/// Adds or replaces a distro.
pub async fn add_distro(metal: &Metal, distro: NewDistro) -> Result<(), CloudError> {
    metal
        .store()
        .put_metal_distro(&MetalDistro {
            name: distro.name,
            kernel: distro.kernel,
            initrd: distro.initrd,
            kernel_args: distro.kernel_args,
            created_at: now_millis(),
        })
        .await
        .metal()
}

/// Removes a distro.
pub async fn remove_distro(metal: &Metal, name: &str) -> Result<(), CloudError> {
    if !metal.store().delete_metal_distro(name).await.metal()? {
        return Err(CloudError::not_found(
            Kind::Distro,
            format!("no distro named {name}"),
        ));
    }
    Ok(())
}

/// Adds a system (its name, MAC and address unused, its group existing).
pub async fn add_system(metal: &Metal, system: &System) -> Result<(), CloudError> {
    metal.inventory().add_system(system).await.metal()?;
    sync_dhcp(metal).await
}

/// Changes a system's administrative fields; it must not be busy.
pub async fn edit_system(
    metal: &Metal,
    name: &str,
    edit: SystemEdit,
) -> Result<System, CloudError> {
    let store = metal.store();
    let record = store
        .metal_system(name)
        .await
        .metal()?
        .ok_or_else(|| CloudError::not_found(Kind::System, name))?;
    let mut s = from_record(&record).metal()?;
    not_busy(&s).metal()?;
    edit.apply(&mut s);
    let mut updated = to_record(&s, now_millis()).metal()?;
    updated.created_at = record.created_at;
    if !store.update_metal_system_admin(&updated).await.metal()? {
        return Err(CloudError::not_found(Kind::System, name));
    }
    sync_dhcp(metal).await?;
    Ok(s)
}

/// Removes a free system.
pub async fn remove_system(metal: &Metal, name: &str) -> Result<(), CloudError> {
    if !metal.store().delete_metal_system(name).await.metal()? {
        return Err(CloudError::not_found(
            Kind::System,
            format!("no system named {name}"),
        ));
    }
    sync_dhcp(metal).await
}

/// The operator switched a manually powered system off.
pub async fn confirm_powered_off(metal: &Metal, target: &Target) -> Result<System, CloudError> {
    let engine = metal.engine().ok_or_else(not_enabled)?;
    let name = lookup(metal, target).await?.name;
    engine.confirm_powered_off(&name).await.metal()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metal::systems::tests::rack;
    use crate::metal::systems::{Pick, reserve};
    use crate::testkit::{TestCloud, principal};

    /// Changes the stored system `name` as the engine would.
    async fn edit_stored(metal: &Metal, name: &str, edit: impl FnOnce(&mut System)) {
        let mut s = metal
            .inventory()
            .system(name)
            .await
            .expect("get")
            .expect(name);
        edit(&mut s);
        metal.inventory().save_state(&s).await.expect("save");
    }

    #[tokio::test]
    async fn groups_count_their_free_systems() {
        let tc = TestCloud::new().await;
        let metal = rack(&tc).await;
        let spare = NewGroup {
            name: "spare".into(),
            description: "spare rack".into(),
            wipe: Some(Wipe::Zero),
        };
        add_group(&metal, spare).await.expect("group");
        edit_stored(&metal, "m2", |m2| {
            m2.owner = Some("demo".into());
            m2.state = State::Reserved;
        })
        .await;

        let admin = principal(&tc, "ops", true).await;
        let all = groups(&metal, &admin, None, false).await.expect("groups");
        let counts: Vec<_> = all
            .groups
            .iter()
            .map(|g| (g.name.as_str(), g.wipe.as_str(), g.total, g.free))
            .collect();
        assert_eq!(counts, [("spare", "zero", 0, 0), ("test01", "none", 3, 2)]);
        assert_eq!(all.systems.len(), 3);
        let free = groups(&metal, &admin, Some("test01"), true)
            .await
            .expect("groups");
        assert_eq!(free.groups.len(), 1);
        let names: Vec<_> = free.systems.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["m1", "m3"]);
        assert_eq!(
            groups(&metal, &admin, Some("nope"), false).await,
            Err(CloudError::not_found(
                Kind::SystemGroup,
                "no group named nope"
            ))
        );

        let refused = remove_group(&metal, "test01").await;
        assert!(
            matches!(refused, Err(CloudError::Duplicate { .. })),
            "a group with systems is in use, not an internal error: {refused:?}"
        );
        let edited = edit_system(
            &metal,
            "m1",
            SystemEdit {
                hostname: Some("h1".into()),
                disk: Some(String::new()),
                ..SystemEdit::default()
            },
        )
        .await
        .expect("edit");
        assert_eq!((edited.hostname.as_str(), edited.disk), ("h1", None));
        assert_eq!(
            remove_system(&metal, "m9").await,
            Err(CloudError::not_found(Kind::System, "no system named m9"))
        );
    }

    #[tokio::test]
    async fn other_accounts_systems_show_as_taken_without_whose() {
        let tc = TestCloud::new().await;
        let metal = rack(&tc).await;
        let admin = principal(&tc, "ops", true).await;
        let alpha = principal(&tc, "alpha", false).await;
        let bravo = principal(&tc, "bravo", false).await;
        let m1 = Target::Name("m1".into());
        reserve(&metal, &alpha, &Pick::Systems(vec![m1.clone()]), "demo")
            .await
            .expect("reserve");
        edit_stored(&metal, "m1", |held| {
            held.profile = Some("alphas-os".into());
            held.last_event = Some("installed system checked in: alpha's secret".into());
        })
        .await;

        let (metal_ref, target) = (&metal, std::slice::from_ref(&m1));
        let holder = |caller| async move {
            let s = systems(metal_ref, caller, target)
                .await
                .expect("systems")
                .remove(0);
            (s.owner, s.profile, s.last_event, s.state)
        };
        let whose = (
            Some("alpha:demo".to_owned()),
            Some("alphas-os".to_owned()),
            Some("installed system checked in: alpha's secret".to_owned()),
            State::Reserved,
        );
        assert_eq!(holder(&alpha).await, whose, "the holder sees its own");
        assert_eq!(
            holder(&admin).await,
            whose,
            "administrators see every holder"
        );
        assert_eq!(
            holder(&bravo).await,
            (None, None, None, State::Reserved),
            "another account sees the system taken, not by whom or with what"
        );

        let seen = groups(&metal, &bravo, Some("test01"), false)
            .await
            .expect("groups");
        assert_eq!((seen.groups[0].total, seen.groups[0].free), (3, 2));
        let m1_seen = seen.systems.iter().find(|s| s.name == "m1").expect("m1");
        assert_eq!((&m1_seen.owner, &m1_seen.profile), (&None, &None));
        let all = systems(&metal, &bravo, &[]).await.expect("systems");
        assert_eq!(all.len(), 3, "the whole rack");
        assert!(
            all.iter()
                .all(|s| s.owner.is_none() && s.last_event.is_none())
        );
    }
}
