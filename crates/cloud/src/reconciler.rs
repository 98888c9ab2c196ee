//! The reconciler: once a second (and whenever something changed) it reads
//! every node's report and every instance record, decides one step per
//! instance ([`decide`], a pure function) and carries it out. Steps are
//! idempotent and keyed by instance id, so a controller killed at any point
//! simply decides again after restart; node calls run in their own tasks,
//! one at a time per instance.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mallee_node_api::{
    FirewallPolicy, InstanceFirewall, NodeError, NodeReport, ObservedInstance, VmState,
};
use mallee_store::Node;

use crate::Cloud;
use crate::ids::now_millis;
use crate::instances::model::{
    Desired, Instance, InstanceState, ShutdownBehavior, StateReason, TERMINATED_VISIBLE_MILLIS,
};

/// Time between passes when nothing wakes the reconciler.
const PERIOD: Duration = Duration::from_secs(1);
/// Time between passes while some instance is between states (nodes push
/// state changes, see [`crate::node_state`]; this bounds how late a change
/// shows when a push is lost or comes from a node that does not push).
const BUSY_PERIOD: Duration = Duration::from_millis(200);
/// Passes between sweeps for public addresses of launches that crashed
/// before their reservation was stored.
const ORPHAN_SWEEP_PASSES: u64 = 60;
/// How long a node gets to answer a report.
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a node gets for an instance call (image fetch, boot start).
const CALL_TIMEOUT: Duration = Duration::from_secs(600);

/// One step toward an instance's desired state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Already where it should be, or waiting on its node.
    Nothing,
    /// Send the instance's spec to its node.
    Put,
    /// Remove the instance from its node.
    Delete,
    /// Record a new state.
    Transition {
        /// New state.
        state: InstanceState,
        /// New desired state, if it changes.
        desired: Option<Desired>,
        /// New state reason, if any.
        reason: Option<StateReason>,
        /// Whether the node must be sent a new spec generation.
        bump_generation: bool,
    },
    /// Remove the record (terminated for more than an hour).
    Forget,
}

fn to(state: InstanceState) -> Step {
    Step::Transition {
        state,
        desired: None,
        reason: None,
        bump_generation: false,
    }
}

/// The next step for `instance` given what its node reports (`None`: the
/// node does not hold it).
pub fn decide(instance: &Instance, observed: Option<&ObservedInstance>, now: i64) -> Step {
    let generation = u64::try_from(instance.record.generation).unwrap_or(0);
    match instance.desired {
        Desired::Terminated => match observed {
            Some(_) => Step::Delete,
            None if instance.state != InstanceState::Terminated => to(InstanceState::Terminated),
            None => match instance.record.terminated_at {
                Some(at) if now - at > TERMINATED_VISIBLE_MILLIS => Step::Forget,
                _ => Step::Nothing,
            },
        },
        Desired::Running => {
            let Some(o) = observed else {
                return Step::Put;
            };
            if o.generation < generation {
                return Step::Put;
            }
            match &o.state {
                VmState::Pending => Step::Nothing,
                VmState::Running if instance.state != InstanceState::Running => {
                    to(InstanceState::Running)
                }
                VmState::Running => Step::Nothing,
                VmState::Stopping | VmState::Stopped => Step::Transition {
                    state: instance.state,
                    desired: None,
                    reason: None,
                    bump_generation: true,
                },
                VmState::GuestShutdown => {
                    let reason = Some(StateReason::new(
                        "Client.InstanceInitiatedShutdown",
                        "Instance initiated shutdown",
                    ));
                    match instance.details.shutdown_behavior {
                        ShutdownBehavior::Terminate => Step::Transition {
                            state: InstanceState::ShuttingDown,
                            desired: Some(Desired::Terminated),
                            reason,
                            bump_generation: false,
                        },
                        ShutdownBehavior::Stop => Step::Transition {
                            state: InstanceState::Stopping,
                            desired: Some(Desired::Stopped),
                            reason,
                            bump_generation: true,
                        },
                    }
                }
                VmState::Failed(message) => Step::Transition {
                    state: InstanceState::ShuttingDown,
                    desired: Some(Desired::Terminated),
                    reason: Some(StateReason::new("Server.InternalError", message)),
                    bump_generation: false,
                },
            }
        }
        Desired::Stopped => {
            let Some(o) = observed else {
                return Step::Put;
            };
            if o.generation < generation {
                return Step::Put;
            }
            // A guest that powered itself off is as stopped as one the node
            // stopped: its VM is gone, its disk kept.
            match o.state {
                VmState::Stopped | VmState::GuestShutdown | VmState::Failed(_)
                    if instance.state != InstanceState::Stopped =>
                {
                    to(InstanceState::Stopped)
                }
                _ => Step::Nothing,
            }
        }
    }
}

/// Runs the reconciler until the process ends.
/// (Through `lease::spawn`: under a leadership fence its writes are fenced.)
pub fn spawn(cloud: Arc<Cloud>) -> tokio::task::JoinHandle<()> {
    mallee_store::lease::spawn(async move {
        let mut passes: u64 = 0;
        loop {
            if passes.is_multiple_of(ORPHAN_SWEEP_PASSES) {
                match crate::addresses::reclaim_orphans(&cloud).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(
                        addresses = n,
                        "reclaimed public addresses of launches that never completed"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not reclaim orphaned public addresses")
                    }
                }
            }
            passes = passes.wrapping_add(1);
            let started = std::time::Instant::now();
            let result = pass(&cloud).await;
            cloud
                .telemetry
                .record_pass(started.elapsed(), result.is_ok());
            let period = match result {
                Ok(true) => BUSY_PERIOD,
                Ok(false) => PERIOD,
                Err(e) => {
                    tracing::warn!(error = %e, "reconciler pass failed");
                    PERIOD
                }
            };
            tokio::select! {
                () = cloud.compute.woken() => {}
                () = tokio::time::sleep(period) => {}
            }
        }
    })
}

/// One pass over every node and instance; `true` when some instance is
/// still on its way to a stable state.
pub async fn pass(cloud: &Arc<Cloud>) -> Result<bool, mallee_store::StoreError> {
    let nodes = cloud.store.nodes().await?;
    // One report per node per pass serves the instances, the firewalls and
    // the volumes alike.
    let node_reports = fetch_reports(cloud, &nodes).await;
    let reports: HashMap<String, Option<Report>> = node_reports
        .iter()
        .map(|(node_id, report)| {
            let instances = report.as_ref().map(|r| {
                r.instances
                    .iter()
                    .map(|o| (o.instance_id.clone(), o.clone()))
                    .collect()
            });
            (node_id.clone(), instances)
        })
        .collect();
    let now = now_millis();
    let mut known = HashMap::new();
    let mut busy = false;
    for record in cloud.store.instances(None).await? {
        known.insert(record.instance_id.clone(), record.node_id.clone());
        let instance = match Instance::decode(record) {
            Ok(instance) => instance,
            Err(e) => {
                tracing::error!(error = %e, "skipping an instance record");
                continue;
            }
        };
        // Machines of the bare-metal zone: never sent to a node agent; the
        // bare-metal syncer drives them below.
        if crate::metal::names::is_metal(&instance) {
            continue;
        }
        let node = nodes.iter().find(|n| n.node_id == instance.record.node_id);
        let observed = match reports.get(&instance.record.node_id) {
            Some(Some(report)) => report.get(instance.id()),
            // Its node did not answer: nothing can be known or done, except
            // forgetting instances terminated long ago.
            Some(None)
                if !(instance.state == InstanceState::Terminated
                    && instance.desired == Desired::Terminated) =>
            {
                continue;
            }
            // No such node: it was removed from the cloud, and no node will
            // ever confirm anything; only ending (a forced removal sent its
            // instances there) and forgetting go on.
            None if instance.desired != Desired::Terminated => continue,
            _ => None,
        };
        busy |= matches!(
            instance.state,
            InstanceState::Pending | InstanceState::Stopping | InstanceState::ShuttingDown
        );
        if instance.details.evacuating
            && instance.state == InstanceState::Stopped
            && instance.desired == Desired::Stopped
        {
            // Stopped to leave its node: on to another one.
            match crate::instances::evacuate::restart(cloud, &instance).await {
                Ok(true) => {
                    busy = true;
                    cloud.compute.wake();
                    continue;
                }
                Ok(false) => {}
                Err(e) => {
                    tracing::warn!(instance = %instance.id(), error = %e, "could not start an evacuated instance elsewhere");
                }
            }
        }
        let mut step = decide(&instance, observed, now);
        if step == Step::Put
            && !root_volume_ready(&instance, node_reports.get(&instance.record.node_id))
        {
            // Its node cannot take an EBS-backed instance before it has the
            // root volume (recorded there by the volume pass).
            step = Step::Nothing;
        }
        apply(cloud, node, instance, step, now).await?;
    }
    push_firewalls(cloud, &nodes, &reports).await;
    if let Err(e) = crate::overlay::push(cloud, &nodes, &node_reports).await {
        tracing::warn!(error = %e, "cannot compute the nodes' overlays");
    }
    for (node_id, report) in &reports {
        let (Some(report), Some(node)) = (report, nodes.iter().find(|n| &n.node_id == node_id))
        else {
            continue;
        };
        for orphan in report.keys() {
            match known.get(orphan) {
                None => {
                    tracing::warn!(instance = %orphan, node = %node_id, "removing an instance the controller has no record of");
                }
                // Started on another node (its volumes are on the zone's
                // storage host): the copy left here goes.
                Some(placed) if placed != node_id && !placed.is_empty() => {
                    tracing::info!(instance = %orphan, node = %node_id, now_on = %placed, "removing an instance that moved to another node");
                }
                Some(_) => continue,
            }
            node_call(cloud, node, orphan.clone(), Call::Delete);
        }
    }
    match crate::metal::zone::sync(cloud).await {
        Ok(metal_busy) => busy |= metal_busy,
        Err(e) => tracing::warn!(error = %e, "bare-metal pass failed"),
    }
    match crate::volumes::pass(cloud, &nodes, &node_reports).await {
        Ok(volumes_busy) => busy |= volumes_busy,
        Err(e) => tracing::warn!(error = %e, "volume pass failed"),
    }
    match crate::snapshots::pass(cloud, &nodes, &node_reports).await {
        Ok(snapshots_busy) => busy |= snapshots_busy,
        Err(e) => tracing::warn!(error = %e, "snapshot pass failed"),
    }
    // Bundled images unbundle in tasks of their own; waiting on them does
    // not make the reconciler busy.
    if let Err(e) = crate::images::bundled::pass(cloud).await {
        tracing::warn!(error = %e, "bundled image pass failed");
    }
    Ok(busy)
}

type Report = HashMap<String, ObservedInstance>;

/// Whether the node of `instance` (whose report is `report`) has the
/// instance's EBS root volume, if it boots from one.
fn root_volume_ready(instance: &Instance, report: Option<&Option<NodeReport>>) -> bool {
    let crate::instances::spec::Boot::Ebs { root_volume_id, .. } = &instance.details.spec.image
    else {
        return true;
    };
    report
        .and_then(Option::as_ref)
        .is_some_and(|r| r.volumes.iter().any(|v| &v.volume_id == root_volume_id))
}

/// How often a node is sent its firewall policy and its overlay even when
/// they did not change (a node that lost its state gets it back).
pub const FIREWALL_REFRESH: Duration = Duration::from_secs(30);

/// Sends every reachable node the security-group rules of the instances it
/// holds, when they changed since the last time (or the last one is old).
async fn push_firewalls(
    cloud: &Arc<Cloud>,
    nodes: &[Node],
    reports: &HashMap<String, Option<Report>>,
) {
    let instances: Vec<Instance> = match cloud.store.instances(None).await {
        Ok(records) => records
            .into_iter()
            .filter_map(|r| Instance::decode(r).ok())
            .filter(|i| i.state != InstanceState::Terminated)
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot compute firewall policies");
            return;
        }
    };
    for node in nodes {
        if !matches!(reports.get(&node.node_id), Some(Some(_))) {
            continue;
        }
        let mut firewalls = Vec::new();
        for instance in instances
            .iter()
            .filter(|i| i.record.node_id == node.node_id)
        {
            match crate::security_groups::instance_firewall_rules(
                cloud,
                &instance.details.security_group_ids,
            )
            .await
            {
                Ok((ingress, egress)) => firewalls.push(InstanceFirewall {
                    instance_id: instance.id().to_owned(),
                    ingress,
                    egress,
                }),
                Err(e) => {
                    tracing::warn!(instance = %instance.id(), error = %e, "cannot compute the instance's firewall");
                    return;
                }
            }
        }
        firewalls.sort_by(|a, b| a.instance_id.cmp(&b.instance_id));
        push_state(
            cloud,
            node,
            &cloud.compute.firewalls,
            "firewall policy",
            firewalls,
            |client, generation, instances| async move {
                client
                    .put_firewall(FirewallPolicy {
                        generation,
                        instances,
                    })
                    .await
            },
        )
        .await;
    }
}

/// Sends `node` a whole state (its firewall policy, its overlay) with
/// `send` when `content` differs from what it last applied, or that was
/// [`FIREWALL_REFRESH`] ago (a node that lost its state gets it back); the
/// generation grows with every send, also across controller restarts (it
/// starts from the clock).
pub(crate) async fn push_state<T, F, Fut>(
    cloud: &Arc<Cloud>,
    node: &Node,
    pushes: &crate::compute::Pushes,
    what: &str,
    content: T,
    send: F,
) where
    T: serde::Serialize,
    F: FnOnce(Arc<dyn mallee_node_api::NodeAgent>, u64, T) -> Fut,
    Fut: std::future::Future<Output = Result<u64, NodeError>>,
{
    let digest = {
        use std::hash::{Hash, Hasher};
        let mut h = std::collections::hash_map::DefaultHasher::new();
        serde_json::to_string(&content)
            .unwrap_or_default()
            .hash(&mut h);
        h.finish()
    };
    let now_micros = u64::try_from(now_millis()).unwrap_or(0) * 1000;
    let Some(generation) = pushes.due(&node.node_id, digest, now_micros) else {
        return;
    };
    let client = cloud.compute.nodes.client(node);
    match tokio::time::timeout(REPORT_TIMEOUT, send(client, generation, content)).await {
        Ok(Ok(applied)) => pushes.applied(&node.node_id, digest, applied.max(generation)),
        Ok(Err(e)) => {
            tracing::warn!(node = %node.node_id, error = %e, "{what} refused; will retry");
        }
        Err(_) => tracing::warn!(node = %node.node_id, "{what} timed out; will retry"),
    }
}

/// Every node's report (`None` for a node that did not answer in time).
async fn fetch_reports(cloud: &Arc<Cloud>, nodes: &[Node]) -> HashMap<String, Option<NodeReport>> {
    let calls = nodes.iter().map(|node| {
        let client = cloud.compute.nodes.client(node);
        let node_id = node.node_id.clone();
        async move {
            let report = match tokio::time::timeout(REPORT_TIMEOUT, client.report()).await {
                Ok(Ok(report)) => Some(report),
                Ok(Err(e)) => {
                    tracing::debug!(node = %node_id, error = %e, "node report failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(node = %node_id, "node report timed out");
                    None
                }
            };
            (node_id, report)
        }
    });
    futures_util::future::join_all(calls)
        .await
        .into_iter()
        .collect()
}

/// Carries out `step` for `instance` (a state push records transitions
/// through it too).
pub(crate) async fn apply(
    cloud: &Arc<Cloud>,
    node: Option<&Node>,
    mut instance: Instance,
    step: Step,
    now: i64,
) -> Result<(), mallee_store::StoreError> {
    match step {
        Step::Nothing => {}
        Step::Put | Step::Delete => {
            let Some(node) = node else {
                tracing::warn!(instance = %instance.id(), node = %instance.record.node_id, "instance placed on an unknown node");
                return Ok(());
            };
            let id = instance.id().to_owned();
            let call = if step == Step::Put {
                Call::Put(Box::new(instance))
            } else {
                Call::Delete
            };
            node_call(cloud, node, id, call);
        }
        Step::Transition {
            state,
            desired,
            reason,
            bump_generation,
        } => {
            tracing::info!(
                instance = %instance.id(),
                from = instance.state.name(),
                to = state.name(),
                reason = reason.as_ref().map(|r| r.message.as_str()).unwrap_or(""),
                "instance state"
            );
            instance.state = state;
            if let Some(desired) = desired {
                instance.desired = desired;
            }
            if reason.is_some() {
                instance.details.state_reason = reason;
            }
            if bump_generation {
                instance.record.generation += 1;
            }
            if state == InstanceState::Terminated {
                instance.record.terminated_at = Some(now);
            }
            instance.record.updated_at = now;
            if cloud.store.update_instance(&instance.encode()).await? {
                if state == InstanceState::Terminated {
                    // Only now is the VM (and its NAT) gone from the node, so
                    // only now may its public address go to someone else.
                    if let Err(e) =
                        crate::addresses::release_instance_addresses(cloud, instance.id()).await
                    {
                        tracing::warn!(instance = %instance.id(), error = %e, "could not release the instance's public address; will retry");
                    }
                }
                cloud.compute.wake();
            }
        }
        Step::Forget => {
            tracing::info!(instance = %instance.id(), "forgetting an instance terminated an hour ago");
            cloud.store.delete_instance(instance.id()).await?;
        }
    }
    Ok(())
}

/// A call to a node about one instance.
enum Call {
    Put(Box<Instance>),
    Delete,
}

/// Sends `call` to the instance's node (one call at a time per instance).
fn node_call(cloud: &Arc<Cloud>, node: &Node, instance_id: String, call: Call) {
    let node_id = node.node_id.clone();
    let spec = match &call {
        Call::Put(instance) => Some(instance.node_spec()),
        Call::Delete => None,
    };
    let id = instance_id.clone();
    crate::node_calls::spawn(
        cloud,
        node,
        instance_id.clone(),
        CALL_TIMEOUT,
        |client| async move {
            match spec {
                Some(spec) => client.put_instance(spec).await.map(|_| ()),
                None => client.delete_instance(&id).await,
            }
        },
        move |cloud, answer| async move {
            match answer {
                Ok(()) => {}
                Err(NodeError::BadRequest(message) | NodeError::InsufficientCapacity(message)) => {
                    // A refused delete is decided again by the next pass.
                    if let Call::Put(instance) = call {
                        fail_launch(&cloud, *instance, &message).await;
                    }
                }
                Err(e) => {
                    tracing::warn!(instance = %instance_id, node = %node_id, error = %e, "node call failed; will retry");
                }
            }
        },
    );
}

/// A node refused an instance outright: it goes to shutting-down with the
/// node's reason, then terminated once the node no longer holds it.
async fn fail_launch(cloud: &Arc<Cloud>, mut instance: Instance, message: &str) {
    tracing::warn!(instance = %instance.id(), reason = message, "node refused the instance");
    instance.state = InstanceState::ShuttingDown;
    instance.desired = Desired::Terminated;
    instance.details.state_reason = Some(StateReason::new("Server.InternalError", message));
    instance.record.updated_at = now_millis();
    if let Err(e) = cloud.store.update_instance(&instance.encode()).await {
        tracing::error!(instance = %instance.id(), error = %e, "could not record a refused launch");
    }
}
