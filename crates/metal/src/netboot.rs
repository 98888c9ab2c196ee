//! The provisioning network's boot services: dnsmasq (DHCP for known MACs
//! only, iPXE detection, optional TFTP chainloading for non-iPXE firmware)
//! and the iPXE scripts the provisioning HTTP server hands out.
//!
//! dnsmasq runs daemonized with its own pidfile and log file, so a
//! controller restart finds it running and reuses it; the engine reads DHCP
//! acknowledgements from its log. The host table is a `--dhcp-hostsfile`
//! that is rewritten and re-read on `SIGHUP` whenever the inventory changes.

use std::fmt::Write as _;
use std::io::{Read, Seek, SeekFrom};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use mallee_util::process::{Cmd, ProcessError};

use crate::model::{Mac, System, Wipe};

/// Errors from the boot services.
#[derive(Debug, thiserror::Error)]
pub enum NetbootError {
    /// A file could not be written or read.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        source: std::io::Error,
    },
    /// dnsmasq did not start.
    #[error("dnsmasq did not start: {0}")]
    Dnsmasq(String),
    /// Bad provisioning network settings.
    #[error("bad provisioning network: {0}")]
    Config(String),
}

/// Where the provisioning network is and how its services are reached.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvisioningNetwork {
    /// Network namespace of the interface (`None`: the current one).
    pub netns: Option<String>,
    /// The interface (usually a bridge) the machines' NICs are on.
    pub interface: String,
    /// This host's address on it (dnsmasq and the HTTP server listen here).
    pub address: Ipv4Addr,
    /// Prefix length of the network.
    pub prefix: u8,
    /// Port of the provisioning HTTP server.
    pub http_port: u16,
    /// Directory for dnsmasq's configuration, host table, leases, pid and log.
    pub state_dir: PathBuf,
    /// Directory with `undionly.kpxe` (Debian's `ipxe` package) to chainload
    /// iPXE over TFTP for firmware that is plain PXE (`None`: iPXE firmware
    /// only, as QEMU's NIC ROMs are).
    pub tftp_root: Option<PathBuf>,
}

impl ProvisioningNetwork {
    /// `http://ADDRESS:PORT`.
    pub fn base_url(&self) -> String {
        format!("http://{}:{}", self.address, self.http_port)
    }

    /// The network address.
    pub fn network(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.address) & u32::from(self.netmask()))
    }

    /// The netmask.
    pub fn netmask(&self) -> Ipv4Addr {
        let bits = u32::from(self.prefix.min(32));
        Ipv4Addr::from(u32::MAX.checked_shl(32 - bits).unwrap_or(0))
    }

    /// Whether `ip` is a host address of this network (not the server's).
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::from(self.netmask());
        u32::from(ip) & mask == u32::from(self.network())
            && ip != self.address
            && u32::from(ip) & !mask != 0
            && u32::from(ip) | mask != u32::MAX
    }

    fn validate(&self) -> Result<(), NetbootError> {
        if !(8..=30).contains(&self.prefix) {
            return Err(NetbootError::Config(format!(
                "prefix /{} (want 8..=30)",
                self.prefix
            )));
        }
        let ok_name = |s: &str| {
            !s.is_empty()
                && s.len() <= 15
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        };
        if !ok_name(&self.interface) {
            return Err(NetbootError::Config(format!(
                "interface {:?}",
                self.interface
            )));
        }
        if let Some(ns) = &self.netns
            && (ns.is_empty() || ns.contains('/'))
        {
            return Err(NetbootError::Config(format!("netns {ns:?}")));
        }
        Ok(())
    }

    fn file(&self, name: &str) -> PathBuf {
        self.state_dir.join(name)
    }
}

const CONF: &str = "dnsmasq.conf";
const HOSTS: &str = "dhcp-hosts";
const LEASES: &str = "dhcp.leases";
const PIDFILE: &str = "dnsmasq.pid";
/// dnsmasq's log (DHCP transactions), in the state directory.
pub const LOG: &str = "dnsmasq.log";

/// dnsmasq's configuration for `net`. Pure.
pub fn dnsmasq_conf(net: &ProvisioningNetwork) -> String {
    let mut c = String::new();
    let f = |n: &str| net.file(n).display().to_string();
    let _ = writeln!(
        c,
        "# written by mallee: provisioning network of the bare-metal zone"
    );
    let _ = writeln!(c, "port=0");
    let _ = writeln!(c, "no-resolv\nno-hosts");
    let _ = writeln!(
        c,
        "interface={}\nbind-interfaces\nexcept-interface=lo",
        net.interface
    );
    let _ = writeln!(c, "user=root");
    // Static leases only, and only for MACs in the host table: unknown
    // machines get no answer at all.
    let _ = writeln!(
        c,
        "dhcp-range={},static,{},1h",
        net.network(),
        net.netmask()
    );
    let _ = writeln!(c, "dhcp-hostsfile={}", f(HOSTS));
    let _ = writeln!(c, "dhcp-ignore=tag:!known");
    let _ = writeln!(c, "dhcp-leasefile={}", f(LEASES));
    let _ = writeln!(c, "dhcp-authoritative");
    // No default route: nothing on the provisioning network routes anywhere.
    let _ = writeln!(c, "dhcp-option=option:router");
    // iPXE identifies itself with option 175: it gets the chain script over HTTP.
    let _ = writeln!(c, "dhcp-match=set:ipxe,175");
    let _ = writeln!(c, "dhcp-boot=tag:ipxe,{}/ipxe/chain", net.base_url());
    if let Some(tftp) = &net.tftp_root {
        let _ = writeln!(c, "enable-tftp\ntftp-root={}", tftp.display());
        let _ = writeln!(c, "dhcp-boot=tag:!ipxe,undionly.kpxe,,{}", net.address);
    }
    let _ = writeln!(c, "pid-file={}", f(PIDFILE));
    let _ = writeln!(c, "log-facility={}", f(LOG));
    c
}

/// dnsmasq's host table (`MAC,IP,HOSTNAME` per system). Pure.
pub fn dhcp_hosts(systems: &[System]) -> String {
    let mut out = String::new();
    let mut sorted: Vec<&System> = systems.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    for s in sorted {
        let _ = writeln!(out, "{},{},{}", s.mac, s.ip, s.hostname);
    }
    out
}

/// What dnsmasq's log says about a DHCP client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpLogEvent {
    /// A lease was acknowledged.
    Ack {
        /// Client MAC.
        mac: Mac,
        /// Address given.
        ip: Ipv4Addr,
    },
    /// A request from a MAC that is not in the table was ignored.
    Ignored {
        /// Client MAC.
        mac: Mac,
    },
}

/// Parses one dnsmasq log line (`… DHCPACK(br0) 10.254.0.11 52:54:00:… m1`,
/// `… DHCPDISCOVER(br0) 52:54:00:… ignored`).
pub fn parse_log_line(line: &str) -> Option<DhcpLogEvent> {
    let mut words = line
        .split_whitespace()
        .skip_while(|w| !w.starts_with("DHCP"));
    let verb = words.next()?;
    let rest: Vec<&str> = words.collect();
    if verb.starts_with("DHCPACK(") {
        let ip = rest.first()?.parse().ok()?;
        let mac = rest.get(1)?.parse().ok()?;
        return Some(DhcpLogEvent::Ack { mac, ip });
    }
    if verb.starts_with("DHCPDISCOVER(") && rest.last() == Some(&"ignored") {
        let mac = rest.first()?.parse().ok()?;
        return Some(DhcpLogEvent::Ignored { mac });
    }
    None
}

/// The dnsmasq of a provisioning network.
#[derive(Debug)]
pub struct Dnsmasq {
    net: ProvisioningNetwork,
}

fn io(context: String) -> impl FnOnce(std::io::Error) -> NetbootError {
    move |source| NetbootError::Io { context, source }
}

/// Replaces the file at `path` with `data` durably (see
/// [`mallee_util::durable::write_atomic`]).
fn write_atomic(path: &Path, data: &str) -> Result<(), NetbootError> {
    mallee_util::durable::write_atomic(path, data.as_bytes())
        .map_err(io(format!("write {}", path.display())))
}

impl Dnsmasq {
    /// Writes the configuration and host table and makes sure a dnsmasq
    /// with this configuration runs (reusing one that does, restarting one
    /// whose configuration changed).
    pub async fn ensure(
        net: &ProvisioningNetwork,
        systems: &[System],
    ) -> Result<Self, NetbootError> {
        net.validate()?;
        std::fs::create_dir_all(&net.state_dir)
            .map_err(io(format!("create {}", net.state_dir.display())))?;
        let conf = dnsmasq_conf(net);
        let conf_path = net.file(CONF);
        let old = std::fs::read_to_string(&conf_path).unwrap_or_default();
        write_atomic(&net.file(HOSTS), &dhcp_hosts(systems))?;
        let me = Self { net: net.clone() };
        match me.pid() {
            Some(pid) if old == conf => {
                tracing::info!(pid, "dnsmasq of the provisioning network already runs");
                me.reload()?;
                return Ok(me);
            }
            Some(pid) => {
                tracing::info!(pid, "dnsmasq configuration changed: restarting it");
                me.stop().await;
            }
            None => {}
        }
        write_atomic(&conf_path, &conf)?;
        let dnsmasq = match &net.netns {
            Some(ns) => Cmd::new("ip").args(["netns", "exec", ns, "dnsmasq"]),
            None => Cmd::new("dnsmasq"),
        };
        // dnsmasq daemonizes: its parent exits once the daemon is set up.
        dnsmasq
            .arg(format!("--conf-file={}", conf_path.display()))
            .output()
            .await
            .map_err(|e| match e {
                ProcessError::Failed { status, stderr, .. } => {
                    NetbootError::Dnsmasq(format!("{status}: {stderr}"))
                }
                other => NetbootError::Dnsmasq(other.to_string()),
            })?;
        for _ in 0..50 {
            if me.pid().is_some() {
                tracing::info!(interface = %net.interface, address = %net.address, "dnsmasq started");
                return Ok(me);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(NetbootError::Dnsmasq(format!(
            "no pid in {} after 5 s",
            net.file(PIDFILE).display()
        )))
    }

    /// The pid of the dnsmasq that runs with this configuration, if any.
    pub fn pid(&self) -> Option<i32> {
        let pid: i32 = std::fs::read_to_string(self.net.file(PIDFILE))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
        let want = format!("--conf-file={}", self.net.file(CONF).display());
        cmdline
            .split(|b| *b == 0)
            .any(|a| a == want.as_bytes())
            .then_some(pid)
    }

    /// Rewrites the host table and has dnsmasq re-read it.
    pub fn set_hosts(&self, systems: &[System]) -> Result<(), NetbootError> {
        write_atomic(&self.net.file(HOSTS), &dhcp_hosts(systems))?;
        self.reload()
    }

    fn reload(&self) -> Result<(), NetbootError> {
        if let Some(pid) = self.pid() {
            nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGHUP,
            )
            .map_err(|e| NetbootError::Dnsmasq(format!("SIGHUP {pid}: {e}")))?;
        }
        Ok(())
    }

    /// Stops dnsmasq (and waits for it to go).
    pub async fn stop(&self) {
        let Some(pid) = self.pid() else { return };
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
        for _ in 0..50 {
            if self.pid().is_none() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The log file.
    pub fn log_path(&self) -> PathBuf {
        self.net.file(LOG)
    }
}

/// Follows a growing log file from its current end.
#[derive(Debug)]
pub struct LogFollower {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl LogFollower {
    /// Starts at the file's current end.
    pub fn new(path: PathBuf) -> Self {
        let offset = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        Self {
            path,
            offset,
            partial: String::new(),
        }
    }

    /// The complete lines written since the last call.
    pub fn poll(&mut self) -> Vec<String> {
        let Ok(mut f) = std::fs::File::open(&self.path) else {
            return vec![];
        };
        let len = f.metadata().map(|m| m.len()).unwrap_or(0);
        if len < self.offset {
            // Truncated or replaced: start over.
            self.offset = 0;
            self.partial.clear();
        }
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return vec![];
        }
        let mut buf = Vec::new();
        if f.read_to_end(&mut buf).is_err() {
            return vec![];
        }
        self.offset += buf.len() as u64;
        self.partial.push_str(&String::from_utf8_lossy(&buf));
        let mut lines: Vec<String> = self.partial.split('\n').map(str::to_owned).collect();
        self.partial = lines.pop().unwrap_or_default();
        lines
    }
}

/// Whether something accepts a TCP connection on `addr` within `timeout`,
/// connecting from network namespace `netns` (the provisioning network's)
/// when given: a short-lived thread enters the namespace and connects.
pub async fn tcp_answers(
    netns: Option<&str>,
    addr: std::net::SocketAddrV4,
    timeout: Duration,
) -> bool {
    let netns = netns.map(str::to_owned);
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("metal-probe".into())
        .spawn(move || {
            let r = (|| -> std::io::Result<()> {
                if let Some(ns) = &netns {
                    let f = std::fs::File::open(Path::new("/run/netns").join(ns))?;
                    nix::sched::setns(
                        std::os::fd::AsFd::as_fd(&f),
                        nix::sched::CloneFlags::CLONE_NEWNET,
                    )
                    .map_err(std::io::Error::from)?;
                }
                std::net::TcpStream::connect_timeout(&addr.into(), timeout).map(drop)
            })();
            let _ = tx.send(r.is_ok());
        });
    spawned.is_ok() && rx.await.unwrap_or(false)
}

/// The script every iPXE client gets first (dnsmasq's boot file name):
/// chains to the per-MAC script of the NIC that booted.
pub fn chain_script(base_url: &str) -> String {
    format!("#!ipxe\nchain {base_url}/ipxe/${{netX/mac:hexhyp}}\n")
}

/// The per-MAC script while netboot is on: the deploy agent's kernel and
/// initramfs, with the callback URL (carrying the provisioning token) on
/// the kernel command line.
pub fn deploy_script(base_url: &str, token: &str, disk: Option<&str>, extra_args: &str) -> String {
    let deploy = format!("{base_url}/deploy/{token}");
    let mut args = format!("console=ttyS0 root=initramfs panic=30 mallee.deploy={deploy}");
    if let Some(disk) = disk {
        let _ = write!(args, " mallee.disk={disk}");
    }
    if !extra_args.trim().is_empty() {
        let _ = write!(args, " {}", extra_args.trim());
    }
    format!(
        "#!ipxe\necho mallee: deploy agent\nkernel {deploy}/kernel {args}\ninitrd {deploy}/initrd\nboot\n"
    )
}

/// The per-MAC script of a system being wiped: the deploy agent in wipe
/// mode (`mallee.wipe=MODE`), which overwrites the disk instead of
/// installing an image.
pub fn wipe_script(base_url: &str, token: &str, disk: Option<&str>, mode: Wipe) -> String {
    deploy_script(base_url, token, disk, &format!("mallee.wipe={mode}")).replacen(
        "echo mallee: deploy agent",
        "echo mallee: deploy agent (disk wipe)",
        1,
    )
}

/// The per-MAC script of an installer profile while netboot is on: the
/// distro's kernel and initrd (served under the provisioning token) with
/// the rendered kernel arguments, which point the installer at its answer
/// file.
pub fn installer_script(base_url: &str, token: &str, distro: &str, args: &str) -> String {
    let deploy = format!("{base_url}/deploy/{token}");
    format!(
        "#!ipxe\necho mallee: installer {distro}\nkernel {deploy}/distro/kernel {}\ninitrd {deploy}/distro/initrd\nboot\n",
        args.trim()
    )
}

/// The per-MAC script while netboot is off (or for a system that is not
/// being provisioned): leave iPXE so the firmware boots the next device,
/// the disk.
pub fn local_boot_script() -> String {
    "#!ipxe\necho mallee: netboot off, booting from disk\nexit\n".to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::power::PowerSpec;

    fn net() -> ProvisioningNetwork {
        ProvisioningNetwork {
            netns: Some("lab".into()),
            interface: "br0".into(),
            address: "10.254.0.1".parse().expect("ip"),
            prefix: 24,
            http_port: 8780,
            state_dir: "/var/lib/mallee/metal".into(),
            tftp_root: None,
        }
    }

    #[test]
    fn conf_answers_known_macs_only_and_sends_ipxe_to_http() {
        let c = dnsmasq_conf(&net());
        for line in [
            "port=0",
            "interface=br0",
            "bind-interfaces",
            "dhcp-range=10.254.0.0,static,255.255.255.0,1h",
            "dhcp-hostsfile=/var/lib/mallee/metal/dhcp-hosts",
            "dhcp-ignore=tag:!known",
            "dhcp-match=set:ipxe,175",
            "dhcp-boot=tag:ipxe,http://10.254.0.1:8780/ipxe/chain",
            "dhcp-option=option:router",
            "log-facility=/var/lib/mallee/metal/dnsmasq.log",
        ] {
            assert!(c.lines().any(|l| l == line), "missing {line:?} in\n{c}");
        }
        assert!(!c.contains("tftp"));
        let with_tftp = dnsmasq_conf(&ProvisioningNetwork {
            tftp_root: Some("/usr/lib/ipxe".into()),
            ..net()
        });
        assert!(with_tftp.contains("enable-tftp\ntftp-root=/usr/lib/ipxe\n"));
        assert!(with_tftp.contains("dhcp-boot=tag:!ipxe,undionly.kpxe,,10.254.0.1\n"));
    }

    #[test]
    fn host_table() {
        let mk = |n: &str, mac: &str, ip: &str| {
            System::new(
                n,
                mac.parse().expect("mac"),
                ip.parse().expect("ip"),
                "g",
                PowerSpec::Manual,
            )
            .expect("system")
        };
        let t = dhcp_hosts(&[
            mk("m2", "52-54-00-00-00-02", "10.254.0.12"),
            mk("m1", "52:54:00:00:00:0A", "10.254.0.11"),
        ]);
        assert_eq!(
            t,
            "52:54:00:00:00:0a,10.254.0.11,m1\n52:54:00:00:00:02,10.254.0.12,m2\n"
        );
    }

    #[test]
    fn network_math() {
        let n = net();
        assert_eq!(n.network(), Ipv4Addr::new(10, 254, 0, 0));
        assert!(n.contains("10.254.0.11".parse().expect("ip")));
        assert!(
            !n.contains("10.254.0.1".parse().expect("ip")),
            "the server's own"
        );
        assert!(
            !n.contains("10.254.0.255".parse().expect("ip")),
            "broadcast"
        );
        assert!(!n.contains("10.254.1.5".parse().expect("ip")));
        assert!(
            ProvisioningNetwork {
                prefix: 31,
                ..net()
            }
            .validate()
            .is_err()
        );
        assert!(
            ProvisioningNetwork {
                interface: "br0;x".into(),
                ..net()
            }
            .validate()
            .is_err()
        );
    }

    #[test]
    fn log_lines() {
        let ack = "Nov 22 08:34:20 dnsmasq-dhcp[30710]: 3730755595 DHCPACK(br0) 10.254.7.11 52:54:00:aa:00:01 m1";
        assert_eq!(
            parse_log_line(ack),
            Some(DhcpLogEvent::Ack {
                mac: "52:54:00:aa:00:01".parse().expect("mac"),
                ip: "10.254.7.11".parse().expect("ip"),
            })
        );
        let ign = "Nov 22 08:34:20 dnsmasq-dhcp[1]: DHCPDISCOVER(br0) 52:54:00:bb:00:09 ignored";
        assert_eq!(
            parse_log_line(ign),
            Some(DhcpLogEvent::Ignored {
                mac: "52:54:00:bb:00:09".parse().expect("mac")
            })
        );
        assert_eq!(
            parse_log_line(
                "Nov 22 dnsmasq-dhcp[1]: DHCPREQUEST(br0) 10.254.7.11 52:54:00:aa:00:01"
            ),
            None
        );
        assert_eq!(
            parse_log_line("dnsmasq[1]: started, version 2.90 DNS disabled"),
            None
        );
    }

    #[test]
    fn follower_returns_whole_new_lines() {
        let dir = tempfile::tempdir().expect("tmp");
        let p = dir.path().join("log");
        std::fs::write(&p, "old line\n").expect("write");
        let mut f = LogFollower::new(p.clone());
        assert!(f.poll().is_empty());
        let mut file = std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .expect("open");
        std::io::Write::write_all(&mut file, b"one\ntw").expect("append");
        assert_eq!(f.poll(), vec!["one".to_owned()]);
        std::io::Write::write_all(&mut file, b"o\n").expect("append");
        assert_eq!(f.poll(), vec!["two".to_owned()]);
    }

    #[test]
    fn wipe_script_boots_the_agent_in_wipe_mode() {
        let s = wipe_script(
            "http://10.254.0.1:8780",
            "tok",
            Some("/dev/sda"),
            Wipe::Zero,
        );
        assert!(
            s.starts_with("#!ipxe\necho mallee: deploy agent (disk wipe)\n"),
            "{s}"
        );
        assert!(
            s.contains("kernel http://10.254.0.1:8780/deploy/tok/kernel console=ttyS0 root=initramfs panic=30 mallee.deploy=http://10.254.0.1:8780/deploy/tok mallee.disk=/dev/sda mallee.wipe=zero\n"),
            "{s}"
        );
        assert!(
            s.contains("initrd http://10.254.0.1:8780/deploy/tok/initrd\nboot\n"),
            "{s}"
        );
    }

    #[test]
    fn scripts() {
        assert_eq!(
            chain_script("http://10.254.0.1:8780"),
            "#!ipxe\nchain http://10.254.0.1:8780/ipxe/${netX/mac:hexhyp}\n"
        );
        let d = deploy_script("http://h:1", "tok", Some("/dev/sda"), " quiet ");
        assert!(d.starts_with("#!ipxe\n"));
        assert!(d.contains("kernel http://h:1/deploy/tok/kernel console=ttyS0 root=initramfs panic=30 mallee.deploy=http://h:1/deploy/tok mallee.disk=/dev/sda quiet\n"), "{d}");
        assert!(d.contains("initrd http://h:1/deploy/tok/initrd\nboot\n"));
        assert!(local_boot_script().ends_with("exit\n"));
    }
}
