//! What a VPC network needs of the host: whether a namespace or host link
//! exists, stopping a daemon it started (dnsmasq), and its state files.

use std::path::Path;
use std::time::Duration;

use mallee_util::durable;
use mallee_util::process::Cmd;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::NetworkError;

/// Whether the host namespace has a link called `name`.
pub(super) async fn host_link_exists(name: &str) -> bool {
    Cmd::new("ip")
        .args(["link", "show", "dev", name])
        .succeeds()
        .await
        .unwrap_or(false)
}

/// SIGTERM, then SIGKILL after two seconds.
pub(super) async fn stop_process(pid: i32) {
    let pid = Pid::from_raw(pid);
    if kill(pid, Signal::SIGTERM).is_err() {
        return;
    }
    for _ in 0..100 {
        if !process_alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = kill(pid, Signal::SIGKILL);
    for _ in 0..50 {
        if !process_alive(pid) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn process_alive(pid: Pid) -> bool {
    // dnsmasq is not our child (it daemonised), so it is reaped by init;
    // a zombie's state is `Z` until then.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

/// Whether network namespace `name` exists (as `ip netns` names them).
pub(super) fn namespace_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// Stores `bytes` at `path` durably (see [`durable::write_atomic`]).
pub(crate) async fn write_file(path: &Path, bytes: &[u8]) -> Result<(), NetworkError> {
    durable::write_atomic_async(path, bytes)
        .await
        .map_err(|source| NetworkError::Io {
            path: path.to_owned(),
            source,
        })
}

/// Removes `path`; one that is not there is fine.
pub(super) async fn remove_file_if_exists(path: &Path) -> Result<(), NetworkError> {
    match tokio::fs::remove_file(path).await {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(NetworkError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}
