//! `mallee status`: the health of a cloud in one command, on the
//! controller's data directory like every admin command. The store's view
//! (nodes, instance counts, their warnings: [`mallee_cloud::cloud_status`])
//! plus what only this host can tell: whether the controller answers (its
//! health path, and who holds its lock), whether the object store serves a
//! signed ListBuckets, how full the data directory's disk is, and how full
//! the image cache of a node on this host is (`up`'s, or `--node-data-dir`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use mallee_cloud::cloud_status::{self, CloudStatus, Warning, nearly_full};
use mallee_cloud::node_status::NodeStatus;
use mallee_node::network::owner::DirLock;
use serde_json::{Value, json};

use crate::DataDirArg;
use crate::client::Client;

/// The file (in a node directory) in which `up` and `node join` record the
/// image cache's limit, for `status` to compare its size against.
pub const CACHE_LIMIT_FILE: &str = "image-cache-limit";

/// `mallee status` arguments.
#[derive(Args, Debug)]
pub struct StatusArgs {
    #[command(flatten)]
    data: DataDirArg,
    /// The API endpoint (default: the one in the data directory's
    /// credentials).
    #[arg(long)]
    endpoint: Option<String>,
    /// A node data directory on this host whose image cache to check
    /// (repeatable; `up`'s DATA/node is always checked).
    #[arg(long)]
    node_data_dir: Vec<PathBuf>,
    /// Print one JSON document.
    #[arg(long)]
    json: bool,
}

/// One component's state.
struct Part {
    name: &'static str,
    ok: bool,
    detail: String,
}

/// Records the image cache limit of the node in `node_dir`.
pub fn record_cache_limit(node_dir: &Path, bytes: u64) {
    let path = node_dir.join(CACHE_LIMIT_FILE);
    if let Err(e) = mallee_util::durable::write_atomic(&path, format!("{bytes}\n").as_bytes()) {
        tracing::warn!(path = %path.display(), error = %e, "cannot record the image cache limit");
    }
}

/// `mallee status`: exits 0 when every part is up and nothing warns.
pub async fn run(args: StatusArgs) -> Result<ExitCode, String> {
    let data_dir = &args.data.data_dir;
    if args.data.database.is_none() && !data_dir.join("mallee.db").exists() {
        return Err(format!(
            "{} holds no cloud (no mallee.db): give --data-dir",
            data_dir.display()
        ));
    }
    let mut warnings = Vec::new();
    let controller = controller_part(data_dir, args.endpoint.as_deref()).await;
    let (store, cloud) = store_part(&args.data).await;
    let objects = object_store_part(data_dir, args.endpoint.as_deref(), controller.ok).await;
    for part in [&controller, &store, &objects] {
        if !part.ok {
            warnings.push(Warning {
                kind: "down",
                message: format!("{}: {}", part.name, part.detail),
            });
        }
    }
    let disk = cloud_status::disk_space(data_dir);
    if let Some((free, total)) = disk
        && nearly_full(free, total)
    {
        warnings.push(Warning {
            kind: "disk-full",
            message: format!(
                "the data directory's disk is nearly full: {} MiB of {} MiB free",
                free >> 20,
                total >> 20
            ),
        });
    }
    let mut node_dirs = vec![data_dir.join("node")];
    node_dirs.extend(args.node_data_dir.iter().cloned());
    let caches: Vec<Value> = node_dirs
        .iter()
        .filter_map(|dir| image_cache(dir))
        .collect();
    for cache in &caches {
        if cache["over_limit"] == json!(true) {
            warnings.push(Warning {
                kind: "image-cache",
                message: format!(
                    "the image cache of {} holds {} MiB, over its limit of {} MiB (images in use cannot be evicted)",
                    cache["node_data_dir"].as_str().unwrap_or_default(),
                    cache["used_bytes"].as_u64().unwrap_or(0) >> 20,
                    cache["limit_bytes"].as_u64().unwrap_or(0) >> 20
                ),
            });
        }
    }
    if let Some(cloud) = &cloud {
        warnings.extend(cloud.warnings.iter().cloned());
    }
    let healthy = warnings.is_empty();
    if args.json {
        let part = |p: &Part| json!({"ok": p.ok, "detail": p.detail});
        let doc = json!({
            "healthy": healthy,
            "controller": part(&controller),
            "store": part(&store),
            "object_store": part(&objects),
            "data_disk": disk.map(|(free, total)| json!({"free_bytes": free, "total_bytes": total})),
            "nodes": cloud.as_ref().map_or_else(Vec::new, |c| c.nodes.iter().map(node_json).collect()),
            "instances": cloud.as_ref().map(|c| json!(c.instances)),
            "image_caches": caches,
            "warnings": warnings.iter().map(|w| json!({"kind": w.kind, "message": w.message})).collect::<Vec<_>>(),
        });
        println!("{doc:#}");
    } else {
        for p in [&controller, &store, &objects] {
            println!(
                "{:<13} {:<5} {}",
                p.name,
                if p.ok { "ok" } else { "DOWN" },
                p.detail
            );
        }
        if let Some((free, total)) = disk {
            println!(
                "{:<13} {:<5} {} MiB free of {} MiB",
                "data disk",
                if nearly_full(free, total) {
                    "FULL"
                } else {
                    "ok"
                },
                free >> 20,
                total >> 20
            );
        }
        if let Some(cloud) = &cloud {
            print_nodes(&cloud.nodes);
            let counts: Vec<String> = cloud
                .instances
                .iter()
                .map(|(state, n)| format!("{state} {n}"))
                .collect();
            println!("{:<13} {}", "instances", counts.join("  "));
        }
        for cache in &caches {
            println!(
                "{:<13} {:<5} {} MiB of {} MiB ({})",
                "image cache",
                if cache["over_limit"] == json!(true) {
                    "OVER"
                } else {
                    "ok"
                },
                cache["used_bytes"].as_u64().unwrap_or(0) >> 20,
                cache["limit_bytes"].as_u64().unwrap_or(0) >> 20,
                cache["node_data_dir"].as_str().unwrap_or_default()
            );
        }
        for w in &warnings {
            println!("WARNING       {}", w.message);
        }
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The controller: the process holding the data directory's lock, and
/// whether its API answers its health path.
async fn controller_part(data_dir: &Path, endpoint: Option<&str>) -> Part {
    let endpoint = endpoint
        .map(str::to_owned)
        .or_else(|| credentials_endpoint(data_dir))
        .unwrap_or_else(|| crate::client::DEFAULT_ENDPOINT.to_owned());
    let pid = DirLock::holder(&data_dir.join("controller.lock"));
    let url = format!(
        "{}{}",
        endpoint.trim_end_matches('/'),
        mallee_api::frontdoor::HEALTH_PATH
    );
    let answer = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .build()
        .map_err(|e| e.to_string());
    let answer = match answer {
        Ok(http) => http
            .get(&url)
            .send()
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| {
                if r.status().is_success() {
                    Ok(())
                } else {
                    Err(format!("HTTP {}", r.status()))
                }
            }),
        Err(e) => Err(e),
    };
    let running = pid.map_or_else(
        || "no process holds the data directory".to_owned(),
        |p| format!("pid {p}"),
    );
    match answer {
        Ok(()) => Part {
            name: "controller",
            ok: true,
            detail: format!("{endpoint} answers ({running})"),
        },
        Err(e) => Part {
            name: "controller",
            ok: false,
            detail: format!("{endpoint} does not answer: {e} ({running})"),
        },
    }
}

fn credentials_endpoint(data_dir: &Path) -> Option<String> {
    let text = std::fs::read_to_string(data_dir.join("credentials").join("admin.json")).ok()?;
    let doc: Value = serde_json::from_str(&text).ok()?;
    doc["endpoint"].as_str().map(str::to_owned)
}

/// The metadata store: it opens and answers, and what the store says of
/// the cloud.
async fn store_part(data: &DataDirArg) -> (Part, Option<CloudStatus>) {
    let database = crate::data_dir_config(&data.data_dir)
        .map(|mut config| {
            config.database.clone_from(&data.database);
            config.database()
        })
        .unwrap_or_else(|_| mallee_store::Database::Sqlite(data.data_dir.join("mallee.db")));
    let path = database.display();
    let store = match crate::open_store(data).await {
        Ok(store) => store,
        Err(e) => {
            return (
                Part {
                    name: "store",
                    ok: false,
                    detail: format!("{path}: {e}"),
                },
                None,
            );
        }
    };
    let detail = match &database {
        mallee_store::Database::Sqlite(file) => {
            let size = std::fs::metadata(file).map_or(0, |m| m.len());
            format!("SQLite {path} ({} KiB)", size >> 10)
        }
        mallee_store::Database::Postgres(_) => format!("PostgreSQL {path}"),
    };
    match cloud_status::gather(&*store, mallee_cloud::ids::now_millis()).await {
        Ok(cloud) => (
            Part {
                name: "store",
                ok: true,
                detail,
            },
            Some(cloud),
        ),
        Err(e) => (
            Part {
                name: "store",
                ok: false,
                detail: format!("{path}: {e}"),
            },
            None,
        ),
    }
}

/// The object store: a signed ListBuckets through the API, as the
/// administrator.
async fn object_store_part(data_dir: &Path, endpoint: Option<&str>, controller_up: bool) -> Part {
    let objects = data_dir.join("objects");
    if !controller_up {
        return Part {
            name: "object store",
            ok: false,
            detail: format!(
                "not served: the controller is down (data in {})",
                objects.display()
            ),
        };
    }
    let listed = async {
        let client = Client::connect(endpoint, None, data_dir).map_err(|e| e.to_string())?;
        let response = client
            .send(
                "s3",
                reqwest::Method::GET,
                "/",
                "",
                Vec::new(),
                crate::client::Body::Bytes(Vec::new()),
            )
            .await
            .map_err(|e| e.to_string())?;
        if response.is_success() {
            Ok(response.text.matches("<Bucket>").count())
        } else {
            Err(crate::client::api_error("ListBuckets", &response).to_string())
        }
    };
    match listed.await {
        Ok(buckets) => Part {
            name: "object store",
            ok: true,
            detail: format!("serves ListBuckets ({buckets} bucket(s) of the administrator)"),
        },
        Err(e) => Part {
            name: "object store",
            ok: false,
            detail: format!("ListBuckets failed: {e}"),
        },
    }
}

/// The image cache of the node in `dir` (when there is one on this host):
/// the size of its verified copies against the recorded limit.
fn image_cache(dir: &Path) -> Option<Value> {
    let data = dir.join("images").join("data");
    let entries = std::fs::read_dir(&data).ok()?;
    let used: u64 = entries
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(std::fs::Metadata::is_file)
        .map(|m| m.len())
        .sum();
    let limit = std::fs::read_to_string(dir.join(CACHE_LIMIT_FILE))
        .ok()
        .and_then(|t| t.trim().parse::<u64>().ok());
    Some(json!({
        "node_data_dir": dir.display().to_string(),
        "used_bytes": used,
        "limit_bytes": limit,
        "over_limit": limit.is_some_and(|l| used > l),
    }))
}

fn node_json(n: &NodeStatus) -> Value {
    json!({
        "node_id": n.node.node_id,
        "zone": n.node.zone,
        "role": n.node.role,
        "state": n.health.name(),
        "disabled": n.node.disabled,
        "heartbeat_age_seconds": n.heartbeat_age_ms / 1000,
        "accel": n.node.accel,
        "version": n.node.version,
        "capacity": {
            "cores": {"max": n.node.cores_max, "used": n.used.cores, "free": n.free.cores},
            "memory_mib": {"max": n.node.memory_mib_max, "used": n.used.memory_mib, "free": n.free.memory_mib},
            "disk_gib": {"max": n.node.disk_gib_max, "used": n.used.disk_gib, "free": n.free.disk_gib},
        },
        "instances": n.instances.len(),
    })
}

fn print_nodes(nodes: &[NodeStatus]) {
    if nodes.is_empty() {
        println!("{:<13} none (no node has registered)", "nodes");
    }
    for n in nodes {
        println!(
            "node          {:<5} {} {} {}  heartbeat {}s ago  accel {}  cores {}/{}  memory {}/{} MiB  disk {}/{} GiB  instances {}{}",
            if n.health.name() == "up" {
                "up"
            } else {
                "DOWN"
            },
            n.node.node_id,
            n.node.role,
            n.node.zone,
            n.heartbeat_age_ms / 1000,
            n.node.accel.split([':', ' ']).next().unwrap_or("?"),
            n.used.cores,
            n.node.cores_max,
            n.used.memory_mib,
            n.node.memory_mib_max,
            n.used.disk_gib,
            n.node.disk_gib_max,
            n.instances.len(),
            if n.node.disabled { "  (disabled)" } else { "" }
        );
    }
}
