//! Network ACLs (DescribeNetworkAcls): every VPC has its default ACL,
//! which allows all traffic both ways (rule 100, then the `*` deny AWS
//! lists last) and is associated with every subnet of the VPC. Its id and
//! its associations' ids are derived from the VPC's and the subnets' ids,
//! so they stay the same for as long as those live, without being stored.
//! Custom ACLs and their rules are not made yet: security groups are what
//! filters traffic on the data path.

use mallee_store::{Subnet, Vpc};

use crate::{Cloud, CloudError, Kind, Principal, vpcs};

/// One VPC's default ACL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetworkAcl {
    /// `acl-…`.
    pub acl_id: String,
    /// Its VPC.
    pub vpc: Vpc,
    /// The subnets it is associated with: all the VPC's.
    pub subnets: Vec<Subnet>,
}

/// The part of an id after its prefix.
fn suffix(id: &str) -> &str {
    id.split_once('-').map_or(id, |(_, rest)| rest)
}

/// The default ACL id of VPC `vpc_id`.
pub fn default_acl_id(vpc_id: &str) -> String {
    format!("acl-{}", suffix(vpc_id))
}

/// The id of the association of subnet `subnet_id` with its ACL.
pub fn association_id(subnet_id: &str) -> String {
    format!("aclassoc-{}", suffix(subnet_id))
}

/// The caller's ACLs, only those named by `ids` when it names any (every
/// one must exist).
pub async fn list(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<NetworkAcl>, CloudError> {
    let account = caller.account_id();
    vpcs::default_vpc(cloud, account).await?;
    let subnets = cloud.store.subnets(account).await?;
    let acls: Vec<NetworkAcl> = cloud
        .store
        .vpcs(account)
        .await?
        .into_iter()
        .map(|vpc| NetworkAcl {
            acl_id: default_acl_id(&vpc.vpc_id),
            subnets: subnets
                .iter()
                .filter(|s| s.vpc_id == vpc.vpc_id)
                .cloned()
                .collect(),
            vpc,
        })
        .collect();
    if let Some(missing) = ids.iter().find(|id| !acls.iter().any(|a| &a.acl_id == *id)) {
        return Err(CloudError::not_found(
            Kind::NetworkAcl,
            format!("The networkAcl ID '{missing}' does not exist"),
        ));
    }
    Ok(acls
        .into_iter()
        .filter(|a| ids.is_empty() || ids.contains(&a.acl_id))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestCloud;

    #[tokio::test]
    async fn every_vpc_has_its_default_acl_on_all_its_subnets() {
        let cloud = TestCloud::new().await;
        let caller = cloud.principal("owner").await;
        let acls = list(&cloud, &caller, &[]).await.expect("acls");
        assert_eq!(acls.len(), 1);
        let acl = &acls[0];
        assert_eq!(acl.acl_id, default_acl_id(&acl.vpc.vpc_id));
        assert!(acl.acl_id.starts_with("acl-") && acl.acl_id.len() == 21);
        assert_eq!(acl.subnets.len(), cloud.config.zones.len());
        assert!(association_id(&acl.subnets[0].subnet_id).starts_with("aclassoc-"));
        let other = cloud.principal("other").await;
        assert!(matches!(
            list(&cloud, &other, std::slice::from_ref(&acl.acl_id)).await,
            Err(CloudError::NotFound {
                kind: Kind::NetworkAcl,
                ..
            })
        ));
    }
}
