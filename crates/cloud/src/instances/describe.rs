//! What DescribeInstances and DescribeInstanceStatus show a caller: their
//! instances (terminated ones until the reconciler forgets them, an hour
//! after they ended) with the volumes attached to each, and each
//! instance's status checks. The protocol says which filters and page it
//! wants; the store answers them (`InstanceQuery`).

use std::collections::HashMap;

use mallee_store::{InstanceQuery, VolumeRecord};

use crate::instances::lookup;
use crate::instances::model::{Instance, InstanceState};
use crate::{Cloud, CloudError, Principal};

/// The caller's instances and their volumes.
#[derive(Debug, Clone)]
pub struct Described {
    /// The instances, ordered by id.
    pub instances: Vec<Instance>,
    /// The caller's volumes attached to (or attaching to or detaching
    /// from) each instance, by instance id.
    pub volumes: HashMap<String, Vec<VolumeRecord>>,
}

/// The caller's instances that `query` selects (ordered by id, paged as
/// it says), with their volumes: the store finds them, so the cost follows
/// what is returned, not what the account owns. Every id of `query.ids`
/// must name one of the caller's instances, whatever the conditions
/// (`InvalidInstanceID.NotFound` naming every one that does not).
pub async fn matching(
    cloud: &Cloud,
    caller: &Principal,
    query: &InstanceQuery,
) -> Result<Described, CloudError> {
    let account = caller.account_id();
    if !query.ids.is_empty() {
        let named = InstanceQuery {
            ids: query.ids.clone(),
            ..InstanceQuery::default()
        };
        let found = cloud.store.instances_matching(account, &named).await?;
        let missing: Vec<&str> = query
            .ids
            .iter()
            .filter(|id| !found.iter().any(|i| i.instance_id == **id))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(CloudError::instances_not_found(&missing));
        }
    }
    let instances: Vec<Instance> = cloud
        .store
        .instances_matching(account, query)
        .await?
        .into_iter()
        .map(Instance::from_record)
        .collect::<Result<_, _>>()?;
    let ids: Vec<String> = instances.iter().map(|i| i.id().to_owned()).collect();
    let mut volumes: HashMap<String, Vec<VolumeRecord>> = HashMap::new();
    for v in cloud.store.volumes_of_instances(&ids).await? {
        // Only the caller's own volumes, as `instances` shows them.
        if v.account_id != account {
            continue;
        }
        if let Some(instance) = v.instance_id.clone() {
            volumes.entry(instance).or_default().push(v);
        }
    }
    for list in volumes.values_mut() {
        list.sort_by(|a, b| a.volume_id.cmp(&b.volume_id));
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

    async fn instances(
        cloud: &Cloud,
        caller: &Principal,
        ids: &[String],
    ) -> Result<Described, CloudError> {
        let query = InstanceQuery {
            ids: ids.to_vec(),
            ..InstanceQuery::default()
        };
        matching(cloud, caller, &query).await
    }

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

    /// The store finds the fields it reads from the launch details
    /// (`InstanceField::detail_path`, migration 0030's generated columns)
    /// where this crate's records keep them.
    #[tokio::test]
    async fn detail_fields_are_where_the_details_keep_them() {
        use mallee_store::{InstanceCondition, InstanceField};
        let tc = TestCloud::new().await;
        let caller = tc.principal("alice").await;
        let builder = InstanceBuilder::new(A, caller.account_id())
            .placed_in("vpc-0000000000000000a", "subnet-000000000000000a")
            .resources("m1.small", 1, 256, 1);
        let mut instance = builder.instance();
        instance.details.key_name = Some("ops-key".into());
        instance.details.spec.metadata.ami_id = "ami-0000000000000000a".into();
        let record = instance.encode();
        let reservation = mallee_store::Reservation {
            reservation_id: record.reservation_id.clone(),
            account_id: record.account_id.clone(),
            client_token: None,
            request_hash: "h".into(),
            created_at: 1,
        };
        tc.store
            .create_reservation(&reservation, std::slice::from_ref(&record), &[])
            .await
            .expect("reservation");
        for (field, value) in [
            (InstanceField::InstanceType, "m1.small"),
            (InstanceField::ImageId, "ami-0000000000000000a"),
            (InstanceField::KeyName, "ops-key"),
            (InstanceField::SubnetId, "subnet-000000000000000a"),
            (InstanceField::VpcId, "vpc-0000000000000000a"),
        ] {
            assert!(field.detail_path().is_some());
            assert_eq!(field.value_of(&record).as_deref(), Some(value), "{field:?}");
            let query = |pattern: &str| InstanceQuery {
                conditions: vec![InstanceCondition::Field {
                    field,
                    patterns: vec![pattern.to_owned()],
                }],
                ..InstanceQuery::default()
            };
            let found = matching(&tc, &caller, &query(value)).await.expect("query");
            assert_eq!(found.instances.len(), 1, "{field:?} = {value}");
            let other = matching(&tc, &caller, &query("other"))
                .await
                .expect("query");
            assert!(other.instances.is_empty(), "{field:?}");
        }
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
