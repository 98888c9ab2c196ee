//! The controller's node listener through the network, as nodes use it:
//! mutual TLS on a loopback port, enrolment with one-time tokens, and the
//! routes enrolled nodes call. Who is refused, and where: bad tokens by
//! the enrolment route (recording nothing), foreign and revoked
//! certificates by the TLS handshake, certificate-less clients and
//! missing versions by the routes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use mallee_api::server;
use mallee_cloud::Config;
use mallee_cloud::enrolment::{DEFAULT_TOKEN_TTL, create_token};
use mallee_node_api::enrol::{EnrolError, EnrolRequest, enrol};
use mallee_node_api::tls::{HttpsClient, https_client};
use mallee_node_api::version::{ApiVersion, VERSION_HEADER};
use mallee_node_api::{Capacity, NodeInfo, NodeRegistration, REGISTER_PATH};
use mallee_pki::tls::NodeTls;
use mallee_pki::{ControllerPki, Credentials, EnrolmentToken, KeyRequest, PeerName, Validity};

const ZONE: &str = "mallee-1a";

struct Controller {
    url: String,
    cloud: Arc<mallee_cloud::Cloud>,
    _dir: tempfile::TempDir,
}

async fn start() -> Controller {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::new("127.0.0.1:0".parse().expect("addr"), dir.path().to_owned());
    let prepared = server::prepare(config).await.expect("prepare");
    let url = prepared.node_url();
    let cloud = prepared.cloud.clone();
    tokio::spawn(prepared.serve(std::future::pending()));
    Controller {
        url,
        cloud,
        _dir: dir,
    }
}

impl Controller {
    /// How many nodes the controller knows.
    async fn nodes(&self) -> usize {
        self.cloud.store.nodes().await.expect("nodes").len()
    }

    async fn token(&self) -> EnrolmentToken {
        let ca = self.cloud.compute.nodes.pki().ca().fingerprint();
        create_token(
            self.cloud.store.as_ref(),
            ca,
            &self.cloud.config.zones,
            ZONE,
            DEFAULT_TOKEN_TTL,
        )
        .await
        .expect("token")
        .token
    }

    /// Enrols node `node_id` with `token` as `mallee node join` does.
    async fn join(&self, token: &EnrolmentToken, node_id: &str) -> Result<Credentials, EnrolError> {
        let key = KeyRequest::new(PeerName::node(node_id).expect("id")).expect("key");
        let request = EnrolRequest {
            token: token.to_string(),
            node_id: node_id.into(),
            zone: Some(ZONE.into()),
            csr_pem: key.csr_pem().to_owned(),
            version: env!("CARGO_PKG_VERSION").into(),
        };
        let answer = enrol(&self.url, token, &request).await?;
        Ok(key
            .complete(&answer.ca_pem, &answer.certificate_pem)
            .expect("certificate fits"))
    }
}

fn registration(node_id: &str) -> NodeRegistration {
    NodeRegistration {
        info: NodeInfo {
            node_id: node_id.into(),
            zone: ZONE.into(),
            hostname: "h".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            accel: "tcg".into(),
            underlay_ip: None,
            role: mallee_node_api::NodeRole::Compute,
        },
        url: "https://127.0.0.1:9".into(),
        capacity: Capacity::default(),
    }
}

/// Posts `node_id`'s registration over `client`: the status and body, or
/// the transport error (a refused handshake).
async fn register(
    client: &HttpsClient,
    url: &str,
    node_id: &str,
    with_version: bool,
) -> Result<(u16, String), String> {
    let mut request = http::Request::builder()
        .method("POST")
        .uri(format!("{url}{REGISTER_PATH}"))
        .header("content-type", "application/json");
    if with_version {
        request = request.header(VERSION_HEADER, ApiVersion::current().to_string());
    }
    let body = serde_json::to_vec(&registration(node_id)).expect("json");
    let request = request.body(Full::new(Bytes::from(body))).expect("request");
    let response = client
        .request(request)
        .await
        .map_err(|e| mallee_node_api::tls::error_chain(&e))?;
    let status = response.status().as_u16();
    let body = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

fn client_of(credentials: &Credentials) -> HttpsClient {
    https_client(NodeTls::new(credentials).expect("tls").client)
}

#[tokio::test]
async fn a_node_enrols_once_then_registers_with_its_certificate() {
    let controller = start().await;
    let token = controller.token().await;
    let node = controller.join(&token, "nd-1").await.expect("join");
    let (status, body) = register(&client_of(&node), &controller.url, "nd-1", true)
        .await
        .expect("register");
    assert_eq!(status, 200, "{body}");
    let nodes = controller.cloud.store.nodes().await.expect("nodes");
    assert_eq!(
        nodes.iter().map(|n| n.node_id.as_str()).collect::<Vec<_>>(),
        ["nd-1"]
    );
    // Not as another node.
    let (status, body) = register(&client_of(&node), &controller.url, "nd-2", true)
        .await
        .expect("register");
    assert_eq!(status, 403, "{body}");
    // The token is spent: a second node is refused and nothing recorded.
    let err = controller
        .join(&token, "nd-2")
        .await
        .expect_err("reused token");
    assert!(
        matches!(&err, EnrolError::Refused { status: 403, message } if message.contains("used")),
        "{err}"
    );
    assert!(
        controller
            .cloud
            .store
            .node_certificates("nd-2")
            .await
            .expect("list")
            .is_empty()
    );
}

#[tokio::test]
async fn expired_and_unknown_tokens_record_nothing() {
    let controller = start().await;
    let ca = controller.cloud.compute.nodes.pki().ca().fingerprint();
    let expired = create_token(
        controller.cloud.store.as_ref(),
        ca,
        &controller.cloud.config.zones,
        ZONE,
        Duration::ZERO,
    )
    .await
    .expect("token")
    .token;
    let unknown = EnrolmentToken::generate(ca);
    for (what, token) in [("expired", expired), ("unknown", unknown)] {
        let err = controller.join(&token, "nd-1").await.expect_err(what);
        assert!(
            matches!(err, EnrolError::Refused { status: 403, .. }),
            "{what}: {err}"
        );
    }
    assert!(
        controller
            .cloud
            .store
            .node_certificates("nd-1")
            .await
            .expect("list")
            .is_empty()
    );
    // A token naming another CA finds no controller it trusts.
    let foreign = EnrolmentToken::generate(mallee_pki::Fingerprint::of(b"another CA"));
    let err = controller
        .join(&foreign, "nd-1")
        .await
        .expect_err("foreign");
    assert!(matches!(err, EnrolError::Transport { .. }), "{err}");
}

#[tokio::test]
async fn a_self_made_certificate_is_refused_at_the_handshake() {
    let controller = start().await;
    // A whole PKI of its own, naming a real node id.
    let other = ControllerPki::in_memory().expect("pki");
    let forged = other
        .ca()
        .issue(&PeerName::node("nd-1").expect("id"), Validity::peer())
        .expect("issue");
    // It trusts its own CA, so only the controller's refusal stops it.
    let config = mallee_pki::tls::client_config(
        &forged,
        &controller.cloud.compute.nodes.pki().credentials().trust(),
        &PeerName::Controller,
    )
    .expect("config");
    let err = register(&https_client(config), &controller.url, "nd-1", true)
        .await
        .expect_err("forged certificate got in");
    // The handshake ends with an alert (the signature does not verify
    // against the cluster CA).
    assert!(err.contains("fatal alert"), "{err}");
    assert_eq!(controller.nodes().await, 0);
}

#[tokio::test]
async fn a_removed_node_is_refused_at_the_handshake_and_on_open_connections() {
    let controller = start().await;
    let token = controller.token().await;
    let node = controller.join(&token, "nd-1").await.expect("join");
    let open = client_of(&node);
    let (status, _) = register(&open, &controller.url, "nd-1", true)
        .await
        .expect("register");
    assert_eq!(status, 200);
    mallee_cloud::node_removal::remove(controller.cloud.store.as_ref(), "nd-1", false)
        .await
        .expect("remove");
    // The running controller reads the revocation from the store.
    let revoked = &node.info().serial;
    for _ in 0..50 {
        if controller
            .cloud
            .compute
            .nodes
            .pki()
            .revocations()
            .is_revoked(revoked)
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A new connection fails its handshake.
    let err = register(&client_of(&node), &controller.url, "nd-1", true)
        .await
        .expect_err("revoked node got in");
    assert!(err.contains("alert: CertificateRevoked"), "{err}");
    // A connection opened before the removal is refused per request and
    // closed, so the next call needs a handshake, which fails.
    let (status, body) = register(&open, &controller.url, "nd-1", true)
        .await
        .expect("answered");
    assert_eq!(status, 403, "{body}");
    let err = register(&open, &controller.url, "nd-1", true)
        .await
        .expect_err("the old connection stayed open");
    assert!(err.contains("alert: CertificateRevoked"), "{err}");
    assert_eq!(controller.nodes().await, 0);
}

#[tokio::test]
async fn without_a_certificate_or_a_version_nothing_but_enrolment_answers() {
    let controller = start().await;
    let token = controller.token().await;
    let anonymous =
        https_client(mallee_pki::tls::enrolment_client_config(token.ca()).expect("config"));
    let (status, body) = register(&anonymous, &controller.url, "nd-1", true)
        .await
        .expect("answered");
    assert_eq!(status, 401, "{body}");
    let node = controller.join(&token, "nd-1").await.expect("join");
    let (status, body) = register(&client_of(&node), &controller.url, "nd-1", false)
        .await
        .expect("answered");
    assert_eq!(status, 412, "{body}");
    // Plain HTTP is not spoken at all.
    let plain = controller.url.replacen("https://", "http://", 1);
    assert!(
        reqwest_free_plain_get(&plain).await.is_none(),
        "the node listener answered plain HTTP"
    );
}

/// A plain-HTTP GET of `url`'s enrolment path; `Some(status line)` if
/// an HTTP answer came back.
async fn reqwest_free_plain_get(url: &str) -> Option<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = url.trim_start_matches("http://").to_owned();
    let mut stream = tokio::net::TcpStream::connect(&host)
        .await
        .expect("connect");
    let _ = stream
        .write_all(format!("GET /_mallee/node/enrol HTTP/1.1\r\nhost: {host}\r\n\r\n").as_bytes())
        .await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    text.starts_with("HTTP/").then_some(text)
}

#[tokio::test]
async fn a_node_pushes_state_for_itself_only() {
    use mallee_node_api::push::{HttpStateSink, StateSink};
    let controller = start().await;
    let token = controller.token().await;
    let node = controller.join(&token, "nd-1").await.expect("join");
    let sink = HttpStateSink::new(&controller.url, NodeTls::new(&node).expect("tls").client);
    let report = |node_id: &str| mallee_node_api::StateReport {
        node_id: node_id.into(),
        generation: 1,
        instances: vec![mallee_node_api::ObservedInstance {
            instance_id: "i-0123456789abcdef0".into(),
            state: mallee_node_api::VmState::Running,
            generation: 1,
        }],
    };
    // Its own report goes through (nothing to record: no such instance).
    let accepted = sink.push(report("nd-1")).await.expect("push");
    assert_eq!(accepted.applied, 0);
    // Another node's is refused.
    let refused = sink.push(report("nd-2")).await.expect_err("another node");
    assert!(refused.to_string().contains("403"), "{refused}");
}
