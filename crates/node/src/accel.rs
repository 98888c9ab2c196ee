//! The node's accelerator decision: `auto|kvm|tcg` resolved once per host
//! boot. `auto` probes KVM by booting a stock kernel without an initramfs
//! ([`KvmProbe::kernel_only`]); on a paravirtual-KVM host that probe takes
//! its whole timeout, so the decision is cached in a file under `/run`
//! (gone at reboot) keyed by the boot id, the QEMU binary and the kernel.

use std::path::{Path, PathBuf};

use mallee_qemu::{Accel, AccelChoice, AccelRequest, KvmProbe};
use mallee_util::durable::sync_dir;
use serde::{Deserialize, Serialize};

/// The cached decision and what it is valid for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Cached {
    boot_id: String,
    qemu: PathBuf,
    kernel: PathBuf,
    choice: AccelChoice,
}

/// The kernel `auto` probes with: the configured one, else the running
/// kernel's image in `/boot`, else `/boot/vmlinuz`.
pub fn probe_kernel(configured: Option<&Path>) -> Option<PathBuf> {
    if let Some(k) = configured {
        return Some(k.to_path_buf());
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    [
        PathBuf::from(format!("/boot/vmlinuz-{}", release.trim())),
        PathBuf::from("/boot/vmlinuz"),
    ]
    .into_iter()
    .find(|p| p.is_file())
}

fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Resolves `request`. `cache_file` holds the last `auto` decision of this
/// host boot; `work_dir` is where the probe VM runs (keep it short: it holds
/// the probe's QMP socket). Errors only for an explicit `kvm` that cannot
/// work.
pub async fn resolve(
    request: AccelRequest,
    qemu: &Path,
    kernel: Option<&Path>,
    cache_file: &Path,
    work_dir: &Path,
) -> Result<AccelChoice, String> {
    let probe_for = |kernel: PathBuf| KvmProbe {
        qemu: qemu.to_path_buf(),
        ..KvmProbe::kernel_only(kernel, work_dir.to_path_buf())
    };
    match request {
        AccelRequest::Tcg | AccelRequest::Kvm => request
            .resolve(&probe_for(PathBuf::new()))
            .await
            .map_err(|e| e.to_string()),
        AccelRequest::Auto => {
            let Some(kernel) = probe_kernel(kernel) else {
                let reason = "auto: no kernel to probe KVM with (no probe kernel configured, \
                              no /boot/vmlinuz-$(uname -r), no /boot/vmlinuz); using TCG"
                    .to_owned();
                tracing::info!(accel = "tcg", %reason, "acceleration selected");
                return Ok(AccelChoice {
                    accel: Accel::Tcg,
                    reason,
                });
            };
            let key = Cached {
                boot_id: boot_id(),
                qemu: qemu.to_path_buf(),
                kernel: kernel.clone(),
                choice: AccelChoice {
                    accel: Accel::Tcg,
                    reason: String::new(),
                },
            };
            if let Some(cached) = read_cache(cache_file)
                && !key.boot_id.is_empty()
                && cached.boot_id == key.boot_id
                && cached.qemu == key.qemu
                && cached.kernel == key.kernel
            {
                let choice = AccelChoice {
                    accel: cached.choice.accel,
                    reason: format!(
                        "{} (decided earlier in this host boot; cached in {})",
                        cached.choice.reason,
                        cache_file.display()
                    ),
                };
                tracing::info!(accel = %choice.accel, reason = %choice.reason, "acceleration selected");
                return Ok(choice);
            }
            // A probe VM left by an agent killed mid-probe would make this
            // probe's launch fail and wrongly count against KVM.
            if let Err(e) =
                mallee_qemu::RunningVm::kill_run_dir(work_dir, std::time::Duration::from_secs(10))
                    .await
            {
                tracing::warn!(error = %e, "cannot end an earlier KVM probe VM");
            }
            let choice = match AccelRequest::Auto.resolve(&probe_for(kernel)).await {
                Ok(choice) => choice,
                Err(e) => {
                    let reason = format!("auto: {e}; using TCG");
                    tracing::info!(accel = "tcg", %reason, "acceleration selected");
                    return Ok(AccelChoice {
                        accel: Accel::Tcg,
                        reason,
                    });
                }
            };
            let entry = Cached {
                choice: choice.clone(),
                ..key
            };
            if let Err(e) = write_cache(cache_file, &entry) {
                tracing::warn!(file = %cache_file.display(), error = %e, "cannot cache the accelerator decision");
            }
            Ok(choice)
        }
    }
}

fn read_cache(file: &Path) -> Option<Cached> {
    serde_json::from_slice(&std::fs::read(file).ok()?).ok()
}

fn write_cache(file: &Path, entry: &Cached) -> std::io::Result<()> {
    let dir = file.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)?;
    let tmp = file.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(
        &tmp,
        serde_json::to_vec_pretty(entry).map_err(std::io::Error::other)?,
    )?;
    std::fs::rename(&tmp, file)?;
    sync_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn auto_uses_the_cached_decision_of_this_boot() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = dir.path().join("accel.json");
        let kernel = dir.path().join("vmlinuz");
        std::fs::write(&kernel, b"not a kernel").expect("kernel");
        let qemu = Path::new("qemu-system-x86_64");
        write_cache(
            &cache,
            &Cached {
                boot_id: boot_id(),
                qemu: qemu.into(),
                kernel: kernel.clone(),
                choice: AccelChoice {
                    accel: Accel::Kvm,
                    reason: "auto: probe guest booted under KVM in 900 ms".into(),
                },
            },
        )
        .expect("write cache");
        let choice = resolve(AccelRequest::Auto, qemu, Some(&kernel), &cache, dir.path())
            .await
            .expect("resolve");
        assert_eq!(choice.accel, Accel::Kvm);
        assert!(choice.reason.contains("cached"), "{}", choice.reason);

        // Another boot id: the entry is stale, the probe runs (a file that
        // is not a kernel never boots) and the new decision replaces it.
        let mut stale = read_cache(&cache).expect("cache");
        stale.boot_id = "another-boot".into();
        write_cache(&cache, &stale).expect("write");
        let choice = resolve(AccelRequest::Auto, qemu, Some(&kernel), &cache, dir.path())
            .await
            .expect("resolve");
        assert_eq!(choice.accel, Accel::Tcg, "{}", choice.reason);
        assert!(!choice.reason.contains("cached"), "{}", choice.reason);
        let fresh = read_cache(&cache).expect("cache rewritten");
        assert_eq!(fresh.boot_id, boot_id());
        assert_eq!(fresh.choice.accel, Accel::Tcg);
    }
}
