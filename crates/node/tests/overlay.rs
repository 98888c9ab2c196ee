//! VPCs across nodes for real: three "node hosts", each a network
//! namespace with its own address on a shared datacenter bridge (the
//! underlay) and its own link to a shared public LAN. Each host runs the
//! node's networks ([`Networks`]) on a thread that entered the host's
//! namespace, so every `ip`, `bridge` and `nft` command the node runs
//! (they inherit the thread's namespace) acts on that host, exactly as
//! `mallee node` would on a machine of its own. "Instances" are namespaces
//! joined by a veth pair whose inner end takes the instance's tap name;
//! busybox and python3 play the guests and the client on the public LAN.
//! The overlays are what the controller would push (see
//! `mallee_cloud::overlay`).
//!
//! Needs root, `ip`, `bridge`, `nft`, `dnsmasq`, `busybox`, `python3`,
//! `arping` (iputils) and `timeout`; fails (never skips) without them.
//! Every namespace, bridge and process it makes is removed at the end,
//! also when it fails.

use std::future::Future;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mallee_node::metadata::MetadataService;
use mallee_node::network::{
    NetworkConfig, PublicNetworkConfig, Underlay, bridge_name, gateway_mac, tap_name, vxlan_name,
};
use mallee_node::vpc_networks::Networks;
use mallee_node_api::{
    FirewallPolicy, FirewallRule, InstanceFirewall, InstanceMetadata, NicSpec, Overlay,
    OverlayNetwork, RemotePort, Segment,
};

include!("common/netns.rs");
include!("common/instance.rs");

/// The public range of the zone; its first host is the client (the LAN's
/// "router").
const PUBLIC: &str = "198.19.210";
/// A public address that moves between nodes.
const EIP: &str = "198.19.210.10";
const SUBNET_1: &str = "172.31.0.0/20";
const SUBNET_2: &str = "172.31.16.0/20";

type Job = Box<dyn FnOnce() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send>;

/// A node host: a namespace, and a thread inside it running the node's
/// networks on a single-threaded runtime.
struct Host {
    index: u8,
    netns: String,
    dir: PathBuf,
    jobs: Option<tokio::sync::mpsc::UnboundedSender<Job>>,
    thread: Option<std::thread::JoinHandle<()>>,
    networks: Arc<Mutex<Option<Arc<Networks>>>>,
}

impl Host {
    fn underlay(&self) -> String {
        format!("10.78.0.{}", self.index)
    }

    /// Starts the host's thread (the namespace must exist).
    fn start(index: u8, netns: &str, dir: &Path) -> Self {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Job>();
        let path = Path::new("/run/netns").join(netns);
        let thread = std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("host namespace");
            nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET).expect("enter host");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                while let Some(job) = rx.recv().await {
                    tokio::spawn(job());
                }
            });
        });
        Self {
            index,
            netns: netns.to_owned(),
            dir: dir.join(format!("host{index}")),
            jobs: Some(tx),
            thread: Some(thread),
            networks: Arc::new(Mutex::new(None)),
        }
    }

    /// Runs `f` on the host (in its namespace) and waits for its answer.
    fn run<T, F, Fut>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce() -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let (tx, rx) = std::sync::mpsc::channel();
        let job: Job = Box::new(move || {
            Box::pin(async move {
                let _ = tx.send(f().await);
            })
        });
        self.jobs
            .as_ref()
            .expect("host running")
            .send(job)
            .expect("host thread alive");
        rx.recv().expect("the job panicked")
    }

    /// Runs `f` with the host's networks.
    fn with<T, F, Fut>(&self, f: F) -> T
    where
        T: Send + 'static,
        F: FnOnce(Arc<Networks>) -> Fut + Send + 'static,
        Fut: Future<Output = T> + Send + 'static,
    {
        let networks = self
            .networks
            .lock()
            .expect("lock")
            .clone()
            .expect("networks open");
        self.run(move || f(networks))
    }

    fn config(&self) -> (NetworkConfig, PublicNetworkConfig) {
        (
            NetworkConfig {
                state_root: self.dir.join("network"),
                default_subnet: SUBNET_1.parse().expect("subnet"),
                domain: "test.internal".into(),
                underlay: None,
            },
            PublicNetworkConfig {
                bridge: "mlpub".into(),
                cidr: format!("{PUBLIC}.0/24").parse().expect("cidr"),
                interface: Some("pubup".into()),
            },
        )
    }

    /// Opens the node's networks on the host (again, after a restart).
    fn open(&self) {
        let (mut config, public) = self.config();
        let underlay: Ipv4Addr = self.underlay().parse().expect("ip");
        let node_id = format!("nd-host{}", self.index);
        let firewall = self.dir.join("firewall.json");
        let slot = self.networks.clone();
        self.run(move || async move {
            config.underlay = Some(Underlay::detect(underlay).await.expect("underlay"));
            let networks = Networks::open(
                config,
                Some(public),
                &node_id,
                firewall,
                MetadataService::new(),
            )
            .await
            .expect("open networks");
            *slot.lock().expect("lock") = Some(Arc::new(networks));
        });
    }

    /// Stops the node's networks as an agent stop would (the namespaces
    /// stay).
    fn close(&self) {
        let networks = self.networks.lock().expect("lock").take();
        if let Some(networks) = networks {
            self.run(move || async move { networks.shutdown().await });
        }
    }

    /// Removes everything the node made on the host, then ends the thread.
    fn purge(&mut self) {
        self.close();
        let (config, public) = self.config();
        if self.jobs.is_some() {
            let _ = self.run(move || async move {
                Networks::purge(&config, Some(&public))
                    .await
                    .map_err(|e| e.to_string())
            });
        }
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Removes every host's networks, the processes and every namespace, also
/// when the test fails.
struct Lab {
    hosts: Vec<Host>,
    namespaces: Vec<String>,
    children: Vec<Child>,
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for host in &mut self.hosts {
            host.purge();
        }
        for ns in self.namespaces.iter().rev() {
            let _ = Command::new("ip").args(["netns", "del", ns]).output();
        }
    }
}

/// One instance of the test: where it runs and its interface.
#[derive(Clone)]
struct Guest {
    id: &'static str,
    host: usize,
    vpc: &'static str,
    subnet: &'static str,
    mac: &'static str,
    ip: &'static str,
}

const A1: Guest = Guest {
    id: "i-000000000000000a1",
    host: 0,
    vpc: "vpc-aaaa",
    subnet: SUBNET_1,
    mac: "02:00:00:00:0a:01",
    ip: "172.31.0.4",
};
const A2: Guest = Guest {
    id: "i-000000000000000a2",
    host: 1,
    vpc: "vpc-aaaa",
    subnet: SUBNET_2,
    mac: "02:00:00:00:0a:02",
    ip: "172.31.16.4",
};
const A3: Guest = Guest {
    id: "i-000000000000000a3",
    host: 2,
    vpc: "vpc-aaaa",
    subnet: SUBNET_1,
    mac: "02:00:00:00:0a:03",
    ip: "172.31.0.5",
};
// Another VPC with the same addresses.
const B1: Guest = Guest {
    id: "i-000000000000000b1",
    host: 0,
    vpc: "vpc-bbbb",
    subnet: SUBNET_1,
    mac: "02:00:00:00:0b:01",
    ip: "172.31.0.4",
};
const B3: Guest = Guest {
    id: "i-000000000000000b3",
    host: 2,
    vpc: "vpc-bbbb",
    subnet: SUBNET_1,
    mac: "02:00:00:00:0b:03",
    ip: "172.31.0.5",
};
const GUESTS: [Guest; 5] = [A1, A2, A3, B1, B3];

/// Each VPC's subnets and their VNIs (as the controller's store gives
/// them: never shared).
fn segments(vpc: &str) -> Vec<Segment> {
    let segment = |cidr: &str, vni| Segment {
        subnet_cidr: cidr.into(),
        gateway: cidr.replace(".0/20", ".1"),
        vni,
    };
    match vpc {
        "vpc-aaaa" => vec![segment(SUBNET_1, 101), segment(SUBNET_2, 102)],
        _ => vec![segment(SUBNET_1, 201)],
    }
}

/// What the controller pushes to `host` (of `hosts`, by underlay address)
/// for `guests`, as `mallee_cloud::overlay::plan` computes it.
fn overlay(generation: u64, host: usize, underlays: &[String], guests: &[Guest]) -> Overlay {
    let mut vpcs: Vec<&str> = guests
        .iter()
        .filter(|g| g.host == host)
        .map(|g| g.vpc)
        .collect();
    vpcs.sort_unstable();
    vpcs.dedup();
    let networks = vpcs
        .into_iter()
        .map(|vpc| {
            let segments = segments(vpc);
            let vni = |subnet: &str| {
                segments
                    .iter()
                    .find(|s| s.subnet_cidr == subnet)
                    .expect("segment")
                    .vni
            };
            let others: Vec<&Guest> = guests
                .iter()
                .filter(|g| g.vpc == vpc && g.host != host)
                .collect();
            let mut peers: Vec<String> = others.iter().map(|g| underlays[g.host].clone()).collect();
            peers.sort();
            peers.dedup();
            OverlayNetwork {
                network_id: vpc.into(),
                remote_ports: others
                    .iter()
                    .map(|g| RemotePort {
                        mac: g.mac.into(),
                        ip: g.ip.into(),
                        vni: vni(g.subnet),
                        underlay_ip: underlays[g.host].clone(),
                        dns_names: Vec::new(),
                    })
                    .collect(),
                segments,
                peers,
            }
        })
        .collect();
    Overlay {
        generation,
        networks,
    }
}

fn nic(guest: &Guest, public_ip: Option<&str>) -> NicSpec {
    nic_spec(guest.vpc, guest.subnet, guest.mac, guest.ip, public_ip)
}

fn metadata(guest: &Guest) -> InstanceMetadata {
    instance_metadata(guest.ip, guest.mac, guest.id)
}

fn all(cidr: &str) -> Vec<FirewallRule> {
    vec![FirewallRule {
        protocol: "-1".into(),
        from_port: None,
        to_port: None,
        cidrs: vec![cidr.into()],
    }]
}

fn firewall(id: &str, ingress: Vec<FirewallRule>, egress: Vec<FirewallRule>) -> InstanceFirewall {
    InstanceFirewall {
        instance_id: id.into(),
        ingress,
        egress,
    }
}

fn tcp(port: i32, cidr: &str) -> FirewallRule {
    FirewallRule {
        protocol: "tcp".into(),
        from_port: Some(port),
        to_port: Some(port),
        cidrs: vec![cidr.into()],
    }
}

/// Each guest's namespace on this test run.
fn guest_ns(guest: &Guest, pid: u32) -> String {
    format!("mxg{}-{pid}", &guest.id[guest.id.len() - 2..])
}

/// Plugs `guest` on its host (first as a tap, which is then replaced by a
/// veth to its namespace and plugged again, as a VM's would be).
fn plug(lab: &mut Lab, guest: &Guest, public_ip: Option<&str>, pid: u32) {
    let host = &lab.hosts[guest.host];
    let (id, spec, md) = (guest.id, nic(guest, public_ip), metadata(guest));
    let netns = host.with(move |n| async move {
        n.plug(id, &spec, &md).await.expect("plug");
        n.netns_name(spec.network_id.as_str())
    });
    let tap = tap_name(guest.id);
    ok(&["ip", "-n", &netns, "link", "del", &tap]);
    let ns = guest_ns(guest, pid);
    lab.namespaces.push(ns.clone());
    add_guest(&ns, &netns, &tap, guest.mac);
    replug(lab, guest, public_ip);
}

/// Plugs `guest` again (a new public address, say).
fn replug(lab: &Lab, guest: &Guest, public_ip: Option<&str>) {
    let (id, spec, md) = (guest.id, nic(guest, public_ip), metadata(guest));
    lab.hosts[guest.host].with(move |n| async move { n.plug(id, &spec, &md).await.expect("plug") });
}

fn put_firewall(host: &Host, generation: u64, instances: Vec<InstanceFirewall>) {
    host.with(move |n| async move {
        n.put_firewall(FirewallPolicy {
            generation,
            instances,
        })
        .await
        .expect("firewall")
    });
}

fn put_overlay(lab: &Lab, generation: u64, guests: &[Guest]) {
    let underlays: Vec<String> = lab.hosts.iter().map(Host::underlay).collect();
    for (index, host) in lab.hosts.iter().enumerate() {
        let overlay = overlay(generation, index, &underlays, guests);
        let applied = host.with(move |n| async move { n.put_overlay(overlay).await });
        assert_eq!(applied.expect("overlay"), generation);
    }
}

const SERVER: &str = r"
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(('0.0.0.0', 8080))
s.listen(16)
while True:
    c, a = s.accept()
    c.sendall((sys.argv[1] + ' ' + a[0] + '\n').encode())
    c.close()
";

/// Connects to `ip:8080` until the answer starts with `want` (or `tries`
/// attempts, 0.2 s apart at most, failed); prints the last answer.
const POLL: &str = r"
import socket, sys, time
last = ''
for _ in range(int(sys.argv[3])):
    try:
        c = socket.create_connection((sys.argv[1], 8080), timeout=0.2)
        last = c.recv(100).decode().strip()
        c.close()
        if last.startswith(sys.argv[2]):
            break
    except OSError:
        last = ''
    time.sleep(0.02)
print(last)
";

/// A TCP server on port 8080 of `ns` that answers `name` and the client's
/// address.
fn serve(lab: &mut Lab, ns: &str, name: &str) {
    let child = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", SERVER, name])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server");
    lab.children.push(child);
}

/// What `ip:8080` answers connections from `ns` until one starts with
/// `want` (at most `tries`).
fn poll(ns: &str, ip: &str, want: &str, tries: u32) -> String {
    let out = python_in(ns, 20, POLL, &[ip, want, &tries.to_string()]);
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// What `ip:8080` answers one connection from `ns` (empty: nothing).
fn connect(ns: &str, ip: &str) -> String {
    poll(ns, ip, "", 1)
}

fn file_contains(path: &Path, needle: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|s| s.contains(needle))
}

/// The datacenter: a namespace holding the underlay bridge and the public
/// LAN bridge, three hosts joined to both, and a client on the LAN.
fn build_lab(pid: u32, dir: &Path) -> (Lab, String) {
    let dc = format!("mxd-{pid}");
    let client = format!("mxc-{pid}");
    let mut lab = Lab {
        hosts: Vec::new(),
        namespaces: vec![dc.clone()],
        children: Vec::new(),
    };
    ok(&["ip", "netns", "add", &dc]);
    for bridge in ["dc", "lan"] {
        ok(&["ip", "-n", &dc, "link", "add", bridge, "type", "bridge"]);
        ok(&["ip", "-n", &dc, "link", "set", bridge, "up"]);
    }
    for index in 1..=3u8 {
        let ns = format!("mxh{index}-{pid}");
        lab.namespaces.push(ns.clone());
        ok(&["ip", "netns", "add", &ns]);
        ok(&["ip", "-n", &ns, "link", "set", "lo", "up"]);
        for (outer, inner, bridge) in [("u", "eth0", "dc"), ("p", "pubup", "lan")] {
            let outer = format!("{outer}{index}");
            ok(&[
                "ip", "-n", &dc, "link", "add", &outer, "type", "veth", "peer", "name", inner,
                "netns", &ns,
            ]);
            ok(&[
                "ip", "-n", &dc, "link", "set", &outer, "master", bridge, "up",
            ]);
            ok(&["ip", "-n", &ns, "link", "set", inner, "up"]);
        }
        ok(&[
            "ip",
            "-n",
            &ns,
            "addr",
            "add",
            &format!("10.78.0.{index}/24"),
            "dev",
            "eth0",
        ]);
        let host = Host::start(index, &ns, dir);
        lab.hosts.push(host);
    }
    lab.namespaces.push(client.clone());
    ok(&["ip", "netns", "add", &client]);
    ok(&["ip", "-n", &client, "link", "set", "lo", "up"]);
    ok(&[
        "ip", "-n", &dc, "link", "add", "c0", "type", "veth", "peer", "name", "eth0", "netns",
        &client,
    ]);
    ok(&["ip", "-n", &dc, "link", "set", "c0", "master", "lan", "up"]);
    ok(&[
        "ip",
        "-n",
        &client,
        "addr",
        "add",
        &format!("{PUBLIC}.1/24"),
        "dev",
        "eth0",
    ]);
    ok(&["ip", "-n", &client, "link", "set", "eth0", "up"]);
    for host in &lab.hosts {
        host.open();
    }
    (lab, client)
}

#[test]
fn vpcs_span_nodes_over_vxlan() {
    require_root();
    require_tools(&[
        "ip", "bridge", "nft", "dnsmasq", "busybox", "python3", "arping", "timeout",
    ]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pid = std::process::id();
    let (mut lab, client) = build_lab(pid, dir.path());
    let ns = |g: &Guest| guest_ns(g, pid);

    // The public bridge of each host is on the LAN, with no host address.
    for host in &lab.hosts {
        let bridge = ok(&[
            "ip",
            "-n",
            &host.netns,
            "-4",
            "addr",
            "show",
            "dev",
            "mlpub",
        ]);
        assert!(!bridge.contains("inet "), "{bridge}");
        let port = ok(&["ip", "-n", &host.netns, "link", "show", "dev", "pubup"]);
        assert!(port.contains("master mlpub"), "{port}");
    }

    let everyone: Vec<InstanceFirewall> = GUESTS
        .iter()
        .map(|g| firewall(g.id, all("0.0.0.0/0"), all("0.0.0.0/0")))
        .collect();
    for host in &lab.hosts {
        put_firewall(host, 1, everyone.clone());
    }
    put_overlay(&lab, 1, &GUESTS);
    for guest in &GUESTS {
        let public = (guest.id == A1.id).then_some(EIP);
        plug(&mut lab, guest, public, pid);
    }

    // DHCP is local and hands out the MTU that leaves room for VXLAN; the
    // gateway answers from this node with the subnet's MAC.
    for guest in &GUESTS {
        let lease = udhcpc(
            &ns(guest),
            dir.path(),
            "ip route replace default via \"$router\"\n  echo \"$ip $mtu\"",
        );
        assert_eq!(
            lease.as_deref().map(str::trim),
            Some(format!("{} 1450", guest.ip).as_str()),
            "{}",
            guest.id
        );
        ok(&["ip", "-n", &ns(guest), "link", "set", "eth0", "mtu", "1450"]);
    }
    let underlays: Vec<String> = lab.hosts.iter().map(Host::underlay).collect();
    let a_netns: Vec<String> = lab
        .hosts
        .iter()
        .map(|h| h.with(|n| async move { n.netns_name("vpc-aaaa") }))
        .collect();
    let leases = |host: usize| {
        lab.hosts[host]
            .dir
            .join("network")
            .join("vpc-aaaa")
            .join("dnsmasq.log")
    };
    assert!(file_contains(&leases(0), A1.mac), "A1 asked its own node");
    assert!(
        !file_contains(&leases(2), A1.mac),
        "A1's DHCP request crossed to another node"
    );
    assert!(ping(&ns(&A1), None, "172.31.0.1"));
    let neigh = ok(&["ip", "-n", &ns(&A1), "neigh", "show", "172.31.0.1"]);
    assert!(
        neigh.contains(&gateway_mac(SUBNET_1.parse().expect("subnet"))),
        "{neigh}"
    );

    // Same VPC, other nodes: the same subnet over VXLAN, and another
    // subnet routed on the node where the traffic starts.
    for guest in &GUESTS {
        serve(&mut lab, &ns(guest), &guest.id[guest.id.len() - 2..]);
    }
    std::thread::sleep(Duration::from_millis(500));
    assert!(ping(&ns(&A1), None, A3.ip), "A1 → A3 (same subnet, host 3)");
    assert!(ping(&ns(&A3), None, A1.ip));
    assert!(
        ping(&ns(&A1), None, A2.ip),
        "A1 → A2 (other subnet, host 2)"
    );
    assert_eq!(connect(&ns(&A1), A3.ip), format!("a3 {}", A1.ip));
    assert_eq!(connect(&ns(&A2), A1.ip), format!("a1 {}", A2.ip));
    assert_eq!(connect(&ns(&A2), A3.ip), format!("a3 {}", A2.ip));
    // A full-size frame of the MTU handed out crosses.
    assert!(succeeds(&[
        "ip",
        "netns",
        "exec",
        &ns(&A1),
        "busybox",
        "ping",
        "-c",
        "1",
        "-W",
        "2",
        "-s",
        "1422",
        A3.ip
    ]));

    // The other VPC has the same addresses on the same nodes and never
    // sees the first one's traffic.
    assert_eq!(connect(&ns(&B1), A3.ip), format!("b3 {}", B1.ip));
    assert_eq!(connect(&ns(&A1), A3.ip), format!("a3 {}", A1.ip));
    assert!(!ping(&ns(&B1), None, A2.ip), "VPC B reached VPC A's subnet");
    let fdb = ok(&[
        "bridge",
        "-n",
        &a_netns[0],
        "fdb",
        "show",
        "dev",
        &vxlan_name(&a_netns[0], 101),
    ]);
    assert!(
        fdb.contains(&format!("{} dst {}", A3.mac, underlays[2])),
        "{fdb}"
    );
    assert!(!fdb.contains(B3.mac), "{fdb}");

    // Security groups apply to traffic between nodes: A3 takes TCP 8080
    // from A1 only, nothing else; A1 may not send to A2.
    let mut rules = everyone.clone();
    rules[2] = firewall(A3.id, vec![tcp(8080, "172.31.0.4/32")], all("0.0.0.0/0"));
    put_firewall(&lab.hosts[2], 2, rules.clone());
    assert!(within_a_second(|| !ping(&ns(&A1), None, A3.ip)));
    assert_eq!(connect(&ns(&A1), A3.ip), format!("a3 {}", A1.ip));
    assert_eq!(connect(&ns(&A2), A3.ip), "", "A2 is not in A3's rule");
    rules[0] = firewall(A1.id, all("0.0.0.0/0"), vec![tcp(8080, "172.31.0.0/20")]);
    put_firewall(&lab.hosts[0], 2, rules.clone());
    assert!(within_a_second(|| connect(&ns(&A1), A2.ip).is_empty()));
    assert_eq!(connect(&ns(&A1), A3.ip), format!("a3 {}", A1.ip));
    for host in &lab.hosts {
        put_firewall(host, 3, everyone.clone());
    }
    assert!(within_a_second(|| ping(&ns(&A1), None, A3.ip)));

    // The overlay is kept in step: a lost entry comes back with the next
    // push, a node restart keeps the traffic flowing, and a peer that
    // leaves the VPC is forgotten.
    let a1_vx = vxlan_name(&a_netns[0], 101);
    ok(&[
        "bridge",
        "-n",
        &a_netns[0],
        "fdb",
        "del",
        A3.mac,
        "dev",
        &a1_vx,
        "self",
    ]);
    let subnet_2 = bridge_name(SUBNET_2.parse().expect("subnet"));
    ok(&[
        "ip",
        "-n",
        &a_netns[0],
        "neigh",
        "del",
        A2.ip,
        "dev",
        &subnet_2,
    ]);
    put_overlay(&lab, 1, &GUESTS);
    let fdb = ok(&["bridge", "-n", &a_netns[0], "fdb", "show", "dev", &a1_vx]);
    assert!(
        fdb.contains(&format!("{} dst {}", A3.mac, underlays[2])),
        "{fdb}"
    );
    assert!(ping(&ns(&A1), None, A2.ip));
    lab.hosts[1].close();
    lab.hosts[1].open();
    assert!(ping(&ns(&A1), None, A2.ip), "after host 2's agent restart");
    assert!(ping(&ns(&A2), None, A3.ip));
    let without_a3: Vec<Guest> = GUESTS.iter().filter(|g| g.id != A3.id).cloned().collect();
    put_overlay(&lab, 2, &without_a3);
    let fdb = ok(&["bridge", "-n", &a_netns[0], "fdb", "show", "dev", &a1_vx]);
    assert!(
        !fdb.contains(&underlays[2]),
        "host 3 is still a peer:\n{fdb}"
    );
    assert!(!ping(&ns(&A1), None, A3.ip));
    put_overlay(&lab, 3, &GUESTS);
    assert!(within_a_second(|| ping(&ns(&A1), None, A3.ip)));

    // A public address answers from its node; moved to an instance on
    // another node, it answers from there within a second.
    assert_eq!(connect(&client, EIP), format!("a1 {PUBLIC}.1"));
    replug(&lab, &A1, None);
    let moved = Instant::now();
    replug(&lab, &A3, Some(EIP));
    let answer = poll(&client, EIP, "a3", 100);
    let took = moved.elapsed();
    eprintln!("the elastic IP answered from its new node after {took:?}");
    assert_eq!(answer, format!("a3 {PUBLIC}.1"), "after the move");
    assert!(
        took < Duration::from_secs(1),
        "the public address took {took:?} to move"
    );
    assert_eq!(connect(&client, EIP), format!("a3 {PUBLIC}.1"));

    // Removing the instances takes the VPC namespaces with them; the lab's
    // purge removes the rest.
    for guest in &GUESTS {
        let (id, spec) = (guest.id, nic(guest, None));
        lab.hosts[guest.host]
            .with(move |n| async move { n.unplug(id, &spec).await.expect("unplug") });
    }
    for (index, netns) in a_netns.iter().enumerate() {
        assert!(
            !Path::new("/run/netns").join(netns).exists(),
            "host {index} kept VPC A's namespace"
        );
    }
    let host_links = ok(&["ip", "-n", &lab.hosts[0].netns, "-o", "link", "show"]);
    assert!(!host_links.contains("mvx"), "{host_links}");
    let namespaces = lab.namespaces.clone();
    drop(lab);
    for ns in namespaces {
        assert!(!Path::new("/run/netns").join(&ns).exists(), "{ns} left");
    }
}
