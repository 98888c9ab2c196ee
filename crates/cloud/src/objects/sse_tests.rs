//! SSE-S3 from the cloud's side: data written encrypted (asked for, or by
//! the bucket's default) holds no plaintext on disk, reads back whole and
//! by range with the plaintext's ETag; copies re-encrypt (or decrypt) as
//! their target asks; multipart parts share the upload's key.

use bytes::Bytes;
use futures_util::StreamExt;
use mallee_store::{ObjectMetadata, ObjectRecord};

use super::*;
use crate::objects::acl::AclRequest;
use crate::objects::multipart::{self, CompletedPart};
use crate::objects::reads::{self, ByteRange, ReadObject};
use crate::objects::writes::{self, Body, CopyObject, PutObject};
use crate::objects::{MIN_PART_SIZE, testing};

fn data() -> Vec<u8> {
    (0..200_000u32).map(|i| (i % 241) as u8).collect()
}

async fn put(cloud: &Cloud, requester: &Requester, key: &str, encrypt: bool) -> ObjectRecord {
    let put = PutObject {
        bucket: "b".into(),
        key: key.into(),
        acl: AclRequest::default(),
        create_only: false,
        metadata: ObjectMetadata::default(),
        tags: Vec::new(),
        encrypt,
        body: Body {
            declared_size: None,
            expected_md5: None,
            stream: futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(data()))]),
        },
        customer_key: None,
    };
    writes::put(cloud, requester, put).await.expect("put")
}

async fn read(
    cloud: &Cloud,
    requester: &Requester,
    key: &str,
    range: Option<ByteRange>,
) -> Vec<u8> {
    let read = ReadObject {
        bucket: "b".into(),
        key: key.into(),
        range,
        ..Default::default()
    };
    let (_, reader) = reads::get(cloud, requester, &read).await.expect("get");
    let mut out = Vec::new();
    let mut stream = std::pin::pin!(reader.into_stream());
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    out
}

/// Whether some blob file holds the plaintext's first 4 KiB.
fn plaintext_on_disk(cloud: &Cloud) -> bool {
    let needle = &data()[..4096];
    walk(&cloud.blobs.root().join("data")).iter().any(|path| {
        std::fs::read(path).is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle))
    })
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

#[tokio::test]
async fn encrypted_objects_read_back_and_keep_no_plaintext() {
    let (cloud, alice, _) = testing::with_bucket().await;
    let plain = put(&cloud, &alice, "plain", false).await;
    assert!(plain.encryption.is_none());
    assert!(
        plaintext_on_disk(&cloud),
        "the control: plain data is visible"
    );
    writes::delete(&cloud, &alice, "b", "plain", None)
        .await
        .expect("delete");

    let sealed = put(&cloud, &alice, "sealed", true).await;
    let encryption = sealed.encryption.clone().expect("encrypted");
    assert_eq!(encryption.algorithm, "AES256");
    assert_eq!(sealed.etag, plain.etag, "the ETag is the plaintext's MD5");
    assert!(!plaintext_on_disk(&cloud));
    assert_eq!(read(&cloud, &alice, "sealed", None).await, data());
    let range = ByteRange::From {
        first: 70_001,
        last: Some(130_000),
    };
    assert_eq!(
        read(&cloud, &alice, "sealed", Some(range)).await,
        data()[70_001..=130_000]
    );
    // Another master key cannot read it.
    let wrapped = hex::decode(encryption.wrapped_key.expect("wrapped")).expect("hex");
    assert!(MasterKey::from_bytes(&[3; 32]).unwrap(&wrapped).is_none());

    // A bucket default encrypts what asks for nothing; copies follow
    // their target, and decrypt into a plain copy once it is removed.
    put_default(&cloud, &alice, "b", "AES256", false)
        .await
        .expect("default");
    assert!(
        put(&cloud, &alice, "by-default", false)
            .await
            .encryption
            .is_some()
    );
    let copy = |key: &str| CopyObject {
        source_bucket: "b".into(),
        source_key: "sealed".into(),
        bucket: "b".into(),
        key: key.into(),
        ..Default::default()
    };
    let copied = writes::copy(&cloud, &alice, copy("copy"))
        .await
        .expect("copy");
    assert!(copied.object.encryption.is_some());
    delete_default(&cloud, &alice, "b").await.expect("delete");
    let copied = writes::copy(&cloud, &alice, copy("plain-copy"))
        .await
        .expect("copy");
    assert!(copied.object.encryption.is_none());
    assert_eq!(read(&cloud, &alice, "plain-copy", None).await, data());
    assert!(matches!(
        get_default(&cloud, &alice, "b").await,
        Err(ObjectError::EncryptionConfigurationNotFound)
    ));
    assert!(matches!(
        requested(Some("aws:kms")),
        Err(ObjectError::NotImplemented(_))
    ));
    assert!(matches!(
        requested(Some("DES")),
        Err(ObjectError::InvalidArgument(_))
    ));
}

#[tokio::test]
async fn multipart_parts_share_the_uploads_key() {
    let (cloud, alice, bob) = testing::with_bucket().await;
    put_default(&cloud, &alice, "b", "AES256", true)
        .await
        .expect("default");
    assert!(matches!(
        put_default(&cloud, &bob, "b", "AES256", true).await,
        Err(ObjectError::AccessDenied)
    ));
    let upload = testing::start_upload(&cloud, &alice, "mp", &[])
        .await
        .expect("upload");
    let whole = data();
    let (first, second) = whole.split_at(150_000);
    let mut first = first.to_vec();
    first.resize(MIN_PART_SIZE as usize, 1);
    let p1 = testing::upload_part(&cloud, &alice, &upload, 1, first.clone())
        .await
        .expect("part");
    let p2 = testing::upload_part(&cloud, &alice, &upload, 2, second.to_vec())
        .await
        .expect("part");
    assert!(!plaintext_on_disk(&cloud));
    let parts = [(1, p1.etag), (2, p2.etag)]
        .into_iter()
        .map(|(number, etag)| CompletedPart {
            number,
            etag: Some(etag),
        })
        .collect::<Vec<_>>();
    let object = multipart::complete(&cloud, &alice, &upload, &parts)
        .await
        .expect("complete");
    assert!(object.encryption.is_some());
    let mut expected = first;
    expected.extend_from_slice(second);
    assert_eq!(read(&cloud, &alice, "mp", None).await, expected);
    let range = ByteRange::From {
        first: MIN_PART_SIZE - 10,
        last: Some(MIN_PART_SIZE + 10),
    };
    assert_eq!(
        read(&cloud, &alice, "mp", Some(range)).await,
        expected[MIN_PART_SIZE as usize - 10..=MIN_PART_SIZE as usize + 10]
    );
}

fn customer(byte: u8) -> CustomerKey {
    use base64::Engine as _;
    use md5::Digest as _;
    let engine = base64::engine::general_purpose::STANDARD;
    let key = [byte; 32];
    let md5 = engine.encode(md5::Md5::digest(key));
    customer_key(Some("AES256"), Some(&engine.encode(key)), Some(&md5))
        .expect("valid")
        .expect("given")
}

#[tokio::test]
async fn customer_keys_are_checked_and_needed_for_every_read() {
    use base64::Engine as _;
    let engine = base64::engine::general_purpose::STANDARD;
    // The headers come as three, with a 256-bit key and its MD5.
    assert!(customer_key(None, None, None).expect("none").is_none());
    let key = engine.encode([1u8; 32]);
    for (algorithm, key, md5) in [
        (Some("AES256"), Some(key.as_str()), None),
        (Some("AES128"), Some(key.as_str()), Some("x")),
        (Some("AES256"), Some("c2hvcnQ="), Some("x")),
        (Some("AES256"), Some(key.as_str()), Some("bm90IHRoZSBtZDU=")),
    ] {
        assert!(matches!(
            customer_key(algorithm, key, md5),
            Err(ObjectError::InvalidArgument(_))
        ));
    }

    let (cloud, alice, _) = testing::with_bucket().await;
    let sealed = PutObject {
        bucket: "b".into(),
        key: "c".into(),
        acl: AclRequest::default(),
        create_only: false,
        metadata: ObjectMetadata::default(),
        tags: Vec::new(),
        encrypt: false,
        customer_key: Some(customer(1)),
        body: Body {
            declared_size: None,
            expected_md5: None,
            stream: futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(data()))]),
        },
    };
    let object = writes::put(&cloud, &alice, sealed).await.expect("put");
    assert_eq!(
        object
            .encryption
            .as_ref()
            .and_then(|e| e.customer_key_digest.clone()),
        Some(customer(1).md5)
    );
    assert!(!plaintext_on_disk(&cloud));
    let read_with = |key: Option<CustomerKey>| ReadObject {
        bucket: "b".into(),
        key: "c".into(),
        customer_key: key,
        ..Default::default()
    };
    assert!(matches!(
        reads::head(&cloud, &alice, &read_with(None)).await,
        Err(ObjectError::InvalidRequest(_))
    ));
    assert!(matches!(
        reads::head(&cloud, &alice, &read_with(Some(customer(2)))).await,
        Err(ObjectError::AccessDenied)
    ));
    let (_, reader) = reads::get(&cloud, &alice, &read_with(Some(customer(1))))
        .await
        .expect("get");
    let mut out = Vec::new();
    let mut stream = std::pin::pin!(reader.into_stream());
    while let Some(chunk) = stream.next().await {
        out.extend_from_slice(&chunk.expect("chunk"));
    }
    assert_eq!(out, data());
    // A plain object refuses a key; a copy needs the source's key.
    put(&cloud, &alice, "plain", false).await;
    let plain = ReadObject {
        bucket: "b".into(),
        key: "plain".into(),
        customer_key: Some(customer(1)),
        ..Default::default()
    };
    assert!(matches!(
        reads::head(&cloud, &alice, &plain).await,
        Err(ObjectError::InvalidRequest(_))
    ));
    let copy = |source_customer_key| CopyObject {
        source_bucket: "b".into(),
        source_key: "c".into(),
        bucket: "b".into(),
        key: "copied".into(),
        source_customer_key,
        ..Default::default()
    };
    assert!(matches!(
        writes::copy(&cloud, &alice, copy(None)).await,
        Err(ObjectError::InvalidRequest(_))
    ));
    let copied = writes::copy(&cloud, &alice, copy(Some(customer(1))))
        .await
        .expect("copy");
    assert!(copied.object.encryption.is_none());
    assert_eq!(read(&cloud, &alice, "copied", None).await, data());
}
