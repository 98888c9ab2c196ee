//! Public IPv4 addresses: AllocateAddress, AssociateAddress,
//! DisassociateAddress, ReleaseAddress and DescribeAddresses, and the
//! auto-assigned public IPs instances get at launch.
//!
//! Addresses come from the public range the administrator gives each zone;
//! the range's first host is the nodes' public bridge and is never handed
//! out. The address table is the truth; each instance's launch details
//! carry a copy (`nics[0].public_ip`, metadata `public-ipv4` and
//! `public-hostname`) so the node and the metadata service see it. Every
//! change is planned from fresh records and applied in one store
//! transaction with compare-and-set on each address and instance it
//! touches, retried when someone else changed them first; the instance's
//! `generation` is bumped so the reconciler sends the node the new spec.
//!
//! As in EC2, an instance that had an auto-assigned public IP gives it back
//! to the pool when an elastic IP is associated with it, and gets an
//! auto-assigned one again (the same address when it is still free) when
//! the elastic IP leaves it. Auto-assigned addresses are neither listed nor
//! taggable.
//!
//! [`domain_names`] keeps the domain name (PTR record) of each elastic IP;
//! [`interfaces`] finds the network interface of each associated one.
//!
//! Public host names have the form `ec2-198-18-0-5.REGION.compute.mallee`
//! (AWS: `ec2-203-0-113-25.REGION.compute.amazonaws.com`); nothing resolves
//! them yet.

pub mod domain_names;
pub mod interfaces;

use mallee_store::{AddressChange, AddressOutcome, AddressRecord, InstanceRecord, TagPair};
use rand::seq::SliceRandom;

use crate::error::{Capacity, Limit};
use crate::instances::model::{Instance, InstanceDetails, InstanceState};
use crate::{Cloud, CloudError, Kind, Principal, ids};

/// Plan-and-apply attempts before giving up on contended records.
const ATTEMPTS: usize = 16;
/// How old an address of an instance that does not exist must be before
/// [`reclaim_orphans`] takes it back (a launch records its addresses just
/// before its reservation).
pub const ORPHAN_GRACE_MILLIS: i64 = 10 * 60 * 1000;

/// EC2's public DNS name for a public address in `domain` (the cloud's
/// [`crate::Config::public_domain`]).
pub fn public_hostname(ip: &str, domain: &str) -> String {
    format!("ec2-{}.{domain}", ip.replace('.', "-"))
}

/// Writes `ip` (or no public address) into launch details: the node's NIC
/// spec and the metadata service's `public-ipv4` / `public-hostname` (the
/// latter only when the VPC gives public DNS names, `enableDnsHostnames`).
/// Returns whether anything changed.
pub fn set_public_ip(details: &mut InstanceDetails, ip: Option<&str>, domain: &str) -> bool {
    let ip = ip.map(str::to_owned);
    let named = details
        .spec
        .nics
        .first()
        .is_none_or(|nic| nic.dns.hostnames);
    let hostname = ip
        .as_deref()
        .filter(|_| named)
        .map(|ip| public_hostname(ip, domain));
    let spec = &mut details.spec;
    let nic_changed = spec.nics.first().is_some_and(|nic| nic.public_ip != ip);
    if !nic_changed && spec.metadata.public_ipv4 == ip && spec.metadata.public_hostname == hostname
    {
        return false;
    }
    if let Some(nic) = spec.nics.first_mut() {
        nic.public_ip.clone_from(&ip);
    }
    spec.metadata.public_ipv4 = ip;
    spec.metadata.public_hostname = hostname;
    true
}

/// Whether a launch should get auto-assigned public IPs: the request's
/// choice (`AssociatePublicIpAddress`) when it made one, else the
/// controller's setting.
pub fn auto_assign_wanted(cloud: &Cloud, requested: Option<bool>) -> bool {
    requested.unwrap_or(cloud.config.auto_public_ip)
}

fn range_of(cloud: &Cloud, zone: &str) -> Option<crate::config::PublicCidr> {
    cloud
        .config
        .public_ranges
        .iter()
        .find(|r| r.zone == zone)
        .map(|r| r.cidr)
}

/// The free addresses of `zone`'s range, in random order (so concurrent
/// allocations rarely race for the same one), with `preferred` first when
/// it is free.
async fn free_ips(
    cloud: &Cloud,
    zone: &str,
    preferred: Option<&str>,
) -> Result<Vec<String>, CloudError> {
    let Some(range) = range_of(cloud, zone) else {
        return Ok(Vec::new());
    };
    let held = cloud.store.public_ips_in_use(zone).await?;
    let held: std::collections::HashSet<&str> = held.iter().map(String::as_str).collect();
    let mut free: Vec<String> = range
        .allocatable()
        .map(|ip| ip.to_string())
        .filter(|ip| !held.contains(ip.as_str()))
        .collect();
    free.shuffle(&mut rand::thread_rng());
    if let Some(preferred) = preferred
        && let Some(pos) = free.iter().position(|ip| ip == preferred)
    {
        free.swap(0, pos);
    }
    Ok(free)
}

/// Applies a planned change: `Ok(true)` applied, `Ok(false)` stale (plan
/// again).
async fn commit(cloud: &Cloud, change: &AddressChange) -> Result<bool, CloudError> {
    match cloud.store.apply_address_change(change).await? {
        AddressOutcome::Applied => {
            if !change.instances.is_empty() {
                cloud.compute.wake();
            }
            Ok(true)
        }
        AddressOutcome::Stale | AddressOutcome::PublicIpTaken(_) => Ok(false),
        AddressOutcome::LimitExceeded => Err(address_limit()),
    }
}

fn contended() -> CloudError {
    CloudError::Contended("the addresses kept changing; try again".into())
}

fn address_limit() -> CloudError {
    CloudError::LimitExceeded {
        limit: Limit::Addresses,
        message: "The maximum number of addresses has been reached.".into(),
    }
}

fn no_capacity() -> CloudError {
    CloudError::InsufficientCapacity {
        capacity: Capacity::Addresses,
        message: "There are not enough free public addresses to satisfy the request.".into(),
    }
}

fn auto_record(
    account_id: &str,
    zone: &str,
    ip: &str,
    instance: &str,
    private_ip: &str,
) -> AddressRecord {
    AddressRecord {
        allocation_id: ids::resource_id("eipalloc"),
        account_id: account_id.to_owned(),
        public_ip: ip.to_owned(),
        zone: zone.to_owned(),
        domain: "vpc".to_owned(),
        association_id: Some(ids::resource_id("eipassoc")),
        instance_id: Some(instance.to_owned()),
        private_ip: Some(private_ip.to_owned()),
        auto_assigned: true,
        replaced_auto_ip: None,
        ptr_record: None,
        revision: 0,
        created_at: ids::now_millis(),
    }
}

/// The record storing `instance` with public address `ip`, if that changes
/// its launch details (generation bumped so the node gets the new spec).
fn instance_with_ip(
    cloud: &Cloud,
    instance: &Instance,
    ip: Option<&str>,
) -> Option<InstanceRecord> {
    let mut changed = instance.clone();
    if !set_public_ip(&mut changed.details, ip, &cloud.config.public_domain()) {
        return None;
    }
    changed.record.generation += 1;
    changed.record.updated_at = ids::now_millis();
    Some(changed.encode())
}

fn is_live(instance: &Instance) -> bool {
    !matches!(
        instance.state,
        InstanceState::ShuttingDown | InstanceState::Terminated
    )
}

async fn load_instance(cloud: &Cloud, instance_id: &str) -> Result<Option<Instance>, CloudError> {
    cloud
        .store
        .instance(instance_id)
        .await?
        .map(Instance::from_record)
        .transpose()
}

/// Plans giving `instance` an auto-assigned public IP (`preferred` when
/// free) into `change`; `None` when its zone's range is exhausted.
async fn plan_auto(
    cloud: &Cloud,
    instance: &Instance,
    preferred: Option<&str>,
    change: &mut AddressChange,
) -> Result<Option<String>, CloudError> {
    let zone = &instance.record.zone;
    let taken: Vec<&str> = change.insert.iter().map(|a| a.public_ip.as_str()).collect();
    let Some(ip) = free_ips(cloud, zone, preferred)
        .await?
        .into_iter()
        .find(|ip| !taken.contains(&ip.as_str()))
    else {
        tracing::warn!(instance = %instance.id(), zone = %zone, "no free public address: the instance has none");
        return Ok(None);
    };
    change.insert.push(auto_record(
        &instance.record.account_id,
        zone,
        &ip,
        instance.id(),
        &instance.record.private_ip,
    ));
    Ok(Some(ip))
}

/// Records auto-assigned public IPs for instances a launch is about to
/// create: `instances` are (instance id, private IP) pairs of `zone`, all
/// of `account_id`. Call it after choosing the instance ids and before
/// storing the reservation, put each returned address in the instance's
/// launch details with [`set_public_ip`], and call
/// [`release_instance_addresses`] for every id if the reservation is not
/// stored. Instances beyond what the zone's range has free get `None`.
/// A crash between this and the reservation leaves addresses that
/// [`reclaim_orphans`] takes back.
pub async fn allocate_auto(
    cloud: &Cloud,
    account_id: &str,
    zone: &str,
    instances: &[(String, String)],
) -> Result<Vec<Option<String>>, CloudError> {
    for _ in 0..ATTEMPTS {
        let free = free_ips(cloud, zone, None).await?;
        let mut change = AddressChange::default();
        let mut assigned = Vec::with_capacity(instances.len());
        for (index, (instance_id, private_ip)) in instances.iter().enumerate() {
            match free.get(index) {
                Some(ip) => {
                    change
                        .insert
                        .push(auto_record(account_id, zone, ip, instance_id, private_ip));
                    assigned.push(Some(ip.clone()));
                }
                None => assigned.push(None),
            }
        }
        if assigned.iter().any(Option::is_none) {
            tracing::warn!(zone = %zone, wanted = instances.len(), free = free.len(), "public range exhausted: some instances launch without a public address");
        }
        if change.insert.is_empty() || commit(cloud, &change).await? {
            return Ok(assigned);
        }
    }
    Err(contended())
}

/// Gives an existing instance an auto-assigned public IP unless it already
/// has a public address (returns the one it has then); `None` when the
/// zone's range is exhausted. For a lead flow that releases public IPs at
/// stop and assigns them again at start.
pub async fn auto_assign_public_ip(
    cloud: &Cloud,
    instance_id: &str,
) -> Result<Option<String>, CloudError> {
    for _ in 0..ATTEMPTS {
        if let Some(held) = cloud.store.address_of_instance(instance_id).await? {
            return Ok(Some(held.public_ip));
        }
        let Some(instance) = load_instance(cloud, instance_id).await? else {
            return Err(CloudError::instances_not_found(&[instance_id]));
        };
        let mut change = AddressChange::default();
        let Some(ip) = plan_auto(cloud, &instance, None, &mut change).await? else {
            return Ok(None);
        };
        change
            .instances
            .extend(instance_with_ip(cloud, &instance, Some(&ip)));
        if commit(cloud, &change).await? {
            return Ok(Some(ip));
        }
    }
    Err(contended())
}

/// Frees an instance's public address when it terminates (or when its
/// launch was not stored): an auto-assigned one goes back to the pool, an
/// elastic IP is disassociated and stays allocated to its account, as in
/// EC2. The instance record is not changed (DescribeInstances shows no
/// public address for a terminated instance). Idempotent.
pub async fn release_instance_addresses(
    cloud: &Cloud,
    instance_id: &str,
) -> Result<(), CloudError> {
    for _ in 0..ATTEMPTS {
        let Some(address) = cloud.store.address_of_instance(instance_id).await? else {
            return Ok(());
        };
        let mut change = AddressChange::default();
        if address.auto_assigned {
            change.delete.push(address);
        } else {
            change.update.push(disassociated(address));
        }
        commit(cloud, &change).await?;
    }
    Err(contended())
}

/// Takes back addresses of instances that do not exist (a launch that
/// crashed between recording its public IPs and its reservation, or an
/// instance removed without [`release_instance_addresses`]). Safe to call
/// at any time, for example from each reconciler pass. Returns how many
/// addresses were freed.
pub async fn reclaim_orphans(cloud: &Cloud) -> Result<usize, CloudError> {
    reclaim_orphans_before(cloud, ids::now_millis() - ORPHAN_GRACE_MILLIS).await
}

/// [`reclaim_orphans`] for addresses recorded before `cutoff`.
pub async fn reclaim_orphans_before(cloud: &Cloud, cutoff: i64) -> Result<usize, CloudError> {
    let orphans = cloud.store.orphan_addresses(cutoff).await?;
    let mut freed = 0;
    for orphan in orphans {
        let mut change = AddressChange::default();
        if orphan.auto_assigned {
            change.delete.push(orphan);
        } else {
            change.update.push(disassociated(orphan));
        }
        if commit(cloud, &change).await? {
            freed += 1;
        }
    }
    Ok(freed)
}

fn disassociated(mut address: AddressRecord) -> AddressRecord {
    address.association_id = None;
    address.instance_id = None;
    address.private_ip = None;
    address.replaced_auto_ip = None;
    address
}

/// Plans `address` leaving the instance it is associated with: the
/// instance gets back an auto-assigned address when the elastic IP had
/// displaced one, else no public address.
async fn plan_leave(
    cloud: &Cloud,
    address: &AddressRecord,
    change: &mut AddressChange,
) -> Result<(), CloudError> {
    let Some(instance_id) = &address.instance_id else {
        return Ok(());
    };
    let Some(instance) = load_instance(cloud, instance_id).await? else {
        return Ok(());
    };
    if !is_live(&instance) {
        return Ok(());
    }
    let mut ip = None;
    if address.replaced_auto_ip.is_some() {
        ip = plan_auto(
            cloud,
            &instance,
            address.replaced_auto_ip.as_deref(),
            change,
        )
        .await?;
    }
    change
        .instances
        .extend(instance_with_ip(cloud, &instance, ip.as_deref()));
    Ok(())
}

fn allocation_not_found(id: &str) -> CloudError {
    CloudError::not_found(
        Kind::Allocation,
        format!("The allocation ID '{id}' does not exist"),
    )
}

fn address_not_found(ip: &str) -> CloudError {
    CloudError::not_found(Kind::Address, format!("Address '{ip}' not found."))
}

fn association_not_found(id: &str) -> CloudError {
    CloudError::not_found(
        Kind::Association,
        format!("The association ID '{id}' does not exist"),
    )
}

fn in_use(ip: &str) -> CloudError {
    CloudError::in_use(Kind::Address, format!("Address {ip} is in use."))
}

/// An elastic IP named by allocation id or by public IP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddressRef {
    /// By allocation id (`eipalloc-…`).
    Allocation(String),
    /// By public IP.
    PublicIp(String),
}

impl AddressRef {
    /// The caller's elastic IP it names (another account's, or an
    /// auto-assigned address, is not found).
    async fn resolve(&self, cloud: &Cloud, account: &str) -> Result<AddressRecord, CloudError> {
        let found = match self {
            Self::Allocation(id) => cloud.store.address(id).await?,
            Self::PublicIp(ip) => cloud.store.address_by_public_ip(ip).await?,
        };
        match found {
            Some(a) if a.account_id == account && !a.auto_assigned => Ok(a),
            _ => Err(match self {
                Self::Allocation(id) => allocation_not_found(id),
                Self::PublicIp(ip) => address_not_found(ip),
            }),
        }
    }
}

/// What AllocateAddress asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Allocate {
    /// `vpc` or `standard`.
    pub domain: String,
    /// A specific address of a public range.
    pub address: Option<String>,
    /// The zone whose range to allocate from (`NetworkBorderGroup`).
    pub border_group: Option<String>,
    /// Tags for the new allocation.
    pub tags: Vec<TagPair>,
}

/// Allocates a free address of the first zone with one (or of the named
/// border group), within the account's elastic IP limit.
pub async fn allocate(
    cloud: &Cloud,
    caller: &Principal,
    request: Allocate,
) -> Result<AddressRecord, CloudError> {
    let account = caller.account_id();
    let zones: Vec<&str> = match &request.border_group {
        Some(group) => {
            if range_of(cloud, group).is_none() {
                return Err(CloudError::invalid(format!(
                    "The network border group '{group}' is invalid."
                )));
            }
            vec![group.as_str()]
        }
        None => cloud
            .config
            .public_ranges
            .iter()
            .map(|r| r.zone.as_str())
            .collect(),
    };
    let limit = i64::from(cloud.config.account_limits.max_elastic_ips);
    for _ in 0..ATTEMPTS {
        let held = cloud
            .store
            .addresses(Some(account))
            .await?
            .iter()
            .filter(|a| !a.auto_assigned)
            .count();
        if i64::try_from(held).unwrap_or(i64::MAX) >= limit {
            return Err(address_limit());
        }
        let mut pick = None;
        for zone in &zones {
            match &request.address {
                Some(wanted) => {
                    let in_range = range_of(cloud, zone).is_some_and(|r| {
                        wanted
                            .parse()
                            .is_ok_and(|ip| r.contains(ip) && r.allocatable().any(|a| a == ip))
                    });
                    if in_range {
                        if !free_ips(cloud, zone, None).await?.contains(wanted) {
                            return Err(in_use(wanted));
                        }
                        pick = Some(((*zone).to_owned(), wanted.clone()));
                        break;
                    }
                }
                None => {
                    if let Some(ip) = free_ips(cloud, zone, None).await?.into_iter().next() {
                        pick = Some(((*zone).to_owned(), ip));
                        break;
                    }
                }
            }
        }
        let Some((zone, ip)) = pick else {
            return Err(match &request.address {
                Some(wanted) => address_not_found(wanted),
                None => no_capacity(),
            });
        };
        let record = AddressRecord {
            allocation_id: ids::resource_id("eipalloc"),
            account_id: account.to_owned(),
            public_ip: ip,
            zone,
            domain: request.domain.clone(),
            association_id: None,
            instance_id: None,
            private_ip: None,
            auto_assigned: false,
            replaced_auto_ip: None,
            ptr_record: None,
            revision: 0,
            created_at: ids::now_millis(),
        };
        let change = AddressChange {
            insert: vec![record.clone()],
            tags: request.tags.clone(),
            elastic_ip_limit: Some((account.to_owned(), limit)),
            ..AddressChange::default()
        };
        if commit(cloud, &change).await? {
            tracing::info!(account = %account, address = %record.public_ip, allocation = %record.allocation_id, "elastic IP allocated");
            return Ok(record);
        }
        if request.address.is_some() {
            return Err(in_use(&record.public_ip));
        }
    }
    Err(contended())
}

/// What AssociateAddress asks for.
#[derive(Debug, Clone, PartialEq)]
pub struct Associate {
    /// The elastic IP.
    pub address: AddressRef,
    /// The instance to associate it with.
    pub instance_id: String,
    /// The instance's private address it should map to (its primary one).
    pub private_ip: Option<String>,
    /// Whether an address associated elsewhere may move.
    pub allow_reassociation: bool,
}

/// Associates the address with the instance's primary private address;
/// returns the association id.
pub async fn associate(
    cloud: &Cloud,
    caller: &Principal,
    request: Associate,
) -> Result<String, CloudError> {
    let account = caller.account_id();
    for _ in 0..ATTEMPTS {
        let address = request.address.resolve(cloud, account).await?;
        let instance = match load_instance(cloud, &request.instance_id).await? {
            Some(i) if i.record.account_id == account => i,
            _ => return Err(CloudError::instances_not_found(&[&request.instance_id])),
        };
        if !is_live(&instance) {
            return Err(CloudError::incorrect_state(
                Kind::Instance,
                format!(
                    "The instance '{}' is not in a valid state for this operation.",
                    instance.id()
                ),
            ));
        }
        if let Some(ip) = &request.private_ip
            && ip != &instance.record.private_ip
        {
            return Err(CloudError::invalid(format!(
                "The private IP address {ip} is not assigned to instance {}.",
                instance.id()
            )));
        }
        if address.zone != instance.record.zone {
            return Err(CloudError::InvalidCombination(format!(
                "The address {} belongs to network border group {} and cannot be associated with an instance in {}.",
                address.public_ip, address.zone, instance.record.zone
            )));
        }
        if address.instance_id.as_deref() == Some(instance.id()) {
            return Ok(address.association_id.clone().unwrap_or_default());
        }
        // Associated without an instance: a NAT gateway holds it.
        if address.instance_id.is_none()
            && let Some(association) = &address.association_id
        {
            return Err(CloudError::in_use(
                Kind::Association,
                format!(
                    "resource {} is already associated with associate-id {association}",
                    address.allocation_id
                ),
            ));
        }
        if let (Some(_), Some(association)) = (&address.instance_id, &address.association_id)
            && !request.allow_reassociation
        {
            return Err(CloudError::in_use(
                Kind::Association,
                format!(
                    "resource {} is already associated with associate-id {association}",
                    address.allocation_id
                ),
            ));
        }
        let mut change = AddressChange::default();
        // The address leaves its current instance first.
        plan_leave(cloud, &address, &mut change).await?;
        // The instance gives up the address it has.
        let mut replaced_auto_ip = None;
        if let Some(current) = cloud.store.address_of_instance(instance.id()).await? {
            if current.auto_assigned {
                replaced_auto_ip = Some(current.public_ip.clone());
                change.delete.push(current);
            } else {
                replaced_auto_ip.clone_from(&current.replaced_auto_ip);
                change.update.push(disassociated(current));
            }
        }
        let association = ids::resource_id("eipassoc");
        let mut moved = address.clone();
        moved.association_id = Some(association.clone());
        moved.instance_id = Some(instance.id().to_owned());
        moved.private_ip = Some(instance.record.private_ip.clone());
        moved.replaced_auto_ip = replaced_auto_ip;
        change.update.push(moved);
        change
            .instances
            .extend(instance_with_ip(cloud, &instance, Some(&address.public_ip)));
        if commit(cloud, &change).await? {
            tracing::info!(address = %address.public_ip, instance = %instance.id(), association = %association, "elastic IP associated");
            return Ok(association);
        }
    }
    Err(contended())
}

/// Which association DisassociateAddress ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disassociate {
    /// By association id (`eipassoc-…`).
    Association(String),
    /// By public IP (an unassociated address is left as it is).
    PublicIp(String),
}

/// Disassociates the address from its instance.
pub async fn disassociate(
    cloud: &Cloud,
    caller: &Principal,
    request: Disassociate,
) -> Result<(), CloudError> {
    let account = caller.account_id();
    for _ in 0..ATTEMPTS {
        let address = match &request {
            Disassociate::Association(id) => cloud
                .store
                .addresses(Some(account))
                .await?
                .into_iter()
                .find(|a| !a.auto_assigned && a.association_id.as_deref() == Some(id))
                .ok_or_else(|| association_not_found(id))?,
            Disassociate::PublicIp(ip) => {
                AddressRef::PublicIp(ip.clone())
                    .resolve(cloud, account)
                    .await?
            }
        };
        if address.instance_id.is_none() {
            return Ok(());
        }
        let mut change = AddressChange::default();
        plan_leave(cloud, &address, &mut change).await?;
        change.update.push(disassociated(address.clone()));
        if commit(cloud, &change).await? {
            tracing::info!(address = %address.public_ip, "elastic IP disassociated");
            return Ok(());
        }
    }
    Err(contended())
}

/// Returns the address to the pool. An associated `vpc` address is
/// refused (in use); an associated `standard` one is disassociated first,
/// as EC2-Classic did.
pub async fn release(
    cloud: &Cloud,
    caller: &Principal,
    address: AddressRef,
) -> Result<(), CloudError> {
    let account = caller.account_id();
    for _ in 0..ATTEMPTS {
        let address = address.resolve(cloud, account).await?;
        let mut change = AddressChange::default();
        // A NAT gateway's address goes with the gateway only.
        if address.instance_id.is_none() && address.association_id.is_some() {
            return Err(in_use(&address.public_ip));
        }
        if address.instance_id.is_some() {
            if address.domain == "vpc" {
                return Err(in_use(&address.public_ip));
            }
            plan_leave(cloud, &address, &mut change).await?;
        }
        change.delete.push(address.clone());
        if commit(cloud, &change).await? {
            tracing::info!(address = %address.public_ip, allocation = %address.allocation_id, "elastic IP released");
            return Ok(());
        }
    }
    Err(contended())
}

/// The caller's elastic IPs (auto-assigned addresses are not listed), in
/// the store's order; every address named by `public_ips` or
/// `allocation_ids` must be among them, and when any is named only those
/// are returned.
pub async fn list(
    cloud: &Cloud,
    caller: &Principal,
    public_ips: &[String],
    allocation_ids: &[String],
) -> Result<Vec<AddressRecord>, CloudError> {
    let addresses: Vec<AddressRecord> = cloud
        .store
        .addresses(Some(caller.account_id()))
        .await?
        .into_iter()
        .filter(|a| !a.auto_assigned)
        .collect();
    if let Some(missing) = public_ips
        .iter()
        .find(|ip| !addresses.iter().any(|a| &a.public_ip == *ip))
    {
        return Err(address_not_found(missing));
    }
    if let Some(missing) = allocation_ids
        .iter()
        .find(|id| !addresses.iter().any(|a| &a.allocation_id == *id))
    {
        return Err(allocation_not_found(missing));
    }
    Ok(addresses
        .into_iter()
        .filter(|a| public_ips.is_empty() || public_ips.contains(&a.public_ip))
        .filter(|a| allocation_ids.is_empty() || allocation_ids.contains(&a.allocation_id))
        .collect())
}
