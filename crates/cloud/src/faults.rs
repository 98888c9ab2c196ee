//! Fault points of multi-step operations, so tests can prove that a
//! failure or a crash at any step leaves nothing behind. Unit tests make a
//! step fail ([`Faults::fail_at`]); black-box tests start the binary with
//! `MALLEE_PAUSE_AT=<step>` so the operation stops at that step and the
//! test can kill the process there. Without either, a fault point costs a
//! comparison.

use std::sync::Mutex;

use crate::CloudError;

/// The environment variable naming a step to pause at.
pub const PAUSE_ENV: &str = "MALLEE_PAUSE_AT";

/// The steps of a launch (RunInstances), in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Step {
    /// The account's instance quota.
    Quota,
    /// The VPC, subnet and security groups.
    Network,
    /// Nodes with room (or free machines of the bare-metal zone).
    Capacity,
    /// Bare-metal machines reserved for the launch.
    Machines,
    /// Private addresses in the subnet.
    PrivateAddresses,
    /// Public addresses recorded for the new instances.
    PublicAddresses,
    /// The reservation, instances, volumes, tags and group memberships.
    Records,
    /// Unbundling a bundled image: after its first part, before the next
    /// (not a launch step).
    UnbundlePart,
}

impl Step {
    /// Every step, in launch order.
    pub const ALL: [Self; 7] = [
        Self::Quota,
        Self::Network,
        Self::Capacity,
        Self::Machines,
        Self::PrivateAddresses,
        Self::PublicAddresses,
        Self::Records,
    ];

    /// The step's name in `MALLEE_PAUSE_AT` and in logs.
    pub fn name(self) -> &'static str {
        match self {
            Self::Quota => "launch.quota",
            Self::Network => "launch.network",
            Self::Capacity => "launch.capacity",
            Self::Machines => "launch.machines",
            Self::PrivateAddresses => "launch.private-addresses",
            Self::PublicAddresses => "launch.public-addresses",
            Self::Records => "launch.records",
            Self::UnbundlePart => "bundle.part",
        }
    }

    /// The step called `name`.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .chain([Self::UnbundlePart])
            .find(|s| s.name() == name)
    }
}

/// Where operations fail or pause on purpose.
#[derive(Debug, Default)]
pub struct Faults {
    fail: Mutex<Option<Step>>,
    pause: Option<Step>,
}

impl Faults {
    /// No faults.
    pub fn none() -> Self {
        Self::default()
    }

    /// Pauses at the step `MALLEE_PAUSE_AT` names, if any (an unknown name
    /// is logged and ignored).
    pub fn from_env() -> Self {
        let pause = std::env::var(PAUSE_ENV).ok().and_then(|name| {
            let step = Step::from_name(&name);
            if step.is_none() {
                tracing::warn!(step = %name, "{PAUSE_ENV} names no step; ignored");
            }
            step
        });
        Self {
            fail: Mutex::new(None),
            pause,
        }
    }

    /// Makes `step` fail from now on (`None`: no step fails).
    pub fn fail_at(&self, step: Option<Step>) {
        *self.fail.lock().expect("fault lock poisoned") = step;
    }

    /// The fault point before `step`: fails when told to, never returns
    /// when told to pause there.
    pub async fn at(&self, step: Step) -> Result<(), CloudError> {
        if self.pause == Some(step) {
            tracing::warn!(step = step.name(), "paused at {}", step.name());
            std::future::pending::<()>().await;
        }
        if *self.fail.lock().expect("fault lock poisoned") == Some(step) {
            return Err(CloudError::Internal(format!(
                "injected failure at {}",
                step.name()
            )));
        }
        Ok(())
    }
}
