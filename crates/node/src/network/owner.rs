//! Who owns the host-wide network objects a node makes, so that two clouds
//! on one host (or a cloud and the leftovers of a deleted data directory)
//! find each other instead of silently sharing a public range.
//!
//! The owner is written on the object itself, as the link's alias (`ip
//! link set … alias`), because the alias lives exactly as long as the
//! object and survives the deletion of the data directory that made it:
//!
//! - a node's public bridge (`mlp…`, host namespace):
//!   `mallee:node:<node id>:<canonical node directory>`;
//! - a VPC namespace: its `lo` carries `mallee:vpc:<canonical state
//!   directory>`.
//!
//! An owner is **gone** when its directory no longer exists (or holds
//! another node id: the directory was deleted and made again), and
//! **running** while a process holds the directory's lock file
//! ([`AGENT_LOCK`], see [`DirLock`]).

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use mallee_util::cidr::Ipv4Cidr;
use mallee_util::process::run;

use super::{NetworkError, PublicNetworkConfig};

/// What every owner alias starts with.
pub const ALIAS_PREFIX: &str = "mallee:";
/// The lock file a running agent holds in its node directory.
pub const AGENT_LOCK: &str = "agent.lock";
/// The longest alias the kernel keeps (IFALIASZ - 1).
const MAX_ALIAS: usize = 255;

/// The owner of a host-wide network object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Owner {
    /// A node's public bridge: the node's id and directory.
    Node {
        /// The node id (`DIR/node-id`).
        node_id: String,
        /// The node's data directory (canonical).
        dir: PathBuf,
    },
    /// A VPC namespace: the network's state directory (canonical).
    Vpc {
        /// `NODE_DIR/network/<network id>`.
        state_dir: PathBuf,
    },
}

/// Where an owner is now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnerState {
    /// Its directory exists and a process (pid) holds its lock.
    Running(u32),
    /// Its directory exists and nothing runs on it.
    Stopped,
    /// Its directory is gone (or now holds another node): a leftover.
    Gone,
}

impl Owner {
    /// The node `node_id` whose data lives in `dir`.
    pub fn node(node_id: &str, dir: &Path) -> Self {
        Self::Node {
            node_id: node_id.to_owned(),
            dir: canonical(dir),
        }
    }

    /// The alias text recording this owner.
    pub fn alias(&self) -> String {
        match self {
            Self::Node { node_id, dir } => {
                format!("{ALIAS_PREFIX}node:{node_id}:{}", dir.display())
            }
            Self::Vpc { state_dir } => format!("{ALIAS_PREFIX}vpc:{}", state_dir.display()),
        }
    }

    /// The owner an alias records; `None` for one mallee did not write.
    pub fn parse(alias: &str) -> Option<Self> {
        let rest = alias.strip_prefix(ALIAS_PREFIX)?;
        let (kind, rest) = rest.split_once(':')?;
        match kind {
            "node" => {
                let (node_id, dir) = rest.split_once(':')?;
                (!node_id.is_empty() && dir.starts_with('/')).then(|| Self::Node {
                    node_id: node_id.to_owned(),
                    dir: PathBuf::from(dir),
                })
            }
            "vpc" => rest.starts_with('/').then(|| Self::Vpc {
                state_dir: PathBuf::from(rest),
            }),
            _ => None,
        }
    }

    /// The directory whose existence keeps the object alive.
    pub fn dir(&self) -> &Path {
        match self {
            Self::Node { dir, .. } => dir,
            Self::Vpc { state_dir } => state_dir,
        }
    }

    /// The node directory: the node's own, or the one holding a VPC's
    /// state (`NODE_DIR/network/<id>`).
    fn node_dir(&self) -> Option<&Path> {
        match self {
            Self::Node { dir, .. } => Some(dir),
            Self::Vpc { state_dir } => state_dir.parent()?.parent(),
        }
    }

    /// Whether the owner is running, stopped or gone.
    pub fn state(&self) -> OwnerState {
        if !self.dir().is_dir() {
            return OwnerState::Gone;
        }
        if let Self::Node { node_id, dir } = self {
            let now = std::fs::read_to_string(dir.join(crate::agent::NODE_ID_FILE));
            if now.is_ok_and(|id| id.trim() != node_id) {
                return OwnerState::Gone;
            }
        }
        match self
            .node_dir()
            .map(|d| DirLock::holder(&d.join(AGENT_LOCK)))
        {
            Some(Some(pid)) => OwnerState::Running(pid),
            _ => OwnerState::Stopped,
        }
    }

    /// The command that removes the owner's network while it is stopped.
    pub fn purge_command(&self) -> String {
        match self.node_dir() {
            Some(node_dir) if node_dir.ends_with("node") => format!(
                "`mallee purge --data-dir {}`",
                node_dir.parent().unwrap_or(node_dir).display()
            ),
            _ => "`mallee purge --data-dir …` of its cloud".to_owned(),
        }
    }

    /// Who this is, for an administrator: `up`'s nodes live in
    /// `DATA/node`, so their cloud's data directory is named.
    pub fn describe(&self) -> String {
        let Some(node_dir) = self.node_dir() else {
            return format!("the data directory {}", self.dir().display());
        };
        match node_dir.parent() {
            Some(data) if node_dir.ends_with("node") && data.join("mallee.db").exists() => {
                format!("the cloud of data directory {}", data.display())
            }
            Some(data) if node_dir.ends_with("node") && !node_dir.exists() => format!(
                "the cloud of data directory {} (node directory {})",
                data.display(),
                node_dir.display()
            ),
            _ => format!("the node of data directory {}", node_dir.display()),
        }
    }
}

/// `path` made absolute and free of symlinks where it exists.
fn canonical(path: &Path) -> PathBuf {
    std::fs::canonicalize(path)
        .unwrap_or_else(|_| std::path::absolute(path).unwrap_or_else(|_| path.to_owned()))
}

/// A lock file held for the life of a process (an advisory `flock`),
/// holding the pid: a second process on the same directory is refused,
/// and the owner of a network object can be told running or stopped.
#[derive(Debug)]
pub struct DirLock {
    _file: File,
    path: PathBuf,
}

impl DirLock {
    /// Takes the lock at `path` (created if missing) or says which process
    /// holds it.
    pub fn acquire(path: &Path) -> Result<Self, String> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        let mut file = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let dir = path.parent().unwrap_or(path);
                return Err(match text.trim().parse::<u32>() {
                    Ok(pid) => {
                        format!("another mallee (pid {pid}) is running on {}", dir.display())
                    }
                    Err(_) => format!("another mallee is running on {}", dir.display()),
                });
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        // The pid, for the messages of the processes this one refuses.
        let written = file
            .set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| writeln!(file, "{}", std::process::id()));
        written.map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        Ok(Self {
            _file: file,
            path: path.to_owned(),
        })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The pid of the process holding the lock at `path`, if one does.
    pub fn holder(path: &Path) -> Option<u32> {
        let mut file = File::open(path).ok()?;
        match file.try_lock_shared() {
            // Free: nobody runs there (the shared lock goes with `file`).
            Ok(()) => None,
            Err(_) => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                Some(text.trim().parse().unwrap_or(0))
            }
        }
    }
}

/// The alias of host link `name` (`None`: no such link or no alias).
pub async fn link_alias(netns: Option<&str>, name: &str) -> Option<String> {
    let mut args = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["-j", "link", "show", "dev", name]);
    let out = run("ip", &args).await.ok()?;
    let links: serde_json::Value = serde_json::from_str(&out).ok()?;
    links
        .get(0)?
        .get("ifalias")?
        .as_str()
        .map(str::to_owned)
        .filter(|a| !a.is_empty())
}

/// Records `owner` on link `name` (in namespace `netns`, or the host's).
/// An alias too long for the kernel is left unset: the object then has no
/// recorded owner, which only weakens the checks.
pub async fn mark_link(netns: Option<&str>, name: &str, owner: &Owner) -> Result<(), NetworkError> {
    let alias = owner.alias();
    if alias.len() > MAX_ALIAS {
        tracing::warn!(
            link = name,
            "the owner's path is too long to record on the link"
        );
        return Ok(());
    }
    let mut args = Vec::new();
    if let Some(ns) = netns {
        args.extend(["-n", ns]);
    }
    args.extend(["link", "set", "dev", name, "alias", &alias]);
    run("ip", &args).await?;
    Ok(())
}

/// A host link that stands in the way of a node's public network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// The link.
    pub link: String,
    /// Its recorded owner (`None`: not recorded, or not mallee's).
    pub owner: Option<Owner>,
}

impl Holder {
    /// What it is and what to do about it, for an administrator.
    pub fn describe(&self) -> String {
        let link = &self.link;
        match &self.owner {
            Some(owner) => match owner.state() {
                OwnerState::Running(pid) => format!(
                    "{link}, the public bridge of {} (running, pid {pid})",
                    owner.describe()
                ),
                OwnerState::Stopped => format!(
                    "{link}, the public bridge of {} (not running: {} removes it)",
                    owner.describe(),
                    owner.purge_command()
                ),
                OwnerState::Gone => format!(
                    "{link}, a leftover of {}, which no longer exists (or was made anew since): `mallee purge --orphans` removes it",
                    owner.describe()
                ),
            },
            None if link.starts_with("mlp") => format!(
                "{link}, the public bridge of a mallee that did not record its owner \
                 (`mallee purge --data-dir` of its cloud, or `ip link del {link}`, removes it)"
            ),
            None => format!("{link}, a host interface mallee did not make"),
        }
    }
}

/// A refusal to start: what is in the way, named.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct Conflict(pub String);

/// Checks that `public` belongs to no other cloud and is no leftover, then
/// claims it: makes the bridge if missing and records `owner` on it. With
/// a host-local bridge, no other link may hold an address or route in the
/// range (a second route to it makes this cloud's public IPs unreachable);
/// with a public LAN interface, no other bridge may hold the interface.
pub async fn claim_public(public: &PublicNetworkConfig, owner: &Owner) -> Result<(), Conflict> {
    let ours = &public.bridge;
    let mut holders = Vec::new();
    if link_exists(ours).await {
        let alias = link_alias(None, ours).await;
        let recorded = alias.as_deref().and_then(Owner::parse);
        if recorded.as_ref().is_some_and(|o| o != owner) {
            holders.push(Holder {
                link: ours.clone(),
                owner: recorded,
            });
        }
    }
    match &public.interface {
        None => {
            for link in links_in_range(public.cidr).await? {
                if link != *ours && !holders.iter().any(|h| h.link == link) {
                    let owner = link_alias(None, &link)
                        .await
                        .as_deref()
                        .and_then(Owner::parse);
                    holders.push(Holder { link, owner });
                }
            }
        }
        Some(interface) => {
            if let Some(master) = master_of(interface).await
                && master != *ours
            {
                let owner = link_alias(None, &master)
                    .await
                    .as_deref()
                    .and_then(Owner::parse);
                holders.push(Holder {
                    link: master,
                    owner,
                });
            }
        }
    }
    if let Some(first) = holders.first() {
        let what = match &public.interface {
            None => format!("the public range {} is already on", public.cidr),
            Some(i) => format!("the public interface {i} is already joined to"),
        };
        let mut message = format!("{what} {}", first.describe());
        for other in &holders[1..] {
            message.push_str(&format!("; and on {}", other.describe()));
        }
        if holders.iter().any(|h| h.link != *ours) {
            message.push_str("; give this cloud another --public-range, or remove the other");
        }
        return Err(Conflict(message));
    }
    let fail = |e: NetworkError| Conflict(format!("cannot claim the public bridge {ours}: {e}"));
    if !link_exists(ours).await {
        let made = run("ip", &["link", "add", "name", ours, "type", "bridge"]).await;
        if let Err(e) = made
            && !link_exists(ours).await
        {
            return Err(fail(e.into()));
        }
    }
    mark_link(None, ours, owner).await.map_err(fail)
}

/// Checks the namespaces this node's VPC records (`STATE_ROOT/*/vpc.json`)
/// name: one that exists must be this node's (its `lo` names the same
/// state directory), else a copied data directory would adopt another
/// cloud's network.
pub async fn check_namespaces(state_root: &Path) -> Result<(), Conflict> {
    let Ok(entries) = std::fs::read_dir(state_root) else {
        return Ok(());
    };
    for entry in entries.filter_map(Result::ok) {
        let Ok(text) = std::fs::read_to_string(entry.path().join("vpc.json")) else {
            continue;
        };
        let Some(netns) = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["netns"].as_str().map(str::to_owned))
        else {
            continue;
        };
        if !Path::new("/run/netns").join(&netns).exists() {
            continue;
        }
        let mine = Owner::Vpc {
            state_dir: canonical(&entry.path()),
        };
        let Some(recorded) = link_alias(Some(&netns), "lo")
            .await
            .as_deref()
            .and_then(Owner::parse)
        else {
            // Made before owners were recorded: this node's own.
            continue;
        };
        if recorded != mine {
            let state = match recorded.state() {
                OwnerState::Gone => format!(
                    "a leftover of {}, which no longer exists (or was made anew since): `mallee purge --orphans` removes it",
                    recorded.describe()
                ),
                OwnerState::Running(pid) => {
                    format!("{} (running, pid {pid})", recorded.describe())
                }
                OwnerState::Stopped => format!("{} (not running)", recorded.describe()),
            };
            return Err(Conflict(format!(
                "the network namespace {netns} that {} names belongs to {state} (was this data directory copied?)",
                entry.path().display()
            )));
        }
    }
    Ok(())
}

async fn link_exists(name: &str) -> bool {
    super::system::host_link_exists(name).await
}

/// The host links with an IPv4 address or a route inside `cidr`.
async fn links_in_range(cidr: Ipv4Cidr) -> Result<Vec<String>, Conflict> {
    let fail = |e: mallee_util::process::ProcessError| {
        Conflict(format!("cannot list the host's addresses: {e}"))
    };
    let mut found = Vec::new();
    let addrs = run("ip", &["-j", "-4", "addr", "show"])
        .await
        .map_err(fail)?;
    let addrs: serde_json::Value = serde_json::from_str(&addrs).unwrap_or_default();
    for link in addrs.as_array().into_iter().flatten() {
        let name = link["ifname"].as_str().unwrap_or_default();
        let hit = link["addr_info"].as_array().into_iter().flatten().any(|a| {
            let local = a["local"].as_str().and_then(|s| s.parse::<Ipv4Addr>().ok());
            let prefix = a["prefixlen"].as_u64().unwrap_or(32);
            local.is_some_and(|ip| overlaps(cidr, ip, prefix))
        });
        if hit && !found.iter().any(|f| f == name) {
            found.push(name.to_owned());
        }
    }
    let routes = run("ip", &["-j", "-4", "route", "show", "table", "main"])
        .await
        .map_err(fail)?;
    let routes: serde_json::Value = serde_json::from_str(&routes).unwrap_or_default();
    for route in routes.as_array().into_iter().flatten() {
        let (Some(dst), Some(dev)) = (route["dst"].as_str(), route["dev"].as_str()) else {
            continue;
        };
        let (ip, prefix) = match dst.split_once('/') {
            Some((ip, p)) => (ip, p.parse().unwrap_or(32)),
            None => (dst, 32),
        };
        let Ok(ip) = ip.parse::<Ipv4Addr>() else {
            continue; // `default` and the like never stand in the way
        };
        if overlaps(cidr, ip, prefix) && !found.iter().any(|f| f == dev) {
            found.push(dev.to_owned());
        }
    }
    Ok(found)
}

/// Whether `cidr` and `ip/prefix` share an address.
fn overlaps(cidr: Ipv4Cidr, ip: Ipv4Addr, prefix: u64) -> bool {
    let prefix = u32::try_from(prefix.min(32)).unwrap_or(32);
    let shorter = prefix.min(u32::from(cidr.prefix()));
    let mask = if shorter == 0 {
        0
    } else {
        u32::MAX << (32 - shorter)
    };
    u32::from(cidr.network()) & mask == u32::from(ip) & mask
}

async fn master_of(interface: &str) -> Option<String> {
    let out = run("ip", &["-j", "link", "show", "dev", interface])
        .await
        .ok()?;
    let links: serde_json::Value = serde_json::from_str(&out).ok()?;
    links.get(0)?.get("master")?.as_str().map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aliases_round_trip() {
        let node = Owner::Node {
            node_id: "nd-00ab".into(),
            dir: PathBuf::from("/var/lib/mallee: odd/node"),
        };
        assert_eq!(Owner::parse(&node.alias()), Some(node));
        let vpc = Owner::Vpc {
            state_dir: PathBuf::from("/d/node/network/vpc-1"),
        };
        assert_eq!(Owner::parse(&vpc.alias()), Some(vpc));
        for other in [
            "",
            "eth0 uplink",
            "mallee:node::/x",
            "mallee:vpc:rel",
            "mallee:x:/y",
        ] {
            assert_eq!(Owner::parse(other), None, "{other}");
        }
    }

    #[test]
    fn ranges_overlap_either_way() {
        let cidr: Ipv4Cidr = "198.18.0.0/24".parse().expect("cidr");
        assert!(overlaps(cidr, Ipv4Addr::new(198, 18, 0, 1), 24));
        assert!(overlaps(cidr, Ipv4Addr::new(198, 18, 0, 77), 32));
        assert!(overlaps(cidr, Ipv4Addr::new(198, 16, 0, 0), 12));
        assert!(!overlaps(cidr, Ipv4Addr::new(198, 18, 1, 1), 24));
        assert!(!overlaps(cidr, Ipv4Addr::new(10, 0, 0, 1), 8));
    }

    #[test]
    fn gone_and_stopped_owners() {
        let tmp = tempfile::tempdir().expect("tmp");
        let dir = tmp.path().join("node");
        std::fs::create_dir_all(&dir).expect("mkdir");
        std::fs::write(dir.join(crate::agent::NODE_ID_FILE), "nd-1\n").expect("id");
        let owner = Owner::node("nd-1", &dir);
        assert_eq!(owner.state(), OwnerState::Stopped);
        let lock = DirLock::acquire(&dir.join(AGENT_LOCK)).expect("lock");
        assert_eq!(owner.state(), OwnerState::Running(std::process::id()));
        assert!(
            DirLock::acquire(lock.path()).is_err(),
            "a second holder is refused"
        );
        drop(lock);
        assert_eq!(owner.state(), OwnerState::Stopped);
        // The directory made again: another node id, the old bridge is a
        // leftover.
        assert_eq!(Owner::node("nd-2", &dir).state(), OwnerState::Gone);
        std::fs::remove_dir_all(&dir).expect("rm");
        assert_eq!(owner.state(), OwnerState::Gone);
    }
}
