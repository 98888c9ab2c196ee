//! Terminating, stopping, starting and rebooting instances, and reading
//! their console. State changes are recorded (compare-and-set, every
//! instance checked before any is changed, so a refusal changes nothing)
//! and the reconciler carries them out on the nodes; reboot and the console
//! ask the node directly.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use mallee_node_api::NodeAgent;

use crate::instances::lookup;
use crate::instances::model::{Desired, Instance, InstanceState, StateReason};
use crate::instances::placement::{self, Demand};
use crate::instances::quota;
use crate::metal::names::is_metal;
use crate::{Cloud, CloudError, Kind, Principal, ids};

/// How long a node gets to answer a reboot or console request.
const NODE_TIMEOUT: Duration = Duration::from_secs(10);
/// Compare-and-set attempts before giving up on a contended instance.
const ATTEMPTS: usize = 8;

/// One instance's state before and after a lifecycle action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateChange {
    /// `i-…`.
    pub instance_id: String,
    /// Its state before.
    pub previous: InstanceState,
    /// Its state now.
    pub current: InstanceState,
}

/// Applies `change` (what an action does to one instance at time `now`:
/// `Ok(true)` changed it, `Ok(false)` left it as it was, `Err` refuses the
/// whole request) to each of the caller's instances `ids`: all are checked
/// first, so a refusal changes nothing; each is then stored with
/// compare-and-set, re-read and changed again when another request got
/// there first.
pub async fn change(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
    change: impl Fn(&mut Instance, i64) -> Result<bool, CloudError>,
) -> Result<Vec<StateChange>, CloudError> {
    let now = ids::now_millis();
    let loaded = lookup::owned(cloud, caller, ids).await?;
    for instance in &loaded {
        change(&mut instance.clone(), now)?;
    }
    let mut results = Vec::with_capacity(loaded.len());
    for mut instance in loaded {
        let mut attempt = 0;
        loop {
            let previous = instance.state;
            let changed = change(&mut instance, now)?;
            if !changed {
                results.push(state_change(&instance, previous));
                break;
            }
            instance.record.updated_at = now;
            if cloud.store.update_instance(&instance.encode()).await? {
                results.push(state_change(&instance, previous));
                break;
            }
            attempt += 1;
            if attempt >= ATTEMPTS {
                return Err(CloudError::Contended(format!(
                    "instance {} kept changing; try again",
                    instance.id()
                )));
            }
            let record = cloud
                .store
                .instance(instance.id())
                .await?
                .ok_or_else(|| CloudError::instances_not_found(&[instance.id()]))?;
            instance = Instance::from_record(record)?;
        }
    }
    cloud.compute.wake();
    Ok(results)
}

fn state_change(instance: &Instance, previous: InstanceState) -> StateChange {
    StateChange {
        instance_id: instance.id().to_owned(),
        previous,
        current: instance.state,
    }
}

/// `User initiated (2024-01-02 03:04:05 GMT)`.
fn user_initiated(now: i64) -> String {
    let t = ids::iso8601(now);
    format!("User initiated ({} {} GMT)", &t[..10], &t[11..19])
}

fn user_shutdown(instance: &mut Instance, now: i64) {
    instance.details.state_reason = Some(StateReason::new(
        "Client.UserInitiatedShutdown",
        "User initiated shutdown",
    ));
    instance.details.state_transition_reason = user_initiated(now);
}

/// Moves every instance to shutting-down (terminated ones stay as they
/// are); refused for any whose `disableApiTermination` is set.
pub async fn terminate(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<StateChange>, CloudError> {
    change(cloud, caller, ids, |i, now| {
        if i.details.disable_api_termination {
            return Err(CloudError::NotPermitted(format!(
                "The instance '{}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.",
                i.id()
            )));
        }
        if i.desired == Desired::Terminated {
            return Ok(false);
        }
        i.state = InstanceState::ShuttingDown;
        i.desired = Desired::Terminated;
        user_shutdown(i, now);
        Ok(true)
    })
    .await
}

/// Bare-metal instances are not stopped and started: their machine is
/// theirs until terminated.
fn metal_unsupported(instance: &Instance, what: &str) -> CloudError {
    CloudError::Unsupported(format!(
        "The instance '{}' is a bare-metal instance and cannot be {what}; reboot or terminate it.",
        instance.id()
    ))
}

/// Moves running and pending instances to stopping (stopping and stopped
/// ones stay as they are); refused for any whose `disableApiStop` is set.
pub async fn stop(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<StateChange>, CloudError> {
    change(cloud, caller, ids, |i, now| match i.state {
        _ if is_metal(i) => Err(metal_unsupported(i, "stopped")),
        _ if i.details.disable_api_stop => Err(CloudError::NotPermitted(format!(
            "The instance '{}' may not be stopped. Modify its 'disableApiStop' instance attribute and try again.",
            i.id()
        ))),
        InstanceState::Stopping | InstanceState::Stopped => Ok(false),
        InstanceState::Running | InstanceState::Pending => {
            i.state = InstanceState::Stopping;
            i.desired = Desired::Stopped;
            i.record.generation += 1;
            user_shutdown(i, now);
            Ok(true)
        }
        InstanceState::ShuttingDown | InstanceState::Terminated => {
            Err(CloudError::incorrect_state(
                Kind::Instance,
                format!(
                    "This instance '{}' is not in a state from which it can be stopped.",
                    i.id()
                ),
            ))
        }
    })
    .await
}

/// Moves stopped instances to pending (pending and running ones stay as
/// they are), each on the node it was placed on if that node takes new
/// work and has room for it (AWS frees a stopped instance's host; so does
/// mallee). An EBS-backed instance whose volumes all live on the zone's
/// storage host starts on another node of its zone when its own is full,
/// disabled or down; instance-store instances stay where their disk is.
pub async fn start(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<StateChange>, CloudError> {
    let _placing = cloud.compute.placement_lock.lock().await;
    let wanted = lookup::owned(cloud, caller, ids).await?;
    let all = quota::all_instances(cloud).await?;
    let nodes =
        crate::health::schedulable(cloud, cloud.store.nodes().await?, crate::ids::now_millis());
    let mut rooms: Vec<_> = cloud
        .config
        .zones
        .iter()
        .flat_map(|zone| placement::rooms(&nodes, &all, zone))
        .collect();
    let mut moves: HashMap<String, String> = HashMap::new();
    for instance in wanted.iter().filter(|i| i.state == InstanceState::Stopped) {
        let spec = &instance.details.spec;
        let demand = Demand::of(spec);
        if placement::take_on(&mut rooms, &instance.record.node_id, demand) {
            continue;
        }
        let movable = super::evacuate::why_not_movable(cloud.store.as_ref(), instance)
            .await?
            .is_none();
        let elsewhere = if movable {
            let candidates: Vec<String> = rooms
                .iter()
                .filter(|r| r.node.zone == instance.record.zone)
                .map(|r| r.node.node_id.clone())
                .collect();
            candidates
                .into_iter()
                .find(|node_id| placement::take_on(&mut rooms, node_id, demand))
        } else {
            None
        };
        if let Some(node_id) = elsewhere {
            tracing::info!(instance = %instance.id(), from = %instance.record.node_id, to = %node_id, "starting an EBS-backed instance on another node");
            moves.insert(instance.id().to_owned(), node_id);
        } else {
            return Err(CloudError::InsufficientCapacity {
                capacity: crate::error::Capacity::Instances,
                message: format!(
                    "We currently do not have sufficient {} capacity in the Availability Zone you requested ({}).",
                    spec.instance_type, instance.record.zone
                ),
            });
        }
    }
    change(cloud, caller, ids, |i, _| match i.state {
        _ if is_metal(i) => Err(metal_unsupported(i, "started")),
        InstanceState::Pending | InstanceState::Running => Ok(false),
        InstanceState::Stopped => {
            if let Some(node_id) = moves.get(i.id()) {
                i.record.node_id.clone_from(node_id);
            }
            i.state = InstanceState::Pending;
            i.desired = Desired::Running;
            i.record.generation += 1;
            i.details.state_reason = None;
            i.details.state_transition_reason = String::new();
            Ok(true)
        }
        InstanceState::Stopping | InstanceState::ShuttingDown | InstanceState::Terminated => {
            Err(CloudError::incorrect_state(
                Kind::Instance,
                format!(
                    "The instance '{}' is not in a state from which it can be started.",
                    i.id()
                ),
            ))
        }
    })
    .await
}

/// The agent of the node an instance is placed on (`None`: a node the
/// cloud no longer knows).
async fn node_of(
    cloud: &Cloud,
    instance: &Instance,
) -> Result<Option<Arc<dyn NodeAgent>>, CloudError> {
    Ok(cloud
        .store
        .nodes()
        .await?
        .iter()
        .find(|n| n.node_id == instance.record.node_id)
        .map(|n| cloud.compute.nodes.client(n)))
}

/// Resets each running instance: bare-metal ones through the bare-metal
/// zone, others through their node. Refused if any is shutting down or
/// terminated; a node that fails or does not answer is logged, not an
/// error (EC2 answers a reboot before it happens).
pub async fn reboot(cloud: &Cloud, caller: &Principal, ids: &[String]) -> Result<(), CloudError> {
    let instances = lookup::owned(cloud, caller, ids).await?;
    if let Some(gone) = instances.iter().find(|i| {
        matches!(
            i.state,
            InstanceState::Terminated | InstanceState::ShuttingDown
        )
    }) {
        return Err(CloudError::incorrect_state(
            Kind::Instance,
            format!(
                "The instance '{}' is not in a state from which it can be rebooted.",
                gone.id()
            ),
        ));
    }
    for instance in instances
        .iter()
        .filter(|i| i.state == InstanceState::Running)
    {
        if is_metal(instance) {
            crate::metal::zone::reboot(cloud, instance).await?;
            continue;
        }
        let Some(node) = node_of(cloud, instance).await? else {
            continue;
        };
        match tokio::time::timeout(NODE_TIMEOUT, node.reboot(instance.id())).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(instance = %instance.id(), error = %e, "reboot failed on the node");
            }
            Err(_) => tracing::warn!(instance = %instance.id(), "reboot timed out on the node"),
        }
    }
    Ok(())
}

/// An instance's serial console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Console {
    /// `i-…`.
    pub instance_id: String,
    /// When it was read (Unix milliseconds).
    pub taken_at: i64,
    /// The last 64 KiB the node keeps; `None` while the node cannot give
    /// any (terminated, unreachable, not yet booted).
    pub output: Option<String>,
}

/// The serial console of the caller's instance `id`.
pub async fn console_output(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
) -> Result<Console, CloudError> {
    let instance = lookup::one(cloud, caller, id).await?;
    let mut output = None;
    if instance.state != InstanceState::Terminated
        && let Some(node) = node_of(cloud, &instance).await?
    {
        match tokio::time::timeout(NODE_TIMEOUT, node.console_output(instance.id())).await {
            Ok(Ok(console)) => output = Some(console.output),
            Ok(Err(e)) => {
                tracing::debug!(instance = %instance.id(), error = %e, "no console output from the node");
            }
            Err(_) => tracing::debug!(instance = %instance.id(), "console output timed out"),
        }
    }
    Ok(Console {
        instance_id: instance.id().to_owned(),
        taken_at: ids::now_millis(),
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{InstanceBuilder, TestCloud, ZONE, node};

    const A: &str = "i-0000000000000000a";
    const B: &str = "i-0000000000000000b";

    /// Instance `id` of `account`, with an address of its own.
    fn instance(id: &str, account: &str) -> InstanceBuilder {
        let n = u8::from(id.ends_with('b')) + 4;
        InstanceBuilder::new(id, account)
            .address(&format!("172.31.0.{n}"), &format!("02:00:00:00:00:{n:02x}"))
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|id| (*id).to_owned()).collect()
    }

    async fn get(cloud: &Cloud, id: &str) -> Instance {
        let record = cloud.store.instance(id).await.expect("store").expect("row");
        Instance::from_record(record).expect("decodes")
    }

    async fn edit(cloud: &Cloud, id: &str, f: impl FnOnce(&mut Instance)) {
        let mut instance = get(cloud, id).await;
        f(&mut instance);
        assert!(
            cloud
                .store
                .update_instance(&instance.encode())
                .await
                .expect("store")
        );
    }

    #[tokio::test]
    async fn one_protected_instance_keeps_every_instance_running() {
        let tc = TestCloud::new().await;
        let caller = tc.principal("alice").await;
        for id in [A, B] {
            instance(id, caller.account_id()).store(&tc).await;
        }
        edit(&tc, B, |i| i.details.disable_api_termination = true).await;
        let refused = terminate(&tc, &caller, &ids(&[A, B])).await;
        assert!(matches!(refused, Err(CloudError::NotPermitted(m)) if m.contains(B)));
        assert_eq!(get(&tc, A).await.state, InstanceState::Running);

        let changes = terminate(&tc, &caller, &ids(&[A]))
            .await
            .expect("terminate");
        assert_eq!(
            changes,
            [StateChange {
                instance_id: A.into(),
                previous: InstanceState::Running,
                current: InstanceState::ShuttingDown,
            }]
        );
        let a = get(&tc, A).await;
        assert_eq!(a.desired, Desired::Terminated);
        assert!(
            a.details
                .state_transition_reason
                .starts_with("User initiated (")
        );
        // Terminating again changes nothing and says so.
        let again = terminate(&tc, &caller, &ids(&[A])).await.expect("again");
        assert_eq!(again[0].previous, InstanceState::ShuttingDown);
        assert_eq!(get(&tc, A).await.record.revision, a.record.revision);
    }

    #[tokio::test]
    async fn unknown_and_foreign_instances_are_not_found_together() {
        let tc = TestCloud::new().await;
        let alice = tc.principal("alice").await;
        let bob = tc.principal("bob").await;
        instance(A, bob.account_id()).store(&tc).await;
        let err = stop(&tc, &alice, &ids(&[A, B])).await.expect_err("refused");
        assert_eq!(
            err,
            CloudError::instances_not_found(&[A, B]),
            "another account's instance is as unknown as a missing one"
        );
        assert_eq!(get(&tc, A).await.state, InstanceState::Running);
    }

    #[tokio::test]
    async fn stop_refuses_all_when_one_is_terminated() {
        let tc = TestCloud::new().await;
        let caller = tc.principal("alice").await;
        instance(A, caller.account_id()).store(&tc).await;
        instance(B, caller.account_id())
            .state(InstanceState::Terminated, Desired::Terminated)
            .store(&tc)
            .await;
        let err = stop(&tc, &caller, &ids(&[A, B]))
            .await
            .expect_err("refused");
        assert!(matches!(
            err,
            CloudError::IncorrectState {
                kind: Kind::Instance,
                ..
            }
        ));
        assert_eq!(get(&tc, A).await.state, InstanceState::Running);

        let changes = stop(&tc, &caller, &ids(&[A])).await.expect("stop");
        assert_eq!(changes[0].current, InstanceState::Stopping);
        let a = get(&tc, A).await;
        assert_eq!((a.desired, a.record.generation), (Desired::Stopped, 2));
    }

    #[tokio::test]
    async fn start_needs_room_on_the_instances_own_node() {
        let tc = TestCloud::new().await;
        let caller = tc.principal("alice").await;
        // Room for one 1-core instance on node-1; node-2 has plenty.
        tc.add_node(node("node-1", ZONE, 1, 4096, 100)).await;
        tc.add_node(node("node-2", ZONE, 16, 65536, 1000)).await;
        for id in [A, B] {
            instance(id, caller.account_id())
                .node("node-1")
                .state(InstanceState::Stopped, Desired::Stopped)
                .store(&tc)
                .await;
        }
        let err = start(&tc, &caller, &ids(&[A, B])).await.expect_err("full");
        assert!(matches!(
            err,
            CloudError::InsufficientCapacity {
                capacity: crate::error::Capacity::Instances,
                ..
            }
        ));
        for id in [A, B] {
            assert_eq!(get(&tc, id).await.state, InstanceState::Stopped, "{id}");
        }
        let changes = start(&tc, &caller, &ids(&[A])).await.expect("one fits");
        assert_eq!(changes[0].current, InstanceState::Pending);
        let a = get(&tc, A).await;
        assert_eq!((a.desired, a.record.generation), (Desired::Running, 2));
        assert!(a.details.state_reason.is_none());
        // A now holds node-1's only core.
        assert!(start(&tc, &caller, &ids(&[B])).await.is_err());
    }

    #[tokio::test]
    async fn reboot_refuses_instances_on_their_way_out() {
        let tc = TestCloud::new().await;
        let caller = tc.principal("alice").await;
        instance(A, caller.account_id())
            .state(InstanceState::ShuttingDown, Desired::Terminated)
            .store(&tc)
            .await;
        let err = reboot(&tc, &caller, &ids(&[A])).await.expect_err("refused");
        assert!(matches!(err, CloudError::IncorrectState { .. }));
    }

    #[tokio::test]
    async fn console_of_an_instance_without_a_node_is_empty() {
        let tc = TestCloud::new().await;
        let caller = tc.principal("alice").await;
        instance(A, caller.account_id()).store(&tc).await;
        let console = console_output(&tc, &caller, A).await.expect("console");
        assert_eq!((console.instance_id.as_str(), console.output), (A, None));
    }
}
