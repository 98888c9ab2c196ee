//! What to launch, as a launch template version keeps it and as a
//! RunInstances request gives it: [`LaunchData`], every field optional.
//! A launch merges the request over the template ([`LaunchData::over`])
//! and turns the result into the launch request ([`LaunchData::into_run`]),
//! so a request without a template goes through the same checks.
//!
//! Only what was given is kept, so DescribeLaunchTemplateVersions gives
//! back exactly what CreateLaunchTemplate got: Ansible's
//! `ec2_launch_template` compares the two to decide whether it changed.

use mallee_store::{ImageBlockDevice, TagPair};
use serde::{Deserialize, Serialize};

use crate::CloudError;
use crate::instances::attributes::MetadataOptionsChange;
use crate::instances::launch::RunInstances;
use crate::instances::model::ShutdownBehavior;
use crate::instances::spec::MetadataOptions;

/// The instance type a launch gets when neither the request nor its
/// template names one (EC2's historical default).
pub const DEFAULT_INSTANCE_TYPE: &str = "m1.small";

/// Launch parameters, each `None` (or empty) when not given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LaunchData {
    /// `ImageId`.
    pub image_id: Option<String>,
    /// `InstanceType`.
    pub instance_type: Option<String>,
    /// `KeyName`.
    pub key_name: Option<String>,
    /// `UserData` (base64, checked by the protocol layer).
    pub user_data: Option<String>,
    /// `KernelId`.
    pub kernel_id: Option<String>,
    /// `RamdiskId` (`RamDiskId` in a template).
    pub ramdisk_id: Option<String>,
    /// `SecurityGroupId.N`.
    pub security_group_ids: Vec<String>,
    /// `SecurityGroup.N` (names).
    pub security_groups: Vec<String>,
    /// `Placement.AvailabilityZone`.
    pub zone: Option<String>,
    /// `SubnetId` (RunInstances only; a template names its subnet in an
    /// interface).
    pub subnet_id: Option<String>,
    /// `DisableApiTermination`.
    pub disable_api_termination: Option<bool>,
    /// `DisableApiStop`.
    pub disable_api_stop: Option<bool>,
    /// `InstanceInitiatedShutdownBehavior`.
    pub shutdown_behavior: Option<ShutdownBehavior>,
    /// `MetadataOptions.*`, only the fields given.
    pub metadata_options: Option<MetadataOptionsChange>,
    /// `IamInstanceProfile.Arn` / `.Name`.
    pub iam_instance_profile: Option<ProfileRef>,
    /// `NetworkInterface.N`.
    pub network_interfaces: Vec<InterfaceRequest>,
    /// `BlockDeviceMapping.N`.
    pub block_device_mappings: Vec<BlockDeviceRequest>,
    /// `TagSpecification.N` for the resources a launch creates.
    pub tag_specifications: Vec<TagSpecification>,
}

/// An instance profile named by ARN or by name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ProfileRef {
    /// `IamInstanceProfile.Arn`.
    Arn(String),
    /// `IamInstanceProfile.Name`.
    Name(String),
}

impl ProfileRef {
    fn value(&self) -> &str {
        match self {
            Self::Arn(v) | Self::Name(v) => v,
        }
    }
}

/// One `NetworkInterface.N`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct InterfaceRequest {
    /// `DeviceIndex`.
    pub device_index: Option<i64>,
    /// `SubnetId`.
    pub subnet_id: Option<String>,
    /// `AssociatePublicIpAddress`.
    pub associate_public_ip: Option<bool>,
    /// `SecurityGroupId.N` (`Groups` in the SDKs).
    pub security_group_ids: Vec<String>,
    /// `DeleteOnTermination`.
    pub delete_on_termination: Option<bool>,
    /// `Description`.
    pub description: Option<String>,
}

/// One `BlockDeviceMapping.N`, checked for form by the protocol layer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockDeviceRequest {
    /// The mapping a launch applies.
    pub mapping: ImageBlockDevice,
    /// Whether `Ebs.DeleteOnTermination` was given (else the mapping holds
    /// the default, `true`).
    pub delete_on_termination_given: bool,
    /// `Ebs.Encrypted`, as given.
    pub encrypted: Option<bool>,
}

/// One `TagSpecification.N`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagSpecification {
    /// `instance`, `volume` or `network-interface`.
    pub resource_type: String,
    /// Its tags.
    pub tags: Vec<TagPair>,
}

/// The resource types a launch tags.
pub const LAUNCH_TAGGED_TYPES: [&str; 3] = ["instance", "volume", "network-interface"];

impl LaunchData {
    /// This request's values over `template`'s: a field the request gives
    /// wins; tags are merged per resource type, the request's value
    /// winning for a key both give.
    pub fn over(self, template: LaunchData) -> LaunchData {
        fn list<T>(mine: Vec<T>, theirs: Vec<T>) -> Vec<T> {
            if mine.is_empty() { theirs } else { mine }
        }
        let mut tags = template.tag_specifications;
        for spec in self.tag_specifications {
            match tags
                .iter_mut()
                .find(|t| t.resource_type == spec.resource_type)
            {
                Some(existing) => {
                    for tag in spec.tags {
                        match existing.tags.iter_mut().find(|t| t.key == tag.key) {
                            Some(t) => t.value = tag.value,
                            None => existing.tags.push(tag),
                        }
                    }
                }
                None => tags.push(spec),
            }
        }
        let metadata_options = match (self.metadata_options, template.metadata_options) {
            (Some(mine), Some(theirs)) => Some(MetadataOptionsChange {
                http_tokens: mine.http_tokens.or(theirs.http_tokens),
                http_put_response_hop_limit: mine
                    .http_put_response_hop_limit
                    .or(theirs.http_put_response_hop_limit),
                http_endpoint_enabled: mine.http_endpoint_enabled.or(theirs.http_endpoint_enabled),
            }),
            (mine, theirs) => mine.or(theirs),
        };
        LaunchData {
            image_id: self.image_id.or(template.image_id),
            instance_type: self.instance_type.or(template.instance_type),
            key_name: self.key_name.or(template.key_name),
            user_data: self.user_data.or(template.user_data),
            kernel_id: self.kernel_id.or(template.kernel_id),
            ramdisk_id: self.ramdisk_id.or(template.ramdisk_id),
            security_group_ids: list(self.security_group_ids, template.security_group_ids),
            security_groups: list(self.security_groups, template.security_groups),
            zone: self.zone.or(template.zone),
            subnet_id: self.subnet_id.or(template.subnet_id),
            disable_api_termination: self
                .disable_api_termination
                .or(template.disable_api_termination),
            disable_api_stop: self.disable_api_stop.or(template.disable_api_stop),
            shutdown_behavior: self.shutdown_behavior.or(template.shutdown_behavior),
            metadata_options,
            iam_instance_profile: self.iam_instance_profile.or(template.iam_instance_profile),
            network_interfaces: list(self.network_interfaces, template.network_interfaces),
            block_device_mappings: list(self.block_device_mappings, template.block_device_mappings),
            tag_specifications: tags,
        }
    }

    /// The tags given for `resource_type`.
    pub fn tags_of(&self, resource_type: &str) -> Vec<TagPair> {
        self.tag_specifications
            .iter()
            .filter(|s| s.resource_type == resource_type)
            .flat_map(|s| s.tags.iter().cloned())
            .collect()
    }

    /// The launch request these parameters make: `ImageId` is required,
    /// one network interface at most (device 0), whose subnet may not
    /// differ from `SubnetId`.
    pub fn into_run(
        self,
        min_count: usize,
        max_count: usize,
        client_token: Option<String>,
    ) -> Result<RunInstances, CloudError> {
        let image_id = self
            .image_id
            .clone()
            .filter(|i| !i.is_empty())
            .ok_or_else(|| {
                CloudError::Missing("The request must contain the parameter ImageId".into())
            })?;
        if self.network_interfaces.len() > 1 {
            return Err(CloudError::Unsupported(
                "Only one network interface per instance is supported.".into(),
            ));
        }
        let interface = self.network_interfaces.first().cloned().unwrap_or_default();
        if interface.device_index.is_some_and(|d| d != 0) {
            return Err(CloudError::invalid(
                "The network interface must have DeviceIndex 0.",
            ));
        }
        let mut subnet_id = self.subnet_id.clone();
        if let Some(s) = &interface.subnet_id {
            if subnet_id.as_deref().is_some_and(|top| top != s) {
                return Err(CloudError::InvalidCombination(
                    "Network interfaces and an instance-level subnet ID may not be specified on the same request".into(),
                ));
            }
            subnet_id = Some(s.clone());
        }
        let mut security_group_ids = self.security_group_ids.clone();
        security_group_ids.extend(interface.security_group_ids.iter().cloned());
        let [tags, volume_tags, interface_tags] = LAUNCH_TAGGED_TYPES.map(|t| self.tags_of(t));
        Ok(RunInstances {
            image_id,
            min_count,
            max_count,
            instance_type: self
                .instance_type
                .unwrap_or_else(|| DEFAULT_INSTANCE_TYPE.to_owned()),
            key_name: self.key_name,
            user_data: self.user_data,
            security_groups: self.security_groups,
            security_group_ids,
            zone: self.zone.filter(|z| !z.is_empty()),
            kernel_id: self.kernel_id,
            ramdisk_id: self.ramdisk_id,
            client_token,
            shutdown_behavior: self.shutdown_behavior.unwrap_or(ShutdownBehavior::Stop),
            disable_api_termination: self.disable_api_termination.unwrap_or(false),
            disable_api_stop: self.disable_api_stop.unwrap_or(false),
            metadata_options: self
                .metadata_options
                .unwrap_or_default()
                .applied_to(MetadataOptions::default()),
            subnet_id,
            associate_public_ip: interface.associate_public_ip,
            tags,
            volume_tags,
            interface_tags,
            block_device_mappings: self
                .block_device_mappings
                .into_iter()
                .map(|b| b.mapping)
                .collect(),
            iam_instance_profile: self.iam_instance_profile.map(|p| p.value().to_owned()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tag(k: &str, v: &str) -> TagPair {
        TagPair {
            key: k.into(),
            value: v.into(),
        }
    }

    #[test]
    fn a_request_wins_over_its_template_and_tags_merge() {
        let template = LaunchData {
            image_id: Some("ami-1".into()),
            instance_type: Some("t2.micro".into()),
            key_name: Some("k".into()),
            security_group_ids: vec!["sg-1".into()],
            tag_specifications: vec![TagSpecification {
                resource_type: "instance".into(),
                tags: vec![tag("a", "1"), tag("b", "2")],
            }],
            ..Default::default()
        };
        let request = LaunchData {
            instance_type: Some("m1.large".into()),
            tag_specifications: vec![TagSpecification {
                resource_type: "instance".into(),
                tags: vec![tag("b", "3"), tag("c", "4")],
            }],
            ..Default::default()
        };
        let run = request.over(template).into_run(1, 2, None).expect("run");
        assert_eq!(run.image_id, "ami-1");
        assert_eq!(run.instance_type, "m1.large");
        assert_eq!(run.key_name.as_deref(), Some("k"));
        assert_eq!(run.security_group_ids, ["sg-1"]);
        assert_eq!(run.tags, [tag("a", "1"), tag("b", "3"), tag("c", "4")]);
        assert_eq!((run.min_count, run.max_count), (1, 2));
    }

    #[test]
    fn launches_need_an_image_and_one_interface() {
        assert!(matches!(
            LaunchData::default().into_run(1, 1, None),
            Err(CloudError::Missing(_))
        ));
        let two = LaunchData {
            image_id: Some("ami-1".into()),
            network_interfaces: vec![InterfaceRequest::default(), InterfaceRequest::default()],
            ..Default::default()
        };
        assert!(matches!(
            two.into_run(1, 1, None),
            Err(CloudError::Unsupported(_))
        ));
        let clash = LaunchData {
            image_id: Some("ami-1".into()),
            subnet_id: Some("subnet-1".into()),
            network_interfaces: vec![InterfaceRequest {
                subnet_id: Some("subnet-2".into()),
                ..Default::default()
            }],
            ..Default::default()
        };
        assert!(matches!(
            clash.into_run(1, 1, None),
            Err(CloudError::InvalidCombination(_))
        ));
        let run = LaunchData {
            image_id: Some("ami-1".into()),
            network_interfaces: vec![InterfaceRequest {
                device_index: Some(0),
                subnet_id: Some("subnet-2".into()),
                associate_public_ip: Some(false),
                security_group_ids: vec!["sg-2".into()],
                ..Default::default()
            }],
            ..Default::default()
        }
        .into_run(1, 1, None)
        .expect("run");
        assert_eq!(run.subnet_id.as_deref(), Some("subnet-2"));
        assert_eq!(run.associate_public_ip, Some(false));
        assert_eq!(run.security_group_ids, ["sg-2"]);
        assert_eq!(run.instance_type, DEFAULT_INSTANCE_TYPE);
    }
}
