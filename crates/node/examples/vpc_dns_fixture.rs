//! A VPC network with many named ports, for `bench/run-dns.sh`: the VPC's
//! resolver as an instance sees it (the node's own dnsmasq, hosts file and
//! nftables rules), measured against a plain dnsmasq serving the same
//! names.
//!
//! `vpc_dns_fixture NAMES DIR`: builds the namespace `mlbench-vpc` with a
//! /22 subnet (10.77.0.0/22), plugs a "client" port (namespace
//! `mlbench-client`, 10.77.0.4, joined by a veth) and gives the VPC NAMES - 1
//! instances on another node (the overlay's remote ports, named by the
//! controller, as a cluster's are; one `set_overlay`, where plugging a
//! thousand local taps one by one takes many minutes), writes every name to
//! `DIR/names`, prints `READY`, and tears everything down when stdin
//! closes. Needs root, `ip`, `nft`, `bridge` and `dnsmasq`.

use std::net::Ipv4Addr;
use std::process::Command;
use std::sync::Arc;
use std::time::Instant;

use mallee_node::network::{
    NodeNetwork, Port, PortDns, RemoteSpec, SegmentSpec, Underlay, VpcConfig, VpcOverlay,
};
use tokio::io::AsyncReadExt;

const VPC_NS: &str = "mlbench-vpc";
const CLIENT_NS: &str = "mlbench-client";
const DOMAIN: &str = "bench.internal";

fn ip(args: &[&str]) {
    let out = Command::new("ip").args(args).output().expect("ip");
    assert!(
        out.status.success(),
        "ip {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The `n`th address of the subnet from .4 on (AWS reserves the first
/// four).
fn address(n: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 77, 0, 4)) + n)
}

fn port(n: u32, tap: &str, mac: String) -> Port {
    let ip = address(n);
    Port {
        instance_id: format!("i-bench{n:05}"),
        mac,
        ip,
        hostname: format!("ip-{}", ip.to_string().replace('.', "-")),
        subnet: "10.77.0.0/22".parse().expect("subnet"),
        public_ip: None,
        dns: PortDns {
            vpc_cidr: Some("10.77.0.0/16".parse().expect("vpc")),
            public_hostname: Some(format!("ec2-{tap}.bench.compute.mallee")),
            domain_name: None,
        },
        internet: Default::default(),
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let mut args = std::env::args().skip(1);
    let names: u32 = args
        .next()
        .and_then(|n| n.parse().ok())
        .filter(|n| (2..=1000).contains(n))
        .expect("usage: vpc_dns_fixture NAMES(2-1000) DIR");
    let dir = std::path::PathBuf::from(args.next().expect("DIR"));
    let config = VpcConfig {
        network_id: "vpc-bench".into(),
        netns: VPC_NS.into(),
        state_dir: dir.join("net"),
        domain: DOMAIN.into(),
        public: None,
        // The remote node is never sent a frame: DNS stays in the namespace.
        underlay: Some(Underlay {
            local: Ipv4Addr::LOCALHOST,
            mtu: 65536,
        }),
    };
    let network = NodeNetwork::ensure(config.clone(), Arc::default(), Arc::default())
        .await
        .expect("ensure");
    ip(&["netns", "add", CLIENT_NS]);
    ip(&["-n", CLIENT_NS, "link", "set", "lo", "up"]);
    let client_mac = "02:00:00:00:00:04";
    ip(&[
        "-n", CLIENT_NS, "link", "add", "eth0", "address", client_mac, "type", "veth", "peer",
        "name", "vclient", "netns", VPC_NS,
    ]);
    ip(&[
        "-n",
        CLIENT_NS,
        "addr",
        "add",
        "10.77.0.4/22",
        "dev",
        "eth0",
    ]);
    ip(&["-n", CLIENT_NS, "link", "set", "eth0", "up"]);
    let started = Instant::now();
    network
        .plug("vclient", port(0, "vclient", client_mac.into()))
        .await
        .expect("client port");
    let mut listed = format!("{}.{DOMAIN}\n", port(0, "", String::new()).hostname);
    let remote_node = Ipv4Addr::new(127, 0, 0, 2);
    let mut overlay = VpcOverlay {
        segments: vec![SegmentSpec {
            subnet: "10.77.0.0/22".parse().expect("subnet"),
            vni: 7700,
        }],
        peers: [remote_node].into(),
        remotes: Vec::new(),
    };
    for n in 1..names {
        let ip = address(n);
        let name = format!("ip-{}.{DOMAIN}", ip.to_string().replace('.', "-"));
        listed.push_str(&format!("{name}\n"));
        overlay.remotes.push(RemoteSpec {
            mac: format!("02:00:00:00:{:02x}:{:02x}", n >> 8, n & 0xff),
            ip,
            vni: 7700,
            underlay: remote_node,
            dns_names: vec![name],
        });
    }
    network
        .set_overlay(Arc::new(overlay))
        .await
        .expect("overlay");
    std::fs::write(dir.join("names"), listed).expect("names");
    eprintln!(
        "{names} ports plugged in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    println!("READY");
    let mut rest = Vec::new();
    let _ = tokio::io::stdin().read_to_end(&mut rest).await;
    NodeNetwork::destroy(&config).await.expect("destroy");
    let _ = Command::new("ip")
        .args(["netns", "del", CLIENT_NS])
        .status();
}
