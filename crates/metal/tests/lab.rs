//! The bare-metal lab end to end: three QEMU machines with empty disks on a
//! provisioning bridge in a network namespace, the engine with real dnsmasq
//! and its HTTP server. Two machines are provisioned: they PXE boot (QEMU's
//! iPXE ROM), run the deploy agent, get the image written and verified,
//! reboot from disk into the installed system and check in; the third
//! stays free. Release powers one off at once; the other, by its group's
//! wipe policy `zero`, first netboots the deploy agent in wipe mode, which
//! zeroes the disk, verifies it and reports `wiped` (its qcow2 then reads
//! back as zeros). Then (after an engine restart with a short check-in
//! timeout) a machine whose image never checks in goes to failed with the
//! reason, and is released.
//!
//! Needs root, qemu-system-x86_64, qemu-img, dnsmasq, ip, debugfs and the
//! Debian packages guest/build.sh downloads.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mallee_metal::engine::{EngineConfig, FileImages};
use mallee_metal::inventory::{InventoryError, MemoryInventory, Selection};
use mallee_metal::lab::Lab;
use mallee_metal::model::{Profile, State, System, Wipe};
use mallee_metal::power::PowerSpec;
use mallee_metal::{Engine, EngineError, Timeouts};

include!("common/support.rs");

async fn wait_for(
    engine: &Engine,
    names: &[&str],
    what: &str,
    timeout: Duration,
    pred: impl Fn(&System) -> bool,
) -> Vec<System> {
    let start = Instant::now();
    loop {
        let systems = engine.systems().await.expect("systems");
        let chosen: Vec<System> = systems
            .into_iter()
            .filter(|s| names.contains(&s.name.as_str()))
            .collect();
        if chosen.iter().all(&pred) {
            eprintln!("{names:?} {what} after {:?}", start.elapsed());
            return chosen;
        }
        assert!(
            start.elapsed() < timeout,
            "{names:?} not {what} after {timeout:?}: {:#?}",
            chosen
                .iter()
                .map(|s| (&s.name, &s.state, &s.last_event))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The qcow2 `disk` as raw bytes: (its length, how many are not zero).
fn nonzero_bytes(disk: &Path, tmp: &Path) -> (u64, u64) {
    let raw = tmp.join("check.raw");
    let out = std::process::Command::new("qemu-img")
        .args(["convert", "-U", "-f", "qcow2", "-O", "raw"])
        .arg(disk)
        .arg(&raw)
        .output()
        .expect("qemu-img convert");
    assert!(
        out.status.success(),
        "qemu-img convert: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut f = std::fs::File::open(&raw).expect("open raw");
    let mut buf = vec![0u8; 1 << 20];
    let (mut len, mut nonzero) = (0u64, 0u64);
    loop {
        let n = f.read(&mut buf).expect("read raw");
        if n == 0 {
            break;
        }
        len += n as u64;
        nonzero += buf[..n].iter().filter(|b| **b != 0).count() as u64;
    }
    std::fs::remove_file(&raw).expect("remove raw");
    (len, nonzero)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_machine_lab() {
    let images = images();
    let tmp = tempfile::tempdir().expect("tmp");
    let netns = format!("mlab{}", std::process::id());
    let mut lab = Lab::create(&netns, "10.254.0.1".parse().expect("ip"), 24, tmp.path())
        .await
        .expect("lab");
    let inventory = Arc::new(MemoryInventory::new());
    // The group wipes released machines; m1 and m3 say otherwise on their
    // own, m2 follows the group.
    inventory.set_group_wipe("test01", Some(Wipe::Zero));
    let mut m2_disk = None;
    for i in 1..=3u8 {
        let name = format!("m{i}");
        let machine = lab.add_machine(&name, 256).await.expect("machine");
        if i == 2 {
            m2_disk = Some(machine.disk.clone());
        }
        let mut system = System::new(
            &name,
            format!("52:54:00:4d:00:0{i}").parse().expect("mac"),
            format!("10.254.0.1{i}").parse().expect("ip"),
            "test01",
            PowerSpec::Qemu(machine),
        )
        .expect("system");
        assert_eq!(system.wipe, None, "no policy of its own: the group's");
        if i != 2 {
            system.wipe = Some(Wipe::None);
        }
        inventory.add_system(system).expect("add");
    }
    let m2_disk = m2_disk.expect("m2's disk");
    inventory.put_profile(profile("debian-test", &images.join("installed.raw")));
    // An image that installs fine but never boots (no boot loader): the
    // machine never checks in.
    let blank = tmp.path().join("blank.raw");
    std::fs::write(&blank, vec![0u8; 4 << 20]).expect("blank image");
    inventory.put_profile(profile("blank", &blank));

    let config = EngineConfig {
        network: lab.network(8780),
        agent_kernel: images.join("deploy-vmlinuz"),
        agent_initrd: images.join("deploy-initrd.img"),
        timeouts: Timeouts {
            deploy: Duration::from_secs(600),
            check_in: Duration::from_secs(600),
            release: Duration::from_secs(60),
        },
        tick: Duration::from_millis(250),
    };
    let engine = Engine::start(config.clone(), inventory.clone(), Arc::new(FileImages))
        .await
        .expect("engine");

    // Two of three: reserved and provisioned in one call.
    let started = engine
        .run_instances(
            &Selection::Group {
                group: "test01".into(),
                count: 2,
            },
            "debian-test",
            "demo",
        )
        .await
        .expect("run-instances");
    let names: Vec<&str> = started.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["m1", "m2"]);
    for s in &started {
        assert!(matches!(s.state, State::Provisioning { .. }), "{s:?}");
        assert!(s.netboot);
    }
    // Two more than are free: refused, and nothing reserved.
    let err = engine
        .run_instances(
            &Selection::Group {
                group: "test01".into(),
                count: 2,
            },
            "debian-test",
            "other",
        )
        .await
        .expect_err("only one free");
    assert!(
        matches!(
            err,
            EngineError::Inventory(InventoryError::NotEnoughFree {
                free: 1,
                wanted: 2,
                ..
            })
        ),
        "{err}"
    );

    let running = wait_for(
        &engine,
        &["m1", "m2"],
        "running",
        Duration::from_secs(900),
        |s| {
            assert!(
                !matches!(s.state, State::Failed { .. }),
                "{} failed: {:?}",
                s.name,
                s.state
            );
            s.state == State::Running
        },
    )
    .await;
    for s in &running {
        assert!(!s.netboot, "netboot is off once installed");
        assert_eq!(s.owner.as_deref(), Some("demo"));
        let log = console_once_it_has(tmp.path(), &s.name, "MALLEE-METAL: checked in").await;
        assert!(
            log.contains("MALLEE-DEPLOY: server says provisioning"),
            "{log}"
        );
        assert!(log.contains("MALLEE-METAL: checked in"), "{log}");
        assert!(
            log.contains(&format!("network up eth0 {}/24", s.ip)),
            "{log}"
        );
    }
    let m3 = engine
        .inventory()
        .system("m3")
        .await
        .expect("get")
        .expect("m3");
    assert_eq!((m3.state, m3.owner), (State::Free, None));
    assert!(
        mallee_qemu::RunningVm::pid_in_run_dir(&tmp.path().join("m3")).is_none(),
        "m3 never powered on"
    );

    let (len, written) = nonzero_bytes(&m2_disk, tmp.path());
    assert_eq!(len, 256 << 20);
    assert!(
        written > 1 << 20,
        "the image is on m2's disk ({written} non-zero bytes)"
    );

    // Terminate: m1 straight back in the pool; m2 first netboots the agent,
    // which zeroes its disk, owned while wiping; both end powered off.
    let released = engine.release_owner("demo").await.expect("release");
    assert_eq!(released.len(), 2);
    let m2 = released.iter().find(|s| s.name == "m2").expect("m2");
    assert_eq!(m2.state, State::Wiping { mode: Wipe::Zero }, "{m2:?}");
    assert!(m2.netboot, "the wipe netboots the agent");
    assert_eq!(m2.owner.as_deref(), Some("demo"), "owned while wiping");
    let m1 = released.iter().find(|s| s.name == "m1").expect("m1");
    assert!(!matches!(m1.state, State::Wiping { .. }), "{m1:?}");
    let freed = wait_for(
        &engine,
        &["m1", "m2"],
        "free",
        Duration::from_secs(900),
        |s| s.state == State::Free && s.owner.is_none(),
    )
    .await;
    for s in &freed {
        assert_eq!((&s.token, s.netboot), (&None, false), "{s:?}");
    }
    for n in ["m1", "m2"] {
        assert!(
            mallee_qemu::RunningVm::pid_in_run_dir(&tmp.path().join(n)).is_none(),
            "{n} still on"
        );
    }
    let log = console(tmp.path(), "m2");
    assert!(log.contains("MALLEE-DEPLOY: wiping /dev/vda"), "{log}");
    assert!(
        log.contains("MALLEE-DEPLOY: verify: 0 non-zero bytes in the first MiB, 0 in the last"),
        "{log}"
    );
    assert!(!console(tmp.path(), "m1").contains("MALLEE-DEPLOY: wiping"));
    assert_eq!(
        nonzero_bytes(&m2_disk, tmp.path()),
        (256 << 20, 0),
        "m2's disk reads back as zeros"
    );

    // Restart the engine (dnsmasq keeps running) with a short check-in
    // timeout; a machine whose installed system never checks in fails.
    engine.shutdown(false).await;
    let short = EngineConfig {
        timeouts: Timeouts {
            check_in: Duration::from_secs(20),
            ..config.timeouts
        },
        ..config
    };
    let engine = Engine::start(short, inventory.clone(), Arc::new(FileImages))
        .await
        .expect("engine restart");
    engine
        .run_instances(&Selection::Names(vec!["m3".into()]), "blank", "qa")
        .await
        .expect("run m3");
    let failed = wait_for(&engine, &["m3"], "failed", Duration::from_secs(600), |s| {
        matches!(s.state, State::Failed { .. })
    })
    .await;
    let State::Failed { reason } = &failed[0].state else {
        unreachable!()
    };
    assert!(
        reason.contains("the installed system did not check in within 20s"),
        "{reason}"
    );
    assert!(console(tmp.path(), "m3").contains("MALLEE-DEPLOY: server says provisioning"));
    engine.release("m3").await.expect("release m3");
    wait_for(&engine, &["m3"], "free", Duration::from_secs(60), |s| {
        s.state == State::Free
    })
    .await;
    assert!(mallee_qemu::RunningVm::pid_in_run_dir(&tmp.path().join("m3")).is_none());

    engine.shutdown(true).await;
    lab.destroy().await.expect("destroy lab");
}
