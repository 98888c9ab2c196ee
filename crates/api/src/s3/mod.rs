//! The S3 API (Walrus): s3s parses requests, verifies signatures and writes
//! responses; mallee supplies the credentials, the caller, and the
//! operations, which turn s3s's input into the object store's
//! (`mallee_cloud::objects`, where buckets, objects and uploads are
//! decided and stored), call it and render its answer. One file per group
//! of operations; `error.rs` maps the object store's errors to S3's.

/// The `x-amz-grant-*` headers of a request by permission, `$write` being
/// its WRITE grant.
macro_rules! grants {
    ($input:expr, $write:expr) => {{
        use $crate::s3::acl::Permission;
        [
            (
                Permission::FullControl,
                $input.grant_full_control.as_deref(),
            ),
            (Permission::Read, $input.grant_read.as_deref()),
            (Permission::ReadAcp, $input.grant_read_acp.as_deref()),
            (Permission::Write, $write),
            (Permission::WriteAcp, $input.grant_write_acp.as_deref()),
        ]
    }};
}

/// The grant headers of an object write (objects have no WRITE grant).
macro_rules! object_grants {
    ($input:expr) => {
        grants!($input, None)
    };
}

/// The five grant headers of a bucket create or an ACL write.
macro_rules! all_grants {
    ($input:expr) => {
        grants!($input, $input.grant_write.as_deref())
    };
}

/// The ACL a create or write asks for with its canned ACL and grant
/// headers (`object_grants` or `all_grants`).
macro_rules! requested_acl {
    ($api:expr, $input:expr, $grants:ident) => {
        $crate::s3::acl::requested_acl(
            &$api.cloud,
            $input.acl.as_ref().map(|a| a.as_str()),
            $grants!($input),
        )
    };
}

/// The ACL a Put*Acl sets.
macro_rules! acl_to_set {
    ($api:expr, $input:expr) => {
        $crate::s3::acl::acl_from_request(
            &$api.cloud,
            $input.acl.as_ref().map(|a| a.as_str()),
            $input.access_control_policy.as_ref(),
            all_grants!($input),
        )
    };
}

/// The conditions a request's fields `$if_match`, `$if_none_match`,
/// `$if_modified_since` and `$if_unmodified_since` set.
macro_rules! conditions {
    ($input:expr, $if_match:ident, $if_none_match:ident, $if_modified_since:ident, $if_unmodified_since:ident) => {
        $crate::s3::dto::conditions(
            $input.$if_match.as_ref(),
            $input.$if_none_match.as_ref(),
            $input.$if_modified_since.as_ref(),
            $input.$if_unmodified_since.as_ref(),
        )
    };
}

/// The `x-amz-copy-source-if-*` conditions of a copy.
macro_rules! copy_conditions {
    ($input:expr) => {
        conditions!(
            $input,
            copy_source_if_match,
            copy_source_if_none_match,
            copy_source_if_modified_since,
            copy_source_if_unmodified_since
        )
    };
}

/// The metadata of a write, from its standard headers and `x-amz-meta-*`.
macro_rules! metadata_of {
    ($input:expr) => {
        $crate::s3::dto::MetadataInput {
            content_type: $input.content_type.as_deref(),
            content_encoding: $input.content_encoding.as_deref(),
            content_disposition: $input.content_disposition.as_deref(),
            content_language: $input.content_language.as_deref(),
            cache_control: $input.cache_control.as_deref(),
            expires: $input.expires.as_ref(),
            user: $input.metadata.as_ref(),
        }
        .into_metadata()
    };
}

pub mod acl;
mod authz;
mod buckets;
mod checksum;
mod controls;
pub(crate) mod cors;
mod dto;
mod encryption;
mod error;
pub(crate) mod gateway;
mod lifecycle;
mod list;
mod multipart;
mod objects;
mod policy;
mod tagging;
mod versions;

use std::sync::Arc;

use s3s::access::{S3Access, S3AccessContext};
use s3s::auth::{S3Auth, SecretKey};
use s3s::dto::*;
use s3s::service::{S3Service, S3ServiceBuilder};
use s3s::{S3, S3Request, S3Response, S3Result, s3_error};

use error::internal;
use mallee_cloud::Cloud;
use mallee_cloud::objects::Requester;

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

/// Where the access hook leaves the name of the S3 operation s3s routed
/// the request to (`PutObject`), for the request log and the metrics.
#[derive(Debug, Clone, Default)]
pub struct OperationSlot(std::sync::Arc<std::sync::OnceLock<String>>);

impl OperationSlot {
    /// The operation, once s3s has routed the request.
    pub fn get(&self) -> Option<String> {
        self.0.get().cloned()
    }
}

/// The S3 operation a response answers, in the response's extensions.
#[derive(Debug, Clone)]
pub struct S3Operation(pub String);

/// The S3 operations s3s calls: each turns s3s's input into the object
/// store's, calls `mallee_cloud::objects` and turns the answer into s3s's
/// output.
#[derive(Debug, Clone)]
pub struct S3Api {
    cloud: Arc<Cloud>,
}

/// Builds the S3 service for the front door.
pub fn service(cloud: Arc<Cloud>) -> S3Service {
    let mut builder = S3ServiceBuilder::new(S3Api {
        cloud: cloud.clone(),
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
        match crate::auth::secret_of_key(&self.cloud, access_key).await {
            Ok(Some(secret)) => Ok(SecretKey::from(secret)),
            Ok(None) => Err(s3_error!(
                InvalidAccessKeyId,
                "The AWS Access Key Id you provided does not exist in our records."
            )),
            Err(e) => Err(internal(e)),
        }
    }
}

/// Finds the caller and decides the request by the caller's identity
/// policies and the bucket's policy (`authz`); what a bucket policy grants
/// goes to the operation with the caller, and the operation adds what
/// ownership and ACLs allow.
struct CallerAccess {
    cloud: Arc<Cloud>,
}

#[async_trait::async_trait]
impl S3Access for CallerAccess {
    async fn check(&self, cx: &mut S3AccessContext<'_>) -> S3Result<()> {
        let operation = cx.s3_op().name().to_owned();
        if let Some(slot) = cx.extensions_mut().get::<OperationSlot>() {
            let _ = slot.0.set(operation);
        }
        let access_key = cx.credentials().map(|c| c.access_key.clone());
        let mut caller = match access_key {
            // The front door verified a SigV2 signature itself and attached
            // the caller (extensions never come from the client).
            None => cx
                .extensions_mut()
                .get::<Requester>()
                .cloned()
                .unwrap_or_default(),
            Some(access_key) => {
                let token = cx
                    .headers()
                    .get("x-amz-security-token")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
                    .or_else(|| {
                        let query = cx.uri().query().unwrap_or_default();
                        form_urlencoded::parse(query.as_bytes())
                            .find(|(k, _)| k == "X-Amz-Security-Token")
                            .map(|(_, v)| v.into_owned())
                    });
                match crate::auth::principal_of_key(&self.cloud, &access_key, token.as_deref())
                    .await
                {
                    Ok(principal) => Requester::principal(principal),
                    Err(crate::auth::AuthError::ExpiredToken) => {
                        return Err(s3_error!(ExpiredToken, "The provided token has expired."));
                    }
                    Err(crate::auth::AuthError::Store(e)) => return Err(internal(e)),
                    Err(_) => return Err(s3_error!(InvalidAccessKeyId)),
                }
            }
        };
        if let Some(account) = caller.account()
            && !self.cloud.admission.allow_account(account)
        {
            return Err(s3_error!(SlowDown, "Please reduce your request rate."));
        }
        if let Some(principal) = caller.as_principal() {
            let cloud = &self.cloud;
            cloud
                .key_use
                .note(
                    &*cloud.store,
                    &principal.access_key_id,
                    "s3",
                    &cloud.config.region,
                )
                .await;
        }
        // The front door keeps the connection's address with the request.
        let source_ip = cx
            .extensions_mut()
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip());
        if let Some(deletes) = authz::check(&self.cloud, &mut caller, cx, source_ip).await? {
            cx.extensions_mut().insert(deletes);
        }
        if let (Some(account), Some(slot)) =
            (caller.account(), cx.extensions_mut().get::<AccountSlot>())
        {
            slot.set(account);
        }
        cx.extensions_mut().insert(caller);
        Ok(())
    }
}

/// Who makes a request: what the access hook found.
fn caller<T>(req: &S3Request<T>) -> Requester {
    req.extensions
        .get::<Requester>()
        .cloned()
        .unwrap_or_default()
}

#[async_trait::async_trait]
impl S3 for S3Api {
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
    async fn get_bucket_policy(
        &self,
        req: S3Request<GetBucketPolicyInput>,
    ) -> S3Result<S3Response<GetBucketPolicyOutput>> {
        policy::get_bucket_policy(self, req).await
    }
    async fn put_bucket_policy(
        &self,
        req: S3Request<PutBucketPolicyInput>,
    ) -> S3Result<S3Response<PutBucketPolicyOutput>> {
        policy::put_bucket_policy(self, req).await
    }
    async fn delete_bucket_policy(
        &self,
        req: S3Request<DeleteBucketPolicyInput>,
    ) -> S3Result<S3Response<DeleteBucketPolicyOutput>> {
        policy::delete_bucket_policy(self, req).await
    }
    async fn get_bucket_policy_status(
        &self,
        req: S3Request<GetBucketPolicyStatusInput>,
    ) -> S3Result<S3Response<GetBucketPolicyStatusOutput>> {
        policy::get_bucket_policy_status(self, req).await
    }
    async fn put_bucket_tagging(
        &self,
        req: S3Request<PutBucketTaggingInput>,
    ) -> S3Result<S3Response<PutBucketTaggingOutput>> {
        tagging::put_bucket_tagging(self, req).await
    }
    async fn get_bucket_tagging(
        &self,
        req: S3Request<GetBucketTaggingInput>,
    ) -> S3Result<S3Response<GetBucketTaggingOutput>> {
        tagging::get_bucket_tagging(self, req).await
    }
    async fn delete_bucket_tagging(
        &self,
        req: S3Request<DeleteBucketTaggingInput>,
    ) -> S3Result<S3Response<DeleteBucketTaggingOutput>> {
        tagging::delete_bucket_tagging(self, req).await
    }
    async fn put_object_tagging(
        &self,
        req: S3Request<PutObjectTaggingInput>,
    ) -> S3Result<S3Response<PutObjectTaggingOutput>> {
        tagging::put_object_tagging(self, req).await
    }
    async fn get_object_tagging(
        &self,
        req: S3Request<GetObjectTaggingInput>,
    ) -> S3Result<S3Response<GetObjectTaggingOutput>> {
        tagging::get_object_tagging(self, req).await
    }
    async fn delete_object_tagging(
        &self,
        req: S3Request<DeleteObjectTaggingInput>,
    ) -> S3Result<S3Response<DeleteObjectTaggingOutput>> {
        tagging::delete_object_tagging(self, req).await
    }
    async fn put_public_access_block(
        &self,
        req: S3Request<PutPublicAccessBlockInput>,
    ) -> S3Result<S3Response<PutPublicAccessBlockOutput>> {
        controls::put_public_access_block(self, req).await
    }
    async fn get_public_access_block(
        &self,
        req: S3Request<GetPublicAccessBlockInput>,
    ) -> S3Result<S3Response<GetPublicAccessBlockOutput>> {
        controls::get_public_access_block(self, req).await
    }
    async fn delete_public_access_block(
        &self,
        req: S3Request<DeletePublicAccessBlockInput>,
    ) -> S3Result<S3Response<DeletePublicAccessBlockOutput>> {
        controls::delete_public_access_block(self, req).await
    }
    async fn put_bucket_ownership_controls(
        &self,
        req: S3Request<PutBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<PutBucketOwnershipControlsOutput>> {
        controls::put_bucket_ownership_controls(self, req).await
    }
    async fn get_bucket_ownership_controls(
        &self,
        req: S3Request<GetBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<GetBucketOwnershipControlsOutput>> {
        controls::get_bucket_ownership_controls(self, req).await
    }
    async fn delete_bucket_ownership_controls(
        &self,
        req: S3Request<DeleteBucketOwnershipControlsInput>,
    ) -> S3Result<S3Response<DeleteBucketOwnershipControlsOutput>> {
        controls::delete_bucket_ownership_controls(self, req).await
    }
    async fn get_bucket_request_payment(
        &self,
        req: S3Request<GetBucketRequestPaymentInput>,
    ) -> S3Result<S3Response<GetBucketRequestPaymentOutput>> {
        controls::get_bucket_request_payment(self, req).await
    }
    async fn get_bucket_accelerate_configuration(
        &self,
        req: S3Request<GetBucketAccelerateConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketAccelerateConfigurationOutput>> {
        controls::get_bucket_accelerate_configuration(self, req).await
    }
    async fn get_bucket_logging(
        &self,
        req: S3Request<GetBucketLoggingInput>,
    ) -> S3Result<S3Response<GetBucketLoggingOutput>> {
        controls::get_bucket_logging(self, req).await
    }
    async fn get_bucket_website(
        &self,
        req: S3Request<GetBucketWebsiteInput>,
    ) -> S3Result<S3Response<GetBucketWebsiteOutput>> {
        controls::get_bucket_website(self, req).await
    }
    async fn get_bucket_replication(
        &self,
        req: S3Request<GetBucketReplicationInput>,
    ) -> S3Result<S3Response<GetBucketReplicationOutput>> {
        controls::get_bucket_replication(self, req).await
    }
    async fn get_bucket_encryption(
        &self,
        req: S3Request<GetBucketEncryptionInput>,
    ) -> S3Result<S3Response<GetBucketEncryptionOutput>> {
        encryption::get_bucket_encryption(self, req).await
    }
    async fn put_bucket_encryption(
        &self,
        req: S3Request<PutBucketEncryptionInput>,
    ) -> S3Result<S3Response<PutBucketEncryptionOutput>> {
        encryption::put_bucket_encryption(self, req).await
    }
    async fn delete_bucket_encryption(
        &self,
        req: S3Request<DeleteBucketEncryptionInput>,
    ) -> S3Result<S3Response<DeleteBucketEncryptionOutput>> {
        encryption::delete_bucket_encryption(self, req).await
    }
    async fn get_object_lock_configuration(
        &self,
        req: S3Request<GetObjectLockConfigurationInput>,
    ) -> S3Result<S3Response<GetObjectLockConfigurationOutput>> {
        controls::get_object_lock_configuration(self, req).await
    }
    async fn get_bucket_lifecycle_configuration(
        &self,
        req: S3Request<GetBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<GetBucketLifecycleConfigurationOutput>> {
        lifecycle::get_bucket_lifecycle_configuration(self, req).await
    }
    async fn put_bucket_lifecycle_configuration(
        &self,
        req: S3Request<PutBucketLifecycleConfigurationInput>,
    ) -> S3Result<S3Response<PutBucketLifecycleConfigurationOutput>> {
        lifecycle::put_bucket_lifecycle_configuration(self, req).await
    }
    async fn delete_bucket_lifecycle(
        &self,
        req: S3Request<DeleteBucketLifecycleInput>,
    ) -> S3Result<S3Response<DeleteBucketLifecycleOutput>> {
        lifecycle::delete_bucket_lifecycle(self, req).await
    }
    async fn put_bucket_cors(
        &self,
        req: S3Request<PutBucketCorsInput>,
    ) -> S3Result<S3Response<PutBucketCorsOutput>> {
        cors::put_bucket_cors(self, req).await
    }
    async fn get_bucket_cors(
        &self,
        req: S3Request<GetBucketCorsInput>,
    ) -> S3Result<S3Response<GetBucketCorsOutput>> {
        cors::get_bucket_cors(self, req).await
    }
    async fn delete_bucket_cors(
        &self,
        req: S3Request<DeleteBucketCorsInput>,
    ) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
        cors::delete_bucket_cors(self, req).await
    }
    async fn put_bucket_versioning(
        &self,
        req: S3Request<PutBucketVersioningInput>,
    ) -> S3Result<S3Response<PutBucketVersioningOutput>> {
        versions::put_bucket_versioning(self, req).await
    }
    async fn get_bucket_versioning(
        &self,
        req: S3Request<GetBucketVersioningInput>,
    ) -> S3Result<S3Response<GetBucketVersioningOutput>> {
        versions::get_bucket_versioning(self, req).await
    }
    async fn list_object_versions(
        &self,
        req: S3Request<ListObjectVersionsInput>,
    ) -> S3Result<S3Response<ListObjectVersionsOutput>> {
        versions::list_object_versions(self, req).await
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
