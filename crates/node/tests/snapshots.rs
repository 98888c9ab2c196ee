//! Snapshots and EBS-backed instances on a real node agent, with real QEMU
//! guests (TCG) and the fake controller of `common/fixture.rs` holding
//! snapshot data: a detached volume's snapshot round-trips into new volumes
//! with identical content; uploads are retried while the controller answers
//! 503; an agent restart while capturing fails the snapshot, one after the
//! export resumes the upload (stored once); a snapshot of a volume that a
//! running guest keeps writing holds what the volume held when it started,
//! and forgetting it or restarting the agent mid-copy leaves nothing in the
//! VM; instances boot from volumes created from snapshots (BIOS and direct
//! kernel boot), keep their root across agent restarts and stop/start, and
//! leave it when deleted.
//!
//! Runs as root with `qemu-system-x86_64`, `qemu-img`, `qemu-io` and the
//! test guest images (`guest/build.sh target/guest-images`); a missing
//! prerequisite fails the test with a clear message, nothing is skipped.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use base64::Engine;
use mallee_node::agent::{NodeConfig, NodeHandle, purge_node, start_node};
use mallee_node::network::NetworkConfig;
use mallee_node_api::{
    Artifact, BootImage, DesiredState, DiskFormat, HttpNodeClient, InstanceMetadata, InstanceSpec,
    MetadataOptions, NicSpec, NodeAgent, NodeError, NodeRegistration, ObservedSnapshot,
    SnapshotSource, SnapshotSpec, SnapshotState, VmState, VolumeAttachment, VolumeSpec,
    VolumeState,
};
use mallee_qemu::AccelRequest;
use md5::{Digest, Md5};

include!("common/fixture.rs");

/// The tests here boot guests and move hundreds of MiB: one at a time.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;
const BOOT: Duration = Duration::from_secs(240);
const TRANSFER: Duration = Duration::from_secs(180);

struct TestNode {
    _tmp: tempfile::TempDir,
    _purge: Purge,
    data_dir: PathBuf,
    controller: Controller,
    fixture: Fixture,
}

impl TestNode {
    async fn new(rate_limit: Option<u64>) -> Self {
        require_prerequisites();
        require_runnable(&["qemu-img", "qemu-io"], "qemu-utils");
        let images = guest_images();
        let controller = serve_controller(&images).await;
        let tmp = tempfile::tempdir().expect("tempdir");
        let data_dir = tmp.path().join("node");
        let (mut fixture, purge) =
            Fixture::new(&images, &controller, &data_dir, tmp.path().join("hooks"));
        fixture.config.snapshot_rate_limit = rate_limit;
        Self {
            _tmp: tmp,
            _purge: purge,
            data_dir,
            controller,
            fixture,
        }
    }

    fn volume_file(&self, volume_id: &str) -> PathBuf {
        self.data_dir
            .join("volumes")
            .join(format!("{volume_id}.qcow2"))
    }

    fn snapshots_dir(&self) -> PathBuf {
        self.data_dir.join("snapshots")
    }

    /// Files in the snapshots directory other than records.
    fn snapshot_leftovers(&self) -> Vec<String> {
        std::fs::read_dir(self.snapshots_dir())
            .expect("snapshots dir")
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| !n.ends_with(".json"))
            .collect()
    }
}

fn volume_spec(id: &str, size_gib: u64, source: Option<SnapshotSource>) -> VolumeSpec {
    VolumeSpec {
        volume_id: id.into(),
        size_gib,
        generation: 1,
        source,
        remote: None,
    }
}

fn snapshot_spec(id: &str, volume_id: &str) -> SnapshotSpec {
    SnapshotSpec {
        snapshot_id: id.into(),
        volume_id: volume_id.into(),
        generation: 1,
    }
}

async fn snapshot(client: &HttpNodeClient, id: &str) -> Option<ObservedSnapshot> {
    client
        .report()
        .await
        .expect("report")
        .snapshots
        .into_iter()
        .find(|s| s.snapshot_id == id)
}

async fn wait_volume(
    client: &HttpNodeClient,
    id: &str,
    want: impl Fn(&VolumeState) -> bool,
    timeout: Duration,
) -> VolumeState {
    let start = Instant::now();
    loop {
        let state = volume(client, id).await.map(|v| v.state);
        if let Some(state) = &state
            && want(state)
        {
            return state.clone();
        }
        assert!(
            start.elapsed() < timeout,
            "{id} did not reach the state wanted within {timeout:?}: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn wait_snapshot(
    client: &HttpNodeClient,
    id: &str,
    want: impl Fn(Option<&SnapshotState>) -> bool,
    timeout: Duration,
) -> Option<SnapshotState> {
    let start = Instant::now();
    loop {
        let state = snapshot(client, id).await.map(|s| s.state);
        if want(state.as_ref()) {
            return state;
        }
        assert!(
            start.elapsed() < timeout,
            "{id} did not reach the state wanted within {timeout:?}: {state:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn wait_uploaded(client: &HttpNodeClient, id: &str) -> (u64, String) {
    match wait_snapshot(
        client,
        id,
        |s| !matches!(s, Some(SnapshotState::Pending { .. })),
        TRANSFER,
    )
    .await
    {
        Some(SnapshotState::Uploaded { size, sha256 }) => (size, sha256),
        other => panic!("{id} was not uploaded: {other:?}"),
    }
}

fn qemu_io(image: &Path, command: &str) -> String {
    let out = Command::new("qemu-io")
        .args(["-f", "qcow2", "-c", command])
        .arg(image)
        .output()
        .expect("qemu-io");
    assert!(
        out.status.success(),
        "qemu-io {command}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The printable bytes `qemu-io read -v` shows for `len` bytes at `offset`.
fn read_ascii(image: &Path, offset: u64, len: u64) -> String {
    let out = qemu_io(image, &format!("read -v {offset} {len}"));
    out.lines()
        .filter_map(|l| l.split("  ").last())
        .filter(|s| s.len() <= 16)
        .collect()
}

/// Whether two images hold the same data (`qemu-img compare`: a larger
/// image's extra part must read as zeroes).
fn same_content(a: &Path, b: &Path) -> bool {
    let out = Command::new("qemu-img")
        .args(["compare", "-q", "-f", "qcow2", "-F", "qcow2"])
        .arg(a)
        .arg(b)
        .output()
        .expect("qemu-img compare");
    match out.status.code() {
        Some(0) => true,
        Some(1) => false,
        _ => panic!(
            "qemu-img compare failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

fn virtual_size(image: &Path) -> u64 {
    let out = Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(image)
        .output()
        .expect("qemu-img info");
    let info: serde_json::Value = serde_json::from_slice(&out.stdout).expect("info json");
    info["virtual-size"].as_u64().expect("virtual-size")
}

/// The files under `dir` that process `pid` has open.
fn open_files_under(pid: u32, dir: &Path) -> Vec<String> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(Result::ok)
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .filter(|l| l.starts_with(dir))
                .map(|l| l.display().to_string())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn detached_volume_snapshots_round_trip_and_uploads_survive_restarts() {
    let _serial = SERIAL.lock().await;
    let t = TestNode::new(None).await;
    let (node, client) = t.fixture.start().await;
    const VOL: &str = "vol-00000000000005a01";
    const SNAP: &str = "snap-00000000000005a01";

    // Snapshots need a volume of this node.
    assert_eq!(
        client.put_snapshot(snapshot_spec(SNAP, VOL)).await,
        Err(NodeError::NotFound(VOL.into()))
    );
    client
        .put_volume(volume_spec(VOL, 1, None))
        .await
        .expect("create");
    let file = t.volume_file(VOL);
    qemu_io(&file, "write -P 0x61 0 8M");
    qemu_io(&file, "write -P 0x62 900M 1M");

    // The controller answers 503 twice: the node retries.
    t.controller.store().fail_uploads = 2;
    let started = client
        .put_snapshot(snapshot_spec(SNAP, VOL))
        .await
        .expect("put snapshot");
    assert!(
        matches!(started.state, SnapshotState::Pending { .. }),
        "{started:?}"
    );
    assert_eq!((started.volume_id.as_str(), started.generation), (VOL, 1));
    let (size, sha256) = wait_uploaded(&client, SNAP).await;
    {
        let store = t.controller.store();
        assert_eq!(store.attempts.get(SNAP), Some(&3), "two 503s, then stored");
        assert_eq!(store.stores.get(SNAP), Some(&1));
        let stored = store.stored.get(SNAP).expect("stored");
        assert_eq!(
            (stored.size, stored.sha256.as_str()),
            (size, sha256.as_str())
        );
        assert!(
            size < 32 * MIB,
            "the export is compact (zero clusters skipped): {size} bytes"
        );
    }
    assert!(
        t.snapshot_leftovers().is_empty(),
        "the local export goes once uploaded: {:?}",
        t.snapshot_leftovers()
    );
    // Repeating the snapshot changes nothing; another volume under its id
    // is refused.
    let again = client
        .put_snapshot(snapshot_spec(SNAP, VOL))
        .await
        .expect("again");
    assert_eq!(
        again.state,
        SnapshotState::Uploaded {
            size,
            sha256: sha256.clone()
        }
    );
    assert!(matches!(
        client
            .put_snapshot(snapshot_spec(SNAP, "vol-00000000000005a09"))
            .await,
        Err(NodeError::Conflict(_))
    ));
    assert_eq!(t.controller.store().attempts.get(SNAP), Some(&3));

    // A bigger volume from the snapshot holds the same data.
    const COPY: &str = "vol-00000000000005a02";
    let creating = client
        .put_volume(volume_spec(COPY, 2, Some(t.controller.source(SNAP))))
        .await
        .expect("create from the snapshot");
    assert!(
        matches!(
            creating.state,
            VolumeState::Creating | VolumeState::Available
        ),
        "{creating:?}"
    );
    let state = wait_volume(&client, COPY, |s| *s != VolumeState::Creating, TRANSFER).await;
    assert_eq!(state, VolumeState::Available);
    assert_eq!(virtual_size(&t.volume_file(COPY)), 2 * GIB);
    assert!(
        same_content(&file, &t.volume_file(COPY)),
        "the new volume differs from the snapshot's volume"
    );
    assert_eq!(
        client.capacity().await.expect("capacity").disk_gib_free,
        100 - 3
    );

    // Data that does not match its digest fails the volume.
    const BAD: &str = "vol-00000000000005a03";
    let mut wrong = t.controller.source(SNAP);
    wrong.sha256 = "0".repeat(64);
    client
        .put_volume(volume_spec(BAD, 1, Some(wrong)))
        .await
        .expect("create from bad data");
    match wait_volume(&client, BAD, |s| *s != VolumeState::Creating, TRANSFER).await {
        VolumeState::Failed(reason) => assert!(reason.contains("SHA-256"), "{reason}"),
        other => panic!("a digest mismatch must fail the volume: {other:?}"),
    }
    assert!(!t.volume_file(BAD).exists());
    client
        .delete_volume(BAD)
        .await
        .expect("delete the failed volume");

    // An agent restart while capturing: the snapshot fails (its point in
    // time is lost), nothing is uploaded.
    qemu_io(&file, "write -P 0x63 100M 600M");
    const LOST: &str = "snap-00000000000005a02";
    client
        .put_snapshot(snapshot_spec(LOST, VOL))
        .await
        .expect("put snapshot");
    // A volume creation from a snapshot that the restart interrupts starts
    // again.
    const REDONE: &str = "vol-00000000000005a05";
    client
        .put_volume(volume_spec(REDONE, 1, Some(t.controller.source(SNAP))))
        .await
        .expect("create from the snapshot");
    node.shutdown().await;
    let (node, client) = t.fixture.start().await;
    wait_volume(&client, REDONE, |s| *s == VolumeState::Available, TRANSFER).await;
    assert!(same_content(&t.volume_file(COPY), &t.volume_file(REDONE)));
    match snapshot(&client, LOST).await.map(|s| s.state) {
        Some(SnapshotState::Failed(reason)) => {
            assert!(reason.contains("restarted while capturing"), "{reason}");
        }
        other => panic!("a capture interrupted by a restart must fail: {other:?}"),
    }
    assert!(
        t.snapshot_leftovers().is_empty(),
        "{:?}",
        t.snapshot_leftovers()
    );
    assert_eq!(t.controller.store().attempts.get(LOST), None);
    assert_eq!(
        volume(&client, VOL).await.expect("volume").state,
        VolumeState::Available
    );

    // An agent restart after the export: the upload resumes from the local
    // file and the controller stores it once.
    const RESUMED: &str = "snap-00000000000005a03";
    t.controller.store().fail_uploads = u32::MAX;
    client
        .put_snapshot(snapshot_spec(RESUMED, VOL))
        .await
        .expect("put snapshot");
    wait_snapshot(
        &client,
        RESUMED,
        |s| matches!(s, Some(SnapshotState::Pending { progress }) if *progress >= 60),
        TRANSFER,
    )
    .await;
    let start_wait = Instant::now();
    while !t.controller.store().attempts.contains_key(RESUMED) {
        assert!(start_wait.elapsed() < TRANSFER, "no upload attempt");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    node.shutdown().await;
    t.controller.store().fail_uploads = 0;
    let (node, client) = t.fixture.start().await;
    let (size, _) = wait_uploaded(&client, RESUMED).await;
    assert_eq!(t.controller.store().stores.get(RESUMED), Some(&1));
    assert_eq!(
        t.controller.store().stored.get(RESUMED).map(|s| s.size),
        Some(size)
    );
    const RESTORED: &str = "vol-00000000000005a04";
    client
        .put_volume(volume_spec(RESTORED, 1, Some(t.controller.source(RESUMED))))
        .await
        .expect("create from the resumed snapshot");
    wait_volume(
        &client,
        RESTORED,
        |s| *s == VolumeState::Available,
        TRANSFER,
    )
    .await;
    assert!(same_content(&file, &t.volume_file(RESTORED)));

    // A snapshot the controller no longer has is dropped by the node.
    const GONE: &str = "snap-00000000000005a04";
    t.controller.store().deleted.insert(GONE.into());
    client
        .put_snapshot(snapshot_spec(GONE, VOL))
        .await
        .expect("put snapshot");
    wait_snapshot(&client, GONE, |s| s.is_none(), TRANSFER).await;
    assert!(!t.snapshots_dir().join(format!("{GONE}.json")).exists());

    // Forgetting snapshots removes their records, also after a restart.
    for id in [SNAP, LOST, RESUMED] {
        client.delete_snapshot(id).await.expect("forget");
        client.delete_snapshot(id).await.expect("forget again");
    }
    node.shutdown().await;
    let (node, client) = t.fixture.start().await;
    assert!(client.report().await.expect("report").snapshots.is_empty());
    assert_eq!(
        std::fs::read_dir(t.snapshots_dir()).expect("dir").count(),
        0
    );
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_of_a_volume_in_use_holds_its_content_at_the_start() {
    let _serial = SERIAL.lock().await;
    // Slow captures, so that the guest writes while the capture runs.
    let t = TestNode::new(Some(64 * MIB)).await;
    let (node, client) = t.fixture.start().await;
    const VOL: &str = "vol-00000000000005b01";
    const TRIGGER: &str = "vol-00000000000005b02";
    const SNAP: &str = "snap-00000000000005b01";
    const RESTORED: &str = "vol-00000000000005b03";
    // The markers sit near the end of the volume, which the capture copies
    // last.
    const MARK_MIB: u64 = 1000;
    for id in [VOL, TRIGGER] {
        client
            .put_volume(volume_spec(id, 1, None))
            .await
            .expect("create");
    }
    // Data for the capture to copy.
    qemu_io(&t.volume_file(VOL), "write -P 0x5a 0 256M");
    let user_data = format!(
        "#!/bin/sh\n{find}\
         yes A | tr -d '\\n' | head -c 4096 | dd of=$dev bs=1048576 seek={MARK_MIB} conv=fsync 2>/dev/null\n\
         echo SNAP-WROTE-A\n\
         vol=$dev\n{trigger}\
         yes B | tr -d '\\n' | head -c 4096 | dd of=$vol bs=1048576 seek={MARK_MIB} conv=fsync 2>/dev/null\n\
         echo SNAP-WROTE-B\n",
        find = find_disk(VOL),
        trigger = find_disk(TRIGGER),
    );
    let w = "i-00000000000005b01";
    client
        .put_instance(t.fixture.spec(w, 1, &user_data))
        .await
        .expect("put instance");
    wait_state(&client, w, |s| *s == VmState::Running, "running", BOOT).await;
    client
        .attach_volume(
            w,
            VolumeAttachment {
                volume_id: VOL.into(),
                device: "/dev/sdf".into(),
                generation: 2,
            },
        )
        .await
        .expect("attach");
    console_lines(&client, w, "SNAP-WROTE-A", 1, BOOT).await;

    client
        .put_snapshot(snapshot_spec(SNAP, VOL))
        .await
        .expect("put snapshot");
    // Once the capture copies, the guest is told to overwrite the marker.
    wait_snapshot(
        &client,
        SNAP,
        |s| matches!(s, Some(SnapshotState::Pending { progress }) if *progress > 0),
        TRANSFER,
    )
    .await;
    client
        .attach_volume(
            w,
            VolumeAttachment {
                volume_id: TRIGGER.into(),
                device: "/dev/sdg".into(),
                generation: 2,
            },
        )
        .await
        .expect("attach the trigger");
    console_lines(&client, w, "SNAP-WROTE-B", 1, BOOT).await;
    let during = snapshot(&client, SNAP).await.expect("snapshot").state;
    assert!(
        matches!(during, SnapshotState::Pending { progress } if progress < 50),
        "the guest must write while the capture copies: {during:?}"
    );
    let pid = qemu_pid(w).expect("QEMU");
    wait_uploaded(&client, SNAP).await;
    assert_eq!(
        open_files_under(pid, &t.snapshots_dir()),
        Vec::<String>::new(),
        "the VM let go of the capture target"
    );

    // Forgetting a snapshot while the VM copies cancels the copy and
    // removes its target from the VM.
    const CANCELLED: &str = "snap-00000000000005b02";
    client
        .put_snapshot(snapshot_spec(CANCELLED, VOL))
        .await
        .expect("put snapshot");
    wait_snapshot(
        &client,
        CANCELLED,
        |s| matches!(s, Some(SnapshotState::Pending { progress }) if *progress > 0),
        TRANSFER,
    )
    .await;
    assert_eq!(open_files_under(pid, &t.snapshots_dir()).len(), 1);
    client
        .delete_snapshot(CANCELLED)
        .await
        .expect("forget while capturing");
    assert!(snapshot(&client, CANCELLED).await.is_none());
    assert_eq!(
        open_files_under(pid, &t.snapshots_dir()),
        Vec::<String>::new()
    );
    assert!(
        t.snapshot_leftovers().is_empty(),
        "{:?}",
        t.snapshot_leftovers()
    );
    assert!(!t.controller.store().attempts.contains_key(CANCELLED));

    // An agent restart while the VM copies: the snapshot fails, and the
    // restarted agent removes the copy job and its target from the VM.
    const INTERRUPTED: &str = "snap-00000000000005b03";
    client
        .put_snapshot(snapshot_spec(INTERRUPTED, VOL))
        .await
        .expect("put snapshot");
    wait_snapshot(
        &client,
        INTERRUPTED,
        |s| matches!(s, Some(SnapshotState::Pending { progress }) if *progress > 0),
        TRANSFER,
    )
    .await;
    node.shutdown().await;
    let (node, client) = t.fixture.start().await;
    assert_eq!(qemu_pid(w), Some(pid), "adopted, same QEMU");
    match snapshot(&client, INTERRUPTED).await.map(|s| s.state) {
        Some(SnapshotState::Failed(reason)) => {
            assert!(reason.contains("restarted while capturing"), "{reason}");
        }
        other => panic!("a capture interrupted by a restart must fail: {other:?}"),
    }
    let cleared = Instant::now();
    while !open_files_under(pid, &t.snapshots_dir()).is_empty() {
        assert!(
            cleared.elapsed() < Duration::from_secs(60),
            "the VM still holds the interrupted capture's target: {:?}",
            open_files_under(pid, &t.snapshots_dir())
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    client.delete_snapshot(INTERRUPTED).await.expect("forget");

    client
        .put_volume(volume_spec(RESTORED, 1, Some(t.controller.source(SNAP))))
        .await
        .expect("restore");
    wait_volume(
        &client,
        RESTORED,
        |s| *s == VolumeState::Available,
        TRANSFER,
    )
    .await;
    let restored = read_ascii(&t.volume_file(RESTORED), MARK_MIB * MIB, 64);
    assert!(
        restored.starts_with(&"A".repeat(64)),
        "the snapshot must hold marker A (written before it started), not B: {restored:?}"
    );
    assert!(
        read_ascii(&t.volume_file(RESTORED), 0, 16).starts_with(&"Z".repeat(16)),
        "the data written before"
    );
    // The volume itself has B.
    client.delete_instance(w).await.expect("delete");
    let live = read_ascii(&t.volume_file(VOL), MARK_MIB * MIB, 64);
    assert!(live.starts_with(&"B".repeat(64)), "{live:?}");
    node.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_boot_from_volumes_created_from_snapshots() {
    let _serial = SERIAL.lock().await;
    let t = TestNode::new(None).await;
    let (node, client) = t.fixture.start().await;
    let images = guest_images();
    const HVM_SNAP: &str = "snap-00000000000005c01";
    const ROOT_SNAP: &str = "snap-00000000000005c02";
    const ROOT: &str = "vol-00000000000005c01";
    const PV_ROOT: &str = "vol-00000000000005c02";
    const ROOT_COPY: &str = "snap-00000000000005c03";
    let hvm = t
        .controller
        .add_snapshot(HVM_SNAP, &images.join("hvm.qcow2"), DiskFormat::Qcow2);
    let raw_root = t
        .controller
        .add_snapshot(ROOT_SNAP, &images.join("root.img"), DiskFormat::Raw);

    let id = "i-00000000000005c01";
    let user_data = "#!/bin/sh\n\
        if [ -f /ebs-marker ]; then echo \"EBS-FOUND $(cat /ebs-marker)\"; \
        else echo first-boot > /ebs-marker; sync; echo EBS-WROTE; fi\n";
    let mut spec = t.fixture.spec(id, 1, user_data);
    spec.image = BootImage::Ebs {
        root_volume_id: ROOT.into(),
        kernel: None,
        ramdisk: None,
        cmdline: String::new(),
    };
    spec.metadata.root_device_name = "/dev/xvda".into();
    // The root volume must exist first (the controller retries).
    assert!(matches!(
        client.put_instance(spec.clone()).await,
        Err(NodeError::Conflict(_))
    ));
    client
        .put_volume(volume_spec(ROOT, 1, Some(hvm)))
        .await
        .expect("root volume");
    wait_volume(&client, ROOT, |s| *s == VolumeState::Available, TRANSFER).await;
    client
        .put_instance(spec.clone())
        .await
        .expect("put instance");
    wait_state(&client, id, |s| *s == VmState::Running, "running", BOOT).await;
    console_lines(&client, id, "EBS-WROTE", 1, BOOT).await;
    let root_in_use = VolumeState::InUse {
        instance_id: id.into(),
        device: "/dev/xvda".into(),
        guest_device: "/dev/vda".into(),
    };
    assert_eq!(
        volume(&client, ROOT).await.expect("root").state,
        root_in_use
    );
    assert_eq!(
        client.capacity().await.expect("capacity").disk_gib_free,
        100 - 1,
        "an EBS-backed instance books no instance disk"
    );
    assert!(
        !t.data_dir
            .join("instances")
            .join(id)
            .join("root.qcow2")
            .exists(),
        "no overlay for an EBS root"
    );
    // The root stays with the instance.
    assert!(matches!(
        client.delete_volume(ROOT).await,
        Err(NodeError::Conflict(_))
    ));
    assert!(matches!(
        client.detach_volume(id, ROOT, true).await,
        Err(NodeError::Conflict(_))
    ));
    let other = t.fixture.spec("i-00000000000005c09", 9, "");
    assert!(matches!(
        client
            .put_instance(InstanceSpec {
                image: spec.image.clone(),
                ..other
            })
            .await,
        Err(NodeError::Conflict(_))
    ));

    // An agent restart adopts the VM; the root stays in use.
    let pid = qemu_pid(id).expect("QEMU");
    node.shutdown().await;
    let (node, client) = t.fixture.start().await;
    assert_eq!(qemu_pid(id), Some(pid), "adopted, same QEMU");
    assert_eq!(
        volume(&client, ROOT).await.expect("root").state,
        root_in_use
    );

    // A snapshot of the running root (through the VM) boots too, below.
    client
        .put_snapshot(snapshot_spec(ROOT_COPY, ROOT))
        .await
        .expect("snapshot of the root");
    wait_uploaded(&client, ROOT_COPY).await;

    // Stop/start: the same root, with the file the first boot wrote.
    set_state_and_wait(&client, id, DesiredState::Stopped, 2, "stopped", BOOT).await;
    assert_eq!(
        volume(&client, ROOT).await.expect("root").state,
        root_in_use
    );
    set_state_and_wait(&client, id, DesiredState::Running, 3, "running again", BOOT).await;
    let found = console_lines(&client, id, "EBS-FOUND", 1, BOOT).await;
    assert!(found[0].ends_with("EBS-FOUND first-boot"), "{found:?}");

    // Deleting the instance leaves the root volume, with its data.
    client.delete_instance(id).await.expect("delete");
    assert_eq!(
        volume(&client, ROOT).await.expect("root").state,
        VolumeState::Available
    );
    assert!(t.volume_file(ROOT).exists());

    // Direct kernel boot with the root on a volume made from a raw
    // snapshot (the paravirtual root file system).
    client
        .put_volume(volume_spec(PV_ROOT, 1, Some(raw_root)))
        .await
        .expect("paravirtual root volume");
    wait_volume(&client, PV_ROOT, |s| *s == VolumeState::Available, TRANSFER).await;
    let pv = "i-00000000000005c02";
    let mut spec = t.fixture.spec(pv, 2, "#!/bin/sh\necho PV-EBS-UP\n");
    spec.image = BootImage::Ebs {
        root_volume_id: PV_ROOT.into(),
        kernel: Some(t.fixture.kernel.clone()),
        ramdisk: Some(t.fixture.initrd.clone()),
        cmdline: t.fixture.cmdline.clone(),
    };
    client.put_instance(spec).await.expect("put instance");
    wait_state(&client, pv, |s| *s == VmState::Running, "running", BOOT).await;
    let booted = console_lines(&client, pv, "MALLEE-GUEST: booted", 1, BOOT).await;
    assert!(booted[0].contains("root=/dev/vda"), "{booted:?}");
    console_lines(&client, pv, "PV-EBS-UP", 1, BOOT).await;
    client.delete_instance(pv).await.expect("delete");

    // The root's snapshot (taken while it ran) boots another instance.
    const COPY_ROOT: &str = "vol-00000000000005c03";
    client
        .put_volume(volume_spec(
            COPY_ROOT,
            1,
            Some(t.controller.source(ROOT_COPY)),
        ))
        .await
        .expect("volume from the root's snapshot");
    wait_volume(
        &client,
        COPY_ROOT,
        |s| *s == VolumeState::Available,
        TRANSFER,
    )
    .await;
    let copy = "i-00000000000005c03";
    let mut spec = t.fixture.spec(copy, 3, user_data);
    spec.image = BootImage::Ebs {
        root_volume_id: COPY_ROOT.into(),
        kernel: None,
        ramdisk: None,
        cmdline: String::new(),
    };
    client.put_instance(spec).await.expect("put instance");
    wait_state(&client, copy, |s| *s == VmState::Running, "running", BOOT).await;
    let found = console_lines(&client, copy, "EBS-FOUND", 1, BOOT).await;
    assert!(found[0].ends_with("EBS-FOUND first-boot"), "{found:?}");
    client.delete_instance(copy).await.expect("delete");
    node.shutdown().await;
}
