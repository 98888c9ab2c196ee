//! Bringing a node up ([`start_node`]: network, metadata service, the
//! instances found on disk, the node API and registration with the
//! controller, then a heartbeat) and taking one down for good
//! ([`purge_node`], [`purge_storage`]).

use super::*;

/// Stops every NBD export daemon of the storage host whose data directory
/// is `data_dir` (its records stay: the next start serves them again).
/// Returns how many it stopped.
pub async fn purge_storage(data_dir: &Path) -> Result<usize, AgentError> {
    let Some(id) = std::fs::read_to_string(data_dir.join(NODE_ID_FILE))
        .ok()
        .map(|id| id.trim().to_owned())
        .filter(|id| !id.is_empty())
    else {
        return Ok(0);
    };
    mallee_storage::kill_all(&exports_run_dir(&run_root(&id)))
        .await
        .map(|killed| killed.len())
        .map_err(|e| AgentError::Config(format!("stop the NBD exports: {e}")))
}

/// Starts the node agent; returns once it serves its API, with every
/// instance found on disk adopted (or scheduled to start again). The
/// accelerator is resolved in the background (launches wait for it).
pub async fn start_node(config: NodeConfig) -> Result<NodeHandle, AgentError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(io(format!("create {}", config.data_dir.display())))?;
    let node_id = node_id(&config)?;
    if config.credentials.info().name != PeerName::Node(node_id.clone()) {
        return Err(AgentError::Config(format!(
            "the node's certificate is {}'s, but this node is {node_id}",
            config.credentials.info().name
        )));
    }
    let tls = NodeTls::new(&config.credentials).map_err(|e| AgentError::Config(e.to_string()))?;
    let controller_http = || crate::controller_link::client(&tls.client);
    let run_root = run_root(&node_id);
    std::fs::create_dir_all(&run_root).map_err(io(format!("create {}", run_root.display())))?;
    let hooks = Hooks::new(&config.hooks_dir, &config.data_dir, HOOK_TIME_LIMIT);
    hooks.run(HookEvent::PreInit, None).await?;

    let metadata = MetadataService::new();
    metadata.set_credentials(crate::instance_credentials::CredentialCache::new(Arc::new(
        crate::instance_credentials::HttpCredentialSource::new(
            &config.controller_url,
            controller_http(),
        )
        .map_err(|e| AgentError::Config(format!("HTTPS client: {e}")))?,
    )));
    let networks = Arc::new(
        Networks::open(
            config.network.clone(),
            config.public.clone(),
            &node_id,
            config.data_dir.join(FIREWALL_FILE),
            metadata.clone(),
        )
        .await?,
    );

    let storage = config.role == NodeRole::Storage;
    if storage && config.exports.is_none() {
        return Err(AgentError::Config(
            "a storage host needs its NBD export settings".into(),
        ));
    }
    let (accel_tx, accel_rx) = watch::channel(None);
    let accel_task = if storage {
        // A storage host runs no instances: no accelerator to look for.
        let _ = accel_tx.send(Some(Err("a storage host runs no instances".into())));
        tokio::spawn(async {})
    } else {
        let request = config.accel;
        let qemu = config.qemu.clone();
        let kernel = config.probe_kernel.clone();
        let work_dir = run_root.join("accel-probe");
        tokio::spawn(async move {
            let cache = Path::new(RUN_ROOT).join("accel.json");
            let choice =
                crate::accel::resolve(request, &qemu, kernel.as_deref(), &cache, &work_dir).await;
            if let Err(e) = &choice {
                tracing::error!(error = %e, "no accelerator: instances cannot start");
            }
            let _ = accel_tx.send(Some(choice));
        })
    };

    let source = Arc::new(
        HttpArtifactSource::new(&config.controller_url, controller_http())
            .map_err(|e| AgentError::Config(format!("HTTPS client: {e}")))?,
    );
    let cache = ImageCache::open(
        config.data_dir.join("images"),
        config.cache_limit_bytes,
        source,
    )
    .await?;
    let volumes_dir = config.data_dir.join(VOLUMES_DIR);
    let volumes = Arc::new(Volumes::open(
        &volumes_dir,
        Arc::new(Qcow2Files::new(&volumes_dir)),
    )?);
    let nbd_tls_dir = config.data_dir.join(NBD_CLIENT_TLS_DIR);
    config
        .credentials
        .write_qemu_tls_dir(&nbd_tls_dir, QemuTlsEndpoint::Client)
        .map_err(|e| AgentError::Config(format!("NBD client credentials: {e}")))?;
    let nbd_relays = Arc::new(NbdRelays::new(&run_root.join(NBD_RELAY_DIR)));
    for record in volumes.all() {
        if let Some(export) = &record.remote {
            nbd_relays
                .ensure(&record.volume_id, export)
                .map_err(io(format!("relay to the export of {}", record.volume_id)))?;
        }
    }
    let exports = match &config.exports {
        Some(settings) if storage => {
            let export_config = mallee_storage::ExportConfig {
                ports: settings.ports.clone(),
                ..mallee_storage::ExportConfig::new(
                    config.data_dir.join(EXPORTS_DIR),
                    exports_run_dir(&run_root),
                    config.data_dir.join(NBD_SERVER_TLS_DIR),
                    settings.bind,
                    settings.advertise.clone(),
                )
            };
            Some(Arc::new(
                mallee_storage::Exports::open(export_config, &config.credentials)
                    .await
                    .map_err(|e| AgentError::Config(format!("NBD exports: {e}")))?,
            ))
        }
        _ => None,
    };
    let shared = Arc::new(Shared {
        exports: exports.clone(),
        data_dir: config.data_dir.clone(),
        run_root,
        cache,
        hooks: hooks.clone(),
        networks,
        metadata,
        accel: accel_rx.clone(),
        qemu: config.qemu.clone(),
        volumes,
        nbd_tls_dir,
        nbd_relays,
        changes: watch::Sender::new(0),
    });

    let instances = Arc::new(Mutex::new(HashMap::new()));
    let snapshots = Arc::new(
        Snapshots::open(
            &config.data_dir.join(SNAPSHOTS_DIR),
            shared.clone(),
            instances.clone(),
            SnapshotData::new(&config.controller_url, controller_http())
                .map_err(|e| AgentError::Config(format!("HTTPS client: {e}")))?,
            config.snapshot_rate_limit.unwrap_or(0),
        )
        .map_err(io("open the snapshot records"))?,
    );
    let agent = Arc::new(QemuNodeAgent {
        role: config.role,
        node_id: node_id.clone(),
        zone: config.zone.clone(),
        shared: shared.clone(),
        instances,
        snapshots,
        accel: accel_rx,
        report_generation: AtomicU64::new(0),
        cores: config.cores.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
                .unwrap_or(1)
        }),
        memory_mib: config.memory_mib.unwrap_or_else(host_memory_mib),
        disk_gib: config.disk_gib,
    });
    agent.load_instances().await?;
    agent.snapshots.recover().await;

    let listener = mallee_node_api::tls::TlsListener::bind(config.listen, tls.server.clone())
        .await
        .map_err(io(format!("listen on {}", config.listen)))?;
    let bound = listener.local_addr();
    let url = config.advertise_url.clone().unwrap_or_else(|| {
        let host = if bound.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], bound.port()))
        } else {
            bound
        };
        format!("https://{host}")
    });
    let router = mallee_node_api::router(agent.clone());
    let server = tokio::spawn(async move {
        if let Err(e) = mallee_node_api::tls::serve(listener, router, std::future::pending()).await
        {
            tracing::error!(error = %e, "node API server failed");
        }
    });
    let register_http = controller_http()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| AgentError::Config(format!("HTTPS client: {e}")))?;
    let register_task = tokio::spawn(register_loop(
        agent.clone(),
        config.controller_url.clone(),
        register_http,
        url.clone(),
    ));
    // State changes go to the controller the moment they happen.
    let push_task = tokio::spawn(mallee_node_api::push::push_loop(
        agent.clone(),
        Arc::new(mallee_node_api::push::HttpStateSink::new(
            &config.controller_url,
            tls.client.clone(),
        )),
        shared.changes.subscribe(),
    ));
    let mut background = vec![accel_task, register_task, push_task];
    if let Some(exports) = exports {
        // A daemon that died (or a host that rebooted) is started again
        // on its port: the nodes' NBD clients reconnect.
        background.push(tokio::spawn(async move {
            loop {
                tokio::time::sleep(EXPORT_CHECK_EVERY).await;
                exports.check().await;
            }
        }));
    }
    hooks.run(HookEvent::PostInit, None).await?;
    tracing::info!(node = %node_id, role = config.role.as_str(), %url, "node agent started");
    Ok(NodeHandle {
        url,
        agent,
        server,
        background,
    })
}

/// Kills every VM of the node whose data directory is `data_dir` and
/// removes its networks (every VPC namespace, the public bridge and its
/// host table). Files under `data_dir` stay.
pub async fn purge_node(
    data_dir: &Path,
    network: &NetworkConfig,
    public: Option<&PublicNetworkConfig>,
) -> Result<(), AgentError> {
    let id = std::fs::read_to_string(data_dir.join(NODE_ID_FILE)).ok();
    let mut run_roots = Vec::new();
    if let Some(id) = id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
        run_roots.push(run_root(id));
    }
    // Instances of a node started with a configured id: their records
    // still name their run directories through the node id file only when
    // generated, so look for run directories named after the instances too.
    let instances = data_dir.join("instances");
    let ids: Vec<String> = std::fs::read_dir(&instances)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    if let Ok(roots) = std::fs::read_dir(RUN_ROOT) {
        for root in roots.filter_map(Result::ok) {
            let root = root.path();
            if ids.iter().any(|id| root.join(id).is_dir()) && !run_roots.contains(&root) {
                run_roots.push(root);
            }
        }
    }
    for root in &run_roots {
        for id in &ids {
            if let Some(pid) =
                RunningVm::kill_run_dir(&root.join(id), Duration::from_secs(10)).await?
            {
                tracing::info!(instance = %id, pid, "purge: killed VM");
            }
        }
        if let Ok(entries) = std::fs::read_dir(root) {
            for entry in entries.filter_map(Result::ok) {
                RunningVm::kill_run_dir(&entry.path(), Duration::from_secs(10)).await?;
            }
        }
        match std::fs::remove_dir_all(root) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io(format!("remove {}", root.display()))(e));
            }
            _ => {}
        }
    }
    Networks::purge(network, public).await?;
    Ok(())
}

/// Registers with the controller until it accepts, then again every
/// [`REGISTER_EVERY`] (a heartbeat, and how a controller that lost its
/// memory of the node learns it again).
async fn register_loop(
    agent: Arc<QemuNodeAgent>,
    controller: String,
    http: reqwest::Client,
    url: String,
) {
    let target = format!("{}{REGISTER_PATH}", controller.trim_end_matches('/'));
    let mut backoff = Duration::from_secs(1);
    let mut registered = false;
    loop {
        let registration = NodeRegistration {
            info: agent.info_now(),
            url: url.clone(),
            capacity: agent.compute_capacity(),
        };
        let result = http
            .post(&target)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&registration).unwrap_or_default())
            .send()
            .await;
        match result {
            Ok(r) if r.status().is_success() => {
                let answer = r.bytes().await.unwrap_or_default();
                match serde_json::from_slice::<RegistrationAccepted>(&answer) {
                    Ok(RegistrationAccepted { api: Some(api), .. }) => agent
                        .shared
                        .metadata
                        .api_relay()
                        .set_upstream(&api, &controller),
                    // An older controller's answer: no API relay.
                    Ok(_) => {}
                    Err(_) if answer.is_empty() => {}
                    Err(e) => tracing::warn!(error = %e, "unreadable registration answer"),
                }
                if !registered {
                    tracing::info!(controller = %controller, "registered with the controller");
                }
                registered = true;
                backoff = Duration::from_secs(1);
                tokio::time::sleep(REGISTER_EVERY).await;
            }
            other => {
                let why = match other {
                    Ok(r) => {
                        let status = r.status();
                        let text = r.text().await.unwrap_or_default();
                        format!("answered {status}: {}", text.trim())
                    }
                    Err(e) => mallee_node_api::tls::error_chain(&e),
                };
                tracing::warn!(controller = %controller, error = %why, retry_in = ?backoff, "registration failed");
                registered = false;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(REGISTER_BACKOFF_MAX);
            }
        }
    }
}
