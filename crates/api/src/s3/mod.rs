//! The S3 API (Walrus): s3s parses requests, verifies signatures and writes
//! responses; mallee supplies the storage engine (blob files plus the object
//! index in the metadata store), the credentials and the authorisation.
//! One file per group of operations.

/// The `x-amz-grant-*` headers of an object write (no WRITE grant on
/// objects), for `requested_acl`.
macro_rules! object_grants {
    ($input:expr) => {
        [
            (
                $crate::s3::acl::Permission::FullControl,
                $input.grant_full_control.as_deref(),
            ),
            (
                $crate::s3::acl::Permission::Read,
                $input.grant_read.as_deref(),
            ),
            (
                $crate::s3::acl::Permission::ReadAcp,
                $input.grant_read_acp.as_deref(),
            ),
            (
                $crate::s3::acl::Permission::WriteAcp,
                $input.grant_write_acp.as_deref(),
            ),
            ($crate::s3::acl::Permission::Write, None),
        ]
    };
}

/// The five `x-amz-grant-*` headers of a bucket create or an ACL write.
macro_rules! all_grants {
    ($input:expr) => {
        [
            (
                $crate::s3::acl::Permission::FullControl,
                $input.grant_full_control.as_deref(),
            ),
            (
                $crate::s3::acl::Permission::Read,
                $input.grant_read.as_deref(),
            ),
            (
                $crate::s3::acl::Permission::ReadAcp,
                $input.grant_read_acp.as_deref(),
            ),
            (
                $crate::s3::acl::Permission::Write,
                $input.grant_write.as_deref(),
            ),
            (
                $crate::s3::acl::Permission::WriteAcp,
                $input.grant_write_acp.as_deref(),
            ),
        ]
    };
}

/// The `x-amz-copy-source-if-*` conditions of a copy.
macro_rules! copy_conditions {
    ($input:expr) => {
        $crate::s3::objects::Conditions {
            if_match: $input.copy_source_if_match.as_ref(),
            if_none_match: $input.copy_source_if_none_match.as_ref(),
            if_modified_since: $input.copy_source_if_modified_since.as_ref(),
            if_unmodified_since: $input.copy_source_if_unmodified_since.as_ref(),
        }
    };
}

pub mod acl;
mod buckets;
mod checksum;
pub(crate) mod gateway;
mod list;
mod multipart;
mod objects;

use std::sync::Arc;

use mallee_blobs::BlobStore;
use mallee_store::{Bucket, StoreError};
use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Error, S3ErrorCode, S3Request, S3Response, S3Result, s3_error};

use acl::{Acl, Permission};
use mallee_cloud::Cloud;
use mallee_cloud::Principal;

/// Largest object a single PUT may store (S3: 5 GiB).
pub const MAX_PUT_SIZE: u64 = 5 * 1024 * 1024 * 1024;
/// Largest multipart object (S3: 5 TiB).
pub const MAX_OBJECT_SIZE: u64 = 5 * 1024 * 1024 * 1024 * 1024;
/// Smallest part other than the last (S3: 5 MiB).
pub const MIN_PART_SIZE: u64 = 5 * 1024 * 1024;

/// Who is calling, as the S3 operations see it.
#[derive(Debug, Clone)]
pub enum S3Caller {
    /// No credentials.
    Anonymous,
    /// A verified principal.
    Principal(Principal),
}

impl S3Caller {
    /// The caller's account id.
    pub fn account(&self) -> Option<&str> {
        match self {
            Self::Anonymous => None,
            Self::Principal(p) => Some(&p.account.account_id),
        }
    }
}

/// Where the access hook leaves the caller's account for the request log
/// (the front door puts it into the request's extensions).
#[derive(Debug, Clone, Default)]
pub struct AccountSlot(std::sync::Arc<std::sync::OnceLock<String>>);

impl AccountSlot {
    fn set(&self, account: &str) {
        let _ = self.0.set(account.to_owned());
    }

    /// The account, once known.
    pub fn get(&self) -> Option<String> {
        self.0.get().cloned()
    }
}

/// The storage engine behind the S3 API.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    cloud: Arc<Cloud>,
    blobs: Arc<BlobStore>,
}

/// Builds the S3 service for the front door.
pub fn service(cloud: Arc<Cloud>, blobs: Arc<BlobStore>) -> S3Service {
    let mut builder = S3ServiceBuilder::new(ObjectStore {
        cloud: cloud.clone(),
        blobs,
    });
    builder.set_auth(StoreAuth {
        cloud: cloud.clone(),
    });
    builder.set_access(CallerAccess {
        cloud: cloud.clone(),
    });
    builder.set_host(BucketHost {
        domain: cloud.config.s3_domain.to_ascii_lowercase(),
    });
    builder.build()
}

/// The bucket a virtual-host style Host header names under `domain`.
pub fn virtual_host_bucket(domain: &str, host: &str) -> Option<String> {
    BucketHost {
        domain: domain.to_ascii_lowercase(),
    }
    .bucket_of(host)
}

/// Virtual-host addressing: `BUCKET.DOMAIN[:port]` names a bucket; every
/// other host (an IP, `localhost`, the domain itself) is path style.
#[derive(Debug)]
struct BucketHost {
    domain: String,
}

impl BucketHost {
    /// The bucket a Host header names, if any.
    fn bucket_of(&self, host: &str) -> Option<String> {
        let name = match host.rsplit_once(':') {
            Some((name, port))
                if !name.ends_with(']') && port.bytes().all(|b| b.is_ascii_digit()) =>
            {
                name
            }
            _ => host,
        };
        let name = name.to_ascii_lowercase();
        let bucket = name.strip_suffix(&self.domain)?.strip_suffix('.')?;
        (!bucket.is_empty()).then(|| bucket.to_owned())
    }
}

impl s3s::host::S3Host for BucketHost {
    fn parse_host_header<'a>(&'a self, host: &'a str) -> S3Result<s3s::host::VirtualHost<'a>> {
        let virtual_host = s3s::host::VirtualHost::new(self.domain.as_str());
        Ok(match self.bucket_of(host) {
            Some(bucket) => virtual_host.with_bucket(bucket),
            None => virtual_host,
        })
    }
}

/// Secret keys come from the metadata store; inactive keys are unknown.
struct StoreAuth {
    cloud: Arc<Cloud>,
}

#[async_trait::async_trait]
impl S3Auth for StoreAuth {
    async fn get_secret_key(&self, access_key: &str) -> S3Result<SecretKey> {
        match self.cloud.store.access_key(access_key).await {
            Ok(Some((key, _))) if key.active => Ok(SecretKey::from(key.secret_access_key)),
            Ok(_) => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
            Err(e) => Err(internal(e)),
        }
    }
}

/// Records the caller for the operations; authorisation itself needs the
/// bucket and object ACLs, so each operation checks them.
struct CallerAccess {
    cloud: Arc<Cloud>,
}

#[async_trait::async_trait]
impl S3Access for CallerAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let access_key = cx.credentials().map(|c| c.access_key.clone());
        let caller = match access_key {
            // The front door verified a SigV2 signature itself and attached
            // the caller (extensions never come from the client).
            None if cx.extensions_mut().get::<S3Caller>().is_some() => return Ok(()),
            None => S3Caller::Anonymous,
            Some(access_key) => match self.cloud.store.access_key(&access_key).await {
                Ok(Some((key, account))) if key.active => S3Caller::Principal(Principal {
                    account,
                    user_name: key.user_name,
                    access_key_id: key.access_key_id,
                }),
                Ok(_) => return Err(s3_error!(InvalidAccessKeyId)),
                Err(e) => return Err(internal(e)),
            },
        };
        if let (Some(account), Some(slot)) =
            (caller.account(), cx.extensions_mut().get::<AccountSlot>())
        {
            slot.set(account);
        }
        cx.extensions_mut().insert(caller);
        Ok(())
    }
}

/// An unexpected failure: logged here, reported as InternalError.
pub(crate) fn internal(err: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %err, "object store failure");
    S3Error::with_message(
        S3ErrorCode::InternalError,
        "We encountered an internal error. Please try again.",
    )
}

fn caller<T>(req: &S3Request<T>) -> S3Caller {
    req.extensions
        .get::<S3Caller>()
        .cloned()
        .unwrap_or(S3Caller::Anonymous)
}

fn access_denied() -> S3Error {
    s3_error!(AccessDenied, "Access Denied")
}

fn timestamp(millis: i64) -> Timestamp {
    Timestamp::from(
        time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
            .unwrap_or(time::OffsetDateTime::UNIX_EPOCH),
    )
}

fn owner_of(account_id: &str, name: &str) -> Owner {
    Owner {
        display_name: Some(name.to_owned()),
        id: Some(acl::canonical_id(account_id)),
    }
}

impl ObjectStore {
    /// The bucket, or NoSuchBucket.
    async fn bucket(&self, name: &str) -> S3Result<Bucket> {
        self.cloud
            .store
            .bucket(name)
            .await
            .map_err(internal)?
            .ok_or_else(|| s3_error!(NoSuchBucket))
    }

    /// The bucket, after checking `caller` holds `permission` on it.
    async fn bucket_for(
        &self,
        name: &str,
        caller: &S3Caller,
        permission: Permission,
    ) -> S3Result<Bucket> {
        let bucket = self.bucket(name).await?;
        if Acl::from_json(&bucket.acl_json, &bucket.account_id).allows(caller.account(), permission)
        {
            Ok(bucket)
        } else {
            Err(access_denied())
        }
    }

    /// Display name of an account for Owner elements.
    async fn account_name(&self, account_id: &str) -> String {
        match self.cloud.store.account_by_id(account_id).await {
            Ok(Some(account)) => account.name,
            _ => account_id.to_owned(),
        }
    }

    /// The account whose canonical id is `canonical`.
    async fn resolve_canonical(&self) -> S3Result<impl Fn(&str) -> Option<String> + use<>> {
        let accounts = self.cloud.store.accounts().await.map_err(internal)?;
        let ids: Vec<(String, String)> = accounts
            .into_iter()
            .map(|a| (acl::canonical_id(&a.account_id), a.account_id))
            .collect();
        Ok(move |canonical: &str| {
            ids.iter()
                .find(|(c, _)| c == canonical)
                .map(|(_, id)| id.clone())
        })
    }

    /// Deletes blobs a committed change stopped using; a failure only leaves
    /// garbage for the start-up sweep.
    async fn release_blobs(&self, blob_ids: Vec<String>) {
        if blob_ids.is_empty() {
            return;
        }
        if let Err(e) = self.blobs.delete(&blob_ids).await {
            tracing::warn!(error = %e, "could not delete released blobs; the start-up sweep will");
        }
    }
}

/// Maps index errors of writes to S3 errors.
fn write_error(err: StoreError) -> S3Error {
    match err {
        StoreError::NotFound(_) => s3_error!(NoSuchBucket),
        StoreError::Objects(mallee_store::ObjectIndexError::BucketNotEmpty) => {
            s3_error!(BucketNotEmpty)
        }
        StoreError::Objects(mallee_store::ObjectIndexError::QuotaExceeded { quota }) => {
            let mut e = S3Error::with_message(
                S3ErrorCode::Custom("QuotaExceeded".into()),
                format!("The account's storage quota of {quota} bytes would be exceeded."),
            );
            e.set_status_code(http::StatusCode::FORBIDDEN);
            e
        }
        other => internal(other),
    }
}

/// The ACL a create request asks for: a canned ACL or `x-amz-grant-*`
/// headers (not both), else private.
#[allow(clippy::too_many_arguments)]
async fn requested_acl(
    store: &ObjectStore,
    canned: Option<&str>,
    grants: [(Permission, Option<&str>); 5],
    owner: &str,
    bucket_owner: &str,
) -> S3Result<Acl> {
    let has_grants = grants.iter().any(|(_, v)| v.is_some());
    if canned.is_some() && has_grants {
        return Err(s3_error!(
            InvalidRequest,
            "Specifying both Canned ACLs and Header Grants is not allowed"
        ));
    }
    let mut acl = Acl::canned(canned.unwrap_or("private"), owner, bucket_owner)
        .map_err(|e| S3Error::with_message(S3ErrorCode::InvalidArgument, e.to_string()))?;
    if has_grants {
        let resolve = store.resolve_canonical().await?;
        for (permission, value) in grants {
            if let Some(value) = value {
                acl::add_header_grants(&mut acl, permission, value, &resolve).map_err(|e| {
                    S3Error::with_message(S3ErrorCode::InvalidArgument, e.to_string())
                })?;
            }
        }
    }
    Ok(acl)
}

#[async_trait::async_trait]
impl S3 for ObjectStore {
    async fn list_buckets(
        &self,
        req: S3Request<ListBucketsInput>,
    ) -> S3Result<S3Response<ListBucketsOutput>> {
        buckets::list_buckets(self, req).await
    }
    async fn create_bucket(
        &self,
        req: S3Request<CreateBucketInput>,
    ) -> S3Result<S3Response<CreateBucketOutput>> {
        buckets::create_bucket(self, req).await
    }
    async fn head_bucket(
        &self,
        req: S3Request<HeadBucketInput>,
    ) -> S3Result<S3Response<HeadBucketOutput>> {
        buckets::head_bucket(self, req).await
    }
    async fn delete_bucket(
        &self,
        req: S3Request<DeleteBucketInput>,
    ) -> S3Result<S3Response<DeleteBucketOutput>> {
        buckets::delete_bucket(self, req).await
    }
    async fn get_bucket_location(
        &self,
        req: S3Request<GetBucketLocationInput>,
    ) -> S3Result<S3Response<GetBucketLocationOutput>> {
        buckets::get_bucket_location(self, req).await
    }
    async fn get_bucket_acl(
        &self,
        req: S3Request<GetBucketAclInput>,
    ) -> S3Result<S3Response<GetBucketAclOutput>> {
        buckets::get_bucket_acl(self, req).await
    }
    async fn put_bucket_acl(
        &self,
        req: S3Request<PutBucketAclInput>,
    ) -> S3Result<S3Response<PutBucketAclOutput>> {
        buckets::put_bucket_acl(self, req).await
    }
    async fn put_object(
        &self,
        req: S3Request<PutObjectInput>,
    ) -> S3Result<S3Response<PutObjectOutput>> {
        objects::put_object(self, req).await
    }
    async fn get_object(
        &self,
        req: S3Request<GetObjectInput>,
    ) -> S3Result<S3Response<GetObjectOutput>> {
        objects::get_object(self, req).await
    }
    async fn head_object(
        &self,
        req: S3Request<HeadObjectInput>,
    ) -> S3Result<S3Response<HeadObjectOutput>> {
        objects::head_object(self, req).await
    }
    async fn delete_object(
        &self,
        req: S3Request<DeleteObjectInput>,
    ) -> S3Result<S3Response<DeleteObjectOutput>> {
        objects::delete_object(self, req).await
    }
    async fn delete_objects(
        &self,
        req: S3Request<DeleteObjectsInput>,
    ) -> S3Result<S3Response<DeleteObjectsOutput>> {
        objects::delete_objects(self, req).await
    }
    async fn copy_object(
        &self,
        req: S3Request<CopyObjectInput>,
    ) -> S3Result<S3Response<CopyObjectOutput>> {
        objects::copy_object(self, req).await
    }
    async fn get_object_acl(
        &self,
        req: S3Request<GetObjectAclInput>,
    ) -> S3Result<S3Response<GetObjectAclOutput>> {
        objects::get_object_acl(self, req).await
    }
    async fn put_object_acl(
        &self,
        req: S3Request<PutObjectAclInput>,
    ) -> S3Result<S3Response<PutObjectAclOutput>> {
        objects::put_object_acl(self, req).await
    }
    async fn list_objects(
        &self,
        req: S3Request<ListObjectsInput>,
    ) -> S3Result<S3Response<ListObjectsOutput>> {
        list::list_objects(self, req).await
    }
    async fn list_objects_v2(
        &self,
        req: S3Request<ListObjectsV2Input>,
    ) -> S3Result<S3Response<ListObjectsV2Output>> {
        list::list_objects_v2(self, req).await
    }
    async fn create_multipart_upload(
        &self,
        req: S3Request<CreateMultipartUploadInput>,
    ) -> S3Result<S3Response<CreateMultipartUploadOutput>> {
        multipart::create_multipart_upload(self, req).await
    }
    async fn upload_part(
        &self,
        req: S3Request<UploadPartInput>,
    ) -> S3Result<S3Response<UploadPartOutput>> {
        multipart::upload_part(self, req).await
    }
    async fn upload_part_copy(
        &self,
        req: S3Request<UploadPartCopyInput>,
    ) -> S3Result<S3Response<UploadPartCopyOutput>> {
        multipart::upload_part_copy(self, req).await
    }
    async fn complete_multipart_upload(
        &self,
        req: S3Request<CompleteMultipartUploadInput>,
    ) -> S3Result<S3Response<CompleteMultipartUploadOutput>> {
        multipart::complete_multipart_upload(self, req).await
    }
    async fn abort_multipart_upload(
        &self,
        req: S3Request<AbortMultipartUploadInput>,
    ) -> S3Result<S3Response<AbortMultipartUploadOutput>> {
        multipart::abort_multipart_upload(self, req).await
    }
    async fn list_parts(
        &self,
        req: S3Request<ListPartsInput>,
    ) -> S3Result<S3Response<ListPartsOutput>> {
        multipart::list_parts(self, req).await
    }
    async fn list_multipart_uploads(
        &self,
        req: S3Request<ListMultipartUploadsInput>,
    ) -> S3Result<S3Response<ListMultipartUploadsOutput>> {
        multipart::list_multipart_uploads(self, req).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_hosts_name_buckets_and_everything_else_is_path_style() {
        let host = BucketHost {
            domain: "s3.localhost".into(),
        };
        assert_eq!(
            host.bucket_of("photos.s3.localhost:8773").as_deref(),
            Some("photos")
        );
        assert_eq!(
            host.bucket_of("my.dotted.bucket.S3.localhost").as_deref(),
            Some("my.dotted.bucket")
        );
        assert_eq!(host.bucket_of("s3.localhost:8773"), None);
        assert_eq!(host.bucket_of("localhost:8773"), None);
        assert_eq!(host.bucket_of("127.0.0.1:8773"), None);
        assert_eq!(host.bucket_of("[::1]:8773"), None);
        assert_eq!(host.bucket_of("evils3.localhost"), None);
    }
}
