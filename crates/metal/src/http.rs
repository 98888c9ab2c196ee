//! The provisioning HTTP server, bound on the provisioning network's
//! address (inside its namespace when it has one):
//!
//! | request | what |
//! |---|---|
//! | `GET /ipxe/chain` | dnsmasq's boot file for iPXE: chains to the per-MAC script |
//! | `GET /ipxe/{mac}` | per-MAC script: the deploy agent while netboot is on, `exit` otherwise |
//! | `GET /deploy/{token}/kernel`, `/initrd` | the deploy agent |
//! | `GET /deploy/{token}/manifest` | `SIZE SHA256` of the profile image |
//! | `GET /deploy/{token}/image` | the profile image (streamed) |
//! | `POST /deploy/{token}/report` | `event=started\|progress\|written\|failed` (+ `bytes`, `sha256`, `reason`) |
//! | `GET /deploy/{token}/distro/kernel`, `/distro/initrd` | an installer profile's distro |
//! | `GET /answer/{token}` | an installer profile's answer file, rendered for the system |
//! | `POST /deploy/{token}/report` | also `event=installed`: the installer is done |
//! | `POST /deploy/{token}/report` | also `event=wiped`: the agent in wipe mode zeroed the disk |
//! | `POST /checkin/{token}` | the installed system is up (`key=value` facts in the body are kept) |
//!
//! Bodies are `application/x-www-form-urlencoded`, what busybox `wget
//! --post-data` sends.

use std::net::{SocketAddr, SocketAddrV4};
use std::os::fd::AsFd;
use std::path::Path;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::engine::{AgentReport, ByteStream, Engine, EngineError};
use crate::model::Mac;
use crate::netboot::{self, NetbootError, ProvisioningNetwork};

/// Binds the server's listener on the provisioning address, in the
/// network's namespace if it has one (a short-lived thread enters the
/// namespace and binds; the socket stays in that namespace).
pub async fn bind(net: &ProvisioningNetwork) -> Result<tokio::net::TcpListener, NetbootError> {
    let addr = SocketAddrV4::new(net.address, net.http_port);
    let netns = net.netns.clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("metal-bind".into())
        .spawn(move || {
            let r = (|| -> std::io::Result<std::net::TcpListener> {
                if let Some(ns) = &netns {
                    let f = std::fs::File::open(Path::new("/run/netns").join(ns))?;
                    nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET)
                        .map_err(std::io::Error::from)?;
                }
                let l = std::net::TcpListener::bind(addr)?;
                l.set_nonblocking(true)?;
                Ok(l)
            })();
            let _ = tx.send(r);
        });
    let fail = |e: std::io::Error| NetbootError::Io {
        context: format!(
            "bind the provisioning HTTP server on {addr}{}",
            net.netns
                .as_deref()
                .map(|n| format!(" in netns {n}"))
                .unwrap_or_default()
        ),
        source: e,
    };
    spawned.map_err(fail)?;
    let std_listener = rx
        .await
        .map_err(|_| fail(std::io::Error::other("bind thread died")))?
        .map_err(fail)?;
    tokio::net::TcpListener::from_std(std_listener).map_err(fail)
}

/// Serves the provisioning API on `listener` until the task is aborted.
pub fn serve(listener: tokio::net::TcpListener, engine: Engine) -> tokio::task::JoinHandle<()> {
    let app = Router::new()
        .route("/ipxe/chain", get(chain))
        .route("/ipxe/{mac}", get(ipxe))
        .route("/deploy/{token}/kernel", get(kernel))
        .route("/deploy/{token}/initrd", get(initrd))
        .route("/deploy/{token}/manifest", get(manifest))
        .route("/deploy/{token}/image", get(image))
        .route("/deploy/{token}/report", post(report))
        .route("/deploy/{token}/distro/kernel", get(distro_kernel))
        .route("/deploy/{token}/distro/initrd", get(distro_initrd))
        .route("/answer/{token}", get(answer))
        .route("/checkin/{token}", post(checkin))
        .with_state(engine);
    tokio::spawn(async move {
        let app = app.into_make_service_with_connect_info::<SocketAddr>();
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "provisioning HTTP server stopped");
        }
    })
}

fn error(e: &EngineError) -> Response {
    let status = match e {
        EngineError::NotFound(_) => StatusCode::NOT_FOUND,
        EngineError::Rejected(_) => StatusCode::CONFLICT,
        EngineError::Inventory(_) | EngineError::Netboot(_) | EngineError::Io { .. } => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    };
    (status, format!("{e}\n")).into_response()
}

fn text(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/plain")], body).into_response()
}

fn stream(len: u64, s: ByteStream) -> Response {
    (
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(s),
    )
        .into_response()
}

async fn chain(State(engine): State<Engine>) -> Response {
    text(netboot::chain_script(&engine.config().network.base_url()))
}

async fn ipxe(State(engine): State<Engine>, UrlPath(mac): UrlPath<String>) -> Response {
    let Ok(mac) = mac.parse::<Mac>() else {
        return (StatusCode::BAD_REQUEST, "bad MAC\n").into_response();
    };
    match engine.ipxe_script(&mac).await {
        Ok(s) => text(s),
        Err(e) => {
            tracing::info!(%mac, error = %e, "iPXE script refused");
            error(&e)
        }
    }
}

async fn kernel(State(engine): State<Engine>, UrlPath(token): UrlPath<String>) -> Response {
    match engine.agent_file(&token, false).await {
        Ok((len, s)) => stream(len, s),
        Err(e) => error(&e),
    }
}

async fn initrd(State(engine): State<Engine>, UrlPath(token): UrlPath<String>) -> Response {
    match engine.agent_file(&token, true).await {
        Ok((len, s)) => stream(len, s),
        Err(e) => error(&e),
    }
}

async fn distro_kernel(State(engine): State<Engine>, UrlPath(token): UrlPath<String>) -> Response {
    match engine.distro_file(&token, false).await {
        Ok((len, s)) => stream(len, s),
        Err(e) => error(&e),
    }
}

async fn distro_initrd(State(engine): State<Engine>, UrlPath(token): UrlPath<String>) -> Response {
    match engine.distro_file(&token, true).await {
        Ok((len, s)) => stream(len, s),
        Err(e) => error(&e),
    }
}

async fn answer(State(engine): State<Engine>, UrlPath(token): UrlPath<String>) -> Response {
    match engine.answer_file(&token).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], text).into_response(),
        Err(e) => error(&e),
    }
}

async fn manifest(State(engine): State<Engine>, UrlPath(token): UrlPath<String>) -> Response {
    match engine.manifest(&token).await {
        Ok((size, sha)) => text(format!("{size} {sha}\n")),
        Err(e) => error(&e),
    }
}

async fn image(State(engine): State<Engine>, UrlPath(token): UrlPath<String>) -> Response {
    match engine.image(&token).await {
        Ok((len, s)) => stream(len, s),
        Err(e) => error(&e),
    }
}

/// Parses a report body into an [`AgentReport`].
pub fn parse_report(body: &[u8]) -> Result<AgentReport, String> {
    let fields: std::collections::HashMap<String, String> =
        form_urlencoded::parse(body).into_owned().collect();
    let get = |k: &str| fields.get(k).map(String::as_str);
    match get("event") {
        Some("started") => Ok(AgentReport::Started),
        Some("progress") => get("bytes")
            .and_then(|b| b.parse().ok())
            .map(AgentReport::Progress)
            .ok_or_else(|| "progress needs bytes=N".to_owned()),
        Some("written") => match get("sha256") {
            Some(s) if crate::model::check_digest(s).is_ok() => Ok(AgentReport::Written {
                sha256: s.to_owned(),
            }),
            other => Err(format!("written needs sha256=HEX, got {other:?}")),
        },
        Some("installed") => Ok(AgentReport::Installed),
        Some("wiped") => Ok(AgentReport::Wiped),
        Some("failed") => Ok(AgentReport::Failed(
            get("reason")
                .unwrap_or("no reason given")
                .chars()
                .take(500)
                .collect(),
        )),
        other => Err(format!("unknown event {other:?}")),
    }
}

async fn report(
    State(engine): State<Engine>,
    UrlPath(token): UrlPath<String>,
    body: Bytes,
) -> Response {
    let report = match parse_report(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("{e}\n")).into_response(),
    };
    match engine.agent_report(&token, report).await {
        Ok(s) => text(format!("{}\n", s.state.name())),
        Err(e) => error(&e),
    }
}

async fn checkin(
    State(engine): State<Engine>,
    UrlPath(token): UrlPath<String>,
    body: Bytes,
) -> Response {
    let facts: Vec<(String, String)> = form_urlencoded::parse(&body)
        .into_owned()
        .filter(|(k, _)| !k.is_empty())
        .collect();
    match engine.check_in_with(&token, &facts).await {
        Ok(s) => text(format!("{}\n", s.state.name())),
        Err(e) => error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports() {
        assert_eq!(parse_report(b"event=started"), Ok(AgentReport::Started));
        assert_eq!(
            parse_report(b"event=progress&bytes=1048576"),
            Ok(AgentReport::Progress(1_048_576))
        );
        let sha = "a".repeat(64);
        assert_eq!(
            parse_report(format!("event=written&sha256={sha}").as_bytes()),
            Ok(AgentReport::Written { sha256: sha })
        );
        assert!(parse_report(b"event=written&sha256=xyz").is_err());
        assert_eq!(
            parse_report(b"event=failed&reason=no+disk+found"),
            Ok(AgentReport::Failed("no disk found".into()))
        );
        assert_eq!(parse_report(b"event=installed"), Ok(AgentReport::Installed));
        assert_eq!(parse_report(b"event=wiped"), Ok(AgentReport::Wiped));
        assert!(parse_report(b"event=bogus").is_err());
        assert!(parse_report(b"").is_err());
    }
}
