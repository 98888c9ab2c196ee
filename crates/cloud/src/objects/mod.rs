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
