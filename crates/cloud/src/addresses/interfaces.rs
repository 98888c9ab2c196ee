//! The network interface each associated elastic IP is on, as
//! DescribeAddresses shows it (`networkInterfaceId`,
//! `networkInterfaceOwnerId`; Terraform's `aws_eip` reads them): an
//! instance's primary interface, or the interface of the NAT gateway that
//! holds the address.

use std::collections::HashMap;

use mallee_store::AddressRecord;

use crate::instances::model::Instance;
use crate::{Cloud, CloudError, Principal};

/// The interface of each of `addresses` (the caller's) that is associated,
/// by allocation id.
pub async fn interfaces(
    cloud: &Cloud,
    caller: &Principal,
    addresses: &[AddressRecord],
) -> Result<HashMap<String, String>, CloudError> {
    let mut found = HashMap::new();
    let mut nats = None;
    for a in addresses.iter().filter(|a| a.association_id.is_some()) {
        let interface = match &a.instance_id {
            Some(instance_id) => cloud
                .store
                .instance(instance_id)
                .await?
                .and_then(|r| Instance::decode(r).ok())
                .map(|i| i.details.network_interface_id)
                .filter(|id| !id.is_empty()),
            None => {
                if nats.is_none() {
                    nats = Some(cloud.store.nat_gateways(caller.account_id()).await?);
                }
                nats.iter()
                    .flatten()
                    .find(|n| {
                        n.allocation_id == a.allocation_id
                            && matches!(n.state.as_str(), "pending" | "available")
                    })
                    .map(|n| n.interface_id.clone())
            }
        };
        if let Some(interface) = interface {
            found.insert(a.allocation_id.clone(), interface);
        }
    }
    Ok(found)
}
