//! The image cache through its public API, with real files and a real
//! `qemu-img`.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::BoxStream;
use mallee_node::image_cache::{ArtifactSource, CacheError, ImageCache, create_overlay};
use mallee_node_api::Artifact;
use md5::{Digest, Md5};
use tokio::io::AsyncReadExt;

const MIB: u64 = 1024 * 1024;

/// Serves artifacts from files, counting fetches per key.
#[derive(Default)]
struct FileSource {
    files: Mutex<HashMap<String, PathBuf>>,
    fetches: Mutex<HashMap<String, usize>>,
    total: AtomicUsize,
    /// Pause between chunks, so concurrent callers overlap a download.
    chunk_delay: Option<Duration>,
    /// Never finish: send one chunk, then pend forever.
    stall: bool,
}

impl FileSource {
    fn add(&self, key: &str, path: PathBuf) {
        self.files.lock().unwrap().insert(key.to_owned(), path);
    }

    fn fetches(&self, key: &str) -> usize {
        self.fetches.lock().unwrap().get(key).copied().unwrap_or(0)
    }
}

#[async_trait]
impl ArtifactSource for FileSource {
    async fn fetch(
        &self,
        artifact: &Artifact,
    ) -> Result<BoxStream<'static, io::Result<Bytes>>, CacheError> {
        *self
            .fetches
            .lock()
            .unwrap()
            .entry(artifact.key.clone())
            .or_default() += 1;
        self.total.fetch_add(1, Ordering::SeqCst);
        let path = self
            .files
            .lock()
            .unwrap()
            .get(&artifact.key)
            .cloned()
            .ok_or_else(|| CacheError::fetch(artifact, "NoSuchKey"))?;
        let file = tokio::fs::File::open(&path)
            .await
            .map_err(|e| CacheError::fetch(artifact, e))?;
        let delay = self.chunk_delay;
        let stall = self.stall;
        let stream =
            futures_util::stream::unfold((file, 0usize), move |(mut file, n)| async move {
                if stall && n > 0 {
                    std::future::pending::<()>().await;
                }
                if let Some(delay) = delay {
                    tokio::time::sleep(delay).await;
                }
                let mut buf = vec![0u8; 16 * 1024];
                match file.read(&mut buf).await {
                    Ok(0) => None,
                    Ok(len) => {
                        buf.truncate(len);
                        Some((Ok(Bytes::from(buf)), (file, n + 1)))
                    }
                    Err(e) => Some((Err(e), (file, n + 1))),
                }
            });
        Ok(stream.boxed())
    }
}

struct Fixture {
    dir: tempfile::TempDir,
    source: Arc<FileSource>,
}

impl Fixture {
    fn new(source: FileSource) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("objects")).unwrap();
        Self {
            dir,
            source: Arc::new(source),
        }
    }

    fn root(&self) -> PathBuf {
        self.dir.path().join("images")
    }

    /// Stores an object of `size` bytes (content derived from `key`) and
    /// returns its artifact with a plain MD5 ETag.
    fn object(&self, key: &str, size: usize) -> Artifact {
        let data: Vec<u8> = key
            .bytes()
            .cycle()
            .zip(0u32..)
            .map(|(b, i)| b ^ (i % 251) as u8)
            .take(size)
            .collect();
        let path = self.dir.path().join("objects").join(key);
        std::fs::write(&path, &data).unwrap();
        self.source.add(key, path);
        Artifact {
            bucket: "images".into(),
            key: key.into(),
            size: size as u64,
            etag: hex::encode(Md5::digest(&data)),
        }
    }

    async fn open(&self, limit: u64) -> ImageCache {
        ImageCache::open(self.root(), limit, self.source.clone())
            .await
            .unwrap()
    }

    fn data_files(&self) -> Vec<String> {
        list(&self.root().join("data"))
    }

    fn tmp_files(&self) -> Vec<String> {
        list(&self.root().join("tmp"))
    }
}

fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn concurrent_gets_share_one_download() {
    let fx = Fixture::new(FileSource {
        chunk_delay: Some(Duration::from_millis(2)),
        ..FileSource::default()
    });
    let art = fx.object("disk.img", 300 * 1024);
    let cache = Arc::new(fx.open(10 * MIB).await);

    let gets = (0..5).map(|_| {
        let cache = cache.clone();
        let art = art.clone();
        tokio::spawn(async move { cache.get(&art).await })
    });
    let paths: Vec<PathBuf> = futures_util::future::join_all(gets)
        .await
        .into_iter()
        .map(|r| r.unwrap().unwrap())
        .collect();
    assert_eq!(fx.source.fetches("disk.img"), 1, "one download for 5 gets");
    assert!(paths.iter().all(|p| p == &paths[0]));
    assert_eq!(
        std::fs::read(&paths[0]).unwrap(),
        std::fs::read(fx.dir.path().join("objects/disk.img")).unwrap()
    );
    assert_eq!(cache.used_bytes(), art.size);
    assert!(fx.tmp_files().is_empty());

    // Cached: no further download.
    assert_eq!(cache.get(&art).await.unwrap(), paths[0]);
    assert_eq!(fx.source.fetches("disk.img"), 1);

    // A new ETag (the object changed) is a different entry.
    let mut changed = fx.object("disk.img", 1000);
    changed.etag = hex::encode(Md5::digest(
        std::fs::read(fx.dir.path().join("objects/disk.img")).unwrap(),
    ));
    let other = cache.get(&changed).await.unwrap();
    assert_ne!(other, paths[0]);
    assert_eq!(fx.source.fetches("disk.img"), 2);
    assert_eq!(cache.used_bytes(), art.size + 1000);
}

#[tokio::test]
async fn md5_mismatch_is_an_error_and_caches_nothing() {
    let fx = Fixture::new(FileSource::default());
    let mut art = fx.object("bad.img", 5000);
    art.etag = format!("\"{}\"", hex::encode(Md5::digest(b"something else")));
    let cache = fx.open(MIB).await;
    let err = cache.get(&art).await.unwrap_err();
    assert!(matches!(err, CacheError::Md5Mismatch { .. }), "{err}");
    assert!(fx.data_files().is_empty());
    assert!(fx.tmp_files().is_empty());
    assert_eq!(cache.used_bytes(), 0);

    // Not remembered as cached: the right ETag downloads and verifies.
    let good = fx.object("bad.img", 5000);
    cache.get(&good).await.unwrap();
    assert_eq!(fx.source.fetches("bad.img"), 2);
    assert_eq!(fx.data_files().len(), 1);
}

#[tokio::test]
async fn size_mismatch_is_an_error() {
    let fx = Fixture::new(FileSource::default());
    let art = fx.object("k.img", 5000);
    let cache = fx.open(MIB).await;
    for size in [4999, 5001] {
        let wrong = Artifact {
            size,
            ..art.clone()
        };
        let err = cache.get(&wrong).await.unwrap_err();
        assert!(
            matches!(err, CacheError::SizeMismatch { expected, .. } if expected == size),
            "{err}"
        );
    }
    assert!(fx.data_files().is_empty());
    assert!(fx.tmp_files().is_empty());
    assert_eq!(cache.used_bytes(), 0);
}

#[tokio::test]
async fn multipart_etags_are_checked_by_size_only() {
    let fx = Fixture::new(FileSource::default());
    let mut art = fx.object("multi.img", 5000);
    art.etag = "\"0123456789abcdef0123456789abcdef-3\"".into();
    let cache = fx.open(MIB).await;
    cache.get(&art).await.unwrap();
    let wrong = Artifact {
        size: 4000,
        key: "multi.img".into(),
        etag: "0123456789abcdef0123456789abcdef-4".into(),
        ..art
    };
    assert!(matches!(
        cache.get(&wrong).await,
        Err(CacheError::SizeMismatch { .. })
    ));
}

#[tokio::test]
async fn fetch_errors_are_reported() {
    let fx = Fixture::new(FileSource::default());
    let cache = fx.open(MIB).await;
    let missing = Artifact {
        bucket: "images".into(),
        key: "nope".into(),
        size: 1,
        etag: "x".into(),
    };
    let err = cache.get(&missing).await.unwrap_err();
    assert!(matches!(err, CacheError::Fetch { .. }), "{err}");
    assert!(err.to_string().contains("images/nope"), "{err}");
}

#[tokio::test]
async fn evicts_least_recently_used_over_the_limit() {
    let fx = Fixture::new(FileSource::default());
    let a = fx.object("a", 100);
    let b = fx.object("b", 100);
    let c = fx.object("c", 100);
    let cache = fx.open(250).await;

    let pa = cache.get(&a).await.unwrap();
    let pb = cache.get(&b).await.unwrap();
    cache.get(&a).await.unwrap(); // a is now more recent than b
    let pc = cache.get(&c).await.unwrap();
    assert!(pa.exists() && pc.exists());
    assert!(!pb.exists(), "b was least recently used");
    assert_eq!(cache.used_bytes(), 200);

    // b again: fetched again, and now a is the least recently used.
    cache.get(&b).await.unwrap();
    assert_eq!(fx.source.fetches("b"), 2);
    assert!(!pa.exists() && pb.exists() && pc.exists());
    assert_eq!(cache.used_bytes(), 200);
    assert_eq!(fx.data_files().len(), 2);
}

#[tokio::test]
async fn pinned_entries_survive_eviction_and_restart() {
    let fx = Fixture::new(FileSource::default());
    let a = fx.object("a", 100);
    let b = fx.object("b", 100);
    let c = fx.object("c", 100);
    let d = fx.object("d", 100);
    {
        let cache = fx.open(150).await;
        cache.pin(&a, "i-1").await.unwrap();
        // Pinned before it is cached: protected from the first moment.
        cache.pin(&d, "i-2").await.unwrap();
        cache.get(&a).await.unwrap();
        cache.get(&b).await.unwrap(); // over the limit, but a is pinned and b just got
        assert_eq!(cache.used_bytes(), 200);
        cache.get(&c).await.unwrap(); // b goes
        assert_eq!(cache.used_bytes(), 200);
        assert_eq!(fx.data_files().len(), 2);
    }

    // Restart: the pins are still there (open itself evicts the unpinned c
    // to get back under the limit); a is not fetched again.
    let cache = fx.open(150).await;
    assert_eq!(cache.used_bytes(), 100);
    assert_eq!(fx.data_files().len(), 1);
    let pa = cache.get(&a).await.unwrap();
    assert_eq!(fx.source.fetches("a"), 1);
    let pd = cache.get(&d).await.unwrap(); // pinned before it was cached
    let pb = cache.get(&b).await.unwrap(); // nothing unpinned but b itself
    assert!(pa.exists() && pd.exists() && pb.exists());
    assert_eq!(fx.data_files().len(), 3);
    assert_eq!(cache.used_bytes(), 300);

    // Pins of one holder go; what is over the limit and unpinned is evicted.
    cache.unpin_all("i-1").await.unwrap();
    assert!(pd.exists(), "d is still pinned by i-2");
    assert_eq!(cache.used_bytes(), 100);
    assert!(!pa.exists() && !pb.exists());
    drop(cache);
    let cache = fx.open(150).await;
    assert_eq!(cache.used_bytes(), 100);
    cache.unpin_all("i-2").await.unwrap();
    assert_eq!(cache.used_bytes(), 100, "within the limit: kept for reuse");
}

#[tokio::test]
async fn a_pinned_entry_larger_than_the_limit_is_kept() {
    let fx = Fixture::new(FileSource::default());
    let big = fx.object("big", 1000);
    let small = fx.object("small", 100);
    let cache = fx.open(500).await;
    cache.pin(&big, "i-1").await.unwrap();
    let pbig = cache.get(&big).await.unwrap();
    let psmall = cache.get(&small).await.unwrap();
    cache.get(&small).await.unwrap();
    assert!(pbig.exists() && psmall.exists());
    cache.unpin_all("i-1").await.unwrap();
    assert!(!pbig.exists() && psmall.exists());
    assert_eq!(cache.used_bytes(), 100);
}

#[tokio::test]
async fn open_removes_partial_downloads_and_orphans() {
    let fx = Fixture::new(FileSource::default());
    let a = fx.object("a", 100);
    let b = fx.object("b", 200);
    let (pa, pb) = {
        let cache = fx.open(MIB).await;
        (cache.get(&a).await.unwrap(), cache.get(&b).await.unwrap())
    };
    // What a crash can leave: a half download, a half index, a copy renamed
    // into place but not indexed; and a copy damaged behind our back.
    let root = fx.root();
    std::fs::write(root.join("tmp/abc.123-0"), b"half").unwrap();
    std::fs::write(root.join("index.json.tmp"), b"{\"vers").unwrap();
    std::fs::write(root.join("data/0123orphan"), b"orphan").unwrap();
    std::fs::set_permissions(&pb, std::fs::Permissions::from_mode(0o644)).unwrap();
    std::fs::write(&pb, b"short").unwrap();

    let cache = fx.open(MIB).await;
    assert!(fx.tmp_files().is_empty());
    assert!(!root.join("index.json.tmp").exists());
    assert!(!root.join("data/0123orphan").exists());
    assert!(!pb.exists(), "the damaged copy is dropped");
    assert_eq!(cache.used_bytes(), 100);

    assert_eq!(cache.get(&a).await.unwrap(), pa);
    assert_eq!(fx.source.fetches("a"), 1);
    assert_eq!(cache.get(&b).await.unwrap(), pb);
    assert_eq!(fx.source.fetches("b"), 2, "fetched again");
    assert_eq!(std::fs::read(&pb).unwrap().len(), 200);
}

#[tokio::test]
async fn a_cancelled_download_leaves_nothing() {
    let fx = Fixture::new(FileSource {
        stall: true,
        ..FileSource::default()
    });
    let art = fx.object("slow", 100 * 1024);
    let cache = fx.open(MIB).await;
    let res = tokio::time::timeout(Duration::from_millis(200), cache.get(&art)).await;
    assert!(res.is_err(), "the download stalls");
    assert!(fx.tmp_files().is_empty());
    assert!(fx.data_files().is_empty());
    assert_eq!(cache.used_bytes(), 0);
}

#[tokio::test]
async fn copies_are_read_only() {
    let fx = Fixture::new(FileSource::default());
    let art = fx.object("ro", 10);
    let cache = fx.open(MIB).await;
    let path = cache.get(&art).await.unwrap();
    let mode = std::fs::metadata(path).unwrap().permissions().mode();
    assert_eq!(mode & 0o222, 0, "mode {mode:o}");
}

// ---- overlays (real qemu-img) ----

fn require_qemu_img() {
    match std::process::Command::new("qemu-img")
        .arg("--version")
        .output()
    {
        Ok(out) if out.status.success() => {}
        other => panic!(
            "qemu-img is required for the overlay tests (apt-get install qemu-utils); \
             running `qemu-img --version` gave {other:?}"
        ),
    }
}

fn qemu_img_info(path: &Path) -> serde_json::Value {
    let out = std::process::Command::new("qemu-img")
        .args(["info", "-U", "--output=json"])
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The absolute, symlink-free path, as recorded as backing file.
fn canonical(path: &Path) -> String {
    std::fs::canonicalize(path)
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// Bytes actually allocated on disk.
fn allocated(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().blocks() * 512
}

/// A raw image of `size` bytes, fully written (no holes).
fn raw_image(path: &Path, size: u64) {
    let data: Vec<u8> = (0..size).map(|i| (i % 253) as u8 | 1).collect();
    std::fs::write(path, data).unwrap();
}

#[tokio::test]
async fn overlay_on_a_raw_base() {
    require_qemu_img();
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base.raw");
    raw_image(&base, 32 * MIB);
    let overlay = dir.path().join("i-1/root.qcow2");
    std::fs::create_dir(dir.path().join("i-1")).unwrap();

    create_overlay(&base, &overlay, None).await.unwrap();

    let info = qemu_img_info(&overlay);
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["virtual-size"], 32 * MIB);
    assert_eq!(info["backing-filename"], canonical(&base));
    assert_eq!(info["backing-filename-format"], "raw");
    assert!(
        allocated(&base) >= 32 * MIB,
        "base allocates {}",
        allocated(&base)
    );
    assert!(
        allocated(&overlay) < MIB,
        "overlay allocates {} bytes",
        allocated(&overlay)
    );
    // No temporary left beside it.
    assert_eq!(list(&dir.path().join("i-1")), vec!["root.qcow2".to_owned()]);

    // Never replaced.
    let err = create_overlay(&base, &overlay, None).await.unwrap_err();
    assert!(matches!(err, CacheError::OverlayExists(_)), "{err}");
}

#[tokio::test]
async fn overlay_on_a_qcow2_base_grown() {
    require_qemu_img();
    let dir = tempfile::tempdir().unwrap();
    let raw = dir.path().join("src.raw");
    raw_image(&raw, 16 * MIB);
    let base = dir.path().join("base.qcow2");
    let out = std::process::Command::new("qemu-img")
        .args(["convert", "-f", "raw", "-O", "qcow2"])
        .arg(&raw)
        .arg(&base)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let overlay = dir.path().join("root.qcow2");
    create_overlay(&base, &overlay, Some(64 * MIB + 100))
        .await
        .unwrap();
    let info = qemu_img_info(&overlay);
    assert_eq!(info["format"], "qcow2");
    assert_eq!(info["backing-filename-format"], "qcow2");
    assert_eq!(info["backing-filename"], canonical(&base));
    assert_eq!(
        info["virtual-size"],
        64 * MIB + 512,
        "rounded up to a sector"
    );
    assert!(allocated(&overlay) < MIB);
    assert!(allocated(&base) >= 16 * MIB);

    // Smaller than the base: refused.
    let err = create_overlay(&base, &dir.path().join("small.qcow2"), Some(MIB))
        .await
        .unwrap_err();
    assert!(matches!(err, CacheError::OverlayTooSmall { .. }), "{err}");

    // A base that has a backing file of its own (here: an overlay) is
    // refused, since an uploaded image could point at any host file.
    let err = create_overlay(&overlay, &dir.path().join("chain.qcow2"), None)
        .await
        .unwrap_err();
    assert!(matches!(err, CacheError::UnsupportedBase { .. }), "{err}");
    assert!(!dir.path().join("chain.qcow2").exists());
}

#[tokio::test]
async fn overlays_of_a_cached_image_cost_only_their_own_blocks() {
    require_qemu_img();
    let fx = Fixture::new(FileSource::default());
    let size = 8 * MIB as usize;
    let art = fx.object("root.img", size);
    let cache = fx.open(100 * MIB).await;
    let instances = fx.dir.path().join("instances");
    std::fs::create_dir(&instances).unwrap();
    let mut overlays = Vec::new();
    for i in 0..5 {
        let id = format!("i-{i}");
        cache.pin(&art, &id).await.unwrap();
        let base = cache.get(&art).await.unwrap();
        let overlay = instances.join(format!("{id}.qcow2"));
        create_overlay(&base, &overlay, Some(16 * MIB))
            .await
            .unwrap();
        overlays.push(overlay);
    }
    assert_eq!(fx.source.fetches("root.img"), 1);
    assert_eq!(cache.used_bytes(), size as u64);
    let total: u64 = overlays.iter().map(|o| allocated(o)).sum();
    assert!(total < 5 * MIB / 2, "5 overlays allocate {total} bytes");
}
