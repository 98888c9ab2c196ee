//! Node calls about one volume (create, attach, detach, delete), each in
//! its own task and one at a time per volume, and what a refused call
//! leaves recorded.

use std::sync::Arc;
use std::time::Duration;

use mallee_node_api::{ExportSpec, NodeError, VolumeAttachment, VolumeSpec};
use mallee_store::Node;

use super::model::{Modification, Volume, VolumeDesired, VolumeStatus};
use crate::Cloud;
use crate::ids::now_millis;

/// How long a node gets for a volume call (a detach waits for the guest to
/// release the disk).
const CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A call to a node about one volume.
#[derive(Debug)]
pub(super) enum Call {
    Create(VolumeSpec),
    Attach {
        instance_id: String,
        attachment: VolumeAttachment,
    },
    Detach {
        volume_id: String,
        instance_id: String,
        force: bool,
    },
    Delete(String),
    /// Storage host: export the volume to one node.
    Export(ExportSpec),
    /// Storage host: end the volume's export.
    Unexport(String),
    /// Compute node: record where the volume's export is.
    Record(VolumeSpec),
    /// Compute node: forget the volume's remote record.
    Release(String),
}

impl Call {
    fn volume_id(&self) -> &str {
        match self {
            Self::Create(spec) | Self::Record(spec) => &spec.volume_id,
            Self::Export(spec) => &spec.volume_id,
            Self::Unexport(volume_id) | Self::Release(volume_id) => volume_id,
            Self::Attach { attachment, .. } => &attachment.volume_id,
            Self::Detach { volume_id, .. } | Self::Delete(volume_id) => volume_id,
        }
    }
}

/// Runs `call` in its own task unless one is already running for the
/// volume; wakes the reconciler when it ends.
pub(super) fn node_call(cloud: &Arc<Cloud>, node: &Node, call: Call) {
    let call = Arc::new(call);
    let volume_id = call.volume_id().to_owned();
    let node_id = node.node_id.clone();
    let sent = call.clone();
    crate::node_calls::spawn(
        cloud,
        node,
        volume_id.clone(),
        CALL_TIMEOUT,
        |client| async move {
            match &*sent {
                Call::Create(spec) => client.put_volume(spec.clone()).await.map(|_| ()),
                Call::Attach {
                    instance_id,
                    attachment,
                } => client
                    .attach_volume(instance_id, attachment.clone())
                    .await
                    .map(|_| ()),
                Call::Detach {
                    volume_id,
                    instance_id,
                    force,
                } => client
                    .detach_volume(instance_id, volume_id, *force)
                    .await
                    .map(|_| ()),
                Call::Delete(volume_id) | Call::Release(volume_id) => {
                    client.delete_volume(volume_id).await
                }
                Call::Export(spec) => client.export_volume(spec.clone()).await.map(|_| ()),
                Call::Unexport(volume_id) => client.unexport_volume(volume_id).await,
                Call::Record(spec) => client.put_volume(spec.clone()).await.map(|_| ()),
            }
        },
        move |cloud, answer| async move {
            match answer {
                Ok(()) => {}
                Err(
                    e @ (NodeError::BadRequest(_)
                    | NodeError::InsufficientCapacity(_)
                    | NodeError::Conflict(_)
                    | NodeError::NotFound(_)),
                ) => refused(&cloud, &call, &e).await,
                Err(e) => {
                    tracing::warn!(volume = %volume_id, node = %node_id, error = %e, "node volume call failed; will retry");
                }
            }
        },
    );
}

/// A node refused a call outright. A refused creation leaves the volume in
/// `error`; a refused attachment (a `pre-attach` hook said no, the
/// instance is not there) is dropped, the volume available again, as EC2
/// does with an attachment that fails. Refused detaches and deletes are
/// retried by later passes (the node refuses deleting an attached volume
/// until its detach is through).
async fn refused(cloud: &Arc<Cloud>, call: &Call, error: &NodeError) {
    let volume_id = call.volume_id();
    tracing::warn!(volume = %volume_id, error = %error, call = ?call, "node refused a volume call");
    let generation = match call {
        Call::Create(spec) => spec.generation,
        Call::Attach { attachment, .. } => attachment.generation,
        // Export steps are decided again by the next pass.
        Call::Detach { .. }
        | Call::Delete(_)
        | Call::Export(_)
        | Call::Unexport(_)
        | Call::Record(_)
        | Call::Release(_) => return,
    };
    let record = match cloud.store.volume(volume_id).await {
        Ok(Some(record)) => record,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!(volume = %volume_id, error = %e, "could not record a refused volume call");
            return;
        }
    };
    let Ok(mut volume) = Volume::decode(record) else {
        return;
    };
    // Only the request that was refused is undone, not a newer one.
    if u64::try_from(volume.record.generation).unwrap_or(0) != generation {
        return;
    }
    match call {
        // A size the node could not grow to: the modification failed and
        // the volume keeps its size.
        Call::Create(_)
            if volume
                .details
                .modification
                .as_ref()
                .is_some_and(Modification::growing) =>
        {
            if let Some(m) = volume.details.modification.as_mut() {
                m.state = "failed".into();
                m.status_message = Some(error.to_string());
                m.end_time = Some(now_millis());
                volume.record.size_gib = m.original_size;
            }
        }
        Call::Create(_) if volume.status == VolumeStatus::Creating => {
            volume.status = VolumeStatus::Error;
            volume.details.error = Some(error.to_string());
        }
        Call::Attach { instance_id, .. }
            if volume.desired == VolumeDesired::Attached
                && volume.instance_id() == Some(instance_id.as_str()) =>
        {
            volume.detach();
            volume.details.error = Some(error.to_string());
        }
        _ => return,
    }
    volume.record.updated_at = now_millis();
    if let Err(e) = cloud.store.update_volume(&volume.encode()).await {
        tracing::warn!(volume = %volume_id, error = %e, "could not record a refused volume call");
    }
}
