//! Instances' public DNS names as the world outside their VPCs sees them:
//! `ec2-198-18-0-23.REGION.compute.mallee` is the public address of the
//! instance that holds 198.18.0.23 now, and that address's reverse name is
//! that name. Inside a VPC the node's resolver answers the same name with
//! the private address instead (see the node's network). Answers come from
//! the instances' desired state, read at most once a second.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use crate::instances::model::InstanceState;
use crate::{Cloud, CloudError};

/// How long one reading of the public addresses in use answers queries.
const FRESH_FOR: Duration = Duration::from_secs(1);

/// What the resolver says of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The name is an instance's: its public address.
    Address(Ipv4Addr),
    /// The name is in the cloud's public domain, but nobody holds it.
    NoSuchName,
    /// Not a name of the cloud's public domain.
    NotOurs,
}

/// The public addresses instances hold, read from the store now and then.
#[derive(Debug, Default)]
pub struct PublicNames {
    held: Mutex<Option<(Instant, Arc<HashSet<Ipv4Addr>>)>>,
}

impl PublicNames {
    /// The domain public names live in (`mallee-1.compute.mallee`).
    pub fn domain(cloud: &Cloud) -> String {
        cloud.config.public_domain()
    }

    /// What `name` (any case, with or without the root dot) resolves to.
    pub async fn resolve(&self, cloud: &Cloud, name: &str) -> Result<Answer, CloudError> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let domain = Self::domain(cloud);
        let Some(host) = name.strip_suffix(&domain).and_then(|h| h.strip_suffix('.')) else {
            return Ok(if name == domain {
                Answer::NoSuchName
            } else {
                Answer::NotOurs
            });
        };
        let Some(ip) = address_of(host) else {
            return Ok(Answer::NoSuchName);
        };
        Ok(if self.held(cloud).await?.contains(&ip) {
            Answer::Address(ip)
        } else {
            Answer::NoSuchName
        })
    }

    /// The public name of `ip`, if an instance holds it.
    pub async fn name_of(&self, cloud: &Cloud, ip: Ipv4Addr) -> Result<Option<String>, CloudError> {
        Ok(self.held(cloud).await?.contains(&ip).then(|| {
            crate::addresses::public_hostname(&ip.to_string(), &cloud.config.public_domain())
        }))
    }

    async fn held(&self, cloud: &Cloud) -> Result<Arc<HashSet<Ipv4Addr>>, CloudError> {
        if let Some((at, held)) = &*self.lock()
            && at.elapsed() < FRESH_FOR
        {
            return Ok(Arc::clone(held));
        }
        let held: HashSet<Ipv4Addr> = crate::instances::quota::all_instances(cloud)
            .await?
            .into_iter()
            .filter(|i| !matches!(i.state, InstanceState::Stopped | InstanceState::Terminated))
            // A VPC without public names (enableDnsHostnames) has none here.
            .filter(|i| i.details.spec.metadata.public_hostname.is_some())
            .filter_map(|i| i.details.spec.metadata.public_ipv4?.parse().ok())
            .collect();
        let held = Arc::new(held);
        *self.lock() = Some((Instant::now(), Arc::clone(&held)));
        Ok(held)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, Arc<HashSet<Ipv4Addr>>)>> {
        self.held.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// `ec2-198-18-0-23` → 198.18.0.23.
fn address_of(host: &str) -> Option<Ipv4Addr> {
    let dotted = host.strip_prefix("ec2-")?.replace('-', ".");
    let ip: Ipv4Addr = dotted.parse().ok()?;
    // Only the canonical spelling (no leading zeros) is a name.
    (ip.to_string() == dotted).then_some(ip)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_labels_spell_addresses_canonically() {
        assert_eq!(
            address_of("ec2-198-18-0-23"),
            Some(Ipv4Addr::new(198, 18, 0, 23))
        );
        assert_eq!(address_of("ec2-198-18-0-023"), None);
        assert_eq!(address_of("ip-198-18-0-23"), None);
        assert_eq!(address_of("ec2-198-18-0"), None);
    }
}
