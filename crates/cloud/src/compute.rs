//! The control plane's shared runtime state: the node registry, the
//! placement lock, the reconciler's wake-up, the node calls in flight and
//! the firewall policies and overlays last sent to each node.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::Notify;

/// Compute state shared by the API and the reconciler.
#[derive(Debug)]
pub struct Compute {
    /// Node agents.
    pub nodes: crate::nodes::NodeRegistry,
    /// Held from choosing nodes and addresses until the reservation is
    /// stored, so concurrent launches never share the last slot or address.
    pub placement_lock: tokio::sync::Mutex<()>,
    wake: Notify,
    calls: Mutex<HashSet<String>>,
    /// Per node: the generation of the latest state push taken.
    pushed: Mutex<HashMap<String, u64>>,
    /// The firewall policies last applied on each node.
    pub(crate) firewalls: Pushes,
    /// The VXLAN overlays last applied on each node.
    pub(crate) overlays: Pushes,
    /// The bare-metal zone, once provisioning is enabled.
    pub metal: crate::metal::MetalSlot,
    /// Per zone: the node round-robin placement used last.
    round_robin: Mutex<HashMap<String, String>>,
    /// When this controller started (milliseconds): nodes are not counted
    /// down for silence older than that, which was the controller's.
    pub started_at: i64,
}

impl Compute {
    /// Compute state whose node clients present the controller's
    /// certificate from `pki`.
    pub fn new(pki: std::sync::Arc<mallee_pki::ControllerPki>) -> Self {
        Self {
            nodes: crate::nodes::NodeRegistry::new(pki),
            placement_lock: tokio::sync::Mutex::new(()),
            wake: Notify::new(),
            calls: Mutex::new(HashSet::new()),
            pushed: Mutex::new(HashMap::new()),
            firewalls: Pushes::default(),
            overlays: Pushes::default(),
            metal: crate::metal::MetalSlot::default(),
            round_robin: Mutex::new(HashMap::new()),
            started_at: crate::ids::now_millis(),
        }
    }

    /// Asks the reconciler for a pass now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// Whether a state push of `generation` from `node_id` is newer than
    /// every one taken before (and records it if so).
    pub(crate) fn accept_push(&self, node_id: &str, generation: u64) -> bool {
        let mut pushed = self.pushed.lock().expect("push generation lock poisoned");
        match pushed.get(node_id) {
            Some(last) if *last >= generation => false,
            _ => {
                pushed.insert(node_id.to_owned(), generation);
                true
            }
        }
    }

    /// Marks a node call for `instance_id` as running; `false` if one
    /// already is.
    pub(crate) fn begin_call(&self, instance_id: &str) -> bool {
        self.calls
            .lock()
            .expect("call set lock poisoned")
            .insert(instance_id.to_owned())
    }

    pub(crate) fn end_call(&self, instance_id: &str) {
        self.calls
            .lock()
            .expect("call set lock poisoned")
            .remove(instance_id);
    }

    /// The node round-robin placement used last in `zone`.
    pub fn last_placed(&self, zone: &str) -> Option<String> {
        self.round_robin
            .lock()
            .expect("round-robin lock poisoned")
            .get(zone)
            .cloned()
    }

    /// Records the node round-robin placement used last in `zone`.
    pub fn placed_last(&self, zone: &str, node_id: &str) {
        self.round_robin
            .lock()
            .expect("round-robin lock poisoned")
            .insert(zone.to_owned(), node_id.to_owned());
    }
}

/// A whole state the reconciler keeps every node in step with (its
/// firewall policy, its overlay): per node, the digest of the one last
/// applied there, its generation, and when it was sent.
#[derive(Debug, Default)]
pub(crate) struct Pushes(Mutex<HashMap<String, (u64, u64, Instant)>>);

impl Pushes {
    /// Whether `node_id` needs the state with `digest` (it differs from the
    /// last one applied, or that was sent long ago); the generation to send
    /// it with.
    pub(crate) fn due(&self, node_id: &str, digest: u64, now_micros: u64) -> Option<u64> {
        let pushed = self.0.lock().expect("push map lock poisoned");
        match pushed.get(node_id) {
            Some((last, _, sent))
                if *last == digest && sent.elapsed() < crate::reconciler::FIREWALL_REFRESH =>
            {
                None
            }
            Some((_, generation, _)) => Some(now_micros.max(generation + 1)),
            None => Some(now_micros),
        }
    }

    /// Records that `node_id` applied the state with `digest` at
    /// `generation`.
    pub(crate) fn applied(&self, node_id: &str, digest: u64, generation: u64) {
        self.0
            .lock()
            .expect("push map lock poisoned")
            .insert(node_id.to_owned(), (digest, generation, Instant::now()));
    }
}
