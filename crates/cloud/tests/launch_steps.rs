//! RunInstances' launch steps: a failure injected at each step leaves
//! nothing behind (no reservation, instance, address, volume or group
//! membership), and the same launch without the fault completes, so the
//! checks are not vacuous.

use mallee_cloud::faults::Step;
use mallee_cloud::instances::launch::{self, RunInstances};
use mallee_cloud::testkit::{TestCloud, ZONE, machine_image, node, run_request};
use mallee_cloud::{CloudError, Principal};
use mallee_store::{ImageBlockDevice, TagPair};

const IMAGE: &str = "ami-0123456789abcdef0";

/// A cloud with one roomy node, an HVM image and an account.
async fn fixture() -> (TestCloud, Principal) {
    let cloud = TestCloud::new().await;
    cloud.add_node(node("node-1", ZONE, 64, 65536, 1000)).await;
    let owner = cloud.principal("owner").await;
    let image = machine_image(IMAGE, owner.account_id());
    cloud.store.create_image(&image, &[]).await.expect("image");
    (cloud, owner)
}

/// Two instances with a public address each, an extra EBS volume each,
/// tags and a client token.
fn request() -> RunInstances {
    RunInstances {
        client_token: Some("token-1".into()),
        associate_public_ip: Some(true),
        tags: vec![TagPair {
            key: "team".into(),
            value: "qa".into(),
        }],
        block_device_mappings: vec![ImageBlockDevice {
            device_name: "/dev/sdf".into(),
            snapshot_id: None,
            volume_size_gib: Some(1),
            delete_on_termination: true,
            volume_type: None,
            virtual_name: None,
            no_device: false,
        }],
        ..run_request(IMAGE, 2)
    }
}

/// What a launch can leave behind, counted.
#[derive(Debug, PartialEq, Eq)]
struct Left {
    instances: usize,
    addresses: usize,
    volumes: usize,
    reservation: bool,
    members: usize,
}

async fn left(cloud: &TestCloud, owner: &Principal) -> Left {
    let store = &cloud.store;
    let groups = store
        .security_groups(owner.account_id())
        .await
        .expect("groups");
    let mut members = 0;
    for g in &groups {
        members += store
            .instances_in_group(&g.group_id)
            .await
            .expect("members")
            .len();
    }
    Left {
        instances: store.instances(None).await.expect("instances").len(),
        addresses: store.addresses(None).await.expect("addresses").len(),
        volumes: store.volumes(None).await.expect("volumes").len(),
        reservation: store
            .reservation_by_client_token(owner.account_id(), "token-1")
            .await
            .expect("reservation")
            .is_some(),
        members,
    }
}

const NOTHING: Left = Left {
    instances: 0,
    addresses: 0,
    volumes: 0,
    reservation: false,
    members: 0,
};

/// The virtual steps, in the order a launch takes them.
const VIRTUAL_STEPS: [Step; 6] = [
    Step::Quota,
    Step::Network,
    Step::Capacity,
    Step::PrivateAddresses,
    Step::PublicAddresses,
    Step::Records,
];

async fn fails_cleanly_at(step: Step) {
    let (cloud, owner) = fixture().await;
    cloud.faults.fail_at(Some(step));
    let err = launch::run(&cloud, &owner, request())
        .await
        .expect_err("the injected failure");
    assert!(
        matches!(&err, CloudError::Internal(m) if m.contains(step.name())),
        "{step:?}: {err:?}"
    );
    assert_eq!(
        left(&cloud, &owner).await,
        NOTHING,
        "left behind at {step:?}"
    );
    // The same launch goes through once the fault is gone.
    cloud.faults.fail_at(None);
    let launched = launch::run(&cloud, &owner, request())
        .await
        .expect("launch without the fault");
    assert_eq!(launched.instances.len(), 2);
    assert_eq!(
        left(&cloud, &owner).await,
        Left {
            instances: 2,
            addresses: 2,
            volumes: 2,
            reservation: true,
            members: 2,
        }
    );
}

#[tokio::test]
async fn a_failure_at_the_quota_step_leaves_nothing() {
    fails_cleanly_at(Step::Quota).await;
}

#[tokio::test]
async fn a_failure_at_the_network_step_leaves_nothing() {
    fails_cleanly_at(Step::Network).await;
}

#[tokio::test]
async fn a_failure_at_the_capacity_step_leaves_nothing() {
    fails_cleanly_at(Step::Capacity).await;
}

#[tokio::test]
async fn a_failure_at_the_private_address_step_leaves_nothing() {
    fails_cleanly_at(Step::PrivateAddresses).await;
}

#[tokio::test]
async fn a_failure_at_the_public_address_step_leaves_nothing() {
    fails_cleanly_at(Step::PublicAddresses).await;
}

#[tokio::test]
async fn a_failure_at_the_records_step_gives_back_the_public_addresses() {
    fails_cleanly_at(Step::Records).await;
}

#[test]
fn every_virtual_step_is_tested_and_named_uniquely() {
    for step in VIRTUAL_STEPS {
        assert_eq!(Step::from_name(step.name()), Some(step));
    }
    // The bare-metal zone adds only the machine reservation.
    let metal_only: Vec<Step> = Step::ALL
        .into_iter()
        .filter(|s| !VIRTUAL_STEPS.contains(s))
        .collect();
    assert_eq!(metal_only, [Step::Machines]);
}

/// A launch that does not fit reserves nothing: refused capacity is a
/// step's failure like any other.
#[tokio::test]
async fn a_launch_that_fits_nowhere_reserves_nothing() {
    let (cloud, owner) = fixture().await;
    let mut too_many = request();
    too_many.min_count = 1000;
    too_many.max_count = 1000;
    let err = launch::run(&cloud, &owner, too_many)
        .await
        .expect_err("no room");
    assert!(
        matches!(
            err,
            CloudError::InsufficientCapacity { .. } | CloudError::LimitExceeded { .. }
        ),
        "{err:?}"
    );
    assert_eq!(left(&cloud, &owner).await, NOTHING);
}
