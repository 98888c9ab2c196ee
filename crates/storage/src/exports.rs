//! The exports of a storage host ([`Exports`]): which volume is exported to
//! which node on which port, kept as one durable JSON record per export,
//! and one qemu-storage-daemon per export that serves it.
//!
//! A record is written before its daemon starts and removed only after the
//! daemon has exited, so whatever crashes (the agent, the daemon, the
//! host), [`Exports::open`] finds every export and brings it back on the
//! port its node's NBD client reconnects to.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr, TcpListener};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use mallee_node_api::{NbdExport, ObservedExport};
use mallee_pki::{Credentials, CredentialsError, PeerName, QemuTlsEndpoint};
use mallee_qemu::{QmpClient, QmpError};
use serde::{Deserialize, Serialize};

use crate::qsd::{self, ProcId, QsdSpec};

/// The port pool when none is configured: room for a thousand exports.
pub const DEFAULT_PORTS: RangeInclusive<u16> = 10810..=11809;
/// The qemu-storage-daemon binary when none is configured (from `PATH`).
pub const DEFAULT_QSD: &str = "qemu-storage-daemon";
/// Longest volume id: its block node `<id>-file` must fit QEMU's 31-byte
/// node names.
pub const MAX_VOLUME_ID: usize = 26;
/// How many ports [`Exports::export`] tries when the one it picked is
/// taken by the time its daemon binds it.
const PORT_ATTEMPTS: usize = 5;

/// Errors of the export manager.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// A file system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The server's TLS files could not be written.
    #[error("writing the NBD servers' TLS files: {0}")]
    Tls(#[from] CredentialsError),
    /// The credentials are not a node's (a storage host is a node).
    #[error("the credentials name {0}, not a node")]
    NotANode(String),
    /// A volume or node id that cannot name an export.
    #[error("{0}")]
    InvalidName(String),
    /// The run directory is too long for the daemons' QMP sockets.
    #[error(
        "run directory {} is too long for QMP socket paths ({} bytes at most); use a shorter one",
        .0.display(),
        qsd::MAX_SOCKET_PATH
    )]
    PathTooLong(PathBuf),
    /// A record on disk does not parse.
    #[error("export record {path}: {message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// Why it is unreadable.
        message: String,
    },
    /// The volume is exported to another node.
    #[error("volume {volume_id} is exported to node {node_id}")]
    Conflict {
        /// The volume.
        volume_id: String,
        /// The node it is exported to.
        node_id: String,
    },
    /// The volume is exported from another image file.
    #[error("volume {volume_id} is exported from {image}")]
    OtherImage {
        /// The volume.
        volume_id: String,
        /// The image it is exported from.
        image: PathBuf,
    },
    /// Every port of the pool is taken.
    #[error("no free port in {first}..={last} for another NBD export")]
    NoPort {
        /// First port of the pool.
        first: u16,
        /// Last port of the pool.
        last: u16,
    },
    /// qemu-storage-daemon failed to start (its standard error included).
    #[error("qemu-storage-daemon for {volume_id}: {message}")]
    Qsd {
        /// The volume.
        volume_id: String,
        /// What went wrong, with what the daemon printed.
        message: String,
    },
    /// Talking QMP to a daemon failed.
    #[error(transparent)]
    Qmp(#[from] QmpError),
    /// Sending a signal to a daemon failed.
    #[error("kill pid {pid}: {source}")]
    Signal {
        /// The daemon's pid.
        pid: u32,
        /// The error from kill(2).
        source: nix::Error,
    },
    /// A daemon did not exit in time.
    #[error("qemu-storage-daemon (pid {0}) did not exit in time")]
    ExitTimeout(u32),
}

impl ExportError {
    /// Whether a daemon could not bind its port (someone else took it).
    fn port_taken(&self) -> bool {
        matches!(self, Self::Qsd { message, .. } if message.contains("Address already in use"))
    }
}

/// Where exports are kept and how they are served.
#[derive(Debug, Clone)]
pub struct ExportConfig {
    /// One durable JSON record per export: `<volume-id>.json`.
    pub state_dir: PathBuf,
    /// The daemons' pidfiles and QMP sockets. Socket paths must stay under
    /// 108 bytes: keep it short (`/run/mallee/nbd`).
    pub run_dir: PathBuf,
    /// The server's TLS files, written here from the credentials.
    pub tls_dir: PathBuf,
    /// The address the NBD servers listen on.
    pub bind: IpAddr,
    /// The host name or address nodes connect to ([`NbdExport::host`]).
    pub advertise: String,
    /// The ports exports get, one each, kept across restarts.
    pub ports: RangeInclusive<u16>,
    /// The qemu-storage-daemon binary.
    pub qsd: PathBuf,
}

impl ExportConfig {
    /// A configuration with the [`DEFAULT_PORTS`] and [`DEFAULT_QSD`].
    pub fn new(
        state_dir: impl Into<PathBuf>,
        run_dir: impl Into<PathBuf>,
        tls_dir: impl Into<PathBuf>,
        bind: IpAddr,
        advertise: impl Into<String>,
    ) -> Self {
        Self {
            state_dir: state_dir.into(),
            run_dir: run_dir.into(),
            tls_dir: tls_dir.into(),
            bind,
            advertise: advertise.into(),
            ports: DEFAULT_PORTS,
            qsd: PathBuf::from(DEFAULT_QSD),
        }
    }
}

/// One export as it is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeExport {
    /// The volume.
    pub volume_id: String,
    /// Its qcow2 file (absolute).
    pub image: PathBuf,
    /// The daemon's pid while it runs.
    pub pid: Option<u32>,
    /// The node admitted, where it connects and whether the server is up:
    /// what the storage host reports.
    pub observed: ObservedExport,
}

/// What an export's record holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Record {
    volume_id: String,
    node_id: String,
    image: PathBuf,
    port: u16,
    /// The daemon last started or adopted for it (absent between the
    /// record's first write and its daemon's start).
    #[serde(default)]
    process: Option<ProcId>,
}

/// The exports of a storage host (see the module documentation). Every
/// change (export, unexport, restarts) takes its turn; [`Exports::list`]
/// and [`Exports::qmp`] do not wait for changes.
#[derive(Debug)]
pub struct Exports {
    config: ExportConfig,
    server_node_id: String,
    changes: tokio::sync::Mutex<()>,
    records: Mutex<BTreeMap<String, Record>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // The map stays consistent whatever panicked while holding it.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> ExportError {
    move |source| ExportError::Io { context, source }
}

/// Checks that `volume_id` can name files, a block node and an NBD export.
fn check_volume_id(volume_id: &str) -> Result<(), ExportError> {
    let ok = volume_id.len() <= MAX_VOLUME_ID
        && volume_id.starts_with(|c: char| c.is_ascii_alphabetic())
        && volume_id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(ExportError::InvalidName(format!(
            "{volume_id:?} cannot name an export: a letter, then letters, digits, '-' or '_', \
             {MAX_VOLUME_ID} bytes at most"
        )))
    }
}

/// Creates `dir` if needed and returns it absolute (the daemons change
/// directory to `/`).
fn prepare_dir(dir: &Path) -> Result<PathBuf, ExportError> {
    std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
    dir.canonicalize()
        .map_err(io(format!("resolve {}", dir.display())))
}

impl Exports {
    /// Opens the exports of `config`: writes the server's TLS files
    /// ([`Credentials::write_qemu_tls_dir`]), loads the records, adopts
    /// every daemon still running (its pidfile names a live process whose
    /// command line names that pidfile and, when recorded, whose start time
    /// is the recorded one, so a recycled pid is never taken for it) and
    /// starts again, on the same port, every one that is not. A daemon
    /// that fails to start is logged and left to [`Exports::check`].
    pub async fn open(
        config: ExportConfig,
        credentials: &Credentials,
    ) -> Result<Self, ExportError> {
        let name = &credentials.info().name;
        let server_node_id = name
            .node_id()
            .ok_or_else(|| ExportError::NotANode(name.to_string()))?
            .to_owned();
        credentials.write_qemu_tls_dir(&config.tls_dir, QemuTlsEndpoint::Server)?;
        let config = ExportConfig {
            state_dir: prepare_dir(&config.state_dir)?,
            run_dir: prepare_dir(&config.run_dir)?,
            tls_dir: prepare_dir(&config.tls_dir)?,
            ..config
        };
        let longest = qsd::qmp_socket(&config.run_dir, &"v".repeat(MAX_VOLUME_ID));
        if longest.as_os_str().len() > qsd::MAX_SOCKET_PATH {
            return Err(ExportError::PathTooLong(config.run_dir));
        }
        let records = load_records(&config.state_dir)?;
        let exports = Self {
            config,
            server_node_id,
            changes: tokio::sync::Mutex::new(()),
            records: Mutex::new(
                records
                    .iter()
                    .map(|r| (r.volume_id.clone(), r.clone()))
                    .collect(),
            ),
        };
        let _turn = exports.changes.lock().await;
        for record in records {
            if let Err(e) = exports.ensure_running(record.clone()).await {
                tracing::warn!(volume = %record.volume_id, error = %e, "could not bring an export back");
            }
        }
        drop(_turn);
        Ok(exports)
    }

    /// The storage host's node id (its certificate's name), which nodes
    /// check the servers against.
    pub fn server_node_id(&self) -> &str {
        &self.server_node_id
    }

    /// Exports the qcow2 file `image` of `volume_id` to node `node_id`
    /// alone, on a free port of the pool. Idempotent: exported to the same
    /// node already, it returns that export (started again if its daemon
    /// died); exported to another node, [`ExportError::Conflict`]. The
    /// record is written durably before the daemon starts, so a crash
    /// leaves a record that [`Exports::open`] completes; a daemon that
    /// fails to start takes its record with it.
    pub async fn export(
        &self,
        volume_id: &str,
        image: &Path,
        node_id: &str,
    ) -> Result<VolumeExport, ExportError> {
        check_volume_id(volume_id)?;
        PeerName::node(node_id).map_err(|e| ExportError::InvalidName(e.to_string()))?;
        let image = image
            .canonicalize()
            .map_err(io(format!("image {}", image.display())))?;
        let _turn = self.changes.lock().await;
        if let Some(record) = self.record(volume_id) {
            if record.node_id != node_id {
                return Err(ExportError::Conflict {
                    volume_id: volume_id.to_owned(),
                    node_id: record.node_id,
                });
            }
            if record.image != image {
                return Err(ExportError::OtherImage {
                    volume_id: volume_id.to_owned(),
                    image: record.image,
                });
            }
            let record = self.ensure_running(record).await?;
            return Ok(self.view(&record));
        }
        // A daemon whose record is gone serves nobody we know of.
        let pidfile = qsd::pidfile(&self.config.run_dir, volume_id);
        if let Ok(stale) = qsd::find(&pidfile, None) {
            tracing::warn!(
                volume = volume_id,
                pid = stale.pid,
                "stopping a qemu-storage-daemon without a record"
            );
            qsd::stop(stale, &qsd::qmp_socket(&self.config.run_dir, volume_id)).await?;
        }
        let mut tried = Vec::new();
        loop {
            let port = self.free_port(&tried)?;
            tried.push(port);
            let record = Record {
                volume_id: volume_id.to_owned(),
                node_id: node_id.to_owned(),
                image: image.clone(),
                port,
                process: None,
            };
            self.save(&record).await?;
            lock(&self.records).insert(volume_id.to_owned(), record.clone());
            match self.start(record).await {
                Ok(record) => {
                    tracing::info!(volume = volume_id, node = node_id, port, "volume exported");
                    return Ok(self.view(&record));
                }
                Err(e) => {
                    self.forget(volume_id).await?;
                    if !(e.port_taken() && tried.len() < PORT_ATTEMPTS) {
                        return Err(e);
                    }
                    tracing::debug!(
                        volume = volume_id,
                        port,
                        "port taken meanwhile; trying another"
                    );
                }
            }
        }
    }

    /// Ends the export of `volume_id`: its daemon quits (closing the image,
    /// which flushes it to disk) and has exited before the record goes. Not
    /// exported: `Ok`.
    pub async fn unexport(&self, volume_id: &str) -> Result<(), ExportError> {
        let _turn = self.changes.lock().await;
        let Some(record) = self.record(volume_id) else {
            return Ok(());
        };
        let qmp = qsd::qmp_socket(&self.config.run_dir, volume_id);
        if let Some(id) = self.running(&record) {
            qsd::stop(id, &qmp).await?;
        }
        qsd::remove_if_present(&qsd::pidfile(&self.config.run_dir, volume_id))?;
        qsd::remove_if_present(&qmp)?;
        self.forget(volume_id).await?;
        tracing::info!(volume = volume_id, node = %record.node_id, "volume unexported");
        Ok(())
    }

    /// Every export now (by volume id).
    pub fn list(&self) -> Vec<VolumeExport> {
        let records: Vec<Record> = lock(&self.records).values().cloned().collect();
        records.iter().map(|r| self.view(r)).collect()
    }

    /// The export of `volume_id` now, if it is exported.
    pub fn get(&self, volume_id: &str) -> Option<VolumeExport> {
        self.record(volume_id).map(|r| self.view(&r))
    }

    /// A QMP connection to the daemon serving `volume_id` (whose qcow2
    /// node is named after the volume, for a snapshot's `blockdev-backup`);
    /// `None` when the volume is not exported. The daemon serves one QMP
    /// client at a time: drop the client when done.
    pub async fn qmp(&self, volume_id: &str) -> Option<Result<QmpClient, QmpError>> {
        self.record(volume_id)?;
        Some(QmpClient::connect(&qsd::qmp_socket(&self.config.run_dir, volume_id)).await)
    }

    /// Starts again, on the same port, every export whose daemon died; the
    /// agent calls it every few seconds. Returns the exports that could not
    /// be started (also logged).
    pub async fn check(&self) -> Vec<(String, ExportError)> {
        let _turn = self.changes.lock().await;
        let records: Vec<Record> = lock(&self.records).values().cloned().collect();
        let mut failed = Vec::new();
        for record in records {
            if self.running(&record).is_some() {
                continue;
            }
            tracing::warn!(volume = %record.volume_id, port = record.port, "qemu-storage-daemon is gone; starting it again");
            if let Err(e) = self.ensure_running(record.clone()).await {
                tracing::warn!(volume = %record.volume_id, error = %e, "could not start the export again");
                failed.push((record.volume_id, e));
            }
        }
        failed
    }

    fn record(&self, volume_id: &str) -> Option<Record> {
        lock(&self.records).get(volume_id).cloned()
    }

    fn view(&self, record: &Record) -> VolumeExport {
        let pid = self.running(record).map(|id| id.pid);
        VolumeExport {
            volume_id: record.volume_id.clone(),
            image: record.image.clone(),
            pid,
            observed: ObservedExport {
                node_id: record.node_id.clone(),
                export: NbdExport {
                    host: self.config.advertise.clone(),
                    port: record.port,
                    name: record.volume_id.clone(),
                    server_node_id: self.server_node_id.clone(),
                },
                serving: pid.is_some(),
            },
        }
    }

    /// The live daemon of `record`: the one its pidfile names, else the
    /// one recorded (pid and start time) if it still runs.
    fn running(&self, record: &Record) -> Option<ProcId> {
        let pidfile = qsd::pidfile(&self.config.run_dir, &record.volume_id);
        qsd::find(&pidfile, record.process)
            .ok()
            .or(record.process.filter(|id| id.alive()))
    }

    /// Adopts the live daemon of `record`, or starts one on its port.
    async fn ensure_running(&self, mut record: Record) -> Result<Record, ExportError> {
        let Some(id) = self.running(&record) else {
            return self.start(record).await;
        };
        if record.process != Some(id) {
            tracing::info!(volume = %record.volume_id, pid = id.pid, "adopted a running qemu-storage-daemon");
            record.process = Some(id);
            self.keep(&record).await;
        }
        Ok(record)
    }

    /// Starts the daemon of `record` on its port and records its identity.
    async fn start(&self, mut record: Record) -> Result<Record, ExportError> {
        let node =
            PeerName::node(&record.node_id).map_err(|e| ExportError::InvalidName(e.to_string()))?;
        let identity = qsd::client_identity(&node);
        let spec = QsdSpec {
            volume_id: &record.volume_id,
            image: &record.image,
            tls_dir: &self.config.tls_dir,
            identity: &identity,
            bind: self.config.bind,
            port: record.port,
            run_dir: &self.config.run_dir,
        };
        let id = qsd::launch(&self.config.qsd, &spec).await?;
        tracing::info!(volume = %record.volume_id, pid = id.pid, port = record.port, "qemu-storage-daemon started");
        record.process = Some(id);
        self.keep(&record).await;
        Ok(record)
    }

    /// Keeps `record` in memory and on disk. Only the daemon's identity
    /// changed, which [`Exports::open`] can also learn from the pidfile, so
    /// a failed write is logged, not returned: the export is up.
    async fn keep(&self, record: &Record) {
        lock(&self.records).insert(record.volume_id.clone(), record.clone());
        if let Err(e) = self.save(record).await {
            tracing::warn!(volume = %record.volume_id, error = %e, "could not record the daemon's identity");
        }
    }

    fn record_path(&self, volume_id: &str) -> PathBuf {
        self.config.state_dir.join(format!("{volume_id}.json"))
    }

    async fn save(&self, record: &Record) -> Result<(), ExportError> {
        let path = self.record_path(&record.volume_id);
        let json = serde_json::to_vec_pretty(record).map_err(|e| ExportError::Record {
            path: path.clone(),
            message: e.to_string(),
        })?;
        mallee_util::durable::write_atomic_async(&path, &json)
            .await
            .map_err(io(format!("write {}", path.display())))
    }

    /// Removes the record of `volume_id`, durably.
    async fn forget(&self, volume_id: &str) -> Result<(), ExportError> {
        let path = self.record_path(volume_id);
        qsd::remove_if_present(&path)?;
        let dir = self.config.state_dir.clone();
        tokio::task::spawn_blocking(move || mallee_util::durable::sync_dir(&dir))
            .await
            .map_err(|e| ExportError::Io {
                context: "sync the export records".into(),
                source: std::io::Error::other(e),
            })?
            .map_err(io(format!("sync {}", self.config.state_dir.display())))?;
        lock(&self.records).remove(volume_id);
        Ok(())
    }

    /// The first port of the pool that no record holds, that is not in
    /// `tried`, and that can be bound now.
    fn free_port(&self, tried: &[u16]) -> Result<u16, ExportError> {
        let held: Vec<u16> = lock(&self.records).values().map(|r| r.port).collect();
        self.config
            .ports
            .clone()
            .filter(|p| !held.contains(p) && !tried.contains(p))
            .find(|&p| TcpListener::bind(SocketAddr::new(self.config.bind, p)).is_ok())
            .ok_or(ExportError::NoPort {
                first: *self.config.ports.start(),
                last: *self.config.ports.end(),
            })
    }
}

/// Reads every `<volume-id>.json` of `state_dir` (hidden files are
/// temporaries of interrupted writes).
fn load_records(state_dir: &Path) -> Result<Vec<Record>, ExportError> {
    let entries =
        std::fs::read_dir(state_dir).map_err(io(format!("list {}", state_dir.display())))?;
    let mut records = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(io(format!("list {}", state_dir.display())))?
            .path();
        let Some(stem) = path
            .file_name()
            .and_then(|n| n.to_str())
            .filter(|n| !n.starts_with('.'))
            .and_then(|n| n.strip_suffix(".json"))
        else {
            continue;
        };
        let bad = |message: String| ExportError::Record {
            path: path.clone(),
            message,
        };
        let text = std::fs::read(&path).map_err(io(format!("read {}", path.display())))?;
        let record: Record = serde_json::from_slice(&text).map_err(|e| bad(e.to_string()))?;
        if record.volume_id != stem {
            return Err(bad(format!("names volume {}", record.volume_id)));
        }
        check_volume_id(&record.volume_id)?;
        records.push(record);
    }
    records.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
    Ok(records)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_ids_are_checked() {
        for good in [
            "vol-0123456789abcdef0",
            "v",
            "vol_1",
            &"v".repeat(MAX_VOLUME_ID),
        ] {
            assert!(check_volume_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "1vol",
            "-vol",
            "vol,1",
            "vol/1",
            "vol.1",
            "vol 1",
            &"v".repeat(MAX_VOLUME_ID + 1),
        ] {
            assert!(check_volume_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn records_load_and_bad_ones_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = Record {
            volume_id: "vol-1".into(),
            node_id: "nd-1".into(),
            image: "/v/vol-1.qcow2".into(),
            port: 10810,
            process: Some(ProcId {
                pid: 42,
                start_time: 7,
            }),
        };
        std::fs::write(
            dir.path().join("vol-1.json"),
            serde_json::to_vec(&record).expect("json"),
        )
        .expect("write");
        // An interrupted write's temporary and other files are not records.
        std::fs::write(dir.path().join(".vol-2.json.tmp"), b"{").expect("write");
        std::fs::write(dir.path().join("notes.txt"), b"x").expect("write");
        assert_eq!(
            load_records(dir.path()).expect("load"),
            std::slice::from_ref(&record)
        );

        std::fs::write(
            dir.path().join("vol-3.json"),
            serde_json::to_vec(&record).expect("json"),
        )
        .expect("write");
        let e = load_records(dir.path()).expect_err("misnamed");
        assert!(e.to_string().contains("names volume vol-1"), "{e}");
        std::fs::write(dir.path().join("vol-3.json"), b"{").expect("write");
        assert!(matches!(
            load_records(dir.path()),
            Err(ExportError::Record { .. })
        ));
    }
}
