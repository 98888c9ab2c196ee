//! mallee's blob files: object data kept on local disk, written crash-safely
//! and streamed in both directions.
//!
//! The object store keeps each object's data in one or more blob files under
//! its data directory; the metadata store points at them by blob id. This
//! crate owns those files:
//!
//! * [`BlobStore::write`] streams a body into `data/<first two hex
//!   digits>/<id>`, hashing MD5 and enforcing [`WriteLimits`] as it goes,
//!   then fsyncs the file and its directory before it returns; a body of up
//!   to 256 KiB is gathered first and written in one blocking call. The file
//!   is created under its final name, not renamed into place: nothing reads
//!   a blob until a record names it, and the caller commits that record only
//!   after the write returned, so a file a crash leaves half-written is one
//!   no record names, which [`BlobStore::sweep`] removes at start-up. That
//!   saves a journal commit per blob: the file's fsync also commits its new
//!   directory entry (ext4 and XFS journal both together), so the directory
//!   fsync that keeps the guarantee on other file systems finds nothing
//!   left to write, where a rename after the fsync needed a second commit.
//!   Any failure (or the future being dropped) removes the file.
//! * [`BlobStore::open_object`] opens every blob a read needs before it
//!   returns, so a later delete or overwrite of the object cannot change what
//!   the returned [`ObjectReader`] yields (unlinked inodes stay alive while
//!   open).
//! * [`BlobStore::open`] removes temporary files that writes of earlier
//!   versions left in `tmp/`, and [`BlobStore::sweep`] removes blobs no
//!   committed record references.
//!
//! Blob ids are 32 lowercase hex digits. Every id passed in is validated, so
//! a crafted id can never name a path outside the data directory.
//!
//! Memory stays flat: writes hold at most 256 KiB of body plus one chunk
//! (and the file's write buffer), reads one chunk of at most 256 KiB.

mod cipher;
mod read;

use std::collections::HashSet;
use std::error::Error as StdError;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::pin::pin;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use mallee_util::durable::{self, TempGuard};
use md5::{Digest, Md5};
use tokio::io::AsyncWriteExt;

pub use cipher::BlobCipher;
pub use read::ObjectReader;

/// Length of a blob id in characters.
const ID_LEN: usize = 32;
/// Directory (under the root) where earlier versions wrote blobs before
/// renaming them into place; emptied at start-up.
const TMP_DIR: &str = "tmp";
/// Directory (under the root) holding committed blobs, fanned out by the
/// first two hex digits of their id.
const DATA_DIR: &str = "data";
/// Bodies up to this many bytes are gathered in memory and written in one
/// blocking call; larger ones stream to their file chunk by chunk.
const SMALL_BODY: u64 = 256 * 1024;

/// Errors from the blob store.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The body is larger than the write's `max_size`.
    #[error("blob larger than the maximum of {max} bytes")]
    TooLarge {
        /// The limit that was exceeded.
        max: u64,
    },
    /// The body's length differs from the declared length.
    #[error("body has {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// The declared length.
        expected: u64,
        /// Bytes received; when the body ran long, reading stopped at the
        /// first chunk that went past `expected`, so this is a lower bound.
        actual: u64,
    },
    /// The body's MD5 differs from the declared one.
    #[error(
        "body MD5 {} does not match the expected {}",
        hex::encode(actual),
        hex::encode(expected)
    )]
    Md5Mismatch {
        /// The declared digest.
        expected: [u8; 16],
        /// The digest of the bytes received.
        actual: [u8; 16],
    },
    /// The body stream failed.
    #[error("reading the body failed: {0}")]
    Body(#[source] Box<dyn StdError + Send + Sync>),
    /// A blob an object refers to does not exist.
    #[error("blob {0} is missing")]
    Missing(String),
    /// A blob on disk has a different size than its record says.
    #[error("blob {blob_id} has {actual} bytes, its record says {expected}")]
    BlobSizeMismatch {
        /// The blob.
        blob_id: String,
        /// Size recorded for the segment.
        expected: u64,
        /// Size of the file on disk.
        actual: u64,
    },
    /// A blob id is not 32 lowercase hex digits.
    #[error("invalid blob id {0:?}")]
    InvalidId(String),
    /// A read range lies outside the object or ends before it starts.
    #[error("range {start}..{end} is invalid for an object of {len} bytes")]
    InvalidRange {
        /// First byte requested.
        start: u64,
        /// One past the last byte requested.
        end: u64,
        /// Object length.
        len: u64,
    },
    /// The file system failed.
    #[error("blob I/O failed: {0}")]
    Io(#[from] io::Error),
}

/// Limits and expectations a write enforces while streaming the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WriteLimits {
    /// Largest body accepted; reading stops as soon as the body exceeds it.
    pub max_size: u64,
    /// Exact body length, when the client declared one (`Content-Length`).
    pub expected_size: Option<u64>,
    /// Body MD5, when the client declared one (`Content-MD5`).
    pub expected_md5: Option<[u8; 16]>,
}

impl WriteLimits {
    /// Limits that only cap the size.
    pub fn max(max_size: u64) -> Self {
        Self {
            max_size,
            expected_size: None,
            expected_md5: None,
        }
    }
}

/// A blob that [`BlobStore::write`] made durable and visible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenBlob {
    /// The new blob's id.
    pub blob_id: String,
    /// Bytes written.
    pub size: u64,
    /// MD5 of the bytes written.
    pub md5: [u8; 16],
}

/// Blob files under one root directory (`root/tmp`, `root/data`).
///
/// Cheap to clone; clones share the same directory.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
}

impl BlobStore {
    /// Creates `root/tmp` and `root/data` (with its 256 fan-out
    /// directories) if needed, and deletes everything left in `root/tmp` by
    /// writes a previous process did not finish.
    pub async fn open(root: impl Into<PathBuf>) -> Result<Self, BlobError> {
        let store = Self { root: root.into() };
        let (root, tmp, data) = (store.root.clone(), store.tmp_dir(), store.data_dir());
        blocking(move || {
            std::fs::create_dir_all(&tmp)?;
            std::fs::create_dir_all(&data)?;
            for byte in 0..=255u8 {
                let dir = data.join(hex::encode([byte]));
                match std::fs::create_dir(&dir) {
                    Ok(()) => {}
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                    Err(e) => return Err(e.into()),
                }
            }
            let mut removed = 0usize;
            for entry in std::fs::read_dir(&tmp)? {
                let entry = entry?;
                let path = entry.path();
                let result = if entry.file_type()?.is_dir() {
                    std::fs::remove_dir_all(&path)
                } else {
                    std::fs::remove_file(&path)
                };
                match result {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
            if removed > 0 {
                tracing::info!(removed, dir = %tmp.display(), "removed temporary files of interrupted writes");
            }
            sync_dir_blocking(&data)?;
            sync_dir_blocking(&root)?;
            Ok(())
        })
        .await?;
        Ok(store)
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Streams `body` into a new blob and makes it durable.
    ///
    /// The body goes to `data/<2 hex>/<id>` chunk by chunk (never buffered
    /// whole; up to 256 KiB are gathered before the file is written), hashed
    /// with MD5 and checked against `limits` as it arrives. On success the
    /// file and its directory are fsynced before the blob is returned. On
    /// any error (the body stream fails, the body is too large, its size or
    /// MD5 differ from the expected ones, I/O fails) the file is removed;
    /// the same holds if the returned future is dropped while the body
    /// streams. (Dropped while its last blocking step runs, the blob may be
    /// left whole and unreferenced, as when a caller goes away before it
    /// commits the record: the start-up sweep removes it.)
    pub async fn write<S, E>(&self, body: S, limits: WriteLimits) -> Result<WrittenBlob, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        self.write_encrypted(body, limits, None).await
    }

    /// [`BlobStore::write`], encrypting the file under the data key `key`
    /// (when given) with the blob's own [`BlobCipher`]; size and MD5 are
    /// those of the plaintext, which never reaches the disk.
    pub async fn write_encrypted<S, E>(
        &self,
        body: S,
        limits: WriteLimits,
        key: Option<&[u8; 32]>,
    ) -> Result<WrittenBlob, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Into<Box<dyn StdError + Send + Sync>>,
    {
        if let Some(expected) = limits.expected_size
            && expected > limits.max_size
        {
            return Err(BlobError::TooLarge {
                max: limits.max_size,
            });
        }
        let blob_id = new_id();
        let cipher = key.map(|key| BlobCipher::new(key, &blob_id));
        let path = self.blob_path(&blob_id);
        let mut hasher = Md5::new();
        let mut size = 0u64;
        // The body's first bytes, until it proves larger than SMALL_BODY;
        // then the file, created with a guard that removes it unless the
        // write completes.
        let mut head: Vec<Bytes> = Vec::new();
        let mut streaming: Option<(tokio::fs::File, TempGuard)> = None;
        let mut body = pin!(body);
        while let Some(item) = body.next().await {
            let chunk = match item {
                Ok(chunk) => chunk,
                Err(e) => return Err(BlobError::Body(e.into())),
            };
            if chunk.is_empty() {
                continue;
            }
            let new_size = size.saturating_add(chunk.len() as u64);
            if new_size > limits.max_size {
                return Err(BlobError::TooLarge {
                    max: limits.max_size,
                });
            }
            if let Some(expected) = limits.expected_size
                && new_size > expected
            {
                return Err(BlobError::SizeMismatch {
                    expected,
                    actual: new_size,
                });
            }
            hasher.update(&chunk);
            let chunk = match &cipher {
                Some(cipher) => {
                    let mut sealed = chunk.to_vec();
                    cipher.apply(size, &mut sealed);
                    Bytes::from(sealed)
                }
                None => chunk,
            };
            size = new_size;
            match &mut streaming {
                Some((file, _)) => file.write_all(&chunk).await?,
                None => {
                    head.push(chunk);
                    if size > SMALL_BODY {
                        let guard = TempGuard::new(path.clone());
                        let mut file = tokio::fs::OpenOptions::new()
                            .write(true)
                            .create_new(true)
                            .open(&path)
                            .await?;
                        for chunk in head.drain(..) {
                            file.write_all(&chunk).await?;
                        }
                        streaming = Some((file, guard));
                    }
                }
            }
        }
        if let Some(expected) = limits.expected_size
            && size != expected
        {
            return Err(BlobError::SizeMismatch {
                expected,
                actual: size,
            });
        }
        let md5: [u8; 16] = hasher.finalize().into();
        if let Some(expected) = limits.expected_md5
            && md5 != expected
        {
            return Err(BlobError::Md5Mismatch {
                expected,
                actual: md5,
            });
        }
        match streaming {
            // A small body: created, written and made durable in one
            // blocking call (one hop to the blocking pool, not one per step).
            None => blocking(move || write_small(&path, &head)).await?,
            Some((mut file, mut guard)) => {
                file.flush().await?;
                file.sync_all().await?;
                drop(file);
                let dir = path.parent().map(Path::to_path_buf).unwrap_or_default();
                blocking(move || sync_dir_blocking(&dir)).await?;
                guard.disarm();
            }
        }
        Ok(WrittenBlob { blob_id, size, md5 })
    }

    /// Opens the blobs of an object for reading now.
    ///
    /// `segments` lists the object's blobs in order as `(blob_id, size)`;
    /// the reader yields their concatenation restricted to `range` (byte
    /// offsets within the whole object, end exclusive; `None` for all of
    /// it). Every blob the range touches is opened before this returns, so a
    /// later delete or overwrite of the object cannot change what the reader
    /// yields. Blobs the range does not touch are neither opened nor checked.
    ///
    /// Fails with [`BlobError::Missing`] if a needed blob does not exist,
    /// [`BlobError::BlobSizeMismatch`] if its size differs from the segment's,
    /// [`BlobError::InvalidRange`] if the range ends before it starts or past
    /// the object's end, and [`BlobError::InvalidId`] for a malformed id.
    pub async fn open_object(
        &self,
        segments: &[(String, u64)],
        range: Option<std::ops::Range<u64>>,
    ) -> Result<ObjectReader, BlobError> {
        self.open_object_encrypted(segments, range, None).await
    }

    /// [`BlobStore::open_object`] of blobs written with
    /// [`BlobStore::write_encrypted`] under the data key `key`: the reader
    /// yields the plaintext, any range of it decrypted on its own.
    pub async fn open_object_encrypted(
        &self,
        segments: &[(String, u64)],
        range: Option<std::ops::Range<u64>>,
        key: Option<&[u8; 32]>,
    ) -> Result<ObjectReader, BlobError> {
        for (id, _) in segments {
            validate_id(id)?;
        }
        let total = segments
            .iter()
            .try_fold(0u64, |acc, (_, size)| acc.checked_add(*size))
            .ok_or_else(|| {
                io::Error::new(io::ErrorKind::InvalidInput, "object size overflows u64")
            })?;
        let range = range.unwrap_or(0..total);
        if range.start > range.end || range.end > total {
            return Err(BlobError::InvalidRange {
                start: range.start,
                end: range.end,
                len: total,
            });
        }
        let mut wanted = Vec::new();
        let mut pos = 0u64;
        for (id, size) in segments {
            let seg_end = pos + size;
            let start = range.start.max(pos);
            let end = range.end.min(seg_end);
            if start < end {
                wanted.push(read::Wanted {
                    blob_id: id.clone(),
                    path: self.blob_path(id),
                    size: *size,
                    offset: start - pos,
                    len: end - start,
                    cipher: key.map(|key| BlobCipher::new(key, id)),
                });
            }
            pos = seg_end;
        }
        let len = range.end - range.start;
        blocking(move || read::open_pieces(wanted, len)).await
    }

    /// Deletes blobs; ids that do not exist are ignored.
    ///
    /// Every id is validated before anything is deleted.
    pub async fn delete(&self, blob_ids: &[String]) -> Result<(), BlobError> {
        for id in blob_ids {
            validate_id(id)?;
        }
        for id in blob_ids {
            match tokio::fs::remove_file(self.blob_path(id)).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Deletes every blob whose id is not in `referenced` and returns how
    /// many it removed.
    ///
    /// Meant for start-up, before any write: it removes blobs written by a
    /// process that died before committing their record, and blobs whose
    /// delete never ran. A blob written concurrently but not yet committed
    /// would be removed too. Files under `data/` that are not blobs are left
    /// alone (and logged).
    pub async fn sweep(&self, referenced: &HashSet<String>) -> Result<usize, BlobError> {
        let mut removed = 0usize;
        let mut dirs = tokio::fs::read_dir(self.data_dir()).await?;
        while let Some(dir) = dirs.next_entry().await? {
            if !dir.file_type().await?.is_dir() {
                tracing::warn!(path = %dir.path().display(), "unexpected file in the blob data directory");
                continue;
            }
            let mut files = tokio::fs::read_dir(dir.path()).await?;
            while let Some(file) = files.next_entry().await? {
                let name = file.file_name();
                let Some(id) = name.to_str().filter(|id| is_valid_id(id)) else {
                    tracing::warn!(path = %file.path().display(), "unexpected file in the blob data directory");
                    continue;
                };
                if referenced.contains(id) {
                    continue;
                }
                match tokio::fs::remove_file(file.path()).await {
                    Ok(()) => removed += 1,
                    Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                    Err(e) => return Err(e.into()),
                }
            }
        }
        if removed > 0 {
            tracing::info!(removed, "swept unreferenced blobs");
        }
        Ok(removed)
    }

    fn tmp_dir(&self) -> PathBuf {
        self.root.join(TMP_DIR)
    }

    fn data_dir(&self) -> PathBuf {
        self.root.join(DATA_DIR)
    }

    /// Path of a blob; `id` must already be validated.
    fn blob_path(&self, id: &str) -> PathBuf {
        self.data_dir().join(&id[..2]).join(id)
    }
}

/// Whether `id` is a well-formed blob id: 32 lowercase hex digits.
pub fn is_valid_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

fn validate_id(id: &str) -> Result<(), BlobError> {
    if is_valid_id(id) {
        Ok(())
    } else {
        Err(BlobError::InvalidId(id.to_owned()))
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Runs blocking file-system work off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, BlobError>
where
    F: FnOnce() -> Result<T, BlobError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| BlobError::Io(io::Error::other(e)))?
}

fn sync_dir_blocking(dir: &Path) -> Result<(), BlobError> {
    Ok(durable::sync_dir(dir)?)
}

/// Creates the blob file `path` holding `chunks`, fsyncs it and its
/// directory; removes it again if any step fails.
fn write_small(path: &Path, chunks: &[Bytes]) -> Result<(), BlobError> {
    let mut guard = TempGuard::new(path.to_path_buf());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)?;
    for chunk in chunks {
        file.write_all(chunk)?;
    }
    file.sync_all()?;
    drop(file);
    sync_dir_blocking(path.parent().unwrap_or(path))?;
    guard.disarm();
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        assert!(is_valid_id(&new_id()));
        assert!(is_valid_id("0123456789abcdef0123456789abcdef"));
        assert!(!is_valid_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_valid_id("0123456789abcdef0123456789abcde"));
        assert!(!is_valid_id("../../../../../../etc/passwd/xxxx"));
        assert!(!is_valid_id("0123456789abcdef0123456789abcde/"));
        assert!(!is_valid_id(""));
    }
}
