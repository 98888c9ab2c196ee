//! The disk wipe policy on a real machine: a QEMU machine (empty qcow2
//! disk, PXE, TCG) on a provisioning bridge in a namespace is provisioned
//! with the installed test system, then released with its group's policy
//! `zero`: it netboots the deploy agent in wipe mode, which zeroes the
//! disk, verifies it and reports `wiped`; only then is it powered off and
//! freed. The machine's qcow2 then reads back as zeros.
//!
//! Needs root, qemu-system-x86_64, qemu-img, dnsmasq, ip and the Debian
//! packages guest/build.sh downloads.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mallee_metal::engine::{EngineConfig, FileImages};
use mallee_metal::inventory::{MemoryInventory, Selection};
use mallee_metal::lab::Lab;
use mallee_metal::model::{Profile, State, System, Wipe};
use mallee_metal::power::PowerSpec;
use mallee_metal::{Engine, Timeouts};

include!("common/support.rs");

async fn wait_state(
    engine: &Engine,
    name: &str,
    what: &str,
    timeout: Duration,
    want: fn(&State) -> bool,
) -> System {
    let start = Instant::now();
    let mut seen = Vec::new();
    loop {
        let s = engine
            .inventory()
            .system(name)
            .await
            .expect("system")
            .expect("exists");
        if seen.last() != Some(&s.state) {
            seen.push(s.state.clone());
        }
        if want(&s.state) {
            eprintln!(
                "{name} {what} after {:?} (states {seen:?})",
                start.elapsed()
            );
            return s;
        }
        assert!(
            !matches!(s.state, State::Failed { .. }),
            "{name} failed: {:?} (last: {:?})",
            s.state,
            s.last_event
        );
        assert!(
            start.elapsed() < timeout,
            "{name} not {what} after {timeout:?}: {:?} (last: {:?}, states {seen:?})",
            s.state,
            s.last_event
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
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
async fn release_with_wipe_zero_leaves_a_zeroed_disk() {
    let images = images();
    let tmp = tempfile::tempdir().expect("tmp");
    let netns = format!("mwipe{}", std::process::id());
    let mut lab = Lab::create(&netns, "10.254.1.1".parse().expect("ip"), 24, tmp.path())
        .await
        .expect("lab");
    let inventory = Arc::new(MemoryInventory::new());
    let machine = lab.add_machine("w1", 160).await.expect("machine");
    let disk = machine.disk.clone();
    let system = System::new(
        "w1",
        "52:54:00:4d:01:01".parse().expect("mac"),
        "10.254.1.11".parse().expect("ip"),
        "wipers",
        PowerSpec::Qemu(machine),
    )
    .expect("system");
    assert_eq!(system.wipe, None, "no policy of its own: the group's");
    inventory.add_system(system).expect("add");
    inventory.set_group_wipe("wipers", Some(Wipe::Zero));
    inventory.put_profile(profile("debian-test", &images.join("installed.raw")));

    let config = EngineConfig {
        network: lab.network(8781),
        agent_kernel: images.join("deploy-vmlinuz"),
        agent_initrd: images.join("deploy-initrd.img"),
        timeouts: Timeouts {
            deploy: Duration::from_secs(600),
            check_in: Duration::from_secs(600),
            release: Duration::from_secs(60),
        },
        tick: Duration::from_millis(250),
    };
    let engine = Engine::start(config, inventory.clone(), Arc::new(FileImages))
        .await
        .expect("engine");

    engine
        .run_instances(&Selection::Names(vec!["w1".into()]), "debian-test", "demo")
        .await
        .expect("run-instances");
    wait_state(&engine, "w1", "running", Duration::from_secs(900), |s| {
        *s == State::Running
    })
    .await;
    let (len, written) = nonzero_bytes(&disk, tmp.path());
    assert_eq!(len, 160 << 20);
    assert!(
        written > 1 << 20,
        "the image is on the disk ({written} non-zero bytes)"
    );

    let s = engine.release("w1").await.expect("release");
    assert_eq!(s.state, State::Wiping { mode: Wipe::Zero }, "{s:?}");
    assert!(s.netboot, "the wipe netboots the agent");
    assert_eq!(s.owner.as_deref(), Some("demo"), "owned while wiping");
    let run_dir = tmp.path().join("w1");
    let freed = wait_state(&engine, "w1", "free", Duration::from_secs(900), |s| {
        *s == State::Free
    })
    .await;
    assert_eq!(
        (freed.owner, freed.token, freed.netboot),
        (None, None, false)
    );
    assert!(
        mallee_qemu::RunningVm::pid_in_run_dir(&run_dir).is_none(),
        "w1 is powered off"
    );
    let log = std::fs::read_to_string(run_dir.join("console.log")).unwrap_or_default();
    assert!(log.contains("MALLEE-DEPLOY: wiping /dev/vda"), "{log}");
    assert!(
        log.contains("MALLEE-DEPLOY: verify: 0 non-zero bytes in the first MiB, 0 in the last"),
        "{log}"
    );
    let (len, left) = nonzero_bytes(&disk, tmp.path());
    assert_eq!((len, left), (160 << 20, 0), "the disk reads back as zeros");

    engine.shutdown(true).await;
    lab.destroy().await.expect("destroy lab");
}
