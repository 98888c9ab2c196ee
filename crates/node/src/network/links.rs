//! The links of a VPC namespace, made with `ip`: the namespace itself
//! (with `lo` carrying the metadata address and forwarding on), one bridge
//! per subnet with the gateway address, the veth pair to the node's public
//! bridge with the public addresses and routes, and link lookups and
//! removal.

use std::collections::BTreeSet;
use std::path::Path;

use mallee_util::cidr::Ipv4Cidr;
use mallee_util::process::{Cmd, run};

use super::system::{host_link_exists, namespace_exists};

/// How long the gratuitous ARPs for a new public address may take.
const ANNOUNCE_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);
use super::{
    DNS_ADDR, METADATA_ADDR, NetworkError, NodeNetwork, Ports, PublicNetworkConfig, UPLINK,
    bridge_name,
};

impl NodeNetwork {
    /// The namespace, `lo` up with the metadata and resolver addresses, and IPv4
    /// forwarding with bridged traffic through conntrack.
    pub(super) async fn ensure_namespace(&self) -> Result<(), NetworkError> {
        let ns = self.netns();
        if !namespace_exists(ns)
            && let Err(e) = run("ip", &["netns", "add", ns]).await
            && !namespace_exists(ns)
        {
            return Err(e.into());
        }
        self.ip(&["link", "set", "dev", "lo", "up"]).await?;
        // Who owns the namespace, on the namespace itself: it outlives a
        // deleted data directory, and `mallee purge --orphans` reads it.
        let owner = super::owner::Owner::Vpc {
            state_dir: std::fs::canonicalize(&self.inner.config.state_dir)
                .unwrap_or_else(|_| self.inner.config.state_dir.clone()),
        };
        super::owner::mark_link(Some(ns), "lo", &owner).await?;
        for addr in [METADATA_ADDR, DNS_ADDR] {
            self.ip(&["addr", "replace", &format!("{addr}/32"), "dev", "lo"])
                .await?;
        }
        // br_netfilter runs conntrack on bridged frames; the firewall's
        // replies-are-allowed rule depends on it.
        if !Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
            let _ = run("modprobe", &["br_netfilter"]).await;
        }
        if !Path::new("/proc/sys/net/bridge/bridge-nf-call-iptables").exists() {
            return Err(NetworkError::Kernel(
                "the kernel's br_netfilter is needed for stateful security groups \
                 (modprobe br_netfilter)"
                    .to_owned(),
            ));
        }
        let mut sysctl = vec!["netns", "exec", ns, "sysctl", "-q", "-w"];
        sysctl.extend([
            "net.ipv4.ip_forward=1",
            "net.bridge.bridge-nf-call-iptables=1",
        ]);
        run("ip", &sysctl).await?;
        Ok(())
    }

    /// The veth pair to the public bridge, the routes through it.
    pub(super) async fn ensure_uplink(&self) -> Result<(), NetworkError> {
        let Some(public) = &self.inner.config.public else {
            return Ok(());
        };
        let host = self.inner.config.host_veth();
        if !self.link_exists(UPLINK).await? {
            if host_link_exists(&host).await {
                run("ip", &["link", "del", "dev", &host]).await?;
            }
            run(
                "ip",
                &[
                    "link",
                    "add",
                    "name",
                    &host,
                    "type",
                    "veth",
                    "peer",
                    "name",
                    UPLINK,
                    "netns",
                    self.netns(),
                ],
            )
            .await?;
        }
        run(
            "ip",
            &["link", "set", "dev", &host, "master", &public.bridge, "up"],
        )
        .await?;
        self.ip(&["link", "set", "dev", UPLINK, "up"]).await?;
        self.uplink_routes(public).await
    }

    /// The bridge of `subnet`, up, with the gateway address and MAC (the
    /// same on every node) and bridged IPv4 through conntrack.
    pub(super) async fn ensure_bridge(&self, subnet: Ipv4Cidr) -> Result<(), NetworkError> {
        let bridge = bridge_name(subnet);
        if !self.link_exists(&bridge).await? {
            // STP off (the default) so ports forward at once.
            let made = self
                .ip(&["link", "add", "name", &bridge, "type", "bridge"])
                .await;
            if let Err(e) = made
                && !self.link_exists(&bridge).await?
            {
                return Err(e);
            }
        }
        self.ip(&[
            "link",
            "set",
            "dev",
            &bridge,
            "address",
            &super::gateway_mac(subnet),
        ])
        .await?;
        // Bridged IPv4 through conntrack, whatever the namespace default.
        self.ip(&[
            "link",
            "set",
            "dev",
            &bridge,
            "type",
            "bridge",
            "nf_call_iptables",
            "1",
        ])
        .await?;
        let gateway = format!("{}/{}", subnet.first_host(), subnet.prefix());
        let broadcast = subnet.broadcast().to_string();
        self.ip(&[
            "addr",
            "replace",
            &gateway,
            "broadcast",
            &broadcast,
            "dev",
            &bridge,
        ])
        .await?;
        self.ip(&["link", "set", "dev", &bridge, "up"]).await?;
        Ok(())
    }

    /// Deletes the bridges neither a port nor the overlay uses any more.
    pub(super) async fn remove_unused_bridges(&self, ports: &Ports) -> Result<(), NetworkError> {
        let wanted: BTreeSet<String> = self
            .wanted_subnets(ports)
            .into_iter()
            .map(bridge_name)
            .collect();
        let out = self.ip(&["-j", "link", "show", "type", "bridge"]).await?;
        let parsed: serde_json::Value = serde_json::from_str(&out).unwrap_or_default();
        for link in parsed.as_array().into_iter().flatten() {
            if let Some(name) = link["ifname"].as_str()
                && !wanted.contains(name)
            {
                self.delete_link(name).await?;
            }
        }
        Ok(())
    }

    /// The public addresses on the uplink: exactly those of the ports.
    pub(super) async fn sync_public_addresses(&self, ports: &Ports) -> Result<(), NetworkError> {
        let Some(public) = &self.inner.config.public else {
            return Ok(());
        };
        // The addresses the namespace answers for on the public side: the
        // mapped ones and the NAT gateways'; an unmapped public address
        // gets no ARP answer, so nothing reaches it.
        let wanted: BTreeSet<String> = ports
            .values()
            .flat_map(|p| [p.mapped_public_ip(), p.nat_ip()])
            .flatten()
            .map(|ip| format!("{ip}/32"))
            .collect();
        let present = self.addresses(UPLINK).await?;
        // New ones before stale ones go: removing a device's last address
        // flushes its routes.
        for addr in &wanted {
            if present.contains(addr) {
                continue;
            }
            self.ip(&["addr", "replace", addr, "dev", UPLINK]).await?;
            // Whoever on the public network cached another owner's MAC for
            // this address (it moved here, maybe from another node) learns
            // the new one: the host forgets it, the others hear two
            // gratuitous ARPs a second apart (best effort, in the
            // background: arping takes that second).
            let ip = addr.trim_end_matches("/32").to_owned();
            let _ = run("ip", &["neigh", "del", &ip, "dev", &public.bridge]).await;
            let announce = Cmd::new("ip")
                .args(["netns", "exec", self.netns()])
                .args(["arping", "-U", "-c", "2", "-I", UPLINK, &ip])
                .timeout(ANNOUNCE_LIMIT);
            tokio::spawn(async move {
                if let Err(e) = announce.run().await {
                    tracing::warn!(error = %e, "gratuitous ARP for a public address failed");
                }
            });
        }
        for addr in &present {
            if !wanted.contains(addr) {
                self.ip(&["addr", "del", addr, "dev", UPLINK]).await?;
            }
        }
        self.uplink_routes(public).await
    }

    /// The public range on-link and the default route via the bridge.
    async fn uplink_routes(&self, public: &PublicNetworkConfig) -> Result<(), NetworkError> {
        let range = public.cidr.canonical().to_string();
        self.ip(&["route", "replace", &range, "dev", UPLINK])
            .await?;
        let gateway = public.gateway().to_string();
        self.ip(&[
            "route", "replace", "default", "via", &gateway, "dev", UPLINK, "onlink",
        ])
        .await?;
        Ok(())
    }

    /// The IPv4 addresses (`a.b.c.d/n`) of `link` in the namespace.
    async fn addresses(&self, link: &str) -> Result<Vec<String>, NetworkError> {
        let out = self.ip(&["-j", "-4", "addr", "show", "dev", link]).await?;
        let parsed: serde_json::Value =
            serde_json::from_str(&out).map_err(|e| NetworkError::Output {
                command: format!("ip -n {} -j -4 addr show dev {link}", self.netns()),
                reason: e.to_string(),
            })?;
        let mut addrs = Vec::new();
        for link in parsed.as_array().into_iter().flatten() {
            for info in link["addr_info"].as_array().into_iter().flatten() {
                if let (Some(local), Some(len)) =
                    (info["local"].as_str(), info["prefixlen"].as_u64())
                {
                    addrs.push(format!("{local}/{len}"));
                }
            }
        }
        Ok(addrs)
    }

    /// Whether the namespace has a link called `name`.
    pub(super) async fn link_exists(&self, name: &str) -> Result<bool, NetworkError> {
        Ok(Cmd::new("ip")
            .args(["-n", self.netns(), "link", "show", "dev", name])
            .succeeds()
            .await?)
    }

    /// Deletes link `name` from the namespace; one that is not there is
    /// fine.
    pub(super) async fn delete_link(&self, name: &str) -> Result<(), NetworkError> {
        if self.link_exists(name).await?
            && let Err(e) = self.ip(&["link", "del", "dev", name]).await
            && self.link_exists(name).await?
        {
            return Err(e);
        }
        Ok(())
    }

    /// `ip -n NS ARGS…`, returning stdout.
    pub(super) async fn ip(&self, args: &[&str]) -> Result<String, NetworkError> {
        Ok(Cmd::new("ip")
            .args(["-n", self.netns()])
            .args(args)
            .run()
            .await?)
    }
}
