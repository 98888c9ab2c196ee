//! `qemu-img` as the node uses it for volumes and snapshots: image facts
//! (`info`), creation, format conversion with progress, and resizing. The
//! child process is killed when the future running it is dropped, so an
//! aborted snapshot or volume creation leaves no `qemu-img` behind.

use std::path::Path;
use std::process::Stdio;

use mallee_node_api::DiskFormat;
use mallee_util::process::{Cmd, ProcessError};
use tokio::io::AsyncReadExt;

/// The program run (from `PATH`; Debian package `qemu-utils`).
const QEMU_IMG: &str = "qemu-img";

/// A `qemu-img` run that failed.
#[derive(Debug, thiserror::Error)]
#[error("qemu-img {action} failed: {message}")]
pub struct QemuImgError {
    /// What it was asked to do.
    pub action: &'static str,
    /// Its error output (or why it could not run).
    pub message: String,
}

/// What `qemu-img info` tells about an image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageInfo {
    /// Size the guest sees, in bytes.
    pub virtual_size: u64,
    /// The backing file the image names, if any.
    pub backing: Option<String>,
    /// The external data file a qcow2 image names, if any.
    pub data_file: Option<String>,
}

async fn run(action: &'static str, args: &[&std::ffi::OsStr]) -> Result<Vec<u8>, QemuImgError> {
    Cmd::new(QEMU_IMG)
        .args(args)
        .output()
        .await
        .map_err(|e| QemuImgError {
            action,
            message: match e {
                ProcessError::Spawn { source, .. } => {
                    format!("cannot run {QEMU_IMG} (Debian package qemu-utils): {source}")
                }
                ProcessError::Failed { stderr, .. } => stderr,
                other => other.to_string(),
            },
        })
}

/// `qemu-img info` of `path` read as `format` (never probed: an image's
/// claimed format is not trusted). `shared`: the image may be open in a
/// running VM (`-U`).
pub async fn info(
    path: &Path,
    format: DiskFormat,
    shared: bool,
) -> Result<ImageInfo, QemuImgError> {
    let mut args: Vec<&std::ffi::OsStr> = vec![
        "info".as_ref(),
        "--output=json".as_ref(),
        "-f".as_ref(),
        format.as_str().as_ref(),
    ];
    if shared {
        args.push("-U".as_ref());
    }
    args.push(path.as_os_str());
    let out = run("info", &args).await?;
    let bad = |message: String| QemuImgError {
        action: "info",
        message,
    };
    let value: serde_json::Value =
        serde_json::from_slice(&out).map_err(|e| bad(format!("unreadable output: {e}")))?;
    let virtual_size = value["virtual-size"]
        .as_u64()
        .ok_or_else(|| bad(format!("no virtual-size in {value}")))?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    Ok(ImageInfo {
        virtual_size,
        backing: text(&value["backing-filename"]).or_else(|| text(&value["full-backing-filename"])),
        data_file: text(&value["format-specific"]["data"]["data-file"]),
    })
}

/// Creates an empty qcow2 image of `size` bytes.
pub async fn create_qcow2(path: &Path, size: u64) -> Result<(), QemuImgError> {
    let size = size.to_string();
    run(
        "create",
        &[
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            path.as_os_str(),
            size.as_ref(),
        ],
    )
    .await
    .map(drop)
}

/// Creates a qcow2 image of `size` bytes over the qcow2 image `base`
/// (its backing file, named by absolute path): it reads as `base` until
/// written, and takes almost no space before.
pub async fn create_overlay(path: &Path, base: &Path, size: u64) -> Result<(), QemuImgError> {
    let size = size.to_string();
    run(
        "create",
        &[
            "create".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            "-F".as_ref(),
            "qcow2".as_ref(),
            "-b".as_ref(),
            base.as_os_str(),
            path.as_os_str(),
            size.as_ref(),
        ],
    )
    .await
    .map(drop)
}

/// Grows a qcow2 image to `size` bytes.
pub async fn resize_qcow2(path: &Path, size: u64) -> Result<(), QemuImgError> {
    let size = size.to_string();
    run(
        "resize",
        &[
            "resize".as_ref(),
            "-q".as_ref(),
            "-f".as_ref(),
            "qcow2".as_ref(),
            path.as_os_str(),
            size.as_ref(),
        ],
    )
    .await
    .map(drop)
}

/// `qemu-img convert -f FORMAT -O qcow2 SOURCE TARGET`: a compact copy
/// (clusters that read as zeroes are not written). `progress` is called
/// with the percentage done (0..=100) as `qemu-img -p` reports it.
pub async fn convert_to_qcow2(
    source: &Path,
    format: DiskFormat,
    target: &Path,
    mut progress: impl FnMut(u8) + Send,
) -> Result<(), QemuImgError> {
    let mut child = tokio::process::Command::new(QEMU_IMG)
        .args(["convert", "-p", "-f", format.as_str(), "-O", "qcow2"])
        .arg(source)
        .arg(target)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| QemuImgError {
            action: "convert",
            message: format!("cannot run {QEMU_IMG} (Debian package qemu-utils): {e}"),
        })?;
    let mut stdout = child.stdout.take();
    let mut stderr = child.stderr.take();
    let read_errors = async {
        let mut text = String::new();
        if let Some(stderr) = stderr.as_mut() {
            let _ = stderr.read_to_string(&mut text).await;
        }
        text
    };
    let read_progress = async {
        let Some(stdout) = stdout.as_mut() else {
            return;
        };
        let mut pending = String::new();
        let mut buf = [0u8; 512];
        while let Ok(n) = stdout.read(&mut buf).await {
            if n == 0 {
                break;
            }
            pending.push_str(&String::from_utf8_lossy(&buf[..n]));
            while let Some(end) = pending.find(['\r', '\n']) {
                if let Some(p) = parse_progress(&pending[..end]) {
                    progress(p);
                }
                pending.drain(..=end);
            }
        }
    };
    let ((), errors) = tokio::join!(read_progress, read_errors);
    let status = child.wait().await.map_err(|e| QemuImgError {
        action: "convert",
        message: e.to_string(),
    })?;
    if status.success() {
        progress(100);
        Ok(())
    } else {
        Err(QemuImgError {
            action: "convert",
            message: errors.trim().to_owned(),
        })
    }
}

/// The percentage of a `qemu-img -p` progress line (`    (42.17/100%)`).
fn parse_progress(line: &str) -> Option<u8> {
    let inner = line.trim().strip_prefix('(')?.strip_suffix("/100%)")?;
    let value: f64 = inner.trim().parse().ok()?;
    if (0.0..=100.0).contains(&value) {
        // In 0..=100 by the check above.
        Some(value.floor() as u8)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_lines() {
        assert_eq!(parse_progress("    (42.17/100%)"), Some(42));
        assert_eq!(parse_progress("(100.00/100%)"), Some(100));
        assert_eq!(parse_progress("(0.00/100%)"), Some(0));
        assert_eq!(parse_progress("garbage"), None);
        assert_eq!(parse_progress("(120.00/100%)"), None);
    }

    #[tokio::test]
    async fn convert_and_info() {
        let dir = tempfile::tempdir().expect("tempdir");
        let raw = dir.path().join("disk.raw");
        let mut data = vec![0u8; 4 * 1024 * 1024];
        data[..1024 * 1024].fill(0x5a);
        std::fs::write(&raw, &data).expect("write");
        let qcow2 = dir.path().join("disk.qcow2");
        let mut seen = Vec::new();
        convert_to_qcow2(&raw, DiskFormat::Raw, &qcow2, |p| seen.push(p))
            .await
            .expect("convert");
        assert_eq!(seen.last(), Some(&100));
        let info = info(&qcow2, DiskFormat::Qcow2, false).await.expect("info");
        assert_eq!(
            info,
            ImageInfo {
                virtual_size: 4 * 1024 * 1024,
                backing: None,
                data_file: None
            }
        );
        resize_qcow2(&qcow2, 8 * 1024 * 1024).await.expect("resize");
        assert_eq!(
            super::info(&qcow2, DiskFormat::Qcow2, true)
                .await
                .expect("info")
                .virtual_size,
            8 * 1024 * 1024
        );
        // A raw file read as qcow2 is refused, not probed.
        assert!(super::info(&raw, DiskFormat::Qcow2, false).await.is_err());
        // A backing file is reported.
        let overlay = dir.path().join("overlay.qcow2");
        let out = std::process::Command::new(QEMU_IMG)
            .args(["create", "-q", "-f", "qcow2", "-F", "raw", "-b"])
            .arg(&raw)
            .arg(&overlay)
            .output()
            .expect("qemu-img");
        assert!(out.status.success());
        let info = super::info(&overlay, DiskFormat::Qcow2, false)
            .await
            .expect("info");
        assert_eq!(info.backing.as_deref(), Some(raw.to_str().expect("utf-8")));
    }
}
