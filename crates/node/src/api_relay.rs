//! The relay that lets instances reach the cloud's API endpoint at
//! `169.254.169.254:8773` from every VPC, whatever its routes, internet
//! gateway or public address: a TCP relay in each VPC namespace to the
//! address the controller gave at registration. Only registered instances
//! are relayed; the API authenticates and authorises every request itself.
//!
//! A client that shuts down its write side after the request (busybox `nc`)
//! still gets its answer: that half-close is not passed on, because the
//! API's HTTP server would take it as the end of the connection. The
//! connection ends when the API closes its side, or after
//! [`IDLE_TIMEOUT`] without bytes in one direction.

use std::net::Ipv4Addr;
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use mallee_node_api::ApiAddress;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// A connection with nothing to read for this long in either direction
/// is closed.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Relayed connections open at once per network; one guest opening
/// connections in a loop cannot exhaust the node's descriptors.
const MAX_CONNECTIONS_PER_NETWORK: usize = 512;

/// How long connecting to the API may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Where the relay sends instances' connections; empty until the
/// controller has said where its API is.
#[derive(Debug, Default)]
pub struct ApiRelay {
    upstream: RwLock<Option<(String, u16)>>,
}

impl ApiRelay {
    /// A relay with no upstream yet.
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Takes the API address the controller gave; a missing host means
    /// the host of `controller_url` (the controller's node listener).
    pub fn set_upstream(&self, api: &ApiAddress, controller_url: &str) {
        let host = api.host.clone().or_else(|| {
            let url = reqwest::Url::parse(controller_url).ok()?;
            // An IPv6 host comes bracketed; connecting wants it bare.
            let host = url.host_str()?;
            Some(
                host.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            )
        });
        let Some(host) = host else {
            tracing::warn!(controller = %controller_url, "no host for the API relay");
            return;
        };
        let mut upstream = self
            .upstream
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        if upstream.as_ref() != Some(&(host.clone(), api.port)) {
            tracing::info!(%host, port = api.port, "instances reach the API through this node");
            *upstream = Some((host, api.port));
        }
    }

    /// Where connections go now, if known.
    pub fn upstream(&self) -> Option<(String, u16)> {
        self.upstream
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Relays connections accepted on `listener` whose source address
    /// `admit` accepts (a registered instance), until the future is
    /// dropped, which also ends the open connections.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        admit: impl Fn(Ipv4Addr) -> bool + Send + 'static,
    ) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS_PER_NETWORK));
        let mut connections = JoinSet::new();
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, peer)) => {
                        let known = match peer.ip() {
                            std::net::IpAddr::V4(ip) => admit(ip),
                            std::net::IpAddr::V6(ip) => ip.to_ipv4_mapped().is_some_and(&admit),
                        };
                        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
                            continue;
                        };
                        match (known, self.upstream()) {
                            (true, Some(upstream)) => {
                                connections.spawn(async move {
                                    relay(stream, &upstream).await;
                                    drop(slot);
                                });
                            }
                            _ => drop(stream),
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "API relay: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                Some(_) = connections.join_next(), if !connections.is_empty() => {}
            }
        }
    }
}

async fn relay(client: TcpStream, (host, port): &(String, u16)) {
    let connect = TcpStream::connect((host.as_str(), *port));
    let upstream = match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::warn!(%host, port, error = %e, "API relay: cannot reach the API");
            return;
        }
        Err(_) => {
            tracing::warn!(%host, port, "API relay: connecting to the API timed out");
            return;
        }
    };
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut upstream_read, mut upstream_write) = upstream.into_split();
    let requests = async {
        // On the client's EOF, keep waiting: see the module comment.
        if copy_until_idle(&mut client_read, &mut upstream_write).await {
            std::future::pending::<()>().await;
        }
    };
    let answers = async {
        copy_until_idle(&mut upstream_read, &mut client_write).await;
        let _ = client_write.shutdown().await;
    };
    tokio::select! {
        () = requests => {}
        () = answers => {}
    }
}

/// Copies until EOF (true) or an error or idle timeout (false).
async fn copy_until_idle(
    from: &mut (impl AsyncRead + Unpin),
    to: &mut (impl AsyncWrite + Unpin),
) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match tokio::time::timeout(IDLE_TIMEOUT, from.read(&mut buf)).await {
            Ok(Ok(0)) => return true,
            Ok(Ok(n)) => n,
            Ok(Err(_)) | Err(_) => return false,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn echo_http_server() -> (u16, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("test setup");
        let port = listener.local_addr().expect("test setup").port();
        let task = tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.expect("test setup");
                tokio::spawn(async move {
                    let mut got = Vec::new();
                    let mut buf = [0u8; 1024];
                    while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                        match s.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => got.extend_from_slice(&buf[..n]),
                        }
                    }
                    let line = String::from_utf8_lossy(&got)
                        .lines()
                        .next()
                        .expect("test setup")
                        .to_owned();
                    let body = format!("saw {line}");
                    let answer = format!(
                        "HTTP/1.0 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = s.write_all(answer.as_bytes()).await;
                });
            }
        });
        (port, task)
    }

    async fn relay_on(relay: &Arc<ApiRelay>, admit: bool) -> (u16, tokio::task::JoinHandle<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("test setup");
        let port = listener.local_addr().expect("test setup").port();
        let task = tokio::spawn(Arc::clone(relay).serve(listener, move |_| admit));
        (port, task)
    }

    async fn ask(port: u16, half_close: bool) -> String {
        let mut s = TcpStream::connect(("127.0.0.1", port))
            .await
            .expect("test setup");
        s.write_all(b"GET /x HTTP/1.0\r\nHost: a\r\n\r\n")
            .await
            .expect("test setup");
        if half_close {
            s.shutdown().await.expect("test setup");
        }
        let mut out = String::new();
        let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_string(&mut out)).await;
        out
    }

    #[tokio::test]
    async fn relays_to_the_upstream_and_survives_a_half_close() {
        let (api, _server) = echo_http_server().await;
        let relay = ApiRelay::new();
        let (port, _task) = relay_on(&relay, true).await;
        assert_eq!(
            ask(port, false).await,
            "",
            "no upstream yet: nothing relayed"
        );
        relay.set_upstream(
            &ApiAddress {
                host: None,
                port: api,
            },
            "https://127.0.0.1:8774",
        );
        assert_eq!(relay.upstream(), Some(("127.0.0.1".into(), api)));
        for half_close in [false, true] {
            let out = ask(port, half_close).await;
            assert!(out.ends_with("saw GET /x HTTP/1.0"), "{out:?}");
        }
    }

    #[tokio::test]
    async fn refuses_callers_that_are_not_instances() {
        let (api, _server) = echo_http_server().await;
        let relay = ApiRelay::new();
        relay.set_upstream(
            &ApiAddress {
                host: Some("127.0.0.1".into()),
                port: api,
            },
            "https://192.0.2.1:8774",
        );
        let (port, _task) = relay_on(&relay, false).await;
        assert_eq!(ask(port, true).await, "");
    }

    #[test]
    fn an_ipv6_controller_url_gives_a_bare_address() {
        let relay = ApiRelay::new();
        relay.set_upstream(
            &ApiAddress {
                host: None,
                port: 8773,
            },
            "https://[::1]:8774",
        );
        assert_eq!(relay.upstream(), Some(("::1".into(), 8773)));
    }
}
