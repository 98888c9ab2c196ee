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

/// Disk image format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DiskFormat {
    /// Raw image.
    Raw,
    /// qcow2 image (its backing file, if any, is opened automatically).
    Qcow2,
}

impl DiskFormat {
    /// The QEMU block driver name.
    pub fn driver(self) -> &'static str {
        match self {
            Self::Raw => "raw",
            Self::Qcow2 => "qcow2",
        }
    }
}

/// How the guest boots.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Boot {
    /// Direct kernel boot (paravirtual images: aki kernel + ari ramdisk, the
    /// root disk among [`VmSpec::disks`], named in `cmdline`, e.g.
    /// `root=/dev/vda console=ttyS0`).
    Kernel {
        /// Kernel image.
        kernel: PathBuf,
        /// Initial ramdisk.
        initrd: Option<PathBuf>,
        /// Kernel command line.
        cmdline: String,
    },
    /// BIOS boot from the first disk (HVM images).
    Disk,
}

/// A virtio-blk disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disk {
    /// Where its data is.
    pub source: DiskSource,
    /// Attach read-only.
    pub read_only: bool,
    /// Block node name (the device is `<id>-dev`); `None`: `disk<N>` by
    /// position. Volumes use their own, so that the disk a VM was started
    /// with can be detached like a hot-plugged one.
    #[serde(default)]
    pub id: Option<String>,
    /// virtio-blk serial the guest sees (at most 20 bytes are kept), for
    /// `/dev/disk/by-id/virtio-<serial>`.
    #[serde(default)]
    pub serial: Option<String>,
}

/// Where a disk's data is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum DiskSource {
    /// An image file QEMU opens itself.
    File {
        /// Image file.
        path: PathBuf,
        /// Image format.
        format: DiskFormat,
    },
    /// An export of an NBD server, reached with QEMU's NBD client over TLS
    /// (the VM's [`NBD_TLS_OBJECT`]).
    Nbd(NbdSource),
}

impl DiskSource {
    /// An image file.
    pub fn file(path: impl Into<PathBuf>, format: DiskFormat) -> Self {
        Self::File {
            path: path.into(),
            format,
        }
    }
}

/// An NBD export as QEMU's NBD client reaches it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NbdSource {
    /// Where the server listens.
    pub server: NbdServer,
    /// The export's name.
    pub export: String,
    /// The name the server's certificate must carry (QEMU's
    /// `tls-hostname`): whatever the transport, the client talks TLS to
    /// the server itself and checks it is this one.
    pub tls_hostname: String,
    /// The client's credentials, a `tls-creds-x509` directory
    /// (`ca-cert.pem`, `client-cert.pem`, `client-key.pem`): loaded once
    /// per VM as [`NBD_TLS_OBJECT`], so every NBD disk of a VM names the
    /// same one.
    pub tls_dir: PathBuf,
}

/// Where an NBD server listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum NbdServer {
    /// A TCP address.
    Inet {
        /// Host name or IP address.
        host: String,
        /// TCP port.
        port: u16,
    },
    /// A Unix socket (a relay to the server, for a VM whose network
    /// namespace cannot reach it).
    Unix {
        /// The socket.
        path: PathBuf,
    },
}

/// Id of the `tls-creds-x509` object NBD disks use (one per VM).
pub const NBD_TLS_OBJECT: &str = "nbd-tls";

/// How long (seconds) QEMU's NBD client holds a disk's requests while it
/// reconnects after losing the server (`reconnect-delay`); after that they
/// fail and the guest sees I/O errors. A storage host restart (its
/// qemu-storage-daemon gone for up to ~30 s) must only stall the guest:
/// the client retries with a delay that doubles from 1 s to at most 16 s,
/// so after a 30 s outage it may take until ~47 s to get back in; 60 s
/// covers that, and stays below the 120 s after which a Linux guest
/// reports hung tasks (virtio-blk itself never times a request out).
pub const NBD_RECONNECT_DELAY_SECS: u64 = 60;

/// How long (seconds) QEMU's NBD client keeps trying to reach the server
/// when it opens a disk (`open-timeout`; 0 would give up after one try):
/// a VM starting, or a disk hot-plugged, while the storage host restarts
/// waits for it as a running disk does, within the 60 s a VM start may
/// take. (A hot-plug's `blockdev-add` blocks QEMU's main loop while it
/// waits, so this is not longer.)
pub const NBD_OPEN_TIMEOUT_SECS: u64 = 30;

/// The `virtio-blk-pci` device properties (without `driver` and `id`) for
/// block node `node_name`, as [`argv`] and a hot-plug both use them.
pub fn virtio_blk_props(node_name: &str, serial: Option<&str>) -> Value {
    let mut props = json!({"drive": node_name});
    if let Some(serial) = serial {
        props["serial"] = json!(serial);
    }
    props
}

/// What a NIC is connected to on the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum NicBackend {
    /// An existing tap device (created and bridged by the caller).
    Tap {
        /// The tap interface name.
        ifname: String,
    },
    /// QEMU user-mode networking (slirp), for tests only.
    User {
        /// Port forwards in QEMU syntax, e.g. `tcp:127.0.0.1:2222-:22`.
        hostfwd: Vec<String>,
    },
}

/// A virtio-net NIC.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Nic {
    /// Host side.
    pub backend: NicBackend,
    /// Guest MAC address, `xx:xx:xx:xx:xx:xx`.
    pub mac: String,
}

/// Everything needed to start one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmSpec {
    /// Name shown by QEMU (e.g. the instance id).
    pub name: String,
    /// Virtual CPUs.
    pub vcpus: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Accelerator (resolve `auto` first with [`crate::accel::AccelRequest::resolve`]).
    pub accel: Accel,
    /// CPU model; `None` means `host` under KVM and `max` under TCG.
    #[serde(default)]
    pub cpu_model: Option<String>,
    /// Boot method.
    pub boot: Boot,
    /// Disks in order (`/dev/vda`, `/dev/vdb`, ...).
    pub disks: Vec<Disk>,
    /// NICs in order.
    pub nics: Vec<Nic>,
    /// File that receives the serial console (truncated at start).
    pub serial_log: PathBuf,
    /// Directory for the QMP socket and pidfile (created if missing).
    pub run_dir: PathBuf,
    /// Keep QEMU alive after the guest powers off (`-no-shutdown`): the VM
    /// then reports [`crate::qmp::RunState::Shutdown`] until it is killed or
    /// quit, so a guest-initiated poweroff is still visible to an agent that
    /// was restarting when it happened.
    #[serde(default)]
    pub keep_on_shutdown: bool,
}

impl VmSpec {
    /// Checks what QEMU would otherwise reject late or misparse.
    pub fn validate(&self) -> Result<(), VmError> {
        let bad = |m: String| Err(VmError::InvalidSpec(m));
        if self.name.is_empty() || self.name.chars().any(char::is_control) {
            return bad(format!("bad name {:?}", self.name));
        }
        if self.vcpus == 0 || self.vcpus > 255 {
            return bad(format!("vcpus must be 1..=255, got {}", self.vcpus));
        }
        if self.memory_mib < 16 {
            return bad(format!(
                "memory must be at least 16 MiB, got {}",
                self.memory_mib
            ));
        }
        if matches!(self.boot, Boot::Disk) && self.disks.is_empty() {
            return bad("disk boot needs at least one disk".into());
        }
        let mut tls_dirs = self.disks.iter().filter_map(|d| match &d.source {
            DiskSource::Nbd(nbd) => Some(&nbd.tls_dir),
            DiskSource::File { .. } => None,
        });
        if let Some(first) = tls_dirs.next()
            && tls_dirs.any(|d| d != first)
        {
            return bad("the NBD disks of a VM must share one TLS directory".into());
        }
        for disk in &self.disks {
            if let DiskSource::Nbd(nbd) = &disk.source {
                if nbd.export.is_empty() || nbd.tls_hostname.is_empty() {
                    return bad(format!("NBD disk without export name or TLS name: {nbd:?}"));
                }
                if let NbdServer::Unix { path } = &nbd.server
                    && path.as_os_str().len() > MAX_SOCKET_PATH
                {
                    return Err(VmError::SocketPathTooLong(path.clone()));
                }
            }
        }
        for nic in &self.nics {
            if !valid_mac(&nic.mac) {
                return bad(format!("bad MAC address {:?}", nic.mac));
            }
            if let NicBackend::Tap { ifname } = &nic.backend
                && (ifname.is_empty() || ifname.len() > 15 || ifname.contains(['/', ' ', ',']))
            {
                return bad(format!("bad tap name {ifname:?}"));
            }
        }
        let sock = self.run_dir.join(QMP_SOCKET);
        if sock.as_os_str().len() > MAX_SOCKET_PATH {
            return Err(VmError::SocketPathTooLong(sock));
        }
        Ok(())
    }
}

fn valid_mac(mac: &str) -> bool {
    let parts: Vec<&str> = mac.split(':').collect();
    parts.len() == 6
        && parts
            .iter()
            .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()))
}

/// Escapes a value for QEMU's `key=value,...` option syntax (commas double).
fn opt_value(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// The `blockdev-add` / `-blockdev` JSON for an image file: a format node
/// named `node_name` on top of a `file` protocol node.
pub fn blockdev_json(node_name: &str, path: &Path, format: DiskFormat, read_only: bool) -> Value {
    json!({
        "driver": format.driver(),
        "node-name": node_name,
        "read-only": read_only,
        "file": {
            "driver": "file",
            "filename": path.display().to_string(),
            "read-only": read_only,
        },
    })
}

/// The `blockdev-add` / `-blockdev` JSON for an NBD export: QEMU's NBD
/// client as block node `node_name`, over TLS with the VM's
/// [`NBD_TLS_OBJECT`], checking the server's certificate name, holding
/// requests while it reconnects ([`NBD_RECONNECT_DELAY_SECS`]) and waiting
/// for the server at open ([`NBD_OPEN_TIMEOUT_SECS`]).
pub fn nbd_blockdev_json(node_name: &str, source: &NbdSource, read_only: bool) -> Value {
    let server = match &source.server {
        NbdServer::Inet { host, port } => {
            json!({"type": "inet", "host": host, "port": port.to_string()})
        }
        NbdServer::Unix { path } => json!({"type": "unix", "path": path.display().to_string()}),
    };
    json!({
        "driver": "nbd",
        "node-name": node_name,
        "read-only": read_only,
        "server": server,
        "export": source.export,
        "tls-creds": NBD_TLS_OBJECT,
        "tls-hostname": source.tls_hostname,
        "reconnect-delay": NBD_RECONNECT_DELAY_SECS,
        "open-timeout": NBD_OPEN_TIMEOUT_SECS,
    })
}

/// The `blockdev-add` / `-blockdev` JSON of `disk` as block node
/// `node_name` ([`blockdev_json`] or [`nbd_blockdev_json`]).
pub fn disk_blockdev_json(node_name: &str, disk: &Disk) -> Value {
    match &disk.source {
        DiskSource::File { path, format } => {
            blockdev_json(node_name, path, *format, disk.read_only)
        }
        DiskSource::Nbd(nbd) => nbd_blockdev_json(node_name, nbd, disk.read_only),
    }
}

/// The `object-add` arguments (and `-object` JSON) of the NBD client's
/// TLS credentials in `dir` ([`NBD_TLS_OBJECT`]; a disk's
/// [`NbdSource::tls_dir`]). The client always checks the server's
/// certificate against the CA in `dir`.
pub fn nbd_tls_object_json(dir: &Path) -> Value {
    json!({
        "qom-type": "tls-creds-x509",
        "id": NBD_TLS_OBJECT,
        "dir": dir.display().to_string(),
        "endpoint": "client",
    })
}

/// The QEMU command line (without the binary) for `spec`, including
/// `-daemonize` and the pidfile/QMP socket in `spec.run_dir`.
///
/// Pure: it touches no files. Call [`VmSpec::validate`] first.
pub fn argv(spec: &VmSpec) -> Vec<OsString> {
    let mut a: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| a.extend(items.iter().map(OsString::from));
    let name = spec.name.replace(',', ",,");
    push(&["-name", &format!("guest={name},debug-threads=on")]);
    let (accel, default_cpu) = match spec.accel {
        Accel::Kvm => ("kvm", "host"),
        Accel::Tcg => ("tcg", "max"),
    };
    push(&["-machine", &format!("pc,accel={accel}")]);
    push(&["-cpu", spec.cpu_model.as_deref().unwrap_or(default_cpu)]);
    push(&["-smp", &spec.vcpus.to_string()]);
    push(&["-m", &format!("{}M", spec.memory_mib)]);
    push(&["-nodefaults", "-no-user-config", "-display", "none"]);
    push(&[
        "-chardev",
        &format!("file,id=serial0,path={}", opt_value(&spec.serial_log)),
        "-serial",
        "chardev:serial0",
    ]);
    push(&[
        "-chardev",
        &format!(
            "socket,id=qmp,path={},server=on,wait=off",
            opt_value(&spec.run_dir.join(QMP_SOCKET))
        ),
        "-mon",
        "chardev=qmp,mode=control",
    ]);
    if spec.keep_on_shutdown {
        push(&["-no-shutdown"]);
    }
    push(&[
        "-device",
        &json!({"driver": "virtio-rng-pci", "id": "rng0"}).to_string(),
    ]);
    if let Boot::Kernel {
        kernel,
        initrd,
        cmdline,
    } = &spec.boot
    {
        a.push("-kernel".into());
        a.push(kernel.clone().into());
        if let Some(initrd) = initrd {
            a.push("-initrd".into());
            a.push(initrd.clone().into());
        }
        a.push("-append".into());
        a.push(cmdline.into());
    }
    if let Some(nbd) = spec.disks.iter().find_map(|d| match &d.source {
        DiskSource::Nbd(nbd) => Some(nbd),
        DiskSource::File { .. } => None,
    }) {
        a.push("-object".into());
        a.push(nbd_tls_object_json(&nbd.tls_dir).to_string().into());
    }
    for (i, disk) in spec.disks.iter().enumerate() {
        let node = disk.id.clone().unwrap_or_else(|| format!("disk{i}"));
        let mut dev = virtio_blk_props(&node, disk.serial.as_deref());
        dev["driver"] = json!("virtio-blk-pci");
        dev["id"] = json!(format!("{node}-dev"));
        if i == 0 && spec.boot == Boot::Disk {
            dev["bootindex"] = json!(0);
        }
        a.push("-blockdev".into());
        a.push(disk_blockdev_json(&node, disk).to_string().into());
        a.push("-device".into());
        a.push(dev.to_string().into());
    }
    for (i, nic) in spec.nics.iter().enumerate() {
        let id = format!("net{i}");
        let netdev = match &nic.backend {
            NicBackend::Tap { ifname } => json!({
                "type": "tap", "id": id, "ifname": ifname, "script": "no", "downscript": "no",
            }),
            NicBackend::User { hostfwd } => {
                let mut n = json!({"type": "user", "id": id});
                if !hostfwd.is_empty() {
                    n["hostfwd"] = hostfwd.iter().map(|h| json!({"str": h})).collect();
                }
                n
            }
        };
        a.push("-netdev".into());
        a.push(netdev.to_string().into());
        a.push("-device".into());
        a.push(
            json!({"driver": "virtio-net-pci", "netdev": id, "mac": nic.mac, "id": format!("{id}-dev")})
                .to_string()
                .into(),
        );
    }
    a.push("-pidfile".into());
    a.push(spec.run_dir.join(PIDFILE).into());
    a.push("-daemonize".into());
    a
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

    fn spec() -> VmSpec {
        VmSpec {
            name: "i-0123456789abcdef0".into(),
            vcpus: 2,
            memory_mib: 512,
            accel: Accel::Tcg,
            cpu_model: None,
            boot: Boot::Kernel {
                kernel: "/img/vmlinuz".into(),
                initrd: Some("/img/initrd.img".into()),
                cmdline: "root=/dev/vda console=ttyS0".into(),
            },
            disks: vec![Disk {
                source: DiskSource::file("/inst/root.qcow2", DiskFormat::Qcow2),
                read_only: false,
                id: None,
                serial: None,
            }],
            nics: vec![Nic {
                backend: NicBackend::Tap {
                    ifname: "tap-abc".into(),
                },
                mac: "d0:0d:12:34:56:78".into(),
            }],
            serial_log: "/inst/console.log".into(),
            run_dir: "/run/i-1".into(),
            keep_on_shutdown: false,
        }
    }

    fn strings(a: &[OsString]) -> Vec<String> {
        a.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    /// Arguments as JSON values: JSON arguments parsed (so key order does
    /// not matter), the others as strings.
    fn values<S: AsRef<str>>(a: &[S]) -> Vec<Value> {
        a.iter()
            .map(|s| {
                let s = s.as_ref();
                if s.starts_with('{') {
                    serde_json::from_str(s).expect("JSON argument")
                } else {
                    Value::String(s.to_owned())
                }
            })
            .collect()
    }

    #[test]
    fn kernel_boot_argv_is_exact() {
        let got = strings(&argv(&spec()));
        let want = [
            "-name",
            "guest=i-0123456789abcdef0,debug-threads=on",
            "-machine",
            "pc,accel=tcg",
            "-cpu",
            "max",
            "-smp",
            "2",
            "-m",
            "512M",
            "-nodefaults",
            "-no-user-config",
            "-display",
            "none",
            "-chardev",
            "file,id=serial0,path=/inst/console.log",
            "-serial",
            "chardev:serial0",
            "-chardev",
            "socket,id=qmp,path=/run/i-1/qmp.sock,server=on,wait=off",
            "-mon",
            "chardev=qmp,mode=control",
            "-device",
            r#"{"driver":"virtio-rng-pci","id":"rng0"}"#,
            "-kernel",
            "/img/vmlinuz",
            "-initrd",
            "/img/initrd.img",
            "-append",
            "root=/dev/vda console=ttyS0",
            "-blockdev",
            r#"{"driver":"qcow2","file":{"driver":"file","filename":"/inst/root.qcow2","read-only":false},"node-name":"disk0","read-only":false}"#,
            "-device",
            r#"{"drive":"disk0","driver":"virtio-blk-pci","id":"disk0-dev"}"#,
            "-netdev",
            r#"{"downscript":"no","id":"net0","ifname":"tap-abc","script":"no","type":"tap"}"#,
            "-device",
            r#"{"driver":"virtio-net-pci","id":"net0-dev","mac":"d0:0d:12:34:56:78","netdev":"net0"}"#,
            "-pidfile",
            "/run/i-1/qemu.pid",
            "-daemonize",
        ];
        assert_eq!(values(&got), values(&want));
    }

    #[test]
    fn disk_boot_kvm_argv() {
        let mut s = spec();
        s.boot = Boot::Disk;
        s.accel = Accel::Kvm;
        s.keep_on_shutdown = true;
        s.disks.push(Disk {
            source: DiskSource::file("/vol/data,1.raw", DiskFormat::Raw),
            read_only: true,
            id: None,
            serial: None,
        });
        s.disks.push(Disk {
            source: DiskSource::file("/vol/vol-1.qcow2", DiskFormat::Qcow2),
            read_only: false,
            id: Some("vol-1".into()),
            serial: Some("vol1".into()),
        });
        s.serial_log = "/odd,dir/console.log".into();
        s.nics = vec![Nic {
            backend: NicBackend::User {
                hostfwd: vec!["tcp:127.0.0.1:2222-:22".into()],
            },
            mac: "52:54:00:00:00:01".into(),
        }];
        let got = strings(&argv(&s));
        let joined = got.join(" ");
        assert!(joined.contains("-machine pc,accel=kvm -cpu host"));
        assert!(!got.iter().any(|a| a == "-kernel" || a == "-append"));
        assert!(got.iter().any(|a| a == "-no-shutdown"));
        assert!(joined.contains("file,id=serial0,path=/odd,,dir/console.log"));
        let vals = values(&got);
        for want in [
            json!({"bootindex": 0, "drive": "disk0", "driver": "virtio-blk-pci", "id": "disk0-dev"}),
            json!({"driver": "raw", "node-name": "disk1", "read-only": true,
                   "file": {"driver": "file", "filename": "/vol/data,1.raw", "read-only": true}}),
            json!({"drive": "disk1", "driver": "virtio-blk-pci", "id": "disk1-dev"}),
            json!({"driver": "qcow2", "node-name": "vol-1", "read-only": false,
                   "file": {"driver": "file", "filename": "/vol/vol-1.qcow2", "read-only": false}}),
            json!({"drive": "vol-1", "driver": "virtio-blk-pci", "id": "vol-1-dev", "serial": "vol1"}),
            json!({"hostfwd": [{"str": "tcp:127.0.0.1:2222-:22"}], "id": "net0", "type": "user"}),
        ] {
            assert!(vals.contains(&want), "missing {want} in {joined}");
        }
        s.cpu_model = Some("qemu64".into());
        assert!(strings(&argv(&s)).join(" ").contains("-cpu qemu64"));
    }

    fn nbd_disk(server: NbdServer) -> Disk {
        Disk {
            source: DiskSource::Nbd(NbdSource {
                server,
                export: "vol-1".into(),
                tls_hostname: "st-1.node.mallee-cluster".into(),
                tls_dir: "/data/tls/nbd-client".into(),
            }),
            read_only: false,
            id: Some("vol-1".into()),
            serial: Some("vol1".into()),
        }
    }

    #[test]
    fn nbd_blockdev_is_exact() {
        let tcp = nbd_disk(NbdServer::Inet {
            host: "10.0.0.5".into(),
            port: 10809,
        });
        let DiskSource::Nbd(source) = &tcp.source else {
            panic!("an NBD disk");
        };
        assert_eq!(
            nbd_blockdev_json("vol-1", source, true),
            json!({
                "driver": "nbd",
                "node-name": "vol-1",
                "read-only": true,
                "server": {"type": "inet", "host": "10.0.0.5", "port": "10809"},
                "export": "vol-1",
                "tls-creds": "nbd-tls",
                "tls-hostname": "st-1.node.mallee-cluster",
                "reconnect-delay": 60,
                "open-timeout": 30,
            })
        );
        let relayed = nbd_disk(NbdServer::Unix {
            path: "/run/mallee/ab/nbd/vol-1.sock".into(),
        });
        assert_eq!(
            disk_blockdev_json("vol-1", &relayed)["server"],
            json!({"type": "unix", "path": "/run/mallee/ab/nbd/vol-1.sock"})
        );
        assert_eq!(
            nbd_tls_object_json(Path::new("/data/tls/nbd-client")),
            json!({"qom-type": "tls-creds-x509", "id": "nbd-tls",
                   "dir": "/data/tls/nbd-client", "endpoint": "client"})
        );
        // A file disk is what blockdev_json makes.
        let file = Disk {
            source: DiskSource::file("/v/a.qcow2", DiskFormat::Qcow2),
            read_only: false,
            id: None,
            serial: None,
        };
        assert_eq!(
            disk_blockdev_json("disk0", &file),
            blockdev_json("disk0", Path::new("/v/a.qcow2"), DiskFormat::Qcow2, false)
        );
    }

    #[test]
    fn nbd_disks_argv() {
        let mut s = spec();
        // Without NBD disks, no TLS object.
        assert!(!strings(&argv(&s)).iter().any(|a| a == "-object"));
        s.disks.push(nbd_disk(NbdServer::Inet {
            host: "10.0.0.5".into(),
            port: 10809,
        }));
        s.disks.push(Disk {
            id: Some("vol-2".into()),
            ..nbd_disk(NbdServer::Unix {
                path: "/run/r/vol-2.sock".into(),
            })
        });
        assert!(s.validate().is_ok());
        let got = strings(&argv(&s));
        let objects: Vec<&String> = got
            .windows(2)
            .filter(|w| w[0] == "-object")
            .map(|w| &w[1])
            .collect();
        assert_eq!(objects.len(), 1, "one TLS object: {got:?}");
        let vals = values(&got);
        // The TLS object comes before the disks that use it.
        let object_at = vals
            .iter()
            .position(|v| v["qom-type"] == "tls-creds-x509")
            .expect("TLS object");
        let nbd_at = vals
            .iter()
            .position(|v| v["driver"] == "nbd")
            .expect("NBD blockdev");
        assert!(object_at < nbd_at);
        for want in [
            json!({"qom-type": "tls-creds-x509", "id": "nbd-tls",
                   "dir": "/data/tls/nbd-client", "endpoint": "client"}),
            json!({"driver": "nbd", "node-name": "vol-1", "read-only": false,
                   "server": {"type": "inet", "host": "10.0.0.5", "port": "10809"},
                   "export": "vol-1", "tls-creds": "nbd-tls",
                   "tls-hostname": "st-1.node.mallee-cluster",
                   "reconnect-delay": 60, "open-timeout": 30}),
            json!({"drive": "vol-1", "driver": "virtio-blk-pci", "id": "vol-1-dev", "serial": "vol1"}),
            json!({"driver": "nbd", "node-name": "vol-2", "read-only": false,
                   "server": {"type": "unix", "path": "/run/r/vol-2.sock"},
                   "export": "vol-1", "tls-creds": "nbd-tls",
                   "tls-hostname": "st-1.node.mallee-cluster",
                   "reconnect-delay": 60, "open-timeout": 30}),
        ] {
            assert!(vals.contains(&want), "missing {want} in {got:?}");
        }
        // One TLS object: one directory.
        if let DiskSource::Nbd(nbd) = &mut s.disks[2].source {
            nbd.tls_dir = "/elsewhere".into();
        }
        assert!(matches!(s.validate(), Err(VmError::InvalidSpec(_))));
        let text = serde_json::to_string(&s).expect("serialize");
        assert_eq!(
            serde_json::from_str::<VmSpec>(&text).expect("deserialize"),
            s
        );
    }

    #[test]
    fn validate_rejects_bad_specs() {
        assert!(spec().validate().is_ok());
        let mut s = spec();
        s.nics[0].mac = "d0:0d:12:34:56".into();
        assert!(matches!(s.validate(), Err(VmError::InvalidSpec(_))));
        let mut s = spec();
        s.vcpus = 0;
        assert!(s.validate().is_err());
        let mut s = spec();
        s.boot = Boot::Disk;
        s.disks.clear();
        assert!(s.validate().is_err());
        let mut s = spec();
        s.run_dir = PathBuf::from(format!("/{}", "x".repeat(100)));
        assert!(matches!(s.validate(), Err(VmError::SocketPathTooLong(_))));
    }

    #[test]
    fn spec_round_trips_as_json() {
        let s = spec();
        let text = serde_json::to_string(&s).expect("serialize");
        let back: VmSpec = serde_json::from_str(&text).expect("deserialize");
        assert_eq!(back, s);
    }

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
