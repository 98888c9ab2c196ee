//! `mallee admin node …`: the administrator's side of cluster membership,
//! on the controller's data directory (like every `admin` command): the
//! node list, maintenance (disable/enable placements), one-time enrolment
//! tokens, and removing a node (its certificate is revoked; a running
//! controller refuses it within a second).

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use mallee_cloud::instances::evacuate;
use mallee_cloud::node_removal;
use mallee_cloud::node_status::{self, NodeStatus};
use mallee_cloud::{bootstrap, enrolment};
use mallee_pki::{RevocationSet, Trust};

use crate::DataDirArg;

/// `mallee admin node` subcommands.
#[derive(Subcommand, Debug)]
pub enum NodeAdminCommand {
    /// Every node: zone, state (up/down by its heartbeat), whether it takes
    /// new instances, heartbeat age, accelerator, capacity used/free,
    /// version and instances.
    List {
        /// One JSON array (with each node's instance ids) instead of a
        /// table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Stop placing new instances on a node (maintenance); what it runs
    /// keeps running, unless `--evacuate`.
    Disable {
        /// The node's id (`nd-…`).
        node: String,
        /// Also move its running EBS-backed instances (whose volumes are
        /// all on the zone's storage host) to other nodes: each is stopped
        /// and started again elsewhere by the running controller.
        /// Instance-store instances stay. Waits until they run elsewhere.
        #[arg(long)]
        evacuate: bool,
        /// How long `--evacuate` waits, in seconds (0: does not wait).
        #[arg(long, default_value_t = 600, requires = "evacuate")]
        wait_seconds: u64,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// Resume placing new instances on a disabled node.
    Enable {
        /// The node's id (`nd-…`).
        node: String,
        #[command(flatten)]
        data: DataDirArg,
    },
    /// One-time enrolment tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Remove a node from the cloud: its certificate is revoked (its
    /// connections fail at the TLS handshake) and nothing is placed on or
    /// sent to it any more.
    Remove {
        /// The node's id (`nd-…`).
        node: String,
        /// Remove it even though it holds instances (they end) or volumes
        /// (they go to `error`: their data was on the node).
        #[arg(long)]
        force: bool,
        #[command(flatten)]
        data: DataDirArg,
    },
}

/// `mallee admin node token` subcommands.
#[derive(Subcommand, Debug)]
pub enum TokenCommand {
    /// Make a one-time token a new node of `--zone` joins with (`mallee
    /// node join URL --token TOKEN`); prints the token alone on stdout.
    Create {
        /// The availability zone the node will serve.
        #[arg(long)]
        zone: String,
        /// How long the token is valid: `90s`, `30m`, `1h`, `2d`.
        #[arg(long, default_value = "1h", value_parser = parse_ttl)]
        ttl: Duration,
        #[command(flatten)]
        data: DataDirArg,
    },
}

/// A duration such as `90s`, `30m`, `1h` or `2d` (plain numbers are
/// seconds).
fn parse_ttl(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration such as 30m, 1h or 2d"))?;
    let seconds = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 60 * 60,
        "d" => 24 * 60 * 60,
        _ => return Err(format!("{text:?}: the unit must be s, m, h or d")),
    };
    if number == 0 {
        return Err("a token must be valid for some time".into());
    }
    Ok(Duration::from_secs(number.saturating_mul(seconds)))
}

/// The fingerprint of the cluster CA in `data_dir`.
fn ca_fingerprint(data_dir: &Path) -> Result<mallee_pki::Fingerprint, String> {
    let config = crate::data_dir_config(data_dir)?;
    let path = config.pki_dir().join("ca.pem");
    let pem = std::fs::read_to_string(&path).map_err(|e| {
        format!(
            "{}: {e} (the controller creates the cluster CA at its first start: start `mallee controller` or `mallee up` with this data directory once)",
            path.display()
        )
    })?;
    Trust::new(&pem, RevocationSet::new())
        .map(|t| t.ca_fingerprint())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn rfc3339(millis: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| millis.to_string())
}

async fn set_disabled(data: &DataDirArg, node: &str, disabled: bool) -> Result<(), String> {
    let store = crate::open_store(data).await?;
    node_status::set_disabled(&*store, node, disabled)
        .await
        .map_err(|e| e.to_string())?;
    println!("{}\t{node}", if disabled { "DISABLED" } else { "ENABLED" });
    Ok(())
}

/// Marks the node's movable instances for evacuation, prints what moves
/// and what stays, and waits (with a progress bar) until every moving one
/// runs on another node. The running controller does the moving.
async fn evacuate_node(data: &DataDirArg, node: &str, wait: Duration) -> Result<ExitCode, String> {
    let store = crate::open_store(data).await?;
    let evacuation = evacuate::mark(&*store, node)
        .await
        .map_err(|e| e.to_string())?;
    for id in &evacuation.moving {
        println!("EVACUATING\t{id}");
    }
    for (id, why) in &evacuation.staying {
        println!("STAYING\t{id}\t{why}");
    }
    if evacuation.moving.is_empty() || wait.is_zero() {
        return Ok(ExitCode::SUCCESS);
    }
    let bar = indicatif::ProgressBar::new(evacuation.moving.len() as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} {elapsed}")
    {
        bar.set_style(style.progress_chars("=> "));
    }
    bar.set_message(format!("moving instances off {node}"));
    let deadline = std::time::Instant::now() + wait;
    loop {
        let mut moved = Vec::new();
        for id in &evacuation.moving {
            if let Some(record) = store.instance(id).await.map_err(|e| e.to_string())?
                && record.node_id != node
                && record.state == "running"
            {
                moved.push((id.clone(), record.node_id));
            }
        }
        bar.set_position(moved.len() as u64);
        if moved.len() == evacuation.moving.len() {
            bar.finish_and_clear();
            for (id, to) in moved {
                println!("MOVED\t{id}\t{to}");
            }
            return Ok(ExitCode::SUCCESS);
        }
        if std::time::Instant::now() >= deadline {
            bar.abandon();
            return Err(format!(
                "{} of {} instances run elsewhere after {}s; the controller goes on (`mallee admin node list` shows where they are)",
                moved.len(),
                evacuation.moving.len(),
                wait.as_secs()
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `up` or `down`, and `disabled` when an administrator stopped placements.
fn state(status: &NodeStatus) -> String {
    if status.node.disabled {
        format!("{},disabled", status.health.name())
    } else {
        status.health.name().to_owned()
    }
}

fn print_table(nodes: &[NodeStatus]) {
    println!(
        "NODE\tROLE\tZONE\tSTATE\tHEARTBEAT\tACCEL\tCORES used/free\tMEMORY MiB used/free\tDISK GiB used/free\tVERSION\tINSTANCES"
    );
    for n in nodes {
        println!(
            "{}\t{}\t{}\t{}\t{}s ago\t{}\t{}/{}\t{}/{}\t{}/{}\t{}\t{}",
            n.node.node_id,
            n.node.role,
            n.node.zone,
            state(n),
            n.heartbeat_age_ms / 1000,
            n.node.accel,
            n.used.cores,
            n.free.cores,
            n.used.memory_mib,
            n.free.memory_mib,
            n.used.disk_gib,
            n.free.disk_gib,
            n.node.version,
            n.instances.len()
        );
    }
}

fn node_json(n: &NodeStatus) -> serde_json::Value {
    let resource = |used: u64, free: u64, max: i64| serde_json::json!({"used": used, "free": free, "max": max});
    serde_json::json!({
        "node_id": n.node.node_id,
        "zone": n.node.zone,
        "role": n.node.role,
        "address": n.node.address,
        "underlay_ip": n.node.underlay_ip,
        "state": n.health.name(),
        "disabled": n.node.disabled,
        "schedulable": n.schedulable(),
        "heartbeat_age_seconds": n.heartbeat_age_ms as f64 / 1000.0,
        "last_heartbeat": rfc3339(n.node.updated_at),
        "accel": n.node.accel,
        "version": n.node.version,
        "capacity": {
            "cores": resource(n.used.cores, n.free.cores, n.node.cores_max),
            "memory_mib": resource(n.used.memory_mib, n.free.memory_mib, n.node.memory_mib_max),
            "disk_gib": resource(n.used.disk_gib, n.free.disk_gib, n.node.disk_gib_max),
        },
        "instance_count": n.instances.len(),
        "instances": n.instances,
    })
}

/// Runs `mallee admin node …`.
pub async fn run(command: NodeAdminCommand) -> Result<ExitCode, String> {
    match command {
        NodeAdminCommand::Token(TokenCommand::Create { zone, ttl, data }) => {
            let ca = ca_fingerprint(&data.data_dir)?;
            let config = crate::data_dir_config(&data.data_dir)?;
            let store = crate::open_store(&data).await?;
            // The names the controller fixed at its first start (`--zones`),
            // not this command's defaults.
            let zones = bootstrap::recorded_names(&*store)
                .await
                .map_err(|e| e.to_string())?
                .map_or(config.zones, |(_, zones)| zones);
            let created = enrolment::create_token(&*store, ca, &zones, &zone, ttl)
                .await
                .map_err(|e| e.to_string())?;
            println!("{}", created.token);
            eprintln!(
                "mallee: one-time token for zone {}, valid until {}; on the new node run\n  mallee node join https://CONTROLLER:8774 --token {}",
                created.zone,
                rfc3339(created.expires_at),
                created.token
            );
        }
        NodeAdminCommand::List { json, data } => {
            let store = crate::open_store(&data).await?;
            let nodes = node_status::list(&*store, mallee_cloud::ids::now_millis())
                .await
                .map_err(|e| e.to_string())?;
            if json {
                let list: Vec<_> = nodes.iter().map(node_json).collect();
                println!("{}", serde_json::Value::Array(list));
            } else {
                print_table(&nodes);
            }
        }
        NodeAdminCommand::Disable {
            node,
            evacuate,
            wait_seconds,
            data,
        } => {
            set_disabled(&data, &node, true).await?;
            if evacuate {
                return evacuate_node(&data, &node, Duration::from_secs(wait_seconds)).await;
            }
        }
        NodeAdminCommand::Enable { node, data } => set_disabled(&data, &node, false).await?,
        NodeAdminCommand::Remove { node, force, data } => {
            let store = crate::open_store(&data).await?;
            let removed = node_removal::remove(&*store, &node, force)
                .await
                .map_err(|e| e.to_string())?;
            println!(
                "REMOVED\t{}\t{} certificate(s) revoked\t{} instance(s) ended\t{} volume(s) in error",
                removed.node_id,
                removed.revoked.len(),
                removed.instances.len(),
                removed.volumes.len()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mallee_cloud::enrolment::DEFAULT_TOKEN_TTL;

    #[test]
    fn ttls_read_like_people_write_them() {
        assert_eq!(parse_ttl("90"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_ttl("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_ttl("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_ttl("2d"), Ok(Duration::from_secs(172_800)));
        for bad in ["", "h", "1w", "0", "-1h", "1.5h"] {
            assert!(parse_ttl(bad).is_err(), "{bad}");
        }
        assert_eq!(DEFAULT_TOKEN_TTL, Duration::from_secs(3600));
    }
}
