//! What DescribeInstances and DescribeInstanceStatus show a caller: their
//! instances (terminated ones until the reconciler forgets them, an hour
//! after they ended) with the volumes attached to each, and each
//! instance's status checks. Filters and pages are the protocol's.

use std::collections::HashMap;

use mallee_store::VolumeRecord;

use crate::instances::lookup;
use crate::instances::model::{Instance, InstanceState};
use crate::{Cloud, CloudError, Principal};

/// The caller's instances and their volumes.
#[derive(Debug, Clone)]
pub struct Described {
    /// The instances, in no particular order.
    pub instances: Vec<Instance>,
    /// The caller's volumes attached to (or attaching to or detaching
    /// from) each instance, by instance id.
    pub volumes: HashMap<String, Vec<VolumeRecord>>,
}

/// The caller's instances named by `ids` (all of them when `ids` is
/// empty), with their volumes; `InvalidInstanceID.NotFound` naming every
/// id that is not one of the caller's.
pub async fn instances(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Described, CloudError> {
    let mut instances = lookup::all(cloud, caller).await?;
    let missing: Vec<&str> = ids
        .iter()
        .filter(|id| !instances.iter().any(|i| i.id() == id.as_str()))
        .map(String::as_str)
        .collect();
    if !missing.is_empty() {
        return Err(CloudError::instances_not_found(&missing));
    }
    if !ids.is_empty() {
        instances.retain(|i| ids.iter().any(|id| id == i.id()));
    }
    let mut volumes: HashMap<String, Vec<VolumeRecord>> = HashMap::new();
    for v in cloud.store.volumes(Some(caller.account_id())).await? {
        if let Some(instance) = v.instance_id.clone() {
            volumes.entry(instance).or_default().push(v);
        }
    }
    Ok(Described { instances, volumes })
}

/// How a status check of an instance stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// Passed.
    Ok,
    /// The instance is still starting.
    Initializing,
    /// The instance does not run, so nothing is checked.
    NotApplicable,
    /// The check failed (its node is down).
    Impaired,
    /// Nothing is known (the node that would tell is down).
    InsufficientData,
}

impl Check {
    /// A status check's `status` (`ok`, `initializing`, `not-applicable`).
    pub fn status(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Initializing => "initializing",
            Self::NotApplicable => "not-applicable",
            Self::Impaired => "impaired",
            Self::InsufficientData => "insufficient-data",
        }
    }

    /// Its `reachability` detail (`passed`, `initializing`,
    /// `not-applicable`).
    pub fn reachability(self) -> &'static str {
        match self {
            Self::Ok => "passed",
            Self::Initializing => "initializing",
            Self::NotApplicable => "not-applicable",
            Self::Impaired => "failed",
            Self::InsufficientData => "insufficient-data",
        }
    }
}

/// One instance's status. The system check is its node's health; both
/// checks otherwise follow from the instance's state (the node reports no
/// finer health).
#[derive(Debug, Clone)]
pub struct InstanceStatus {
    /// The instance.
    pub instance: Instance,
    /// The system (host) check.
    pub system: Check,
    /// The instance check.
    pub instance_check: Check,
}

impl InstanceStatus {
    fn of(instance: Instance, node_down: bool) -> Self {
        let check = match instance.state {
            InstanceState::Running => Check::Ok,
            InstanceState::Pending => Check::Initializing,
            _ => Check::NotApplicable,
        };
        let live = matches!(
            instance.state,
            InstanceState::Running | InstanceState::Pending | InstanceState::Stopping
        );
        let (system, instance_check) = if node_down && live {
            (Check::Impaired, Check::InsufficientData)
        } else {
            (check, check)
        };
        Self {
            instance,
            system,
            instance_check,
        }
    }
}

/// The status of the caller's instances named by `ids` (all of them when
/// `ids` is empty): running ones only, unless `include_all`.
pub async fn statuses(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
    include_all: bool,
) -> Result<Vec<InstanceStatus>, CloudError> {
    let instances = if ids.is_empty() {
        lookup::all(cloud, caller).await?
    } else {
        lookup::owned(cloud, caller, ids).await?
    };
    let down = crate::health::down(cloud, &cloud.store.nodes().await?, crate::ids::now_millis());
    Ok(instances
        .into_iter()
        .filter(|i| include_all || i.state == InstanceState::Running)
        .map(|i| {
            let node_down = down.contains(&i.record.node_id);
            InstanceStatus::of(i, node_down)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::instances::model::Desired;
    use crate::testkit::{InstanceBuilder, TestCloud};

    const A: &str = "i-0000000000000000a";
    const B: &str = "i-0000000000000000b";

    async fn two(tc: &TestCloud, caller: &Principal) {
        InstanceBuilder::new(A, caller.account_id()).store(tc).await;
        InstanceBuilder::new(B, caller.account_id())
            .address("172.31.0.5", "02:00:00:00:00:05")
            .state(InstanceState::Pending, Desired::Running)
            .store(tc)
            .await;
    }

    #[tokio::test]
    async fn named_instances_must_all_be_the_callers() {
        let tc = TestCloud::new().await;
        let alice = tc.principal("alice").await;
        let bob = tc.principal("bob").await;
        two(&tc, &alice).await;
        let mut all: Vec<String> = instances(&tc, &alice, &[])
            .await
            .expect("all")
            .instances
            .iter()
            .map(|i| i.id().to_owned())
            .collect();
        all.sort();
        assert_eq!(all, [A, B]);
        let one = instances(&tc, &alice, &[B.to_owned()]).await.expect("one");
        assert_eq!(one.instances.len(), 1);
        assert_eq!(one.instances[0].id(), B);
        assert!(
            instances(&tc, &bob, &[])
                .await
                .expect("none")
                .instances
                .is_empty()
        );
        assert_eq!(
            instances(&tc, &bob, &[A.to_owned(), B.to_owned()])
                .await
                .map(|d| d.instances.len()),
            Err(CloudError::instances_not_found(&[A, B]))
        );
    }

    #[tokio::test]
    async fn status_follows_the_state() {
        let tc = TestCloud::new().await;
        let caller = tc.principal("alice").await;
        two(&tc, &caller).await;
        let running = statuses(&tc, &caller, &[], false).await.expect("running");
        assert_eq!(running.len(), 1);
        assert_eq!(
            (running[0].instance.id(), running[0].system),
            (A, Check::Ok)
        );
        let pending = statuses(&tc, &caller, &[B.to_owned()], true)
            .await
            .expect("all");
        assert_eq!(pending[0].system, Check::Initializing);
        assert_eq!(
            (pending[0].system.status(), pending[0].system.reachability()),
            ("initializing", "initializing")
        );
        assert!(
            statuses(&tc, &caller, &[B.to_owned()], false)
                .await
                .expect("named")
                .is_empty(),
            "a named instance that is not running is left out too"
        );
    }
}
