//! A simulated node agent: the same node API as the real agent, with
//! in-memory VMs that boot, stop and fail on command (Omicron's
//! `sled-agent/src/sim/` is the model). Controller tests that need no real
//! guest drive a [`SimNode`] in process through the
//! [`mallee_node_api::NodeAgent`] trait, or over HTTP with [`serve`], which
//! also registers it with a controller and keeps registering (heartbeats)
//! exactly as the real agent does; `mallee node --simulate` is the latter
//! from the command line. Nothing here needs root, QEMU or a network
//! namespace. The acceptance tests never use it: they run real guests.
//!
//! As seen through the trait it behaves as the real agent
//! (`crates/node`): the same idempotency by id and generation, the same
//! states and transitions, the same errors for the same mistakes, the same
//! capacity accounting, firewall and overlay generations, volume and
//! snapshot rules, and snapshot data uploaded to the controller with the
//! real protocol.
//! What it does not simulate: guest networking and the metadata service,
//! image downloads, hooks, and qcow2 contents (a volume's content is a
//! small byte string: see [`SimNode::volume_data`]).

mod faults;
mod firewall;
mod instances;
mod node;
mod serve;
mod snapshots;
mod state;
mod transfer;
mod volumes;

use std::sync::Arc;
use std::time::Duration;

pub use faults::{CallKind, Fault};
pub use node::{SimError, SimNode, SimVm};
pub use serve::{REGISTER_EVERY, ServeConfig, ServeError, SimServer, serve};
pub use state::RESTARTED_WHILE_CAPTURING;
pub use transfer::{HttpTransfer, MemorySnapshots, SnapshotTransfer, TransferError, sha256_hex};
pub use volumes::MAX_SIZE_GIB;

/// What a simulated node offers to instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SimCapacity {
    /// Virtual cores.
    pub cores: u32,
    /// Memory in MiB.
    pub memory_mib: u64,
    /// Instance disk in GiB (volumes count against it too).
    pub disk_gib: u64,
}

impl Default for SimCapacity {
    /// A mid-sized host: 16 cores, 32 GiB, 1000 GiB of disk.
    fn default() -> Self {
        Self {
            cores: 16,
            memory_mib: 32 * 1024,
            disk_gib: 1000,
        }
    }
}

/// How a [`SimNode`] is made.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Node id; `None`: a new `nd-…` id.
    pub node_id: Option<String>,
    /// Availability zone it serves.
    pub zone: String,
    /// Host name it reports; `None`: the node id.
    pub hostname: Option<String>,
    /// Underlay address it reports (where its VXLAN traffic would go);
    /// `None`: it takes no part in the overlay.
    pub underlay_ip: Option<String>,
    /// What it offers.
    pub capacity: SimCapacity,
    /// How long a VM takes to boot (pending to running).
    pub boot_delay: Duration,
    /// How long a VM takes to shut down (stopping to stopped).
    pub stop_delay: Duration,
    /// How long a snapshot takes to capture, before its upload.
    pub capture_delay: Duration,
    /// Where snapshots are uploaded and volumes' snapshot data read.
    pub transfer: Arc<dyn SnapshotTransfer>,
}

impl Default for SimConfig {
    /// Zone `mallee-1a`, [`SimCapacity::default`], 50 ms boots, 20 ms
    /// shutdowns, 40 ms captures, snapshots kept in memory.
    fn default() -> Self {
        Self {
            node_id: None,
            zone: "mallee-1a".into(),
            hostname: None,
            underlay_ip: None,
            capacity: SimCapacity::default(),
            boot_delay: Duration::from_millis(50),
            stop_delay: Duration::from_millis(20),
            capture_delay: Duration::from_millis(40),
            transfer: Arc::new(MemorySnapshots::new()),
        }
    }
}

impl SimConfig {
    /// Uploads snapshots to (and reads snapshot data from) the controller
    /// at `controller_url`, reached with `tls` (the node's client
    /// configuration), as the real agent.
    pub fn with_controller(
        mut self,
        controller_url: &str,
        tls: &Arc<rustls::ClientConfig>,
    ) -> Result<Self, reqwest::Error> {
        self.transfer = Arc::new(HttpTransfer::new(controller_url, tls)?);
        Ok(self)
    }
}
