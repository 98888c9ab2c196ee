//! The front door through its public API: a controller on a loopback port,
//! requests signed with the `aws-sigv4` signer. Every EC2 action must refuse
//! unauthenticated and wrongly signed calls, and one account never sees or
//! changes another's resources.

use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
use aws_sigv4::sign::v4;
use mallee_api::ec2::Ec2Action;
use mallee_api::server;
use mallee_cloud::{Config, accounts as admin};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Controller {
    addr: std::net::SocketAddr,
    cloud: std::sync::Arc<mallee_cloud::Cloud>,
    admin: (String, String),
    _dir: tempfile::TempDir,
}

async fn start() -> Controller {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::new("127.0.0.1:0".parse().expect("addr"), dir.path().to_owned());
    let prepared = server::prepare(config).await.expect("prepare");
    let addr = prepared.local_addr().expect("addr");
    let cloud = prepared.cloud.clone();
    let c = &prepared.bootstrapped.credentials;
    let admin = (c.access_key_id.clone(), c.secret_access_key.clone());
    tokio::spawn(prepared.serve(std::future::pending()));
    Controller {
        addr,
        cloud,
        admin,
        _dir: dir,
    }
}

struct Reply {
    status: u16,
    body: String,
}

impl Reply {
    fn code(&self) -> Option<&str> {
        let start = self.body.find("<Code>")? + 6;
        let end = self.body[start..].find("</Code>")? + start;
        Some(&self.body[start..end])
    }
}

/// Sends a form POST, signed when `key` is given.
async fn post(addr: std::net::SocketAddr, key: Option<(&str, &str)>, body: &str) -> Reply {
    let host = addr.to_string();
    let url = format!("http://{host}/");
    let mut headers = vec![
        ("host".to_string(), host.clone()),
        (
            "content-type".to_string(),
            "application/x-www-form-urlencoded; charset=utf-8".to_string(),
        ),
    ];
    if let Some((access, secret)) = key {
        let creds = Credentials::new(access, secret, None, None, "test");
        let identity = creds.into();
        let params = v4::SigningParams::builder()
            .identity(&identity)
            .region("mallee-1")
            .name("ec2")
            .time(SystemTime::now())
            .settings(SigningSettings::default())
            .build()
            .expect("params")
            .into();
        let signable = SignableRequest::new(
            "POST",
            &url,
            headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            SignableBody::Bytes(body.as_bytes()),
        )
        .expect("signable");
        let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
        for (name, value) in instructions.headers() {
            headers.push((name.to_string(), value.to_string()));
        }
    }
    let mut request = format!(
        "POST / HTTP/1.1\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in &headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    assert!(
        text.to_ascii_lowercase().contains("x-amzn-requestid:"),
        "response without a request id header: {text}"
    );
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Reply { status, body }
}

#[tokio::test]
async fn every_action_requires_a_valid_signature() {
    let c = start().await;
    let (access, secret) = (&c.admin.0, &c.admin.1);
    for action in Ec2Action::NAMES {
        let body = format!("Action={action}&Version=2016-11-15");
        let anonymous = post(c.addr, None, &body).await;
        assert_eq!(
            (anonymous.status, anonymous.code()),
            (400, Some("MissingParameter")),
            "{action} unsigned"
        );
        let unknown = post(c.addr, Some(("AKIAUNKNOWNUNKNOWN00", secret)), &body).await;
        assert_eq!(
            (unknown.status, unknown.code()),
            (401, Some("AuthFailure")),
            "{action} unknown key"
        );
        let wrong = post(c.addr, Some((access, "not-the-secret")), &body).await;
        assert_eq!(
            (wrong.status, wrong.code()),
            (403, Some("SignatureDoesNotMatch")),
            "{action} wrong secret"
        );
    }
}

#[tokio::test]
async fn accounts_are_isolated() {
    let c = start().await;
    let a = (c.admin.0.as_str(), c.admin.1.as_str());
    admin::create_account(c.cloud.store.as_ref(), "tenant-b", false)
        .await
        .expect("account");
    let (key_b, _) = admin::create_access_key(c.cloud.store.as_ref(), "tenant-b")
        .await
        .expect("key");
    let b = (
        key_b.access_key_id.as_str(),
        key_b.secret_access_key.as_str(),
    );

    let created = post(
        c.addr,
        Some(a),
        "Action=CreateKeyPair&KeyName=shared&KeyType=ed25519",
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let id_start = created.body.find("<keyPairId>").expect("id") + 11;
    let key_id = &created.body[id_start..id_start + 21];

    // B sees none of A's key pairs or tags, and cannot tag or delete them.
    let listed = post(c.addr, Some(b), "Action=DescribeKeyPairs").await;
    assert_eq!(listed.status, 200);
    assert!(!listed.body.contains("shared"), "{}", listed.body);
    let tag = post(
        c.addr,
        Some(b),
        &format!("Action=CreateTags&ResourceId.1={key_id}&Tag.1.Key=x&Tag.1.Value=y"),
    )
    .await;
    assert_eq!(
        (tag.status, tag.code()),
        (400, Some("InvalidKeyPair.NotFound")),
        "{}",
        tag.body
    );
    let delete = post(
        c.addr,
        Some(b),
        &format!("Action=DeleteKeyPair&KeyPairId={key_id}"),
    )
    .await;
    assert_eq!(delete.status, 200);
    let still = post(c.addr, Some(a), "Action=DescribeKeyPairs&KeyName.1=shared").await;
    assert_eq!(
        still.status, 200,
        "A's key pair was deleted by B: {}",
        still.body
    );
    // B may use the same name in its own account.
    let own = post(
        c.addr,
        Some(b),
        "Action=CreateKeyPair&KeyName=shared&KeyType=ed25519",
    )
    .await;
    assert_eq!(own.status, 200, "{}", own.body);
    // Only administrators get the verbose capacity table.
    let verbose_b = post(
        c.addr,
        Some(b),
        "Action=DescribeAvailabilityZones&ZoneName.1=verbose",
    )
    .await;
    assert!(
        !verbose_b.body.contains("|- vm types"),
        "{}",
        verbose_b.body
    );
    let verbose_a = post(
        c.addr,
        Some(a),
        "Action=DescribeAvailabilityZones&ZoneName.1=verbose",
    )
    .await;
    assert!(verbose_a.body.contains("|- vm types"), "{}", verbose_a.body);
}

#[tokio::test]
async fn oversized_bodies_are_refused_before_reading() {
    let c = start().await;
    let mut stream = tokio::net::TcpStream::connect(c.addr)
        .await
        .expect("connect");
    // Announce 64 MiB, send a few bytes: the answer must come without the rest.
    let request = "POST / HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: 67108864\r\n\r\nAction=Describe";
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), stream.read(&mut buf))
        .await
        .expect("server waited for the whole body")
        .expect("read");
    let head = String::from_utf8_lossy(&buf[..n]);
    assert!(head.starts_with("HTTP/1.1 413"), "{head}");
}
