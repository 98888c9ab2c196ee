//! Installer profiles and the SSH check-in fallback with real machines:
//! two QEMU machines (TCG, empty disks, PXE) on a provisioning bridge in a
//! network namespace, real dnsmasq and HTTP.
//!
//! - m1 gets an installer profile: iPXE boots the distro (the test
//!   installer of guest/metal/build.sh) with kernel arguments rendered
//!   from templates, the installer fetches its answer file rendered for
//!   m1 (built-in variables, the profile's and m1's own), partitions and
//!   writes the disk as it says, runs its late command, reports
//!   `installed`; the installed system checks in with the facts the answer
//!   file left in it. Its profile has no check-in fallback: only the POST
//!   counts.
//! - m2 gets an image whose system runs dropbear but never checks in: it
//!   is running once its SSH port answers.
//!
//! Needs root, qemu-system-x86_64, dnsmasq, ip, debugfs and the Debian
//! packages guest/build.sh downloads.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mallee_metal::engine::{EngineConfig, FileImages};
use mallee_metal::inventory::{Inventory, MemoryInventory, Selection};
use mallee_metal::lab::Lab;
use mallee_metal::model::{Distro, Install, Profile, State, System};
use mallee_metal::power::PowerSpec;
use mallee_metal::{Engine, Timeouts};

include!("common/support.rs");

async fn wait_running(engine: &Engine, names: &[&str], timeout: Duration) -> Vec<System> {
    let start = Instant::now();
    loop {
        let chosen: Vec<System> = engine
            .systems()
            .await
            .expect("systems")
            .into_iter()
            .filter(|s| names.contains(&s.name.as_str()))
            .collect();
        for s in &chosen {
            assert!(
                !matches!(s.state, State::Failed { .. }),
                "{} failed: {:?} (last: {:?})",
                s.name,
                s.state,
                s.last_event
            );
        }
        if chosen.iter().all(|s| s.state == State::Running) {
            eprintln!("{names:?} running after {:?}", start.elapsed());
            return chosen;
        }
        assert!(
            start.elapsed() < timeout,
            "{names:?} not running after {timeout:?}: {:#?}",
            chosen
                .iter()
                .map(|s| (&s.name, &s.state, &s.last_event))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn vars(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installer_profile_and_ssh_fallback() {
    let images = images();
    let tmp = tempfile::tempdir().expect("tmp");
    let netns = format!("minst{}", std::process::id());
    let mut lab = Lab::create(&netns, "10.254.1.1".parse().expect("ip"), 24, tmp.path())
        .await
        .expect("lab");
    let inventory = Arc::new(MemoryInventory::new());
    for i in 1..=2u8 {
        let name = format!("m{i}");
        let machine = lab.add_machine(&name, 256).await.expect("machine");
        let mut system = System::new(
            &name,
            format!("52:54:00:4e:00:0{i}").parse().expect("mac"),
            format!("10.254.1.1{i}").parse().expect("ip"),
            "rack2",
            PowerSpec::Qemu(machine),
        )
        .expect("system");
        if i == 1 {
            system.variables = vars(&[("slot", "u07"), ("role", "db")]);
        }
        inventory.add_system(system).expect("add");
    }
    inventory.put_distro(Distro {
        name: "mallee-test".into(),
        kernel: images.join("installer-vmlinuz").display().to_string(),
        initrd: images.join("installer-initrd.img").display().to_string(),
        kernel_args: "console=ttyS0 root=initramfs panic=30 mallee.answer={{ answer_url }}".into(),
    });
    let template = std::fs::read_to_string(images.join("answer.tmpl")).expect("answer.tmpl");
    let mut installer = Profile::image("test-install", "", 0, "");
    installer.install = Install::Installer {
        distro: "mallee-test".into(),
        template,
        kernel_args: "mallee.role={{ role | none }}".into(),
    };
    // The profile's variables: m1's own role overrides this one.
    installer.variables = vars(&[("role", "web"), ("root_mib", "80")]);
    installer.check_in_port = None;
    inventory.put_profile(installer);
    let sha = std::fs::read_to_string(images.join("sshonly.sha256")).expect("sha");
    let size = std::fs::metadata(images.join("sshonly.raw"))
        .expect("image")
        .len();
    inventory.put_profile(Profile::image(
        "ssh-only",
        &images.join("sshonly.raw").display().to_string(),
        size,
        sha.trim(),
    ));

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
    let dir = tmp.path().to_owned();
    let outcome = tokio::spawn(scenario(config.clone(), inventory, dir)).await;
    // Whatever happened: dnsmasq stopped, machines off, namespace gone.
    if let Ok(pid) = std::fs::read_to_string(config.network.state_dir.join("dnsmasq.pid")) {
        let _ = std::process::Command::new("kill").arg(pid.trim()).status();
    }
    lab.destroy().await.expect("destroy lab");
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

async fn scenario(config: EngineConfig, inventory: Arc<MemoryInventory>, dir: PathBuf) {
    let tmp = dir.as_path();
    let engine = Engine::start(config, inventory.clone(), Arc::new(FileImages))
        .await
        .expect("engine");

    // The answer file as m1 will get it (an administrator's preview).
    let preview = engine
        .preview_answer_file("m1", "test-install")
        .await
        .expect("preview");
    assert!(preview.contains("\nhostname=m1\n"), "{preview}");
    assert!(preview.contains("\nroot_mib=80\n"), "{preview}");
    assert!(preview.contains("\ndisk=/dev/vda\n"), "{preview}");
    assert!(preview.contains("role=db\\nslot=u07"), "{preview}");
    assert!(
        !preview.contains("{{"),
        "every variable is rendered: {preview}"
    );
    // Unset variables without a fallback are refused with the line.
    let mut broken = inventory
        .profile("test-install")
        .await
        .expect("get")
        .expect("profile");
    broken.name = "broken".into();
    if let Install::Installer { template, .. } = &mut broken.install {
        *template = "disk=/dev/vda\nhostname={{ nickname }}\n".into();
    }
    inventory.put_profile(broken);
    let err = engine
        .preview_answer_file("m1", "broken")
        .await
        .expect_err("nickname is not set");
    assert!(
        err.to_string()
            .contains("line 2: variable nickname is not set"),
        "{err}"
    );

    let m1 = engine
        .run_instances(&Selection::Names(vec!["m1".into()]), "test-install", "demo")
        .await
        .expect("run m1");
    let token = m1[0].token.clone().expect("token");
    let m2 = engine
        .run_instances(&Selection::Names(vec!["m2".into()]), "ssh-only", "demo")
        .await
        .expect("run m2");
    assert!(m2[0].netboot);

    let running = wait_running(&engine, &["m1", "m2"], Duration::from_secs(900)).await;
    let log1 = console_once_it_has(tmp, "m1", "MALLEE-METAL: checked in").await;
    assert!(
        log1.contains(&format!(
            "Command line: console=ttyS0 root=initramfs panic=30 mallee.answer=http://10.254.1.1:8781/answer/{token} mallee.role=db"
        )),
        "the distro kernel with its rendered arguments: {log1}"
    );
    assert!(
        log1.contains("MALLEE-INSTALL: answer file: disk=/dev/vda hostname=m1 root_mib=80"),
        "{log1}"
    );
    assert!(
        log1.contains("MALLEE-INSTALL: installed; server says provisioning"),
        "{log1}"
    );
    assert!(log1.contains("MALLEE-METAL: checked in"), "{log1}");
    assert!(
        !log1.contains("MALLEE-DEPLOY"),
        "an installer profile does not run the deploy agent"
    );
    let m1 = &running[0];
    assert!(!m1.netboot);
    let said = m1.last_event.as_deref().unwrap_or_default();
    for fact in [
        "installed system checked in:",
        "ip=10.254.1.11",
        "system=m1",
        "profile=test-install",
        "role=db",
        "slot=u07",
    ] {
        assert!(said.contains(fact), "{fact} in {said}");
    }
    // The answer file is served only while m1 is being installed.
    assert!(matches!(
        engine.answer_file(&token).await,
        Err(mallee_metal::EngineError::Rejected(_))
    ));

    let m2 = &running[1];
    assert_eq!(
        m2.last_event.as_deref(),
        Some("installed system answers on port 22 (no check-in)")
    );
    let log2 = console(tmp, "m2");
    assert!(
        log2.contains("MALLEE-DEPLOY: server says provisioning"),
        "{log2}"
    );
    assert!(log2.contains("sshd started"), "{log2}");
    assert!(!log2.contains("MALLEE-METAL: checked in"), "{log2}");

    engine.release_owner("demo").await.expect("release");
    let start = Instant::now();
    while !engine
        .systems()
        .await
        .expect("systems")
        .iter()
        .all(|s| s.state == State::Free)
    {
        assert!(start.elapsed() < Duration::from_secs(60), "not released");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    engine.shutdown(true).await;
}
