//! NAT gateways (public connectivity): CreateNatGateway with a subnet and
//! an elastic IP, DeleteNatGateway and DescribeNatGateways.
//!
//! A gateway holds its elastic IP (associated with it, so it can be
//! neither released nor moved) and an address of its subnet. Subnets whose
//! route table sends `0.0.0.0/0` to an available gateway reach the public
//! network SNAT'ed to its elastic IP and cannot be reached from it; the
//! instances' nodes do that translation (see [`crate::routing`]). A
//! gateway is usable as soon as it is stored, so it goes from `pending`
//! to `available` within CreateNatGateway; DeleteNatGateway takes its
//! routes' traffic away (`deleting`), gives the elastic IP back and leaves
//! it `deleted`, listed for an hour as on AWS.

use std::net::Ipv4Addr;

use mallee_store::{AddressChange, AddressOutcome, NatGateway, StoreError, TagPair};
use mallee_util::cidr::Ipv4Cidr;

use crate::{Cloud, CloudError, Kind, Principal, ids, routing};

/// How long a deleted gateway stays listed.
pub const DELETED_LISTED_MILLIS: i64 = 60 * 60 * 1000;

const ATTEMPTS: usize = 16;

/// CreateNatGateway's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Create {
    /// `SubnetId`.
    pub subnet_id: String,
    /// `AllocationId`.
    pub allocation_id: Option<String>,
    /// `ConnectivityType` (`public` unless given).
    pub private: bool,
    /// `ClientToken`.
    pub client_token: Option<String>,
    /// `TagSpecification` tags.
    pub tags: Vec<TagPair>,
}

fn not_found(id: &str) -> CloudError {
    CloudError::not_found(Kind::NatGateway, format!("NAT gateway {id} was not found"))
}

/// The highest address of `subnet` nobody holds (instances take the
/// lowest first, so the two rarely meet).
fn free_address_from_top(subnet: Ipv4Cidr, taken: &[String]) -> Option<Ipv4Addr> {
    let first = u32::from(subnet.first_host());
    let last = u32::from(subnet.broadcast()).checked_sub(1)?;
    // AWS reserves the first four addresses of a subnet and the last.
    (first.saturating_add(3)..=last)
        .rev()
        .map(Ipv4Addr::from)
        .find(|ip| !taken.iter().any(|t| t == &ip.to_string()))
}

/// Makes a public NAT gateway in the caller's subnet with its elastic IP.
pub async fn create(
    cloud: &Cloud,
    caller: &Principal,
    request: &Create,
) -> Result<NatGateway, CloudError> {
    let account = caller.account_id();
    routing::ensure(cloud, account).await?;
    if request.private {
        return Err(CloudError::unsupported(
            "Private NAT gateways are not supported; use ConnectivityType public.",
        ));
    }
    if let Some(token) = &request.client_token
        && let Some(existing) = cloud
            .store
            .nat_gateways(account)
            .await?
            .into_iter()
            .find(|n| n.client_token.as_ref() == Some(token))
    {
        if existing.subnet_id != request.subnet_id
            || Some(&existing.allocation_id) != request.allocation_id.as_ref()
        {
            return Err(CloudError::IdempotencyMismatch(format!(
                "Client token {token} was used for another NAT gateway."
            )));
        }
        return Ok(existing);
    }
    let subnet = cloud
        .store
        .subnet(&request.subnet_id)
        .await?
        .filter(|s| s.account_id == account)
        .ok_or_else(|| {
            CloudError::not_found(
                Kind::Subnet,
                format!("The subnet ID '{}' does not exist", request.subnet_id),
            )
        })?;
    let Some(allocation_id) = &request.allocation_id else {
        return Err(CloudError::missing_parameter("AllocationId"));
    };
    let address = cloud
        .store
        .address(allocation_id)
        .await?
        .filter(|a| a.account_id == account && !a.auto_assigned)
        .ok_or_else(|| {
            CloudError::not_found(
                Kind::Allocation,
                format!("The allocation ID '{allocation_id}' does not exist"),
            )
        })?;
    if address.association_id.is_some() {
        return Err(CloudError::in_use(
            Kind::Association,
            format!("Elastic IP address [{allocation_id}] is already associated"),
        ));
    }
    // The nodes of the subnet's zone carry that zone's public range only.
    if address.zone != subnet.zone {
        return Err(CloudError::InvalidCombination(format!(
            "The address {} belongs to network border group {} and cannot be used by a NAT gateway in {}.",
            address.public_ip, address.zone, subnet.zone
        )));
    }
    let cidr: Ipv4Cidr = subnet
        .cidr
        .parse()
        .map_err(|_| CloudError::Internal(format!("stored subnet CIDR {}", subnet.cidr)))?;
    let mut taken = cloud.store.private_ips_in_use(&subnet.vpc_id).await?;
    let nats = cloud.store.nat_gateways(account).await?;
    taken.extend(
        nats.iter()
            .filter(|n| n.state != "deleted")
            .map(|n| n.private_ip.clone()),
    );
    let private_ip =
        free_address_from_top(cidr, &taken).ok_or_else(|| CloudError::InsufficientCapacity {
            capacity: crate::error::Capacity::SubnetAddresses,
            message: format!(
                "There are not enough free addresses in subnet '{}' to create the NAT gateway.",
                subnet.subnet_id
            ),
        })?;
    let mut gateway = NatGateway {
        nat_gateway_id: ids::resource_id("nat"),
        account_id: account.to_owned(),
        vpc_id: subnet.vpc_id.clone(),
        subnet_id: subnet.subnet_id.clone(),
        allocation_id: allocation_id.clone(),
        public_ip: address.public_ip.clone(),
        private_ip: private_ip.to_string(),
        interface_id: ids::resource_id("eni"),
        state: "pending".into(),
        client_token: request.client_token.clone(),
        created_at: ids::now_millis(),
        deleted_at: None,
    };
    match cloud
        .store
        .create_nat_gateway(&gateway, &request.tags)
        .await
    {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) => {
            return Err(CloudError::in_use(
                Kind::Association,
                format!("Elastic IP address [{allocation_id}] is already associated"),
            ));
        }
        Err(e) => return Err(e.into()),
    }
    // The elastic IP is the gateway's from now on.
    let mut bound = address;
    bound.association_id = Some(ids::resource_id("eipassoc"));
    bound.private_ip = Some(gateway.private_ip.clone());
    let change = AddressChange {
        update: vec![bound],
        ..AddressChange::default()
    };
    if cloud.store.apply_address_change(&change).await? != AddressOutcome::Applied {
        cloud
            .store
            .set_nat_gateway_state(&gateway.nat_gateway_id, "pending", "failed", None)
            .await?;
        return Err(CloudError::Contended(format!(
            "the elastic IP {allocation_id} changed while the NAT gateway was made; try again"
        )));
    }
    // Nothing routes to a new gateway yet: it is usable at once.
    cloud
        .store
        .set_nat_gateway_state(&gateway.nat_gateway_id, "pending", "available", None)
        .await?;
    tracing::info!(nat = %gateway.nat_gateway_id, address = %gateway.public_ip, "NAT gateway created");
    // The response shows the state it was made in, as AWS's does.
    gateway.state = "pending".into();
    Ok(gateway)
}

/// The caller's NAT gateways (those deleted over an hour ago no longer
/// listed), only those named by `ids` when it names any (every one must
/// exist).
pub async fn list(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<NatGateway>, CloudError> {
    let now = ids::now_millis();
    let gateways: Vec<NatGateway> = cloud
        .store
        .nat_gateways(caller.account_id())
        .await?
        .into_iter()
        .filter(|n| {
            n.deleted_at
                .is_none_or(|at| now - at < DELETED_LISTED_MILLIS)
        })
        .collect();
    if let Some(missing) = ids
        .iter()
        .find(|id| !gateways.iter().any(|n| &n.nat_gateway_id == *id))
    {
        return Err(not_found(missing));
    }
    Ok(gateways
        .into_iter()
        .filter(|n| ids.is_empty() || ids.contains(&n.nat_gateway_id))
        .collect())
}

/// The association ids of the caller's elastic IPs by allocation id: a
/// live gateway's address shows the association that binds its elastic
/// IP (Terraform's `aws_nat_gateway` reads it as `association_id`).
pub async fn associations(
    cloud: &Cloud,
    caller: &Principal,
) -> Result<std::collections::HashMap<String, String>, CloudError> {
    Ok(cloud
        .store
        .addresses(Some(caller.account_id()))
        .await?
        .into_iter()
        .filter_map(|a| Some((a.allocation_id, a.association_id?)))
        .collect())
}

/// Deletes the caller's NAT gateway `id`: the subnets routed through it
/// lose the public network, its elastic IP is free again. Deleting a
/// deleted gateway changes nothing.
pub async fn delete(cloud: &Cloud, caller: &Principal, id: &str) -> Result<(), CloudError> {
    let gateway = cloud
        .store
        .nat_gateway(id)
        .await?
        .filter(|n| n.account_id == caller.account_id())
        .ok_or_else(|| not_found(id))?;
    if matches!(gateway.state.as_str(), "deleted" | "failed") {
        return Ok(());
    }
    for from in ["available", "pending"] {
        cloud
            .store
            .set_nat_gateway_state(id, from, "deleting", None)
            .await?;
    }
    routing::refresh(cloud, caller, &gateway.vpc_id).await?;
    release_address(cloud, &gateway).await?;
    cloud
        .store
        .set_nat_gateway_state(id, "deleting", "deleted", Some(ids::now_millis()))
        .await?;
    tracing::info!(nat = %id, "NAT gateway deleted");
    Ok(())
}

/// Gives the gateway's elastic IP back (unassociated), if it still holds it.
async fn release_address(cloud: &Cloud, gateway: &NatGateway) -> Result<(), CloudError> {
    for _ in 0..ATTEMPTS {
        let Some(address) = cloud.store.address(&gateway.allocation_id).await? else {
            return Ok(());
        };
        if address.instance_id.is_some()
            || address.private_ip.as_deref() != Some(gateway.private_ip.as_str())
        {
            return Ok(());
        }
        let mut free = address;
        free.association_id = None;
        free.private_ip = None;
        let change = AddressChange {
            update: vec![free],
            ..AddressChange::default()
        };
        if cloud.store.apply_address_change(&change).await? == AddressOutcome::Applied {
            return Ok(());
        }
    }
    Err(CloudError::Contended(
        "the elastic IP kept changing; try again".into(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gateways_take_addresses_from_the_top() {
        let net: Ipv4Cidr = "10.0.1.0/24".parse().expect("net");
        assert_eq!(
            free_address_from_top(net, &[]),
            Some(Ipv4Addr::new(10, 0, 1, 254))
        );
        assert_eq!(
            free_address_from_top(net, &["10.0.1.254".into()]),
            Some(Ipv4Addr::new(10, 0, 1, 253))
        );
        let tiny: Ipv4Cidr = "10.0.1.0/29".parse().expect("net");
        let all: Vec<String> = (4..=6).map(|i| format!("10.0.1.{i}")).collect();
        assert_eq!(free_address_from_top(tiny, &all), None);
    }
}
