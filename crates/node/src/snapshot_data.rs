//! Snapshot data between a node and the controller's blob store, under
//! [`SNAPSHOTS_PATH_PREFIX`] over mutual TLS: `PUT` uploads an
//! exported snapshot from its local file, `GET` downloads one into a file
//! (to create a volume from it). Both stream (never the whole data in
//! memory) and check size and SHA-256 on the way.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use futures_util::StreamExt;
use mallee_node_api::{
    DiskFormat, FORMAT_HEADER, SHA256_HEADER, SNAPSHOTS_PATH_PREFIX, SnapshotSource,
    SnapshotUploaded,
};
use sha2::{Digest, Sha256};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Bytes read from the local file per chunk of an upload.
const CHUNK: usize = 256 * 1024;
/// How long connecting to the controller may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest silence while a transfer's data flows.
const READ_TIMEOUT: Duration = Duration::from_secs(120);

/// Why a transfer did not happen.
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

/// The controller's snapshot data endpoint.
#[derive(Debug, Clone)]
pub struct SnapshotData {
    base_url: String,
    http: reqwest::Client,
}

impl SnapshotData {
    /// The endpoint of the controller at `controller_url`, with a client
    /// from `http` ([`crate::controller_link::client`]).
    pub fn new(controller_url: &str, http: reqwest::ClientBuilder) -> Result<Self, reqwest::Error> {
        let http = http
            .connect_timeout(CONNECT_TIMEOUT)
            .read_timeout(READ_TIMEOUT)
            .build()?;
        Ok(Self {
            base_url: controller_url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// The URL of a snapshot's data.
    pub fn url(&self, snapshot_id: &str) -> String {
        let id: String = snapshot_id
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
            .collect();
        format!("{}{SNAPSHOTS_PATH_PREFIX}{id}", self.base_url)
    }

    /// Uploads `path` (`size` bytes with SHA-256 `sha256`, qcow2) as
    /// snapshot `snapshot_id`; `sent` counts the bytes read so far. Returns
    /// the controller's acknowledgement once it stored the data durably;
    /// an acknowledgement of other data is refused.
    pub async fn upload(
        &self,
        snapshot_id: &str,
        path: &Path,
        size: u64,
        sha256: &str,
        sent: Arc<AtomicU64>,
    ) -> Result<SnapshotUploaded, TransferError> {
        let file = tokio::fs::File::open(path).await.map_err(|e| {
            TransferError::Refused(format!("cannot read the export {}: {e}", path.display()))
        })?;
        sent.store(0, Ordering::Relaxed);
        let body = futures_util::stream::unfold((file, sent), |(mut file, sent)| async move {
            let mut buf = vec![0u8; CHUNK];
            match file.read(&mut buf).await {
                Ok(0) => None,
                Ok(n) => {
                    buf.truncate(n);
                    sent.fetch_add(n as u64, Ordering::Relaxed);
                    Some((Ok::<_, std::io::Error>(Bytes::from(buf)), (file, sent)))
                }
                Err(e) => Some((Err(e), (file, sent))),
            }
        })
        // An error ends the body early; the controller sees a short upload.
        .take_while(|chunk| std::future::ready(chunk.is_ok()));
        let url = self.url(snapshot_id);
        let response = self
            .http
            .put(&url)
            .header(reqwest::header::CONTENT_LENGTH, size)
            .header(SHA256_HEADER, sha256)
            .header(FORMAT_HEADER, DiskFormat::Qcow2.as_str())
            .body(reqwest::Body::wrap_stream(body))
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

    /// Downloads the data of `source` into `dest` (created or truncated,
    /// then fsynced), checking its size and SHA-256.
    pub async fn download(
        &self,
        source: &SnapshotSource,
        dest: &Path,
    ) -> Result<(), TransferError> {
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
        let mismatch = |what: String| {
            TransferError::Refused(format!(
                "the data of {} does not match its record: {what}",
                source.snapshot_id
            ))
        };
        if let Some(len) = response.content_length()
            && len != source.size
        {
            return Err(mismatch(format!(
                "{len} bytes served, {} expected",
                source.size
            )));
        }
        if let Some(digest) = response
            .headers()
            .get(SHA256_HEADER)
            .and_then(|v| v.to_str().ok())
            && !digest.eq_ignore_ascii_case(&source.sha256)
        {
            return Err(mismatch(format!(
                "served with SHA-256 {digest}, {} expected",
                source.sha256
            )));
        }
        let local =
            |e: std::io::Error| TransferError::Retry(format!("writing {}: {e}", dest.display()));
        let mut file = tokio::fs::File::create(dest).await.map_err(local)?;
        let mut hasher = Sha256::new();
        let mut received = 0u64;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| TransferError::Retry(format!("GET {url}: {e}")))?;
            received += chunk.len() as u64;
            if received > source.size {
                return Err(mismatch(format!("more than {} bytes served", source.size)));
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(local)?;
        }
        if received != source.size {
            return Err(TransferError::Retry(format!(
                "GET {url}: the transfer ended after {received} of {} bytes",
                source.size
            )));
        }
        let digest = hex::encode(hasher.finalize());
        if !digest.eq_ignore_ascii_case(&source.sha256) {
            return Err(mismatch(format!(
                "SHA-256 {digest}, {} expected",
                source.sha256
            )));
        }
        file.sync_all().await.map_err(local)?;
        Ok(())
    }
}

/// Size and SHA-256 (lowercase hex) of a file, read in chunks.
pub async fn digest_file(path: &Path) -> std::io::Result<(u64, String)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    let mut buf = vec![0u8; CHUNK];
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        size += n as u64;
        hasher.update(&buf[..n]);
    }
    Ok((size, hex::encode(hasher.finalize())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_keeps_only_id_characters() {
        let data = SnapshotData::new("https://127.0.0.1:8774/", reqwest::Client::builder())
            .expect("client");
        assert_eq!(
            data.url("snap-0123456789abcdef0"),
            "https://127.0.0.1:8774/_mallee/node/snapshots/snap-0123456789abcdef0"
        );
        assert_eq!(
            data.url("../snap-1?x"),
            "https://127.0.0.1:8774/_mallee/node/snapshots/snap-1x"
        );
    }

    #[tokio::test]
    async fn digest_of_a_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        let data = vec![7u8; CHUNK * 2 + 5];
        std::fs::write(&path, &data).expect("write");
        let (size, sha) = digest_file(&path).await.expect("digest");
        assert_eq!(size, data.len() as u64);
        assert_eq!(sha, hex::encode(Sha256::digest(&data)));
    }
}
