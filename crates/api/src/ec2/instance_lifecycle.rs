//! TerminateInstances, StopInstances, StartInstances, RebootInstances and
//! GetConsoleOutput. State changes are recorded (compare-and-set, all
//! instances checked before any is changed) and the reconciler carries them
//! out on the nodes; reboot and console output ask the node directly.

use std::time::Duration;

use base64::Engine;

use crate::query::QueryParams;
use mallee_cloud::ids;
use mallee_cloud::instances::model::{Desired, Instance, InstanceState, StateReason};
use mallee_cloud::instances::placement::{self, Demand};

use super::instances::{decode, load_owned, parse_instance_ids, validate_instance_id, write_state};
use super::{Ec2Context, Ec2Error};

/// How long a node gets to answer a reboot or console request.
const NODE_TIMEOUT: Duration = Duration::from_secs(10);
/// Compare-and-set attempts before giving up on a contended instance.
const ATTEMPTS: usize = 8;

/// Applies `change` (what a lifecycle action does to one instance at time
/// `now`: `Ok(true)` changed it, `Ok(false)` left it as it was, `Err`
/// refuses the whole request) to every instance in `ids` (all checked first, so a
/// refusal changes nothing), storing each with compare-and-set and
/// retrying on contention. Returns (id, previous state, current state).
pub async fn change_instances(
    ctx: &Ec2Context<'_>,
    ids: &[String],
    change: impl Fn(&mut Instance, i64) -> Result<bool, Ec2Error>,
) -> Result<Vec<(String, InstanceState, InstanceState)>, Ec2Error> {
    let now = ids::now_millis();
    let loaded = load_owned(ctx, ids).await?;
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
                results.push((instance.id().to_owned(), previous, instance.state));
                break;
            }
            instance.record.updated_at = now;
            if ctx.cloud.store.update_instance(&instance.encode()).await? {
                results.push((instance.id().to_owned(), previous, instance.state));
                break;
            }
            attempt += 1;
            if attempt >= ATTEMPTS {
                return Err(Ec2Error::Internal(format!(
                    "instance {} kept changing; try again",
                    instance.id()
                )));
            }
            let record = ctx
                .cloud
                .store
                .instance(instance.id())
                .await?
                .ok_or_else(|| super::instances::instances_not_found(&[instance.id()]))?;
            instance = decode(record)?;
        }
    }
    ctx.cloud.compute.wake();
    Ok(results)
}

/// `User initiated (2024-01-02 03:04:05 GMT)`.
fn user_initiated(now: i64) -> String {
    let t = super::iso8601(now);
    format!("User initiated ({} {} GMT)", &t[..10], &t[11..19])
}

fn respond_changes(
    ctx: &Ec2Context<'_>,
    action: &str,
    changes: &[(String, InstanceState, InstanceState)],
) -> String {
    ctx.respond(action, |w| {
        w.items("instancesSet", changes, |w, (id, previous, current)| {
            w.text("instanceId", id);
            write_state(w, "currentState", *current);
            write_state(w, "previousState", *previous);
        });
    })
}

/// TerminateInstances input.
#[derive(Debug, Clone, PartialEq)]
pub struct TerminateInstances {
    ids: Vec<String>,
}

impl TerminateInstances {
    /// Reads `InstanceId.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            ids: parse_instance_ids(params, true)?,
        })
    }

    /// Moves every instance to shutting-down (terminated ones stay).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let changes = change_instances(ctx, &self.ids, |i, now| {
            if i.details.disable_api_termination {
                return Err(Ec2Error::refused(
                    "OperationNotPermitted",
                    format!(
                        "The instance '{}' may not be terminated. Modify its 'disableApiTermination' instance attribute and try again.",
                        i.id()
                    ),
                ));
            }
            if i.desired == Desired::Terminated {
                return Ok(false);
            }
            i.state = InstanceState::ShuttingDown;
            i.desired = Desired::Terminated;
            i.details.state_reason = Some(StateReason::new(
                "Client.UserInitiatedShutdown",
                "User initiated shutdown",
            ));
            i.details.state_transition_reason = user_initiated(now);
            Ok(true)
        })
        .await?;
        Ok(respond_changes(ctx, "TerminateInstances", &changes))
    }
}

/// Bare-metal instances are not stopped and started: their machine is
/// theirs until terminated.
fn metal_unsupported(instance: &Instance, what: &str) -> Ec2Error {
    Ec2Error::refused(
        "UnsupportedOperation",
        format!(
            "The instance '{}' is a bare-metal instance and cannot be {what}; reboot or terminate it.",
            instance.id()
        ),
    )
}

/// StopInstances input.
#[derive(Debug, Clone, PartialEq)]
pub struct StopInstances {
    ids: Vec<String>,
}

impl StopInstances {
    /// Reads `InstanceId.N` (`Force` is accepted: a stop that does not
    /// finish cleanly is forced by the node anyway).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        params.bool("Force")?;
        params.bool("Hibernate")?;
        Ok(Self {
            ids: parse_instance_ids(params, true)?,
        })
    }

    /// Moves running and pending instances to stopping.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let changes = change_instances(ctx, &self.ids, |i, now| match i.state {
            _ if mallee_cloud::metal::zone::is_metal(i) => Err(metal_unsupported(i, "stopped")),
            InstanceState::Stopping | InstanceState::Stopped => Ok(false),
            InstanceState::Running | InstanceState::Pending => {
                i.state = InstanceState::Stopping;
                i.desired = Desired::Stopped;
                i.record.generation += 1;
                i.details.state_reason = Some(StateReason::new(
                    "Client.UserInitiatedShutdown",
                    "User initiated shutdown",
                ));
                i.details.state_transition_reason = user_initiated(now);
                Ok(true)
            }
            InstanceState::ShuttingDown | InstanceState::Terminated => Err(Ec2Error::refused(
                "IncorrectInstanceState",
                format!(
                    "This instance '{}' is not in a state from which it can be stopped.",
                    i.id()
                ),
            )),
        })
        .await?;
        Ok(respond_changes(ctx, "StopInstances", &changes))
    }
}

/// StartInstances input.
#[derive(Debug, Clone, PartialEq)]
pub struct StartInstances {
    ids: Vec<String>,
}

impl StartInstances {
    /// Reads `InstanceId.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            ids: parse_instance_ids(params, true)?,
        })
    }

    /// Moves stopped instances to pending, if their nodes have room.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let cloud = ctx.cloud;
        let _placing = cloud.compute.placement_lock.lock().await;
        let wanted = load_owned(ctx, &self.ids).await?;
        let all: Vec<Instance> = cloud
            .store
            .instances(None)
            .await?
            .into_iter()
            .filter_map(|r| Instance::decode(r).ok())
            .collect();
        let nodes = cloud.store.nodes().await?;
        let mut rooms = Vec::new();
        for zone in &cloud.config.zones {
            rooms.extend(placement::rooms(&nodes, &all, zone));
        }
        for instance in wanted.iter().filter(|i| i.state == InstanceState::Stopped) {
            let spec = &instance.details.spec;
            let demand = Demand {
                vcpus: u64::from(spec.vcpus),
                memory_mib: spec.memory_mib,
                disk_gib: spec.disk_gib,
            };
            let on_node: Vec<_> = rooms
                .iter()
                .filter(|r| r.node.node_id == instance.record.node_id)
                .cloned()
                .collect();
            if placement::place(on_node, demand, 1).is_empty() {
                return Err(Ec2Error::InsufficientInstanceCapacity(format!(
                    "We currently do not have sufficient {} capacity in the Availability Zone you requested ({}).",
                    spec.instance_type, instance.record.zone
                )));
            }
            if let Some(room) = rooms
                .iter_mut()
                .find(|r| r.node.node_id == instance.record.node_id)
            {
                room.cores = room.cores.saturating_sub(demand.vcpus);
                room.memory_mib = room.memory_mib.saturating_sub(demand.memory_mib);
                room.disk_gib = room.disk_gib.saturating_sub(demand.disk_gib);
            }
        }
        let changes = change_instances(ctx, &self.ids, |i, _| match i.state {
            _ if mallee_cloud::metal::zone::is_metal(i) => Err(metal_unsupported(i, "started")),
            InstanceState::Pending | InstanceState::Running => Ok(false),
            InstanceState::Stopped => {
                i.state = InstanceState::Pending;
                i.desired = Desired::Running;
                i.record.generation += 1;
                i.details.state_reason = None;
                i.details.state_transition_reason = String::new();
                Ok(true)
            }
            InstanceState::Stopping | InstanceState::ShuttingDown | InstanceState::Terminated => {
                Err(Ec2Error::refused(
                    "IncorrectInstanceState",
                    format!(
                        "The instance '{}' is not in a state from which it can be started.",
                        i.id()
                    ),
                ))
            }
        })
        .await?;
        drop(_placing);
        Ok(respond_changes(ctx, "StartInstances", &changes))
    }
}

/// The node agent client for an instance's node.
async fn node_of(
    ctx: &Ec2Context<'_>,
    instance: &Instance,
) -> Result<Option<std::sync::Arc<dyn mallee_node_api::NodeAgent>>, Ec2Error> {
    Ok(ctx
        .cloud
        .store
        .nodes()
        .await?
        .iter()
        .find(|n| n.node_id == instance.record.node_id)
        .map(|n| ctx.cloud.compute.nodes.client(n)))
}

/// RebootInstances input.
#[derive(Debug, Clone, PartialEq)]
pub struct RebootInstances {
    ids: Vec<String>,
}

impl RebootInstances {
    /// Reads `InstanceId.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            ids: parse_instance_ids(params, true)?,
        })
    }

    /// Asks each running instance's node to reset it.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let instances = load_owned(ctx, &self.ids).await?;
        if let Some(gone) = instances.iter().find(|i| {
            matches!(
                i.state,
                InstanceState::Terminated | InstanceState::ShuttingDown
            )
        }) {
            return Err(Ec2Error::refused(
                "IncorrectInstanceState",
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
            if mallee_cloud::metal::zone::is_metal(instance) {
                mallee_cloud::metal::zone::reboot(ctx.cloud, instance).await?;
                continue;
            }
            let Some(node) = node_of(ctx, instance).await? else {
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
        Ok(ctx.respond_true("RebootInstances"))
    }
}

/// GetConsoleOutput input.
#[derive(Debug, Clone, PartialEq)]
pub struct GetConsoleOutput {
    id: String,
}

impl GetConsoleOutput {
    /// Reads `InstanceId`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let id = params.required_non_empty("InstanceId")?.to_owned();
        validate_instance_id(&id)?;
        params.bool("Latest")?;
        Ok(Self { id })
    }

    /// The last 64 KiB of the serial console, base64-encoded as EC2 sends
    /// it; no output while the node cannot give any.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let instances = load_owned(ctx, std::slice::from_ref(&self.id)).await?;
        let instance = &instances[0];
        let mut output = None;
        if instance.state != InstanceState::Terminated
            && let Some(node) = node_of(ctx, instance).await?
        {
            match tokio::time::timeout(NODE_TIMEOUT, node.console_output(instance.id())).await {
                Ok(Ok(console)) => output = Some(console.output),
                Ok(Err(e)) => {
                    tracing::debug!(instance = %instance.id(), error = %e, "no console output from the node");
                }
                Err(_) => tracing::debug!(instance = %instance.id(), "console output timed out"),
            }
        }
        Ok(ctx.respond("GetConsoleOutput", |w| {
            w.text("instanceId", instance.id());
            w.text("timestamp", super::iso8601(ids::now_millis()));
            if let Some(text) = &output {
                w.text(
                    "output",
                    base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
                );
            }
        }))
    }
}
