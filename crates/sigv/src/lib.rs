//! Transport-agnostic verification of AWS request signatures, and SigV4
//! signing for mallee's own clients ([`sign_v4`]).
//!
//! The HTTP front door hands over a request as it was received
//! ([`RequestParts`]); [`parse`] finds out how it is signed ([`SignedBy`]),
//! the caller looks up the secret key of [`SignedBy::access_key`], and
//! [`SignedBy::verify`] checks the time and the signature the way AWS does.
//!
//! Supported:
//! - SigV4 (`AWS4-HMAC-SHA256`) in the `Authorization` header and in the query
//!   string (presigned URLs), for every service, S3 included; the chunk
//!   signatures of `aws-chunked` S3 uploads ([`ChunkVerifier`]).
//! - SigV2 for S3 (`Authorization: AWS AKID:sig`, presigned `Signature=`).
//! - SigV2 for the query APIs (EC2, IAM, STS: `SignatureVersion=2`).
//!
//! Signatures are compared in constant time.

#![warn(missing_docs)]

mod canonical;
mod chunked;
mod error;
mod sign;
mod v2;
mod v2_api;
mod v4;

use time::OffsetDateTime;

pub use canonical::{EMPTY_SHA256, sha256_hex, uri_encode};
pub use chunked::ChunkVerifier;
pub use error::SigError;
pub use sign::{SigningParams, sign_v4};
pub use v2::{S3V2Signature, SUB_RESOURCES};
pub use v2_api::{V2ApiSignature, V2Method, V2Validity};
pub use v4::{
    ALGORITHM, MAX_EXPIRES, MAX_SKEW, PathRules, UNSIGNED_PAYLOAD, V4Location, V4Signature,
    signing_key,
};

use canonical::{header, param};

/// Everything about an HTTP request that signatures cover. Raw, as received.
#[derive(Debug, Clone, Copy)]
pub struct RequestParts<'a> {
    /// The HTTP method (`GET`, `POST`, …).
    pub method: &'a str,
    /// The path as on the wire, still percent-encoded, without the query.
    pub raw_path: &'a str,
    /// The query string after `?`, still percent-encoded; `""` when none.
    pub raw_query: &'a str,
    /// The headers: names in any case, values as received; repeated headers
    /// appear repeatedly.
    pub headers: &'a [(String, String)],
    /// Form parameters from an `application/x-www-form-urlencoded` POST body,
    /// already decoded (name, value); empty otherwise. SigV2 query-API
    /// signatures cover them; SigV4 covers the body by its hash instead.
    pub form_params: &'a [(String, String)],
}

/// How a request is signed, as [`parse`] found it (not yet verified).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SignedBy {
    /// SigV4 in the `Authorization` header.
    V4Header(V4Signature),
    /// SigV4 in the query string (presigned URL).
    V4Query(V4Signature),
    /// S3 SigV2 in the `Authorization: AWS AKID:signature` header.
    V2Header(S3V2Signature),
    /// S3 SigV2 presigned URL (`AWSAccessKeyId`, `Expires`, `Signature`).
    V2Query(S3V2Signature),
    /// Query-API SigV2 (`SignatureVersion=2`) in the query string or form body.
    V2QueryApi(V2ApiSignature),
}

/// Finds how `req` is signed. `Ok(None)` means anonymous: no authentication
/// at all. Errors when the authentication is present but malformed, or when
/// more than one mechanism is used at once.
pub fn parse(req: &RequestParts<'_>) -> Result<Option<SignedBy>, SigError> {
    let query = canonical::parse_query(req.raw_query);
    let auth = header(req.headers, "authorization")
        .map(str::trim)
        .filter(|a| !a.is_empty());
    let v4_query =
        param(&query, "X-Amz-Algorithm").is_some() || param(&query, "X-Amz-Signature").is_some();
    let is_v2_param = |p: &canonical::QueryParam| {
        ["AWSAccessKeyId", "Signature", "SignatureVersion"]
            .iter()
            .any(|n| p.name == n.as_bytes())
    };
    let v2_in_query = query.iter().any(is_v2_param);
    let v2_in_form = req.form_params.iter().any(|(n, _)| {
        matches!(
            n.as_str(),
            "AWSAccessKeyId" | "Signature" | "SignatureVersion"
        )
    });
    let v2 = v2_in_query || v2_in_form;

    if usize::from(auth.is_some()) + usize::from(v4_query) + usize::from(v2) > 1 {
        return Err(SigError::MultipleAuthMechanisms);
    }
    if let Some(auth) = auth {
        return if auth.starts_with("AWS4-") {
            v4::parse_header(auth, req).map(|s| Some(SignedBy::V4Header(s)))
        } else if auth == "AWS" || auth.starts_with("AWS ") {
            v2::parse_header(auth, req).map(|s| Some(SignedBy::V2Header(s)))
        } else {
            let scheme = auth.split_whitespace().next().unwrap_or_default();
            Err(SigError::UnsupportedAlgorithm(scheme.to_owned()))
        };
    }
    if v4_query {
        return v4::parse_query(&query).map(|s| Some(SignedBy::V4Query(s)));
    }
    if v2 {
        let params = v2_api::all_params(req);
        let query_api = v2_in_form || param(&params, "SignatureVersion").is_some();
        return if query_api {
            v2_api::parse(&params).map(|s| Some(SignedBy::V2QueryApi(s)))
        } else {
            v2::parse_query_auth(&query, req).map(|s| Some(SignedBy::V2Query(s)))
        };
    }
    Ok(None)
}

impl SignedBy {
    /// The access key id the request claims.
    pub fn access_key(&self) -> &str {
        match self {
            SignedBy::V4Header(s) | SignedBy::V4Query(s) => &s.access_key,
            SignedBy::V2Header(s) | SignedBy::V2Query(s) => &s.access_key,
            SignedBy::V2QueryApi(s) => &s.access_key,
        }
    }

    /// Service name from the SigV4 scope (`ec2`, `s3`, `iam`, `sts`, …), as
    /// sent; `None` for SigV2.
    pub fn service(&self) -> Option<&str> {
        match self {
            SignedBy::V4Header(s) | SignedBy::V4Query(s) => Some(&s.service),
            _ => None,
        }
    }

    /// Region from the SigV4 scope, as sent; `None` for SigV2.
    pub fn region(&self) -> Option<&str> {
        match self {
            SignedBy::V4Header(s) | SignedBy::V4Query(s) => Some(&s.region),
            _ => None,
        }
    }

    /// The session token sent with the signature (temporary credentials):
    /// `X-Amz-Security-Token` / `x-amz-security-token`, or `SecurityToken`
    /// for the SigV2 query APIs.
    pub fn security_token(&self) -> Option<&str> {
        match self {
            SignedBy::V4Header(s) | SignedBy::V4Query(s) => s.security_token.as_deref(),
            SignedBy::V2Header(s) | SignedBy::V2Query(s) => s.security_token.as_deref(),
            SignedBy::V2QueryApi(s) => s.security_token.as_deref(),
        }
    }

    /// Verifies the request: first its time, then its signature (constant
    /// time), as AWS does.
    ///
    /// - `secret_key`: the secret of [`SignedBy::access_key`].
    /// - `payload_sha256` (SigV4 only): the hex SHA-256 of the body as the
    ///   caller computed it, or the literal value of `x-amz-content-sha256`
    ///   when the caller streams (`UNSIGNED-PAYLOAD`,
    ///   `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, …). With `None`, header auth
    ///   takes the `x-amz-content-sha256` header (the caller must then check
    ///   the body against it) or the empty-body hash, and presigned URLs take
    ///   `UNSIGNED-PAYLOAD` (right for S3; other services need the body hash).
    /// - `s3_bucket` (S3 SigV2 only): the bucket when it came from a
    ///   virtual-host `Host` header; `None` for path style.
    /// - `now`: the server's clock.
    ///
    /// Time rules: SigV4 header and SigV2 query-API `Timestamp`, S3 SigV2
    /// `Date`/`x-amz-date`: 15 minutes either way ([`SigError::TimeTooSkewed`]).
    /// SigV4 presigned: expired after `X-Amz-Date + X-Amz-Expires`
    /// ([`SigError::RequestExpired`]), not valid more than 15 minutes before
    /// `X-Amz-Date` ([`SigError::NotYetValid`]). SigV2 `Expires`: expired after it.
    pub fn verify(
        &self,
        req: &RequestParts<'_>,
        secret_key: &str,
        payload_sha256: Option<&str>,
        s3_bucket: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), SigError> {
        match self {
            SignedBy::V4Header(s) | SignedBy::V4Query(s) => {
                s.verify(req, secret_key, payload_sha256, now)
            }
            SignedBy::V2Header(s) | SignedBy::V2Query(s) => {
                s.verify(req, secret_key, s3_bucket, now)
            }
            SignedBy::V2QueryApi(s) => s.verify(req, secret_key, now),
        }
    }

    /// The verifier of the chunk signatures of an `aws-chunked` body, seeded
    /// with this (SigV4) signature; `None` for SigV2. Use it only after
    /// [`SignedBy::verify`] accepted the request.
    pub fn chunk_verifier(&self, secret_key: &str) -> Option<ChunkVerifier> {
        match self {
            SignedBy::V4Header(s) | SignedBy::V4Query(s) => Some(s.chunk_verifier(secret_key)),
            _ => None,
        }
    }
}
