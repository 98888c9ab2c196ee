//! mallee's library core: everything the `mallee` binary runs. The API front
//! door and the services behind it, the cloud context they share, first-start
//! bootstrap, host checks and admin operations.

pub mod admin;
pub mod api;
pub mod bootstrap;
pub mod capacity;
pub mod compute;
pub mod config;
pub mod doctor;
pub mod ec2;
pub mod ids;
pub mod metal;
pub mod s3;
pub mod server;

use std::sync::Arc;

use mallee_store::Store;

pub use config::Config;

/// The state every request handler shares.
#[derive(Debug)]
pub struct Cloud {
    /// The metadata store.
    pub store: Arc<dyn Store>,
    /// Static configuration.
    pub config: Config,
    /// The instance-type table.
    pub instance_types: ec2::instance_types::InstanceTypes,
    /// Object data (for reading image headers at registration).
    pub blobs: Arc<mallee_blobs::BlobStore>,
    /// Nodes, placement and the reconciler's wake-up.
    pub compute: compute::Compute,
}

impl Cloud {
    /// Capacity of `zone` from the latest node reports.
    pub async fn zone_capacity(
        &self,
        zone: &str,
    ) -> Result<capacity::ZoneCapacity, mallee_store::StoreError> {
        let nodes = self
            .store
            .nodes()
            .await?
            .into_iter()
            .filter(|n| n.zone == zone)
            .collect();
        Ok(capacity::ZoneCapacity { nodes })
    }
}
