//! Conflicts found, not suffered: before `mallee up`, `mallee controller`
//! and `mallee node join` start, they check that what they are about to
//! use belongs to no other cloud and is no leftover, and refuse with a
//! message naming the owner:
//!
//! - the data directory: one process at a time (a lock file holding the
//!   pid: `DATA/controller.lock`, `NODE_DIR/agent.lock`);
//! - the listening ports: the process holding one is named (its data
//!   directory when it is a mallee);
//! - the node's public range and bridge, and the VPC namespaces its state
//!   names (see [`mallee_node::network::owner`]); a claimed public bridge
//!   records its owner, so the next cloud can name it even after this
//!   one's data directory is deleted.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use mallee_node::network::PublicNetworkConfig;
use mallee_node::network::owner::{self, AGENT_LOCK, DirLock, Owner};

/// The lock a controller holds in its data directory.
const CONTROLLER_LOCK: &str = "controller.lock";

/// Locks held for the life of the process.
#[derive(Debug, Default)]
pub struct Claims {
    _locks: Vec<DirLock>,
}

impl Claims {
    /// Takes the controller's lock on `data_dir`.
    pub fn controller(&mut self, data_dir: &Path) -> Result<(), String> {
        std::fs::create_dir_all(data_dir)
            .map_err(|e| format!("cannot create {}: {e}", data_dir.display()))?;
        self._locks
            .push(DirLock::acquire(&data_dir.join(CONTROLLER_LOCK))?);
        Ok(())
    }

    /// Takes the node's lock on `node_dir`, checks the VPC namespaces its
    /// state names, and claims its public network.
    pub async fn node(
        &mut self,
        node_dir: &Path,
        node_id: &str,
        state_root: &Path,
        public: Option<&PublicNetworkConfig>,
    ) -> Result<(), String> {
        self._locks
            .push(DirLock::acquire(&node_dir.join(AGENT_LOCK))?);
        owner::check_namespaces(state_root)
            .await
            .map_err(|e| e.to_string())?;
        if let Some(public) = public {
            owner::claim_public(public, &Owner::node(node_id, node_dir))
                .await
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

/// Which protocol a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    Tcp,
    Udp,
}

/// Checks that each `(flag, address)` can be bound now; one in use is
/// refused naming the process holding it (port 0 is always free).
pub fn check_ports(ports: &[(&str, Proto, SocketAddr)]) -> Result<(), String> {
    for (flag, proto, addr) in ports {
        if addr.port() == 0 {
            continue;
        }
        let bound = match proto {
            Proto::Tcp => std::net::TcpListener::bind(addr).map(drop),
            Proto::Udp => std::net::UdpSocket::bind(addr).map(drop),
        };
        match bound {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => {
                let who = port_holder(*proto, addr.port())
                    .map_or_else(|| "another process".to_owned(), |h| h.describe());
                return Err(format!(
                    "{addr} ({flag}) is in use by {who}: give this one another {flag}"
                ));
            }
            // Not ours to judge (an address this host lacks, say): the
            // real bind reports it.
            Err(_) => {}
        }
    }
    Ok(())
}

/// A process listening on a port.
#[derive(Debug)]
struct PortHolder {
    pid: u32,
    args: Vec<String>,
    cwd: Option<PathBuf>,
    data_dir_env: Option<String>,
}

impl PortHolder {
    fn describe(&self) -> String {
        let program = self.args.first().map_or("?", String::as_str);
        let name = Path::new(program)
            .file_name()
            .map_or_else(|| program.to_owned(), |n| n.to_string_lossy().into_owned());
        if name != "mallee" && !name.starts_with("mallee-") {
            return format!("{name} (pid {})", self.pid);
        }
        let command = self.args.get(1).map_or("", String::as_str);
        let default = if command == "node" {
            "./mallee-node"
        } else {
            "./mallee-data"
        };
        let flag = self.args.iter().enumerate().find_map(|(i, a)| {
            a.strip_prefix("--data-dir=")
                .map(str::to_owned)
                .or_else(|| {
                    (a == "--data-dir")
                        .then(|| self.args.get(i + 1).cloned())
                        .flatten()
                })
        });
        let dir = flag
            .or_else(|| self.data_dir_env.clone())
            .unwrap_or_else(|| default.to_owned());
        let dir = match &self.cwd {
            Some(cwd) if Path::new(&dir).is_relative() => cwd.join(dir.trim_start_matches("./")),
            _ => PathBuf::from(dir),
        };
        format!(
            "mallee {command} (pid {}) of data directory {}",
            self.pid,
            dir.display()
        )
    }
}

/// The process with a listening socket on `port`, read from /proc.
fn port_holder(proto: Proto, port: u16) -> Option<PortHolder> {
    let (tables, listening) = match proto {
        Proto::Tcp => (["/proc/net/tcp", "/proc/net/tcp6"], "0A"),
        Proto::Udp => (["/proc/net/udp", "/proc/net/udp6"], "07"),
    };
    let inode = tables.iter().find_map(|table| {
        let text = std::fs::read_to_string(table).ok()?;
        text.lines().skip(1).find_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields.get(1)?.rsplit_once(':')?.1;
            let matches =
                u16::from_str_radix(local_port, 16).ok()? == port && *fields.get(3)? == listening;
            matches.then(|| fields.get(9).map(|s| (*s).to_owned()))?
        })
    })?;
    let target = format!("socket:[{inode}]");
    for entry in std::fs::read_dir("/proc").ok()?.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(entry.path().join("fd")) else {
            continue;
        };
        let holds = fds.filter_map(Result::ok).any(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|l| l.as_os_str() == target.as_str())
        });
        if !holds {
            continue;
        }
        let split = |bytes: Vec<u8>| -> Vec<String> {
            bytes
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect()
        };
        let args = split(std::fs::read(entry.path().join("cmdline")).unwrap_or_default());
        let data_dir_env = split(std::fs::read(entry.path().join("environ")).unwrap_or_default())
            .into_iter()
            .find_map(|v| v.strip_prefix("MALLEE_DATA_DIR=").map(str::to_owned));
        return Some(PortHolder {
            pid,
            args,
            cwd: std::fs::read_link(entry.path().join("cwd")).ok(),
            data_dir_env,
        });
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_names_its_process() {
        let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = held.local_addr().expect("addr");
        let err = check_ports(&[("--listen", Proto::Tcp, addr)]).expect_err("in use");
        assert!(err.contains("--listen"), "{err}");
        assert!(
            err.contains(&format!("pid {}", std::process::id())),
            "{err}"
        );
        drop(held);
        check_ports(&[("--listen", Proto::Tcp, addr)]).expect("free again");
    }

    #[test]
    fn a_mallee_holder_is_named_by_its_data_directory() {
        let holder = PortHolder {
            pid: 42,
            args: ["/usr/bin/mallee", "up", "--data-dir", "srv-data"]
                .map(str::to_owned)
                .to_vec(),
            cwd: Some(PathBuf::from("/home/a")),
            data_dir_env: None,
        };
        assert_eq!(
            holder.describe(),
            "mallee up (pid 42) of data directory /home/a/srv-data"
        );
        let by_env = PortHolder {
            args: vec!["mallee".into(), "controller".into()],
            data_dir_env: Some("/var/lib/mallee".into()),
            ..holder
        };
        assert_eq!(
            by_env.describe(),
            "mallee controller (pid 42) of data directory /var/lib/mallee"
        );
    }
}
