//! The object store (S3's buckets and objects) as the cloud keeps it:
//! buckets ([`buckets`]), reading objects with conditions and ranges
//! ([`reads`]), writing, copying and deleting them with their data
//! streamed into blob files ([`writes`]), multipart uploads
//! ([`multipart`]), listings ([`list`]), access control lists ([`acl`]),
//! bucket policies ([`policy`]), tags ([`tagging`]), versioning
//! ([`versions`]), CORS ([`cors`]), encryption at rest ([`sse`]), lifecycle rules ([`lifecycle`]) and
//! the background pass that carries them out ([`lifecycle_pass`]), and
//! the controls over ACLs and policies with the configurations tools
//! read ([`controls`]); and, for the rest of the cloud, whether an account may read
//! an object and its first bytes, which tell what an image or an imported
//! disk holds. Operations take the [`Requester`] and typed inputs and fail
//! with an [`ObjectError`]; the S3 API parses and renders.

pub mod acl;
pub mod buckets;
pub mod controls;
pub mod cors;
pub mod error;
pub mod lifecycle;
pub mod lifecycle_pass;
pub mod list;
pub mod multipart;
pub mod policy;
pub mod reads;
pub mod sse;
pub mod system;
pub mod tagging;
pub mod versions;
pub mod writes;

use futures_util::StreamExt;
use mallee_blobs::ObjectReader;
use mallee_store::{Bucket, ObjectRecord};

use crate::{Cloud, CloudError, Principal};
use acl::{Acl, Permission};
pub use error::ObjectError;
pub use policy::PolicyGrant;

/// Largest object a single PUT (or one part, or a copy) may store (S3:
/// 5 GiB).
pub const MAX_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Largest multipart object (S3: 5 TiB).
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// Smallest part other than the last (S3: 5 MiB).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;
/// Most entries one page of a listing holds, and its size when the caller
/// names none.
pub const MAX_PAGE: usize = 1000;

/// Who makes an object-store request (S3 serves anonymous callers too,
/// whom public buckets and objects let in), and what the bucket policies
/// granted this one request: the S3 layer decides bucket policies with the
/// caller's identity policies before the operation runs, and the
/// operation's ACL and ownership checks accept those grants.
#[derive(Debug, Clone, Default)]
pub struct Requester {
    principal: Option<Principal>,
    grants: Vec<PolicyGrant>,
}

impl Requester {
    /// No credentials.
    pub fn anonymous() -> Self {
        Self::default()
    }

    /// A verified principal.
    pub fn principal(principal: Principal) -> Self {
        Self {
            principal: Some(principal),
            grants: Vec::new(),
        }
    }

    /// The verified principal, unless anonymous.
    pub fn as_principal(&self) -> Option<&Principal> {
        self.principal.as_ref()
    }

    /// The caller's account id.
    pub fn account(&self) -> Option<&str> {
        self.principal.as_ref().map(|p| p.account_id())
    }

    /// Records that a bucket policy granted this request `grant`.
    pub fn grant(&mut self, grant: PolicyGrant) {
        self.grants.push(grant);
    }

    /// What bucket policies granted this request.
    pub fn grants(&self) -> &[PolicyGrant] {
        &self.grants
    }

    /// Whether a bucket policy granted `permission` on the bucket (`key`
    /// `None`) or on one of its objects.
    pub(crate) fn granted(&self, bucket: &str, key: Option<&str>, permission: Permission) -> bool {
        self.grants
            .iter()
            .any(|g| g.bucket == bucket && g.key.as_deref() == key && g.permission == permission)
    }
}

/// The page size of a listing that asked for `max` entries.
pub(crate) fn page_size(max: Option<usize>) -> usize {
    max.unwrap_or(MAX_PAGE).min(MAX_PAGE)
}

/// The bucket, or NoSuchBucket.
pub(crate) async fn bucket(cloud: &Cloud, name: &str) -> Result<Bucket, ObjectError> {
    cloud
        .store
        .bucket(name)
        .await?
        .ok_or(ObjectError::NoSuchBucket)
}

/// The bucket, after checking `requester` holds `permission` on it by
/// the bucket's ACL or a bucket policy grant.
pub(crate) async fn bucket_for(
    cloud: &Cloud,
    requester: &Requester,
    name: &str,
    permission: Permission,
) -> Result<Bucket, ObjectError> {
    let bucket = bucket(cloud, name).await?;
    if controls::acl_allows(
        &bucket,
        &bucket.acl_json,
        &bucket.account_id,
        requester,
        permission,
    ) || requester.granted(&bucket.name, None, permission)
    {
        Ok(bucket)
    } else {
        Err(ObjectError::AccessDenied)
    }
}

/// The bucket, if `requester` owns it (some bucket operations are the
/// owner's whatever the ACL grants).
pub(crate) async fn owned_bucket(
    cloud: &Cloud,
    requester: &Requester,
    name: &str,
) -> Result<Bucket, ObjectError> {
    let bucket = bucket(cloud, name).await?;
    if requester.account() == Some(bucket.account_id.as_str()) {
        Ok(bucket)
    } else {
        Err(ObjectError::AccessDenied)
    }
}

/// Opens `range` (or all) of an object's data for reading now, with the
/// customer's key for SSE-C data.
pub(crate) async fn open(
    cloud: &Cloud,
    object: &ObjectRecord,
    range: Option<std::ops::Range<u64>>,
    customer: Option<&sse::CustomerKey>,
) -> Result<ObjectReader, ObjectError> {
    let segments: Vec<(String, u64)> = object
        .segments
        .iter()
        .map(|s| (s.blob_id.clone(), s.size))
        .collect();
    let key = sse::data_key(cloud, object.encryption.as_ref(), customer)?;
    cloud
        .blobs
        .open_object_encrypted(&segments, range, key.as_ref())
        .await
        .map_err(ObjectError::internal)
}

/// Deletes blobs a committed change stopped using; a failure only leaves
/// garbage for the start-up sweep.
pub(crate) async fn release_blobs(cloud: &Cloud, blob_ids: Vec<String>) {
    if blob_ids.is_empty() {
        return;
    }
    if let Err(e) = cloud.blobs.delete(&blob_ids).await {
        tracing::warn!(error = %e, "could not delete released blobs; the start-up sweep will");
    }
}

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
    let reader = open(cloud, object, Some(0..len), None).await.map_err(|e| {
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
    use mallee_store::{Bucket, ObjectMetadata, ObjectRecord, Part, Segment};

    use super::Requester;
    use super::acl::{Acl, AclRequest};
    use super::buckets::{self, NewBucket};
    use super::error::Result;
    use super::multipart::{self, NewUpload, UploadPart, UploadRef};
    use super::writes::Body;
    use crate::Cloud;
    use crate::testkit::TestCloud;

    /// Starts an upload of `key` in bucket `b` for `requester`, with
    /// `tags` as its `x-amz-tagging`.
    pub async fn start_upload(
        cloud: &Cloud,
        requester: &Requester,
        key: &str,
        tags: &[(&str, &str)],
    ) -> Result<UploadRef> {
        let new = NewUpload {
            bucket: "b".into(),
            key: key.into(),
            acl: AclRequest::default(),
            metadata: ObjectMetadata::default(),
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            encrypt: false,
            customer_key: None,
        };
        let upload = multipart::create(cloud, requester, new).await?;
        Ok(UploadRef {
            bucket: upload.bucket,
            key: upload.key,
            upload_id: upload.upload_id,
        })
    }

    /// Stores `data` as part `number` of `upload` for `requester`.
    pub async fn upload_part(
        cloud: &Cloud,
        requester: &Requester,
        upload: &UploadRef,
        number: i32,
        data: Vec<u8>,
    ) -> Result<Part> {
        let stream = futures_util::stream::iter([Ok::<_, std::io::Error>(Bytes::from(data))]);
        let part = UploadPart {
            upload: upload.clone(),
            part_number: number,
            body: Body {
                declared_size: None,
                expected_md5: None,
                stream,
            },
            customer_key: None,
        };
        multipart::upload_part(cloud, requester, part).await
    }

    /// A cloud with two accounts, `alice` and `bob` (returned in that
    /// order), and a private bucket `b` of alice's.
    pub async fn with_bucket() -> (TestCloud, Requester, Requester) {
        let cloud = TestCloud::new().await;
        let alice = Requester::principal(cloud.principal("alice").await);
        let bob = Requester::principal(cloud.principal("bob").await);
        let bucket = NewBucket {
            name: "b".into(),
            location: String::new(),
            acl: AclRequest::default(),
        };
        buckets::create(&cloud, &alice, bucket)
            .await
            .expect("bucket");
        (cloud, alice, bob)
    }

    /// How many blob files are on disk (`data/<2 hex>/<id>`): what
    /// committed objects and parts use, unless a release failed.
    pub fn blob_files(cloud: &Cloud) -> usize {
        let Ok(fans) = std::fs::read_dir(cloud.blobs.root().join("data")) else {
            return 0;
        };
        fans.flatten()
            .map(|fan| std::fs::read_dir(fan.path()).map_or(0, Iterator::count))
            .sum()
    }

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
                    policy: None,
                    tags: Default::default(),
                    versioning: Default::default(),
                    settings: Default::default(),
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
                tags: Default::default(),
                version_id: mallee_store::NULL_VERSION.into(),
                delete_marker: false,
                encryption: None,
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
