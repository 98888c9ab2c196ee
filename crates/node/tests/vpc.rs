//! The node's VPC networks for real, through [`Networks`]: one namespace
//! per VPC, security groups, the public bridge with DNAT/SNAT, restart and
//! cleanup. "Instances" are namespaces joined by a veth pair whose inner end
//! takes the instance's tap name; busybox and python3 play the guests and
//! the clients on the public network.
//!
//! Needs root, `ip`, `nft`, `dnsmasq`, `busybox`, `python3` and `timeout`;
//! fails (never skips) without them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use mallee_node::metadata::MetadataService;
use mallee_node::network::{NetworkConfig, PublicNetworkConfig, tap_name};
use mallee_node::vpc_networks::Networks;
use mallee_node_api::{FirewallPolicy, FirewallRule, InstanceFirewall, InstanceMetadata, NicSpec};

include!("common/netns.rs");
include!("common/instance.rs");

fn ns_exists(ns: &str) -> bool {
    Path::new("/run/netns").join(ns).exists()
}

fn link_exists(link: &str) -> bool {
    run(&["ip", "link", "show", "dev", link]).status.success()
}

/// Removes what a failing test left: guest namespaces, listeners, and
/// (through a purge) the node's networks.
struct Cleanup {
    namespaces: Vec<String>,
    links: Vec<String>,
    children: Vec<Child>,
    config: NetworkConfig,
    public: PublicNetworkConfig,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
        for link in &self.links {
            let _ = Command::new("ip").args(["link", "del", link]).output();
        }
        let config = self.config.clone();
        let public = self.public.clone();
        let _ = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .expect("runtime")
                .block_on(Networks::purge(&config, Some(&public)))
        })
        .join();
    }
}

struct Node {
    dir: PathBuf,
    config: NetworkConfig,
    public: PublicNetworkConfig,
    metadata: Arc<MetadataService>,
}

impl Node {
    fn new(dir: &Path, public_net: u8) -> Self {
        let config = NetworkConfig {
            state_root: dir.join("network"),
            default_subnet: "172.31.0.0/20".parse().expect("subnet"),
            domain: "test.internal".into(),
            underlay: None,
        };
        let public = PublicNetworkConfig {
            bridge: format!("mlpt{public_net:02x}{:05x}", std::process::id() & 0xf_ffff),
            cidr: format!("198.19.{public_net}.0/24").parse().expect("cidr"),
            interface: None,
        };
        Self {
            dir: dir.to_owned(),
            config,
            public,
            metadata: MetadataService::new(),
        }
    }

    async fn open(&self) -> Networks {
        Networks::open(
            self.config.clone(),
            Some(self.public.clone()),
            "nd-test",
            self.dir.join("firewall.json"),
            self.metadata.clone(),
        )
        .await
        .expect("open networks")
    }

    fn cleanup(&self) -> Cleanup {
        Cleanup {
            namespaces: Vec::new(),
            links: Vec::new(),
            children: Vec::new(),
            config: self.config.clone(),
            public: self.public.clone(),
        }
    }
}

fn nic(network: &str, mac: &str, ip: &str, public_ip: Option<&str>) -> NicSpec {
    nic_spec(network, "172.31.0.0/20", mac, ip, public_ip)
}

fn metadata(ip: &str, user_data: &str) -> InstanceMetadata {
    instance_metadata(ip, "02:00:00:00:00:01", user_data)
}

/// Plugs `id` (whose tap is first made by the plug, then replaced by a veth
/// to guest namespace `guest_ns` and plugged again, as a VM's would be).
async fn fake_instance(
    networks: &Networks,
    cleanup: &mut Cleanup,
    id: &str,
    guest_ns: &str,
    nic: &NicSpec,
    md: &InstanceMetadata,
) {
    networks.plug(id, nic, md).await.expect("plug");
    let netns = networks.netns_name(&nic.network_id);
    let tap = tap_name(id);
    ok(&["ip", "-n", &netns, "link", "del", &tap]);
    cleanup.namespaces.push(guest_ns.to_owned());
    add_guest(guest_ns, &netns, &tap, &nic.mac);
    networks.plug(id, nic, md).await.expect("plug again");
}

/// busybox udhcpc in `ns`: configures the lease (address and default
/// route) and returns the address.
fn dhcp(ns: &str, dir: &Path) -> Option<String> {
    udhcpc(
        ns,
        dir,
        "ip route replace default via \"$router\"\n  echo \"$ip\"",
    )
    .map(|s| s.trim().to_owned())
}

fn imds(ns: &str, path: &str) -> Option<String> {
    // (busybox wget crashes on this host; python's urllib does not.)
    let script = "import sys,urllib.request\n\
        sys.stdout.write(urllib.request.urlopen('http://169.254.169.254'+sys.argv[1],timeout=3).read().decode())\n";
    let out = python_in(ns, 5, script, &[path]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

const SERVER: &str = r"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', int(sys.argv[1])))
s.listen(16)
while True:
    c, a = s.accept()
    c.sendall(('peer=' + a[0] + '\n').encode())
    c.close()
";

const CLIENT: &str = r"
import socket, sys
c = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=1)
print(c.recv(100).decode().strip())
";

/// A TCP server in `ns` on `port` that tells each client its address.
fn serve(cleanup: &mut Cleanup, ns: &str, port: u16) {
    let child = Command::new("ip")
        .args([
            "netns",
            "exec",
            ns,
            "python3",
            "-c",
            SERVER,
            &port.to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server");
    cleanup.children.push(child);
    std::thread::sleep(Duration::from_millis(500));
}

/// What the server at `ip:port` says to a connection from `ns`.
fn connect(ns: &str, ip: &str, port: u16) -> Option<String> {
    let out = python_in(ns, 5, CLIENT, &[ip, &port.to_string()]);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
}

fn rule(protocol: &str, from: Option<i32>, to: Option<i32>, cidr: &str) -> FirewallRule {
    FirewallRule {
        protocol: protocol.into(),
        from_port: from,
        to_port: to,
        cidrs: vec![cidr.into()],
    }
}

fn policy(generation: u64, instances: Vec<InstanceFirewall>) -> FirewallPolicy {
    FirewallPolicy {
        generation,
        instances,
    }
}

fn allow_all(id: &str) -> InstanceFirewall {
    InstanceFirewall {
        instance_id: id.into(),
        ingress: vec![rule("-1", None, None, "0.0.0.0/0")],
        egress: vec![rule("-1", None, None, "0.0.0.0/0")],
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_vpcs_with_the_same_subnet_stay_apart() {
    require_root();
    require_tools(&["ip", "nft", "dnsmasq", "busybox", "python3", "timeout"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::new(dir.path(), 201);
    let mut cleanup = node.cleanup();
    let networks = node.open().await;
    let pid = std::process::id();
    let (ga, gb, gc, gd) = (
        format!("mvg-a-{pid}"),
        format!("mvg-b-{pid}"),
        format!("mvg-c-{pid}"),
        format!("mvg-d-{pid}"),
    );
    let (a, b, c, d) = (
        "i-0000000000000000a",
        "i-0000000000000000b",
        "i-0000000000000000c",
        "i-0000000000000000d",
    );
    networks
        .put_firewall(policy(1, vec![allow_all(a), allow_all(b), allow_all(c)]))
        .await
        .expect("firewall");
    let same_ip = "172.31.0.4";
    let nic_a = nic("vpc-aaaa", "02:00:00:00:00:0a", same_ip, None);
    let nic_b = nic("vpc-bbbb", "02:00:00:00:00:0b", same_ip, None);
    let nic_c = nic("vpc-bbbb", "02:00:00:00:00:0c", "172.31.0.5", None);
    fake_instance(
        &networks,
        &mut cleanup,
        a,
        &ga,
        &nic_a,
        &metadata(same_ip, "A data"),
    )
    .await;
    fake_instance(
        &networks,
        &mut cleanup,
        b,
        &gb,
        &nic_b,
        &metadata(same_ip, "B data"),
    )
    .await;
    fake_instance(
        &networks,
        &mut cleanup,
        c,
        &gc,
        &nic_c,
        &metadata("172.31.0.5", "C"),
    )
    .await;
    let (ns_a, ns_b) = (
        networks.netns_name("vpc-aaaa"),
        networks.netns_name("vpc-bbbb"),
    );
    assert_ne!(ns_a, ns_b);
    assert!(ns_exists(&ns_a) && ns_exists(&ns_b));

    for guest in [&ga, &gb] {
        assert_eq!(dhcp(guest, dir.path()).as_deref(), Some(same_ip), "{guest}");
    }
    assert_eq!(dhcp(&gc, dir.path()).as_deref(), Some("172.31.0.5"));
    // Same address, two networks: each is answered about itself only.
    assert_eq!(
        imds(&ga, "/latest/meta-data/instance-id").as_deref(),
        Some(a)
    );
    assert_eq!(
        imds(&gb, "/latest/meta-data/instance-id").as_deref(),
        Some(b)
    );
    assert_eq!(imds(&ga, "/latest/user-data").as_deref(), Some("A data"));
    assert_eq!(imds(&gb, "/latest/user-data").as_deref(), Some("B data"));
    // C reaches B in its own VPC; A cannot reach C's address at all.
    assert!(ping(&gc, None, same_ip), "same VPC, all allowed");
    assert!(ping(&gb, None, "172.31.0.5"));
    assert!(
        !ping(&ga, None, "172.31.0.5"),
        "crossed from one VPC into another"
    );

    // A is terminated; its address goes to D in the same VPC, which never
    // sees A's data.
    networks.unplug(a, &nic_a).await.expect("unplug a");
    assert!(
        !ns_exists(&ns_a),
        "the VPC namespace outlived its last instance"
    );
    let nic_d = nic("vpc-aaaa", "02:00:00:00:00:0d", same_ip, None);
    fake_instance(
        &networks,
        &mut cleanup,
        d,
        &gd,
        &nic_d,
        &metadata(same_ip, "D data"),
    )
    .await;
    assert_eq!(dhcp(&gd, dir.path()).as_deref(), Some(same_ip));
    assert_eq!(
        imds(&gd, "/latest/meta-data/instance-id").as_deref(),
        Some(d)
    );
    assert_eq!(imds(&gd, "/latest/user-data").as_deref(), Some("D data"));
    // A late unregister of A (same address) does not cut D off.
    node.metadata
        .unregister_in("vpc-aaaa", same_ip.parse().expect("ip"), Some(a));
    assert_eq!(
        imds(&gd, "/latest/meta-data/instance-id").as_deref(),
        Some(d)
    );

    for (id, nic) in [(b, &nic_b), (c, &nic_c), (d, &nic_d)] {
        networks.unplug(id, nic).await.expect("unplug");
    }
    assert!(!ns_exists(&ns_a) && !ns_exists(&ns_b));
    assert!(networks.network_ids().await.is_empty());
    let left = std::fs::read_dir(&node.config.state_root)
        .expect("state root")
        .count();
    assert_eq!(left, 0, "VPC state directories left");
    networks.shutdown().await;
    drop(cleanup);
    assert!(!link_exists(&node.public.bridge), "public bridge left");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn security_groups_public_addresses_restart_and_cleanup() {
    require_root();
    require_tools(&["ip", "nft", "dnsmasq", "busybox", "python3", "timeout"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::new(dir.path(), 202);
    let mut cleanup = node.cleanup();
    let networks = node.open().await;
    let bridge = node.public.bridge.clone();
    assert!(link_exists(&bridge));
    let host_rules = ok(&["nft", "list", "table", "inet", &node.public.host_table()]);
    assert!(host_rules.contains("drop"), "{host_rules}");

    let pid = std::process::id();
    // Two clients on the public network.
    let (c1, c2) = (format!("mvc-1-{pid}"), format!("mvc-2-{pid}"));
    let (c1_ip, c2_ip) = ("198.19.202.50", "198.19.202.51");
    for (i, (ns, ip)) in [(&c1, c1_ip), (&c2, c2_ip)].into_iter().enumerate() {
        let host_end = format!("mvh{i}{:08x}", pid);
        cleanup.namespaces.push(ns.clone());
        cleanup.links.push(host_end.clone());
        ok(&["ip", "netns", "add", ns]);
        ok(&["ip", "-n", ns, "link", "set", "lo", "up"]);
        ok(&[
            "ip", "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", ns,
        ]);
        ok(&["ip", "link", "set", &host_end, "master", &bridge, "up"]);
        ok(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{ip}/24"),
            "dev",
            "eth0",
        ]);
        ok(&["ip", "-n", ns, "link", "set", "eth0", "up"]);
    }

    let x = "i-000000000000000f1";
    let guest = format!("mvg-x-{pid}");
    let public_ip = "198.19.202.10";
    let nic_x = nic(
        "vpc-ffff",
        "02:00:00:00:00:f1",
        "172.31.0.9",
        Some(public_ip),
    );
    let md = metadata("172.31.0.9", "X");
    fake_instance(&networks, &mut cleanup, x, &guest, &nic_x, &md).await;
    let netns = networks.netns_name("vpc-ffff");
    assert_eq!(dhcp(&guest, dir.path()).as_deref(), Some("172.31.0.9"));
    serve(&mut cleanup, &guest, 8080);
    serve(&mut cleanup, &c1, 9090);

    // No entry in the policy: nothing comes in, only metadata goes out.
    assert_eq!(connect(&c1, public_ip, 8080), None);
    assert!(!ping(&c1, None, public_ip));
    assert_eq!(
        imds(&guest, "/latest/meta-data/instance-id").as_deref(),
        Some(x)
    );
    assert_eq!(connect(&guest, c1_ip, 9090), None, "egress without a rule");

    // TCP 8080 from client 1 only.
    let tcp_from_c1 = InstanceFirewall {
        instance_id: x.into(),
        ingress: vec![rule("tcp", Some(8080), Some(8080), &format!("{c1_ip}/32"))],
        egress: Vec::new(),
    };
    networks
        .put_firewall(policy(1, vec![tcp_from_c1.clone()]))
        .await
        .expect("firewall 1");
    let expected = format!("peer={c1_ip}");
    assert!(
        within_a_second(|| connect(&c1, public_ip, 8080).as_deref() == Some(expected.as_str())),
        "the instance must see client 1's real address through the public IP"
    );
    assert_eq!(
        connect(&c2, public_ip, 8080),
        None,
        "client 2 is not in the CIDR"
    );
    assert!(!ping(&c1, None, public_ip), "ICMP without a rule");

    // ICMP echo from anywhere, and all egress: outbound flows get their
    // replies (stateful) and leave with the public address.
    let mut open = tcp_from_c1.clone();
    open.ingress
        .push(rule("icmp", Some(8), Some(-1), "0.0.0.0/0"));
    open.egress.push(rule("-1", None, None, "0.0.0.0/0"));
    let generation = networks
        .put_firewall(policy(2, vec![open.clone()]))
        .await
        .expect("firewall 2");
    assert_eq!(generation, 2);
    assert!(
        within_a_second(|| ping(&c1, None, public_ip)),
        "ICMP allowed by rule"
    );
    assert!(ping(&c2, None, public_ip));
    assert_eq!(
        connect(&guest, c1_ip, 9090).as_deref(),
        Some(format!("peer={public_ip}").as_str()),
        "SNAT to the public address, reply admitted by conntrack"
    );
    // An older policy changes nothing.
    let older = networks
        .put_firewall(policy(1, Vec::new()))
        .await
        .expect("older policy");
    assert_eq!(older, 2);
    assert!(ping(&c1, None, public_ip));
    // A bad rule is refused whole.
    let mut bad = open.clone();
    bad.ingress.push(rule("tcp", Some(9), Some(1), "0.0.0.0/0"));
    assert!(networks.put_firewall(policy(3, vec![bad])).await.is_err());
    assert!(ping(&c1, None, public_ip));

    // Agent restart: the tables stay; the new agent adopts the namespace,
    // re-applies firewall.json and serves metadata again once the instance
    // is plugged again (as adoption does).
    networks.shutdown().await;
    drop(networks);
    let networks = node.open().await;
    assert_eq!(networks.firewall().await.generation, 2);
    networks.plug(x, &nic_x, &md).await.expect("re-plug");
    assert!(ping(&c1, None, public_ip));
    assert_eq!(
        connect(&c1, public_ip, 8080).as_deref(),
        Some(expected.as_str())
    );
    assert_eq!(connect(&c2, public_ip, 8080), None);
    assert_eq!(
        imds(&guest, "/latest/meta-data/instance-id").as_deref(),
        Some(x)
    );

    // The public address changes live.
    let new_public = "198.19.202.11";
    let moved = nic(
        "vpc-ffff",
        "02:00:00:00:00:f1",
        "172.31.0.9",
        Some(new_public),
    );
    let mut md_moved = md.clone();
    md_moved.public_ipv4 = Some(new_public.into());
    networks.plug(x, &moved, &md_moved).await.expect("move");
    assert!(within_a_second(|| ping(&c1, None, new_public)));
    assert!(
        !ping(&c1, None, public_ip),
        "the old public address still answers"
    );
    assert_eq!(
        imds(&guest, "/latest/meta-data/public-ipv4").as_deref(),
        Some(new_public)
    );
    // Revoking ingress: new connections are refused again.
    networks
        .put_firewall(policy(4, Vec::new()))
        .await
        .expect("firewall 4");
    assert!(within_a_second(|| !ping(&c1, None, new_public)));
    assert_eq!(connect(&c1, new_public, 8080), None);

    // Delete: namespace, veth, addresses and rules go; purge removes the
    // public bridge and the host table.
    let host_veth = {
        let digest = {
            use sha2::Digest;
            sha2::Sha256::digest(netns.as_bytes())
        };
        format!("mlv{}", &hex::encode(digest)[..12])
    };
    assert!(link_exists(&host_veth));
    networks.unplug(x, &moved).await.expect("unplug");
    assert!(!ns_exists(&netns));
    assert!(!link_exists(&host_veth), "host veth left");
    networks.shutdown().await;
    Networks::purge(&node.config, Some(&node.public))
        .await
        .expect("purge");
    assert!(!link_exists(&bridge));
    assert!(
        !run(&["nft", "list", "table", "inet", &node.public.host_table()])
            .status
            .success(),
        "host table left"
    );
}

/// The ruleset of a VPC namespace, as `nft list ruleset` prints it.
fn ruleset(ns: &str) -> String {
    String::from_utf8_lossy(&run(&["ip", "netns", "exec", ns, "nft", "list", "ruleset"]).stdout)
        .into_owned()
}

/// Locks are per VPC: while VPC A's change is stuck halfway (its ports
/// record's temporary file is a FIFO nobody reads, so the write blocks
/// with A's locks held), a launch in VPC B sets up its network and
/// finishes. Under one node-wide lock it would wait for A.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_vpc_does_not_hold_up_another() {
    require_root();
    require_tools(&["ip", "nft", "dnsmasq", "mkfifo"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::new(dir.path(), 203);
    let _cleanup = node.cleanup();
    let networks = Arc::new(node.open().await);
    let (a1, a2, b) = (
        "i-000000000000000a1",
        "i-000000000000000a2",
        "i-000000000000000b1",
    );
    let nic_a1 = nic("vpc-aaaa", "02:00:00:00:0a:01", "172.31.0.4", None);
    let nic_a2 = nic("vpc-aaaa", "02:00:00:00:0a:02", "172.31.0.5", None);
    let nic_b = nic("vpc-bbbb", "02:00:00:00:0b:01", "172.31.0.4", None);
    networks
        .plug(a1, &nic_a1, &metadata("172.31.0.4", ""))
        .await
        .expect("plug a1");
    let fifo = node.config.state_root.join("vpc-aaaa/.ports.json.tmp");
    assert!(
        run(&["mkfifo", fifo.to_str().expect("path")])
            .status
            .success(),
        "mkfifo"
    );
    let stuck = {
        let networks = networks.clone();
        let nic = nic_a2.clone();
        tokio::spawn(async move { networks.plug(a2, &nic, &metadata("172.31.0.5", "")).await })
    };
    // Until someone reads the FIFO, A's plug is stuck inside its record.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!stuck.is_finished(), "the plug in A should be stuck");
    tokio::time::timeout(
        Duration::from_secs(30),
        networks.plug(b, &nic_b, &metadata("172.31.0.4", "")),
    )
    .await
    .expect("B's plug waited for A's")
    .expect("plug b");
    let ns_b = networks.netns_name("vpc-bbbb");
    assert!(ns_exists(&ns_b));
    assert!(ruleset(&ns_b).contains("02:00:00:00:0b:01"));
    assert!(!stuck.is_finished(), "A is still stuck");
    // Release A: its write fails (a FIFO cannot be fsynced), changing
    // nothing; done again, it goes through.
    let reader = std::thread::spawn(move || std::fs::read(&fifo));
    let failed = stuck.await.expect("join");
    assert!(failed.is_err(), "{failed:?}");
    let _ = reader.join();
    let ns_a = networks.netns_name("vpc-aaaa");
    assert!(!ruleset(&ns_a).contains("02:00:00:00:0a:02"));
    networks
        .plug(a2, &nic_a2, &metadata("172.31.0.5", ""))
        .await
        .expect("plug a2 again");
    assert!(ruleset(&ns_a).contains("02:00:00:00:0a:02"));
    for (id, nic) in [(a1, &nic_a1), (a2, &nic_a2), (b, &nic_b)] {
        networks.unplug(id, nic).await.expect("unplug");
    }
    assert!(!ns_exists(&ns_a) && !ns_exists(&ns_b));
}

/// Many launches into one VPC at once: every port ends up recorded, in
/// the rules (its MAC and its own anti-spoofing), in dnsmasq's hosts and
/// on its bridge, whichever commit applied it; then all unplug at once
/// and the namespace goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_plugs_in_one_vpc_keep_every_port() {
    require_root();
    require_tools(&["ip", "nft", "dnsmasq"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let node = Node::new(dir.path(), 204);
    let _cleanup = node.cleanup();
    let networks = Arc::new(node.open().await);
    let ports: Vec<(String, NicSpec)> = (1..=8u8)
        .map(|n| {
            (
                format!("i-00000000000000c{n:02x}"),
                nic(
                    "vpc-cccc",
                    &format!("02:00:00:00:0c:{n:02x}"),
                    &format!("172.31.0.{}", n + 3),
                    None,
                ),
            )
        })
        .collect();
    let plugs = ports.iter().map(|(id, nic)| {
        let networks = networks.clone();
        let (id, nic) = (id.clone(), nic.clone());
        tokio::spawn(async move {
            let md = metadata(&nic.private_ip, "");
            networks.plug(&id, &nic, &md).await
        })
    });
    for plugged in futures_util::future::join_all(plugs).await {
        plugged.expect("join").expect("plug");
    }
    let ns = networks.netns_name("vpc-cccc");
    let network = networks.network("vpc-cccc").await.expect("network");
    assert_eq!(network.ports().await.expect("ports").len(), ports.len());
    let rules = ruleset(&ns);
    let hosts = std::fs::read_to_string(node.config.state_root.join("vpc-cccc/dnsmasq.hosts"))
        .expect("hosts");
    for (id, nic) in &ports {
        assert!(rules.contains(&nic.mac), "{id}: no rule for {}", nic.mac);
        assert!(
            rules.contains(&nic.private_ip),
            "{id}: no rule for {}",
            nic.private_ip
        );
        assert!(hosts.contains(&nic.mac), "{id}: no DHCP host");
        let link = String::from_utf8_lossy(
            &run(&["ip", "-n", &ns, "-o", "link", "show", "dev", &tap_name(id)]).stdout,
        )
        .into_owned();
        assert!(
            link.contains("master br"),
            "{id}: tap not on its bridge: {link}"
        );
    }
    let unplugs = ports.iter().map(|(id, nic)| {
        let networks = networks.clone();
        let (id, nic) = (id.clone(), nic.clone());
        tokio::spawn(async move { networks.unplug(&id, &nic).await })
    });
    for unplugged in futures_util::future::join_all(unplugs).await {
        unplugged.expect("join").expect("unplug");
    }
    assert!(!ns_exists(&ns));
    assert!(networks.network_ids().await.is_empty());
}
