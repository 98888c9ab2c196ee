//! mallee's QEMU driver.
//!
//! - [`qmp`]: a small async client for the QEMU Machine Protocol.
//! - [`vm`]: [`VmSpec`] → QEMU command line, launching VMs detached from the
//!   agent ([`RunningVm::launch`]) and adopting running ones after an agent
//!   restart ([`RunningVm::adopt`]).
//! - [`accel`]: choosing KVM or TCG, probing KVM by booting a tiny guest.
//!
//! The node agent builds a [`VmSpec`] per instance (cores and memory from the
//! instance type, kernel/ramdisk for paravirtual images or disk boot for HVM
//! ones, the root overlay and volumes as disks, one tap NIC), resolves the
//! accelerator once at start-up, and keeps one [`RunningVm`] per instance.

pub mod accel;
pub mod qmp;
pub mod vm;

pub use accel::{Accel, AccelChoice, AccelError, AccelRequest, KERNEL_ONLY_MARKER, KvmProbe};
pub use qmp::{JobInfo, QmpClient, QmpError, QmpEvent, RunState, VmStatus};
pub use vm::{Boot, Disk, DiskFormat, Nic, NicBackend, RunningVm, VmError, VmSpec};
