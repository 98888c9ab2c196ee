// Shared by the node agent's real-guest tests (`include!`d, so each test
// file keeps its own imports): a fake controller serving the test guest
// images and snapshot data, the node fixture that starts agents on a
// temporary data directory, waiting helpers and the volume helpers.

const BUCKET: &str = "guest-images";

fn guest_images() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/guest-images");
    for f in ["vmlinuz", "initrd.img", "root.img", "cmdline"] {
        assert!(
            dir.join(f).is_file(),
            "test guest image {} is missing: build it with `guest/build.sh target/guest-images`",
            dir.join(f).display()
        );
    }
    dir
}

/// Fails the test unless every one of `tools` runs (`TOOL --version`);
/// `package` is where they come from.
#[allow(dead_code)]
fn require_runnable(tools: &[&str], package: &str) {
    for tool in tools {
        assert!(
            Command::new(tool)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success()),
            "{tool} is not runnable: install {package}"
        );
    }
}

fn require_prerequisites() {
    assert!(
        std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0),
        "the node agent tests need root (network namespaces, taps, nftables)"
    );
    let qemu = Command::new("qemu-system-x86_64")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        qemu,
        "qemu-system-x86_64 is not runnable: install qemu-system-x86"
    );
}

/// The fake controller: image objects from `target/guest-images`,
/// registrations recorded, snapshot data stored in a temporary directory
/// (as the controller's blob store would).
#[derive(Clone)]
struct Controller {
    /// Its node listener (HTTPS, mutual TLS).
    url: String,
    /// Its cluster CA and certificate.
    pki: Arc<mallee_pki::ControllerPki>,
    files: Arc<HashMap<String, PathBuf>>,
    registrations: Arc<Mutex<Vec<NodeRegistration>>>,
    /// The state pushes received.
    states: Arc<Mutex<Vec<mallee_node_api::StateReport>>>,
    snapshots: Arc<Mutex<SnapshotStore>>,
    snapshot_dir: Arc<tempfile::TempDir>,
}

/// One snapshot's data held by the fake controller.
#[derive(Debug, Clone)]
struct StoredSnapshot {
    path: PathBuf,
    size: u64,
    sha256: String,
    format: String,
}

/// The fake controller's snapshots and what nodes did with them.
#[derive(Debug, Default)]
struct SnapshotStore {
    stored: HashMap<String, StoredSnapshot>,
    /// Every upload request, by snapshot.
    attempts: HashMap<String, u32>,
    /// Uploads stored (answered 200), by snapshot.
    stores: HashMap<String, u32>,
    /// The next this many uploads are answered 503.
    fail_uploads: u32,
    /// Snapshots deleted on the controller: their uploads answer 404.
    deleted: std::collections::HashSet<String>,
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(<sha2::Sha256 as sha2::Digest>::digest(bytes))
}

// Not every test file uses every helper.
#[allow(dead_code)]
impl Controller {
    fn store(&self) -> std::sync::MutexGuard<'_, SnapshotStore> {
        self.snapshots.lock().expect("lock")
    }

    /// Makes the controller hold `file` as snapshot `id` (an imported
    /// snapshot) and returns what a volume created from it names.
    fn add_snapshot(
        &self,
        id: &str,
        file: &Path,
        format: mallee_node_api::DiskFormat,
    ) -> mallee_node_api::SnapshotSource {
        let bytes = std::fs::read(file).expect("read snapshot data");
        let path = self.snapshot_dir.path().join(id);
        std::fs::write(&path, &bytes).expect("store snapshot data");
        let stored = StoredSnapshot {
            path,
            size: bytes.len() as u64,
            sha256: sha256_hex(&bytes),
            format: format.as_str().to_owned(),
        };
        let source = mallee_node_api::SnapshotSource {
            snapshot_id: id.to_owned(),
            size: stored.size,
            sha256: stored.sha256.clone(),
            format,
        };
        self.store().stored.insert(id.to_owned(), stored);
        source
    }

    /// What a volume created from stored snapshot `id` names.
    fn source(&self, id: &str) -> mallee_node_api::SnapshotSource {
        let store = self.store();
        let stored = store.stored.get(id).expect("stored snapshot");
        mallee_node_api::SnapshotSource {
            snapshot_id: id.to_owned(),
            size: stored.size,
            sha256: stored.sha256.clone(),
            format: mallee_node_api::DiskFormat::parse(&stored.format).expect("format"),
        }
    }
}

async fn put_snapshot_data(
    State(c): State<Controller>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if !versioned(&headers) {
        return StatusCode::PRECONDITION_FAILED.into_response();
    }
    let header_text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let mut store = c.store();
    *store.attempts.entry(id.clone()).or_default() += 1;
    if store.deleted.contains(&id) {
        return StatusCode::NOT_FOUND.into_response();
    }
    if store.fail_uploads > 0 {
        store.fail_uploads -= 1;
        return (StatusCode::SERVICE_UNAVAILABLE, "try again later").into_response();
    }
    let length: Option<u64> = header_text("content-length").parse().ok();
    let sha256 = sha256_hex(&body);
    if length != Some(body.len() as u64)
        || sha256 != header_text(mallee_node_api::SHA256_HEADER)
        || header_text(mallee_node_api::FORMAT_HEADER) != "qcow2"
    {
        return (StatusCode::BAD_REQUEST, "digest, length or format mismatch").into_response();
    }
    if let Some(held) = store.stored.get(&id)
        && held.sha256 != sha256
    {
        return (StatusCode::CONFLICT, "uploaded before with another digest").into_response();
    }
    let path = c.snapshot_dir.path().join(&id);
    if let Err(e) = std::fs::write(&path, &body) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    store.stored.insert(
        id.clone(),
        StoredSnapshot {
            path,
            size: body.len() as u64,
            sha256: sha256.clone(),
            format: "qcow2".into(),
        },
    );
    *store.stores.entry(id.clone()).or_default() += 1;
    axum::Json(mallee_node_api::SnapshotUploaded {
        snapshot_id: id,
        size: body.len() as u64,
        sha256,
    })
    .into_response()
}

async fn get_snapshot_data(
    State(c): State<Controller>,
    UrlPath(id): UrlPath<String>,
    headers: HeaderMap,
) -> axum::response::Response {
    if !versioned(&headers) {
        return StatusCode::PRECONDITION_FAILED.into_response();
    }
    let Some(stored) = c.store().stored.get(&id).cloned() else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(&stored.path).await {
        Ok(bytes) => (
            [(mallee_node_api::SHA256_HEADER, stored.sha256)],
            Bytes::from(bytes),
        )
            .into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
    }
}

/// Whether a request carries a node API version the controller works
/// with (the TLS handshake admitted only nodes of its cluster).
fn versioned(headers: &HeaderMap) -> bool {
    mallee_node_api::version::check_caller(
        mallee_node_api::version::Role::Controller,
        headers
            .get(mallee_node_api::version::VERSION_HEADER)
            .and_then(|v| v.to_str().ok()),
    )
    .is_ok()
}

async fn object(
    State(c): State<Controller>,
    UrlPath((bucket, key)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> axum::response::Response {
    if !versioned(&headers) {
        return StatusCode::PRECONDITION_FAILED.into_response();
    }
    match c.files.get(&key).filter(|_| bucket == BUCKET) {
        Some(path) => match tokio::fs::read(path).await {
            Ok(bytes) => Bytes::from(bytes).into_response(),
            Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
        },
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn register(State(c): State<Controller>, headers: HeaderMap, body: Bytes) -> StatusCode {
    if !versioned(&headers) {
        return StatusCode::PRECONDITION_FAILED;
    }
    match serde_json::from_slice::<NodeRegistration>(&body) {
        Ok(r) => {
            c.registrations.lock().expect("lock").push(r);
            StatusCode::NO_CONTENT
        }
        Err(_) => StatusCode::BAD_REQUEST,
    }
}

async fn push_state(
    State(c): State<Controller>,
    headers: HeaderMap,
    body: Bytes,
) -> axum::response::Response {
    if !versioned(&headers) {
        return StatusCode::PRECONDITION_FAILED.into_response();
    }
    match serde_json::from_slice::<mallee_node_api::StateReport>(&body) {
        Ok(report) => {
            let applied = report.instances.len();
            c.states.lock().expect("lock").push(report);
            axum::Json(mallee_node_api::StateAccepted { applied }).into_response()
        }
        Err(_) => StatusCode::BAD_REQUEST.into_response(),
    }
}

/// The fake controller, serving its node routes over mutual TLS with the
/// certificates of a cluster CA of its own.
async fn serve_controller(images: &Path) -> Controller {
    let files: HashMap<String, PathBuf> = ["vmlinuz", "initrd.img", "root.img"]
        .iter()
        .map(|f| ((*f).to_owned(), images.join(f)))
        .collect();
    let pki = Arc::new(mallee_pki::ControllerPki::in_memory().expect("pki"));
    let listener = mallee_node_api::tls::TlsListener::bind(
        "127.0.0.1:0".parse().expect("addr"),
        pki.node_listener_config(),
    )
    .await
    .expect("bind");
    let controller = Controller {
        url: format!("https://{}", listener.local_addr()),
        pki,
        files: Arc::new(files),
        registrations: Arc::default(),
        states: Arc::default(),
        snapshots: Arc::default(),
        snapshot_dir: Arc::new(tempfile::tempdir().expect("snapshot store")),
    };
    let app = axum::Router::new()
        .route("/_mallee/node/objects/{bucket}/{*key}", get(object))
        .route(mallee_node_api::REGISTER_PATH, post(register))
        .route(mallee_node_api::STATE_PATH, post(push_state))
        .route(
            &format!("{}{{id}}", mallee_node_api::SNAPSHOTS_PATH_PREFIX),
            axum::routing::put(put_snapshot_data).get(get_snapshot_data),
        )
        .layer(axum::extract::DefaultBodyLimit::disable())
        .with_state(controller.clone());
    tokio::spawn(async move {
        mallee_node_api::tls::serve(listener, app, std::future::pending())
            .await
            .expect("serve");
    });
    controller
}

fn artifact(images: &Path, name: &str) -> Artifact {
    let bytes = std::fs::read(images.join(name)).expect("read image");
    Artifact {
        bucket: BUCKET.into(),
        key: name.into(),
        size: bytes.len() as u64,
        etag: hex::encode(Md5::digest(&bytes)),
    }
}

/// Kills the node's VMs and removes its network, also when a test fails.
struct Purge {
    data_dir: PathBuf,
    network: NetworkConfig,
}

impl Drop for Purge {
    fn drop(&mut self) {
        let data_dir = self.data_dir.clone();
        let network = self.network.clone();
        let result = std::thread::spawn(move || {
            tokio::runtime::Runtime::new()
                .expect("runtime")
                .block_on(purge_node(&data_dir, &network, None))
        })
        .join();
        match result {
            Ok(Ok(())) => {}
            other => eprintln!("purge failed: {other:?}"),
        }
    }
}

struct Fixture {
    config: NodeConfig,
    /// What the controller calls the node with.
    controller_tls: Arc<rustls::ClientConfig>,
    kernel: Artifact,
    initrd: Artifact,
    root: Artifact,
    cmdline: String,
}

impl Fixture {
    /// A TCG node (8 cores, 4 GiB, 100 GiB) keeping its data in `data_dir`
    /// and its hooks in `hooks_dir`, joined to the fake `controller` (with
    /// a certificate of its CA) and booting the test guest from `images`;
    /// with the purge that removes its VMs and networks when the test ends.
    fn new(images: &Path, controller: &Controller, data_dir: &Path, hooks_dir: PathBuf) -> (Self, Purge) {
        let network = NetworkConfig {
            state_root: data_dir.join("network"),
            default_subnet: "172.31.0.0/24".parse().expect("subnet"),
            domain: "mallee-1.compute.internal".into(),
            underlay: None,
        };
        let purge = Purge {
            data_dir: data_dir.to_owned(),
            network: network.clone(),
        };
        let node_id = mallee_node::agent::data_dir_node_id(data_dir).expect("node id");
        let credentials = controller
            .pki
            .ca()
            .issue(
                &mallee_pki::PeerName::node(&node_id).expect("id"),
                mallee_pki::Validity::peer(),
            )
            .expect("node certificate");
        let mut config = NodeConfig::new(data_dir.to_owned(), &controller.url, credentials, network);
        config.hooks_dir = hooks_dir;
        config.listen = "127.0.0.1:0".parse().expect("addr");
        config.accel = AccelRequest::Tcg;
        config.cores = Some(8);
        config.memory_mib = Some(4096);
        config.disk_gib = Some(100);
        let fixture = Self {
            kernel: artifact(images, "vmlinuz"),
            initrd: artifact(images, "initrd.img"),
            root: artifact(images, "root.img"),
            cmdline: std::fs::read_to_string(images.join("cmdline"))
                .expect("cmdline")
                .trim()
                .to_owned(),
            controller_tls: controller.pki.node_client_config(&node_id),
            config,
        };
        (fixture, purge)
    }

    /// Starts the agent, with the controller's client of it.
    async fn start(&self) -> (NodeHandle, HttpNodeClient) {
        start(&self.config, &self.controller_tls).await
    }

    fn spec(&self, id: &str, n: u8, user_data: &str) -> InstanceSpec {
        let ip = format!("172.31.0.{}", 10 + n);
        let mac = format!("d0:0d:00:00:00:{n:02x}");
        let hostname = format!("ip-172-31-0-{}.mallee-1.compute.internal", 10 + n);
        InstanceSpec {
            instance_id: id.into(),
            account_id: "000000000001".into(),
            instance_type: "t1.micro".into(),
            vcpus: 1,
            memory_mib: 256,
            disk_gib: 1,
            image: BootImage::Paravirtual {
                kernel: self.kernel.clone(),
                ramdisk: Some(self.initrd.clone()),
                root: self.root.clone(),
                cmdline: self.cmdline.clone(),
            },
            nics: vec![NicSpec {
                mac: mac.clone(),
                private_ip: ip.clone(),
                network_id: "vpc-default".into(),
                subnet_cidr: String::new(),
                vpc_cidr: String::new(),
                dns_support: true,
                public_ip: None,
                domain_name: None,
                internet: Default::default(),
            }],
            desired: DesiredState::Running,
            generation: 1,
            metadata: InstanceMetadata {
                ami_id: "ami-00000000000000001".into(),
                ami_launch_index: 0,
                reservation_id: "r-00000000000000001".into(),
                account_id: "000000000001".into(),
                instance_type: "t1.micro".into(),
                kernel_id: Some("aki-00000000000000001".into()),
                ramdisk_id: Some("ari-00000000000000001".into()),
                architecture: "x86_64".into(),
                region: "mallee-1".into(),
                availability_zone: "mallee-1a".into(),
                local_ipv4: ip,
                local_hostname: hostname,
                mac,
                public_ipv4: None,
                public_hostname: None,
                security_groups: vec!["default".into()],
                public_keys: vec![],
                user_data_base64: Some(base64::engine::general_purpose::STANDARD.encode(user_data)),
                launch_time: "2024-01-02T03:04:05Z".into(),
                root_device_name: "/dev/sda1".into(),
                block_device_mapping: vec![("ami".into(), "/dev/sda1".into())],
                options: MetadataOptions::default(),
                iam: None,
            },
        }
    }
}

/// Sets instance `id`'s desired state to `desired` (at `generation`) and
/// waits until it is reached (`what` names it if it is not).
#[allow(dead_code)]
async fn set_state_and_wait(
    client: &HttpNodeClient,
    id: &str,
    desired: DesiredState,
    generation: u64,
    what: &str,
    timeout: Duration,
) -> VmState {
    client
        .set_desired_state(id, desired, generation)
        .await
        .unwrap_or_else(|e| panic!("{id} to {desired:?}: {e}"));
    let reached = match desired {
        DesiredState::Running => VmState::Running,
        DesiredState::Stopped => VmState::Stopped,
    };
    wait_state(client, id, |s| *s == reached, what, timeout).await
}

async fn wait_state(
    client: &HttpNodeClient,
    id: &str,
    want: impl Fn(&VmState) -> bool,
    what: &str,
    timeout: Duration,
) -> VmState {
    let start = Instant::now();
    loop {
        let report = client.report().await.expect("report");
        let state = report
            .instances
            .iter()
            .find(|i| i.instance_id == id)
            .map(|i| i.state.clone());
        if let Some(s) = &state
            && want(s)
        {
            return s.clone();
        }
        if start.elapsed() > timeout {
            let console = client
                .console_output(id)
                .await
                .map(|c| c.output)
                .unwrap_or_default();
            panic!("{id} not {what} within {timeout:?} (state {state:?}); console:\n{console}");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The pid of the QEMU running instance `id`, found by its `-name`.
fn qemu_pid(id: &str) -> Option<u32> {
    let needle = format!("guest={id},");
    std::fs::read_dir("/proc")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .find(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .map(|c| String::from_utf8_lossy(&c).contains(&needle))
                .unwrap_or(false)
        })
}

async fn start(
    config: &NodeConfig,
    controller_tls: &Arc<rustls::ClientConfig>,
) -> (NodeHandle, HttpNodeClient) {
    let handle = start_node(config.clone()).await.expect("start node");
    let client = HttpNodeClient::new(handle.url(), controller_tls.clone());
    (handle, client)
}

/// The volume `id` as the node reports it.
#[allow(dead_code)]
async fn volume(client: &HttpNodeClient, id: &str) -> Option<mallee_node_api::ObservedVolume> {
    client
        .report()
        .await
        .expect("report")
        .volumes
        .into_iter()
        .find(|v| v.volume_id == id)
}

/// The virtio serial of volume `volume_id`'s disk: its id without `-`.
#[allow(dead_code)]
fn serial(volume_id: &str) -> String {
    volume_id.replace('-', "")
}

/// Shell that sets `$dev` to the disk of volume `volume_id` (found by its
/// virtio serial), waiting for it to appear.
#[allow(dead_code)]
fn find_disk(volume_id: &str) -> String {
    let serial = serial(volume_id);
    format!(
        "dev=\"\"\nwhile [ -z \"$dev\" ]; do\n  for d in /sys/block/vd*; do\n    [ \"$(cat $d/serial 2>/dev/null)\" = {serial} ] && dev=/dev/${{d##*/}}\n  done\n  [ -n \"$dev\" ] || usleep 200000\ndone\n"
    )
}

/// Waits until the console shows `needle` `count` times; returns the lines
/// holding it.
#[allow(dead_code)]
async fn console_lines(
    client: &HttpNodeClient,
    id: &str,
    needle: &str,
    count: usize,
    timeout: Duration,
) -> Vec<String> {
    let start = Instant::now();
    loop {
        let out = client.console_output(id).await.expect("console").output;
        let lines: Vec<String> = out
            .lines()
            .filter(|l| l.contains(needle))
            .map(|l| l.trim_end().to_owned())
            .collect();
        if lines.len() >= count {
            return lines;
        }
        assert!(
            start.elapsed() < timeout,
            "{id}: {needle:?} not {count} times on the console within {timeout:?}:\n{out}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
