//! Objects of the object store as the rest of the cloud uses them: whether
//! an account may read one (its access control list, [`acl`]), and an
//! object's first bytes, which tell what an image or an imported disk
//! holds.

pub mod acl;

use futures_util::StreamExt;
use mallee_store::ObjectRecord;

use crate::{Cloud, CloudError};
use acl::{Acl, Permission};

/// Bytes read from an object to decide what it holds.
pub const HEADER_LEN: u64 = 4096;

/// The object `bucket/key` if `account_id` may read it. `None` when it is
/// missing or unreadable: callers answer both alike, so existence does
/// not leak.
pub async fn readable(
    cloud: &Cloud,
    account_id: &str,
    bucket: &str,
    key: &str,
) -> Result<Option<ObjectRecord>, CloudError> {
    Ok(cloud.store.object(bucket, key).await?.filter(|object| {
        Acl::from_json(&object.acl_json, &object.owner_account)
            .allows(Some(account_id), Permission::Read)
    }))
}

/// The object's first bytes (at most [`HEADER_LEN`]).
pub async fn read_header(cloud: &Cloud, object: &ObjectRecord) -> Result<Vec<u8>, CloudError> {
    let len = object.size.min(HEADER_LEN);
    let segments: Vec<(String, u64)> = object
        .segments
        .iter()
        .map(|s| (s.blob_id.clone(), s.size))
        .collect();
    let reader = cloud
        .blobs
        .open_object(&segments, Some(0..len))
        .await
        .map_err(|e| {
            CloudError::Internal(format!("reading {}/{}: {e}", object.bucket, object.key))
        })?;
    let mut stream = std::pin::pin!(reader.into_stream());
    let mut header = Vec::with_capacity(usize::try_from(len).unwrap_or_default());
    while let Some(chunk) = stream.next().await {
        header.extend_from_slice(&chunk.map_err(CloudError::internal)?);
    }
    Ok(header)
}

/// Objects for tests of the code that reads them.
#[cfg(test)]
pub(crate) mod testing {
    use bytes::Bytes;
    use mallee_store::{Bucket, ObjectMetadata, ObjectRecord, Segment};

    use super::acl::Acl;
    use crate::Cloud;

    /// Stores `bytes` as `bucket/key` of `owner` under `acl`, creating the
    /// bucket when it is new.
    pub async fn put(cloud: &Cloud, owner: &str, bucket: &str, key: &str, bytes: &[u8], acl: &Acl) {
        if cloud.store.bucket(bucket).await.expect("bucket").is_none() {
            cloud
                .store
                .create_bucket(&Bucket {
                    name: bucket.into(),
                    account_id: owner.into(),
                    region: crate::testkit::REGION.into(),
                    acl_json: Acl::private(owner).to_json(),
                    created_at: 0,
                })
                .await
                .expect("create bucket");
        }
        let body = Bytes::copy_from_slice(bytes);
        let blob = cloud
            .blobs
            .write(
                futures_util::stream::once(async move { Ok::<_, std::io::Error>(body) }),
                mallee_blobs::WriteLimits::max(1 << 30),
            )
            .await
            .expect("blob");
        cloud
            .store
            .put_object(&ObjectRecord {
                bucket: bucket.into(),
                key: key.into(),
                segments: vec![Segment {
                    blob_id: blob.blob_id,
                    size: blob.size,
                }],
                size: blob.size,
                etag: format!("\"{}\"", hex::encode(blob.md5)),
                last_modified: 0,
                metadata: ObjectMetadata::default(),
                acl_json: acl.to_json(),
                owner_account: owner.into(),
            })
            .await
            .expect("object");
    }
}

#[cfg(test)]
mod tests {
    use super::acl::{Acl, Grant, Grantee, Permission};
    use super::*;
    use crate::testkit::TestCloud;

    #[tokio::test]
    async fn readable_follows_the_acl_and_headers_are_capped() {
        let cloud = TestCloud::new().await;
        let owner = cloud.principal("owner").await;
        let other = cloud.principal("other").await;
        let (owner, other) = (owner.account_id(), other.account_id());
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        testing::put(&cloud, owner, "b", "private", &data, &Acl::private(owner)).await;
        let mut shared = Acl::private(owner);
        shared.grants.push(Grant {
            grantee: Grantee::Account(other.into()),
            permission: Permission::Read,
        });
        testing::put(&cloud, owner, "b", "shared", b"abc", &shared).await;

        let object = readable(&cloud, owner, "b", "private")
            .await
            .expect("read")
            .expect("the owner reads its object");
        assert!(
            readable(&cloud, other, "b", "private")
                .await
                .expect("read")
                .is_none()
        );
        assert!(
            readable(&cloud, other, "b", "shared")
                .await
                .expect("read")
                .is_some()
        );
        assert!(
            readable(&cloud, owner, "b", "missing")
                .await
                .expect("read")
                .is_none()
        );
        let header = read_header(&cloud, &object).await.expect("header");
        assert_eq!(header, data[..4096]);
    }
}
