//! The bare-metal zone in the EC2 API.
//!
//! When provisioning is enabled the region has one more availability zone,
//! `<region>-metal` ([`zone_name`]), listed by DescribeAvailabilityZones
//! with a message saying it is bare metal. Its instance types are the
//! inventory's groups (`GROUP.metal`, `bareMetal` true); its images are
//! profiles registered with `ImageLocation=metal:PROFILE`.
//!
//! RunInstances there reserves free machines of the type's group through
//! the engine, in one inventory transaction, with the owner
//! `ACCOUNT:ec2/r-…` (the reservation id: a string the metal API's `-u
//! USER` cannot produce), then records the reservation and its instances
//! (node `metal:SYSTEM`, the machine's IP and MAC) in one store
//! transaction, then starts the installs. [`sync`], called by every
//! reconciler pass, maps each machine's provisioning state onto its
//! instance (reserved/provisioning → pending, running → running, failed →
//! shutting-down then terminated with the reason, released → terminated),
//! starts installs a crash interrupted, releases the machines of
//! terminated instances, and returns to the pool machines reserved by a
//! launch that died before its instances were recorded.

use std::collections::HashSet;
use std::sync::Arc;

use crate::instances::spec::{Boot, ImageObject, LaunchSpec, Metadata, MetadataOptions};
use mallee_metal::inventory::{InventoryError, Selection};
use mallee_metal::{EngineError, State, System};
use mallee_store::{Image, InstanceRecord, Reservation, StoreError, TagPair};

use super::Metal;
use super::names::{
    LOCATION_PREFIX, NETWORK_ID, NODE_PREFIX, TYPE_SUFFIX, image_profile, system_of, zone_name,
};
use crate::config::Config;
use crate::error::Capacity;
use crate::faults::Step;
use crate::instances::launch::steps::{self as launch, Launched, Steps, Undo};
use crate::instances::model::{
    Desired, Instance, InstanceDetails, InstanceState, ShutdownBehavior, StateReason,
};
use crate::instances::placement;
use crate::{Cloud, CloudError, Kind, Principal, ids};

/// The owner string the machines of a reservation carry.
fn owner_for(account_name: &str, reservation_id: &str) -> String {
    format!("{account_name}:ec2/{reservation_id}")
}

/// The reservation a machine was reserved for by RunInstances, if any.
fn reservation_of(system: &System) -> Option<&str> {
    let owner = system.owner.as_deref()?;
    let (_, rest) = owner.split_once(":ec2/")?;
    rest.starts_with("r-").then_some(rest)
}

/// One bare-metal instance type: a group of the inventory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MetalType {
    /// `GROUP.metal`.
    pub name: String,
    /// The group.
    pub group: String,
    /// Its description.
    pub description: String,
    /// Machines in it.
    pub systems: usize,
    /// Free machines in it.
    pub free: usize,
}

/// The bare-metal instance types (one per group), by name.
pub async fn instance_types(metal: &Metal) -> Result<Vec<MetalType>, CloudError> {
    let groups = metal.store().metal_groups().await?;
    let systems = all_systems(metal).await?;
    let mut types: Vec<MetalType> = groups
        .into_iter()
        .map(|g| {
            let of_group = systems.iter().filter(|s| s.group == g.name);
            MetalType {
                name: format!("{}{TYPE_SUFFIX}", g.name),
                systems: of_group.clone().count(),
                free: of_group.filter(|s| is_free(s)).count(),
                group: g.name,
                description: g.description,
            }
        })
        .collect();
    types.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(types)
}

async fn all_systems(metal: &Metal) -> Result<Vec<System>, CloudError> {
    use mallee_metal::Inventory;
    metal
        .inventory()
        .systems()
        .await
        .map_err(|e| CloudError::Internal(e.to_string()))
}

fn is_free(s: &System) -> bool {
    s.state == State::Free && s.owner.is_none()
}

fn engine_error(e: EngineError) -> CloudError {
    CloudError::Internal(format!("bare-metal zone: {e}"))
}

/// Whether RunInstances goes to the bare-metal zone: provisioning is on and
/// the request names the zone, or names none and launches a bare-metal
/// image.
pub async fn wants_metal(
    cloud: &Cloud,
    account_id: &str,
    zone: Option<&str>,
    image_id: &str,
) -> Result<bool, CloudError> {
    if cloud.compute.metal.get().is_none() {
        return Ok(false);
    }
    match zone {
        Some(z) => Ok(z == zone_name(&cloud.config)),
        None => Ok(crate::images::visible_image(cloud, account_id, image_id)
            .await
            .is_ok_and(|i| image_profile(&i).is_some())),
    }
}

/// RunInstances in the bare-metal zone.
#[derive(Debug, Clone)]
pub struct MetalLaunch {
    /// `ami-…` of a bare-metal image.
    pub image_id: String,
    /// Fewest machines that will do.
    pub min_count: usize,
    /// Most machines wanted.
    pub max_count: usize,
    /// `GROUP.metal`.
    pub instance_type: String,
    /// Idempotency token.
    pub client_token: Option<String>,
    /// Digest of the request (retries with the token must match).
    pub request_hash: String,
    /// Tags for the instances.
    pub tags: Vec<TagPair>,
    /// `DisableApiTermination`.
    pub disable_api_termination: bool,
    /// Parameters given that bare-metal instances cannot honour.
    pub unsupported: Vec<&'static str>,
}

/// Reserves machines, records the instances, starts the installs.
pub async fn run_instances(
    cloud: &Cloud,
    caller: &Principal,
    launch: MetalLaunch,
) -> Result<Launched, CloudError> {
    let zone = zone_name(&cloud.config);
    let Some(metal) = cloud.compute.metal.get() else {
        return Err(CloudError::Invalid(format!(
            "Invalid availability zone: [{zone}]"
        )));
    };
    let Some(engine) = metal.engine() else {
        return Err(CloudError::Invalid(format!(
            "Invalid availability zone: [{zone}]"
        )));
    };
    if !launch.unsupported.is_empty() {
        return Err(CloudError::Unsupported(format!(
            "{} cannot be used with bare-metal instances (zone {zone}).",
            launch.unsupported.join(", ")
        )));
    }
    let account = caller.account_id();
    let image = crate::images::visible_image(cloud, account, &launch.image_id).await?;
    let Some(profile) = image_profile(&image) else {
        return Err(CloudError::InvalidCombination(format!(
            "The image {} is not a bare-metal image: the bare-metal zone {zone} installs images registered with ImageLocation {LOCATION_PREFIX}PROFILE.",
            image.image_id
        )));
    };
    if image.state != "available" {
        return Err(CloudError::Unavailable {
            kind: Kind::Image,
            message: format!(
                "AMI '{}' is {}, and cannot be run",
                image.image_id, image.state
            ),
        });
    }
    {
        use mallee_metal::Inventory;
        if metal
            .inventory()
            .profile(profile)
            .await
            .map_err(|e| CloudError::Internal(e.to_string()))?
            .is_none()
        {
            return Err(CloudError::Unavailable {
                kind: Kind::Image,
                message: format!(
                    "AMI '{}' is unavailable: its bare-metal profile {profile} no longer exists.",
                    image.image_id
                ),
            });
        }
    }
    let types = instance_types(metal).await?;
    let Some(class) = types.iter().find(|t| t.name == launch.instance_type) else {
        let names: Vec<&str> = types.iter().map(|t| t.name.as_str()).collect();
        return Err(CloudError::InvalidCombination(format!(
            "The instance type {} is not offered in the bare-metal zone {zone}; its types are: {}.",
            launch.instance_type,
            names.join(", ")
        )));
    };

    let placing = cloud.compute.placement_lock.lock().await;
    let mut steps = Steps::new(cloud);
    let all = crate::instances::quota::all_instances(cloud).await?;
    let allowed = steps
        .take(Step::Quota, async {
            crate::instances::quota::remaining(cloud, &all, account, launch.min_count)
        })
        .await?;
    let insufficient = |free: usize| CloudError::InsufficientCapacity {
        capacity: Capacity::Systems,
        message: format!(
            "We currently do not have sufficient {} capacity in the Availability Zone you requested ({zone}). {free} machine(s) of group {} free, at least {} requested.",
            class.name, class.group, launch.min_count
        ),
    };
    let wanted = steps
        .take(Step::Capacity, async {
            let free = engine
                .systems()
                .await
                .map_err(engine_error)?
                .iter()
                .filter(|s| s.group == class.group && is_free(s))
                .count();
            let wanted = launch.max_count.min(allowed).min(free);
            if wanted < launch.min_count {
                return Err(insufficient(free));
            }
            Ok(wanted)
        })
        .await?;
    let now = ids::now_millis();
    let reservation = Reservation {
        reservation_id: ids::resource_id("r"),
        account_id: account.to_owned(),
        client_token: launch.client_token.clone(),
        request_hash: launch.request_hash.clone(),
        created_at: now,
    };
    let owner = owner_for(&caller.account.name, &reservation.reservation_id);
    let selection = Selection::Group {
        group: class.group.clone(),
        count: wanted,
    };
    let mut systems = steps
        .take(Step::Machines, async {
            match engine.reserve(&selection, &owner).await {
                Ok(s) => Ok(s),
                // The metal API took some meanwhile.
                Err(EngineError::Inventory(InventoryError::NotEnoughFree { free, .. })) => {
                    Err(insufficient(free))
                }
                Err(e) => Err(engine_error(e)),
            }
        })
        .await?;
    steps.taken(Undo::Machines(
        systems.iter().map(|s| s.name.clone()).collect(),
    ));
    systems.sort_by(|a, b| a.name.cmp(&b.name));
    let records: Vec<InstanceRecord> = steps
        .take(Step::Records, async {
            systems
                .iter()
                .enumerate()
                .map(|(index, system)| {
                    instance_record(
                        &cloud.config,
                        &reservation,
                        &image,
                        &class.name,
                        &zone,
                        system,
                        index,
                        &launch,
                        now,
                    )
                })
                .collect::<Result<_, _>>()
        })
        .await?;
    if let Err(e) = cloud
        .store
        .create_reservation(&reservation, &records, &launch.tags)
        .await
    {
        steps.unwind().await;
        drop(placing);
        if let (StoreError::Conflict(_), Some(token)) = (&e, &launch.client_token) {
            return launch::lost_race(cloud, caller, token, &launch.request_hash).await;
        }
        return Err(e.into());
    }
    steps.finish();
    for s in &systems {
        if let Err(e) = engine.provision(&s.name, profile).await {
            tracing::warn!(system = %s.name, error = %e, "install did not start; the reconciler retries");
        }
    }
    drop(placing);
    cloud.compute.wake();
    tracing::info!(
        reservation = %reservation.reservation_id,
        account = %account,
        image = %image.image_id,
        profile,
        systems = ?systems.iter().map(|s| &s.name).collect::<Vec<_>>(),
        "bare-metal instances launched"
    );
    let instances: Vec<Instance> = records
        .into_iter()
        .map(Instance::from_record)
        .collect::<Result<_, _>>()?;
    Ok(Launched {
        reservation,
        instances,
        tags: Some(launch.tags),
    })
}

/// The record of the instance that machine `system` becomes.
#[allow(clippy::too_many_arguments)]
fn instance_record(
    config: &Config,
    reservation: &Reservation,
    image: &Image,
    instance_type: &str,
    zone: &str,
    system: &System,
    index: usize,
    launch: &MetalLaunch,
    now: i64,
) -> Result<InstanceRecord, CloudError> {
    let instance_id = ids::resource_id("i");
    let ip = system.ip.to_string();
    let mac = system.mac.to_string();
    let dns = placement::private_dns_name(system.ip, &config.region);
    let metadata = Metadata {
        ami_id: image.image_id.clone(),
        ami_launch_index: u32::try_from(index).unwrap_or(u32::MAX),
        reservation_id: reservation.reservation_id.clone(),
        account_id: reservation.account_id.clone(),
        instance_type: instance_type.to_owned(),
        kernel_id: None,
        ramdisk_id: None,
        architecture: image.architecture.clone(),
        region: config.region.clone(),
        availability_zone: zone.to_owned(),
        local_ipv4: ip.clone(),
        local_hostname: dns.clone(),
        mac: mac.clone(),
        public_ipv4: None,
        public_hostname: None,
        security_groups: Vec::new(),
        public_keys: Vec::new(),
        user_data_base64: None,
        launch_time: ids::iso8601(now),
        root_device_name: image.root_device_name.clone(),
        block_device_mapping: Vec::new(),
        options: MetadataOptions::default(),
        iam: None,
    };
    // Never sent to a node agent (the instance's node is `metal:SYSTEM`):
    // it carries the metadata and type the EC2 responses show.
    let spec = LaunchSpec {
        instance_id: instance_id.clone(),
        account_id: reservation.account_id.clone(),
        instance_type: instance_type.to_owned(),
        vcpus: 0,
        memory_mib: 0,
        disk_gib: 0,
        image: Boot::Hvm {
            disk: ImageObject {
                bucket: String::new(),
                key: image.location.clone(),
                size: 0,
                etag: String::new(),
            },
        },
        nics: Vec::new(),
        metadata,
    };
    let details = InstanceDetails {
        spec,
        key_name: None,
        security_group_ids: Vec::new(),
        shutdown_behavior: ShutdownBehavior::Stop,
        disable_api_termination: launch.disable_api_termination,
        disable_api_stop: false,
        virtualization_type: "hvm".to_owned(),
        root_device_type: "instance-store".to_owned(),
        private_dns_name: dns,
        client_token: launch.client_token.clone(),
        state_reason: None,
        state_transition_reason: String::new(),
        vpc_id: String::new(),
        subnet_id: String::new(),
        network_interface_id: String::new(),
        evacuating: false,
    };
    Ok(InstanceRecord {
        instance_id,
        reservation_id: reservation.reservation_id.clone(),
        account_id: reservation.account_id.clone(),
        launch_index: i64::try_from(index).unwrap_or(i64::MAX),
        node_id: format!("{NODE_PREFIX}{}", system.name),
        zone: zone.to_owned(),
        network_id: NETWORK_ID.to_owned(),
        private_ip: ip,
        mac,
        state: InstanceState::Pending.name().to_owned(),
        desired: Desired::Running.name().to_owned(),
        generation: 1,
        revision: 0,
        details: serde_json::to_string(&details).map_err(CloudError::internal)?,
        created_at: now,
        updated_at: now,
        terminated_at: None,
    })
}

/// What the syncer does to a machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MachineAction {
    /// Nothing.
    None,
    /// Install the instance's profile (a reserved machine whose install a
    /// crash kept from starting).
    Provision,
    /// Return it to the pool.
    Release,
}

/// One step of the syncer for one bare-metal instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStep {
    /// The instance's new state, desired state and reason, if they change.
    pub transition: Option<(InstanceState, Desired, Option<StateReason>)>,
    /// What to do to the machine.
    pub machine: MachineAction,
    /// Remove the record (terminated for more than an hour).
    pub forget: bool,
}

/// The syncer's step for `instance` given its machine (`None`: gone from the
/// inventory). Pure.
pub fn decide(instance: &Instance, system: Option<&System>, now: i64) -> SyncStep {
    let mut step = SyncStep {
        transition: None,
        machine: MachineAction::None,
        forget: false,
    };
    let owned =
        system.filter(|s| reservation_of(s) == Some(instance.record.reservation_id.as_str()));
    if instance.state == InstanceState::Terminated {
        step.forget = instance
            .record
            .terminated_at
            .is_some_and(|at| now - at > crate::instances::model::TERMINATED_VISIBLE_MILLIS);
        return step;
    }
    let Some(system) = owned else {
        let reason = (instance.desired != Desired::Terminated).then(|| {
            StateReason::new(
                "Server.InternalError",
                "The machine was returned to the pool outside EC2",
            )
        });
        step.transition = Some((InstanceState::Terminated, Desired::Terminated, reason));
        return step;
    };
    let shutting_down = |reason: Option<StateReason>| {
        Some((InstanceState::ShuttingDown, Desired::Terminated, reason))
    };
    match (instance.desired, &system.state) {
        (Desired::Terminated, State::Releasing | State::Wiping { .. }) => {
            if instance.state != InstanceState::ShuttingDown {
                step.transition = shutting_down(None);
            }
        }
        (Desired::Terminated, _) => {
            if instance.state != InstanceState::ShuttingDown {
                step.transition = shutting_down(None);
            }
            step.machine = MachineAction::Release;
        }
        (_, State::Failed { reason }) => {
            step.transition = shutting_down(Some(StateReason::new("Server.InternalError", reason)));
            step.machine = MachineAction::Release;
        }
        (_, State::Releasing | State::Wiping { .. }) => {
            step.transition = shutting_down(Some(StateReason::new(
                "Server.InternalError",
                "The machine is being returned to the pool outside EC2",
            )));
        }
        (_, State::Reserved) => step.machine = MachineAction::Provision,
        (_, State::Provisioning { .. }) => {
            if instance.state != InstanceState::Pending {
                step.transition = Some((InstanceState::Pending, instance.desired, None));
            }
        }
        (_, State::Running) => {
            if instance.state != InstanceState::Running {
                step.transition = Some((InstanceState::Running, instance.desired, None));
            }
        }
        // An owned machine is never free; treat it as gone.
        (_, State::Free) => {
            step.transition = Some((InstanceState::Terminated, Desired::Terminated, None));
        }
    }
    step
}

/// One pass of the syncer; `true` while some bare-metal instance is on its
/// way to a stable state.
pub async fn sync(cloud: &Arc<Cloud>) -> Result<bool, StoreError> {
    let Some(metal) = cloud.compute.metal.get() else {
        return Ok(false);
    };
    let Some(engine) = metal.engine() else {
        return Ok(false);
    };
    let systems = match engine.systems().await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "bare-metal zone: cannot read the inventory");
            return Ok(false);
        }
    };
    let now = ids::now_millis();
    let mut busy = false;
    for record in cloud.store.instances(None).await? {
        if !record.node_id.starts_with(NODE_PREFIX) {
            continue;
        }
        let Ok(mut instance) = Instance::decode(record) else {
            continue;
        };
        let name = system_of(&instance.record).unwrap_or_default().to_owned();
        let system = systems.iter().find(|s| s.name == name);
        let step = decide(&instance, system, now);
        if step.forget {
            tracing::info!(instance = %instance.id(), "forgetting a bare-metal instance terminated an hour ago");
            cloud.store.delete_instance(instance.id()).await?;
            continue;
        }
        match step.machine {
            MachineAction::None => {}
            MachineAction::Provision => {
                // Not while a launch holds the lock: it starts its own installs.
                if let Ok(_placing) = cloud.compute.placement_lock.try_lock() {
                    let image = cloud
                        .store
                        .image(&instance.details.spec.metadata.ami_id)
                        .await?;
                    match image.as_ref().and_then(|i| image_profile(i)) {
                        Some(profile) => {
                            if let Err(e) = engine.provision(&name, profile).await {
                                tracing::warn!(system = %name, error = %e, "install did not start");
                            }
                        }
                        None => {
                            tracing::warn!(instance = %instance.id(), "its image is gone: releasing the machine");
                            instance.desired = Desired::Terminated;
                            instance.state = InstanceState::ShuttingDown;
                            instance.details.state_reason = Some(StateReason::new(
                                "Server.InternalError",
                                "The instance's image was deregistered before its install started",
                            ));
                            instance.record.updated_at = now;
                            cloud.store.update_instance(&instance.encode()).await?;
                            if let Err(e) = engine.release(&name).await {
                                tracing::warn!(system = %name, error = %e, "release failed");
                            }
                            continue;
                        }
                    }
                }
            }
            MachineAction::Release => {
                if let Err(e) = engine.release(&name).await {
                    tracing::warn!(system = %name, error = %e, "release failed; will retry");
                }
            }
        }
        if let Some((state, desired, reason)) = step.transition {
            tracing::info!(
                instance = %instance.id(),
                system = %name,
                from = instance.state.name(),
                to = state.name(),
                reason = reason.as_ref().map(|r| r.message.as_str()).unwrap_or(""),
                "bare-metal instance state"
            );
            instance.state = state;
            instance.desired = desired;
            if reason.is_some() {
                instance.details.state_reason = reason;
            }
            if state == InstanceState::Terminated {
                instance.record.terminated_at = Some(now);
            }
            instance.record.updated_at = now;
            cloud.store.update_instance(&instance.encode()).await?;
        }
        busy |= matches!(
            instance.state,
            InstanceState::Pending | InstanceState::ShuttingDown
        );
    }
    release_orphans(cloud, engine).await?;
    Ok(busy)
}

/// Returns to the pool machines reserved by a launch whose instances were
/// never recorded (the controller died between the two transactions), and
/// machines of instances forgotten meanwhile.
async fn release_orphans(
    cloud: &Arc<Cloud>,
    engine: &mallee_metal::Engine,
) -> Result<(), StoreError> {
    // While a launch holds the lock its machines are reserved but its
    // instances may not be recorded yet.
    let Ok(_placing) = cloud.compute.placement_lock.try_lock() else {
        return Ok(());
    };
    let live: HashSet<(String, String)> = cloud
        .store
        .instances(None)
        .await?
        .into_iter()
        .filter(|r| r.terminated_at.is_none())
        .filter_map(|r| system_of(&r).map(|s| (s.to_owned(), r.reservation_id.clone())))
        .collect();
    let Ok(systems) = engine.systems().await else {
        return Ok(());
    };
    for s in systems {
        let Some(reservation) = reservation_of(&s) else {
            continue;
        };
        if matches!(
            s.state,
            State::Free | State::Releasing | State::Wiping { .. }
        ) || live.contains(&(s.name.clone(), reservation.to_owned()))
        {
            continue;
        }
        tracing::warn!(system = %s.name, reservation, "returning a machine no instance holds to the pool");
        if let Err(e) = engine.release(&s.name).await {
            tracing::warn!(system = %s.name, error = %e, "release failed; will retry");
        }
    }
    Ok(())
}

/// Reboots the machine of a running bare-metal instance (a power cycle; its
/// netboot is off, so it boots its installed system again).
pub async fn reboot(cloud: &Cloud, instance: &Instance) -> Result<(), CloudError> {
    let Some(engine) = cloud.compute.metal.get().and_then(|m| m.engine().cloned()) else {
        return Ok(());
    };
    let name = system_of(&instance.record).unwrap_or_default();
    let Some(system) = engine
        .systems()
        .await
        .map_err(engine_error)?
        .into_iter()
        .find(|s| {
            s.name == name && reservation_of(s) == Some(instance.record.reservation_id.as_str())
        })
    else {
        return Ok(());
    };
    if system.state != State::Running || system.netboot {
        return Ok(());
    }
    let driver = mallee_metal::power::driver(&system.name, &system.mac, &system.power);
    driver
        .power_on_netboot()
        .await
        .map_err(|e| CloudError::Internal(format!("power cycle of {}: {e}", system.name)))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use mallee_metal::{Mac, PowerSpec, Step};

    fn system(state: State, owner: Option<&str>) -> System {
        let mut s = System::new(
            "m1",
            "52:54:00:00:00:01".parse::<Mac>().expect("mac"),
            "10.254.0.11".parse().expect("ip"),
            "test01",
            PowerSpec::Manual,
        )
        .expect("system");
        s.state = state;
        s.owner = owner.map(str::to_owned);
        s
    }

    fn instance(state: InstanceState, desired: Desired) -> Instance {
        let launch = MetalLaunch {
            image_id: "ami-00000000000000001".into(),
            min_count: 1,
            max_count: 1,
            instance_type: "test01.metal".into(),
            client_token: None,
            request_hash: String::new(),
            tags: Vec::new(),
            disable_api_termination: false,
            unsupported: Vec::new(),
        };
        let image = Image {
            name: "qa".into(),
            location: "metal:qa".into(),
            bucket: String::new(),
            key: String::new(),
            size: 0,
            etag: String::new(),
            disk_format: "none".into(),
            is_public: true,
            created_at: 0,
            ..crate::testkit::machine_image(&launch.image_id, "000000000001")
        };
        assert_eq!(image_profile(&image), Some("qa"));
        let reservation = Reservation {
            reservation_id: "r-0000000000000000a".into(),
            account_id: "000000000001".into(),
            client_token: None,
            request_hash: String::new(),
            created_at: 0,
        };
        let config = Config::new(
            "127.0.0.1:8773".parse().expect("addr"),
            "/nonexistent".into(),
        );
        let record = instance_record(
            &config,
            &reservation,
            &image,
            &launch.instance_type,
            &zone_name(&config),
            &system(State::Reserved, None),
            0,
            &launch,
            0,
        )
        .expect("record");
        assert_eq!(record.node_id, "metal:m1");
        assert_eq!(record.private_ip, "10.254.0.11");
        let mut i = Instance::decode(record).expect("decode");
        i.state = state;
        i.desired = desired;
        i
    }

    const OWNER: &str = "acme:ec2/r-0000000000000000a";

    #[test]
    fn owners_name_their_reservation() {
        assert_eq!(owner_for("acme", "r-0000000000000000a"), OWNER);
        assert_eq!(
            reservation_of(&system(State::Reserved, Some(OWNER))),
            Some("r-0000000000000000a")
        );
        assert_eq!(reservation_of(&system(State::Reserved, Some("demo"))), None);
        assert_eq!(
            reservation_of(&system(State::Reserved, Some("acme:demo"))),
            None
        );
    }

    #[test]
    fn machine_states_map_onto_the_instance() {
        let pending = instance(InstanceState::Pending, Desired::Running);
        let now = 1_000;
        // Reserved but not installing (a crash): start the install.
        let s = decide(&pending, Some(&system(State::Reserved, Some(OWNER))), now);
        assert_eq!((s.transition, s.machine), (None, MachineAction::Provision));
        let s = decide(
            &pending,
            Some(&system(
                State::Provisioning {
                    step: Step::Deploying,
                },
                Some(OWNER),
            )),
            now,
        );
        assert_eq!((s.transition, s.machine), (None, MachineAction::None));
        let s = decide(&pending, Some(&system(State::Running, Some(OWNER))), now);
        assert_eq!(
            s.transition,
            Some((InstanceState::Running, Desired::Running, None))
        );
        // A failed install: shutting-down with the reason, machine released.
        let s = decide(
            &pending,
            Some(&system(
                State::Failed {
                    reason: "timeout: x".into(),
                },
                Some(OWNER),
            )),
            now,
        );
        let (state, desired, reason) = s.transition.expect("transition");
        assert_eq!(
            (state, desired),
            (InstanceState::ShuttingDown, Desired::Terminated)
        );
        assert_eq!(
            reason.expect("reason").message,
            "Server.InternalError: timeout: x"
        );
        assert_eq!(s.machine, MachineAction::Release);
        // Someone else's machine, or a free one: the instance is gone.
        for other in [
            system(State::Free, None),
            system(State::Reserved, Some("demo")),
        ] {
            let s = decide(&pending, Some(&other), now);
            assert_eq!(s.transition.map(|t| t.0), Some(InstanceState::Terminated));
            assert_eq!(s.machine, MachineAction::None);
        }
        assert_eq!(
            decide(&pending, None, now).transition.map(|t| t.0),
            Some(InstanceState::Terminated)
        );
    }

    #[test]
    fn termination_releases_then_ends() {
        let terminating = instance(InstanceState::ShuttingDown, Desired::Terminated);
        let s = decide(&terminating, Some(&system(State::Running, Some(OWNER))), 0);
        assert_eq!((s.transition, s.machine), (None, MachineAction::Release));
        let s = decide(
            &terminating,
            Some(&system(State::Releasing, Some(OWNER))),
            0,
        );
        assert_eq!((s.transition, s.machine), (None, MachineAction::None));
        let wiping = State::Wiping {
            mode: mallee_metal::Wipe::Zero,
        };
        let s = decide(&terminating, Some(&system(wiping, Some(OWNER))), 0);
        assert_eq!(
            (s.transition, s.machine),
            (None, MachineAction::None),
            "a machine being wiped is on its way back to the pool"
        );
        let s = decide(&terminating, Some(&system(State::Free, None)), 0);
        assert_eq!(
            s.transition,
            Some((InstanceState::Terminated, Desired::Terminated, None))
        );
        let mut done = instance(InstanceState::Terminated, Desired::Terminated);
        done.record.terminated_at = Some(0);
        assert!(!decide(&done, None, 1000).forget);
        assert!(
            decide(
                &done,
                None,
                crate::instances::model::TERMINATED_VISIBLE_MILLIS + 1
            )
            .forget
        );
    }
}
