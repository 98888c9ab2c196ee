//! The EC2 Query API: request parameters become a typed [`Ec2Action`], which
//! calls the domain (`mallee_cloud`) and is answered with 2016-11-15 XML.
//! Every action is declared once, in the table below: its name and its
//! input type, whose `parse` reads the parameters and whose `execute` runs
//! it. The enum, the parser, the dispatch and the list of names all come
//! from that table. One file per group of actions.

pub mod address_attributes;
pub mod addresses;
pub mod block_devices;
pub mod create_image;
pub mod dhcp_options;
pub mod ebs_encryption;
pub mod error;
pub mod iam_profiles;
pub mod image_attributes;
pub mod images;
pub mod instance_attributes;
pub mod instance_lifecycle;
pub mod instance_options;
mod instance_query;
pub mod instance_types;
pub mod instances;
pub mod internet_gateways;
pub mod key_pairs;
pub mod launch_data;
pub mod launch_templates;
pub mod nat_gateways;
pub mod network_acls;
pub mod network_interfaces;
pub mod nodes;
pub mod regions;
pub mod route_tables;
pub mod security_group_rules;
pub mod security_groups;
pub mod sharing;
pub mod snapshot_copies;
pub mod snapshots;
pub mod subnets;
pub mod tags;
pub mod volume_modifications;
pub mod volumes;
pub mod vpc_attributes;
pub mod vpcs;

use mallee_cloud::{Cloud, Principal};

use crate::xml::XmlWriter;
pub use error::Ec2Error;
pub use mallee_cloud::ids::iso8601;

/// The API version whose namespace responses use unless the client asked for
/// another valid version.
pub const DEFAULT_VERSION: &str = "2016-11-15";

crate::actions::declare! {
    /// One parsed EC2 request.
    enum Ec2Action;
    /// Runs an action. `dry_run` requests stop after validation and
    /// authorisation with `DryRunOperation`, as EC2 does.
    fn execute(Ec2Context, Ec2Error, dry_run: Ec2Error::DryRunOperation, invalid: Ec2Error::InvalidAction);
    service "ec2";
    DescribeRegions => regions::DescribeRegions,
    DescribeAvailabilityZones => regions::DescribeAvailabilityZones,
    DescribeAccountAttributes => regions::DescribeAccountAttributes,
    DescribeNodes => nodes::DescribeNodes,
    DescribeInstanceTypes => instance_types::DescribeInstanceTypes,
    DescribeInstanceTypeOfferings => instance_types::DescribeInstanceTypeOfferings,
    CreateKeyPair => key_pairs::CreateKeyPair,
    ImportKeyPair => key_pairs::ImportKeyPair,
    DescribeKeyPairs => key_pairs::DescribeKeyPairs,
    DeleteKeyPair => key_pairs::DeleteKeyPair,
    CreateTags => tags::CreateTags,
    DeleteTags => tags::DeleteTags,
    DescribeTags => tags::DescribeTags,
    RegisterImage => images::RegisterImage,
    DescribeImages => images::DescribeImages,
    DeregisterImage => images::DeregisterImage,
    DescribeImageAttribute => image_attributes::DescribeImageAttribute,
    ModifyImageAttribute => image_attributes::ModifyImageAttribute,
    ResetImageAttribute => image_attributes::ResetImageAttribute,
    RunInstances => instances::RunInstances,
    DescribeInstances => instances::DescribeInstances,
    DescribeInstanceStatus => instances::DescribeInstanceStatus,
    TerminateInstances => instance_lifecycle::TerminateInstances,
    StopInstances => instance_lifecycle::StopInstances,
    StartInstances => instance_lifecycle::StartInstances,
    RebootInstances => instance_lifecycle::RebootInstances,
    GetConsoleOutput => instance_lifecycle::GetConsoleOutput,
    DescribeInstanceAttribute => instance_attributes::DescribeInstanceAttribute,
    ModifyInstanceAttribute => instance_attributes::ModifyInstanceAttribute,
    ModifyInstanceMetadataOptions => instance_options::ModifyInstanceMetadataOptions,
    DescribeInstanceCreditSpecifications => instance_options::DescribeInstanceCreditSpecifications,
    GetPasswordData => instance_options::GetPasswordData,
    CreateVpc => vpcs::CreateVpc,
    DeleteVpc => vpcs::DeleteVpc,
    DescribeVpcs => vpcs::DescribeVpcs,
    CreateSubnet => subnets::CreateSubnet,
    DeleteSubnet => subnets::DeleteSubnet,
    ModifySubnetAttribute => subnets::ModifySubnetAttribute,
    DescribeSubnets => subnets::DescribeSubnets,
    CreateDhcpOptions => dhcp_options::CreateDhcpOptions,
    DeleteDhcpOptions => dhcp_options::DeleteDhcpOptions,
    DescribeDhcpOptions => dhcp_options::DescribeDhcpOptions,
    AssociateDhcpOptions => dhcp_options::AssociateDhcpOptions,
    DescribeNetworkAcls => network_acls::DescribeNetworkAcls,
    DescribeNetworkInterfaces => network_interfaces::DescribeNetworkInterfaces,
    DescribeVpcAttribute => vpc_attributes::DescribeVpcAttribute,
    ModifyVpcAttribute => vpc_attributes::ModifyVpcAttribute,
    CreateInternetGateway => internet_gateways::CreateInternetGateway,
    AttachInternetGateway => internet_gateways::AttachInternetGateway,
    DetachInternetGateway => internet_gateways::DetachInternetGateway,
    DeleteInternetGateway => internet_gateways::DeleteInternetGateway,
    DescribeInternetGateways => internet_gateways::DescribeInternetGateways,
    CreateRouteTable => route_tables::CreateRouteTable,
    DeleteRouteTable => route_tables::DeleteRouteTable,
    DescribeRouteTables => route_tables::DescribeRouteTables,
    CreateRoute => route_tables::CreateRoute,
    ReplaceRoute => route_tables::ReplaceRoute,
    DeleteRoute => route_tables::DeleteRoute,
    AssociateRouteTable => route_tables::AssociateRouteTable,
    DisassociateRouteTable => route_tables::DisassociateRouteTable,
    ReplaceRouteTableAssociation => route_tables::ReplaceRouteTableAssociation,
    CreateNatGateway => nat_gateways::CreateNatGateway,
    DeleteNatGateway => nat_gateways::DeleteNatGateway,
    DescribeNatGateways => nat_gateways::DescribeNatGateways,
    CreateSecurityGroup => security_groups::CreateSecurityGroup,
    DeleteSecurityGroup => security_groups::DeleteSecurityGroup,
    DescribeSecurityGroups => security_groups::DescribeSecurityGroups,
    DescribeSecurityGroupRules => security_groups::DescribeSecurityGroupRules,
    AuthorizeSecurityGroupIngress => security_groups::AuthorizeIngress,
    AuthorizeSecurityGroupEgress => security_groups::AuthorizeEgress,
    RevokeSecurityGroupIngress => security_groups::RevokeIngress,
    RevokeSecurityGroupEgress => security_groups::RevokeEgress,
    ModifySecurityGroupRules => security_group_rules::ModifySecurityGroupRules,
    UpdateSecurityGroupRuleDescriptionsIngress => security_group_rules::UpdateDescriptionsIngress,
    UpdateSecurityGroupRuleDescriptionsEgress => security_group_rules::UpdateDescriptionsEgress,
    AllocateAddress => addresses::AllocateAddress,
    AssociateAddress => addresses::AssociateAddress,
    DisassociateAddress => addresses::DisassociateAddress,
    ReleaseAddress => addresses::ReleaseAddress,
    DescribeAddresses => addresses::DescribeAddresses,
    DescribeAddressesAttribute => address_attributes::DescribeAddressesAttribute,
    ModifyAddressAttribute => address_attributes::ModifyAddressAttribute,
    ResetAddressAttribute => address_attributes::ResetAddressAttribute,
    CreateVolume => volumes::CreateVolume,
    DescribeVolumes => volumes::DescribeVolumes,
    DeleteVolume => volumes::DeleteVolume,
    AttachVolume => volumes::AttachVolume,
    DetachVolume => volumes::DetachVolume,
    DescribeVolumeStatus => volumes::DescribeVolumeStatus,
    DescribeVolumeAttribute => volumes::DescribeVolumeAttribute,
    ModifyVolumeAttribute => volumes::ModifyVolumeAttribute,
    ModifyVolume => volume_modifications::ModifyVolume,
    DescribeVolumesModifications => volume_modifications::DescribeVolumesModifications,
    GetEbsEncryptionByDefault => ebs_encryption::GetEbsEncryptionByDefault,
    EnableEbsEncryptionByDefault => ebs_encryption::EnableEbsEncryptionByDefault,
    DisableEbsEncryptionByDefault => ebs_encryption::DisableEbsEncryptionByDefault,
    CreateImage => create_image::CreateImage,
    CreateSnapshot => snapshots::CreateSnapshot,
    DescribeSnapshots => snapshots::DescribeSnapshots,
    DeleteSnapshot => snapshots::DeleteSnapshot,
    DescribeSnapshotAttribute => snapshots::DescribeSnapshotAttribute,
    ModifySnapshotAttribute => snapshots::ModifySnapshotAttribute,
    ResetSnapshotAttribute => snapshots::ResetSnapshotAttribute,
    ImportSnapshot => snapshots::ImportSnapshot,
    CopySnapshot => snapshot_copies::CopySnapshot,
    AssociateIamInstanceProfile => iam_profiles::AssociateIamInstanceProfile,
    ReplaceIamInstanceProfileAssociation => iam_profiles::ReplaceIamInstanceProfileAssociation,
    DisassociateIamInstanceProfile => iam_profiles::DisassociateIamInstanceProfile,
    DescribeIamInstanceProfileAssociations => iam_profiles::DescribeIamInstanceProfileAssociations,
    DescribeImportSnapshotTasks => snapshots::DescribeImportSnapshotTasks,
    CreateLaunchTemplate => launch_templates::CreateLaunchTemplate,
    CreateLaunchTemplateVersion => launch_templates::CreateLaunchTemplateVersion,
    DescribeLaunchTemplates => launch_templates::DescribeLaunchTemplates,
    DescribeLaunchTemplateVersions => launch_templates::DescribeLaunchTemplateVersions,
    ModifyLaunchTemplate => launch_templates::ModifyLaunchTemplate,
    DeleteLaunchTemplate => launch_templates::DeleteLaunchTemplate,
    DeleteLaunchTemplateVersions => launch_templates::DeleteLaunchTemplateVersions,
}

impl Ec2Action {
    /// The resources the action names whose ARNs and tags authorisation
    /// checks one by one (instance lifecycle); every other action is
    /// authorised on `*`.
    pub fn resource_ids(&self) -> &[String] {
        match self {
            Self::TerminateInstances(a) => a.ids(),
            Self::StopInstances(a) => a.ids(),
            Self::StartInstances(a) => a.ids(),
            Self::RebootInstances(a) => a.ids(),
            _ => &[],
        }
    }

    /// The instance profile (`Arn` or `Name`) the action hands to
    /// instances, whose role the caller must be allowed to pass.
    /// A launch template's profile counts too: whoever launches from a
    /// template passes its role, whoever made the template.
    pub async fn passed_profile(
        &self,
        cloud: &Cloud,
        principal: &Principal,
    ) -> Result<Option<String>, Ec2Error> {
        Ok(match self {
            Self::RunInstances(a) => match a.iam_instance_profile() {
                Some(p) => Some(p),
                None => a.template_profile(cloud, principal).await?,
            },
            Self::AssociateIamInstanceProfile(a) => Some(a.profile().to_owned()),
            Self::ReplaceIamInstanceProfileAssociation(a) => Some(a.profile().to_owned()),
            _ => None,
        })
    }
}

/// What an action runs with.
#[derive(Debug)]
pub struct Ec2Context<'a> {
    /// The cloud.
    pub cloud: &'a Cloud,
    /// Who is calling.
    pub principal: &'a Principal,
    /// This request's id.
    pub request_id: &'a str,
    /// XML namespace for the response.
    pub namespace: String,
}

impl Ec2Context<'_> {
    /// Writes `<{action}Response xmlns=…><requestId>…</requestId>…`.
    pub fn respond(&self, action: &str, body: impl FnOnce(&mut XmlWriter)) -> String {
        let mut w = XmlWriter::new();
        w.root(&format!("{action}Response"), &self.namespace, |w| {
            w.text("requestId", self.request_id);
            body(w);
        });
        w.finish()
    }

    /// Writes a response whose only content is `<return>true</return>`.
    pub fn respond_true(&self, action: &str) -> String {
        self.respond(action, |w| w.text("return", "true"))
    }
}

/// The namespace for a client's `Version` parameter: its own when it looks
/// like an API version date, else the default.
pub fn namespace_for(version: Option<&str>) -> String {
    let version = match version {
        Some(v)
            if v.len() == 10
                && v.bytes().enumerate().all(|(i, b)| {
                    if i == 4 || i == 7 {
                        b == b'-'
                    } else {
                        b.is_ascii_digit()
                    }
                }) =>
        {
            v
        }
        _ => DEFAULT_VERSION,
    };
    format!("http://ec2.amazonaws.com/doc/{version}/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_follows_valid_versions_only() {
        assert_eq!(
            namespace_for(Some("2014-06-15")),
            "http://ec2.amazonaws.com/doc/2014-06-15/"
        );
        assert_eq!(
            namespace_for(Some("<script>")),
            "http://ec2.amazonaws.com/doc/2016-11-15/"
        );
        assert_eq!(
            namespace_for(None),
            "http://ec2.amazonaws.com/doc/2016-11-15/"
        );
    }

    #[test]
    fn timestamps() {
        assert_eq!(iso8601(1_700_000_000_123), "2023-11-14T22:13:20.123Z");
    }
}
