//! The HTTP routes node agents call on the controller: registration, the
//! bytes of objects they boot from (images), and snapshot data up and down.
//! Each checks the cluster token, calls the domain and streams data; none
//! holds an object or a snapshot in memory.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use mallee_blobs::BlobStore;
use mallee_cloud::Cloud;
use mallee_cloud::nodes::RegisterError;
use mallee_cloud::snapshots::StoreDataError;
use mallee_node_api::{
    DiskFormat, FORMAT_HEADER, NodeRegistration, OBJECTS_PATH_PREFIX, REGISTER_PATH, SHA256_HEADER,
    SNAPSHOTS_PATH_PREFIX, SnapshotUploaded,
};
use mallee_store::Segment;

#[derive(Clone)]
struct NodeRoutes {
    cloud: Arc<Cloud>,
    blobs: Arc<BlobStore>,
}

/// Routes nodes call: `POST` [`REGISTER_PATH`], `GET`
/// [`OBJECTS_PATH_PREFIX`]`{bucket}/{key}` and `PUT`/`GET`
/// [`SNAPSHOTS_PATH_PREFIX`]`{snapshot}`.
pub fn router(cloud: Arc<Cloud>, blobs: Arc<BlobStore>) -> Router {
    let objects = format!("{OBJECTS_PATH_PREFIX}{{bucket}}/{{*key}}");
    let snapshots = format!("{SNAPSHOTS_PATH_PREFIX}{{snapshot}}");
    Router::new()
        .route(REGISTER_PATH, post(register))
        .route(&objects, get(object))
        .route(&snapshots, put(upload_snapshot).get(download_snapshot))
        .with_state(NodeRoutes { cloud, blobs })
}

fn authorized(routes: &NodeRoutes, headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|t| routes.cloud.compute.nodes.token_matches(t))
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response {
    (status, text.into()).into_response()
}

fn unauthorized() -> Response {
    plain(StatusCode::UNAUTHORIZED, "bad node token")
}

/// Streams the blobs of `segments` (`size` bytes in all) as an
/// `application/octet-stream` body with `headers` added.
async fn stream_segments(
    blobs: &BlobStore,
    segments: &[Segment],
    size: u64,
    headers: &[(&str, &str)],
    what: &str,
) -> Response {
    let segments: Vec<(String, u64)> = segments
        .iter()
        .map(|s| (s.blob_id.clone(), s.size))
        .collect();
    let reader = match blobs.open_object(&segments, None).await {
        Ok(reader) => reader,
        Err(e) => {
            tracing::error!(error = %e, what, "data for a node unreadable");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "data unreadable");
        }
    };
    let mut response = Response::new(Body::from_stream(reader.into_stream()));
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(size));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    for (name, value) in headers {
        if let (Ok(name), Ok(value)) = (
            header::HeaderName::try_from(*name),
            HeaderValue::from_str(value),
        ) {
            h.insert(name, value);
        }
    }
    response
}

async fn register(
    State(routes): State<NodeRoutes>,
    headers: HeaderMap,
    Json(registration): Json<NodeRegistration>,
) -> Response {
    if !authorized(&routes, &headers) {
        return unauthorized();
    }
    match mallee_cloud::nodes::register(&routes.cloud, &registration).await {
        Ok(node) => Json(serde_json::json!({ "registered": node.node_id })).into_response(),
        Err(e @ RegisterError::UnknownZone(_)) => plain(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => {
            tracing::error!(error = %e, node = %registration.info.node_id, "could not record node registration");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not record the node",
            )
        }
    }
}

async fn object(
    State(routes): State<NodeRoutes>,
    headers: HeaderMap,
    Path((bucket, key)): Path<(String, String)>,
) -> Response {
    if !authorized(&routes, &headers) {
        return unauthorized();
    }
    let object = match routes.cloud.store.object(&bucket, &key).await {
        Ok(Some(object)) => object,
        Ok(None) => return plain(StatusCode::NOT_FOUND, "no such object"),
        Err(e) => {
            tracing::error!(error = %e, bucket, key, "object lookup for a node failed");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "object lookup failed");
        }
    };
    let etag = format!("\"{}\"", object.etag);
    stream_segments(
        &routes.blobs,
        &object.segments,
        object.size,
        &[(header::ETAG.as_str(), &etag)],
        &format!("object {bucket}/{key}"),
    )
    .await
}

/// A node uploads the data of a snapshot it captured.
async fn upload_snapshot(
    State(routes): State<NodeRoutes>,
    headers: HeaderMap,
    Path(snapshot_id): Path<String>,
    body: Body,
) -> Response {
    if !authorized(&routes, &headers) {
        return unauthorized();
    }
    let header_text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(sha256) = header_text(SHA256_HEADER).map(str::to_owned) else {
        return plain(
            StatusCode::BAD_REQUEST,
            format!("{SHA256_HEADER} is required"),
        );
    };
    let format = match header_text(FORMAT_HEADER).map(DiskFormat::parse) {
        Some(Some(format)) => format,
        _ => {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("{FORMAT_HEADER} must be raw or qcow2"),
            );
        }
    };
    let size = header_text(header::CONTENT_LENGTH.as_str()).and_then(|v| v.parse::<u64>().ok());
    let stored = mallee_cloud::snapshots::store_data(
        &routes.cloud,
        &routes.blobs,
        &snapshot_id,
        body.into_data_stream(),
        size,
        Some(&sha256),
        format,
    )
    .await;
    match stored {
        Ok(data) => Json(SnapshotUploaded {
            snapshot_id,
            size: data.size,
            sha256: data.sha256,
        })
        .into_response(),
        Err(e @ StoreDataError::Gone(_)) => plain(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ StoreDataError::Different(_)) => plain(StatusCode::CONFLICT, e.to_string()),
        Err(e @ StoreDataError::BadData(_)) => plain(StatusCode::BAD_REQUEST, e.to_string()),
        Err(
            e @ StoreDataError::Blob(
                mallee_blobs::BlobError::TooLarge { .. }
                | mallee_blobs::BlobError::SizeMismatch { .. },
            ),
        ) => plain(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e) => {
            tracing::warn!(snapshot = %snapshot_id, error = %e, "snapshot upload failed");
            plain(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
    }
}

/// A node reads a snapshot's data to create a volume from it.
async fn download_snapshot(
    State(routes): State<NodeRoutes>,
    headers: HeaderMap,
    Path(snapshot_id): Path<String>,
) -> Response {
    if !authorized(&routes, &headers) {
        return unauthorized();
    }
    let data = match routes.cloud.store.snapshot(&snapshot_id).await {
        Ok(Some(record)) => match record.data {
            Some(data) => data,
            None => return plain(StatusCode::NOT_FOUND, "no such snapshot data"),
        },
        Ok(None) => return plain(StatusCode::NOT_FOUND, "no such snapshot data"),
        Err(e) => {
            tracing::error!(error = %e, snapshot = %snapshot_id, "snapshot lookup for a node failed");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "lookup failed");
        }
    };
    stream_segments(
        &routes.blobs,
        &data.segments,
        data.size,
        &[(SHA256_HEADER, &data.sha256), (FORMAT_HEADER, &data.format)],
        &format!("snapshot {snapshot_id}"),
    )
    .await
}
