//! The web console at `/console/`: a small single-page application whose
//! files are compiled into the binary, and the one endpoint it needs that
//! is not an AWS API, password sign-in ([`signin`]).
//!
//! Every other thing the console does is a SigV4-signed EC2, S3, IAM or
//! metal request that the browser makes to this same listener, so the
//! console goes through the same authentication, authorisation and domain
//! calls as any other client and cannot do what the caller's policies do
//! not allow. Why it is built this way: `docs/architecture.md`.
//!
//! Only unsigned requests reach the console: a signed request for
//! `/console/…` is S3's (a bucket named `console`).

mod signin;

use axum::body::Body;
use axum::response::Response;
use http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use mallee_cloud::Cloud;
use sha2::{Digest, Sha256};

/// Where the console lives.
pub const PREFIX: &str = "/console";

/// What the browser may load and where it may connect: only this origin,
/// and no inline script or style, so injected markup cannot run.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'";

/// One embedded file.
struct Asset {
    path: &'static str,
    content_type: &'static str,
    body: &'static [u8],
}

macro_rules! asset {
    ($path:literal, $type:expr) => {
        Asset {
            path: $path,
            content_type: $type,
            body: include_bytes!(concat!("assets/", $path)),
        }
    };
}

const JS: &str = "text/javascript; charset=utf-8";

/// Every file of the console.
static ASSETS: &[Asset] = &[
    asset!("index.html", "text/html; charset=utf-8"),
    asset!("console.css", "text/css; charset=utf-8"),
    asset!("favicon.svg", "image/svg+xml"),
    asset!("js/main.js", JS),
    asset!("js/sigv4.js", JS),
    asset!("js/api.js", JS),
    asset!("js/ui.js", JS),
    asset!("js/dashboard.js", JS),
    asset!("js/instances.js", JS),
    asset!("js/compute.js", JS),
    asset!("js/network.js", JS),
    asset!("js/volumes.js", JS),
    asset!("js/buckets.js", JS),
    asset!("js/admin.js", JS),
];

/// Whether an unsigned request is for the console.
pub fn is_console_path(path: &str) -> bool {
    path == PREFIX || path.starts_with("/console/")
}

/// Answers a console request: a file, the sign-in endpoint or the
/// console's configuration.
pub async fn serve(
    cloud: &Cloud,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: Body,
    request_id: &str,
) -> Response {
    let rest = path.strip_prefix(PREFIX).unwrap_or_default();
    match (method, rest) {
        (&Method::GET | &Method::HEAD, "") => redirect(),
        (&Method::POST, "/signin") => signin::handle(cloud, headers, body, request_id).await,
        (&Method::GET, "/config.json") => json(
            StatusCode::OK,
            serde_json::json!({ "region": cloud.config.region }),
        ),
        (&Method::GET | &Method::HEAD, file) => {
            let file = file.trim_start_matches('/');
            // Every page of the single-page app is index.html.
            let file = if file.is_empty() { "index.html" } else { file };
            match ASSETS.iter().find(|a| a.path == file) {
                Some(asset) => asset_response(asset, headers, method == Method::HEAD),
                None => plain(StatusCode::NOT_FOUND, "no such console file\n"),
            }
        }
        _ => plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n"),
    }
}

fn secure(response: &mut Response) {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
}

fn redirect() -> Response {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = StatusCode::MOVED_PERMANENTLY;
    r.headers_mut()
        .insert(header::LOCATION, HeaderValue::from_static("/console/"));
    r
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    let mut r = Response::new(Body::from(text));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    secure(&mut r);
    r
}

pub(crate) fn json(status: StatusCode, value: serde_json::Value) -> Response {
    let mut r = Response::new(Body::from(value.to_string()));
    *r.status_mut() = status;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    // Credentials and settings are never kept by a cache.
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    secure(&mut r);
    r
}

/// The file with a strong ETag (its SHA-256), revalidated on every use:
/// the files have fixed names, so a cached copy must never outlive an
/// upgrade of the binary, and a revalidation costs a 304 only.
fn asset_response(asset: &Asset, headers: &HeaderMap, head: bool) -> Response {
    let etag = format!("\"{}\"", hex::encode(&Sha256::digest(asset.body)[..16]));
    let unchanged = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag));
    let mut r = if unchanged {
        let mut r = Response::new(Body::empty());
        *r.status_mut() = StatusCode::NOT_MODIFIED;
        r
    } else if head {
        Response::new(Body::empty())
    } else {
        Response::new(Body::from(asset.body))
    };
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(asset.content_type),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    secure(&mut r);
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_file_has_a_type_and_a_body() {
        for a in ASSETS {
            assert!(!a.body.is_empty(), "{} is empty", a.path);
            assert!(!a.content_type.is_empty());
        }
    }

    #[test]
    fn no_inline_script_or_handler_in_the_page() {
        // The CSP forbids them; the page would silently not work.
        let index = ASSETS
            .iter()
            .find(|a| a.path == "index.html")
            .expect("index.html");
        let text = std::str::from_utf8(index.body).expect("UTF-8");
        for line in text.lines().filter(|l| l.contains("<script")) {
            assert!(line.contains("src="), "inline script: {line}");
        }
        assert!(!text.contains(" onclick="));
        assert!(!text.contains("style="));
    }

    #[test]
    fn files_revalidate_by_etag() {
        let a = &ASSETS[0];
        let first = asset_response(a, &HeaderMap::new(), false);
        assert_eq!(first.status(), StatusCode::OK);
        let etag = first.headers()[header::ETAG].clone();
        assert!(
            first.headers()[header::CONTENT_SECURITY_POLICY]
                .to_str()
                .expect("ASCII")
                .contains("script-src 'self'")
        );
        let mut h = HeaderMap::new();
        h.insert(header::IF_NONE_MATCH, etag);
        assert_eq!(
            asset_response(a, &h, false).status(),
            StatusCode::NOT_MODIFIED
        );
    }

    #[test]
    fn only_the_console_prefix_is_the_console() {
        assert!(is_console_path("/console"));
        assert!(is_console_path("/console/js/main.js"));
        assert!(!is_console_path("/consoles/key"));
        assert!(!is_console_path("/bucket/console"));
    }
}
