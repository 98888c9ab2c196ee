//! State pushed by nodes: the moment an instance's VM changes state, its
//! node posts what changed ([`StateReport`], see
//! [`mallee_node_api::push`]) and the controller records it at once,
//! deciding each instance's step with the reconciler's own [`decide`] and
//! taking only the steps that record a new state (running, stopped,
//! shutting down). Calls to nodes stay the reconciler's, which a recorded
//! change wakes.
//!
//! A push is an optimisation the reconciler does not depend on: pushes
//! older than one already taken from the same node are ignored (report
//! generations only grow), a push about an instance placed on another
//! node is ignored, every store write is conditional on the record's
//! revision (a reconciler pass that changed it first wins, and decides
//! again next time), and a push that never arrives is made up for by the
//! next periodic pass, which reads the same state from the node's report.

use std::sync::Arc;

use mallee_node_api::StateReport;

use crate::Cloud;
use crate::ids::now_millis;
use crate::instances::model::Instance;
use crate::reconciler::{Step, apply, decide};

/// Why a push was refused.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The push names another node than the certificate.
    #[error("the certificate is {certified}'s; it cannot report for node {claimed}")]
    NotThisNode {
        /// The node the certificate names.
        certified: String,
        /// The node the push names.
        claimed: String,
    },
    /// The store failed.
    #[error("could not record the state: {0}")]
    Store(#[from] mallee_store::StoreError),
}

/// Records the states `report` pushes from node `certified` (the node its
/// certificate names); returns how many instances changed state.
pub async fn observe(
    cloud: &Arc<Cloud>,
    certified: &str,
    report: &StateReport,
) -> Result<usize, StateError> {
    if report.node_id != certified {
        return Err(StateError::NotThisNode {
            certified: certified.to_owned(),
            claimed: report.node_id.clone(),
        });
    }
    if !cloud
        .compute
        .accept_push(&report.node_id, report.generation)
    {
        tracing::debug!(node = %report.node_id, generation = report.generation, "stale state push ignored");
        return Ok(0);
    }
    let now = now_millis();
    let mut applied = 0;
    for observed in &report.instances {
        let Some(record) = cloud.store.instance(&observed.instance_id).await? else {
            continue;
        };
        if record.node_id != report.node_id {
            // Placed elsewhere now (moved, or a stale copy): the reconciler
            // removes the copy.
            continue;
        }
        let instance = match Instance::decode(record) {
            Ok(instance) => instance,
            Err(e) => {
                tracing::error!(error = %e, "skipping an instance record");
                continue;
            }
        };
        if crate::metal::names::is_metal(&instance) {
            continue;
        }
        let step = decide(&instance, Some(observed), now);
        if matches!(step, Step::Transition { .. }) {
            apply(cloud, None, instance, step, now).await?;
            applied += 1;
        }
    }
    Ok(applied)
}
