//! DHCP options sets: CreateDhcpOptions (AWS's keys, each value checked),
//! DescribeDhcpOptions, DeleteDhcpOptions (refused while a VPC uses the
//! set) and AssociateDhcpOptions (a set, or `default`: none). A VPC's
//! `dhcpOptionsId` shows its set.

use std::net::Ipv4Addr;

use mallee_store::{DhcpOptions, DhcpOptionsDeletion, StoreError, TagPair, Vpc};

use crate::instances::lifecycle;
use crate::instances::model::InstanceState;
use crate::instances::quota;
use crate::{Cloud, CloudError, Kind, Principal, ids, vpcs};

/// AssociateDhcpOptions' name for "no options set".
pub const DEFAULT: &str = "default";

/// The value AWS's resolver goes by in `domain-name-servers`.
pub const AMAZON_DNS: &str = "AmazonProvidedDNS";

fn invalid_value(key: &str, value: &str) -> CloudError {
    CloudError::Invalid(format!(
        "Value ({value}) for parameter value is invalid. Invalid value for DHCP option '{key}'."
    ))
}

/// Checks one option's values as AWS does: at most four servers, each an
/// IPv4 address (or AmazonProvidedDNS for name servers), a domain name of
/// host name characters, a NetBIOS node type of 1, 2, 4 or 8.
fn check(key: &str, values: &[String]) -> Result<(), CloudError> {
    if values.is_empty() {
        return Err(CloudError::Missing(format!(
            "The request must contain the parameter value for DHCP option '{key}'."
        )));
    }
    let address = |v: &String| v.parse::<Ipv4Addr>().is_ok();
    let servers = |ok: &dyn Fn(&String) -> bool| -> Result<(), CloudError> {
        if values.len() > 4 {
            return Err(CloudError::Invalid(format!(
                "Value for DHCP option '{key}' has more than 4 entries."
            )));
        }
        match values.iter().find(|v| !ok(v)) {
            Some(bad) => Err(invalid_value(key, bad)),
            None => Ok(()),
        }
    };
    match key {
        "domain-name-servers" => servers(&|v| address(v) || v == AMAZON_DNS),
        "ntp-servers" | "netbios-name-servers" => servers(&address),
        "domain-name" => {
            let ok = |v: &String| {
                v.split(' ').all(|name| {
                    !name.is_empty()
                        && name.len() <= 253
                        && !name.starts_with(['-', '.'])
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
                })
            };
            servers(&ok)
        }
        "netbios-node-type" => match values {
            [v] if ["1", "2", "4", "8"].contains(&v.as_str()) => Ok(()),
            _ => Err(invalid_value(key, &values.join(","))),
        },
        "ipv6-address-preferred-lease-time" => match values {
            [v] if v
                .parse::<u64>()
                .is_ok_and(|s| (140..=2_147_483_647).contains(&s)) =>
            {
                Ok(())
            }
            _ => Err(invalid_value(key, &values.join(","))),
        },
        other => Err(CloudError::Invalid(format!(
            "Value ({other}) for parameter key is invalid. Unknown DHCP option"
        ))),
    }
}

/// Creates a DHCP options set for the caller.
pub async fn create(
    cloud: &Cloud,
    caller: &Principal,
    configurations: Vec<(String, Vec<String>)>,
    tags: Vec<TagPair>,
) -> Result<DhcpOptions, CloudError> {
    if configurations.is_empty() {
        return Err(CloudError::Missing(
            "The request must contain the parameter dhcpConfiguration".into(),
        ));
    }
    for (i, (key, values)) in configurations.iter().enumerate() {
        if configurations[..i].iter().any(|(k, _)| k == key) {
            return Err(CloudError::Invalid(format!(
                "Duplicate DHCP option '{key}' specified."
            )));
        }
        check(key, values)?;
    }
    let options = DhcpOptions {
        dhcp_options_id: ids::resource_id("dopt"),
        account_id: caller.account_id().to_owned(),
        configurations,
        created_at: ids::now_millis(),
    };
    cloud.store.create_dhcp_options(&options, &tags).await?;
    Ok(options)
}

fn not_found(id: &str) -> CloudError {
    CloudError::not_found(
        Kind::DhcpOptions,
        format!("The dhcpOption ID '{id}' does not exist"),
    )
}

/// The caller's sets, only those named by `ids` when it names any (every
/// one must exist).
pub async fn list(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<DhcpOptions>, CloudError> {
    let all = cloud.store.dhcp_options(caller.account_id()).await?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !all.iter().any(|o| &o.dhcp_options_id == *id))
    {
        return Err(not_found(missing));
    }
    Ok(all
        .into_iter()
        .filter(|o| ids.is_empty() || ids.contains(&o.dhcp_options_id))
        .collect())
}

/// Deletes the caller's set `id`.
pub async fn delete(cloud: &Cloud, caller: &Principal, id: &str) -> Result<(), CloudError> {
    match cloud
        .store
        .delete_dhcp_options(caller.account_id(), id)
        .await?
    {
        DhcpOptionsDeletion::Deleted => Ok(()),
        DhcpOptionsDeletion::NotFound => Err(not_found(id)),
        DhcpOptionsDeletion::InUse { vpc_id } => Err(CloudError::Dependency {
            kind: Kind::DhcpOptions,
            message: format!(
                "The dhcpOptions '{id}' has dependencies and cannot be deleted. ({vpc_id} uses it)"
            ),
        }),
    }
}

/// The `domain-name` of `vpc`'s set, which its instances' DHCP hands out.
pub async fn domain_name(cloud: &Cloud, vpc: &Vpc) -> Result<Option<String>, CloudError> {
    let Some(id) = &vpc.dhcp_options_id else {
        return Ok(None);
    };
    Ok(cloud
        .store
        .dhcp_options(&vpc.account_id)
        .await?
        .into_iter()
        .find(|o| &o.dhcp_options_id == id)
        .and_then(|o| {
            o.configurations
                .into_iter()
                .find(|(key, _)| key == "domain-name")
                .and_then(|(_, values)| values.into_iter().next())
        }))
}

/// Makes the caller's VPC `vpc_id` use set `id` (or none: [`DEFAULT`]),
/// and its running instances' DHCP hand out the set's domain name.
pub async fn associate(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
    vpc_id: &str,
) -> Result<(), CloudError> {
    let account = caller.account_id();
    vpcs::default_vpc(cloud, account).await?;
    let vpc_missing =
        || CloudError::not_found(Kind::Vpc, format!("The vpc ID '{vpc_id}' does not exist"));
    let owned = cloud
        .store
        .vpc(vpc_id)
        .await?
        .is_some_and(|v| v.account_id == account);
    if !owned {
        return Err(vpc_missing());
    }
    let wanted = (id != DEFAULT).then_some(id);
    match cloud
        .store
        .associate_dhcp_options(account, vpc_id, wanted)
        .await
    {
        Ok(()) => {}
        Err(StoreError::NotFound(missing)) if missing == vpc_id => return Err(vpc_missing()),
        Err(StoreError::NotFound(_)) => return Err(not_found(id)),
        Err(e) => return Err(e.into()),
    }
    let vpc = cloud.store.vpc(vpc_id).await?.ok_or_else(vpc_missing)?;
    let domain = domain_name(cloud, &vpc).await?;
    let members: Vec<String> = quota::all_instances(cloud)
        .await?
        .into_iter()
        .filter(|i| i.record.account_id == account)
        .filter(|i| i.state != InstanceState::Terminated)
        .filter(|i| {
            i.details
                .spec
                .nics
                .iter()
                .any(|n| n.network_id == vpc_id && n.domain_name != domain)
        })
        .map(|i| i.id().to_owned())
        .collect();
    if members.is_empty() {
        return Ok(());
    }
    lifecycle::change(cloud, caller, &members, |instance, _| {
        for nic in instance
            .details
            .spec
            .nics
            .iter_mut()
            .filter(|n| n.network_id == vpc_id)
        {
            nic.domain_name = domain.clone();
        }
        // The node gets the new spec: its DHCP follows at the next lease.
        instance.record.generation += 1;
        Ok(true)
    })
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestCloud;

    fn option(key: &str, values: &[&str]) -> (String, Vec<String>) {
        (
            key.to_owned(),
            values.iter().map(|v| (*v).to_owned()).collect(),
        )
    }

    #[tokio::test]
    async fn sets_are_checked_used_and_deleted() {
        let cloud = TestCloud::new().await;
        let caller = cloud.principal("owner").await;
        for bad in [
            vec![option("domain-name-servers", &["10.0.0.300"])],
            vec![option("ntp-servers", &["AmazonProvidedDNS"])],
            vec![option("netbios-node-type", &["3"])],
            vec![option("colour", &["blue"])],
            vec![option("domain-name", &["bad name!"])],
            vec![option(
                "domain-name-servers",
                &["1.1.1.1", "1.1.1.2", "1.1.1.3", "1.1.1.4", "1.1.1.5"],
            )],
            vec![
                option("domain-name", &["a.example"]),
                option("domain-name", &["b.example"]),
            ],
            vec![],
        ] {
            assert!(
                create(&cloud, &caller, bad.clone(), Vec::new())
                    .await
                    .is_err(),
                "{bad:?} accepted"
            );
        }
        let set = create(
            &cloud,
            &caller,
            vec![
                option("domain-name", &["corp.example"]),
                option("domain-name-servers", &[AMAZON_DNS]),
            ],
            Vec::new(),
        )
        .await
        .expect("create");
        assert!(set.dhcp_options_id.starts_with("dopt-"));
        let vpc = vpcs::default_vpc(&cloud, caller.account_id())
            .await
            .expect("vpc")
            .vpc;
        associate(&cloud, &caller, &set.dhcp_options_id, &vpc.vpc_id)
            .await
            .expect("associate");
        assert!(matches!(
            delete(&cloud, &caller, &set.dhcp_options_id).await,
            Err(CloudError::Dependency { .. })
        ));
        let other = cloud.principal("other").await;
        assert!(matches!(
            associate(&cloud, &other, &set.dhcp_options_id, &vpc.vpc_id).await,
            Err(CloudError::NotFound {
                kind: Kind::Vpc,
                ..
            })
        ));
        assert!(matches!(
            associate(&cloud, &caller, "dopt-0123456789abcdef0", &vpc.vpc_id).await,
            Err(CloudError::NotFound {
                kind: Kind::DhcpOptions,
                ..
            })
        ));
        assert!(matches!(
            list(&cloud, &other, std::slice::from_ref(&set.dhcp_options_id)).await,
            Err(CloudError::NotFound { .. })
        ));
        associate(&cloud, &caller, DEFAULT, &vpc.vpc_id)
            .await
            .expect("default");
        delete(&cloud, &caller, &set.dhcp_options_id)
            .await
            .expect("delete");
        assert!(list(&cloud, &caller, &[]).await.expect("list").is_empty());
    }

    /// The instance's generation and the domain its interface carries.
    async fn generation(cloud: &Cloud) -> (i64, Option<String>) {
        let record = cloud
            .store
            .instance("i-0000000000000dd01")
            .await
            .expect("read")
            .expect("exists");
        let instance = crate::instances::model::Instance::from_record(record).expect("decode");
        (
            instance.record.generation,
            instance.details.spec.nics[0].domain_name.clone(),
        )
    }

    #[tokio::test]
    async fn running_instances_follow_their_vpcs_domain_name() {
        let cloud = TestCloud::new().await;
        let caller = cloud.principal("owner").await;
        let vpc = vpcs::default_vpc(&cloud, caller.account_id())
            .await
            .expect("vpc")
            .vpc;
        let builder =
            crate::testkit::InstanceBuilder::new("i-0000000000000dd01", caller.account_id())
                .network(&vpc.vpc_id)
                .state(
                    InstanceState::Running,
                    crate::instances::model::Desired::Running,
                );
        builder.store(&cloud).await;
        let (before, domain) = generation(&cloud).await;
        assert_eq!(domain, None);
        let set = create(
            &cloud,
            &caller,
            vec![option("domain-name", &["corp.example"])],
            Vec::new(),
        )
        .await
        .expect("create");
        associate(&cloud, &caller, &set.dhcp_options_id, &vpc.vpc_id)
            .await
            .expect("associate");
        let (after, domain) = generation(&cloud).await;
        assert!(after > before, "the node was not given the new spec");
        assert_eq!(domain.as_deref(), Some("corp.example"));
        assert_eq!(
            domain_name(
                &cloud,
                &cloud
                    .store
                    .vpc(&vpc.vpc_id)
                    .await
                    .expect("read")
                    .expect("vpc")
            )
            .await
            .expect("domain")
            .as_deref(),
            Some("corp.example")
        );
        associate(&cloud, &caller, DEFAULT, &vpc.vpc_id)
            .await
            .expect("default");
        assert_eq!(generation(&cloud).await.1, None);
    }
}
