//! The nftables rules of a VPC namespace, rendered whole from the ports and
//! security groups and applied in one `nft -f -` transaction.

use std::net::Ipv4Addr;

use mallee_util::process::Cmd;

use super::overlay::OverlayPort;
use mallee_node_api::INSTANCE_API_PORT;

use super::{DNS_ADDR, METADATA_ADDR, NFT_TABLE, NetworkError, NodeNetwork, Port, Ports, UPLINK};
use crate::firewall::{Direction, ESTABLISHED_MARK, Firewalls};

impl NodeNetwork {
    /// Replaces the namespace's tables in one transaction.
    pub(super) async fn apply_rules(&self, ports: &Ports) -> Result<(), NetworkError> {
        let firewalls = self
            .inner
            .firewalls
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let uplink = self.inner.config.public.is_some().then_some(UPLINK);
        let overlay = self.overlay_ports(ports);
        let script = ruleset(ports, &firewalls, uplink, &overlay);
        nft_apply(Some(self.netns()), &script).await
    }
}

/// The nftables script replacing tables `bridge mallee` and `ip mallee`.
///
/// `bridge mallee`: frames from a port not listed are dropped (prerouting
/// policy), so a link attached to a bridge by mistake carries nothing; a
/// port may send only from its MAC and address; what leaves a port passes
/// its instance's egress chain (forward and input hooks), what reaches a
/// port its ingress chain (forward and output hooks). A vxlan port (to
/// the VPC's other nodes) carries neither DHCP nor ARP for its subnet's
/// gateway, either way (every node has its own gateway with the same
/// address and MAC); it lets in only frames from the remote instances'
/// MACs and the gateway's (routed on another node), which reach a tap
/// only through the tap's ingress chain, and never the node itself.
///
/// `ip mallee`: the conntrack mark the bridge chains read, and with an
/// uplink the public addresses' DNAT/SNAT (ports routed to an internet
/// gateway), SNAT to a NAT gateway's address (ports routed to one; new
/// flows to that address are dropped), no forwarding from the public
/// side except to DNAT'ed flows and their replies, and no private source
/// address leaving through the uplink (ports without a route stay off it).
fn ruleset(
    ports: &Ports,
    firewalls: &Firewalls,
    uplink: Option<&str>,
    overlay: &[OverlayPort],
) -> String {
    let mark = format!("meta mark & {ESTABLISHED_MARK:#x} == {ESTABLISHED_MARK:#x}");
    let resolver = super::dns::resolver(ports);
    let mut s = format!(
        "table bridge {NFT_TABLE}\ndelete table bridge {NFT_TABLE}\ntable bridge {NFT_TABLE} {{\n"
    );
    for (tap, port) in ports {
        let Port { mac, ip, .. } = port;
        s.push_str(&format!(
            "  chain port_{tap} {{\n\
             \x20   ether saddr != {mac} drop\n\
             \x20   ether type arp arp htype 1 arp ptype ip arp saddr ether {mac} arp saddr ip {{ 0.0.0.0, {ip} }} accept\n\
             \x20   ether type ip ip saddr {ip} accept\n\
             \x20   ether type ip ip saddr 0.0.0.0 ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept\n\
             \x20   drop\n\
             \x20 }}\n"
        ));
        let firewall = firewalls.get(&port.instance_id);
        s.push_str(&format!(
            "  chain egress_{tap} {{\n\
             \x20   {mark} return\n\
             \x20   ether type arp return\n\
             \x20   ether type ip ip protocol udp udp sport 68 udp dport 67 return\n\
             \x20   ether type ip ip daddr {METADATA_ADDR} ip protocol tcp tcp dport {{ 80, {INSTANCE_API_PORT} }} return\n"
        ));
        if let Some(resolver) = resolver {
            s.push_str(&format!(
                "    ether type ip ip daddr {{ {DNS_ADDR}, {resolver} }} meta l4proto {{ tcp, udp }} th dport 53 return\n"
            ));
        }
        if let Some(fw) = firewall {
            for rule in crate::firewall::render(&fw.egress, Direction::Egress, "return") {
                s.push_str(&format!("    {rule}\n"));
            }
        }
        s.push_str("    drop\n  }\n");
        s.push_str(&format!(
            "  chain ingress_{tap} {{\n\
             \x20   {mark} accept\n\
             \x20   ether type arp accept\n\
             \x20   ether type ip ip protocol udp udp sport 67 udp dport 68 accept\n"
        ));
        if let Some(fw) = firewall {
            for rule in crate::firewall::render(&fw.ingress, Direction::Ingress, "accept") {
                s.push_str(&format!("    {rule}\n"));
            }
        }
        s.push_str("    drop\n  }\n");
    }
    for port in overlay {
        let vx = &port.name;
        let gateway = port.segment.subnet.first_host();
        // The gateway and the resolver are on every node: each answers
        // for itself, never across the overlay.
        let locals = match resolver {
            Some(r) => format!("{{ {gateway}, {r} }}"),
            None => gateway.to_string(),
        };
        let local_only = format!(
            "\x20   ether type arp arp saddr ip {locals} drop\n\
             \x20   ether type arp arp daddr ip {locals} drop\n\
             \x20   ether type ip ip protocol udp udp dport {{ 67, 68 }} drop\n"
        );
        let sources: Vec<&str> = port.sources.iter().map(String::as_str).collect();
        s.push_str(&format!(
            "  chain overlay_in_{vx} {{\n{local_only}\
             \x20   ether saddr {{ {} }} accept\n\
             \x20   drop\n\
             \x20 }}\n\
             \x20 chain overlay_out_{vx} {{\n{local_only}\
             \x20   accept\n\
             \x20 }}\n",
            sources.join(", ")
        ));
    }
    let hook = |name: &str, hook: &str, priority: i32, policy: &str, body: String| {
        format!(
            "  chain {name} {{\n    type filter hook {hook} priority {priority}; policy {policy};\n{body}  }}\n"
        )
    };
    let each = |f: &dyn Fn(&str) -> String| -> String { ports.keys().map(|t| f(t)).collect() };
    let each_vx =
        |f: &dyn Fn(&str) -> String| -> String { overlay.iter().map(|p| f(&p.name)).collect() };
    s.push_str(&hook(
        "prerouting",
        "prerouting",
        -200,
        "drop",
        each(&|t| format!("    iifname \"{t}\" jump port_{t}\n"))
            + &each_vx(&|v| format!("    iifname \"{v}\" jump overlay_in_{v}\n")),
    ));
    s.push_str(&hook(
        "forward",
        "forward",
        0,
        "drop",
        each(&|t| format!("    iifname \"{t}\" jump egress_{t}\n"))
            + &each(&|t| format!("    oifname \"{t}\" jump ingress_{t}\n"))
            + &each_vx(&|v| format!("    oifname \"{v}\" jump overlay_out_{v}\n")),
    ));
    s.push_str(&hook(
        "input",
        "input",
        0,
        "accept",
        each(&|t| format!("    iifname \"{t}\" jump egress_{t}\n"))
            + &each_vx(&|v| format!("    iifname \"{v}\" drop\n")),
    ));
    s.push_str(&hook(
        "output",
        "output",
        0,
        "accept",
        each(&|t| format!("    oifname \"{t}\" jump ingress_{t}\n"))
            + &each_vx(&|v| format!("    oifname \"{v}\" jump overlay_out_{v}\n")),
    ));
    s.push_str("}\n");

    let set_mark = format!(
        "    meta mark set meta mark & {:#x}\n    ct state established,related meta mark set meta mark | {ESTABLISHED_MARK:#x}\n",
        !ESTABLISHED_MARK
    );
    s.push_str(&format!(
        "table ip {NFT_TABLE}\ndelete table ip {NFT_TABLE}\ntable ip {NFT_TABLE} {{\n"
    ));
    s.push_str(&hook(
        "mark_in",
        "prerouting",
        -150,
        "accept",
        set_mark.clone(),
    ));
    s.push_str(&hook("mark_out", "output", -150, "accept", set_mark));
    if let Some(uplink) = uplink {
        let mapped: Vec<(Ipv4Addr, Ipv4Addr)> = ports
            .values()
            .filter_map(|p| p.mapped_public_ip().map(|public| (public, p.ip)))
            .collect();
        let natted: Vec<(Ipv4Addr, Ipv4Addr)> = ports
            .values()
            .filter_map(|p| p.nat_ip().map(|public| (public, p.ip)))
            .collect();
        let mut dnat = String::new();
        let mut snat = String::new();
        for (public, private) in &mapped {
            dnat.push_str(&format!(
                "    iifname \"{uplink}\" ip daddr {public} dnat to {private}\n"
            ));
            snat.push_str(&format!(
                "    oifname \"{uplink}\" ip saddr {private} snat to {public}\n"
            ));
        }
        // Behind a NAT gateway: out only, under the gateway's address.
        for (public, private) in &natted {
            snat.push_str(&format!(
                "    oifname \"{uplink}\" ip saddr {private} snat to {public}\n"
            ));
        }
        let mut nat_ips: Vec<String> = natted.iter().map(|(p, _)| p.to_string()).collect();
        nat_ips.sort();
        nat_ips.dedup();
        s.push_str(&format!(
            "  chain public_dnat {{\n    type nat hook prerouting priority -100; policy accept;\n{dnat}  }}\n"
        ));
        s.push_str(&format!(
            "  chain public_snat {{\n    type nat hook postrouting priority 100; policy accept;\n{snat}  }}\n"
        ));
        s.push_str(&hook(
            "forward",
            "forward",
            0,
            "accept",
            format!(
                "    iifname \"{uplink}\" ct state established,related accept\n\
                 \x20   iifname \"{uplink}\" ct status dnat accept\n\
                 \x20   iifname \"{uplink}\" drop\n"
            ),
        ));
        if !nat_ips.is_empty() {
            // A NAT gateway's address answers replies only (conntrack
            // turns them back to the private side before this hook).
            s.push_str(&hook(
                "nat_gateway_in",
                "input",
                0,
                "accept",
                format!(
                    "    iifname \"{uplink}\" ip daddr {{ {} }} drop\n",
                    nat_ips.join(", ")
                ),
            ));
        }
        let mut leak = String::new();
        if !mapped.is_empty() || !nat_ips.is_empty() {
            let mut publics: Vec<String> = mapped.iter().map(|(p, _)| p.to_string()).collect();
            publics.extend(nat_ips.iter().cloned());
            publics.sort();
            publics.dedup();
            leak.push_str(&format!(
                "    oifname \"{uplink}\" ip saddr {{ {} }} accept\n",
                publics.join(", ")
            ));
        }
        leak.push_str(&format!("    oifname \"{uplink}\" drop\n"));
        s.push_str(&hook("leak", "postrouting", 200, "accept", leak));
    }
    s.push_str("}\n");
    s
}

/// Runs `nft -f -` with `script` (inside `netns` when given): one
/// transaction, applied whole or not at all.
pub(crate) async fn nft_apply(netns: Option<&str>, script: &str) -> Result<(), NetworkError> {
    let nft = match netns {
        Some(ns) => Cmd::new("ip").args(["netns", "exec", ns, "nft"]),
        None => Cmd::new("nft"),
    };
    nft.args(["-f", "-"]).stdin(script).run().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::port;
    use super::*;

    #[test]
    fn ruleset_lists_every_port_its_firewall_and_nat() {
        let mut ports = Ports::new();
        let mut a = port("i-a", "02:00:00:00:00:01", [10, 0, 0, 5]);
        a.public_ip = Some(Ipv4Addr::new(198, 18, 0, 9));
        ports.insert("tapa".into(), a);
        let mut firewalls = Firewalls::new();
        firewalls.insert(
            "i-a".into(),
            mallee_node_api::InstanceFirewall {
                instance_id: "i-a".into(),
                ingress: vec![mallee_node_api::FirewallRule {
                    protocol: "tcp".into(),
                    from_port: Some(22),
                    to_port: Some(22),
                    cidrs: vec!["0.0.0.0/0".into()],
                }],
                egress: Vec::new(),
            },
        );
        let rules = ruleset(&ports, &firewalls, Some(UPLINK), &[]);
        assert!(rules.contains("iifname \"tapa\" jump port_tapa"));
        assert!(rules.contains("iifname \"tapa\" jump egress_tapa"));
        assert!(rules.contains("oifname \"tapa\" jump ingress_tapa"));
        assert!(rules.contains("ether saddr != 02:00:00:00:00:01 drop"));
        assert!(rules.contains("ip saddr 10.0.0.5 accept"));
        assert!(rules.contains("ip protocol tcp tcp dport 22 accept"));
        assert!(rules.contains("ip daddr 198.18.0.9 dnat to 10.0.0.5"));
        assert!(rules.contains("ip saddr 10.0.0.5 snat to 198.18.0.9"));
        assert!(rules.starts_with("table bridge mallee\ndelete table bridge mallee\n"));
        let bare = ruleset(&ports, &Firewalls::new(), None, &[]);
        assert!(!bare.contains("dport 22"));
        assert!(!bare.contains("dnat"));
        assert!(!bare.contains("overlay"));
    }

    #[test]
    fn a_vxlan_port_carries_no_gateway_traffic_and_lets_in_known_macs() {
        let mut ports = Ports::new();
        ports.insert(
            "tapa".into(),
            port("i-a", "02:00:00:00:00:01", [10, 0, 0, 5]),
        );
        let subnet: mallee_util::cidr::Ipv4Cidr = "10.0.0.0/24".parse().expect("cidr");
        let vx = OverlayPort {
            name: "mvx0123".into(),
            segment: super::super::SegmentSpec { subnet, vni: 9 },
            sources: [
                "02:00:00:00:00:02".to_owned(),
                super::super::gateway_mac(subnet),
            ]
            .into_iter()
            .collect(),
        };
        let rules = ruleset(&ports, &Firewalls::new(), None, &[vx]);
        for rule in [
            "iifname \"mvx0123\" jump overlay_in_mvx0123",
            "oifname \"mvx0123\" jump overlay_out_mvx0123",
            "iifname \"mvx0123\" drop",
            "arp saddr ip 10.0.0.1 drop",
            "arp daddr ip 10.0.0.1 drop",
            "udp dport { 67, 68 } drop",
            "ether saddr { 02:00:00:00:00:02, 0a:18:0a:00:00:00 } accept",
        ] {
            assert!(rules.contains(rule), "{rule} missing from\n{rules}");
        }
        // A frame for a tap still passes the tap's ingress chain first.
        let forward = &rules[rules.find("chain forward").expect("forward")..];
        assert!(forward.find("jump ingress_tapa") < forward.find("jump overlay_out_mvx0123"));
    }
}
