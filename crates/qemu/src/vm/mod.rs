//! Virtual machines: a [`VmSpec`] becomes a QEMU command line ([`argv`]),
//! [`RunningVm::launch`] starts it detached from the caller, and
//! [`RunningVm::adopt`] reconnects to one that is already running.
//!
//! QEMU runs with `-daemonize`: it double-forks, calls `setsid`, and is never
//! a child of the node agent, so killing or restarting the agent leaves the
//! VM running. Everything needed to find it again lives in the VM's run
//! directory: `qemu.pid` (written and locked by QEMU) and `qmp.sock`. A
//! handle identifies its process by pid *and* start time (from
//! `/proc/PID/stat`), so a recycled pid is never mistaken for the VM.
//!
//! Every guest gets `-nodefaults`, a `pc` machine (PCI hot-plug works on its
//! root bus, which volume attachment needs), a `virtio-rng-pci` entropy
//! device, its serial port written to a log file, virtio-blk disks (image
//! files, or NBD exports that QEMU's own NBD client reaches over TLS) and
//! virtio-net NICs. Dropping a [`RunningVm`] leaves the VM running.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::accel::Accel;
use crate::qmp::{QmpClient, QmpError, VmStatus};

mod command_line;

pub use command_line::*;

/// The QEMU binary used when none is given.
pub const QEMU_BINARY: &str = "qemu-system-x86_64";
/// File name of the QMP socket inside a run directory.
pub const QMP_SOCKET: &str = "qmp.sock";
/// File name of the pidfile inside a run directory.
pub const PIDFILE: &str = "qemu.pid";
/// Longest Unix socket path the kernel accepts (`sun_path` minus the NUL).
pub const MAX_SOCKET_PATH: usize = 107;
/// How long [`RunningVm::launch`] waits for QEMU to finish initialising.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// Errors from launching, adopting and controlling VMs.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// The spec cannot be turned into a valid QEMU command line.
    #[error("invalid VM spec: {0}")]
    InvalidSpec(String),
    /// A file system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The QMP socket path is too long for a Unix socket.
    #[error(
        "QMP socket path {0} is longer than {MAX_SOCKET_PATH} bytes; use a shorter run directory"
    )]
    SocketPathTooLong(PathBuf),
    /// A live QEMU already owns this run directory.
    #[error("a QEMU process (pid {pid}) is already running in {run_dir}")]
    AlreadyRunning {
        /// Its pid.
        pid: u32,
        /// The run directory.
        run_dir: PathBuf,
    },
    /// QEMU exited with an error while starting.
    #[error("QEMU failed to start ({status}): {stderr}")]
    Start {
        /// Exit status of the launching process.
        status: String,
        /// What QEMU printed on stderr.
        stderr: String,
    },
    /// QEMU did not finish initialising in time.
    #[error("QEMU did not finish starting within {0:?}")]
    StartTimeout(Duration),
    /// No live QEMU of this run directory (adopt found none, or it died).
    #[error("no running VM in {run_dir}: {reason}")]
    NotRunning {
        /// The run directory.
        run_dir: PathBuf,
        /// Why it is considered not running.
        reason: String,
    },
    /// Talking QMP to the VM failed.
    #[error(transparent)]
    Qmp(#[from] QmpError),
    /// Sending a signal failed.
    #[error("kill pid {pid}: {source}")]
    Signal {
        /// The pid.
        pid: u32,
        /// The error from kill(2).
        source: nix::Error,
    },
    /// The process did not exit in time.
    #[error("QEMU (pid {0}) did not exit in time")]
    ExitTimeout(u32),
}

use mallee_util::proc_id::{ProcId, exited, proc_stat};

fn find_qemu(run_dir: &Path) -> Result<ProcId, String> {
    let pidfile = run_dir.join(PIDFILE);
    let text = std::fs::read_to_string(&pidfile)
        .map_err(|e| format!("cannot read {}: {e}", pidfile.display()))?;
    let pid: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{} holds {:?}, not a pid", pidfile.display(), text.trim()))?;
    let (state, start_time) = proc_stat(pid).ok_or_else(|| format!("pid {pid} is not running"))?;
    if exited(state) {
        return Err(format!("pid {pid} has exited"));
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map_err(|e| format!("cannot read the command line of pid {pid}: {e}"))?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let argv0 = String::from_utf8_lossy(args.first().copied().unwrap_or_default());
    if !argv0.contains("qemu-system") {
        return Err(format!("pid {pid} is {argv0}, not QEMU"));
    }
    let want = pidfile.as_os_str().as_encoded_bytes();
    if !args.windows(2).any(|w| w[0] == b"-pidfile" && w[1] == want) {
        return Err(format!(
            "pid {pid} is a QEMU of another run directory (no -pidfile {})",
            pidfile.display()
        ));
    }
    Ok(ProcId { pid, start_time })
}

fn canonical_run_dir(run_dir: &Path) -> Result<PathBuf, VmError> {
    run_dir.canonicalize().map_err(|source| VmError::Io {
        context: format!("run directory {}", run_dir.display()),
        source,
    })
}

/// A handle on a running QEMU process and its QMP connection.
///
/// Dropping the handle closes the QMP connection and leaves the VM running.
#[derive(Debug)]
pub struct RunningVm {
    run_dir: PathBuf,
    proc_id: ProcId,
    qmp: QmpClient,
}

impl RunningVm {
    /// Starts `spec` with [`QEMU_BINARY`] from `PATH`.
    pub async fn launch(spec: &VmSpec) -> Result<Self, VmError> {
        Self::launch_with(Path::new(QEMU_BINARY), spec).await
    }

    /// Starts `spec` with the given QEMU binary, detached from this process,
    /// and connects to its QMP socket. Returns once QEMU has initialised the
    /// machine (the guest is running).
    pub async fn launch_with(qemu: &Path, spec: &VmSpec) -> Result<Self, VmError> {
        Self::launch_prefixed(&[], qemu, spec).await
    }

    /// Like [`RunningVm::launch_with`], run through a command prefix that
    /// execs its arguments, e.g. `["ip", "netns", "exec", "NS"]` so the VM's
    /// taps are opened inside a network namespace. The prefix must `exec`
    /// QEMU (not keep a parent around it), so the pidfile names QEMU itself.
    pub async fn launch_prefixed(
        prefix: &[OsString],
        qemu: &Path,
        spec: &VmSpec,
    ) -> Result<Self, VmError> {
        spec.validate()?;
        let io = |context: String| move |source| VmError::Io { context, source };
        std::fs::create_dir_all(&spec.run_dir)
            .map_err(io(format!("create {}", spec.run_dir.display())))?;
        if let Some(parent) = spec
            .serial_log
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
        {
            std::fs::create_dir_all(parent).map_err(io(format!("create {}", parent.display())))?;
        }
        let run_dir = canonical_run_dir(&spec.run_dir)?;
        if let Ok(existing) = find_qemu(&run_dir) {
            return Err(VmError::AlreadyRunning {
                pid: existing.pid,
                run_dir,
            });
        }
        for stale in [PIDFILE, QMP_SOCKET] {
            match std::fs::remove_file(run_dir.join(stale)) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    return Err(io(format!("remove stale {stale}"))(e));
                }
                _ => {}
            }
        }
        let spec = VmSpec {
            run_dir: run_dir.clone(),
            ..spec.clone()
        };
        spec.validate()?;
        let args = argv(&spec);
        tracing::info!(
            name = %spec.name,
            accel = ?spec.accel,
            run_dir = %run_dir.display(),
            "starting QEMU"
        );
        tracing::debug!(?args, "QEMU command line");
        let mut command = match prefix.split_first() {
            Some((program, rest)) => {
                let mut c = tokio::process::Command::new(program);
                c.args(rest).arg(qemu);
                c
            }
            None => tokio::process::Command::new(qemu),
        };
        let child = command
            .args(&args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(io(format!("start {}", qemu.display())))?;
        let out = tokio::time::timeout(START_TIMEOUT, child.wait_with_output())
            .await
            .map_err(|_| VmError::StartTimeout(START_TIMEOUT))?
            .map_err(io(format!("wait for {}", qemu.display())))?;
        if !out.status.success() {
            let mut stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
            if stderr.is_empty() {
                stderr = String::from_utf8_lossy(&out.stdout).trim().to_owned();
            }
            return Err(VmError::Start {
                status: out.status.to_string(),
                stderr,
            });
        }
        let stderr = String::from_utf8_lossy(&out.stderr);
        if !stderr.trim().is_empty() {
            tracing::warn!(name = %spec.name, stderr = %stderr.trim(), "QEMU warnings at start");
        }
        let proc_id = find_qemu(&run_dir).map_err(|reason| VmError::NotRunning {
            run_dir: run_dir.clone(),
            reason: format!("QEMU exited right after starting: {reason}"),
        })?;
        let qmp = match QmpClient::connect(&run_dir.join(QMP_SOCKET)).await {
            Ok(q) => q,
            Err(e) => {
                // Do not leave a VM behind that nobody can control.
                let _ = send_kill(proc_id);
                return Err(e.into());
            }
        };
        tracing::info!(name = %spec.name, pid = proc_id.pid, "QEMU running");
        Ok(Self {
            run_dir,
            proc_id,
            qmp,
        })
    }

    /// Reconnects to the VM already running in `run_dir` (after an agent
    /// restart): reads the pidfile, checks that the pid is a live QEMU
    /// started with this run directory's pidfile, and connects to its QMP
    /// socket. Fails with [`VmError::NotRunning`] when there is no such VM.
    pub async fn adopt(run_dir: &Path) -> Result<Self, VmError> {
        let run_dir = canonical_run_dir(run_dir)?;
        let proc_id = find_qemu(&run_dir).map_err(|reason| VmError::NotRunning {
            run_dir: run_dir.clone(),
            reason,
        })?;
        let qmp = QmpClient::connect(&run_dir.join(QMP_SOCKET)).await?;
        tracing::info!(pid = proc_id.pid, run_dir = %run_dir.display(), "adopted running QEMU");
        Ok(Self {
            run_dir,
            proc_id,
            qmp,
        })
    }

    /// SIGKILLs the QEMU that owns `run_dir`, if there is one, without
    /// talking QMP (it may be wedged, or another client may hold the
    /// socket), and waits up to `timeout` for it to go. Returns its pid, or
    /// `None` when no live QEMU owns the directory.
    pub async fn kill_run_dir(run_dir: &Path, timeout: Duration) -> Result<Option<u32>, VmError> {
        let Ok(run_dir) = run_dir.canonicalize() else {
            return Ok(None);
        };
        let Ok(proc_id) = find_qemu(&run_dir) else {
            return Ok(None);
        };
        send_kill(proc_id)?;
        let deadline = tokio::time::Instant::now() + timeout;
        while proc_id.alive() {
            if tokio::time::Instant::now() >= deadline {
                return Err(VmError::ExitTimeout(proc_id.pid));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(Some(proc_id.pid))
    }

    /// The pid of the live QEMU that owns `run_dir`, if any.
    pub fn pid_in_run_dir(run_dir: &Path) -> Option<u32> {
        let run_dir = run_dir.canonicalize().ok()?;
        find_qemu(&run_dir).ok().map(|p| p.pid)
    }

    /// The QEMU process id.
    pub fn pid(&self) -> u32 {
        self.proc_id.pid
    }

    /// The (canonical) run directory.
    pub fn run_dir(&self) -> &Path {
        &self.run_dir
    }

    /// The QMP connection, for commands without a wrapper here (hot-plug,
    /// events: [`QmpClient::subscribe`]).
    pub fn qmp(&self) -> &QmpClient {
        &self.qmp
    }

    /// Whether the QEMU process is still alive (same pid and start time, not
    /// a zombie).
    pub fn is_alive(&self) -> bool {
        self.proc_id.alive()
    }

    /// `query-status` of the VM.
    pub async fn status(&self) -> Result<VmStatus, VmError> {
        Ok(self.qmp.query_status().await?)
    }

    /// Presses the ACPI power button; the guest shuts down if it listens.
    pub async fn powerdown(&self) -> Result<(), VmError> {
        Ok(self.qmp.system_powerdown().await?)
    }

    /// Hard-resets the guest.
    pub async fn reset(&self) -> Result<(), VmError> {
        Ok(self.qmp.system_reset().await?)
    }

    /// Pauses the vCPUs.
    pub async fn pause(&self) -> Result<(), VmError> {
        Ok(self.qmp.stop().await?)
    }

    /// Resumes paused vCPUs.
    pub async fn resume(&self) -> Result<(), VmError> {
        Ok(self.qmp.cont().await?)
    }

    /// Asks QEMU to exit now (QMP `quit`) and waits for the process to go.
    pub async fn quit(&self) -> Result<(), VmError> {
        self.qmp.quit().await?;
        self.wait_exit_timeout(Duration::from_secs(10)).await
    }

    /// SIGKILLs QEMU (if it is still this VM's process) and waits for it to go.
    pub async fn kill(&self) -> Result<(), VmError> {
        if self.is_alive() {
            send_kill(self.proc_id)?;
        }
        self.wait_exit_timeout(Duration::from_secs(10)).await
    }

    /// Resolves when the QEMU process has exited. Notices at once when the
    /// QMP connection drops (which it does when QEMU dies), and polls the
    /// process every 100 ms otherwise.
    pub async fn wait_exit(&self) {
        while self.is_alive() {
            if self.qmp.is_closed() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            } else {
                tokio::select! {
                    () = self.qmp.closed() => {}
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        }
    }

    /// [`RunningVm::wait_exit`] bounded by `timeout`.
    pub async fn wait_exit_timeout(&self, timeout: Duration) -> Result<(), VmError> {
        tokio::time::timeout(timeout, self.wait_exit())
            .await
            .map_err(|_| VmError::ExitTimeout(self.proc_id.pid))
    }
}

fn send_kill(id: ProcId) -> Result<(), VmError> {
    use nix::sys::signal::{Signal, kill};
    use nix::unistd::Pid;
    let raw = i32::try_from(id.pid).map_err(|_| VmError::Signal {
        pid: id.pid,
        source: nix::Error::EINVAL,
    })?;
    match kill(Pid::from_raw(raw), Signal::SIGKILL) {
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        Err(source) => Err(VmError::Signal {
            pid: id.pid,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proc_stat_of_self() {
        let me = std::process::id();
        let (state, start) = proc_stat(me).expect("own stat");
        assert_ne!(state, 'Z');
        assert!(
            ProcId {
                pid: me,
                start_time: start
            }
            .alive()
        );
        assert!(
            !ProcId {
                pid: me,
                start_time: start + 1
            }
            .alive()
        );
        // We are not QEMU.
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(PIDFILE), me.to_string()).expect("write");
        let err = find_qemu(dir.path()).expect_err("not qemu");
        assert!(err.contains("not QEMU"), "{err}");
    }
}
