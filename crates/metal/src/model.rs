//! The inventory model: systems (machines), profiles (what to install) and
//! their provisioning state.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::power::PowerSpec;

/// Errors in inventory values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModelError {
    /// Not a MAC address.
    #[error("bad MAC address {0:?} (want six hex octets, e.g. 52:54:00:12:34:56)")]
    BadMac(String),
    /// A name that is empty or has characters outside `[A-Za-z0-9._-]`.
    #[error("bad {what} {value:?}: use 1-64 characters of A-Z a-z 0-9 . _ -")]
    BadName {
        /// What kind of name.
        what: &'static str,
        /// The rejected value.
        value: String,
    },
    /// Not a lowercase hex SHA-256 digest.
    #[error("bad sha256 {0:?} (want 64 hex digits)")]
    BadDigest(String),
}

/// A MAC address, kept in lowercase colon form.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Mac(String);

impl Mac {
    /// The colon form, `52:54:00:12:34:56`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The hyphen form iPXE's `${mac:hexhyp}` produces, `52-54-00-12-34-56`.
    pub fn hyphenated(&self) -> String {
        self.0.replace(':', "-")
    }
}

impl FromStr for Mac {
    type Err = ModelError;

    /// Accepts `:` or `-` separated octets, any case.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let parts: Vec<&str> = s.trim().split([':', '-']).collect();
        let ok = parts.len() == 6
            && parts
                .iter()
                .all(|p| p.len() == 2 && p.chars().all(|c| c.is_ascii_hexdigit()));
        if ok {
            Ok(Self(parts.join(":").to_ascii_lowercase()))
        } else {
            Err(ModelError::BadMac(s.to_owned()))
        }
    }
}

impl TryFrom<String> for Mac {
    type Error = ModelError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Mac> for String {
    fn from(m: Mac) -> Self {
        m.0
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a system, profile or group name.
pub fn check_name(what: &'static str, value: &str) -> Result<(), ModelError> {
    let ok = !value.is_empty()
        && value.len() <= 64
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(ModelError::BadName {
            what,
            value: value.to_owned(),
        })
    }
}

/// Checks a lowercase hex SHA-256 digest.
pub fn check_digest(value: &str) -> Result<(), ModelError> {
    if value.len() == 64 && value.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')) {
        Ok(())
    } else {
        Err(ModelError::BadDigest(value.to_owned()))
    }
}

/// Where a provisioning run is (the steps of [`State::Provisioning`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Step {
    /// Power-on with netboot sent; waiting for the machine's DHCP request.
    PoweringOn,
    /// The machine got its DHCP lease.
    Dhcp,
    /// The machine fetched its iPXE script (deploy agent on its way).
    Netboot,
    /// The deploy agent runs and writes the image.
    Deploying,
    /// The image is written and verified, netboot is off; the machine
    /// reboots from its disk and the installed system is expected to check in.
    Rebooting,
}

impl Step {
    /// The wire name (`powering-on`, `dhcp`, `netboot`, `deploying`, `rebooting`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::PoweringOn => "powering-on",
            Self::Dhcp => "dhcp",
            Self::Netboot => "netboot",
            Self::Deploying => "deploying",
            Self::Rebooting => "rebooting",
        }
    }
}

/// What happens to a system's disk when it is given back to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Wipe {
    /// Nothing: power off and free (the disk keeps what was installed).
    #[default]
    None,
    /// The machine netboots the deploy agent in wipe mode, which writes
    /// zeros over the whole disk, checks that its first and last MiB read
    /// back as zeros and reports `wiped`; then it is powered off and freed.
    Zero,
}

impl Wipe {
    /// The wire name (`none`, `zero`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Zero => "zero",
        }
    }
}

impl FromStr for Wipe {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "none" => Ok(Self::None),
            "zero" => Ok(Self::Zero),
            other => Err(format!("bad wipe policy {other:?} (want none or zero)")),
        }
    }
}

impl fmt::Display for Wipe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A system's provisioning state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "state")]
pub enum State {
    /// In the pool, owned by nobody.
    Free,
    /// Owned by a user, not (yet) being installed.
    Reserved,
    /// Being installed with its profile.
    Provisioning {
        /// How far it got.
        step: Step,
    },
    /// Installed and checked in.
    Running,
    /// Being returned to the pool (powering off).
    Releasing,
    /// Being returned to the pool: the deploy agent wipes the disk (then
    /// the system is powered off and freed).
    Wiping {
        /// How.
        mode: Wipe,
    },
    /// Provisioning or release failed; release returns it to the pool.
    Failed {
        /// Why.
        reason: String,
    },
}

impl State {
    /// The short name shown by the CLI (`free`, `reserved`, `provisioning`,
    /// `running`, `releasing`, `failed`).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Free => "free",
            Self::Reserved => "reserved",
            Self::Provisioning { .. } => "provisioning",
            Self::Running => "running",
            Self::Releasing => "releasing",
            Self::Wiping { .. } => "wiping",
            Self::Failed { .. } => "failed",
        }
    }

    /// Whether the engine waits on something with a deadline in this state.
    pub fn is_busy(&self) -> bool {
        matches!(
            self,
            Self::Provisioning { .. } | Self::Releasing | Self::Wiping { .. }
        )
    }
}

/// One machine of the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct System {
    /// Unique name.
    pub name: String,
    /// MAC address of the provisioning NIC (what DHCP answers).
    pub mac: Mac,
    /// Address handed out on the provisioning network.
    pub ip: Ipv4Addr,
    /// Host name handed out by DHCP.
    pub hostname: String,
    /// Group (resource pool).
    pub group: String,
    /// How to switch it on and off.
    pub power: PowerSpec,
    /// Disk the image is written to (`None`: the deploy agent picks the
    /// first of `/dev/vda`, `/dev/sda`, `/dev/nvme0n1`).
    #[serde(default)]
    pub disk: Option<String>,
    /// Owner (`None`: free).
    pub owner: Option<String>,
    /// Profile it is (or will be) installed with.
    pub profile: Option<String>,
    /// Whether the next network boot runs the deploy agent.
    pub netboot: bool,
    /// Provisioning state.
    pub state: State,
    /// Per-provisioning secret: the deploy agent's and the installed
    /// system's URLs carry it.
    pub token: Option<String>,
    /// When the state last changed (Unix milliseconds).
    pub state_since: i64,
    /// When the current step times out (Unix milliseconds).
    pub deadline: Option<i64>,
    /// Last thing heard from the machine (for `describe` and failure reasons).
    pub last_event: Option<String>,
    /// The administrator's per-system variables for answer-file templates
    /// (they override the profile's).
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// The administrator's disk wipe policy for this system (`None`: its
    /// group's, which defaults to [`Wipe::None`]).
    #[serde(default)]
    pub wipe: Option<Wipe>,
}

impl System {
    /// A new free system.
    pub fn new(
        name: &str,
        mac: Mac,
        ip: Ipv4Addr,
        group: &str,
        power: PowerSpec,
    ) -> Result<Self, ModelError> {
        check_name("system name", name)?;
        check_name("group name", group)?;
        Ok(Self {
            name: name.to_owned(),
            mac,
            ip,
            hostname: name.to_owned(),
            group: group.to_owned(),
            power,
            disk: None,
            owner: None,
            profile: None,
            netboot: false,
            state: State::Free,
            token: None,
            state_since: 0,
            deadline: None,
            last_event: None,
            variables: BTreeMap::new(),
            wipe: None,
        })
    }
}

/// What a profile installs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Install {
    /// A raw disk image written to the whole disk by the deploy agent.
    Image {
        /// Where the image is: a file path, or `object:BUCKET/KEY` in the
        /// object store (resolved by the engine's [`crate::engine::ImageSource`]).
        location: String,
        /// Its size in bytes.
        size: u64,
        /// Its SHA-256 (lowercase hex); the agent verifies what it wrote.
        sha256: String,
    },
    /// A distro's installer (kernel + initrd) booted with an answer file
    /// rendered per system from `template` ([`crate::template`]), served at
    /// `/answer/TOKEN`. The installer reports `event=installed` when done.
    Installer {
        /// The [`Distro`] whose kernel and initrd boot.
        distro: String,
        /// The answer-file template.
        template: String,
        /// Kernel arguments added after the distro's (a template too).
        #[serde(default)]
        kernel_args: String,
    },
}

impl Install {
    /// `image` or `installer`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Image { .. } => "image",
            Self::Installer { .. } => "installer",
        }
    }
}

/// A kernel + initrd pair that installer profiles boot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Distro {
    /// Unique name.
    pub name: String,
    /// The kernel: an absolute path or `object:BUCKET/KEY`.
    pub kernel: String,
    /// The initrd: an absolute path or `object:BUCKET/KEY`.
    pub initrd: String,
    /// Kernel arguments (a template: e.g. `auto=true url={{ answer_url }}`
    /// for debian-installer, `inst.ks={{ answer_url }}` for Anaconda).
    pub kernel_args: String,
}

/// The TCP port whose answer counts as a check-in unless a profile says
/// otherwise: SSH.
pub const DEFAULT_CHECK_IN_PORT: u16 = 22;

fn default_check_in_port() -> Option<u16> {
    Some(DEFAULT_CHECK_IN_PORT)
}

/// What to install on a system.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    /// Unique name.
    pub name: String,
    /// What it installs.
    pub install: Install,
    /// Extra kernel arguments for the deploy agent.
    #[serde(default)]
    pub agent_args: String,
    /// Answer-file variables for every system installed with this profile
    /// (a system's own variables override them).
    #[serde(default)]
    pub variables: BTreeMap<String, String>,
    /// Check-in fallback: once the machine rebooted into the installed
    /// system, a TCP connection accepted on this port of its address (from
    /// the provisioning network) counts as its check-in. `None`: only the
    /// check-in POST counts.
    #[serde(default = "default_check_in_port")]
    pub check_in_port: Option<u16>,
}

impl Profile {
    /// A profile that writes a disk image, with the default check-in
    /// fallback (SSH) and no variables.
    pub fn image(name: &str, location: &str, size: u64, sha256: &str) -> Self {
        Self {
            name: name.to_owned(),
            install: Install::Image {
                location: location.to_owned(),
                size,
                sha256: sha256.to_owned(),
            },
            agent_args: String::new(),
            variables: BTreeMap::new(),
            check_in_port: default_check_in_port(),
        }
    }
}
