//! Serves any [`NodeAgent`] over HTTP+JSON. Callers present the node's
//! token as `Authorization: Bearer …`, compared in constant time.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use subtle::ConstantTimeEq;

use crate::{
    DesiredStateChange, DetachQuery, FirewallPolicy, InstanceSpec, NodeAgent, NodeError,
    ObservedSnapshot, ObservedVolume, Overlay, SnapshotSpec, VolumeAttachment, VolumeSpec,
};

#[derive(Clone)]
struct Served {
    agent: Arc<dyn NodeAgent>,
    token: Arc<str>,
}

impl NodeError {
    /// The HTTP status this error travels with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Conflict(_) | Self::InsufficientCapacity(_) => StatusCode::CONFLICT,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
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

/// The node API routes, serving `agent` to callers that present `token`.
pub fn router(agent: Arc<dyn NodeAgent>, token: &str) -> axum::Router {
    let served = Served {
        agent,
        token: Arc::from(token),
    };
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
            "/v1/instances/{id}/volumes/{volume}",
            put(attach_volume).delete(detach_volume),
        )
        .route(
            "/v1/snapshots/{id}",
            put(put_snapshot).delete(delete_snapshot),
        )
        .with_state(served)
}

fn authorize(served: &Served, headers: &HeaderMap) -> Result<(), NodeError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(presented.as_bytes().ct_eq(served.token.as_bytes())) {
        Ok(())
    } else {
        Err(NodeError::Unauthorized)
    }
}

type Answer<T> = Result<Json<T>, NodeError>;

async fn info(State(s): State<Served>, headers: HeaderMap) -> Answer<crate::NodeInfo> {
    authorize(&s, &headers)?;
    Ok(Json(s.agent.info().await?))
}

async fn capacity(State(s): State<Served>, headers: HeaderMap) -> Answer<crate::Capacity> {
    authorize(&s, &headers)?;
    Ok(Json(s.agent.capacity().await?))
}

async fn report(State(s): State<Served>, headers: HeaderMap) -> Answer<crate::NodeReport> {
    authorize(&s, &headers)?;
    Ok(Json(s.agent.report().await?))
}

async fn put_instance(
    State(s): State<Served>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(spec): Json<InstanceSpec>,
) -> Answer<crate::ObservedInstance> {
    authorize(&s, &headers)?;
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
    headers: HeaderMap,
    Json(change): Json<DesiredStateChange>,
) -> Answer<crate::ObservedInstance> {
    authorize(&s, &headers)?;
    Ok(Json(
        s.agent
            .set_desired_state(&id, change.desired, change.generation)
            .await?,
    ))
}

async fn reboot(
    State(s): State<Served>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, NodeError> {
    authorize(&s, &headers)?;
    s.agent.reboot(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn delete_instance(
    State(s): State<Served>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, NodeError> {
    authorize(&s, &headers)?;
    s.agent.delete_instance(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn put_firewall(
    State(s): State<Served>,
    headers: HeaderMap,
    Json(policy): Json<FirewallPolicy>,
) -> Answer<u64> {
    authorize(&s, &headers)?;
    Ok(Json(s.agent.put_firewall(policy).await?))
}

async fn put_overlay(
    State(s): State<Served>,
    headers: HeaderMap,
    Json(overlay): Json<Overlay>,
) -> Answer<u64> {
    authorize(&s, &headers)?;
    Ok(Json(s.agent.put_overlay(overlay).await?))
}

async fn console(
    State(s): State<Served>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Answer<crate::ConsoleOutput> {
    authorize(&s, &headers)?;
    Ok(Json(s.agent.console_output(&id).await?))
}

async fn put_volume(
    State(s): State<Served>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(spec): Json<VolumeSpec>,
) -> Answer<ObservedVolume> {
    authorize(&s, &headers)?;
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
    headers: HeaderMap,
) -> Result<StatusCode, NodeError> {
    authorize(&s, &headers)?;
    s.agent.delete_volume(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn attach_volume(
    State(s): State<Served>,
    Path((id, volume)): Path<(String, String)>,
    headers: HeaderMap,
    Json(attachment): Json<VolumeAttachment>,
) -> Answer<ObservedVolume> {
    authorize(&s, &headers)?;
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
    headers: HeaderMap,
) -> Answer<ObservedVolume> {
    authorize(&s, &headers)?;
    Ok(Json(
        s.agent.detach_volume(&id, &volume, query.force).await?,
    ))
}

async fn put_snapshot(
    State(s): State<Served>,
    Path(id): Path<String>,
    headers: HeaderMap,
    Json(spec): Json<SnapshotSpec>,
) -> Answer<ObservedSnapshot> {
    authorize(&s, &headers)?;
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
    headers: HeaderMap,
) -> Result<StatusCode, NodeError> {
    authorize(&s, &headers)?;
    s.agent.delete_snapshot(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}
