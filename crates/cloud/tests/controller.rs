//! The controller against simulated nodes: launches, lifecycle actions and
//! failures go through the domain (`instances::launch`, `lifecycle`) and
//! the reconciler's passes to [`SimNode`]s, in-memory node agents that
//! boot, stop and fail on command. No root, QEMU or network: each test
//! takes well under a second.

use std::sync::Arc;
use std::time::{Duration, Instant};

use mallee_cloud::error::Capacity;
use mallee_cloud::instances::launch::{self, RunInstances};
use mallee_cloud::instances::lifecycle;
use mallee_cloud::instances::model::{Desired, Instance, InstanceState, ShutdownBehavior};
use mallee_cloud::testkit::{TestCloud, ZONE, machine_image, run_request};
use mallee_cloud::{Cloud, CloudError, Principal, nodes, reconciler};
use mallee_node_api::VmState;
use mallee_node_sim::{CallKind, SimCapacity, SimConfig, SimNode};
use mallee_store::Image;

const IMAGE: &str = "ami-0123456789abcdef0";
/// How long a test waits for the controller to get somewhere.
const WAIT: Duration = Duration::from_secs(10);

/// A cloud, a caller with a launchable image, and simulated nodes.
struct Cluster {
    tc: TestCloud,
    caller: Principal,
    nodes: Vec<SimNode>,
}

impl Cluster {
    /// A cluster whose nodes offer `cores` each (memory and disk to spare).
    async fn new(cores: &[u32]) -> Self {
        let tc = TestCloud::new().await;
        let caller = tc.principal("alice").await;
        tc.store
            .create_image(&image(caller.account_id()), &[])
            .await
            .expect("image");
        let mut nodes = Vec::new();
        for (index, cores) in cores.iter().enumerate() {
            let node = SimNode::new(SimConfig {
                node_id: Some(format!("node-{index}")),
                zone: ZONE.into(),
                capacity: SimCapacity {
                    cores: *cores,
                    ..SimCapacity::default()
                },
                boot_delay: Duration::from_millis(20),
                stop_delay: Duration::from_millis(10),
                underlay_ip: Some(underlay(index)),
                ..SimConfig::default()
            });
            tc.compute
                .nodes
                .attach(node.node_id(), Arc::new(node.clone()));
            let url = format!("https://sim.invalid/{}", node.node_id());
            let certificate = tc.enrol_node(node.node_id(), ZONE).await;
            nodes::register(&tc, &node.registration(&url), &certificate)
                .await
                .expect("register");
            nodes.push(node);
        }
        Self { tc, caller, nodes }
    }

    fn cloud(&self) -> &Arc<Cloud> {
        &self.tc.cloud
    }

    /// RunInstances of `count` m1.small (1 core) instances, at least `min`.
    async fn launch(
        &self,
        min: usize,
        count: usize,
        behavior: ShutdownBehavior,
    ) -> Result<Vec<String>, CloudError> {
        let launched =
            launch::run(self.cloud(), &self.caller, request(min, count, behavior)).await?;
        Ok(launched
            .instances
            .iter()
            .map(|i| i.id().to_owned())
            .collect())
    }

    async fn instance(&self, id: &str) -> Instance {
        let record = self
            .tc
            .store
            .instance(id)
            .await
            .expect("store")
            .expect("row");
        Instance::decode(record).expect("decodes")
    }

    /// Runs reconciler passes until `probe` holds; fails after [`WAIT`].
    async fn until(&self, what: &str, probe: impl AsyncFn(&Self) -> bool) {
        let deadline = Instant::now() + WAIT;
        loop {
            reconciler::pass(self.cloud()).await.expect("pass");
            if probe(self).await {
                return;
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Runs passes until every instance in `ids` is in `state`.
    async fn until_all(&self, ids: &[String], state: InstanceState) {
        self.until(&format!("{ids:?} {}", state.name()), async |c| {
            for id in ids {
                if c.instance(id).await.state != state {
                    return false;
                }
            }
            true
        })
        .await;
    }

    /// The simulated node an instance is placed on.
    async fn node_of(&self, id: &str) -> &SimNode {
        let node_id = self.instance(id).await.record.node_id;
        self.nodes
            .iter()
            .find(|n| n.node_id() == node_id)
            .expect("placed on a simulated node")
    }
}

/// The underlay address of the `index`th simulated node.
fn underlay(index: usize) -> String {
    format!("192.0.2.{}", index + 1)
}

fn image(account: &str) -> Image {
    Image {
        name: "linux".into(),
        location: "images/linux.img".into(),
        key: "linux.img".into(),
        size: 1 << 30,
        ..machine_image(IMAGE, account)
    }
}

fn request(min: usize, max: usize, behavior: ShutdownBehavior) -> RunInstances {
    RunInstances {
        min_count: min,
        max_count: max,
        instance_type: "m1.small".into(),
        shutdown_behavior: behavior,
        ..run_request(IMAGE, max)
    }
}

fn ids(ids: &[&String]) -> Vec<String> {
    ids.iter().map(|id| (*id).clone()).collect()
}

#[tokio::test]
async fn a_launch_runs_on_its_node() {
    let c = Cluster::new(&[4]).await;
    let launched = c
        .launch(1, 1, ShutdownBehavior::Stop)
        .await
        .expect("launch");
    assert_eq!(c.instance(&launched[0]).await.state, InstanceState::Pending);
    c.until_all(&launched, InstanceState::Running).await;
    let vm = c.nodes[0].vm(&launched[0]).expect("on the node");
    assert_eq!(
        (vm.state, vm.running, vm.boots),
        (VmState::Running, true, 1)
    );
    assert_eq!(vm.spec.instance_type, "m1.small");
}

#[tokio::test]
async fn launches_spread_over_nodes_up_to_their_room() {
    let c = Cluster::new(&[4, 2, 1]).await;
    let launched = c
        .launch(1, 10, ShutdownBehavior::Stop)
        .await
        .expect("launch");
    assert_eq!(launched.len(), 7, "as many as the nodes have cores");
    c.until_all(&launched, InstanceState::Running).await;
    let held: Vec<usize> = c.nodes.iter().map(|n| n.vms().len()).collect();
    assert_eq!(held, [4, 2, 1]);
    // The first ones go where the most cores are free, then alternate.
    assert_eq!(c.node_of(&launched[0]).await.node_id(), "node-0");
}

#[tokio::test]
async fn a_launch_that_fits_nowhere_reserves_nothing() {
    let c = Cluster::new(&[2, 1]).await;
    let err = c
        .launch(4, 4, ShutdownBehavior::Stop)
        .await
        .expect_err("only three fit");
    assert!(
        matches!(
            &err,
            CloudError::InsufficientCapacity {
                capacity: Capacity::Instances,
                message,
            } if message.contains("Room for 3 more, at least 4 requested")
        ),
        "{err:?}"
    );
    assert!(c.tc.store.instances(None).await.expect("store").is_empty());
    assert!(c.tc.store.addresses(None).await.expect("store").is_empty());
    c.until("a quiet pass", async |_| true).await;
    for node in &c.nodes {
        assert!(node.vms().is_empty());
        assert_eq!(node.calls(CallKind::PutInstance), 0);
    }
    // What does fit still launches.
    let launched = c.launch(3, 3, ShutdownBehavior::Stop).await.expect("three");
    c.until_all(&launched, InstanceState::Running).await;
}

#[tokio::test]
async fn stop_and_start_keep_the_node_and_its_room() {
    let c = Cluster::new(&[1, 1]).await;
    let a = c.launch(1, 1, ShutdownBehavior::Stop).await.expect("a");
    c.until_all(&a, InstanceState::Running).await;
    let home = c.instance(&a[0]).await.record.node_id;

    let stopped = lifecycle::stop(c.cloud(), &c.caller, &a)
        .await
        .expect("stop");
    assert_eq!(stopped[0].current, InstanceState::Stopping);
    c.until_all(&a, InstanceState::Stopped).await;
    let vm = c.node_of(&a[0]).await.vm(&a[0]).expect("kept on its node");
    assert_eq!((vm.state, vm.running), (VmState::Stopped, false));

    // A stopped instance holds no room: two more launches fill both nodes,
    // so the stopped one cannot start on its own node.
    let others = c.launch(2, 2, ShutdownBehavior::Stop).await.expect("both");
    c.until_all(&others, InstanceState::Running).await;
    let err = lifecycle::start(c.cloud(), &c.caller, &a)
        .await
        .expect_err("its node is full");
    assert!(matches!(
        err,
        CloudError::InsufficientCapacity {
            capacity: Capacity::Instances,
            ..
        }
    ));
    assert_eq!(c.instance(&a[0]).await.state, InstanceState::Stopped);

    // Room again on its node (not just anywhere): it starts there.
    let mut on_home = Vec::new();
    for id in &others {
        if c.instance(id).await.record.node_id == home {
            on_home.push(id);
        }
    }
    let on_home = ids(&on_home);
    lifecycle::terminate(c.cloud(), &c.caller, &on_home)
        .await
        .expect("terminate");
    c.until_all(&on_home, InstanceState::Terminated).await;
    let started = lifecycle::start(c.cloud(), &c.caller, &a)
        .await
        .expect("start");
    assert_eq!(
        (started[0].previous, started[0].current),
        (InstanceState::Stopped, InstanceState::Pending)
    );
    c.until_all(&a, InstanceState::Running).await;
    assert_eq!(c.instance(&a[0]).await.record.node_id, home);
    let vm = c.node_of(&a[0]).await.vm(&a[0]).expect("on its node");
    assert_eq!((vm.state, vm.boots), (VmState::Running, 2));
}

#[tokio::test]
async fn a_guest_poweroff_stops_or_terminates_as_the_instance_says() {
    let c = Cluster::new(&[4]).await;
    let stops = c.launch(1, 1, ShutdownBehavior::Stop).await.expect("stop");
    let terminates = c
        .launch(1, 1, ShutdownBehavior::Terminate)
        .await
        .expect("terminate");
    let both = [stops[0].clone(), terminates[0].clone()];
    c.until_all(&both, InstanceState::Running).await;
    for id in &both {
        c.nodes[0].guest_poweroff(id).expect("poweroff");
    }
    c.until_all(&stops, InstanceState::Stopped).await;
    c.until_all(&terminates, InstanceState::Terminated).await;
    for id in &both {
        let reason = c.instance(id).await.details.state_reason.expect("reason");
        assert_eq!(reason.code, "Client.InstanceInitiatedShutdown", "{id}");
    }
    assert_eq!(c.instance(&stops[0]).await.desired, Desired::Stopped);
    assert!(
        c.nodes[0].vm(&stops[0]).is_some(),
        "a stopped instance stays"
    );
    assert!(
        c.nodes[0].vm(&terminates[0]).is_none(),
        "a terminated one goes"
    );
}

#[tokio::test]
async fn a_failed_vm_or_boot_terminates_the_instance_with_the_reason() {
    let c = Cluster::new(&[4]).await;
    let running = c
        .launch(1, 1, ShutdownBehavior::Stop)
        .await
        .expect("launch");
    c.until_all(&running, InstanceState::Running).await;
    c.nodes[0]
        .fail(&running[0], "qemu exited with status 1")
        .expect("fail");
    c.nodes[0].fail_next_boot("image ami-0123456789abcdef0 could not be fetched");
    let booting = c
        .launch(1, 1, ShutdownBehavior::Stop)
        .await
        .expect("launch");
    c.until_all(&running, InstanceState::Terminated).await;
    c.until_all(&booting, InstanceState::Terminated).await;
    for (id, message) in [
        (&running[0], "qemu exited with status 1"),
        (
            &booting[0],
            "image ami-0123456789abcdef0 could not be fetched",
        ),
    ] {
        let reason = c.instance(id).await.details.state_reason.expect("reason");
        assert_eq!(reason.code, "Server.InternalError");
        assert_eq!(reason.message, format!("Server.InternalError: {message}"));
        assert!(c.nodes[0].vm(id).is_none(), "{id} removed from its node");
    }
}

#[tokio::test]
async fn instances_outlive_an_agent_outage_without_a_restart() {
    let c = Cluster::new(&[4]).await;
    let launched = c
        .launch(2, 2, ShutdownBehavior::Stop)
        .await
        .expect("launch");
    c.until_all(&launched, InstanceState::Running).await;
    let node = &c.nodes[0];
    let puts = node.calls(CallKind::PutInstance);

    node.crash_agent();
    for _ in 0..5 {
        reconciler::pass(c.cloud()).await.expect("pass");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    for id in &launched {
        assert_eq!(
            c.instance(id).await.state,
            InstanceState::Running,
            "an unreachable node changes nothing"
        );
    }

    node.restart_agent();
    let reports = node.calls(CallKind::Report);
    c.until("a report from the restarted agent", async |_| {
        node.calls(CallKind::Report) > reports + 1
    })
    .await;
    for id in &launched {
        assert_eq!(c.instance(id).await.state, InstanceState::Running);
        let vm = node.vm(id).expect("still on the node");
        assert_eq!(
            (vm.state, vm.boots),
            (VmState::Running, 1),
            "adopted, not rebooted"
        );
    }
    assert_eq!(
        node.calls(CallKind::PutInstance),
        puts,
        "nothing sent again"
    );
}

#[tokio::test]
async fn terminate_removes_the_vm_from_its_node() {
    let c = Cluster::new(&[2, 2]).await;
    let launched = c
        .launch(2, 2, ShutdownBehavior::Stop)
        .await
        .expect("launch");
    c.until_all(&launched, InstanceState::Running).await;
    let gone = &launched[..1];
    let changes = lifecycle::terminate(c.cloud(), &c.caller, gone)
        .await
        .expect("terminate");
    assert_eq!(
        (changes[0].previous, changes[0].current),
        (InstanceState::Running, InstanceState::ShuttingDown)
    );
    let node = c.node_of(&launched[0]).await;
    c.until_all(gone, InstanceState::Terminated).await;
    assert!(node.vm(&launched[0]).is_none());
    let kept = c
        .node_of(&launched[1])
        .await
        .vm(&launched[1])
        .expect("kept");
    assert_eq!(kept.state, VmState::Running);
    assert!(
        c.instance(&launched[0])
            .await
            .record
            .terminated_at
            .is_some()
    );
}

#[tokio::test]
async fn each_node_gets_the_overlay_of_its_vpcs() {
    let c = Cluster::new(&[1, 1, 1]).await;
    let stored = c.tc.store.nodes().await.expect("nodes");
    assert_eq!(
        stored
            .iter()
            .map(|n| n.underlay_ip.as_deref())
            .collect::<Vec<_>>(),
        [Some("192.0.2.1"), Some("192.0.2.2"), Some("192.0.2.3")],
        "registration records each node's underlay address"
    );
    let alice = c
        .launch(2, 2, ShutdownBehavior::Stop)
        .await
        .expect("alice's launch");
    let bob = c.tc.principal("bob").await;
    let bobs_image = Image {
        image_id: "ami-0000000000000000b".into(),
        ..image(bob.account_id())
    };
    c.tc.store
        .create_image(&bobs_image, &[])
        .await
        .expect("bob's image");
    let bobs = launch::run(
        c.cloud(),
        &bob,
        RunInstances {
            image_id: bobs_image.image_id.clone(),
            ..request(1, 1, ShutdownBehavior::Stop)
        },
    )
    .await
    .expect("bob's launch");
    let bob_id = bobs.instances[0].id().to_owned();
    let all: Vec<String> = alice.iter().cloned().chain([bob_id.clone()]).collect();
    c.until_all(&all, InstanceState::Running).await;

    let (a, b) = (c.instance(&alice[0]).await, c.instance(&alice[1]).await);
    let (node_a, node_b, node_bob) = (
        c.node_of(&alice[0]).await,
        c.node_of(&alice[1]).await,
        c.node_of(&bob_id).await,
    );
    assert!(node_a.node_id() != node_b.node_id() && node_b.node_id() != node_bob.node_id());
    let alice_vpc =
        c.tc.store
            .default_vpc(c.caller.account_id())
            .await
            .expect("store")
            .expect("alice's VPC");
    let bob_vpc =
        c.tc.store
            .default_vpc(bob.account_id())
            .await
            .expect("store")
            .expect("bob's VPC");
    let underlay_of = |node: &SimNode| {
        stored
            .iter()
            .find(|n| n.node_id == node.node_id())
            .and_then(|n| n.underlay_ip.clone())
            .expect("underlay")
    };
    c.until("every node's overlay", async |_| {
        [node_a, node_b, node_bob]
            .iter()
            .all(|n| n.overlay().networks.len() == 1)
    })
    .await;

    let seen_by_a = node_a.overlay();
    let network = &seen_by_a.networks[0];
    assert_eq!(network.network_id, alice_vpc.vpc.vpc_id);
    assert_eq!(
        network
            .segments
            .iter()
            .map(|s| (s.subnet_cidr.clone(), s.vni))
            .collect::<Vec<_>>(),
        alice_vpc
            .subnets
            .iter()
            .map(|s| (s.cidr.clone(), s.vni))
            .collect::<Vec<_>>(),
        "every subnet of the VPC with the VNI the store gave it"
    );
    assert_eq!(network.segments[0].gateway, "172.31.0.1");
    assert_eq!(network.peers, [underlay_of(node_b)]);
    let nic = &b.details.spec.nics[0];
    assert_eq!(network.remote_ports.len(), 1);
    let remote = &network.remote_ports[0];
    assert_eq!(
        (&remote.mac, &remote.ip, remote.vni, &remote.underlay_ip),
        (
            &nic.mac,
            &nic.private_ip,
            alice_vpc.subnets[0].vni,
            &underlay_of(node_b)
        )
    );
    assert_eq!(
        node_b.overlay().networks[0].remote_ports[0].mac,
        a.details.spec.nics[0].mac
    );
    // Bob's VPC has the same addresses, but its own segment and no peer:
    // his instance shares no segment with alice's.
    let seen_by_bob = node_bob.overlay();
    assert_eq!(seen_by_bob.networks[0].network_id, bob_vpc.vpc.vpc_id);
    assert_eq!(
        seen_by_bob.networks[0].segments[0].subnet_cidr,
        alice_vpc.subnets[0].cidr
    );
    assert_ne!(
        seen_by_bob.networks[0].segments[0].vni,
        alice_vpc.subnets[0].vni
    );
    assert!(seen_by_bob.networks[0].peers.is_empty());
    assert!(seen_by_bob.networks[0].remote_ports.is_empty());

    // Nothing changed: nothing is sent again (until the refresh).
    let sent = node_a.calls(CallKind::PutOverlay);
    for _ in 0..3 {
        reconciler::pass(c.cloud()).await.expect("pass");
    }
    assert_eq!(node_a.calls(CallKind::PutOverlay), sent);

    // B goes: A's node forgets it, with a newer generation; B's node has
    // no VPC left.
    let before = node_a.overlay().generation;
    lifecycle::terminate(c.cloud(), &c.caller, &alice[1..])
        .await
        .expect("terminate");
    c.until_all(&alice[1..], InstanceState::Terminated).await;
    c.until("B's departure reaches the overlays", async |_| {
        node_a.overlay().networks[0].peers.is_empty() && node_b.overlay().networks.is_empty()
    })
    .await;
    let after = node_a.overlay();
    assert!(after.generation > before);
    assert!(after.networks[0].remote_ports.is_empty());

    // A node that refuses the overlay gets it again at the next pass.
    let refused = node_bob.overlay().generation;
    node_bob.inject(
        CallKind::PutOverlay,
        mallee_node_sim::Fault::Refuse(mallee_node_api::NodeError::Internal("busy".into())),
    );
    lifecycle::terminate(c.cloud(), &bob, std::slice::from_ref(&bob_id))
        .await
        .expect("terminate bob's");
    c.until("bob's node is told his VPC is gone", async |_| {
        node_bob.overlay().networks.is_empty()
    })
    .await;
    assert!(node_bob.overlay().generation > refused);
}

/// Delivers a simulated node's state pushes to the controller in process,
/// as the node listener's state route does, with the node's own identity.
struct PushToCloud {
    cloud: Arc<Cloud>,
    node_id: String,
}

#[async_trait::async_trait]
impl mallee_node_api::push::StateSink for PushToCloud {
    async fn push(
        &self,
        report: mallee_node_api::StateReport,
    ) -> Result<mallee_node_api::StateAccepted, mallee_node_api::NodeError> {
        mallee_cloud::node_state::observe(&self.cloud, &self.node_id, &report)
            .await
            .map(|applied| mallee_node_api::StateAccepted { applied })
            .map_err(|e| mallee_node_api::NodeError::Transport(e.to_string()))
    }
}

/// Polls the store alone (no reconciler pass) until `id` is in `state`.
async fn recorded(c: &Cluster, id: &str, state: InstanceState) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if c.instance(id).await.state == state {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    false
}

#[tokio::test]
async fn pushed_states_show_without_another_reconciler_pass() {
    let c = Cluster::new(&[4]).await;
    let node = &c.nodes[0];
    let _push = node.push_states(Arc::new(PushToCloud {
        cloud: c.cloud().clone(),
        node_id: node.node_id().to_owned(),
    }));
    let launched = c
        .launch(2, 2, ShutdownBehavior::Stop)
        .await
        .expect("launch");
    // One pass sends the specs; no other pass runs: only the node's pushes
    // can record `running`.
    reconciler::pass(c.cloud()).await.expect("pass");
    for id in &launched {
        assert!(
            recorded(&c, id, InstanceState::Running).await,
            "{id} never recorded running"
        );
    }
    // A guest that powers itself off is recorded (stopping, its behaviour)
    // as promptly.
    node.guest_poweroff(&launched[0]).expect("poweroff");
    assert!(recorded(&c, &launched[0], InstanceState::Stopping).await);
    assert_eq!(c.instance(&launched[1]).await.state, InstanceState::Running);
}

#[tokio::test]
async fn a_push_counts_only_for_its_own_node_and_only_when_newer() {
    let c = Cluster::new(&[4, 4]).await;
    let launched = c
        .launch(1, 1, ShutdownBehavior::Stop)
        .await
        .expect("launch");
    let id = launched[0].clone();
    let home = c.node_of(&id).await.node_id().to_owned();
    let other = c
        .nodes
        .iter()
        .map(|n| n.node_id().to_owned())
        .find(|n| *n != home)
        .expect("two nodes");
    let generation = c.instance(&id).await.record.generation;
    let running = |node_id: &str, report_generation: u64| mallee_node_api::StateReport {
        node_id: node_id.to_owned(),
        generation: report_generation,
        instances: vec![mallee_node_api::ObservedInstance {
            instance_id: id.clone(),
            state: VmState::Running,
            generation: u64::try_from(generation).expect("generation"),
        }],
    };
    let observe = mallee_cloud::node_state::observe;
    // Another node's certificate cannot report for this node.
    assert!(
        observe(c.cloud(), &other, &running(&home, 10))
            .await
            .is_err()
    );
    // Another node cannot report this node's instance as its own.
    assert_eq!(
        observe(c.cloud(), &other, &running(&other, 10))
            .await
            .expect("push"),
        0
    );
    assert_eq!(c.instance(&id).await.state, InstanceState::Pending);
    // The right node: recorded once; an older or repeated push changes
    // nothing.
    assert_eq!(
        observe(c.cloud(), &home, &running(&home, 10))
            .await
            .expect("push"),
        1
    );
    assert_eq!(c.instance(&id).await.state, InstanceState::Running);
    let mut failed = running(&home, 9);
    failed.instances[0].state = VmState::Failed("old news".into());
    assert_eq!(observe(c.cloud(), &home, &failed).await.expect("push"), 0);
    assert_eq!(
        observe(c.cloud(), &home, &running(&home, 10))
            .await
            .expect("push"),
        0
    );
    assert_eq!(c.instance(&id).await.state, InstanceState::Running);
}
