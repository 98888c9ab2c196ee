//! The inventory over the controller's SQLite store: systems round-trip
//! with their power settings and states, state saves persist across a
//! reopen, reservations take all or nothing, and two owners racing for the
//! last free system get exactly one.

use std::sync::Arc;

use mallee_metal::inventory::{Inventory, InventoryError, Selection};
use mallee_metal::model::{Distro, Install, Profile, State, Step, System};
use mallee_metal::power::{IpmiSpec, PowerSpec};
use mallee_metal::store::StoreInventory;
use mallee_store::MetalIndex;
use mallee_store::metal::MetalDistro;
use mallee_store::sqlite::SqliteStore;

fn system(n: u8, power: PowerSpec) -> System {
    System::new(
        &format!("s{n}"),
        format!("52:54:00:aa:bb:{n:02x}").parse().expect("mac"),
        format!("10.254.9.{n}").parse().expect("ip"),
        "test01",
        power,
    )
    .expect("system")
}

#[tokio::test]
async fn inventory_in_the_store() {
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("m.db");
    let store = Arc::new(SqliteStore::open(&db).await.expect("open"));
    let inv = StoreInventory::new(store.clone());
    inv.put_group("test01", "rack 1").await.expect("group");
    let ipmi = PowerSpec::Ipmi(IpmiSpec {
        host: "10.0.0.5".into(),
        user: "admin".into(),
        password: "pw".into(),
        interface: None,
    });
    let mut s1 = system(1, ipmi.clone());
    s1.variables.insert("role".into(), "db".into());
    s1.variables.insert("slot".into(), "u07".into());
    inv.add_system(&s1).await.expect("s1");
    inv.add_system(&system(2, PowerSpec::Manual))
        .await
        .expect("s2");
    assert!(matches!(
        inv.add_system(&system(1, PowerSpec::Manual)).await,
        Err(InventoryError::Exists { .. })
    ));
    let mut profile = Profile::image("debian", "/srv/debian.raw", 42, &"0".repeat(64));
    profile.agent_args = "quiet".into();
    inv.put_profile(&profile).await.expect("profile");
    assert_eq!(inv.profile("debian").await.expect("get"), Some(profile));
    let got = inv.system("s1").await.expect("get").expect("s1");
    assert_eq!(got.power, ipmi);
    assert_eq!(got.variables, s1.variables, "per-system variables are kept");

    // Installer profiles need their distro, which the inventory finds.
    let mut installer = Profile::image("d12-install", "", 0, "");
    installer.install = Install::Installer {
        distro: "debian12".into(),
        template: "hostname={{ hostname }}\n".into(),
        kernel_args: "priority=critical".into(),
    };
    installer.variables.insert("role".into(), "web".into());
    installer.check_in_port = None;
    assert!(
        inv.put_profile(&installer).await.is_err(),
        "no distro debian12 yet"
    );
    store
        .put_metal_distro(&MetalDistro {
            name: "debian12".into(),
            kernel: "/srv/d12/linux".into(),
            initrd: "/srv/d12/initrd.gz".into(),
            kernel_args: "auto=true url={{ answer_url }}".into(),
            created_at: 1,
        })
        .await
        .expect("distro");
    inv.put_profile(&installer)
        .await
        .expect("installer profile");
    assert_eq!(
        inv.profile("d12-install").await.expect("get"),
        Some(installer)
    );
    assert_eq!(
        inv.distro("debian12").await.expect("distro"),
        Some(Distro {
            name: "debian12".into(),
            kernel: "/srv/d12/linux".into(),
            initrd: "/srv/d12/initrd.gz".into(),
            kernel_args: "auto=true url={{ answer_url }}".into(),
        })
    );
    assert_eq!(inv.distro("nope").await.expect("distro"), None);
    assert!(
        store.delete_metal_distro("debian12").await.is_err(),
        "a distro in use by a profile stays"
    );

    // -n 3 with 2 free: error, nothing reserved.
    let e = inv
        .reserve(
            &Selection::Group {
                group: "test01".into(),
                count: 3,
            },
            "demo",
            5,
        )
        .await
        .expect_err("too many");
    assert_eq!(
        e,
        InventoryError::NotEnoughFree {
            group: "test01".into(),
            wanted: 3,
            free: 2
        }
    );
    assert!(
        inv.systems()
            .await
            .expect("all")
            .iter()
            .all(|s| s.owner.is_none())
    );

    let got = inv
        .reserve(
            &Selection::Group {
                group: "test01".into(),
                count: 1,
            },
            "demo",
            5,
        )
        .await
        .expect("reserve");
    assert_eq!(
        (got[0].name.as_str(), &got[0].state),
        ("s1", &State::Reserved)
    );

    // Two owners race for the last free one: exactly one wins.
    let last = Selection::Group {
        group: "test01".into(),
        count: 1,
    };
    let (a, b) = tokio::join!(inv.reserve(&last, "x", 6), inv.reserve(&last, "y", 6));
    assert_eq!(u8::from(a.is_ok()) + u8::from(b.is_ok()), 1, "{a:?} {b:?}");

    // States survive a reopen (a controller restart).
    let mut s1 = inv.system("s1").await.expect("get").expect("s1");
    s1.state = State::Provisioning {
        step: Step::Deploying,
    };
    s1.token = Some("t0k".into());
    s1.netboot = true;
    s1.deadline = Some(1234);
    inv.save_state(&s1).await.expect("save");
    let mut s2 = inv.system("s2").await.expect("get").expect("s2");
    s2.state = State::Failed {
        reason: "timeout: nothing".into(),
    };
    inv.save_state(&s2).await.expect("save");
    drop(inv);
    drop(store);
    let reopened = StoreInventory::new(Arc::new(SqliteStore::open(&db).await.expect("reopen")));
    assert_eq!(reopened.system("s1").await.expect("get"), Some(s1));
    assert_eq!(reopened.system("s2").await.expect("get"), Some(s2));
}
