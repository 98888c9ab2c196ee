//! `mallee up`'s flags for the bare-metal zone's provisioning network.

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use mallee_cloud::metal::MetalConfig;
use mallee_cloud::metal::mallee_metal::Timeouts;
use mallee_cloud::metal::mallee_metal::netboot::ProvisioningNetwork;

/// `mallee up` flags for the bare-metal zone's provisioning network (off
/// unless `--metal-interface` is given).
#[derive(Args, Debug)]
pub struct UpMetalArgs {
    /// Provisioning interface (a bridge the machines' NICs are on):
    /// enables bare-metal provisioning (dnsmasq DHCP for known MACs only,
    /// iPXE, the deploy protocol) on it.
    #[arg(long, env = "MALLEE_METAL_INTERFACE")]
    metal_interface: Option<String>,
    /// This host's address on the provisioning network, ADDRESS/PREFIX
    /// (e.g. 10.254.0.1/24); must already be on the interface.
    #[arg(long, env = "MALLEE_METAL_ADDRESS", requires = "metal_interface")]
    metal_address: Option<String>,
    /// Network namespace the interface is in (default: this one).
    #[arg(long, requires = "metal_interface")]
    metal_netns: Option<String>,
    /// Port of the provisioning HTTP server (iPXE scripts, deploy agent).
    #[arg(long, default_value_t = 8780)]
    metal_http_port: u16,
    /// Directory with the deploy agent (deploy-vmlinuz, deploy-initrd.img
    /// from guest/metal/build.sh). Default: DATA_DIR/metal/agent.
    #[arg(long)]
    metal_agent_dir: Option<PathBuf>,
    /// Directory with undionly.kpxe to chainload iPXE over TFTP for plain
    /// PXE firmware (Debian's ipxe package: /usr/lib/ipxe).
    #[arg(long)]
    metal_tftp_root: Option<PathBuf>,
    /// Seconds from power-on to the image being written and verified.
    #[arg(long, default_value_t = 1800)]
    metal_deploy_timeout: u64,
    /// Seconds from the image being written to the installed system's check-in.
    #[arg(long, default_value_t = 1200)]
    metal_check_in_timeout: u64,
    /// Seconds from release to the machine being powered off.
    #[arg(long, default_value_t = 300)]
    metal_release_timeout: u64,
    /// An inventory file (`mallee metal import`'s format) imported at the
    /// start, as the administrator; systems already in the inventory are
    /// left as they are. `mallee metal lab up` writes one.
    #[arg(long, requires = "metal_interface")]
    metal_import: Option<PathBuf>,
}

impl UpMetalArgs {
    /// The inventory file to import at the start, if any.
    pub fn import_file(&self) -> Option<&Path> {
        self.metal_import.as_deref()
    }

    /// The provisioning settings, or `None` when provisioning is off.
    pub fn config(&self, data_dir: &Path) -> Result<Option<MetalConfig>, String> {
        let Some(interface) = &self.metal_interface else {
            return Ok(None);
        };
        let cidr = self
            .metal_address
            .as_deref()
            .ok_or("--metal-interface needs --metal-address ADDRESS/PREFIX")?;
        let (address, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| format!("--metal-address {cidr}: want ADDRESS/PREFIX"))?;
        let address: Ipv4Addr = address
            .parse()
            .map_err(|e| format!("--metal-address {cidr}: {e}"))?;
        let prefix: u8 = prefix
            .parse()
            .ok()
            .filter(|p| (8..=30).contains(p))
            .ok_or_else(|| format!("--metal-address {cidr}: prefix must be 8 to 30"))?;
        let metal_dir = data_dir.join("metal");
        let agent = self
            .metal_agent_dir
            .clone()
            .unwrap_or_else(|| metal_dir.join("agent"));
        Ok(Some(MetalConfig {
            network: ProvisioningNetwork {
                netns: self.metal_netns.clone(),
                interface: interface.clone(),
                address,
                prefix,
                http_port: self.metal_http_port,
                state_dir: metal_dir.join("netboot"),
                tftp_root: self.metal_tftp_root.clone(),
            },
            agent_kernel: agent.join("deploy-vmlinuz"),
            agent_initrd: agent.join("deploy-initrd.img"),
            timeouts: Timeouts {
                deploy: Duration::from_secs(self.metal_deploy_timeout),
                check_in: Duration::from_secs(self.metal_check_in_timeout),
                release: Duration::from_secs(self.metal_release_timeout),
            },
        }))
    }
}
