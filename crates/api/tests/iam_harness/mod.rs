//! What the policy coverage tests share: a controller on a loopback port,
//! an account with two IAM users whose one inline policy each test
//! rewrites before every request (one allowed everything but the action
//! under test, one allowed exactly it), requests signed with the
//! `aws-sigv4` signer, and a digest of everything the controller keeps.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use aws_credential_types::Credentials;
use aws_sigv4::http_request::{
    PayloadChecksumKind, PercentEncodingMode, SignableBody, SignableRequest, SigningSettings,
    UriPathNormalizationMode, sign,
};
use aws_sigv4::sign::v4;
use mallee_api::server;
use mallee_cloud::identity::policies::{self, Holder};
use mallee_cloud::identity::{keys, users};
use mallee_cloud::{Cloud, Config, accounts};
use sha2::{Digest, Sha256};
use sqlx::sqlite::SqliteConnectOptions;
use sqlx::{AssertSqlSafe, Connection};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The region every request is signed for.
pub const REGION: &str = "mallee-1";

pub struct Controller {
    pub addr: SocketAddr,
    pub cloud: std::sync::Arc<Cloud>,
    pub data: PathBuf,
    _dir: tempfile::TempDir,
}

pub async fn start() -> Controller {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::new("127.0.0.1:0".parse().expect("addr"), dir.path().to_owned());
    let data = config.data_dir.clone();
    let prepared = server::prepare(config).await.expect("prepare");
    let addr = prepared.local_addr().expect("addr");
    let cloud = prepared.cloud.clone();
    tokio::spawn(prepared.serve(std::future::pending()));
    Controller {
        addr,
        cloud,
        data,
        _dir: dir,
    }
}

/// An access key.
#[derive(Clone)]
pub struct Key {
    pub id: String,
    pub secret: String,
}

/// The account under test: its admin and two users whose policies the
/// test rewrites before each request.
pub struct Account {
    pub id: String,
    pub admin: Key,
    /// Allowed everything but the action under test.
    pub denied: Key,
    /// Allowed exactly the action under test.
    pub allowed: Key,
}

const DENIED: &str = "denied";
const ALLOWED: &str = "allowed";
const POLICY: &str = "coverage";

pub async fn account(c: &Controller) -> Account {
    let store = c.cloud.store.as_ref();
    accounts::create_account(store, "tenant", false)
        .await
        .expect("account");
    let (admin, account) = accounts::create_access_key(store, "tenant")
        .await
        .expect("admin key");
    let id = account.account_id;
    let mut user_keys = Vec::new();
    for name in [DENIED, ALLOWED] {
        users::create(store, &id, name, None, Default::default())
            .await
            .expect("user");
        let key = keys::create(store, &id, name).await.expect("key");
        user_keys.push(Key {
            id: key.access_key_id,
            secret: key.secret_access_key,
        });
    }
    let allowed = user_keys.pop().expect("allowed");
    let denied = user_keys.pop().expect("denied");
    Account {
        id,
        admin: Key {
            id: admin.access_key_id,
            secret: admin.secret_access_key,
        },
        denied,
        allowed,
    }
}

/// Replaces `user`'s one inline policy.
async fn set_policy(c: &Controller, account: &str, user: &str, statement: &str) {
    let document = format!(r#"{{"Version":"2012-10-17","Statement":[{statement}]}}"#);
    policies::put(
        c.cloud.store.as_ref(),
        account,
        &Holder::User(user.into()),
        POLICY,
        &document,
    )
    .await
    .expect("policy");
}

/// Lets `denied` do everything but `action`, and `allowed` only `action`
/// and the permissions in `also` that it needs as well.
pub async fn policies_for(c: &Controller, a: &Account, action: &str, also: &[&str]) {
    let actions: Vec<&str> = std::iter::once(action)
        .chain(also.iter().copied())
        .collect();
    set_policy(
        c,
        &a.id,
        DENIED,
        &format!(r#"{{"Effect":"Allow","NotAction":"{action}","Resource":"*"}}"#),
    )
    .await;
    set_policy(
        c,
        &a.id,
        ALLOWED,
        &format!(r#"{{"Effect":"Allow","Action":{actions:?},"Resource":"*"}}"#),
    )
    .await;
}

pub struct Reply {
    pub status: u16,
    pub body: String,
}

impl Reply {
    pub fn element(&self, name: &str) -> Option<&str> {
        let open = format!("<{name}>");
        let start = self.body.find(&open)? + open.len();
        let end = self.body[start..].find(&format!("</{name}>"))? + start;
        Some(&self.body[start..end])
    }

    pub fn code(&self) -> Option<&str> {
        self.element("Code")
    }
}

/// Sends one request signed by `key` for `service`.
pub async fn send(
    addr: SocketAddr,
    key: &Key,
    service: &str,
    method: &str,
    path_and_query: &str,
    extra_headers: &[(&str, &str)],
    body: &[u8],
) -> Reply {
    let host = addr.to_string();
    let url = format!("http://{host}{path_and_query}");
    let mut headers: Vec<(String, String)> = vec![("host".into(), host.clone())];
    headers.extend(
        extra_headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    let creds = Credentials::new(&key.id, &key.secret, None, None, "test");
    let identity = creds.into();
    let mut settings = SigningSettings::default();
    if service == "s3" {
        settings.payload_checksum_kind = PayloadChecksumKind::XAmzSha256;
        settings.percent_encoding_mode = PercentEncodingMode::Single;
        settings.uri_path_normalization_mode = UriPathNormalizationMode::Disabled;
    }
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(REGION)
        .name(service)
        .time(SystemTime::now())
        .settings(settings)
        .build()
        .expect("params")
        .into();
    let signable = SignableRequest::new(
        method,
        &url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .expect("signable");
    let (instructions, _) = sign(signable, &params).expect("sign").into_parts();
    for (name, value) in instructions.headers() {
        headers.push((name.to_string(), value.to_string()));
    }
    let mut request = format!(
        "{method} {path_and_query} HTTP/1.1\r\ncontent-length: {}\r\nconnection: close\r\n",
        body.len()
    );
    for (k, v) in &headers {
        request.push_str(&format!("{k}: {v}\r\n"));
    }
    request.push_str("\r\n");
    let mut raw_request = request.into_bytes();
    raw_request.extend_from_slice(body);
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream.write_all(&raw_request).await.expect("write");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.expect("read");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line: {text}"));
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    Reply { status, body }
}

/// A digest of everything the controller keeps: every row of every table
/// of its database (read-only; a key's `last_used_*` columns excepted, as
/// signing a request records it, and the background lease's expiry, which
/// its holder renews every 2 s) and the name and size of every file
/// under its object directory.
pub async fn digest(data: &Path) -> String {
    let options = SqliteConnectOptions::new()
        .filename(data.join("mallee.db"))
        .read_only(true);
    let mut db = sqlx::SqliteConnection::connect_with(&options)
        .await
        .expect("open the database");
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut db)
    .await
    .expect("tables");
    let mut hash = Sha256::new();
    for table in tables {
        let columns: Vec<String> = sqlx::query_scalar("SELECT name FROM pragma_table_info(?)")
            .bind(&table)
            .fetch_all(&mut db)
            .await
            .expect("columns")
            .into_iter()
            // The background lease's renewals (every 2 s) are the
            // controller's bookkeeping, not data an action changed.
            .filter(|c: &String| !(table == "access_keys" && c.starts_with("last_used_")))
            .filter(|c: &String| !(table == "leases" && c == "expires_at"))
            .collect();
        let row = columns
            .iter()
            .map(|c| format!("quote(\"{c}\")"))
            .collect::<Vec<_>>()
            .join(" || ',' || ");
        // The names come from the database's own schema.
        let select = AssertSqlSafe(format!("SELECT {row} FROM \"{table}\""));
        let mut rows: Vec<String> = sqlx::query_scalar(select)
            .fetch_all(&mut db)
            .await
            .expect("rows");
        rows.sort();
        hash.update(format!("{table}\n{}\n", rows.join("\n")));
    }
    let mut files = Vec::new();
    let mut todo = vec![data.join("objects")];
    while let Some(dir) = todo.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.expect("entry");
            let meta = entry.metadata().expect("metadata");
            if meta.is_dir() {
                todo.push(entry.path());
            } else {
                files.push(format!("{} {}", entry.path().display(), meta.len()));
            }
        }
    }
    files.sort();
    hash.update(files.join("\n"));
    hex::encode(hash.finalize())
}
