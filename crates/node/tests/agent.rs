//! The node agent end to end, with real QEMU guests (TCG), a real network
//! namespace with dnsmasq and the metadata service, and a fake controller
//! that serves the test guest images (`guest/build.sh target/guest-images`)
//! over the node object endpoint and accepts registrations.
//!
//! Runs as root with `qemu-system-x86_64`; a missing prerequisite fails the
//! test with a clear message, nothing is skipped.

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
use mallee_node::network::{NetworkConfig, tap_name};
use mallee_node_api::{
    Artifact, BootImage, DesiredState, HttpNodeClient, InstanceMetadata, InstanceSpec,
    MetadataOptions, NicSpec, NodeAgent, NodeRegistration, VmState,
};
use mallee_qemu::AccelRequest;
use md5::{Digest, Md5};

include!("common/fixture.rs");

async fn wait_console(client: &HttpNodeClient, id: &str, needles: &[&str], timeout: Duration) {
    let start = Instant::now();
    loop {
        let out = client.console_output(id).await.expect("console").output;
        if needles.iter().all(|n| out.contains(n)) {
            return;
        }
        assert!(
            start.elapsed() < timeout,
            "{id}: {needles:?} not all on the console within {timeout:?}:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn link_exists(netns: &str, link: &str) -> bool {
    Command::new("ip")
        .args(["netns", "exec", netns, "ip", "link", "show", link])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_agent_runs_stops_adopts_and_deletes_real_guests() {
    require_prerequisites();
    let images = guest_images();
    let controller = serve_controller(&images).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp
        .path()
        .join("node-data-with-a-long-path-name-to-prove-sockets-are-short");
    let hooks_dir = tmp.path().join("hooks");
    std::fs::create_dir_all(&hooks_dir).expect("hooks dir");
    let hook = hooks_dir.join("10-deny-fail");
    std::fs::write(
        &hook,
        "#!/bin/sh\ncase \"$1:$3\" in pre-boot:*i-0000000000000fa11) echo 'denied by the test hook' >&2; exit 1;; esac\nexit 0\n",
    )
    .expect("hook");
    std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let (fixture, _purge) = Fixture::new(&images, &controller, &data_dir, hooks_dir);
    let (node, client) = fixture.start().await;
    let netns = node.agent().networks().netns_name("vpc-default");
    let info = client.info().await.expect("info");
    assert!(info.node_id.starts_with("nd-"), "{info:?}");

    // Registration reaches the controller.
    let t = Instant::now();
    while controller.registrations.lock().expect("lock").is_empty() {
        assert!(t.elapsed() < Duration::from_secs(10), "no registration");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let reg = controller.registrations.lock().expect("lock")[0].clone();
    assert_eq!(reg.url, node.url());
    assert_eq!(reg.info.node_id, info.node_id);
    assert_eq!(reg.capacity.cores_max, 8);

    // Two instances of one image: one runs user data that reads its id from
    // the metadata service, the other powers itself off.
    let a = "i-00000000000000a01";
    let b = "i-00000000000000b02";
    let spec_a = fixture.spec(
        a,
        1,
        "#!/bin/sh\necho MARKER-$(imds meta-data/instance-id)\n",
    );
    let spec_b = fixture.spec(b, 2, "#!/bin/sh\npoweroff\n");
    let observed = client.put_instance(spec_a.clone()).await.expect("put a");
    assert_eq!(observed.generation, 1);
    client.put_instance(spec_b.clone()).await.expect("put b");
    // Repeating an older or equal generation changes nothing.
    let again = client
        .put_instance(spec_a.clone())
        .await
        .expect("put a again");
    assert_eq!(again.generation, 1);

    let boot = Duration::from_secs(180);
    wait_state(&client, a, |s| *s == VmState::Running, "running", boot).await;
    // The agent pushed the change to the controller by itself.
    let pushed = |id: &str, state: VmState| {
        controller.states.lock().expect("lock").iter().any(|r| {
            r.node_id == info.node_id
                && r.instances
                    .iter()
                    .any(|o| o.instance_id == id && o.state == state)
        })
    };
    let t = Instant::now();
    while !pushed(a, VmState::Running) {
        assert!(t.elapsed() < Duration::from_secs(10), "no state push");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    wait_console(
        &client,
        a,
        &[
            "MALLEE-GUEST: network up",
            "MALLEE-GUEST: metadata v2",
            &format!("MALLEE-GUEST: instance-id {a}"),
            &format!("MARKER-{a}"),
        ],
        boot,
    )
    .await;
    let capacity = client.capacity().await.expect("capacity");
    assert!(capacity.memory_mib_free <= 4096 - 256, "{capacity:?}");

    wait_state(
        &client,
        b,
        |s| *s == VmState::GuestShutdown,
        "guest-shutdown",
        boot,
    )
    .await;
    assert_eq!(qemu_pid(b), None, "QEMU of a powered-off guest is gone");

    // One cached copy of each image part; instances add overlays only.
    let cached: Vec<_> = std::fs::read_dir(data_dir.join("images/data"))
        .expect("cache dir")
        .collect();
    assert_eq!(cached.len(), 3, "kernel, ramdisk and root cached once");
    for id in [a, b] {
        let overlay = data_dir.join("instances").join(id).join("root.qcow2");
        let size = std::fs::metadata(&overlay).expect("overlay").len();
        assert!(size < 16 * 1024 * 1024, "{id} overlay is {size} bytes");
    }

    // A pre-boot hook that exits 1 fails the start with its reason.
    let f = "i-0000000000000fa11";
    client
        .put_instance(fixture.spec(f, 3, "#!/bin/sh\ntrue\n"))
        .await
        .expect("put f");
    let state = wait_state(
        &client,
        f,
        |s| matches!(s, VmState::Failed(_)),
        "failed",
        Duration::from_secs(60),
    )
    .await;
    let VmState::Failed(reason) = state else {
        unreachable!()
    };
    assert!(reason.contains("hook pre-boot exited 1"), "{reason}");
    assert!(reason.contains("denied by the test hook"), "{reason}");
    assert!(!link_exists(&netns, &tap_name(f)), "failed start unplugged");
    assert_eq!(qemu_pid(f), None);

    // Agent restart: the running VM is adopted, not restarted.
    let pid_a = qemu_pid(a).expect("QEMU of a");
    node.shutdown().await;
    assert_eq!(qemu_pid(a), Some(pid_a), "VMs outlive the agent");
    let (node, client) = fixture.start().await;
    assert_eq!(client.info().await.expect("info").node_id, info.node_id);
    let report = client.report().await.expect("report");
    let states: HashMap<_, _> = report
        .instances
        .iter()
        .map(|i| (i.instance_id.as_str(), i.state.clone()))
        .collect();
    assert_eq!(states.get(a), Some(&VmState::Running), "{report:?}");
    assert_eq!(states.get(b), Some(&VmState::GuestShutdown), "{report:?}");
    assert!(
        matches!(states.get(f), Some(VmState::Failed(_))),
        "{report:?}"
    );
    assert_eq!(qemu_pid(a), Some(pid_a), "adopted, same QEMU");
    let console = client.console_output(a).await.expect("console").output;
    assert_eq!(console.matches("MALLEE-GUEST: booted").count(), 1);
    assert!(report.generation > 0);
    assert!(client.report().await.expect("report").generation > report.generation);

    // Stop keeps the overlay; start boots again from it.
    let overlay = data_dir.join("instances").join(a).join("root.qcow2");
    let inode = std::fs::metadata(&overlay).expect("overlay").ino();
    set_state_and_wait(
        &client,
        a,
        DesiredState::Stopped,
        2,
        "stopped",
        Duration::from_secs(60),
    )
    .await;
    assert_eq!(qemu_pid(a), None, "stopped: QEMU gone");
    assert_eq!(std::fs::metadata(&overlay).expect("kept").ino(), inode);
    set_state_and_wait(&client, a, DesiredState::Running, 3, "running again", boot).await;
    assert_eq!(std::fs::metadata(&overlay).expect("kept").ino(), inode);
    let t = Instant::now();
    loop {
        let out = client.console_output(a).await.expect("console").output;
        if out.matches(&format!("MARKER-{a}")).count() >= 2 {
            break;
        }
        assert!(t.elapsed() < boot, "second boot's marker missing:\n{out}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // Reboot: same QEMU, the guest boots again, still running.
    let pid_before = qemu_pid(a).expect("QEMU of a");
    client.reboot(a).await.expect("reboot");
    let t = Instant::now();
    loop {
        let out = client.console_output(a).await.expect("console").output;
        if out.matches(&format!("MARKER-{a}")).count() >= 3 {
            break;
        }
        assert!(
            t.elapsed() < boot,
            "the rebooted guest's marker is missing:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(qemu_pid(a), Some(pid_before), "reboot keeps the VM process");
    wait_state(
        &client,
        a,
        |s| *s == VmState::Running,
        "running after reboot",
        boot,
    )
    .await;
    // A stale generation does not undo the start.
    let stale = client
        .set_desired_state(a, DesiredState::Stopped, 2)
        .await
        .expect("stale");
    assert_eq!(stale.generation, 3);
    assert_eq!(stale.state, VmState::Running);

    // Delete: QEMU, tap and files gone; deleting again is fine.
    let pid_a = qemu_pid(a).expect("QEMU of a");
    assert!(link_exists(&netns, &tap_name(a)));
    for id in [a, b, f] {
        client.delete_instance(id).await.expect("delete");
        assert!(!data_dir.join("instances").join(id).exists(), "{id} dir");
        assert!(!link_exists(&netns, &tap_name(id)), "{id} tap");
    }
    // Gone (a zombie awaiting its reaper has no command line any more).
    assert_eq!(qemu_pid(a), None, "QEMU of a (pid {pid_a})");
    client.delete_instance(a).await.expect("delete again");
    assert!(client.report().await.expect("report").instances.is_empty());
    assert!(
        !std::path::Path::new("/run/netns").join(&netns).exists(),
        "the VPC namespace outlived its last instance"
    );
    node.shutdown().await;
}
