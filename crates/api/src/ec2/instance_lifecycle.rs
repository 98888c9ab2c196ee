//! TerminateInstances, StopInstances, StartInstances, RebootInstances and
//! GetConsoleOutput: parsing and XML. What each does is
//! `mallee_cloud::instances::lifecycle`.

use base64::Engine;

use crate::query::QueryParams;
use mallee_cloud::instances::lifecycle::{self, StateChange};

use super::instances::{parse_instance_ids, validate_instance_id, write_state};
use super::{Ec2Context, Ec2Error};

fn respond_changes(ctx: &Ec2Context<'_>, action: &str, changes: &[StateChange]) -> String {
    ctx.respond(action, |w| {
        w.items("instancesSet", changes, |w, change| {
            w.text("instanceId", &change.instance_id);
            write_state(w, "currentState", change.current);
            write_state(w, "previousState", change.previous);
        });
    })
}

/// TerminateInstances input.
#[derive(Debug, Clone, PartialEq)]
pub struct TerminateInstances {
    ids: Vec<String>,
}

impl TerminateInstances {
    /// The instances it acts on.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Reads `InstanceId.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            ids: parse_instance_ids(params, true)?,
        })
    }

    /// Moves every instance to shutting-down (terminated ones stay).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let changes = lifecycle::terminate(ctx.cloud, ctx.principal, &self.ids).await?;
        Ok(respond_changes(ctx, "TerminateInstances", &changes))
    }
}

/// StopInstances input.
#[derive(Debug, Clone, PartialEq)]
pub struct StopInstances {
    ids: Vec<String>,
}

impl StopInstances {
    /// The instances it acts on.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

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
        let changes = lifecycle::stop(ctx.cloud, ctx.principal, &self.ids).await?;
        Ok(respond_changes(ctx, "StopInstances", &changes))
    }
}

/// StartInstances input.
#[derive(Debug, Clone, PartialEq)]
pub struct StartInstances {
    ids: Vec<String>,
}

impl StartInstances {
    /// The instances it acts on.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Reads `InstanceId.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            ids: parse_instance_ids(params, true)?,
        })
    }

    /// Moves stopped instances to pending, if their nodes have room.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let changes = lifecycle::start(ctx.cloud, ctx.principal, &self.ids).await?;
        Ok(respond_changes(ctx, "StartInstances", &changes))
    }
}

/// RebootInstances input.
#[derive(Debug, Clone, PartialEq)]
pub struct RebootInstances {
    ids: Vec<String>,
}

impl RebootInstances {
    /// The instances it acts on.
    pub fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Reads `InstanceId.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            ids: parse_instance_ids(params, true)?,
        })
    }

    /// Asks each running instance's node to reset it.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        lifecycle::reboot(ctx.cloud, ctx.principal, &self.ids).await?;
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

    /// The serial console, base64-encoded as EC2 sends it; no output while
    /// the node cannot give any.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let console = lifecycle::console_output(ctx.cloud, ctx.principal, &self.id).await?;
        Ok(ctx.respond("GetConsoleOutput", |w| {
            w.text("instanceId", &console.instance_id);
            w.text("timestamp", super::iso8601(console.taken_at));
            if let Some(text) = &console.output {
                w.text(
                    "output",
                    base64::engine::general_purpose::STANDARD.encode(text.as_bytes()),
                );
            }
        }))
    }
}
