//! Volumes on this node (the block store's data plane): each volume's data
//! behind a [`VolumeBackend`] (qcow2 files by default, [`crate::qcow2_files::Qcow2Files`]; a
//! Ceph RBD backend implements the same trait later), created empty or from
//! a snapshot's data, and a small durable record per volume,
//! `DATA/volumes/<vol-id>.json` (size, generation, state, attachment and
//! the snapshot it comes from), which is also the volume description hooks
//! get.
//!
//! A compute node of a zone with a storage host also keeps **remote**
//! records: the volume's data is on the storage host, exported over NBD
//! (TLS) to this node, and the record only says where ([`NbdExport`];
//! backend [`REMOTE_BACKEND`]). It is `available` at once, takes no disk
//! here, and deleting it forgets the record and never touches the data.
//!
//! QEMU opens a local volume's file itself, and reaches a remote one with
//! its own NBD client (through a relay of the agent, the one piece of a
//! volume's I/O that passes through it: see `nbd_relay`). Which instance a
//! volume is attached to is decided by the instance's own record (see
//! [`crate::instance`]): the volume record follows it, and at agent start
//! every volume record is set from the instance records, so after a crash
//! at any point of an attach or detach a volume is attached or not, never
//! both.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use mallee_node_api::{NbdExport, ObservedVolume, SnapshotSource, VolumeState};
use mallee_qemu::DiskFormat;
use mallee_util::durable::{sync_dir, write_atomic};
use serde::{Deserialize, Serialize};

/// Largest volume, in GiB (EBS' limit for most volume types).
pub const MAX_SIZE_GIB: u64 = 16384;
/// The backend a remote record names.
pub const REMOTE_BACKEND: &str = "nbd";
/// Bytes the virtio-blk serial keeps.
const SERIAL_BYTES: usize = 20;
pub(crate) const GIB: u64 = 1024 * 1024 * 1024;

/// Errors of volume storage.
#[derive(Debug, thiserror::Error)]
pub enum VolumeError {
    /// A file of the volume store could not be used.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: std::io::Error,
    },
    /// `qemu-img` failed.
    #[error("qemu-img {action} failed: {message}")]
    QemuImg {
        /// What it was asked to do.
        action: &'static str,
        /// Its error output (or why it could not run).
        message: String,
    },
    /// The data a volume was to be created from is not usable.
    #[error("{0}")]
    BadImage(String),
    /// A record on disk is not readable.
    #[error("volume record {path}: {message}")]
    Record {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl From<crate::qemu_img::QemuImgError> for VolumeError {
    fn from(e: crate::qemu_img::QemuImgError) -> Self {
        Self::QemuImg {
            action: e.action,
            message: e.message,
        }
    }
}

pub(crate) fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> VolumeError {
    let context = context.into();
    move |source| VolumeError::Io { context, source }
}

/// Where QEMU finds a volume's data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VolumeDisk {
    /// Image file (or, for other backends later, a device path).
    pub path: PathBuf,
    /// Its format.
    pub format: DiskFormat,
}

/// Where QEMU finds the data of a volume this node has a record of.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VolumeLocation {
    /// In this node's backend.
    Local(VolumeDisk),
    /// On a storage host, at this NBD export.
    Remote(NbdExport),
}

/// Checks what a remote record keeps of an export: a server address, a
/// port, an export name and the storage host's node id (the name its
/// certificate carries).
pub fn check_export(export: &NbdExport) -> Result<(), String> {
    let host_ok = !export.host.is_empty()
        && export.host.len() <= 253
        && export
            .host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    if !host_ok {
        return Err(format!("bad NBD server address {:?}", export.host));
    }
    if export.port == 0 {
        return Err("NBD server port 0".into());
    }
    if export.name.is_empty() || export.name.len() > 4096 {
        return Err(format!("bad NBD export name {:?}", export.name));
    }
    mallee_pki::PeerName::node(&export.server_node_id)
        .map(drop)
        .map_err(|e| format!("bad storage host id: {e}"))
}

/// `nbd://host:port/name`: where a remote record's data is, for hooks and
/// administrators.
fn export_uri(export: &NbdExport) -> PathBuf {
    let host = if export.host.contains(':') {
        format!("[{}]", export.host)
    } else {
        export.host.clone()
    };
    PathBuf::from(format!("nbd://{host}:{}/{}", export.port, export.name))
}

/// Where volume data lives. Every operation is idempotent.
/// [`crate::qcow2_files::Qcow2Files`] is the first backend.
#[async_trait]
pub trait VolumeBackend: Send + Sync + fmt::Debug {
    /// Short name (`qcow2`), recorded with each volume.
    fn kind(&self) -> &'static str;
    /// Creates an empty volume of `size_gib`; one that exists (completely)
    /// is left as it is.
    async fn create(&self, volume_id: &str, size_gib: u64) -> Result<(), VolumeError>;
    /// The kept data of snapshot `source` that volumes are made from, if
    /// this backend keeps it (see [`VolumeBackend::keep_snapshot`]).
    fn snapshot_base(&self, source: &SnapshotSource) -> Option<PathBuf>;
    /// Keeps the downloaded snapshot data `image` (checked: in
    /// `source.format`, naming no other file) for the volumes made from
    /// it; returns where.
    async fn keep_snapshot(
        &self,
        source: &SnapshotSource,
        image: &Path,
    ) -> Result<PathBuf, VolumeError>;
    /// Creates a volume of `size_gib` that reads as the kept snapshot data
    /// `base` until written (one that exists is left as it is).
    async fn create_over(
        &self,
        volume_id: &str,
        size_gib: u64,
        base: &Path,
    ) -> Result<(), VolumeError>;
    /// Removes the kept data of `source`; a missing one is fine.
    async fn forget_snapshot(&self, source: &SnapshotSource) -> Result<(), VolumeError>;
    /// Removes a volume's data; a missing one is fine.
    async fn delete(&self, volume_id: &str) -> Result<(), VolumeError>;
    /// Grows the volume's data to `size_gib` (nobody has it open).
    async fn grow(&self, volume_id: &str, size_gib: u64) -> Result<(), VolumeError>;
    /// Whether the volume's data exists (completely).
    fn exists(&self, volume_id: &str) -> bool;
    /// What QEMU opens.
    fn disk(&self, volume_id: &str) -> VolumeDisk;
}

/// A volume attachment as an instance's record keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AttachedVolume {
    /// `vol-…`.
    pub volume_id: String,
    /// The name the user gave (`/dev/sdf`).
    pub device: String,
    /// The controller's generation of the attachment.
    pub generation: u64,
}

/// QEMU block node name of a volume (its device is [`device_id`]).
pub fn node_name(volume_id: &str) -> String {
    volume_id.to_owned()
}

/// QEMU device id of a volume's virtio-blk device.
pub fn device_id(volume_id: &str) -> String {
    format!("{volume_id}-dev")
}

/// The virtio serial of a volume: its id without `-` (`vol0123…`), as EBS
/// NVMe volumes show theirs.
pub fn serial(volume_id: &str) -> String {
    volume_id
        .chars()
        .filter(|c| *c != '-')
        .take(SERIAL_BYTES)
        .collect()
}

/// Where a guest with udev finds the volume.
pub fn guest_device(volume_id: &str) -> String {
    format!("/dev/disk/by-id/virtio-{}", serial(volume_id))
}

/// What is persisted per volume.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VolumeRecord {
    /// `vol-…`.
    pub volume_id: String,
    /// Size.
    pub size_gib: u64,
    /// Highest controller generation applied.
    pub generation: u64,
    /// State (with the attachment, if any).
    pub state: VolumeState,
    /// Backend (`qcow2`, or [`REMOTE_BACKEND`]).
    pub backend: String,
    /// Where the data is (for hooks and administrators): a file, or for a
    /// remote volume `nbd://host:port/export`.
    pub path: PathBuf,
    /// The snapshot the volume is created from (`None`: created empty).
    #[serde(default)]
    pub source: Option<SnapshotSource>,
    /// The storage host's export of a remote volume (`None`: the data is
    /// in this node's backend).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote: Option<NbdExport>,
}

impl VolumeRecord {
    /// The record as reported.
    pub fn observed(&self) -> ObservedVolume {
        ObservedVolume {
            volume_id: self.volume_id.clone(),
            state: self.state.clone(),
            size_gib: self.size_gib,
            generation: self.generation,
            export: None,
            remote: self.remote.is_some(),
        }
    }

    /// Points a remote record at `export` (an export that moved: another
    /// address or port) and keeps its path in step. An attached volume's
    /// VM keeps its connection; its next one (a reconnection, or the
    /// next attachment or start) goes to the new address.
    pub fn set_export(&mut self, export: NbdExport) {
        self.path = export_uri(&export);
        self.remote = Some(export);
    }

    /// The instance the volume is attached (or being attached or detached)
    /// to.
    pub fn instance(&self) -> Option<&str> {
        match &self.state {
            VolumeState::Attaching { instance_id }
            | VolumeState::InUse { instance_id, .. }
            | VolumeState::Detaching { instance_id } => Some(instance_id),
            _ => None,
        }
    }
}

/// Who holds a volume, as the instance records say.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// `i-…`.
    pub instance_id: String,
    /// The name the controller gave (`/dev/sdf`, or the root device name).
    pub device: String,
    /// Where the guest finds it.
    pub guest_device: String,
}

/// The node's volumes: their records (in memory and on disk) and their
/// backend. Operations that change a volume's record hold
/// [`Volumes::lock_ops`] so that they apply one after another; whatever
/// opens a volume's data (a VM starting or hot-plugging it, a snapshot
/// reading it) holds that volume's [`Volumes::lock_volume`] first, so a
/// snapshot never reads a volume that a VM is about to open, nor the
/// reverse.
pub struct Volumes {
    dir: PathBuf,
    backend: Arc<dyn VolumeBackend>,
    records: Mutex<BTreeMap<String, VolumeRecord>>,
    ops: tokio::sync::Mutex<()>,
    data_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl fmt::Debug for Volumes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Volumes")
            .field("dir", &self.dir)
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Volumes {
    /// The volumes recorded in `dir`, with their data in `backend`.
    pub fn open(dir: &Path, backend: Arc<dyn VolumeBackend>) -> Result<Self, VolumeError> {
        std::fs::create_dir_all(dir).map_err(io(format!("create {}", dir.display())))?;
        let mut records = BTreeMap::new();
        for entry in std::fs::read_dir(dir)
            .map_err(io(format!("read {}", dir.display())))?
            .filter_map(Result::ok)
        {
            let path = entry.path();
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let bytes = std::fs::read(&path).map_err(io(format!("read {}", path.display())))?;
            let record: VolumeRecord =
                serde_json::from_slice(&bytes).map_err(|e| VolumeError::Record {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            records.insert(record.volume_id.clone(), record);
        }
        Ok(Self {
            dir: dir.to_owned(),
            backend,
            records: Mutex::new(records),
            ops: tokio::sync::Mutex::new(()),
            data_locks: Mutex::new(HashMap::new()),
        })
    }

    /// The backend.
    pub fn backend(&self) -> &Arc<dyn VolumeBackend> {
        &self.backend
    }

    /// Serialises volume changes.
    pub async fn lock_ops(&self) -> tokio::sync::MutexGuard<'_, ()> {
        self.ops.lock().await
    }

    /// Exclusive use of one volume's data (see [`Volumes`]). Take it before
    /// [`Volumes::lock_ops`], never while holding it.
    pub async fn lock_volume(&self, volume_id: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let lock = lock(&self.data_locks)
            .entry(volume_id.to_owned())
            .or_default()
            .clone();
        lock.lock_owned().await
    }

    /// The record file of a volume (the description hooks get).
    pub fn record_path(&self, volume_id: &str) -> PathBuf {
        self.dir.join(format!("{volume_id}.json"))
    }

    /// A new record for `volume_id` (not stored).
    pub fn new_record(&self, volume_id: &str, size_gib: u64, generation: u64) -> VolumeRecord {
        VolumeRecord {
            volume_id: volume_id.to_owned(),
            size_gib,
            generation,
            state: VolumeState::Creating,
            backend: self.backend.kind().to_owned(),
            path: self.backend.disk(volume_id).path,
            source: None,
            remote: None,
        }
    }

    /// A new remote record of `volume_id` at `export` (not stored):
    /// available at once, as there is nothing to create.
    pub fn new_remote_record(
        &self,
        volume_id: &str,
        size_gib: u64,
        generation: u64,
        export: NbdExport,
    ) -> VolumeRecord {
        VolumeRecord {
            volume_id: volume_id.to_owned(),
            size_gib,
            generation,
            state: VolumeState::Available,
            backend: REMOTE_BACKEND.to_owned(),
            path: export_uri(&export),
            source: None,
            remote: Some(export),
        }
    }

    /// Where QEMU finds `volume_id`'s data: the storage host's export of
    /// a remote record, else this node's backend.
    pub fn location(&self, volume_id: &str) -> VolumeLocation {
        match lock(&self.records)
            .get(volume_id)
            .and_then(|r| r.remote.clone())
        {
            Some(export) => VolumeLocation::Remote(export),
            None => VolumeLocation::Local(self.backend.disk(volume_id)),
        }
    }

    /// Whether a VM can open `volume_id`: a remote record, or data that
    /// exists (completely) in the backend.
    pub fn present(&self, volume_id: &str) -> bool {
        match self.location(volume_id) {
            VolumeLocation::Remote(_) => true,
            VolumeLocation::Local(_) => self.backend.exists(volume_id),
        }
    }

    /// One volume's record.
    pub fn get(&self, volume_id: &str) -> Option<VolumeRecord> {
        lock(&self.records).get(volume_id).cloned()
    }

    /// Every record.
    pub fn all(&self) -> Vec<VolumeRecord> {
        lock(&self.records).values().cloned().collect()
    }

    /// Every volume as reported, by id.
    pub fn observed(&self) -> Vec<ObservedVolume> {
        lock(&self.records)
            .values()
            .map(VolumeRecord::observed)
            .collect()
    }

    /// Disk the local volumes take at most (their sizes; remote ones
    /// take none here).
    pub fn allocated_gib(&self) -> u64 {
        lock(&self.records)
            .values()
            .filter(|r| r.remote.is_none())
            .map(|r| r.size_gib)
            .sum()
    }

    /// Stores `record` durably (temporary file, fsync, rename, directory
    /// fsync), then in memory.
    pub fn put(&self, record: VolumeRecord) -> Result<(), VolumeError> {
        let path = self.record_path(&record.volume_id);
        serde_json::to_vec_pretty(&record)
            .map_err(std::io::Error::other)
            .and_then(|json| write_atomic(&path, &json))
            .map_err(io(format!("write {}", path.display())))?;
        lock(&self.records).insert(record.volume_id.clone(), record);
        Ok(())
    }

    /// Forgets a volume: its record goes (its data must be gone already).
    pub fn remove(&self, volume_id: &str) -> Result<(), VolumeError> {
        let path = self.record_path(volume_id);
        match std::fs::remove_file(&path) {
            Ok(()) => sync_dir(&self.dir).map_err(io(format!("sync {}", self.dir.display())))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io(format!("remove {}", path.display()))(e)),
        }
        lock(&self.records).remove(volume_id);
        Ok(())
    }

    /// At agent start, after the instances were loaded: finishes empty
    /// creations and deletions a crash interrupted, and sets every volume's
    /// attachment from the instance records (`holders`: by volume id),
    /// which are the truth. Creations from a snapshot stay `creating`: the
    /// agent starts them again. A remote record being deleted is forgotten
    /// (its data is not here).
    pub async fn recover(&self, holders: &HashMap<String, Holder>) {
        let _ops = self.lock_ops().await;
        for mut record in self.all() {
            let id = record.volume_id.clone();
            match record.state {
                VolumeState::Deleting if record.remote.is_some() => {
                    if let Err(e) = self.remove(&id) {
                        tracing::warn!(volume = %id, error = %e, "finishing a deletion");
                    }
                    continue;
                }
                VolumeState::Deleting => {
                    match self.backend.delete(&id).await {
                        Ok(()) => {
                            if let Err(e) = self.remove(&id) {
                                tracing::warn!(volume = %id, error = %e, "finishing a deletion");
                            }
                        }
                        Err(e) => {
                            tracing::warn!(volume = %id, error = %e, "finishing a deletion");
                        }
                    }
                    continue;
                }
                VolumeState::Creating if record.source.is_some() && record.remote.is_none() => {
                    continue;
                }
                VolumeState::Creating if record.remote.is_some() => {
                    record.state = VolumeState::Available;
                }
                VolumeState::Creating => {
                    record.state = match self.backend.create(&id, record.size_gib).await {
                        Ok(()) => VolumeState::Available,
                        Err(e) => VolumeState::Failed(e.to_string()),
                    };
                }
                VolumeState::Failed(_) => {}
                _ => {
                    record.state = match holders.get(&id) {
                        Some(holder) => VolumeState::InUse {
                            instance_id: holder.instance_id.clone(),
                            device: holder.device.clone(),
                            guest_device: holder.guest_device.clone(),
                        },
                        None => VolumeState::Available,
                    };
                }
            }
            if self.get(&id).as_ref() != Some(&record) {
                tracing::info!(volume = %id, state = ?record.state, "volume recovered");
                if let Err(e) = self.put(record) {
                    tracing::error!(volume = %id, error = %e, "cannot persist the volume record");
                }
            }
        }
        for (volume_id, holder) in holders {
            if self.get(volume_id).is_none() {
                tracing::warn!(instance = %holder.instance_id, volume = %volume_id,
                    "instance record names a volume this node does not have");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_and_names() {
        assert_eq!(serial("vol-0123456789abcdef0"), "vol0123456789abcdef0");
        assert_eq!(serial("vol-0123456789abcdef0").len(), 20);
        assert_eq!(serial("vol-0123456789abcdef0123"), "vol0123456789abcdef0");
        assert_eq!(
            guest_device("vol-0123456789abcdef0"),
            "/dev/disk/by-id/virtio-vol0123456789abcdef0"
        );
        assert_eq!(device_id("vol-1"), "vol-1-dev");
        assert_eq!(node_name("vol-1"), "vol-1");
    }

    fn export(port: u16) -> NbdExport {
        NbdExport {
            host: "10.1.0.7".into(),
            port,
            name: "vol-1".into(),
            server_node_id: "st-1".into(),
        }
    }

    #[test]
    fn exports_are_checked() {
        assert_eq!(check_export(&export(10809)), Ok(()));
        assert_eq!(
            check_export(&NbdExport {
                host: "fd00::7".into(),
                ..export(1)
            }),
            Ok(())
        );
        for bad in [
            NbdExport {
                host: String::new(),
                ..export(10809)
            },
            NbdExport {
                host: "10.1.0.7,port=1".into(),
                ..export(10809)
            },
            export(0),
            NbdExport {
                name: String::new(),
                ..export(10809)
            },
            NbdExport {
                server_node_id: "St 1".into(),
                ..export(10809)
            },
        ] {
            assert!(check_export(&bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            export_uri(&export(10809)),
            PathBuf::from("nbd://10.1.0.7:10809/vol-1")
        );
        assert_eq!(
            export_uri(&NbdExport {
                host: "fd00::7".into(),
                ..export(5)
            }),
            PathBuf::from("nbd://[fd00::7]:5/vol-1")
        );
    }

    #[tokio::test]
    async fn remote_records() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = dir.path().join("data");
        let volumes = Volumes::open(
            dir.path(),
            Arc::new(crate::qcow2_files::Qcow2Files::new(&data)),
        )
        .expect("open");
        let mut remote = volumes.new_remote_record("vol-1", 8, 3, export(10809));
        assert_eq!(remote.state, VolumeState::Available);
        assert_eq!(remote.backend, REMOTE_BACKEND);
        assert!(remote.observed().remote);
        volumes.put(remote.clone()).expect("put");
        let mut local = volumes.new_record("vol-2", 2, 1);
        local.state = VolumeState::Available;
        volumes.put(local.clone()).expect("put");
        assert!(!local.observed().remote);
        // Remote volumes take no disk here.
        assert_eq!(volumes.allocated_gib(), 2);
        assert_eq!(
            volumes.location("vol-1"),
            VolumeLocation::Remote(export(10809))
        );
        assert!(volumes.present("vol-1"));
        assert_eq!(
            volumes.location("vol-2"),
            VolumeLocation::Local(volumes.backend().disk("vol-2"))
        );
        assert!(!volumes.present("vol-2"), "no file made");
        remote.set_export(export(10900));
        assert_eq!(remote.path, PathBuf::from("nbd://10.1.0.7:10900/vol-1"));
        volumes.put(remote.clone()).expect("put");
        // The records on disk: a local one names no export (and reads as
        // records written before remote volumes existed).
        let reopened = Volumes::open(
            dir.path(),
            Arc::new(crate::qcow2_files::Qcow2Files::new(&data)),
        )
        .expect("reopen");
        assert_eq!(reopened.get("vol-1"), Some(remote));
        assert_eq!(reopened.get("vol-2"), Some(local));
        let text = std::fs::read_to_string(volumes.record_path("vol-2")).expect("read");
        assert!(!text.contains("remote"), "{text}");
        // A deletion a crash interrupted forgets the remote record only.
        let mut deleting = reopened.get("vol-1").expect("vol-1");
        deleting.state = VolumeState::Deleting;
        reopened.put(deleting).expect("put");
        reopened.recover(&HashMap::new()).await;
        assert_eq!(reopened.get("vol-1"), None);
        assert!(reopened.get("vol-2").is_some());
    }
}
