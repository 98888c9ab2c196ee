//! NBD exports end to end: real qemu-storage-daemon processes, real TLS
//! with certificates from a cluster CA, real NBD clients (`qemu-io`).
//!
//! Needs `qemu-storage-daemon`, `qemu-io` and `qemu-img` (Debian package
//! `qemu-utils`/`qemu-block-extra`); a missing one fails the test with a
//! clear message. Every test uses its own port range and kills the daemons
//! of its run directory when it ends, passed or not.

use std::net::{IpAddr, Ipv4Addr};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mallee_pki::{ClusterCa, Credentials, PeerName, QemuTlsEndpoint, Validity};
use mallee_qemu::QmpClient;
use mallee_storage::{ExportConfig, ExportError, Exports, VolumeExport};
use serde_json::{Value, json};

const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const SERVER_NAME: &str = "st-1.node.mallee-cluster";

fn require_tools() {
    for tool in ["qemu-storage-daemon", "qemu-io", "qemu-img"] {
        let ok = std::process::Command::new(tool)
            .arg("--version")
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        assert!(
            ok,
            "{tool} is not runnable: install the Debian packages qemu-utils and qemu-block-extra"
        );
    }
}

fn creds(ca: &ClusterCa, node: &str) -> Credentials {
    ca.issue(&PeerName::node(node).expect("node id"), Validity::days(1))
        .expect("issue")
}

/// A storage host `st-1`, its client nodes' TLS directories and a qcow2
/// image; kills the daemons of its run directory when dropped.
struct Lab {
    dir: tempfile::TempDir,
    server: Credentials,
    ports: RangeInclusive<u16>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Synchronous, so it also runs when a test panics.
        let Ok(entries) = std::fs::read_dir(self.run_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            if path.extension().is_some_and(|e| e == "pid")
                && let Ok(pid) = std::fs::read_to_string(&path)
                && std::fs::read(format!("/proc/{}/cmdline", pid.trim()))
                    .is_ok_and(|c| c.windows(9).any(|w| w == b"--pidfile"))
            {
                let _ = std::process::Command::new("kill")
                    .args(["-9", pid.trim()])
                    .status();
            }
        }
    }
}

impl Lab {
    fn new(ports: RangeInclusive<u16>) -> Self {
        require_tools();
        let dir = tempfile::tempdir().expect("tempdir");
        let ca = ClusterCa::generate().expect("CA");
        for node in ["nd-1", "nd-2"] {
            creds(&ca, node)
                .write_qemu_tls_dir(&dir.path().join(node), QemuTlsEndpoint::Client)
                .expect("client TLS dir");
        }
        // A certificate that names nd-1 but comes from another CA.
        let other = ClusterCa::generate().expect("other CA");
        creds(&other, "nd-1")
            .write_qemu_tls_dir(&dir.path().join("forged"), QemuTlsEndpoint::Client)
            .expect("forged TLS dir");
        Self {
            server: creds(&ca, "st-1"),
            dir,
            ports,
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn run_dir(&self) -> PathBuf {
        self.path("run")
    }

    fn config(&self) -> ExportConfig {
        ExportConfig {
            ports: self.ports.clone(),
            ..ExportConfig::new(
                self.path("state"),
                self.run_dir(),
                self.path("tls"),
                LOOPBACK,
                "127.0.0.1",
            )
        }
    }

    async fn open(&self) -> Exports {
        Exports::open(self.config(), &self.server)
            .await
            .expect("open exports")
    }

    /// A new 64 MiB qcow2 image.
    async fn image(&self, name: &str) -> PathBuf {
        let path = self.path(name);
        tool(
            "qemu-img",
            &["create", "-q", "-f", "qcow2", &arg(&path), "64M"],
        )
        .await
        .expect("qemu-img create");
        path
    }

    /// Runs `qemu-io` commands on export `name` at `port` over NBD with the
    /// TLS directory `client` (None: no TLS) and `extra` image options.
    async fn nbd(
        &self,
        client: Option<&str>,
        port: u16,
        name: &str,
        extra: &str,
        commands: &[&str],
    ) -> Result<String, String> {
        let mut args = Vec::new();
        let mut opts = format!(
            "driver=nbd,server.type=inet,server.host=127.0.0.1,server.port={port},export={name}"
        );
        if let Some(client) = client {
            args.push("--object".to_owned());
            args.push(format!(
                "tls-creds-x509,id=tls0,dir={},endpoint=client",
                arg(&self.path(client))
            ));
            opts.push_str(",tls-creds=tls0");
        }
        opts.push_str(extra);
        args.push("--image-opts".to_owned());
        args.push(opts);
        for c in commands {
            args.push("-c".to_owned());
            args.push((*c).to_owned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        tool("qemu-io", &args).await
    }

    /// [`Lab::nbd`] as node `client`, checking the server's name.
    async fn node_io(
        &self,
        client: &str,
        port: u16,
        name: &str,
        commands: &[&str],
    ) -> Result<String, String> {
        self.nbd(
            Some(client),
            port,
            name,
            &format!(",tls-hostname={SERVER_NAME}"),
            commands,
        )
        .await
    }
}

fn arg(p: &Path) -> String {
    p.display().to_string()
}

/// Runs a tool for at most 20 s: its output, or its output and error.
async fn tool(program: &str, args: &[&str]) -> Result<String, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(20),
        tokio::process::Command::new(program)
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .unwrap_or_else(|_| panic!("{program} {args:?} hung"))
    .unwrap_or_else(|e| panic!("run {program}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// Whether `pid` is a live process (not a zombie).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        let state = s
            .rsplit(')')
            .next()
            .and_then(|r| r.split_whitespace().next());
        !matches!(state, Some("Z" | "X" | "x"))
    })
}

async fn wait_dead(pid: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(Instant::now() < deadline, "pid {pid} is still alive");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn pid(e: &VolumeExport) -> u32 {
    e.pid.expect("the export's daemon runs")
}

#[tokio::test]
async fn only_the_node_exported_to_gets_in_and_unexport_flushes() {
    let lab = Lab::new(21810..=21829);
    let exports = lab.open().await;
    assert_eq!(exports.server_node_id(), "st-1");
    let image = lab.image("vol-a.qcow2").await;
    let started = Instant::now();
    let e = exports
        .export("vol-a", &image, "nd-1")
        .await
        .expect("export");
    println!("export took {:?}", started.elapsed());
    assert_eq!(e.volume_id, "vol-a");
    assert_eq!(e.image, image.canonicalize().expect("abs"));
    assert_eq!(e.observed.node_id, "nd-1");
    assert!(e.observed.serving);
    let nbd = &e.observed.export;
    assert_eq!(
        (
            nbd.host.as_str(),
            nbd.name.as_str(),
            nbd.server_node_id.as_str()
        ),
        ("127.0.0.1", "vol-a", "st-1")
    );
    assert!(lab.ports.contains(&nbd.port));
    let port = nbd.port;
    assert!(lab.path("state/vol-a.json").is_file());

    // 1. The node it is exported to writes and reads back.
    lab.node_io("nd-1", port, "vol-a", &["write -P 0xab 0 1M"])
        .await
        .expect("nd-1 writes");
    lab.node_io("nd-1", port, "vol-a", &["read -P 0xab 0 1M"])
        .await
        .expect("nd-1 reads what it wrote");
    let wrong = lab
        .node_io("nd-1", port, "vol-a", &["read -P 0x11 0 1M"])
        .await
        .expect_err("a wrong pattern fails");
    assert!(wrong.contains("Pattern verification failed"), "{wrong}");

    // 2. Nobody else: another node, a client without TLS, a certificate
    // naming nd-1 from another CA; and the client checks the server's name.
    let refused = lab
        .node_io("nd-2", port, "vol-a", &["read 0 4k"])
        .await
        .expect_err("nd-2 is refused");
    println!("nd-2: {refused}");
    let refused = lab
        .nbd(None, port, "vol-a", "", &["read 0 4k"])
        .await
        .expect_err("no TLS is refused");
    assert!(refused.contains("TLS"), "{refused}");
    lab.node_io("forged", port, "vol-a", &["read 0 4k"])
        .await
        .expect_err("another CA's nd-1 is refused");
    let refused = lab
        .nbd(
            Some("nd-1"),
            port,
            "vol-a",
            ",tls-hostname=st-2.node.mallee-cluster",
            &["read 0 4k"],
        )
        .await
        .expect_err("a server of another name is refused");
    assert!(refused.contains("does not match the hostname"), "{refused}");
    // The refusals did not hurt the export.
    lab.node_io("nd-1", port, "vol-a", &["read -P 0xab 0 1M"])
        .await
        .expect("nd-1 still reads");

    // 3. Exporting again to the same node is the same export; to another
    // node, a conflict; another volume gets another port.
    let again = exports
        .export("vol-a", &image, "nd-1")
        .await
        .expect("again");
    assert_eq!((again.observed.export.port, pid(&again)), (port, pid(&e)));
    let conflict = exports.export("vol-a", &image, "nd-2").await;
    assert!(
        matches!(&conflict, Err(ExportError::Conflict { node_id, .. }) if node_id == "nd-1"),
        "{conflict:?}"
    );
    let image_b = lab.image("vol-b.qcow2").await;
    let b = exports
        .export("vol-b", &image_b, "nd-2")
        .await
        .expect("vol-b");
    assert_ne!(b.observed.export.port, port);
    lab.node_io(
        "nd-2",
        b.observed.export.port,
        "vol-b",
        &["write -P 0x5a 0 64k"],
    )
    .await
    .expect("nd-2 writes its own volume");
    lab.node_io("nd-1", b.observed.export.port, "vol-b", &["read 0 4k"])
        .await
        .expect_err("nd-1 is refused on nd-2's volume");
    let listed: Vec<(String, String, bool)> = exports
        .list()
        .into_iter()
        .map(|v| (v.volume_id, v.observed.node_id, v.observed.serving))
        .collect();
    assert_eq!(
        listed,
        [
            ("vol-a".into(), "nd-1".into(), true),
            ("vol-b".into(), "nd-2".into(), true)
        ]
    );

    // 4. Unexport: a write the client never flushed is on disk once the
    // daemon is gone (it closes the image on quit), the record is gone, and
    // the image is free for others.
    lab.node_io("nd-1", port, "vol-a", &["write -P 0xcd 4M 1M"])
        .await
        .expect("write");
    lab.nbd(
        Some("nd-1"),
        port,
        "vol-a",
        &format!(",tls-hostname={SERVER_NAME},cache.no-flush=on"),
        &["write -P 0xef 8M 1M"],
    )
    .await
    .expect("unflushed write");
    tool("qemu-io", &["-f", "qcow2", &arg(&image), "-c", "read 0 4k"])
        .await
        .expect_err("the daemon holds the image's lock while it serves");
    let started = Instant::now();
    exports.unexport("vol-a").await.expect("unexport");
    println!("unexport took {:?}", started.elapsed());
    assert!(!alive(pid(&e)), "the daemon is gone");
    assert!(!lab.path("state/vol-a.json").exists(), "the record is gone");
    assert!(!lab.path("run/vol-a.pid").exists());
    assert!(!lab.path("run/vol-a.qmp").exists());
    assert!(exports.get("vol-a").is_none());
    tool(
        "qemu-io",
        &[
            "-f",
            "qcow2",
            &arg(&image),
            "-c",
            "read -P 0xab 0 1M",
            "-c",
            "read -P 0xcd 4M 1M",
            "-c",
            "read -P 0xef 8M 1M",
        ],
    )
    .await
    .expect("the data is in the file");
    let check = tool("qemu-img", &["check", &arg(&image)])
        .await
        .expect("check");
    assert!(check.contains("No errors"), "{check}");
    lab.node_io("nd-1", port, "vol-a", &["read 0 4k"])
        .await
        .expect_err("nothing serves the old port");
    exports
        .unexport("vol-a")
        .await
        .expect("unexporting twice is fine");

    // The port is free again for the next export.
    let c = exports
        .export("vol-a", &image, "nd-2")
        .await
        .expect("re-export to nd-2");
    lab.node_io(
        "nd-2",
        c.observed.export.port,
        "vol-a",
        &["read -P 0xab 0 1M"],
    )
    .await
    .expect("nd-2 now reads vol-a");
    for v in ["vol-a", "vol-b"] {
        exports.unexport(v).await.expect("unexport");
    }
    assert!(exports.list().is_empty());
}

#[tokio::test]
async fn exports_outlive_the_agent_and_dead_daemons_come_back_on_their_port() {
    let lab = Lab::new(21830..=21849);
    let image = lab.image("vol-r.qcow2").await;
    let exports = lab.open().await;
    let first = exports
        .export("vol-r", &image, "nd-1")
        .await
        .expect("export");
    let port = first.observed.export.port;
    lab.node_io("nd-1", port, "vol-r", &["write -P 0xab 0 1M"])
        .await
        .expect("write");

    // 5a. The agent goes away and comes back: the same daemon is adopted.
    drop(exports);
    let exports = lab.open().await;
    let adopted = exports.get("vol-r").expect("still exported");
    assert_eq!(adopted, first, "same daemon, port and node");

    // 5b. The daemon dies: check() starts it again on the same port, with
    // the data.
    nix_kill9(pid(&first));
    wait_dead(pid(&first)).await;
    let dead = exports.get("vol-r").expect("still recorded");
    assert!(!dead.observed.serving && dead.pid.is_none(), "{dead:?}");
    let started = Instant::now();
    assert!(exports.check().await.is_empty());
    println!("restart by check() took {:?}", started.elapsed());
    let back = exports.get("vol-r").expect("exported");
    assert!(back.observed.serving);
    assert_ne!(pid(&back), pid(&first));
    assert_eq!(back.observed.export.port, port);
    lab.node_io("nd-1", port, "vol-r", &["read -P 0xab 0 1M"])
        .await
        .expect("data after the restart");
    assert!(exports.check().await.is_empty());
    assert_eq!(
        exports.get("vol-r"),
        Some(back.clone()),
        "check() leaves a live daemon alone"
    );

    // 5c. The daemon dies while the agent is down, and its pid now names
    // another process (this one): reopening does not take it for the
    // daemon and starts a new one on the same port.
    drop(exports);
    nix_kill9(pid(&back));
    wait_dead(pid(&back)).await;
    std::fs::write(
        lab.path("run/vol-r.pid"),
        format!("{}\n", std::process::id()),
    )
    .expect("pidfile");
    let exports = lab.open().await;
    let reborn = exports.get("vol-r").expect("exported");
    assert!(reborn.observed.serving);
    assert_ne!(pid(&reborn), std::process::id());
    assert_ne!(pid(&reborn), pid(&back));
    assert_eq!(reborn.observed.export.port, port);
    lab.node_io("nd-1", port, "vol-r", &["read -P 0xab 0 1M"])
        .await
        .expect("data after the reopen");

    // kill_all leaves the records: the next open brings the export back.
    let killed = mallee_storage::kill_all(&lab.run_dir())
        .await
        .expect("kill_all");
    assert_eq!(killed, [pid(&reborn)]);
    assert!(!alive(pid(&reborn)));
    drop(exports);
    let exports = lab.open().await;
    assert!(exports.get("vol-r").expect("exported").observed.serving);

    // 5d. A crash between an export's record and its daemon's start: the
    // record names no daemon and there is no pidfile. Opening completes it.
    drop(exports);
    mallee_storage::kill_all(&lab.run_dir())
        .await
        .expect("kill_all");
    let record_path = lab.path("state/vol-r.json");
    let mut record: Value =
        serde_json::from_slice(&std::fs::read(&record_path).expect("record")).expect("json");
    assert!(record["process"]["pid"].is_u64(), "{record}");
    record.as_object_mut().expect("object").remove("process");
    std::fs::write(&record_path, record.to_string()).expect("write record");
    std::fs::remove_file(lab.path("run/vol-r.pid")).expect("remove pidfile");
    let exports = lab.open().await;
    let completed = exports.get("vol-r").expect("exported");
    assert!(completed.observed.serving);
    assert_eq!(completed.observed.export.port, port);
    lab.node_io("nd-1", port, "vol-r", &["read -P 0xab 0 1M"])
        .await
        .expect("data after completing the export");
    exports.unexport("vol-r").await.expect("unexport");
    assert!(
        mallee_storage::kill_all(&lab.run_dir())
            .await
            .expect("kill_all")
            .is_empty()
    );
}

fn nix_kill9(pid: u32) {
    let status = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

#[tokio::test]
async fn qmp_reaches_the_volume_node_for_backups() {
    let lab = Lab::new(21850..=21869);
    let exports = lab.open().await;
    assert!(exports.qmp("vol-q").await.is_none(), "not exported");
    let image = lab.image("vol-q.qcow2").await;
    let e = exports
        .export("vol-q", &image, "nd-1")
        .await
        .expect("export");
    lab.node_io(
        "nd-1",
        e.observed.export.port,
        "vol-q",
        &["write -P 0xab 0 1M"],
    )
    .await
    .expect("write");
    let qmp: QmpClient = exports
        .qmp("vol-q")
        .await
        .expect("exported")
        .expect("connect");
    let nodes = qmp
        .execute("query-named-block-nodes", json!({"flat": true}))
        .await
        .expect("query-named-block-nodes");
    let named = |name: &str| {
        nodes
            .as_array()
            .expect("list")
            .iter()
            .find(|n| n["node-name"] == name)
            .cloned()
    };
    let node = named("vol-q").expect("the qcow2 node is named after the volume");
    assert_eq!(node["drv"], "qcow2");
    assert_eq!(node["cache"]["no-flush"], false, "flushes reach the disk");
    assert_eq!(named("vol-q-file").expect("file node")["drv"], "file");
    let exported = qmp
        .execute("query-block-exports", Value::Null)
        .await
        .expect("query-block-exports");
    assert_eq!(exported[0]["node-name"], "vol-q");

    // A snapshot's backup job runs in the daemon while the node writes.
    let target = lab.image("snap.qcow2").await;
    qmp.blockdev_add(json!({
        "driver": "qcow2", "node-name": "snap",
        "file": {"driver": "file", "filename": arg(&target)},
    }))
    .await
    .expect("add the target");
    qmp.blockdev_backup("backup-q", "vol-q", "snap", 0)
        .await
        .expect("backup");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let jobs = qmp.query_jobs().await.expect("jobs");
        let job = jobs
            .iter()
            .find(|j| j.id == "backup-q")
            .expect("job listed");
        if job.concluded() {
            assert_eq!(job.error, None);
            break;
        }
        assert!(Instant::now() < deadline, "backup did not finish: {job:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    qmp.job_dismiss("backup-q").await.expect("dismiss");
    qmp.blockdev_del("snap").await.expect("release the target");
    drop(qmp);
    tool(
        "qemu-io",
        &["-f", "qcow2", &arg(&target), "-c", "read -P 0xab 0 1M"],
    )
    .await
    .expect("the backup holds the data");

    // Unexport works while another QMP client holds the only connection
    // (SIGTERM instead of QMP quit).
    let holder = exports
        .qmp("vol-q")
        .await
        .expect("exported")
        .expect("connect");
    exports.unexport("vol-q").await.expect("unexport");
    assert!(!alive(pid(&e)));
    drop(holder);
}

#[tokio::test]
async fn bad_exports_leave_nothing_behind() {
    let lab = Lab::new(21870..=21871);
    let exports = lab.open().await;
    let image = lab.image("vol-e.qcow2").await;
    for (volume, node) in [("vol,e", "nd-1"), ("vol-e", "ND_1"), ("vol-e/x", "nd-1")] {
        let e = exports.export(volume, &image, node).await;
        assert!(
            matches!(e, Err(ExportError::InvalidName(_))),
            "{volume} {node}: {e:?}"
        );
    }
    let missing = exports
        .export("vol-e", &lab.path("missing.qcow2"), "nd-1")
        .await;
    assert!(
        matches!(missing, Err(ExportError::Io { .. })),
        "{missing:?}"
    );

    // Not a qcow2 file: the daemon's own words come back, and no record.
    let raw = lab.path("raw.img");
    std::fs::write(&raw, vec![0u8; 1 << 20]).expect("raw");
    let e = exports
        .export("vol-e", &raw, "nd-1")
        .await
        .expect_err("not qcow2");
    assert!(
        matches!(&e, ExportError::Qsd { message, .. } if message.contains("qcow2")),
        "{e}"
    );
    assert!(exports.list().is_empty());
    assert!(!lab.path("state/vol-e.json").exists());

    // Both ports of the pool: one taken by someone else, one by an export.
    let _squatter = std::net::TcpListener::bind((LOOPBACK, 21870)).expect("bind");
    let e = exports
        .export("vol-e", &image, "nd-1")
        .await
        .expect("export");
    assert_eq!(e.observed.export.port, 21871);
    let image_f = lab.image("vol-f.qcow2").await;
    let full = exports.export("vol-f", &image_f, "nd-1").await;
    assert!(matches!(full, Err(ExportError::NoPort { .. })), "{full:?}");
    let other = exports.export("vol-e", &image_f, "nd-1").await;
    assert!(
        matches!(other, Err(ExportError::OtherImage { .. })),
        "{other:?}"
    );
    exports.unexport("vol-e").await.expect("unexport");

    // A storage host's credentials must be a node's.
    let ca = ClusterCa::generate().expect("CA");
    let controller = ca
        .issue(&PeerName::Controller, Validity::days(1))
        .expect("issue");
    let e = Exports::open(lab.config(), &controller)
        .await
        .expect_err("not a node");
    assert!(matches!(e, ExportError::NotANode(_)), "{e}");
}
