//! The VPC's DNS resolver, AWS's "AmazonProvidedDNS", served by the
//! namespace's dnsmasq (already there for DHCP, so a VPC costs no second
//! process): it listens at 169.254.169.253 and at the VPC's base address
//! plus two, and DHCP hands out the latter with the search domain. It
//! answers A and PTR for every instance of the VPC on any node, from names
//! the controller gives (local ports and the overlay's remote ones): the
//! private DNS name and the public one, both to the private address, as
//! AWS answers inside a VPC. Other names in those domains, and private
//! reverse lookups nobody owns, get NXDOMAIN at once; nothing is forwarded,
//! since no upstream server is configured.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::Ipv4Addr;

use mallee_util::cidr::Ipv4Cidr;

use super::{Ports, RemoteSpec};

/// The resolver address every VPC has besides its base + 2, as on AWS.
pub const DNS_ADDR: Ipv4Addr = Ipv4Addr::new(169, 254, 169, 253);

/// dnsmasq's `--addn-hosts`: `IP name…` per instance of the VPC.
pub(super) const NAMES_FILE: &str = "dns.hosts";

/// The resolver address of a VPC: its base address + 2.
pub fn resolver_of(vpc: Ipv4Cidr) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(vpc.network()).wrapping_add(2))
}

/// The resolver of the ports' VPC; `None` until a port knows its VPC.
pub(super) fn resolver(ports: &Ports) -> Option<Ipv4Addr> {
    ports.values().find_map(|p| p.dns.vpc_cidr).map(resolver_of)
}

/// A port's fully qualified private name: its host name, in `domain` when
/// it is a single label.
fn qualified(hostname: &str, domain: &str) -> String {
    if hostname.contains('.') || domain.is_empty() {
        hostname.to_owned()
    } else {
        format!("{hostname}.{domain}")
    }
}

/// Every (address, names) the resolver answers, the private name first so
/// that it is the one PTR queries get.
pub(super) fn records(
    ports: &Ports,
    remotes: &[RemoteSpec],
    domain: &str,
) -> Vec<(Ipv4Addr, Vec<String>)> {
    let mut records: Vec<(Ipv4Addr, Vec<String>)> = ports
        .values()
        .map(|p| {
            let mut names = vec![qualified(&p.hostname, domain)];
            names.extend(p.dns.public_hostname.iter().cloned());
            (p.ip, names)
        })
        .collect();
    records.extend(
        remotes
            .iter()
            .filter(|r| !r.dns_names.is_empty())
            .map(|r| (r.ip, r.dns_names.clone())),
    );
    records.sort();
    records.dedup_by(|a, b| a.0 == b.0);
    records
}

/// The `--addn-hosts` file for `records`.
pub(super) fn names_file(records: &[(Ipv4Addr, Vec<String>)]) -> String {
    let mut out = String::new();
    for (ip, names) in records {
        let _ = writeln!(out, "{ip} {}", names.join(" "));
    }
    out
}

/// The domains the resolver owns (NXDOMAIN for names nobody has in them):
/// each name's parent, and the VPC's own domain.
fn domains(records: &[(Ipv4Addr, Vec<String>)], domain: &str) -> BTreeSet<String> {
    let mut domains: BTreeSet<String> = records
        .iter()
        .flat_map(|(_, names)| names.iter())
        .filter_map(|n| n.split_once('.').map(|(_, parent)| parent.to_owned()))
        .filter(|d| d.contains('.'))
        .collect();
    if !domain.is_empty() {
        domains.insert(domain.to_owned());
    }
    domains
}

/// dnsmasq's DNS arguments for a VPC whose resolver is `resolver`.
pub(super) fn dnsmasq_args(
    resolver: Ipv4Addr,
    records: &[(Ipv4Addr, Vec<String>)],
    domain: &str,
    names_path: &str,
) -> Vec<String> {
    let mut args = vec![
        "--port=53".to_owned(),
        format!("--listen-address={DNS_ADDR}"),
        format!("--listen-address={resolver}"),
        format!("--addn-hosts={names_path}"),
        // Private reverse lookups nobody owns, and unqualified names, are
        // answered here instead of forwarded.
        "--bogus-priv".to_owned(),
        "--domain-needed".to_owned(),
        format!("--dhcp-option=option:dns-server,{resolver}"),
    ];
    for d in domains(records, domain) {
        args.push(format!("--local=/{d}/"));
    }
    args
}

#[cfg(test)]
mod tests {
    use super::super::tests::port;
    use super::*;
    use crate::network::PortDns;

    #[test]
    fn the_resolver_is_the_vpc_base_plus_two() {
        let vpc: Ipv4Cidr = "172.31.0.0/16".parse().expect("cidr");
        assert_eq!(resolver_of(vpc), Ipv4Addr::new(172, 31, 0, 2));
        let mut ports = Ports::new();
        ports.insert("t1".into(), port("i-1", "02:00:00:00:00:01", [10, 0, 0, 5]));
        assert_eq!(resolver(&ports), None);
        ports.insert(
            "t2".into(),
            crate::network::Port {
                dns: PortDns {
                    vpc_cidr: Some("10.0.0.0/16".parse().expect("cidr")),
                    public_hostname: None,
                    domain_name: None,
                },
                ..port("i-2", "02:00:00:00:00:02", [10, 0, 0, 6])
            },
        );
        assert_eq!(resolver(&ports), Some(Ipv4Addr::new(10, 0, 0, 2)));
    }

    #[test]
    fn local_and_remote_instances_are_named_private_name_first() {
        let mut ports = Ports::new();
        ports.insert(
            "t1".into(),
            crate::network::Port {
                hostname: "ip-10-0-0-5".into(),
                dns: PortDns {
                    vpc_cidr: Some("10.0.0.0/16".parse().expect("cidr")),
                    public_hostname: Some("ec2-198-18-0-9.r.compute.mallee".into()),
                    domain_name: None,
                },
                ..port("i-1", "02:00:00:00:00:01", [10, 0, 0, 5])
            },
        );
        let remote = RemoteSpec {
            mac: "02:00:00:00:00:07".into(),
            ip: Ipv4Addr::new(10, 0, 0, 7),
            vni: 5,
            underlay: Ipv4Addr::new(192, 0, 2, 2),
            dns_names: vec!["ip-10-0-0-7.r.compute.internal".into()],
        };
        let records = records(&ports, &[remote], "r.compute.internal");
        assert_eq!(
            names_file(&records),
            "10.0.0.5 ip-10-0-0-5.r.compute.internal ec2-198-18-0-9.r.compute.mallee\n\
             10.0.0.7 ip-10-0-0-7.r.compute.internal\n"
        );
        let args = dnsmasq_args(
            Ipv4Addr::new(10, 0, 0, 2),
            &records,
            "r.compute.internal",
            "/s/dns.hosts",
        );
        assert!(args.contains(&"--local=/r.compute.internal/".to_owned()));
        assert!(args.contains(&"--local=/r.compute.mallee/".to_owned()));
        assert!(args.contains(&"--listen-address=10.0.0.2".to_owned()));
        assert!(args.contains(&"--dhcp-option=option:dns-server,10.0.0.2".to_owned()));
    }
}
