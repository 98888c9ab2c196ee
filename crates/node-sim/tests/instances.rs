//! The simulated node's instances driven over HTTP through node-api's own
//! client, as the controller drives any node: the life cycle, idempotency
//! by id and generation, capacity, console, reboot, the firewall policy,
//! refusals, injected faults, and an agent outage with adoption.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use mallee_node_api::*;
use mallee_node_sim::{CallKind, Fault, SimCapacity, SimConfig, SimError, SimNode};

const I1: &str = "i-00000000000000001";
const I2: &str = "i-00000000000000002";
const I3: &str = "i-00000000000000003";

fn running(s: &VmState) -> bool {
    *s == VmState::Running
}

#[tokio::test]
async fn life_cycle_is_idempotent_by_id_and_generation() {
    let (sim, _server, node) = served(SimConfig::default(), None).await;
    let info = node.info().await.expect("info");
    assert_eq!(info.node_id, sim.node_id());
    assert_eq!(info.zone, "mallee-1a");
    assert!(info.accel.starts_with("sim"), "{}", info.accel);

    let first = node
        .put_instance(spec(I1, 1, DesiredState::Running))
        .await
        .expect("put");
    assert_eq!(first.state, VmState::Pending);
    assert_eq!(first.generation, 1);
    let up = wait_state(&node, I1, running).await;
    assert_eq!(up.generation, 1);
    // The same spec again, and an older one, change nothing.
    let again = node
        .put_instance(spec(I1, 1, DesiredState::Stopped))
        .await
        .expect("repeat");
    assert_eq!((again.state, again.generation), (VmState::Running, 1));
    let old = node
        .put_instance(spec(I1, 0, DesiredState::Stopped))
        .await
        .expect("older");
    assert_eq!((old.state, old.generation), (VmState::Running, 1));
    assert_eq!(sim.vm(I1).expect("vm").boots, 1);

    // Stop: the answer is the state the spec found; then stopping, stopped.
    let stopping = node
        .put_instance(spec(I1, 2, DesiredState::Stopped))
        .await
        .expect("stop");
    assert_eq!((stopping.state, stopping.generation), (VmState::Running, 2));
    let stopped = wait_state(&node, I1, |s| *s == VmState::Stopped).await;
    assert_eq!(stopped.generation, 2);
    assert!(!sim.vm(I1).expect("vm").running);

    // Start again through set_desired_state; a stale one is ignored.
    let stale = node
        .set_desired_state(I1, DesiredState::Running, 2)
        .await
        .expect("stale");
    assert_eq!(stale.state, VmState::Stopped);
    let start = node
        .set_desired_state(I1, DesiredState::Running, 3)
        .await
        .expect("start");
    assert_eq!((start.state, start.generation), (VmState::Pending, 3));
    wait_state(&node, I1, running).await;
    let vm = sim.vm(I1).expect("vm");
    assert_eq!(
        (vm.boots, vm.generation, vm.desired),
        (2, 3, DesiredState::Running)
    );

    // Reports carry increasing generations.
    let a = node.report().await.expect("report").generation;
    let b = node.report().await.expect("report").generation;
    assert!(b > a, "{b} after {a}");

    // Console output accumulates across boots; reboot needs a running VM.
    sim.guest_output(I1, "login: ").expect("output");
    node.reboot(I1).await.expect("reboot");
    let console = node.console_output(I1).await.expect("console").output;
    assert!(console.contains("running (boot 1)"), "{console}");
    assert!(console.contains("running (boot 2)"), "{console}");
    assert!(console.contains("login: "), "{console}");
    assert!(console.contains("reset"), "{console}");
    assert_eq!(sim.vm(I1).expect("vm").reboots, 1);

    node.delete_instance(I1).await.expect("delete");
    node.delete_instance(I1).await.expect("delete again");
    assert!(sim.vms().is_empty());
    for e in [
        node.console_output(I1).await.map(|_| ()),
        node.reboot(I1).await,
        node.set_desired_state(I1, DesiredState::Stopped, 9)
            .await
            .map(|_| ()),
    ] {
        assert_eq!(e, Err(NodeError::NotFound(I1.into())));
    }
}

#[tokio::test]
async fn an_instance_put_stopped_never_boots_and_reboot_needs_a_vm() {
    let (sim, _server, node) = served(SimConfig::default(), None).await;
    let put = node
        .put_instance(spec(I1, 1, DesiredState::Stopped))
        .await
        .expect("put");
    assert_eq!(put.state, VmState::Stopped);
    let refused = node.reboot(I1).await.expect_err("not running");
    assert!(matches!(refused, NodeError::Conflict(_)), "{refused:?}");
    tokio::time::sleep(Duration::from_millis(150)).await;
    assert_eq!(sim.vm(I1).expect("vm").boots, 0);
}

#[tokio::test]
async fn a_stop_during_the_boot_finishes_the_boot_then_stops() {
    let config = SimConfig {
        boot_delay: Duration::from_secs(1),
        ..SimConfig::default()
    };
    let (sim, _server, node) = served(config, None).await;
    node.put_instance(spec(I1, 1, DesiredState::Running))
        .await
        .expect("put");
    let during = node
        .put_instance(spec(I1, 2, DesiredState::Stopped))
        .await
        .expect("stop");
    assert_eq!(during.state, VmState::Pending);
    wait_state(&node, I1, |s| *s == VmState::Stopped).await;
    assert_eq!(sim.vm(I1).expect("vm").boots, 1);
}

#[tokio::test]
async fn capacity_is_accounted_like_describe_resource() {
    let config = SimConfig {
        capacity: SimCapacity {
            cores: 4,
            memory_mib: 2048,
            disk_gib: 10,
        },
        ..SimConfig::default()
    };
    let (sim, _server, node) = served(config, None).await;
    let empty = node.capacity().await.expect("capacity");
    assert_eq!(
        (empty.cores_free, empty.memory_mib_free, empty.disk_gib_free),
        (4, 2048, 10)
    );
    node.put_instance(spec(I1, 1, DesiredState::Running))
        .await
        .expect("put");
    // Pending instances count already.
    let booked = node.capacity().await.expect("capacity");
    assert_eq!(
        (
            booked.cores_free,
            booked.memory_mib_free,
            booked.disk_gib_free
        ),
        (3, 1536, 8)
    );
    wait_state(&node, I1, running).await;
    node.put_volume(volume("vol-00000000000000001", 5, 1))
        .await
        .expect("volume");
    node.put_instance(spec(I1, 2, DesiredState::Stopped))
        .await
        .expect("stop");
    wait_state(&node, I1, |s| *s == VmState::Stopped).await;
    // A stopped instance keeps its disk, not its cores and memory.
    let report = node.report().await.expect("report");
    assert_eq!(report.capacity.cores_free, 4);
    assert_eq!(report.capacity.memory_mib_free, 2048);
    assert_eq!(report.capacity.disk_gib_free, 10 - 2 - 5);

    sim.set_capacity(SimCapacity {
        cores: 8,
        memory_mib: 4096,
        disk_gib: 100,
    });
    let grown = node.capacity().await.expect("capacity");
    assert_eq!((grown.cores_max, grown.cores_free), (8, 8));
    assert_eq!(grown.disk_gib_free, 93);
}

#[tokio::test]
async fn refusals_match_the_real_agent() {
    let (sim, server, node) = served(SimConfig::default(), None).await;
    // Over HTTP the client drops the characters an id may not hold (the
    // path and the body then disagree); in process the node itself refuses.
    let bad = NodeAgent::put_instance(&sim, spec("i-a.b", 1, DesiredState::Running)).await;
    assert!(matches!(bad, Err(NodeError::BadRequest(_))), "{bad:?}");
    let bad = node.put_volume(volume("vol-00000000000000001", 0, 1)).await;
    assert!(matches!(bad, Err(NodeError::BadRequest(_))), "{bad:?}");
    // Only its cluster's controller gets in.
    let wrong = HttpNodeClient::new(server.url(), cluster().node_client_config(sim.node_id()));
    assert!(matches!(wrong.info().await, Err(NodeError::Transport(_))));
}

#[tokio::test]
async fn firewall_policies_apply_by_generation() {
    let (sim, _server, node) = served(SimConfig::default(), None).await;
    let policy = |generation, port| FirewallPolicy {
        generation,
        instances: vec![InstanceFirewall {
            instance_id: I1.into(),
            ingress: vec![FirewallRule {
                protocol: "tcp".into(),
                from_port: Some(port),
                to_port: Some(port),
                cidrs: vec!["0.0.0.0/0".into()],
            }],
            egress: Vec::new(),
        }],
    };
    assert_eq!(node.put_firewall(policy(5, 22)).await, Ok(5));
    assert_eq!(node.put_firewall(policy(3, 80)).await, Ok(5));
    assert_eq!(sim.firewall(), policy(5, 22));
    assert_eq!(node.put_firewall(policy(6, 443)).await, Ok(6));
    assert_eq!(sim.firewall(), policy(6, 443));
    let bad = node.put_firewall(policy(7, 70000)).await;
    assert!(matches!(bad, Err(NodeError::BadRequest(_))), "{bad:?}");
    assert_eq!(sim.firewall().generation, 6);
}

#[tokio::test]
async fn the_guest_powers_off_and_vms_fail_on_command() {
    let (sim, _server, node) = served(SimConfig::default(), None).await;
    run_instance(&node, I1).await;
    sim.guest_poweroff(I1).expect("poweroff");
    wait_state(&node, I1, |s| *s == VmState::GuestShutdown).await;
    assert!(matches!(
        sim.guest_poweroff(I1),
        Err(SimError::NotRunning { .. })
    ));
    // The controller's retry: a newer generation asking to run.
    node.put_instance(spec(I1, 2, DesiredState::Running))
        .await
        .expect("again");
    wait_state(&node, I1, running).await;

    sim.fail(I1, "QEMU exited unexpectedly").expect("fail");
    let failed = wait_state(&node, I1, |s| matches!(s, VmState::Failed(_))).await;
    assert_eq!(
        failed.state,
        VmState::Failed("QEMU exited unexpectedly".into())
    );
    // A failed instance asked to stop is stopped.
    node.put_instance(spec(I1, 3, DesiredState::Stopped))
        .await
        .expect("stop");
    wait_state(&node, I1, |s| *s == VmState::Stopped).await;

    // A boot that fails.
    sim.fail_next_boot("image: no such object");
    node.put_instance(spec(I2, 1, DesiredState::Running))
        .await
        .expect("put");
    let failed = wait_state(&node, I2, |s| matches!(s, VmState::Failed(_))).await;
    assert_eq!(
        failed.state,
        VmState::Failed("image: no such object".into())
    );
    assert_eq!(
        sim.fail("i-00000000000000009", "x"),
        Err(SimError::NoSuchInstance("i-00000000000000009".into()))
    );
}

#[tokio::test]
async fn injected_faults_hit_the_next_call_of_their_kind() {
    let (sim, _server, node) = served(SimConfig::default(), None).await;
    sim.inject(
        CallKind::PutInstance,
        Fault::Refuse(NodeError::Internal("disk full".into())),
    );
    let refused = node.put_instance(spec(I1, 1, DesiredState::Running)).await;
    assert_eq!(refused, Err(NodeError::Internal("disk full".into())));
    assert!(sim.vm(I1).is_none(), "a refused call changes nothing");

    // The node acts, the answer is lost; the retry finds it done.
    sim.inject(
        CallKind::PutInstance,
        Fault::LoseAnswer(NodeError::Transport("timed out".into())),
    );
    let lost = node.put_instance(spec(I1, 1, DesiredState::Running)).await;
    assert_eq!(lost, Err(NodeError::Transport("timed out".into())));
    assert!(sim.vm(I1).is_some());
    wait_state(&node, I1, running).await;
    let retry = node
        .put_instance(spec(I1, 1, DesiredState::Running))
        .await
        .expect("retry");
    assert_eq!(retry.state, VmState::Running);
    assert_eq!(sim.vm(I1).expect("vm").boots, 1);

    sim.inject(CallKind::Report, Fault::Delay(Duration::from_millis(300)));
    let started = Instant::now();
    node.report().await.expect("slow report");
    assert!(started.elapsed() >= Duration::from_millis(300));
    node.report().await.expect("report");

    assert_eq!(sim.calls(CallKind::PutInstance), 3);
    assert_eq!(
        sim.calls(CallKind::Report),
        sim.call_counts()[&CallKind::Report]
    );
    assert_eq!(sim.calls(CallKind::DeleteVolume), 0);
}

#[tokio::test]
async fn an_agent_outage_fails_calls_and_the_restart_adopts_the_vms() {
    let (sim, _server, node) = served(SimConfig::default(), None).await;
    for id in [I1, I2] {
        run_instance(&node, id).await;
    }
    sim.set_boot_delay(Duration::from_secs(3600));
    node.put_instance(spec(I3, 1, DesiredState::Running))
        .await
        .expect("put");

    sim.crash_agent();
    assert!(!sim.is_up());
    for result in [
        node.report().await.map(|_| ()),
        node.put_instance(spec(I1, 2, DesiredState::Stopped))
            .await
            .map(|_| ()),
        node.delete_instance(I2).await,
    ] {
        assert!(matches!(result, Err(NodeError::Transport(_))), "{result:?}");
    }
    // The guests live on without the agent; one powers off meanwhile.
    assert!(sim.vm(I1).expect("vm").running);
    sim.guest_poweroff(I2)
        .expect("poweroff while the agent is down");
    assert_eq!(sim.vm(I2).expect("vm").state, VmState::Running);

    sim.set_boot_delay(Duration::from_millis(50));
    sim.restart_agent();
    let report = node.report().await.expect("report after restart");
    let state = |id: &str| {
        report
            .instances
            .iter()
            .find(|i| i.instance_id == id)
            .map(|i| i.state.clone())
    };
    // Adopted, not restarted; the power-off noticed; the boot done again.
    assert_eq!(state(I1), Some(VmState::Running));
    assert_eq!(sim.vm(I1).expect("vm").boots, 1);
    assert_eq!(state(I2), Some(VmState::GuestShutdown));
    assert!(
        matches!(state(I3), Some(VmState::Pending | VmState::Running)),
        "{:?}",
        state(I3)
    );
    wait_state(&node, I3, running).await;
    assert_eq!(sim.vm(I3).expect("vm").boots, 1);
}

#[tokio::test]
async fn a_vm_that_dies_during_an_outage_is_started_again() {
    let (sim, _server, node) = served(SimConfig::default(), None).await;
    run_instance(&node, I1).await;
    sim.crash_agent();
    sim.fail(I1, "killed").expect("fail");
    sim.restart_agent();
    // As the real agent after a host reboot: gone while it should run.
    wait_state(&node, I1, running).await;
    assert_eq!(sim.vm(I1).expect("vm").boots, 2);
}

#[tokio::test]
async fn in_process_use_through_the_trait() {
    let sim = SimNode::new(SimConfig::default());
    let agent: Arc<dyn NodeAgent> = Arc::new(sim.clone());
    agent
        .put_instance(spec(I1, 1, DesiredState::Running))
        .await
        .expect("put");
    let vm = sim
        .wait_for(WAIT, |s| s.vm(I1).filter(|v| v.state == VmState::Running))
        .await
        .expect("running");
    assert_eq!(vm.spec.instance_type, "t2.micro");
    sim.crash_agent();
    assert!(matches!(
        agent.capacity().await,
        Err(NodeError::Transport(_))
    ));
    assert!(
        sim.wait_for(Duration::from_millis(50), |s| s.is_up().then_some(()))
            .await
            .is_none()
    );
}

#[tokio::test]
async fn thousands_of_instances_boot_side_by_side() {
    let sim = SimNode::new(SimConfig {
        capacity: SimCapacity {
            cores: 4000,
            memory_mib: 4000 * 512,
            disk_gib: 4000 * 2,
        },
        ..SimConfig::default()
    });
    let ids: Vec<String> = (0..3000).map(|n| format!("i-{n:017x}")).collect();
    for id in &ids {
        NodeAgent::put_instance(&sim, spec(id, 1, DesiredState::Running))
            .await
            .expect("put");
    }
    let report = sim
        .wait_for(Duration::from_secs(30), |s| {
            s.vms()
                .iter()
                .all(|v| v.state == VmState::Running)
                .then_some(())
        })
        .await;
    assert!(report.is_some(), "not every instance runs");
    let capacity = NodeAgent::capacity(&sim).await.expect("capacity");
    assert_eq!(capacity.cores_free, 1000);
    assert_eq!(capacity.memory_mib_free, 1000 * 512);
}
