//! The instance metadata service, through real HTTP clients: reqwest on
//! loopback with per-instance source addresses (127.0.0.2, 127.0.0.3), the
//! guest's own `imds` helper, and busybox inside network namespaces joined
//! to a real node network (including the PUT response hop limit against a
//! "container" one routed hop behind an instance).
//!
//! The namespace tests need root, `ip`, `nft`, `dnsmasq` and `busybox`;
//! without them they fail (never skip).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use mallee_node::metadata::MetadataService;
use mallee_node::network::{NodeNetwork, Port, VpcConfig};
use mallee_node_api::{HttpTokens, InstanceMetadata, MetadataOptions, PublicKey};
use tokio::net::TcpListener;

include!("common/netns.rs");

const USER_DATA_A: &[u8] = b"#!/bin/sh\necho A\n\xff\x00binary\n";

fn metadata(n: u8) -> InstanceMetadata {
    InstanceMetadata {
        ami_id: format!("ami-0000000{n}"),
        ami_launch_index: u32::from(n),
        reservation_id: format!("r-0000000{n}"),
        account_id: format!("00000000000{n}"),
        instance_type: "m1.small".to_owned(),
        kernel_id: (n == 1).then(|| "aki-00000001".to_owned()),
        ramdisk_id: (n == 1).then(|| "ari-00000001".to_owned()),
        architecture: "x86_64".to_owned(),
        region: "mallee-1".to_owned(),
        availability_zone: "mallee-1a".to_owned(),
        local_ipv4: format!("172.31.0.{n}"),
        local_hostname: format!("ip-172-31-0-{n}.mallee-1.compute.internal"),
        mac: format!("02:00:00:00:00:0{n}"),
        public_ipv4: (n == 1).then(|| "198.51.100.1".to_owned()),
        public_hostname: None,
        security_groups: vec!["default".to_owned(), format!("web{n}")],
        public_keys: if n == 1 {
            vec![PublicKey {
                name: "key-a".to_owned(),
                openssh_key: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA key-a".to_owned(),
            }]
        } else {
            Vec::new()
        },
        user_data_base64: (n == 1)
            .then(|| base64::engine::general_purpose::STANDARD.encode(USER_DATA_A)),
        launch_time: "2024-01-02T03:04:05Z".to_owned(),
        root_device_name: "/dev/sda1".to_owned(),
        block_device_mapping: vec![
            ("ami".to_owned(), "/dev/sda1".to_owned()),
            ("root".to_owned(), "/dev/sda1".to_owned()),
        ],
        options: MetadataOptions::default(),
        iam: None,
    }
}

const A: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
const B: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
const STRANGER: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 4);

/// A service on 127.0.0.1 with instance A at 127.0.0.2 and B at 127.0.0.3.
async fn loopback_service() -> (
    Arc<MetadataService>,
    SocketAddr,
    tokio::task::JoinHandle<()>,
) {
    let service = MetadataService::new();
    service.register(A, "i-000000000000000aa", metadata(1));
    service.register(B, "i-000000000000000bb", metadata(2));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let task = service.serve(listener).await;
    (service, addr, task)
}

/// An HTTP client whose connections come from `source`.
fn client(source: Ipv4Addr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(IpAddr::V4(source))
        .no_proxy()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client")
}

struct Reply {
    status: u16,
    content_type: String,
    ttl_header: Option<String>,
    body: Vec<u8>,
}

impl Reply {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

async fn request(
    from: Ipv4Addr,
    server: SocketAddr,
    method: reqwest::Method,
    path: &str,
    headers: &[(&str, &str)],
) -> Reply {
    let mut builder = client(from).request(method, format!("http://{server}{path}"));
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let response = builder.send().await.expect("request");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned)
    };
    let content_type = header("content-type").unwrap_or_default();
    let ttl_header = header("x-aws-ec2-metadata-token-ttl-seconds");
    let status = response.status().as_u16();
    let body = response.bytes().await.expect("body").to_vec();
    Reply {
        status,
        content_type,
        ttl_header,
        body,
    }
}

async fn get(from: Ipv4Addr, server: SocketAddr, path: &str) -> Reply {
    request(from, server, reqwest::Method::GET, path, &[]).await
}

async fn token(from: Ipv4Addr, server: SocketAddr, ttl: &str) -> Reply {
    request(
        from,
        server,
        reqwest::Method::PUT,
        "/latest/api/token",
        &[("X-aws-ec2-metadata-token-ttl-seconds", ttl)],
    )
    .await
}

#[tokio::test]
async fn each_instance_is_answered_only_about_itself() {
    let (service, server, task) = loopback_service().await;

    let a = get(A, server, "/latest/meta-data/instance-id").await;
    assert_eq!((a.status, a.text().as_str()), (200, "i-000000000000000aa"));
    let b = get(B, server, "/latest/meta-data/instance-id").await;
    assert_eq!((b.status, b.text().as_str()), (200, "i-000000000000000bb"));
    assert_eq!(
        get(A, server, "/latest/meta-data/local-ipv4").await.text(),
        "172.31.0.1"
    );
    assert_eq!(
        get(B, server, "/latest/meta-data/local-ipv4").await.text(),
        "172.31.0.2"
    );
    assert_eq!(get(A, server, "/latest/user-data").await.body, USER_DATA_A);
    assert_eq!(get(B, server, "/latest/user-data").await.status, 404);

    // An address nobody registered learns nothing.
    for path in ["/latest/meta-data/instance-id", "/latest/user-data", "/"] {
        assert_eq!(get(STRANGER, server, path).await.status, 404, "{path}");
    }
    assert_eq!(token(STRANGER, server, "60").await.status, 404);

    // A's token is worthless from B's address.
    let token_a = token(A, server, "60").await.text();
    let stolen = request(
        B,
        server,
        reqwest::Method::GET,
        "/latest/meta-data/instance-id",
        &[("X-aws-ec2-metadata-token", &token_a)],
    )
    .await;
    assert_eq!(stolen.status, 401);

    // A terminated, its address reused by a new instance C: C sees C, and
    // A's tokens do not carry over.
    service.unregister(A);
    assert_eq!(
        get(A, server, "/latest/meta-data/instance-id").await.status,
        404
    );
    let mut c = metadata(3);
    c.user_data_base64 = Some(base64::engine::general_purpose::STANDARD.encode(b"C data"));
    service.register(A, "i-000000000000000cc", c);
    assert_eq!(
        get(A, server, "/latest/meta-data/instance-id").await.text(),
        "i-000000000000000cc"
    );
    assert_eq!(get(A, server, "/latest/user-data").await.body, b"C data");
    let reused = request(
        A,
        server,
        reqwest::Method::GET,
        "/latest/meta-data/instance-id",
        &[("X-aws-ec2-metadata-token", &token_a)],
    )
    .await;
    assert_eq!(reused.status, 401, "a token outlived its instance");
    task.abort();
}

#[tokio::test]
async fn imdsv2_session_tokens() {
    let (_service, server, task) = loopback_service().await;
    let put = |headers: &'static [(&'static str, &'static str)]| {
        request(
            A,
            server,
            reqwest::Method::PUT,
            "/latest/api/token",
            headers,
        )
    };

    // The TTL header is required and must be 1..=21600.
    assert_eq!(put(&[]).await.status, 400);
    for bad in ["0", "21601", "-1", "abc", ""] {
        assert_eq!(token(A, server, bad).await.status, 400, "ttl {bad:?}");
    }
    // Requests relayed by a proxy are refused.
    let relayed = put(&[
        ("X-aws-ec2-metadata-token-ttl-seconds", "60"),
        ("X-Forwarded-For", "10.0.0.9"),
    ])
    .await;
    assert_eq!(relayed.status, 403);

    let issued = token(A, server, "21600").await;
    assert_eq!(issued.status, 200);
    assert_eq!(issued.ttl_header.as_deref(), Some("21600"));
    assert!(issued.content_type.starts_with("text/plain"));
    let t = issued.text();
    assert!(t.len() >= 40, "{t}");
    assert_ne!(
        t,
        token(A, server, "21600").await.text(),
        "tokens must differ"
    );

    let with = |token: String| async move {
        request(
            A,
            server,
            reqwest::Method::GET,
            "/latest/meta-data/instance-id",
            &[("X-aws-ec2-metadata-token", &token)],
        )
        .await
    };
    let ok = with(t.clone()).await;
    assert_eq!(
        (ok.status, ok.text().as_str()),
        (200, "i-000000000000000aa")
    );
    let remaining: u64 = ok
        .ttl_header
        .expect("remaining TTL header")
        .parse()
        .expect("number");
    assert!((21590..=21600).contains(&remaining), "{remaining}");
    assert_eq!(with("not-a-token".to_owned()).await.status, 401);
    assert_eq!(with(String::new()).await.status, 401);

    // Tokens expire.
    let short = token(A, server, "1").await.text();
    assert_eq!(with(short.clone()).await.status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(
        with(short).await.status,
        401,
        "an expired token was accepted"
    );

    // The token path only takes PUT; other paths do not take PUT.
    assert_eq!(get(A, server, "/latest/api/token").await.status, 405);
    let put_elsewhere = request(
        A,
        server,
        reqwest::Method::PUT,
        "/latest/meta-data/instance-id",
        &[],
    )
    .await;
    assert_eq!(put_elsewhere.status, 405);
    task.abort();
}

#[tokio::test]
async fn http_tokens_required_and_endpoint_disabled() {
    let (service, server, task) = loopback_service().await;
    let mut required = metadata(1);
    required.options = MetadataOptions {
        http_tokens: HttpTokens::Required,
        http_put_response_hop_limit: 2,
        http_endpoint_enabled: true,
    };
    service.register(A, "i-000000000000000aa", required);
    let v1 = get(A, server, "/latest/meta-data/instance-id").await;
    assert_eq!(v1.status, 401);
    assert!(
        v1.content_type.starts_with("text/html"),
        "{}",
        v1.content_type
    );
    assert!(v1.text().contains("401 - Unauthorized"), "{}", v1.text());
    let t = token(A, server, "60").await.text();
    let v2 = request(
        A,
        server,
        reqwest::Method::GET,
        "/latest/meta-data/instance-id",
        &[("X-aws-ec2-metadata-token", &t)],
    )
    .await;
    assert_eq!(
        (v2.status, v2.text().as_str()),
        (200, "i-000000000000000aa")
    );
    // B (optional) is unaffected.
    assert_eq!(
        get(B, server, "/latest/meta-data/instance-id").await.status,
        200
    );

    let mut disabled = metadata(1);
    disabled.options.http_endpoint_enabled = false;
    service.register(A, "i-000000000000000aa", disabled);
    assert_eq!(
        get(A, server, "/latest/meta-data/instance-id").await.status,
        403
    );
    assert_eq!(token(A, server, "60").await.status, 403);
    task.abort();
}

#[tokio::test]
async fn listings_values_and_documents() {
    let (_service, server, task) = loopback_service().await;
    let text = |path: &'static str, from: Ipv4Addr| async move {
        let reply = get(from, server, path).await;
        assert_eq!(reply.status, 200, "{path}: {}", reply.text());
        assert!(reply.content_type.starts_with("text/plain"), "{path}");
        reply.text()
    };

    let root = text("/", A).await;
    assert!(root.lines().any(|l| l == "latest"), "{root}");
    assert!(root.lines().any(|l| l == "2009-04-04"), "{root}");
    assert_eq!(text("/latest/", A).await, "dynamic\nmeta-data\nuser-data");
    assert_eq!(text("/latest", A).await, "dynamic\nmeta-data\nuser-data");
    assert_eq!(text("/latest/", B).await, "dynamic\nmeta-data");

    let listing = text("/latest/meta-data/", A).await;
    assert_eq!(listing, text("/latest/meta-data", A).await);
    let entries: Vec<&str> = listing.lines().collect();
    for expected in [
        "ami-id",
        "ami-launch-index",
        "ami-manifest-path",
        "block-device-mapping/",
        "hostname",
        "instance-action",
        "instance-id",
        "instance-type",
        "kernel-id",
        "local-hostname",
        "local-ipv4",
        "mac",
        "network/",
        "placement/",
        "public-ipv4",
        "public-keys/",
        "ramdisk-id",
        "reservation-id",
        "security-groups",
        "services/",
    ] {
        assert!(
            entries.contains(&expected),
            "{expected} missing from\n{listing}"
        );
    }
    let mut sorted = entries.clone();
    sorted.sort_unstable();
    assert_eq!(entries, sorted, "listing not in EC2's order");
    // What B does not have is neither listed nor served.
    let listing_b = text("/latest/meta-data/", B).await;
    for absent in [
        "kernel-id",
        "ramdisk-id",
        "public-ipv4",
        "public-hostname",
        "public-keys/",
    ] {
        assert!(
            !listing_b.lines().any(|l| l == absent),
            "{absent} in\n{listing_b}"
        );
    }
    for path in [
        "/latest/meta-data/kernel-id",
        "/latest/meta-data/public-ipv4",
        "/latest/meta-data/public-keys/0/openssh-key",
    ] {
        assert_eq!(get(B, server, path).await.status, 404, "{path}");
    }

    for (path, expected) in [
        ("/latest/meta-data/ami-id", "ami-00000001"),
        ("/latest/meta-data/ami-launch-index", "1"),
        ("/latest/meta-data/instance-type", "m1.small"),
        ("/latest/meta-data/instance-action", "none"),
        ("/latest/meta-data/kernel-id", "aki-00000001"),
        ("/latest/meta-data/ramdisk-id", "ari-00000001"),
        (
            "/latest/meta-data/local-hostname",
            "ip-172-31-0-1.mallee-1.compute.internal",
        ),
        (
            "/latest/meta-data/hostname",
            "ip-172-31-0-1.mallee-1.compute.internal",
        ),
        ("/latest/meta-data/mac", "02:00:00:00:00:01"),
        ("/latest/meta-data/public-ipv4", "198.51.100.1"),
        ("/latest/meta-data/reservation-id", "r-00000001"),
        ("/latest/meta-data/security-groups", "default\nweb1"),
        ("/latest/meta-data/placement/", "availability-zone\nregion"),
        ("/latest/meta-data/placement/availability-zone", "mallee-1a"),
        ("/latest/meta-data/placement/region", "mallee-1"),
        ("/latest/meta-data/block-device-mapping/", "ami\nroot"),
        ("/latest/meta-data/block-device-mapping/root", "/dev/sda1"),
        ("/latest/meta-data/public-keys/", "0=key-a"),
        ("/latest/meta-data/public-keys", "0=key-a"),
        ("/latest/meta-data/public-keys/0/", "openssh-key"),
        (
            "/latest/meta-data/public-keys/0/openssh-key",
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIA key-a",
        ),
        ("/latest/meta-data/services/domain", "amazonaws.com"),
        (
            "/latest/meta-data/network/interfaces/macs/",
            "02:00:00:00:00:01/",
        ),
        (
            "/latest/meta-data/network/interfaces/macs/02:00:00:00:00:01/local-ipv4s",
            "172.31.0.1",
        ),
        (
            "/latest/meta-data/network/interfaces/macs/02:00:00:00:00:01/public-ipv4s",
            "198.51.100.1",
        ),
        (
            "/latest/meta-data/network/interfaces/macs/02:00:00:00:00:01/device-number",
            "0",
        ),
        ("/latest/dynamic/", "instance-identity/"),
        ("/latest/dynamic/instance-identity/", "document"),
        // Dated versions answer like latest.
        ("/2009-04-04/meta-data/instance-id", "i-000000000000000aa"),
    ] {
        let reply = get(A, server, path).await;
        assert_eq!(
            (reply.status, reply.text()),
            (200, expected.to_owned()),
            "{path}"
        );
    }

    let user_data = get(A, server, "/latest/user-data").await;
    assert_eq!(user_data.body, USER_DATA_A);
    assert_eq!(user_data.content_type, "application/octet-stream");

    let document = get(A, server, "/latest/dynamic/instance-identity/document").await;
    assert_eq!(document.status, 200);
    let json: serde_json::Value = serde_json::from_slice(&document.body).expect("JSON");
    assert_eq!(
        json,
        serde_json::json!({
            "accountId": "000000000001",
            "architecture": "x86_64",
            "availabilityZone": "mallee-1a",
            "billingProducts": null,
            "devpayProductCodes": null,
            "marketplaceProductCodes": null,
            "imageId": "ami-00000001",
            "instanceId": "i-000000000000000aa",
            "instanceType": "m1.small",
            "kernelId": "aki-00000001",
            "pendingTime": "2024-01-02T03:04:05Z",
            "privateIp": "172.31.0.1",
            "ramdiskId": "ari-00000001",
            "region": "mallee-1",
            "version": "2017-09-30",
        })
    );
    let json_b: serde_json::Value = serde_json::from_slice(
        &get(B, server, "/latest/dynamic/instance-identity/document")
            .await
            .body,
    )
    .expect("JSON");
    assert_eq!(json_b["instanceId"], "i-000000000000000bb");
    assert_eq!(json_b["kernelId"], serde_json::Value::Null);

    for path in [
        "/latest/meta-data/nothing",
        "/latest/meta-data/instance-id/deeper",
        "/1999-01-01/meta-data/",
        "/latest/meta-data/public-keys/1/",
    ] {
        let reply = get(A, server, path).await;
        assert_eq!(reply.status, 404, "{path}");
        assert!(reply.content_type.starts_with("text/html"), "{path}");
        assert!(
            reply.text().contains("<title>404 - Not Found</title>"),
            "{}",
            reply.text()
        );
    }
    task.abort();
}

/// The test guest's own `imds` helper (HTTP/1.0 PUT over busybox `nc`,
/// busybox `wget` for GETs) against the service. It connects from
/// 127.0.0.1, registered here as the instance.
#[tokio::test]
async fn the_guest_imds_helper_works() {
    require_tools(&["busybox"]);
    let service = MetadataService::new();
    service.register(Ipv4Addr::LOCALHOST, "i-0000000000000guest", metadata(1));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port().to_string();
    let task = service.serve(listener).await;

    // busybox applets only, as in the guest.
    let bin = tempfile::tempdir().expect("tempdir");
    let busybox = which("busybox");
    for applet in [
        "sh", "nc", "wget", "timeout", "awk", "tr", "cat", "date", "stat", "rm", "mv", "printf",
    ] {
        std::os::unix::fs::symlink(&busybox, bin.path().join(applet)).expect("symlink");
    }
    let helper = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../guest/rootfs/usr/bin/imds");
    let imds = |args: &'static [&'static str]| {
        let helper = helper.clone();
        let path = bin.path().to_owned();
        let port = port.clone();
        async move {
            tokio::process::Command::new(path.join("sh"))
                .arg(&helper)
                .args(args)
                .env_clear()
                .env("PATH", &path)
                .env("IMDS_HOST", "127.0.0.1")
                .env("IMDS_PORT", &port)
                .output()
                .await
                .expect("run imds")
        }
    };
    let token = imds(&["token"]).await;
    assert!(
        token.status.success(),
        "imds token: {}",
        String::from_utf8_lossy(&token.stderr)
    );
    let token = String::from_utf8(token.stdout).expect("utf-8");
    assert!(token.len() >= 40, "{token:?}");
    let v1 = imds(&["-1", "meta-data/instance-id"]).await;
    assert!(v1.status.success());
    assert_eq!(v1.stdout, b"i-0000000000000guest");
    let user_data = imds(&["-1", "user-data"]).await;
    assert_eq!(user_data.stdout, USER_DATA_A);
    let missing = imds(&["-1", "meta-data/nothing"]).await;
    assert!(!missing.status.success());

    // busybox wget with the token, as user-data scripts do.
    let out = tokio::process::Command::new(bin.path().join("wget"))
        .args(["-q", "-O", "-", "--header"])
        .arg(format!("X-aws-ec2-metadata-token: {token}"))
        .arg(format!(
            "http://127.0.0.1:{port}/latest/meta-data/local-ipv4"
        ))
        .env_clear()
        .output()
        .await
        .expect("wget");
    assert_eq!(out.stdout, b"172.31.0.1");
    task.abort();
}

/// busybox wget of an IMDS path from namespace `ns`: the body, or None.
fn wget_in(ns: &str, path: &str, headers: &[String]) -> Option<String> {
    let mut args = vec![
        "timeout".to_owned(),
        "5".to_owned(),
        "ip".to_owned(),
        "netns".to_owned(),
        "exec".to_owned(),
        ns.to_owned(),
        "busybox".to_owned(),
        "wget".to_owned(),
        "-q".to_owned(),
        "-O".to_owned(),
        "-".to_owned(),
    ];
    for h in headers {
        args.push("--header".to_owned());
        args.push(h.clone());
    }
    args.push(format!("http://169.254.169.254{path}"));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let out = run(&refs);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An IMDSv2 token fetched from namespace `ns` with HTTP/1.0 over busybox
/// `nc`, as the guest does; None when no complete answer arrives.
fn token_in(ns: &str) -> Option<String> {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "printf 'PUT /latest/api/token HTTP/1.0\\r\\nX-aws-ec2-metadata-token-ttl-seconds: 60\\r\\n\\r\\n' \
             | timeout 4 ip netns exec {ns} busybox nc -w 3 169.254.169.254 80"
        ))
        .output()
        .expect("nc");
    let reply = String::from_utf8_lossy(&out.stdout).into_owned();
    let (head, body) = reply.split_once("\r\n\r\n")?;
    (head.starts_with("HTTP/1.0 200") || head.starts_with("HTTP/1.1 200"))
        .then(|| body.to_owned())
        .filter(|b| !b.is_empty())
}

/// serve_in_netns on a real node network: a "guest" namespace plugged into
/// the bridge reads its own metadata; a spoofed source gets nothing; a
/// "container" routed one hop behind the guest gets IMDSv1 answers but no
/// token with hop limit 1, and a token with hop limit 2.
// Multi-threaded: the test blocks its thread on client commands while the
// service must keep answering.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_inside_the_node_network() {
    require_root();
    require_tools(&["ip", "nft", "dnsmasq", "busybox", "timeout"]);
    let dir = tempfile::tempdir().expect("tempdir");
    let pid = std::process::id();
    let config = VpcConfig {
        network_id: "vpc-imds".to_owned(),
        netns: format!("mtn-imds-{pid}"),
        state_dir: dir.path().join("net"),
        domain: "test.internal".to_owned(),
        public: None,
        underlay: None,
    };
    let ns = config.netns.clone();
    let guest = format!("mtg-imds-{pid}");
    let container = format!("mtc-imds-{pid}");
    let _cleanup = NetnsCleanup {
        namespaces: vec![ns.clone(), guest.clone(), container.clone()],
        pid_file: Some(config.state_dir.join("dnsmasq.pid")),
    };
    // No security group: the guest may still use DHCP and the metadata
    // service.
    let network = NodeNetwork::ensure(config.clone(), Arc::default(), Arc::default())
        .await
        .expect("ensure");
    let service = MetadataService::new();
    let task = service
        .serve_in_netns(
            "vpc-imds",
            &ns,
            SocketAddrV4::new(Ipv4Addr::new(169, 254, 169, 254), 80),
        )
        .await
        .expect("serve in netns");

    let guest_ip = Ipv4Addr::new(10, 78, 0, 21);
    add_guest(&guest, &ns, "vimds", "02:00:00:00:00:21");
    ok(&[
        "ip",
        "-n",
        &guest,
        "addr",
        "add",
        "10.78.0.21/24",
        "dev",
        "eth0",
    ]);
    ok(&[
        "ip",
        "-n",
        &guest,
        "route",
        "add",
        "default",
        "via",
        "10.78.0.1",
    ]);
    network
        .plug(
            "vimds",
            Port {
                instance_id: "i-0000000000000netns".to_owned(),
                mac: "02:00:00:00:00:21".to_owned(),
                ip: guest_ip,
                hostname: "ip-10-78-0-21".to_owned(),
                subnet: "10.78.0.0/24".parse().expect("subnet"),
                public_ip: None,
                dns: Default::default(),
                internet: Default::default(),
            },
        )
        .await
        .expect("plug");
    // Registered in the default network: the listener of this namespace
    // does not answer it.
    service.register(guest_ip, "i-0000000000000netns", metadata(1));
    assert_eq!(wget_in(&guest, "/latest/meta-data/instance-id", &[]), None);
    service.unregister(guest_ip);
    service.register_in("vpc-imds", guest_ip, "i-0000000000000netns", metadata(1));

    assert_eq!(
        wget_in(&guest, "/latest/meta-data/instance-id", &[]).as_deref(),
        Some("i-0000000000000netns")
    );
    api_relay_in_the_namespace(&service, &guest).await;
    let token = token_in(&guest).expect("the guest got no token");
    assert_eq!(
        wget_in(
            &guest,
            "/latest/meta-data/local-ipv4",
            &[format!("X-aws-ec2-metadata-token: {token}")]
        )
        .as_deref(),
        Some("172.31.0.1")
    );

    // The same guest posing as another address gets no answer at all.
    ok(&[
        "ip",
        "-n",
        &guest,
        "addr",
        "add",
        "10.78.0.99/24",
        "dev",
        "eth0",
    ]);
    ok(&[
        "ip",
        "-n",
        &guest,
        "route",
        "replace",
        "169.254.169.254",
        "via",
        "10.78.0.1",
        "src",
        "10.78.0.99",
    ]);
    assert_eq!(wget_in(&guest, "/latest/meta-data/instance-id", &[]), None);
    ok(&["ip", "-n", &guest, "route", "del", "169.254.169.254"]);
    ok(&[
        "ip",
        "-n",
        &guest,
        "addr",
        "del",
        "10.78.0.99/24",
        "dev",
        "eth0",
    ]);

    // A container behind the guest: routed and masqueraded by the guest.
    ok(&["ip", "netns", "add", &container]);
    ok(&[
        "ip", "-n", &container, "link", "add", "eth0", "type", "veth", "peer", "name", "ctr0",
        "netns", &guest,
    ]);
    ok(&[
        "ip",
        "-n",
        &container,
        "addr",
        "add",
        "192.168.77.2/24",
        "dev",
        "eth0",
    ]);
    ok(&["ip", "-n", &container, "link", "set", "eth0", "up"]);
    ok(&[
        "ip",
        "-n",
        &container,
        "route",
        "add",
        "default",
        "via",
        "192.168.77.1",
    ]);
    ok(&[
        "ip",
        "-n",
        &guest,
        "addr",
        "add",
        "192.168.77.1/24",
        "dev",
        "ctr0",
    ]);
    ok(&["ip", "-n", &guest, "link", "set", "ctr0", "up"]);
    ok(&[
        "ip",
        "netns",
        "exec",
        &guest,
        "sh",
        "-c",
        "echo 1 > /proc/sys/net/ipv4/ip_forward",
    ]);
    for rule in [
        "add table ip nat",
        "add chain ip nat post { type nat hook postrouting priority 100 ; }",
        "add rule ip nat post oifname eth0 masquerade",
    ] {
        ok(&["ip", "netns", "exec", &guest, "nft", rule]);
    }

    assert_eq!(
        wget_in(&container, "/latest/meta-data/instance-id", &[]).as_deref(),
        Some("i-0000000000000netns"),
        "IMDSv1 from the container must work whatever the hop limit"
    );
    assert_eq!(
        token_in(&container),
        None,
        "a token crossed 2 hops with hop limit 1"
    );
    assert!(token_in(&guest).is_some());

    let mut two_hops = metadata(1);
    two_hops.options.http_put_response_hop_limit = 2;
    service.register_in("vpc-imds", guest_ip, "i-0000000000000netns", two_hops);
    assert!(
        token_in(&container).is_some(),
        "hop limit 2 must reach the container"
    );

    task.abort();
    NodeNetwork::destroy(&config).await.expect("destroy");
}

/// The guest in `guest` (registered) reaches a stand-in API on the host's
/// loopback through 169.254.169.254:8773 once the relay knows where the API
/// is, and the metadata service then says where it is.
async fn api_relay_in_the_namespace(service: &Arc<MetadataService>, guest: &str) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    assert_eq!(
        wget_in(guest, ":8773/before", &[]),
        None,
        "no API known yet"
    );
    assert_eq!(
        wget_in(guest, "/latest/meta-data/services/endpoints/s3", &[]),
        None
    );
    let api = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = api.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        loop {
            let (mut s, _) = api.accept().await.expect("accept");
            let mut got = Vec::new();
            let mut buf = [0u8; 1024];
            while !got.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            let head = String::from_utf8_lossy(&got);
            let path = head.split(' ').nth(1).unwrap_or("").to_owned();
            let body = format!("api saw {path}");
            let answer = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(answer.as_bytes()).await;
        }
    });
    service.api_relay().set_upstream(
        &mallee_node_api::ApiAddress {
            host: Some("127.0.0.1".to_owned()),
            port,
        },
        "https://192.0.2.1:8774",
    );
    assert_eq!(
        wget_in(guest, ":8773/bucket/key", &[]).as_deref(),
        Some("api saw /bucket/key")
    );
    assert_eq!(
        wget_in(guest, "/latest/meta-data/services/endpoints/", &[]).as_deref(),
        Some("ec2\niam\ns3\nsts")
    );
    assert_eq!(
        wget_in(guest, "/latest/meta-data/services/endpoints/s3", &[]).as_deref(),
        Some("http://169.254.169.254:8773")
    );
    server.abort();
}

/// A controller stand-in issuing numbered credentials for one instance.
#[derive(Debug, Default)]
struct Issuer {
    calls: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl mallee_node::instance_credentials::CredentialSource for Issuer {
    async fn fetch(
        &self,
        instance_id: &str,
    ) -> Result<
        mallee_node_api::InstanceCredentials,
        mallee_node::instance_credentials::CredentialError,
    > {
        if instance_id != "i-000000000000000aa" {
            return Err(mallee_node::instance_credentials::CredentialError::None(
                "no profile".into(),
            ));
        }
        let n = self.calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let now = 1_800_000_000_000;
        Ok(mallee_node_api::InstanceCredentials {
            role_name: "app".into(),
            access_key_id: format!("ASIAISSUED{n}"),
            secret_access_key: "secret".into(),
            token: "token".into(),
            expires_at: now + 3_600_000,
            issued_at: now,
        })
    }
}

#[tokio::test]
async fn an_instance_profile_serves_its_role_credentials_to_that_instance_only() {
    let service = MetadataService::new();
    let issuer = Arc::new(Issuer::default());
    service.set_credentials(mallee_node::instance_credentials::CredentialCache::new(
        issuer.clone(),
    ));
    let mut with_profile = metadata(1);
    with_profile.iam = Some(mallee_node_api::IamProfileMetadata {
        instance_profile_arn: "arn:aws:iam::123456789012:instance-profile/web".into(),
        instance_profile_id: "AIPAEXAMPLE".into(),
        role_name: Some("app".into()),
    });
    service.register(A, "i-000000000000000aa", with_profile);
    service.register(B, "i-000000000000000bb", metadata(2));
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let server = listener.local_addr().expect("addr");
    let task = service.serve(listener).await;

    let listing = get(A, server, "/latest/meta-data/").await.text();
    assert!(listing.lines().any(|l| l == "iam/"), "{listing}");
    let info: serde_json::Value =
        serde_json::from_slice(&get(A, server, "/latest/meta-data/iam/info").await.body)
            .expect("info");
    assert_eq!(info["Code"], "Success");
    assert_eq!(
        info["InstanceProfileArn"],
        "arn:aws:iam::123456789012:instance-profile/web"
    );
    assert_eq!(info["InstanceProfileId"], "AIPAEXAMPLE");
    assert_eq!(
        get(A, server, "/latest/meta-data/iam/security-credentials/")
            .await
            .text(),
        "app"
    );
    let creds: serde_json::Value = serde_json::from_slice(
        &get(A, server, "/latest/meta-data/iam/security-credentials/app")
            .await
            .body,
    )
    .expect("credentials");
    assert_eq!(creds["Code"], "Success");
    assert_eq!(creds["Type"], "AWS-HMAC");
    assert_eq!(creds["AccessKeyId"], "ASIAISSUED0");
    assert_eq!(creds["Token"], "token");
    assert_eq!(creds["Expiration"], "2027-01-15T09:00:00Z");
    // Held, not re-issued on every read.
    get(A, server, "/latest/meta-data/iam/security-credentials/app").await;
    assert_eq!(issuer.calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    // Another role name, and an instance without a profile, get nothing.
    assert_eq!(
        get(
            A,
            server,
            "/latest/meta-data/iam/security-credentials/other"
        )
        .await
        .status,
        404
    );
    assert_eq!(
        get(B, server, "/latest/meta-data/iam/info").await.status,
        404
    );
    assert_eq!(
        get(B, server, "/latest/meta-data/iam/security-credentials/app")
            .await
            .status,
        404
    );
    task.abort();
}
