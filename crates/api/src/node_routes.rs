//! The routes node agents call on the controller, served on the node
//! listener (mutual TLS, [`mallee_node_api::tls`]): enrolment, the one
//! route open to a client without a certificate; registration (and
//! heartbeats), instance state pushes, the bytes of objects nodes boot from (images), and
//! snapshot data up and down, for nodes whose certificate the cluster CA
//! issued and has not revoked. The handshake checks the certificate; each
//! request checks the revocation set again (a connection may outlive a
//! removal) and the node API version. Handlers call the domain and stream
//! data; none holds an object or a snapshot in memory.

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{ConnectInfo, Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use mallee_blobs::BlobStore;
use mallee_cloud::Cloud;
use mallee_cloud::enrolment::EnrolmentError;
use mallee_cloud::nodes::RegisterError;
use mallee_cloud::snapshots::StoreDataError;
use mallee_node_api::enrol::{ENROL_PATH, EnrolRequest};
use mallee_node_api::tls::PeerCertificate;
use mallee_node_api::version::{self, Role, VERSION_HEADER};
use mallee_node_api::{
    ApiAddress, DiskFormat, FORMAT_HEADER, INSTANCE_CREDENTIALS_PATH_PREFIX, InstanceCredentials,
    NodeRegistration, OBJECTS_PATH_PREFIX, REGISTER_PATH, RegistrationAccepted, SHA256_HEADER,
    SNAPSHOTS_PATH_PREFIX, STATE_PATH, SnapshotUploaded, StateAccepted, StateReport,
};
use mallee_pki::{CertInfo, PeerKind};
use mallee_store::Segment;

#[derive(Clone)]
struct NodeRoutes {
    cloud: Arc<Cloud>,
    blobs: Arc<BlobStore>,
}

/// Routes nodes call: `POST` [`ENROL_PATH`] (no certificate needed), and
/// for enrolled nodes `POST` [`REGISTER_PATH`] and [`STATE_PATH`], `GET`
/// [`OBJECTS_PATH_PREFIX`]`{bucket}/{key}` and `PUT`/`GET`
/// [`SNAPSHOTS_PATH_PREFIX`]`{snapshot}`. Serve it with
/// [`mallee_node_api::tls::serve`] on a listener with the controller's
/// node listener configuration.
pub fn router(cloud: Arc<Cloud>, blobs: Arc<BlobStore>) -> Router {
    let routes = NodeRoutes { cloud, blobs };
    let objects = format!("{OBJECTS_PATH_PREFIX}{{bucket}}/{{*key}}");
    let snapshots = format!("{SNAPSHOTS_PATH_PREFIX}{{snapshot}}");
    let credentials = format!("{INSTANCE_CREDENTIALS_PATH_PREFIX}{{instance}}");
    let enrolled = Router::new()
        .route(REGISTER_PATH, post(register))
        .route(STATE_PATH, post(state))
        .route(&objects, get(object))
        .route(&snapshots, put(upload_snapshot).get(download_snapshot))
        .route(&credentials, get(instance_credentials))
        .route_layer(middleware::from_fn_with_state(routes.clone(), require_node));
    Router::new()
        .route(ENROL_PATH, post(enrol))
        .merge(enrolled)
        .layer(middleware::from_fn(require_version))
        .with_state(routes)
}

fn plain(status: StatusCode, text: impl Into<String>) -> Response {
    (status, text.into()).into_response()
}

/// The node a request comes from (what its certificate says).
#[derive(Debug, Clone)]
struct NodePeer(CertInfo);

/// Admits requests from a node whose certificate is not revoked (the
/// handshake checked it; the connection may have outlived a removal).
async fn require_node(
    State(routes): State<NodeRoutes>,
    mut request: Request,
    next: Next,
) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<PeerCertificate>>()
        .and_then(|ConnectInfo(PeerCertificate(peer))| peer.clone());
    let Some(peer) = peer else {
        return plain(
            StatusCode::UNAUTHORIZED,
            "a node certificate of this cluster is required (enrol first: mallee node join)",
        );
    };
    if peer.name.kind() != PeerKind::Node {
        return plain(StatusCode::FORBIDDEN, "only nodes call these routes");
    }
    let trust = routes.cloud.compute.nodes.pki().trust();
    if let Err(e) = trust.check_revoked(&peer) {
        // Closing the connection sends the node's next call through a new
        // handshake, which its certificate no longer passes.
        let mut refused = plain(StatusCode::FORBIDDEN, e.to_string());
        refused
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        return refused;
    }
    request.extensions_mut().insert(NodePeer(peer));
    next.run(request).await
}

/// Refuses nodes whose node API version this controller cannot work with.
async fn require_version(request: Request, next: Next) -> Response {
    let presented = request
        .headers()
        .get(VERSION_HEADER)
        .and_then(|v| v.to_str().ok());
    match version::check_caller(Role::Controller, presented) {
        Ok(()) => next.run(request).await,
        Err(e) => plain(StatusCode::PRECONDITION_FAILED, e.to_string()),
    }
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

/// A node without a certificate exchanges its token for one.
async fn enrol(State(routes): State<NodeRoutes>, Json(request): Json<EnrolRequest>) -> Response {
    match mallee_cloud::enrolment::enrol(&routes.cloud, &request).await {
        Ok(answer) => Json(answer).into_response(),
        Err(
            e @ (EnrolmentError::NotRecognised | EnrolmentError::Used | EnrolmentError::Expired),
        ) => plain(StatusCode::FORBIDDEN, e.to_string()),
        Err(
            e @ (EnrolmentError::WrongZone { .. }
            | EnrolmentError::UnknownZone(_)
            | EnrolmentError::BadRequest(_)),
        ) => plain(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ EnrolmentError::NodeEnrolled(_)) => plain(StatusCode::CONFLICT, e.to_string()),
        Err(e @ EnrolmentError::Incompatible(_)) => {
            plain(StatusCode::PRECONDITION_FAILED, e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, node = %request.node_id, "enrolment failed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not enrol the node",
            )
        }
    }
}

async fn register(
    State(routes): State<NodeRoutes>,
    Extension(NodePeer(peer)): Extension<NodePeer>,
    Json(registration): Json<NodeRegistration>,
) -> Response {
    match mallee_cloud::nodes::register(&routes.cloud, &registration, &peer).await {
        Ok(node) => {
            let listen = routes.cloud.config.listen;
            Json(RegistrationAccepted {
                registered: node.node_id,
                api: Some(ApiAddress {
                    host: (!listen.ip().is_unspecified()).then(|| listen.ip().to_string()),
                    port: listen.port(),
                }),
            })
            .into_response()
        }
        Err(e @ RegisterError::UnknownZone(_)) => plain(StatusCode::BAD_REQUEST, e.to_string()),
        Err(e @ (RegisterError::NotThisNode { .. } | RegisterError::NotEnrolled { .. })) => {
            tracing::warn!(error = %e, "node registration refused");
            plain(StatusCode::FORBIDDEN, e.to_string())
        }
        Err(e @ RegisterError::Incompatible(_)) => {
            tracing::warn!(error = %e, node = %registration.info.node_id, "node registration refused");
            plain(StatusCode::PRECONDITION_FAILED, e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, node = %registration.info.node_id, "could not record node registration");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not record the node",
            )
        }
    }
}

/// A node pushes instance state changes (see `mallee_cloud::node_state`).
async fn state(
    State(routes): State<NodeRoutes>,
    Extension(NodePeer(peer)): Extension<NodePeer>,
    Json(report): Json<StateReport>,
) -> Response {
    use mallee_cloud::node_state::{StateError, observe};
    let Some(node_id) = peer.name.node_id() else {
        return plain(StatusCode::FORBIDDEN, "only nodes call these routes");
    };
    match observe(&routes.cloud, node_id, &report).await {
        Ok(applied) => Json(StateAccepted { applied }).into_response(),
        Err(e @ StateError::NotThisNode { .. }) => {
            tracing::warn!(error = %e, "state push refused");
            plain(StatusCode::FORBIDDEN, e.to_string())
        }
        Err(e) => {
            tracing::error!(error = %e, node = %node_id, "could not record a state push");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not record the state",
            )
        }
    }
}

/// The role credentials of an instance the calling node runs, for its
/// metadata service.
async fn instance_credentials(
    State(routes): State<NodeRoutes>,
    Extension(NodePeer(peer)): Extension<NodePeer>,
    Path(instance): Path<String>,
) -> Response {
    use mallee_cloud::iam_profiles::{CredentialsError, instance_credentials};
    let Some(node_id) = peer.name.node_id() else {
        return plain(StatusCode::FORBIDDEN, "only nodes call these routes");
    };
    match instance_credentials(&routes.cloud, node_id, &instance).await {
        Ok((role_name, c)) => Json(InstanceCredentials {
            role_name,
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key,
            token: c.session_token,
            expires_at: c.expires_at,
            issued_at: mallee_cloud::ids::now_millis(),
        })
        .into_response(),
        Err(e @ CredentialsError::NotOnNode(_)) => {
            tracing::warn!(error = %e, node = node_id, "instance credentials refused");
            plain(StatusCode::FORBIDDEN, e.to_string())
        }
        Err(e @ CredentialsError::NoRole(_)) => plain(StatusCode::NOT_FOUND, e.to_string()),
        Err(e @ CredentialsError::Failed(_)) => {
            tracing::error!(error = %e, instance, "instance credentials failed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not issue credentials",
            )
        }
    }
}

async fn object(
    State(routes): State<NodeRoutes>,
    Path((bucket, key)): Path<(String, String)>,
) -> Response {
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
    Path(snapshot_id): Path<String>,
) -> Response {
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
