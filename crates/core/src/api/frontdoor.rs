//! The one HTTP endpoint: reads a request, decides which service it is for
//! (SigV4 scope, Eucalyptus `/services/*` path, or `Action`), authenticates
//! it, runs it and writes the answer with a request id. One log line per
//! request. A panic in a handler becomes a 500 for that request only.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::response::Response;
use http::{HeaderValue, StatusCode, header};
use http_body_util::{BodyExt, Limited};
use mallee_sigv::{RequestParts, SignedBy};

use super::auth::{self, AuthError, Caller};
use super::error::{ApiError, ErrorDialect};
use super::query::QueryParams;
use super::{Principal, Service};
use crate::Cloud;
use crate::ec2::{self, Ec2Action, Ec2Context};

/// Path that answers 200 once the server is ready (not a valid bucket name,
/// so it never shadows S3).
pub const HEALTH_PATH: &str = "/_mallee/health";

/// Shared state of the front door.
#[derive(Clone)]
struct FrontDoor {
    cloud: Arc<Cloud>,
    s3: s3s::service::S3Service,
}

/// Builds the router serving every API.
pub fn router(cloud: Arc<Cloud>, s3: s3s::service::S3Service) -> axum::Router {
    axum::Router::new()
        .fallback(handle)
        .with_state(FrontDoor { cloud, s3 })
}

/// What a finished request reports to the log.
struct Outcome {
    service: Option<Service>,
    action: String,
    account: Option<String>,
    response: Response,
}

async fn handle(State(door): State<FrontDoor>, request: Request) -> Response {
    let started = Instant::now();
    let request_id = uuid::Uuid::new_v4().to_string();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let task = tokio::spawn(dispatch(door, request, request_id.clone()));
    let outcome = match task.await {
        Ok(outcome) => outcome,
        Err(join_error) => {
            tracing::error!(request_id, error = %join_error, "request handler panicked");
            Outcome {
                service: None,
                action: String::new(),
                account: None,
                response: error_response(&ApiError::internal(), ErrorDialect::Ec2, &request_id),
            }
        }
    };
    let mut response = outcome.response;
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&request_id) {
        headers.insert("x-amzn-requestid", value.clone());
        headers.insert("x-amz-request-id", value);
    }
    headers.insert(header::SERVER, HeaderValue::from_static("mallee"));
    tracing::info!(
        target: "mallee::request",
        request_id,
        method = %method,
        path,
        service = outcome.service.map(Service::scope_name).unwrap_or("-"),
        action = outcome.action,
        account = outcome.account.as_deref().unwrap_or("-"),
        status = response.status().as_u16(),
        latency_ms = started.elapsed().as_secs_f64() * 1000.0,
        "request"
    );
    response
}

fn error_response(error: &ApiError, dialect: ErrorDialect, request_id: &str) -> Response {
    xml_response(error.status, error.to_xml(dialect, request_id))
}

fn xml_response(status: StatusCode, body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/xml;charset=UTF-8"),
    );
    response
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
        let message = crate::api::xml::escape(s3_message(code)).into_owned();
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
    signed: &Option<SignedBy>,
    request_parts: &RequestParts<'_>,
    parts: &mut http::request::Parts,
    body: &mut Body,
    outcome: &mut Outcome,
) -> Result<(), ApiError> {
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
        return Ok(());
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
    outcome.account = Some(principal.account.account_id.clone());
    parts.headers.remove(header::AUTHORIZATION);
    rewrite_uri(parts, &path, |name| {
        name.starts_with("X-Amz-") || matches!(name, "AWSAccessKeyId" | "Signature" | "Expires")
    });
    parts
        .extensions
        .insert(crate::s3::S3Caller::Principal(principal));
    Ok(())
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

/// Which service a request is for, from what is known before the body is
/// read: the SigV4 scope, then the Eucalyptus path, then the presence of an
/// `Action` (Query protocol) or a form body; everything else is S3.
fn resolve_service(
    signed: Option<&SignedBy>,
    path: &str,
    query: &str,
    is_form_post: bool,
) -> Service {
    if let Some(service) = signed
        .and_then(SignedBy::service)
        .and_then(Service::from_scope)
    {
        return service;
    }
    if let Some(service) = Service::from_path(path) {
        return service;
    }
    let has_action = form_urlencoded::parse(query.as_bytes()).any(|(k, _)| k == "Action");
    if has_action || is_form_post {
        Service::Ec2
    } else {
        Service::S3
    }
}

/// Parameters that carry authentication, not input to the action.
fn is_auth_param(name: &str) -> bool {
    matches!(
        name,
        "AWSAccessKeyId"
            | "Signature"
            | "SignatureMethod"
            | "SignatureVersion"
            | "Timestamp"
            | "Expires"
            | "SecurityToken"
    ) || name.starts_with("X-Amz-")
}

async fn dispatch(door: FrontDoor, request: Request, request_id: String) -> Outcome {
    let cloud = door.cloud;
    let mut outcome = Outcome {
        service: None,
        action: String::new(),
        account: None,
        response: Response::new(Body::empty()),
    };
    let (parts, body) = request.into_parts();
    let method = parts.method.clone();
    if parts.uri.path() == HEALTH_PATH {
        outcome.response = Response::new(Body::from("ok\n"));
        return outcome;
    }
    let headers: Vec<(String, String)> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let raw_path = parts.uri.path().to_owned();
    let raw_query = parts.uri.query().unwrap_or_default().to_owned();
    let is_form = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        });

    // A first look at the signature (without the body) decides the service.
    let header_only = RequestParts {
        method: method.as_str(),
        raw_path: &raw_path,
        raw_query: &raw_query,
        headers: &headers,
        form_params: &[],
    };
    let early_signature = mallee_sigv::parse(&header_only).ok().flatten();
    // A form body means the Query protocol only on POST: an S3 PUT may carry
    // any content type.
    let is_form_post = is_form && parts.method == http::Method::POST;
    let service = resolve_service(
        early_signature.as_ref(),
        &raw_path,
        &raw_query,
        is_form_post,
    );
    outcome.service = Some(service);
    let dialect = service.error_dialect();
    let fail = |e: &ApiError| error_response(e, dialect, &request_id);

    if service == Service::S3 {
        outcome.action = format!("S3:{}", parts.method);
        let mut parts = parts;
        // S3 ignores a Range header it cannot parse and sends the whole
        // object; s3s refuses it, so drop it first unless a SigV4 signature
        // covers it (removing a signed header would break the signature).
        let range_signed = matches!(&early_signature, Some(SignedBy::V4Header(sig) | SignedBy::V4Query(sig))
            if sig.signed_headers.iter().any(|h| h == "range"));
        if !range_signed
            && let Some(range) = parts.headers.get(header::RANGE)
            && range
                .to_str()
                .map_or(true, |r| s3s::dto::Range::parse(r).is_err())
        {
            parts.headers.remove(header::RANGE);
        }
        // Under the Eucalyptus path the signature covers the prefix, which
        // s3s's routing cannot see: verify here, then hand s3s the request
        // without prefix or signature and with the caller attached.
        if Service::from_path(&raw_path) == Some(Service::S3) {
            let mut body = body;
            if let Err(e) = eucalyptus_s3_path(
                &cloud,
                &early_signature,
                &header_only,
                &mut parts,
                &mut body,
                &mut outcome,
            )
            .await
            {
                outcome.response = fail(&e);
                return outcome;
            }
            let request = http::Request::from_parts(parts, s3s::Body::http_body_unsync(body));
            outcome.response = match door.s3.call(request).await {
                Ok(response) => finish_s3_response(response, &request_id).await,
                Err(e) => {
                    tracing::error!(request_id, error = ?e, "S3 request failed");
                    fail(&ApiError::internal())
                }
            };
            return outcome;
        }
        // SigV2 is verified here, as AWS canonicalises it (s3s derives the
        // resource from the decoded path, which breaks keys with spaces or
        // `+`). SigV2 has no streamed payloads, so s3s then gets the request
        // without its signature and the caller already attached.
        if let Some(signed @ (SignedBy::V2Header(_) | SignedBy::V2Query(_))) = &early_signature {
            let host = parts
                .headers
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .unwrap_or_default();
            let bucket = crate::s3::virtual_host_bucket(&cloud.config.s3_domain, host);
            match auth::authenticate(&cloud, Some(signed), &header_only, None, bucket.as_deref())
                .await
            {
                Ok(Caller::Principal(principal)) => {
                    outcome.account = Some(principal.account.account_id.clone());
                    strip_v2_signature(&mut parts);
                    parts
                        .extensions
                        .insert(crate::s3::S3Caller::Principal(principal));
                }
                Ok(Caller::Anonymous) => {}
                Err(e) => {
                    outcome.response = fail(&e.to_api_error(Service::S3));
                    return outcome;
                }
            }
        }
        let request = http::Request::from_parts(parts, s3s::Body::http_body_unsync(body));
        outcome.response = match door.s3.call(request).await {
            Ok(response) => finish_s3_response(response, &request_id).await,
            Err(e) => {
                tracing::error!(request_id, error = ?e, "S3 request failed");
                fail(&ApiError::internal())
            }
        };
        return outcome;
    }

    // Query-protocol bodies are small: read them whole, within a limit, and
    // refuse larger ones without reading them.
    let limit = cloud.config.max_query_body_bytes;
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let too_large = ApiError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        "RequestEntityTooLarge",
        format!("Request body must be at most {limit} bytes."),
    );
    if declared.is_some_and(|n| n > limit as u64) {
        outcome.response = fail(&too_large);
        return outcome;
    }
    let body = match Limited::new(body, limit).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e)
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            outcome.response = fail(&too_large);
            return outcome;
        }
        Err(_) => {
            outcome.response = fail(&ApiError::new(
                StatusCode::BAD_REQUEST,
                "IncompleteBody",
                "The request body could not be read.",
            ));
            return outcome;
        }
    };
    let form_params: Vec<(String, String)> = if is_form {
        form_urlencoded::parse(&body)
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect()
    } else {
        Vec::new()
    };
    let request_parts = RequestParts {
        form_params: &form_params,
        ..header_only
    };
    let signed = match mallee_sigv::parse(&request_parts) {
        Ok(signed) => signed,
        Err(e) => {
            outcome.response = fail(&AuthError::from(e).to_api_error(service));
            return outcome;
        }
    };
    let body_sha256 = mallee_sigv::sha256_hex(&body);
    let principal = match auth::authenticate(
        &cloud,
        signed.as_ref(),
        &request_parts,
        Some(&body_sha256),
        None,
    )
    .await
    {
        Ok(Caller::Principal(p)) => p,
        Ok(Caller::Anonymous) => {
            outcome.response = fail(&AuthError::Missing.to_api_error(service));
            return outcome;
        }
        Err(e) => {
            if let AuthError::Store(store_error) = &e {
                tracing::error!(request_id, error = %store_error, "store failure during authentication");
            }
            outcome.response = fail(&e.to_api_error(service));
            return outcome;
        }
    };
    outcome.account = Some(principal.account.account_id.clone());

    let pairs = form_urlencoded::parse(raw_query.as_bytes())
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .chain(form_params.iter().cloned())
        .filter(|(k, _)| !is_auth_param(k));
    let params = match QueryParams::from_pairs(pairs) {
        Ok(p) => p,
        Err(e) => {
            outcome.response = fail(&ec2::Ec2Error::from(e).into());
            return outcome;
        }
    };
    let Some(action) = params.get("Action").map(str::to_owned) else {
        outcome.response = fail(&ApiError::new(
            StatusCode::BAD_REQUEST,
            "MissingAction",
            "The request must contain the parameter Action",
        ));
        return outcome;
    };
    outcome.action = action.clone();
    let result = match service {
        Service::Ec2 => run_ec2(&cloud, &principal, &request_id, &action, &params).await,
        Service::Iam | Service::Sts | Service::S3 => Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "InvalidAction",
            format!("The action {action} is not valid for this web service."),
        )),
    };
    outcome.response = match result {
        Ok(body) => xml_response(StatusCode::OK, body),
        Err(e) => {
            if e.status.is_server_error() {
                tracing::error!(request_id, code = %e.code, "request failed inside the controller");
            }
            fail(&e)
        }
    };
    outcome
}

async fn run_ec2(
    cloud: &Cloud,
    principal: &Principal,
    request_id: &str,
    action: &str,
    params: &QueryParams,
) -> Result<String, ApiError> {
    let to_api = |e: ec2::Ec2Error| {
        if let ec2::Ec2Error::Internal(detail) = &e {
            tracing::error!(request_id, detail, "internal error");
        }
        ApiError::from(e)
    };
    let parsed = Ec2Action::parse(action, params).map_err(to_api)?;
    let dry_run = params
        .bool("DryRun")
        .map_err(|e| to_api(e.into()))?
        .unwrap_or(false);
    let ctx = Ec2Context {
        cloud,
        principal,
        request_id,
        namespace: ec2::namespace_for(params.get("Version")),
    };
    ec2::execute(&ctx, parsed, dry_run).await.map_err(to_api)
}
