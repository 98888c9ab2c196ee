//! A lab: a provisioning network in its own network namespace (a bridge
//! with the provisioning address) and QEMU machines with empty disks whose
//! NICs are taps on that bridge. Nothing in it routes anywhere: the
//! machines reach only the provisioning address.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mallee_qemu::RunningVm;
use mallee_util::process::{self, ProcessError};

use crate::netboot::ProvisioningNetwork;
use crate::power::QemuMachine;

/// Errors building or tearing down a lab.
#[derive(Debug, thiserror::Error)]
pub enum LabError {
    /// A command (`ip`, `qemu-img`) could not run or failed.
    #[error("{0}")]
    Command(#[from] ProcessError),
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
#[derive(Debug)]
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
    machines: Vec<QemuMachine>,
}

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
            memory_mib: 256,
            accel: "tcg".into(),
        };
        self.machines.push(m.clone());
        Ok(m)
    }

    /// Powers every machine off and deletes the namespace.
    pub async fn destroy(self) -> Result<(), LabError> {
        for m in &self.machines {
            let _ = RunningVm::kill_run_dir(&m.run_dir, Duration::from_secs(10)).await;
        }
        run("ip", &["netns", "del", &self.netns]).await
    }
}
