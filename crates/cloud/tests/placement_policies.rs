//! Placement policies per zone, through real launches: `spread` (fewest
//! instances first), `greedy` (fill a node first) and `round-robin`, each
//! within the nodes' room, and a launch that fits nowhere reserving
//! nothing.

use std::collections::BTreeMap;

use mallee_cloud::instances::launch::{self, RunInstances};
use mallee_cloud::instances::placement::Policy;
use mallee_cloud::testkit::{TestCloud, ZONE, machine_image, node, run_request};
use mallee_cloud::{CloudError, Principal};

const IMAGE: &str = "ami-0123456789abcdef0";

/// Three nodes with room for four t1.micro instances each (the type takes
/// one core), the image and an account; the zone uses `policy`.
async fn cloud(policy: Policy) -> (TestCloud, Principal) {
    let cloud = TestCloud::with_config(|c| {
        c.placement.insert(ZONE.into(), policy);
    })
    .await;
    for id in ["node-1", "node-2", "node-3"] {
        cloud.add_node(node(id, ZONE, 4, 65536, 1000)).await;
    }
    let owner = cloud.principal("owner").await;
    cloud
        .store
        .create_image(&machine_image(IMAGE, owner.account_id()), &[])
        .await
        .expect("image");
    (cloud, owner)
}

fn request(count: usize) -> RunInstances {
    RunInstances {
        associate_public_ip: Some(false),
        ..run_request(IMAGE, count)
    }
}

/// The nodes of `count` launches of one instance each, in launch order.
async fn launch_one_by_one(cloud: &TestCloud, owner: &Principal, count: usize) -> Vec<String> {
    let mut nodes = Vec::new();
    for _ in 0..count {
        let launched = launch::run(cloud, owner, request(1)).await.expect("launch");
        nodes.push(launched.instances[0].record.node_id.clone());
    }
    nodes
}

fn per_node(nodes: &[String]) -> BTreeMap<&str, usize> {
    let mut counts = BTreeMap::new();
    for n in nodes {
        *counts.entry(n.as_str()).or_default() += 1;
    }
    counts
}

#[tokio::test]
async fn spread_puts_each_instance_on_the_node_with_the_fewest() {
    let (cloud, owner) = cloud(Policy::Spread).await;
    let nodes = launch_one_by_one(&cloud, &owner, 6).await;
    assert_eq!(
        per_node(&nodes),
        BTreeMap::from([("node-1", 2), ("node-2", 2), ("node-3", 2)])
    );
    // One call of five spreads too.
    let batch = launch::run(&cloud, &owner, request(5))
        .await
        .expect("batch");
    let nodes: Vec<String> = batch
        .instances
        .iter()
        .map(|i| i.record.node_id.clone())
        .collect();
    let counts = per_node(&nodes);
    assert!(counts.values().all(|n| *n <= 2), "{counts:?}");
}

#[tokio::test]
async fn greedy_fills_a_node_before_the_next() {
    let (cloud, owner) = cloud(Policy::Greedy).await;
    let nodes = launch_one_by_one(&cloud, &owner, 6).await;
    assert_eq!(
        nodes,
        ["node-1", "node-1", "node-1", "node-1", "node-2", "node-2"]
    );
}

#[tokio::test]
async fn round_robin_takes_the_nodes_in_turn() {
    let (cloud, owner) = cloud(Policy::RoundRobin).await;
    let nodes = launch_one_by_one(&cloud, &owner, 7).await;
    assert_eq!(
        nodes,
        [
            "node-1", "node-2", "node-3", "node-1", "node-2", "node-3", "node-1"
        ]
    );
    // A full node is skipped: node-1 has 3 instances, node-2 and node-3
    // two; fill node-1 up through the batch and keep turning.
    let batch = launch::run(&cloud, &owner, request(5))
        .await
        .expect("batch");
    let nodes: Vec<&str> = batch
        .instances
        .iter()
        .map(|i| i.record.node_id.as_str())
        .collect();
    assert_eq!(nodes, ["node-2", "node-3", "node-1", "node-2", "node-3"]);
}

#[tokio::test]
async fn no_policy_places_beyond_the_room_there_is() {
    for policy in Policy::ALL {
        let (cloud, owner) = cloud(policy).await;
        let full = launch::run(&cloud, &owner, request(12))
            .await
            .expect("fills all");
        assert_eq!(full.instances.len(), 12, "{policy}");
        let err = launch::run(&cloud, &owner, request(1))
            .await
            .expect_err("no room");
        assert!(
            matches!(err, CloudError::InsufficientCapacity { .. }),
            "{policy}: {err:?}"
        );
        assert_eq!(cloud.store.instances(None).await.expect("list").len(), 12);
    }
}

#[test]
fn policies_parse_by_name() {
    for policy in Policy::ALL {
        assert_eq!(policy.name().parse::<Policy>(), Ok(policy));
    }
    assert!("fastest".parse::<Policy>().is_err());
}
