//! Objects the cloud keeps for itself: the images it unbundled from
//! bundle manifests, in a bucket of the administrators' account whose
//! name ([`UNBUNDLED_BUCKET`]) no S3 client can send (an underscore is not
//! allowed in bucket names), so users can neither read nor replace them.
//! Nodes fetch them like any image object. Writes stream into a blob and
//! commit at once; a write that fails leaves nothing.

use bytes::Bytes;
use futures_util::Stream;
use mallee_blobs::WriteLimits;
use mallee_store::{Bucket, ObjectMetadata, ObjectRecord, StoreError};

use super::acl::Acl;
use super::writes::{commit, new_object};
use super::{MAX_OBJECT_SIZE, open, release_blobs};
use crate::{Cloud, CloudError, ids};

/// The bucket of unbundled images.
pub const UNBUNDLED_BUCKET: &str = "_unbundled-images";

/// The cloud's bucket `name`, made on first use and owned by the
/// administrators' account; an existing bucket of that name owned by
/// anyone else is refused.
async fn system_bucket(cloud: &Cloud, name: &str) -> Result<Bucket, CloudError> {
    let admin = cloud
        .store
        .account_by_name(crate::bootstrap::ADMIN_ACCOUNT)
        .await?
        .ok_or_else(|| CloudError::Internal("the administrators' account is missing".into()))?;
    if cloud.store.bucket(name).await?.is_none() {
        let bucket = Bucket {
            name: name.to_owned(),
            account_id: admin.account_id.clone(),
            region: cloud.config.region.clone(),
            acl_json: Acl::private(&admin.account_id).to_json(),
            created_at: ids::now_millis(),
            policy: None,
            tags: Default::default(),
            versioning: Default::default(),
            settings: Default::default(),
        };
        match cloud.store.create_bucket(&bucket).await {
            Ok(()) | Err(StoreError::Conflict(_)) => {}
            Err(e) => return Err(e.into()),
        }
    }
    match cloud.store.bucket(name).await? {
        Some(bucket) if bucket.account_id == admin.account_id => Ok(bucket),
        _ => Err(CloudError::Internal(format!(
            "the system bucket {name} is not the administrators'"
        ))),
    }
}

/// Streams `body` into the object `bucket/key` of the cloud's `bucket`
/// (replacing one of that key) and returns its record.
pub async fn put<S, E>(
    cloud: &Cloud,
    bucket: &str,
    key: &str,
    body: S,
) -> Result<ObjectRecord, CloudError>
where
    S: Stream<Item = Result<Bytes, E>> + Send,
    E: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let bucket = system_bucket(cloud, bucket).await?;
    let written = cloud
        .blobs
        .write(body, WriteLimits::max(MAX_OBJECT_SIZE))
        .await
        .map_err(CloudError::internal)?;
    let acl = Acl::private(&bucket.account_id);
    let object = new_object(
        &bucket,
        key.to_owned(),
        written,
        ObjectMetadata::default(),
        Default::default(),
        &acl,
        bucket.account_id.clone(),
    );
    commit(cloud, &object).await.map_err(CloudError::internal)?;
    Ok(object)
}

/// Deletes the cloud's object `bucket/key`, if it exists.
pub async fn delete(cloud: &Cloud, bucket: &str, key: &str) -> Result<(), CloudError> {
    if let Some(blobs) = cloud.store.delete_object(bucket, key).await? {
        release_blobs(cloud, blobs).await;
    }
    Ok(())
}

/// The whole of a small object (at most `max` bytes).
pub async fn read_small(
    cloud: &Cloud,
    object: &ObjectRecord,
    max: u64,
) -> Result<Vec<u8>, CloudError> {
    use futures_util::StreamExt;
    if object.size > max {
        return Err(CloudError::Invalid(format!(
            "{}/{} is larger than {max} bytes",
            object.bucket, object.key
        )));
    }
    let reader = open(cloud, object, None, None)
        .await
        .map_err(CloudError::internal)?;
    let mut stream = std::pin::pin!(reader.into_stream());
    let mut data = Vec::new();
    while let Some(chunk) = stream.next().await {
        data.extend_from_slice(&chunk.map_err(CloudError::internal)?);
    }
    Ok(data)
}

/// An object's data as a stream of chunks.
pub async fn stream(
    cloud: &Cloud,
    object: &ObjectRecord,
) -> Result<impl Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static, CloudError> {
    let reader = open(cloud, object, None, None)
        .await
        .map_err(CloudError::internal)?;
    Ok(reader.into_stream())
}
