//! Choosing the accelerator: KVM where it really works, TCG otherwise.
//!
//! `/dev/kvm` existing is not enough: on paravirtual KVM (PVM) hosts the
//! device is there but stock guest kernels hang or QEMU aborts while setting
//! up the vCPU. So [`AccelRequest::Auto`] boots a tiny probe guest (kernel +
//! initramfs supplied by the caller, whose init prints a marker on ttyS0)
//! under KVM and accepts KVM only if the marker reaches the serial log within
//! a timeout; otherwise it picks TCG and says why in the log and in
//! [`AccelChoice::reason`].

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::vm::{Boot, QEMU_BINARY, RunningVm, VmError, VmSpec};

/// The serial marker the mallee test guests print once user space runs.
pub const DEFAULT_MARKER: &str = "MALLEE-GUEST: booted";
/// Default time the probe guest gets to print its marker under KVM.
pub const DEFAULT_PROBE_TIMEOUT: Duration = Duration::from_secs(20);

/// Errors from accelerator selection.
#[derive(Debug, thiserror::Error)]
pub enum AccelError {
    /// `kvm` was requested explicitly but `/dev/kvm` cannot be used.
    #[error("KVM requested but unavailable: {0}")]
    KvmUnavailable(String),
    /// The probe cannot run at all (missing kernel, QEMU binary, work dir).
    #[error("cannot run the KVM probe: {0}")]
    ProbeSetup(String),
    /// An unknown accelerator name.
    #[error("unknown accelerator {0:?} (expected auto, kvm or tcg)")]
    UnknownName(String),
}

/// A concrete accelerator for one VM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Accel {
    /// Hardware virtualisation through `/dev/kvm`.
    Kvm,
    /// QEMU's software emulation (Tiny Code Generator).
    Tcg,
}

impl fmt::Display for Accel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        })
    }
}

/// What the administrator configured: `auto`, `kvm` or `tcg`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AccelRequest {
    /// KVM if a probe guest boots under it, else TCG.
    #[default]
    Auto,
    /// KVM, no probing (fails only if `/dev/kvm` cannot be opened).
    Kvm,
    /// TCG.
    Tcg,
}

impl fmt::Display for AccelRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Auto => "auto",
            Self::Kvm => "kvm",
            Self::Tcg => "tcg",
        })
    }
}

impl FromStr for AccelRequest {
    type Err = AccelError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "auto" => Ok(Self::Auto),
            "kvm" => Ok(Self::Kvm),
            "tcg" => Ok(Self::Tcg),
            _ => Err(AccelError::UnknownName(s.to_owned())),
        }
    }
}

/// The chosen accelerator and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccelChoice {
    /// The accelerator to use.
    pub accel: Accel,
    /// Human-readable reason (also logged).
    pub reason: String,
}

/// How to probe KVM: the probe guest and where to run it.
#[derive(Debug, Clone)]
pub struct KvmProbe {
    /// QEMU binary.
    pub qemu: PathBuf,
    /// The KVM device.
    pub kvm_device: PathBuf,
    /// Probe kernel (e.g. `guest/out/vmlinuz`).
    pub kernel: PathBuf,
    /// Probe initramfs (e.g. `guest/out/initrd.img`).
    pub initrd: Option<PathBuf>,
    /// Kernel command line; must send the marker to ttyS0.
    pub cmdline: String,
    /// Text whose appearance in the serial log proves the guest booted.
    pub marker: String,
    /// How long the guest gets.
    pub timeout: Duration,
    /// Run directory of the probe VM (serial log, QMP socket, pidfile);
    /// keep the path short (Unix socket limit).
    pub work_dir: PathBuf,
    /// CPU model for the probe; `None` is what real VMs get (`host`).
    pub cpu_model: Option<String>,
}

impl KvmProbe {
    /// A probe with the default QEMU, `/dev/kvm`, marker, command line and
    /// timeout.
    pub fn new(kernel: PathBuf, initrd: Option<PathBuf>, work_dir: PathBuf) -> Self {
        Self {
            qemu: PathBuf::from(QEMU_BINARY),
            kvm_device: PathBuf::from("/dev/kvm"),
            kernel,
            initrd,
            cmdline: "console=ttyS0 panic=-1 quiet".into(),
            marker: DEFAULT_MARKER.into(),
            timeout: DEFAULT_PROBE_TIMEOUT,
            work_dir,
            cpu_model: None,
        }
    }
}

/// What a stock kernel prints when it boots without an initramfs and with a
/// root device that does not exist: proof that it ran to the point of
/// mounting root, which is all the KVM probe needs.
pub const KERNEL_ONLY_MARKER: &str = "VFS: Unable to mount root fs";

impl KvmProbe {
    /// A probe that boots any stock kernel (the host's own
    /// `/boot/vmlinuz-*`, say) without an initramfs and with a root device
    /// that cannot exist: the kernel reaches its root mount and panics with
    /// [`KERNEL_ONLY_MARKER`], which proves it ran under KVM. `panic=-1`
    /// makes it reboot at once instead of idling.
    pub fn kernel_only(kernel: PathBuf, work_dir: PathBuf) -> Self {
        Self {
            cmdline: "console=ttyS0 panic=-1 root=/dev/mallee-probe".into(),
            marker: KERNEL_ONLY_MARKER.into(),
            ..Self::new(kernel, None, work_dir)
        }
    }
}

impl AccelRequest {
    /// Resolves the request to a concrete accelerator. `auto` runs `probe`
    /// when `/dev/kvm` is usable; `kvm` and `tcg` are taken as given (`kvm`
    /// fails if the device cannot be opened). The choice and its reason are
    /// logged (`warn` when KVM is present but unusable).
    pub async fn resolve(self, probe: &KvmProbe) -> Result<AccelChoice, AccelError> {
        let choice = match self {
            Self::Tcg => AccelChoice {
                accel: Accel::Tcg,
                reason: "tcg requested".into(),
            },
            Self::Kvm => {
                open_kvm(&probe.kvm_device).map_err(AccelError::KvmUnavailable)?;
                AccelChoice {
                    accel: Accel::Kvm,
                    reason: "kvm requested".into(),
                }
            }
            Self::Auto => {
                if let Err(reason) = open_kvm(&probe.kvm_device) {
                    let reason = format!("auto: {reason}; using TCG");
                    tracing::info!(accel = "tcg", %reason, "acceleration selected");
                    return Ok(AccelChoice {
                        accel: Accel::Tcg,
                        reason,
                    });
                }
                match run_probe(probe).await? {
                    Ok(elapsed) => AccelChoice {
                        accel: Accel::Kvm,
                        reason: format!(
                            "auto: probe guest booted under KVM in {} ms",
                            elapsed.as_millis()
                        ),
                    },
                    Err(why) => {
                        let reason = format!(
                            "auto: {} exists but is not usable ({why}); using TCG",
                            probe.kvm_device.display()
                        );
                        tracing::warn!(accel = "tcg", %reason, "acceleration selected");
                        return Ok(AccelChoice {
                            accel: Accel::Tcg,
                            reason,
                        });
                    }
                }
            }
        };
        tracing::info!(accel = %choice.accel, reason = %choice.reason, "acceleration selected");
        Ok(choice)
    }
}

fn open_kvm(dev: &Path) -> Result<(), String> {
    if !dev.exists() {
        return Err(format!("{} does not exist", dev.display()));
    }
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(dev)
        .map(drop)
        .map_err(|e| format!("cannot open {}: {e}", dev.display()))
}

/// Boots the probe guest under KVM. Outer error: the probe could not run;
/// inner `Ok(elapsed)`: the marker appeared; inner `Err(reason)`: KVM failed.
async fn run_probe(probe: &KvmProbe) -> Result<Result<Duration, String>, AccelError> {
    for f in std::iter::once(&probe.kernel).chain(probe.initrd.as_ref()) {
        if !f.is_file() {
            return Err(AccelError::ProbeSetup(format!(
                "probe guest file {} is missing",
                f.display()
            )));
        }
    }
    std::fs::create_dir_all(&probe.work_dir)
        .map_err(|e| AccelError::ProbeSetup(format!("create {}: {e}", probe.work_dir.display())))?;
    let serial_log = probe.work_dir.join("probe-console.log");
    let spec = VmSpec {
        name: "mallee-kvm-probe".into(),
        vcpus: 1,
        memory_mib: 256,
        accel: Accel::Kvm,
        cpu_model: probe.cpu_model.clone(),
        boot: Boot::Kernel {
            kernel: probe.kernel.clone(),
            initrd: probe.initrd.clone(),
            cmdline: probe.cmdline.clone(),
        },
        disks: Vec::new(),
        nics: Vec::new(),
        serial_log: serial_log.clone(),
        run_dir: probe.work_dir.clone(),
        keep_on_shutdown: false,
    };
    let started = Instant::now();
    let vm = match RunningVm::launch_with(&probe.qemu, &spec).await {
        Ok(vm) => vm,
        Err(VmError::Io { context, source }) => {
            return Err(AccelError::ProbeSetup(format!("{context}: {source}")));
        }
        Err(e @ (VmError::InvalidSpec(_) | VmError::SocketPathTooLong(_))) => {
            return Err(AccelError::ProbeSetup(e.to_string()));
        }
        Err(e) => return Ok(Err(format!("QEMU could not start a KVM guest: {e}"))),
    };
    let outcome = loop {
        let log = std::fs::read(&serial_log).unwrap_or_default();
        if contains(&log, probe.marker.as_bytes()) {
            break Ok(started.elapsed());
        }
        if !vm.is_alive() {
            // It may have printed the marker just before exiting.
            let log = std::fs::read(&serial_log).unwrap_or_default();
            if contains(&log, probe.marker.as_bytes()) {
                break Ok(started.elapsed());
            }
            break Err("the KVM probe guest's QEMU exited before booting".to_owned());
        }
        if started.elapsed() >= probe.timeout {
            break Err(format!(
                "the probe guest did not print {:?} within {} s under KVM (paravirtual KVM?)",
                probe.marker,
                probe.timeout.as_secs_f32()
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    if let Err(e) = vm.kill().await {
        tracing::warn!(error = %e, "could not kill the KVM probe guest");
    }
    Ok(outcome)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_names() {
        assert_eq!(
            "auto".parse::<AccelRequest>().ok(),
            Some(AccelRequest::Auto)
        );
        assert_eq!("KVM".parse::<AccelRequest>().ok(), Some(AccelRequest::Kvm));
        assert_eq!("tcg".parse::<AccelRequest>().ok(), Some(AccelRequest::Tcg));
        assert!("hvf".parse::<AccelRequest>().is_err());
        assert_eq!(AccelRequest::default().to_string(), "auto");
        assert_eq!(Accel::Kvm.to_string(), "kvm");
    }

    #[tokio::test]
    async fn auto_without_kvm_device_is_tcg() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut probe = KvmProbe::new("/nonexistent".into(), None, dir.path().into());
        probe.kvm_device = dir.path().join("no-kvm");
        let c = AccelRequest::Auto.resolve(&probe).await.expect("resolve");
        assert_eq!(c.accel, Accel::Tcg);
        assert!(c.reason.contains("does not exist"), "{}", c.reason);
        let err = AccelRequest::Kvm.resolve(&probe).await.expect_err("no kvm");
        assert!(matches!(err, AccelError::KvmUnavailable(_)));
        let c = AccelRequest::Tcg.resolve(&probe).await.expect("tcg");
        assert_eq!(c.accel, Accel::Tcg);
    }

    #[test]
    fn finds_marker() {
        assert!(contains(
            b"xx MALLEE-GUEST: booted\r\n",
            DEFAULT_MARKER.as_bytes()
        ));
        assert!(!contains(b"MALLEE-GUEST: boo", DEFAULT_MARKER.as_bytes()));
    }
}
