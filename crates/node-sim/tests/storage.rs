//! The simulated node's volumes and snapshots over HTTP: the real agent's
//! rules for creating, attaching, detaching and deleting volumes (EBS
//! roots included), and snapshots uploaded to a (fake) controller with the
//! real protocol, retried, forgotten or failed as the controller answers,
//! and volumes created back from the uploaded data.

mod common;

use std::time::Duration;

use common::*;
use mallee_node_api::*;
use mallee_node_sim::{MemorySnapshots, RESTARTED_WHILE_CAPTURING, SimConfig, SimNode, sha256_hex};

const I1: &str = "i-00000000000000001";
const I2: &str = "i-00000000000000002";
const V1: &str = "vol-00000000000000001";
const V2: &str = "vol-00000000000000002";
const S1: &str = "snap-00000000000000001";
const S2: &str = "snap-00000000000000002";

fn attachment(volume_id: &str, device: &str, generation: u64) -> VolumeAttachment {
    VolumeAttachment {
        volume_id: volume_id.into(),
        device: device.into(),
        generation,
    }
}

fn in_use(instance_id: &str, device: &str, volume_id: &str) -> VolumeState {
    let serial: String = volume_id.chars().filter(|c| *c != '-').collect();
    VolumeState::InUse {
        instance_id: instance_id.into(),
        device: device.into(),
        guest_device: format!("/dev/disk/by-id/virtio-{serial}"),
    }
}

#[tokio::test]
async fn volumes_follow_the_real_agents_rules() {
    let (sim, _server, node) = served(SimConfig::default(), None).await;
    let created = node.put_volume(volume(V1, 4, 1)).await.expect("create");
    assert_eq!(
        (created.state, created.size_gib, created.generation),
        (VolumeState::Available, 4, 1)
    );
    let again = node.put_volume(volume(V1, 4, 3)).await.expect("repeat");
    assert_eq!(again.generation, 3);
    let older = node.put_volume(volume(V1, 4, 2)).await.expect("older");
    assert_eq!(older.generation, 3);
    let resized = node.put_volume(volume(V1, 5, 4)).await;
    assert!(
        matches!(resized, Err(NodeError::Conflict(_))),
        "{resized:?}"
    );
    let huge = node.put_volume(volume(V2, 16385, 1)).await;
    assert!(matches!(huge, Err(NodeError::BadRequest(_))), "{huge:?}");

    // Attaching needs the volume, then the instance.
    assert_eq!(
        node.attach_volume(I1, attachment(V2, "/dev/sdf", 1)).await,
        Err(NodeError::NotFound(V2.into()))
    );
    assert_eq!(
        node.attach_volume(I1, attachment(V1, "/dev/sdf", 1)).await,
        Err(NodeError::NotFound(I1.into()))
    );
    run_instance(&node, I1).await;
    let attached = node
        .attach_volume(I1, attachment(V1, "/dev/sdf", 5))
        .await
        .expect("attach");
    assert_eq!(attached.state, in_use(I1, "/dev/sdf", V1));
    assert_eq!(attached.generation, 5);
    let repeat = node
        .attach_volume(I1, attachment(V1, "/dev/sdf", 5))
        .await
        .expect("repeat");
    assert_eq!(repeat, attached);
    node.put_volume(volume(V2, 1, 1)).await.expect("second");
    // A device in use, a volume in use by another instance.
    for (instance, wanted) in [
        (I1, attachment(V2, "/dev/sdf", 6)),
        (I2, attachment(V1, "/dev/sdg", 6)),
    ] {
        let taken = node.attach_volume(instance, wanted).await;
        assert!(matches!(taken, Err(NodeError::Conflict(_))), "{taken:?}");
    }
    let busy = node.delete_volume(V1).await;
    assert!(matches!(busy, Err(NodeError::Conflict(_))), "{busy:?}");

    // Attachments survive stop and start.
    node.put_instance(spec(I1, 2, DesiredState::Stopped))
        .await
        .expect("stop");
    wait_state(&node, I1, |s| *s == VmState::Stopped).await;
    node.put_instance(spec(I1, 3, DesiredState::Running))
        .await
        .expect("start");
    wait_state(&node, I1, |s| *s == VmState::Running).await;
    assert_eq!(
        sim.vm(I1).expect("vm").volumes,
        vec![attachment(V1, "/dev/sdf", 5)]
    );

    // A guest that keeps the disk refuses a plain detach, not a forced one.
    sim.guest_keeps_volume(V1, true).expect("keep");
    let kept = node.detach_volume(I1, V1, false).await;
    assert!(matches!(kept, Err(NodeError::Conflict(_))), "{kept:?}");
    let detached = node.detach_volume(I1, V1, true).await.expect("force");
    assert_eq!(detached.state, VolumeState::Available);
    let not_attached = node.detach_volume(I1, V1, false).await.expect("repeat");
    assert_eq!(not_attached.state, VolumeState::Available);
    assert!(sim.vm(I1).expect("vm").volumes.is_empty());

    // Deleting an instance leaves its volumes, available.
    node.attach_volume(I1, attachment(V2, "/dev/sdg", 2))
        .await
        .expect("attach");
    node.delete_instance(I1).await.expect("delete");
    assert_eq!(
        wait_volume(&node, V2, |_| true).await.state,
        VolumeState::Available
    );
    node.delete_volume(V1).await.expect("delete");
    node.delete_volume(V1).await.expect("delete again");
    assert_eq!(sim.volumes().len(), 1);
}

#[tokio::test]
async fn an_ebs_root_goes_with_its_instance() {
    let (sim, _server, node) = served(SimConfig::default(), None).await;
    let missing = node.put_instance(ebs_spec(I1, V1, 1)).await;
    assert!(
        matches!(missing, Err(NodeError::Conflict(_))),
        "{missing:?}"
    );
    node.put_volume(volume(V1, 8, 1)).await.expect("root");
    node.put_instance(ebs_spec(I1, V1, 1)).await.expect("put");
    wait_state(&node, I1, |s| *s == VmState::Running).await;
    let root = wait_volume(&node, V1, |_| true).await;
    assert_eq!(
        root.state,
        VolumeState::InUse {
            instance_id: I1.into(),
            device: "/dev/sda1".into(),
            guest_device: "/dev/vda".into(),
        }
    );
    // An EBS root books no instance disk, only the volume.
    assert_eq!(sim.current_capacity().disk_gib_free, 1000 - 8);
    let detach = node.detach_volume(I1, V1, true).await;
    assert!(matches!(detach, Err(NodeError::Conflict(_))), "{detach:?}");
    let other = node.put_instance(ebs_spec(I2, V1, 1)).await;
    assert!(matches!(other, Err(NodeError::Conflict(_))), "{other:?}");
    node.delete_instance(I1).await.expect("delete");
    assert_eq!(
        wait_volume(&node, V1, |_| true).await.state,
        VolumeState::Available
    );
}

#[tokio::test]
async fn snapshots_upload_to_the_controller_and_volumes_come_back_from_them() {
    let controller = FakeController::start().await;
    let (sim, _server, node) = served(SimConfig::default(), Some(&controller)).await;
    node.put_volume(volume(V1, 1, 1)).await.expect("volume");
    sim.write_volume(V1, 4096, b"written by the guest")
        .expect("write");
    let (_, content) = sim.volume_data(V1).expect("content");

    let started = node
        .put_snapshot(snapshot(S1, V1, 1))
        .await
        .expect("snapshot");
    assert!(
        matches!(started.state, SnapshotState::Pending { progress } if progress < 60),
        "{started:?}"
    );
    // Writes after the call are not in the snapshot.
    sim.write_volume(V1, 0, b"later").expect("write");
    let done = wait_snapshot(&node, S1, |s| {
        matches!(s, Some(SnapshotState::Uploaded { .. }))
    })
    .await
    .expect("uploaded");
    let stored = controller
        .seen()
        .snapshots
        .get(S1)
        .cloned()
        .expect("stored");
    assert_eq!(stored.data, content);
    assert_eq!(stored.format, "raw");
    assert_eq!(
        done.state,
        SnapshotState::Uploaded {
            size: content.len() as u64,
            sha256: sha256_hex(&content),
        }
    );

    // Repeats change nothing but the generation; the volume must match.
    let repeat = node
        .put_snapshot(snapshot(S1, V1, 2))
        .await
        .expect("repeat");
    assert_eq!((repeat.state, repeat.generation), (done.state.clone(), 2));
    let other = node.put_snapshot(snapshot(S1, V2, 3)).await;
    assert!(matches!(other, Err(NodeError::Conflict(_))), "{other:?}");
    let missing = node.put_snapshot(snapshot(S2, V2, 1)).await;
    assert_eq!(missing, Err(NodeError::NotFound(V2.into())));

    // A volume from the snapshot holds its data, byte for byte.
    let source = SnapshotSource {
        snapshot_id: S1.into(),
        size: content.len() as u64,
        sha256: sha256_hex(&content),
        format: DiskFormat::Raw,
    };
    let creating = node
        .put_volume(VolumeSpec {
            source: Some(source.clone()),
            ..volume(V2, 2, 1)
        })
        .await
        .expect("from snapshot");
    assert!(
        matches!(
            creating.state,
            VolumeState::Creating | VolumeState::Available
        ),
        "{creating:?}"
    );
    wait_volume(&node, V2, |s| *s == VolumeState::Available).await;
    assert_eq!(
        sim.volume_data(V2),
        Some((DiskFormat::Raw, content.clone()))
    );

    // Data that does not match its record fails the volume.
    let wrong = SnapshotSource {
        sha256: sha256_hex(b"other"),
        ..source
    };
    node.put_volume(VolumeSpec {
        source: Some(wrong),
        ..volume("vol-00000000000000003", 1, 1)
    })
    .await
    .expect("from a wrong source");
    let failed = wait_volume(&node, "vol-00000000000000003", |s| {
        matches!(s, VolumeState::Failed(_))
    })
    .await;
    assert!(
        matches!(&failed.state, VolumeState::Failed(r) if r.contains("does not match")),
        "{failed:?}"
    );

    node.delete_snapshot(S1).await.expect("forget");
    node.delete_snapshot(S1).await.expect("forget again");
    assert!(sim.snapshots().is_empty());
}

#[tokio::test]
async fn uploads_retry_and_end_as_the_controller_answers() {
    let controller = FakeController::start().await;
    let (sim, _server, node) = served(SimConfig::default(), Some(&controller)).await;
    node.put_volume(volume(V1, 1, 1)).await.expect("volume");

    controller.seen().fail_uploads = 1;
    node.put_snapshot(snapshot(S1, V1, 1))
        .await
        .expect("snapshot");
    wait_snapshot(&node, S1, |s| {
        matches!(s, Some(SnapshotState::Uploaded { .. }))
    })
    .await;
    assert_eq!(controller.seen().upload_attempts.get(S1), Some(&2));

    // The controller deleted the snapshot: the node forgets it.
    controller.seen().deleted.insert(S2.into());
    node.put_snapshot(snapshot(S2, V1, 1))
        .await
        .expect("snapshot");
    wait_snapshot(&node, S2, |s| s.is_none()).await;
    assert_eq!(sim.snapshots().len(), 1);
}

#[tokio::test]
async fn an_outage_fails_a_capture_and_resumes_an_upload() {
    let controller = FakeController::start().await;
    let config = SimConfig {
        capture_delay: Duration::from_secs(3600),
        ..SimConfig::default()
    };
    let (sim, _server, node) = served(config, Some(&controller)).await;
    node.put_volume(volume(V1, 1, 1)).await.expect("volume");
    node.put_snapshot(snapshot(S1, V1, 1))
        .await
        .expect("capturing");
    sim.crash_agent();
    sim.restart_agent();
    let failed = wait_snapshot(&node, S1, |_| true).await.expect("held");
    assert_eq!(
        failed.state,
        SnapshotState::Failed(RESTARTED_WHILE_CAPTURING.into())
    );

    // An upload the controller keeps refusing with 503 is resumed after
    // the outage.
    sim.set_capture_delay(Duration::ZERO);
    controller.seen().fail_uploads = 1000;
    node.put_snapshot(snapshot(S2, V1, 1))
        .await
        .expect("snapshot");
    let deadline = tokio::time::Instant::now() + WAIT;
    while !controller.seen().upload_attempts.contains_key(S2) {
        assert!(tokio::time::Instant::now() < deadline, "never uploaded");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    sim.crash_agent();
    controller.seen().fail_uploads = 0;
    sim.restart_agent();
    wait_snapshot(&node, S2, |s| {
        matches!(s, Some(SnapshotState::Uploaded { .. }))
    })
    .await;
}

#[tokio::test]
async fn without_a_controller_snapshots_stay_in_memory() {
    let store = std::sync::Arc::new(MemorySnapshots::new());
    let sim = SimNode::new(SimConfig {
        transfer: store.clone(),
        ..SimConfig::default()
    });
    let source = store.insert(S1, bytes::Bytes::from_static(b"imported"), DiskFormat::Raw);
    NodeAgent::put_volume(
        &sim,
        VolumeSpec {
            source: Some(source),
            ..volume(V1, 1, 1)
        },
    )
    .await
    .expect("from snapshot");
    let data = sim
        .wait_for(WAIT, |s| {
            s.volumes()
                .iter()
                .any(|v| v.state == VolumeState::Available)
                .then(|| s.volume_data(V1))
                .flatten()
        })
        .await
        .expect("created");
    assert_eq!(data, (DiskFormat::Raw, b"imported".to_vec()));
    NodeAgent::put_snapshot(&sim, snapshot(S2, V1, 1))
        .await
        .expect("snapshot");
    sim.wait_for(WAIT, |s| {
        s.snapshots()
            .iter()
            .any(|o| matches!(o.state, SnapshotState::Uploaded { .. }))
            .then_some(())
    })
    .await
    .expect("uploaded");
    assert_eq!(
        store.get(S2),
        Some((bytes::Bytes::from_static(b"imported"), DiskFormat::Raw))
    );
}
