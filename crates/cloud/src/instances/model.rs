//! What an instance is on the controller: its EC2 state, where it is being
//! driven, and the launch details kept beside the store's indexed columns.

use mallee_node_api::InstanceSpec;

use super::spec::LaunchSpec;
use mallee_store::InstanceRecord;
use serde::{Deserialize, Serialize};

/// How long terminated instances stay visible.
pub const TERMINATED_VISIBLE_MILLIS: i64 = 60 * 60 * 1000;

/// EC2 instance states, with their numeric codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum InstanceState {
    /// Being placed and started.
    Pending,
    /// The VM process runs.
    Running,
    /// Being terminated.
    ShuttingDown,
    /// Gone (still listed for an hour).
    Terminated,
    /// Being stopped.
    Stopping,
    /// Stopped; the root disk is kept.
    Stopped,
}

impl InstanceState {
    /// Every state.
    pub const ALL: [Self; 6] = [
        Self::Pending,
        Self::Running,
        Self::ShuttingDown,
        Self::Terminated,
        Self::Stopping,
        Self::Stopped,
    ];

    /// EC2's state code.
    pub fn code(self) -> u16 {
        match self {
            Self::Pending => 0,
            Self::Running => 16,
            Self::ShuttingDown => 32,
            Self::Terminated => 48,
            Self::Stopping => 64,
            Self::Stopped => 80,
        }
    }

    /// EC2's state name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::ShuttingDown => "shutting-down",
            Self::Terminated => "terminated",
            Self::Stopping => "stopping",
            Self::Stopped => "stopped",
        }
    }

    /// Parses a state name.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }
}

/// Where the controller drives an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Desired {
    /// Running on its node.
    Running,
    /// Stopped, root disk kept on its node.
    Stopped,
    /// Removed from its node.
    Terminated,
}

impl Desired {
    /// Stored name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Stopped => "stopped",
            Self::Terminated => "terminated",
        }
    }

    /// Parses a stored name.
    pub fn from_name(name: &str) -> Option<Self> {
        [Self::Running, Self::Stopped, Self::Terminated]
            .into_iter()
            .find(|d| d.name() == name)
    }
}

/// What a guest-initiated poweroff does (`InstanceInitiatedShutdownBehavior`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ShutdownBehavior {
    /// The instance stops.
    Stop,
    /// The instance terminates.
    Terminate,
}

impl ShutdownBehavior {
    /// EC2's name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Terminate => "terminate",
        }
    }

    /// Parses EC2's name.
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "stop" => Some(Self::Stop),
            "terminate" => Some(Self::Terminate),
            _ => None,
        }
    }
}

/// EC2's `stateReason`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StateReason {
    /// `Client.UserInitiatedShutdown`, `Server.InternalError`, …
    pub code: String,
    /// `Client.UserInitiatedShutdown: User initiated shutdown`, …
    pub message: String,
}

impl StateReason {
    /// A reason whose message is `code: text`, as EC2 writes them.
    pub fn new(code: &str, text: &str) -> Self {
        Self {
            code: code.to_owned(),
            message: format!("{code}: {text}"),
        }
    }
}

/// Launch details the store keeps as one JSON document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceDetails {
    /// How it runs (the node is sent this with the record's desired state
    /// and generation).
    pub spec: LaunchSpec,
    /// Key pair name.
    pub key_name: Option<String>,
    /// Security group ids recorded at launch (names are in the metadata).
    pub security_group_ids: Vec<String>,
    /// Guest poweroff behaviour.
    pub shutdown_behavior: ShutdownBehavior,
    /// `disableApiTermination`.
    pub disable_api_termination: bool,
    /// `disableApiStop`: StopInstances is refused.
    #[serde(default)]
    pub disable_api_stop: bool,
    /// `paravirtual` or `hvm`.
    pub virtualization_type: String,
    /// `instance-store` or `ebs`.
    pub root_device_type: String,
    /// Private DNS name.
    pub private_dns_name: String,
    /// The ClientToken of the launch.
    pub client_token: Option<String>,
    /// Why the instance last changed state (`stateReason`).
    pub state_reason: Option<StateReason>,
    /// `reason` / `stateTransitionReason` text.
    pub state_transition_reason: String,
    /// The instance's VPC.
    #[serde(default)]
    pub vpc_id: String,
    /// Its subnet.
    #[serde(default)]
    pub subnet_id: String,
    /// Its (only) network interface.
    #[serde(default)]
    pub network_interface_id: String,
    /// Stopped to leave its node for maintenance (`mallee admin node
    /// disable --evacuate`): the controller starts it on another node once
    /// it is stopped.
    #[serde(default)]
    pub evacuating: bool,
}

/// An instance record with its state and details decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct Instance {
    /// The stored row (kept for compare-and-set updates).
    pub record: InstanceRecord,
    /// Decoded state.
    pub state: InstanceState,
    /// Decoded desired state.
    pub desired: Desired,
    /// Decoded details.
    pub details: InstanceDetails,
}

/// A stored instance that cannot be decoded.
#[derive(Debug, thiserror::Error)]
#[error("instance {instance_id} has a corrupt record: {message}")]
pub struct CorruptInstance {
    /// The instance.
    pub instance_id: String,
    /// What is wrong.
    pub message: String,
}

impl Instance {
    /// Decodes a record, a corrupt one being an internal error.
    pub fn from_record(record: InstanceRecord) -> Result<Self, crate::CloudError> {
        Self::decode(record).map_err(crate::CloudError::internal)
    }

    /// Decodes a stored record.
    pub fn decode(record: InstanceRecord) -> Result<Self, CorruptInstance> {
        let corrupt = |message: String| CorruptInstance {
            instance_id: record.instance_id.clone(),
            message,
        };
        let state = InstanceState::from_name(&record.state)
            .ok_or_else(|| corrupt(format!("state {:?}", record.state)))?;
        let desired = Desired::from_name(&record.desired)
            .ok_or_else(|| corrupt(format!("desired state {:?}", record.desired)))?;
        let details: InstanceDetails =
            serde_json::from_str(&record.details).map_err(|e| corrupt(e.to_string()))?;
        Ok(Self {
            record,
            state,
            desired,
            details,
        })
    }

    /// The record to store for this instance's current fields.
    pub fn encode(&self) -> InstanceRecord {
        let mut record = self.record.clone();
        record.state = self.state.name().to_owned();
        record.desired = self.desired.name().to_owned();
        record.details =
            serde_json::to_string(&self.details).expect("instance details always serialize");
        record
    }

    /// `i-…`.
    pub fn id(&self) -> &str {
        &self.record.instance_id
    }

    /// The spec to send to the node now.
    pub fn node_spec(&self) -> InstanceSpec {
        let desired = match self.desired {
            Desired::Running => mallee_node_api::DesiredState::Running,
            Desired::Stopped | Desired::Terminated => mallee_node_api::DesiredState::Stopped,
        };
        self.details
            .spec
            .to_node(u64::try_from(self.record.generation).unwrap_or(0), desired)
    }

    /// Whether the instance holds capacity on its node (AWS frees a
    /// stopped instance's host).
    pub fn holds_capacity(&self) -> bool {
        matches!(self.desired, Desired::Running)
            && !matches!(
                self.state,
                InstanceState::Stopped | InstanceState::Terminated
            )
    }
}
