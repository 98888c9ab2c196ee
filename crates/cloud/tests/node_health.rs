//! Failure isolation: a node silent past the timeout is down; its
//! instances show an impaired system status, new launches go to the other
//! nodes, and the other nodes' instances are unaffected. When it heartbeats
//! again everything is as before.

use mallee_cloud::instances::describe::{Check, statuses};
use mallee_cloud::instances::launch;
use mallee_cloud::testkit::{InstanceBuilder, TestCloud, ZONE, machine_image, node, run_request};
use mallee_cloud::{CloudError, ids};

const IMAGE: &str = "ami-0123456789abcdef0";
const ON_NODE_2: &str = "i-0000000000000000b";
const ON_NODE_1: &str = "i-0000000000000000a";

#[tokio::test]
async fn a_silent_node_is_down_its_instances_impaired_and_skipped_by_placement() {
    let cloud = TestCloud::with_config(|c| {
        c.node_timeout = std::time::Duration::from_millis(300);
    })
    .await;
    let owner = cloud.principal("owner").await;
    cloud
        .store
        .create_image(&machine_image(IMAGE, owner.account_id()), &[])
        .await
        .expect("image");
    for id in ["node-1", "node-2"] {
        cloud.add_node(node(id, ZONE, 4, 65536, 1000)).await;
    }
    let heartbeat = |id: &'static str| {
        let cloud = &cloud;
        async move {
            let mut n = node(id, ZONE, 4, 65536, 1000);
            n.updated_at = ids::now_millis();
            cloud.add_node(n).await;
        }
    };
    heartbeat("node-1").await;
    heartbeat("node-2").await;
    InstanceBuilder::new(ON_NODE_1, owner.account_id())
        .node("node-1")
        .address("172.31.0.4", "02:00:00:00:00:0a")
        .store(&cloud)
        .await;
    InstanceBuilder::new(ON_NODE_2, owner.account_id())
        .node("node-2")
        .address("172.31.0.5", "02:00:00:00:00:0b")
        .store(&cloud)
        .await;
    let checks = |all: Vec<mallee_cloud::instances::describe::InstanceStatus>| {
        let mut v: Vec<(String, Check, Check)> = all
            .into_iter()
            .map(|s| (s.instance.id().to_owned(), s.system, s.instance_check))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    };
    assert_eq!(
        checks(
            statuses(&cloud, &owner, &[], false)
                .await
                .expect("statuses")
        ),
        [
            (ON_NODE_1.to_owned(), Check::Ok, Check::Ok),
            (ON_NODE_2.to_owned(), Check::Ok, Check::Ok)
        ]
    );
    // node-2 falls silent; node-1 keeps heartbeating.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    heartbeat("node-1").await;
    assert_eq!(
        checks(
            statuses(&cloud, &owner, &[], false)
                .await
                .expect("statuses")
        ),
        [
            (ON_NODE_1.to_owned(), Check::Ok, Check::Ok),
            (
                ON_NODE_2.to_owned(),
                Check::Impaired,
                Check::InsufficientData
            )
        ]
    );
    // Three more launches all land on node-1 (room for four there).
    for _ in 0..3 {
        let launched = launch::run(&cloud, &owner, run_request(IMAGE, 1))
            .await
            .expect("launch");
        assert_eq!(launched.instances[0].record.node_id, "node-1");
    }
    // node-1 is full now; node-2 is down: nothing fits.
    let err = launch::run(&cloud, &owner, run_request(IMAGE, 1))
        .await
        .expect_err("no node up with room");
    assert!(
        matches!(err, CloudError::InsufficientCapacity { .. }),
        "{err:?}"
    );
    // node-2 comes back.
    heartbeat("node-2").await;
    let launched = launch::run(&cloud, &owner, run_request(IMAGE, 1))
        .await
        .expect("launch on the returned node");
    assert_eq!(launched.instances[0].record.node_id, "node-2");
    let all = checks(
        statuses(&cloud, &owner, &[ON_NODE_2.to_owned()], true)
            .await
            .expect("statuses"),
    );
    assert_eq!(all, [(ON_NODE_2.to_owned(), Check::Ok, Check::Ok)]);
}
