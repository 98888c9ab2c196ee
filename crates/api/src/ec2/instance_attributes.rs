//! DescribeInstanceAttribute and ModifyInstanceAttribute: parsing and XML.
//! What may change when is `mallee_cloud::instances::attributes`.

use crate::query::{QueryError, QueryParams};
use mallee_cloud::instances::attributes::{self, Attribute, AttributeValue, Modification};
use mallee_cloud::instances::model::ShutdownBehavior;
use mallee_cloud::volumes::modify::set_delete_on_termination;

use super::instances::{validate_instance_id, validate_user_data};
use super::{Ec2Context, Ec2Error};

/// The attributes mallee keeps, by EC2 name.
const ATTRIBUTES: &[(&str, Attribute)] = &[
    ("instanceType", Attribute::InstanceType),
    ("kernel", Attribute::Kernel),
    ("ramdisk", Attribute::Ramdisk),
    ("userData", Attribute::UserData),
    ("disableApiTermination", Attribute::DisableApiTermination),
    ("disableApiStop", Attribute::DisableApiStop),
    (
        "instanceInitiatedShutdownBehavior",
        Attribute::ShutdownBehavior,
    ),
    ("rootDeviceName", Attribute::RootDeviceName),
    ("blockDeviceMapping", Attribute::BlockDeviceMapping),
    ("groupSet", Attribute::GroupSet),
    ("ebsOptimized", Attribute::EbsOptimized),
    ("sourceDestCheck", Attribute::SourceDestCheck),
];

fn check_attribute(name: &str) -> Result<(&'static str, Attribute), Ec2Error> {
    ATTRIBUTES
        .iter()
        .find(|(n, _)| *n == name)
        .copied()
        .ok_or_else(|| {
            Ec2Error::InvalidParameterValue(format!(
                "Value ({name}) for parameter attribute is invalid. Unknown attribute."
            ))
        })
}

/// DescribeInstanceAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeInstanceAttribute {
    id: String,
    /// EC2's name of the attribute (the element it is written in).
    name: &'static str,
    attribute: Attribute,
}

impl DescribeInstanceAttribute {
    /// Reads `InstanceId`, `Attribute`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let id = params.required_non_empty("InstanceId")?.to_owned();
        validate_instance_id(&id)?;
        let (name, attribute) = check_attribute(params.required_non_empty("Attribute")?)?;
        Ok(Self {
            id,
            name,
            attribute,
        })
    }

    /// One attribute of one instance.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let value =
            attributes::describe(ctx.cloud, ctx.principal, &self.id, self.attribute).await?;
        Ok(ctx.respond("DescribeInstanceAttribute", |w| {
            w.text("instanceId", &self.id);
            match &value {
                AttributeValue::Value(v) => w.elem(self.name, |w| {
                    if let Some(v) = v {
                        w.text("value", v);
                    }
                }),
                AttributeValue::NoDevices => w.elem(self.name, |_| {}),
                AttributeValue::Groups(groups) => w.items(self.name, groups, |w, g| {
                    w.text("groupName", g);
                }),
            }
        }))
    }
}

/// ModifyInstanceAttribute input.
#[derive(Debug, Clone, PartialEq)]
pub struct ModifyInstanceAttribute {
    id: String,
    modification: Change,
}

/// What ModifyInstanceAttribute changes: an attribute of the instance, or
/// (`BlockDeviceMapping.N`) whether attached volumes go with it.
#[derive(Debug, Clone, PartialEq)]
enum Change {
    Attribute(Modification),
    DeleteOnTermination(Vec<(String, bool)>),
}

/// `BlockDeviceMapping.N.DeviceName` with `.Ebs.DeleteOnTermination`, the
/// only part of a mapping that can change on a running instance.
fn parse_mappings(params: &QueryParams) -> Result<Vec<(String, bool)>, Ec2Error> {
    let mut mappings = Vec::new();
    for n in 1.. {
        let prefix = format!("BlockDeviceMapping.{n}");
        let Some(device) = params.get(&format!("{prefix}.DeviceName")) else {
            break;
        };
        let delete = params
            .bool(&format!("{prefix}.Ebs.DeleteOnTermination"))?
            .ok_or_else(|| QueryError::Missing(format!("{prefix}.Ebs.DeleteOnTermination")))?;
        mappings.push((device.to_owned(), delete));
    }
    Ok(mappings)
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
    /// `Ramdisk.Value`, `DisableApiTermination.Value`, `DisableApiStop.Value`,
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
            ("DisableApiStop.Value", "disableApiStop"),
            (
                "InstanceInitiatedShutdownBehavior.Value",
                "instanceInitiatedShutdownBehavior",
            ),
        ];
        let mappings = parse_mappings(params)?;
        if !mappings.is_empty() {
            if structured.iter().any(|(p, _)| params.get(p).is_some())
                || params.get("Attribute").is_some()
                || !params.list("GroupId")?.is_empty()
            {
                return Err(Ec2Error::InvalidParameterCombination(
                    "Only one attribute can be modified at a time".into(),
                ));
            }
            return Ok(Self {
                id,
                modification: Change::DeleteOnTermination(mappings),
            });
        }
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
                modification: Change::Attribute(Modification::Groups(group_ids)),
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
            "disableApiStop" => Modification::DisableApiStop(bool_value(value)?),
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
        Ok(Self {
            id,
            modification: Change::Attribute(modification),
        })
    }

    /// Applies the change.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        match self.modification {
            Change::Attribute(m) => {
                attributes::modify(ctx.cloud, ctx.principal, &self.id, m).await?
            }
            Change::DeleteOnTermination(mappings) => {
                for (device, delete) in mappings {
                    set_delete_on_termination(ctx.cloud, ctx.principal, &self.id, &device, delete)
                        .await?;
                }
            }
        }
        Ok(ctx.respond_true("ModifyInstanceAttribute"))
    }
}
