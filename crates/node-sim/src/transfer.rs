//! Snapshot data between the simulated node and wherever snapshots live:
//! [`HttpTransfer`] speaks the controller's protocol under
//! [`SNAPSHOTS_PATH_PREFIX`] exactly as the real agent does (over mutual
//! TLS; `PUT` with size, SHA-256 and format; `GET` checked against the
//! snapshot's size and SHA-256), so the controller's snapshot path
//! completes against a simulated node; [`MemorySnapshots`] keeps the data
//! in memory for tests without a controller.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use mallee_node_api::{
    DiskFormat, FORMAT_HEADER, SHA256_HEADER, SNAPSHOTS_PATH_PREFIX, SnapshotSource,
    SnapshotUploaded,
};
use sha2::{Digest, Sha256};

/// How long connecting to the controller may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a whole transfer may take (simulated data is small).
const TRANSFER_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a transfer did not happen (the real agent's three outcomes).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransferError {
    /// Worth trying again later: the controller is unreachable or answered
    /// with a server error.
    #[error("{0}")]
    Retry(String),
    /// The controller no longer has the snapshot (`404`).
    #[error("the controller no longer has the snapshot")]
    Gone,
    /// Refused for good: digest mismatch, a conflicting earlier upload,
    /// data that is not what it claims to be.
    #[error("{0}")]
    Refused(String),
}

/// SHA-256 of `data`, lowercase hex.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Where the simulated node puts the data of its snapshots and reads the
/// data volumes are created from.
#[async_trait]
pub trait SnapshotTransfer: Send + Sync + std::fmt::Debug {
    /// Stores `data` (in `format`, with SHA-256 `sha256`) as snapshot
    /// `snapshot_id`; answers once it is stored.
    async fn upload(
        &self,
        snapshot_id: &str,
        data: Bytes,
        sha256: &str,
        format: DiskFormat,
    ) -> Result<SnapshotUploaded, TransferError>;

    /// The data of `source`, checked against its size and SHA-256.
    async fn download(&self, source: &SnapshotSource) -> Result<Bytes, TransferError>;
}

/// Checks downloaded `data` against what `source` says it is.
fn check_download(source: &SnapshotSource, data: &[u8]) -> Result<(), TransferError> {
    let size = data.len() as u64;
    if size != source.size {
        return Err(TransferError::Refused(format!(
            "the data of {} does not match its record: {size} bytes served, {} expected",
            source.snapshot_id, source.size
        )));
    }
    let digest = sha256_hex(data);
    if !digest.eq_ignore_ascii_case(&source.sha256) {
        return Err(TransferError::Refused(format!(
            "the data of {} does not match its record: SHA-256 {digest}, {} expected",
            source.snapshot_id, source.sha256
        )));
    }
    Ok(())
}

/// The controller's snapshot data endpoint, over HTTPS.
#[derive(Debug, Clone)]
pub struct HttpTransfer {
    base_url: String,
    http: reqwest::Client,
}

/// An HTTPS-only client to the controller with `tls` (the node's
/// certificate, the controller's expected), sending the API version.
pub(crate) fn controller_client(
    tls: &std::sync::Arc<rustls::ClientConfig>,
) -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .use_preconfigured_tls(rustls::ClientConfig::clone(tls))
        .https_only(true)
        .default_headers(mallee_node_api::version::headers())
}

impl HttpTransfer {
    /// The endpoint of the controller at `controller_url`, reached with
    /// `tls`.
    pub fn new(
        controller_url: &str,
        tls: &std::sync::Arc<rustls::ClientConfig>,
    ) -> Result<Self, reqwest::Error> {
        let http = controller_client(tls)
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(TRANSFER_TIMEOUT)
            .build()?;
        Ok(Self {
            base_url: controller_url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    fn url(&self, snapshot_id: &str) -> String {
        let id: String = snapshot_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        format!("{}{SNAPSHOTS_PATH_PREFIX}{id}", self.base_url)
    }
}

#[async_trait]
impl SnapshotTransfer for HttpTransfer {
    async fn upload(
        &self,
        snapshot_id: &str,
        data: Bytes,
        sha256: &str,
        format: DiskFormat,
    ) -> Result<SnapshotUploaded, TransferError> {
        let url = self.url(snapshot_id);
        let size = data.len() as u64;
        let response = self
            .http
            .put(&url)
            .header(reqwest::header::CONTENT_LENGTH, size)
            .header(SHA256_HEADER, sha256)
            .header(FORMAT_HEADER, format.as_str())
            .body(data)
            .send()
            .await
            .map_err(|e| TransferError::Retry(format!("PUT {url}: {e}")))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| TransferError::Retry(format!("PUT {url}: reading the answer: {e}")))?;
        let shown: String = text.trim().chars().take(300).collect();
        match status.as_u16() {
            200..=299 => {
                let stored: SnapshotUploaded = serde_json::from_str(&text).map_err(|e| {
                    TransferError::Retry(format!("PUT {url}: unreadable answer {shown:?}: {e}"))
                })?;
                if stored.size != size || !stored.sha256.eq_ignore_ascii_case(sha256) {
                    return Err(TransferError::Refused(format!(
                        "the controller stored {} bytes with SHA-256 {}, not the {size} bytes with SHA-256 {sha256} sent",
                        stored.size, stored.sha256
                    )));
                }
                Ok(stored)
            }
            404 => Err(TransferError::Gone),
            400 | 409 => Err(TransferError::Refused(format!(
                "the controller refused the upload ({status}): {shown}"
            ))),
            _ => Err(TransferError::Retry(format!(
                "PUT {url} answered {status}: {shown}"
            ))),
        }
    }

    async fn download(&self, source: &SnapshotSource) -> Result<Bytes, TransferError> {
        let url = self.url(&source.snapshot_id);
        let response = self
            .http
            .get(&url)
            .send()
            .await
            .map_err(|e| TransferError::Retry(format!("GET {url}: {e}")))?;
        let status = response.status();
        if status.as_u16() == 404 {
            return Err(TransferError::Gone);
        }
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            let shown: String = text.trim().chars().take(300).collect();
            let message = format!("GET {url} answered {status}: {shown}");
            return Err(if status.is_server_error() {
                TransferError::Retry(message)
            } else {
                TransferError::Refused(message)
            });
        }
        let data = response
            .bytes()
            .await
            .map_err(|e| TransferError::Retry(format!("GET {url}: {e}")))?;
        check_download(source, &data)?;
        Ok(data)
    }
}

/// Snapshot data kept in memory: what a node-only test uploads to and
/// creates volumes from. An upload of other data under an id already held
/// is refused, as the controller refuses it (`409`).
#[derive(Debug, Default)]
pub struct MemorySnapshots {
    held: Mutex<HashMap<String, (Bytes, DiskFormat)>>,
}

impl MemorySnapshots {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Bytes, DiskFormat)>> {
        self.held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Holds `data` as snapshot `snapshot_id` (an imported snapshot) and
    /// returns what a volume created from it names.
    pub fn insert(&self, snapshot_id: &str, data: Bytes, format: DiskFormat) -> SnapshotSource {
        let source = SnapshotSource {
            snapshot_id: snapshot_id.to_owned(),
            size: data.len() as u64,
            sha256: sha256_hex(&data),
            format,
        };
        self.held().insert(snapshot_id.to_owned(), (data, format));
        source
    }

    /// The data and format of a held snapshot.
    pub fn get(&self, snapshot_id: &str) -> Option<(Bytes, DiskFormat)> {
        self.held().get(snapshot_id).cloned()
    }

    /// Forgets a snapshot (downloads of it are then `Gone`).
    pub fn remove(&self, snapshot_id: &str) {
        self.held().remove(snapshot_id);
    }
}

#[async_trait]
impl SnapshotTransfer for MemorySnapshots {
    async fn upload(
        &self,
        snapshot_id: &str,
        data: Bytes,
        sha256: &str,
        format: DiskFormat,
    ) -> Result<SnapshotUploaded, TransferError> {
        let digest = sha256_hex(&data);
        if !digest.eq_ignore_ascii_case(sha256) {
            return Err(TransferError::Refused(format!(
                "the data's SHA-256 is {digest}, not {sha256}"
            )));
        }
        let mut held = self.held();
        if let Some((stored, _)) = held.get(snapshot_id)
            && sha256_hex(stored) != digest
        {
            return Err(TransferError::Refused(format!(
                "{snapshot_id} was uploaded before with other data"
            )));
        }
        let size = data.len() as u64;
        held.insert(snapshot_id.to_owned(), (data, format));
        Ok(SnapshotUploaded {
            snapshot_id: snapshot_id.to_owned(),
            size,
            sha256: digest,
        })
    }

    async fn download(&self, source: &SnapshotSource) -> Result<Bytes, TransferError> {
        let (data, _) = self.get(&source.snapshot_id).ok_or(TransferError::Gone)?;
        check_download(source, &data)?;
        Ok(data)
    }
}
