//! Behaviour of the blob store: round trips, limits, crash clean-up,
//! consistent reads and a property test of ranged reads.

#![allow(clippy::unwrap_used)]

use std::collections::HashSet;
use std::convert::Infallible;
use std::path::Path;
use std::sync::LazyLock;

use bytes::Bytes;
use futures_util::{Stream, StreamExt, stream};
use mallee_blobs::{BlobError, BlobStore, WriteLimits, WrittenBlob};
use md5::{Digest, Md5};
use proptest::prelude::*;

const MIB: u64 = 1024 * 1024;

fn body(data: &[u8], chunk: usize) -> impl Stream<Item = Result<Bytes, Infallible>> + Send + use<> {
    let chunks: Vec<Result<Bytes, Infallible>> = data
        .chunks(chunk.max(1))
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks)
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            (i as u8)
                .wrapping_mul(31)
                .wrapping_add(seed)
                .wrapping_add((i >> 8) as u8)
        })
        .collect()
}

async fn put(store: &BlobStore, data: &[u8]) -> WrittenBlob {
    store
        .write(body(data, 7), WriteLimits::max(u64::MAX))
        .await
        .unwrap()
}

async fn read_all(reader: mallee_blobs::ObjectReader) -> Vec<u8> {
    let len = reader.len();
    let mut out = Vec::new();
    let mut s = std::pin::pin!(reader.into_stream());
    while let Some(chunk) = s.next().await {
        let chunk = chunk.unwrap();
        assert!(!chunk.is_empty());
        out.extend_from_slice(&chunk);
    }
    assert_eq!(out.len() as u64, len);
    out
}

fn count_files(dir: &Path) -> usize {
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            n += count_files(&entry.path());
        } else {
            n += 1;
        }
    }
    n
}

fn assert_nothing_left(root: &Path) {
    assert_eq!(count_files(&root.join("tmp")), 0, "temporary files left");
    assert_eq!(count_files(&root.join("data")), 0, "blobs left");
}

#[tokio::test]
async fn round_trip_with_ranges() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).await.unwrap();
    let parts = [pattern(10, 1), pattern(5, 2), pattern(20, 3)];
    let mut segments = Vec::new();
    let mut whole = Vec::new();
    for part in &parts {
        let written = put(&store, part).await;
        assert_eq!(written.size, part.len() as u64);
        assert_eq!(written.md5, <[u8; 16]>::from(Md5::digest(part)));
        assert!(mallee_blobs::is_valid_id(&written.blob_id));
        assert!(
            dir.path()
                .join("data")
                .join(&written.blob_id[..2])
                .join(&written.blob_id)
                .is_file()
        );
        segments.push((written.blob_id, written.size));
        whole.extend_from_slice(part);
    }
    let total = whole.len() as u64;

    let all = store.open_object(&segments, None).await.unwrap();
    assert_eq!(read_all(all).await, whole);

    for range in [
        0..1,
        total - 1..total,
        8..17,
        9..16,
        10..15,
        0..total,
        12..12,
        35..35,
    ] {
        let reader = store
            .open_object(&segments, Some(range.clone()))
            .await
            .unwrap();
        let expected = &whole[range.start as usize..range.end as usize];
        assert_eq!(read_all(reader).await, expected, "range {range:?}");
    }

    // Empty objects: no segments, or one empty blob.
    let empty = store.open_object(&[], None).await.unwrap();
    assert!(empty.is_empty());
    assert!(read_all(empty).await.is_empty());
    let written = put(&store, b"").await;
    assert_eq!(written.size, 0);
    assert_eq!(written.md5, <[u8; 16]>::from(Md5::digest(b"")));
    let reader = store
        .open_object(&[(written.blob_id, 0)], None)
        .await
        .unwrap();
    assert!(read_all(reader).await.is_empty());
}

#[tokio::test]
async fn invalid_ranges_ids_and_missing_blobs() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).await.unwrap();
    let written = put(&store, b"hello").await;
    let segs = vec![(written.blob_id.clone(), 5)];

    for (start, end) in [(0, 6), (3, 2), (6, 6)] {
        let err = store
            .open_object(&segs, Some(start..end))
            .await
            .unwrap_err();
        assert!(
            matches!(err, BlobError::InvalidRange { len: 5, .. }),
            "{err}"
        );
    }
    for bad in [
        "../../../../etc/passwd",
        "0123456789ABCDEF0123456789abcdef",
        "ab/",
        "",
    ] {
        let err = store
            .open_object(&[(bad.to_owned(), 1)], None)
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::InvalidId(_)), "{err}");
        let err = store.delete(&[bad.to_owned()]).await.unwrap_err();
        assert!(matches!(err, BlobError::InvalidId(_)), "{err}");
    }
    let err = store
        .open_object(&[(written.blob_id.clone(), 4)], None)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            BlobError::BlobSizeMismatch {
                expected: 4,
                actual: 5,
                ..
            }
        ),
        "{err}"
    );

    let missing = "00000000000000000000000000000000".to_owned();
    let err = store
        .open_object(&[(missing.clone(), 3)], None)
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BlobError::Missing(id) if *id == missing),
        "{err}"
    );

    // Deleting missing blobs is fine; deleting twice too.
    store
        .delete(&[missing, written.blob_id.clone()])
        .await
        .unwrap();
    store.delete(&[written.blob_id]).await.unwrap();
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn too_large_stops_reading_and_cleans_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).await.unwrap();
    // An endless body: the write only returns if it stops reading.
    let endless = stream::repeat_with(|| Ok::<_, Infallible>(Bytes::from_static(&[7u8; 1000])));
    let err = store
        .write(endless, WriteLimits::max(10_000))
        .await
        .unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { max: 10_000 }), "{err}");
    assert_nothing_left(dir.path());

    // Exactly at the limit is fine.
    let ok = store
        .write(body(&[1u8; 10_000], 999), WriteLimits::max(10_000))
        .await
        .unwrap();
    assert_eq!(ok.size, 10_000);
    store.delete(&[ok.blob_id]).await.unwrap();

    // A declared size above the limit is refused before reading.
    let limits = WriteLimits {
        max_size: 10,
        expected_size: Some(11),
        expected_md5: None,
    };
    let err = store.write(body(b"x", 1), limits).await.unwrap_err();
    assert!(matches!(err, BlobError::TooLarge { max: 10 }), "{err}");
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn size_and_md5_mismatches_leave_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).await.unwrap();
    let data = pattern(1000, 9);
    let md5: [u8; 16] = Md5::digest(&data).into();

    let short = WriteLimits {
        max_size: u64::MAX,
        expected_size: Some(1001),
        expected_md5: None,
    };
    let err = store.write(body(&data, 100), short).await.unwrap_err();
    assert!(
        matches!(
            err,
            BlobError::SizeMismatch {
                expected: 1001,
                actual: 1000
            }
        ),
        "{err}"
    );
    assert_nothing_left(dir.path());

    let long = WriteLimits {
        max_size: u64::MAX,
        expected_size: Some(999),
        expected_md5: None,
    };
    let err = store.write(body(&data, 100), long).await.unwrap_err();
    assert!(
        matches!(
            err,
            BlobError::SizeMismatch {
                expected: 999,
                actual: 1000
            }
        ),
        "{err}"
    );
    assert_nothing_left(dir.path());

    let mut wrong = md5;
    wrong[0] ^= 1;
    let bad_md5 = WriteLimits {
        max_size: u64::MAX,
        expected_size: Some(1000),
        expected_md5: Some(wrong),
    };
    let err = store.write(body(&data, 100), bad_md5).await.unwrap_err();
    assert!(
        matches!(err, BlobError::Md5Mismatch { expected, actual } if expected == wrong && actual == md5)
    );
    assert_nothing_left(dir.path());

    let good = WriteLimits {
        max_size: 1000,
        expected_size: Some(1000),
        expected_md5: Some(md5),
    };
    let written = store.write(body(&data, 100), good).await.unwrap();
    assert_eq!((written.size, written.md5), (1000, md5));
}

#[tokio::test]
async fn body_error_midway_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).await.unwrap();
    let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
        Ok(Bytes::from_static(b"abc")),
        Ok(Bytes::from_static(b"def")),
        Err(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "client went away",
        )),
        Ok(Bytes::from_static(b"ghi")),
    ];
    let err = store
        .write(stream::iter(chunks), WriteLimits::max(u64::MAX))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, BlobError::Body(e) if e.to_string() == "client went away"),
        "{err}"
    );
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn dropped_write_removes_its_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).await.unwrap();
    let stalls = stream::iter([Ok::<_, Infallible>(Bytes::from_static(b"partial"))])
        .chain(stream::pending());
    let result = tokio::time::timeout(
        std::time::Duration::from_millis(100),
        store.write(stalls, WriteLimits::max(u64::MAX)),
    )
    .await;
    assert!(
        result.is_err(),
        "the write should still be waiting for the body"
    );
    assert_nothing_left(dir.path());
}

#[tokio::test]
async fn open_cleans_tmp_and_sweep_removes_unreferenced() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).await.unwrap();
    let keep = put(&store, b"keep me").await;
    let drop1 = put(&store, b"orphan 1").await;
    let drop2 = put(&store, b"orphan 2").await;
    std::fs::write(
        dir.path()
            .join("tmp")
            .join("0123456789abcdef0123456789abcdef"),
        b"half",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("tmp").join("leftover-dir")).unwrap();
    std::fs::write(dir.path().join("tmp").join("leftover-dir").join("x"), b"x").unwrap();
    let stray = dir.path().join("data").join("ab").join("not-a-blob");
    std::fs::write(&stray, b"?").unwrap();
    drop(store);

    let store = BlobStore::open(dir.path()).await.unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path().join("tmp")).unwrap().count(),
        0
    );

    let referenced: HashSet<String> = [keep.blob_id.clone()].into();
    assert_eq!(store.sweep(&referenced).await.unwrap(), 2);
    assert_eq!(store.sweep(&referenced).await.unwrap(), 0);
    assert!(stray.is_file(), "files that are not blobs are left alone");
    let reader = store.open_object(&[(keep.blob_id, 7)], None).await.unwrap();
    assert_eq!(read_all(reader).await, b"keep me");
    for gone in [drop1, drop2] {
        let err = store
            .open_object(&[(gone.blob_id, gone.size)], None)
            .await
            .unwrap_err();
        assert!(matches!(err, BlobError::Missing(_)), "{err}");
    }
}

#[tokio::test]
async fn reader_sees_data_deleted_after_open() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).await.unwrap();
    let a = pattern(300_000, 1);
    let b = pattern(700_000, 2);
    let wa = put(&store, &a).await;
    let wb = put(&store, &b).await;
    let segs = vec![(wa.blob_id.clone(), wa.size), (wb.blob_id.clone(), wb.size)];
    let reader = store.open_object(&segs, None).await.unwrap();
    // Read part of it, then delete (an overwrite deletes the old blobs).
    let mut s = Box::pin(reader.into_stream());
    let first = s.next().await.unwrap().unwrap();
    store.delete(&[wa.blob_id, wb.blob_id]).await.unwrap();
    assert_eq!(count_files(&dir.path().join("data")), 0);
    let mut got = first.to_vec();
    while let Some(chunk) = s.next().await {
        let chunk = chunk.unwrap();
        assert!(chunk.len() <= 256 * 1024);
        got.extend_from_slice(&chunk);
    }
    let mut expected = a;
    expected.extend_from_slice(&b);
    assert!(got == expected, "reader returned different data");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_streamed_write_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).await.unwrap();
    const CHUNK: usize = 64 * 1024;
    let chunks = (64 * MIB as usize) / CHUNK;
    let make = |i: usize| Bytes::from(vec![(i % 251) as u8; CHUNK]);
    let mut hasher = Md5::new();
    for i in 0..chunks {
        hasher.update(make(i));
    }
    let md5: [u8; 16] = hasher.finalize().into();
    let body = stream::iter((0..chunks).map(move |i| Ok::<_, Infallible>(make(i))));
    let limits = WriteLimits {
        max_size: 64 * MIB,
        expected_size: Some(64 * MIB),
        expected_md5: Some(md5),
    };
    let written = store.write(body, limits).await.unwrap();
    assert_eq!(written.size, 64 * MIB);

    let reader = store
        .open_object(&[(written.blob_id, written.size)], None)
        .await
        .unwrap();
    let mut s = std::pin::pin!(reader.into_stream());
    let mut hasher = Md5::new();
    let mut n = 0u64;
    while let Some(chunk) = s.next().await {
        let chunk = chunk.unwrap();
        n += chunk.len() as u64;
        hasher.update(&chunk);
    }
    assert_eq!(n, 64 * MIB);
    assert_eq!(<[u8; 16]>::from(hasher.finalize()), md5);
}

#[tokio::test]
async fn futures_and_streams_are_send() {
    fn assert_send<T: Send>(_: &T) {}
    let dir = tempfile::tempdir().unwrap();
    let store = BlobStore::open(dir.path()).await.unwrap();
    let io_body = stream::iter([Ok::<_, std::io::Error>(Bytes::from_static(b"x"))]);
    let write = store.write(io_body, WriteLimits::max(1));
    assert_send(&write);
    let written = write.await.unwrap();
    let segs = [(written.blob_id, 1)];
    let open = store.open_object(&segs, None);
    assert_send(&open);
    let stream = open.await.unwrap().into_stream();
    assert_send(&stream);
    let referenced = HashSet::new();
    let sweep = store.sweep(&referenced);
    assert_send(&sweep);
}

/// One runtime and store shared by every property-test case: opening a store
/// fsyncs, and doing that per case makes the test slow on busy disks. Statics
/// are never dropped, so the directory lives under cargo's target tmp dir.
static PROP_STORE: LazyLock<(tokio::runtime::Runtime, BlobStore, tempfile::TempDir)> =
    LazyLock::new(|| {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let store = rt.block_on(BlobStore::open(dir.path())).unwrap();
        (rt, store, dir)
    });

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn ranged_reads_match_concatenation(
        sizes in proptest::collection::vec(0usize..3000, 0..6),
        chunk in 1usize..700,
        a in any::<u64>(),
        b in any::<u64>(),
        full in any::<bool>(),
    ) {
        let (rt, store, _dir) = &*PROP_STORE;
        rt.block_on(async {
            let mut whole = Vec::new();
            let mut segments = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                let data = pattern(*size, i as u8);
                let w = store.write(body(&data, chunk), WriteLimits::max(u64::MAX)).await.unwrap();
                segments.push((w.blob_id, w.size));
                whole.extend_from_slice(&data);
            }
            let total = whole.len() as u64;
            let (start, end) = if total == 0 { (0, 0) } else { (a % (total + 1), b % (total + 1)) };
            let (start, end) = (start.min(end), start.max(end));
            let range = if full { None } else { Some(start..end) };
            let expected = match &range {
                None => &whole[..],
                Some(r) => &whole[r.start as usize..r.end as usize],
            };
            let reader = store.open_object(&segments, range).await.unwrap();
            assert_eq!(reader.len(), expected.len() as u64);
            assert_eq!(read_all(reader).await, expected);
            let ids: Vec<String> = segments.into_iter().map(|(id, _)| id).collect();
            store.delete(&ids).await.unwrap();
        });
    }
}
