//! Instance root overlays: a qcow2 file backed by a cached image (its
//! format detected, never trusted from the upload), optionally larger than
//! the image, created under a temporary name and renamed into place.

use super::*;

/// What `qemu-img info` says about a base image.
#[derive(Debug, Deserialize)]
struct ImageInfo {
    format: String,
    #[serde(rename = "virtual-size")]
    virtual_size: u64,
    #[serde(rename = "backing-filename")]
    backing_filename: Option<String>,
    #[serde(rename = "format-specific")]
    format_specific: Option<serde_json::Value>,
}

/// Creates a qcow2 overlay at `overlay` backed by `base` (`qemu-img create
/// -f qcow2 -F <raw|qcow2> -b <base> <overlay> <size>`), detecting the base
/// format with `qemu-img info --output=json`; `grow_to_bytes` makes the
/// overlay larger than the base (AWS lets an instance's root be bigger than
/// the image; it is rounded up to a multiple of 512 and may not be smaller
/// than the base). The backing path is recorded absolute. Writes to a temp
/// name (`.<name>.tmp` beside the overlay, removed by the next call if a
/// crash left it) and renames, so a crash leaves no half overlay. An
/// existing overlay is never replaced ([`CacheError::OverlayExists`]).
///
/// Bases with a backing file or an external data file of their own are
/// refused: an uploaded "raw" image could otherwise be a qcow2 header that
/// points the guest at a host file.
pub async fn create_overlay(
    base: &Path,
    overlay: &Path,
    grow_to_bytes: Option<u64>,
) -> Result<(), CacheError> {
    let base = tokio::fs::canonicalize(base)
        .await
        .map_err(CacheError::io(format_args!("resolving {}", base.display())))?;
    if tokio::fs::symlink_metadata(overlay).await.is_ok() {
        return Err(CacheError::OverlayExists(overlay.to_path_buf()));
    }
    let info = base_info(&base).await?;
    let unsupported = |message: String| CacheError::UnsupportedBase {
        path: base.clone(),
        message,
    };
    if info.format != "raw" && info.format != "qcow2" {
        return Err(unsupported(format!(
            "format {} is neither raw nor qcow2",
            info.format
        )));
    }
    if let Some(backing) = &info.backing_filename {
        return Err(unsupported(format!("it has a backing file ({backing})")));
    }
    let data_file = info
        .format_specific
        .as_ref()
        .and_then(|v| v.pointer("/data/data-file"));
    if let Some(data_file) = data_file {
        return Err(unsupported(format!(
            "it has an external data file ({data_file})"
        )));
    }
    let size = match grow_to_bytes {
        Some(requested) if requested < info.virtual_size => {
            return Err(CacheError::OverlayTooSmall {
                requested,
                base: info.virtual_size,
            });
        }
        Some(requested) => requested,
        None => info.virtual_size,
    };
    let size = size.div_ceil(512).saturating_mul(512);

    let file_name = overlay.file_name().ok_or_else(|| CacheError::Io {
        context: format!("creating overlay {}", overlay.display()),
        source: io::Error::new(io::ErrorKind::InvalidInput, "path has no file name"),
    })?;
    let tmp = overlay.with_file_name(format!(".{}.tmp", file_name.to_string_lossy()));
    match tokio::fs::remove_file(&tmp).await {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => {
            return Err(CacheError::io(format_args!("removing {}", tmp.display()))(
                e,
            ));
        }
    }
    let mut guard = TempGuard::new(tmp.clone());
    let mut args: Vec<std::ffi::OsString> = vec![
        "create".into(),
        "-q".into(),
        "-f".into(),
        "qcow2".into(),
        "-F".into(),
        info.format.clone().into(),
        "-b".into(),
        base.clone().into(),
    ];
    args.push(tmp.clone().into());
    args.push(size.to_string().into());
    run_qemu_img(&format!("create {}", overlay.display()), &args).await?;

    let sync = tmp.clone();
    blocking(move || {
        std::fs::File::open(&sync)
            .and_then(|f| f.sync_all())
            .map_err(CacheError::io(format_args!("syncing {}", sync.display())))
    })
    .await?;
    tokio::fs::rename(&tmp, overlay)
        .await
        .map_err(CacheError::io(format_args!(
            "renaming {} to {}",
            tmp.display(),
            overlay.display()
        )))?;
    guard.disarm();
    let dir = match overlay.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_path_buf(),
        _ => PathBuf::from("."),
    };
    blocking(move || sync_dir(&dir)).await
}

/// `qemu-img info` of a base image (format probed, shared lock so a base
/// in use by running VMs can be inspected).
async fn base_info(base: &Path) -> Result<ImageInfo, CacheError> {
    let action = format!("info {}", base.display());
    let args: Vec<std::ffi::OsString> = vec![
        "info".into(),
        "-U".into(),
        "--output=json".into(),
        base.into(),
    ];
    let stdout = run_qemu_img(&action, &args).await?;
    serde_json::from_slice(&stdout).map_err(|e| CacheError::QemuImg {
        action,
        message: format!("unexpected output: {e}"),
    })
}

/// Runs `qemu-img` with a time limit; its stdout on success.
async fn run_qemu_img(action: &str, args: &[std::ffi::OsString]) -> Result<Vec<u8>, CacheError> {
    let err = |message: String| CacheError::QemuImg {
        action: action.to_owned(),
        message,
    };
    Cmd::new("qemu-img")
        .args(args)
        .timeout(QEMU_IMG_TIMEOUT)
        .output()
        .await
        .map_err(|e| {
            err(match e {
                ProcessError::TimedOut { limit, .. } => {
                    format!("timed out after {} s", limit.as_secs())
                }
                ProcessError::Spawn { source, .. } => format!("cannot run qemu-img: {source}"),
                ProcessError::Failed { status, stderr, .. } => format!("{status}: {stderr}"),
                other => other.to_string(),
            })
        })
}
