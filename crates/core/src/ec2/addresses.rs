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
//! Public host names have the form `ec2-198-18-0-5.REGION.compute.mallee`
//! (AWS: `ec2-203-0-113-25.REGION.compute.amazonaws.com`); nothing resolves
//! them yet.

use std::net::Ipv4Addr;

use mallee_store::{AddressChange, AddressOutcome, AddressRecord, InstanceRecord, TagPair};
use rand::seq::SliceRandom;

use crate::Cloud;
use crate::api::filter::{self, Filter, Filterable, parse_filters};
use crate::api::query::{QueryError, QueryParams};
use crate::compute::model::{Instance, InstanceDetails, InstanceState};
use crate::ids;

use super::instances::{decode, instances_not_found, validate_instance_id};
use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error};

/// Plan-and-apply attempts before giving up on contended records.
const ATTEMPTS: usize = 16;
/// How old an address of an instance that does not exist must be before
/// [`reclaim_orphans`] takes it back (a launch records its addresses just
/// before its reservation).
pub const ORPHAN_GRACE_MILLIS: i64 = 10 * 60 * 1000;

/// EC2's public DNS name for a public address, in mallee's domain.
pub fn public_hostname(ip: &str, region: &str) -> String {
    format!("ec2-{}.{region}.compute.mallee", ip.replace('.', "-"))
}

/// Writes `ip` (or no public address) into launch details: the node's NIC
/// spec and the metadata service's `public-ipv4` / `public-hostname`.
/// Returns whether anything changed.
pub fn set_public_ip(details: &mut InstanceDetails, ip: Option<&str>, region: &str) -> bool {
    let ip = ip.map(str::to_owned);
    let hostname = ip.as_deref().map(|ip| public_hostname(ip, region));
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
) -> Result<Vec<String>, Ec2Error> {
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
async fn commit(cloud: &Cloud, change: &AddressChange) -> Result<bool, Ec2Error> {
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

fn contended() -> Ec2Error {
    Ec2Error::Internal("the addresses kept changing; try again".into())
}

fn address_limit() -> Ec2Error {
    Ec2Error::refused(
        "AddressLimitExceeded",
        "The maximum number of addresses has been reached.",
    )
}

fn no_capacity() -> Ec2Error {
    Ec2Error::ServerRefused {
        code: "InsufficientAddressCapacity",
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
    if !set_public_ip(&mut changed.details, ip, &cloud.config.region) {
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

async fn load_instance(cloud: &Cloud, instance_id: &str) -> Result<Option<Instance>, Ec2Error> {
    cloud
        .store
        .instance(instance_id)
        .await?
        .map(decode)
        .transpose()
}

/// Plans giving `instance` an auto-assigned public IP (`preferred` when
/// free) into `change`; `None` when its zone's range is exhausted.
async fn plan_auto(
    cloud: &Cloud,
    instance: &Instance,
    preferred: Option<&str>,
    change: &mut AddressChange,
) -> Result<Option<String>, Ec2Error> {
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
) -> Result<Vec<Option<String>>, Ec2Error> {
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
) -> Result<Option<String>, Ec2Error> {
    for _ in 0..ATTEMPTS {
        if let Some(held) = cloud.store.address_of_instance(instance_id).await? {
            return Ok(Some(held.public_ip));
        }
        let Some(instance) = load_instance(cloud, instance_id).await? else {
            return Err(instances_not_found(&[instance_id]));
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
pub async fn release_instance_addresses(cloud: &Cloud, instance_id: &str) -> Result<(), Ec2Error> {
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
pub async fn reclaim_orphans(cloud: &Cloud) -> Result<usize, Ec2Error> {
    reclaim_orphans_before(cloud, ids::now_millis() - ORPHAN_GRACE_MILLIS).await
}

async fn reclaim_orphans_before(cloud: &Cloud, cutoff: i64) -> Result<usize, Ec2Error> {
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
) -> Result<(), Ec2Error> {
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

// --- parameters ----------------------------------------------------------

fn validate_prefixed(id: &str, prefix: &str, code: &'static str) -> Result<(), Ec2Error> {
    let ok = id
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_prefix('-'))
        .is_some_and(|hex| {
            (hex.len() == 8 || hex.len() == 17) && hex.bytes().all(|b| b.is_ascii_hexdigit())
        });
    if ok {
        Ok(())
    } else {
        Err(Ec2Error::refused(code, format!("Invalid id: \"{id}\"")))
    }
}

fn validate_public_ip(ip: &str) -> Result<(), Ec2Error> {
    ip.parse::<Ipv4Addr>()
        .map(|_| ())
        .map_err(|_| Ec2Error::InvalidParameterValue(format!("Invalid value '{ip}' for PublicIp.")))
}

fn allocation_not_found(id: &str) -> Ec2Error {
    Ec2Error::refused(
        "InvalidAllocationID.NotFound",
        format!("The allocation ID '{id}' does not exist"),
    )
}

fn address_not_found(ip: &str) -> Ec2Error {
    Ec2Error::refused(
        "InvalidAddress.NotFound",
        format!("Address '{ip}' not found."),
    )
}

fn association_not_found(id: &str) -> Ec2Error {
    Ec2Error::refused(
        "InvalidAssociationID.NotFound",
        format!("The association ID '{id}' does not exist"),
    )
}

/// An elastic IP named by allocation id or by public IP.
#[derive(Debug, Clone, PartialEq, Eq)]
enum AddressRef {
    Allocation(String),
    PublicIp(String),
}

impl AddressRef {
    /// Reads `AllocationId` or `PublicIp` (one is required).
    fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let allocation = params.get("AllocationId").filter(|v| !v.is_empty());
        let public_ip = params.get("PublicIp").filter(|v| !v.is_empty());
        match (allocation, public_ip) {
            (Some(_), Some(_)) => Err(Ec2Error::InvalidParameterCombination(
                "You may specify either an allocation ID or a public IP address, not both.".into(),
            )),
            (Some(id), None) => {
                validate_prefixed(id, "eipalloc", "InvalidAllocationID.Malformed")?;
                Ok(Self::Allocation(id.to_owned()))
            }
            (None, Some(ip)) => {
                validate_public_ip(ip)?;
                Ok(Self::PublicIp(ip.to_owned()))
            }
            (None, None) => Err(QueryError::Missing("AllocationId".into()).into()),
        }
    }

    /// The caller's elastic IP it names (another account's, or an
    /// auto-assigned address, is not found).
    async fn resolve(&self, cloud: &Cloud, account: &str) -> Result<AddressRecord, Ec2Error> {
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

// --- AllocateAddress -----------------------------------------------------

/// AllocateAddress input.
#[derive(Debug, Clone, PartialEq)]
pub struct AllocateAddress {
    domain: String,
    address: Option<String>,
    border_group: Option<String>,
    tags: Vec<TagPair>,
}

impl AllocateAddress {
    /// Reads `Domain` (`vpc`, the default, or `standard`), `Address`,
    /// `PublicIpv4Pool` (`amazon` only), `NetworkBorderGroup` (a zone with
    /// a public range) and `TagSpecification.N` (`elastic-ip`).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let domain = match params.get("Domain").filter(|d| !d.is_empty()) {
            None => "vpc",
            Some(d @ ("vpc" | "standard")) => d,
            Some(other) => {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Value ({other}) for parameter domain is invalid. Valid values: vpc, standard"
                )));
            }
        };
        if let Some(pool) = params.get("PublicIpv4Pool").filter(|p| !p.is_empty())
            && pool != "amazon"
        {
            return Err(Ec2Error::refused(
                "InvalidPublicIpv4PoolID.NotFound",
                format!("The pool ID '{pool}' does not exist"),
            ));
        }
        let address = params
            .get("Address")
            .filter(|a| !a.is_empty())
            .map(str::to_owned);
        if let Some(ip) = &address {
            validate_public_ip(ip)?;
        }
        Ok(Self {
            domain: domain.to_owned(),
            address,
            border_group: params
                .get("NetworkBorderGroup")
                .filter(|g| !g.is_empty())
                .map(str::to_owned),
            tags: parse_tag_specifications(params, "elastic-ip")?,
        })
    }

    /// Allocates a free address of the first zone with one (or of the
    /// named border group), within the account's elastic IP limit.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let cloud = ctx.cloud;
        let account = &ctx.principal.account.account_id;
        let zones: Vec<&str> = match &self.border_group {
            Some(group) => {
                if range_of(cloud, group).is_none() {
                    return Err(Ec2Error::InvalidParameterValue(format!(
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
                match &self.address {
                    Some(wanted) => {
                        let in_range = range_of(cloud, zone).is_some_and(|r| {
                            wanted
                                .parse()
                                .is_ok_and(|ip| r.contains(ip) && r.allocatable().any(|a| a == ip))
                        });
                        if in_range {
                            if !free_ips(cloud, zone, None).await?.contains(wanted) {
                                return Err(Ec2Error::refused(
                                    "InvalidIPAddress.InUse",
                                    format!("Address {wanted} is in use."),
                                ));
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
                return Err(match &self.address {
                    Some(wanted) => address_not_found(wanted),
                    None => no_capacity(),
                });
            };
            let record = AddressRecord {
                allocation_id: ids::resource_id("eipalloc"),
                account_id: account.clone(),
                public_ip: ip,
                zone,
                domain: self.domain.clone(),
                association_id: None,
                instance_id: None,
                private_ip: None,
                auto_assigned: false,
                replaced_auto_ip: None,
                revision: 0,
                created_at: ids::now_millis(),
            };
            let change = AddressChange {
                insert: vec![record.clone()],
                tags: self.tags.clone(),
                elastic_ip_limit: Some((account.clone(), limit)),
                ..AddressChange::default()
            };
            if commit(cloud, &change).await? {
                tracing::info!(account = %account, address = %record.public_ip, allocation = %record.allocation_id, "elastic IP allocated");
                return Ok(ctx.respond("AllocateAddress", |w| {
                    w.text("publicIp", &record.public_ip);
                    w.text("domain", &record.domain);
                    w.text("allocationId", &record.allocation_id);
                    w.text("publicIpv4Pool", "amazon");
                    w.text("networkBorderGroup", &record.zone);
                }));
            }
            if self.address.is_some() {
                return Err(Ec2Error::refused(
                    "InvalidIPAddress.InUse",
                    format!("Address {} is in use.", record.public_ip),
                ));
            }
        }
        Err(contended())
    }
}

// --- AssociateAddress ----------------------------------------------------

/// AssociateAddress input.
#[derive(Debug, Clone, PartialEq)]
pub struct AssociateAddress {
    address: AddressRef,
    instance_id: String,
    private_ip: Option<String>,
    allow_reassociation: bool,
}

impl AssociateAddress {
    /// Reads `AllocationId` or `PublicIp`, `InstanceId` (a
    /// `NetworkInterfaceId` names no interface mallee has),
    /// `PrivateIpAddress`, `AllowReassociation`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let address = AddressRef::parse(params)?;
        if let Some(eni) = params.get("NetworkInterfaceId").filter(|v| !v.is_empty()) {
            return Err(Ec2Error::refused(
                "InvalidNetworkInterfaceID.NotFound",
                format!("The networkInterface ID '{eni}' does not exist"),
            ));
        }
        let instance_id = params.required_non_empty("InstanceId")?.to_owned();
        validate_instance_id(&instance_id)?;
        Ok(Self {
            address,
            instance_id,
            private_ip: params
                .get("PrivateIpAddress")
                .filter(|v| !v.is_empty())
                .map(str::to_owned),
            allow_reassociation: params.bool("AllowReassociation")?.unwrap_or(false),
        })
    }

    /// Associates the address with the instance's primary private address.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let cloud = ctx.cloud;
        let account = &ctx.principal.account.account_id;
        for _ in 0..ATTEMPTS {
            let address = self.address.resolve(cloud, account).await?;
            let instance = match load_instance(cloud, &self.instance_id).await? {
                Some(i) if &i.record.account_id == account => i,
                _ => return Err(instances_not_found(&[&self.instance_id])),
            };
            if !is_live(&instance) {
                return Err(Ec2Error::refused(
                    "IncorrectInstanceState",
                    format!(
                        "The instance '{}' is not in a valid state for this operation.",
                        instance.id()
                    ),
                ));
            }
            if let Some(ip) = &self.private_ip
                && ip != &instance.record.private_ip
            {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "The private IP address {ip} is not assigned to instance {}.",
                    instance.id()
                )));
            }
            if address.zone != instance.record.zone {
                return Err(Ec2Error::InvalidParameterCombination(format!(
                    "The address {} belongs to network border group {} and cannot be associated with an instance in {}.",
                    address.public_ip, address.zone, instance.record.zone
                )));
            }
            if address.instance_id.as_deref() == Some(instance.id()) {
                let association = address.association_id.clone().unwrap_or_default();
                return Ok(respond_associated(ctx, &association));
            }
            if let (Some(_), Some(association)) = (&address.instance_id, &address.association_id)
                && !self.allow_reassociation
            {
                return Err(Ec2Error::refused(
                    "Resource.AlreadyAssociated",
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
                return Ok(respond_associated(ctx, &association));
            }
        }
        Err(contended())
    }
}

fn respond_associated(ctx: &Ec2Context<'_>, association: &str) -> String {
    ctx.respond("AssociateAddress", |w| {
        w.text("return", "true");
        w.text("associationId", association);
    })
}

// --- DisassociateAddress -------------------------------------------------

/// DisassociateAddress input.
#[derive(Debug, Clone, PartialEq)]
pub struct DisassociateAddress {
    association_id: Option<String>,
    public_ip: Option<String>,
}

impl DisassociateAddress {
    /// Reads `AssociationId` or `PublicIp`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let association_id = params.get("AssociationId").filter(|v| !v.is_empty());
        let public_ip = params.get("PublicIp").filter(|v| !v.is_empty());
        match (association_id, public_ip) {
            (Some(_), Some(_)) => Err(Ec2Error::InvalidParameterCombination(
                "You may specify either an association ID or a public IP address, not both.".into(),
            )),
            (Some(id), None) => {
                validate_prefixed(id, "eipassoc", "InvalidAssociationID.Malformed")?;
                Ok(Self {
                    association_id: Some(id.to_owned()),
                    public_ip: None,
                })
            }
            (None, Some(ip)) => {
                validate_public_ip(ip)?;
                Ok(Self {
                    association_id: None,
                    public_ip: Some(ip.to_owned()),
                })
            }
            (None, None) => Err(QueryError::Missing("AssociationId".into()).into()),
        }
    }

    /// Disassociates the address (by public IP, an unassociated address is
    /// left as it is).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let cloud = ctx.cloud;
        let account = &ctx.principal.account.account_id;
        for _ in 0..ATTEMPTS {
            let address = match (&self.association_id, &self.public_ip) {
                (Some(id), _) => cloud
                    .store
                    .addresses(Some(account))
                    .await?
                    .into_iter()
                    .find(|a| !a.auto_assigned && a.association_id.as_deref() == Some(id))
                    .ok_or_else(|| association_not_found(id))?,
                (None, Some(ip)) => {
                    AddressRef::PublicIp(ip.clone())
                        .resolve(cloud, account)
                        .await?
                }
                (None, None) => return Err(QueryError::Missing("AssociationId".into()).into()),
            };
            if address.instance_id.is_none() {
                return Ok(ctx.respond_true("DisassociateAddress"));
            }
            let mut change = AddressChange::default();
            plan_leave(cloud, &address, &mut change).await?;
            change.update.push(disassociated(address.clone()));
            if commit(cloud, &change).await? {
                tracing::info!(address = %address.public_ip, "elastic IP disassociated");
                return Ok(ctx.respond_true("DisassociateAddress"));
            }
        }
        Err(contended())
    }
}

// --- ReleaseAddress ------------------------------------------------------

/// ReleaseAddress input.
#[derive(Debug, Clone, PartialEq)]
pub struct ReleaseAddress {
    address: AddressRef,
}

impl ReleaseAddress {
    /// Reads `AllocationId` or `PublicIp` (`NetworkBorderGroup` is
    /// accepted: an allocation id names one address anyway).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self {
            address: AddressRef::parse(params)?,
        })
    }

    /// Returns the address to the pool. An associated `vpc` address is
    /// refused (`InvalidIPAddress.InUse`); an associated `standard` one is
    /// disassociated first, as EC2-Classic did.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let cloud = ctx.cloud;
        let account = &ctx.principal.account.account_id;
        for _ in 0..ATTEMPTS {
            let address = self.address.resolve(cloud, account).await?;
            let mut change = AddressChange::default();
            if address.instance_id.is_some() {
                if address.domain == "vpc" {
                    return Err(Ec2Error::refused(
                        "InvalidIPAddress.InUse",
                        format!("Address {} is in use.", address.public_ip),
                    ));
                }
                plan_leave(cloud, &address, &mut change).await?;
            }
            change.delete.push(address.clone());
            if commit(cloud, &change).await? {
                tracing::info!(address = %address.public_ip, allocation = %address.allocation_id, "elastic IP released");
                return Ok(ctx.respond_true("ReleaseAddress"));
            }
        }
        Err(contended())
    }
}

// --- DescribeAddresses ---------------------------------------------------

const ADDRESS_FILTERS: &[&str] = &[
    "allocation-id",
    "association-id",
    "domain",
    "instance-id",
    "network-border-group",
    "network-interface-id",
    "network-interface-owner-id",
    "private-ip-address",
    "public-ip",
];

struct AddressView<'a> {
    address: &'a AddressRecord,
    tags: &'a [(String, String)],
}

impl Filterable for AddressView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let a = self.address;
        let opt = |v: &Option<String>| Some(v.iter().cloned().collect());
        match name {
            "allocation-id" => Some(vec![a.allocation_id.clone()]),
            "association-id" => opt(&a.association_id),
            "domain" => Some(vec![a.domain.clone()]),
            "instance-id" => opt(&a.instance_id),
            "network-border-group" => Some(vec![a.zone.clone()]),
            "network-interface-id" | "network-interface-owner-id" => Some(Vec::new()),
            "private-ip-address" => opt(&a.private_ip),
            "public-ip" => Some(vec![a.public_ip.clone()]),
            _ => None,
        }
    }

    fn tags(&self) -> &[(String, String)] {
        self.tags
    }

    fn taggable(&self) -> bool {
        true
    }
}

/// DescribeAddresses input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeAddresses {
    public_ips: Vec<String>,
    allocation_ids: Vec<String>,
    filters: Vec<Filter>,
}

impl DescribeAddresses {
    /// Reads `PublicIp.N`, `AllocationId.N`, `Filter.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, ADDRESS_FILTERS, true)?;
        let public_ips = params.list("PublicIp")?;
        for ip in &public_ips {
            validate_public_ip(ip)?;
        }
        let allocation_ids = params.list("AllocationId")?;
        for id in &allocation_ids {
            validate_prefixed(id, "eipalloc", "InvalidAllocationID.Malformed")?;
        }
        Ok(Self {
            public_ips,
            allocation_ids,
            filters,
        })
    }

    /// Lists the caller's elastic IPs; a named one that is missing is an
    /// error.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let account = &ctx.principal.account.account_id;
        let addresses: Vec<AddressRecord> = ctx
            .cloud
            .store
            .addresses(Some(account))
            .await?
            .into_iter()
            .filter(|a| !a.auto_assigned)
            .collect();
        if let Some(missing) = self
            .public_ips
            .iter()
            .find(|ip| !addresses.iter().any(|a| &a.public_ip == *ip))
        {
            return Err(address_not_found(missing));
        }
        if let Some(missing) = self
            .allocation_ids
            .iter()
            .find(|id| !addresses.iter().any(|a| &a.allocation_id == *id))
        {
            return Err(allocation_not_found(missing));
        }
        let tags = TagsByResource::load(ctx, account).await?;
        let selected: Vec<AddressView<'_>> = addresses
            .iter()
            .filter(|a| self.public_ips.is_empty() || self.public_ips.contains(&a.public_ip))
            .filter(|a| {
                self.allocation_ids.is_empty() || self.allocation_ids.contains(&a.allocation_id)
            })
            .map(|a| AddressView {
                address: a,
                tags: tags.of(&a.allocation_id),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        Ok(ctx.respond("DescribeAddresses", |w| {
            w.items("addressesSet", selected, |w, view| {
                let a = view.address;
                w.text("publicIp", &a.public_ip);
                w.text("allocationId", &a.allocation_id);
                w.text("domain", &a.domain);
                w.opt_text("instanceId", a.instance_id.as_deref());
                w.opt_text("associationId", a.association_id.as_deref());
                w.opt_text("privateIpAddress", a.private_ip.as_deref());
                write_tag_set(w, view.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                w.text("publicIpv4Pool", "amazon");
                w.text("networkBorderGroup", &a.zone);
            });
        }))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use mallee_node_api::{
        Artifact, BootImage, DesiredState, InstanceMetadata, InstanceSpec, MetadataOptions, NicSpec,
    };
    use mallee_store::{Reservation, sqlite::SqliteStore};

    use super::*;
    use crate::api::Principal;
    use crate::compute::model::ShutdownBehavior;
    use crate::config::{PublicCidr, PublicRange};

    const ZONE: &str = "mallee-1a";

    struct Fixture {
        _dir: tempfile::TempDir,
        cloud: Cloud,
        owner: Principal,
    }

    async fn fixture() -> Fixture {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = SqliteStore::open(&dir.path().join("db"))
            .await
            .expect("store");
        let blobs = mallee_blobs::BlobStore::open(dir.path().join("objects"))
            .await
            .expect("blobs");
        let mut config =
            crate::Config::new("127.0.0.1:0".parse().expect("addr"), dir.path().to_owned());
        let cidr: PublicCidr = "198.18.7.0/29".parse().expect("range");
        config.public_ranges = vec![PublicRange {
            zone: ZONE.into(),
            cidr,
        }];
        let cloud = Cloud {
            store: Arc::new(store),
            config,
            instance_types: Default::default(),
            blobs: Arc::new(blobs),
            compute: crate::compute::Compute::new("token".into()),
        };
        let account = crate::admin::create_account(cloud.store.as_ref(), "owner", false)
            .await
            .expect("account");
        let owner = Principal {
            account,
            user_name: "admin".into(),
            access_key_id: "AKIATEST".into(),
        };
        Fixture {
            _dir: dir,
            cloud,
            owner,
        }
    }

    fn details(id: &str, account: &str, ip: &str, public: Option<&str>) -> String {
        let metadata = InstanceMetadata {
            ami_id: "ami-0123456789abcdef0".into(),
            ami_launch_index: 0,
            reservation_id: "r-0123456789abcdef0".into(),
            account_id: account.into(),
            instance_type: "t1.micro".into(),
            kernel_id: None,
            ramdisk_id: None,
            architecture: "x86_64".into(),
            region: "mallee-1".into(),
            availability_zone: ZONE.into(),
            local_ipv4: ip.into(),
            local_hostname: "ip".into(),
            mac: "02:00:00:00:00:01".into(),
            public_ipv4: None,
            public_hostname: None,
            security_groups: vec!["default".into()],
            public_keys: Vec::new(),
            user_data_base64: None,
            launch_time: "2024-01-02T03:04:05Z".into(),
            root_device_name: "/dev/sda1".into(),
            block_device_mapping: Vec::new(),
            options: MetadataOptions::default(),
        };
        let mut details = InstanceDetails {
            spec: InstanceSpec {
                instance_id: id.into(),
                account_id: account.into(),
                instance_type: "t1.micro".into(),
                vcpus: 1,
                memory_mib: 256,
                disk_gib: 1,
                image: BootImage::Hvm {
                    disk: Artifact {
                        bucket: "b".into(),
                        key: "k".into(),
                        size: 1,
                        etag: "\"e\"".into(),
                    },
                },
                nics: vec![NicSpec {
                    mac: "02:00:00:00:00:01".into(),
                    private_ip: ip.into(),
                    network_id: "net".into(),
                    subnet_cidr: String::new(),
                    vpc_cidr: String::new(),
                    public_ip: None,
                }],
                desired: DesiredState::Running,
                generation: 1,
                metadata,
            },
            key_name: None,
            security_group_ids: Vec::new(),
            shutdown_behavior: ShutdownBehavior::Stop,
            disable_api_termination: false,
            virtualization_type: "hvm".into(),
            root_device_type: "instance-store".into(),
            private_dns_name: "ip".into(),
            client_token: None,
            state_reason: None,
            state_transition_reason: String::new(),
            vpc_id: String::new(),
            subnet_id: String::new(),
            network_interface_id: String::new(),
        };
        set_public_ip(&mut details, public, "mallee-1");
        serde_json::to_string(&details).expect("serialize")
    }

    /// Launches instances the way RunInstances is meant to: public IPs
    /// recorded first, then the reservation with them in the details.
    async fn launch(f: &Fixture, ids: &[&str]) -> Vec<Option<String>> {
        let account = &f.owner.account.account_id;
        let pairs: Vec<(String, String)> = ids
            .iter()
            .enumerate()
            .map(|(n, id)| ((*id).to_owned(), format!("172.31.0.{}", n + 4)))
            .collect();
        let public = allocate_auto(&f.cloud, account, ZONE, &pairs)
            .await
            .expect("auto");
        let reservation = Reservation {
            reservation_id: format!("r-{}", &ids[0][2..]),
            account_id: account.clone(),
            client_token: None,
            request_hash: "h".into(),
            created_at: 1,
        };
        let records: Vec<InstanceRecord> = pairs
            .iter()
            .zip(&public)
            .enumerate()
            .map(|(n, ((id, ip), public))| InstanceRecord {
                instance_id: id.clone(),
                reservation_id: reservation.reservation_id.clone(),
                account_id: account.clone(),
                launch_index: i64::try_from(n).expect("index"),
                node_id: "node".into(),
                zone: ZONE.into(),
                network_id: "net".into(),
                private_ip: ip.clone(),
                mac: format!("02:00:00:00:01:{n:02x}"),
                state: "pending".into(),
                desired: "running".into(),
                generation: 1,
                revision: 0,
                details: details(id, account, ip, public.as_deref()),
                created_at: 1,
                updated_at: 1,
                terminated_at: None,
            })
            .collect();
        f.cloud
            .store
            .create_reservation(&reservation, &records, &[])
            .await
            .expect("reservation");
        public
    }

    async fn public_of(f: &Fixture, id: &str) -> (Option<String>, i64) {
        let instance = decode(
            f.cloud
                .store
                .instance(id)
                .await
                .expect("instance")
                .expect("exists"),
        )
        .expect("decode");
        let d = &instance.details.spec;
        assert_eq!(
            d.nics[0].public_ip, d.metadata.public_ipv4,
            "nic and metadata agree"
        );
        assert_eq!(
            d.metadata.public_hostname,
            d.metadata
                .public_ipv4
                .as_deref()
                .map(|ip| public_hostname(ip, "mallee-1"))
        );
        (d.metadata.public_ipv4.clone(), instance.record.generation)
    }

    async fn run(f: &Fixture, action: &str, pairs: &[(&str, &str)]) -> Result<String, Ec2Error> {
        let params = QueryParams::from_pairs(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect::<Vec<_>>(),
        )
        .expect("params");
        let ctx = Ec2Context {
            cloud: &f.cloud,
            principal: &f.owner,
            request_id: "req",
            namespace: super::super::namespace_for(None),
        };
        let parsed = super::super::Ec2Action::parse(action, &params)?;
        super::super::execute(&ctx, parsed, false).await
    }

    fn between<'a>(xml: &'a str, tag: &str) -> &'a str {
        let open = format!("<{tag}>");
        let start = xml.find(&open).expect("tag present") + open.len();
        let end = xml[start..].find('<').expect("closing tag") + start;
        &xml[start..end]
    }

    #[test]
    fn public_ip_goes_to_nic_and_metadata() {
        let mut d: InstanceDetails =
            serde_json::from_str(&details("i-1", "1", "172.31.0.4", None)).expect("decode");
        assert!(set_public_ip(&mut d, Some("198.18.0.5"), "mallee-1"));
        assert_eq!(d.spec.nics[0].public_ip.as_deref(), Some("198.18.0.5"));
        assert_eq!(
            d.spec.metadata.public_hostname.as_deref(),
            Some("ec2-198-18-0-5.mallee-1.compute.mallee")
        );
        assert!(!set_public_ip(&mut d, Some("198.18.0.5"), "mallee-1"));
        assert!(set_public_ip(&mut d, None, "mallee-1"));
        assert_eq!(d.spec.metadata.public_ipv4, None);
        assert_eq!(d.spec.nics[0].public_ip, None);
    }

    #[tokio::test]
    async fn elastic_ips_displace_and_give_back_auto_assigned_ones() {
        let f = fixture().await;
        let ids = ["i-0000000000000000a", "i-0000000000000000b"];
        let auto = launch(&f, &ids).await;
        let (auto_a, auto_b) = (
            auto[0].clone().expect("auto a"),
            auto[1].clone().expect("auto b"),
        );
        assert_ne!(auto_a, auto_b);
        assert_eq!(public_of(&f, ids[0]).await, (Some(auto_a.clone()), 1));

        // Auto-assigned addresses are not listed.
        let listed = run(&f, "DescribeAddresses", &[]).await.expect("describe");
        assert!(!listed.contains("<item>"), "{listed}");

        let allocated = run(&f, "AllocateAddress", &[]).await.expect("allocate");
        let (eip, alloc) = (
            between(&allocated, "publicIp").to_owned(),
            between(&allocated, "allocationId").to_owned(),
        );
        assert!(eip != auto_a && eip != auto_b && eip != "198.18.7.1");

        // Associating releases a's auto-assigned address.
        run(
            &f,
            "AssociateAddress",
            &[("AllocationId", &alloc), ("InstanceId", ids[0])],
        )
        .await
        .expect("associate");
        assert_eq!(public_of(&f, ids[0]).await, (Some(eip.clone()), 2));
        assert_eq!(
            f.cloud
                .store
                .address_by_public_ip(&auto_a)
                .await
                .expect("lookup"),
            None
        );

        // Moving it to b gives a an auto-assigned address again (its old
        // one, still free) and takes b's.
        run(
            &f,
            "AssociateAddress",
            &[
                ("AllocationId", &alloc),
                ("InstanceId", ids[1]),
                ("AllowReassociation", "true"),
            ],
        )
        .await
        .expect("reassociate");
        assert_eq!(public_of(&f, ids[0]).await, (Some(auto_a.clone()), 3));
        assert_eq!(public_of(&f, ids[1]).await, (Some(eip.clone()), 2));
        let held = f
            .cloud
            .store
            .address_by_public_ip(&auto_b)
            .await
            .expect("lookup");
        assert_eq!(held, None, "b's auto-assigned address was not released");

        // Disassociating gives b its auto-assigned address back.
        run(&f, "DisassociateAddress", &[("PublicIp", &eip)])
            .await
            .expect("disassociate");
        assert_eq!(public_of(&f, ids[1]).await, (Some(auto_b.clone()), 3));
        let eip_record = f
            .cloud
            .store
            .address(&alloc)
            .await
            .expect("get")
            .expect("kept");
        assert_eq!(eip_record.instance_id, None);

        // Termination: auto-assigned addresses go back to the pool, elastic
        // IPs stay allocated.
        run(
            &f,
            "AssociateAddress",
            &[("AllocationId", &alloc), ("InstanceId", ids[0])],
        )
        .await
        .expect("associate");
        for id in ids {
            release_instance_addresses(&f.cloud, id)
                .await
                .expect("release");
            release_instance_addresses(&f.cloud, id)
                .await
                .expect("idempotent");
        }
        let left = f.cloud.store.addresses(None).await.expect("list");
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].allocation_id, alloc);
        assert_eq!(left[0].instance_id, None);
        run(&f, "ReleaseAddress", &[("AllocationId", &alloc)])
            .await
            .expect("release");
        assert!(
            f.cloud
                .store
                .addresses(None)
                .await
                .expect("list")
                .is_empty()
        );
    }

    #[tokio::test]
    async fn auto_assignment_stops_at_the_end_of_the_range_and_orphans_return() {
        let f = fixture().await;
        let account = f.owner.account.account_id.clone();
        let pairs: Vec<(String, String)> = (0..7)
            .map(|n| {
                (
                    format!("i-00000000000000{n:03}"),
                    format!("172.31.0.{}", n + 4),
                )
            })
            .collect();
        let got = allocate_auto(&f.cloud, &account, ZONE, &pairs)
            .await
            .expect("auto");
        let given: Vec<&String> = got.iter().flatten().collect();
        assert_eq!(given.len(), 5, "a /29 has five addresses to give");
        assert!(got[5].is_none() && got[6].is_none());
        let err = run(&f, "AllocateAddress", &[])
            .await
            .expect_err("exhausted");
        assert_eq!(
            crate::api::error::AwsError::code(&err),
            "InsufficientAddressCapacity"
        );
        assert_eq!(
            crate::api::error::AwsError::status(&err),
            http::StatusCode::INTERNAL_SERVER_ERROR
        );

        // None of these instances was ever stored: they are orphans once
        // old enough, and only then.
        assert_eq!(reclaim_orphans(&f.cloud).await.expect("reclaim"), 0);
        assert_eq!(
            reclaim_orphans_before(&f.cloud, ids::now_millis() + 1)
                .await
                .expect("reclaim"),
            5
        );
        assert!(
            f.cloud
                .store
                .addresses(None)
                .await
                .expect("list")
                .is_empty()
        );

        // An existing instance without a public address can get one.
        let ids = ["i-0000000000000000c"];
        launch(&f, &ids).await;
        release_instance_addresses(&f.cloud, ids[0])
            .await
            .expect("release");
        let ip = auto_assign_public_ip(&f.cloud, ids[0])
            .await
            .expect("assign")
            .expect("free address");
        assert_eq!(public_of(&f, ids[0]).await.0.as_deref(), Some(ip.as_str()));
        assert_eq!(
            auto_assign_public_ip(&f.cloud, ids[0])
                .await
                .expect("again"),
            Some(ip)
        );
    }

    #[test]
    fn address_parameters() {
        let parse = |pairs: &[(&str, &str)]| {
            AddressRef::parse(
                &QueryParams::from_pairs(
                    pairs
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect::<Vec<_>>(),
                )
                .expect("params"),
            )
        };
        assert_eq!(
            parse(&[("PublicIp", "198.18.0.5")]).expect("ip"),
            AddressRef::PublicIp("198.18.0.5".into())
        );
        assert!(parse(&[("AllocationId", "eipalloc-0123456789abcdef0")]).is_ok());
        assert!(parse(&[("AllocationId", "eipalloc-zz")]).is_err());
        assert!(parse(&[("PublicIp", "not-an-ip")]).is_err());
        assert!(parse(&[]).is_err());
        assert!(
            parse(&[
                ("PublicIp", "198.18.0.5"),
                ("AllocationId", "eipalloc-0123456789abcdef0")
            ])
            .is_err()
        );
    }
}
