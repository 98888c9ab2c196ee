//! An interface's internet route on the data path, for real, through
//! [`Networks`]: with an internet gateway its public address works both
//! ways; without a route it works neither way (the address is not even
//! answered on the public network); behind a NAT gateway the instance
//! reaches the public network under the gateway's address and nothing
//! reaches it. Each change is applied live to the running port by plugging
//! it again, as the node agent does when a new spec generation arrives.
//! "Instances" are namespaces joined by a veth pair; python3 plays the
//! servers and clients.
//!
//! Needs root, `ip`, `nft`, `dnsmasq`, `busybox`, `python3` and `timeout`;
//! fails (never skips) without them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mallee_node::metadata::MetadataService;
use mallee_node::network::{NetworkConfig, PublicNetworkConfig, tap_name};
use mallee_node::vpc_networks::Networks;
use mallee_node_api::{
    FirewallPolicy, FirewallRule, InstanceFirewall, InstanceMetadata, InternetRoute, NicSpec,
};

include!("common/netns.rs");
include!("common/instance.rs");

/// Removes what a failing test left: namespaces, links, listeners and
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

const PUBLIC_NET: u8 = 207;

fn public_ip(host: u8) -> String {
    format!("198.19.{PUBLIC_NET}.{host}")
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
        .args(["netns", "exec", ns, "python3", "-c", SERVER])
        .arg(port.to_string())
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

fn open_to_all(id: &str) -> InstanceFirewall {
    let all = FirewallRule {
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        cidrs: vec!["0.0.0.0/0".into()],
    };
    InstanceFirewall {
        instance_id: id.into(),
        ingress: vec![all.clone()],
        egress: vec![all],
    }
}

/// Plugs `id` (whose tap the plug makes, then replaced by a veth to guest
/// namespace `guest_ns` and plugged again, as a VM's would be) and gives
/// the guest its lease.
async fn fake_instance(
    networks: &Networks,
    cleanup: &mut Cleanup,
    dir: &Path,
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
    let lease = udhcpc(
        guest_ns,
        dir,
        "ip route replace default via \"$router\"\n  echo \"$ip\"",
    );
    assert_eq!(
        lease.as_deref().map(str::trim),
        Some(nic.private_ip.as_str())
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn internet_routes_decide_public_traffic_live() {
    require_root();
    require_tools(&["ip", "nft", "dnsmasq", "busybox", "python3", "timeout"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pid = std::process::id();
    let config = NetworkConfig {
        state_root: dir.path().join("network"),
        default_subnet: "172.31.0.0/20".parse().expect("subnet"),
        domain: "test.internal".into(),
        underlay: None,
    };
    let public = PublicNetworkConfig {
        bridge: format!("mlpt{PUBLIC_NET:02x}{:05x}", pid & 0xf_ffff),
        cidr: format!("198.19.{PUBLIC_NET}.0/24").parse().expect("cidr"),
        interface: None,
    };
    let mut cleanup = Cleanup {
        namespaces: Vec::new(),
        links: Vec::new(),
        children: Vec::new(),
        config: config.clone(),
        public: public.clone(),
    };
    let networks = Networks::open(
        config,
        Some(public.clone()),
        "nd-test",
        dir.path().join("firewall.json"),
        MetadataService::new(),
    )
    .await
    .expect("open networks");

    // A client on the public network.
    let client = format!("mrc-{pid}");
    let client_ip = public_ip(50);
    let host_end = format!("mrh{pid:08x}");
    cleanup.namespaces.push(client.clone());
    cleanup.links.push(host_end.clone());
    ok(&["ip", "netns", "add", &client]);
    ok(&["ip", "-n", &client, "link", "set", "lo", "up"]);
    ok(&[
        "ip", "link", "add", &host_end, "type", "veth", "peer", "name", "eth0", "netns", &client,
    ]);
    ok(&[
        "ip",
        "link",
        "set",
        &host_end,
        "master",
        &public.bridge,
        "up",
    ]);
    ok(&[
        "ip",
        "-n",
        &client,
        "addr",
        "add",
        &format!("{client_ip}/24"),
        "dev",
        "eth0",
    ]);
    ok(&["ip", "-n", &client, "link", "set", "eth0", "up"]);
    serve(&mut cleanup, &client, 9090);

    // Two instances of one VPC, each with a public address, everything
    // allowed by their groups: only routes stand in the way.
    let (a, b) = ("i-0000000000000a001", "i-0000000000000b001");
    let (a_public, b_public, nat_public) = (public_ip(10), public_ip(11), public_ip(20));
    let mut nic_a = nic_spec(
        "vpc-r",
        "172.31.0.0/20",
        "02:00:00:00:0a:01",
        "172.31.0.10",
        Some(&a_public),
    );
    nic_a.internet = InternetRoute::None;
    let mut nic_b = nic_spec(
        "vpc-r",
        "172.31.16.0/20",
        "02:00:00:00:0b:01",
        "172.31.16.10",
        Some(&b_public),
    );
    nic_b.internet = InternetRoute::Nat {
        public_ip: nat_public.clone(),
    };
    networks
        .put_firewall(FirewallPolicy {
            generation: 1,
            instances: vec![open_to_all(a), open_to_all(b)],
        })
        .await
        .expect("firewall");
    let md_a = instance_metadata("172.31.0.10", &nic_a.mac, "A");
    let md_b = instance_metadata("172.31.16.10", &nic_b.mac, "B");
    let (guest_a, guest_b) = (format!("mrg-a-{pid}"), format!("mrg-b-{pid}"));
    fake_instance(
        &networks,
        &mut cleanup,
        dir.path(),
        a,
        &guest_a,
        &nic_a,
        &md_a,
    )
    .await;
    fake_instance(
        &networks,
        &mut cleanup,
        dir.path(),
        b,
        &guest_b,
        &nic_b,
        &md_b,
    )
    .await;
    serve(&mut cleanup, &guest_a, 8080);
    serve(&mut cleanup, &guest_b, 8080);
    let netns = networks.netns_name("vpc-r");

    // A, without a route: its public address is neither answered nor
    // mapped, and it cannot get out.
    assert_eq!(connect(&client, &a_public, 8080), None);
    assert_eq!(connect(&guest_a, &client_ip, 9090), None);
    let rules = ok(&[
        "ip", "netns", "exec", &netns, "nft", "list", "table", "ip", "mallee",
    ]);
    assert!(!rules.contains("dnat to 172.31.0.10"), "{rules}");
    let uplink = ok(&["ip", "-n", &netns, "-4", "addr", "show", "dev", "pub0"]);
    assert!(!uplink.contains(&a_public), "{uplink}");

    // B, behind the NAT gateway: out under the gateway's address, never
    // in, not even through its own public address or the gateway's.
    let through_nat = format!("peer={nat_public}");
    assert_eq!(
        connect(&guest_b, &client_ip, 9090).as_deref(),
        Some(through_nat.as_str())
    );
    assert_eq!(connect(&client, &b_public, 8080), None);
    assert_eq!(connect(&client, &nat_public, 8080), None);
    assert!(!ping(&client, None, &nat_public));

    // A's subnet gets 0.0.0.0/0 → igw: live, both ways, under its own
    // address.
    nic_a.internet = InternetRoute::Gateway;
    networks.plug(a, &nic_a, &md_a).await.expect("replug a");
    let seen_by_a = format!("peer={client_ip}");
    assert!(
        within_a_second(|| connect(&client, &a_public, 8080).as_deref() == Some(seen_by_a.as_str())),
        "A reachable through its public address once routed to a gateway"
    );
    assert_eq!(
        connect(&guest_a, &client_ip, 9090).as_deref(),
        Some(format!("peer={a_public}").as_str())
    );

    // The gateway is detached (the route goes blackhole): cut again.
    nic_a.internet = InternetRoute::None;
    networks.plug(a, &nic_a, &md_a).await.expect("replug a");
    assert!(
        within_a_second(|| connect(&client, &a_public, 8080).is_none()),
        "A unreachable once its route is gone"
    );
    assert_eq!(connect(&guest_a, &client_ip, 9090), None);

    // The NAT gateway is deleted: B is cut off, and its address leaves the
    // uplink.
    nic_b.internet = InternetRoute::None;
    networks.plug(b, &nic_b, &md_b).await.expect("replug b");
    assert_eq!(connect(&guest_b, &client_ip, 9090), None);
    let uplink = ok(&["ip", "-n", &netns, "-4", "addr", "show", "dev", "pub0"]);
    assert!(!uplink.contains(&nat_public), "{uplink}");

    // A restarted agent keeps the ports' routes (the ports record).
    networks.shutdown().await;
    drop(networks);
    let reopened = Networks::open(
        cleanup.config.clone(),
        Some(public.clone()),
        "nd-test",
        dir.path().join("firewall.json"),
        MetadataService::new(),
    )
    .await
    .expect("reopen");
    assert_eq!(connect(&client, &a_public, 8080), None);
    nic_b.internet = InternetRoute::Nat {
        public_ip: nat_public.clone(),
    };
    reopened.plug(b, &nic_b, &md_b).await.expect("replug b");
    assert!(
        within_a_second(
            || connect(&guest_b, &client_ip, 9090).as_deref() == Some(through_nat.as_str())
        ),
        "B out through the NAT gateway again"
    );
    reopened.shutdown().await;
    drop(cleanup);
    assert!(!Path::new("/run/netns").join(&netns).exists());
}
