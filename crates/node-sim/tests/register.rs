//! A served simulated node joins a controller as the real agent does: it
//! posts its registration (who it is, where its API listens, what it
//! offers) to the controller's registration path over mutual TLS,
//! retries until accepted, registers again as a heartbeat, stops while the
//! agent is down and registers at once when it comes back. The controller
//! then reaches it at the advertised URL with node-api's client.

mod common;

use std::time::Duration;

use common::*;
use mallee_node_api::*;
use mallee_node_sim::{ServeConfig, SimCapacity, SimConfig, SimNode, SimServer, serve};

/// How `sim` joins `controller`, heartbeating every `every`, with a
/// certificate of the controller's CA.
fn config(controller: &FakeController, sim: &SimNode, every: Duration) -> ServeConfig {
    ServeConfig {
        controller_url: Some(controller.url.clone()),
        register_every: every,
        ..ServeConfig::new(credentials(&controller.pki, sim.node_id()))
    }
}

/// A simulated node served and registering with `controller` every
/// `every`, once the controller has its first registration.
async fn joined(controller: &FakeController, every: Duration) -> (SimNode, SimServer) {
    let sim = SimNode::new(SimConfig::default());
    let server = serve(sim.clone(), config(controller, &sim, every))
        .await
        .expect("serve");
    assert!(controller.wait_registrations(1, WAIT).await, "never joined");
    (sim, server)
}

#[tokio::test]
async fn registers_and_heartbeats_then_answers_at_its_url() {
    let controller = FakeController::start().await;
    let sim = SimNode::new(SimConfig {
        zone: "mallee-1b".into(),
        capacity: SimCapacity {
            cores: 32,
            memory_mib: 65536,
            disk_gib: 2000,
        },
        ..SimConfig::default()
    });
    let server = serve(
        sim.clone(),
        config(&controller, &sim, Duration::from_millis(100)),
    )
    .await
    .expect("serve");
    assert!(
        controller.wait_registrations(3, WAIT).await,
        "no heartbeats"
    );
    let first = controller.seen().registrations[0].clone();
    assert_eq!(first.url, server.url());
    assert_eq!(first.info.node_id, sim.node_id());
    assert_eq!(first.info.zone, "mallee-1b");
    assert_eq!(
        (
            first.capacity.cores_max,
            first.capacity.memory_mib_max,
            first.capacity.disk_gib_max
        ),
        (32, 65536, 2000)
    );

    // The controller drives the node at the URL it registered.
    let node = controller.client(&first.url, sim.node_id());
    node.put_instance(spec("i-00000000000000001", 1, DesiredState::Running))
        .await
        .expect("put");
    let latest = controller.seen().registrations.len();
    assert!(controller.wait_registrations(latest + 1, WAIT).await);
    let last = controller
        .seen()
        .registrations
        .last()
        .cloned()
        .expect("registration");
    // Heartbeats carry the capacity of the moment.
    assert_eq!(last.capacity.cores_free, 31);
    server.shutdown().await;
}

#[tokio::test]
async fn registration_retries_until_the_controller_accepts() {
    let controller = FakeController::start().await;
    controller.seen().refuse_registrations = 1;
    let sim = SimNode::new(SimConfig::default());
    let joining = config(&controller, &sim, Duration::from_secs(3600));
    let _server = serve(sim, joining).await.expect("serve");
    assert!(
        controller.wait_registrations(1, WAIT).await,
        "never accepted"
    );
    assert_eq!(controller.seen().refuse_registrations, 0);
}

#[tokio::test]
async fn a_crashed_agent_stops_registering_and_registers_when_it_restarts() {
    let controller = FakeController::start().await;
    let (sim, server) = joined(&controller, Duration::from_millis(100)).await;
    sim.crash_agent();
    // A registration already on its way may land.
    tokio::time::sleep(Duration::from_millis(150)).await;
    let during = controller.registrations();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        controller.registrations(),
        during,
        "a dead agent registered"
    );
    let node = controller.client(server.url(), sim.node_id());
    assert!(matches!(node.info().await, Err(NodeError::Transport(_))));

    sim.restart_agent();
    assert!(controller.wait_registrations(during + 1, WAIT).await);
    node.info().await.expect("answers again");
}

#[tokio::test]
async fn a_restarted_agent_registers_at_once_not_at_the_next_heartbeat() {
    let controller = FakeController::start().await;
    let (sim, _server) = joined(&controller, Duration::from_secs(3600)).await;
    sim.crash_agent();
    sim.restart_agent();
    assert!(
        controller
            .wait_registrations(2, Duration::from_secs(5))
            .await,
        "the restart did not register"
    );
}

#[tokio::test]
async fn a_node_of_another_cluster_never_joins() {
    let controller = FakeController::start().await;
    let sim = SimNode::new(SimConfig::default());
    let stranger = cluster();
    let _server = serve(
        sim.clone(),
        ServeConfig {
            credentials: credentials(&stranger, sim.node_id()),
            ..config(&controller, &sim, Duration::from_millis(50))
        },
    )
    .await
    .expect("serve");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(controller.registrations(), 0);
}
