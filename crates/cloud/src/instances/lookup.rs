//! Finding the caller's instances: those a request names (every one must
//! exist and be the caller's; another account's are as unknown as ones
//! that never existed) or all of them.

use std::collections::HashSet;

use crate::instances::model::Instance;
use crate::{Cloud, CloudError, Principal};

/// The caller's instances named by `ids`, in the order given, each once;
/// `InvalidInstanceID.NotFound` naming every id that is not the caller's.
pub async fn owned(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<Instance>, CloudError> {
    let account = caller.account_id();
    let mut found = Vec::with_capacity(ids.len());
    let mut missing = Vec::new();
    let mut seen = HashSet::new();
    for id in ids {
        if !seen.insert(id.as_str()) {
            continue;
        }
        match cloud.store.instance(id).await? {
            Some(record) if record.account_id == account => {
                found.push(Instance::from_record(record)?);
            }
            _ => missing.push(id.as_str()),
        }
    }
    if !missing.is_empty() {
        return Err(CloudError::instances_not_found(&missing));
    }
    Ok(found)
}

/// The caller's instance `id`.
pub async fn one(cloud: &Cloud, caller: &Principal, id: &str) -> Result<Instance, CloudError> {
    let mut found = owned(cloud, caller, &[id.to_owned()]).await?;
    found
        .pop()
        .ok_or_else(|| CloudError::instances_not_found(&[id]))
}

/// Every instance of the caller's account, terminated ones included until
/// the reconciler forgets them an hour after they ended.
pub async fn all(cloud: &Cloud, caller: &Principal) -> Result<Vec<Instance>, CloudError> {
    cloud
        .store
        .instances(Some(caller.account_id()))
        .await?
        .into_iter()
        .map(Instance::from_record)
        .collect()
}
