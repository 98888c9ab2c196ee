//! DescribeInstanceAttribute and ModifyInstanceAttribute: user data,
//! instance type and kernel/ramdisk (changeable while stopped),
//! disableApiTermination and instanceInitiatedShutdownBehavior (any time).

use crate::query::{QueryError, QueryParams};
use mallee_cloud::instances::model::{Instance, InstanceState, ShutdownBehavior};

use super::instances::{load_owned, validate_instance_id, validate_user_data};
use super::{Ec2Context, Ec2Error};

/// The attributes mallee keeps, by EC2 name.
const ATTRIBUTES: &[&str] = &[
    "instanceType",
    "kernel",
    "ramdisk",
    "userData",
    "disableApiTermination",
    "instanceInitiatedShutdownBehavior",
    "rootDeviceName",
    "blockDeviceMapping",
    "groupSet",
    "ebsOptimized",
    "sourceDestCheck",
];

fn check_attribute(name: &str) -> Result<(), Ec2Error> {
    if ATTRIBUTES.contains(&name) {
        Ok(())
    } else {
        Err(Ec2Error::InvalidParameterValue(format!(
            "Value ({name}) for parameter attribute is invalid. Unknown attribute."
        )))
    }
}

/// DescribeInstanceAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeInstanceAttribute {
    id: String,
    attribute: String,
}

impl DescribeInstanceAttribute {
    /// Reads `InstanceId`, `Attribute`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let id = params.required_non_empty("InstanceId")?.to_owned();
        validate_instance_id(&id)?;
        let attribute = params.required_non_empty("Attribute")?.to_owned();
        check_attribute(&attribute)?;
        Ok(Self { id, attribute })
    }

    /// One attribute of one instance.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let instances = load_owned(ctx, std::slice::from_ref(&self.id)).await?;
        let i = &instances[0];
        let d = &i.details;
        let md = &d.spec.metadata;
        Ok(ctx.respond("DescribeInstanceAttribute", |w| {
            w.text("instanceId", i.id());
            let value = |w: &mut crate::xml::XmlWriter, name: &str, v: Option<&str>| {
                w.elem(name, |w| {
                    if let Some(v) = v {
                        w.text("value", v);
                    }
                });
            };
            match self.attribute.as_str() {
                "instanceType" => value(w, "instanceType", Some(&d.spec.instance_type)),
                "kernel" => value(w, "kernel", md.kernel_id.as_deref()),
                "ramdisk" => value(w, "ramdisk", md.ramdisk_id.as_deref()),
                "userData" => value(w, "userData", md.user_data_base64.as_deref()),
                "disableApiTermination" => value(
                    w,
                    "disableApiTermination",
                    Some(if d.disable_api_termination {
                        "true"
                    } else {
                        "false"
                    }),
                ),
                "instanceInitiatedShutdownBehavior" => value(
                    w,
                    "instanceInitiatedShutdownBehavior",
                    Some(d.shutdown_behavior.name()),
                ),
                "rootDeviceName" => value(w, "rootDeviceName", Some(&md.root_device_name)),
                "blockDeviceMapping" => w.elem("blockDeviceMapping", |_| {}),
                "groupSet" => w.items("groupSet", &md.security_groups, |w, g| {
                    w.text("groupName", g);
                }),
                "ebsOptimized" => value(w, "ebsOptimized", Some("false")),
                _ => value(w, "sourceDestCheck", Some("true")),
            }
        }))
    }
}

/// One change ModifyInstanceAttribute makes.
#[derive(Debug, Clone, PartialEq)]
enum Modification {
    InstanceType(String),
    UserData(String),
    Kernel(String),
    Ramdisk(String),
    DisableApiTermination(bool),
    ShutdownBehavior(ShutdownBehavior),
    /// `GroupId.N`: the instance's security groups, replaced while it runs.
    Groups(Vec<String>),
}

/// ModifyInstanceAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct ModifyInstanceAttribute {
    id: String,
    modification: Modification,
}

fn bool_value(v: &str) -> Result<bool, Ec2Error> {
    match v {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Ec2Error::InvalidParameterValue(format!(
            "Value ({v}) for parameter value is invalid. Expected 'true' or 'false'."
        ))),
    }
}

impl ModifyInstanceAttribute {
    /// Reads `InstanceId` and either `Attribute` + `Value` or one of
    /// `InstanceType.Value`, `UserData.Value`, `Kernel.Value`,
    /// `Ramdisk.Value`, `DisableApiTermination.Value`,
    /// `InstanceInitiatedShutdownBehavior.Value`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let id = params.required_non_empty("InstanceId")?.to_owned();
        validate_instance_id(&id)?;
        let structured = [
            ("InstanceType.Value", "instanceType"),
            ("UserData.Value", "userData"),
            ("Kernel.Value", "kernel"),
            ("Ramdisk.Value", "ramdisk"),
            ("DisableApiTermination.Value", "disableApiTermination"),
            (
                "InstanceInitiatedShutdownBehavior.Value",
                "instanceInitiatedShutdownBehavior",
            ),
        ];
        let group_ids = params.list("GroupId")?;
        if !group_ids.is_empty() {
            if structured.iter().any(|(p, _)| params.get(p).is_some())
                || params.get("Attribute").is_some()
            {
                return Err(Ec2Error::InvalidParameterCombination(
                    "Only one attribute can be modified at a time".into(),
                ));
            }
            return Ok(Self {
                id,
                modification: Modification::Groups(group_ids),
            });
        }
        let mut given: Vec<(&str, &str)> = structured
            .iter()
            .filter_map(|(param, attr)| params.get(param).map(|v| (*attr, v)))
            .collect();
        if let Some(attribute) = params.get("Attribute") {
            check_attribute(attribute)?;
            let value = params.required("Value")?;
            given.push((attribute, value));
        }
        let (attribute, value) = match given.as_slice() {
            [one] => *one,
            [] => return Err(QueryError::Missing("Attribute".into()).into()),
            _ => {
                return Err(Ec2Error::InvalidParameterCombination(
                    "Only one attribute can be modified at a time".into(),
                ));
            }
        };
        let modification = match attribute {
            "instanceType" => Modification::InstanceType(value.to_owned()),
            "userData" => {
                if !value.is_empty() {
                    validate_user_data(value)?;
                }
                Modification::UserData(value.trim().to_owned())
            }
            "kernel" => Modification::Kernel(value.to_owned()),
            "ramdisk" => Modification::Ramdisk(value.to_owned()),
            "disableApiTermination" => Modification::DisableApiTermination(bool_value(value)?),
            "instanceInitiatedShutdownBehavior" => Modification::ShutdownBehavior(
                ShutdownBehavior::from_name(value).ok_or_else(|| {
                    Ec2Error::InvalidParameterValue(format!(
                        "Value ({value}) for parameter instanceInitiatedShutdownBehavior is invalid. Valid values: stop, terminate"
                    ))
                })?,
            ),
            other => {
                return Err(Ec2Error::refused(
                    "UnsupportedOperation",
                    format!("The attribute '{other}' cannot be modified."),
                ));
            }
        };
        Ok(Self { id, modification })
    }

    /// Applies the change.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let needs_stopped = matches!(
            self.modification,
            Modification::InstanceType(_)
                | Modification::UserData(_)
                | Modification::Kernel(_)
                | Modification::Ramdisk(_)
        );
        let instance = load_owned(ctx, std::slice::from_ref(&self.id))
            .await?
            .remove(0);
        if needs_stopped && instance.state != InstanceState::Stopped {
            return Err(Ec2Error::refused(
                "IncorrectInstanceState",
                format!("The instance '{}' is not in the 'stopped' state.", self.id),
            ));
        }
        // Resolve what the change needs before the compare-and-set loop.
        let new = match &self.modification {
            Modification::InstanceType(name) => {
                let t = ctx.cloud.instance_types.get(name).ok_or_else(|| {
                    Ec2Error::InvalidParameterValue(format!(
                        "Invalid value '{name}' for InstanceType."
                    ))
                })?;
                Some((
                    t.name.clone(),
                    t.vcpus,
                    u64::from(t.memory_mib),
                    u64::from(t.disk_gib),
                ))
            }
            _ => None,
        };
        let boot = match &self.modification {
            Modification::Kernel(k) => Some(
                mallee_cloud::images::resolve_for_launch(
                    ctx.cloud,
                    &ctx.principal.account.account_id,
                    &instance.details.spec.metadata.ami_id,
                    Some(k),
                    instance.details.spec.metadata.ramdisk_id.as_deref(),
                )
                .await?,
            ),
            Modification::Ramdisk(r) => Some(
                mallee_cloud::images::resolve_for_launch(
                    ctx.cloud,
                    &ctx.principal.account.account_id,
                    &instance.details.spec.metadata.ami_id,
                    instance.details.spec.metadata.kernel_id.as_deref(),
                    Some(r),
                )
                .await?,
            ),
            _ => None,
        };
        let groups = match &self.modification {
            Modification::Groups(ids) => Some(
                mallee_cloud::security_groups::resolve_launch_groups(
                    ctx.cloud,
                    &ctx.principal.account.account_id,
                    &instance.details.vpc_id,
                    &[],
                    ids,
                )
                .await?,
            ),
            _ => None,
        };
        let modification = self.modification.clone();
        let new_groups = groups.clone();
        let apply = move |i: &mut Instance| {
            let d = &mut i.details;
            match &modification {
                Modification::InstanceType(_) => {
                    if let Some((name, vcpus, memory, disk)) = &new {
                        d.spec.instance_type.clone_from(name);
                        d.spec.metadata.instance_type.clone_from(name);
                        d.spec.vcpus = *vcpus;
                        d.spec.memory_mib = *memory;
                        // The root overlay never shrinks.
                        d.spec.disk_gib = d.spec.disk_gib.max(*disk);
                    }
                }
                Modification::UserData(data) => {
                    d.spec.metadata.user_data_base64 = (!data.is_empty()).then(|| data.clone());
                }
                Modification::Kernel(_) | Modification::Ramdisk(_) => {
                    if let Some(image) = &boot {
                        d.spec.image = match &d.spec.image {
                            mallee_node_api::BootImage::Ebs { root_volume_id, .. } => {
                                image.boot_from(root_volume_id)
                            }
                            _ => image.boot.clone(),
                        };
                        d.spec.metadata.kernel_id.clone_from(&image.kernel_id);
                        d.spec.metadata.ramdisk_id.clone_from(&image.ramdisk_id);
                    }
                }
                Modification::Groups(_) => {
                    if let Some(groups) = &new_groups {
                        d.security_group_ids = groups.iter().map(|(id, _)| id.clone()).collect();
                        d.spec.metadata.security_groups =
                            groups.iter().map(|(_, name)| name.clone()).collect();
                    }
                }
                Modification::DisableApiTermination(v) => d.disable_api_termination = *v,
                Modification::ShutdownBehavior(b) => d.shutdown_behavior = *b,
            }
        };
        mallee_cloud::instances::lifecycle::change(
            ctx.cloud,
            ctx.principal,
            std::slice::from_ref(&self.id),
            |i, _| {
                apply(i);
                Ok(true)
            },
        )
        .await?;
        if let Some(groups) = &groups {
            let ids: Vec<String> = groups.iter().map(|(id, _)| id.clone()).collect();
            ctx.cloud.store.set_instance_groups(&self.id, &ids).await?;
            mallee_cloud::security_groups::firewall_changed(ctx.cloud);
        }
        Ok(ctx.respond_true("ModifyInstanceAttribute"))
    }
}
