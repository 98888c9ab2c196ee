//! Power drivers behind one trait: QEMU machines over QMP (labs and tests),
//! IPMI (`ipmitool`), Redfish (HTTP) and manual (an operator does it).
//!
//! Every driver can power a machine on so that it boots from the network
//! (PXE first), power it off, and tell whether it is on. What a machine
//! boots once it is on is decided by its iPXE script (netboot on: the
//! deploy agent; off: `exit`, so the firmware boots the disk), so the
//! drivers never switch the boot order back to disk.

use std::ffi::OsString;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use mallee_qemu::RunningVm;
use mallee_util::process::{Cmd, ProcessError};

use crate::model::Mac;

/// Errors from power drivers.
#[derive(Debug, thiserror::Error)]
pub enum PowerError {
    /// A command could not be run.
    #[error("cannot run {command}: {source}")]
    Spawn {
        /// The program.
        command: String,
        /// Why.
        source: std::io::Error,
    },
    /// A command failed.
    #[error("{command} failed ({status}): {stderr}")]
    Command {
        /// The command line (without secrets).
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The QEMU machine could not be controlled.
    #[error("QEMU machine: {0}")]
    Qemu(#[from] mallee_qemu::VmError),
    /// A Redfish request failed.
    #[error("Redfish {url}: {reason}")]
    Redfish {
        /// The URL.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// The driver answered something this module does not understand.
    #[error("unexpected answer from {driver}: {answer}")]
    Unexpected {
        /// The driver.
        driver: &'static str,
        /// The answer.
        answer: String,
    },
}

/// How a system's power is controlled (stored with the system).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "driver")]
pub enum PowerSpec {
    /// A QEMU virtual machine standing for a physical one.
    Qemu(QemuMachine),
    /// A BMC reached with `ipmitool`.
    Ipmi(IpmiSpec),
    /// A BMC with a Redfish API.
    Redfish(RedfishSpec),
    /// An operator presses the buttons; the engine logs what to do.
    Manual,
}

impl PowerSpec {
    /// The driver name (`qemu`, `ipmi`, `redfish`, `manual`).
    pub fn driver_name(&self) -> &'static str {
        match self {
            Self::Qemu(_) => "qemu",
            Self::Ipmi(_) => "ipmi",
            Self::Redfish(_) => "redfish",
            Self::Manual => "manual",
        }
    }
}

/// Whether a machine is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PowerState {
    /// Powered on.
    On,
    /// Powered off.
    Off,
    /// The driver cannot tell (manual).
    Unknown,
}

/// What a power call achieved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PowerOutcome {
    /// Done.
    Done,
    /// An operator has to do it (the instruction was logged); the engine
    /// waits for the event that shows it happened.
    Pending(String),
}

/// One machine's power control.
#[async_trait]
pub trait PowerDriver: Send + Sync + fmt::Debug {
    /// Powers the machine on booting from the network (resets it if it is on).
    async fn power_on_netboot(&self) -> Result<PowerOutcome, PowerError>;
    /// Powers the machine off (hard).
    async fn power_off(&self) -> Result<PowerOutcome, PowerError>;
    /// Whether it is on.
    async fn status(&self) -> Result<PowerState, PowerError>;
}

/// The driver for a system.
pub fn driver(name: &str, mac: &Mac, spec: &PowerSpec) -> Box<dyn PowerDriver> {
    match spec {
        PowerSpec::Qemu(m) => Box::new(QemuDriver {
            name: name.to_owned(),
            mac: mac.clone(),
            machine: m.clone(),
        }),
        PowerSpec::Ipmi(s) => Box::new(IpmiDriver { spec: s.clone() }),
        PowerSpec::Redfish(s) => Box::new(RedfishDriver::new(s.clone())),
        PowerSpec::Manual => Box::new(ManualDriver {
            name: name.to_owned(),
            mac: mac.clone(),
        }),
    }
}

// ------------------------------------------------------------------ QEMU

/// A QEMU virtual machine that stands for a physical machine: one NIC on a
/// tap of the provisioning network (PXE, boot order network then disk, as
/// a rack machine's firmware is set up), one disk. Powered on by starting
/// QEMU, off by QMP `quit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QemuMachine {
    /// Directory for the pidfile and QMP socket (and the serial log).
    pub run_dir: PathBuf,
    /// The machine's disk.
    pub disk: PathBuf,
    /// `qcow2` or `raw`.
    pub disk_format: String,
    /// The tap device on the provisioning bridge.
    pub tap: String,
    /// Network namespace the tap is in (`None`: the current one).
    #[serde(default)]
    pub netns: Option<String>,
    /// Memory in MiB.
    pub memory_mib: u32,
    /// `tcg` or `kvm`.
    pub accel: String,
}

impl QemuMachine {
    /// The serial console log (appended to across power cycles).
    pub fn serial_log(&self) -> PathBuf {
        self.run_dir.join("console.log")
    }

    /// The QEMU command line (without the binary) for this machine.
    pub fn argv(&self, name: &str, mac: &Mac) -> Vec<OsString> {
        let esc = |p: &Path| p.display().to_string().replace(',', ",,");
        let mut a: Vec<String> = vec![
            "-name".into(),
            format!("guest={},debug-threads=on", name.replace(',', ",,")),
            "-machine".into(),
            format!("pc,accel={}", self.accel),
            "-cpu".into(),
            if self.accel == "kvm" { "host" } else { "max" }.into(),
            "-m".into(),
            format!("{}M", self.memory_mib),
            "-nodefaults".into(),
            "-no-user-config".into(),
            "-display".into(),
            "none".into(),
            "-chardev".into(),
            format!("file,id=serial0,path={},append=on", esc(&self.serial_log())),
            "-serial".into(),
            "chardev:serial0".into(),
            "-chardev".into(),
            format!(
                "socket,id=qmp,path={},server=on,wait=off",
                esc(&self.run_dir.join(mallee_qemu::vm::QMP_SOCKET))
            ),
            "-mon".into(),
            "chardev=qmp,mode=control".into(),
            "-device".into(),
            "virtio-rng-pci".into(),
            "-netdev".into(),
            json!({"type": "tap", "id": "net0", "ifname": self.tap, "script": "no", "downscript": "no"})
                .to_string(),
            "-device".into(),
            json!({"driver": "virtio-net-pci", "netdev": "net0", "mac": mac.as_str(), "bootindex": 1})
                .to_string(),
            "-blockdev".into(),
            json!({
                "driver": self.disk_format, "node-name": "disk0",
                "file": {"driver": "file", "filename": self.disk.display().to_string()},
            })
            .to_string(),
            "-device".into(),
            json!({"driver": "virtio-blk-pci", "drive": "disk0", "bootindex": 2}).to_string(),
            "-pidfile".into(),
        ];
        a.push(
            self.run_dir
                .join(mallee_qemu::vm::PIDFILE)
                .display()
                .to_string(),
        );
        a.push("-daemonize".into());
        a.into_iter().map(OsString::from).collect()
    }
}

#[derive(Debug)]
struct QemuDriver {
    name: String,
    mac: Mac,
    machine: QemuMachine,
}

impl QemuDriver {
    async fn start(&self) -> Result<(), PowerError> {
        let io = |source| PowerError::Spawn {
            command: format!("mkdir {}", self.machine.run_dir.display()),
            source,
        };
        std::fs::create_dir_all(&self.machine.run_dir).map_err(io)?;
        // The pidfile path on QEMU's command line must be the canonical one:
        // that is how `RunningVm::adopt` recognises the process later.
        let m = QemuMachine {
            run_dir: self.machine.run_dir.canonicalize().map_err(io)?,
            ..self.machine.clone()
        };
        let mut argv: Vec<OsString> = Vec::new();
        if let Some(ns) = &m.netns {
            argv.extend(["ip", "netns", "exec", ns].map(OsString::from));
        }
        argv.push(mallee_qemu::vm::QEMU_BINARY.into());
        argv.extend(m.argv(&self.name, &self.mac));
        run(&argv, &[]).await?;
        tracing::info!(system = %self.name, "QEMU machine powered on (PXE first)");
        Ok(())
    }
}

#[async_trait]
impl PowerDriver for QemuDriver {
    async fn power_on_netboot(&self) -> Result<PowerOutcome, PowerError> {
        if RunningVm::pid_in_run_dir(&self.machine.run_dir).is_some() {
            let vm = RunningVm::adopt(&self.machine.run_dir).await?;
            vm.reset().await?;
            tracing::info!(system = %self.name, "QEMU machine reset (PXE first)");
        } else {
            self.start().await?;
        }
        Ok(PowerOutcome::Done)
    }

    async fn power_off(&self) -> Result<PowerOutcome, PowerError> {
        let run_dir = &self.machine.run_dir;
        if RunningVm::pid_in_run_dir(run_dir).is_none() {
            return Ok(PowerOutcome::Done);
        }
        let quit = async {
            let vm = RunningVm::adopt(run_dir).await?;
            vm.quit().await
        };
        if let Err(e) = quit.await {
            tracing::warn!(system = %self.name, error = %e, "QMP quit failed; killing QEMU");
            RunningVm::kill_run_dir(run_dir, Duration::from_secs(10)).await?;
        }
        tracing::info!(system = %self.name, "QEMU machine powered off");
        Ok(PowerOutcome::Done)
    }

    async fn status(&self) -> Result<PowerState, PowerError> {
        Ok(
            if RunningVm::pid_in_run_dir(&self.machine.run_dir).is_some() {
                PowerState::On
            } else {
                PowerState::Off
            },
        )
    }
}

/// Runs `argv` with extra environment (secrets go there, never on the
/// command line), failing on a non-zero exit or after 60 s. Returns stdout.
async fn run(argv: &[OsString], env: &[(&str, &str)]) -> Result<String, PowerError> {
    let command = Cmd::from_argv(argv).ok_or_else(|| PowerError::Unexpected {
        driver: "command",
        answer: "empty command line".into(),
    })?;
    env.iter()
        .fold(command, |c, (k, v)| c.env(k, v))
        .timeout(Duration::from_secs(60))
        .run()
        .await
        .map_err(|e| match e {
            ProcessError::Spawn { command, source } | ProcessError::Io { command, source } => {
                PowerError::Spawn { command, source }
            }
            ProcessError::Failed {
                command,
                status,
                stderr,
            } => PowerError::Command {
                command,
                status: status.to_string(),
                stderr,
            },
            ProcessError::TimedOut { command, limit } => PowerError::Command {
                command,
                status: "timeout".into(),
                stderr: format!("no answer within {} s", limit.as_secs()),
            },
        })
}

// ------------------------------------------------------------------ IPMI

/// A BMC reached with `ipmitool` over the network.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IpmiSpec {
    /// BMC address.
    pub host: String,
    /// BMC user.
    pub user: String,
    /// BMC password (passed in the environment, never on the command line).
    pub password: String,
    /// ipmitool interface (`lanplus` when `None`).
    #[serde(default)]
    pub interface: Option<String>,
}

impl IpmiSpec {
    /// The `ipmitool` command line for `args` (e.g. `chassis power on`).
    /// The password goes in `IPMI_PASSWORD` (`-E`).
    pub fn argv(&self, args: &[&str]) -> Vec<OsString> {
        let mut a: Vec<OsString> = [
            "ipmitool",
            "-I",
            self.interface.as_deref().unwrap_or("lanplus"),
            "-H",
            &self.host,
            "-U",
            &self.user,
            "-E",
        ]
        .iter()
        .map(OsString::from)
        .collect();
        a.extend(args.iter().map(OsString::from));
        a
    }
}

#[derive(Debug)]
struct IpmiDriver {
    spec: IpmiSpec,
}

impl IpmiDriver {
    async fn ipmitool(&self, args: &[&str]) -> Result<String, PowerError> {
        run(
            &self.spec.argv(args),
            &[("IPMI_PASSWORD", self.spec.password.as_str())],
        )
        .await
    }
}

/// Parses `ipmitool chassis power status` output.
pub fn parse_ipmi_status(out: &str) -> Result<PowerState, PowerError> {
    let t = out.trim().to_ascii_lowercase();
    if t.ends_with(" on") {
        Ok(PowerState::On)
    } else if t.ends_with(" off") {
        Ok(PowerState::Off)
    } else {
        Err(PowerError::Unexpected {
            driver: "ipmitool",
            answer: out.trim().to_owned(),
        })
    }
}

#[async_trait]
impl PowerDriver for IpmiDriver {
    async fn power_on_netboot(&self) -> Result<PowerOutcome, PowerError> {
        self.ipmitool(&["chassis", "bootdev", "pxe"]).await?;
        let verb = match self.status().await? {
            PowerState::On => "reset",
            _ => "on",
        };
        self.ipmitool(&["chassis", "power", verb]).await?;
        Ok(PowerOutcome::Done)
    }

    async fn power_off(&self) -> Result<PowerOutcome, PowerError> {
        self.ipmitool(&["chassis", "power", "off"]).await?;
        Ok(PowerOutcome::Done)
    }

    async fn status(&self) -> Result<PowerState, PowerError> {
        parse_ipmi_status(&self.ipmitool(&["chassis", "power", "status"]).await?)
    }
}

// ------------------------------------------------------------------ Redfish

/// A BMC with a Redfish API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedfishSpec {
    /// Base URL, e.g. `http://bmc.example` (this build's HTTP client has no
    /// TLS: reach HTTPS-only BMCs through a local TLS proxy).
    pub url: String,
    /// User.
    pub user: String,
    /// Password.
    pub password: String,
    /// The ComputerSystem's path (`None`: the first member of
    /// `/redfish/v1/Systems`).
    #[serde(default)]
    pub system: Option<String>,
}

#[derive(Debug)]
struct RedfishDriver {
    spec: RedfishSpec,
    http: reqwest::Client,
}

impl RedfishDriver {
    fn new(spec: RedfishSpec) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_default();
        Self { spec, http }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{}", self.spec.url.trim_end_matches('/'), path)
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Result<Value, PowerError> {
        let url = self.url(path);
        let err = |reason: String| PowerError::Redfish {
            url: url.clone(),
            reason,
        };
        let mut req = self
            .http
            .request(method, &url)
            .basic_auth(&self.spec.user, Some(&self.spec.password))
            .header("accept", "application/json");
        if let Some(body) = body {
            req = req
                .header("content-type", "application/json")
                .body(body.to_string());
        }
        let resp = req.send().await.map_err(|e| err(e.to_string()))?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| err(e.to_string()))?;
        if !status.is_success() {
            return Err(err(format!("HTTP {status}: {}", text.trim())));
        }
        if text.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| err(format!("bad JSON: {e}")))
    }

    async fn system_path(&self) -> Result<String, PowerError> {
        if let Some(s) = &self.spec.system {
            return Ok(s.clone());
        }
        let systems = self
            .call(reqwest::Method::GET, "/redfish/v1/Systems", None)
            .await?;
        systems["Members"][0]["@odata.id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| PowerError::Unexpected {
                driver: "redfish",
                answer: format!("no system in /redfish/v1/Systems: {systems}"),
            })
    }

    async fn reset(&self, system: &str, kind: &str) -> Result<(), PowerError> {
        self.call(
            reqwest::Method::POST,
            &format!("{system}/Actions/ComputerSystem.Reset"),
            Some(json!({"ResetType": kind})),
        )
        .await
        .map(drop)
    }

    async fn power_state(&self, system: &str) -> Result<PowerState, PowerError> {
        let s = self.call(reqwest::Method::GET, system, None).await?;
        match s["PowerState"].as_str() {
            Some("On" | "PoweringOn") => Ok(PowerState::On),
            Some("Off" | "PoweringOff") => Ok(PowerState::Off),
            other => Err(PowerError::Unexpected {
                driver: "redfish",
                answer: format!("PowerState {other:?}"),
            }),
        }
    }
}

#[async_trait]
impl PowerDriver for RedfishDriver {
    async fn power_on_netboot(&self) -> Result<PowerOutcome, PowerError> {
        let system = self.system_path().await?;
        self.call(
            reqwest::Method::PATCH,
            &system,
            Some(json!({"Boot": {"BootSourceOverrideTarget": "Pxe", "BootSourceOverrideEnabled": "Once"}})),
        )
        .await?;
        let kind = match self.power_state(&system).await? {
            PowerState::On => "ForceRestart",
            _ => "On",
        };
        self.reset(&system, kind).await?;
        Ok(PowerOutcome::Done)
    }

    async fn power_off(&self) -> Result<PowerOutcome, PowerError> {
        let system = self.system_path().await?;
        self.reset(&system, "ForceOff").await?;
        Ok(PowerOutcome::Done)
    }

    async fn status(&self) -> Result<PowerState, PowerError> {
        let system = self.system_path().await?;
        self.power_state(&system).await
    }
}

// ------------------------------------------------------------------ manual

#[derive(Debug)]
struct ManualDriver {
    name: String,
    mac: Mac,
}

#[async_trait]
impl PowerDriver for ManualDriver {
    async fn power_on_netboot(&self) -> Result<PowerOutcome, PowerError> {
        let what = format!(
            "power on system {} (MAC {}) and boot it from the network (PXE)",
            self.name, self.mac
        );
        tracing::warn!(system = %self.name, "MANUAL POWER: {what}");
        Ok(PowerOutcome::Pending(what))
    }

    async fn power_off(&self) -> Result<PowerOutcome, PowerError> {
        let what = format!(
            "power off system {} (MAC {}), then confirm it",
            self.name, self.mac
        );
        tracing::warn!(system = %self.name, "MANUAL POWER: {what}");
        Ok(PowerOutcome::Pending(what))
    }

    async fn status(&self) -> Result<PowerState, PowerError> {
        Ok(PowerState::Unknown)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(v: &[OsString]) -> Vec<String> {
        v.iter().map(|s| s.to_string_lossy().into_owned()).collect()
    }

    #[test]
    fn ipmitool_argv_keeps_the_password_out() {
        let spec = IpmiSpec {
            host: "10.0.0.5".into(),
            user: "admin".into(),
            password: "s3cret".into(),
            interface: None,
        };
        let a = strings(&spec.argv(&["chassis", "power", "on"]));
        assert_eq!(
            a,
            [
                "ipmitool", "-I", "lanplus", "-H", "10.0.0.5", "-U", "admin", "-E", "chassis",
                "power", "on"
            ]
        );
        assert!(!a.iter().any(|s| s.contains("s3cret")));
        let lan = IpmiSpec {
            interface: Some("lan".into()),
            ..spec
        };
        assert_eq!(strings(&lan.argv(&["chassis", "bootdev", "pxe"]))[2], "lan");
    }

    #[test]
    fn ipmitool_status() {
        assert_eq!(
            parse_ipmi_status("Chassis Power is on\n").ok(),
            Some(PowerState::On)
        );
        assert_eq!(
            parse_ipmi_status("Chassis Power is off").ok(),
            Some(PowerState::Off)
        );
        assert!(parse_ipmi_status("Error: Unable to establish IPMI v2 / RMCP+ session").is_err());
    }

    #[tokio::test]
    async fn ipmitool_failure_is_reported() {
        // `false` stands for an ipmitool that cannot reach its BMC.
        let e = run(&[OsString::from("false")], &[])
            .await
            .err()
            .map(|e| e.to_string());
        assert!(e.is_some_and(|e| e.contains("false failed")));
    }

    #[test]
    fn qemu_machine_boots_network_first_then_disk() {
        let m = QemuMachine {
            run_dir: "/run/m1".into(),
            disk: "/var/m1.qcow2".into(),
            disk_format: "qcow2".into(),
            tap: "mtap1".into(),
            netns: None,
            memory_mib: 256,
            accel: "tcg".into(),
        };
        let mac: Mac = "52:54:00:00:00:01".parse().expect("mac");
        let argv = strings(&m.argv("m1", &mac));
        let devices: Vec<Value> = argv
            .windows(2)
            .filter(|w| w[0] == "-device" && w[1].starts_with('{'))
            .map(|w| serde_json::from_str(&w[1]).expect("device json"))
            .collect();
        let boot = |driver: &str| {
            devices
                .iter()
                .find(|d| d["driver"] == driver)
                .map(|d| d["bootindex"].clone())
        };
        assert_eq!(boot("virtio-net-pci"), Some(json!(1)));
        assert_eq!(boot("virtio-blk-pci"), Some(json!(2)));
        assert!(devices.iter().any(|d| d["mac"] == "52:54:00:00:00:01"));
        let a = argv.join(" ");
        assert!(a.contains("-pidfile /run/m1/qemu.pid -daemonize"), "{a}");
        assert!(a.contains("path=/run/m1/console.log,append=on"), "{a}");
    }
}
