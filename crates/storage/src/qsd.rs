//! One qemu-storage-daemon (QSD) per export: its command line ([`argv`]),
//! starting it detached ([`launch`]), finding it again from its pidfile
//! ([`find`]), stopping it ([`stop`]) and killing every one of a run
//! directory ([`kill_all`]).
//!
//! The QSD runs with `--daemonize`: it forks, and its parent exits once the
//! NBD server listens and the pidfile is written, so it is never a child of
//! the agent and outlives it. A process is known by its pid *and* its start
//! time (`/proc/PID/stat`), and is only taken for a volume's QSD when its
//! command line names that volume's pidfile, so a recycled pid is never
//! mistaken for it.

use std::ffi::OsString;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mallee_pki::PeerName;
use mallee_qemu::QmpClient;

use crate::exports::ExportError;

/// How long a QSD may take to start (its parent exits once it serves).
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long [`stop`] lets a QSD take to quit: it writes back what the
/// image still has dirty first, which a slow disk may take a while for.
const QUIT_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a SIGKILLed QSD may take to go.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long [`stop`] waits for the QMP greeting: a snapshot may hold the
/// only QMP connection, and then SIGTERM (which QSD treats as `quit`) does.
const QMP_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest Unix socket path the kernel accepts (`sun_path` minus the NUL).
pub(crate) const MAX_SOCKET_PATH: usize = 107;

/// The QSD's `authz-simple` identity of a client certificate: the subject
/// DN as GnuTLS prints it (`gnutls_x509_crt_get_dn`), which for the
/// cluster's certificates (a CN only) is `CN=<node-id>.node.mallee-cluster`.
pub fn client_identity(node: &PeerName) -> String {
    format!("CN={}", node.dns_name())
}

/// Everything one QSD's command line names.
#[derive(Debug, Clone)]
pub(crate) struct QsdSpec<'a> {
    /// The volume: NBD export name, block node name, file names.
    pub volume_id: &'a str,
    /// The qcow2 file (absolute: the daemon changes directory to `/`).
    pub image: &'a Path,
    /// The server's `tls-creds-x509` directory (absolute).
    pub tls_dir: &'a Path,
    /// The one client admitted, as [`client_identity`] spells it.
    pub identity: &'a str,
    /// Listening address and port.
    pub bind: IpAddr,
    /// Listening port.
    pub port: u16,
    /// Directory of the pidfile and QMP socket (absolute).
    pub run_dir: &'a Path,
}

/// The volume's pidfile in `run_dir`.
pub(crate) fn pidfile(run_dir: &Path, volume_id: &str) -> PathBuf {
    run_dir.join(format!("{volume_id}.pid"))
}

/// The volume's QMP socket in `run_dir`.
pub(crate) fn qmp_socket(run_dir: &Path, volume_id: &str) -> PathBuf {
    run_dir.join(format!("{volume_id}.qmp"))
}

/// The name of the `file` protocol node under the volume's qcow2 node.
fn file_node(volume_id: &str) -> String {
    format!("{volume_id}-file")
}

/// Escapes a value for QEMU's `key=value,...` option syntax (commas double).
fn opt(p: &Path) -> String {
    p.display().to_string().replace(',', ",,")
}

/// The QSD command line (without the binary) for `spec`. Pure.
///
/// - TLS with `verify-peer=on`: the client must present a certificate from
///   the cluster CA (the server's `ca-cert.pem`), and `authz-simple` admits
///   only the one whose DN is `spec.identity`.
/// - The image through the host page cache (`cache.direct=off`, which works
///   on every file system) with flushes honoured (`cache.no-flush=off`): a
///   guest's flush arrives as an NBD flush and becomes an `fdatasync` of
///   the file. `discard=unmap` lets a guest's trim free qcow2 clusters and
///   punch holes in the file.
/// - The qcow2 node is named after the volume, so a snapshot's backup job
///   over QMP names the same node the VM's QEMU used to.
pub(crate) fn argv(spec: &QsdSpec<'_>) -> Vec<OsString> {
    let vol = spec.volume_id;
    let file = file_node(vol);
    let host = match spec.bind {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => a.to_string(),
    };
    [
        "--object".to_owned(),
        format!(
            "tls-creds-x509,id=tls0,dir={},endpoint=server,verify-peer=on",
            opt(spec.tls_dir)
        ),
        "--object".to_owned(),
        format!(
            "authz-simple,id=authz0,identity={}",
            spec.identity.replace(',', ",,")
        ),
        "--blockdev".to_owned(),
        format!(
            "driver=file,node-name={file},filename={},cache.direct=off,cache.no-flush=off,discard=unmap",
            opt(spec.image)
        ),
        "--blockdev".to_owned(),
        format!("driver=qcow2,node-name={vol},file={file},discard=unmap"),
        "--nbd-server".to_owned(),
        format!(
            "addr.type=inet,addr.host={host},addr.port={},tls-creds=tls0,tls-authz=authz0",
            spec.port
        ),
        "--export".to_owned(),
        format!("type=nbd,id={vol},node-name={vol},name={vol},writable=on"),
        "--chardev".to_owned(),
        format!(
            "socket,id=qmp,path={},server=on,wait=off",
            opt(&qmp_socket(spec.run_dir, vol))
        ),
        "--monitor".to_owned(),
        "chardev=qmp".to_owned(),
        "--pidfile".to_owned(),
        pidfile(spec.run_dir, vol).display().to_string(),
        "--daemonize".to_owned(),
    ]
    .into_iter()
    .map(OsString::from)
    .collect()
}

pub(crate) use mallee_util::proc_id::ProcId;
use mallee_util::proc_id::{exited, proc_stat};

/// The live QSD that owns `pidfile`: the pid it names, alive, started with
/// `--pidfile <pidfile>`, and, when `known` is that pid, started at the
/// same time as `known`. Why not, otherwise.
pub(crate) fn find(pidfile: &Path, known: Option<ProcId>) -> Result<ProcId, String> {
    let text = std::fs::read_to_string(pidfile)
        .map_err(|e| format!("cannot read {}: {e}", pidfile.display()))?;
    let pid: u32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{} holds {:?}, not a pid", pidfile.display(), text.trim()))?;
    let (state, start_time) = proc_stat(pid).ok_or_else(|| format!("pid {pid} is not running"))?;
    if exited(state) {
        return Err(format!("pid {pid} has exited"));
    }
    if let Some(known) = known
        && known.pid == pid
        && known.start_time != start_time
    {
        return Err(format!(
            "pid {pid} is another process now (other start time)"
        ));
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline"))
        .map_err(|e| format!("cannot read the command line of pid {pid}: {e}"))?;
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let want = pidfile.as_os_str().as_encoded_bytes();
    if !args
        .windows(2)
        .any(|w| w[0] == b"--pidfile" && w[1] == want)
    {
        return Err(format!(
            "pid {pid} is not a qemu-storage-daemon with --pidfile {}",
            pidfile.display()
        ));
    }
    Ok(ProcId { pid, start_time })
}

/// Starts `qsd` for `spec` detached and returns the daemon's identity once
/// it serves. Stale pidfile and socket are removed first; the caller makes
/// sure no live QSD owns them.
pub(crate) async fn launch(qsd: &Path, spec: &QsdSpec<'_>) -> Result<ProcId, ExportError> {
    let pidfile = pidfile(spec.run_dir, spec.volume_id);
    for stale in [pidfile.clone(), qmp_socket(spec.run_dir, spec.volume_id)] {
        remove_if_present(&stale)?;
    }
    let args = argv(spec);
    tracing::debug!(?args, "qemu-storage-daemon command line");
    let child = tokio::process::Command::new(qsd)
        .args(&args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| ExportError::Io {
            context: format!("start {}", qsd.display()),
            source,
        })?;
    let qsd_error = |message: String| ExportError::Qsd {
        volume_id: spec.volume_id.to_owned(),
        message,
    };
    let out = tokio::time::timeout(START_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| qsd_error(format!("not serving after {} s", START_TIMEOUT.as_secs())))?
        .map_err(|source| ExportError::Io {
            context: format!("wait for {}", qsd.display()),
            source,
        })?;
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    if !out.status.success() {
        let said = if stderr.is_empty() {
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        } else {
            stderr
        };
        return Err(qsd_error(format!("{}: {said}", out.status)));
    }
    if !stderr.is_empty() {
        tracing::warn!(volume = spec.volume_id, %stderr, "qemu-storage-daemon warnings at start");
    }
    find(&pidfile, None)
        .map_err(|reason| qsd_error(format!("exited right after starting: {reason}")))
}

/// Ends a QSD cleanly: QMP `quit` (or SIGTERM when QMP does not answer,
/// which QSD handles the same way). Either way it closes its block nodes
/// before exiting, which flushes the qcow2 caches and `fdatasync`s the
/// image. Waits for the process to go; SIGKILLs it if it does not.
pub(crate) async fn stop(id: ProcId, qmp: &Path) -> Result<(), ExportError> {
    let quit = async {
        let client = QmpClient::connect_timeout(qmp, QMP_TIMEOUT).await?;
        client.quit().await
    };
    match quit.await {
        Ok(()) => {}
        Err(e) => {
            tracing::warn!(pid = id.pid, error = %e, "QMP quit failed; sending SIGTERM");
            signal(id, nix::sys::signal::Signal::SIGTERM)?;
        }
    }
    if wait_exit(id, QUIT_TIMEOUT).await {
        return Ok(());
    }
    tracing::warn!(pid = id.pid, "qemu-storage-daemon did not exit; killing it");
    kill(id).await
}

/// SIGKILLs the process and waits for it to go.
pub(crate) async fn kill(id: ProcId) -> Result<(), ExportError> {
    signal(id, nix::sys::signal::Signal::SIGKILL)?;
    if wait_exit(id, KILL_TIMEOUT).await {
        Ok(())
    } else {
        Err(ExportError::ExitTimeout(id.pid))
    }
}

/// Waits up to `timeout` for the process to exit; whether it did.
async fn wait_exit(id: ProcId, timeout: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while id.alive() {
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
}

fn signal(id: ProcId, signal: nix::sys::signal::Signal) -> Result<(), ExportError> {
    use nix::unistd::Pid;
    let failed = |source| ExportError::Signal {
        pid: id.pid,
        source,
    };
    let raw = i32::try_from(id.pid).map_err(|_| failed(nix::Error::EINVAL))?;
    if !id.alive() {
        return Ok(());
    }
    match nix::sys::signal::kill(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::Error::ESRCH) => Ok(()),
        Err(source) => Err(failed(source)),
    }
}

/// Removes `path`; a missing file is fine.
pub(crate) fn remove_if_present(path: &Path) -> Result<(), ExportError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ExportError::Io {
            context: format!("remove {}", path.display()),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// SIGKILLs every live QSD whose pidfile is in `run_dir` (for `mallee
/// purge` and tests), without QMP, and waits for each to go. Records are
/// left alone: an [`crate::Exports::open`] afterwards starts them again.
/// Returns the pids killed.
pub async fn kill_all(run_dir: &Path) -> Result<Vec<u32>, ExportError> {
    let Ok(run_dir) = run_dir.canonicalize() else {
        return Ok(Vec::new());
    };
    let entries = std::fs::read_dir(&run_dir).map_err(|source| ExportError::Io {
        context: format!("list {}", run_dir.display()),
        source,
    })?;
    let mut killed = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "pid") {
            continue;
        }
        if let Ok(id) = find(&path, None) {
            kill(id).await?;
            killed.push(id.pid);
        }
    }
    Ok(killed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_is_exact() {
        let spec = QsdSpec {
            volume_id: "vol-0123456789abcdef0",
            image: Path::new("/var/lib/mallee/vol,1.qcow2"),
            tls_dir: Path::new("/var/lib/mallee/tls"),
            identity: "CN=nd-1.node.mallee-cluster",
            bind: "10.0.0.5".parse().expect("ip"),
            port: 10810,
            run_dir: Path::new("/run/mallee"),
        };
        let got: Vec<String> = argv(&spec)
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let want = [
            "--object",
            "tls-creds-x509,id=tls0,dir=/var/lib/mallee/tls,endpoint=server,verify-peer=on",
            "--object",
            "authz-simple,id=authz0,identity=CN=nd-1.node.mallee-cluster",
            "--blockdev",
            "driver=file,node-name=vol-0123456789abcdef0-file,filename=/var/lib/mallee/vol,,1.qcow2,\
             cache.direct=off,cache.no-flush=off,discard=unmap",
            "--blockdev",
            "driver=qcow2,node-name=vol-0123456789abcdef0,file=vol-0123456789abcdef0-file,discard=unmap",
            "--nbd-server",
            "addr.type=inet,addr.host=10.0.0.5,addr.port=10810,tls-creds=tls0,tls-authz=authz0",
            "--export",
            "type=nbd,id=vol-0123456789abcdef0,node-name=vol-0123456789abcdef0,\
             name=vol-0123456789abcdef0,writable=on",
            "--chardev",
            "socket,id=qmp,path=/run/mallee/vol-0123456789abcdef0.qmp,server=on,wait=off",
            "--monitor",
            "chardev=qmp",
            "--pidfile",
            "/run/mallee/vol-0123456789abcdef0.pid",
            "--daemonize",
        ];
        assert_eq!(got, want);
        assert_eq!(
            client_identity(&PeerName::node("nd-1").expect("name")),
            "CN=nd-1.node.mallee-cluster"
        );
    }

    #[test]
    fn a_process_is_known_by_pid_and_start_time() {
        let me = std::process::id();
        let (_, start_time) = proc_stat(me).expect("own stat");
        assert!(
            ProcId {
                pid: me,
                start_time
            }
            .alive()
        );
        assert!(
            !ProcId {
                pid: me,
                start_time: start_time + 1
            }
            .alive()
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let pidfile = dir.path().join("vol-1.pid");
        std::fs::write(&pidfile, format!("{me}\n")).expect("write");
        // This test process is alive but was not started with this pidfile.
        let why = find(&pidfile, None).expect_err("not a QSD");
        assert!(why.contains("--pidfile"), "{why}");
        let why = find(
            &pidfile,
            Some(ProcId {
                pid: me,
                start_time: start_time + 1,
            }),
        )
        .expect_err("recycled");
        assert!(why.contains("start time"), "{why}");
    }
}
