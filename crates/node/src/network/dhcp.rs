//! DHCP of a VPC namespace: one dnsmasq per namespace, serving each subnet's
//! bridge static leases only (the hosts file lists MAC, address and host
//! name of every port) with the gateway, the domain, the VPC's resolver
//! (which the same dnsmasq is, see `dns`) and, on a node with an overlay,
//! the MTU; restarted when its arguments change, told to re-read the hosts
//! files otherwise, and found again after an agent restart by its pid file.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::path::Path;
use std::time::Duration;

use mallee_util::process::run;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::system::{remove_file_if_exists, stop_process, write_file};
use super::{NetworkError, NodeNetwork, Ports, bridge_name, dns};

const HOSTS_FILE: &str = "dnsmasq.hosts";
const LEASES_FILE: &str = "dnsmasq.leases";
const PID_FILE: &str = "dnsmasq.pid";
const LOG_FILE: &str = "dnsmasq.log";

/// The domains DHCP hands out: those the `domain-name` of the VPC's DHCP
/// options set names (space-separated, as AWS takes them; nothing that is
/// not a domain reaches dnsmasq), else the node's own domain.
fn dhcp_domains(ports: &Ports, node_domain: &str) -> Vec<String> {
    let named: Vec<String> = ports
        .values()
        .find_map(|p| p.dns.domain_name.as_deref())
        .map(|d| {
            d.split_whitespace()
                .filter(|d| super::names::valid_hostname(d))
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default();
    if !named.is_empty() {
        named
    } else if node_domain.is_empty() {
        Vec::new()
    } else {
        vec![node_domain.to_owned()]
    }
}

impl NodeNetwork {
    /// dnsmasq's arguments for `ports`: DHCP on the bridges of their
    /// subnets, and the VPC's resolver once a port names its VPC (see
    /// `dns`); no DNS server at all before.
    fn dnsmasq_args(&self, ports: &Ports) -> Vec<String> {
        let c = &self.inner.config;
        let path = |name: &str| c.file(name).display().to_string();
        let resolver = dns::resolver(ports);
        let handed_out = dhcp_domains(ports, &c.domain);
        let mut args = vec!["--conf-file=/dev/null".to_owned()];
        match resolver {
            Some(resolver) => {
                let records = dns::records(ports, &self.overlay().remotes, &c.domain);
                args.extend(dns::dnsmasq_args(
                    resolver,
                    &records,
                    &c.domain,
                    &path(dns::NAMES_FILE),
                ));
                if !handed_out.is_empty() {
                    // Sent also to clients that do not ask for it (busybox
                    // udhcpc).
                    args.push(format!(
                        "--dhcp-option-force=option:domain-search,{}",
                        handed_out.join(",")
                    ));
                }
            }
            None => args.push("--port=0".to_owned()),
        }
        args.extend([
            // Nothing is forwarded: no upstream servers, no /etc/hosts.
            "--no-resolv".to_owned(),
            "--no-hosts".to_owned(),
            "--bind-interfaces".to_owned(),
            "--except-interface=lo".to_owned(),
        ]);
        for subnet in ports.values().map(|p| p.subnet).collect::<BTreeSet<_>>() {
            let bridge = bridge_name(subnet);
            args.push(format!("--interface={bridge}"));
            // Only addresses listed in the hosts file are handed out.
            args.push(format!(
                "--dhcp-range=set:{bridge},{},static,{},12h",
                subnet.network(),
                subnet.netmask()
            ));
            args.push(format!(
                "--dhcp-option=tag:{bridge},option:router,{}",
                subnet.first_host()
            ));
        }
        args.extend([
            format!("--dhcp-hostsfile={}", path(HOSTS_FILE)),
            format!("--dhcp-leasefile={}", path(LEASES_FILE)),
            // Answer at once for addresses we own, including to clients
            // with leases from before a restart.
            "--dhcp-authoritative".to_owned(),
            format!("--pid-file={}", path(PID_FILE)),
            format!("--log-facility={}", path(LOG_FILE)),
            // The hosts file lives in the agent's private state directory
            // and is re-read on SIGHUP, after dnsmasq would have dropped to
            // an unprivileged user that cannot read it.
            "--user=root".to_owned(),
        ]);
        if let Some(domain) = handed_out.first() {
            args.push(format!("--dhcp-option=option:domain-name,{domain}"));
        }
        // The MTU that leaves room for VXLAN between nodes (option 26),
        // sent also to clients that do not ask for it (busybox's udhcpc).
        if let Some(underlay) = &c.underlay {
            args.push(format!(
                "--dhcp-option-force=option:mtu,{}",
                underlay.guest_mtu()
            ));
        }
        args
    }

    /// Makes dnsmasq serve `ports`: started when not running (or running
    /// with other arguments, as when a subnet came or went), restarted with
    /// a cleaned lease file when a lease would block an assignment,
    /// otherwise told to re-read the hosts file; stopped when no port is
    /// left.
    pub(super) async fn sync_dnsmasq(&self, ports: &Ports) -> Result<(), NetworkError> {
        let config = &self.inner.config;
        let running = running_dnsmasq(&config.state_dir).await;
        if ports.is_empty() {
            if let Some((pid, _)) = running {
                stop_process(pid).await;
            }
            return Ok(());
        }
        let args = self.dnsmasq_args(ports);
        let leases_path = config.file(LEASES_FILE);
        let leases = match tokio::fs::read_to_string(&leases_path).await {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(source) => {
                return Err(NetworkError::Io {
                    path: leases_path,
                    source,
                });
            }
        };
        let kept = kept_leases(&leases, ports);
        let stale = kept != leases;
        match running {
            Some((pid, ref cmdline)) if !stale && cmdline.get(1..) == Some(&args[..]) => {
                kill(Pid::from_raw(pid), Signal::SIGHUP).map_err(|e| NetworkError::Dnsmasq {
                    netns: self.netns().to_owned(),
                    reason: format!("SIGHUP to {pid}: {e}"),
                })?;
                return Ok(());
            }
            Some((pid, _)) => stop_process(pid).await,
            None => {}
        }
        // dnsmasq only reads its lease file at start; a lease held by a MAC
        // that no longer owns the address would make it refuse the new owner.
        if stale {
            write_file(&leases_path, kept.as_bytes()).await?;
        }
        remove_file_if_exists(&config.file(PID_FILE)).await?;
        let mut full = vec!["netns", "exec", self.netns(), "dnsmasq"];
        full.extend(args.iter().map(String::as_str));
        // dnsmasq daemonises; its parent exits only once the daemon is set
        // up (or with the error that stopped it).
        run("ip", &full).await?;
        for _ in 0..100 {
            if running_dnsmasq(&config.state_dir).await.is_some() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(NetworkError::Dnsmasq {
            netns: self.netns().to_owned(),
            reason: format!(
                "no live process in {} (see {})",
                config.file(PID_FILE).display(),
                config.file(LOG_FILE).display()
            ),
        })
    }

    /// Writes dnsmasq's DHCP hosts file and the resolver's names for
    /// `ports` and the VPC's instances on other nodes.
    pub(super) async fn write_hosts(&self, ports: &Ports) -> Result<(), NetworkError> {
        let c = &self.inner.config;
        write_file(&c.file(HOSTS_FILE), hosts_file(ports).as_bytes()).await?;
        let records = dns::records(ports, &self.overlay().remotes, &c.domain);
        write_file(
            &c.file(dns::NAMES_FILE),
            dns::names_file(&records).as_bytes(),
        )
        .await
    }
}

/// dnsmasq's `--dhcp-hostsfile`: `mac,ip,name`. The name is the first
/// label only: DHCP's host-name option carries the short name (the domain
/// goes in option 15), and dnsmasq rejects a qualified name whose domain is
/// not its own `--domain`.
fn hosts_file(ports: &Ports) -> String {
    ports
        .values()
        .map(|p| {
            let short = p.hostname.split('.').next().unwrap_or(&p.hostname);
            format!("{},{},{short}\n", p.mac, p.ip)
        })
        .collect()
}

/// The lease file without leases whose MAC or address no longer matches a
/// port (dnsmasq's format: `expiry mac ip hostname client-id`).
fn kept_leases(leases: &str, ports: &Ports) -> String {
    leases
        .lines()
        .filter(|line| {
            let mut fields = line.split_whitespace();
            let (_, Some(mac), Some(ip)) = (fields.next(), fields.next(), fields.next()) else {
                return false;
            };
            let Ok(ip) = ip.parse::<Ipv4Addr>() else {
                return false;
            };
            ports
                .values()
                .any(|p| p.mac.eq_ignore_ascii_case(mac) && p.ip == ip)
        })
        .map(|line| format!("{line}\n"))
        .collect()
}

/// The pid and command line of this network's dnsmasq, if it runs. The
/// command line must name our pid file, so a recycled pid is never taken for
/// ours.
pub(super) async fn running_dnsmasq(state_dir: &Path) -> Option<(i32, Vec<String>)> {
    let pid_path = state_dir.join(PID_FILE);
    let pid: i32 = tokio::fs::read_to_string(&pid_path)
        .await
        .ok()?
        .trim()
        .parse()
        .ok()?;
    let raw = tokio::fs::read(format!("/proc/{pid}/cmdline")).await.ok()?;
    let cmdline: Vec<String> = raw
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    let is_dnsmasq = cmdline
        .first()
        .is_some_and(|a| Path::new(a).file_name().is_some_and(|n| n == "dnsmasq"));
    let ours = cmdline
        .iter()
        .any(|a| a.strip_prefix("--pid-file=") == Some(&pid_path.display().to_string()));
    // A zombie has an empty cmdline and is excluded above.
    (is_dnsmasq && ours).then_some((pid, cmdline))
}

#[cfg(test)]
mod tests {
    use super::super::tests::port;
    use super::*;

    #[test]
    fn stale_leases_are_dropped() {
        let mut ports = Ports::new();
        ports.insert(
            "tap1".into(),
            port("i-1", "02:00:00:00:00:01", [10, 0, 0, 5]),
        );
        let leases = "100 02:00:00:00:00:01 10.0.0.5 a *\n\
                      100 02:00:00:00:00:02 10.0.0.6 b *\n\
                      100 02:00:00:00:00:03 10.0.0.5 c *\n";
        assert_eq!(
            kept_leases(leases, &ports),
            "100 02:00:00:00:00:01 10.0.0.5 a *\n"
        );
    }

    #[test]
    fn the_vpcs_domain_name_replaces_the_nodes() {
        let mut ports = Ports::new();
        ports.insert(
            "tap1".into(),
            port("i-1", "02:00:00:00:00:01", [10, 0, 0, 5]),
        );
        assert_eq!(
            dhcp_domains(&ports, "r.compute.internal"),
            ["r.compute.internal"]
        );
        assert!(dhcp_domains(&ports, "").is_empty());
        let mut named = port("i-2", "02:00:00:00:00:02", [10, 0, 0, 6]);
        named.dns.domain_name = Some("corp.example lab.example".into());
        ports.insert("tap2".into(), named);
        assert_eq!(
            dhcp_domains(&ports, "r.compute.internal"),
            ["corp.example", "lab.example"]
        );
        // Nothing that is not a domain reaches dnsmasq's arguments.
        ports.get_mut("tap2").expect("port").dns.domain_name = Some("x,--evil".into());
        assert_eq!(
            dhcp_domains(&ports, "r.compute.internal"),
            ["r.compute.internal"]
        );
    }
}
