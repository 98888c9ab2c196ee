//! Signature Version 4 (`AWS4-HMAC-SHA256`), in the `Authorization` header and
//! in the query string (presigned URLs).
//!
//! The canonical request follows AWS's rules: for every service but S3 the
//! path is normalised (`.`/`..` removed, `//` collapsed) and URI-encoded once
//! more on top of its wire encoding; for S3 it is left as is (re-encoded from
//! its decoded form with the strict unreserved set). The query is decoded and
//! re-encoded with the strict unreserved set and sorted. Header values are
//! trimmed with their inner runs of spaces collapsed; repeated headers are
//! joined with `,`.

use time::{Duration, OffsetDateTime};

use crate::canonical::{
    self, EMPTY_SHA256, QueryParam, ct_eq, format_amz_date, header, header_values, hmac_sha256,
    param, parse_amz_date, parse_http_date, percent_decode, sha256_hex, trim_all, uri_encode,
};
use crate::chunked::ChunkVerifier;
use crate::{RequestParts, SigError};

/// The only SigV4 algorithm we verify.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// The payload hash of presigned S3 URLs and of unsigned S3 uploads.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// Longest validity of a presigned URL, in seconds (7 days).
pub const MAX_EXPIRES: u64 = 604_800;
/// How far the request time may be from ours, either way.
pub const MAX_SKEW: Duration = Duration::minutes(15);

const CREDENTIAL_FORMAT: &str = "the Credential is mal-formed; expecting \
    \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".";
const QUERY_PARAMS_REQUIRED: &str = "Query-string authentication version 4 requires the \
    X-Amz-Algorithm, X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, \
    and X-Amz-Expires parameters.";
const HOST_MUST_BE_SIGNED: &str =
    "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.";

/// Where a SigV4 signature was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V4Location {
    /// `Authorization: AWS4-HMAC-SHA256 Credential=…, SignedHeaders=…, Signature=…`.
    Header,
    /// `?X-Amz-Algorithm=…&X-Amz-Credential=…&…&X-Amz-Signature=…` (presigned).
    Query,
}

/// How the canonical URI is derived from the wire path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PathRules {
    /// Every service but S3: remove `.`/`..` segments, collapse `//`, then
    /// URI-encode the (already encoded) wire path once more.
    Normalize,
    /// S3 (and its variants `s3-object-lambda`, `s3-outposts`, `s3express`):
    /// the path as is, no normalisation, encoded once.
    AsIs,
}

impl PathRules {
    /// The rules AWS applies for a scope's service name.
    pub fn for_service(service: &str) -> Self {
        if service == "s3" || service.starts_with("s3-") || service == "s3express" {
            PathRules::AsIs
        } else {
            PathRules::Normalize
        }
    }
}

/// A parsed SigV4 signature, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V4Signature {
    /// Header or query string.
    pub location: V4Location,
    /// The access key id from the credential scope.
    pub access_key: String,
    /// The scope date, `yyyymmdd`.
    pub date: String,
    /// The scope region, as sent (not validated).
    pub region: String,
    /// The scope service (`ec2`, `s3`, `iam`, `sts`, …), as sent (not validated).
    pub service: String,
    /// The signed header names, lowercase, in the order sent.
    pub signed_headers: Vec<String>,
    /// The signature, hex.
    pub signature: String,
    /// The signing time (`X-Amz-Date`, or the `Date` header).
    pub amz_date: OffsetDateTime,
    /// `X-Amz-Expires` in seconds (presigned only; required for S3).
    pub expires: Option<u64>,
    /// `X-Amz-Security-Token` (header or query), for temporary credentials.
    pub security_token: Option<String>,
    /// How the canonical URI is built; from the service name.
    pub path_rules: PathRules,
}

/// Parses `Authorization: AWS4-…`.
pub(crate) fn parse_header(auth: &str, req: &RequestParts<'_>) -> Result<V4Signature, SigError> {
    let auth = auth.trim();
    let (algorithm, rest) = auth.split_once([' ', '\t']).unwrap_or((auth, ""));
    if algorithm != ALGORITHM {
        return Err(SigError::UnsupportedAlgorithm(algorithm.to_owned()));
    }
    let mut credential = None;
    let mut signed_headers = None;
    let mut signature = None;
    for item in rest.split(|c: char| c == ',' || c.is_ascii_whitespace()) {
        let Some((key, value)) = item.split_once('=') else {
            continue;
        };
        match key {
            "Credential" => credential = Some(value),
            "SignedHeaders" => signed_headers = Some(value),
            "Signature" => signature = Some(value),
            _ => {}
        }
    }
    let date_header = header(req.headers, "x-amz-date")
        .map(|v| (v, true))
        .or_else(|| header(req.headers, "date").map(|v| (v, false)));

    let mut missing = String::new();
    if credential.is_none() {
        missing.push_str("Authorization header requires 'Credential' parameter. ");
    }
    if signature.is_none() {
        missing.push_str("Authorization header requires 'Signature' parameter. ");
    }
    if signed_headers.is_none() {
        missing.push_str("Authorization header requires 'SignedHeaders' parameter. ");
    }
    if date_header.is_none() {
        missing.push_str(
            "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header. ",
        );
    }
    let (Some(credential), Some(signed_headers), Some(signature), Some((date_value, is_amz))) =
        (credential, signed_headers, signature, date_header)
    else {
        return Err(SigError::Malformed(format!(
            "{missing}Authorization={auth}"
        )));
    };

    let amz_date = if is_amz {
        parse_amz_date(date_value.trim())
    } else {
        parse_http_date(date_value)
    }
    .ok_or_else(|| {
        SigError::BadDate(format!(
            "Date must be in ISO-8601 'basic format'. Got '{date_value}'. \
             See http://en.wikipedia.org/wiki/ISO_8601"
        ))
    })?;

    let scope = parse_credential(credential).map_err(SigError::Malformed)?;
    let signed_headers = parse_signed_headers(signed_headers);
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(SigError::Malformed(HOST_MUST_BE_SIGNED.to_owned()));
    }
    if scope.date != format_amz_date(amz_date)[..8] {
        return Err(SigError::Malformed(
            "Invalid credential date. Date is not the same as X-Amz-Date.".to_owned(),
        ));
    }
    Ok(V4Signature {
        location: V4Location::Header,
        access_key: scope.access_key,
        date: scope.date,
        region: scope.region,
        signed_headers,
        signature: signature.to_owned(),
        amz_date,
        expires: None,
        security_token: header(req.headers, "x-amz-security-token").map(|v| v.trim().to_owned()),
        path_rules: PathRules::for_service(&scope.service),
        service: scope.service,
    })
}

/// Parses `?X-Amz-Algorithm=…` (presigned URL).
pub(crate) fn parse_query(params: &[QueryParam]) -> Result<V4Signature, SigError> {
    let get = |name: &str| param(params, name).map(QueryParam::value_str);
    let malformed = |m: &str| SigError::MalformedQuery(m.to_owned());

    let algorithm = get("X-Amz-Algorithm").unwrap_or_default();
    if algorithm != ALGORITHM {
        return Err(malformed(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
        ));
    }
    let (Some(credential), Some(signature), Some(date), Some(signed_headers)) = (
        get("X-Amz-Credential"),
        get("X-Amz-Signature"),
        get("X-Amz-Date"),
        get("X-Amz-SignedHeaders"),
    ) else {
        return Err(malformed(QUERY_PARAMS_REQUIRED));
    };
    let scope = parse_credential(&credential).map_err(|m| {
        SigError::MalformedQuery(format!("Error parsing the X-Amz-Credential parameter; {m}"))
    })?;
    let expires = match get("X-Amz-Expires") {
        None if scope.service == "s3" => return Err(malformed(QUERY_PARAMS_REQUIRED)),
        None => None,
        Some(e) => Some(parse_expires(&e)?),
    };
    let amz_date = parse_amz_date(&date).ok_or_else(|| {
        malformed("X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"")
    })?;
    if scope.date != date[..8] {
        return Err(SigError::MalformedQuery(format!(
            "Invalid credential date \"{}\". This date is not the same as X-Amz-Date: \"{}\".",
            scope.date,
            &date[..8]
        )));
    }
    let signed_headers = parse_signed_headers(&signed_headers);
    if !signed_headers.iter().any(|h| h == "host") {
        return Err(malformed(HOST_MUST_BE_SIGNED));
    }
    Ok(V4Signature {
        location: V4Location::Query,
        access_key: scope.access_key,
        date: scope.date,
        region: scope.region,
        signed_headers,
        signature,
        amz_date,
        expires,
        security_token: get("X-Amz-Security-Token"),
        path_rules: PathRules::for_service(&scope.service),
        service: scope.service,
    })
}

fn parse_expires(value: &str) -> Result<u64, SigError> {
    let malformed = |m: &str| SigError::MalformedQuery(m.to_owned());
    let n: i64 = value
        .trim()
        .parse()
        .map_err(|_| malformed("X-Amz-Expires should be a number"))?;
    let n = u64::try_from(n).map_err(|_| malformed("X-Amz-Expires must be non-negative"))?;
    if n > MAX_EXPIRES {
        return Err(malformed(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        ));
    }
    Ok(n)
}

struct Scope {
    access_key: String,
    date: String,
    region: String,
    service: String,
}

/// Splits `AKID/yyyymmdd/region/service/aws4_request`.
fn parse_credential(credential: &str) -> Result<Scope, String> {
    let parts: Vec<&str> = credential.split('/').collect();
    let [access_key, date, region, service, terminator] = parts.as_slice() else {
        return Err(CREDENTIAL_FORMAT.to_owned());
    };
    if access_key.is_empty() || region.is_empty() || service.is_empty() {
        return Err(CREDENTIAL_FORMAT.to_owned());
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "{CREDENTIAL_FORMAT} Invalid credential date \"{date}\"."
        ));
    }
    if *terminator != "aws4_request" {
        return Err(format!(
            "Credential should be scoped with a valid terminator: 'aws4_request', not '{terminator}'."
        ));
    }
    Ok(Scope {
        access_key: (*access_key).to_owned(),
        date: (*date).to_owned(),
        region: (*region).to_owned(),
        service: (*service).to_owned(),
    })
}

fn parse_signed_headers(value: &str) -> Vec<String> {
    value
        .split(';')
        .filter(|h| !h.is_empty())
        .map(|h| h.trim().to_ascii_lowercase())
        .collect()
}

/// The SigV4 signing key for a scope: `HMAC(HMAC(HMAC(HMAC("AWS4"+secret, date), region), service), "aws4_request")`.
pub fn signing_key(secret_key: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret_key}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// The canonical URI of a SigV4 request (non-S3 services): `raw_path`
/// normalised, then URI-encoded once more.
fn canonical_uri_normalized(raw_path: &str) -> String {
    uri_encode(normalize_path(raw_path), false)
}

/// RFC 3986 dot-segment removal that also collapses empty segments, keeping a
/// trailing slash. Works on the wire form, so `%2E` is not a dot.
fn normalize_path(path: &str) -> String {
    if path.is_empty() {
        return "/".to_owned();
    }
    let mut segments: Vec<&str> = Vec::new();
    for segment in path.split('/') {
        match segment {
            "" | "." => {}
            ".." => {
                segments.pop();
            }
            s => segments.push(s),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    out.push('/');
    out.push_str(&segments.join("/"));
    let trailing = ["/", "/.", "/..", "/./", "/../"]
        .iter()
        .any(|end| path.ends_with(end))
        || path == "."
        || path == "..";
    if trailing && !out.ends_with('/') {
        out.push('/');
    }
    out
}

/// The canonical URI candidates for S3: each path segment decoded and
/// re-encoded with the strict set (what AWS documents; `%2F` stays encoded), then the wire path as is (what
/// signers that trust their own encoding produce). Usually both are equal.
fn canonical_uris_s3(raw_path: &str) -> Vec<String> {
    if raw_path.is_empty() {
        return vec!["/".to_owned()];
    }
    let strict = raw_path
        .split('/')
        .map(|segment| uri_encode(percent_decode(segment), true))
        .collect::<Vec<_>>()
        .join("/");
    if strict == raw_path {
        vec![strict]
    } else {
        vec![strict, raw_path.to_owned()]
    }
}

impl V4Signature {
    /// The credential scope, `yyyymmdd/region/service/aws4_request`.
    pub fn scope(&self) -> String {
        format!(
            "{}/{}/{}/aws4_request",
            self.date, self.region, self.service
        )
    }

    /// The signing time in the SigV4 basic format, `yyyyMMddTHHmmssZ`.
    pub fn amz_date_string(&self) -> String {
        format_amz_date(self.amz_date)
    }

    /// The payload hash that goes on the last line of the canonical request.
    /// `payload_sha256` as given by the caller wins; otherwise the
    /// `x-amz-content-sha256` header (header auth; else the empty-body hash)
    /// or `UNSIGNED-PAYLOAD` (presigned).
    pub fn payload_hash(&self, req: &RequestParts<'_>, payload_sha256: Option<&str>) -> String {
        if let Some(p) = payload_sha256 {
            return p.to_owned();
        }
        match self.location {
            V4Location::Header => header(req.headers, "x-amz-content-sha256")
                .map(|v| v.trim().to_owned())
                .unwrap_or_else(|| EMPTY_SHA256.to_owned()),
            V4Location::Query => UNSIGNED_PAYLOAD.to_owned(),
        }
    }

    /// The canonical URIs to try, most canonical first.
    fn canonical_uris(&self, raw_path: &str) -> Vec<String> {
        match self.path_rules {
            PathRules::AsIs => canonical_uris_s3(raw_path),
            PathRules::Normalize => vec![canonical_uri_normalized(raw_path)],
        }
    }

    /// The canonical query string: every parameter (but `X-Amz-Signature` when
    /// presigned) decoded, re-encoded strictly, sorted, joined with `&`.
    fn canonical_query(&self, raw_query: &str) -> String {
        let mut pairs: Vec<(String, String)> = canonical::parse_query(raw_query)
            .into_iter()
            .filter(|p| !(self.location == V4Location::Query && p.name == b"X-Amz-Signature"))
            .map(|p| (uri_encode(&p.name, true), uri_encode(&p.value, true)))
            .collect();
        pairs.sort();
        let mut out = String::new();
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                out.push('&');
            }
            out.push_str(k);
            out.push('=');
            out.push_str(v);
        }
        out
    }

    /// The canonical headers block (each `name:value\n`) for the signed headers.
    fn canonical_headers(&self, headers: &[(String, String)]) -> String {
        let mut out = String::new();
        for name in &self.signed_headers {
            let values: Vec<String> = header_values(headers, name).map(trim_all).collect();
            out.push_str(name);
            out.push(':');
            out.push_str(&values.join(","));
            out.push('\n');
        }
        out
    }

    fn canonical_request_with_uri(
        &self,
        req: &RequestParts<'_>,
        uri: &str,
        payload_hash: &str,
    ) -> String {
        format!(
            "{}\n{}\n{}\n{}\n{}\n{}",
            req.method,
            uri,
            self.canonical_query(req.raw_query),
            self.canonical_headers(req.headers),
            self.signed_headers.join(";"),
            payload_hash
        )
    }

    /// The canonical request AWS would compute for `req` (with the payload
    /// hash as [`V4Signature::payload_hash`] picks it).
    pub fn canonical_request(
        &self,
        req: &RequestParts<'_>,
        payload_sha256: Option<&str>,
    ) -> String {
        let uri = self
            .canonical_uris(req.raw_path)
            .into_iter()
            .next()
            .unwrap_or_else(|| "/".to_owned());
        self.canonical_request_with_uri(req, &uri, &self.payload_hash(req, payload_sha256))
    }

    /// The string to sign for a canonical request.
    pub fn string_to_sign(&self, canonical_request: &str) -> String {
        format!(
            "{ALGORITHM}\n{}\n{}\n{}",
            self.amz_date_string(),
            self.scope(),
            sha256_hex(canonical_request)
        )
    }

    /// The signature of a string to sign under `secret_key`, hex.
    pub fn sign(&self, secret_key: &str, string_to_sign: &str) -> String {
        let key = signing_key(secret_key, &self.date, &self.region, &self.service);
        hex::encode(hmac_sha256(&key, string_to_sign.as_bytes()))
    }

    /// Checks the request time against `now`: 15 minutes either way for
    /// header auth (and presigned URLs without `X-Amz-Expires`); for
    /// presigned URLs, not more than 15 minutes ahead and not past
    /// `X-Amz-Date + X-Amz-Expires`.
    pub fn check_time(&self, now: OffsetDateTime) -> Result<(), SigError> {
        match (self.location, self.expires) {
            (V4Location::Query, Some(expires)) => {
                if self.amz_date - now > MAX_SKEW {
                    return Err(SigError::NotYetValid {
                        request_time: self.amz_date,
                        server_time: now,
                    });
                }
                let secs = i64::try_from(expires).unwrap_or(i64::MAX);
                let expires_at = self.amz_date + Duration::seconds(secs);
                if now > expires_at {
                    return Err(SigError::RequestExpired {
                        expires_at,
                        server_time: now,
                    });
                }
                Ok(())
            }
            _ => {
                if (self.amz_date - now).abs() > MAX_SKEW {
                    return Err(SigError::TimeTooSkewed {
                        request_time: self.amz_date,
                        server_time: now,
                    });
                }
                Ok(())
            }
        }
    }

    /// Verifies the time (see [`V4Signature::check_time`]) and then the
    /// signature, in constant time. See [`crate::SignedBy::verify`].
    pub fn verify(
        &self,
        req: &RequestParts<'_>,
        secret_key: &str,
        payload_sha256: Option<&str>,
        now: OffsetDateTime,
    ) -> Result<(), SigError> {
        self.check_time(now)?;
        let payload_hash = self.payload_hash(req, payload_sha256);
        let key = signing_key(secret_key, &self.date, &self.region, &self.service);
        let mut first = None;
        for uri in self.canonical_uris(req.raw_path) {
            let creq = self.canonical_request_with_uri(req, &uri, &payload_hash);
            let sts = self.string_to_sign(&creq);
            let expected = hex::encode(hmac_sha256(&key, sts.as_bytes()));
            if ct_eq(&expected, &self.signature) {
                return Ok(());
            }
            first.get_or_insert((sts, creq));
        }
        let (string_to_sign, canonical_request) = first.unwrap_or_default();
        Err(SigError::SignatureDoesNotMatch {
            string_to_sign,
            canonical_request,
        })
    }

    /// The verifier for the chunk signatures of an `aws-chunked` body
    /// (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`), seeded with this signature.
    /// Only meaningful once [`V4Signature::verify`] has accepted it.
    pub fn chunk_verifier(&self, secret_key: &str) -> ChunkVerifier {
        ChunkVerifier::new(
            signing_key(secret_key, &self.date, &self.region, &self.service),
            self.amz_date_string(),
            self.scope(),
            self.signature.clone(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalization() {
        assert_eq!(normalize_path(""), "/");
        assert_eq!(normalize_path("/"), "/");
        assert_eq!(normalize_path("//example//"), "/example/");
        assert_eq!(normalize_path("/example1/example2/../.."), "/");
        assert_eq!(normalize_path("/example/.."), "/");
        assert_eq!(normalize_path("/./"), "/");
        assert_eq!(normalize_path("/a/./b"), "/a/b");
        assert_eq!(normalize_path("/../a"), "/a");
        assert_eq!(normalize_path("/a/b/."), "/a/b/");
    }

    #[test]
    fn s3_uris() {
        assert_eq!(canonical_uris_s3(""), vec!["/"]);
        assert_eq!(canonical_uris_s3("//a//b"), vec!["//a//b"]);
        assert_eq!(
            canonical_uris_s3("/test%24file.text"),
            vec!["/test%24file.text"]
        );
        assert_eq!(canonical_uris_s3("/a$b"), vec!["/a%24b", "/a$b"]);
        assert_eq!(canonical_uris_s3("/a%2fb"), vec!["/a%2Fb", "/a%2fb"]);
    }

    #[test]
    fn credential() {
        assert!(parse_credential("AKID/20150830/us-east-1/service/aws4_request").is_ok());
        assert!(parse_credential("AKID/20150830/us-east-1/aws4_request").is_err());
        assert!(parse_credential("AKID/2015083/us-east-1/service/aws4_request").is_err());
        assert!(parse_credential("AKID/20150830/us-east-1/service/aws5_request").is_err());
    }

    #[test]
    fn expires() {
        assert_eq!(parse_expires("0"), Ok(0));
        assert_eq!(parse_expires("604800"), Ok(604_800));
        assert!(parse_expires("604801").is_err());
        assert!(parse_expires("-1").is_err());
        assert!(parse_expires("soon").is_err());
    }
}
