//! Signing requests with SigV4, for mallee's own clients (the `mallee`
//! CLI talking to a controller). The canonical request is the one
//! [`V4Signature`] verifies against, so what this signs the server accepts.

use time::OffsetDateTime;

use crate::canonical::format_amz_date;
use crate::{ALGORITHM, PathRules, RequestParts, V4Location, V4Signature};

/// Who signs, and for which scope.
#[derive(Debug, Clone)]
pub struct SigningParams<'a> {
    /// Access key id.
    pub access_key: &'a str,
    /// Secret access key.
    pub secret_key: &'a str,
    /// Session token of temporary credentials, sent and signed as
    /// `X-Amz-Security-Token`.
    pub session_token: Option<&'a str>,
    /// Region of the scope.
    pub region: &'a str,
    /// Service of the scope (`ec2`, `s3`, …).
    pub service: &'a str,
    /// Signing time.
    pub time: OffsetDateTime,
    /// How the path is canonicalised; [`PathRules::for_service`] unless a
    /// test needs otherwise.
    pub path_rules: PathRules,
}

impl<'a> SigningParams<'a> {
    /// Parameters for `service` in `region` at `time`, without a session
    /// token, with the service's path rules.
    pub fn new(
        access_key: &'a str,
        secret_key: &'a str,
        region: &'a str,
        service: &'a str,
        time: OffsetDateTime,
    ) -> Self {
        Self {
            access_key,
            secret_key,
            session_token: None,
            region,
            service,
            time,
            path_rules: PathRules::for_service(service),
        }
    }
}

/// Signs `req` with SigV4 in the `Authorization` header. Every header of
/// `req` is signed (it must hold `Host`); `payload_sha256` is the hex
/// SHA-256 of the body, or `UNSIGNED-PAYLOAD` for S3 bodies that are not
/// hashed up front. Returns the headers to add to the request, in order:
/// `X-Amz-Date`, `X-Amz-Security-Token` when there is a session token, and
/// `Authorization`.
pub fn sign_v4(
    req: &RequestParts<'_>,
    params: &SigningParams<'_>,
    payload_sha256: &str,
) -> Vec<(String, String)> {
    let amz_date = format_amz_date(params.time);
    let mut added = vec![("X-Amz-Date".to_owned(), amz_date.clone())];
    if let Some(token) = params.session_token {
        added.push(("X-Amz-Security-Token".to_owned(), token.to_owned()));
    }
    let headers: Vec<(String, String)> = req.headers.iter().chain(&added).cloned().collect();
    let mut signed_headers: Vec<String> = headers
        .iter()
        .map(|(name, _)| name.to_ascii_lowercase())
        .collect();
    signed_headers.sort();
    signed_headers.dedup();
    let signature = V4Signature {
        location: V4Location::Header,
        access_key: params.access_key.to_owned(),
        date: amz_date[..8].to_owned(),
        region: params.region.to_owned(),
        service: params.service.to_owned(),
        signed_headers,
        signature: String::new(),
        amz_date: params.time,
        expires: None,
        security_token: params.session_token.map(str::to_owned),
        path_rules: params.path_rules,
    };
    let full = RequestParts {
        headers: &headers,
        ..*req
    };
    let canonical_request = signature.canonical_request(&full, Some(payload_sha256));
    let signature_hex = signature.sign(
        params.secret_key,
        &signature.string_to_sign(&canonical_request),
    );
    added.push((
        "Authorization".to_owned(),
        format!(
            "{ALGORITHM} Credential={}/{}, SignedHeaders={}, Signature={signature_hex}",
            params.access_key,
            signature.scope(),
            signature.signed_headers.join(";"),
        ),
    ));
    added
}
