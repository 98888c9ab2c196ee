//! The EC2 Query API: request parameters become a typed [`Ec2Action`], which
//! is executed against the cloud and answered with 2016-11-15 XML. One file
//! per group of actions.

pub mod addresses;
pub mod block_devices;
pub mod create_image;
pub mod error;
pub mod images;
pub mod instance_attributes;
pub mod instance_lifecycle;
pub mod instance_types;
pub mod instances;
pub mod key_pairs;
pub mod regions;
pub mod security_groups;
pub mod snapshots;
pub mod tags;
pub mod volumes;
pub mod vpcs;

use crate::Cloud;
use crate::api::Principal;
use crate::api::query::QueryParams;
use crate::api::xml::XmlWriter;
pub use error::Ec2Error;

/// The API version whose namespace responses use unless the client asked for
/// another valid version.
pub const DEFAULT_VERSION: &str = "2016-11-15";

/// One parsed EC2 request.
#[derive(Debug, Clone, PartialEq)]
pub enum Ec2Action {
    /// DescribeRegions.
    DescribeRegions(regions::DescribeRegions),
    /// DescribeAvailabilityZones.
    DescribeAvailabilityZones(regions::DescribeAvailabilityZones),
    /// DescribeAccountAttributes.
    DescribeAccountAttributes(regions::DescribeAccountAttributes),
    /// DescribeInstanceTypes.
    DescribeInstanceTypes(instance_types::DescribeInstanceTypes),
    /// CreateKeyPair.
    CreateKeyPair(key_pairs::CreateKeyPair),
    /// ImportKeyPair.
    ImportKeyPair(key_pairs::ImportKeyPair),
    /// DescribeKeyPairs.
    DescribeKeyPairs(key_pairs::DescribeKeyPairs),
    /// DeleteKeyPair.
    DeleteKeyPair(key_pairs::DeleteKeyPair),
    /// CreateTags.
    CreateTags(tags::CreateTags),
    /// DeleteTags.
    DeleteTags(tags::DeleteTags),
    /// DescribeTags.
    DescribeTags(tags::DescribeTags),
    /// RegisterImage.
    RegisterImage(images::RegisterImage),
    /// DescribeImages.
    DescribeImages(images::DescribeImages),
    /// DeregisterImage.
    DeregisterImage(images::DeregisterImage),
    /// DescribeImageAttribute.
    DescribeImageAttribute(images::DescribeImageAttribute),
    /// ModifyImageAttribute.
    ModifyImageAttribute(images::ModifyImageAttribute),
    /// ResetImageAttribute.
    ResetImageAttribute(images::ResetImageAttribute),
    /// RunInstances.
    RunInstances(instances::RunInstances),
    /// DescribeInstances.
    DescribeInstances(instances::DescribeInstances),
    /// DescribeInstanceStatus.
    DescribeInstanceStatus(instances::DescribeInstanceStatus),
    /// TerminateInstances.
    TerminateInstances(instance_lifecycle::TerminateInstances),
    /// StopInstances.
    StopInstances(instance_lifecycle::StopInstances),
    /// StartInstances.
    StartInstances(instance_lifecycle::StartInstances),
    /// RebootInstances.
    RebootInstances(instance_lifecycle::RebootInstances),
    /// GetConsoleOutput.
    GetConsoleOutput(instance_lifecycle::GetConsoleOutput),
    /// DescribeInstanceAttribute.
    DescribeInstanceAttribute(instance_attributes::DescribeInstanceAttribute),
    /// ModifyInstanceAttribute.
    ModifyInstanceAttribute(instance_attributes::ModifyInstanceAttribute),
    /// DescribeVpcs.
    DescribeVpcs(vpcs::DescribeVpcs),
    /// DescribeSubnets.
    DescribeSubnets(vpcs::DescribeSubnets),
    /// CreateSecurityGroup.
    CreateSecurityGroup(security_groups::CreateSecurityGroup),
    /// DeleteSecurityGroup.
    DeleteSecurityGroup(security_groups::DeleteSecurityGroup),
    /// DescribeSecurityGroups.
    DescribeSecurityGroups(security_groups::DescribeSecurityGroups),
    /// DescribeSecurityGroupRules.
    DescribeSecurityGroupRules(security_groups::DescribeSecurityGroupRules),
    /// AuthorizeSecurityGroupIngress.
    AuthorizeSecurityGroupIngress(security_groups::RuleChange),
    /// AuthorizeSecurityGroupEgress.
    AuthorizeSecurityGroupEgress(security_groups::RuleChange),
    /// RevokeSecurityGroupIngress.
    RevokeSecurityGroupIngress(security_groups::RuleChange),
    /// RevokeSecurityGroupEgress.
    RevokeSecurityGroupEgress(security_groups::RuleChange),
    /// AllocateAddress.
    AllocateAddress(addresses::AllocateAddress),
    /// AssociateAddress.
    AssociateAddress(addresses::AssociateAddress),
    /// DisassociateAddress.
    DisassociateAddress(addresses::DisassociateAddress),
    /// ReleaseAddress.
    ReleaseAddress(addresses::ReleaseAddress),
    /// DescribeAddresses.
    DescribeAddresses(addresses::DescribeAddresses),
    /// CreateVolume.
    CreateVolume(volumes::CreateVolume),
    /// DescribeVolumes.
    DescribeVolumes(volumes::DescribeVolumes),
    /// DeleteVolume.
    DeleteVolume(volumes::DeleteVolume),
    /// AttachVolume.
    AttachVolume(volumes::AttachVolume),
    /// DetachVolume.
    DetachVolume(volumes::DetachVolume),
    /// DescribeVolumeStatus.
    DescribeVolumeStatus(volumes::DescribeVolumeStatus),
    /// DescribeVolumeAttribute.
    DescribeVolumeAttribute(volumes::DescribeVolumeAttribute),
    /// ModifyVolumeAttribute.
    ModifyVolumeAttribute(volumes::ModifyVolumeAttribute),
    /// CreateImage.
    CreateImage(create_image::CreateImage),
    /// CreateSnapshot.
    CreateSnapshot(snapshots::CreateSnapshot),
    /// DescribeSnapshots.
    DescribeSnapshots(snapshots::DescribeSnapshots),
    /// DeleteSnapshot.
    DeleteSnapshot(snapshots::DeleteSnapshot),
    /// DescribeSnapshotAttribute.
    DescribeSnapshotAttribute(snapshots::DescribeSnapshotAttribute),
    /// ModifySnapshotAttribute.
    ModifySnapshotAttribute(snapshots::ModifySnapshotAttribute),
    /// ResetSnapshotAttribute.
    ResetSnapshotAttribute(snapshots::ResetSnapshotAttribute),
    /// ImportSnapshot.
    ImportSnapshot(snapshots::ImportSnapshot),
    /// DescribeImportSnapshotTasks.
    DescribeImportSnapshotTasks(snapshots::DescribeImportSnapshotTasks),
}

impl Ec2Action {
    /// Parses the parameters of `action`; unknown actions are `InvalidAction`.
    pub fn parse(action: &str, params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(match action {
            "DescribeRegions" => Self::DescribeRegions(regions::DescribeRegions::parse(params)?),
            "DescribeAvailabilityZones" => {
                Self::DescribeAvailabilityZones(regions::DescribeAvailabilityZones::parse(params)?)
            }
            "DescribeAccountAttributes" => {
                Self::DescribeAccountAttributes(regions::DescribeAccountAttributes::parse(params)?)
            }
            "DescribeInstanceTypes" => {
                Self::DescribeInstanceTypes(instance_types::DescribeInstanceTypes::parse(params)?)
            }
            "CreateKeyPair" => Self::CreateKeyPair(key_pairs::CreateKeyPair::parse(params)?),
            "ImportKeyPair" => Self::ImportKeyPair(key_pairs::ImportKeyPair::parse(params)?),
            "DescribeKeyPairs" => {
                Self::DescribeKeyPairs(key_pairs::DescribeKeyPairs::parse(params)?)
            }
            "DeleteKeyPair" => Self::DeleteKeyPair(key_pairs::DeleteKeyPair::parse(params)?),
            "CreateTags" => Self::CreateTags(tags::CreateTags::parse(params)?),
            "DeleteTags" => Self::DeleteTags(tags::DeleteTags::parse(params)?),
            "DescribeTags" => Self::DescribeTags(tags::DescribeTags::parse(params)?),
            "RegisterImage" => Self::RegisterImage(images::RegisterImage::parse(params)?),
            "DescribeImages" => Self::DescribeImages(images::DescribeImages::parse(params)?),
            "DeregisterImage" => Self::DeregisterImage(images::DeregisterImage::parse(params)?),
            "DescribeImageAttribute" => {
                Self::DescribeImageAttribute(images::DescribeImageAttribute::parse(params)?)
            }
            "ModifyImageAttribute" => {
                Self::ModifyImageAttribute(images::ModifyImageAttribute::parse(params)?)
            }
            "ResetImageAttribute" => {
                Self::ResetImageAttribute(images::ResetImageAttribute::parse(params)?)
            }
            "RunInstances" => Self::RunInstances(instances::RunInstances::parse(params)?),
            "DescribeInstances" => {
                Self::DescribeInstances(instances::DescribeInstances::parse(params)?)
            }
            "DescribeInstanceStatus" => {
                Self::DescribeInstanceStatus(instances::DescribeInstanceStatus::parse(params)?)
            }
            "TerminateInstances" => {
                Self::TerminateInstances(instance_lifecycle::TerminateInstances::parse(params)?)
            }
            "StopInstances" => {
                Self::StopInstances(instance_lifecycle::StopInstances::parse(params)?)
            }
            "StartInstances" => {
                Self::StartInstances(instance_lifecycle::StartInstances::parse(params)?)
            }
            "RebootInstances" => {
                Self::RebootInstances(instance_lifecycle::RebootInstances::parse(params)?)
            }
            "GetConsoleOutput" => {
                Self::GetConsoleOutput(instance_lifecycle::GetConsoleOutput::parse(params)?)
            }
            "DescribeInstanceAttribute" => Self::DescribeInstanceAttribute(
                instance_attributes::DescribeInstanceAttribute::parse(params)?,
            ),
            "ModifyInstanceAttribute" => Self::ModifyInstanceAttribute(
                instance_attributes::ModifyInstanceAttribute::parse(params)?,
            ),
            "DescribeVpcs" => Self::DescribeVpcs(vpcs::DescribeVpcs::parse(params)?),
            "DescribeSubnets" => Self::DescribeSubnets(vpcs::DescribeSubnets::parse(params)?),
            "CreateSecurityGroup" => {
                Self::CreateSecurityGroup(security_groups::CreateSecurityGroup::parse(params)?)
            }
            "DeleteSecurityGroup" => {
                Self::DeleteSecurityGroup(security_groups::DeleteSecurityGroup::parse(params)?)
            }
            "DescribeSecurityGroups" => Self::DescribeSecurityGroups(
                security_groups::DescribeSecurityGroups::parse(params)?,
            ),
            "DescribeSecurityGroupRules" => Self::DescribeSecurityGroupRules(
                security_groups::DescribeSecurityGroupRules::parse(params)?,
            ),
            "AuthorizeSecurityGroupIngress" => Self::AuthorizeSecurityGroupIngress(
                security_groups::RuleChange::authorize_ingress(params)?,
            ),
            "AuthorizeSecurityGroupEgress" => Self::AuthorizeSecurityGroupEgress(
                security_groups::RuleChange::authorize_egress(params)?,
            ),
            "RevokeSecurityGroupIngress" => Self::RevokeSecurityGroupIngress(
                security_groups::RuleChange::revoke_ingress(params)?,
            ),
            "RevokeSecurityGroupEgress" => {
                Self::RevokeSecurityGroupEgress(security_groups::RuleChange::revoke_egress(params)?)
            }
            "AllocateAddress" => Self::AllocateAddress(addresses::AllocateAddress::parse(params)?),
            "AssociateAddress" => {
                Self::AssociateAddress(addresses::AssociateAddress::parse(params)?)
            }
            "DisassociateAddress" => {
                Self::DisassociateAddress(addresses::DisassociateAddress::parse(params)?)
            }
            "ReleaseAddress" => Self::ReleaseAddress(addresses::ReleaseAddress::parse(params)?),
            "DescribeAddresses" => {
                Self::DescribeAddresses(addresses::DescribeAddresses::parse(params)?)
            }
            "CreateVolume" => Self::CreateVolume(volumes::CreateVolume::parse(params)?),
            "DescribeVolumes" => Self::DescribeVolumes(volumes::DescribeVolumes::parse(params)?),
            "DeleteVolume" => Self::DeleteVolume(volumes::DeleteVolume::parse(params)?),
            "AttachVolume" => Self::AttachVolume(volumes::AttachVolume::parse(params)?),
            "DetachVolume" => Self::DetachVolume(volumes::DetachVolume::parse(params)?),
            "DescribeVolumeStatus" => {
                Self::DescribeVolumeStatus(volumes::DescribeVolumeStatus::parse(params)?)
            }
            "DescribeVolumeAttribute" => {
                Self::DescribeVolumeAttribute(volumes::DescribeVolumeAttribute::parse(params)?)
            }
            "ModifyVolumeAttribute" => {
                Self::ModifyVolumeAttribute(volumes::ModifyVolumeAttribute::parse(params)?)
            }
            "CreateImage" => Self::CreateImage(create_image::CreateImage::parse(params)?),
            "CreateSnapshot" => Self::CreateSnapshot(snapshots::CreateSnapshot::parse(params)?),
            "DescribeSnapshots" => {
                Self::DescribeSnapshots(snapshots::DescribeSnapshots::parse(params)?)
            }
            "DeleteSnapshot" => Self::DeleteSnapshot(snapshots::DeleteSnapshot::parse(params)?),
            "DescribeSnapshotAttribute" => Self::DescribeSnapshotAttribute(
                snapshots::DescribeSnapshotAttribute::parse(params)?,
            ),
            "ModifySnapshotAttribute" => {
                Self::ModifySnapshotAttribute(snapshots::ModifySnapshotAttribute::parse(params)?)
            }
            "ResetSnapshotAttribute" => {
                Self::ResetSnapshotAttribute(snapshots::ResetSnapshotAttribute::parse(params)?)
            }
            "ImportSnapshot" => Self::ImportSnapshot(snapshots::ImportSnapshot::parse(params)?),
            "DescribeImportSnapshotTasks" => Self::DescribeImportSnapshotTasks(
                snapshots::DescribeImportSnapshotTasks::parse(params)?,
            ),
            other => return Err(Ec2Error::InvalidAction(other.to_owned())),
        })
    }

    /// Every action name this module serves, for the compatibility table and
    /// the authorisation test.
    pub const NAMES: &'static [&'static str] = &[
        "DescribeRegions",
        "DescribeAvailabilityZones",
        "DescribeAccountAttributes",
        "DescribeInstanceTypes",
        "CreateKeyPair",
        "ImportKeyPair",
        "DescribeKeyPairs",
        "DeleteKeyPair",
        "CreateTags",
        "DeleteTags",
        "DescribeTags",
        "RegisterImage",
        "DescribeImages",
        "DeregisterImage",
        "DescribeImageAttribute",
        "ModifyImageAttribute",
        "ResetImageAttribute",
        "RunInstances",
        "DescribeInstances",
        "DescribeInstanceStatus",
        "TerminateInstances",
        "StopInstances",
        "StartInstances",
        "RebootInstances",
        "GetConsoleOutput",
        "DescribeInstanceAttribute",
        "ModifyInstanceAttribute",
        "DescribeVpcs",
        "DescribeSubnets",
        "CreateSecurityGroup",
        "DeleteSecurityGroup",
        "DescribeSecurityGroups",
        "DescribeSecurityGroupRules",
        "AuthorizeSecurityGroupIngress",
        "AuthorizeSecurityGroupEgress",
        "RevokeSecurityGroupIngress",
        "RevokeSecurityGroupEgress",
        "AllocateAddress",
        "AssociateAddress",
        "DisassociateAddress",
        "ReleaseAddress",
        "DescribeAddresses",
        "CreateVolume",
        "DescribeVolumes",
        "DeleteVolume",
        "AttachVolume",
        "DetachVolume",
        "DescribeVolumeStatus",
        "DescribeVolumeAttribute",
        "ModifyVolumeAttribute",
        "CreateImage",
        "CreateSnapshot",
        "DescribeSnapshots",
        "DeleteSnapshot",
        "DescribeSnapshotAttribute",
        "ModifySnapshotAttribute",
        "ResetSnapshotAttribute",
        "ImportSnapshot",
        "DescribeImportSnapshotTasks",
    ];
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

/// Runs an action. `dry_run` requests stop after validation and
/// authorisation with `DryRunOperation`, as EC2 does.
pub async fn execute(
    ctx: &Ec2Context<'_>,
    action: Ec2Action,
    dry_run: bool,
) -> Result<String, Ec2Error> {
    if dry_run {
        return Err(Ec2Error::DryRunOperation);
    }
    match action {
        Ec2Action::DescribeRegions(a) => a.execute(ctx),
        Ec2Action::DescribeAvailabilityZones(a) => a.execute(ctx).await,
        Ec2Action::DescribeAccountAttributes(a) => a.execute(ctx).await,
        Ec2Action::DescribeInstanceTypes(a) => a.execute(ctx).await,
        Ec2Action::CreateKeyPair(a) => a.execute(ctx).await,
        Ec2Action::ImportKeyPair(a) => a.execute(ctx).await,
        Ec2Action::DescribeKeyPairs(a) => a.execute(ctx).await,
        Ec2Action::DeleteKeyPair(a) => a.execute(ctx).await,
        Ec2Action::CreateTags(a) => a.execute(ctx).await,
        Ec2Action::DeleteTags(a) => a.execute(ctx).await,
        Ec2Action::DescribeTags(a) => a.execute(ctx).await,
        Ec2Action::RegisterImage(a) => a.execute(ctx).await,
        Ec2Action::DescribeImages(a) => a.execute(ctx).await,
        Ec2Action::DeregisterImage(a) => a.execute(ctx).await,
        Ec2Action::DescribeImageAttribute(a) => a.execute(ctx).await,
        Ec2Action::ModifyImageAttribute(a) => a.execute(ctx).await,
        Ec2Action::ResetImageAttribute(a) => a.execute(ctx).await,
        Ec2Action::RunInstances(a) => a.execute(ctx).await,
        Ec2Action::DescribeInstances(a) => a.execute(ctx).await,
        Ec2Action::DescribeInstanceStatus(a) => a.execute(ctx).await,
        Ec2Action::TerminateInstances(a) => a.execute(ctx).await,
        Ec2Action::StopInstances(a) => a.execute(ctx).await,
        Ec2Action::StartInstances(a) => a.execute(ctx).await,
        Ec2Action::RebootInstances(a) => a.execute(ctx).await,
        Ec2Action::GetConsoleOutput(a) => a.execute(ctx).await,
        Ec2Action::DescribeInstanceAttribute(a) => a.execute(ctx).await,
        Ec2Action::ModifyInstanceAttribute(a) => a.execute(ctx).await,
        Ec2Action::DescribeVpcs(a) => a.execute(ctx).await,
        Ec2Action::DescribeSubnets(a) => a.execute(ctx).await,
        Ec2Action::CreateSecurityGroup(a) => a.execute(ctx).await,
        Ec2Action::DeleteSecurityGroup(a) => a.execute(ctx).await,
        Ec2Action::DescribeSecurityGroups(a) => a.execute(ctx).await,
        Ec2Action::DescribeSecurityGroupRules(a) => a.execute(ctx).await,
        Ec2Action::AuthorizeSecurityGroupIngress(a)
        | Ec2Action::AuthorizeSecurityGroupEgress(a)
        | Ec2Action::RevokeSecurityGroupIngress(a)
        | Ec2Action::RevokeSecurityGroupEgress(a) => a.execute(ctx).await,
        Ec2Action::AllocateAddress(a) => a.execute(ctx).await,
        Ec2Action::AssociateAddress(a) => a.execute(ctx).await,
        Ec2Action::DisassociateAddress(a) => a.execute(ctx).await,
        Ec2Action::ReleaseAddress(a) => a.execute(ctx).await,
        Ec2Action::DescribeAddresses(a) => a.execute(ctx).await,
        Ec2Action::CreateVolume(a) => a.execute(ctx).await,
        Ec2Action::DescribeVolumes(a) => a.execute(ctx).await,
        Ec2Action::DeleteVolume(a) => a.execute(ctx).await,
        Ec2Action::AttachVolume(a) => a.execute(ctx).await,
        Ec2Action::DetachVolume(a) => a.execute(ctx).await,
        Ec2Action::DescribeVolumeStatus(a) => a.execute(ctx).await,
        Ec2Action::DescribeVolumeAttribute(a) => a.execute(ctx).await,
        Ec2Action::ModifyVolumeAttribute(a) => a.execute(ctx).await,
        Ec2Action::CreateImage(a) => a.execute(ctx).await,
        Ec2Action::CreateSnapshot(a) => a.execute(ctx).await,
        Ec2Action::DescribeSnapshots(a) => a.execute(ctx).await,
        Ec2Action::DeleteSnapshot(a) => a.execute(ctx).await,
        Ec2Action::DescribeSnapshotAttribute(a) => a.execute(ctx).await,
        Ec2Action::ModifySnapshotAttribute(a) => a.execute(ctx).await,
        Ec2Action::ResetSnapshotAttribute(a) => a.execute(ctx).await,
        Ec2Action::ImportSnapshot(a) => a.execute(ctx).await,
        Ec2Action::DescribeImportSnapshotTasks(a) => a.execute(ctx).await,
    }
}

/// Formats a store timestamp as EC2 does (`2024-01-02T03:04:05.000Z`).
pub fn iso8601(millis: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
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
