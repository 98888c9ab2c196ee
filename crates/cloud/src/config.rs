//! Controller configuration: where it listens, where its data lives, the
//! region and zone names and the limits it enforces.

use mallee_util::cidr::Ipv4Cidr;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::PathBuf;

/// Default API address (Eucalyptus' port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8773";
/// Default node listener of `mallee controller` (nodes on other hosts
/// reach it; only nodes of the cluster get past its TLS handshake).
pub const DEFAULT_NODE_LISTEN: &str = "0.0.0.0:8774";
/// Default region name.
pub const DEFAULT_REGION: &str = "mallee-1";
/// Default domain for virtual-host style S3 (`BUCKET.s3.localhost`).
pub const DEFAULT_S3_DOMAIN: &str = "s3.localhost";
/// Default public address range of the first zone (RFC 2544 benchmark
/// space: never routed on the internet, so nothing leaks by default).
pub const DEFAULT_PUBLIC_RANGE: &str = "198.18.0.0/24";

/// How long a node may stay silent before it counts as down.
pub const DEFAULT_NODE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Per-account limits reported by DescribeAccountAttributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccountLimits {
    /// Running instances per account.
    pub max_instances: u32,
    /// Security groups per network interface.
    pub max_security_groups_per_interface: u32,
    /// Elastic IPs per account.
    pub max_elastic_ips: u32,
}

impl Default for AccountLimits {
    fn default() -> Self {
        Self {
            max_instances: 20,
            max_security_groups_per_interface: 5,
            max_elastic_ips: 5,
        }
    }
}

/// Everything the controller is started with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// API listen address.
    pub listen: SocketAddr,
    /// Data directory: database, credentials, objects.
    pub data_dir: PathBuf,
    /// Region name.
    pub region: String,
    /// Availability zone names.
    pub zones: Vec<String>,
    /// Domain under which `BUCKET.DOMAIN` addresses a bucket.
    pub s3_domain: String,
    /// Largest Query-protocol request body accepted.
    pub max_query_body_bytes: usize,
    /// Account limits.
    pub account_limits: AccountLimits,
    /// Public address range of each zone that has one (elastic and
    /// auto-assigned public IPs).
    pub public_ranges: Vec<PublicRange>,
    /// Give every instance a public IP at launch (EC2-Classic and
    /// Eucalyptus behaviour).
    pub auto_public_ip: bool,
    /// Address of the node listener (mutual TLS): where nodes enrol,
    /// register and fetch data. Port 0 picks a free one.
    pub node_listen: SocketAddr,
    /// Where the public DNS server (instances' public names, UDP and TCP)
    /// listens; `None`: none.
    pub dns_listen: Option<SocketAddr>,
    /// Where the Prometheus metrics endpoint (`GET /metrics`, no
    /// authentication: for loopback or an admin network) listens; `None`:
    /// none.
    pub metrics_listen: Option<SocketAddr>,
    /// Requests handled at once; more are refused with the service's
    /// throttling error.
    pub max_concurrent_requests: usize,
    /// Requests per account and second (with a burst); `None`: no limit.
    pub account_rate_limit: Option<crate::admission::RateLimit>,
    /// The domain of instances' public DNS names; `None`: the region's
    /// (`REGION.compute.mallee`). See [`Config::public_domain`].
    pub public_domain: Option<String>,
    /// How each zone chooses nodes (zones not named use
    /// [`Config::default_placement`]).
    pub placement: std::collections::BTreeMap<String, crate::instances::placement::Policy>,
    /// The placement policy of zones not in [`Config::placement`].
    pub default_placement: crate::instances::placement::Policy,
    /// How long a node may stay silent before it counts as down (its
    /// instances impaired, nothing new placed there).
    pub node_timeout: std::time::Duration,
    /// The metadata database (`--database`): a `postgres://` URL or a
    /// SQLite file; `None` is the SQLite file under the data directory.
    pub database: Option<String>,
}

impl Config {
    /// A configuration with defaults for everything but the address and
    /// data directory.
    pub fn new(listen: SocketAddr, data_dir: PathBuf) -> Self {
        Self {
            listen,
            data_dir,
            region: DEFAULT_REGION.into(),
            zones: vec![format!("{DEFAULT_REGION}a")],
            s3_domain: DEFAULT_S3_DOMAIN.into(),
            max_query_body_bytes: 1024 * 1024,
            account_limits: AccountLimits::default(),
            public_ranges: vec![PublicRange {
                zone: format!("{DEFAULT_REGION}a"),
                cidr: DEFAULT_PUBLIC_RANGE
                    .parse()
                    .expect("the default public range is valid"),
            }],
            auto_public_ip: true,
            node_listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            dns_listen: None,
            metrics_listen: None,
            max_concurrent_requests: crate::admission::DEFAULT_MAX_CONCURRENT_REQUESTS,
            account_rate_limit: None,
            public_domain: None,
            placement: std::collections::BTreeMap::new(),
            default_placement: crate::instances::placement::Policy::default(),
            node_timeout: DEFAULT_NODE_TIMEOUT,
            database: None,
        }
    }

    /// The domain of instances' public DNS names
    /// (`ec2-198-18-0-5.DOMAIN`): the admin's, else
    /// `REGION.compute.mallee`.
    pub fn public_domain(&self) -> String {
        self.public_domain
            .clone()
            .unwrap_or_else(|| format!("{}.compute.mallee", self.region))
    }

    /// Sets the domain of public DNS names, checking it is a DNS name (dot
    /// separated labels of letters, digits and `-`, 253 characters at most).
    pub fn set_public_domain(&mut self, domain: &str) -> Result<(), String> {
        let domain = domain.trim_end_matches('.').to_ascii_lowercase();
        let label_ok = |l: &str| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        };
        if domain.len() > 253 || !domain.split('.').all(label_ok) {
            return Err(format!("public domain {domain:?} is not a DNS name"));
        }
        self.public_domain = Some(domain);
        Ok(())
    }

    /// Sets the region and zone names (no zones: the region's name followed
    /// by `a`), checking they are names AWS tools accept.
    pub fn set_names(&mut self, region: &str, zones: &[String]) -> Result<(), String> {
        let valid = |name: &str| {
            !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        };
        if !valid(region) {
            return Err(format!(
                "region {region:?}: use lowercase letters, digits and '-'"
            ));
        }
        let zones: Vec<String> = if zones.is_empty() {
            vec![format!("{region}a")]
        } else {
            zones.to_vec()
        };
        for (i, zone) in zones.iter().enumerate() {
            if !valid(zone) {
                return Err(format!(
                    "zone {zone:?}: use lowercase letters, digits and '-'"
                ));
            }
            if zones[..i].contains(zone) {
                return Err(format!("zone {zone} is named twice"));
            }
        }
        self.region = region.to_owned();
        self.zones = zones;
        if let Some(range) = self.public_ranges.first_mut() {
            range.zone.clone_from(&self.zones[0]);
        }
        Ok(())
    }

    /// The placement policy of `zone`.
    pub fn placement_policy(&self, zone: &str) -> crate::instances::placement::Policy {
        self.placement
            .get(zone)
            .copied()
            .unwrap_or(self.default_placement)
    }

    /// Base URL clients use (`http://127.0.0.1:8773`). A wildcard listen
    /// address is shown as loopback.
    pub fn endpoint(&self) -> String {
        let host = match self.listen.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("http://{host}:{}", self.listen.port())
    }

    /// EC2 URL in Eucalyptus form.
    pub fn ec2_url(&self) -> String {
        format!("{}/services/compute", self.endpoint())
    }

    /// Stable zone id (`mallee-1-az1`) of the zone at `index`.
    pub fn zone_id(&self, index: usize) -> String {
        format!("{}-az{}", self.region, index + 1)
    }

    /// Path of the SQLite database of the data directory (the default
    /// database).
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("mallee.db")
    }

    /// The metadata database: `database` if given, else the data
    /// directory's SQLite file.
    pub fn database(&self) -> mallee_store::Database {
        match &self.database {
            Some(value) => mallee_store::Database::parse(value),
            None => mallee_store::Database::Sqlite(self.database_path()),
        }
    }

    /// Directory holding object data (blob files).
    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("objects")
    }

    /// Directory holding the generated credential files.
    pub fn credentials_dir(&self) -> PathBuf {
        self.data_dir.join("credentials")
    }

    /// Directory of the cluster CA and the controller's certificate.
    pub fn pki_dir(&self) -> PathBuf {
        self.data_dir.join("pki")
    }
}

/// A public address range: an IPv4 block with host bits zero and a prefix
/// of 8 to 29. Its first host is the nodes' public gateway and is never
/// handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicCidr(pub Ipv4Cidr);

impl PublicCidr {
    /// The first host address: the node's public bridge, never handed out.
    pub fn gateway(self) -> Ipv4Addr {
        self.0.first_host()
    }

    /// Addresses that can be allocated: every host address but the
    /// gateway (the network and broadcast addresses are not hosts).
    pub fn allocatable(self) -> impl Iterator<Item = Ipv4Addr> {
        self.0.hosts().skip(1)
    }

    /// Whether `ip` is inside the range.
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        self.0.contains(ip)
    }
}

impl std::str::FromStr for PublicCidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ipv4Cidr::parse_strict(s)
            .ok()
            .filter(|c| (8..=29).contains(&c.prefix()))
            .map(Self)
            .ok_or_else(|| {
                format!(
                    "{s:?} is not an IPv4 range like 198.18.0.0/24 (prefix 8 to 29, host bits zero)"
                )
            })
    }
}

impl std::fmt::Display for PublicCidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A zone's public address range.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicRange {
    /// The zone.
    pub zone: String,
    /// Its addresses.
    pub cidr: PublicCidr,
}

#[cfg(test)]
mod public_range_tests {
    use super::*;

    #[test]
    fn ranges_parse_and_reserve_the_gateway() {
        let cidr: PublicCidr = "198.18.5.0/29".parse().expect("valid");
        assert_eq!(cidr.gateway(), Ipv4Addr::new(198, 18, 5, 1));
        let hosts: Vec<Ipv4Addr> = cidr.allocatable().collect();
        assert_eq!(hosts.first(), Some(&Ipv4Addr::new(198, 18, 5, 2)));
        assert_eq!(hosts.last(), Some(&Ipv4Addr::new(198, 18, 5, 6)));
        assert_eq!(hosts.len(), 5);
        assert!(cidr.contains(Ipv4Addr::new(198, 18, 5, 7)));
        assert!(!cidr.contains(Ipv4Addr::new(198, 18, 5, 8)));
        assert_eq!(cidr.to_string(), "198.18.5.0/29");
        for bad in [
            "198.18.5.1/24",
            "198.18.5.0",
            "198.18.5.0/30",
            "x/24",
            "10.0.0.0/7",
        ] {
            assert!(bad.parse::<PublicCidr>().is_err(), "{bad} accepted");
        }
        let config = Config::new("127.0.0.1:1".parse().expect("addr"), "/tmp".into());
        assert_eq!(config.public_ranges[0].zone, config.zones[0]);
        assert_eq!(
            config.public_ranges[0].cidr.to_string(),
            DEFAULT_PUBLIC_RANGE
        );
        assert!(config.auto_public_ip);
    }
}
