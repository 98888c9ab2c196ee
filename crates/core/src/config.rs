//! Controller configuration: where it listens, where its data lives, the
//! region and zone names and the limits it enforces.

use std::net::SocketAddr;
use std::path::PathBuf;

/// Default API address (Eucalyptus' port).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8773";
/// Default region name.
pub const DEFAULT_REGION: &str = "mallee-1";
/// Default domain for virtual-host style S3 (`BUCKET.s3.localhost`).
pub const DEFAULT_S3_DOMAIN: &str = "s3.localhost";

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
        }
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

    /// Path of the SQLite database.
    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("mallee.db")
    }

    /// Directory holding object data (blob files).
    pub fn objects_dir(&self) -> PathBuf {
        self.data_dir.join("objects")
    }

    /// Directory holding the generated credential files.
    pub fn credentials_dir(&self) -> PathBuf {
        self.data_dir.join("credentials")
    }
}
