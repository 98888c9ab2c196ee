//! Integration tests against real QEMU processes (no mocks).
//!
//! Needs `qemu-system-x86_64` and a probe guest (kernel + busybox initramfs).
//! The guest comes from `MALLEE_QEMU_TEST_KERNEL` / `MALLEE_QEMU_TEST_INITRD`
//! if set, else `tests/probe-guest/build.sh` builds it once into the target
//! directory (needs `busybox-static` and `apt-get download`). A missing
//! prerequisite fails the test with a clear message; nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mallee_qemu::accel::{Accel, AccelRequest, DEFAULT_MARKER, KERNEL_ONLY_MARKER, KvmProbe};
use mallee_qemu::qmp::{QmpClient, QmpError, RunState};
use mallee_qemu::vm::{
    Boot, Disk, DiskFormat, DiskSource, Nic, NicBackend, RunningVm, VmError, VmSpec,
};
use serde_json::Value;

const QEMU: &str = "qemu-system-x86_64";

fn require_qemu() {
    let ok = Command::new(QEMU)
        .arg("--version")
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    assert!(
        ok,
        "{QEMU} is not runnable: install the Debian package qemu-system-x86"
    );
}

/// The probe guest's kernel and initramfs, built once per target directory.
fn probe_guest() -> (PathBuf, PathBuf) {
    static LOCK: Mutex<()> = Mutex::new(());
    let _guard = LOCK
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let (Ok(k), Ok(i)) = (
        std::env::var("MALLEE_QEMU_TEST_KERNEL"),
        std::env::var("MALLEE_QEMU_TEST_INITRD"),
    ) {
        let (k, i) = (PathBuf::from(k), PathBuf::from(i));
        assert!(k.is_file() && i.is_file(), "{k:?} / {i:?} missing");
        return (k, i);
    }
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("mallee-qemu-probe-guest");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/probe-guest/build.sh");
    let res = Command::new("sh")
        .arg(&script)
        .arg(&out)
        .output()
        .expect("run build.sh");
    assert!(
        res.status.success(),
        "building the probe guest with {} failed (needs busybox-static and apt-get download \
         linux-image-cloud-amd64; or set MALLEE_QEMU_TEST_KERNEL/INITRD): {}",
        script.display(),
        String::from_utf8_lossy(&res.stderr)
    );
    (out.join("vmlinuz"), out.join("initrd.img"))
}

fn tcg_spec(dir: &Path) -> VmSpec {
    let (kernel, initrd) = probe_guest();
    let disk = dir.join("disk.raw");
    std::fs::write(&disk, vec![0u8; 1 << 20]).expect("disk image");
    VmSpec {
        name: "i-0000000000000test".into(),
        vcpus: 1,
        memory_mib: 256,
        accel: Accel::Tcg,
        cpu_model: None,
        boot: Boot::Kernel {
            kernel,
            initrd: Some(initrd),
            cmdline: "console=ttyS0 panic=-1".into(),
        },
        disks: vec![Disk {
            source: DiskSource::file(disk, DiskFormat::Raw),
            read_only: false,
            id: None,
            serial: None,
        }],
        nics: vec![Nic {
            backend: NicBackend::User { hostfwd: vec![] },
            mac: "52:54:00:12:34:56".into(),
        }],
        serial_log: dir.join("console.log"),
        run_dir: dir.join("run"),
        keep_on_shutdown: false,
    }
}

/// Kills a test VM when a test fails half-way, so no QEMU is left behind.
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill")
                .args(["-9", &self.0.to_string()])
                .status();
        }
    }
}

fn count(log: &Path, needle: &str) -> usize {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .matches(needle)
        .count()
}

/// Waits until `needle` occurs at least `n` times in the serial log.
async fn wait_serial(log: &Path, needle: &str, n: usize, timeout: Duration) -> Duration {
    let start = Instant::now();
    while count(log, needle) < n {
        assert!(
            start.elapsed() < timeout,
            "{needle:?} (x{n}) not in the serial log within {timeout:?}:\n{}",
            std::fs::read_to_string(log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    start.elapsed()
}

fn stat_field(pid: u32, index_after_comm: usize) -> String {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    let rest = &stat[stat.rfind(')').expect(")") + 1..];
    rest.split_whitespace()
        .nth(index_after_comm)
        .expect("field")
        .to_owned()
}

#[tokio::test]
async fn qmp_against_machine_none() {
    require_qemu();
    let dir = tempfile::tempdir().expect("tempdir");
    let sock = dir.path().join("qmp.sock");
    let mut child = tokio::process::Command::new(QEMU)
        .args([
            "-machine",
            "none",
            "-nodefaults",
            "-display",
            "none",
            "-qmp",
        ])
        .arg(format!("unix:{},server=on,wait=off", sock.display()))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn qemu");
    // The socket file appears at bind(), slightly before listen(): retry.
    let start = Instant::now();
    let qmp = loop {
        match QmpClient::connect(&sock).await {
            Ok(q) => break q,
            Err(e) => assert!(
                start.elapsed() < Duration::from_secs(10),
                "no QMP socket: {e}"
            ),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    assert!(qmp.greeting()["QMP"]["version"]["qemu"]["major"].as_u64() >= Some(7));

    let st = qmp.query_status().await.expect("query-status");
    assert_eq!(st.state, RunState::Running);
    assert!(st.running);

    // Ids route replies: issue several commands concurrently.
    let (a, b, c) = tokio::join!(
        qmp.execute("query-version", Value::Null),
        qmp.execute("query-name", Value::Null),
        qmp.execute("query-kvm", Value::Null),
    );
    assert!(a.expect("version")["qemu"].is_object());
    assert!(b.expect("name").is_object());
    assert!(c.expect("kvm")["present"].is_boolean());

    let err = qmp
        .execute("no-such-command", Value::Null)
        .await
        .expect_err("unknown command");
    assert!(
        matches!(&err, QmpError::Command { class, .. } if class == "CommandNotFound"),
        "{err}"
    );

    // Events: stop/cont produce STOP/RESUME.
    let mut events = qmp.subscribe();
    qmp.stop().await.expect("stop");
    QmpClient::wait_event(&mut events, "STOP", Duration::from_secs(5), |_| true)
        .await
        .expect("STOP event");
    assert_eq!(
        qmp.query_status().await.expect("status").state,
        RunState::Paused
    );
    qmp.cont().await.expect("cont");
    QmpClient::wait_event(&mut events, "RESUME", Duration::from_secs(5), |_| true)
        .await
        .expect("RESUME event");
    assert_eq!(qmp.last_event().map(|e| e.event).as_deref(), Some("RESUME"));

    // object-add, and the error of an id in use (which the node agent's
    // NBD hot-plug tells apart: every NBD disk of a VM shares one TLS
    // object, added by the first).
    let secret = serde_json::json!({"qom-type": "secret", "id": "sec0", "data": "x"});
    qmp.object_add(secret.clone()).await.expect("object-add");
    let err = qmp.object_add(secret).await.expect_err("id in use");
    assert!(
        matches!(&err, QmpError::Command { desc, .. } if desc.contains("duplicate property")),
        "{err}"
    );

    // QEMU serves one client at a time: a second one gets no greeting.
    let second = QmpClient::connect_timeout(&sock, Duration::from_millis(300)).await;
    assert!(
        matches!(second, Err(QmpError::GreetingTimeout(_))),
        "{second:?}"
    );

    qmp.quit().await.expect("quit");
    tokio::time::timeout(Duration::from_secs(5), qmp.closed())
        .await
        .expect("connection closes after quit");
    assert!(matches!(
        qmp.execute("query-status", Value::Null).await,
        Err(QmpError::Disconnected)
    ));
    let status = tokio::time::timeout(Duration::from_secs(5), child.wait())
        .await
        .expect("qemu exits")
        .expect("wait");
    assert!(status.success());
}

/// Full TCG boot, then a new handle adopts the VM (an agent restart), then
/// the guest powers off on the ACPI button and the process exit is noticed.
#[tokio::test]
async fn tcg_boot_adopt_and_powerdown() {
    require_qemu();
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = tcg_spec(dir.path());
    let started = Instant::now();
    let vm = RunningVm::launch(&spec).await.expect("launch");
    let _guard = KillOnPanic(vm.pid());
    let launched = started.elapsed();
    let pid = vm.pid();
    wait_serial(&spec.serial_log, DEFAULT_MARKER, 1, Duration::from_secs(60)).await;
    let booted = started.elapsed();
    println!("TCG: launch returned after {launched:?}, serial marker after {booted:?}");
    wait_serial(
        &spec.serial_log,
        "MALLEE-PROBE: waiting for power button",
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(
        count(&spec.serial_log, "MALLEE-PROBE: disk vda"),
        1,
        "virtio disk not seen by the guest"
    );
    assert_eq!(vm.status().await.expect("status").state, RunState::Running);

    // QEMU is detached: not our child, not in our session.
    assert_ne!(stat_field(pid, 1), std::process::id().to_string(), "ppid");
    assert_ne!(
        stat_field(pid, 3),
        stat_field(std::process::id(), 3),
        "session"
    );

    // A second launch in the same run directory is refused.
    let again = RunningVm::launch(&spec).await;
    assert!(
        matches!(again, Err(VmError::AlreadyRunning { pid: p, .. }) if p == pid),
        "{again:?}"
    );

    // "Agent restart": drop the handle, adopt from the run directory.
    drop(vm);
    let vm = RunningVm::adopt(&spec.run_dir).await.expect("adopt");
    assert_eq!(vm.pid(), pid);
    assert!(vm.is_alive());
    assert_eq!(vm.status().await.expect("status").state, RunState::Running);
    assert_eq!(
        count(&spec.serial_log, DEFAULT_MARKER),
        1,
        "adopting must not reboot"
    );

    let mut events = vm.qmp().subscribe();
    let t = Instant::now();
    vm.powerdown().await.expect("powerdown");
    let ev = QmpClient::wait_event(&mut events, "SHUTDOWN", Duration::from_secs(30), |_| true)
        .await
        .expect("SHUTDOWN event");
    assert_eq!(ev.data["guest"], Value::Bool(true), "{ev:?}");
    vm.wait_exit_timeout(Duration::from_secs(10))
        .await
        .expect("QEMU exits after guest poweroff");
    println!("powerdown to process exit: {:?}", t.elapsed());
    assert!(!vm.is_alive());
    tokio::time::timeout(Duration::from_secs(2), vm.qmp().closed())
        .await
        .expect("QMP connection closed");

    let gone = RunningVm::adopt(&spec.run_dir).await;
    assert!(matches!(gone, Err(VmError::NotRunning { .. })), "{gone:?}");
}

/// `keep_on_shutdown`: reset reboots, poweroff leaves QEMU in `shutdown`,
/// kill ends it; a SIGKILL from outside is noticed at once.
#[tokio::test]
async fn tcg_reset_keep_on_shutdown_and_kill() {
    require_qemu();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = tcg_spec(dir.path());
    spec.keep_on_shutdown = true;
    let vm = RunningVm::launch(&spec).await.expect("launch");
    let _guard = KillOnPanic(vm.pid());
    wait_serial(
        &spec.serial_log,
        "MALLEE-PROBE: waiting for power button",
        1,
        Duration::from_secs(60),
    )
    .await;

    let mut events = vm.qmp().subscribe();
    vm.reset().await.expect("reset");
    QmpClient::wait_event(&mut events, "RESET", Duration::from_secs(5), |_| true)
        .await
        .expect("RESET event");
    wait_serial(
        &spec.serial_log,
        "MALLEE-PROBE: waiting for power button",
        2,
        Duration::from_secs(60),
    )
    .await;

    vm.pause().await.expect("pause");
    assert_eq!(vm.status().await.expect("status").state, RunState::Paused);
    vm.resume().await.expect("resume");

    vm.powerdown().await.expect("powerdown");
    QmpClient::wait_event(&mut events, "SHUTDOWN", Duration::from_secs(30), |_| true)
        .await
        .expect("SHUTDOWN event");
    let st = vm.status().await.expect("status after guest poweroff");
    assert_eq!(st.state, RunState::Shutdown);
    assert!(vm.is_alive(), "-no-shutdown keeps QEMU alive");

    // Adopting still works in that state, and reports it.
    drop(vm);
    let vm = RunningVm::adopt(&spec.run_dir).await.expect("adopt");
    assert_eq!(vm.status().await.expect("status").state, RunState::Shutdown);
    vm.kill().await.expect("kill");
    assert!(!vm.is_alive());

    // A VM killed behind the agent's back is noticed within moments.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let spec2 = tcg_spec(dir2.path());
    let vm2 = RunningVm::launch(&spec2).await.expect("launch");
    let _guard2 = KillOnPanic(vm2.pid());
    let t = Instant::now();
    let st = Command::new("kill")
        .args(["-9", &vm2.pid().to_string()])
        .status()
        .expect("kill");
    assert!(st.success());
    vm2.wait_exit_timeout(Duration::from_secs(5))
        .await
        .expect("death noticed");
    println!("external SIGKILL noticed after {:?}", t.elapsed());
    tokio::time::timeout(Duration::from_secs(2), vm2.qmp().closed())
        .await
        .expect("QMP connection closed");
}

/// Disk boot of a raw image that is not bootable: SeaBIOS runs and QEMU stays
/// up (proves the HVM argv is accepted); the serial log is created.
#[tokio::test]
async fn tcg_disk_boot_starts() {
    require_qemu();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut spec = tcg_spec(dir.path());
    spec.boot = Boot::Disk;
    let vm = RunningVm::launch(&spec).await.expect("launch");
    let _guard = KillOnPanic(vm.pid());
    assert_eq!(vm.status().await.expect("status").state, RunState::Running);
    assert!(spec.serial_log.exists());
    vm.quit().await.expect("quit");
    assert!(!vm.is_alive());
}

/// `auto` with a marker that never appears must give up after the timeout
/// and choose TCG, on any host (here: paravirtual KVM, where the stock
/// kernel hangs with the `qemu64` CPU model).
#[tokio::test]
async fn auto_falls_back_to_tcg_on_probe_timeout() {
    require_qemu();
    let (kernel, initrd) = probe_guest();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut probe = KvmProbe::new(kernel, Some(initrd), dir.path().join("probe"));
    probe.cpu_model = Some("qemu64".into());
    probe.marker = "MARKER-THAT-NEVER-APPEARS".into();
    probe.timeout = Duration::from_secs(3);
    let t = Instant::now();
    let choice = AccelRequest::Auto.resolve(&probe).await.expect("resolve");
    println!("auto (timeout probe): {choice:?} after {:?}", t.elapsed());
    assert_eq!(choice.accel, Accel::Tcg);
    if Path::new("/dev/kvm").exists() {
        assert!(
            choice.reason.contains("did not print") || choice.reason.contains("could not start"),
            "{}",
            choice.reason
        );
        assert!(t.elapsed() >= Duration::from_secs(3) || choice.reason.contains("could not start"));
    }
    // The probe VM is gone.
    assert!(RunningVm::adopt(&dir.path().join("probe")).await.is_err());
}

/// `auto` with the real probe guest and defaults. On these machines
/// (`/dev/kvm` is paravirtual) it must pick TCG; set
/// `MALLEE_TEST_EXPECT_AUTO_ACCEL=kvm` on a host with working KVM.
#[tokio::test]
async fn auto_resolves_on_this_host() {
    require_qemu();
    let (kernel, initrd) = probe_guest();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut probe = KvmProbe::new(kernel, Some(initrd), dir.path().join("probe"));
    probe.timeout = Duration::from_secs(10);
    let t = Instant::now();
    let choice = AccelRequest::Auto.resolve(&probe).await.expect("resolve");
    println!("auto (this host): {choice:?} after {:?}", t.elapsed());
    let expect = std::env::var("MALLEE_TEST_EXPECT_AUTO_ACCEL").unwrap_or_else(|_| "tcg".into());
    assert_eq!(choice.accel.to_string(), expect, "{}", choice.reason);
    match choice.accel {
        Accel::Tcg => assert!(choice.reason.contains("using TCG"), "{}", choice.reason),
        Accel::Kvm => assert!(
            choice.reason.contains("booted under KVM"),
            "{}",
            choice.reason
        ),
    }
}

/// Hot-plug primitives the volumes work needs: blockdev-add + device_add
/// makes a disk appear in the guest, device_del (ACPI unplug, the guest
/// cooperates) + blockdev-del remove it.
#[tokio::test]
async fn tcg_hotplug_disk() {
    require_qemu();
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = tcg_spec(dir.path());
    let vm = RunningVm::launch(&spec).await.expect("launch");
    let _guard = KillOnPanic(vm.pid());
    wait_serial(
        &spec.serial_log,
        "MALLEE-PROBE: waiting for power button",
        1,
        Duration::from_secs(60),
    )
    .await;
    let vol = dir.path().join("vol.qcow2");
    let out = Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2"])
        .arg(&vol)
        .arg("8M")
        .output()
        .expect("qemu-img (Debian package qemu-utils) must be installed");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let qmp = vm.qmp();
    qmp.blockdev_add_file("vol-1", &vol, DiskFormat::Qcow2, false)
        .await
        .expect("blockdev-add");
    qmp.device_add(
        "virtio-blk-pci",
        "vol-1-dev",
        serde_json::json!({"drive": "vol-1"}),
    )
    .await
    .expect("device_add");
    // The guest kernel logs the new disk on the serial console.
    wait_serial(&spec.serial_log, "[vdb]", 1, Duration::from_secs(30)).await;

    let err = qmp
        .device_add(
            "virtio-blk-pci",
            "vol-1-dev",
            serde_json::json!({"drive": "vol-1"}),
        )
        .await
        .expect_err("duplicate id");
    assert!(matches!(err, QmpError::Command { .. }), "{err}");

    qmp.device_del_wait("vol-1-dev", Duration::from_secs(30))
        .await
        .expect("DEVICE_DELETED");
    qmp.blockdev_del("vol-1").await.expect("blockdev-del");
    let nodes = qmp
        .execute("query-named-block-nodes", Value::Null)
        .await
        .expect("query-named-block-nodes");
    assert!(
        !nodes.to_string().contains("\"vol-1\""),
        "vol-1 still present: {nodes}"
    );
    vm.kill().await.expect("kill");
}

/// The kernel-only probe (any stock kernel, no initramfs) proves the kernel
/// ran by its "cannot mount root" panic; booted here under TCG, where it
/// always works, with exactly the probe's command line and marker.
#[tokio::test]
async fn kernel_only_probe_marker_appears_under_tcg() {
    require_qemu();
    let (kernel, _) = probe_guest();
    let dir = tempfile::tempdir().expect("tempdir");
    let probe = KvmProbe::kernel_only(kernel, dir.path().join("probe"));
    assert_eq!(probe.marker, KERNEL_ONLY_MARKER);
    assert!(probe.initrd.is_none());
    let spec = VmSpec {
        name: "mallee-probe-tcg".into(),
        vcpus: 1,
        memory_mib: 256,
        accel: Accel::Tcg,
        cpu_model: None,
        boot: Boot::Kernel {
            kernel: probe.kernel.clone(),
            initrd: None,
            cmdline: probe.cmdline.clone(),
        },
        disks: vec![],
        nics: vec![],
        serial_log: dir.path().join("console.log"),
        run_dir: dir.path().join("run"),
        keep_on_shutdown: false,
    };
    let vm = RunningVm::launch(&spec).await.expect("launch");
    let _guard = KillOnPanic(vm.pid());
    wait_serial(&spec.serial_log, &probe.marker, 1, Duration::from_secs(60)).await;
    let killed = RunningVm::kill_run_dir(&spec.run_dir, Duration::from_secs(10))
        .await
        .expect("kill");
    assert_eq!(killed, Some(vm.pid()));
    assert!(!vm.is_alive());
    assert_eq!(RunningVm::pid_in_run_dir(&spec.run_dir), None);
}

fn qemu_img(args: &[&str]) -> std::process::Output {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img (Debian package qemu-utils)");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn qemu_io(image: &Path, command: &str) {
    let out = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", command])
        .arg(image)
        .output()
        .expect("qemu-io (Debian package qemu-utils)");
    assert!(
        out.status.success(),
        "qemu-io {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `blockdev-backup` copies a block node as it was when the job started,
/// even though it is written meanwhile (rate-limited so that the write
/// lands while the job runs); `query-jobs` shows the job until it is
/// dismissed; `job-cancel` ends one with an error.
#[tokio::test]
async fn blockdev_backup_is_a_point_in_time_copy() {
    require_qemu();
    let dir = tempfile::tempdir().expect("tempdir");
    let source = dir.path().join("source.qcow2");
    let target = dir.path().join("target.qcow2");
    let second = dir.path().join("second.qcow2");
    let expected = dir.path().join("expected.qcow2");
    for image in [&source, &target, &second] {
        qemu_img(&[
            "create",
            "-q",
            "-f",
            "qcow2",
            &image.display().to_string(),
            "64M",
        ]);
    }
    qemu_io(&source, "write -P 0x41 0 32M");
    qemu_io(&source, "write -P 0x41 60M 1M");
    // What the copy must hold: the source as it is now.
    std::fs::copy(&source, &expected).expect("copy");

    let sock = dir.path().join("qmp.sock");
    let _child = tokio::process::Command::new(QEMU)
        .args([
            "-machine",
            "none",
            "-nodefaults",
            "-display",
            "none",
            "-qmp",
        ])
        .arg(format!("unix:{},server=on,wait=off", sock.display()))
        .kill_on_drop(true)
        .spawn()
        .expect("spawn qemu");
    let start = Instant::now();
    let qmp = loop {
        match QmpClient::connect(&sock).await {
            Ok(q) => break q,
            Err(e) => assert!(start.elapsed() < Duration::from_secs(10), "no QMP: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    for (node, path) in [("src", &source), ("dst", &target), ("dst2", &second)] {
        qmp.blockdev_add_file(node, path, DiskFormat::Qcow2, false)
            .await
            .expect("blockdev-add");
    }
    // 16 MiB/s: the 64 MiB copy takes a few seconds.
    qmp.blockdev_backup("job1", "src", "dst", 16 * 1024 * 1024)
        .await
        .expect("blockdev-backup");
    let running = qmp.query_jobs().await.expect("query-jobs");
    assert_eq!(running.len(), 1, "{running:?}");
    assert_eq!(
        (running[0].id.as_str(), running[0].job_type.as_str()),
        ("job1", "backup")
    );
    // Overwrite the end of the source while the job runs: the copy must
    // not see it.
    // Guest writes go through the copy-before-write filter the job put
    // above the source (a device's backend is moved onto it); write there.
    let nodes = qmp
        .execute("query-named-block-nodes", Value::Null)
        .await
        .expect("query-named-block-nodes");
    let filter = nodes
        .as_array()
        .and_then(|nodes| {
            nodes
                .iter()
                .find(|n| n["drv"] == "copy-before-write")
                .and_then(|n| n["node-name"].as_str())
        })
        .expect("the backup's copy-before-write filter")
        .to_owned();
    let said = qmp
        .execute(
            "human-monitor-command",
            serde_json::json!({"command-line": format!("qemu-io {filter} \"write -P 0x42 60M 1M\"")}),
        )
        .await
        .expect("write during the backup");
    assert!(
        said.as_str()
            .is_some_and(|s| s.is_empty() || s.contains("wrote")),
        "qemu-io: {said}"
    );
    let job = loop {
        let jobs = qmp.query_jobs().await.expect("query-jobs");
        let job = jobs
            .into_iter()
            .find(|j| j.id == "job1")
            .expect("job listed until dismissed");
        if job.concluded() {
            break job;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "backup did not end: {job:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job.error, None);
    assert_eq!(job.current_progress, job.total_progress);
    qmp.job_dismiss("job1").await.expect("dismiss");
    assert!(qmp.query_jobs().await.expect("query-jobs").is_empty());

    // A cancelled job concludes with an error.
    qmp.blockdev_backup("job2", "src", "dst2", 1024 * 1024)
        .await
        .expect("second backup");
    qmp.job_cancel("job2").await.expect("cancel");
    let job = loop {
        let jobs = qmp.query_jobs().await.expect("query-jobs");
        let job = jobs.into_iter().find(|j| j.id == "job2").expect("listed");
        if job.concluded() {
            break job;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(job.error.is_some(), "{job:?}");
    qmp.job_dismiss("job2").await.expect("dismiss");
    for node in ["src", "dst", "dst2"] {
        qmp.blockdev_del(node).await.expect("blockdev-del");
    }
    qmp.quit().await.expect("quit");

    let out = Command::new("qemu-img")
        .args(["compare", "-q"])
        .arg(&expected)
        .arg(&target)
        .output()
        .expect("qemu-img compare");
    assert!(
        out.status.success(),
        "the backup is not the source as it was at the job's start: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let out = Command::new("qemu-img")
        .args(["compare", "-q"])
        .arg(&source)
        .arg(&target)
        .output()
        .expect("qemu-img compare");
    assert_eq!(
        out.status.code(),
        Some(1),
        "the source did change afterwards"
    );
}
