//! Remote volumes on a real node agent: a storage host's qcow2 files served
//! by qemu-storage-daemon over NBD with TLS (server certificate of storage
//! host `st-1` and the node's from the same cluster CA; only the node's
//! certificate admitted), recorded on the node and attached to real QEMU
//! guests (TCG), which reach them through the agent's relay with QEMU's
//! own NBD client. The test checks:
//!
//! - the records: available at once, no disk taken, a moved export
//!   recorded, stale and conflicting specs refused, snapshots sent away;
//! - a hot-plugged remote volume the guest finds by its serial and writes;
//! - an agent restart (the relays go and come back) and a storage host
//!   restart (the server gone for seconds) only stall the guest's I/O;
//! - a detach flushes before the client disconnects; attaching again works
//!   in a VM that already has the TLS credentials;
//! - an EBS-backed instance boots from a remote root volume (NBD on QEMU's
//!   command line, with TLS);
//! - deleting the records leaves the data, which `qemu-io` reads back on
//!   the storage side once its server has stopped.
//!
//! Runs as root with `qemu-system-x86_64`, `qemu-storage-daemon`,
//! `qemu-img`, `qemu-io` and the test guest images (`guest/build.sh
//! target/guest-images`); a missing prerequisite fails the test with a
//! clear message, nothing is skipped.

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
    Artifact, BootImage, DesiredState, HttpNodeClient, InstanceMetadata, InstanceSpec,
    MetadataOptions, NbdExport, NicSpec, NodeAgent, NodeError, NodeRegistration, SnapshotSpec,
    VmState, VolumeAttachment, VolumeSpec, VolumeState,
};
use mallee_qemu::{AccelRequest, QmpClient};
use md5::{Digest, Md5};
use sha2::Sha256;

include!("common/fixture.rs");

/// The data volume the guest writes.
const VOL: &str = "vol-00000000000000e01";
/// A local volume whose arrival tells the guest to write again.
const TRIGGER: &str = "vol-00000000000000e02";
/// The remote root of the EBS-backed instance.
const ROOT: &str = "vol-00000000000000e03";
const STORAGE_HOST: &str = "st-1";
const BOOT: Duration = Duration::from_secs(240);
const MIB: usize = 1024 * 1024;
/// What the guest writes first: 4 MiB of `M` at offset 0.
const FIRST: (u8, usize, usize) = (b'M', 0, 4 * MIB);
/// What it writes when the trigger volume arrives: 1 MiB of `N` after it.
const SECOND: (u8, usize, usize) = (b'N', 4 * MIB, MIB);

fn sha256_of(byte: u8, len: usize) -> String {
    hex::encode(Sha256::digest(vec![byte; len]))
}

/// Shell writing `len` bytes of `byte` at `offset` of `$target` (and
/// syncing), then printing `tag` and the sha256 of what it reads back.
fn write_pattern(tag: &str, (byte, offset, len): (u8, usize, usize)) -> String {
    let blocks = len / 65536;
    let skip = offset / 65536;
    format!(
        "dd if=/dev/zero bs=65536 count={blocks} 2>/dev/null | tr '\\000' '\\{byte:03o}' \
         | dd of=$target bs=65536 seek={skip} conv=fsync 2>/dev/null\n\
         echo \"{tag} $(dd if=$target bs=65536 skip={skip} count={blocks} 2>/dev/null | sha256sum | cut -d' ' -f1)\"\n"
    )
}

/// User data of the guest: waits for the remote volume, prints every
/// disk's serial, writes the first pattern; then waits for the trigger
/// volume and writes the second.
fn user_data() -> String {
    format!(
        "#!/bin/sh\n{}target=$dev\n\
         for d in /sys/block/vd*; do echo \"VOL-SERIAL ${{d##*/}} $(cat $d/serial 2>/dev/null)\"; done\n\
         {}{}{}",
        find_disk(VOL),
        write_pattern("VOL-FIRST", FIRST),
        find_disk(TRIGGER),
        write_pattern("VOL-SECOND", SECOND),
    )
}

/// The storage host's side: its directory (images, TLS credentials,
/// daemon logs and traces) and the one node it admits.
struct StorageHost {
    dir: PathBuf,
    tls_dir: PathBuf,
    /// The admitted client's certificate DN, as GnuTLS prints it.
    client_dn: String,
}

/// A qemu-storage-daemon exporting one qcow2 file over NBD with TLS, as a
/// storage host does; killed when dropped (a failing test leaves none).
struct Qsd {
    child: std::process::Child,
    qmp: PathBuf,
    trace: PathBuf,
}

impl Qsd {
    /// Serves `image` as export (and block node) `name` on 127.0.0.1:`port`
    /// with the storage host's server credentials, admitting only its
    /// client; NBD requests are traced to `<tag>.trace`.
    async fn start(host: &StorageHost, tag: &str, image: &Path, name: &str, port: u16) -> Self {
        let (dir, tls_dir, client_dn) = (&host.dir, &host.tls_dir, &host.client_dn);
        let qmp = dir.join(format!("{tag}.qmp"));
        let trace = dir.join(format!("{tag}.trace"));
        let log = std::fs::File::create(dir.join(format!("{tag}.log"))).expect("QSD log");
        let _ = std::fs::remove_file(&qmp);
        let mut command = Command::new("qemu-storage-daemon");
        command
            .arg("--object")
            .arg(format!(
                "tls-creds-x509,id=tls0,dir={},endpoint=server,verify-peer=on",
                tls_dir.display()
            ))
            .arg("--object")
            .arg(format!("authz-simple,id=auth0,identity={client_dn}"))
            .arg("--blockdev")
            .arg(
                serde_json::json!({"driver": "file", "node-name": "file0",
                    "filename": image.display().to_string()})
                .to_string(),
            )
            .arg("--blockdev")
            .arg(
                serde_json::json!({"driver": "qcow2", "node-name": name, "file": "file0"})
                    .to_string(),
            )
            .arg("--nbd-server")
            .arg(format!(
                "addr.type=inet,addr.host=127.0.0.1,addr.port={port},tls-creds=tls0,tls-authz=auth0"
            ))
            .arg("--export")
            .arg(format!(
                "type=nbd,id=exp0,node-name={name},name={name},writable=on"
            ))
            .arg("--trace")
            .arg(format!(
                "enable=nbd_negotiate_handle_starttls,file={}",
                trace.display()
            ))
            .arg("--trace")
            .arg("enable=nbd_negotiate_success")
            .arg("--trace")
            .arg("enable=nbd_co_receive_request_decode_type")
            // Last: the monitor answering means everything above is up.
            .arg("--chardev")
            .arg(format!(
                "socket,id=qmp,path={},server=on,wait=off",
                qmp.display()
            ))
            .arg("--monitor")
            .arg("chardev=qmp")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log);
        let child = command
            .spawn()
            .expect("qemu-storage-daemon is not runnable: install qemu-system-x86 (or qemu-utils)");
        let qsd = Self { child, qmp, trace };
        qsd.client().await;
        qsd
    }

    /// Its QMP, once it answers.
    async fn client(&self) -> QmpClient {
        let start = Instant::now();
        loop {
            match QmpClient::connect(&self.qmp).await {
                Ok(qmp) => return qmp,
                Err(e) => assert!(
                    start.elapsed() < Duration::from_secs(20),
                    "qemu-storage-daemon did not come up: {e}"
                ),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Stops it the clean way (`quit`: its qcow2 written out) and waits.
    async fn stop(mut self) {
        self.client().await.quit().await.expect("quit");
        let start = Instant::now();
        while self.child.try_wait().expect("wait").is_none() {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "qemu-storage-daemon did not exit"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The NBD requests it got so far, by type (`write`, `flush`,
    /// `disconnect`, …), in order; and how many clients got in over TLS.
    fn requests(&self) -> (Vec<String>, usize) {
        let text = std::fs::read_to_string(&self.trace).unwrap_or_default();
        let requests = text
            .lines()
            .filter(|l| l.starts_with("nbd_co_receive_request_decode_type"))
            .filter_map(|l| Some(l.rsplit_once('(')?.1.trim_end_matches(')').to_owned()))
            .collect();
        let starttls = text
            .lines()
            .filter(|l| l.starts_with("nbd_negotiate_handle_starttls"))
            .count();
        let negotiated = text
            .lines()
            .filter(|l| l.starts_with("nbd_negotiate_success"))
            .count();
        assert!(
            negotiated <= starttls,
            "a client got in without TLS:\n{text}"
        );
        (requests, negotiated)
    }
}

impl Drop for Qsd {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A TCP port of 127.0.0.1 nobody listens on (now).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

fn export(port: u16, name: &str) -> NbdExport {
    NbdExport {
        host: "127.0.0.1".into(),
        port,
        name: name.into(),
        server_node_id: STORAGE_HOST.into(),
    }
}

fn remote_spec(volume_id: &str, size_gib: u64, generation: u64, port: u16) -> VolumeSpec {
    VolumeSpec {
        volume_id: volume_id.into(),
        size_gib,
        generation,
        source: None,
        remote: Some(export(port, volume_id)),
    }
}

fn attachment(volume_id: &str, device: &str, generation: u64) -> VolumeAttachment {
    VolumeAttachment {
        volume_id: volume_id.into(),
        device: device.into(),
        generation,
    }
}

fn record(data_dir: &Path, volume_id: &str) -> serde_json::Value {
    let path = data_dir.join("volumes").join(format!("{volume_id}.json"));
    serde_json::from_slice(&std::fs::read(&path).expect("volume record")).expect("record json")
}

fn qemu_img(args: &[&str]) {
    let out = Command::new("qemu-img")
        .args(args)
        .output()
        .expect("qemu-img");
    assert!(
        out.status.success(),
        "qemu-img {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The command line of process `pid`.
fn cmdline(pid: u32) -> Vec<String> {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .expect("cmdline")
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

/// Waits until `qsd` has had `count` clients in.
async fn wait_clients(qsd: &Qsd, count: usize, what: &str) {
    let start = Instant::now();
    while qsd.requests().1 < count {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "{what}: the storage host had {} clients, not {count}",
            qsd.requests().1
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_volumes_over_nbd_with_tls() {
    require_prerequisites();
    require_runnable(&["qemu-img", "qemu-io"], "qemu-utils");
    require_runnable(&["qemu-storage-daemon"], "qemu-system-x86 (or qemu-utils)");
    let images = guest_images();
    let controller = serve_controller(&images).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    let data_dir = tmp.path().join("node");
    let storage = tmp.path().join("storage");
    std::fs::create_dir_all(&storage).expect("storage dir");
    let (fixture, _purge) = Fixture::new(&images, &controller, &data_dir, tmp.path().join("hooks"));
    let node_id = mallee_node::agent::data_dir_node_id(&data_dir).expect("node id");
    let client_dn = format!(
        "CN={}",
        mallee_pki::PeerName::node(&node_id).expect("id").dns_name()
    );

    // The storage host: its certificate from the node's CA, a 1 GiB volume
    // and a root volume made from the test guest's BIOS-bootable disk.
    let server_tls = storage.join("tls");
    controller
        .pki
        .ca()
        .issue(
            &mallee_pki::PeerName::node(STORAGE_HOST).expect("id"),
            mallee_pki::Validity::peer(),
        )
        .expect("storage host certificate")
        .write_qemu_tls_dir(&server_tls, mallee_pki::QemuTlsEndpoint::Server)
        .expect("server TLS dir");
    let image = storage.join(format!("{VOL}.qcow2"));
    qemu_img(&[
        "create",
        "-q",
        "-f",
        "qcow2",
        &image.display().to_string(),
        "1G",
    ]);
    let root_image = storage.join(format!("{ROOT}.qcow2"));
    qemu_img(&[
        "convert",
        "-f",
        "qcow2",
        "-O",
        "qcow2",
        &images.join("hvm.qcow2").display().to_string(),
        &root_image.display().to_string(),
    ]);
    qemu_img(&["resize", "-q", &root_image.display().to_string(), "1G"]);
    let host = StorageHost {
        dir: storage.clone(),
        tls_dir: server_tls,
        client_dn,
    };
    let port = free_port();
    let qsd = Qsd::start(&host, "vol-1", &image, VOL, port).await;

    let (node, client) = fixture.start().await;
    let tls_dir = data_dir.join("tls/nbd-client");
    for file in ["ca-cert.pem", "client-cert.pem", "client-key.pem"] {
        assert!(tls_dir.join(file).is_file(), "{file} of the NBD client");
    }
    assert_eq!(
        std::fs::metadata(tls_dir.join("client-key.pem"))
            .expect("key")
            .mode()
            & 0o777,
        0o600
    );

    // The record: available at once, remote, no disk taken, no file made.
    let created = client
        .put_volume(remote_spec(VOL, 1, 1, port))
        .await
        .expect("remote volume");
    assert_eq!(created.state, VolumeState::Available);
    assert!(created.remote && created.export.is_none());
    assert_eq!((created.size_gib, created.generation), (1, 1));
    assert_eq!(
        client
            .put_volume(remote_spec(VOL, 1, 1, port))
            .await
            .expect("again"),
        created
    );
    let held = record(&data_dir, VOL);
    assert_eq!(held["backend"], "nbd");
    assert_eq!(held["path"], format!("nbd://127.0.0.1:{port}/{VOL}"));
    assert!(
        !data_dir
            .join("volumes")
            .join(format!("{VOL}.qcow2"))
            .exists()
    );
    assert_eq!(
        client.capacity().await.expect("capacity").disk_gib_free,
        100
    );
    // The export moves (another port): recorded; a stale spec is not.
    let moved = client
        .put_volume(remote_spec(VOL, 1, 2, port + 1))
        .await
        .expect("moved");
    assert_eq!(moved.generation, 2);
    assert_eq!(record(&data_dir, VOL)["remote"]["port"], port + 1);
    client
        .put_volume(remote_spec(VOL, 1, 3, port))
        .await
        .expect("moved back");
    client
        .put_volume(remote_spec(VOL, 1, 2, port + 1))
        .await
        .expect("stale");
    assert_eq!(record(&data_dir, VOL)["remote"]["port"], port);
    // A larger size is the storage host's grown volume (ModifyVolume); a
    // smaller one is refused.
    let grown = "vol-0000000000000e0ff";
    client
        .put_volume(remote_spec(grown, 1, 1, port))
        .await
        .expect("another remote volume");
    let bigger = client
        .put_volume(remote_spec(grown, 2, 2, port))
        .await
        .expect("grown");
    assert_eq!((bigger.size_gib, bigger.generation), (2, 2));
    assert!(matches!(
        client.put_volume(remote_spec(grown, 1, 3, port)).await,
        Err(NodeError::Conflict(_))
    ));
    client.delete_volume(grown).await.expect("forget it");
    // Conflicts: a smaller size, the same id as a local volume; bad exports.
    for (spec, what) in [(
        VolumeSpec {
            remote: None,
            ..remote_spec(VOL, 1, 4, port)
        },
        "a local volume of a remote id",
    )] {
        assert!(
            matches!(client.put_volume(spec).await, Err(NodeError::Conflict(_))),
            "{what}"
        );
    }
    let mut bad = remote_spec("vol-00000000000000bad", 1, 1, port);
    if let Some(e) = bad.remote.as_mut() {
        e.server_node_id = "Not A Node".into();
    }
    assert!(matches!(
        client.put_volume(bad).await,
        Err(NodeError::BadRequest(_))
    ));
    // Snapshots are the storage host's.
    match client
        .put_snapshot(SnapshotSpec {
            snapshot_id: "snap-00000000000000e01".into(),
            volume_id: VOL.into(),
            generation: 1,
        })
        .await
    {
        Err(NodeError::BadRequest(m)) => {
            assert!(m.contains("storage host st-1") && m.contains(VOL), "{m}");
        }
        other => panic!("a remote volume's snapshot must be refused: {other:?}"),
    }
    client
        .put_volume(VolumeSpec {
            volume_id: TRIGGER.into(),
            size_gib: 1,
            generation: 1,
            source: None,
            remote: None,
        })
        .await
        .expect("trigger volume");

    // Hot-plug into a running guest: it finds the disk by its serial and
    // writes through QEMU's NBD client, over TLS, to the storage host.
    let id = "i-00000000000000e01";
    client
        .put_instance(fixture.spec(id, 1, &user_data()))
        .await
        .expect("put instance");
    wait_state(&client, id, |s| *s == VmState::Running, "running", BOOT).await;
    let attached = client
        .attach_volume(id, attachment(VOL, "/dev/sdf", 5))
        .await
        .expect("attach");
    assert_eq!(
        attached.state,
        VolumeState::InUse {
            instance_id: id.into(),
            device: "/dev/sdf".into(),
            guest_device: format!("/dev/disk/by-id/virtio-{}", serial(VOL)),
        }
    );
    assert!(attached.remote);
    let first = console_lines(&client, id, "VOL-FIRST", 1, BOOT).await;
    assert!(
        first[0].ends_with(&sha256_of(FIRST.0, FIRST.2)),
        "the guest read back {first:?}"
    );
    let serials = console_lines(&client, id, "VOL-SERIAL", 1, BOOT).await;
    assert!(
        serials
            .iter()
            .any(|l| l.ends_with(&format!("vdb {}", serial(VOL)))),
        "{serials:?}"
    );
    let (requests, clients) = qsd.requests();
    assert_eq!(clients, 1, "one client, over TLS");
    assert!(requests.iter().any(|r| r == "write"), "{requests:?}");
    assert!(matches!(
        client.delete_volume(VOL).await,
        Err(NodeError::Conflict(_))
    ));

    // An agent restart: the relay goes and comes back (the NBD client
    // reconnects at its next request). Then the storage host goes away: the
    // guest's next write stalls, and completes once the server is back on
    // the same port, through the new relay.
    let pid = qemu_pid(id).expect("QEMU");
    node.shutdown().await;
    let (node, client) = fixture.start().await;
    assert_eq!(qemu_pid(id), Some(pid), "adopted, same QEMU");
    assert_eq!(
        volume(&client, VOL).await.expect("volume").state,
        attached.state
    );
    qsd.stop().await;
    client
        .attach_volume(id, attachment(TRIGGER, "/dev/sdg", 5))
        .await
        .expect("attach the trigger");
    tokio::time::sleep(Duration::from_secs(8)).await;
    let console = client.console_output(id).await.expect("console").output;
    assert!(
        !console.contains("VOL-SECOND"),
        "the guest wrote with the storage host down:\n{console}"
    );
    assert!(
        !console.contains("I/O error"),
        "the guest saw an I/O error:\n{console}"
    );
    let qsd = Qsd::start(&host, "vol-2", &image, VOL, port).await;
    let second = console_lines(&client, id, "VOL-SECOND", 1, Duration::from_secs(90)).await;
    assert!(
        second[0].ends_with(&sha256_of(SECOND.0, SECOND.2)),
        "the guest read back {second:?}"
    );
    let console = client.console_output(id).await.expect("console").output;
    assert!(
        !console.contains("I/O error"),
        "the guest saw an I/O error:\n{console}"
    );

    // Detach: the client flushes, then disconnects. Attaching again (the VM
    // has its TLS credentials already) and detaching work the same.
    for round in 0..2 {
        let (before, clients) = qsd.requests();
        let detached = client.detach_volume(id, VOL, false).await.expect("detach");
        assert_eq!(detached.state, VolumeState::Available);
        // The server may log the disconnect a moment after the client left.
        let start = Instant::now();
        loop {
            let (after, _) = qsd.requests();
            let tail = &after[before.len()..];
            let flush = tail.iter().position(|r| r == "flush");
            let disconnect = tail.iter().position(|r| r == "disconnect");
            if disconnect.is_some() || start.elapsed() > Duration::from_secs(10) {
                assert!(
                    matches!((flush, disconnect), (Some(f), Some(d)) if f < d),
                    "round {round}: no flush before the disconnect: {tail:?}"
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        if round == 0 {
            client
                .attach_volume(id, attachment(VOL, "/dev/sdf", 6))
                .await
                .expect("attach again");
            wait_clients(&qsd, clients + 1, "attached again").await;
        }
    }

    // An EBS-backed instance boots from a remote root: the NBD disk is on
    // QEMU's command line, with the node's TLS credentials and the storage
    // host's name.
    let root_port = free_port();
    let root_qsd = Qsd::start(&host, "root", &root_image, ROOT, root_port).await;
    client
        .put_volume(remote_spec(ROOT, 1, 1, root_port))
        .await
        .expect("remote root");
    let ebs = "i-00000000000000e02";
    let mut spec = fixture.spec(
        ebs,
        2,
        "#!/bin/sh\necho first-boot > /ebs-marker; sync; echo EBS-WROTE\n",
    );
    spec.image = BootImage::Ebs {
        root_volume_id: ROOT.into(),
        kernel: None,
        ramdisk: None,
        cmdline: String::new(),
    };
    spec.metadata.root_device_name = "/dev/xvda".into();
    client.put_instance(spec).await.expect("EBS instance");
    wait_state(&client, ebs, |s| *s == VmState::Running, "running", BOOT).await;
    let args = cmdline(qemu_pid(ebs).expect("QEMU of the EBS instance"));
    let json_args: Vec<serde_json::Value> = args
        .iter()
        .filter(|a| a.starts_with('{'))
        .map(|a| serde_json::from_str(a).expect("JSON argument"))
        .collect();
    let tls_object = serde_json::json!({"qom-type": "tls-creds-x509", "id": "nbd-tls",
        "dir": tls_dir.display().to_string(), "endpoint": "client"});
    assert!(json_args.contains(&tls_object), "{args:?}");
    let root_disk = json_args
        .iter()
        .find(|a| a["node-name"] == ROOT)
        .unwrap_or_else(|| panic!("no block node {ROOT}: {args:?}"));
    assert_eq!(root_disk["driver"], "nbd");
    assert_eq!(root_disk["tls-creds"], "nbd-tls");
    assert_eq!(root_disk["tls-hostname"], "st-1.node.mallee-cluster");
    assert_eq!(root_disk["export"], ROOT);
    assert_eq!(root_disk["server"]["type"], "unix");
    assert!(root_disk["reconnect-delay"].as_u64() > Some(30));
    console_lines(&client, ebs, "EBS-WROTE", 1, BOOT).await;
    assert_eq!(
        volume(&client, ROOT).await.expect("root").state,
        VolumeState::InUse {
            instance_id: ebs.into(),
            device: "/dev/xvda".into(),
            guest_device: "/dev/vda".into(),
        }
    );
    assert!(root_qsd.requests().1 >= 1);
    client
        .delete_instance(ebs)
        .await
        .expect("delete EBS instance");
    client.delete_instance(id).await.expect("delete instance");

    // Deleting the records forgets them; the data stays on the storage
    // host, where the guest's writes are.
    for vol in [VOL, ROOT, TRIGGER] {
        client.delete_volume(vol).await.expect("delete");
        assert!(volume(&client, vol).await.is_none(), "{vol}");
    }
    assert!(image.is_file() && root_image.is_file());
    qsd.stop().await;
    root_qsd.stop().await;
    let out = Command::new("qemu-io")
        .args(["-f", "qcow2", "-r"])
        .args([
            "-c",
            &format!("read -P {} {} {}", FIRST.0, FIRST.1, FIRST.2),
        ])
        .args([
            "-c",
            &format!("read -P {} {} {}", SECOND.0, SECOND.1, SECOND.2),
        ])
        .arg(&image)
        .output()
        .expect("qemu-io");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && !text.contains("verification failed"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (_, offset, len) in [FIRST, SECOND] {
        assert!(
            text.contains(&format!("read {len}/{len} bytes at offset {offset}")),
            "{text}"
        );
    }
    node.shutdown().await;
}
