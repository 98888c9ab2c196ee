//! Volumes on a real node agent: qcow2 files hot-plugged into real QEMU
//! guests (TCG) over QMP, seen by the guest as virtio disks with the volume
//! id as serial; data written by one guest read back by another after a
//! detach; attachments that survive an agent restart (same QEMU) and a
//! stop/start (new QEMU, volumes on its command line); the pre-attach hook
//! refusing an attachment; deletion refused while attached.
//!
//! Runs as root with `qemu-system-x86_64`, `qemu-img` and the test guest
//! images (`guest/build.sh target/guest-images`); a missing prerequisite
//! fails the test with a clear message, nothing is skipped.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
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
    Artifact, BootImage, DesiredState, HttpNodeClient, InstanceMetadata, InstanceSpec,
    MetadataOptions, NicSpec, NodeAgent, NodeError, NodeRegistration, VmState, VolumeAttachment,
    VolumeSpec, VolumeState,
};
use mallee_qemu::AccelRequest;
use md5::{Digest, Md5};
use sha2::Sha256;

include!("common/fixture.rs");

const VOL_A: &str = "vol-0000000000000a001";
const VOL_B: &str = "vol-0000000000000b002";
const VOL_DENIED: &str = "vol-000000000000dead0";
/// Bytes of the pattern the first guest writes.
const PATTERN_BYTES: usize = 4 * 1024 * 1024;
const PATTERN_LINE: &str = "mallee-volume-pattern\n";

/// The sha256 of what `yes mallee-volume-pattern | head -c N` produces.
fn pattern_sha256() -> String {
    let pattern: Vec<u8> = PATTERN_LINE.bytes().cycle().take(PATTERN_BYTES).collect();
    hex::encode(Sha256::digest(&pattern))
}

/// User data of the writer: waits for volume A, prints every disk's serial,
/// writes the pattern and prints the sha256 of what it reads back.
fn writer_user_data() -> String {
    format!(
        "#!/bin/sh\n{}for d in /sys/block/vd*; do echo \"VOL-SERIAL ${{d##*/}} $(cat $d/serial 2>/dev/null)\"; done\n\
         yes mallee-volume-pattern | head -c {PATTERN_BYTES} | dd of=$dev bs=65536 conv=fsync 2>/dev/null\n\
         echo \"VOL-WRITTEN $dev $(dd if=$dev bs=65536 count={} 2>/dev/null | sha256sum | cut -d' ' -f1)\"\n",
        find_disk(VOL_A),
        PATTERN_BYTES / 65536
    )
}

/// User data of the reader: waits for volume A and prints the sha256 of the
/// pattern's range.
fn reader_user_data() -> String {
    format!(
        "#!/bin/sh\n{}echo \"VOL-READ $dev $(dd if=$dev bs=65536 count={} 2>/dev/null | sha256sum | cut -d' ' -f1)\"\n",
        find_disk(VOL_A),
        PATTERN_BYTES / 65536
    )
}

fn attachment(volume_id: &str, device: &str) -> VolumeAttachment {
    VolumeAttachment {
        volume_id: volume_id.into(),
        device: device.into(),
        generation: 2,
    }
}

fn in_use(instance_id: &str, device: &str, volume_id: &str) -> VolumeState {
    VolumeState::InUse {
        instance_id: instance_id.into(),
        device: device.into(),
        guest_device: format!("/dev/disk/by-id/virtio-{}", serial(volume_id)),
    }
}

/// Whether process `pid` has `path` open (QEMU holds a volume's file open
/// exactly while the volume's block node exists).
fn has_open(pid: u32, path: &Path) -> bool {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|fds| {
            fds.filter_map(Result::ok)
                .any(|fd| std::fs::read_link(fd.path()).is_ok_and(|l| l == path))
        })
        .unwrap_or(false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volumes_attach_detach_move_and_survive_restarts() {
    require_prerequisites();
    require_runnable(&["qemu-img"], "qemu-utils");
    let images = guest_images();
    let controller = serve_controller(&images).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("node");
    let hooks_dir = tmp.path().join("hooks");
    let hook_log = tmp.path().join("hook.log");
    std::fs::create_dir_all(&hooks_dir).expect("hooks dir");
    let hook = hooks_dir.join("10-volumes");
    std::fs::write(
        &hook,
        format!(
            "#!/bin/sh\ncase \"$1\" in\n\
             pre-attach) case \"$4\" in *{VOL_DENIED}*) echo 'volume refused by the test hook' >&2; exit 1;; esac\n\
             echo \"$1 $3 $4\" >> {log};;\n\
             post-detach) echo \"$1 $3 $4\" >> {log};;\n\
             esac\nexit 0\n",
            log = hook_log.display()
        ),
    )
    .expect("hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (fixture, _purge) = Fixture::new(&images, &controller, &data_dir, hooks_dir);
    let (node, client) = fixture.start().await;
    let boot = Duration::from_secs(240);
    let file_a = data_dir.join("volumes").join(format!("{VOL_A}.qcow2"));
    let file_b = data_dir.join("volumes").join(format!("{VOL_B}.qcow2"));

    // Create: a sparse 1 GiB qcow2; repeating is a no-op, a bad size is
    // refused (a larger one grows it: below, while attached, it is
    // refused).
    let spec_a = VolumeSpec {
        volume_id: VOL_A.into(),
        size_gib: 1,
        generation: 1,
        source: None,
        remote: None,
    };
    let created = client.put_volume(spec_a.clone()).await.expect("create A");
    assert_eq!(created.state, VolumeState::Available);
    assert_eq!((created.size_gib, created.generation), (1, 1));
    let meta = std::fs::metadata(&file_a).expect("volume file");
    assert!(
        meta.blocks() * 512 < 8 * 1024 * 1024,
        "not sparse: {meta:?}"
    );
    let info = Command::new("qemu-img")
        .args(["info", "--output=json"])
        .arg(&file_a)
        .output()
        .expect("qemu-img info");
    let info: serde_json::Value = serde_json::from_slice(&info.stdout).expect("info json");
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 1024u64 * 1024 * 1024);
    assert_eq!(
        client.put_volume(spec_a.clone()).await.expect("again"),
        created
    );
    assert!(matches!(
        client
            .put_volume(VolumeSpec {
                volume_id: "vol-0000000000000zero".into(),
                size_gib: 0,
                generation: 1,
                source: None,
                remote: None,
            })
            .await,
        Err(NodeError::BadRequest(_))
    ));
    for id in [VOL_B, VOL_DENIED] {
        client
            .put_volume(VolumeSpec {
                volume_id: id.into(),
                size_gib: 1,
                generation: 1,
                source: None,
                remote: None,
            })
            .await
            .expect("create");
    }
    let capacity = client.capacity().await.expect("capacity");
    assert_eq!(
        capacity.disk_gib_free,
        100 - 3,
        "volumes take disk: {capacity:?}"
    );

    // The writer boots; attaching A hot-plugs it; the guest finds it by its
    // serial, writes the pattern and reads it back.
    let w = "i-00000000000000c01";
    let r = "i-00000000000000c02";
    client
        .put_instance(fixture.spec(w, 1, &writer_user_data()))
        .await
        .expect("put writer");
    wait_state(&client, w, |s| *s == VmState::Running, "running", boot).await;
    assert_eq!(
        client
            .attach_volume(w, attachment("vol-00000000000000404", "/dev/sdf"))
            .await,
        Err(NodeError::NotFound("vol-00000000000000404".into()))
    );
    assert_eq!(
        client
            .attach_volume("i-00000000000000404", attachment(VOL_A, "/dev/sdf"))
            .await,
        Err(NodeError::NotFound("i-00000000000000404".into()))
    );
    // The pre-attach hook refuses: nothing changes.
    match client
        .attach_volume(w, attachment(VOL_DENIED, "/dev/sdh"))
        .await
    {
        Err(NodeError::Conflict(message)) => {
            assert!(
                message.contains("volume refused by the test hook"),
                "{message}"
            );
            assert!(message.contains("pre-attach"), "{message}");
        }
        other => panic!("the hook should refuse: {other:?}"),
    }
    assert_eq!(
        volume(&client, VOL_DENIED).await.expect("listed").state,
        VolumeState::Available
    );
    let pid = qemu_pid(w).expect("QEMU of the writer");
    assert!(!has_open(
        pid,
        &data_dir.join("volumes").join(format!("{VOL_DENIED}.qcow2"))
    ));

    let attached = client
        .attach_volume(w, attachment(VOL_A, "/dev/sdf"))
        .await
        .expect("attach A");
    assert_eq!(attached.state, in_use(w, "/dev/sdf", VOL_A));
    assert_eq!(attached.generation, 2);
    assert!(has_open(pid, &file_a), "QEMU opened the volume");
    // Repeating the attachment changes nothing; another device for it, or
    // the same device for another volume, is refused.
    assert_eq!(
        client
            .attach_volume(w, attachment(VOL_A, "/dev/sdf"))
            .await
            .expect("again"),
        attached
    );
    assert!(matches!(
        client.attach_volume(w, attachment(VOL_A, "/dev/sdg")).await,
        Err(NodeError::Conflict(_))
    ));
    assert!(matches!(
        client.attach_volume(w, attachment(VOL_B, "/dev/sdf")).await,
        Err(NodeError::Conflict(_))
    ));
    assert_eq!(
        volume(&client, VOL_B).await.expect("B").state,
        VolumeState::Available
    );
    let hook_text = std::fs::read_to_string(&hook_log).expect("hook log");
    assert!(
        hook_text.contains(&format!(
            "pre-attach {} {}",
            data_dir.join("instances").join(w).display(),
            data_dir
                .join("volumes")
                .join(format!("{VOL_A}.json"))
                .display()
        )),
        "{hook_text}"
    );
    let expected = pattern_sha256();
    let written = console_lines(&client, w, "VOL-WRITTEN", 1, boot).await;
    assert!(
        written[0].ends_with(&expected),
        "the guest read back {written:?}, want {expected}"
    );
    let serials = console_lines(&client, w, "VOL-SERIAL", 2, boot).await;
    assert!(
        serials
            .iter()
            .any(|l| l.contains(&format!("vdb {}", serial(VOL_A)))),
        "{serials:?}"
    );
    // Deleting an attached volume is refused; so is attaching it elsewhere,
    // and growing it while a VM has it open (it grows once detached).
    assert!(matches!(
        client.delete_volume(VOL_A).await,
        Err(NodeError::Conflict(_))
    ));
    assert!(matches!(
        client
            .put_volume(VolumeSpec {
                size_gib: 2,
                ..spec_a.clone()
            })
            .await,
        Err(NodeError::Conflict(_))
    ));
    assert_eq!(volume(&client, VOL_A).await.expect("A").size_gib, 1);
    assert!(file_a.exists());

    // Agent restart: same QEMU, the volume still attached and open.
    node.shutdown().await;
    assert_eq!(qemu_pid(w), Some(pid), "VMs outlive the agent");
    let (node, client) = fixture.start().await;
    assert_eq!(
        volume(&client, VOL_A).await.expect("A").state,
        in_use(w, "/dev/sdf", VOL_A)
    );
    assert_eq!(
        volume(&client, VOL_B).await.expect("B").state,
        VolumeState::Available
    );
    assert_eq!(qemu_pid(w), Some(pid), "adopted, same QEMU");
    assert!(has_open(pid, &file_a), "still plugged after adoption");

    // Stop/start: attaching B while stopped only records it; the new QEMU
    // gets A and B on its command line and the guest sees both at boot.
    set_state_and_wait(&client, w, DesiredState::Stopped, 2, "stopped", boot).await;
    assert_eq!(qemu_pid(w), None);
    assert_eq!(
        client
            .attach_volume(w, attachment(VOL_B, "/dev/sdg"))
            .await
            .expect("attach B while stopped")
            .state,
        in_use(w, "/dev/sdg", VOL_B)
    );
    set_state_and_wait(&client, w, DesiredState::Running, 3, "running again", boot).await;
    let pid = qemu_pid(w).expect("new QEMU of the writer");
    assert!(has_open(pid, &file_a) && has_open(pid, &file_b));
    let written = console_lines(&client, w, "VOL-WRITTEN", 2, boot).await;
    assert!(written[1].ends_with(&expected), "{written:?}");
    let serials = console_lines(&client, w, "VOL-SERIAL", 5, boot).await;
    for vol in [VOL_A, VOL_B] {
        assert!(
            serials[2..].iter().any(|l| l.ends_with(&serial(vol))),
            "{vol} not seen at boot: {serials:?}"
        );
    }

    // Detach (B forced, A clean) from the running guest: QEMU lets go of
    // the files, the post-detach hook runs.
    for (vol, file, force) in [(VOL_B, &file_b, true), (VOL_A, &file_a, false)] {
        let detached = client.detach_volume(w, vol, force).await.expect("detach");
        assert_eq!(detached.state, VolumeState::Available);
        assert!(!has_open(pid, file), "QEMU still holds {vol}");
    }
    let hook_text = std::fs::read_to_string(&hook_log).expect("hook log");
    assert!(
        hook_text.contains(&format!(
            "post-detach {} {}",
            data_dir.join("instances").join(w).display(),
            data_dir
                .join("volumes")
                .join(format!("{VOL_A}.json"))
                .display()
        )),
        "{hook_text}"
    );
    // Detaching again answers the state.
    assert_eq!(
        client
            .detach_volume(w, VOL_A, false)
            .await
            .expect("again")
            .state,
        VolumeState::Available
    );

    // A second guest sees the same bytes.
    client
        .put_instance(fixture.spec(r, 2, &reader_user_data()))
        .await
        .expect("put reader");
    wait_state(&client, r, |s| *s == VmState::Running, "running", boot).await;
    client
        .attach_volume(r, attachment(VOL_A, "/dev/sdf"))
        .await
        .expect("attach A to the reader");
    assert!(matches!(
        client.detach_volume(w, VOL_A, false).await,
        Err(NodeError::Conflict(_))
    ));
    let read = console_lines(&client, r, "VOL-READ", 1, boot).await;
    assert!(
        read[0].ends_with(&expected),
        "the second guest read {read:?}, want {expected}"
    );

    // Deleting the instance leaves its volume, detached.
    client.delete_instance(r).await.expect("delete reader");
    assert_eq!(
        volume(&client, VOL_A).await.expect("A").state,
        VolumeState::Available
    );
    assert!(file_a.exists());
    // Deleting a detached volume removes its file and record.
    for (vol, file) in [(VOL_A, &file_a), (VOL_B, &file_b)] {
        client.delete_volume(vol).await.expect("delete");
        assert!(!file.exists(), "{vol} file");
        assert!(volume(&client, vol).await.is_none());
    }
    client.delete_volume(VOL_A).await.expect("delete again");
    client.delete_instance(w).await.expect("delete writer");
    node.shutdown().await;
    let (node, client) = fixture.start().await;
    let report = client.report().await.expect("report");
    assert_eq!(
        report
            .volumes
            .iter()
            .map(|v| (v.volume_id.as_str(), v.state.clone()))
            .collect::<HashMap<_, _>>(),
        HashMap::from([(VOL_DENIED, VolumeState::Available)]),
        "after a restart only the untouched volume is left"
    );
    node.shutdown().await;
}
