//! The node's instance network, built for real: namespaces, bridge, taps,
//! dnsmasq and nftables. "Guests" are throwaway namespaces joined to the
//! bridge by a veth pair whose inner end is plugged like a tap; busybox
//! `udhcpc` and `ping` play the guest's part.
//!
//! These tests need root, `ip`, `nft`, `dnsmasq` and `busybox`; without them
//! they fail (never skip), as they do in CI.

use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::Arc;

use mallee_node::firewall::Firewalls;
use mallee_node::network::{
    NetworkError, NodeNetwork, Port, PortDns, VpcConfig, bridge_name, tap_name,
};
use mallee_node_api::{FirewallRule, InstanceFirewall};
use mallee_util::cidr::Ipv4Cidr;

include!("common/netns.rs");

/// The bridge of the tests' subnet.
fn bridge() -> String {
    bridge_name("10.77.0.0/24".parse().expect("subnet"))
}

/// Security groups letting each named instance send and receive anything
/// (these tests are about the network, not the firewall).
fn allow_all(instances: &[&str]) -> Arc<Firewalls> {
    let all = || {
        vec![FirewallRule {
            protocol: "-1".into(),
            from_port: None,
            to_port: None,
            cidrs: vec!["0.0.0.0/0".into()],
        }]
    };
    Arc::new(
        instances
            .iter()
            .map(|id| {
                (
                    (*id).to_owned(),
                    InstanceFirewall {
                        instance_id: (*id).to_owned(),
                        ingress: all(),
                        egress: all(),
                    },
                )
            })
            .collect(),
    )
}

fn firewalls() -> Arc<Firewalls> {
    let a = tap_name("i-00000000000000001");
    let b = tap_name("i-00000000000000002");
    allow_all(&[&a, &b, "vport1", "vport2", "vport3"])
}

/// Plugs `tap` into the tests' subnet as instance `tap`.
async fn plug(
    network: &NodeNetwork,
    tap: &str,
    mac: &str,
    ip: Ipv4Addr,
    hostname: &str,
) -> Result<(), NetworkError> {
    network
        .plug(
            tap,
            Port {
                instance_id: tap.to_owned(),
                mac: mac.to_owned(),
                ip,
                hostname: hostname.to_owned(),
                subnet: "10.77.0.0/24".parse().expect("subnet"),
                public_ip: None,
                dns: PortDns {
                    vpc_cidr: Some("10.77.0.0/16".parse().expect("vpc")),
                    public_hostname: Some(format!("ec2-{tap}.test.compute.mallee")),
                    domain_name: None,
                },
                internet: Default::default(),
            },
        )
        .await
}

fn config(test: &str, dir: &Path) -> VpcConfig {
    VpcConfig {
        network_id: format!("vpc-{test}"),
        netns: format!("mtn-{test}-{}", std::process::id()),
        state_dir: dir.join("net"),
        domain: "test.internal".to_owned(),
        public: None,
        underlay: None,
    }
}

fn dnsmasq_pid(config: &VpcConfig) -> u32 {
    let pid = std::fs::read_to_string(config.state_dir.join("dnsmasq.pid")).expect("pid file");
    pid.trim().parse().expect("pid")
}

fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s
                .rsplit_once(')')
                .map(|(_, r)| r.trim_start().chars().next());
            state != Some(Some('Z'))
        })
        .unwrap_or(false)
}

/// busybox udhcpc in `ns`; returns the variables its script saw.
fn dhcp(ns: &str, dir: &Path) -> Option<String> {
    udhcpc(
        ns,
        dir,
        "echo \"ip=$ip mask=$mask router=$router hostname=$hostname domain=$domain dns=$dns search=$search\"",
    )
}

#[tokio::test]
async fn ensure_plug_unplug_destroy() {
    require_root();
    require_tools(&["ip", "nft", "dnsmasq", "busybox", "timeout"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("life", dir.path());
    let ns = config.netns.clone();
    let _cleanup = NetnsCleanup {
        namespaces: vec![ns.clone()],
        pid_file: Some(config.state_dir.join("dnsmasq.pid")),
    };

    let network = NodeNetwork::ensure(config.clone(), firewalls(), Arc::default())
        .await
        .expect("ensure");
    assert_eq!(network.netns(), ns);
    assert_eq!(
        network.exec_prefix(),
        ["ip", "netns", "exec", ns.as_str()].map(std::ffi::OsString::from)
    );
    assert!(
        !config.state_dir.join("dnsmasq.pid").exists(),
        "dnsmasq runs only while a port needs it"
    );
    let lo_addrs = ok(&["ip", "-n", &ns, "-4", "-o", "addr", "show", "dev", "lo"]);
    assert!(lo_addrs.contains("169.254.169.254/32"), "{lo_addrs}");
    let lo = ok(&["ip", "-n", &ns, "link", "show", "dev", "lo"]);
    assert!(lo.contains("UP"), "{lo}");

    let tap_a = tap_name("i-00000000000000001");
    let tap_b = tap_name("i-00000000000000002");
    plug(
        &network,
        &tap_a,
        "02:00:00:00:00:0A",
        Ipv4Addr::new(10, 77, 0, 10),
        "ip-10-77-0-10",
    )
    .await
    .expect("plug a");
    plug(
        &network,
        &tap_b,
        "02:00:00:00:00:0b",
        Ipv4Addr::new(10, 77, 0, 11),
        "ip-10-77-0-11",
    )
    .await
    .expect("plug b");
    // Again: idempotent.
    plug(
        &network,
        &tap_a,
        "02:00:00:00:00:0a",
        Ipv4Addr::new(10, 77, 0, 10),
        "ip-10-77-0-10",
    )
    .await
    .expect("plug a again");

    let first_pid = dnsmasq_pid(&config);
    assert!(alive(first_pid));
    let addrs = ok(&[
        "ip",
        "-n",
        &ns,
        "-4",
        "-o",
        "addr",
        "show",
        "dev",
        &bridge(),
    ]);
    assert!(addrs.contains("10.77.0.1/24"), "{addrs}");
    assert_eq!(addrs.lines().count(), 1, "{addrs}");
    // Ensure again (an agent restart): same dnsmasq adopted, nothing doubled.
    let network = NodeNetwork::ensure(config.clone(), firewalls(), Arc::default())
        .await
        .expect("ensure again");
    assert_eq!(dnsmasq_pid(&config), first_pid, "dnsmasq must be adopted");
    for tap in [&tap_a, &tap_b] {
        let link = ok(&["ip", "-n", &ns, "-d", "link", "show", "dev", tap]);
        assert!(link.contains(&format!("master {}", bridge())), "{link}");
        assert!(link.contains("tun type tap"), "{link}");
        assert!(link.contains(",UP"), "{link}");
    }
    let rules = ok(&["ip", "netns", "exec", &ns, "nft", "list", "ruleset"]);
    for expected in [
        format!("iifname \"{tap_a}\" jump port_{tap_a}"),
        format!("iifname \"{tap_b}\" jump port_{tap_b}"),
        "ether saddr != 02:00:00:00:00:0a drop".to_owned(),
        "ip saddr 10.77.0.10 accept".to_owned(),
        "ether saddr != 02:00:00:00:00:0b drop".to_owned(),
        "ip saddr 10.77.0.11 accept".to_owned(),
        "policy drop".to_owned(),
    ] {
        assert!(
            rules.contains(&expected),
            "missing {expected:?} in\n{rules}"
        );
    }
    assert_eq!(rules.matches("table bridge mallee").count(), 1, "{rules}");
    let hosts =
        std::fs::read_to_string(config.state_dir.join("dnsmasq.hosts")).expect("hosts file");
    assert_eq!(
        hosts,
        "02:00:00:00:00:0a,10.77.0.10,ip-10-77-0-10\n02:00:00:00:00:0b,10.77.0.11,ip-10-77-0-11\n"
    );
    assert_eq!(
        dnsmasq_pid(&config),
        first_pid,
        "a plug reloads, not restarts"
    );
    assert_eq!(network.ports().await.expect("ports").len(), 2);

    // Bad arguments are refused before anything changes.
    for (tap, mac, ip, host) in [
        (
            "tap-toolong-name",
            "02:00:00:00:00:0c",
            Ipv4Addr::new(10, 77, 0, 12),
            "h",
        ),
        ("tapc", "nope", Ipv4Addr::new(10, 77, 0, 12), "h"),
        (
            "tapc",
            "02:00:00:00:00:0c",
            Ipv4Addr::new(10, 78, 0, 12),
            "h",
        ),
        (
            "tapc",
            "02:00:00:00:00:0c",
            Ipv4Addr::new(10, 77, 0, 1),
            "h",
        ),
        (
            "tapc",
            "02:00:00:00:00:0c",
            Ipv4Addr::new(10, 77, 0, 12),
            "a,b",
        ),
    ] {
        assert!(
            plug(&network, tap, mac, ip, host).await.is_err(),
            "{tap} {mac} {ip} {host}"
        );
    }

    network
        .unplug(&tap_a, "02:00:00:00:00:0a")
        .await
        .expect("unplug");
    network
        .unplug(&tap_a, "02:00:00:00:00:0a")
        .await
        .expect("unplug again");
    assert!(!succeeds(&["ip", "-n", &ns, "link", "show", "dev", &tap_a]));
    let rules = ok(&["ip", "netns", "exec", &ns, "nft", "list", "ruleset"]);
    assert!(
        !rules.contains(&tap_a),
        "stale rules after unplug:\n{rules}"
    );
    assert!(
        !rules.contains("10.77.0.10"),
        "stale rules after unplug:\n{rules}"
    );
    assert!(rules.contains(&tap_b), "{rules}");
    let hosts =
        std::fs::read_to_string(config.state_dir.join("dnsmasq.hosts")).expect("hosts file");
    assert_eq!(hosts, "02:00:00:00:00:0b,10.77.0.11,ip-10-77-0-11\n");

    // dnsmasq dies: the next ensure starts a new one.
    ok(&["kill", "-9", &first_pid.to_string()]);
    for _ in 0..50 {
        if !alive(first_pid) {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let network = NodeNetwork::ensure(config.clone(), firewalls(), Arc::default())
        .await
        .expect("ensure after crash");
    let second_pid = dnsmasq_pid(&config);
    assert_ne!(second_pid, first_pid);
    assert!(alive(second_pid));
    // The surviving port is still intact.
    assert!(succeeds(&["ip", "-n", &ns, "link", "show", "dev", &tap_b]));
    drop(network);

    NodeNetwork::destroy(&config).await.expect("destroy");
    NodeNetwork::destroy(&config).await.expect("destroy again");
    assert!(
        !Path::new("/run/netns").join(&ns).exists(),
        "namespace left"
    );
    assert!(!alive(second_pid), "dnsmasq left running");
    assert!(!config.state_dir.join("ports.json").exists());
}

#[tokio::test]
async fn dhcp_hands_out_static_leases_and_spoofing_is_dropped() {
    require_root();
    require_tools(&["ip", "nft", "dnsmasq", "busybox", "timeout"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("dhcp", dir.path());
    let ns = config.netns.clone();
    let pid = std::process::id();
    let (g1, g2, g3) = (
        format!("mtg1-dhcp-{pid}"),
        format!("mtg2-dhcp-{pid}"),
        format!("mtg3-dhcp-{pid}"),
    );
    let _cleanup = NetnsCleanup {
        namespaces: vec![ns.clone(), g1.clone(), g2.clone(), g3.clone()],
        pid_file: Some(config.state_dir.join("dnsmasq.pid")),
    };
    let network = NodeNetwork::ensure(config.clone(), firewalls(), Arc::default())
        .await
        .expect("ensure");
    let gateway = "10.77.0.1".to_owned();

    add_guest(&g1, &ns, "vport1", "02:00:00:00:00:11");
    plug(
        &network,
        "vport1",
        "02:00:00:00:00:11",
        Ipv4Addr::new(10, 77, 0, 11),
        "ip-10-77-0-11.test.internal",
    )
    .await
    .expect("plug");
    let lease = dhcp(&g1, dir.path()).expect("guest 1 got no DHCP lease");
    assert!(lease.contains("ip=10.77.0.11 "), "{lease}");
    assert!(lease.contains("mask=24 "), "{lease}");
    assert!(lease.contains("router=10.77.0.1 "), "{lease}");
    assert!(lease.contains("hostname=ip-10-77-0-11 "), "{lease}");
    assert!(lease.contains("domain=test.internal"), "{lease}");

    assert!(
        ping(&g1, None, &gateway),
        "the guest cannot reach its gateway"
    );
    // Another source address from the same port is dropped...
    ok(&[
        "ip",
        "-n",
        &g1,
        "addr",
        "add",
        "10.77.0.99/24",
        "dev",
        "eth0",
    ]);
    assert!(
        !ping(&g1, Some("10.77.0.99"), &gateway),
        "spoofed source got through"
    );
    ok(&[
        "ip",
        "-n",
        &g1,
        "addr",
        "del",
        "10.77.0.99/24",
        "dev",
        "eth0",
    ]);
    assert!(ping(&g1, Some("10.77.0.11"), &gateway));
    // ...and so is another MAC.
    ok(&[
        "ip",
        "-n",
        &g1,
        "link",
        "set",
        "eth0",
        "address",
        "02:00:00:00:00:99",
    ]);
    assert!(!ping(&g1, None, &gateway), "spoofed MAC got through");
    ok(&[
        "ip",
        "-n",
        &g1,
        "link",
        "set",
        "eth0",
        "address",
        "02:00:00:00:00:11",
    ]);
    assert!(ping(&g1, None, &gateway));

    // A link on the bridge that was never plugged carries nothing.
    add_guest(&g2, &ns, "vport2", "02:00:00:00:00:22");
    ok(&[
        "ip",
        "-n",
        &ns,
        "link",
        "set",
        "vport2",
        "master",
        &bridge(),
        "up",
    ]);
    ok(&[
        "ip",
        "-n",
        &g2,
        "addr",
        "add",
        "10.77.0.22/24",
        "dev",
        "eth0",
    ]);
    assert!(!ping(&g2, None, &gateway), "an unplugged port got through");
    assert!(
        dhcp(&g2, dir.path()).is_none(),
        "an unknown MAC got a lease"
    );

    // Unplug: the guest is cut off, and its address can go to a new MAC
    // at once although the old lease has not expired.
    network
        .unplug("vport1", "02:00:00:00:00:11")
        .await
        .expect("unplug");
    assert!(!succeeds(&[
        "ip", "-n", &ns, "link", "show", "dev", "vport1"
    ]));
    add_guest(&g3, &ns, "vport3", "02:00:00:00:00:33");
    plug(
        &network,
        "vport3",
        "02:00:00:00:00:33",
        Ipv4Addr::new(10, 77, 0, 11),
        "ip-10-77-0-11",
    )
    .await
    .expect("plug the reused address");
    let lease = dhcp(&g3, dir.path()).expect("the reused address was not handed out");
    assert!(lease.contains("ip=10.77.0.11 "), "{lease}");
    assert!(ping(&g3, None, &gateway));

    NodeNetwork::destroy(&config).await.expect("destroy");
    assert!(!Path::new("/run/netns").join(&ns).exists());
}

/// busybox nslookup of `query` at `server` from `ns`: (succeeded, output).
fn nslookup(ns: &str, query: &str, server: &str) -> (bool, String) {
    let out = run(&[
        "timeout", "5", "ip", "netns", "exec", ns, "busybox", "nslookup", query, server,
    ]);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[tokio::test]
async fn the_vpc_resolver_names_its_instances_and_nothing_else() {
    require_root();
    require_tools(&["ip", "nft", "dnsmasq", "busybox", "timeout"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = config("dns", dir.path());
    let ns = config.netns.clone();
    let pid = std::process::id();
    let (g1, g2) = (format!("mtg1-dns-{pid}"), format!("mtg2-dns-{pid}"));
    let _cleanup = NetnsCleanup {
        namespaces: vec![ns.clone(), g1.clone(), g2.clone()],
        pid_file: Some(config.state_dir.join("dnsmasq.pid")),
    };
    // No security group rule at all: the resolver is reachable anyway, as
    // DHCP and the metadata service are.
    let network = NodeNetwork::ensure(config.clone(), Arc::default(), Arc::default())
        .await
        .expect("ensure");
    add_guest(&g1, &ns, "vport1", "02:00:00:00:00:11");
    add_guest(&g2, &ns, "vport2", "02:00:00:00:00:22");
    for (tap, mac, last) in [
        ("vport1", "02:00:00:00:00:11", 11),
        ("vport2", "02:00:00:00:00:22", 22),
    ] {
        plug(
            &network,
            tap,
            mac,
            Ipv4Addr::new(10, 77, 0, last),
            &format!("ip-10-77-0-{last}"),
        )
        .await
        .expect("plug");
    }
    let lease = dhcp(&g1, dir.path()).expect("no DHCP lease");
    assert!(lease.contains("dns=10.77.0.2 "), "{lease}");
    assert!(lease.contains("search=test.internal"), "{lease}");
    let _ = dhcp(&g2, dir.path()).expect("no DHCP lease");

    // 169.254.169.253 is reached through the gateway, as from a guest.
    ok(&[
        "ip",
        "-n",
        &g1,
        "route",
        "add",
        "default",
        "via",
        "10.77.0.1",
    ]);
    for server in ["10.77.0.2", "169.254.169.253"] {
        let (ok, out) = nslookup(&g1, "ip-10-77-0-22.test.internal", server);
        assert!(ok && out.contains("10.77.0.22"), "{server}: {out}");
    }
    let (ok, out) = nslookup(&g1, "ec2-vport2.test.compute.mallee", "10.77.0.2");
    assert!(
        ok && out.contains("10.77.0.22"),
        "the public name, inside: {out}"
    );
    let (ok, out) = nslookup(&g2, "10.77.0.11", "10.77.0.2");
    assert!(
        ok && out.contains("ip-10-77-0-11.test.internal"),
        "PTR: {out}"
    );
    let (_, out) = nslookup(&g1, "nobody.test.internal", "10.77.0.2");
    assert!(out.contains("NXDOMAIN"), "an unknown name: {out}");
    let (_, out) = nslookup(&g1, "10.77.0.99", "10.77.0.2");
    assert!(out.contains("NXDOMAIN"), "an unknown address: {out}");
    let (ok, out) = nslookup(&g1, "example.com", "10.77.0.2");
    assert!(
        !ok && !out.contains("Address: 9"),
        "nothing is forwarded: {out}"
    );

    // A port gone is a name gone.
    network
        .unplug("vport2", "02:00:00:00:00:22")
        .await
        .expect("unplug");
    let (_, out) = nslookup(&g1, "ip-10-77-0-22.test.internal", "10.77.0.2");
    assert!(out.contains("NXDOMAIN"), "after unplug: {out}");

    NodeNetwork::destroy(&config).await.expect("destroy");
}

#[test]
fn cidr_parses_and_prints() {
    let subnet: Ipv4Cidr = "172.31.0.0/20".parse().expect("parses");
    assert_eq!(subnet.to_string(), "172.31.0.0/20");
    assert_eq!(subnet.first_host(), Ipv4Addr::new(172, 31, 0, 1));
    assert!("172.31.0.0/40".parse::<Ipv4Cidr>().is_err());
}
