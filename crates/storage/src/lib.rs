//! A storage host's NBD exports.
//!
//! A storage host keeps every volume of its zone as a qcow2 file and
//! exports each attached volume to exactly the one compute node whose
//! instance uses it: one `qemu-storage-daemon` per export, on its own TCP
//! port, serving NBD over TLS with the cluster's certificates and admitting
//! only that node's certificate.
//!
//! - [`exports`]: [`Exports`], the durable records and the daemons behind
//!   them (export, unexport, list, restart after a crash).
//! - [`qsd`]: one daemon's command line and process: start, find again
//!   after an agent restart, stop; [`kill_all`].
//!
//! The daemons are never children of the agent: restarting the agent
//! leaves the exports up, and a daemon that died is started again on the
//! same port, so the nodes' NBD clients reconnect and guests only see I/O
//! stall.

pub mod exports;
pub mod qsd;

pub use exports::{
    DEFAULT_PORTS, DEFAULT_QSD, ExportConfig, ExportError, Exports, MAX_VOLUME_ID, VolumeExport,
};
pub use qsd::{client_identity, kill_all};
