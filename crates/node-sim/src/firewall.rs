//! The checks the real agent makes before it accepts a firewall policy
//! (every rule must be one nftables can express), so a policy the real
//! agent refuses with `BadRequest` is refused here too.

use std::net::Ipv4Addr;

use mallee_node_api::{FirewallPolicy, FirewallRule};

/// Checks every rule of `policy`; the error names the instance and why.
pub(crate) fn validate(policy: &FirewallPolicy) -> Result<(), String> {
    for fw in &policy.instances {
        for rule in fw.ingress.iter().chain(&fw.egress) {
            check_rule(rule).map_err(|reason| format!("instance {}: {reason}", fw.instance_id))?;
        }
    }
    Ok(())
}

fn check_rule(rule: &FirewallRule) -> Result<(), String> {
    for cidr in &rule.cidrs {
        let (addr, prefix) = cidr.split_once('/').unwrap_or((cidr, "32"));
        let ok = addr.parse::<Ipv4Addr>().is_ok() && prefix.parse::<u8>().is_ok_and(|p| p <= 32);
        if !ok {
            return Err(format!("bad CIDR {cidr:?} (IPv4 only)"));
        }
    }
    let protocol = rule.protocol.trim().to_ascii_lowercase();
    let any = |v: Option<i32>| v.is_none_or(|v| v == -1);
    match protocol.as_str() {
        "-1" | "all" => Ok(()),
        "tcp" | "6" | "udp" | "17" => {
            if any(rule.from_port) && any(rule.to_port) {
                return Ok(());
            }
            let from = rule.from_port.filter(|p| *p != -1).unwrap_or(0);
            let to = rule.to_port.filter(|p| *p != -1).unwrap_or(65535);
            if (0..=65535).contains(&from) && (0..=65535).contains(&to) && from <= to {
                Ok(())
            } else {
                Err(format!(
                    "bad port range {:?}-{:?}",
                    rule.from_port, rule.to_port
                ))
            }
        }
        "icmp" | "1" => {
            for (what, v) in [("type", rule.from_port), ("code", rule.to_port)] {
                if let Some(v) = v.filter(|v| *v != -1)
                    && !(0..=255).contains(&v)
                {
                    return Err(format!("bad ICMP {what} {v}"));
                }
            }
            Ok(())
        }
        other => other
            .parse::<u8>()
            .map(|_| ())
            .map_err(|_| format!("unknown protocol {:?}", rule.protocol)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mallee_node_api::InstanceFirewall;

    fn policy(rule: FirewallRule) -> FirewallPolicy {
        FirewallPolicy {
            generation: 1,
            instances: vec![InstanceFirewall {
                instance_id: "i-1".into(),
                ingress: vec![rule],
                egress: Vec::new(),
            }],
        }
    }

    fn rule(protocol: &str, from: Option<i32>, to: Option<i32>, cidr: &str) -> FirewallRule {
        FirewallRule {
            protocol: protocol.into(),
            from_port: from,
            to_port: to,
            cidrs: vec![cidr.into()],
        }
    }

    #[test]
    fn accepts_what_nft_can_express() {
        for r in [
            rule("tcp", Some(22), Some(22), "0.0.0.0/0"),
            rule("udp", None, None, "10.0.0.1"),
            rule("icmp", Some(8), Some(-1), "172.31.0.0/16"),
            rule("-1", None, None, "1.2.3.4/32"),
            rule("47", None, None, "1.2.3.0/24"),
        ] {
            assert_eq!(validate(&policy(r.clone())), Ok(()), "{r:?}");
        }
    }

    #[test]
    fn refuses_the_rest() {
        for (r, why) in [
            (
                rule("tcp", Some(80), Some(22), "0.0.0.0/0"),
                "bad port range",
            ),
            (
                rule("tcp", Some(1), Some(70000), "0.0.0.0/0"),
                "bad port range",
            ),
            (rule("icmp", Some(300), None, "0.0.0.0/0"), "bad ICMP type"),
            (rule("sctpx", None, None, "0.0.0.0/0"), "unknown protocol"),
            (rule("tcp", None, None, "10.0.0.0/33"), "bad CIDR"),
            (rule("tcp", None, None, "fe80::/64"), "bad CIDR"),
        ] {
            let err = validate(&policy(r.clone())).expect_err("refused");
            assert!(
                err.starts_with("instance i-1: ") && err.contains(why),
                "{err}"
            );
        }
    }
}
