//! Instances: what an instance is on the controller ([`model`]), the
//! instance types it can have, where new ones go and how much room a zone
//! has, the quota, and launching.

pub mod attributes;
pub mod capacity;
pub mod describe;
pub mod evacuate;
pub mod launch;
pub mod lifecycle;
pub mod lookup;
pub mod model;
pub mod offerings;
pub mod placement;
pub mod quota;
pub mod spec;
pub mod types;
