//! Every declared action of every service goes through IAM: a controller on
//! a loopback port, requests signed with the `aws-sigv4` signer, two IAM
//! users of one account. For each action of each Query API
//! ([`Ec2Action::NAMES`], [`MetalAction::NAMES`], [`IamAction::NAMES`],
//! [`StsAction::NAMES`]) (S3 in `s3_policy_coverage.rs`):
//!
//! - a user whose policy allows everything but that action is refused
//!   with the service's error naming the action (EC2 and metal:
//!   `UnauthorizedOperation` with its encoded message; IAM and STS:
//!   `AccessDenied`), except `sts:GetCallerIdentity` and
//!   `sts:GetSessionToken`, which AWS always allows, and the database (every row of every table but a key's last
//!   use) and the object files are the same after the refusal as before;
//! - a user whose policy allows exactly that action and nothing else is
//!   let through (any answer but the refusal).
//!
//! Each Query action has an entry in its API's table of request
//! parameters, and those parameters must parse with the API's own parser,
//! so authorisation sees the action's real resources rather than a
//! refusal of an unparsable request. A new action without an entry, or an
//! entry naming no action, fails here.

mod iam_harness;

use std::collections::BTreeSet;

use iam_harness::{
    Account, Controller, Key, REGION, Reply, account, digest, policies_for, send, start,
};
use mallee_api::bootstrap::BootstrapAction;
use mallee_api::ec2::Ec2Action;
use mallee_api::iam::IamAction;
use mallee_api::metal::MetalAction;
use mallee_api::query::QueryParams;
use mallee_api::sts::StsAction;
use mallee_cloud::accounts;
use mallee_cloud::identity::policies::{self, Holder};
use mallee_cloud::identity::{groups, keys, signing, users};
use mallee_policy::AuthzMessage;

/// An instance id no instance has: lifecycle actions are authorised on
/// the ARN of each instance they name, existing or not.
const INSTANCE: &str = "i-0123456789abcdef0";

/// An ed25519 public key for ImportKeyPair, base64-encoded as the Query
/// API carries it.
const PUBLIC_KEY: &str = "c3NoLWVkMjU1MTkgQUFBQUMzTnphQzFsWkRJMU5URTVBQUFBSUFxdTVNaHJOQUZ0UUdCRy9XeWJqWGRsaXl3QnZTdjBURkRQem1rN0lyMFAgY292ZXJhZ2UK";

/// Request parameters of each EC2 action (`&`-separated `Name=value`,
/// values taken literally; `{sg}` and `{kp}` are replaced by the fixture's
/// security group id and key pair name). Destructive actions name the
/// fixture's resources, so a refusal that still ran would show in the
/// database.
const EC2_PARAMS: &[(&str, &str)] = &[
    ("DescribeRegions", ""),
    ("DescribeAvailabilityZones", ""),
    ("DescribeAccountAttributes", ""),
    ("DescribeNodes", ""),
    ("DescribeInstanceTypes", ""),
    (
        "DescribeInstanceTypeOfferings",
        "LocationType=availability-zone",
    ),
    ("CreateKeyPair", "KeyName=kp-new&KeyType=ed25519"),
    (
        "ImportKeyPair",
        "KeyName=kp-imported&PublicKeyMaterial={public_key}",
    ),
    ("DescribeKeyPairs", ""),
    ("DeleteKeyPair", "KeyName={kp}"),
    (
        "CreateTags",
        "ResourceId.1={sg}&Tag.1.Key=env&Tag.1.Value=test",
    ),
    ("DeleteTags", "ResourceId.1={sg}&Tag.1.Key=team"),
    ("DescribeTags", ""),
    (
        "RegisterImage",
        "Name=coverage&ImageLocation=bucket/image.manifest.xml",
    ),
    ("DescribeImages", ""),
    ("DeregisterImage", "ImageId=ami-0123456789abcdef0"),
    (
        "DescribeImageAttribute",
        "ImageId=ami-0123456789abcdef0&Attribute=launchPermission",
    ),
    (
        "ModifyImageAttribute",
        "ImageId=ami-0123456789abcdef0&LaunchPermission.Add.1.Group=all",
    ),
    (
        "ResetImageAttribute",
        "ImageId=ami-0123456789abcdef0&Attribute=launchPermission",
    ),
    (
        "RunInstances",
        "ImageId=ami-0123456789abcdef0&MinCount=1&MaxCount=1&InstanceType=t1.micro&KeyName={kp}",
    ),
    ("DescribeInstances", ""),
    ("DescribeInstanceStatus", ""),
    ("TerminateInstances", "InstanceId.1={instance}"),
    ("StopInstances", "InstanceId.1={instance}"),
    ("StartInstances", "InstanceId.1={instance}"),
    ("RebootInstances", "InstanceId.1={instance}"),
    ("GetConsoleOutput", "InstanceId={instance}"),
    (
        "DescribeInstanceAttribute",
        "InstanceId={instance}&Attribute=instanceType",
    ),
    (
        "ModifyInstanceAttribute",
        "InstanceId={instance}&InstanceType.Value=t1.micro",
    ),
    (
        "ModifyInstanceMetadataOptions",
        "InstanceId={instance}&HttpTokens=required",
    ),
    (
        "DescribeInstanceCreditSpecifications",
        "InstanceId.1={instance}",
    ),
    ("GetPasswordData", "InstanceId={instance}"),
    ("CreateVpc", "CidrBlock=10.0.0.0/16"),
    ("DeleteVpc", "VpcId={vpc}"),
    ("DescribeVpcs", ""),
    ("CreateSubnet", "VpcId={vpc}&CidrBlock=172.31.128.0/24"),
    ("DeleteSubnet", "SubnetId=subnet-0123456789abcdef0"),
    (
        "ModifySubnetAttribute",
        "SubnetId=subnet-0123456789abcdef0&MapPublicIpOnLaunch.Value=true",
    ),
    ("DescribeSubnets", ""),
    (
        "CreateDhcpOptions",
        "DhcpConfiguration.1.Key=domain-name&DhcpConfiguration.1.Value.1=corp.example",
    ),
    ("DeleteDhcpOptions", "DhcpOptionsId=dopt-0123456789abcdef0"),
    ("DescribeDhcpOptions", ""),
    ("AssociateDhcpOptions", "DhcpOptionsId=default&VpcId={vpc}"),
    ("DescribeNetworkAcls", ""),
    ("DescribeNetworkInterfaces", ""),
    (
        "DescribeVpcAttribute",
        "VpcId={vpc}&Attribute=enableDnsSupport",
    ),
    (
        "ModifyVpcAttribute",
        "VpcId={vpc}&EnableNetworkAddressUsageMetrics.Value=true",
    ),
    ("CreateInternetGateway", ""),
    (
        "AttachInternetGateway",
        "InternetGatewayId=igw-0123456789abcdef0&VpcId={vpc}",
    ),
    (
        "DetachInternetGateway",
        "InternetGatewayId=igw-0123456789abcdef0&VpcId={vpc}",
    ),
    (
        "DeleteInternetGateway",
        "InternetGatewayId=igw-0123456789abcdef0",
    ),
    ("DescribeInternetGateways", ""),
    ("CreateRouteTable", "VpcId={vpc}"),
    ("DeleteRouteTable", "RouteTableId=rtb-0123456789abcdef0"),
    ("DescribeRouteTables", ""),
    (
        "CreateRoute",
        "RouteTableId=rtb-0123456789abcdef0&DestinationCidrBlock=0.0.0.0/0&GatewayId=igw-0123456789abcdef0",
    ),
    (
        "ReplaceRoute",
        "RouteTableId=rtb-0123456789abcdef0&DestinationCidrBlock=0.0.0.0/0&GatewayId=igw-0123456789abcdef0",
    ),
    (
        "DeleteRoute",
        "RouteTableId=rtb-0123456789abcdef0&DestinationCidrBlock=0.0.0.0/0",
    ),
    (
        "AssociateRouteTable",
        "RouteTableId=rtb-0123456789abcdef0&SubnetId=subnet-0123456789abcdef0",
    ),
    (
        "DisassociateRouteTable",
        "AssociationId=rtbassoc-0123456789abcdef0",
    ),
    (
        "ReplaceRouteTableAssociation",
        "AssociationId=rtbassoc-0123456789abcdef0&RouteTableId=rtb-0123456789abcdef0",
    ),
    (
        "CreateNatGateway",
        "SubnetId=subnet-0123456789abcdef0&AllocationId=eipalloc-0123456789abcdef0",
    ),
    ("DeleteNatGateway", "NatGatewayId=nat-0123456789abcdef0"),
    ("DescribeNatGateways", ""),
    (
        "CreateSecurityGroup",
        "GroupName=new-group&GroupDescription=new",
    ),
    ("DeleteSecurityGroup", "GroupId={sg}"),
    ("DescribeSecurityGroups", ""),
    ("DescribeSecurityGroupRules", ""),
    ("AuthorizeSecurityGroupIngress", "GroupId={sg}&{rule}"),
    ("AuthorizeSecurityGroupEgress", "GroupId={sg}&{rule}"),
    ("RevokeSecurityGroupIngress", "GroupId={sg}&{rule}"),
    ("RevokeSecurityGroupEgress", "GroupId={sg}&{rule}"),
    (
        "ModifySecurityGroupRules",
        "GroupId={sg}&SecurityGroupRule.1.SecurityGroupRuleId=sgr-0123456789abcdef0&SecurityGroupRule.1.SecurityGroupRule.IpProtocol=tcp&SecurityGroupRule.1.SecurityGroupRule.FromPort=80&SecurityGroupRule.1.SecurityGroupRule.ToPort=80&SecurityGroupRule.1.SecurityGroupRule.CidrIpv4=10.0.0.0/8",
    ),
    (
        "UpdateSecurityGroupRuleDescriptionsIngress",
        "GroupId={sg}&{rule}&IpPermissions.1.IpRanges.1.Description=changed",
    ),
    (
        "UpdateSecurityGroupRuleDescriptionsEgress",
        "GroupId={sg}&{rule}&IpPermissions.1.IpRanges.1.Description=changed",
    ),
    ("AllocateAddress", "Domain=vpc"),
    (
        "AssociateAddress",
        "AllocationId=eipalloc-0123456789abcdef0&InstanceId={instance}",
    ),
    (
        "DisassociateAddress",
        "AssociationId=eipassoc-0123456789abcdef0",
    ),
    ("ReleaseAddress", "AllocationId=eipalloc-0123456789abcdef0"),
    ("DescribeAddresses", ""),
    ("DescribeAddressesAttribute", "Attribute=domain-name"),
    (
        "ModifyAddressAttribute",
        "AllocationId=eipalloc-0123456789abcdef0&DomainName=mail.example.com",
    ),
    (
        "ResetAddressAttribute",
        "AllocationId=eipalloc-0123456789abcdef0&Attribute=domain-name",
    ),
    ("CreateVolume", "Size=1&AvailabilityZone={zone}"),
    ("DescribeVolumes", ""),
    ("DeleteVolume", "VolumeId=vol-0123456789abcdef0"),
    (
        "AttachVolume",
        "VolumeId=vol-0123456789abcdef0&InstanceId={instance}&Device=/dev/sdf",
    ),
    ("DetachVolume", "VolumeId=vol-0123456789abcdef0"),
    ("DescribeVolumeStatus", ""),
    (
        "DescribeVolumeAttribute",
        "VolumeId=vol-0123456789abcdef0&Attribute=autoEnableIO",
    ),
    (
        "ModifyVolumeAttribute",
        "VolumeId=vol-0123456789abcdef0&AutoEnableIO.Value=true",
    ),
    ("ModifyVolume", "VolumeId=vol-0123456789abcdef0&Size=2"),
    ("DescribeVolumesModifications", ""),
    ("GetEbsEncryptionByDefault", ""),
    ("EnableEbsEncryptionByDefault", ""),
    ("DisableEbsEncryptionByDefault", ""),
    ("CreateImage", "InstanceId={instance}&Name=coverage"),
    ("CreateSnapshot", "VolumeId=vol-0123456789abcdef0"),
    (
        "CopySnapshot",
        "SourceSnapshotId=snap-0123456789abcdef0&SourceRegion=mallee-1",
    ),
    ("DescribeSnapshots", ""),
    ("DeleteSnapshot", "SnapshotId=snap-0123456789abcdef0"),
    (
        "DescribeSnapshotAttribute",
        "SnapshotId=snap-0123456789abcdef0&Attribute=createVolumePermission",
    ),
    (
        "ModifySnapshotAttribute",
        "SnapshotId=snap-0123456789abcdef0&CreateVolumePermission.Add.1.Group=all",
    ),
    (
        "ResetSnapshotAttribute",
        "SnapshotId=snap-0123456789abcdef0&Attribute=createVolumePermission",
    ),
    (
        "ImportSnapshot",
        "DiskContainer.Format=RAW&DiskContainer.UserBucket.S3Bucket=bucket&DiskContainer.UserBucket.S3Key=disk.raw",
    ),
    ("DescribeImportSnapshotTasks", ""),
    (
        "CreateLaunchTemplate",
        "LaunchTemplateName=coverage-template&LaunchTemplateData.InstanceType=t1.micro",
    ),
    (
        "CreateLaunchTemplateVersion",
        "LaunchTemplateName=fixture-template&LaunchTemplateData.InstanceType=m1.large",
    ),
    ("DescribeLaunchTemplates", ""),
    (
        "DescribeLaunchTemplateVersions",
        "LaunchTemplateName=fixture-template",
    ),
    (
        "ModifyLaunchTemplate",
        "LaunchTemplateName=fixture-template&SetDefaultVersion=2",
    ),
    (
        "DeleteLaunchTemplateVersions",
        "LaunchTemplateName=fixture-template&LaunchTemplateVersion.1=2",
    ),
    (
        "DeleteLaunchTemplate",
        "LaunchTemplateName=fixture-template",
    ),
    (
        "AssociateIamInstanceProfile",
        "InstanceId={instance}&IamInstanceProfile.Name=victim-profile",
    ),
    (
        "ReplaceIamInstanceProfileAssociation",
        "AssociationId=iip-assoc-0123456789abcdef0&IamInstanceProfile.Name=victim-profile",
    ),
    (
        "DisassociateIamInstanceProfile",
        "AssociationId=iip-assoc-0123456789abcdef0",
    ),
    ("DescribeIamInstanceProfileAssociations", ""),
];

/// Request parameters of each metal action (bare-metal provisioning is
/// off in this controller: the actions answer with their own errors once
/// authorised).
const METAL_PARAMS: &[(&str, &str)] = &[
    ("DescribeDistros", ""),
    ("DescribeProfiles", ""),
    ("DescribeSystems", ""),
    ("DescribeSystemGroups", ""),
    ("DescribeSystemUsers", "Name=node1"),
    ("SetProfile", "Name=node1&Profile=debian"),
    ("EnableNetboot", "Name=node1"),
    ("DisableNetboot", "Name=node1"),
    ("RebootSystem", "Name=node1"),
    ("ReserveSystems", "User=qa&Group.1=lab&Count=1"),
    ("ReleaseSystems", "Name.1=node1"),
    ("RunInstances", "User=qa&Group.1=lab&Count=1&Profile=debian"),
    ("DescribeInstances", ""),
    ("TerminateInstances", "User=qa"),
    ("AddGroup", "Name=lab&Description=lab"),
    ("RemoveGroup", "Name=lab"),
    (
        "AddDistro",
        "Name=debian&Kernel=http://127.0.0.1/vmlinuz&Initrd=http://127.0.0.1/initrd",
    ),
    ("RemoveDistro", "Name=debian"),
    ("AddProfile", "Name=debian&Distro=debian&Template=preseed"),
    ("RenderAnswerFile", "Profile=debian&Name=node1"),
    ("RemoveProfile", "Name=debian"),
    (
        "AddSystem",
        "Name=node1&Mac=52:54:00:00:00:01&Ip=10.9.0.10&Group=lab",
    ),
    ("EditSystem", "Name=node1&Ip=10.9.0.11"),
    ("RemoveSystem", "Name=node1"),
    ("ConfirmPoweredOff", "Name=node1"),
];

/// Request parameters of each IAM action. Fixtures of the account: the
/// users `victim` (a key `{victim_key}`, a signing certificate
/// `{victim_cert}`, an inline policy `p`, the managed
/// policy `{policy_arn}` attached, membership of `team`, a login profile)
/// and `plain`; the groups `team` (policy `gp`) and `spare`; the role
/// `victim-role` (policy `rp`, tag `team`) in the instance profile
/// `victim-profile`, and the empty `spare-profile`; the managed policy
/// with versions `v1` (default) and `v2`; the alias `tenant-fixture`; the
/// account `other`.
const IAM_PARAMS: &[(&str, &str)] = &[
    ("CreateUser", "UserName=new-user"),
    ("GetUser", "UserName=victim"),
    ("ListUsers", ""),
    ("UpdateUser", "UserName=victim&NewPath=/moved/"),
    ("DeleteUser", "UserName=victim"),
    (
        "TagUser",
        "UserName=victim&Tags.member.1.Key=env&Tags.member.1.Value=test",
    ),
    ("UntagUser", "UserName=victim&TagKeys.member.1=team"),
    ("ListUserTags", "UserName=victim"),
    ("CreateAccessKey", "UserName=victim"),
    ("ListAccessKeys", "UserName=victim"),
    (
        "UpdateAccessKey",
        "UserName=victim&AccessKeyId={victim_key}&Status=Inactive",
    ),
    (
        "DeleteAccessKey",
        "UserName=victim&AccessKeyId={victim_key}",
    ),
    ("GetAccessKeyLastUsed", "AccessKeyId={victim_key}"),
    (
        "UploadSigningCertificate",
        "UserName=victim&CertificateBody=not-a-certificate",
    ),
    ("ListSigningCertificates", "UserName=victim"),
    (
        "UpdateSigningCertificate",
        "UserName=victim&CertificateId={victim_cert}&Status=Inactive",
    ),
    (
        "DeleteSigningCertificate",
        "UserName=victim&CertificateId={victim_cert}",
    ),
    ("CreateGroup", "GroupName=new-group"),
    ("GetGroup", "GroupName=team"),
    ("ListGroups", ""),
    ("DeleteGroup", "GroupName=spare"),
    ("AddUserToGroup", "GroupName=spare&UserName=victim"),
    ("RemoveUserFromGroup", "GroupName=team&UserName=victim"),
    ("ListGroupsForUser", "UserName=victim"),
    (
        "PutUserPolicy",
        "UserName=victim&PolicyName=p2&PolicyDocument={document}",
    ),
    ("GetUserPolicy", "UserName=victim&PolicyName=p"),
    ("DeleteUserPolicy", "UserName=victim&PolicyName=p"),
    ("ListUserPolicies", "UserName=victim"),
    (
        "PutGroupPolicy",
        "GroupName=team&PolicyName=gp2&PolicyDocument={document}",
    ),
    ("GetGroupPolicy", "GroupName=team&PolicyName=gp"),
    ("DeleteGroupPolicy", "GroupName=team&PolicyName=gp"),
    ("ListGroupPolicies", "GroupName=team"),
    (
        "PutRolePolicy",
        "RoleName=victim-role&PolicyName=rp2&PolicyDocument={document}",
    ),
    ("GetRolePolicy", "RoleName=victim-role&PolicyName=rp"),
    ("DeleteRolePolicy", "RoleName=victim-role&PolicyName=rp"),
    ("ListRolePolicies", "RoleName=victim-role"),
    (
        "CreateRole",
        "RoleName=new-role&AssumeRolePolicyDocument={trust}",
    ),
    ("GetRole", "RoleName=victim-role"),
    ("ListRoles", ""),
    ("UpdateRole", "RoleName=victim-role&Description=changed"),
    (
        "UpdateAssumeRolePolicy",
        "RoleName=victim-role&PolicyDocument={other_trust}",
    ),
    ("DeleteRole", "RoleName=victim-role"),
    (
        "TagRole",
        "RoleName=victim-role&Tags.member.1.Key=env&Tags.member.1.Value=test",
    ),
    ("UntagRole", "RoleName=victim-role&TagKeys.member.1=team"),
    ("ListRoleTags", "RoleName=victim-role"),
    (
        "CreatePolicy",
        "PolicyName=new-policy&PolicyDocument={document}",
    ),
    ("GetPolicy", "PolicyArn={policy_arn}"),
    ("ListPolicies", ""),
    ("DeletePolicy", "PolicyArn={policy_arn}"),
    (
        "CreatePolicyVersion",
        "PolicyArn={policy_arn}&PolicyDocument={document}",
    ),
    ("GetPolicyVersion", "PolicyArn={policy_arn}&VersionId=v1"),
    ("ListPolicyVersions", "PolicyArn={policy_arn}"),
    ("DeletePolicyVersion", "PolicyArn={policy_arn}&VersionId=v2"),
    (
        "SetDefaultPolicyVersion",
        "PolicyArn={policy_arn}&VersionId=v2",
    ),
    ("AttachUserPolicy", "UserName=plain&PolicyArn={policy_arn}"),
    ("DetachUserPolicy", "UserName=victim&PolicyArn={policy_arn}"),
    ("ListAttachedUserPolicies", "UserName=victim"),
    ("AttachGroupPolicy", "GroupName=team&PolicyArn={policy_arn}"),
    ("DetachGroupPolicy", "GroupName=team&PolicyArn={policy_arn}"),
    ("ListAttachedGroupPolicies", "GroupName=team"),
    (
        "AttachRolePolicy",
        "RoleName=victim-role&PolicyArn={policy_arn}",
    ),
    (
        "DetachRolePolicy",
        "RoleName=victim-role&PolicyArn={policy_arn}",
    ),
    ("ListAttachedRolePolicies", "RoleName=victim-role"),
    ("ListEntitiesForPolicy", "PolicyArn={policy_arn}"),
    ("CreateInstanceProfile", "InstanceProfileName=new-profile"),
    ("GetInstanceProfile", "InstanceProfileName=victim-profile"),
    ("ListInstanceProfiles", ""),
    ("ListInstanceProfilesForRole", "RoleName=victim-role"),
    (
        "DeleteInstanceProfile",
        "InstanceProfileName=victim-profile",
    ),
    (
        "AddRoleToInstanceProfile",
        "InstanceProfileName=spare-profile&RoleName=victim-role",
    ),
    (
        "RemoveRoleFromInstanceProfile",
        "InstanceProfileName=victim-profile&RoleName=victim-role",
    ),
    ("CreateAccountAlias", "AccountAlias=tenant-new"),
    ("DeleteAccountAlias", "AccountAlias=tenant-fixture"),
    ("ListAccountAliases", ""),
    ("GetAccountSummary", ""),
    ("CreateLoginProfile", "UserName=plain&Password={password}"),
    ("GetLoginProfile", "UserName=victim"),
    (
        "UpdateLoginProfile",
        "UserName=victim&PasswordResetRequired=true",
    ),
    ("DeleteLoginProfile", "UserName=victim"),
    ("CreateAccount", "AccountName=new-account"),
    ("ListAccounts", ""),
    ("DeleteAccount", "AccountName=other"),
];

/// Request parameters of each STS action.
const STS_PARAMS: &[(&str, &str)] = &[
    ("GetCallerIdentity", ""),
    ("GetAccessKeyInfo", "AccessKeyId={victim_key}"),
    ("GetSessionToken", ""),
    (
        "AssumeRole",
        "RoleArn=arn:aws:iam::{account}:role/victim-role&RoleSessionName=coverage",
    ),
    (
        "DecodeAuthorizationMessage",
        "EncodedMessage=bm90LXNlYWxlZA",
    ),
];

/// What every authenticated caller may run, whatever its policies say (as
/// on AWS): asking who it is, and session credentials that can do no more
/// than it can.
const ALWAYS_ALLOWED: &[&str] = &["sts:GetCallerIdentity", "sts:GetSessionToken"];

/// Actions that also need another permission (as on AWS: giving an
/// instance a role needs `iam:PassRole` on it); a user allowed the action
/// gets these too.
const ALSO_NEEDED: &[(&str, &[&str])] = &[
    ("ec2:AssociateIamInstanceProfile", &["iam:PassRole"]),
    (
        "ec2:ReplaceIamInstanceProfileAssociation",
        &["iam:PassRole"],
    ),
];

fn also_needed(action: &str) -> &'static [&'static str] {
    ALSO_NEEDED
        .iter()
        .find(|(a, _)| *a == action)
        .map_or(&[], |(_, also)| also)
}

/// How a service refuses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Refusal {
    /// 403 `UnauthorizedOperation` with an encoded message.
    Unauthorized,
    /// 403 `AccessDenied` naming the action.
    AccessDenied,
}

/// One Query API: its SigV4 service, declared actions and table.
struct QueryApi {
    service: &'static str,
    names: &'static [&'static str],
    table: &'static [(&'static str, &'static str)],
    refusal: Refusal,
}

const QUERY_APIS: &[QueryApi] = &[
    QueryApi {
        service: Ec2Action::SERVICE,
        names: Ec2Action::NAMES,
        table: EC2_PARAMS,
        refusal: Refusal::Unauthorized,
    },
    QueryApi {
        service: MetalAction::SERVICE,
        names: MetalAction::NAMES,
        table: METAL_PARAMS,
        refusal: Refusal::Unauthorized,
    },
    QueryApi {
        service: IamAction::SERVICE,
        names: IamAction::NAMES,
        table: IAM_PARAMS,
        refusal: Refusal::AccessDenied,
    },
    QueryApi {
        service: StsAction::SERVICE,
        names: StsAction::NAMES,
        table: STS_PARAMS,
        refusal: Refusal::AccessDenied,
    },
    QueryApi {
        service: BootstrapAction::SERVICE,
        names: BootstrapAction::NAMES,
        table: BOOTSTRAP_PARAMS,
        refusal: Refusal::AccessDenied,
    },
];

/// Request parameters of the bootstrap service's (Empyrean's) action.
const BOOTSTRAP_PARAMS: &[(&str, &str)] = &[(
    "DescribeServiceCertificates",
    "Format=pem&Filter.1.Name=certificate-usage&Filter.1.Value.1=image-bundling",
)];

impl QueryApi {
    /// Whether `params` parse as `action` with the API's own parser.
    fn parse(&self, action: &str, params: &QueryParams) -> Result<(), String> {
        let parsed = match self.service {
            "ec2" => Ec2Action::parse(action, params)
                .map(drop)
                .map_err(|e| e.to_string()),
            "metal" => MetalAction::parse(action, params)
                .map(drop)
                .map_err(|e| e.to_string()),
            "iam" => IamAction::parse(action, params)
                .map(drop)
                .map_err(|e| e.to_string()),
            "sts" => StsAction::parse(action, params)
                .map(drop)
                .map_err(|e| e.to_string()),
            "euserv" => BootstrapAction::parse(action, params)
                .map(drop)
                .map_err(|e| e.to_string()),
            other => Err(format!("no parser for {other}")),
        };
        parsed.map_err(|e| format!("{}:{action} does not parse: {e}", self.service))
    }
}

#[test]
fn every_query_action_has_exactly_one_entry() {
    for api in QUERY_APIS {
        let declared: BTreeSet<&str> = api.names.iter().copied().collect();
        let mut listed = BTreeSet::new();
        for (name, _) in api.table {
            assert!(
                listed.insert(*name),
                "{}:{name} has two entries",
                api.service
            );
        }
        let missing: Vec<_> = declared.difference(&listed).collect();
        let unknown: Vec<_> = listed.difference(&declared).collect();
        assert!(
            missing.is_empty(),
            "{} actions without an entry in the policy coverage table: {missing:?}",
            api.service
        );
        assert!(
            unknown.is_empty(),
            "{} table names actions that are not declared: {unknown:?}",
            api.service
        );
    }
}

/// The IAM action `reply` refuses, if it is a policy refusal. EC2's
/// sealed message is opened as a user would, by STS's
/// DecodeAuthorizationMessage as the account's admin.
async fn refused_action(
    c: &Controller,
    admin: &Key,
    reply: &Reply,
    refusal: Refusal,
) -> Option<String> {
    if reply.status != 403 {
        return None;
    }
    let message = reply.element("Message")?;
    match (refusal, reply.code()?) {
        (Refusal::Unauthorized, "UnauthorizedOperation") => {
            let encoded = message
                .split("Encoded authorization failure message: ")
                .nth(1)?;
            let decoded = query(
                c,
                admin,
                "sts",
                &[
                    ("Action".into(), "DecodeAuthorizationMessage".into()),
                    ("EncodedMessage".into(), encoded.into()),
                ],
            )
            .await;
            assert_eq!(decoded.status, 200, "{}", decoded.body);
            let json = decoded
                .element("DecodedMessage")?
                .replace("&quot;", "\"")
                .replace("&apos;", "'")
                .replace("&lt;", "<")
                .replace("&gt;", ">")
                .replace("&amp;", "&");
            let decoded: AuthzMessage = serde_json::from_str(&json).ok()?;
            Some(decoded.context.action)
        }
        (Refusal::AccessDenied, "AccessDenied") => {
            let rest = message.split("is not authorized to perform: ").nth(1)?;
            Some(rest.split_whitespace().next()?.to_owned())
        }
        _ => None,
    }
}

/// A Query request: `Action=…` and `params`, form-encoded.
async fn query(c: &Controller, key: &Key, service: &str, params: &[(String, String)]) -> Reply {
    let body = form_urlencoded::Serializer::new(String::new())
        .extend_pairs(params)
        .finish();
    send(
        c.addr,
        key,
        service,
        "POST",
        "/",
        &[(
            "content-type",
            "application/x-www-form-urlencoded; charset=utf-8",
        )],
        body.as_bytes(),
    )
    .await
}

/// What the table's placeholders stand for.
struct Fixtures {
    values: Vec<(&'static str, String)>,
}

impl Fixtures {
    /// `Action=name` and the table's parameters with placeholders filled.
    fn params(&self, action: &str, table: &str) -> Vec<(String, String)> {
        let mut out = vec![("Action".to_owned(), action.to_owned())];
        for pair in table.split('&').filter(|p| !p.is_empty()) {
            let mut pair = pair.to_owned();
            for (name, value) in &self.values {
                pair = pair.replace(&format!("{{{name}}}"), value);
            }
            // A placeholder may stand for several pairs.
            for part in pair.split('&') {
                let (k, v) = part.split_once('=').unwrap_or((part, ""));
                out.push((k.to_owned(), v.to_owned()));
            }
        }
        out
    }
}

/// The account's resources the destructive actions name, created by its
/// admin.
async fn query_fixtures(c: &Controller, a: &Account) -> Fixtures {
    let store = c.cloud.store.as_ref();
    let kp = "kp-fixture";
    let created = query(
        c,
        &a.admin,
        "ec2",
        &[
            ("Action".into(), "CreateKeyPair".into()),
            ("KeyName".into(), kp.into()),
            ("KeyType".into(), "ed25519".into()),
        ],
    )
    .await;
    assert_eq!(created.status, 200, "{}", created.body);
    let sg = query(
        c,
        &a.admin,
        "ec2",
        &[
            ("Action".into(), "CreateSecurityGroup".into()),
            ("GroupName".into(), "fixture-group".into()),
            ("GroupDescription".into(), "fixture".into()),
        ],
    )
    .await;
    assert_eq!(sg.status, 200, "{}", sg.body);
    let sg_id = sg.element("groupId").expect("groupId").to_owned();
    let rule = "IpPermissions.1.IpProtocol=tcp&IpPermissions.1.FromPort=22&IpPermissions.1.ToPort=22&IpPermissions.1.IpRanges.1.CidrIp=10.0.0.0/8";
    let tagged = query(
        c,
        &a.admin,
        "ec2",
        &Fixtures { values: vec![] }.params(
            "CreateTags",
            &format!("ResourceId.1={sg_id}&Tag.1.Key=team&Tag.1.Value=qa"),
        ),
    )
    .await;
    assert_eq!(tagged.status, 200, "{}", tagged.body);
    let egress = query(
        c,
        &a.admin,
        "ec2",
        &Fixtures { values: vec![] }.params(
            "AuthorizeSecurityGroupIngress",
            &format!("GroupId={sg_id}&{rule}"),
        ),
    )
    .await;
    assert_eq!(egress.status, 200, "{}", egress.body);
    // A template with a second version, for the launch template actions.
    for (action, params) in [
        (
            "CreateLaunchTemplate",
            "LaunchTemplateName=fixture-template&LaunchTemplateData.InstanceType=t1.micro",
        ),
        (
            "CreateLaunchTemplateVersion",
            "LaunchTemplateName=fixture-template&LaunchTemplateData.InstanceType=m1.small",
        ),
    ] {
        let made = query(
            c,
            &a.admin,
            "ec2",
            &Fixtures { values: vec![] }.params(action, params),
        )
        .await;
        assert_eq!(made.status, 200, "{}", made.body);
    }

    users::create(
        store,
        &a.id,
        "victim",
        None,
        [("team".into(), "qa".into())].into(),
    )
    .await
    .expect("victim");
    let victim_key = keys::create(store, &a.id, "victim").await.expect("key");
    let (victim_cert, _) = signing::create(store, &a.id, "victim")
        .await
        .expect("signing certificate");
    for group in ["team", "spare"] {
        groups::create(store, &a.id, group, None)
            .await
            .expect("group");
    }
    groups::add_user(store, &a.id, "team", "victim")
        .await
        .expect("member");
    let document = r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"ec2:Describe*","Resource":"*"}]}"#;
    policies::put(store, &a.id, &Holder::User("victim".into()), "p", document)
        .await
        .expect("user policy");
    policies::put(store, &a.id, &Holder::Group("team".into()), "gp", document)
        .await
        .expect("group policy");

    accounts::create_account(store, "other", false)
        .await
        .expect("other account");
    users::create(store, &a.id, "plain", None, Default::default())
        .await
        .expect("plain");
    let trust = |principal: &str| {
        format!(
            r#"{{"Version":"2012-10-17","Statement":[{{"Effect":"Allow","Principal":{{"AWS":"{principal}"}},"Action":"sts:AssumeRole"}}]}}"#
        )
    };
    let vpc = mallee_cloud::vpcs::default_vpc(&c.cloud, &a.id)
        .await
        .expect("default VPC")
        .vpc
        .vpc_id;
    let fixtures = Fixtures {
        values: vec![
            ("vpc", vpc),
            ("kp", kp.to_owned()),
            ("sg", sg_id),
            ("rule", rule.to_owned()),
            ("instance", INSTANCE.to_owned()),
            ("zone", format!("{REGION}a")),
            ("public_key", PUBLIC_KEY.to_owned()),
            ("victim_key", victim_key.access_key_id),
            ("victim_cert", victim_cert.certificate_id),
            ("document", document.to_owned()),
            ("account", a.id.clone()),
            ("trust", trust(&format!("arn:aws:iam::{}:root", a.id))),
            ("other_trust", trust("*")),
            (
                "policy_arn",
                format!("arn:aws:iam::{}:policy/coverage-policy", a.id),
            ),
            ("password", "Coverage-Passw0rd!".to_owned()),
        ],
    };
    for (action, params) in [
        (
            "CreateRole",
            "RoleName=victim-role&AssumeRolePolicyDocument={trust}&Tags.member.1.Key=team&Tags.member.1.Value=qa",
        ),
        (
            "PutRolePolicy",
            "RoleName=victim-role&PolicyName=rp&PolicyDocument={document}",
        ),
        (
            "CreatePolicy",
            "PolicyName=coverage-policy&PolicyDocument={document}",
        ),
        (
            "CreatePolicyVersion",
            "PolicyArn={policy_arn}&PolicyDocument={document}",
        ),
        ("AttachUserPolicy", "UserName=victim&PolicyArn={policy_arn}"),
        (
            "CreateInstanceProfile",
            "InstanceProfileName=victim-profile",
        ),
        ("CreateInstanceProfile", "InstanceProfileName=spare-profile"),
        (
            "AddRoleToInstanceProfile",
            "InstanceProfileName=victim-profile&RoleName=victim-role",
        ),
        ("CreateLoginProfile", "UserName=victim&Password={password}"),
        ("CreateAccountAlias", "AccountAlias=tenant-fixture"),
    ] {
        let reply = query(c, &a.admin, "iam", &fixtures.params(action, params)).await;
        assert_eq!(reply.status, 200, "fixture {action}: {}", reply.body);
    }
    fixtures
}

#[tokio::test]
async fn every_query_action_is_refused_without_permission_and_allowed_with_it() {
    let c = start().await;
    let a = account(&c).await;
    let fixtures = query_fixtures(&c, &a).await;

    let mut unparsed = Vec::new();
    for api in QUERY_APIS {
        for (action, table) in api.table {
            let params = fixtures.params(action, table);
            let parsed = QueryParams::from_pairs(params.iter().skip(1).cloned())
                .map_err(|e| e.to_string())
                .and_then(|p| api.parse(action, &p));
            if let Err(e) = parsed {
                unparsed.push(e);
            }
        }
    }
    assert!(unparsed.is_empty(), "{unparsed:#?}");

    // Refusals first: the allowed pass changes the fixtures.
    for api in QUERY_APIS {
        for (action, table) in api.table {
            let iam_action = format!("{}:{action}", api.service);
            policies_for(&c, &a, &iam_action, also_needed(&iam_action)).await;
            let params = fixtures.params(action, table);
            let before = digest(&c.data).await;
            let reply = query(&c, &a.denied, api.service, &params).await;
            let after = digest(&c.data).await;
            if ALWAYS_ALLOWED.contains(&iam_action.as_str()) {
                assert_eq!(reply.status, 200, "{iam_action}: {}", reply.body);
                continue;
            }
            assert_eq!(
                refused_action(&c, &a.admin, &reply, api.refusal)
                    .await
                    .as_deref(),
                Some(iam_action.as_str()),
                "{iam_action} was not refused to a user without it: {} {}",
                reply.status,
                reply.body
            );
            assert_eq!(before, after, "{iam_action} changed data although refused");
        }
    }

    // The digest sees what the allowed actions change.
    let before_allowed = digest(&c.data).await;
    for api in QUERY_APIS {
        for (action, table) in api.table {
            let iam_action = format!("{}:{action}", api.service);
            policies_for(&c, &a, &iam_action, also_needed(&iam_action)).await;
            let reply = query(&c, &a.allowed, api.service, &fixtures.params(action, table)).await;
            assert_eq!(
                refused_action(&c, &a.admin, &reply, api.refusal).await,
                None,
                "{iam_action} was refused to a user allowed it: {}",
                reply.body
            );
        }
    }
    assert_ne!(before_allowed, digest(&c.data).await);
}
