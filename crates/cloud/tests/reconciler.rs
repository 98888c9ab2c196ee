//! The controller's compute decisions through their public API: the pure
//! [`decide`] step of the reconciler for every combination of desired
//! state, recorded state and what the node reports, and placement of new
//! instances on nodes and addresses.

use std::net::Ipv4Addr;

use mallee_cloud::instances::model::TERMINATED_VISIBLE_MILLIS;
use mallee_cloud::instances::model::{
    Desired, Instance, InstanceState, ShutdownBehavior, StateReason,
};
use mallee_cloud::instances::placement::{self, Demand};
use mallee_cloud::reconciler::{Step, decide};
use mallee_cloud::testkit::InstanceBuilder;
use mallee_node_api::{DesiredState, ObservedInstance, VmState};
use mallee_store::{InstanceRecord, Node};
use proptest::prelude::*;

use InstanceState::{Pending, Running, ShuttingDown, Stopped, Stopping, Terminated};
use ShutdownBehavior::{Stop, Terminate};

const NOW: i64 = 10 * TERMINATED_VISIBLE_MILLIS;
const ID: &str = "i-0123456789abcdef0";

/// An instance at generation 2 on `node-a` of zone `z` (one core, 512
/// MiB, 8 GiB) with `behavior` on guest poweroff, terminated a second
/// before [`NOW`] when it is.
fn builder(state: InstanceState, desired: Desired, behavior: ShutdownBehavior) -> InstanceBuilder {
    InstanceBuilder::new(ID, "111111111111")
        .zone("z")
        .node("node-a")
        .network("net-z")
        .cidrs("172.31.0.0/20", "172.31.0.0/16")
        .resources("t2.micro", 1, 512, 8)
        .behavior(behavior)
        .state(state, desired)
        .generation(2)
        .terminated_at((state == Terminated).then_some(NOW - 1000))
}

/// A stored instance record decoded the way the reconciler decodes it.
fn decoded(record: InstanceRecord) -> Instance {
    Instance::decode(record).expect("record decodes")
}

fn instance(state: InstanceState, desired: Desired, behavior: ShutdownBehavior) -> Instance {
    builder(state, desired, behavior).instance()
}

fn observed(state: VmState, generation: u64) -> ObservedInstance {
    ObservedInstance {
        instance_id: ID.into(),
        state,
        generation,
    }
}

fn to(state: InstanceState) -> Step {
    Step::Transition {
        state,
        desired: None,
        reason: None,
        bump_generation: false,
    }
}

fn guest_shutdown() -> Option<StateReason> {
    Some(StateReason::new(
        "Client.InstanceInitiatedShutdown",
        "Instance initiated shutdown",
    ))
}

/// One row: the instance (at generation 2), what its node reports, and
/// the step expected.
struct Case {
    name: &'static str,
    state: InstanceState,
    desired: Desired,
    behavior: ShutdownBehavior,
    observed: Option<(VmState, u64)>,
    expect: Step,
}

fn case(
    name: &'static str,
    (state, desired): (InstanceState, Desired),
    observed: Option<(VmState, u64)>,
    expect: Step,
) -> Case {
    Case {
        name,
        state,
        desired,
        behavior: Stop,
        observed,
        expect,
    }
}

fn failed(message: &str) -> VmState {
    VmState::Failed(message.into())
}

fn cases() -> Vec<Case> {
    let run = Desired::Running;
    let stop = Desired::Stopped;
    let term = Desired::Terminated;
    let failed_launch = Step::Transition {
        state: ShuttingDown,
        desired: Some(term),
        reason: Some(StateReason::new(
            "Server.InternalError",
            "qemu exited with status 1",
        )),
        bump_generation: false,
    };
    let resend = |state| Step::Transition {
        state,
        desired: None,
        reason: None,
        bump_generation: true,
    };
    vec![
        // --- desired running ---------------------------------------------
        case("new launch", (Pending, run), None, Step::Put),
        case("node lost a running vm", (Running, run), None, Step::Put),
        case(
            "stale generation",
            (Pending, run),
            Some((VmState::Running, 1)),
            Step::Put,
        ),
        case(
            "stale generation beats a guest shutdown",
            (Running, run),
            Some((VmState::GuestShutdown, 1)),
            Step::Put,
        ),
        case(
            "stale generation beats a failure",
            (Running, run),
            Some((failed("old"), 0)),
            Step::Put,
        ),
        case(
            "node still preparing",
            (Pending, run),
            Some((VmState::Pending, 2)),
            Step::Nothing,
        ),
        case(
            "running vm restarting",
            (Running, run),
            Some((VmState::Pending, 2)),
            Step::Nothing,
        ),
        case(
            "vm started",
            (Pending, run),
            Some((VmState::Running, 2)),
            to(Running),
        ),
        case(
            "node ahead of the record",
            (Pending, run),
            Some((VmState::Running, 3)),
            to(Running),
        ),
        case(
            "running as recorded",
            (Running, run),
            Some((VmState::Running, 2)),
            Step::Nothing,
        ),
        case(
            "launch failed",
            (Pending, run),
            Some((failed("qemu exited with status 1"), 2)),
            failed_launch.clone(),
        ),
        case(
            "running vm died",
            (Running, run),
            Some((failed("qemu exited with status 1"), 2)),
            failed_launch,
        ),
        case(
            "node stopped a vm that should run",
            (Running, run),
            Some((VmState::Stopped, 2)),
            resend(Running),
        ),
        case(
            "node stopping a vm that should run",
            (Pending, run),
            Some((VmState::Stopping, 2)),
            resend(Pending),
        ),
        Case {
            behavior: Terminate,
            ..case(
                "guest poweroff, behaviour terminate",
                (Running, run),
                Some((VmState::GuestShutdown, 2)),
                Step::Transition {
                    state: ShuttingDown,
                    desired: Some(term),
                    reason: guest_shutdown(),
                    bump_generation: false,
                },
            )
        },
        case(
            "guest poweroff, behaviour stop",
            (Running, run),
            Some((VmState::GuestShutdown, 2)),
            Step::Transition {
                state: Stopping,
                desired: Some(stop),
                reason: guest_shutdown(),
                bump_generation: true,
            },
        ),
        // --- desired stopped -----------------------------------------------
        case("stop not yet sent", (Stopping, stop), None, Step::Put),
        case(
            "stop not yet seen by the node",
            (Stopping, stop),
            Some((VmState::Running, 1)),
            Step::Put,
        ),
        case(
            "guest poweroff seen before the stop spec",
            (Stopping, stop),
            Some((VmState::GuestShutdown, 1)),
            Step::Put,
        ),
        case(
            "node still running the vm",
            (Stopping, stop),
            Some((VmState::Running, 2)),
            Step::Nothing,
        ),
        case(
            "node stopping",
            (Stopping, stop),
            Some((VmState::Stopping, 2)),
            Step::Nothing,
        ),
        case(
            "node stopped",
            (Stopping, stop),
            Some((VmState::Stopped, 2)),
            to(Stopped),
        ),
        case(
            "guest powered off",
            (Stopping, stop),
            Some((VmState::GuestShutdown, 2)),
            to(Stopped),
        ),
        case(
            "vm died while stopping",
            (Stopping, stop),
            Some((failed("gone"), 2)),
            to(Stopped),
        ),
        case(
            "stopped as recorded",
            (Stopped, stop),
            Some((VmState::Stopped, 2)),
            Step::Nothing,
        ),
        case(
            "powered off as recorded",
            (Stopped, stop),
            Some((VmState::GuestShutdown, 2)),
            Step::Nothing,
        ),
        // --- desired terminated --------------------------------------------
        case(
            "terminate a running vm",
            (ShuttingDown, term),
            Some((VmState::Running, 2)),
            Step::Delete,
        ),
        case(
            "terminate a stopped vm",
            (ShuttingDown, term),
            Some((VmState::Stopped, 2)),
            Step::Delete,
        ),
        case(
            "terminate whatever the generation",
            (ShuttingDown, term),
            Some((VmState::Pending, 0)),
            Step::Delete,
        ),
        case(
            "terminate a failed vm",
            (ShuttingDown, term),
            Some((failed("x"), 2)),
            Step::Delete,
        ),
        case(
            "node still holds a terminated instance",
            (Terminated, term),
            Some((VmState::Stopped, 2)),
            Step::Delete,
        ),
        case(
            "node removed it",
            (ShuttingDown, term),
            None,
            to(Terminated),
        ),
        case(
            "terminated before it was ever placed",
            (Pending, term),
            None,
            to(Terminated),
        ),
        case(
            "terminated a moment ago",
            (Terminated, term),
            None,
            Step::Nothing,
        ),
    ]
}

#[test]
fn decide_table() {
    let mut failures = Vec::new();
    for c in cases() {
        let instance = instance(c.state, c.desired, c.behavior);
        let report = c.observed.clone().map(|(s, g)| observed(s, g));
        let step = decide(&instance, report.as_ref(), NOW);
        if step != c.expect {
            failures.push(format!(
                "{}: {:?}/{:?} observed {:?}: got {step:?}, want {:?}",
                c.name, c.state, c.desired, c.observed, c.expect
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_failure_reason_carries_the_nodes_message() {
    let instance = instance(Pending, Desired::Running, Stop);
    let report = observed(failed("image ami-1 could not be fetched"), 2);
    let Step::Transition {
        reason: Some(reason),
        ..
    } = decide(&instance, Some(&report), NOW)
    else {
        panic!("a failure is a transition with a reason");
    };
    assert_eq!(reason.code, "Server.InternalError");
    assert_eq!(
        reason.message,
        "Server.InternalError: image ami-1 could not be fetched"
    );
}

#[test]
fn terminated_instances_are_forgotten_after_the_visible_period() {
    let at = |terminated_at| {
        let i = builder(Terminated, Desired::Terminated, Stop)
            .terminated_at(terminated_at)
            .instance();
        decide(&i, None, NOW)
    };
    assert_eq!(at(Some(NOW)), Step::Nothing, "just terminated");
    assert_eq!(at(Some(NOW - TERMINATED_VISIBLE_MILLIS + 1)), Step::Nothing);
    assert_eq!(
        at(Some(NOW - TERMINATED_VISIBLE_MILLIS)),
        Step::Nothing,
        "exactly the visible period"
    );
    assert_eq!(at(Some(NOW - TERMINATED_VISIBLE_MILLIS - 1)), Step::Forget);
    assert_eq!(at(Some(0)), Step::Forget);
    // Still on its node: removed from there first, however old.
    let i = builder(Terminated, Desired::Terminated, Stop)
        .terminated_at(Some(0))
        .instance();
    let report = observed(VmState::Stopped, 2);
    assert_eq!(decide(&i, Some(&report), NOW), Step::Delete);
}

/// Applies a step to an instance the way the reconciler records it.
fn applied(mut instance: Instance, step: &Step, now: i64) -> Instance {
    if let Step::Transition {
        state,
        desired,
        reason,
        bump_generation,
    } = step.clone()
    {
        instance.state = state;
        if let Some(desired) = desired {
            instance.desired = desired;
        }
        if reason.is_some() {
            instance.details.state_reason = reason;
        }
        if bump_generation {
            instance.record.generation += 1;
        }
        if state == Terminated {
            instance.record.terminated_at = Some(now);
        }
    }
    decoded(instance.encode())
}

/// The generation the node acts on after a Put.
fn put_generation(instance: &Instance) -> u64 {
    instance.node_spec().generation
}

#[test]
fn a_guest_poweroff_with_stop_behaviour_converges_to_stopped() {
    let i = instance(Running, Desired::Running, Stop);
    let step = decide(&i, Some(&observed(VmState::GuestShutdown, 2)), NOW);
    let i = applied(i, &step, NOW);
    assert_eq!((i.state, i.desired), (Stopping, Desired::Stopped));
    assert_eq!(i.record.generation, 3);
    assert_eq!(i.details.state_reason, guest_shutdown());
    // The node still reports the old generation: the stop spec goes out.
    let step = decide(&i, Some(&observed(VmState::GuestShutdown, 2)), NOW);
    assert_eq!(step, Step::Put);
    assert_eq!(i.node_spec().desired, DesiredState::Stopped);
    let generation = put_generation(&i);
    assert_eq!(generation, 3);
    let step = decide(&i, Some(&observed(VmState::Stopped, generation)), NOW);
    assert_eq!(step, to(Stopped));
    let i = applied(i, &step, NOW);
    assert_eq!(i.state, Stopped);
    assert!(!i.holds_capacity());
    assert_eq!(
        decide(&i, Some(&observed(VmState::Stopped, generation)), NOW),
        Step::Nothing
    );
}

#[test]
fn a_guest_poweroff_with_terminate_behaviour_converges_to_forgotten() {
    let i = instance(Running, Desired::Running, Terminate);
    let step = decide(&i, Some(&observed(VmState::GuestShutdown, 2)), NOW);
    let i = applied(i, &step, NOW);
    assert_eq!((i.state, i.desired), (ShuttingDown, Desired::Terminated));
    assert_eq!(i.record.generation, 2);
    assert_eq!(
        decide(&i, Some(&observed(VmState::GuestShutdown, 2)), NOW),
        Step::Delete
    );
    let step = decide(&i, None, NOW);
    let i = applied(i, &step, NOW);
    assert_eq!(i.state, Terminated);
    assert_eq!(i.record.terminated_at, Some(NOW));
    assert_eq!(
        i.details.state_reason,
        guest_shutdown(),
        "termination keeps the reason"
    );
    assert_eq!(decide(&i, None, NOW + 1), Step::Nothing);
    assert_eq!(
        decide(&i, None, NOW + TERMINATED_VISIBLE_MILLIS + 1),
        Step::Forget
    );
}

#[test]
fn a_launch_converges_to_running() {
    let i = instance(Pending, Desired::Running, Stop);
    assert_eq!(decide(&i, None, NOW), Step::Put);
    assert_eq!(i.node_spec().desired, DesiredState::Running);
    let generation = put_generation(&i);
    assert_eq!(
        decide(&i, Some(&observed(VmState::Pending, generation)), NOW),
        Step::Nothing
    );
    let step = decide(&i, Some(&observed(VmState::Running, generation)), NOW);
    let i = applied(i, &step, NOW);
    assert_eq!(i.state, Running);
    assert_eq!(
        decide(&i, Some(&observed(VmState::Running, generation)), NOW),
        Step::Nothing
    );
}

// --- placement -------------------------------------------------------------

fn node(id: &str, zone: &str, cores: i64, memory_mib: i64, disk_gib: i64) -> Node {
    Node {
        node_id: id.into(),
        zone: zone.into(),
        address: "127.0.0.1:1".into(),
        cores_max: cores,
        // What the node reports as free does not count: the controller
        // counts from its own records.
        cores_free: 0,
        memory_mib_max: memory_mib,
        memory_mib_free: 0,
        disk_gib_max: disk_gib,
        disk_gib_free: 0,
        updated_at: 1,
        ..Node::default()
    }
}

/// An instance on `node_id` using 2 cores, 1024 MiB and 10 GiB.
fn placed(node_id: &str, state: InstanceState, desired: Desired) -> Instance {
    builder(state, desired, Stop)
        .resources("t2.micro", 2, 1024, 10)
        .node(node_id)
        .instance()
}

#[test]
fn rooms_count_only_instances_that_hold_capacity() {
    let nodes = [
        node("a", "z", 8, 8192, 100),
        node("b", "z", 4, 4096, 50),
        node("c", "other", 4, 4096, 50),
    ];
    let instances = [
        placed("a", Pending, Desired::Running),
        placed("a", Running, Desired::Running),
        placed("a", Stopped, Desired::Stopped),
        placed("a", Stopping, Desired::Stopped),
        placed("a", Terminated, Desired::Terminated),
        placed("a", ShuttingDown, Desired::Terminated),
        placed("b", Stopped, Desired::Stopped),
        placed("b", Terminated, Desired::Terminated),
        placed("c", Running, Desired::Running),
    ];
    let rooms = placement::rooms(&nodes, &instances, "z");
    let free: Vec<_> = rooms
        .iter()
        .map(|r| (r.node.node_id.as_str(), r.cores, r.memory_mib, r.disk_gib))
        .collect();
    assert_eq!(free, [("a", 4, 6144, 80), ("b", 4, 4096, 50)]);
    // Over-committed nodes have no room rather than wrapping around.
    let crowded: Vec<_> = (0..5)
        .map(|_| placed("b", Running, Desired::Running))
        .collect();
    let rooms = placement::rooms(&nodes[1..2], &crowded, "z");
    assert_eq!(
        (rooms[0].cores, rooms[0].memory_mib, rooms[0].disk_gib),
        (0, 0, 0)
    );
}

#[test]
fn placement_fills_nodes_no_further_than_their_room() {
    let nodes = [node("a", "z", 4, 4096, 100), node("b", "z", 3, 1024, 100)];
    let instances = [placed("a", Running, Desired::Running)];
    let demand = Demand {
        vcpus: 1,
        memory_mib: 512,
        disk_gib: 10,
    };
    let chosen = placement::place(placement::rooms(&nodes, &instances, "z"), demand, 10);
    let on = |id: &str| chosen.iter().filter(|n| n.node_id == id).count();
    // a: 2 cores left after its instance; b: memory for 2.
    assert_eq!((on("a"), on("b")), (2, 2));
    assert!(placement::place(placement::rooms(&nodes, &instances, "z"), demand, 0).is_empty());
    let huge = Demand { vcpus: 5, ..demand };
    assert!(placement::place(placement::rooms(&nodes, &[], "z"), huge, 3).is_empty());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn place_never_exceeds_free_room(
        capacity in proptest::collection::vec((0i64..16, 0i64..8192, 0i64..200), 1..6),
        used in proptest::collection::vec((0usize..6, any::<bool>()), 0..10),
        vcpus in 1u32..4,
        memory_mib in 0u64..3000,
        disk_gib in 0u64..60,
        max in 0usize..40,
    ) {
        let nodes: Vec<Node> = capacity
            .iter()
            .enumerate()
            .map(|(i, (c, m, d))| node(&format!("n{i}"), "z", *c, *m, *d))
            .collect();
        let instances: Vec<Instance> = used
            .iter()
            .map(|(i, running)| {
                let node_id = format!("n{}", i % nodes.len());
                if *running {
                    placed(&node_id, Running, Desired::Running)
                } else {
                    placed(&node_id, Stopped, Desired::Stopped)
                }
            })
            .collect();
        let demand = Demand { vcpus: u64::from(vcpus), memory_mib, disk_gib };
        let rooms = placement::rooms(&nodes, &instances, "z");
        let chosen = placement::place(rooms.clone(), demand, max);
        prop_assert!(chosen.len() <= max);
        let mut fits_more = false;
        for room in &rooms {
            let n = chosen.iter().filter(|c| c.node_id == room.node.node_id).count() as u64;
            prop_assert!(n * demand.vcpus <= room.cores, "cores of {}", room.node.node_id);
            prop_assert!(n * demand.memory_mib <= room.memory_mib, "memory of {}", room.node.node_id);
            prop_assert!(n * demand.disk_gib <= room.disk_gib, "disk of {}", room.node.node_id);
            fits_more |= (n + 1) * demand.vcpus <= room.cores
                && (n + 1) * demand.memory_mib <= room.memory_mib
                && (n + 1) * demand.disk_gib <= room.disk_gib;
        }
        // Fewer than asked only when nothing else fits anywhere.
        prop_assert!(chosen.len() == max || !fits_more);
    }
}

#[test]
fn free_addresses_skip_reserved_and_used_ones() {
    let subnet = placement::subnet("172.31.16.0/28").expect("subnet");
    let ip = |last: u8| Ipv4Addr::new(172, 31, 16, last);
    // .0-.3 and .15 are AWS's; the usable ones are .4-.14.
    let all = placement::free_addresses(subnet, &[], 100);
    assert_eq!(all, (4..=14).map(ip).collect::<Vec<_>>());
    let in_use = ["172.31.16.4", "172.31.16.6", "172.31.16.1", "10.0.0.5"].map(String::from);
    assert_eq!(
        placement::free_addresses(subnet, &in_use, 3),
        [ip(5), ip(7), ip(8)]
    );
    assert!(placement::free_addresses(subnet, &in_use, 0).is_empty());
    // A full subnet has nothing left; a nearly full one has less than asked.
    let taken: Vec<String> = (4..=14).map(|l| ip(l).to_string()).collect();
    assert!(placement::free_addresses(subnet, &taken, 1).is_empty());
    assert_eq!(placement::free_addresses(subnet, &taken[1..], 5), [ip(4)]);
}
