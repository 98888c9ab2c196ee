//! S3's errors: the one place where the object store's errors
//! ([`ObjectError`]) become S3's codes, statuses and headers, and where a
//! failed body stream is told apart by what failed (a checksum, the
//! payload's SHA-256, a chunk signature, or the client).

use http::{HeaderMap, HeaderValue, StatusCode, header};
use mallee_cloud::objects::ObjectError;
use s3s::{S3Error, S3ErrorCode, s3_error};

use super::dto::{http_date, timestamp};

/// The S3 error for an object-store error.
pub(super) fn s3_error(err: ObjectError) -> S3Error {
    let code = match &err {
        ObjectError::AccessDenied => S3ErrorCode::AccessDenied,
        ObjectError::NoSuchBucket => S3ErrorCode::NoSuchBucket,
        ObjectError::NoSuchKey => S3ErrorCode::NoSuchKey,
        ObjectError::NoSuchUpload => S3ErrorCode::NoSuchUpload,
        ObjectError::DeleteMarker { version_id } => {
            let mut e = S3Error::with_message(S3ErrorCode::NoSuchKey, err.to_string());
            e.set_headers(delete_marker_headers(version_id, None));
            return e;
        }
        ObjectError::MethodNotAllowed {
            version_id,
            last_modified,
        } => {
            let mut e = S3Error::with_message(S3ErrorCode::MethodNotAllowed, err.to_string());
            e.set_status_code(StatusCode::METHOD_NOT_ALLOWED);
            e.set_headers(delete_marker_headers(version_id, Some(*last_modified)));
            return e;
        }
        ObjectError::NoSuchVersion => S3ErrorCode::NoSuchVersion,
        ObjectError::NoSuchCorsConfiguration => S3ErrorCode::NoSuchCORSConfiguration,
        ObjectError::NoSuchPublicAccessBlockConfiguration => {
            return with_status(
                "NoSuchPublicAccessBlockConfiguration",
                err.to_string(),
                StatusCode::NOT_FOUND,
            );
        }
        ObjectError::OwnershipControlsNotFound => S3ErrorCode::OwnershipControlsNotFoundError,
        ObjectError::AccessControlListNotSupported => S3ErrorCode::AccessControlListNotSupported,
        ObjectError::InvalidBucketAclWithObjectOwnership => {
            S3ErrorCode::InvalidBucketAclWithObjectOwnership
        }
        ObjectError::NoSuchWebsiteConfiguration => S3ErrorCode::NoSuchWebsiteConfiguration,
        ObjectError::NoSuchLifecycleConfiguration => S3ErrorCode::NoSuchLifecycleConfiguration,
        ObjectError::ReplicationConfigurationNotFound => {
            S3ErrorCode::ReplicationConfigurationNotFoundError
        }
        ObjectError::EncryptionConfigurationNotFound => {
            S3ErrorCode::ServerSideEncryptionConfigurationNotFoundError
        }
        ObjectError::ObjectLockConfigurationNotFound => {
            S3ErrorCode::ObjectLockConfigurationNotFoundError
        }
        ObjectError::CorsNotEnabled | ObjectError::CorsForbidden => {
            return with_status("AccessForbidden", err.to_string(), StatusCode::FORBIDDEN);
        }
        ObjectError::MalformedXml => S3ErrorCode::MalformedXML,
        ObjectError::InvalidRequest(_) => S3ErrorCode::InvalidRequest,
        ObjectError::InvalidArgument(_) => S3ErrorCode::InvalidArgument,
        ObjectError::NotImplemented(_) => S3ErrorCode::NotImplemented,
        ObjectError::InvalidVersionId | ObjectError::VersionMarkerWithoutKey => {
            S3ErrorCode::InvalidArgument
        }
        ObjectError::IllegalVersioningConfiguration => {
            S3ErrorCode::IllegalVersioningConfigurationException
        }
        ObjectError::MfaDeleteNotSupported => S3ErrorCode::NotImplemented,
        ObjectError::NoSuchBucketPolicy => S3ErrorCode::NoSuchBucketPolicy,
        ObjectError::NoSuchTagSet => S3ErrorCode::NoSuchTagSet,
        ObjectError::InvalidTag(_) => S3ErrorCode::InvalidTag,
        ObjectError::TooManyTags(_) => {
            return with_status("BadRequest", err.to_string(), StatusCode::BAD_REQUEST);
        }
        ObjectError::MalformedPolicy(_) => S3ErrorCode::MalformedPolicy,
        ObjectError::BucketAlreadyOwnedByYou => S3ErrorCode::BucketAlreadyOwnedByYou,
        ObjectError::BucketAlreadyExists => S3ErrorCode::BucketAlreadyExists,
        ObjectError::BucketNotEmpty => S3ErrorCode::BucketNotEmpty,
        ObjectError::InvalidLocation => S3ErrorCode::InvalidLocationConstraint,
        ObjectError::InvalidAcl(_)
        | ObjectError::PartNumberOutOfRange
        | ObjectError::InvalidTaggingHeader => S3ErrorCode::InvalidArgument,
        ObjectError::TooLarge => S3ErrorCode::EntityTooLarge,
        ObjectError::PartTooSmall => S3ErrorCode::EntityTooSmall,
        ObjectError::Md5Mismatch => S3ErrorCode::BadDigest,
        ObjectError::IncompleteBody => S3ErrorCode::IncompleteBody,
        ObjectError::Body(cause) => return body_stream_error(cause),
        ObjectError::PreconditionFailed => S3ErrorCode::PreconditionFailed,
        ObjectError::NotModified {
            etag,
            last_modified,
        } => return not_modified(etag, *last_modified),
        ObjectError::InvalidRange => S3ErrorCode::InvalidRange,
        ObjectError::NoSuchPartNumber => {
            return with_status(
                "InvalidPartNumber",
                err.to_string(),
                StatusCode::RANGE_NOT_SATISFIABLE,
            );
        }
        ObjectError::CopyToItself | ObjectError::CopySourceTooLarge => S3ErrorCode::InvalidRequest,
        ObjectError::NoParts => S3ErrorCode::MalformedXML,
        ObjectError::InvalidPartOrder => S3ErrorCode::InvalidPartOrder,
        ObjectError::InvalidPart => S3ErrorCode::InvalidPart,
        ObjectError::QuotaExceeded { .. } => {
            return with_status("QuotaExceeded", err.to_string(), StatusCode::FORBIDDEN);
        }
        ObjectError::Internal(cause) => return internal(cause),
    };
    S3Error::with_message(code, err.to_string())
}

/// An unexpected failure: logged here, reported as InternalError.
pub(crate) fn internal(err: impl std::fmt::Display) -> S3Error {
    tracing::error!(error = %err, "object store failure");
    S3Error::with_message(
        S3ErrorCode::InternalError,
        "We encountered an internal error. Please try again.",
    )
}

/// A code s3s does not know, with its status.
fn with_status(code: &'static str, message: String, status: StatusCode) -> S3Error {
    let mut e = S3Error::with_message(S3ErrorCode::Custom(code.into()), message);
    e.set_status_code(status);
    e
}

/// The headers of an answer about a delete marker: S3 says it is one,
/// which version it is, and (for a request naming it) when it was
/// written and what may be done to it.
fn delete_marker_headers(version_id: &str, last_modified: Option<i64>) -> HeaderMap {
    let mut headers = HeaderMap::new();
    headers.insert(
        s3s::header::X_AMZ_DELETE_MARKER,
        HeaderValue::from_static("true"),
    );
    if let Ok(v) = HeaderValue::from_str(version_id) {
        headers.insert(s3s::header::X_AMZ_VERSION_ID, v);
    }
    if let Some(last_modified) = last_modified {
        if let Some(v) =
            http_date(&timestamp(last_modified)).and_then(|d| HeaderValue::from_str(&d).ok())
        {
            headers.insert(header::LAST_MODIFIED, v);
        }
        headers.insert(header::ALLOW, HeaderValue::from_static("DELETE"));
    }
    headers
}

/// A 304, which still tells the cache which version it has.
fn not_modified(etag: &str, last_modified: i64) -> S3Error {
    let mut e = S3Error::new(S3ErrorCode::NotModified);
    let mut headers = HeaderMap::new();
    if let Ok(v) = HeaderValue::from_str(&format!("\"{etag}\"")) {
        headers.insert(header::ETAG, v);
    }
    if let Some(v) =
        http_date(&timestamp(last_modified)).and_then(|d| HeaderValue::from_str(&d).ok())
    {
        headers.insert(header::LAST_MODIFIED, v);
    }
    e.set_headers(headers);
    e
}

/// The error for a body stream that failed while s3s or the gateway
/// verified it. Their error types are private, so they are told apart by
/// their messages.
fn body_stream_error(cause: &str) -> S3Error {
    if cause.contains(super::checksum::MISMATCH) {
        s3_error!(
            BadDigest,
            "The checksum you specified did not match the calculated checksum."
        )
    } else if cause.contains("Sha256Mismatch") {
        with_status(
            "XAmzContentSHA256Mismatch",
            "The provided 'x-amz-content-sha256' header does not match what was computed."
                .to_owned(),
            StatusCode::BAD_REQUEST,
        )
    } else if cause.contains("SignatureMismatch") {
        s3_error!(
            SignatureDoesNotMatch,
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        )
    } else {
        s3_error(ObjectError::IncompleteBody)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(err: ObjectError) -> (String, Option<StatusCode>, Option<String>) {
        let e = s3_error(err);
        (
            e.code().as_str().to_owned(),
            e.status_code(),
            e.message().map(str::to_owned),
        )
    }

    #[test]
    fn object_errors_carry_s3_codes_statuses_and_messages() {
        assert_eq!(
            parts(ObjectError::QuotaExceeded { quota: 10 }),
            (
                "QuotaExceeded".into(),
                Some(StatusCode::FORBIDDEN),
                Some("The account's storage quota of 10 bytes would be exceeded.".into())
            )
        );
        assert_eq!(
            parts(ObjectError::NoSuchPartNumber).1,
            Some(StatusCode::RANGE_NOT_SATISFIABLE)
        );
        assert_eq!(parts(ObjectError::NoParts).0, "MalformedXML");
        assert_eq!(
            parts(ObjectError::TooManyTags(
                "Object tags cannot be greater than 10".into()
            )),
            (
                "BadRequest".into(),
                Some(StatusCode::BAD_REQUEST),
                Some("Object tags cannot be greater than 10".into())
            )
        );
        assert_eq!(
            parts(ObjectError::NoSuchTagSet),
            (
                "NoSuchTagSet".into(),
                Some(StatusCode::NOT_FOUND),
                Some("The TagSet does not exist".into())
            )
        );
        assert_eq!(
            parts(ObjectError::InvalidTag("x".into())).1,
            Some(StatusCode::BAD_REQUEST)
        );
        assert_eq!(
            parts(ObjectError::Internal("disk on fire".into()))
                .2
                .as_deref(),
            Some("We encountered an internal error. Please try again.")
        );
        assert_eq!(
            parts(ObjectError::InvalidAcl(
                "The canned ACL 'x' is not valid".into()
            )),
            (
                "InvalidArgument".into(),
                Some(StatusCode::BAD_REQUEST),
                Some("The canned ACL 'x' is not valid".into())
            )
        );
        let not_modified = s3_error(ObjectError::NotModified {
            etag: "abc".into(),
            last_modified: 0,
        });
        assert_eq!(not_modified.code(), &S3ErrorCode::NotModified);
        assert_eq!(not_modified.message(), None);
        assert_eq!(
            not_modified.headers().and_then(|h| h.get(header::ETAG)),
            Some(&HeaderValue::from_static("\"abc\""))
        );
    }

    #[test]
    fn failed_bodies_are_told_apart_by_their_cause() {
        let code = |cause: &str| parts(ObjectError::Body(cause.into())).0;
        assert_eq!(
            code(&format!(
                "{}: x-amz-checksum-crc32",
                super::super::checksum::MISMATCH
            )),
            "BadDigest"
        );
        assert_eq!(
            code("UploadStreamError: Sha256Mismatch"),
            "XAmzContentSHA256Mismatch"
        );
        assert_eq!(code("SignatureMismatch"), "SignatureDoesNotMatch");
        assert_eq!(code("connection reset"), "IncompleteBody");
    }
}
