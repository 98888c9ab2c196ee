//! `mallee storage join`: a host becomes its zone's storage host (the
//! Eucalyptus storage controller). It enrols with the controller like a
//! node (one-time token, then its own certificate), keeps the zone's
//! volumes as qcow2 files and exports each attached one over NBD with TLS
//! (qemu-storage-daemon) to the one node whose instance uses it.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::ops::RangeInclusive;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use mallee_node::agent::{ExportSettings, NodeConfig, data_dir_node_id, start_node};
use mallee_node::network::NetworkConfig;
use mallee_node_api::NodeRole;

use crate::node_cmd::{Enrol, enrolled_as};

/// `mallee storage` subcommands.
#[derive(Subcommand, Debug)]
pub enum StorageCommand {
    /// Join the controller at URL (its node listener,
    /// `https://CONTROLLER:8774`) as the storage host of a zone, and run
    /// it. The first time, `--token` (from `mallee admin node token
    /// create --zone Z`) buys the host its certificate, kept in DATA/pki/.
    Join(StorageArgs),
}

/// `mallee storage join` arguments.
#[derive(Args, Debug)]
pub struct StorageArgs {
    /// The controller's node listener (`https://CONTROLLER:8774`).
    pub url: String,
    /// One-time enrolment token (needed until the host holds a
    /// certificate).
    #[arg(long, env = "MALLEE_NODE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Data directory: the volumes (qcow2 files, and the snapshot data
    /// volumes are made from), export records, host id and certificate.
    #[arg(
        long,
        env = "MALLEE_STORAGE_DATA_DIR",
        default_value = "./mallee-storage"
    )]
    pub data_dir: PathBuf,
    /// Address of the host's agent API (the controller calls it).
    #[arg(long, default_value = "127.0.0.1:8776")]
    pub listen: SocketAddr,
    /// URL the controller uses to reach the agent (default: from
    /// --listen).
    #[arg(long)]
    pub advertise_url: Option<String>,
    /// Availability zone whose volumes the host keeps: the token's.
    #[arg(long)]
    pub zone: Option<String>,
    /// Address the nodes reach the NBD exports at, on the network between
    /// hosts (the exports listen on it too, unless --nbd-listen says
    /// otherwise). Size this link for the zone's volume traffic.
    #[arg(long, default_value = "127.0.0.1")]
    pub nbd_address: String,
    /// Address the NBD servers bind (default: --nbd-address when it is an
    /// IP address, else every address).
    #[arg(long)]
    pub nbd_listen: Option<IpAddr>,
    /// TCP ports of the NBD servers, one per exported volume (`FIRST-LAST`).
    #[arg(long, default_value = "10810-11809", value_parser = parse_ports)]
    pub nbd_ports: RangeInclusive<u16>,
    /// Disk offered to volumes in GiB (default: free space of the data
    /// directory).
    #[arg(long)]
    pub disk_gib: Option<u64>,
}

fn parse_ports(text: &str) -> Result<RangeInclusive<u16>, String> {
    let (first, last) = text
        .split_once('-')
        .ok_or_else(|| format!("{text:?}: want FIRST-LAST"))?;
    let first: u16 = first.parse().map_err(|e| format!("{first:?}: {e}"))?;
    let last: u16 = last.parse().map_err(|e| format!("{last:?}: {e}"))?;
    if first == 0 || first > last {
        return Err(format!("{text:?}: want 1 <= FIRST <= LAST"));
    }
    Ok(first..=last)
}

/// The storage agent's settings for one run.
fn storage_config(
    args: &StorageArgs,
    credentials: mallee_pki::Credentials,
    zone: String,
) -> NodeConfig {
    let network = NetworkConfig {
        state_root: args.data_dir.join("network"),
        default_subnet: mallee_cloud::vpcs::zone_subnet(0),
        domain: String::new(),
        underlay: None,
    };
    let mut config = NodeConfig::new(args.data_dir.clone(), &args.url, credentials, network);
    config.role = NodeRole::Storage;
    config.zone = zone;
    config.listen = args.listen;
    config.advertise_url.clone_from(&args.advertise_url);
    config.disk_gib = args.disk_gib;
    config.exports = Some(ExportSettings {
        bind: args.nbd_listen.unwrap_or_else(|| {
            args.nbd_address
                .parse()
                .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
        }),
        advertise: args.nbd_address.clone(),
        ports: args.nbd_ports.clone(),
    });
    config
}

/// `mallee storage join`: enrols once, then runs the storage agent until
/// SIGINT/SIGTERM. Exports stay up when it stops; the next start adopts
/// them.
pub async fn storage_command(command: StorageCommand) -> Result<ExitCode, String> {
    let StorageCommand::Join(args) = command;
    if !args.url.starts_with("https://") {
        return Err(format!(
            "{}: the controller's node listener speaks HTTPS only (https://CONTROLLER:8774)",
            args.url
        ));
    }
    let node_id = data_dir_node_id(&args.data_dir).map_err(|e| e.to_string())?;
    let (credentials, zone) = enrolled_as(
        &Enrol {
            url: &args.url,
            token: args.token.as_deref(),
            data_dir: &args.data_dir,
            zone: args.zone.as_deref(),
        },
        &node_id,
    )
    .await?;
    if let Some(asked) = &args.zone
        && *asked != zone
    {
        return Err(format!(
            "this host is enrolled for zone {zone}, not {asked} (remove it with `mallee admin node remove {node_id}` and enrol again to move it)"
        ));
    }
    let config = storage_config(&args, credentials, zone);
    let shutdown = mallee_api::server::shutdown_signal();
    let handle = start_node(config).await.map_err(|e| e.to_string())?;
    tracing::info!(url = %handle.url(), nbd = %args.nbd_address, "storage host running");
    shutdown.await;
    handle.shutdown().await;
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        assert_eq!(parse_ports("10810-11809"), Ok(10810..=11809));
        assert_eq!(parse_ports("5-5"), Ok(5..=5));
        assert!(parse_ports("9-5").is_err());
        assert!(parse_ports("0-5").is_err());
        assert!(parse_ports("5").is_err());
        assert!(parse_ports("a-5").is_err());
    }
}
