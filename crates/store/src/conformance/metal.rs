//! Conformance checks of [`crate::metal::MetalIndex`]: groups, distros and
//! profiles; systems with unique names, MACs, addresses and tokens; state
//! saves that leave the administrator's fields alone (and the reverse);
//! reservations that take all or nothing, and exactly one winner when two
//! owners race for the last free system.

use crate::metal::{
    MetalDistro, MetalGroup, MetalProfile, MetalReservation, MetalSelection, MetalSystemRecord,
};
use crate::{Store, StoreError};

fn system(name: &str, n: u8, group: &str) -> MetalSystemRecord {
    MetalSystemRecord {
        name: name.into(),
        mac: format!("52:54:00:00:77:{n:02x}"),
        ip: format!("10.254.77.{n}"),
        hostname: name.into(),
        group_name: group.into(),
        power: r#"{"driver":"manual"}"#.into(),
        disk: None,
        owner: None,
        profile: None,
        netboot: false,
        state_name: "free".into(),
        state: r#"{"state":"free"}"#.into(),
        token: None,
        state_since: 1,
        deadline: None,
        last_event: None,
        created_at: 1,
        updated_at: 1,
        variables: "{}".into(),
        wipe: None,
    }
}

fn group(name: &str) -> MetalGroup {
    MetalGroup {
        name: name.into(),
        description: format!("{name} pool"),
        created_at: 1,
        wipe: None,
    }
}

fn reserved(r: MetalReservation) -> Vec<String> {
    match r {
        MetalReservation::Reserved(s) => s.into_iter().map(|s| s.name).collect(),
        other => panic!("expected a reservation, got {other:?}"),
    }
}

/// `count` free systems of `group`.
fn from_group(group: &str, count: usize) -> MetalSelection {
    MetalSelection::Group {
        group: group.into(),
        count,
    }
}

/// A stored system.
async fn get(store: &dyn Store, name: &str) -> MetalSystemRecord {
    store
        .metal_system(name)
        .await
        .expect("get")
        .unwrap_or_else(|| panic!("{name} is gone"))
}

async fn reserve(store: &dyn Store, selection: MetalSelection, owner: &str) -> MetalReservation {
    store
        .reserve_metal_systems(&selection, owner, "reserved", r#"{"state":"reserved"}"#, 50)
        .await
        .expect("reserve")
}

/// Runs the bare-metal checks.
pub async fn run(store: &dyn Store) {
    catalogue(store).await;
    systems(store).await;
    reservations(store).await;
}

async fn catalogue(store: &dyn Store) {
    store.put_metal_group(&group("mg-a")).await.expect("group");
    store
        .put_metal_group(&MetalGroup {
            description: "changed".into(),
            ..group("mg-a")
        })
        .await
        .expect("group again");
    let groups = store.metal_groups().await.expect("groups");
    let a = groups.iter().find(|g| g.name == "mg-a").expect("mg-a");
    assert_eq!(a.description, "changed");
    assert_eq!(a.wipe, None);
    store
        .put_metal_group(&MetalGroup {
            wipe: Some("zero".into()),
            ..group("mg-a")
        })
        .await
        .expect("group wipe");
    store
        .put_metal_group(&MetalGroup {
            description: "again".into(),
            ..group("mg-a")
        })
        .await
        .expect("group without wipe");
    let groups = store.metal_groups().await.expect("groups");
    let a = groups.iter().find(|g| g.name == "mg-a").expect("mg-a");
    assert_eq!(
        (a.description.as_str(), a.wipe.as_deref()),
        ("again", Some("zero")),
        "a group written without a policy keeps its policy"
    );

    let distro = MetalDistro {
        name: "md-1".into(),
        kernel: "/k".into(),
        initrd: "/i".into(),
        kernel_args: "quiet".into(),
        created_at: 2,
    };
    store.put_metal_distro(&distro).await.expect("distro");
    assert!(
        store
            .metal_distros()
            .await
            .expect("distros")
            .contains(&distro)
    );
    let profile = MetalProfile {
        name: "mp-1".into(),
        distro: Some("md-1".into()),
        spec: r#"{"kind":"image"}"#.into(),
        created_at: 3,
    };
    store.put_metal_profile(&profile).await.expect("profile");
    assert_eq!(
        store.metal_profile("mp-1").await.expect("get"),
        Some(profile.clone())
    );
    assert!(matches!(
        store
            .put_metal_profile(&MetalProfile {
                name: "mp-2".into(),
                distro: Some("md-missing".into()),
                ..profile.clone()
            })
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert!(
        matches!(
            store.delete_metal_distro("md-1").await,
            Err(StoreError::Conflict(_))
        ),
        "a distro in use stays"
    );
    assert!(store.delete_metal_profile("mp-1").await.expect("delete"));
    assert!(
        !store
            .delete_metal_profile("mp-1")
            .await
            .expect("delete again")
    );
    assert!(store.metal_profile("mp-1").await.expect("get").is_none());
    assert!(
        store
            .delete_metal_distro("md-1")
            .await
            .expect("delete distro")
    );
}

async fn systems(store: &dyn Store) {
    store.put_metal_group(&group("mg-s")).await.expect("group");
    let s1 = system("ms-1", 1, "mg-s");
    store.create_metal_system(&s1).await.expect("create");
    for (clash, what) in [
        (system("ms-1", 2, "mg-s"), "name"),
        (
            MetalSystemRecord {
                ip: "10.254.77.99".into(),
                ..system("ms-x", 1, "mg-s")
            },
            "mac",
        ),
        (
            MetalSystemRecord {
                mac: "52:54:00:00:77:99".into(),
                ..system("ms-y", 1, "mg-s")
            },
            "ip",
        ),
    ] {
        assert!(
            matches!(
                store.create_metal_system(&clash).await,
                Err(StoreError::Conflict(_))
            ),
            "same {what} must conflict"
        );
    }
    assert!(matches!(
        store
            .create_metal_system(&system("ms-2", 2, "mg-none"))
            .await,
        Err(StoreError::NotFound(_))
    ));
    assert_eq!(
        store.metal_system("ms-1").await.expect("get"),
        Some(s1.clone())
    );

    // State saves leave the admin fields, admin updates leave the state.
    let mut st = s1.clone();
    st.hostname = "ignored".into();
    st.variables = r#"{"role":"ignored"}"#.into();
    st.owner = Some("demo".into());
    st.state_name = "provisioning".into();
    st.state = r#"{"state":"provisioning","step":"dhcp"}"#.into();
    st.token = Some("tok-1".into());
    st.netboot = true;
    st.deadline = Some(99);
    st.last_event = Some("DHCP lease".into());
    assert!(store.save_metal_state(&st).await.expect("save"));
    let got = get(store, "ms-1").await;
    assert_eq!(got.hostname, "ms-1");
    assert_eq!(got.variables, "{}");
    assert_eq!(
        (
            got.owner.as_deref(),
            got.token.as_deref(),
            got.netboot,
            got.deadline
        ),
        (Some("demo"), Some("tok-1"), true, Some(99))
    );
    assert_eq!(got.state, st.state);
    let mut admin = got.clone();
    admin.hostname = "rack1-u1".into();
    admin.variables = r#"{"role":"db"}"#.into();
    admin.wipe = Some("zero".into());
    admin.owner = None;
    admin.state_name = "free".into();
    assert!(
        store
            .update_metal_system_admin(&admin)
            .await
            .expect("admin")
    );
    let got = get(store, "ms-1").await;
    assert_eq!(
        (
            got.hostname.as_str(),
            got.owner.as_deref(),
            got.state_name.as_str()
        ),
        ("rack1-u1", Some("demo"), "provisioning")
    );
    assert_eq!(got.variables, r#"{"role":"db"}"#);
    assert_eq!(got.wipe.as_deref(), Some("zero"), "wipe is an admin field");
    let mut st2 = got.clone();
    st2.wipe = None;
    assert!(store.save_metal_state(&st2).await.expect("state"));
    let got = get(store, "ms-1").await;
    assert_eq!(
        got.wipe.as_deref(),
        Some("zero"),
        "saving the state keeps the wipe policy"
    );

    // Tokens are unique.
    let mut s2 = system("ms-2", 2, "mg-s");
    store.create_metal_system(&s2).await.expect("create ms-2");
    s2.token = Some("tok-1".into());
    assert!(matches!(
        store.save_metal_state(&s2).await,
        Err(StoreError::Conflict(_))
    ));

    // Owned systems and groups with systems are not deleted.
    assert!(matches!(
        store.delete_metal_system("ms-1").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(matches!(
        store.delete_metal_group("mg-s").await,
        Err(StoreError::Conflict(_))
    ));
    assert!(store.delete_metal_system("ms-2").await.expect("delete"));
    assert!(
        !store
            .delete_metal_system("ms-2")
            .await
            .expect("delete again")
    );
    let names: Vec<String> = store
        .metal_systems()
        .await
        .expect("all")
        .into_iter()
        .map(|s| s.name)
        .collect();
    assert!(names.contains(&"ms-1".to_owned()) && !names.contains(&"ms-2".to_owned()));
}

async fn reservations(store: &dyn Store) {
    store.put_metal_group(&group("mg-r")).await.expect("group");
    for (i, n) in ["mr-1", "mr-2", "mr-3"].into_iter().enumerate() {
        let i = u8::try_from(i).expect("small") + 10;
        store
            .create_metal_system(&system(n, i, "mg-r"))
            .await
            .expect("create");
    }
    // More than are free: nothing reserved.
    assert_eq!(
        reserve(store, from_group("mg-r", 4), "a").await,
        MetalReservation::NotEnoughFree { free: 3 }
    );
    assert_eq!(
        reserve(store, from_group("mg-none", 1), "a").await,
        MetalReservation::Unknown("group mg-none".into())
    );
    let two = reserved(reserve(store, from_group("mg-r", 2), "a").await);
    assert_eq!(two, ["mr-1", "mr-2"]);
    let got = get(store, "mr-1").await;
    assert_eq!(
        (
            got.owner.as_deref(),
            got.state_name.as_str(),
            got.state_since
        ),
        (Some("a"), "reserved", 50)
    );
    // Names: all must be free, or nothing is taken.
    assert_eq!(
        reserve(
            store,
            MetalSelection::Names(vec!["mr-3".into(), "mr-1".into()]),
            "b"
        )
        .await,
        MetalReservation::NotFree {
            name: "mr-1".into(),
            state_name: "reserved".into()
        }
    );
    let mr3 = get(store, "mr-3").await;
    assert_eq!(
        (mr3.owner, mr3.state_name.as_str()),
        (None, "free"),
        "a refused reservation takes nothing"
    );
    assert_eq!(
        reserve(store, MetalSelection::Names(vec!["mr-404".into()]), "b").await,
        MetalReservation::Unknown("system mr-404".into())
    );

    // Two owners race for the last free system: exactly one gets it.
    let last = || from_group("mg-r", 1);
    let (x, y) = tokio::join!(reserve(store, last(), "x"), reserve(store, last(), "y"));
    let winners: Vec<&MetalReservation> = [&x, &y]
        .into_iter()
        .filter(|r| matches!(r, MetalReservation::Reserved(_)))
        .collect();
    assert_eq!(winners.len(), 1, "{x:?} / {y:?}");
    assert!(
        [&x, &y]
            .iter()
            .any(|r| **r == MetalReservation::NotEnoughFree { free: 0 }),
        "{x:?} / {y:?}"
    );
    let owner = get(store, "mr-3").await.owner;
    assert!(matches!(owner.as_deref(), Some("x" | "y")));
}
