//! The node agent's library (Eucalyptus' NC): admin hooks, the image cache
//! with per-instance overlays, and (to come) the instance runner that ties
//! them to the QEMU driver and serves the node API.

pub mod hooks;
pub mod image_cache;
