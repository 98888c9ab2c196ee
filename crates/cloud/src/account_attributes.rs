//! What DescribeAccountAttributes reports of an account: the platforms it
//! supports, its default VPC (created if it has none yet) and its limits.

use crate::vpcs::default_vpc;
use crate::{Cloud, CloudError, Principal};

/// Every attribute, in the order they are reported.
pub const NAMES: &[&str] = &[
    "supported-platforms",
    "default-vpc",
    "max-instances",
    "vpc-max-security-groups-per-interface",
    "max-elastic-ips",
    "vpc-max-elastic-ips",
];

/// Checks that every name of `names` is an attribute.
pub fn validate_names(names: &[String]) -> Result<(), CloudError> {
    match names.iter().find(|n| !NAMES.contains(&n.as_str())) {
        Some(bad) => Err(CloudError::invalid(format!(
            "Value ({bad}) for parameter attributeName is invalid. Unknown attribute."
        ))),
        None => Ok(()),
    }
}

/// The attributes named by `names` (every one when none) with their
/// values, in [`NAMES`] order.
pub async fn attributes(
    cloud: &Cloud,
    caller: &Principal,
    names: &[String],
) -> Result<Vec<(&'static str, String)>, CloudError> {
    let limits = &cloud.config.account_limits;
    let wanted = |name: &str| names.is_empty() || names.iter().any(|n| n == name);
    let default_vpc = if wanted("default-vpc") {
        default_vpc(cloud, caller.account_id()).await?.vpc.vpc_id
    } else {
        String::new()
    };
    Ok(NAMES
        .iter()
        .copied()
        .filter(|name| wanted(name))
        .map(|name| {
            let value = match name {
                "supported-platforms" => "VPC".into(),
                "default-vpc" => default_vpc.clone(),
                "max-instances" => limits.max_instances.to_string(),
                "vpc-max-security-groups-per-interface" => {
                    limits.max_security_groups_per_interface.to_string()
                }
                _ => limits.max_elastic_ips.to_string(),
            };
            (name, value)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestCloud;

    #[tokio::test]
    async fn limits_and_the_default_vpc() {
        let cloud = TestCloud::new().await;
        let caller = cloud.principal("owner").await;
        assert!(validate_names(&["max-instances".into(), "colour".into()]).is_err());
        let some = attributes(&cloud, &caller, &["max-elastic-ips".into()])
            .await
            .expect("attributes");
        assert_eq!(some, [("max-elastic-ips", "5".to_owned())]);
        assert!(
            cloud
                .store
                .default_vpc(caller.account_id())
                .await
                .expect("store")
                .is_none(),
            "only asking for the default VPC creates it"
        );
        let all = attributes(&cloud, &caller, &[]).await.expect("all");
        let names: Vec<&str> = all.iter().map(|(n, _)| *n).collect();
        assert_eq!(names, NAMES);
        let vpc = cloud
            .store
            .default_vpc(caller.account_id())
            .await
            .expect("store")
            .expect("created");
        assert_eq!(all[1].1, vpc.vpc.vpc_id);
    }
}
