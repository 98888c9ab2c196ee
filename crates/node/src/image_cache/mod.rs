//! The node's image cache: one verified local copy of each image part
//! (kernel, ramdisk, root disk), fetched once from the object store, and the
//! qcow2 overlays that instance root disks are made of, so N instances of one
//! image cost one copy plus N small overlays.
//!
//! Layout under the cache root (e.g. `NODE_DATA/images`):
//!
//! - `data/<name>`: verified copies, read-only. `<name>` is the SHA-256 (hex)
//!   of the artifact's bucket, key and ETag, so a changed object (new ETag)
//!   is a different entry.
//! - `tmp/`: downloads in progress. Emptied by [`ImageCache::open`], so a
//!   half-downloaded image is never used.
//! - `index.json`: the entries with their last use and pins, replaced
//!   atomically (temporary file, fsync, rename, directory fsync).
//!
//! Crash safety: a copy appears in `data/` only complete and verified
//! (written to `tmp/`, fsynced, renamed); the index is written after the
//! rename, and [`ImageCache::open`] reconciles both (files without a present
//! index entry are removed, entries whose file is missing or of the wrong
//! size are forgotten). Pins are persisted before `pin` returns, so an image
//! in use is never evicted, across restarts too.
//!
//! The safe order for an instance is [`ImageCache::pin`], then
//! [`ImageCache::get`], then [`create_overlay`]: an entry may be pinned before
//! it is cached, and from then on no eviction (by another `get` or by
//! `unpin_all`) can remove it between the download and the overlay.

use mallee_util::durable::{self, TempGuard};
use mallee_util::process::{Cmd, ProcessError};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex as StdMutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use mallee_node_api::Artifact;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use tokio::io::AsyncWriteExt;
use tokio::sync::Mutex;

mod overlay;

pub use overlay::create_overlay;

/// Directory (under the root) holding verified copies.
const DATA_DIR: &str = "data";
/// Directory (under the root) holding downloads in progress.
const TMP_DIR: &str = "tmp";
/// The index file (under the root).
const INDEX_FILE: &str = "index.json";
/// The temporary name of the index agents wrote before they shared
/// [`durable::write_atomic`]; a leftover is removed at open like the
/// current one.
const OLD_INDEX_TMP: &str = "index.json.tmp";
/// Version of the index format.
const INDEX_VERSION: u32 = 1;
/// How long a `qemu-img` invocation may run before it is killed (images are
/// untrusted input; a crafted one must not hang the agent).
const QEMU_IMG_TIMEOUT: Duration = Duration::from_secs(120);

/// Errors from the image cache and overlay creation.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// The artifact source could not deliver the artifact's bytes.
    #[error("fetching {bucket}/{key} failed: {message}")]
    Fetch {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// What went wrong.
        message: String,
    },
    /// The bytes received (or the cached copy) are not the artifact's size.
    #[error("{bucket}/{key} has {actual} bytes, expected {expected}")]
    SizeMismatch {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The artifact's declared size.
        expected: u64,
        /// Bytes received; when the stream ran long, reading stopped at the
        /// first chunk past `expected`, so this is a lower bound.
        actual: u64,
    },
    /// The MD5 of the bytes received differs from the artifact's plain ETag.
    #[error("{bucket}/{key} has MD5 {actual}, expected {expected} (ETag)")]
    Md5Mismatch {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The MD5 from the ETag (hex).
        expected: String,
        /// The MD5 of the bytes received (hex).
        actual: String,
    },
    /// A local file-system operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done, with the path.
        context: String,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The index file cannot be read or is not valid.
    #[error("image cache index {path}: {message}")]
    Index {
        /// The index file.
        path: PathBuf,
        /// What is wrong with it.
        message: String,
    },
    /// The overlay to create already exists (it is never overwritten: it may
    /// hold an instance's data).
    #[error("overlay {0} already exists")]
    OverlayExists(PathBuf),
    /// The overlay would be smaller than its base.
    #[error("overlay size {requested} bytes is smaller than the base's {base} bytes")]
    OverlayTooSmall {
        /// The size asked for.
        requested: u64,
        /// The base's virtual size.
        base: u64,
    },
    /// The base image is not one an overlay may be built on.
    #[error("base image {path}: {message}")]
    UnsupportedBase {
        /// The base image.
        path: PathBuf,
        /// Why it is refused.
        message: String,
    },
    /// `qemu-img` could not be run, failed, or gave unexpected output.
    #[error("qemu-img {action}: {message}")]
    QemuImg {
        /// The subcommand and its main argument.
        action: String,
        /// What went wrong (its stderr when it failed).
        message: String,
    },
}

impl CacheError {
    /// A [`CacheError::Fetch`] for `artifact`, for [`ArtifactSource`]
    /// implementations.
    pub fn fetch(artifact: &Artifact, message: impl fmt::Display) -> Self {
        Self::Fetch {
            bucket: artifact.bucket.clone(),
            key: artifact.key.clone(),
            message: message.to_string(),
        }
    }

    fn io(context: impl fmt::Display) -> impl FnOnce(io::Error) -> Self {
        move |source| Self::Io {
            context: context.to_string(),
            source,
        }
    }
}

/// Where the cache gets artifacts from (the object store).
#[async_trait]
pub trait ArtifactSource: Send + Sync {
    /// Streams the artifact's bytes.
    async fn fetch(
        &self,
        artifact: &Artifact,
    ) -> Result<BoxStream<'static, io::Result<Bytes>>, CacheError>;
}

/// One cached (or pinned-before-cached) artifact, as stored in the index.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Entry {
    /// File name under `data/`.
    name: String,
    /// The artifact it is a copy of.
    artifact: Artifact,
    /// Bytes on disk (0 while not present).
    size: u64,
    /// Whether the verified copy is in `data/`; `false` for an entry that is
    /// only pinned so far.
    present: bool,
    /// Logical time of the last use (a counter, higher is more recent).
    last_used: u64,
    /// Holders (instance ids) using it.
    pins: BTreeSet<String>,
}

/// The index file's contents.
#[derive(Debug, Serialize, Deserialize)]
struct IndexFile {
    version: u32,
    entries: Vec<Entry>,
}

/// The in-memory index.
#[derive(Debug, Clone, Default)]
struct State {
    entries: BTreeMap<String, Entry>,
    /// Next logical time.
    clock: u64,
}

impl State {
    fn tick(&mut self) -> u64 {
        let now = self.clock;
        self.clock = self.clock.saturating_add(1);
        now
    }

    fn used(&self) -> u64 {
        self.entries
            .values()
            .filter(|e| e.present)
            .map(|e| e.size)
            .sum()
    }

    /// Removes least-recently-used, present, unpinned entries (never `keep`)
    /// until the total is within `limit` or nothing more can go; returns the
    /// names removed, whose files the caller deletes after persisting.
    fn evict(&mut self, limit: u64, keep: Option<&str>) -> Vec<String> {
        let mut evicted = Vec::new();
        while self.used() > limit {
            let victim = self
                .entries
                .values()
                .filter(|e| e.present && e.pins.is_empty() && Some(e.name.as_str()) != keep)
                .min_by_key(|e| e.last_used)
                .map(|e| e.name.clone());
            let Some(victim) = victim else { break };
            self.entries.remove(&victim);
            evicted.push(victim);
        }
        evicted
    }
}

/// The node's cache of verified image copies, bounded by a size limit with
/// LRU eviction of unpinned entries.
pub struct ImageCache {
    root: PathBuf,
    limit_bytes: u64,
    source: Arc<dyn ArtifactSource>,
    /// The index; held across its persistence so writes are ordered.
    state: Mutex<State>,
    /// Total bytes of present entries, mirrored for [`ImageCache::used_bytes`].
    used: AtomicU64,
    /// One lock per entry name being fetched: concurrent `get`s of one
    /// artifact wait for the first one's download instead of repeating it.
    downloads: StdMutex<HashMap<String, Arc<Mutex<()>>>>,
    /// Held while the index file is written.
    index_writer: Arc<StdMutex<()>>,
}

impl fmt::Debug for ImageCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ImageCache")
            .field("root", &self.root)
            .field("limit_bytes", &self.limit_bytes)
            .field("used_bytes", &self.used_bytes())
            .finish_non_exhaustive()
    }
}

impl ImageCache {
    /// Opens (creating if needed) the cache at `root`: removes partial
    /// downloads, loads the index and reconciles it with the files (copies
    /// without a present entry are removed; entries whose copy is missing or
    /// of the wrong size are forgotten, keeping their pins), then evicts
    /// unpinned entries if the cache is over `limit_bytes`.
    pub async fn open(
        root: PathBuf,
        limit_bytes: u64,
        source: Arc<dyn ArtifactSource>,
    ) -> Result<Self, CacheError> {
        let dir = root.clone();
        let (state, evicted) = blocking(move || open_blocking(&dir, limit_bytes)).await?;
        let cache = Self {
            root,
            limit_bytes,
            source,
            used: AtomicU64::new(state.used()),
            state: Mutex::new(state),
            downloads: StdMutex::new(HashMap::new()),
            index_writer: Arc::new(StdMutex::new(())),
        };
        cache.remove_copies(evicted).await;
        Ok(cache)
    }

    /// A verified local copy: downloads once (concurrent callers for the
    /// same artifact share one download), verifies size and, for a plain-MD5
    /// ETag (32 hex, no '-'), the MD5; multipart ETags ("…-N") and other
    /// ETag forms are checked by size only. Streams to a temp file, fsync,
    /// rename. Marks it most recently used. Evicts least-recently-used
    /// unpinned entries afterwards if over the limit (an entry larger than
    /// the limit alone is still kept while pinned; the entry just returned is
    /// never evicted by its own `get`).
    ///
    /// The returned path stays valid while the artifact is pinned; pin it
    /// before calling `get` when the copy must not be evicted by concurrent
    /// work (see the module documentation).
    pub async fn get(&self, artifact: &Artifact) -> Result<PathBuf, CacheError> {
        let name = entry_name(artifact);
        let lock = {
            let mut downloads = self.downloads.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(downloads.entry(name.clone()).or_default())
        };
        let result = {
            let _held = lock.lock().await;
            self.get_locked(artifact, &name).await
        };
        {
            let mut downloads = self.downloads.lock().unwrap_or_else(|e| e.into_inner());
            // Ours and the map's: nobody else is waiting on this name.
            if Arc::strong_count(&lock) <= 2 {
                downloads.remove(&name);
            }
        }
        result
    }

    /// Records that `holder` (an instance id) uses the artifact (e.g. as the
    /// backing file of its root overlay), so it is never evicted; persisted
    /// (index file written atomically) so pins survive restarts. The
    /// artifact need not be cached yet: pinning first and then calling
    /// [`ImageCache::get`] protects the copy from the moment it exists.
    pub async fn pin(&self, artifact: &Artifact, holder: &str) -> Result<(), CacheError> {
        let name = entry_name(artifact);
        self.update(|st| {
            let entry = st.entries.entry(name.clone()).or_insert_with(|| Entry {
                name,
                artifact: artifact.clone(),
                size: 0,
                present: false,
                last_used: 0,
                pins: BTreeSet::new(),
            });
            entry.pins.insert(holder.to_owned());
        })
        .await
    }

    /// Removes every pin of `holder` (an instance that is gone), persisted
    /// like [`ImageCache::pin`]; then evicts least-recently-used unpinned
    /// entries if the cache is over its limit.
    pub async fn unpin_all(&self, holder: &str) -> Result<(), CacheError> {
        let limit = self.limit_bytes;
        let evicted = self
            .update(|st| {
                for entry in st.entries.values_mut() {
                    entry.pins.remove(holder);
                }
                st.entries.retain(|_, e| e.present || !e.pins.is_empty());
                st.evict(limit, None)
            })
            .await?;
        self.remove_copies(evicted).await;
        Ok(())
    }

    /// Total bytes cached.
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }

    /// `get` with the download lock of `name` held.
    async fn get_locked(&self, artifact: &Artifact, name: &str) -> Result<PathBuf, CacheError> {
        let path = self.root.join(DATA_DIR).join(name);
        let cached = {
            let st = self.state.lock().await;
            st.entries.get(name).filter(|e| e.present).map(|e| e.size)
        };
        if let Some(size) = cached {
            if size != artifact.size {
                return Err(CacheError::SizeMismatch {
                    bucket: artifact.bucket.clone(),
                    key: artifact.key.clone(),
                    expected: artifact.size,
                    actual: size,
                });
            }
            match tokio::fs::metadata(&path).await {
                Ok(meta) if meta.is_file() && meta.len() == size => {
                    if self.touch(name).await? {
                        return Ok(path);
                    }
                    // Evicted meanwhile: fetch it again.
                }
                found => {
                    tracing::warn!(
                        path = %path.display(),
                        ?found,
                        "cached image copy missing or damaged; fetching it again"
                    );
                    self.forget_copy(name).await?;
                }
            }
        }
        self.download(artifact, name, &path).await
    }

    /// Marks a present entry most recently used; `false` if it is not
    /// present (any more).
    async fn touch(&self, name: &str) -> Result<bool, CacheError> {
        self.update(|st| {
            let now = st.tick();
            match st.entries.get_mut(name) {
                Some(entry) if entry.present => {
                    entry.last_used = now;
                    true
                }
                _ => false,
            }
        })
        .await
    }

    /// Records that an entry's copy is gone (keeping its pins).
    async fn forget_copy(&self, name: &str) -> Result<(), CacheError> {
        self.update(|st| {
            if let Some(entry) = st.entries.get_mut(name) {
                entry.present = false;
                entry.size = 0;
            }
            st.entries.retain(|_, e| e.present || !e.pins.is_empty());
        })
        .await
    }

    /// Fetches, verifies and commits a copy to `path`, then evicts.
    async fn download(
        &self,
        artifact: &Artifact,
        name: &str,
        path: &Path,
    ) -> Result<PathBuf, CacheError> {
        let tmp = self.root.join(TMP_DIR).join(format!("{name}.{}", unique()));
        let mut guard = TempGuard::new(tmp.clone());
        tracing::info!(
            bucket = %artifact.bucket,
            key = %artifact.key,
            size = artifact.size,
            "fetching image artifact"
        );
        let stream = self.source.fetch(artifact).await?;
        let size = write_verified(artifact, stream, &tmp).await?;

        tokio::fs::rename(&tmp, path)
            .await
            .map_err(CacheError::io(format_args!(
                "renaming {} to {}",
                tmp.display(),
                path.display()
            )))?;
        guard.disarm();
        let data_dir = self.root.join(DATA_DIR);
        let committed = match blocking(move || sync_dir(&data_dir)).await {
            Ok(()) => {
                let limit = self.limit_bytes;
                self.update(|st| {
                    let now = st.tick();
                    let entry = st.entries.entry(name.to_owned()).or_insert_with(|| Entry {
                        name: name.to_owned(),
                        artifact: artifact.clone(),
                        size,
                        present: true,
                        last_used: now,
                        pins: BTreeSet::new(),
                    });
                    entry.artifact = artifact.clone();
                    entry.size = size;
                    entry.present = true;
                    entry.last_used = now;
                    st.evict(limit, Some(name))
                })
                .await
            }
            Err(e) => Err(e),
        };
        match committed {
            Ok(evicted) => {
                self.remove_copies(evicted).await;
                Ok(path.to_path_buf())
            }
            Err(e) => {
                // Not recorded as present: take the file back out so the
                // index and the files agree (open would remove it anyway).
                if let Err(remove) = tokio::fs::remove_file(path).await {
                    tracing::warn!(path = %path.display(), error = %remove, "cannot remove uncommitted image copy");
                }
                Err(e)
            }
        }
    }

    /// Applies `f` to a copy of the index, persists it, and only then makes
    /// it current: a failed write leaves memory and disk unchanged.
    async fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> Result<R, CacheError> {
        let mut st = self.state.lock().await;
        let mut next = st.clone();
        let result = f(&mut next);
        let index = IndexFile {
            version: INDEX_VERSION,
            entries: next.entries.values().cloned().collect(),
        };
        let root = self.root.clone();
        // The write runs on a blocking thread that outlives this future if
        // the caller is cancelled (an instance deleted mid-start); the
        // writer lock keeps two such writes from sharing the temp file.
        let writer = self.index_writer.clone();
        blocking(move || {
            let _writing = writer
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            write_index(&root, &index)
        })
        .await?;
        self.used.store(next.used(), Ordering::Relaxed);
        *st = next;
        Ok(result)
    }

    /// Deletes the copies of evicted entries (already out of the index).
    async fn remove_copies(&self, names: Vec<String>) {
        for name in names {
            let path = self.root.join(DATA_DIR).join(&name);
            tracing::info!(path = %path.display(), "evicting cached image copy");
            match tokio::fs::remove_file(&path).await {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                // Left for the next open to remove as an orphan.
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove evicted image copy");
                }
            }
        }
    }
}

/// The stable file name of an artifact's copy: SHA-256 (hex) of its bucket,
/// key and ETag.
fn entry_name(artifact: &Artifact) -> String {
    let mut hasher = Sha256::new();
    for part in [&artifact.bucket, &artifact.key, &artifact.etag] {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part.as_bytes());
    }
    hex::encode(hasher.finalize())
}

/// The MD5 a plain (single-part) ETag stands for: 32 hex digits, quotes
/// allowed. `None` for multipart ETags (`…-N`) and other forms.
fn plain_etag_md5(etag: &str) -> Option<[u8; 16]> {
    let etag = etag.trim().trim_matches('"');
    if etag.len() != 32 || etag.contains('-') {
        return None;
    }
    let mut md5 = [0u8; 16];
    hex::decode_to_slice(etag, &mut md5).ok()?;
    Some(md5)
}

/// Streams `stream` into a new file at `tmp`, checking size (as it goes) and
/// MD5, then fsyncs it and makes it read-only. Returns the size.
async fn write_verified(
    artifact: &Artifact,
    mut stream: BoxStream<'static, io::Result<Bytes>>,
    tmp: &Path,
) -> Result<u64, CacheError> {
    let size_mismatch = |actual| CacheError::SizeMismatch {
        bucket: artifact.bucket.clone(),
        key: artifact.key.clone(),
        expected: artifact.size,
        actual,
    };
    let write_err = || CacheError::io(format!("writing {}", tmp.display()));
    let mut file = tokio::fs::File::create(tmp)
        .await
        .map_err(CacheError::io(format_args!("creating {}", tmp.display())))?;
    let mut hasher = Md5::new();
    let mut size: u64 = 0;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| CacheError::fetch(artifact, e))?;
        let new_size = size.saturating_add(chunk.len() as u64);
        if new_size > artifact.size {
            return Err(size_mismatch(new_size));
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await.map_err(write_err())?;
        size = new_size;
    }
    if size != artifact.size {
        return Err(size_mismatch(size));
    }
    let md5: [u8; 16] = hasher.finalize().into();
    match plain_etag_md5(&artifact.etag) {
        Some(expected) if expected != md5 => {
            return Err(CacheError::Md5Mismatch {
                bucket: artifact.bucket.clone(),
                key: artifact.key.clone(),
                expected: hex::encode(expected),
                actual: hex::encode(md5),
            });
        }
        Some(_) => {}
        None => tracing::debug!(
            etag = %artifact.etag,
            "ETag is not a plain MD5; image copy verified by size only"
        ),
    }
    file.flush().await.map_err(write_err())?;
    file.sync_all().await.map_err(write_err())?;
    file.set_permissions(std::fs::Permissions::from_mode(0o444))
        .await
        .map_err(write_err())?;
    Ok(size)
}

/// `open`'s file-system work: directories, partial downloads, index,
/// reconciliation, eviction. Returns the state and the names to delete.
fn open_blocking(root: &Path, limit: u64) -> Result<(State, Vec<String>), CacheError> {
    let data = root.join(DATA_DIR);
    let tmp = root.join(TMP_DIR);
    for dir in [root, &data, &tmp] {
        std::fs::create_dir_all(dir)
            .map_err(CacheError::io(format_args!("creating {}", dir.display())))?;
    }
    // Partial downloads and a half-written index.
    for entry in read_dir(&tmp)? {
        let path = entry.path();
        tracing::info!(path = %path.display(), "removing partial image download");
        let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(&path)
        } else {
            std::fs::remove_file(&path)
        };
        removed.map_err(CacheError::io(format_args!("removing {}", path.display())))?;
    }
    for index_tmp in [
        durable::temp_path(&root.join(INDEX_FILE)),
        root.join(OLD_INDEX_TMP),
    ] {
        match std::fs::remove_file(&index_tmp) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => {
                return Err(CacheError::io(format_args!(
                    "removing {}",
                    index_tmp.display()
                ))(e));
            }
        }
    }

    let mut state = State {
        entries: read_index(root)?
            .into_iter()
            .map(|e| (e.name.clone(), e))
            .collect(),
        clock: 0,
    };
    state.clock = state
        .entries
        .values()
        .map(|e| e.last_used.saturating_add(1))
        .max()
        .unwrap_or(0);

    // Entries whose copy is not what the index says.
    for entry in state.entries.values_mut().filter(|e| e.present) {
        let path = data.join(&entry.name);
        let ok = std::fs::metadata(&path).is_ok_and(|m| m.is_file() && m.len() == entry.size);
        if !ok {
            tracing::warn!(path = %path.display(), "cached image copy missing or damaged; forgetting it");
            entry.present = false;
            entry.size = 0;
            if let Err(e) = std::fs::remove_file(&path)
                && e.kind() != io::ErrorKind::NotFound
            {
                return Err(CacheError::io(format_args!("removing {}", path.display()))(
                    e,
                ));
            }
        }
    }
    state.entries.retain(|_, e| e.present || !e.pins.is_empty());

    // Copies without a present entry: committed but not yet indexed, or
    // evicted but not yet deleted, when the agent stopped.
    for entry in read_dir(&data)? {
        let name = entry.file_name();
        let known = name
            .to_str()
            .and_then(|n| state.entries.get(n))
            .is_some_and(|e| e.present);
        if !known {
            let path = entry.path();
            tracing::info!(path = %path.display(), "removing unindexed image copy");
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                std::fs::remove_dir_all(&path)
            } else {
                std::fs::remove_file(&path)
            };
            removed.map_err(CacheError::io(format_args!("removing {}", path.display())))?;
        }
    }

    let evicted = state.evict(limit, None);
    let index = IndexFile {
        version: INDEX_VERSION,
        entries: state.entries.values().cloned().collect(),
    };
    write_index(root, &index)?;
    sync_dir(&data)?;
    sync_dir(&tmp)?;
    Ok((state, evicted))
}

/// The index's entries; none when there is no index yet.
fn read_index(root: &Path) -> Result<Vec<Entry>, CacheError> {
    let path = root.join(INDEX_FILE);
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => {
            return Err(CacheError::io(format_args!("reading {}", path.display()))(
                e,
            ));
        }
    };
    let index: IndexFile = serde_json::from_slice(&text).map_err(|e| CacheError::Index {
        path: path.clone(),
        message: e.to_string(),
    })?;
    if index.version != INDEX_VERSION {
        return Err(CacheError::Index {
            path,
            message: format!("unsupported version {}", index.version),
        });
    }
    Ok(index.entries)
}

/// Replaces the index atomically (see [`durable::write_atomic`]).
fn write_index(root: &Path, index: &IndexFile) -> Result<(), CacheError> {
    let path = root.join(INDEX_FILE);
    let text = serde_json::to_vec_pretty(index).map_err(|e| CacheError::Index {
        path: path.clone(),
        message: e.to_string(),
    })?;
    durable::write_atomic(&path, &text)
        .map_err(CacheError::io(format_args!("writing {}", path.display())))
}

fn read_dir(dir: &Path) -> Result<Vec<std::fs::DirEntry>, CacheError> {
    std::fs::read_dir(dir)
        .and_then(|entries| entries.collect::<io::Result<Vec<_>>>())
        .map_err(CacheError::io(format_args!("listing {}", dir.display())))
}

fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    durable::sync_dir(dir).map_err(CacheError::io(format_args!(
        "syncing directory {}",
        dir.display()
    )))
}

/// Runs blocking file-system work off the async threads.
async fn blocking<T, F>(f: F) -> Result<T, CacheError>
where
    F: FnOnce() -> Result<T, CacheError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| CacheError::io("image cache worker")(io::Error::other(e)))?
}

/// A suffix unique within this process (temporary names; `open` clears
/// those of earlier processes).
fn unique() -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn artifact(etag: &str) -> Artifact {
        Artifact {
            bucket: "b".into(),
            key: "k".into(),
            size: 1,
            etag: etag.into(),
        }
    }

    #[test]
    fn plain_etags_are_md5s() {
        let md5 = "0123456789abcdef0123456789ABCDEF";
        assert!(plain_etag_md5(md5).is_some());
        assert!(plain_etag_md5(&format!("\"{md5}\"")).is_some());
        assert!(plain_etag_md5("0123456789abcdef0123456789abcdef-3").is_none());
        assert!(plain_etag_md5("0123456789abcdef0123456789abcde-").is_none());
        assert!(plain_etag_md5("not-hex").is_none());
        assert!(plain_etag_md5("zz23456789abcdef0123456789abcdef").is_none());
    }

    #[test]
    fn names_are_stable_and_follow_the_etag() {
        let a = artifact("e1");
        assert_eq!(entry_name(&a), entry_name(&a.clone()));
        assert_ne!(entry_name(&a), entry_name(&artifact("e2")));
        assert_eq!(entry_name(&a).len(), 64);
        // Field boundaries matter: ("ab","c") is not ("a","bc").
        let mut x = a.clone();
        x.bucket = "ab".into();
        x.key = "c".into();
        let mut y = a;
        y.bucket = "a".into();
        y.key = "bc".into();
        assert_ne!(entry_name(&x), entry_name(&y));
    }

    #[test]
    fn eviction_is_lru_and_spares_pins_and_keep() {
        let mut st = State::default();
        for (name, used, pinned) in [
            ("a", 1, false),
            ("b", 2, true),
            ("c", 3, false),
            ("d", 4, false),
        ] {
            let mut pins = BTreeSet::new();
            if pinned {
                pins.insert("i-1".to_owned());
            }
            st.entries.insert(
                name.into(),
                Entry {
                    name: name.into(),
                    artifact: artifact(name),
                    size: 10,
                    present: true,
                    last_used: used,
                    pins,
                },
            );
        }
        assert_eq!(
            st.evict(20, Some("d")),
            vec!["a".to_owned(), "c".to_owned()]
        );
        assert_eq!(st.used(), 20);
        assert!(st.evict(0, Some("d")).is_empty());
    }
}
