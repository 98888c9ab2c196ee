//! The qcow2-file volume backend: one sparse qcow2 file per volume in a
//! directory, which QEMU (or, on a storage host, the NBD export's
//! qemu-storage-daemon) opens directly.

use std::path::{Path, PathBuf};

use async_trait::async_trait;
use mallee_node_api::SnapshotSource;
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

    /// A fresh temporary file name for volume `volume_id` (any leftover of
    /// an interrupted attempt removed), guarded: it goes unless disarmed.
    async fn fresh_tmp(&self, volume_id: &str) -> Result<(PathBuf, TempGuard), VolumeError> {
        tokio::fs::create_dir_all(&self.dir)
            .await
            .map_err(io(format!("create {}", self.dir.display())))?;
        let tmp = self.dir.join(format!(".{volume_id}.qcow2.tmp"));
        let guard = TempGuard::new(tmp.clone());
        match tokio::fs::remove_file(&tmp).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                Err(io(format!("remove {}", tmp.display()))(e))
            }
            _ => Ok((tmp, guard)),
        }
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
        let (tmp, mut guard) = self.fresh_tmp(volume_id).await?;
        crate::qemu_img::create_qcow2(&tmp, size_gib.saturating_mul(GIB)).await?;
        self.finish(volume_id, tmp).await?;
        guard.disarm();
        Ok(())
    }

    async fn grow(&self, volume_id: &str, size_gib: u64) -> Result<(), VolumeError> {
        crate::qemu_img::resize_qcow2(&self.path(volume_id), size_gib.saturating_mul(GIB)).await?;
        Ok(())
    }

    fn snapshot_base(&self, source: &SnapshotSource) -> Option<PathBuf> {
        self.base_of(source)
    }

    async fn keep_snapshot(
        &self,
        source: &SnapshotSource,
        image: &Path,
    ) -> Result<PathBuf, VolumeError> {
        self.store_base(source, image).await
    }

    async fn create_over(
        &self,
        volume_id: &str,
        size_gib: u64,
        base: &Path,
    ) -> Result<(), VolumeError> {
        self.overlay_on(volume_id, size_gib, base).await
    }

    async fn forget_snapshot(&self, source: &SnapshotSource) -> Result<(), VolumeError> {
        self.drop_base(source).await
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

/// Snapshot data kept once per snapshot, `DIR/.bases/<snap-id>-<digest>.qcow2`,
/// that volumes created from the snapshot are thin qcow2 overlays on (EBS'
/// lazy loading: a new volume costs nothing until written). A base is never
/// written after it is complete; it goes once no volume is made from it.
impl Qcow2Files {
    fn bases_dir(&self) -> PathBuf {
        self.dir.join(".bases")
    }

    fn base_path(&self, source: &SnapshotSource) -> PathBuf {
        let digest = source.sha256.get(..16).unwrap_or(&source.sha256);
        self.bases_dir()
            .join(format!("{}-{digest}.qcow2", source.snapshot_id))
    }

    /// The complete base of `source`, if this backend keeps one.
    fn base_of(&self, source: &SnapshotSource) -> Option<PathBuf> {
        let path = self.base_path(source);
        path.is_file().then_some(path)
    }

    /// Keeps the snapshot data `image` (in `source.format`, checked: it may
    /// name no other file) as the base of `source`; returns its path.
    async fn store_base(
        &self,
        source: &SnapshotSource,
        image: &Path,
    ) -> Result<PathBuf, VolumeError> {
        let path = self.base_path(source);
        if path.is_file() {
            return Ok(path);
        }
        check_snapshot_data(image, source.format).await?;
        let dir = self.bases_dir();
        tokio::fs::create_dir_all(&dir)
            .await
            .map_err(io(format!("create {}", dir.display())))?;
        let tmp = dir.join(format!(".{}.tmp", source.snapshot_id));
        let mut guard = TempGuard::new(tmp.clone());
        match tokio::fs::remove_file(&tmp).await {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(format!("remove {}", tmp.display()))(e));
            }
            _ => {}
        }
        crate::qemu_img::convert_to_qcow2(image, source.format, &tmp, |_| {}).await?;
        let done = path.clone();
        tokio::task::spawn_blocking(move || {
            std::fs::File::open(&tmp)?.sync_all()?;
            std::fs::rename(&tmp, &done)?;
            sync_dir(&dir)
        })
        .await
        .map_err(|e| io("keep a snapshot")(std::io::Error::other(e)))?
        .map_err(io(format!("finish {}", path.display())))?;
        guard.disarm();
        Ok(path)
    }

    /// Creates volume `volume_id` of `size_gib` as an overlay on `base`
    /// (which must not be larger); one that exists is left as it is.
    async fn overlay_on(
        &self,
        volume_id: &str,
        size_gib: u64,
        base: &Path,
    ) -> Result<(), VolumeError> {
        if self.path(volume_id).exists() {
            return Ok(());
        }
        let info = crate::qemu_img::info(base, mallee_node_api::DiskFormat::Qcow2, true).await?;
        let size = size_gib.saturating_mul(GIB);
        if info.virtual_size > size {
            return Err(VolumeError::BadImage(format!(
                "the snapshot's disk is {} bytes, larger than the {size_gib} GiB volume",
                info.virtual_size
            )));
        }
        let (tmp, mut guard) = self.fresh_tmp(volume_id).await?;
        crate::qemu_img::create_overlay(&tmp, base, size).await?;
        self.finish(volume_id, tmp).await?;
        guard.disarm();
        Ok(())
    }

    /// Removes the base of `source` (no volume is made from it any more).
    async fn drop_base(&self, source: &SnapshotSource) -> Result<(), VolumeError> {
        let path = self.base_path(source);
        match tokio::fs::remove_file(&path).await {
            Ok(()) => sync_dir(&self.bases_dir())
                .map_err(io(format!("sync {}", self.bases_dir().display()))),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(format!("remove {}", path.display()))(e)),
        }
    }
}

/// Refuses snapshot data that is not a `format` image or names another
/// file (a backing file or an external data file could read any file of
/// the host).
async fn check_snapshot_data(
    image: &Path,
    format: mallee_node_api::DiskFormat,
) -> Result<crate::qemu_img::ImageInfo, VolumeError> {
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
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn source(id: &str) -> SnapshotSource {
        SnapshotSource {
            snapshot_id: id.into(),
            size: 0,
            sha256: "0123456789abcdef0123456789abcdef".into(),
            format: mallee_node_api::DiskFormat::Raw,
        }
    }

    fn allocated(path: &Path) -> u64 {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(path).expect("metadata").blocks() * 512
    }

    #[tokio::test]
    async fn volumes_from_one_snapshot_share_its_base() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = Qcow2Files::new(dir.path().join("volumes"));
        // 8 MiB of snapshot data with a pattern.
        let image = dir.path().join("data.raw");
        let mut data = vec![0u8; 8 << 20];
        for (i, b) in data.iter_mut().enumerate() {
            *b = u8::try_from(i % 251).expect("byte");
        }
        std::fs::write(&image, &data).expect("write");
        let snap = source("snap-0123456789abcdef0");
        assert_eq!(files.base_of(&snap), None);
        let base = files.store_base(&snap, &image).await.expect("keep");
        assert_eq!(files.base_of(&snap), Some(base.clone()));
        assert_eq!(files.store_base(&snap, &image).await.expect("again"), base);
        for i in 0..5 {
            let id = format!("vol-000000000000000{i:02}");
            files.overlay_on(&id, 1, &base).await.expect("overlay");
            let info =
                crate::qemu_img::info(&files.path(&id), mallee_node_api::DiskFormat::Qcow2, false)
                    .await
                    .expect("info");
            assert_eq!(info.virtual_size, GIB);
            assert_eq!(info.backing.as_deref(), base.to_str());
            assert!(
                allocated(&files.path(&id)) < 1 << 20,
                "an overlay costs almost nothing: {}",
                allocated(&files.path(&id))
            );
        }
        // The overlay reads as the snapshot: convert it back and compare.
        let back = dir.path().join("back.raw");
        let out = std::process::Command::new("qemu-img")
            .args(["convert", "-f", "qcow2", "-O", "raw"])
            .arg(files.path("vol-00000000000000000"))
            .arg(&back)
            .output()
            .expect("qemu-img convert");
        assert!(out.status.success(), "{out:?}");
        let read = std::fs::read(&back).expect("read");
        assert_eq!(&read[..data.len()], &data[..]);
        assert!(read[data.len()..].iter().all(|b| *b == 0));
        // A snapshot larger than the volume is refused.
        let big = dir.path().join("big.raw");
        std::fs::File::create(&big)
            .and_then(|f| f.set_len(GIB + (1 << 20)))
            .expect("big");
        let big_snap = source("snap-0123456789abcdef1");
        let big_base = files
            .keep_snapshot(&big_snap, &big)
            .await
            .expect("keep big");
        assert!(matches!(
            files
                .create_over("vol-0000000000000000f", 1, &big_base)
                .await,
            Err(VolumeError::BadImage(_))
        ));
        files.drop_base(&big_snap).await.expect("forget");
        assert_eq!(files.base_of(&big_snap), None);
        files
            .forget_snapshot(&big_snap)
            .await
            .expect("forget twice");
    }

    #[tokio::test]
    async fn snapshot_data_naming_another_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let files = Qcow2Files::new(dir.path().join("volumes"));
        let secret = dir.path().join("secret.raw");
        std::fs::write(&secret, b"secret").expect("write");
        let evil = dir.path().join("evil.qcow2");
        let out = std::process::Command::new("qemu-img")
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&secret)
            .arg(&evil)
            .arg("1M")
            .output()
            .expect("qemu-img create");
        assert!(out.status.success(), "{out:?}");
        let mut snap = source("snap-0123456789abcdef2");
        snap.format = mallee_node_api::DiskFormat::Qcow2;
        assert!(matches!(
            files.store_base(&snap, &evil).await,
            Err(VolumeError::BadImage(m)) if m.contains("names another file")
        ));
        assert_eq!(files.base_of(&snap), None);
    }
}
