//! Launch parameters on the wire, as RunInstances takes them and as a
//! launch template's `LaunchTemplateData` takes and shows them: one
//! reader for both (the names are EC2's, `RamdiskId` vs `RamDiskId`
//! aside) and the writer of `launchTemplateData`. What they mean is
//! `mallee_cloud::launch_templates::data`.

use mallee_cloud::instances::model::ShutdownBehavior;
use mallee_cloud::instances::spec::Tokens;
use mallee_cloud::launch_templates::data::{
    BlockDeviceRequest, InterfaceRequest, LaunchData, ProfileRef, TagSpecification,
};
use mallee_store::TagPair;

use crate::query::QueryParams;
use crate::xml::XmlWriter;

use super::tags::parse_tag_list;
use super::{Ec2Error, block_devices, instances};

/// Which request the parameters come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// RunInstances' own parameters.
    RunInstances,
    /// A template's `LaunchTemplateData.*`.
    Template,
}

fn invalid(message: impl Into<String>) -> Ec2Error {
    Ec2Error::InvalidParameterValue(message.into())
}

fn non_empty(params: &QueryParams, name: &str) -> Option<String> {
    params
        .get(name)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

/// Reads `TagSpecification.N` for the resource types a launch tags, in
/// the order given (one entry per type; tags of a type given twice join).
fn parse_tag_specs(params: &QueryParams) -> Result<Vec<TagSpecification>, Ec2Error> {
    let mut specs: Vec<TagSpecification> = Vec::new();
    for spec in params.structs("TagSpecification")? {
        let given = spec.required_non_empty("ResourceType")?;
        if !mallee_cloud::launch_templates::data::LAUNCH_TAGGED_TYPES.contains(&given) {
            return Err(invalid(format!(
                "'{given}' is not a valid taggable resource type for this operation."
            )));
        }
        let tags = parse_tag_list(&spec)?;
        match specs.iter_mut().find(|s| s.resource_type == given) {
            Some(existing) => {
                for tag in tags {
                    if existing.tags.iter().any(|t: &TagPair| t.key == tag.key) {
                        return Err(invalid(format!(
                            "Duplicate tag key '{}' specified.",
                            tag.key
                        )));
                    }
                    existing.tags.push(tag);
                }
            }
            None => specs.push(TagSpecification {
                resource_type: given.to_owned(),
                tags,
            }),
        }
    }
    Ok(specs)
}

fn parse_interfaces(params: &QueryParams) -> Result<Vec<InterfaceRequest>, Ec2Error> {
    params
        .structs("NetworkInterface")?
        .into_iter()
        .map(|i| {
            Ok(InterfaceRequest {
                device_index: i.int("DeviceIndex")?,
                subnet_id: non_empty(&i, "SubnetId"),
                associate_public_ip: i.bool("AssociatePublicIpAddress")?,
                security_group_ids: i.list("SecurityGroupId")?,
                delete_on_termination: i.bool("DeleteOnTermination")?,
                description: i.get("Description").map(str::to_owned),
            })
        })
        .collect()
}

fn parse_block_devices(params: &QueryParams) -> Result<Vec<BlockDeviceRequest>, Ec2Error> {
    let mappings = block_devices::parse(params)?;
    let entries = params.structs("BlockDeviceMapping")?;
    mappings
        .into_iter()
        .zip(entries)
        .map(|(mapping, entry)| {
            Ok(BlockDeviceRequest {
                mapping,
                delete_on_termination_given: entry.get("Ebs.DeleteOnTermination").is_some(),
                encrypted: entry.bool("Ebs.Encrypted")?,
            })
        })
        .collect()
}

/// Reads launch parameters from `params` (a request, or its
/// `LaunchTemplateData` member).
pub fn parse(params: &QueryParams, source: Source) -> Result<LaunchData, Ec2Error> {
    let user_data = match params.get("UserData") {
        None | Some("") => None,
        Some(data) => {
            instances::validate_user_data(data)?;
            Some(data.trim().to_owned())
        }
    };
    let shutdown_behavior = match params.get("InstanceInitiatedShutdownBehavior") {
        None => None,
        Some(v) => Some(ShutdownBehavior::from_name(v).ok_or_else(|| {
            invalid(format!(
                "Value ({v}) for parameter instanceInitiatedShutdownBehavior is invalid. Valid values: stop, terminate"
            ))
        })?),
    };
    let metadata = params.member("MetadataOptions");
    let metadata_options = if metadata.is_empty() {
        None
    } else {
        Some(instances::parse_metadata_change(
            params,
            "MetadataOptions.",
        )?)
    };
    let iam_instance_profile = match (
        non_empty(params, "IamInstanceProfile.Arn"),
        non_empty(params, "IamInstanceProfile.Name"),
    ) {
        (Some(_), Some(_)) => {
            return Err(Ec2Error::InvalidParameterCombination(
                "The parameter 'iamInstanceProfile.name' may not be used in combination with 'iamInstanceProfile.arn'".into(),
            ));
        }
        (Some(arn), None) => Some(ProfileRef::Arn(arn)),
        (None, Some(name)) => Some(ProfileRef::Name(name)),
        (None, None) => None,
    };
    let ramdisk = match source {
        Source::RunInstances => "RamdiskId",
        Source::Template => "RamDiskId",
    };
    Ok(LaunchData {
        image_id: non_empty(params, "ImageId"),
        instance_type: non_empty(params, "InstanceType"),
        key_name: params.get("KeyName").map(str::to_owned),
        user_data,
        kernel_id: non_empty(params, "KernelId"),
        ramdisk_id: non_empty(params, ramdisk),
        security_group_ids: params.list("SecurityGroupId")?,
        security_groups: params.list("SecurityGroup")?,
        zone: non_empty(params, "Placement.AvailabilityZone"),
        subnet_id: match source {
            Source::RunInstances => non_empty(params, "SubnetId"),
            Source::Template => None,
        },
        disable_api_termination: params.bool("DisableApiTermination")?,
        disable_api_stop: params.bool("DisableApiStop")?,
        shutdown_behavior,
        metadata_options,
        iam_instance_profile,
        network_interfaces: parse_interfaces(params)?,
        block_device_mappings: parse_block_devices(params)?,
        tag_specifications: parse_tag_specs(params)?,
    })
}

/// Writes `launchTemplateData`: exactly the parameters the version holds.
pub fn write(w: &mut XmlWriter, data: &LaunchData) {
    w.elem("launchTemplateData", |w| {
        w.opt_text("kernelId", data.kernel_id.as_deref());
        if let Some(profile) = &data.iam_instance_profile {
            w.elem("iamInstanceProfile", |w| match profile {
                ProfileRef::Arn(arn) => w.text("arn", arn),
                ProfileRef::Name(name) => w.text("name", name),
            });
        }
        if !data.block_device_mappings.is_empty() {
            w.items(
                "blockDeviceMappingSet",
                &data.block_device_mappings,
                |w, b| {
                    let m = &b.mapping;
                    w.text("deviceName", &m.device_name);
                    if let Some(v) = &m.virtual_name {
                        w.text("virtualName", v);
                    } else if m.no_device {
                        w.text("noDevice", "");
                    } else {
                        w.elem("ebs", |w| {
                            w.opt_text("encrypted", b.encrypted);
                            if b.delete_on_termination_given {
                                w.text("deleteOnTermination", m.delete_on_termination);
                            }
                            w.opt_text("snapshotId", m.snapshot_id.as_deref());
                            w.opt_text("volumeSize", m.volume_size_gib);
                            w.opt_text("volumeType", m.volume_type.as_deref());
                        });
                    }
                },
            );
        }
        if !data.network_interfaces.is_empty() {
            w.items("networkInterfaceSet", &data.network_interfaces, |w, i| {
                w.opt_text("associatePublicIpAddress", i.associate_public_ip);
                w.opt_text("deleteOnTermination", i.delete_on_termination);
                w.opt_text("description", i.description.as_deref());
                w.opt_text("deviceIndex", i.device_index);
                if !i.security_group_ids.is_empty() {
                    w.elem("groupSet", |w| {
                        for g in &i.security_group_ids {
                            w.text("groupId", g);
                        }
                    });
                }
                w.opt_text("subnetId", i.subnet_id.as_deref());
            });
        }
        w.opt_text("imageId", data.image_id.as_deref());
        w.opt_text("instanceType", data.instance_type.as_deref());
        w.opt_text("keyName", data.key_name.as_deref());
        if let Some(zone) = &data.zone {
            w.elem("placement", |w| w.text("availabilityZone", zone));
        }
        w.opt_text("ramDiskId", data.ramdisk_id.as_deref());
        w.opt_text("disableApiTermination", data.disable_api_termination);
        w.opt_text(
            "instanceInitiatedShutdownBehavior",
            data.shutdown_behavior.map(ShutdownBehavior::name),
        );
        w.opt_text("userData", data.user_data.as_deref());
        if !data.tag_specifications.is_empty() {
            w.items(
                "tagSpecificationSet",
                &data.tag_specifications,
                |w, spec| {
                    w.text("resourceType", &spec.resource_type);
                    w.items("tagSet", &spec.tags, |w, t| {
                        w.text("key", &t.key);
                        w.text("value", &t.value);
                    });
                },
            );
        }
        if !data.security_group_ids.is_empty() {
            w.items("securityGroupIdSet", &data.security_group_ids, |w, g| {
                w.text_content(g);
            });
        }
        if !data.security_groups.is_empty() {
            w.items("securityGroupSet", &data.security_groups, |w, g| {
                w.text_content(g);
            });
        }
        if let Some(m) = &data.metadata_options {
            w.elem("metadataOptions", |w| {
                w.opt_text(
                    "httpTokens",
                    m.http_tokens.map(|t| match t {
                        Tokens::Optional => "optional",
                        Tokens::Required => "required",
                    }),
                );
                w.opt_text("httpPutResponseHopLimit", m.http_put_response_hop_limit);
                w.opt_text(
                    "httpEndpoint",
                    m.http_endpoint_enabled
                        .map(|e| if e { "enabled" } else { "disabled" }),
                );
            });
        }
        w.opt_text("disableApiStop", data.disable_api_stop);
    });
}
