//! The qcow2-file volume backend: one sparse qcow2 file per volume in a
//! directory, which QEMU (or, on a storage host, the NBD export's
//! qemu-storage-daemon) opens directly.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use mallee_qemu::DiskFormat;
use mallee_util::durable::{TempGuard, sync_dir};

use crate::volumes::{GIB, VolumeBackend, VolumeDisk, VolumeError, io};

/// One sparse qcow2 file per volume, `DIR/<vol-id>.qcow2`, created under a
/// temporary name and renamed, so a file with the final name is whole.
#[derive(Debug, Clone)]
pub struct Qcow2Files {
    dir: PathBuf,
}

impl Qcow2Files {
    /// Volumes in `dir`, created with `qemu-img` from `PATH`.
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    fn path(&self, volume_id: &str) -> PathBuf {
        self.dir.join(format!("{volume_id}.qcow2"))
    }

    /// fsyncs `tmp`, renames it to the volume's file and fsyncs the
    /// directory.
    async fn finish(&self, volume_id: &str, tmp: PathBuf) -> Result<(), VolumeError> {
        let path = self.path(volume_id);
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &path)?;
            sync_dir(&dir)
        })
        .await
        .map_err(|e| io("create a volume file")(std::io::Error::other(e)))?
        .map_err(io(format!("finish {}", self.path(volume_id).display())))
    }
}

#[async_trait]
impl VolumeBackend for Qcow2Files {
    fn kind(&self) -> &'static str {
        "qcow2"
    }

    async fn create(&self, volume_id: &str, size_gib: u64) -> Result<(), VolumeError> {
        let path = self.path(volume_id);
        if path.exists() {
            return Ok(());
        }
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(io(format!("create {}", self.dir.display())))?;
        let tmp = self.dir.join(format!(".{volume_id}.qcow2.tmp"));
        let mut guard = TempGuard::new(tmp.clone());
        crate::qemu_img::create_qcow2(&tmp, size_gib.saturating_mul(GIB)).await?;
        self.finish(volume_id, tmp).await?;
        guard.disarm();
        Ok(())
    }

    async fn create_from(
        &self,
        volume_id: &str,
        size_gib: u64,
        image: &Path,
        format: mallee_node_api::DiskFormat,
    ) -> Result<(), VolumeError> {
        if self.path(volume_id).exists() {
            return Ok(());
        }
        let info = crate::qemu_img::info(image, format, false)
            .await
            .map_err(|e| {
                VolumeError::BadImage(format!(
                    "the snapshot data is not a {} image: {}",
                    format.as_str(),
                    e.message
                ))
            })?;
        if let Some(other) = info.backing.as_ref().or(info.data_file.as_ref()) {
            return Err(VolumeError::BadImage(format!(
                "the snapshot data names another file ({other}); refused"
            )));
        }
        let size = size_gib.saturating_mul(GIB);
        if info.virtual_size > size {
            return Err(VolumeError::BadImage(format!(
                "the snapshot's disk is {} bytes, larger than the {size_gib} GiB volume",
                info.virtual_size
            )));
        }
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(io(format!("create {}", self.dir.display())))?;
        let tmp = self.dir.join(format!(".{volume_id}.qcow2.tmp"));
        let mut guard = TempGuard::new(tmp.clone());
        match tokio::fs::remove_file(&tmp).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(format!("remove {}", tmp.display()))(e));
            }
            _ => {}
        }
        crate::qemu_img::convert_to_qcow2(image, format, &tmp, |_| {}).await?;
        if info.virtual_size < size {
            crate::qemu_img::resize_qcow2(&tmp, size).await?;
        }
        self.finish(volume_id, tmp).await?;
        guard.disarm();
        Ok(())
    }

    async fn delete(&self, volume_id: &str) -> Result<(), VolumeError> {
        let path = self.path(volume_id);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io(format!("remove {}", path.display()))(e)),
        }
        sync_dir(&self.dir).map_err(io(format!("sync {}", self.dir.display())))
    }

    fn exists(&self, volume_id: &str) -> bool {
        self.path(volume_id).is_file()
    }

    fn disk(&self, volume_id: &str) -> VolumeDisk {
        VolumeDisk {
            path: self.path(volume_id),
            format: DiskFormat::Qcow2,
        }
    }
}
