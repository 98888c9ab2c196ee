//! The bare-metal zone's names and the facts other parts of the cloud ask
//! of it: the zone's name and id, which images and instances are bare
//! metal, and giving machines back when a launch fails. Kept apart from
//! [`super::zone`] (the zone's launches and syncer) so images, launches and
//! the reconciler can ask without depending on it.

use mallee_store::{Image, InstanceRecord};

use crate::Cloud;
use crate::config::Config;
use crate::instances::model::Instance;

/// `ImageLocation` prefix of a bare-metal image: `metal:PROFILE`.
pub const LOCATION_PREFIX: &str = "metal:";
/// Suffix of a bare-metal instance type: `GROUP.metal`.
pub const TYPE_SUFFIX: &str = ".metal";
/// Prefix of a bare-metal instance's node id: `metal:SYSTEM`.
pub const NODE_PREFIX: &str = "metal:";
/// The network id recorded for bare-metal instances (their addresses are
/// the provisioning network's, unique per machine).
pub const NETWORK_ID: &str = "metal";

/// The bare-metal zone's name: `<region>-metal`.
pub fn zone_name(config: &Config) -> String {
    format!("{}-metal", config.region)
}

/// The bare-metal zone's id: `<region>-metal-az1`.
pub fn zone_id(config: &Config) -> String {
    format!("{}-metal-az1", config.region)
}

/// The profile a bare-metal image installs (`None`: not a bare-metal image).
pub fn image_profile(image: &Image) -> Option<&str> {
    if image.image_type == "machine" && image.bucket.is_empty() {
        image.location.strip_prefix(LOCATION_PREFIX)
    } else {
        None
    }
}

/// Whether an instance runs on a machine of the bare-metal zone.
pub fn is_metal(instance: &Instance) -> bool {
    instance.record.node_id.starts_with(NODE_PREFIX)
}

/// The machine of a bare-metal instance.
pub fn system_of(record: &InstanceRecord) -> Option<&str> {
    record.node_id.strip_prefix(NODE_PREFIX)
}

/// Returns `systems` to the pool (a launch that failed after reserving
/// them). Failures are logged: the syncer returns machines no instance
/// holds.
pub async fn release_machines(cloud: &Cloud, systems: &[String]) {
    let Some(engine) = cloud.compute.metal.get().and_then(|m| m.engine().cloned()) else {
        return;
    };
    for name in systems {
        if let Err(e) = engine.release(name).await {
            tracing::warn!(system = %name, error = %e, "could not give back a machine of a failed launch; the reconciler will");
        }
    }
}
