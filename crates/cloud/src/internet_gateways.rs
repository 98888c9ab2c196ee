//! Internet gateways: CreateInternetGateway, Attach/Detach, Delete and
//! Describe. A gateway attached to a VPC is what a `0.0.0.0/0` route needs
//! to let the public network reach the VPC's public and elastic IPs (see
//! [`crate::routing`]); attaching and detaching one changes the traffic of
//! the VPC's running instances at once. Every account's default VPC has
//! one, made with its main route table.

use mallee_store::{InternetGateway, StoreError, TagPair};

use crate::{Cloud, CloudError, Kind, Principal, ids, routing};

fn not_found(id: &str) -> CloudError {
    CloudError::not_found(
        Kind::InternetGateway,
        format!("The internetGateway ID '{id}' does not exist"),
    )
}

/// The caller's gateway `id`.
async fn owned(cloud: &Cloud, caller: &Principal, id: &str) -> Result<InternetGateway, CloudError> {
    routing::ensure(cloud, caller.account_id()).await?;
    cloud
        .store
        .internet_gateway(id)
        .await?
        .filter(|g| g.account_id == caller.account_id())
        .ok_or_else(|| not_found(id))
}

/// Makes a detached gateway carrying `tags`.
pub async fn create(
    cloud: &Cloud,
    caller: &Principal,
    tags: &[TagPair],
) -> Result<InternetGateway, CloudError> {
    let gateway = InternetGateway {
        internet_gateway_id: ids::resource_id("igw"),
        account_id: caller.account_id().to_owned(),
        vpc_id: None,
        created_at: ids::now_millis(),
    };
    cloud.store.create_internet_gateway(&gateway, tags).await?;
    Ok(gateway)
}

/// The caller's gateways, only those named by `ids` when it names any
/// (every one must exist).
pub async fn list(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<InternetGateway>, CloudError> {
    routing::ensure(cloud, caller.account_id()).await?;
    let gateways = cloud.store.internet_gateways(caller.account_id()).await?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !gateways.iter().any(|g| &g.internet_gateway_id == *id))
    {
        return Err(not_found(missing));
    }
    Ok(gateways
        .into_iter()
        .filter(|g| ids.is_empty() || ids.contains(&g.internet_gateway_id))
        .collect())
}

/// Attaches the caller's gateway `id` to its VPC `vpc_id`; the VPC's
/// instances with a `0.0.0.0/0` route to it go public.
pub async fn attach(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
    vpc_id: &str,
) -> Result<(), CloudError> {
    let gateway = owned(cloud, caller, id).await?;
    let vpc = routing::owned_vpc(cloud, caller, vpc_id).await?;
    if let Some(attached) = &gateway.vpc_id {
        return Err(CloudError::in_use(
            Kind::Association,
            format!("resource {id} is already attached to network {attached}"),
        ));
    }
    match cloud.store.attach_internet_gateway(id, &vpc.vpc_id).await {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(CloudError::in_use(
                Kind::Association,
                format!("Network {vpc_id} already has an internet gateway attached"),
            ));
        }
        Err(StoreError::NotFound(_)) => return Err(not_found(id)),
        Err(e) => return Err(e.into()),
    }
    routing::refresh(cloud, caller, vpc_id).await
}

/// Detaches the caller's gateway `id` from `vpc_id`; the VPC's instances
/// routed through it lose the public network at once.
///
/// AWS refuses this while the VPC has mapped public addresses; mallee lets
/// it happen and cuts their traffic instead (their routes turn blackhole).
pub async fn detach(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
    vpc_id: &str,
) -> Result<(), CloudError> {
    let gateway = owned(cloud, caller, id).await?;
    routing::owned_vpc(cloud, caller, vpc_id).await?;
    if gateway.vpc_id.as_deref() != Some(vpc_id)
        || !cloud.store.detach_internet_gateway(id, vpc_id).await?
    {
        return Err(CloudError::incorrect_state(
            Kind::InternetGateway,
            format!("resource {id} is not attached to network {vpc_id}"),
        ));
    }
    routing::refresh(cloud, caller, vpc_id).await
}

/// Deletes the caller's detached gateway `id`.
pub async fn delete(cloud: &Cloud, caller: &Principal, id: &str) -> Result<(), CloudError> {
    owned(cloud, caller, id).await?;
    match cloud.store.delete_internet_gateway(id).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(not_found(id)),
        Err(StoreError::Conflict(_)) => Err(CloudError::Dependency {
            kind: Kind::InternetGateway,
            message: format!("The internetGateway '{id}' has dependencies and cannot be deleted."),
        }),
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::TestCloud;
    use crate::vpcs;

    #[tokio::test]
    async fn gateways_attach_one_to_one_and_go_only_when_detached() {
        let cloud = TestCloud::new().await;
        let caller = cloud.principal("acct").await;
        let vpc_id = vpcs::default_vpc(&cloud, caller.account_id())
            .await
            .expect("vpc")
            .vpc
            .vpc_id;
        let all = list(&cloud, &caller, &[]).await.expect("list");
        assert_eq!(all.len(), 1, "the default VPC's gateway");
        let default = all[0].internet_gateway_id.clone();
        assert_eq!(all[0].vpc_id.as_deref(), Some(vpc_id.as_str()));

        let new = create(&cloud, &caller, &[]).await.expect("create");
        let id = new.internet_gateway_id.as_str();
        assert!(matches!(
            attach(&cloud, &caller, id, &vpc_id).await,
            Err(CloudError::InUse {
                kind: Kind::Association,
                ..
            })
        ));
        assert!(matches!(
            detach(&cloud, &caller, id, &vpc_id).await,
            Err(CloudError::IncorrectState {
                kind: Kind::InternetGateway,
                ..
            })
        ));
        assert!(matches!(
            delete(&cloud, &caller, &default).await,
            Err(CloudError::Dependency { .. })
        ));
        detach(&cloud, &caller, &default, &vpc_id)
            .await
            .expect("detach");
        attach(&cloud, &caller, id, &vpc_id).await.expect("attach");
        assert!(matches!(
            attach(&cloud, &caller, id, &vpc_id).await,
            Err(CloudError::InUse {
                kind: Kind::Association,
                ..
            })
        ));
        delete(&cloud, &caller, &default).await.expect("delete");
        assert!(matches!(
            list(&cloud, &caller, std::slice::from_ref(&default)).await,
            Err(CloudError::NotFound {
                kind: Kind::InternetGateway,
                ..
            })
        ));
        // Another account sees none of it and touches nothing.
        let other = cloud.principal("other").await;
        assert!(matches!(
            delete(&cloud, &other, id).await,
            Err(CloudError::NotFound {
                kind: Kind::InternetGateway,
                ..
            })
        ));
        assert!(matches!(
            attach(&cloud, &other, id, &vpc_id).await,
            Err(CloudError::NotFound { .. })
        ));
    }
}
