//! A lab: a provisioning network in its own network namespace (a bridge
//! with the provisioning address) and QEMU machines with empty disks whose
//! NICs are taps on that bridge. Nothing in it routes anywhere: the
//! machines reach only the provisioning address.
//!
//! A lab outlives the process that made it when it is saved
//! ([`Lab::save`]): `mallee metal lab up` builds one for a controller that
//! starts later, and `mallee metal lab down` loads it ([`Lab::load`]) and
//! removes it. Everything it made is in the namespace (the bridge and the
//! taps, the QEMUs started there by the qemu power driver, the dnsmasq the
//! controller runs there) or under its directory.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mallee_qemu::RunningVm;
use mallee_util::process::{self, ProcessError};
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;
use serde::{Deserialize, Serialize};

use crate::netboot::ProvisioningNetwork;
use crate::power::QemuMachine;

/// Errors building or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command (`ip`, `qemu-img`) could not run or failed.
    #[error("{0}")]
    Command(#[from] ProcessError),
    /// A saved lab could not be read or written.
    #[error("{path}: {reason}")]
    State {
        /// The state file.
        path: String,
        /// Why.
        reason: String,
    },
    /// A file could not be made.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why.
        source: std::io::Error,
    },
}

async fn run(program: &str, args: &[&str]) -> Result<(), LabError> {
    process::run(program, args).await?;
    Ok(())
}

/// A provisioning network in a namespace, and its machines.
#[derive(Debug, Serialize, Deserialize)]
pub struct Lab {
    /// The namespace.
    pub netns: String,
    /// The bridge in it.
    pub bridge: String,
    /// The provisioning address on the bridge.
    pub address: Ipv4Addr,
    /// Its prefix length.
    pub prefix: u8,
    /// Where disks, run directories and state go.
    pub dir: PathBuf,
    /// Accelerator of the machines added from now on (`tcg` or `kvm`).
    #[serde(default = "tcg")]
    pub accel: String,
    /// Memory of the machines added from now on, MiB.
    #[serde(default = "memory")]
    pub memory_mib: u32,
    machines: Vec<QemuMachine>,
}

fn tcg() -> String {
    "tcg".into()
}

fn memory() -> u32 {
    256
}

/// The file a saved lab is kept in, in its directory.
pub const STATE_FILE: &str = "lab.json";

impl Lab {
    /// Creates namespace `netns` with bridge `br0` carrying `address/prefix`.
    /// An existing namespace of that name is deleted first.
    pub async fn create(
        netns: &str,
        address: Ipv4Addr,
        prefix: u8,
        dir: &Path,
    ) -> Result<Self, LabError> {
        if Path::new("/run/netns").join(netns).exists() {
            run("ip", &["netns", "del", netns]).await?;
        }
        std::fs::create_dir_all(dir).map_err(|source| LabError::Io {
            context: format!("create {}", dir.display()),
            source,
        })?;
        run("ip", &["netns", "add", netns]).await?;
        let lab = Self {
            netns: netns.to_owned(),
            bridge: "br0".into(),
            address,
            prefix,
            dir: dir.to_owned(),
            accel: tcg(),
            memory_mib: memory(),
            machines: Vec::new(),
        };
        let cidr = format!("{address}/{prefix}");
        lab.ip(&["link", "set", "lo", "up"]).await?;
        lab.ip(&["link", "add", "br0", "type", "bridge"]).await?;
        lab.ip(&["addr", "add", &cidr, "dev", "br0"]).await?;
        lab.ip(&["link", "set", "br0", "up"]).await?;
        Ok(lab)
    }

    async fn ip(&self, args: &[&str]) -> Result<(), LabError> {
        let mut a = vec!["-n", self.netns.as_str()];
        a.extend_from_slice(args);
        run("ip", &a).await
    }

    /// The provisioning network for an engine serving this lab.
    pub fn network(&self, http_port: u16) -> ProvisioningNetwork {
        ProvisioningNetwork {
            netns: Some(self.netns.clone()),
            interface: self.bridge.clone(),
            address: self.address,
            prefix: self.prefix,
            http_port,
            state_dir: self.dir.join("netboot"),
            tftp_root: None,
        }
    }

    /// Adds machine `name`: an empty qcow2 disk of `disk_mib` MiB and a tap
    /// on the bridge. It stays powered off until its power driver starts it.
    pub async fn add_machine(
        &mut self,
        name: &str,
        disk_mib: u64,
    ) -> Result<QemuMachine, LabError> {
        let tap = format!("mtap{}", self.machines.len());
        self.ip(&["tuntap", "add", &tap, "mode", "tap"]).await?;
        self.ip(&["link", "set", &tap, "master", &self.bridge, "up"])
            .await?;
        let run_dir = self.dir.join(name);
        std::fs::create_dir_all(&run_dir).map_err(|source| LabError::Io {
            context: format!("create {}", run_dir.display()),
            source,
        })?;
        let disk = run_dir.join("disk.qcow2");
        let disk_s = disk.display().to_string();
        run(
            "qemu-img",
            &[
                "create",
                "-q",
                "-f",
                "qcow2",
                &disk_s,
                &format!("{disk_mib}M"),
            ],
        )
        .await?;
        let m = QemuMachine {
            run_dir,
            disk,
            disk_format: "qcow2".into(),
            tap,
            netns: Some(self.netns.clone()),
            memory_mib: self.memory_mib,
            accel: self.accel.clone(),
        };
        self.machines.push(m.clone());
        Ok(m)
    }

    /// The machines, in the order they were added.
    pub fn machines(&self) -> &[QemuMachine] {
        &self.machines
    }

    /// Writes the lab to [`STATE_FILE`] in its directory, so that
    /// [`Lab::load`] finds it after this process is gone.
    pub fn save(&self) -> Result<(), LabError> {
        let path = self.dir.join(STATE_FILE);
        let state_err = |reason: String| LabError::State {
            path: path.display().to_string(),
            reason,
        };
        let text = serde_json::to_string_pretty(self).map_err(|e| state_err(e.to_string()))?;
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &path))
            .map_err(|e| state_err(e.to_string()))
    }

    /// The lab saved in `dir`, or `None` when there is none.
    pub fn load(dir: &Path) -> Result<Option<Self>, LabError> {
        let path = dir.join(STATE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => {
                return Err(LabError::State {
                    path: path.display().to_string(),
                    reason: e.to_string(),
                });
            }
        };
        serde_json::from_str(&text)
            .map(Some)
            .map_err(|e| LabError::State {
                path: path.display().to_string(),
                reason: e.to_string(),
            })
    }

    /// Powers every machine off and deletes the namespace (with every
    /// process still in it: a dnsmasq a controller left there).
    pub async fn destroy(self) -> Result<(), LabError> {
        for m in &self.machines {
            let _ = RunningVm::kill_run_dir(&m.run_dir, Duration::from_secs(10)).await;
        }
        remove_netns(&self.netns).await
    }
}

/// Stops every process in namespace `netns` (SIGTERM, then SIGKILL after
/// 5 s) and deletes it; nothing to do when there is no such namespace.
pub async fn remove_netns(netns: &str) -> Result<(), LabError> {
    if !Path::new("/run/netns").join(netns).exists() {
        return Ok(());
    }
    let pids = |out: String| -> Vec<Pid> {
        out.split_whitespace()
            .filter_map(|p| p.parse().ok())
            .map(Pid::from_raw)
            .collect()
    };
    let listed = process::run("ip", &["netns", "pids", netns]).await?;
    for pid in pids(listed) {
        let _ = signal::kill(pid, Signal::SIGTERM);
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let left = pids(process::run("ip", &["netns", "pids", netns]).await?);
        if left.is_empty() {
            break;
        }
        if tokio::time::Instant::now() >= deadline {
            for pid in left {
                let _ = signal::kill(pid, Signal::SIGKILL);
            }
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    run("ip", &["netns", "del", netns]).await
}
