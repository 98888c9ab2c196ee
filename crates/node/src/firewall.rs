//! Security groups as nftables statements: the controller's
//! [`FirewallPolicy`] (source groups already expanded into addresses) is
//! checked here and turned into the per-tap chains of a VPC namespace's
//! `bridge` table (see [`crate::network`]).
//!
//! Every allowed flow is a rule; anything else is dropped. Replies are
//! recognised by a packet mark ([`ESTABLISHED_MARK`]) that the namespace's
//! `ip` table sets from conntrack: the kernel here has no conntrack in the
//! `bridge` family, but br_netfilter runs the IPv4 hooks (conntrack
//! included) on bridged frames before the bridge's forward, input and output
//! hooks, so the mark is on the packet when the per-tap chains look.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use mallee_node_api::{FirewallPolicy, FirewallRule, InstanceFirewall};
use mallee_util::cidr::Ipv4Cidr;
use mallee_util::durable;

/// The mark bit meaning "conntrack says established or related".
pub const ESTABLISHED_MARK: u32 = 0x1;

/// Errors of a firewall policy.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// A rule cannot be expressed.
    #[error("instance {instance}: {reason}")]
    Rule {
        /// The instance whose rule is wrong.
        instance: String,
        /// What is wrong.
        reason: String,
    },
    /// The policy file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The policies of one node, by instance id.
pub type Firewalls = BTreeMap<String, InstanceFirewall>;

/// Which way a rule applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    /// Toward the instance: the rule's CIDRs are sources.
    Ingress,
    /// From the instance: the rule's CIDRs are destinations.
    Egress,
}

/// Checks every rule of `policy`, so nothing is stored or applied that
/// nft would refuse half-way.
pub fn validate(policy: &FirewallPolicy) -> Result<(), FirewallError> {
    for fw in &policy.instances {
        for (rules, direction) in [
            (&fw.ingress, Direction::Ingress),
            (&fw.egress, Direction::Egress),
        ] {
            for rule in rules {
                render_rule(rule, direction, "accept").map_err(|reason| FirewallError::Rule {
                    instance: fw.instance_id.clone(),
                    reason,
                })?;
            }
        }
    }
    Ok(())
}

/// The policy as a map; a later entry for the same instance wins.
pub fn by_instance(policy: &FirewallPolicy) -> Firewalls {
    policy
        .instances
        .iter()
        .map(|fw| (fw.instance_id.clone(), fw.clone()))
        .collect()
}

/// nft statements for `rules`, each ending in `verdict`. Rules that cannot
/// be rendered (refused by [`validate`] before they get here) and rules
/// without peers are left out: they allow nothing.
pub(crate) fn render(rules: &[FirewallRule], direction: Direction, verdict: &str) -> Vec<String> {
    rules
        .iter()
        .filter_map(|r| render_rule(r, direction, verdict).ok().flatten())
        .collect()
}

/// One rule as an nft statement; `Ok(None)` when it matches nothing (no
/// CIDRs).
fn render_rule(
    rule: &FirewallRule,
    direction: Direction,
    verdict: &str,
) -> Result<Option<String>, String> {
    let mut peers = Vec::new();
    let mut any_peer = false;
    for cidr in &rule.cidrs {
        let parsed: Ipv4Cidr = if cidr.contains('/') {
            cidr.parse()
                .map_err(|_| format!("bad CIDR {cidr:?} (IPv4 only)"))?
        } else {
            let addr: Ipv4Addr = cidr
                .parse()
                .map_err(|_| format!("bad CIDR {cidr:?} (IPv4 only)"))?;
            Ipv4Cidr::host(addr)
        };
        if parsed.prefix() == 0 {
            any_peer = true;
        } else if parsed.prefix() == 32 {
            peers.push(parsed.addr().to_string());
        } else {
            peers.push(parsed.canonical().to_string());
        }
    }
    let protocol = protocol_match(rule)?;
    if peers.is_empty() && !any_peer {
        return Ok(None);
    }
    let mut statement = String::from("ether type ip ");
    if !any_peer {
        peers.sort();
        peers.dedup();
        let field = match direction {
            Direction::Ingress => "saddr",
            Direction::Egress => "daddr",
        };
        statement.push_str(&format!("ip {field} {{ {} }} ", peers.join(", ")));
    }
    statement.push_str(&protocol);
    statement.push_str(verdict);
    Ok(Some(statement))
}

/// The protocol (and port or ICMP type/code) part of a rule, with a
/// trailing space when not empty.
fn protocol_match(rule: &FirewallRule) -> Result<String, String> {
    let protocol = rule.protocol.trim().to_ascii_lowercase();
    let any = |v: Option<i32>| v.is_none_or(|v| v == -1);
    match protocol.as_str() {
        "-1" | "all" => Ok(String::new()),
        "tcp" | "6" | "udp" | "17" => {
            let name = if matches!(protocol.as_str(), "tcp" | "6") {
                "tcp"
            } else {
                "udp"
            };
            if any(rule.from_port) && any(rule.to_port) {
                return Ok(format!("ip protocol {name} "));
            }
            let from = rule.from_port.unwrap_or(0);
            let to = rule.to_port.filter(|p| *p != -1).unwrap_or(65535);
            let from = if from == -1 { 0 } else { from };
            if !(0..=65535).contains(&from) || !(0..=65535).contains(&to) || from > to {
                return Err(format!(
                    "bad port range {:?}-{:?}",
                    rule.from_port, rule.to_port
                ));
            }
            if from == to {
                Ok(format!("ip protocol {name} {name} dport {from} "))
            } else {
                Ok(format!("ip protocol {name} {name} dport {from}-{to} "))
            }
        }
        "icmp" | "1" => {
            let mut s = String::from("ip protocol icmp ");
            if let Some(t) = rule.from_port.filter(|t| *t != -1) {
                if !(0..=255).contains(&t) {
                    return Err(format!("bad ICMP type {t}"));
                }
                s.push_str(&format!("icmp type {t} "));
                if let Some(c) = rule.to_port.filter(|c| *c != -1) {
                    if !(0..=255).contains(&c) {
                        return Err(format!("bad ICMP code {c}"));
                    }
                    s.push_str(&format!("icmp code {c} "));
                }
            }
            Ok(s)
        }
        other => match other.parse::<u8>() {
            Ok(n) => Ok(format!("ip protocol {n} ")),
            Err(_) => Err(format!("unknown protocol {:?}", rule.protocol)),
        },
    }
}

/// The stored policy (generation 0 and no instances when there is none).
pub async fn load(path: &Path) -> Result<FirewallPolicy, FirewallError> {
    match tokio::fs::read(path).await {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| FirewallError::Io {
            path: path.to_owned(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, e),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(FirewallPolicy {
            generation: 0,
            instances: Vec::new(),
        }),
        Err(source) => Err(FirewallError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Stores `policy` durably (see [`durable::write_atomic`]).
pub async fn store(path: &Path, policy: &FirewallPolicy) -> Result<(), FirewallError> {
    let io = |source| FirewallError::Io {
        path: path.to_owned(),
        source,
    };
    let json = serde_json::to_vec_pretty(policy).map_err(|e| io(std::io::Error::other(e)))?;
    durable::write_atomic_async(path, &json).await.map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(protocol: &str, from: Option<i32>, to: Option<i32>, cidrs: &[&str]) -> FirewallRule {
        FirewallRule {
            protocol: protocol.into(),
            from_port: from,
            to_port: to,
            cidrs: cidrs.iter().map(|c| (*c).to_owned()).collect(),
        }
    }

    #[test]
    fn rules_render() {
        let r = |rule: FirewallRule| {
            render_rule(&rule, Direction::Ingress, "accept")
                .expect("valid")
                .expect("matches")
        };
        assert_eq!(
            r(rule("tcp", Some(22), Some(22), &["0.0.0.0/0"])),
            "ether type ip ip protocol tcp tcp dport 22 accept"
        );
        assert_eq!(
            r(rule(
                "udp",
                Some(1000),
                Some(2000),
                &["10.1.2.3/8", "192.0.2.7"]
            )),
            "ether type ip ip saddr { 10.0.0.0/8, 192.0.2.7 } ip protocol udp udp dport 1000-2000 accept"
        );
        assert_eq!(
            r(rule("icmp", Some(8), Some(-1), &["0.0.0.0/0"])),
            "ether type ip ip protocol icmp icmp type 8 accept"
        );
        assert_eq!(
            r(rule("icmp", Some(3), Some(4), &["0.0.0.0/0"])),
            "ether type ip ip protocol icmp icmp type 3 icmp code 4 accept"
        );
        assert_eq!(
            r(rule("-1", None, None, &["0.0.0.0/0"])),
            "ether type ip accept"
        );
        assert_eq!(
            r(rule("47", None, None, &["0.0.0.0/0"])),
            "ether type ip ip protocol 47 accept"
        );
        let egress = render_rule(
            &rule("tcp", None, None, &["10.0.0.1/32"]),
            Direction::Egress,
            "return",
        )
        .expect("valid")
        .expect("matches");
        assert_eq!(
            egress,
            "ether type ip ip daddr { 10.0.0.1 } ip protocol tcp return"
        );
        assert_eq!(
            render_rule(
                &rule("tcp", Some(1), Some(2), &[]),
                Direction::Ingress,
                "accept"
            ),
            Ok(None)
        );
        for bad in [
            rule("tcp", Some(5), Some(2), &["0.0.0.0/0"]),
            rule("tcp", Some(1), Some(70000), &["0.0.0.0/0"]),
            rule("icmp", Some(300), None, &["0.0.0.0/0"]),
            rule("bogus", None, None, &["0.0.0.0/0"]),
            rule("tcp", None, None, &["10.0.0.0/40"]),
            rule("tcp", None, None, &["::/0"]),
        ] {
            assert!(
                render_rule(&bad, Direction::Ingress, "accept").is_err(),
                "{bad:?}"
            );
        }
    }
}
