//! The node agent's library (Eucalyptus' NC): admin hooks, the image cache
//! with per-instance overlays, the instance networks (a network namespace
//! per VPC with bridges, taps, dnsmasq, security groups and public NAT), the
//! instance metadata service, volumes (qcow2 files, or a storage host's
//! NBD exports reached over TLS, hot-plugged into VMs or EBS roots of
//! instances), their snapshots (captured, exported and
//! uploaded to the controller), and the agent that ties them to the QEMU
//! driver and serves the node API.

pub mod accel;
pub mod agent;
pub mod api_relay;
pub mod artifacts;
pub mod controller_link;
pub mod firewall;
pub mod hooks;
pub mod image_cache;
mod instance;
pub mod instance_credentials;
pub mod metadata;
mod nbd_relay;
pub mod network;
pub mod orphans;
pub mod qcow2_files;
pub mod qemu_img;
pub mod snapshot_data;
mod snapshots;
pub mod volumes;
pub mod vpc_networks;
