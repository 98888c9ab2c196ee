//! The one error type of this crate. Each variant corresponds to one AWS error
//! response; the front door maps it to the service's own code (for example
//! `Malformed` is S3's `AuthorizationHeaderMalformed` and EC2's
//! `IncompleteSignature`).

use time::OffsetDateTime;

/// Why a request's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SigError {
    /// The `Authorization` header, or the SigV2 query-API parameters, are
    /// malformed or incomplete. The message is AWS's wording.
    #[error("{0}")]
    Malformed(String),
    /// Query-string (presigned) authentication parameters are malformed or
    /// incomplete (S3 `AuthorizationQueryParametersError`).
    #[error("{0}")]
    MalformedQuery(String),
    /// The request carries more than one authentication mechanism.
    #[error(
        "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
         Signature query string parameter or the Authorization header should be specified"
    )]
    MultipleAuthMechanisms,
    /// The signing algorithm or `SignatureMethod` is not one we verify.
    #[error("Unsupported Authorization Type: {0}")]
    UnsupportedAlgorithm(String),
    /// A SigV2 query-API request with a `SignatureVersion` other than 2.
    #[error("Unsupported SignatureVersion: {0}")]
    UnsupportedSignatureVersion(String),
    /// No usable `Date` / `x-amz-date` header (SigV2 S3 requests).
    #[error("AWS authentication requires a valid Date or x-amz-date header")]
    MissingDate,
    /// A date in the request is not in the required format.
    #[error("{0}")]
    BadDate(String),
    /// The signature is well formed but does not match the one we computed.
    /// The canonical request (empty for SigV2) and string to sign are kept for
    /// S3 error bodies.
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your key and signing method."
    )]
    SignatureDoesNotMatch {
        /// The string to sign we computed.
        string_to_sign: String,
        /// The canonical request we computed (SigV4 only, empty for SigV2).
        canonical_request: String,
    },
    /// A presigned URL (or a SigV2 request with `Expires`) is past its expiry.
    #[error("Request has expired")]
    RequestExpired {
        /// When the request stopped being valid.
        expires_at: OffsetDateTime,
        /// The server's clock.
        server_time: OffsetDateTime,
    },
    /// A presigned URL whose `X-Amz-Date` is more than 15 minutes ahead.
    #[error("Request is not valid yet")]
    NotYetValid {
        /// The request's signing time.
        request_time: OffsetDateTime,
        /// The server's clock.
        server_time: OffsetDateTime,
    },
    /// The request's time is more than 15 minutes from the server's.
    #[error("The difference between the request time and the current time is too large.")]
    TimeTooSkewed {
        /// The request's signing time.
        request_time: OffsetDateTime,
        /// The server's clock.
        server_time: OffsetDateTime,
    },
}
