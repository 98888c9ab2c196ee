//! Starting and stopping the controller: open the store, bootstrap, open
//! the cluster PKI, bind the API and the node listener, serve both until
//! SIGINT or SIGTERM, then drain in-flight requests.

use std::sync::Arc;

use futures_util::FutureExt;
use mallee_node_api::tls::TlsListener;
use mallee_pki::ControllerPki;
use tokio::net::TcpListener;

use crate::{Cloud, Config};
use mallee_cloud::bootstrap::{self, Bootstrapped};
use mallee_cloud::instances::types::{InstanceTypes, InstanceTypesError};

/// Errors starting or running the controller.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The store could not be opened.
    #[error("cannot open the database: {0}")]
    Store(#[from] mallee_store::StoreError),
    /// Bootstrap failed.
    #[error(transparent)]
    Bootstrap(#[from] bootstrap::BootstrapError),
    /// The instance-type table is invalid.
    #[error(transparent)]
    InstanceTypes(#[from] InstanceTypesError),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// Address.
        addr: std::net::SocketAddr,
        /// Cause.
        source: std::io::Error,
    },
    /// The object data directory could not be opened.
    #[error("cannot open the object store: {0}")]
    Blobs(#[from] mallee_blobs::BlobError),
    /// Repairing what a crash left failed.
    #[error("cannot repair interrupted launches: {0}")]
    Repair(#[from] mallee_cloud::CloudError),
    /// The cluster CA or the controller's certificate is unusable.
    #[error("cluster PKI: {0}")]
    Pki(#[from] mallee_pki::ControllerPkiError),
    /// Serving failed.
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    /// The master key of object encryption is unreadable or cannot be
    /// made.
    #[error("cannot load the object master key: {0}")]
    MasterKey(std::io::Error),
}

/// A controller ready to serve.
#[derive(Debug)]
pub struct Prepared {
    /// Shared state.
    pub cloud: Arc<Cloud>,
    /// The S3 service.
    pub s3: s3s::service::S3Service,
    /// What bootstrap did.
    pub bootstrapped: Bootstrapped,
    /// The bare-metal zone (provisioning off until [`Prepared::enable_metal`]).
    pub metal: Arc<mallee_cloud::metal::Metal>,
    listener: TcpListener,
    node_listener: TlsListener,
    dns_socket: Option<(tokio::net::UdpSocket, tokio::net::TcpListener)>,
    metrics_listener: Option<TcpListener>,
}

/// Opens the store, bootstraps and binds the listener.
pub async fn prepare(mut config: Config) -> Result<Prepared, ServerError> {
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| ServerError::Store(mallee_store::StoreError::Corrupt(e.to_string())))?;
    let store = config.database().open().await?;
    let instance_types = InstanceTypes::load(&config.data_dir)?;
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.listen,
            source,
        })?;
    let pki = Arc::new(ControllerPki::open(&config.pki_dir())?);
    pki.revocations().replace(store.revoked_serials().await?);
    let node_listener = TlsListener::bind(config.node_listen, pki.node_listener_config())
        .await
        .map_err(|source| ServerError::Bind {
            addr: config.node_listen,
            source,
        })?;
    let dns_socket = match config.dns_listen {
        Some(addr) => {
            let bind = |source| ServerError::Bind { addr, source };
            let udp = tokio::net::UdpSocket::bind(addr).await.map_err(bind)?;
            // TCP on the same port UDP got (port 0 picks one for UDP).
            let tcp_addr = udp.local_addr().map_err(bind)?;
            let tcp = tokio::net::TcpListener::bind(tcp_addr)
                .await
                .map_err(bind)?;
            Some((udp, tcp))
        }
        None => None,
    };
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .map_err(|source| ServerError::Bind { addr, source })?,
        ),
        None => None,
    };
    bootstrap::fix_names(&*store, &mut config).await?;
    mallee_cloud::node_status::record_node_timeout(&*store, config.node_timeout).await?;
    let bootstrapped = bootstrap::bootstrap(&*store, &config).await?;
    // Interrupted uploads left temp files (removed by open) and maybe blobs
    // no committed record points at: sweep them before serving.
    let blobs = mallee_blobs::BlobStore::open(config.objects_dir()).await?;
    let removed = blobs.sweep(&store.referenced_blobs().await?).await?;
    if removed > 0 {
        tracing::info!(removed, "removed object data no committed object refers to");
    }
    // Nodes used to share a token in this file; certificates replaced it.
    let _ = std::fs::remove_file(config.data_dir.join("node.token"));
    let blobs = Arc::new(blobs);
    let authz_seal = mallee_cloud::identity::authz_seal::AuthzSeal::load(&*store).await?;
    let admission = mallee_cloud::admission::Admission::new(
        config.max_concurrent_requests,
        config.account_rate_limit,
    );
    let object_keys = mallee_cloud::objects::sse::MasterKey::load_or_create(
        &config
            .data_dir
            .join(mallee_cloud::objects::sse::MASTER_KEY_FILE),
    )
    .map_err(ServerError::MasterKey)?;
    let cloud = Arc::new(Cloud {
        store,
        config,
        instance_types,
        blobs: blobs.clone(),
        compute: mallee_cloud::compute::Compute::new(pki),
        faults: mallee_cloud::faults::Faults::from_env(),
        key_use: Default::default(),
        sign_in_guard: Default::default(),
        identities: Default::default(),
        authz_seal,
        telemetry: Default::default(),
        admission,
        object_keys,
    });
    mallee_cloud::instances::launch::repair_interrupted(&cloud).await?;
    let s3 = crate::s3::service(cloud.clone());
    let metal = Arc::new(mallee_cloud::metal::Metal::disabled(
        cloud.store.clone(),
        blobs,
    ));
    Ok(Prepared {
        cloud,
        s3,
        bootstrapped,
        metal,
        listener,
        node_listener,
        dns_socket,
        metrics_listener,
    })
}

/// Installs the SIGINT and SIGTERM handlers now and returns a future that
/// resolves when either arrives.
///
/// Call it before the listeners bind: a client that sees the server answer
/// may signal it at once, and a handler that is only installed when the
/// future is first polled would leave that signal to the default action,
/// which kills the process without a clean shutdown.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let interrupt = signal(SignalKind::interrupt()).ok();
    let terminate = signal(SignalKind::terminate()).ok();
    async move {
        let wait = |s: Option<tokio::signal::unix::Signal>| async move {
            match s {
                Some(mut s) => {
                    s.recv().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            () = wait(interrupt) => {}
            () = wait(terminate) => {}
        }
    }
}

impl Prepared {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    /// The node listener's URL (`https://…`; a wildcard address shown as
    /// loopback).
    pub fn node_url(&self) -> String {
        let bound = self.node_listener.local_addr();
        let host = match bound.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_owned(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("https://{host}:{}", bound.port())
    }

    /// Starts bare-metal provisioning on the network `config` names.
    pub async fn enable_metal(
        &mut self,
        config: mallee_cloud::metal::MetalConfig,
    ) -> Result<(), mallee_cloud::metal::MetalStartError> {
        let blobs = self.cloud.blobs.clone();
        let metal = Arc::new(
            mallee_cloud::metal::Metal::start(self.cloud.store.clone(), blobs, config).await?,
        );
        self.cloud.compute.metal.enable(metal.clone());
        self.metal = metal;
        Ok(())
    }

    /// Serves until `shutdown` resolves, then finishes in-flight requests.
    pub async fn serve(
        self,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), ServerError> {
        use axum::serve::ListenerExt;
        let shutdown = Box::pin(shutdown).shared();
        // Background work runs only while this controller holds the lease
        // (several may share one PostgreSQL database; see `leadership`).
        // Revocations are this process's TLS state: every controller syncs.
        let mode = match self.cloud.config.database() {
            mallee_store::Database::Sqlite(_) => mallee_cloud::leadership::Mode::Exclusive,
            mallee_store::Database::Postgres(_) => mallee_cloud::leadership::Mode::Shared,
        };
        let background = {
            let cloud = self.cloud.clone();
            mallee_cloud::leadership::Leadership::spawn(
                self.cloud.store.clone(),
                mallee_cloud::leadership::holder_id(),
                mode,
                mallee_cloud::leadership::Timing::default(),
                move || {
                    vec![
                        mallee_cloud::reconciler::spawn(cloud.clone()),
                        mallee_cloud::objects::lifecycle_pass::spawn(cloud.clone()),
                    ]
                },
            )
        };
        let revocations = mallee_cloud::enrolment::sync_revocations(self.cloud.clone());
        let metal = self.metal.clone();
        let node_routes = crate::node_routes::router(self.cloud.clone(), self.cloud.blobs.clone());
        let nodes = tokio::spawn(mallee_node_api::tls::serve(
            self.node_listener,
            node_routes,
            shutdown.clone(),
        ));
        let dns = self
            .dns_socket
            .map(|(udp, tcp)| tokio::spawn(crate::dns::serve(self.cloud.clone(), udp, tcp)));
        let metrics = self.metrics_listener.map(|listener| {
            tokio::spawn(crate::metrics::serve(
                self.cloud.clone(),
                listener,
                shutdown.clone(),
            ))
        });
        let router = crate::frontdoor::router(self.cloud, self.s3, self.metal);
        // Without TCP_NODELAY a small response written in two parts (headers,
        // body) waits for the client's delayed ACK: ~40 ms per small GET.
        let listener = self.listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::warn!(error = %e, "could not set TCP_NODELAY");
            }
        });
        axum::serve(
            listener,
            router.into_make_service_with_connect_info::<std::net::SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(ServerError::Serve)?;
        match nodes.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "the node listener failed"),
            Err(e) => tracing::error!(error = %e, "the node listener panicked"),
        }
        if let Some(dns) = dns {
            dns.abort();
        }
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        revocations.abort();
        background.stop().await;
        metal.shutdown().await;
        Ok(())
    }
}
