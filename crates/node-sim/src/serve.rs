//! A [`SimNode`] on the network, as the real agent runs: its node API
//! served by node-api's own [`mallee_node_api::router`] over mutual TLS
//! with the node's certificate (so callers use
//! [`mallee_node_api::HttpNodeClient`] as with any node), and its
//! registration with a controller: a [`NodeRegistration`] posted to
//! [`REGISTER_PATH`] until the controller accepts
//! it (backoff 1 s to 30 s), then again every [`REGISTER_EVERY`] as a
//! heartbeat; and, as the real agent, a [`mallee_node_api::push`] of
//! every instance state change to the controller. A crashed agent ([`SimNode::crash_agent`]) neither answers
//! nor registers; a restarted one registers at once.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use mallee_node_api::tls::TlsListener;
use mallee_node_api::{NodeRegistration, REGISTER_PATH};
use mallee_pki::Credentials;
use mallee_pki::tls::NodeTls;
use tokio::task::JoinHandle;

use crate::SimNode;

/// How often a node registers again (the real agent's heartbeat).
pub const REGISTER_EVERY: Duration = Duration::from_secs(10);
/// Longest wait between registration retries.
const REGISTER_BACKOFF_MAX: Duration = Duration::from_secs(30);
/// How long one registration may take.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of putting a simulated node on the network.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The node API's address could not be bound.
    #[error("listen on {addr}: {source}")]
    Listen {
        /// The address.
        addr: SocketAddr,
        /// The error.
        source: std::io::Error,
    },
    /// The node's credentials make no TLS configuration.
    #[error("TLS: {0}")]
    Tls(#[from] mallee_pki::tls::TlsError),
    /// The HTTP client to the controller could not be made.
    #[error("HTTP client: {0}")]
    Client(#[from] reqwest::Error),
}

/// How a simulated node is served.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// Address of the node API (`127.0.0.1:0` picks a port).
    pub listen: SocketAddr,
    /// URL the controller reaches the node API at; `None`: from the bound
    /// address.
    pub advertise_url: Option<String>,
    /// The node's certificate, key and CA: what the node API serves with
    /// and what it presents to the controller.
    pub credentials: Credentials,
    /// Controller base URL to register with; `None`: no registration.
    pub controller_url: Option<String>,
    /// Heartbeat period.
    pub register_every: Duration,
}

impl ServeConfig {
    /// Serving on a free loopback port with `credentials`, registering
    /// nowhere.
    pub fn new(credentials: Credentials) -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            advertise_url: None,
            credentials,
            controller_url: None,
            register_every: REGISTER_EVERY,
        }
    }
}

/// A served simulated node. Dropping it stops serving and registering
/// (the node itself lives on in its other clones).
#[derive(Debug)]
pub struct SimServer {
    url: String,
    node: SimNode,
    /// The API server and, with a controller, the registration loop.
    tasks: Vec<JoinHandle<()>>,
}

impl SimServer {
    /// Base URL of the node API.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The node served.
    pub fn node(&self) -> &SimNode {
        &self.node
    }

    /// Stops serving and registering.
    pub async fn shutdown(mut self) {
        for task in std::mem::take(&mut self.tasks) {
            task.abort();
            let _ = task.await;
        }
    }
}

impl Drop for SimServer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Serves `node`'s API and, with a controller URL, registers it there.
pub async fn serve(node: SimNode, config: ServeConfig) -> Result<SimServer, ServeError> {
    let listen_error = |source| ServeError::Listen {
        addr: config.listen,
        source,
    };
    let tls = NodeTls::new(&config.credentials)?;
    let listener = TlsListener::bind(config.listen, tls.server.clone())
        .await
        .map_err(listen_error)?;
    let bound = listener.local_addr();
    let url = config.advertise_url.clone().unwrap_or_else(|| {
        let host = if bound.ip().is_unspecified() {
            SocketAddr::from(([127, 0, 0, 1], bound.port()))
        } else {
            bound
        };
        format!("https://{host}")
    });
    let router = mallee_node_api::router(Arc::new(node.clone()));
    let server = tokio::spawn(async move {
        if let Err(e) = mallee_node_api::tls::serve(listener, router, std::future::pending()).await
        {
            tracing::error!(error = %e, "simulated node API server failed");
        }
    });
    let mut tasks = vec![server];
    if let Some(controller) = config.controller_url.clone() {
        let http = crate::transfer::controller_client(&tls.client).build()?;
        tasks.push(
            node.push_states(Arc::new(mallee_node_api::push::HttpStateSink::new(
                &controller,
                tls.client.clone(),
            ))),
        );
        tasks.push(tokio::spawn(register_loop(
            node.clone(),
            controller,
            http,
            url.clone(),
            config.register_every,
        )));
    }
    tracing::info!(node = %node.node_id(), %url, "simulated node agent serving");
    Ok(SimServer { url, node, tasks })
}

/// Registers with the controller until it accepts, then every `every`
/// (the real agent's loop), while the agent is up.
async fn register_loop(
    node: SimNode,
    controller: String,
    http: reqwest::Client,
    url: String,
    every: Duration,
) {
    let target = format!("{}{REGISTER_PATH}", controller.trim_end_matches('/'));
    let mut liveness = node.liveness();
    let mut backoff = Duration::from_secs(1);
    let mut registered = false;
    loop {
        // A dead agent does not register.
        if liveness.wait_for(|(up, _)| *up).await.is_err() {
            return;
        }
        let registration: NodeRegistration = node.registration(&url);
        let result = http
            .post(&target)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(&registration).unwrap_or_default())
            .timeout(REGISTER_TIMEOUT)
            .send()
            .await;
        let wait = match result {
            Ok(r) if r.status().is_success() => {
                if !registered {
                    tracing::info!(node = %node.node_id(), %controller, "registered with the controller");
                }
                registered = true;
                backoff = Duration::from_secs(1);
                every
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
                tracing::warn!(node = %node.node_id(), %controller, error = %why, retry_in = ?backoff,
                    "registration failed");
                registered = false;
                let wait = backoff;
                backoff = (backoff * 2).min(REGISTER_BACKOFF_MAX);
                wait
            }
        };
        // A crash or a restart ends the wait: a restarted agent registers
        // at once.
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            changed = liveness.changed() => if changed.is_err() {
                return;
            },
        }
    }
}
