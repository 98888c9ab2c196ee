//! Signature Version 2 of the query APIs (EC2, IAM, STS as euca2ools and boto2
//! sign them): parameters `AWSAccessKeyId`, `SignatureVersion=2`,
//! `SignatureMethod`, `Timestamp` or `Expires` and `Signature`, in the query
//! string or in a form-encoded POST body.
//!
//! ```text
//! StringToSign = METHOD\n lowercase(Host)\n path\n
//!                sorted, strictly encoded name=value pairs (all but Signature) joined by &
//! ```

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use time::OffsetDateTime;

use crate::canonical::{
    QueryParam, ct_eq, header, hmac_sha1, hmac_sha256, param, parse_iso8601, uri_encode,
};
use crate::v4::MAX_SKEW;
use crate::{RequestParts, SigError};

/// The HMAC of a SigV2 query-API signature (`SignatureMethod`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Method {
    /// `HmacSHA1`.
    HmacSha1,
    /// `HmacSHA256`.
    HmacSha256,
}

/// How long a SigV2 query-API request is valid.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum V2Validity {
    /// `Timestamp`: valid within 15 minutes of it, either way.
    Timestamp(OffsetDateTime),
    /// `Expires`: valid until then.
    Expires(OffsetDateTime),
}

/// A parsed SigV2 query-API signature, not yet verified.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct V2ApiSignature {
    /// `AWSAccessKeyId`.
    pub access_key: String,
    /// `Signature`, base64 (URL-decoded).
    pub signature: String,
    /// `SignatureMethod`.
    pub method: V2Method,
    /// `Timestamp` or `Expires`.
    pub validity: V2Validity,
    /// `SecurityToken`, for temporary credentials.
    pub security_token: Option<String>,
}

/// Every parameter of the request: the query string's, then the form body's.
pub(crate) fn all_params(req: &RequestParts<'_>) -> Vec<QueryParam> {
    let mut params = crate::canonical::parse_query(req.raw_query);
    params.extend(req.form_params.iter().map(|(n, v)| QueryParam {
        name: n.as_bytes().to_vec(),
        value: v.as_bytes().to_vec(),
        has_value: true,
    }));
    params
}

/// Parses the SigV2 parameters (query string and form body together).
pub(crate) fn parse(params: &[QueryParam]) -> Result<V2ApiSignature, SigError> {
    let get = |name: &str| param(params, name).map(QueryParam::value_str);
    let version = get("SignatureVersion").unwrap_or_default();
    if version != "2" {
        return Err(SigError::UnsupportedSignatureVersion(version));
    }
    let mut missing = Vec::new();
    for name in ["AWSAccessKeyId", "SignatureMethod", "Signature"] {
        if get(name).is_none_or(|v| v.is_empty()) {
            missing.push(name);
        }
    }
    if !missing.is_empty() {
        return Err(SigError::Malformed(format!(
            "The request must contain the parameter {}",
            missing.join(", ")
        )));
    }
    let method = match get("SignatureMethod").unwrap_or_default().as_str() {
        "HmacSHA256" => V2Method::HmacSha256,
        "HmacSHA1" => V2Method::HmacSha1,
        other => return Err(SigError::UnsupportedAlgorithm(other.to_owned())),
    };
    let date = |name: &str, value: String| {
        parse_iso8601(value.trim())
            .ok_or_else(|| SigError::BadDate(format!("Invalid date in parameter {name}: {value}")))
    };
    let validity = match (get("Timestamp"), get("Expires")) {
        (Some(_), Some(_)) => {
            return Err(SigError::Malformed(
                "Parameters Timestamp and Expires are mutually exclusive".to_owned(),
            ));
        }
        (Some(t), None) => V2Validity::Timestamp(date("Timestamp", t)?),
        (None, Some(e)) => V2Validity::Expires(date("Expires", e)?),
        (None, None) => {
            return Err(SigError::Malformed(
                "The request must contain either a Timestamp or an Expires parameter".to_owned(),
            ));
        }
    };
    Ok(V2ApiSignature {
        access_key: get("AWSAccessKeyId").unwrap_or_default(),
        signature: get("Signature").unwrap_or_default().replace(' ', "+"),
        method,
        validity,
        security_token: get("SecurityToken"),
    })
}

impl V2ApiSignature {
    /// The canonical query: every parameter but `Signature`, sorted by name
    /// (byte order), name and value strictly percent-encoded, joined by `&`.
    fn canonical_query(params: &[QueryParam]) -> String {
        let mut pairs: Vec<&QueryParam> =
            params.iter().filter(|p| p.name != b"Signature").collect();
        pairs.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.value.cmp(&b.value)));
        pairs
            .iter()
            .map(|p| {
                format!(
                    "{}={}",
                    uri_encode(&p.name, true),
                    uri_encode(&p.value, true)
                )
            })
            .collect::<Vec<_>>()
            .join("&")
    }

    fn string_to_sign_with_host(&self, req: &RequestParts<'_>, host: &str) -> String {
        let path = if req.raw_path.is_empty() {
            "/"
        } else {
            req.raw_path
        };
        format!(
            "{}\n{}\n{}\n{}",
            req.method,
            host.to_ascii_lowercase(),
            path,
            Self::canonical_query(&all_params(req))
        )
    }

    /// The string to sign AWS computes for `req` (with the `Host` header as sent).
    pub fn string_to_sign(&self, req: &RequestParts<'_>) -> String {
        self.string_to_sign_with_host(req, header(req.headers, "host").unwrap_or_default().trim())
    }

    /// Checks `Timestamp` (15 minutes either way) or `Expires` (not past).
    pub fn check_time(&self, now: OffsetDateTime) -> Result<(), SigError> {
        match self.validity {
            V2Validity::Timestamp(t) => {
                if (t - now).abs() > MAX_SKEW {
                    return Err(SigError::TimeTooSkewed {
                        request_time: t,
                        server_time: now,
                    });
                }
            }
            V2Validity::Expires(e) => {
                if now > e {
                    return Err(SigError::RequestExpired {
                        expires_at: e,
                        server_time: now,
                    });
                }
            }
        }
        Ok(())
    }

    fn sign(&self, secret_key: &str, string_to_sign: &str) -> String {
        match self.method {
            V2Method::HmacSha1 => {
                BASE64.encode(hmac_sha1(secret_key.as_bytes(), string_to_sign.as_bytes()))
            }
            V2Method::HmacSha256 => BASE64.encode(hmac_sha256(
                secret_key.as_bytes(),
                string_to_sign.as_bytes(),
            )),
        }
    }

    /// Verifies the time, then the signature (constant time). The host is
    /// tried as sent and, when it names the default port (`:80`, `:443`),
    /// without it.
    pub fn verify(
        &self,
        req: &RequestParts<'_>,
        secret_key: &str,
        now: OffsetDateTime,
    ) -> Result<(), SigError> {
        self.check_time(now)?;
        let host = header(req.headers, "host").unwrap_or_default().trim();
        let mut hosts = vec![host];
        if let Some(bare) = host
            .strip_suffix(":80")
            .or_else(|| host.strip_suffix(":443"))
        {
            hosts.push(bare);
        }
        let mut first = None;
        for host in hosts {
            let sts = self.string_to_sign_with_host(req, host);
            if ct_eq(&self.sign(secret_key, &sts), &self.signature) {
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
