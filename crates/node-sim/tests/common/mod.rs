//! Shared by the simulated node's tests: a fake controller (registration
//! and snapshot data over mutual TLS, as the controller's node listener
//! serves them), instance specs, and a served simulated node with its
//! client, all with certificates of one cluster CA.

// Not every test file uses every helper.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use bytes::Bytes;
use mallee_node_api::tls::TlsListener;
use mallee_node_api::*;
use mallee_node_sim::{ServeConfig, SimConfig, SimNode, SimServer, sha256_hex};
use mallee_pki::tls::NodeTls;
use mallee_pki::{ControllerPki, Credentials, PeerName, Validity};

pub const WAIT: Duration = Duration::from_secs(10);

/// A new cluster CA with the controller's certificate.
pub fn cluster() -> Arc<ControllerPki> {
    Arc::new(ControllerPki::in_memory().expect("pki"))
}

/// The certificate `pki`'s CA issues node `node_id`.
pub fn credentials(pki: &ControllerPki, node_id: &str) -> Credentials {
    pki.ca()
        .issue(&PeerName::node(node_id).expect("id"), Validity::peer())
        .expect("node certificate")
}

/// `config` with a node id (a new one unless it has one).
pub fn with_id(mut config: SimConfig) -> (SimConfig, String) {
    let id = config
        .node_id
        .get_or_insert_with(|| format!("nd-{:016x}", rand::random::<u64>()))
        .clone();
    (config, id)
}

/// Snapshot data the fake controller holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stored {
    pub data: Bytes,
    pub sha256: String,
    pub format: String,
}

/// What the fake controller saw and holds.
#[derive(Debug, Default)]
pub struct Seen {
    pub registrations: Vec<NodeRegistration>,
    /// The next this many registrations are answered 503.
    pub refuse_registrations: u32,
    pub snapshots: HashMap<String, Stored>,
    pub upload_attempts: HashMap<String, u32>,
    /// The next this many uploads are answered 503.
    pub fail_uploads: u32,
    /// Snapshots deleted on the controller: uploads answer 404.
    pub deleted: HashSet<String>,
}

#[derive(Clone)]
pub struct FakeController {
    pub url: String,
    pub seen: Arc<Mutex<Seen>>,
    /// Its cluster.
    pub pki: Arc<ControllerPki>,
}

/// Requests carry the node API version (the TLS layer already admitted
/// only nodes of the cluster).
fn versioned(headers: &HeaderMap) -> bool {
    version::check_caller(
        version::Role::Controller,
        headers
            .get(version::VERSION_HEADER)
            .and_then(|v| v.to_str().ok()),
    )
    .is_ok()
}

async fn register(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    axum::Json(registration): axum::Json<NodeRegistration>,
) -> axum::response::Response {
    if !versioned(&headers) {
        return (StatusCode::PRECONDITION_FAILED, "no version").into_response();
    }
    let mut seen = seen.lock().expect("lock");
    if seen.refuse_registrations > 0 {
        seen.refuse_registrations -= 1;
        return (StatusCode::SERVICE_UNAVAILABLE, "starting").into_response();
    }
    let id = registration.info.node_id.clone();
    seen.registrations.push(registration);
    axum::Json(serde_json::json!({ "registered": id })).into_response()
}

async fn put_snapshot_data(
    State(seen): State<Arc<Mutex<Seen>>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if !versioned(&headers) {
        return StatusCode::PRECONDITION_FAILED.into_response();
    }
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut seen = seen.lock().expect("lock");
    *seen.upload_attempts.entry(id.clone()).or_default() += 1;
    if seen.deleted.contains(&id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    if seen.fail_uploads > 0 {
        seen.fail_uploads -= 1;
        return (StatusCode::SERVICE_UNAVAILABLE, "try again later").into_response();
    }
    let sha256 = sha256_hex(&body);
    if header("content-length") != body.len().to_string()
        || header(SHA256_HEADER) != sha256
        || DiskFormat::parse(&header(FORMAT_HEADER)).is_none()
    {
        return (StatusCode::BAD_REQUEST, "digest, length or format mismatch").into_response();
    }
    let size = body.len() as u64;
    seen.snapshots.insert(
        id.clone(),
        Stored {
            data: body,
            sha256: sha256.clone(),
            format: header(FORMAT_HEADER),
        },
    );
    axum::Json(SnapshotUploaded {
        snapshot_id: id,
        size,
        sha256,
    })
    .into_response()
}

async fn get_snapshot_data(
    State(seen): State<Arc<Mutex<Seen>>>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> axum::response::Response {
    if !versioned(&headers) {
        return StatusCode::PRECONDITION_FAILED.into_response();
    }
    match seen.lock().expect("lock").snapshots.get(&id) {
        Some(stored) => (
            [
                (SHA256_HEADER, stored.sha256.clone()),
                (FORMAT_HEADER, stored.format.clone()),
            ],
            stored.data.clone(),
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

impl FakeController {
    pub async fn start() -> Self {
        let pki = cluster();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let router = axum::Router::new()
            .route(REGISTER_PATH, axum::routing::post(register))
            .route(
                &format!("{SNAPSHOTS_PATH_PREFIX}{{id}}"),
                axum::routing::put(put_snapshot_data).get(get_snapshot_data),
            )
            .with_state(seen.clone());
        let listener = TlsListener::bind(
            "127.0.0.1:0".parse().expect("addr"),
            pki.node_listener_config(),
        )
        .await
        .expect("bind");
        let url = format!("https://{}", listener.local_addr());
        tokio::spawn(async move {
            tls::serve(listener, router, std::future::pending())
                .await
                .expect("serve");
        });
        Self { url, seen, pki }
    }

    /// The controller's client of node `node_id`.
    pub fn client(&self, url: &str, node_id: &str) -> HttpNodeClient {
        HttpNodeClient::new(url, self.pki.node_client_config(node_id))
    }

    pub fn seen(&self) -> std::sync::MutexGuard<'_, Seen> {
        self.seen.lock().expect("lock")
    }

    pub fn registrations(&self) -> usize {
        self.seen().registrations.len()
    }

    /// Waits until the controller has seen `n` registrations.
    pub async fn wait_registrations(&self, n: usize, within: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            if self.registrations() >= n {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }
}

/// A simulated node served on loopback (uploading snapshots to
/// `controller` when given), with a client that drives it over HTTPS as
/// the controller (of `controller`'s cluster, or a new one).
pub async fn served(
    config: SimConfig,
    controller: Option<&FakeController>,
) -> (SimNode, SimServer, HttpNodeClient) {
    let pki = controller.map_or_else(cluster, |c| c.pki.clone());
    let (config, id) = with_id(config);
    let creds = credentials(&pki, &id);
    let config = match controller {
        Some(c) => config
            .with_controller(&c.url, &NodeTls::new(&creds).expect("tls").client)
            .expect("transfer"),
        None => config,
    };
    let node = SimNode::new(config);
    let server = mallee_node_sim::serve(node.clone(), ServeConfig::new(creds))
        .await
        .expect("serve");
    let client = HttpNodeClient::new(server.url(), pki.node_client_config(&id));
    (node, server, client)
}

pub fn metadata() -> InstanceMetadata {
    InstanceMetadata {
        ami_id: "ami-00000000000000001".into(),
        ami_launch_index: 0,
        reservation_id: "r-00000000000000001".into(),
        account_id: "000000000001".into(),
        instance_type: "t2.micro".into(),
        kernel_id: None,
        ramdisk_id: None,
        architecture: "x86_64".into(),
        region: "mallee-1".into(),
        availability_zone: "mallee-1a".into(),
        local_ipv4: "172.31.0.5".into(),
        local_hostname: "ip-172-31-0-5.mallee-1.compute.internal".into(),
        mac: "02:00:00:00:00:05".into(),
        public_ipv4: None,
        public_hostname: None,
        security_groups: vec!["default".into()],
        public_keys: Vec::new(),
        user_data_base64: None,
        launch_time: "2024-01-02T03:04:05Z".into(),
        root_device_name: "/dev/sda1".into(),
        block_device_mapping: Vec::new(),
        options: MetadataOptions::default(),
        iam: None,
    }
}

fn artifact(key: &str) -> Artifact {
    Artifact {
        bucket: "images".into(),
        key: key.into(),
        size: 1024,
        etag: "0123".into(),
    }
}

/// A t2.micro-like instance (1 vCPU, 512 MiB, 2 GiB disk) booting an HVM
/// image.
pub fn spec(id: &str, generation: u64, desired: DesiredState) -> InstanceSpec {
    InstanceSpec {
        instance_id: id.into(),
        account_id: "000000000001".into(),
        instance_type: "t2.micro".into(),
        vcpus: 1,
        memory_mib: 512,
        disk_gib: 2,
        image: BootImage::Hvm {
            disk: artifact("disk.img"),
        },
        nics: vec![NicSpec {
            mac: "02:00:00:00:00:05".into(),
            private_ip: "172.31.0.5".into(),
            network_id: "vpc-00000000000000001".into(),
            subnet_cidr: "172.31.0.0/20".into(),
            vpc_cidr: "172.31.0.0/16".into(),
            dns_support: true,
            public_ip: None,
            domain_name: None,
            internet: Default::default(),
        }],
        desired,
        generation,
        metadata: metadata(),
    }
}

/// An instance booting from volume `root` (EBS-backed).
pub fn ebs_spec(id: &str, root: &str, generation: u64) -> InstanceSpec {
    InstanceSpec {
        image: BootImage::Ebs {
            root_volume_id: root.into(),
            kernel: None,
            ramdisk: None,
            cmdline: String::new(),
        },
        ..spec(id, generation, DesiredState::Running)
    }
}

pub fn volume(id: &str, size_gib: u64, generation: u64) -> VolumeSpec {
    VolumeSpec {
        volume_id: id.into(),
        size_gib,
        generation,
        source: None,
        remote: None,
    }
}

/// Polls the node's report (over `client`) until `pick` finds what it
/// wants in it; `what` names it when it never comes.
pub async fn wait_report<T>(
    client: &HttpNodeClient,
    what: &str,
    pick: impl Fn(&NodeReport) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let report = client.report().await.expect("report");
        if let Some(found) = pick(&report) {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{what} never reached the state wanted"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Waits until instance `id` is in a state `pick` accepts.
pub async fn wait_state(
    client: &HttpNodeClient,
    id: &str,
    pick: impl Fn(&VmState) -> bool,
) -> ObservedInstance {
    wait_report(client, id, |r| {
        r.instances
            .iter()
            .find(|i| i.instance_id == id && pick(&i.state))
            .cloned()
    })
    .await
}

/// Puts instance `id` (generation 1, desired running) and waits until it
/// runs.
pub async fn run_instance(client: &HttpNodeClient, id: &str) {
    client
        .put_instance(spec(id, 1, DesiredState::Running))
        .await
        .expect("put");
    wait_state(client, id, |s| *s == VmState::Running).await;
}

/// Waits until snapshot `id` is in a state `pick` accepts (`None`: the
/// node no longer holds it).
pub async fn wait_snapshot(
    client: &HttpNodeClient,
    id: &str,
    pick: impl Fn(Option<&SnapshotState>) -> bool,
) -> Option<ObservedSnapshot> {
    wait_report(client, id, |r| {
        let found = r.snapshots.iter().find(|s| s.snapshot_id == id);
        pick(found.map(|s| &s.state)).then(|| found.cloned())
    })
    .await
}

/// Waits until volume `id` is in a state `pick` accepts.
pub async fn wait_volume(
    client: &HttpNodeClient,
    id: &str,
    pick: impl Fn(&VolumeState) -> bool,
) -> ObservedVolume {
    wait_report(client, id, |r| {
        r.volumes
            .iter()
            .find(|v| v.volume_id == id && pick(&v.state))
            .cloned()
    })
    .await
}

/// Snapshot `id` of volume `volume_id`.
pub fn snapshot(id: &str, volume_id: &str, generation: u64) -> SnapshotSpec {
    SnapshotSpec {
        snapshot_id: id.into(),
        volume_id: volume_id.into(),
        generation,
    }
}
