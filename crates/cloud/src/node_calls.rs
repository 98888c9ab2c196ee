//! The one way the reconcilers call a node about one resource (an
//! instance, a volume, a snapshot): in a task of its own, at most one at a
//! time per resource (passes come every 200 ms; a slow node must not
//! collect a pile of the same call), bounded by a timeout, and waking the
//! reconciler when it ends so the next pass sees what it did.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use mallee_node_api::{NodeAgent, NodeError};
use mallee_store::Node;

use crate::Cloud;

/// Runs `task` in its own task unless one is already running for `key`;
/// when it ends, `key` is free again and the reconciler woken.
pub(crate) fn spawn_keyed<F>(cloud: &Arc<Cloud>, key: String, task: impl FnOnce(Arc<Cloud>) -> F)
where
    F: Future<Output = ()> + Send + 'static,
{
    if !cloud.compute.begin_call(&key) {
        return;
    }
    let work = task(cloud.clone());
    let cloud = cloud.clone();
    // Keeps the reconciler's leadership fence: a call that answers after
    // another controller took the lease must not write what it learnt.
    mallee_store::lease::spawn(async move {
        work.await;
        cloud.compute.end_call(&key);
        cloud.compute.wake();
    });
}

/// Sends `node` the call `request` makes of its agent, in its own task
/// unless a call for `key` is already running, and hands what the node
/// answered to `answered`. A node that does not answer within `timeout`
/// is logged and left to the next pass, which decides again.
pub(crate) fn spawn<T, C, A, AF>(
    cloud: &Arc<Cloud>,
    node: &Node,
    key: String,
    timeout: Duration,
    request: impl FnOnce(Arc<dyn NodeAgent>) -> C,
    answered: A,
) where
    T: Send + 'static,
    C: Future<Output = Result<T, NodeError>> + Send + 'static,
    A: FnOnce(Arc<Cloud>, Result<T, NodeError>) -> AF + Send + 'static,
    AF: Future<Output = ()> + Send,
{
    let node_id = node.node_id.clone();
    spawn_keyed(cloud, key.clone(), |cloud| {
        let call = request(cloud.compute.nodes.client(node));
        async move {
            match tokio::time::timeout(timeout, call).await {
                Ok(answer) => answered(cloud, answer).await,
                Err(_) => {
                    tracing::warn!(call = %key, node = %node_id, "node call timed out; will retry");
                }
            }
        }
    });
}
