//! The one instance quota check: how many more instances an account may
//! hold, counted from every instance that holds capacity (pending,
//! running, stopping, shutting down), checked by RunInstances in every
//! zone, the bare-metal zone included, under the placement lock.

use crate::error::Limit;
use crate::instances::model::Instance;
use crate::{Cloud, CloudError};

/// How many more instances `account_id` may launch given `all` the
/// cloud's instances; refuses when fewer than `min_count`.
pub fn remaining(
    cloud: &Cloud,
    all: &[Instance],
    account_id: &str,
    min_count: usize,
) -> Result<usize, CloudError> {
    let held = all
        .iter()
        .filter(|i| i.record.account_id == account_id && i.holds_capacity())
        .count();
    let quota = usize::try_from(cloud.config.account_limits.max_instances).unwrap_or(0);
    let allowed = quota.saturating_sub(held);
    if allowed < min_count {
        return Err(CloudError::LimitExceeded {
            limit: Limit::Instances,
            message: format!(
                "Your quota allows for {allowed} more running instance(s). You requested at least {min_count}"
            ),
        });
    }
    Ok(allowed)
}

/// Every instance of the cloud, decoded (corrupt records are skipped, as
/// placement has always done).
pub async fn all_instances(cloud: &Cloud) -> Result<Vec<Instance>, CloudError> {
    Ok(cloud
        .store
        .instances(None)
        .await?
        .into_iter()
        .filter_map(|r| Instance::decode(r).ok())
        .collect())
}
