//! CORS on the wire: Put/Get/DeleteBucketCors, and enforcement at the
//! front door (s3s routes no `OPTIONS`): a preflight is answered here with
//! the matching rule's `Access-Control-*` headers, or S3's 403
//! `AccessForbidden`; a request carrying `Origin` gets the headers of the
//! rule that allows its origin and method on its way out. Which rule
//! matches is `mallee_cloud::objects::cors`.

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use mallee_cloud::Cloud;
use mallee_cloud::objects::cors::{self, CorsRequest, CorsRule};
use s3s::dto::*;
use s3s::{S3Request, S3Response, S3Result};

use super::error::s3_error;
use super::{S3Api, caller};
use crate::error::{ApiError, ErrorDialect, error_response};

pub(super) async fn put_bucket_cors(
    api: &S3Api,
    req: S3Request<PutBucketCorsInput>,
) -> S3Result<S3Response<PutBucketCorsOutput>> {
    let requester = caller(&req);
    let input = req.input;
    let rules = input
        .cors_configuration
        .cors_rules
        .into_iter()
        .map(|rule| CorsRule {
            id: rule.id,
            allowed_origins: rule.allowed_origins,
            allowed_methods: rule.allowed_methods,
            allowed_headers: rule.allowed_headers.unwrap_or_default(),
            expose_headers: rule.expose_headers.unwrap_or_default(),
            max_age_seconds: rule.max_age_seconds,
        })
        .collect();
    cors::put(&api.cloud, &requester, &input.bucket, rules)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::new(PutBucketCorsOutput {}))
}

pub(super) async fn get_bucket_cors(
    api: &S3Api,
    req: S3Request<GetBucketCorsInput>,
) -> S3Result<S3Response<GetBucketCorsOutput>> {
    let rules = cors::get(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    let non_empty = |v: Vec<String>| (!v.is_empty()).then_some(v);
    Ok(S3Response::new(GetBucketCorsOutput {
        cors_rules: Some(
            rules
                .into_iter()
                .map(|rule| CORSRule {
                    id: rule.id,
                    allowed_origins: rule.allowed_origins,
                    allowed_methods: rule.allowed_methods,
                    allowed_headers: non_empty(rule.allowed_headers),
                    expose_headers: non_empty(rule.expose_headers),
                    max_age_seconds: rule.max_age_seconds,
                })
                .collect(),
        ),
    }))
}

pub(super) async fn delete_bucket_cors(
    api: &S3Api,
    req: S3Request<DeleteBucketCorsInput>,
) -> S3Result<S3Response<DeleteBucketCorsOutput>> {
    cors::delete(&api.cloud, &caller(&req), &req.input.bucket)
        .await
        .map_err(s3_error)?;
    Ok(S3Response::with_status(
        DeleteBucketCorsOutput {},
        StatusCode::NO_CONTENT,
    ))
}

/// The bucket a request addresses: the virtual host's, or the first
/// segment of the path (after a Eucalyptus prefix).
pub(crate) fn bucket_of(cloud: &Cloud, parts: &http::request::Parts) -> Option<String> {
    let host = parts
        .headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    if let Some(bucket) = super::virtual_host_bucket(&cloud.config.s3_domain, host) {
        return Some(bucket);
    }
    let path = parts.uri.path();
    let path = ["/services/objectstorage", "/services/Walrus"]
        .iter()
        .find_map(|prefix| path.strip_prefix(prefix))
        .unwrap_or(path);
    // Bucket names are letters, digits, dots and hyphens: nothing in them
    // is percent-encoded.
    let bucket = path.trim_start_matches('/').split('/').next()?;
    (!bucket.is_empty()).then(|| bucket.to_owned())
}

fn text(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<String> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

/// Answers an `OPTIONS` preflight.
pub(crate) async fn preflight(
    cloud: &Cloud,
    parts: &http::request::Parts,
    request_id: &str,
) -> Response {
    let fail = |status: StatusCode, code: &str, message: &str| {
        error_response(
            &ApiError::new(status, code.to_owned(), message.to_owned()),
            ErrorDialect::S3,
            request_id,
        )
    };
    let Some(origin) = text(&parts.headers, header::ORIGIN) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Insufficient information. Origin request header needed.",
        );
    };
    let Some(method) = text(&parts.headers, header::ACCESS_CONTROL_REQUEST_METHOD) else {
        return fail(
            StatusCode::BAD_REQUEST,
            "BadRequest",
            "Invalid Access-Control-Request-Method: null",
        );
    };
    let Some(bucket) = bucket_of(cloud, parts) else {
        return fail(
            StatusCode::FORBIDDEN,
            "AccessForbidden",
            "CORSResponse: Bucket not found",
        );
    };
    let headers: Vec<String> = text(&parts.headers, header::ACCESS_CONTROL_REQUEST_HEADERS)
        .map(|h| {
            h.split(',')
                .map(|h| h.trim().to_owned())
                .filter(|h| !h.is_empty())
                .collect()
        })
        .unwrap_or_default();
    let request = CorsRequest {
        origin: origin.clone(),
        method,
        headers: headers.clone(),
    };
    match cors::preflight(cloud, &bucket, &request).await {
        Ok(rule) => {
            let mut response = Response::new(Body::empty());
            let out = response.headers_mut();
            allow_headers(out, &rule, &origin);
            if !headers.is_empty()
                && let Ok(v) = HeaderValue::from_str(&headers.join(", "))
            {
                out.insert(header::ACCESS_CONTROL_ALLOW_HEADERS, v);
            }
            if let Some(age) = rule.max_age_seconds {
                out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
            }
            out.insert(
                header::VARY,
                HeaderValue::from_static(
                    "Origin, Access-Control-Request-Headers, Access-Control-Request-Method",
                ),
            );
            if let Ok(v) = HeaderValue::from_str(request_id) {
                out.insert("x-amz-request-id", v);
            }
            response
        }
        Err(e) => {
            let e = super::error::s3_error(e);
            let status = e.status_code().unwrap_or(StatusCode::FORBIDDEN);
            fail(status, e.code().as_str(), e.message().unwrap_or_default())
        }
    }
}

/// The headers every answer a rule allows carries: the origin (or `*`),
/// the methods and the exposed headers.
fn allow_headers(out: &mut HeaderMap, rule: &CorsRule, origin: &str) {
    let allowed_origin = if rule.any_origin() { "*" } else { origin };
    if let Ok(v) = HeaderValue::from_str(allowed_origin) {
        out.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, v);
    }
    if let Ok(v) = HeaderValue::from_str(&rule.allowed_methods.join(", ")) {
        out.insert(header::ACCESS_CONTROL_ALLOW_METHODS, v);
    }
    if !rule.expose_headers.is_empty()
        && let Ok(v) = HeaderValue::from_str(&rule.expose_headers.join(", "))
    {
        out.insert(header::ACCESS_CONTROL_EXPOSE_HEADERS, v);
    }
    if !rule.any_origin() {
        out.insert(
            header::ACCESS_CONTROL_ALLOW_CREDENTIALS,
            HeaderValue::from_static("true"),
        );
    }
}

/// What an actual request needs to find its rule on the way out.
pub(crate) struct Actual {
    bucket: String,
    origin: String,
    method: Method,
}

impl Actual {
    /// The CORS facts of a request carrying `Origin` to a bucket.
    pub(crate) fn of(cloud: &Cloud, parts: &http::request::Parts) -> Option<Self> {
        Some(Self {
            origin: text(&parts.headers, header::ORIGIN)?,
            bucket: bucket_of(cloud, parts)?,
            method: parts.method.clone(),
        })
    }

    /// Adds the matching rule's headers to `response`.
    pub(crate) async fn decorate(self, cloud: &Cloud, response: &mut Response) {
        match cors::matching(cloud, &self.bucket, &self.origin, self.method.as_str()).await {
            Ok(Some(rule)) => {
                let out = response.headers_mut();
                allow_headers(out, &rule, &self.origin);
                if let Some(age) = rule.max_age_seconds {
                    out.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
                }
                out.append(header::VARY, HeaderValue::from_static("Origin"));
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "reading CORS rules"),
        }
    }
}
