//! Instance attributes: reading one, and changing one. User data, the
//! instance type and the kernel and ramdisk change only while the instance
//! is stopped (they are what it boots with); its security groups,
//! `disableApiTermination`, `disableApiStop`, the shutdown behaviour and
//! the metadata options change at any time (new metadata options reach
//! the running instance's metadata service with its next spec).

use crate::instances::spec::{Boot, MetadataOptions, Tokens};

use crate::images::{self, LaunchImage};
use crate::instances::lifecycle;
use crate::instances::lookup;
use crate::instances::model::{Instance, InstanceState, ShutdownBehavior};
use crate::{Cloud, CloudError, Kind, Principal, security_groups};

/// An attribute DescribeInstanceAttribute reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attribute {
    /// The instance type.
    InstanceType,
    /// The kernel image (paravirtual instances).
    Kernel,
    /// The ramdisk image (paravirtual instances).
    Ramdisk,
    /// User data, base64 as given.
    UserData,
    /// Whether TerminateInstances is refused.
    DisableApiTermination,
    /// Whether StopInstances is refused.
    DisableApiStop,
    /// What a guest-initiated poweroff does.
    ShutdownBehavior,
    /// The root device name.
    RootDeviceName,
    /// The block device mapping.
    BlockDeviceMapping,
    /// The security groups.
    GroupSet,
    /// EBS optimisation (never on).
    EbsOptimized,
    /// Source/destination check (always on).
    SourceDestCheck,
}

/// What an attribute holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttributeValue {
    /// One value; `None` when unset.
    Value(Option<String>),
    /// Security group names.
    Groups(Vec<String>),
    /// The block device mapping, which this attribute shows empty.
    NoDevices,
}

/// `attribute` of the caller's instance `id`.
pub async fn describe(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
    attribute: Attribute,
) -> Result<AttributeValue, CloudError> {
    let instance = lookup::one(cloud, caller, id).await?;
    let d = &instance.details;
    let md = &d.spec.metadata;
    let value = |v: &str| AttributeValue::Value(Some(v.to_owned()));
    Ok(match attribute {
        Attribute::InstanceType => value(&d.spec.instance_type),
        Attribute::Kernel => AttributeValue::Value(md.kernel_id.clone()),
        Attribute::Ramdisk => AttributeValue::Value(md.ramdisk_id.clone()),
        Attribute::UserData => AttributeValue::Value(md.user_data_base64.clone()),
        Attribute::DisableApiTermination => value(if d.disable_api_termination {
            "true"
        } else {
            "false"
        }),
        Attribute::DisableApiStop => value(if d.disable_api_stop { "true" } else { "false" }),
        Attribute::ShutdownBehavior => value(d.shutdown_behavior.name()),
        Attribute::RootDeviceName => value(&md.root_device_name),
        Attribute::BlockDeviceMapping => AttributeValue::NoDevices,
        Attribute::GroupSet => AttributeValue::Groups(md.security_groups.clone()),
        Attribute::EbsOptimized => value("false"),
        Attribute::SourceDestCheck => value("true"),
    })
}

/// One change to an instance's attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modification {
    /// A new instance type (stopped instances).
    InstanceType(String),
    /// New base64 user data, empty to remove it (stopped instances).
    UserData(String),
    /// Another kernel image (stopped instances).
    Kernel(String),
    /// Another ramdisk image (stopped instances).
    Ramdisk(String),
    /// Whether TerminateInstances is refused.
    DisableApiTermination(bool),
    /// Whether StopInstances is refused.
    DisableApiStop(bool),
    /// What a guest-initiated poweroff does.
    ShutdownBehavior(ShutdownBehavior),
    /// Metadata options (ModifyInstanceMetadataOptions): each given one
    /// replaces the instance's.
    MetadataOptions(MetadataOptionsChange),
    /// The instance's security groups, by id, replacing its own (while it
    /// runs: its node's firewall follows).
    Groups(Vec<String>),
}

impl Modification {
    fn needs_stopped(&self) -> bool {
        matches!(
            self,
            Self::InstanceType(_) | Self::UserData(_) | Self::Kernel(_) | Self::Ramdisk(_)
        )
    }
}

/// The metadata options ModifyInstanceMetadataOptions changes; `None`
/// keeps the instance's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct MetadataOptionsChange {
    /// `HttpTokens`.
    pub http_tokens: Option<Tokens>,
    /// `HttpPutResponseHopLimit` (1..=64, checked by the caller).
    pub http_put_response_hop_limit: Option<u8>,
    /// `HttpEndpoint` enabled.
    pub http_endpoint_enabled: Option<bool>,
}

impl MetadataOptionsChange {
    /// `options` with this change applied.
    pub fn applied_to(self, options: MetadataOptions) -> MetadataOptions {
        MetadataOptions {
            http_tokens: self.http_tokens.unwrap_or(options.http_tokens),
            http_put_response_hop_limit: self
                .http_put_response_hop_limit
                .unwrap_or(options.http_put_response_hop_limit),
            http_endpoint_enabled: self
                .http_endpoint_enabled
                .unwrap_or(options.http_endpoint_enabled),
        }
    }
}

/// What a modification resolved before it is applied: looked up once,
/// outside the compare-and-set loop.
enum Resolved {
    /// Name, cores, memory and disk of the new type.
    InstanceType(String, u32, u64, u64),
    /// The image booted with the new kernel or ramdisk.
    Boot(Box<LaunchImage>),
    /// (id, name) of each new group.
    Groups(Vec<(String, String)>),
    /// Nothing to look up.
    Nothing,
}

/// Applies `modification` to the caller's instance `id`.
pub async fn modify(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
    modification: Modification,
) -> Result<(), CloudError> {
    let instance = lookup::one(cloud, caller, id).await?;
    if modification.needs_stopped() && instance.state != InstanceState::Stopped {
        return Err(CloudError::incorrect_state(
            Kind::Instance,
            format!("The instance '{id}' is not in the 'stopped' state."),
        ));
    }
    let resolved = resolve(cloud, caller, &instance, &modification).await?;
    lifecycle::change(cloud, caller, &[id.to_owned()], |i, _| {
        apply(i, &modification, &resolved);
        Ok(true)
    })
    .await?;
    if let Resolved::Groups(groups) = &resolved {
        let ids: Vec<String> = groups.iter().map(|(id, _)| id.clone()).collect();
        cloud.store.set_instance_groups(id, &ids).await?;
        security_groups::firewall_changed(cloud);
    }
    Ok(())
}

/// The CPU credit option of the caller's instances named by `ids` (each
/// must exist), as DescribeInstanceCreditSpecifications answers: no
/// instance type of mallee is burstable, and AWS reports `standard` for
/// such instances when they are named. Without ids AWS lists only
/// instances with the `unlimited` option, of which mallee has none.
pub async fn credit_specifications(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<(String, &'static str)>, CloudError> {
    Ok(lookup::owned(cloud, caller, ids)
        .await?
        .into_iter()
        .map(|i| (i.id().to_owned(), "standard"))
        .collect())
}

/// GetPasswordData: the caller's instance `id` must exist; its password
/// data is empty, as AWS answers for Linux instances (mallee's images
/// never post an encrypted Windows password).
pub async fn password_data(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
) -> Result<String, CloudError> {
    lookup::one(cloud, caller, id).await?;
    Ok(String::new())
}

fn is_gone(instance: &Instance) -> bool {
    matches!(
        instance.state,
        InstanceState::ShuttingDown | InstanceState::Terminated
    )
}

/// The metadata options of the caller's instance `id`, after
/// ModifyInstanceMetadataOptions applies `change` to them.
pub async fn modify_metadata_options(
    cloud: &Cloud,
    caller: &Principal,
    id: &str,
    change: MetadataOptionsChange,
) -> Result<MetadataOptions, CloudError> {
    modify(cloud, caller, id, Modification::MetadataOptions(change)).await?;
    Ok(change.applied_to(
        lookup::one(cloud, caller, id)
            .await?
            .details
            .spec
            .metadata
            .options,
    ))
}

async fn resolve(
    cloud: &Cloud,
    caller: &Principal,
    instance: &Instance,
    modification: &Modification,
) -> Result<Resolved, CloudError> {
    let md = &instance.details.spec.metadata;
    let account = caller.account_id();
    Ok(match modification {
        Modification::InstanceType(name) => {
            let t = cloud.instance_types.get(name).ok_or_else(|| {
                CloudError::Invalid(format!("Invalid value '{name}' for InstanceType."))
            })?;
            Resolved::InstanceType(
                t.name.clone(),
                t.vcpus,
                u64::from(t.memory_mib),
                u64::from(t.disk_gib),
            )
        }
        Modification::Kernel(k) => Resolved::Boot(Box::new(
            images::resolve_for_launch(
                cloud,
                account,
                &md.ami_id,
                Some(k),
                md.ramdisk_id.as_deref(),
            )
            .await?,
        )),
        Modification::Ramdisk(r) => Resolved::Boot(Box::new(
            images::resolve_for_launch(
                cloud,
                account,
                &md.ami_id,
                md.kernel_id.as_deref(),
                Some(r),
            )
            .await?,
        )),
        Modification::Groups(ids) => Resolved::Groups(
            security_groups::resolve_launch_groups(
                cloud,
                account,
                &instance.details.vpc_id,
                Some(&instance.details.subnet_id)
                    .filter(|s| !s.is_empty())
                    .map(String::as_str),
                &[],
                ids,
            )
            .await?,
        ),
        Modification::MetadataOptions(_) if is_gone(instance) => {
            return Err(CloudError::incorrect_state(
                Kind::Instance,
                format!(
                    "The instance '{}' is not in a state from which its metadata options can be modified.",
                    instance.id()
                ),
            ));
        }
        Modification::UserData(_)
        | Modification::DisableApiTermination(_)
        | Modification::DisableApiStop(_)
        | Modification::ShutdownBehavior(_)
        | Modification::MetadataOptions(_) => Resolved::Nothing,
    })
}

fn apply(instance: &mut Instance, modification: &Modification, resolved: &Resolved) {
    let d = &mut instance.details;
    match (modification, resolved) {
        (Modification::InstanceType(_), Resolved::InstanceType(name, vcpus, memory, disk)) => {
            d.spec.instance_type.clone_from(name);
            d.spec.metadata.instance_type.clone_from(name);
            d.spec.vcpus = *vcpus;
            d.spec.memory_mib = *memory;
            // The root overlay never shrinks.
            d.spec.disk_gib = d.spec.disk_gib.max(*disk);
        }
        (Modification::UserData(data), _) => {
            d.spec.metadata.user_data_base64 = (!data.is_empty()).then(|| data.clone());
        }
        (Modification::Kernel(_) | Modification::Ramdisk(_), Resolved::Boot(image)) => {
            d.spec.image = match &d.spec.image {
                Boot::Ebs { root_volume_id, .. } => image.boot_from(root_volume_id),
                _ => image.boot.clone(),
            };
            d.spec.metadata.kernel_id.clone_from(&image.kernel_id);
            d.spec.metadata.ramdisk_id.clone_from(&image.ramdisk_id);
        }
        (Modification::Groups(_), Resolved::Groups(groups)) => {
            d.security_group_ids = groups.iter().map(|(id, _)| id.clone()).collect();
            d.spec.metadata.security_groups = groups.iter().map(|(_, name)| name.clone()).collect();
        }
        (Modification::DisableApiTermination(v), _) => d.disable_api_termination = *v,
        (Modification::DisableApiStop(v), _) => d.disable_api_stop = *v,
        (Modification::MetadataOptions(change), _) => {
            let options = change.applied_to(d.spec.metadata.options);
            if options != d.spec.metadata.options {
                d.spec.metadata.options = options;
                // The node's metadata service takes them from the spec.
                instance.record.generation += 1;
            }
        }
        (Modification::ShutdownBehavior(b), _) => d.shutdown_behavior = *b,
        // `resolve` pairs every modification with what it needs.
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::{InstanceBuilder, TestCloud};

    const ID: &str = "i-0000000000000000a";

    async fn stored(tc: &TestCloud) -> Instance {
        let record = tc.store.instance(ID).await.expect("store").expect("row");
        Instance::from_record(record).expect("decodes")
    }

    #[tokio::test]
    async fn boot_attributes_change_only_while_stopped() {
        let tc = TestCloud::new().await;
        let caller = tc.principal("alice").await;
        InstanceBuilder::new(ID, caller.account_id())
            .resources("t1.micro", 1, 256, 20)
            .store(&tc)
            .await;
        let wanted = Modification::InstanceType("m1.large".into());
        let err = modify(&tc, &caller, ID, wanted.clone())
            .await
            .expect_err("running");
        assert!(matches!(
            err,
            CloudError::IncorrectState {
                kind: Kind::Instance,
                ..
            }
        ));
        assert_eq!(stored(&tc).await.details.spec.instance_type, "t1.micro");

        lifecycle::stop(&tc, &caller, &[ID.to_owned()])
            .await
            .expect("stop");
        let mut stopped = stored(&tc).await;
        stopped.state = InstanceState::Stopped;
        assert!(
            tc.store
                .update_instance(&stopped.encode())
                .await
                .expect("store")
        );
        let bad = Modification::InstanceType("no.such".into());
        assert!(matches!(
            modify(&tc, &caller, ID, bad).await,
            Err(CloudError::Invalid(_))
        ));
        modify(&tc, &caller, ID, wanted).await.expect("stopped");
        let large = tc.instance_types.get("m1.large").expect("type").clone();
        let spec = stored(&tc).await.details.spec;
        assert_eq!(
            (spec.instance_type.as_str(), spec.vcpus, spec.memory_mib),
            ("m1.large", large.vcpus, u64::from(large.memory_mib))
        );
        assert_eq!(spec.metadata.instance_type, "m1.large");
        assert_eq!(
            spec.disk_gib,
            u64::from(large.disk_gib).max(20),
            "never shrinks"
        );

        modify(&tc, &caller, ID, Modification::UserData("aGk=".into()))
            .await
            .expect("user data");
        assert_eq!(
            describe(&tc, &caller, ID, Attribute::UserData)
                .await
                .expect("read"),
            AttributeValue::Value(Some("aGk=".into()))
        );
        modify(&tc, &caller, ID, Modification::UserData(String::new()))
            .await
            .expect("removed");
        assert_eq!(
            describe(&tc, &caller, ID, Attribute::UserData)
                .await
                .expect("read"),
            AttributeValue::Value(None)
        );
    }

    #[tokio::test]
    async fn disable_api_stop_refuses_stop_until_cleared() {
        let tc = TestCloud::new().await;
        let caller = tc.principal("alice").await;
        InstanceBuilder::new(ID, caller.account_id())
            .store(&tc)
            .await;
        let ids = [ID.to_owned()];
        modify(&tc, &caller, ID, Modification::DisableApiStop(true))
            .await
            .expect("protect");
        assert_eq!(
            describe(&tc, &caller, ID, Attribute::DisableApiStop)
                .await
                .expect("read"),
            AttributeValue::Value(Some("true".into()))
        );
        let before = stored(&tc).await;
        let refused = lifecycle::stop(&tc, &caller, &ids).await;
        assert_eq!(
            refused,
            Err(CloudError::NotPermitted(format!(
                "The instance '{ID}' may not be stopped. Modify its 'disableApiStop' instance attribute and try again."
            )))
        );
        assert_eq!(
            stored(&tc).await,
            before,
            "a refused stop changed the instance"
        );
        modify(&tc, &caller, ID, Modification::DisableApiStop(false))
            .await
            .expect("clear");
        lifecycle::stop(&tc, &caller, &ids).await.expect("stop");
        assert_eq!(stored(&tc).await.state, InstanceState::Stopping);
    }

    #[tokio::test]
    async fn metadata_options_change_the_nodes_spec() {
        let tc = TestCloud::new().await;
        let caller = tc.principal("alice").await;
        InstanceBuilder::new(ID, caller.account_id())
            .store(&tc)
            .await;
        let generation = stored(&tc).await.record.generation;
        let change = MetadataOptionsChange {
            http_tokens: Some(Tokens::Required),
            http_put_response_hop_limit: Some(3),
            http_endpoint_enabled: None,
        };
        let options = modify_metadata_options(&tc, &caller, ID, change)
            .await
            .expect("modify");
        assert_eq!(
            options,
            MetadataOptions {
                http_tokens: Tokens::Required,
                http_put_response_hop_limit: 3,
                http_endpoint_enabled: true,
            }
        );
        let instance = stored(&tc).await;
        assert_eq!(instance.record.generation, generation + 1);
        assert_eq!(
            instance
                .node_spec()
                .metadata
                .options
                .http_put_response_hop_limit,
            3
        );
        // The same options again: nothing for the node to do.
        modify_metadata_options(&tc, &caller, ID, change)
            .await
            .expect("again");
        assert_eq!(stored(&tc).await.record.generation, generation + 1);
        assert_eq!(
            credit_specifications(&tc, &caller, &[ID.to_owned()])
                .await
                .expect("credits"),
            [(ID.to_owned(), "standard")]
        );
        assert_eq!(password_data(&tc, &caller, ID).await.expect("password"), "");
        let other = tc.principal("bob").await;
        assert_eq!(
            password_data(&tc, &other, ID).await,
            Err(CloudError::instances_not_found(&[ID]))
        );
    }

    #[tokio::test]
    async fn protection_and_shutdown_behaviour_change_any_time() {
        let tc = TestCloud::new().await;
        let caller = tc.principal("alice").await;
        InstanceBuilder::new(ID, caller.account_id())
            .store(&tc)
            .await;
        let read = |attribute| describe(&tc, &caller, ID, attribute);
        assert_eq!(
            read(Attribute::DisableApiTermination).await.expect("read"),
            AttributeValue::Value(Some("false".into()))
        );
        modify(&tc, &caller, ID, Modification::DisableApiTermination(true))
            .await
            .expect("protect");
        modify(
            &tc,
            &caller,
            ID,
            Modification::ShutdownBehavior(ShutdownBehavior::Terminate),
        )
        .await
        .expect("behaviour");
        assert_eq!(
            read(Attribute::DisableApiTermination).await.expect("read"),
            AttributeValue::Value(Some("true".into()))
        );
        assert_eq!(
            read(Attribute::ShutdownBehavior).await.expect("read"),
            AttributeValue::Value(Some("terminate".into()))
        );
        assert_eq!(
            read(Attribute::GroupSet).await.expect("read"),
            AttributeValue::Groups(vec!["default".into()])
        );
        let other = tc.principal("bob").await;
        assert_eq!(
            describe(&tc, &other, ID, Attribute::UserData).await,
            Err(CloudError::instances_not_found(&[ID]))
        );
    }
}
