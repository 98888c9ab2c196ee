//! Volumes on the controller. A volume's data lives on one node of its
//! zone (a qcow2 file there that QEMU opens directly); the row records
//! which. The EC2 actions record desired state and wake the reconciler,
//! which carries it out on the volume's node.
//!
//! - `model`: what a volume is (states, details, the stored row) and
//!   where a new one goes;
//! - `types`: volume types and their sizes, IOPS and throughput;
//! - `actions`: creating, deleting, attaching and detaching volumes;
//! - `modify`: ModifyVolume (growing a volume) and an attachment's
//!   delete-on-termination flag;
//! - `reconcile`: the reconciler's pure decision and its pass over every
//!   volume;
//! - `exports`: where a storage host's volume is exported before the
//!   usual steps apply;
//! - `node_calls`: the calls to nodes the reconciler starts;
//! - `block_devices`: the volumes a launch turns block device mappings
//!   into.

pub mod actions;
pub mod block_devices;
pub mod exports;
pub mod model;
pub mod modify;
mod node_calls;
pub mod reconcile;
pub mod types;

pub use actions::{
    Attach, Created, Detach, NewVolume, attach, check_attach_device, create, delete, detach, list,
    load_owned, set_auto_enable_io, statuses, validate_volume_id,
};
pub use model::{
    AttachState, CorruptVolume, Health, Volume, VolumeDesired, VolumeDetails, VolumeStatus, place,
};
pub use reconcile::{Change, Step, decide, pass};
pub use types::{RequestedSpec, VolumeSpec, VolumeType};
