//! The instance metadata service (169.254.169.254), IMDSv1 and IMDSv2 as
//! EC2 serves them: `meta-data/`, `user-data` and
//! `dynamic/instance-identity/document`, session tokens from
//! `PUT /latest/api/token`, `HttpTokens`, `HttpEndpoint` and the PUT
//! response hop limit (the IP TTL of the connection).
//!
//! The caller is identified by the network it reaches the service in (one
//! listener per VPC namespace, each bound to its network id) and the TCP
//! source address of the connection; the node's network guarantees a guest
//! can send only from its own address, so an instance is answered only about
//! itself even when another VPC uses the same address, and an address nobody
//! registered gets 404. Tokens are bound to the network, address and
//! instance they were issued to and die with the registration.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::os::fd::AsFd;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use axum::body::Body;
use base64::Engine;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use mallee_node_api::{HttpTokens, INSTANCE_API_PORT, InstanceCredentials, InstanceMetadata};
use nix::sched::{CloneFlags, setns};
use rand::RngCore;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

use crate::api_relay::ApiRelay;
use crate::instance_credentials::CredentialCache;
use crate::network::METADATA_ADDR;

mod tree;
use tree::{Live, Node, credentials_requested, listing, lookup};

/// Header carrying the requested token lifetime on `PUT /latest/api/token`.
pub const TOKEN_TTL_HEADER: &str = "x-aws-ec2-metadata-token-ttl-seconds";
/// Header carrying the session token on GETs.
pub const TOKEN_HEADER: &str = "x-aws-ec2-metadata-token";
/// Longest token lifetime EC2 accepts (six hours).
pub const MAX_TOKEN_TTL_SECONDS: u64 = 21_600;

/// Live tokens kept per instance; past this the ones closest to expiry are
/// dropped, so one guest asking for tokens in a loop costs bounded memory and
/// cannot push out anyone else's.
const MAX_TOKENS_PER_INSTANCE: usize = 1024;

/// Aborts a task when dropped.
struct AbortOnDrop(JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Errors starting the metadata service.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// `/run/netns/NAME` could not be opened.
    #[error("opening network namespace {netns}: {source}")]
    OpenNetns {
        /// The namespace.
        netns: String,
        /// Why.
        source: std::io::Error,
    },
    /// `setns` into the namespace failed.
    #[error("entering network namespace {netns}: {source}")]
    EnterNetns {
        /// The namespace.
        netns: String,
        /// Why.
        source: nix::Error,
    },
    /// The listening socket could not be made.
    #[error("listening on {addr} in {netns}: {source}")]
    Bind {
        /// The namespace.
        netns: String,
        /// The address.
        addr: SocketAddrV4,
        /// Why.
        source: std::io::Error,
    },
    /// The thread that binds inside the namespace did not report back.
    #[error("the thread binding in network namespace {netns} died")]
    BindThread {
        /// The namespace.
        netns: String,
    },
}

#[derive(Debug)]
struct Registered {
    instance_id: String,
    metadata: InstanceMetadata,
}

#[derive(Debug)]
struct Token {
    instance_id: String,
    expires: Instant,
}

/// Who a caller is: its network id and source address.
type Caller = (Arc<str>, Ipv4Addr);

/// The metadata service of one node. Share it as `Arc`; registrations take
/// effect for the next request.
#[derive(Debug, Default)]
pub struct MetadataService {
    instances: RwLock<HashMap<Caller, Arc<Registered>>>,
    /// Caller → token → its owner and expiry.
    tokens: Mutex<HashMap<Caller, HashMap<String, Token>>>,
    /// Where instances with an instance profile get role credentials.
    credentials: std::sync::OnceLock<Arc<CredentialCache>>,
    /// Relays instances to the cloud's API at [`INSTANCE_API_PORT`].
    relay: Arc<ApiRelay>,
}

impl MetadataService {
    /// A service with no instances.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Serves instances with an instance profile the role credentials
    /// `cache` holds (set once, when the node knows its controller).
    pub fn set_credentials(&self, cache: Arc<CredentialCache>) {
        let _ = self.credentials.set(cache);
    }

    /// The relay to the cloud's API that [`MetadataService::serve_in_netns`]
    /// runs beside the metadata listener.
    pub fn api_relay(&self) -> &Arc<ApiRelay> {
        &self.relay
    }

    /// Answers requests from `ip` in the default network (the one
    /// [`MetadataService::serve`] listens for) with `metadata` about
    /// `instance_id`. See [`MetadataService::register_in`].
    pub fn register(&self, ip: Ipv4Addr, instance_id: &str, metadata: InstanceMetadata) {
        self.register_in("", ip, instance_id, metadata);
    }

    /// Answers requests from `ip` in network `network` with `metadata`
    /// about `instance_id`. Replaces an earlier registration of that
    /// address; if that was another instance, its tokens stop working.
    pub fn register_in(
        &self,
        network: &str,
        ip: Ipv4Addr,
        instance_id: &str,
        metadata: InstanceMetadata,
    ) {
        let caller: Caller = (Arc::from(network), ip);
        let previous = self
            .instances
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(
                caller.clone(),
                Arc::new(Registered {
                    instance_id: instance_id.to_owned(),
                    metadata,
                }),
            );
        if previous.is_some_and(|p| p.instance_id != instance_id) {
            self.lock_tokens().remove(&caller);
        }
    }

    /// Stops answering `ip` in the default network and forgets its tokens.
    pub fn unregister(&self, ip: Ipv4Addr) {
        self.unregister_in("", ip, None);
    }

    /// Stops answering `ip` in `network` and forgets its tokens; with
    /// `instance_id`, only if the address is still registered to that
    /// instance (a late unregister of a terminated instance never removes
    /// the instance that reused its address).
    pub fn unregister_in(&self, network: &str, ip: Ipv4Addr, instance_id: Option<&str>) {
        let caller: Caller = (Arc::from(network), ip);
        let mut instances = self
            .instances
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        let matches = instances
            .get(&caller)
            .is_some_and(|r| instance_id.is_none_or(|id| r.instance_id == id));
        if matches {
            let gone = instances.remove(&caller);
            drop(instances);
            self.lock_tokens().remove(&caller);
            if let (Some(gone), Some(cache)) = (gone, self.credentials.get())
                && let Ok(runtime) = tokio::runtime::Handle::try_current()
            {
                let cache = Arc::clone(cache);
                runtime.spawn(async move { cache.forget(&gone.instance_id).await });
            }
        }
    }

    /// The instance registered for `ip` in `network`, if any.
    pub fn registered(&self, network: &str, ip: Ipv4Addr) -> Option<String> {
        self.instances
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(Arc::from(network), ip))
            .map(|r| r.instance_id.clone())
    }

    /// Listens on `addr` inside network namespace `netns` (normally
    /// 169.254.169.254:80 in a VPC namespace) and serves the instances
    /// registered in `network`, and relays them to the cloud's API from
    /// [`INSTANCE_API_PORT`] of the same address, until the returned task
    /// is aborted.
    pub async fn serve_in_netns(
        self: &Arc<Self>,
        network: &str,
        netns: &str,
        addr: SocketAddrV4,
    ) -> Result<JoinHandle<()>, MetadataError> {
        let listen = |addr: SocketAddrV4| async move {
            let listener = bind_in_netns(netns, addr).await?;
            TcpListener::from_std(listener).map_err(|source| MetadataError::Bind {
                netns: netns.to_owned(),
                addr,
                source,
            })
        };
        let metadata = listen(addr).await?;
        let relay = listen(SocketAddrV4::new(*addr.ip(), INSTANCE_API_PORT)).await?;
        let serving = self.serve_network(network, metadata).await;
        let service = Arc::clone(self);
        let network: Arc<str> = Arc::from(network);
        let relaying = Arc::clone(&self.relay).serve(relay, move |ip| {
            service
                .instances
                .read()
                .unwrap_or_else(PoisonError::into_inner)
                .contains_key(&(network.clone(), ip))
        });
        Ok(tokio::spawn(async move {
            // Aborting this task drops both: the relay's future here, the
            // metadata listener's task through its guard.
            let _metadata = AbortOnDrop(serving);
            relaying.await;
        }))
    }

    /// Serves the default network's instances on `listener` until the
    /// returned task is aborted (which also ends the open connections).
    pub async fn serve(self: &Arc<Self>, listener: TcpListener) -> JoinHandle<()> {
        self.serve_network("", listener).await
    }

    /// Serves `network`'s instances on `listener` until the returned task
    /// is aborted (which also ends the open connections).
    pub async fn serve_network(
        self: &Arc<Self>,
        network: &str,
        listener: TcpListener,
    ) -> JoinHandle<()> {
        let service = Arc::clone(self);
        let network: Arc<str> = Arc::from(network);
        tokio::spawn(async move {
            let mut connections = JoinSet::new();
            loop {
                tokio::select! {
                    accepted = listener.accept() => match accepted {
                        Ok((stream, peer)) => {
                            connections.spawn(
                                Arc::clone(&service).connection(network.clone(), stream, peer),
                            );
                        }
                        Err(e) => {
                            // Out of descriptors and the like: back off
                            // instead of spinning.
                            tracing::warn!(error = %e, "metadata service: accept failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    },
                    Some(_) = connections.join_next(), if !connections.is_empty() => {}
                }
            }
        })
    }

    async fn connection(self: Arc<Self>, network: Arc<str>, stream: TcpStream, peer: SocketAddr) {
        let peer_ip = match peer.ip() {
            IpAddr::V4(ip) => ip,
            IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
                Some(ip) => ip,
                None => return,
            },
        };
        let caller: Caller = (network, peer_ip);
        // A second handle on the socket, so a request handler can set the
        // IP TTL of its response (the PUT response hop limit).
        let control = match stream.as_fd().try_clone_to_owned() {
            Ok(fd) => Arc::new(std::net::TcpStream::from(fd)),
            Err(e) => {
                tracing::warn!(error = %e, "metadata service: dup of a connection failed");
                return;
            }
        };
        let service = hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
            let (service, caller, control) =
                (Arc::clone(&self), caller.clone(), Arc::clone(&control));
            async move { Ok::<_, Infallible>(service.respond(&caller, &request, &control).await) }
        });
        let served = hyper::server::conn::http1::Builder::new()
            // The guest's `imds` helper (printf | nc) shuts down its write
            // side once the request is sent; by default hyper would then
            // drop the connection without answering.
            .half_close(true)
            .timer(TokioTimer::new())
            .header_read_timeout(Duration::from_secs(30))
            .serve_connection(TokioIo::new(stream), service)
            .await;
        if let Err(e) = served {
            tracing::debug!(peer = %peer, error = %e, "metadata connection ended");
        }
    }

    async fn respond<B>(
        &self,
        peer: &Caller,
        request: &Request<B>,
        control: &std::net::TcpStream,
    ) -> Response<Body> {
        let registered = self
            .instances
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(peer)
            .cloned();
        let Some(instance) = registered else {
            return error(StatusCode::NOT_FOUND);
        };
        let options = instance.metadata.options;
        if !options.http_endpoint_enabled {
            return error(StatusCode::FORBIDDEN);
        }
        let path = request.uri().path();
        let headers = request.headers();
        if path == "/latest/api/token" {
            if request.method() != Method::PUT {
                return method_not_allowed("PUT");
            }
            // A proxy on the instance forwarding someone else's request.
            if headers.contains_key("x-forwarded-for") {
                return error(StatusCode::FORBIDDEN);
            }
            let ttl = headers
                .get(TOKEN_TTL_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .filter(|ttl| (1..=MAX_TOKEN_TTL_SECONDS).contains(ttl));
            let Some(ttl) = ttl else {
                return error(StatusCode::BAD_REQUEST);
            };
            let token = self.issue_token(peer, &instance.instance_id, ttl);
            let hop_limit = options.http_put_response_hop_limit.clamp(1, 64);
            if let Err(e) = control.set_ttl(u32::from(hop_limit)) {
                tracing::warn!(error = %e, "metadata service: setting the hop limit failed");
                return error(StatusCode::INTERNAL_SERVER_ERROR);
            }
            let mut response = text(token.into_bytes(), "text/plain");
            response
                .headers_mut()
                .insert(TOKEN_TTL_HEADER, HeaderValue::from(ttl));
            return response;
        }
        if request.method() == Method::PUT {
            return method_not_allowed("GET, HEAD");
        }
        if request.method() != Method::GET && request.method() != Method::HEAD {
            return method_not_allowed("GET, HEAD, PUT");
        }
        let remaining = match headers.get(TOKEN_HEADER) {
            Some(token) => {
                match token
                    .to_str()
                    .ok()
                    .and_then(|t| self.check_token(peer, &instance.instance_id, t))
                {
                    Some(remaining) => Some(remaining),
                    None => return error(StatusCode::UNAUTHORIZED),
                }
            }
            None if options.http_tokens == HttpTokens::Required => {
                return error(StatusCode::UNAUTHORIZED);
            }
            None => None,
        };
        let credentials = match credentials_requested(&instance, path) {
            false => None,
            true => match self.credentials_for(&instance).await {
                Some(c) => Some(c),
                None => return error(StatusCode::NOT_FOUND),
            },
        };
        let api = self
            .relay
            .upstream()
            .map(|_| format!("http://{METADATA_ADDR}:{INSTANCE_API_PORT}"));
        let live = Live {
            credentials: credentials.as_ref(),
            api_endpoint: api.as_deref(),
        };
        let mut response = match lookup(&instance, path, &live) {
            Some(Node::Dir(children)) => text(listing(&children).into_bytes(), "text/plain"),
            Some(Node::Text(body)) => text(body.into_bytes(), "text/plain"),
            Some(Node::Bytes(body)) => text(body, "application/octet-stream"),
            None => error(StatusCode::NOT_FOUND),
        };
        if let Some(remaining) = remaining {
            response
                .headers_mut()
                .insert(TOKEN_TTL_HEADER, HeaderValue::from(remaining));
        }
        response
    }

    /// The instance's role credentials, if it can have any now.
    async fn credentials_for(&self, instance: &Registered) -> Option<InstanceCredentials> {
        let cache = self.credentials.get()?;
        let now = i64::try_from(
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
        )
        .unwrap_or(i64::MAX);
        match cache.get(&instance.instance_id, now).await {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::info!(instance = %instance.instance_id, error = %e, "no role credentials to serve");
                None
            }
        }
    }

    fn issue_token(&self, caller: &Caller, instance_id: &str, ttl: u64) -> String {
        let mut raw = [0u8; 42];
        rand::thread_rng().fill_bytes(&mut raw);
        let token = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw);
        let now = Instant::now();
        let mut tokens = self.lock_tokens();
        let mine = tokens.entry(caller.clone()).or_default();
        if mine.len() >= MAX_TOKENS_PER_INSTANCE {
            mine.retain(|_, t| t.expires > now);
        }
        while mine.len() >= MAX_TOKENS_PER_INSTANCE {
            let Some(oldest) = mine
                .iter()
                .min_by_key(|(_, t)| t.expires)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            mine.remove(&oldest);
        }
        mine.insert(
            token.clone(),
            Token {
                instance_id: instance_id.to_owned(),
                expires: now + Duration::from_secs(ttl),
            },
        );
        token
    }

    /// Seconds left on `token` if it was issued to `caller` for
    /// `instance_id` and has not expired.
    fn check_token(&self, caller: &Caller, instance_id: &str, token: &str) -> Option<u64> {
        let now = Instant::now();
        let mut tokens = self.lock_tokens();
        let mine = tokens.get_mut(caller)?;
        let entry = mine.get(token)?;
        if entry.expires <= now {
            mine.remove(token);
            return None;
        }
        if entry.instance_id != instance_id {
            return None;
        }
        Some(entry.expires.duration_since(now).as_secs().max(1))
    }

    fn lock_tokens(&self) -> std::sync::MutexGuard<'_, HashMap<Caller, HashMap<String, Token>>> {
        self.tokens.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Binds a non-blocking TCP listener on `addr` inside network namespace
/// `netns`. A short-lived thread enters the namespace, binds and exits, so
/// no thread of the runtime ever changes namespace; the socket stays in the
/// namespace it was made in.
pub async fn bind_in_netns(
    netns: &str,
    addr: SocketAddrV4,
) -> Result<std::net::TcpListener, MetadataError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let name = netns.to_owned();
    let spawned = std::thread::Builder::new()
        .name("netns-bind".to_owned())
        .spawn(move || {
            let result = (|| {
                let ns =
                    std::fs::File::open(Path::new("/run/netns").join(&name)).map_err(|source| {
                        MetadataError::OpenNetns {
                            netns: name.clone(),
                            source,
                        }
                    })?;
                setns(ns.as_fd(), CloneFlags::CLONE_NEWNET).map_err(|source| {
                    MetadataError::EnterNetns {
                        netns: name.clone(),
                        source,
                    }
                })?;
                let bind = |source| MetadataError::Bind {
                    netns: name.clone(),
                    addr,
                    source,
                };
                let listener = std::net::TcpListener::bind(addr).map_err(bind)?;
                listener.set_nonblocking(true).map_err(bind)?;
                Ok(listener)
            })();
            let _ = tx.send(result);
        });
    if spawned.is_err() {
        return Err(MetadataError::BindThread {
            netns: netns.to_owned(),
        });
    }
    rx.await.map_err(|_| MetadataError::BindThread {
        netns: netns.to_owned(),
    })?
}

fn text(body: Vec<u8>, content_type: &'static str) -> Response<Body> {
    let mut response = Response::new(Body::from(body));
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::SERVER, HeaderValue::from_static("EC2ws"));
    response
}

fn method_not_allowed(allow: &'static str) -> Response<Body> {
    let mut response = error(StatusCode::METHOD_NOT_ALLOWED);
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    response
}

/// EC2's error page: a small XHTML document naming the status.
fn error(status: StatusCode) -> Response<Body> {
    let title = format!(
        "{} - {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"iso-8859-1\"?>\n\
         <!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Transitional//EN\"\n\
         \t\t \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd\">\n\
         <html xmlns=\"http://www.w3.org/1999/xhtml\" xml:lang=\"en\" lang=\"en\">\n \
         <head>\n  <title>{title}</title>\n </head>\n \
         <body>\n  <h1>{title}</h1>\n </body>\n</html>\n"
    );
    let mut response = text(body.into_bytes(), "text/html");
    *response.status_mut() = status;
    response
}
