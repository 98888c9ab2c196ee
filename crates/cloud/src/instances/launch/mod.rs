//! Launching instances (RunInstances) as one sequence of steps, each
//! paired with its undo, for virtual and bare-metal zones alike.
//!
//! A launch first resolves everything it needs without changing anything
//! (image, volumes, type, key pair, subnet, groups), then, under the
//! placement lock, takes its steps in order: [`Step::Quota`],
//! [`Step::Network`], [`Step::Capacity`] (nodes; in the bare-metal zone
//! free machines, then [`Step::Machines`] reserves them: undone by
//! releasing them), [`Step::PrivateAddresses`], [`Step::PublicAddresses`]
//! (recorded before the reservation: undone by giving them back), and
//! [`Step::Records`]: the reservation, its instances, their volumes, tags
//! and group memberships in one store transaction
//! ([`mallee_store::Launch`]). A failure at any step runs the undo of every
//! step taken so far, newest first, and leaves nothing behind. A crash
//! between steps is repaired at restart ([`repair_interrupted`] gives back
//! public addresses of instances that were never stored; the bare-metal
//! syncer returns machines no instance holds to the pool), and while the
//! controller runs by the reconciler ([`addresses::reclaim_orphans`]).
//!
//! A request with a client token that already made a reservation gets that
//! reservation back, unless its other parameters differ.

pub mod steps;

use std::collections::HashMap;

use crate::instances::spec::{
    Internet, LaunchSpec, Metadata, MetadataOptions, Nic, NicDns, SshKey,
};
use mallee_store::{ImageBlockDevice, InstanceRecord, Launch, Reservation, StoreError, TagPair};
use sha2::{Digest, Sha256};

use crate::error::Capacity;
use crate::faults::Step;
use crate::images::{LaunchImage, resolve_for_launch};
use crate::instances::model::{
    Desired, Instance, InstanceDetails, InstanceState, ShutdownBehavior,
};
use crate::instances::placement::{self, Demand};
use crate::instances::quota;
use crate::instances::types::InstanceType;
use crate::volumes::Volume;
use crate::volumes::block_devices::{LaunchVolume, launch_volumes};
use crate::{Cloud, CloudError, Kind, Principal, addresses, ids, security_groups, vpcs};
pub use steps::{Launched, Steps, Undo, existing, lost_race};

/// What RunInstances asks for, checked for form by the protocol layer.
///
/// The field order is part of [`RunInstances::request_hash`]: a retry is
/// recognised by the digest of everything but the client token.
#[derive(Debug, Clone, PartialEq)]
pub struct RunInstances {
    /// The image to launch (`ami-…`).
    pub image_id: String,
    /// Fewest instances that will do.
    pub min_count: usize,
    /// Most instances wanted.
    pub max_count: usize,
    /// Instance type name.
    pub instance_type: String,
    /// Key pair whose public key the instances get.
    pub key_name: Option<String>,
    /// Base64 user data.
    pub user_data: Option<String>,
    /// Security group names (in the default VPC).
    pub security_groups: Vec<String>,
    /// Security group ids.
    pub security_group_ids: Vec<String>,
    /// Availability zone.
    pub zone: Option<String>,
    /// Kernel override (paravirtual images).
    pub kernel_id: Option<String>,
    /// Ramdisk override (paravirtual images).
    pub ramdisk_id: Option<String>,
    /// Idempotency token.
    pub client_token: Option<String>,
    /// What a guest-initiated poweroff does.
    pub shutdown_behavior: ShutdownBehavior,
    /// Whether TerminateInstances is refused.
    pub disable_api_termination: bool,
    /// Whether StopInstances is refused.
    pub disable_api_stop: bool,
    /// Instance metadata service options.
    pub metadata_options: MetadataOptions,
    /// Subnet.
    pub subnet_id: Option<String>,
    /// Whether instances get a public address (`None`: the subnet's
    /// default).
    pub associate_public_ip: Option<bool>,
    /// Tags for the instances.
    pub tags: Vec<TagPair>,
    /// Tags for the EBS volumes the instances get at launch
    /// (`TagSpecification` of type `volume`).
    pub volume_tags: Vec<TagPair>,
    /// Tags for the instances' primary network interfaces
    /// (`TagSpecification` of type `network-interface`).
    pub interface_tags: Vec<TagPair>,
    /// Block device mappings overriding and adding to the image's.
    pub block_device_mappings: Vec<ImageBlockDevice>,
    /// `IamInstanceProfile.Arn` or `.Name`.
    pub iam_instance_profile: Option<String>,
}

impl RunInstances {
    /// A digest of everything but the client token, to tell a retry from a
    /// different request reusing the token.
    pub fn request_hash(&self) -> String {
        let mut copy = self.clone();
        copy.client_token = None;
        hex::encode(Sha256::digest(format!("{copy:?}").as_bytes()))
    }

    /// The request for the bare-metal zone, with the parameters bare-metal
    /// instances cannot honour.
    fn metal_launch(self, request_hash: String) -> crate::metal::zone::MetalLaunch {
        let given = [
            (self.key_name.is_some(), "KeyName"),
            (self.user_data.is_some(), "UserData"),
            (
                !self.security_groups.is_empty() || !self.security_group_ids.is_empty(),
                "SecurityGroup",
            ),
            (self.subnet_id.is_some(), "SubnetId"),
            (
                self.associate_public_ip.is_some(),
                "AssociatePublicIpAddress",
            ),
            (self.kernel_id.is_some(), "KernelId"),
            (self.ramdisk_id.is_some(), "RamdiskId"),
            (!self.block_device_mappings.is_empty(), "BlockDeviceMapping"),
            (self.iam_instance_profile.is_some(), "IamInstanceProfile"),
            (
                !self.interface_tags.is_empty(),
                "TagSpecification (network-interface)",
            ),
            (self.disable_api_stop, "DisableApiStop"),
            (
                self.shutdown_behavior != ShutdownBehavior::Stop,
                "InstanceInitiatedShutdownBehavior",
            ),
        ];
        crate::metal::zone::MetalLaunch {
            image_id: self.image_id,
            min_count: self.min_count,
            max_count: self.max_count,
            instance_type: self.instance_type,
            client_token: self.client_token,
            request_hash,
            tags: self.tags,
            disable_api_termination: self.disable_api_termination,
            unsupported: given
                .into_iter()
                .filter_map(|(set, name)| set.then_some(name))
                .collect(),
        }
    }
}

/// Repairs what launches a crash interrupted left behind: public addresses
/// recorded for instances that were never stored. Called at start, before
/// any launch of this process can be under way; while the controller runs,
/// the reconciler takes such addresses back once they are old enough
/// ([`addresses::reclaim_orphans`]). Bare-metal machines reserved by an
/// interrupted launch are returned by the bare-metal syncer.
pub async fn repair_interrupted(cloud: &Cloud) -> Result<usize, CloudError> {
    let freed = addresses::reclaim_orphans_before(cloud, ids::now_millis() + 1).await?;
    if freed > 0 {
        tracing::info!(
            addresses = freed,
            "gave back public addresses of launches a crash interrupted"
        );
    }
    Ok(freed)
}

/// Launches the instances `request` asks for, or answers a retry with the
/// reservation it made.
pub async fn run(
    cloud: &Cloud,
    caller: &Principal,
    request: RunInstances,
) -> Result<Launched, CloudError> {
    let account = caller.account_id();
    let hash = request.request_hash();
    if let Some(token) = &request.client_token
        && let Some(existing) = cloud
            .store
            .reservation_by_client_token(account, token)
            .await?
    {
        return self::existing(cloud, caller, existing, &hash).await;
    }
    if crate::metal::zone::wants_metal(cloud, account, request.zone.as_deref(), &request.image_id)
        .await?
    {
        return crate::metal::zone::run_instances(cloud, caller, request.metal_launch(hash)).await;
    }
    let plan = resolve(cloud, caller, &request).await?;

    let placing = cloud.compute.placement_lock.lock().await;
    let mut steps = Steps::new(cloud);
    let all = quota::all_instances(cloud).await?;
    let allowed = steps
        .take(Step::Quota, async {
            quota::remaining(cloud, &all, account, request.min_count)
        })
        .await?;
    let network = steps
        .take(Step::Network, network(cloud, caller, &request))
        .await?;
    let (subnet, chosen) = steps
        .take(Step::Capacity, async {
            capacity(cloud, &request, &plan, &network, &all, allowed).await
        })
        .await?;
    let (chosen, private_ips) = steps
        .take(
            Step::PrivateAddresses,
            private_addresses(cloud, &request, &network, &subnet, chosen),
        )
        .await?;
    let instance_ids: Vec<String> = chosen.iter().map(|_| ids::resource_id("i")).collect();
    let public_wanted = request
        .associate_public_ip
        .unwrap_or(cloud.config.auto_public_ip && subnet.map_public_ip_on_launch);
    let public_ips = if public_wanted {
        let pairs: Vec<(String, String)> = instance_ids
            .iter()
            .zip(&private_ips)
            .map(|(id, ip)| (id.clone(), ip.to_string()))
            .collect();
        // Recorded before the reservation exists: given back if a later
        // step fails; a crash leaves rows the reconciler reclaims.
        steps.taken(Undo::PublicAddresses(instance_ids.clone()));
        steps
            .take(
                Step::PublicAddresses,
                addresses::allocate_auto(cloud, account, &subnet.zone, &pairs),
            )
            .await?
    } else {
        vec![None; instance_ids.len()]
    };
    let now = ids::now_millis();
    let reservation = Reservation {
        reservation_id: ids::resource_id("r"),
        account_id: account.to_owned(),
        client_token: request.client_token.clone(),
        request_hash: hash.clone(),
        created_at: now,
    };
    let volume_hosts = launch_volume_hosts(cloud, &plan, &subnet.zone, &chosen).await?;
    let built = build_records(
        cloud,
        &volume_hosts,
        &request,
        &plan,
        &network,
        &subnet,
        &reservation,
        &chosen,
        &instance_ids,
        &private_ips,
        &public_ips,
        now,
    )?;
    steps.take(Step::Records, async { Ok(()) }).await?;
    let group_ids = network.group_ids();
    let created = cloud
        .store
        .create_launch(&Launch {
            reservation: &reservation,
            instances: &built.records,
            volumes: &built.volumes,
            groups: &group_ids,
            tags: &request.tags,
            volume_tags: &request.volume_tags,
            interfaces: &built.interfaces,
            interface_tags: &request.interface_tags,
        })
        .await;
    match created {
        Ok(()) => {}
        Err(StoreError::Conflict(_)) if request.client_token.is_some() => {
            // Another request with the same token won the race.
            steps.unwind().await;
            drop(placing);
            let token = request.client_token.as_deref().unwrap_or_default();
            return lost_race(cloud, caller, token, &hash).await;
        }
        Err(e) => {
            steps.unwind().await;
            return Err(e.into());
        }
    }
    steps.finish();
    if let Some(node) = chosen.last() {
        cloud.compute.placed_last(&subnet.zone, &node.node_id);
    }
    security_groups::firewall_changed(cloud);
    drop(placing);
    cloud.compute.wake();
    tracing::info!(
        reservation = %reservation.reservation_id,
        account = %account,
        image = %plan.image.image_id,
        count = built.records.len(),
        zone = %subnet.zone,
        "instances launched"
    );
    let instances = built
        .records
        .into_iter()
        .map(Instance::from_record)
        .collect::<Result<_, _>>()?;
    Ok(Launched {
        reservation,
        instances,
        tags: Some(request.tags),
    })
}

/// Everything a launch needs that it reads without changing anything.
#[derive(Debug)]
struct Plan {
    image: LaunchImage,
    volumes: Vec<LaunchVolume>,
    instance_type: InstanceType,
    public_keys: Vec<SshKey>,
    iam_profile: Option<crate::identity::profiles::ProfileView>,
}

fn invalid(message: impl Into<String>) -> CloudError {
    CloudError::Invalid(message.into())
}

/// Resolves the image, its volumes, the type and the key pair, and checks
/// the zone: nothing changes.
async fn resolve(
    cloud: &Cloud,
    caller: &Principal,
    request: &RunInstances,
) -> Result<Plan, CloudError> {
    let account = caller.account_id();
    let image = resolve_for_launch(
        cloud,
        account,
        &request.image_id,
        request.kernel_id.as_deref(),
        request.ramdisk_id.as_deref(),
    )
    .await?;
    let volumes = launch_volumes(cloud, caller, &image, &request.block_device_mappings).await?;
    let instance_type = cloud
        .instance_types
        .get(&request.instance_type)
        .ok_or_else(|| {
            invalid(format!(
                "Invalid value '{}' for InstanceType.",
                request.instance_type
            ))
        })?
        .clone();
    let public_keys = match &request.key_name {
        None => Vec::new(),
        Some(name) => {
            let key = cloud
                .store
                .key_pairs(account)
                .await?
                .into_iter()
                .find(|k| &k.name == name)
                .ok_or_else(|| {
                    CloudError::not_found(
                        Kind::KeyPair,
                        format!("The key pair '{name}' does not exist"),
                    )
                })?;
            vec![SshKey {
                name: key.name.clone(),
                openssh_key: format!("{} {}", key.public_key, key.name),
            }]
        }
    };
    if let Some(zone) = &request.zone
        && !cloud.config.zones.contains(zone)
    {
        return Err(invalid(format!("Invalid availability zone: [{zone}]")));
    }
    let iam_profile = match &request.iam_instance_profile {
        None => None,
        Some(p) => Some(crate::iam_profiles::resolve(cloud, account, p).await?),
    };
    Ok(Plan {
        image,
        volumes,
        instance_type,
        public_keys,
        iam_profile,
    })
}

/// Where the instances' interface goes: the VPC, its CIDR, the subnets
/// they may land in and their security groups.
#[derive(Debug)]
struct Network {
    vpc_id: String,
    vpc_cidr: String,
    /// The VPC's DNS attributes.
    dns: NicDns,
    /// The `domain-name` of the VPC's DHCP options set.
    domain_name: Option<String>,
    /// The subnet an instance of each zone would go to.
    subnets: Vec<mallee_store::Subnet>,
    /// (id, name) of each group.
    groups: Vec<(String, String)>,
    /// How each of `subnets` reaches the public network (by subnet id).
    internet: HashMap<String, Internet>,
}

impl Network {
    fn group_ids(&self) -> Vec<String> {
        self.groups.iter().map(|(id, _)| id.clone()).collect()
    }

    fn group_names(&self) -> Vec<String> {
        self.groups.iter().map(|(_, name)| name.clone()).collect()
    }
}

async fn network(
    cloud: &Cloud,
    caller: &Principal,
    request: &RunInstances,
) -> Result<Network, CloudError> {
    let account = caller.account_id();
    let vpc = vpcs::default_vpc(cloud, account).await?;
    let explicit_subnet = match &request.subnet_id {
        None => None,
        Some(id) => Some(
            cloud
                .store
                .subnet(id)
                .await?
                .filter(|s| s.account_id == account)
                .ok_or_else(|| {
                    CloudError::not_found(
                        Kind::Subnet,
                        format!("The subnet ID '{id}' does not exist"),
                    )
                })?,
        ),
    };
    if let (Some(subnet), Some(zone)) = (&explicit_subnet, &request.zone)
        && &subnet.zone != zone
    {
        return Err(CloudError::InvalidCombination(format!(
            "The subnet {} is in {}, not in the requested Availability Zone {zone}.",
            subnet.subnet_id, subnet.zone
        )));
    }
    let vpc_id = explicit_subnet
        .as_ref()
        .map_or_else(|| vpc.vpc.vpc_id.clone(), |s| s.vpc_id.clone());
    let the_vpc = match &explicit_subnet {
        Some(s) if s.vpc_id != vpc.vpc.vpc_id => cloud.store.vpc(&s.vpc_id).await?,
        _ => Some(vpc.vpc.clone()),
    };
    let domain_name = match &the_vpc {
        Some(v) => crate::dhcp_options::domain_name(cloud, v).await?,
        None => None,
    };
    let (vpc_cidr, attributes) = the_vpc.map(|v| (v.cidr, v.attributes)).unwrap_or_default();
    let groups = security_groups::resolve_launch_groups(
        cloud,
        account,
        &vpc_id,
        request.subnet_id.as_deref(),
        &request.security_groups,
        &request.security_group_ids,
    )
    .await?;
    let subnets = match explicit_subnet {
        Some(s) => vec![s],
        None => vpc
            .subnets
            .iter()
            .filter(|s| s.default_for_az)
            .filter(|s| request.zone.as_ref().is_none_or(|want| want == &s.zone))
            .cloned()
            .collect(),
    };
    let mut internet = HashMap::new();
    for subnet in &subnets {
        internet.insert(
            subnet.subnet_id.clone(),
            crate::routing::internet_of(cloud, account, &vpc_id, &subnet.subnet_id).await?,
        );
    }
    Ok(Network {
        vpc_id,
        vpc_cidr,
        dns: attributes.into(),
        domain_name,
        subnets,
        groups,
        internet,
    })
}

/// Chooses the subnet (zone) with the most room and the nodes there, at
/// least `min_count` and at most `max_count` (within the quota).
async fn capacity(
    cloud: &Cloud,
    request: &RunInstances,
    plan: &Plan,
    network: &Network,
    all: &[Instance],
    allowed: usize,
) -> Result<(mallee_store::Subnet, Vec<mallee_store::Node>), CloudError> {
    let demand = Demand {
        vcpus: u64::from(plan.instance_type.vcpus),
        memory_mib: u64::from(plan.instance_type.memory_mib),
        disk_gib: u64::from(plan.instance_type.disk_gib),
    };
    let wanted = request.max_count.min(allowed);
    let nodes =
        crate::health::schedulable(cloud, cloud.store.nodes().await?, crate::ids::now_millis());
    let mut chosen = Vec::new();
    let mut chosen_subnet = None;
    for subnet in &network.subnets {
        let rooms = placement::rooms(&nodes, all, &subnet.zone);
        let last = cloud.compute.last_placed(&subnet.zone);
        let placed = placement::place_by(
            cloud.config.placement_policy(&subnet.zone),
            rooms,
            demand,
            wanted,
            last.as_deref(),
        );
        if placed.len() > chosen.len() || chosen_subnet.is_none() {
            chosen = placed;
            chosen_subnet = Some(subnet.clone());
        }
        if chosen.len() >= wanted {
            break;
        }
    }
    match chosen_subnet.filter(|_| chosen.len() >= request.min_count) {
        Some(subnet) => Ok((subnet, chosen)),
        None => {
            let zone = request
                .zone
                .clone()
                .unwrap_or_else(|| cloud.config.zones.join(", "));
            Err(CloudError::InsufficientCapacity {
                capacity: Capacity::Instances,
                message: format!(
                    "We currently do not have sufficient {} capacity in the Availability Zone you requested ({zone}). Room for {} more, at least {} requested.",
                    request.instance_type,
                    chosen.len(),
                    request.min_count
                ),
            })
        }
    }
}

/// Free private addresses of the subnet for the chosen nodes (fewer nodes
/// when the subnet has fewer addresses, down to `min_count`).
async fn private_addresses(
    cloud: &Cloud,
    request: &RunInstances,
    network: &Network,
    subnet: &mallee_store::Subnet,
    mut chosen: Vec<mallee_store::Node>,
) -> Result<(Vec<mallee_store::Node>, Vec<std::net::Ipv4Addr>), CloudError> {
    let cidr = placement::subnet(&subnet.cidr).ok_or_else(|| {
        CloudError::Internal(format!(
            "subnet {} has an unusable CIDR {}",
            subnet.subnet_id, subnet.cidr
        ))
    })?;
    let in_use = cloud.store.private_ips_in_use(&network.vpc_id).await?;
    let addresses = placement::free_addresses(cidr, &in_use, chosen.len());
    if addresses.len() < request.min_count {
        return Err(CloudError::InsufficientCapacity {
            capacity: Capacity::SubnetAddresses,
            message: format!(
                "There are not enough free addresses in subnet '{}' to satisfy the requested number of instances.",
                subnet.subnet_id
            ),
        });
    }
    chosen.truncate(addresses.len());
    Ok((chosen, addresses))
}

/// The records a reservation stores.
#[derive(Debug)]
struct Built {
    records: Vec<InstanceRecord>,
    volumes: Vec<mallee_store::VolumeRecord>,
    /// (instance id, primary interface id) of each record.
    interfaces: Vec<(String, String)>,
}

/// `2024-01-02T03:04:05Z` (the metadata service's launch time form).
fn iso8601_seconds(millis: i64) -> String {
    let full = ids::iso8601(millis);
    format!("{}Z", &full[..19])
}

/// The node that holds the launch volumes of each chosen node's
/// instances (by the instance's node id): the zone's storage host, or the
/// instance's own node (see [`crate::zone_storage`]).
async fn launch_volume_hosts(
    cloud: &Cloud,
    plan: &Plan,
    zone: &str,
    chosen: &[mallee_store::Node],
) -> Result<HashMap<String, String>, CloudError> {
    let mut hosts = HashMap::new();
    if plan.volumes.is_empty() {
        return Ok(hosts);
    }
    for node in chosen {
        let host = crate::zone_storage::launch_volume_host(cloud, zone, &node.node_id).await?;
        hosts.insert(node.node_id.clone(), host);
    }
    Ok(hosts)
}

#[allow(clippy::too_many_arguments)]
fn build_records(
    cloud: &Cloud,
    volume_hosts: &HashMap<String, String>,
    request: &RunInstances,
    plan: &Plan,
    network: &Network,
    subnet: &mallee_store::Subnet,
    reservation: &Reservation,
    chosen: &[mallee_store::Node],
    instance_ids: &[String],
    private_ips: &[std::net::Ipv4Addr],
    public_ips: &[Option<String>],
    now: i64,
) -> Result<Built, CloudError> {
    let account = &reservation.account_id;
    let zone = &subnet.zone;
    let image = &plan.image;
    let instance_type = &plan.instance_type;
    let group_ids = network.group_ids();
    let group_names = network.group_names();
    let mut records = Vec::with_capacity(chosen.len());
    let mut volumes = Vec::new();
    let mut interfaces = Vec::with_capacity(chosen.len());
    for (index, ((node, ip), instance_id)) in chosen
        .iter()
        .zip(private_ips)
        .zip(instance_ids.iter().cloned())
        .enumerate()
    {
        let mac = placement::random_mac();
        let dns = placement::private_dns_name(*ip, &cloud.config.region);
        let metadata = Metadata {
            ami_id: image.image_id.clone(),
            ami_launch_index: u32::try_from(index).unwrap_or(u32::MAX),
            reservation_id: reservation.reservation_id.clone(),
            account_id: account.clone(),
            instance_type: instance_type.name.clone(),
            kernel_id: image.kernel_id.clone(),
            ramdisk_id: image.ramdisk_id.clone(),
            architecture: image.architecture.clone(),
            region: cloud.config.region.clone(),
            availability_zone: zone.clone(),
            local_ipv4: ip.to_string(),
            local_hostname: dns.clone(),
            mac: mac.clone(),
            public_ipv4: None,
            public_hostname: None,
            security_groups: group_names.clone(),
            public_keys: plan.public_keys.clone(),
            user_data_base64: request.user_data.clone(),
            launch_time: iso8601_seconds(now),
            root_device_name: image.root_device_name.clone(),
            block_device_mapping: vec![
                ("ami".to_owned(), image.root_device_name.clone()),
                ("root".to_owned(), image.root_device_name.clone()),
            ],
            options: request.metadata_options,
            iam: plan
                .iam_profile
                .as_ref()
                .map(crate::iam_profiles::association),
        };
        let instance_volumes: Vec<Volume> = plan
            .volumes
            .iter()
            .map(|v| {
                let host = volume_hosts.get(&node.node_id).unwrap_or(&node.node_id);
                Volume::for_launch(account, zone, host, &instance_id, v, now)
            })
            .collect();
        let root_volume = instance_volumes
            .iter()
            .find(|v| v.details.boot)
            .map(|v| v.id().to_owned());
        volumes.extend(instance_volumes.iter().map(Volume::encode));
        let spec = LaunchSpec {
            instance_id: instance_id.clone(),
            account_id: account.clone(),
            instance_type: instance_type.name.clone(),
            vcpus: instance_type.vcpus,
            memory_mib: u64::from(instance_type.memory_mib),
            // An EBS root needs no disk of the node's own.
            disk_gib: if root_volume.is_some() {
                0
            } else {
                u64::from(instance_type.disk_gib)
            },
            image: image.boot_from(root_volume.as_deref().unwrap_or_default()),
            nics: vec![Nic {
                mac: mac.clone(),
                private_ip: ip.to_string(),
                network_id: network.vpc_id.clone(),
                subnet_cidr: subnet.cidr.clone(),
                vpc_cidr: network.vpc_cidr.clone(),
                dns: network.dns,
                public_ip: None,
                domain_name: network.domain_name.clone(),
                internet: network
                    .internet
                    .get(&subnet.subnet_id)
                    .cloned()
                    .unwrap_or_default(),
            }],
            metadata,
        };
        let mut details = InstanceDetails {
            spec,
            key_name: request.key_name.clone(),
            security_group_ids: group_ids.clone(),
            shutdown_behavior: request.shutdown_behavior,
            disable_api_termination: request.disable_api_termination,
            disable_api_stop: request.disable_api_stop,
            virtualization_type: if image.paravirtual {
                "paravirtual".to_owned()
            } else {
                "hvm".to_owned()
            },
            root_device_type: if image.ebs_backed() {
                "ebs".to_owned()
            } else {
                "instance-store".to_owned()
            },
            private_dns_name: dns,
            client_token: request.client_token.clone(),
            state_reason: None,
            state_transition_reason: String::new(),
            vpc_id: network.vpc_id.clone(),
            subnet_id: subnet.subnet_id.clone(),
            network_interface_id: ids::resource_id("eni"),
            evacuating: false,
        };
        addresses::set_public_ip(
            &mut details,
            public_ips.get(index).cloned().flatten().as_deref(),
            &cloud.config.public_domain(),
        );
        interfaces.push((instance_id.clone(), details.network_interface_id.clone()));
        records.push(InstanceRecord {
            instance_id,
            reservation_id: reservation.reservation_id.clone(),
            account_id: account.clone(),
            launch_index: i64::try_from(index).unwrap_or(i64::MAX),
            node_id: node.node_id.clone(),
            zone: zone.clone(),
            network_id: network.vpc_id.clone(),
            private_ip: ip.to_string(),
            mac,
            state: InstanceState::Pending.name().to_owned(),
            desired: Desired::Running.name().to_owned(),
            generation: 1,
            revision: 0,
            details: serde_json::to_string(&details).map_err(CloudError::internal)?,
            created_at: now,
            updated_at: now,
            terminated_at: None,
        });
    }
    Ok(Built {
        records,
        volumes,
        interfaces,
    })
}
