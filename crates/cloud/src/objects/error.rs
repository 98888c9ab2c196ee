//! How an object-store operation fails. The object store speaks only S3,
//! whose vocabulary (a missing upload, a part list out of order, a 304
//! for a cached copy) shares little with the rest of the cloud's, so it
//! has an enum of its own; each message is the text S3 shows. The S3 API
//! maps every variant to S3's code and status in one place.

use mallee_blobs::BlobError;
use mallee_store::{ObjectIndexError, StoreError, UnixMillis};

/// Every way an object-store operation can fail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ObjectError {
    /// The caller may not do this to this bucket or object (or may not
    /// learn whether it exists).
    #[error("Access Denied")]
    AccessDenied,
    /// The bucket does not exist.
    #[error("The specified bucket does not exist")]
    NoSuchBucket,
    /// The key does not exist (told only to callers who may list the
    /// bucket).
    #[error("The specified key does not exist.")]
    NoSuchKey,
    /// The latest version of the key is a delete marker (told only to
    /// callers who may list the bucket): S3's NoSuchKey, saying so.
    #[error("The specified key does not exist.")]
    DeleteMarker {
        /// The delete marker's version id.
        version_id: String,
    },
    /// The version asked for is a delete marker, which has no data or
    /// ACL to return.
    #[error("The specified method is not allowed against this resource.")]
    MethodNotAllowed {
        /// The delete marker's version id.
        version_id: String,
        /// When it was written.
        last_modified: UnixMillis,
    },
    /// The key has no version with this id.
    #[error("The specified version does not exist.")]
    NoSuchVersion,
    /// A version id that no version could have.
    #[error("Invalid version id specified")]
    InvalidVersionId,
    /// A listing of versions with a version marker but no key marker.
    #[error("A version-id marker cannot be specified without a key marker.")]
    VersionMarkerWithoutKey,
    /// A versioning status other than `Enabled` or `Suspended`.
    #[error("The Versioning element must be specified")]
    IllegalVersioningConfiguration,
    /// MFA delete, which mallee does not support.
    #[error("MFA delete is not supported.")]
    MfaDeleteNotSupported,
    /// The bucket has no public access block.
    #[error("The public access block configuration was not found")]
    NoSuchPublicAccessBlockConfiguration,
    /// The bucket has no object ownership controls.
    #[error("The bucket ownership controls were not found")]
    OwnershipControlsNotFound,
    /// An ACL other than the owner's full control on a bucket whose ACLs
    /// are disabled.
    #[error("The bucket does not allow ACLs")]
    AccessControlListNotSupported,
    /// Disabling ACLs on a bucket whose ACL grants others.
    #[error("Bucket cannot have ACLs set with ObjectOwnership's BucketOwnerEnforced setting")]
    InvalidBucketAclWithObjectOwnership,
    /// The bucket has no website configuration.
    #[error("The specified bucket does not have a website configuration")]
    NoSuchWebsiteConfiguration,
    /// The bucket has no replication configuration.
    #[error("The replication configuration was not found")]
    ReplicationConfigurationNotFound,
    /// The bucket has no default encryption configuration.
    #[error("The server side encryption configuration was not found")]
    EncryptionConfigurationNotFound,
    /// The bucket has no lifecycle rules.
    #[error("The lifecycle configuration does not exist")]
    NoSuchLifecycleConfiguration,
    /// The bucket has no object lock configuration.
    #[error("Object Lock configuration does not exist for this bucket")]
    ObjectLockConfigurationNotFound,
    /// The bucket has no CORS rules.
    #[error("The CORS configuration does not exist")]
    NoSuchCorsConfiguration,
    /// A preflight to a bucket without CORS rules.
    #[error("CORSResponse: CORS is not enabled for this bucket.")]
    CorsNotEnabled,
    /// A preflight no CORS rule allows.
    #[error(
        "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec."
    )]
    CorsForbidden,
    /// A document that does not validate (a configuration without its
    /// required elements, or with too many).
    #[error(
        "The XML you provided was not well-formed or did not validate against our published schema"
    )]
    MalformedXml,
    /// A request S3 refuses as invalid; the text says why.
    #[error("{0}")]
    InvalidRequest(String),
    /// A value S3 refuses (S3's InvalidArgument); the text says which.
    #[error("{0}")]
    InvalidArgument(String),
    /// Something S3 has that mallee does not; the text says what.
    #[error("{0}")]
    NotImplemented(String),
    /// The multipart upload does not exist, or is not of this bucket and
    /// key.
    #[error(
        "The specified upload does not exist. The upload ID may be invalid, or the upload may have been aborted or completed."
    )]
    NoSuchUpload,
    /// The caller already owns a bucket of this name.
    #[error("Your previous request to create the named bucket succeeded and you already own it.")]
    BucketAlreadyOwnedByYou,
    /// Another account owns a bucket of this name.
    #[error(
        "The requested bucket name is not available. The bucket namespace is shared by all users of the system. Please select a different name and try again."
    )]
    BucketAlreadyExists,
    /// The bucket still holds objects.
    #[error("The bucket you tried to delete is not empty")]
    BucketNotEmpty,
    /// A location other than this cloud's region.
    #[error("The specified location-constraint is not valid")]
    InvalidLocation,
    /// The bucket has no policy.
    #[error("The bucket policy does not exist")]
    NoSuchBucketPolicy,
    /// A bucket policy S3 refuses; the text is the reason.
    #[error("{0}")]
    MalformedPolicy(String),
    /// The bucket has no tag set.
    #[error("The TagSet does not exist")]
    NoSuchTagSet,
    /// A tag S3 refuses (a duplicate, reserved, too long or malformed key,
    /// or a value too long or malformed); the text says which.
    #[error("{0}")]
    InvalidTag(String),
    /// More tags than an object or bucket may carry; the text says which.
    #[error("{0}")]
    TooManyTags(String),
    /// An `x-amz-tagging` header naming a key twice.
    #[error(
        "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates."
    )]
    InvalidTaggingHeader,
    /// An ACL that cannot be built (an unknown canned ACL).
    #[error("{0}")]
    InvalidAcl(String),
    /// The object or upload would exceed the size limit.
    #[error("Your proposed upload exceeds the maximum allowed object size.")]
    TooLarge,
    /// A part other than the last is smaller than the minimum.
    #[error("Your proposed upload is smaller than the minimum allowed object size.")]
    PartTooSmall,
    /// The body's MD5 differs from its Content-MD5.
    #[error("The Content-MD5 you specified did not match what we received.")]
    Md5Mismatch,
    /// The body ended before its declared length.
    #[error("You did not provide the number of bytes specified by the Content-Length HTTP header.")]
    IncompleteBody,
    /// The body stream failed: the client went away, or a check the
    /// protocol wrapped around the stream failed (its cause says which).
    #[error("{0}")]
    Body(String),
    /// A condition (`If-Match`, `If-Unmodified-Since`, any condition of
    /// a copy source) does not hold.
    #[error("At least one of the pre-conditions you specified did not hold")]
    PreconditionFailed,
    /// A read's `If-None-Match` or `If-Modified-Since` says the caller has
    /// this version already.
    #[error("Not Modified")]
    NotModified {
        /// The object's ETag.
        etag: String,
        /// The object's Last-Modified.
        last_modified: UnixMillis,
    },
    /// A byte range outside the object.
    #[error("The requested range is not satisfiable")]
    InvalidRange,
    /// A part number outside 1..=10000.
    #[error("Part number must be an integer between 1 and 10000, inclusive")]
    PartNumberOutOfRange,
    /// A part number the object does not have.
    #[error("The requested partnumber is not satisfiable")]
    NoSuchPartNumber,
    /// A copy whose target is its source, with nothing changed.
    #[error(
        "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."
    )]
    CopyToItself,
    /// A copy source larger than a single PUT may be.
    #[error(
        "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120"
    )]
    CopySourceTooLarge,
    /// A completion naming no parts.
    #[error(
        "The XML you provided was not well-formed or did not validate against our published schema"
    )]
    NoParts,
    /// A completion whose parts are not in ascending order.
    #[error(
        "The list of parts was not in ascending order. The parts list must be specified in order by part number."
    )]
    InvalidPartOrder,
    /// A completion naming a part that was not uploaded, or with another
    /// ETag.
    #[error(
        "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag."
    )]
    InvalidPart,
    /// The change would take the bucket owner's account over its quota.
    #[error("The account's storage quota of {quota} bytes would be exceeded.")]
    QuotaExceeded {
        /// The account's quota in bytes.
        quota: u64,
    },
    /// An unexpected failure (logged, not shown).
    #[error("We encountered an internal error. Please try again.")]
    Internal(String),
}

impl ObjectError {
    /// [`ObjectError::Internal`] from anything displayable.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        Self::Internal(cause.to_string())
    }

    /// A refused write to the index: the bucket vanished, is not empty, or
    /// its owner is at the quota.
    pub(crate) fn from_write(err: StoreError) -> Self {
        match err {
            StoreError::NotFound(_) => Self::NoSuchBucket,
            StoreError::Objects(ObjectIndexError::BucketNotEmpty) => Self::BucketNotEmpty,
            StoreError::Objects(ObjectIndexError::QuotaExceeded { quota }) => {
                Self::QuotaExceeded { quota }
            }
            other => Self::internal(other),
        }
    }

    /// A failed write of a body into a blob.
    pub(crate) fn from_blob(err: BlobError) -> Self {
        match err {
            BlobError::TooLarge { .. } => Self::TooLarge,
            BlobError::Md5Mismatch { .. } => Self::Md5Mismatch,
            BlobError::Body(cause) => Self::Body(cause.to_string()),
            BlobError::SizeMismatch { .. } => Self::IncompleteBody,
            other => Self::internal(other),
        }
    }
}

impl From<StoreError> for ObjectError {
    fn from(err: StoreError) -> Self {
        Self::internal(err)
    }
}

/// Object-store results.
pub type Result<T, E = ObjectError> = std::result::Result<T, E>;
