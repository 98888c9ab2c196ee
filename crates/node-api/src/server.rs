//! Serves any [`NodeAgent`] over HTTP+JSON. Who may call is settled by
//! the TLS handshake ([`crate::tls`]: only the controller's certificate
//! gets through); each request must also carry a compatible API
//! [`crate::version`].

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};

use crate::{
    DesiredStateChange, DetachQuery, ExportSpec, FirewallPolicy, InstanceSpec, NodeAgent,
    NodeError, ObservedExport, ObservedSnapshot, ObservedVolume, Overlay, SnapshotSpec,
    VolumeAttachment, VolumeSpec,
};

#[derive(Clone)]
struct Served {
    agent: Arc<dyn NodeAgent>,
}

impl NodeError {
    /// The HTTP status this error travels with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) | Self::InsufficientCapacity(_) => StatusCode::CONFLICT,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Incompatible(_) => StatusCode::PRECONDITION_FAILED,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Transport(_) => StatusCode::BAD_GATEWAY,
        }
    }
}

impl IntoResponse for NodeError {
    fn into_response(self) -> Response {
        (self.status(), Json(self)).into_response()
    }
}

/// The node API routes, serving `agent` (behind a [`crate::tls`]
/// listener that admits the controller only).
pub fn router(agent: Arc<dyn NodeAgent>) -> axum::Router {
    let served = Served { agent };
    axum::Router::new()
        .route("/v1/node", get(info))
        .route("/v1/capacity", get(capacity))
        .route("/v1/report", get(report))
        .route(
            "/v1/instances/{id}",
            put(put_instance).delete(delete_instance),
        )
        .route("/v1/instances/{id}/desired-state", put(set_desired_state))
        .route("/v1/instances/{id}/reboot", post(reboot))
        .route("/v1/instances/{id}/console", get(console))
        .route("/v1/firewall", put(put_firewall))
        .route("/v1/overlay", put(put_overlay))
        .route("/v1/volumes/{id}", put(put_volume).delete(delete_volume))
        .route(
            "/v1/volumes/{id}/export",
            put(export_volume).delete(unexport_volume),
        )
        .route(
            "/v1/instances/{id}/volumes/{volume}",
            put(attach_volume).delete(detach_volume),
        )
        .route(
            "/v1/snapshots/{id}",
            put(put_snapshot).delete(delete_snapshot),
        )
        .with_state(served)
        .layer(axum::middleware::from_fn(
            crate::version::require_compatible_controller,
        ))
}

type Answer<T> = Result<Json<T>, NodeError>;

async fn info(State(s): State<Served>) -> Answer<crate::NodeInfo> {
    Ok(Json(s.agent.info().await?))
}

async fn capacity(State(s): State<Served>) -> Answer<crate::Capacity> {
    Ok(Json(s.agent.capacity().await?))
}

async fn report(State(s): State<Served>) -> Answer<crate::NodeReport> {
    Ok(Json(s.agent.report().await?))
}

async fn put_instance(
    State(s): State<Served>,
    Path(id): Path<String>,
    Json(spec): Json<InstanceSpec>,
) -> Answer<crate::ObservedInstance> {
    if spec.instance_id != id {
        return Err(NodeError::BadRequest(format!(
            "path names {id}, body names {}",
            spec.instance_id
        )));
    }
    Ok(Json(s.agent.put_instance(spec).await?))
}

async fn set_desired_state(
    State(s): State<Served>,
    Path(id): Path<String>,
    Json(change): Json<DesiredStateChange>,
) -> Answer<crate::ObservedInstance> {
    Ok(Json(
        s.agent
            .set_desired_state(&id, change.desired, change.generation)
            .await?,
    ))
}

async fn reboot(State(s): State<Served>, Path(id): Path<String>) -> Result<StatusCode, NodeError> {
    s.agent.reboot(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_instance(
    State(s): State<Served>,
    Path(id): Path<String>,
) -> Result<StatusCode, NodeError> {
    s.agent.delete_instance(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_firewall(State(s): State<Served>, Json(policy): Json<FirewallPolicy>) -> Answer<u64> {
    Ok(Json(s.agent.put_firewall(policy).await?))
}

async fn put_overlay(State(s): State<Served>, Json(overlay): Json<Overlay>) -> Answer<u64> {
    Ok(Json(s.agent.put_overlay(overlay).await?))
}

async fn console(State(s): State<Served>, Path(id): Path<String>) -> Answer<crate::ConsoleOutput> {
    Ok(Json(s.agent.console_output(&id).await?))
}

async fn put_volume(
    State(s): State<Served>,
    Path(id): Path<String>,
    Json(spec): Json<VolumeSpec>,
) -> Answer<ObservedVolume> {
    if spec.volume_id != id {
        return Err(NodeError::BadRequest(format!(
            "path names {id}, body names {}",
            spec.volume_id
        )));
    }
    Ok(Json(s.agent.put_volume(spec).await?))
}

async fn delete_volume(
    State(s): State<Served>,
    Path(id): Path<String>,
) -> Result<StatusCode, NodeError> {
    s.agent.delete_volume(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn export_volume(
    State(s): State<Served>,
    Path(id): Path<String>,
    Json(spec): Json<ExportSpec>,
) -> Answer<ObservedExport> {
    if spec.volume_id != id {
        return Err(NodeError::BadRequest(format!(
            "path names {id}, body names {}",
            spec.volume_id
        )));
    }
    Ok(Json(s.agent.export_volume(spec).await?))
}

async fn unexport_volume(
    State(s): State<Served>,
    Path(id): Path<String>,
) -> Result<StatusCode, NodeError> {
    s.agent.unexport_volume(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn attach_volume(
    State(s): State<Served>,
    Path((id, volume)): Path<(String, String)>,
    Json(attachment): Json<VolumeAttachment>,
) -> Answer<ObservedVolume> {
    if attachment.volume_id != volume {
        return Err(NodeError::BadRequest(format!(
            "path names {volume}, body names {}",
            attachment.volume_id
        )));
    }
    Ok(Json(s.agent.attach_volume(&id, attachment).await?))
}

async fn detach_volume(
    State(s): State<Served>,
    Path((id, volume)): Path<(String, String)>,
    Query(query): Query<DetachQuery>,
) -> Answer<ObservedVolume> {
    Ok(Json(
        s.agent.detach_volume(&id, &volume, query.force).await?,
    ))
}

async fn put_snapshot(
    State(s): State<Served>,
    Path(id): Path<String>,
    Json(spec): Json<SnapshotSpec>,
) -> Answer<ObservedSnapshot> {
    if spec.snapshot_id != id {
        return Err(NodeError::BadRequest(format!(
            "path names {id}, body names {}",
            spec.snapshot_id
        )));
    }
    Ok(Json(s.agent.put_snapshot(spec).await?))
}

async fn delete_snapshot(
    State(s): State<Served>,
    Path(id): Path<String>,
) -> Result<StatusCode, NodeError> {
    s.agent.delete_snapshot(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
