//! S3 requests at the front door: what has to happen before s3s sees a
//! request (SigV2 verified as AWS canonicalises it, the Eucalyptus
//! `/services/objectstorage` path, an unparsable Range, CORS preflights),
//! and after: the S3 error body finishing (AWS messages, RequestId) and a
//! cross-origin request's CORS headers.

use axum::body::Body;
use axum::response::Response;
use http::{StatusCode, header};
use http_body_util::{BodyExt, Limited};
use mallee_sigv::{RequestParts, SignedBy};
use s3s::service::S3Service;

use crate::auth::{self, AuthError, Caller};
use crate::error::{ApiError, ErrorDialect, error_response};
use crate::service::Service;
use mallee_cloud::Cloud;

/// Serves one S3 request; returns the response and the caller's account
/// when it is known here.
pub(crate) async fn serve(
    cloud: &Cloud,
    s3: &S3Service,
    parts: http::request::Parts,
    body: Body,
    early_signature: Option<&SignedBy>,
    header_only: &RequestParts<'_>,
    request_id: &str,
) -> (Response, Option<String>) {
    let fail = |e: &ApiError| error_response(e, ErrorDialect::S3, request_id);
    let mut parts = parts;
    let mut account = None;
    // CORS: s3s routes no OPTIONS, so preflights are answered here; a
    // request with an Origin gets its rule's headers on the way out.
    if parts.method == http::Method::OPTIONS {
        return (
            super::cors::preflight(cloud, &parts, request_id).await,
            None,
        );
    }
    let cors = super::cors::Actual::of(cloud, &parts);
    // S3 ignores a Range header it cannot parse and sends the whole
    // object; s3s refuses it, so drop it first unless a SigV4 signature
    // covers it (removing a signed header would break the signature).
    let range_signed = matches!(early_signature, Some(SignedBy::V4Header(sig) | SignedBy::V4Query(sig))
        if sig.signed_headers.iter().any(|h| h == "range"));
    if !range_signed
        && let Some(range) = parts.headers.get(header::RANGE)
        && range
            .to_str()
            .map_or(true, |r| s3s::dto::Range::parse(r).is_err())
    {
        parts.headers.remove(header::RANGE);
    }
    let mut body = body;
    if Service::from_path(parts.uri.path()) == Some(Service::S3) {
        // Under the Eucalyptus path the signature covers the prefix, which
        // s3s's routing cannot see: verify here, then hand s3s the request
        // without prefix or signature and with the caller attached.
        match eucalyptus_s3_path(cloud, early_signature, header_only, &mut parts, &mut body).await {
            Ok(caller_account) => account = caller_account,
            Err(e) => return (fail(&e), None),
        }
    } else if let Some(signed @ (SignedBy::V2Header(_) | SignedBy::V2Query(_))) = early_signature {
        // SigV2 is verified here, as AWS canonicalises it (s3s derives the
        // resource from the decoded path, which breaks keys with spaces or
        // `+`). SigV2 has no streamed payloads, so s3s then gets the request
        // without its signature and the caller already attached.
        let host = parts
            .headers
            .get(header::HOST)
            .and_then(|h| h.to_str().ok())
            .unwrap_or_default();
        let bucket = super::virtual_host_bucket(&cloud.config.s3_domain, host);
        match auth::authenticate(cloud, Some(signed), header_only, None, bucket.as_deref()).await {
            Ok(Caller::Principal(principal)) => {
                account = Some(principal.account.account_id.clone());
                strip_v2_signature(&mut parts);
                parts
                    .extensions
                    .insert(mallee_cloud::objects::Requester::principal(principal));
            }
            Ok(Caller::Anonymous) => {}
            Err(e) => return (fail(&e.to_api_error(Service::S3)), None),
        }
    }
    let slot = super::AccountSlot::default();
    parts.extensions.insert(slot.clone());
    let operation = super::OperationSlot::default();
    parts.extensions.insert(operation.clone());
    let request = http::Request::from_parts(parts, s3s::Body::http_body_unsync(body));
    let mut response = match s3.call(request).await {
        Ok(response) => finish_s3_response(response, request_id).await,
        Err(e) => {
            tracing::error!(request_id, error = ?e, "S3 request failed");
            fail(&ApiError::internal())
        }
    };
    if let Some(name) = operation.get() {
        response.extensions_mut().insert(super::S3Operation(name));
    }
    if let Some(cors) = cors {
        cors.decorate(cloud, &mut response).await;
    }
    (response, account.or_else(|| slot.get()))
}

/// Error bodies from s3s carry no request id; S3's do. Error documents are
/// small, so they are read whole (within a bound) and the id added. A 304
/// carries no body at all.
async fn finish_s3_response(response: http::Response<s3s::Body>, request_id: &str) -> Response {
    const MAX_ERROR_BODY: usize = 64 * 1024;
    let (mut parts, body) = response.into_parts();
    if parts.status == StatusCode::NOT_MODIFIED {
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.remove(header::CONTENT_TYPE);
        return Response::from_parts(parts, Body::empty());
    }
    if !parts.status.is_client_error() && !parts.status.is_server_error() {
        return Response::from_parts(parts, Body::new(body));
    }
    let bytes = match Limited::new(body, MAX_ERROR_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => bytes::Bytes::new(),
    };
    let mut text = String::from_utf8_lossy(&bytes).into_owned();
    if !text.contains("<Message>")
        && let Some(code_end) = text.find("</Code>")
    {
        let code = text[..code_end].rsplit("<Code>").next().unwrap_or_default();
        let message = crate::xml::escape(s3_message(code)).into_owned();
        text.insert_str(
            code_end + "</Code>".len(),
            &format!("<Message>{message}</Message>"),
        );
    }
    let body = match text.rfind("</Error>") {
        Some(end) if !text.contains("<RequestId>") => {
            format!(
                "{}<RequestId>{request_id}</RequestId>{}",
                &text[..end],
                &text[end..]
            )
        }
        _ => text,
    };
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(body))
}

/// Removes a verified SigV2 signature (header or query parameters).
fn strip_v2_signature(parts: &mut http::request::Parts) {
    parts.headers.remove(header::AUTHORIZATION);
    let path = parts.uri.path().to_owned();
    rewrite_uri(parts, &path, |name| {
        matches!(name, "AWSAccessKeyId" | "Signature" | "Expires")
    });
}

/// Sets the URI's path, dropping query parameters whose name `drop` selects
/// (the others keep their encoding as sent).
fn rewrite_uri(parts: &mut http::request::Parts, path: &str, drop: impl Fn(&str) -> bool) {
    let kept: Vec<&str> = parts
        .uri
        .query()
        .unwrap_or_default()
        .split('&')
        .filter(|pair| !pair.is_empty() && !drop(pair.split('=').next().unwrap_or_default()))
        .collect();
    let rebuilt = if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    };
    if let Ok(uri) = rebuilt.parse() {
        parts.uri = uri;
    }
}

/// Prepares an S3 request made under `/services/objectstorage` (or
/// `/services/Walrus`): verifies its signature against the path as sent,
/// then strips the prefix and the signature and attaches the caller. A body
/// whose SHA-256 the signature covers is checked as it streams. aws-chunked
/// bodies are only decoded by s3s, so they are refused on this path.
async fn eucalyptus_s3_path(
    cloud: &Cloud,
    signed: Option<&SignedBy>,
    request_parts: &RequestParts<'_>,
    parts: &mut http::request::Parts,
    body: &mut Body,
) -> Result<Option<String>, ApiError> {
    let raw_path = parts.uri.path().to_owned();
    let prefix_len = ["/services/objectstorage", "/services/Walrus"]
        .iter()
        .find(|p| raw_path.starts_with(*p))
        .map_or(0, |p| p.len());
    let rest = &raw_path[prefix_len..];
    let path = if rest.is_empty() {
        "/".to_owned()
    } else {
        rest.to_owned()
    };
    let content_sha256 = parts
        .headers
        .get("x-amz-content-sha256")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if content_sha256
        .as_deref()
        .is_some_and(|v| v.starts_with("STREAMING-"))
    {
        return Err(ApiError::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "aws-chunked uploads are served at the endpoint root, not under /services/objectstorage.",
        ));
    }
    let Some(signed) = signed else {
        rewrite_uri(parts, &path, |_| false);
        return Ok(None);
    };
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let bucket = crate::s3::virtual_host_bucket(&cloud.config.s3_domain, host);
    let payload = match signed {
        SignedBy::V4Header(_) => Some(
            content_sha256
                .clone()
                .unwrap_or_else(|| mallee_sigv::EMPTY_SHA256.to_owned()),
        ),
        _ => None,
    };
    // SigV2's canonical resource is `/bucket/key` whatever the endpoint's
    // path, but clients sign a request without a bucket (ListBuckets) with
    // the path as sent, which SigV4 always does.
    let mut verified = auth::authenticate(
        cloud,
        Some(signed),
        request_parts,
        payload.as_deref(),
        bucket.as_deref(),
    )
    .await;
    if matches!(signed, SignedBy::V2Header(_) | SignedBy::V2Query(_))
        && matches!(
            verified,
            Err(AuthError::Signature(
                mallee_sigv::SigError::SignatureDoesNotMatch { .. }
            ))
        )
    {
        let v2_parts = RequestParts {
            raw_path: &path,
            ..*request_parts
        };
        verified =
            auth::authenticate(cloud, Some(signed), &v2_parts, None, bucket.as_deref()).await;
    }
    let principal = match verified {
        Ok(Caller::Principal(principal)) => principal,
        Ok(Caller::Anonymous) => return Err(AuthError::Missing.to_api_error(Service::S3)),
        Err(e) => return Err(e.to_api_error(Service::S3)),
    };
    if let Some(expected) =
        payload.filter(|p| p.len() == 64 && p.bytes().all(|b| b.is_ascii_hexdigit()))
    {
        let unchecked = std::mem::replace(body, Body::empty());
        *body = sha256_checked(unchecked, expected.to_ascii_lowercase());
    }
    let account = Some(principal.account.account_id.clone());
    parts.headers.remove(header::AUTHORIZATION);
    rewrite_uri(parts, &path, |name| {
        name.starts_with("X-Amz-") || matches!(name, "AWSAccessKeyId" | "Signature" | "Expires")
    });
    parts
        .extensions
        .insert(mallee_cloud::objects::Requester::principal(principal));
    Ok(account)
}

/// A body that fails at its end unless its SHA-256 is `expected` (hex). The
/// error names `Sha256Mismatch`, which the object store reports as S3's
/// XAmzContentSHA256Mismatch.
fn sha256_checked(body: Body, expected: String) -> Body {
    use futures_util::StreamExt;
    use sha2::Digest;
    let mut hasher = Some(sha2::Sha256::new());
    let chunks = body
        .into_data_stream()
        .map(Some)
        .chain(futures_util::stream::once(async { None }));
    let checked = chunks.filter_map(move |item| {
        let out = match item {
            Some(Ok(bytes)) => {
                if let Some(h) = hasher.as_mut() {
                    h.update(&bytes);
                }
                Some(Ok(bytes))
            }
            Some(Err(e)) => Some(Err(std::io::Error::other(e))),
            None => {
                let digest = hex::encode(hasher.take().map(Digest::finalize).unwrap_or_default());
                (digest != expected)
                    .then(|| Err(std::io::Error::other("UploadStreamError: Sha256Mismatch")))
            }
        };
        futures_util::future::ready(out)
    });
    Body::from_stream(checked)
}

/// S3's message for an error code, for errors raised without one.
fn s3_message(code: &str) -> &'static str {
    match code {
        "AccessDenied" => "Access Denied",
        "BucketNotEmpty" => "The bucket you tried to delete is not empty",
        "EntityTooLarge" => "Your proposed upload exceeds the maximum allowed object size.",
        "EntityTooSmall" => "Your proposed upload is smaller than the minimum allowed object size.",
        "IncompleteBody" => {
            "You did not provide the number of bytes specified by the Content-Length HTTP header."
        }
        "InvalidAccessKeyId" => "The AWS Access Key Id you provided does not exist in our records.",
        "InvalidArgument" => "Invalid Argument",
        "InvalidBucketName" => "The specified bucket is not valid.",
        "InvalidDigest" => "The Content-MD5 you specified was invalid.",
        "InvalidRange" => "The requested range is not satisfiable",
        "InvalidRequest" => "Invalid Request",
        "InvalidURI" => "Couldn't parse the specified URI.",
        "KeyTooLongError" => "Your key is too long",
        "MalformedXML" => {
            "The XML you provided was not well-formed or did not validate against our published schema"
        }
        "MethodNotAllowed" => "The specified method is not allowed against this resource.",
        "MissingContentLength" => "You must provide the Content-Length HTTP header.",
        "NoSuchBucket" => "The specified bucket does not exist",
        "NoSuchKey" => "The specified key does not exist.",
        "NoSuchUpload" => "The specified upload does not exist.",
        "NotImplemented" => "A header you provided implies functionality that is not implemented",
        "PreconditionFailed" => "At least one of the pre-conditions you specified did not hold",
        "RequestTimeTooSkewed" => {
            "The difference between the request time and the current time is too large."
        }
        "SignatureDoesNotMatch" => {
            "The request signature we calculated does not match the signature you provided. Check your key and signing method."
        }
        "XAmzContentSHA256Mismatch" => {
            "The provided 'x-amz-content-sha256' header does not match what was computed."
        }
        "InternalError" => "We encountered an internal error. Please try again.",
        _ => "The request could not be processed.",
    }
}
