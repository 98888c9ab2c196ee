//! S3's Signature Version 2 (HMAC-SHA1): `Authorization: AWS AKID:signature`
//! and presigned URLs (`?AWSAccessKeyId=…&Expires=…&Signature=…`), as sent by
//! s3cmd, boto2 and euca2ools.
//!
//! ```text
//! StringToSign = VERB\n Content-MD5\n Content-Type\n Date\n
//!                CanonicalizedAmzHeaders CanonicalizedResource
//! ```
//!
//! `Date` is empty when `x-amz-date` is sent and is the `Expires` value for
//! presigned URLs. The canonicalized resource is `/bucket` (virtual-host
//! style only) + the path as on the wire + the sub-resources of the query.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use time::OffsetDateTime;

use crate::canonical::{
    QueryParam, ct_eq, header, hmac_sha1, param, parse_http_date, parse_query, percent_decode,
};
use crate::v4::MAX_SKEW;
use crate::{RequestParts, SigError};

/// Query parameters that belong to the canonicalized resource, sorted.
pub const SUB_RESOURCES: &[&str] = &[
    "acl",
    "cors",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// A parsed S3 SigV2 signature, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3V2Signature {
    /// The access key id.
    pub access_key: String,
    /// The signature, base64.
    pub signature: String,
    /// `Expires` (seconds since the epoch) of a presigned URL; `None` for the
    /// `Authorization` header.
    pub expires: Option<i64>,
    /// `x-amz-security-token` (header or query), for temporary credentials.
    pub security_token: Option<String>,
}

/// Parses `Authorization: AWS AKID:signature`.
pub(crate) fn parse_header(auth: &str, req: &RequestParts<'_>) -> Result<S3V2Signature, SigError> {
    let rest = auth.trim().strip_prefix("AWS ").unwrap_or_default().trim();
    let Some((access_key, signature)) = rest.split_once(':') else {
        return Err(SigError::Malformed(
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature".to_owned(),
        ));
    };
    if access_key.is_empty() || signature.is_empty() {
        return Err(SigError::Malformed(
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature".to_owned(),
        ));
    }
    Ok(S3V2Signature {
        access_key: access_key.to_owned(),
        signature: signature.to_owned(),
        expires: None,
        security_token: header(req.headers, "x-amz-security-token").map(|v| v.trim().to_owned()),
    })
}

/// Parses `?AWSAccessKeyId=…&Expires=…&Signature=…`.
pub(crate) fn parse_query_auth(
    params: &[QueryParam],
    req: &RequestParts<'_>,
) -> Result<S3V2Signature, SigError> {
    let get = |name: &str| param(params, name).map(QueryParam::value_str);
    let (Some(access_key), Some(signature), Some(expires)) =
        (get("AWSAccessKeyId"), get("Signature"), get("Expires"))
    else {
        return Err(SigError::MalformedQuery(
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId \
             parameters"
                .to_owned(),
        ));
    };
    let expires = expires.trim().parse::<i64>().map_err(|_| {
        SigError::MalformedQuery(format!(
            "Invalid date (should be seconds since epoch): {expires}"
        ))
    })?;
    let security_token = get("x-amz-security-token")
        .or_else(|| header(req.headers, "x-amz-security-token").map(|v| v.trim().to_owned()));
    Ok(S3V2Signature {
        access_key,
        signature: signature.replace(' ', "+"),
        expires: Some(expires),
        security_token,
    })
}

impl S3V2Signature {
    /// The string to sign for `req` with the given canonicalized resource path.
    fn string_to_sign_with_path(
        &self,
        req: &RequestParts<'_>,
        s3_bucket: Option<&str>,
        path: &str,
    ) -> String {
        let query = parse_query(req.raw_query);
        let presigned = self.expires.is_some();
        // Presigned URLs may carry headers as query parameters (botocore does).
        let from_query = |name: &str| {
            if presigned {
                query
                    .iter()
                    .find(|p| p.name.eq_ignore_ascii_case(name.as_bytes()))
                    .map(QueryParam::value_str)
            } else {
                None
            }
        };
        let header_or_query = |name: &str| {
            header(req.headers, name)
                .map(|v| v.trim().to_owned())
                .or_else(|| from_query(name))
                .unwrap_or_default()
        };

        let mut out = String::new();
        out.push_str(req.method);
        out.push('\n');
        out.push_str(&header_or_query("content-md5"));
        out.push('\n');
        out.push_str(&header_or_query("content-type"));
        out.push('\n');
        match self.expires {
            Some(_) => {
                out.push_str(&from_query("Expires").unwrap_or_default());
            }
            None if header(req.headers, "x-amz-date").is_some() => {}
            None => out.push_str(header(req.headers, "date").unwrap_or_default().trim()),
        }
        out.push('\n');

        // Canonicalized amz headers.
        let mut amz: Vec<(String, Vec<String>)> = Vec::new();
        let mut add = |name: String, value: String| match amz.iter_mut().find(|(n, _)| *n == name) {
            Some((_, values)) => values.push(value),
            None => amz.push((name, vec![value])),
        };
        for (name, value) in req.headers {
            let lower = name.to_ascii_lowercase();
            if lower.starts_with("x-amz-") {
                add(lower, unfold(value));
            }
        }
        if presigned {
            for p in &query {
                let lower = p.name_str().to_ascii_lowercase();
                if lower.starts_with("x-amz-") && header(req.headers, &lower).is_none() {
                    add(lower, unfold(&p.value_str()));
                }
            }
        }
        amz.sort_by(|a, b| a.0.cmp(&b.0));
        for (name, values) in amz {
            out.push_str(&name);
            out.push(':');
            out.push_str(&values.join(","));
            out.push('\n');
        }

        // Canonicalized resource.
        if let Some(bucket) = s3_bucket {
            out.push('/');
            out.push_str(bucket);
        }
        out.push_str(if path.is_empty() { "/" } else { path });
        let mut subs: Vec<&QueryParam> = query
            .iter()
            .filter(|p| SUB_RESOURCES.iter().any(|s| p.name == s.as_bytes()))
            .collect();
        subs.sort_by(|a, b| a.name.cmp(&b.name));
        for (i, p) in subs.iter().enumerate() {
            out.push(if i == 0 { '?' } else { '&' });
            out.push_str(&p.name_str());
            if p.has_value {
                out.push('=');
                out.push_str(&p.value_str());
            }
        }
        out
    }

    /// The string to sign AWS computes for `req`. `s3_bucket` is the bucket
    /// when it came from a virtual-host `Host` header (None for path style).
    pub fn string_to_sign(&self, req: &RequestParts<'_>, s3_bucket: Option<&str>) -> String {
        self.string_to_sign_with_path(req, s3_bucket, req.raw_path)
    }

    /// Checks the time: presigned URLs must not be past `Expires`; header
    /// auth needs a `Date` or `x-amz-date` within 15 minutes of `now`.
    pub fn check_time(&self, req: &RequestParts<'_>, now: OffsetDateTime) -> Result<(), SigError> {
        match self.expires {
            Some(expires) => {
                if now.unix_timestamp() > expires {
                    let expires_at = OffsetDateTime::from_unix_timestamp(expires)
                        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
                    return Err(SigError::RequestExpired {
                        expires_at,
                        server_time: now,
                    });
                }
                Ok(())
            }
            None => {
                let request_time = header(req.headers, "x-amz-date")
                    .or_else(|| header(req.headers, "date"))
                    .and_then(parse_http_date)
                    .ok_or(SigError::MissingDate)?;
                if (request_time - now).abs() > MAX_SKEW {
                    return Err(SigError::TimeTooSkewed {
                        request_time,
                        server_time: now,
                    });
                }
                Ok(())
            }
        }
    }

    /// Verifies the time, then the signature (constant time). The resource
    /// path is tried as on the wire first, then decoded (some signers sign
    /// the unencoded key).
    pub fn verify(
        &self,
        req: &RequestParts<'_>,
        secret_key: &str,
        s3_bucket: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), SigError> {
        self.check_time(req, now)?;
        let decoded = String::from_utf8_lossy(&percent_decode(req.raw_path)).into_owned();
        let mut paths = vec![req.raw_path.to_owned()];
        if decoded != req.raw_path {
            paths.push(decoded);
        }
        // A path-style request for a bucket itself (`/bucket`) is signed by
        // clients as AWS canonicalises it: `/bucket/`.
        if s3_bucket.is_none() && req.raw_path.len() > 1 && !req.raw_path[1..].contains('/') {
            paths.push(format!("{}/", req.raw_path));
        }
        let mut first = None;
        for path in paths {
            let sts = self.string_to_sign_with_path(req, s3_bucket, &path);
            let expected = BASE64.encode(hmac_sha1(secret_key.as_bytes(), sts.as_bytes()));
            if ct_eq(&expected, &self.signature) {
                return Ok(());
            }
            first.get_or_insert(sts);
        }
        Err(SigError::SignatureDoesNotMatch {
            string_to_sign: first.unwrap_or_default(),
            canonical_request: String::new(),
        })
    }
}

/// Header value for CanonicalizedAmzHeaders: trimmed, line folds unfolded.
fn unfold(value: &str) -> String {
    let value = value.trim();
    if value.contains(['\r', '\n']) {
        value
            .split(['\r', '\n'])
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    } else {
        value.to_owned()
    }
}
