//! Systems as their users see them: choosing a profile, netboot, reboot,
//! reserving and giving back, installing (the metal API's RunInstances)
//! and listing what a user has. Every function checks ownership
//! ([`super::access`]): an account touches only its own systems, and
//! sees only its own among those that are taken.
//!
//! Changes go through the engine (under its lock, so no event is applied
//! meanwhile) when provisioning is on; without it, reserving and editing
//! still work on the inventory, but nothing is powered or installed.

use std::net::Ipv4Addr;

use mallee_metal::engine::now_millis;
use mallee_metal::inventory::{Inventory, Selection};
use mallee_metal::power;
use mallee_metal::{EngineError, State, System};

use super::Metal;
use super::access::{may_touch, owner_of, require_touch};
use super::errors::{MetalResult, not_enabled};
use crate::{CloudError, Kind, Principal};

/// One system, by the seed's `-n NAME` or `-i IP`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// By name.
    Name(String),
    /// By provisioning address.
    Ip(Ipv4Addr),
}

/// Which systems a reservation takes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pick {
    /// `count` free systems of the first of `groups` that has that many.
    Groups {
        /// Groups, tried in order.
        groups: Vec<String>,
        /// How many systems.
        count: usize,
    },
    /// These systems (all must be free).
    Systems(Vec<Target>),
}

/// Which owned systems a release or terminate gives back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every system of this user.
    User(String),
    /// These systems.
    Systems(Vec<Target>),
}

/// The system `target` names among `systems`.
pub fn find<'a>(systems: &'a [System], target: &Target) -> Result<&'a System, CloudError> {
    systems
        .iter()
        .find(|s| match target {
            Target::Name(n) => &s.name == n,
            Target::Ip(i) => &s.ip == i,
        })
        .ok_or_else(|| {
            CloudError::not_found(
                Kind::System,
                match target {
                    Target::Name(n) => format!("no system named {n}"),
                    Target::Ip(i) => format!("no system with address {i}"),
                },
            )
        })
}

/// The system `target` names.
pub(crate) async fn lookup(metal: &Metal, target: &Target) -> Result<System, CloudError> {
    let all = metal.inventory().systems().await.metal()?;
    find(&all, target).cloned()
}

/// Refuses a change to a system that is being installed, released or
/// wiped (an engine refusal: the caller waits).
pub(crate) fn not_busy(s: &System) -> Result<(), EngineError> {
    if s.state.is_busy() {
        Err(EngineError::Rejected(format!(
            "system {} is {}; wait until it is done",
            s.name,
            s.state.name()
        )))
    } else {
        Ok(())
    }
}

/// Fails unless the profile `name` exists.
pub(crate) async fn require_profile(metal: &Metal, name: &str) -> Result<(), CloudError> {
    if metal.inventory().profile(name).await.metal()?.is_none() {
        return Err(CloudError::not_found(
            Kind::Profile,
            format!("no profile named {name}"),
        ));
    }
    Ok(())
}

/// Changes a system's ownership/provisioning fields: through the engine
/// (under its lock) when provisioning is on, else in the inventory.
async fn edit_state(
    metal: &Metal,
    name: &str,
    edit: impl FnOnce(&mut System) -> Result<(), EngineError> + Send,
) -> Result<System, CloudError> {
    if let Some(engine) = metal.engine() {
        return engine.edit(name, edit).await.metal();
    }
    let mut s = metal
        .inventory()
        .system(name)
        .await
        .metal()?
        .ok_or_else(|| CloudError::not_found(Kind::System, name))?;
    edit(&mut s).metal()?;
    metal.inventory().save_state(&s).await.metal()?;
    Ok(s)
}

/// The profile a system installs on its next netboot.
pub async fn set_profile(
    metal: &Metal,
    caller: &Principal,
    target: &Target,
    profile: String,
) -> Result<System, CloudError> {
    let s = lookup(metal, target).await?;
    require_touch(caller, &s)?;
    require_profile(metal, &profile).await?;
    edit_state(metal, &s.name, |s| {
        not_busy(s)?;
        s.profile = Some(profile);
        Ok(())
    })
    .await
}

/// Netboot on (the next reboot reinstalls) or off (it boots its disk).
pub async fn set_netboot(
    metal: &Metal,
    caller: &Principal,
    target: &Target,
    on: bool,
) -> Result<System, CloudError> {
    let s = lookup(metal, target).await?;
    require_touch(caller, &s)?;
    edit_state(metal, &s.name, |s| {
        not_busy(s)?;
        s.netboot = on;
        Ok(())
    })
    .await
}

/// Reboots a system. With netboot on, an owned system with a profile
/// reboots into the installer: a reinstall through the state machine.
pub async fn reboot(
    metal: &Metal,
    caller: &Principal,
    target: &Target,
) -> Result<System, CloudError> {
    let s = lookup(metal, target).await?;
    require_touch(caller, &s)?;
    not_busy(&s).metal()?;
    let engine = metal.engine().ok_or_else(not_enabled)?;
    let reinstall =
        s.netboot && matches!(s.state, State::Reserved | State::Running) && s.profile.is_some();
    if let (true, Some(profile)) = (reinstall, s.profile.clone()) {
        return engine.provision(&s.name, &profile).await.metal();
    }
    power::driver(&s.name, &s.mac, &s.power)
        .power_on_netboot()
        .await
        .map_err(|e| CloudError::incorrect_state(Kind::System, format!("power: {e}")))?;
    Ok(s)
}

/// Resolves a pick to a selection `reserve` takes, trying groups in order:
/// the first group with enough free systems is taken.
async fn reserve_pick<F, Fut>(
    systems: &[System],
    pick: &Pick,
    mut reserve: F,
) -> Result<Vec<System>, CloudError>
where
    F: FnMut(Selection) -> Fut,
    Fut: Future<Output = Result<Vec<System>, CloudError>>,
{
    match pick {
        Pick::Systems(targets) => {
            let mut names = Vec::new();
            for t in targets {
                names.push(find(systems, t)?.name.clone());
            }
            reserve(Selection::Names(names)).await
        }
        Pick::Groups { groups, count } => {
            let mut last = None;
            for g in groups {
                match reserve(Selection::Group {
                    group: g.clone(),
                    count: *count,
                })
                .await
                {
                    Ok(r) => return Ok(r),
                    Err(e @ CloudError::InsufficientCapacity { .. }) => last = Some(e),
                    Err(e) => return Err(e),
                }
            }
            Err(last.unwrap_or_else(|| CloudError::invalid("no group given")))
        }
    }
}

/// Reserves the picked free systems for `user` (all or none) without
/// installing anything.
pub async fn reserve(
    metal: &Metal,
    caller: &Principal,
    pick: &Pick,
    user: &str,
) -> Result<Vec<System>, CloudError> {
    let owner = owner_of(caller, user);
    let inventory = metal.inventory();
    let all = inventory.systems().await.metal()?;
    reserve_pick(&all, pick, |selection| {
        let owner = owner.clone();
        async move {
            match metal.engine() {
                Some(e) => e.reserve(&selection, &owner).await.metal(),
                None => inventory
                    .reserve(&selection, &owner, now_millis())
                    .await
                    .metal(),
            }
        }
    })
    .await
}

/// Reserves the picked free systems for `user` and installs `profile` on
/// them.
pub async fn run_instances(
    metal: &Metal,
    caller: &Principal,
    pick: &Pick,
    profile: &str,
    user: &str,
) -> Result<Vec<System>, CloudError> {
    let engine = metal.engine().ok_or_else(not_enabled)?;
    require_profile(metal, profile).await?;
    let owner = owner_of(caller, user);
    let all = metal.inventory().systems().await.metal()?;
    reserve_pick(&all, pick, |selection| {
        let owner = owner.clone();
        async move {
            engine
                .run_instances(&selection, profile, &owner)
                .await
                .metal()
        }
    })
    .await
}

/// The owned systems a scope names, checked against the caller's rights.
fn scoped(
    caller: &Principal,
    systems: &[System],
    scope: &Scope,
) -> Result<Vec<String>, CloudError> {
    match scope {
        Scope::User(user) => {
            let owner = owner_of(caller, user);
            Ok(systems
                .iter()
                .filter(|s| s.owner.as_deref() == Some(owner.as_str()))
                .map(|s| s.name.clone())
                .collect())
        }
        Scope::Systems(targets) => {
            let mut names = Vec::new();
            for t in targets {
                let s = find(systems, t)?;
                if s.owner.is_none() {
                    return Err(CloudError::incorrect_state(
                        Kind::System,
                        format!("system {} is not reserved by anyone", s.name),
                    ));
                }
                require_touch(caller, s)?;
                names.push(s.name.clone());
            }
            Ok(names)
        }
    }
}

/// Gives the scoped systems back to the pool (powered off, wiped when
/// their policy says so).
pub async fn release(
    metal: &Metal,
    caller: &Principal,
    scope: &Scope,
) -> Result<Vec<System>, CloudError> {
    let engine = metal.engine().ok_or_else(not_enabled)?;
    let all = metal.inventory().systems().await.metal()?;
    let mut out = Vec::new();
    for name in scoped(caller, &all, scope)? {
        out.push(engine.release(&name).await.metal()?);
    }
    Ok(out)
}

/// The taken systems the caller may see: all of `user`'s, or every one.
pub async fn owned(
    metal: &Metal,
    caller: &Principal,
    user: Option<&str>,
) -> Result<Vec<System>, CloudError> {
    let owner = user.map(|u| owner_of(caller, u));
    Ok(metal
        .inventory()
        .systems()
        .await
        .metal()?
        .into_iter()
        .filter(|s| s.owner.is_some() && may_touch(caller, s.owner.as_deref()))
        .filter(|s| owner.is_none() || s.owner == owner)
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use mallee_metal::power::PowerSpec;

    use super::*;
    use crate::metal::inventory::{self, NewGroup};
    use crate::testkit::{TestCloud, principal};

    /// A disabled zone with group `test01` of free systems `m1`-`m3`
    /// (10.254.0.11-13).
    pub(crate) async fn rack(tc: &TestCloud) -> Metal {
        let metal = Metal::disabled(tc.store.clone(), tc.blobs.clone());
        inventory::add_group(
            &metal,
            NewGroup {
                name: "test01".into(),
                description: String::new(),
                wipe: None,
            },
        )
        .await
        .expect("group");
        for i in 1..=3u8 {
            let system = System::new(
                &format!("m{i}"),
                format!("52:54:00:00:00:0{i}").parse().expect("mac"),
                Ipv4Addr::new(10, 254, 0, 10 + i),
                "test01",
                PowerSpec::Manual,
            )
            .expect("system");
            inventory::add_system(&metal, &system).await.expect("add");
        }
        metal
    }

    fn names(systems: &[System]) -> Vec<&str> {
        systems.iter().map(|s| s.name.as_str()).collect()
    }

    #[tokio::test]
    async fn accounts_see_and_touch_only_their_own_systems() {
        let tc = TestCloud::new().await;
        let metal = rack(&tc).await;
        let admin = principal(&tc, "ops", true).await;
        let alpha = principal(&tc, "alpha", false).await;
        let bravo = principal(&tc, "bravo", false).await;
        let two = Pick::Groups {
            groups: vec!["test01".into()],
            count: 2,
        };

        let taken = reserve(&metal, &alpha, &two, "demo")
            .await
            .expect("reserve");
        assert_eq!(names(&taken), ["m1", "m2"]);
        assert!(
            taken
                .iter()
                .all(|s| s.owner.as_deref() == Some("alpha:demo")),
            "another account's owner names its account: {taken:?}"
        );
        let m3 = Pick::Systems(vec![Target::Name("m3".into())]);
        let taken = reserve(&metal, &admin, &m3, "demo").await.expect("reserve");
        assert_eq!(taken[0].owner.as_deref(), Some("demo"));
        let refused = reserve(&metal, &bravo, &two, "demo").await;
        assert!(
            matches!(refused, Err(CloudError::InsufficientCapacity { .. })),
            "{refused:?}"
        );

        assert_eq!(
            names(&owned(&metal, &alpha, None).await.expect("owned")),
            ["m1", "m2"]
        );
        assert!(owned(&metal, &bravo, None).await.expect("owned").is_empty());
        assert_eq!(
            names(&owned(&metal, &admin, Some("demo")).await.expect("owned")),
            ["m3"],
            "an administrator's user is the bare user"
        );

        let m1 = Target::Name("m1".into());
        let refused = set_netboot(&metal, &bravo, &m1, true).await;
        assert_eq!(
            refused,
            Err(CloudError::NotPermitted("system m1 is not yours".into()))
        );
        let s = set_netboot(&metal, &alpha, &m1, true)
            .await
            .expect("netboot");
        assert!(s.netboot);
        let refused = set_profile(&metal, &alpha, &m1, "nope".into()).await;
        assert_eq!(
            refused,
            Err(CloudError::not_found(
                Kind::Profile,
                "no profile named nope"
            ))
        );

        // Without the engine nothing is powered, installed or given back.
        let scope = Scope::User("demo".into());
        assert!(matches!(
            release(&metal, &alpha, &scope).await,
            Err(CloudError::Unsupported(_))
        ));
        assert!(matches!(
            reboot(&metal, &alpha, &m1).await,
            Err(CloudError::Unsupported(_))
        ));
    }

    #[tokio::test]
    async fn scopes_name_owned_systems_the_caller_may_touch() {
        let tc = TestCloud::new().await;
        let metal = rack(&tc).await;
        let alpha = principal(&tc, "alpha", false).await;
        let bravo = principal(&tc, "bravo", false).await;
        let m1 = Target::Ip(Ipv4Addr::new(10, 254, 0, 11));
        reserve(&metal, &alpha, &Pick::Systems(vec![m1.clone()]), "demo")
            .await
            .expect("reserve");
        let all = metal.inventory().systems().await.expect("systems");

        assert_eq!(
            scoped(&alpha, &all, &Scope::User("demo".into())).expect("scope"),
            ["m1"]
        );
        assert!(
            scoped(&bravo, &all, &Scope::User("demo".into()))
                .expect("scope")
                .is_empty(),
            "bravo's demo is not alpha's"
        );
        assert_eq!(
            scoped(&bravo, &all, &Scope::Systems(vec![m1])),
            Err(CloudError::NotPermitted("system m1 is not yours".into()))
        );
        let free = Target::Name("m2".into());
        assert_eq!(
            scoped(&alpha, &all, &Scope::Systems(vec![free])),
            Err(CloudError::incorrect_state(
                Kind::System,
                "system m2 is not reserved by anyone"
            ))
        );
    }
}
