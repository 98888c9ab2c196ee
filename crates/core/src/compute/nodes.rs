//! The controller's side of the node protocol: the registry of node agents
//! (clients built from the addresses in the store, so a restarted
//! controller reaches its nodes before they re-register), and the two HTTP
//! routes nodes call on the controller: registration and image bytes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use mallee_blobs::BlobStore;
use mallee_node_api::{
    HttpNodeClient, NodeRegistration, OBJECTS_PATH_PREFIX, REGISTER_PATH, SNAPSHOTS_PATH_PREFIX,
};
use mallee_store::Node;
use subtle::ConstantTimeEq;

use crate::Cloud;
use crate::ids::now_millis;

/// Clients for every known node, by node id.
#[derive(Debug)]
pub struct NodeRegistry {
    token: String,
    clients: RwLock<HashMap<String, (String, Arc<HttpNodeClient>)>>,
}

impl NodeRegistry {
    /// A registry whose clients present `token` (the cluster token nodes
    /// also present to the controller).
    pub fn new(token: String) -> Self {
        Self {
            token,
            clients: RwLock::new(HashMap::new()),
        }
    }

    /// Whether `presented` is the cluster token (constant time).
    pub fn token_matches(&self, presented: &str) -> bool {
        presented.as_bytes().ct_eq(self.token.as_bytes()).into()
    }

    /// The client for `node`, created (or replaced when its address
    /// changed) on demand.
    pub fn client(&self, node: &Node) -> Arc<HttpNodeClient> {
        if let Some((address, client)) = self
            .clients
            .read()
            .expect("node registry lock poisoned")
            .get(&node.node_id)
            && *address == node.address
        {
            return client.clone();
        }
        let client = Arc::new(HttpNodeClient::new(&node.address, &self.token));
        self.clients
            .write()
            .expect("node registry lock poisoned")
            .insert(node.node_id.clone(), (node.address.clone(), client.clone()));
        client
    }
}

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

fn plain(status: StatusCode, text: &str) -> Response {
    (status, text.to_owned()).into_response()
}

fn to_i64(v: impl TryInto<i64>) -> i64 {
    v.try_into().unwrap_or(i64::MAX)
}

async fn register(
    State(routes): State<NodeRoutes>,
    headers: HeaderMap,
    Json(registration): Json<NodeRegistration>,
) -> Response {
    if !authorized(&routes, &headers) {
        return plain(StatusCode::UNAUTHORIZED, "bad node token");
    }
    let info = &registration.info;
    if !routes.cloud.config.zones.contains(&info.zone) {
        return plain(
            StatusCode::BAD_REQUEST,
            &format!("zone {} is not a zone of this cloud", info.zone),
        );
    }
    let capacity = registration.capacity;
    let node = Node {
        node_id: info.node_id.clone(),
        zone: info.zone.clone(),
        address: registration.url.clone(),
        cores_max: to_i64(capacity.cores_max),
        cores_free: to_i64(capacity.cores_free),
        memory_mib_max: to_i64(capacity.memory_mib_max),
        memory_mib_free: to_i64(capacity.memory_mib_free),
        disk_gib_max: to_i64(capacity.disk_gib_max),
        disk_gib_free: to_i64(capacity.disk_gib_free),
        updated_at: now_millis(),
    };
    if let Err(e) = routes.cloud.store.upsert_node(&node).await {
        tracing::error!(error = %e, node = %node.node_id, "could not record node registration");
        return plain(
            StatusCode::INTERNAL_SERVER_ERROR,
            "could not record the node",
        );
    }
    routes.cloud.compute.nodes.client(&node);
    tracing::info!(
        node = %node.node_id,
        zone = %node.zone,
        url = %node.address,
        accel = %info.accel,
        cores = capacity.cores_max,
        memory_mib = capacity.memory_mib_max,
        "node registered"
    );
    routes.cloud.compute.wake();
    Json(serde_json::json!({ "registered": node.node_id })).into_response()
}

async fn object(
    State(routes): State<NodeRoutes>,
    headers: HeaderMap,
    Path((bucket, key)): Path<(String, String)>,
) -> Response {
    if !authorized(&routes, &headers) {
        return plain(StatusCode::UNAUTHORIZED, "bad node token");
    }
    let object = match routes.cloud.store.object(&bucket, &key).await {
        Ok(Some(object)) => object,
        Ok(None) => return plain(StatusCode::NOT_FOUND, "no such object"),
        Err(e) => {
            tracing::error!(error = %e, bucket, key, "object lookup for a node failed");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "object lookup failed");
        }
    };
    let segments: Vec<(String, u64)> = object
        .segments
        .iter()
        .map(|s| (s.blob_id.clone(), s.size))
        .collect();
    let reader = match routes.blobs.open_object(&segments, None).await {
        Ok(reader) => reader,
        Err(e) => {
            tracing::error!(error = %e, bucket, key, "object data for a node unreadable");
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "object data unreadable");
        }
    };
    let mut response = Response::new(Body::from_stream(reader.into_stream()));
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(object.size));
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    if let Ok(etag) = HeaderValue::from_str(&format!("\"{}\"", object.etag)) {
        h.insert(header::ETAG, etag);
    }
    response
}

async fn upload_snapshot(
    State(routes): State<NodeRoutes>,
    headers: HeaderMap,
    Path(snapshot_id): Path<String>,
    body: Body,
) -> Response {
    if !authorized(&routes, &headers) {
        return plain(StatusCode::UNAUTHORIZED, "bad node token");
    }
    super::snapshots::upload(&routes.cloud, &routes.blobs, &snapshot_id, &headers, body).await
}

async fn download_snapshot(
    State(routes): State<NodeRoutes>,
    headers: HeaderMap,
    Path(snapshot_id): Path<String>,
) -> Response {
    if !authorized(&routes, &headers) {
        return plain(StatusCode::UNAUTHORIZED, "bad node token");
    }
    super::snapshots::download(&routes.cloud, &routes.blobs, &snapshot_id).await
}
