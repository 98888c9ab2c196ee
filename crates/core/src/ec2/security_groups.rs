//! Security groups: CreateSecurityGroup, DeleteSecurityGroup,
//! DescribeSecurityGroups, DescribeSecurityGroupRules and
//! Authorize/RevokeSecurityGroupIngress/Egress (`IpPermissions.N` and the
//! flat parameters euca2ools sends), plus what launching and the
//! reconciler need: the groups an instance launches with and the firewall
//! rules they add up to, with source groups expanded into member addresses.
//!
//! Rules are stored one per protocol, port range and peer, as AWS's `sgr-`
//! rules; DescribeSecurityGroups folds them back into `IpPermissions`.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::net::Ipv4Addr;
use std::str::FromStr;

use mallee_node_api::FirewallRule;
use mallee_store::{GroupDeletion, SecurityGroup, SecurityGroupRule, StoreError, TagPair};

use crate::Cloud;
use crate::api::filter::{self, Filter, Filterable, parse_filters};
use crate::api::pagination::PageRequest;
use crate::api::query::{QueryError, QueryParams};
use crate::api::xml::XmlWriter;
use crate::ids;

use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::vpcs::default_vpc;
use super::{Ec2Context, Ec2Error};

/// Tells the reconciler that firewalls must be recomputed now rather than
/// at its next pass. Called after every successful change to groups, rules
/// or memberships.
pub fn firewall_changed(cloud: &Cloud) {
    cloud.compute.wake();
}

// ------------------------------------------------------------------ CIDRs

/// An IPv4 network `a.b.c.d/n`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv4Net {
    /// Network address (host bits zero once canonical).
    pub addr: Ipv4Addr,
    /// Prefix length, 0–32.
    pub prefix: u8,
}

impl Ipv4Net {
    fn mask(&self) -> u32 {
        if self.prefix == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(self.prefix))
        }
    }

    /// The same network with host bits cleared, as AWS stores rule CIDRs
    /// (`10.1.2.3/8` → `10.0.0.0/8`).
    pub fn canonical(self) -> Self {
        Self {
            addr: Ipv4Addr::from(u32::from(self.addr) & self.mask()),
            prefix: self.prefix,
        }
    }

    /// Whether `ip` is inside.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & self.mask() == u32::from(self.addr) & self.mask()
    }
}

impl FromStr for Ipv4Net {
    type Err = ();

    /// Strict dotted-quad address and a decimal prefix.
    fn from_str(s: &str) -> Result<Self, ()> {
        let (addr, prefix) = s.split_once('/').ok_or(())?;
        if prefix.is_empty() || prefix.len() > 2 || !prefix.bytes().all(|b| b.is_ascii_digit()) {
            return Err(());
        }
        let prefix: u8 = prefix.parse().map_err(|_| ())?;
        if prefix > 32 {
            return Err(());
        }
        Ok(Self {
            addr: addr.parse().map_err(|_| ())?,
            prefix,
        })
    }
}

impl fmt::Display for Ipv4Net {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// A rule CIDR in AWS's canonical form; malformed ones are refused with
/// AWS's message.
fn canonical_cidr(cidr: &str) -> Result<String, Ec2Error> {
    cidr.trim()
        .parse::<Ipv4Net>()
        .map(|n| n.canonical().to_string())
        .map_err(|()| Ec2Error::InvalidParameterValue(format!("CIDR block {cidr} is malformed")))
}

// ------------------------------------------------------------ permissions

/// A protocol as AWS stores it: `tcp`, `udp`, `icmp`, `icmpv6`, `-1`, or
/// another protocol's number.
fn normalize_protocol(given: &str) -> Result<String, Ec2Error> {
    let lower = given.trim().to_ascii_lowercase();
    let name = match lower.as_str() {
        "tcp" | "6" => "tcp",
        "udp" | "17" => "udp",
        "icmp" | "1" => "icmp",
        "icmpv6" | "58" => "icmpv6",
        "-1" | "all" => "-1",
        other => match other.parse::<u8>() {
            Ok(number) => return Ok(number.to_string()),
            Err(_) => {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Invalid value '{given}' for IP protocol. Unknown protocol."
                )));
            }
        },
    };
    Ok(name.to_owned())
}

/// Checks and normalizes the port range of `protocol`: tcp/udp need both
/// ports (0–65535, from ≤ to); ICMP takes a type and a code (-1: any, and
/// any type means any code); other protocols have no ports.
fn normalize_ports(
    protocol: &str,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<(Option<i32>, Option<i32>), Ec2Error> {
    match protocol {
        "tcp" | "udp" => {
            let (Some(from), Some(to)) = (from, to) else {
                return Err(Ec2Error::InvalidParameterValue(
                    "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange"
                        .into(),
                ));
            };
            if !(0..=65535).contains(&from) || !(0..=65535).contains(&to) || from > to {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Invalid TCP/UDP port range {from}-{to}: ports are 0-65535 and from must not exceed to."
                )));
            }
            Ok((Some(from as i32), Some(to as i32)))
        }
        "icmp" | "icmpv6" => {
            let kind = from.unwrap_or(-1);
            let code = to.unwrap_or(-1);
            if !(-1..=255).contains(&kind) || !(-1..=255).contains(&code) {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Invalid ICMP type {kind} or code {code}: each is -1 (any) or 0-255."
                )));
            }
            if kind == -1 && code != -1 {
                return Err(Ec2Error::InvalidParameterValue(format!(
                    "Invalid ICMP code {code}: with any type (-1) the code must be -1."
                )));
            }
            Ok((Some(kind as i32), Some(code as i32)))
        }
        _ => Ok((None, None)),
    }
}

/// A source (ingress) or destination (egress) group named in a permission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupPeer {
    /// `GroupId`.
    pub group_id: Option<String>,
    /// `GroupName` (looked up in the target group's VPC).
    pub group_name: Option<String>,
    /// `UserId`: the owner; only the caller's own groups can be named.
    pub user_id: Option<String>,
    /// Rule description.
    pub description: Option<String>,
}

/// One `IpPermissions.N`, validated and normalized.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpPermission {
    /// Normalized protocol.
    pub protocol: String,
    /// First port or ICMP type.
    pub from_port: Option<i32>,
    /// Last port or ICMP code.
    pub to_port: Option<i32>,
    /// Canonical CIDRs with their descriptions.
    pub ranges: Vec<(String, Option<String>)>,
    /// Peer groups.
    pub groups: Vec<GroupPeer>,
}

fn description(params: &QueryParams) -> Result<Option<String>, Ec2Error> {
    match params.get("Description") {
        None => Ok(None),
        Some(d) if d.chars().count() > 255 => Err(Ec2Error::InvalidParameterValue(
            "Rule descriptions are at most 255 characters".into(),
        )),
        Some(d) => Ok(Some(d.to_owned())),
    }
}

fn non_empty(params: &QueryParams, name: &str) -> Option<String> {
    params
        .get(name)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn build_permission(
    protocol: &str,
    from: Option<i64>,
    to: Option<i64>,
    ranges: Vec<(String, Option<String>)>,
    groups: Vec<GroupPeer>,
) -> Result<IpPermission, Ec2Error> {
    let protocol = normalize_protocol(protocol)?;
    let (from_port, to_port) = normalize_ports(&protocol, from, to)?;
    if ranges.is_empty() && groups.is_empty() {
        return Err(Ec2Error::refused(
            "InvalidPermission.Malformed",
            "A permission must name a peer: an IPv4 range (CidrIp) or a security group.",
        ));
    }
    Ok(IpPermission {
        protocol,
        from_port,
        to_port,
        ranges,
        groups,
    })
}

/// Reads `IpPermissions.N…`, or the flat `IpProtocol`, `FromPort`,
/// `ToPort`, `CidrIp`, `SourceSecurityGroupName`, `SourceSecurityGroupOwnerId`
/// that older clients send (one of the two forms). With
/// `allow_empty`, neither form is fine (Revoke by rule id).
pub fn parse_permissions(
    params: &QueryParams,
    allow_empty: bool,
) -> Result<Vec<IpPermission>, Ec2Error> {
    let structured = params.structs("IpPermissions")?;
    const FLAT: &[&str] = &[
        "IpProtocol",
        "FromPort",
        "ToPort",
        "CidrIp",
        "SourceSecurityGroupName",
        "SourceSecurityGroupOwnerId",
    ];
    let flat = FLAT.iter().any(|name| params.get(name).is_some());
    if flat && !structured.is_empty() {
        return Err(Ec2Error::InvalidParameterCombination(
            "The parameter IpPermissions cannot be used with IpProtocol, FromPort, ToPort, CidrIp or SourceSecurityGroupName.".into(),
        ));
    }
    if flat {
        let source_group = non_empty(params, "SourceSecurityGroupName");
        let protocol = match params.get("IpProtocol") {
            Some(p) => p.to_owned(),
            // A source group alone allows everything from it, as EC2 did.
            None if source_group.is_some() => "-1".to_owned(),
            None => return Err(QueryError::Missing("IpProtocol".into()).into()),
        };
        let mut ranges = Vec::new();
        if let Some(cidr) = params.get("CidrIp") {
            ranges.push((canonical_cidr(cidr)?, None));
        }
        let groups = source_group
            .map(|name| GroupPeer {
                group_id: None,
                group_name: Some(name),
                user_id: non_empty(params, "SourceSecurityGroupOwnerId"),
                description: None,
            })
            .into_iter()
            .collect();
        return Ok(vec![build_permission(
            &protocol,
            params.int("FromPort")?,
            params.int("ToPort")?,
            ranges,
            groups,
        )?]);
    }
    if structured.is_empty() && !allow_empty {
        return Err(QueryError::Missing("IpPermissions".into()).into());
    }
    let mut permissions = Vec::new();
    for p in structured {
        if !p.structs("Ipv6Ranges")?.is_empty() {
            return Err(Ec2Error::InvalidParameterValue(
                "IPv6 ranges are not supported: VPCs have no IPv6 CIDR block.".into(),
            ));
        }
        if !p.structs("PrefixListIds")?.is_empty() {
            return Err(Ec2Error::InvalidParameterValue(
                "Prefix lists are not supported.".into(),
            ));
        }
        let mut ranges = Vec::new();
        for range in p.structs("IpRanges")? {
            let cidr = range.required_non_empty("CidrIp")?;
            ranges.push((canonical_cidr(cidr)?, description(&range)?));
        }
        let mut groups = Vec::new();
        for g in p.structs("Groups")? {
            let peer = GroupPeer {
                group_id: non_empty(&g, "GroupId"),
                group_name: non_empty(&g, "GroupName"),
                user_id: non_empty(&g, "UserId"),
                description: description(&g)?,
            };
            if peer.group_id.is_none() && peer.group_name.is_none() {
                g.required_non_empty("GroupId")?;
            }
            groups.push(peer);
        }
        permissions.push(build_permission(
            p.required_non_empty("IpProtocol")?,
            p.int("FromPort")?,
            p.int("ToPort")?,
            ranges,
            groups,
        )?);
    }
    Ok(permissions)
}

// ------------------------------------------------------------- lookups

/// Whether `id` looks like a security group id (`sg-` and 8 or 17 hex).
fn is_group_id(id: &str) -> bool {
    id.strip_prefix("sg-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn malformed_group_id(id: &str) -> Ec2Error {
    Ec2Error::refused(
        "InvalidGroupId.Malformed",
        format!("Invalid id: \"{id}\" (expecting \"sg-...\")"),
    )
}

fn group_id_not_found(id: &str) -> Ec2Error {
    Ec2Error::refused(
        "InvalidGroup.NotFound",
        format!("The security group '{id}' does not exist"),
    )
}

fn group_name_not_found(name: &str, vpc_id: &str) -> Ec2Error {
    Ec2Error::refused(
        "InvalidGroup.NotFound",
        format!("The security group '{name}' does not exist in VPC '{vpc_id}'"),
    )
}

/// The caller's groups, with the default VPC (and its default group)
/// created first if needed.
struct AccountGroups {
    account_id: String,
    default_vpc_id: String,
    groups: Vec<SecurityGroup>,
}

impl AccountGroups {
    async fn load(cloud: &Cloud, account_id: &str) -> Result<Self, Ec2Error> {
        let vpc = default_vpc(cloud, account_id).await?;
        Ok(Self {
            account_id: account_id.to_owned(),
            default_vpc_id: vpc.vpc.vpc_id,
            groups: cloud.store.security_groups(account_id).await?,
        })
    }

    fn by_id(&self, id: &str) -> Result<&SecurityGroup, Ec2Error> {
        if !is_group_id(id) {
            return Err(malformed_group_id(id));
        }
        self.groups
            .iter()
            .find(|g| g.group_id == id)
            .ok_or_else(|| group_id_not_found(id))
    }

    fn by_name(&self, name: &str, vpc_id: &str) -> Result<&SecurityGroup, Ec2Error> {
        self.groups
            .iter()
            .find(|g| g.name == name && g.vpc_id == vpc_id)
            .ok_or_else(|| group_name_not_found(name, vpc_id))
    }

    /// `GroupId`, else `GroupName` in the default VPC.
    fn target(&self, id: Option<&str>, name: Option<&str>) -> Result<&SecurityGroup, Ec2Error> {
        match (id, name) {
            (Some(id), _) => self.by_id(id),
            (None, Some(name)) => self.by_name(name, &self.default_vpc_id),
            (None, None) => Err(QueryError::Missing("GroupId".into()).into()),
        }
    }

    /// The group a permission names as its peer, in `target`'s VPC.
    fn peer(&self, peer: &GroupPeer, target: &SecurityGroup) -> Result<&SecurityGroup, Ec2Error> {
        if let Some(owner) = &peer.user_id
            && owner != &self.account_id
        {
            let named = peer.group_id.as_deref().or(peer.group_name.as_deref());
            return Err(group_id_not_found(named.unwrap_or_default()));
        }
        let group = match (&peer.group_id, &peer.group_name) {
            (Some(id), _) => self.by_id(id)?,
            (None, Some(name)) => self.by_name(name, &target.vpc_id)?,
            (None, None) => return Err(QueryError::Missing("GroupId".into()).into()),
        };
        if group.vpc_id != target.vpc_id {
            return Err(Ec2Error::refused(
                "InvalidGroup.NotFound",
                format!(
                    "The security group '{}' does not exist in VPC '{}'",
                    group.group_id, target.vpc_id
                ),
            ));
        }
        Ok(group)
    }
}

/// The rules `permissions` stand for on `target` (fresh ids, not stored).
fn rules_for(
    groups: &AccountGroups,
    target: &SecurityGroup,
    egress: bool,
    permissions: &[IpPermission],
) -> Result<Vec<SecurityGroupRule>, Ec2Error> {
    let now = ids::now_millis();
    let base = |p: &IpPermission, description: &Option<String>| SecurityGroupRule {
        rule_id: ids::resource_id("sgr"),
        group_id: target.group_id.clone(),
        account_id: target.account_id.clone(),
        egress,
        protocol: p.protocol.clone(),
        from_port: p.from_port,
        to_port: p.to_port,
        cidr: None,
        referenced_group_id: None,
        description: description.clone(),
        created_at: now,
    };
    let mut rules = Vec::new();
    for p in permissions {
        for (cidr, description) in &p.ranges {
            rules.push(SecurityGroupRule {
                cidr: Some(cidr.clone()),
                ..base(p, description)
            });
        }
        for peer in &p.groups {
            let group = groups.peer(peer, target)?;
            rules.push(SecurityGroupRule {
                referenced_group_id: Some(group.group_id.clone()),
                ..base(p, &peer.description)
            });
        }
    }
    Ok(rules)
}

fn describe_flow(rule: &SecurityGroupRule) -> String {
    let peer = rule
        .cidr
        .as_deref()
        .or(rule.referenced_group_id.as_deref())
        .unwrap_or_default();
    let protocol = match rule.protocol.as_str() {
        "-1" => "ALL".to_owned(),
        p => p.to_ascii_uppercase(),
    };
    let from = rule.from_port.unwrap_or(-1);
    let to = rule.to_port.unwrap_or(-1);
    format!("peer: {peer}, {protocol}, from port: {from}, to port: {to}, ALLOW")
}

// ---------------------------------------------------------------- XML

/// Writes a rule in the `SecurityGroupRule` shape.
fn write_rule(
    w: &mut XmlWriter,
    cloud: &Cloud,
    rule: &SecurityGroupRule,
    tags: &[(String, String)],
) {
    w.text("securityGroupRuleId", &rule.rule_id);
    w.text("groupId", &rule.group_id);
    w.text("groupOwnerId", &rule.account_id);
    w.text("isEgress", rule.egress);
    w.text("ipProtocol", &rule.protocol);
    w.text("fromPort", rule.from_port.unwrap_or(-1));
    w.text("toPort", rule.to_port.unwrap_or(-1));
    w.opt_text("cidrIpv4", rule.cidr.as_ref());
    if let Some(group) = &rule.referenced_group_id {
        w.elem("referencedGroupInfo", |w| {
            w.text("groupId", group);
            w.text("userId", &rule.account_id);
        });
    }
    w.opt_text("description", rule.description.as_ref());
    w.text(
        "securityGroupRuleArn",
        format!(
            "arn:aws:ec2:{}:{}:security-group-rule/{}",
            cloud.config.region, rule.account_id, rule.rule_id
        ),
    );
    write_tag_set(w, tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
}

/// Rules sharing a protocol and port range: (protocol, from, to, rules).
type FoldedPermission<'a> = (
    &'a str,
    Option<i32>,
    Option<i32>,
    Vec<&'a SecurityGroupRule>,
);

/// Writes `name` as a list of `IpPermission`s: rules folded by protocol
/// and ports, in first-seen order.
fn write_permissions<'a>(
    w: &mut XmlWriter,
    name: &str,
    rules: impl IntoIterator<Item = &'a SecurityGroupRule>,
) {
    let mut folded: Vec<FoldedPermission<'a>> = Vec::new();
    for rule in rules {
        match folded
            .iter_mut()
            .find(|(p, f, t, _)| *p == rule.protocol && *f == rule.from_port && *t == rule.to_port)
        {
            Some((_, _, _, members)) => members.push(rule),
            None => folded.push((&rule.protocol, rule.from_port, rule.to_port, vec![rule])),
        }
    }
    w.items(name, folded, |w, (protocol, from, to, members)| {
        w.text("ipProtocol", protocol);
        w.opt_text("fromPort", from);
        w.opt_text("toPort", to);
        w.items(
            "groups",
            members.iter().filter(|r| r.referenced_group_id.is_some()),
            |w, r| {
                w.text("userId", &r.account_id);
                w.opt_text("groupId", r.referenced_group_id.as_ref());
                w.opt_text("description", r.description.as_ref());
            },
        );
        w.items(
            "ipRanges",
            members.iter().filter(|r| r.cidr.is_some()),
            |w, r| {
                w.opt_text("cidrIp", r.cidr.as_ref());
                w.opt_text("description", r.description.as_ref());
            },
        );
        w.elem("ipv6Ranges", |_| {});
        w.elem("prefixListIds", |_| {});
    });
}

/// Writes an `IpPermission` list for permissions as requested (Revoke's
/// unknown ones).
fn write_requested_permissions(w: &mut XmlWriter, name: &str, permissions: &[IpPermission]) {
    w.items(name, permissions, |w, p| {
        w.text("ipProtocol", &p.protocol);
        w.opt_text("fromPort", p.from_port);
        w.opt_text("toPort", p.to_port);
        w.items("groups", &p.groups, |w, g| {
            w.opt_text("userId", g.user_id.as_ref());
            w.opt_text("groupId", g.group_id.as_ref());
            w.opt_text("groupName", g.group_name.as_ref());
            w.opt_text("description", g.description.as_ref());
        });
        w.items("ipRanges", &p.ranges, |w, (cidr, description)| {
            w.text("cidrIp", cidr);
            w.opt_text("description", description.as_ref());
        });
        w.elem("ipv6Ranges", |_| {});
        w.elem("prefixListIds", |_| {});
    });
}

// ------------------------------------------------------ CreateSecurityGroup

/// Characters AWS allows in VPC security group names and descriptions.
fn valid_group_text(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c))
}

/// CreateSecurityGroup input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSecurityGroup {
    name: String,
    description: String,
    vpc_id: Option<String>,
    tags: Vec<TagPair>,
}

impl CreateSecurityGroup {
    /// Reads `GroupName`, `GroupDescription`, `VpcId`, `TagSpecification.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let name = params.required_non_empty("GroupName")?.to_owned();
        let description = params.required_non_empty("GroupDescription")?.to_owned();
        if name.chars().count() > 255 || !valid_group_text(&name) {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Value ({name}) for parameter GroupName is invalid. Names are at most 255 characters of a-z, A-Z, 0-9, spaces and ._-:/()#,@[]+=&;{{}}!$*"
            )));
        }
        if name.to_ascii_lowercase().starts_with("sg-") {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Value ({name}) for parameter GroupName is invalid. Group names may not be in the format sg-*."
            )));
        }
        if description.chars().count() > 255 || !valid_group_text(&description) {
            return Err(Ec2Error::InvalidParameterValue(format!(
                "Value ({description}) for parameter GroupDescription is invalid. Descriptions are at most 255 characters of a-z, A-Z, 0-9, spaces and ._-:/()#,@[]+=&;{{}}!$*"
            )));
        }
        if name == "default" {
            return Err(Ec2Error::refused(
                "InvalidGroup.Reserved",
                "The security group 'default' is reserved",
            ));
        }
        Ok(Self {
            name,
            description,
            vpc_id: non_empty(params, "VpcId"),
            tags: parse_tag_specifications(params, "security-group")?,
        })
    }

    /// Creates the group with AWS's initial rule (all egress).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let cloud = ctx.cloud;
        let account = &ctx.principal.account.account_id;
        let default = default_vpc(cloud, account).await?;
        let vpc_id = match self.vpc_id {
            None => default.vpc.vpc_id,
            Some(id) => match cloud.store.vpc(&id).await? {
                Some(vpc) if &vpc.account_id == account => vpc.vpc_id,
                _ => {
                    return Err(Ec2Error::refused(
                        "InvalidVpcID.NotFound",
                        format!("The vpc ID '{id}' does not exist"),
                    ));
                }
            },
        };
        let now = ids::now_millis();
        let group = SecurityGroup {
            group_id: ids::resource_id("sg"),
            account_id: account.clone(),
            vpc_id: vpc_id.clone(),
            name: self.name,
            description: self.description,
            created_at: now,
        };
        let egress = SecurityGroupRule {
            rule_id: ids::resource_id("sgr"),
            group_id: group.group_id.clone(),
            account_id: account.clone(),
            egress: true,
            protocol: "-1".into(),
            from_port: None,
            to_port: None,
            cidr: Some("0.0.0.0/0".into()),
            referenced_group_id: None,
            description: None,
            created_at: now,
        };
        match cloud
            .store
            .create_security_group(&group, std::slice::from_ref(&egress), &self.tags)
            .await
        {
            Err(StoreError::Conflict(_)) => {
                return Err(Ec2Error::refused(
                    "InvalidGroup.Duplicate",
                    format!(
                        "The security group '{}' already exists for VPC '{vpc_id}'",
                        group.name
                    ),
                ));
            }
            other => other?,
        }
        firewall_changed(cloud);
        Ok(ctx.respond("CreateSecurityGroup", |w| {
            w.text("return", "true");
            w.text("groupId", &group.group_id);
            write_tag_set(
                w,
                self.tags.iter().map(|t| (t.key.as_str(), t.value.as_str())),
            );
            w.text("securityGroupArn", group_arn(cloud, &group));
        }))
    }
}

fn group_arn(cloud: &Cloud, group: &SecurityGroup) -> String {
    format!(
        "arn:aws:ec2:{}:{}:security-group/{}",
        cloud.config.region, group.account_id, group.group_id
    )
}

// ------------------------------------------------------ DeleteSecurityGroup

/// DeleteSecurityGroup input.
#[derive(Debug, Clone, PartialEq)]
pub struct DeleteSecurityGroup {
    id: Option<String>,
    name: Option<String>,
}

impl DeleteSecurityGroup {
    /// Reads `GroupId` or `GroupName`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let id = non_empty(params, "GroupId");
        let name = non_empty(params, "GroupName");
        if id.is_none() && name.is_none() {
            return Err(QueryError::Missing("GroupId".into()).into());
        }
        Ok(Self { id, name })
    }

    /// Deletes the group unless it is the VPC's default group, an instance
    /// is in it, or another group's rule references it.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let cloud = ctx.cloud;
        let account = &ctx.principal.account.account_id;
        let groups = AccountGroups::load(cloud, account).await?;
        let group = groups.target(self.id.as_deref(), self.name.as_deref())?;
        if group.name == "default" {
            return Err(Ec2Error::refused(
                "CannotDelete",
                format!(
                    "the specified group: \"{}\" name: \"default\" cannot be deleted by a user",
                    group.group_id
                ),
            ));
        }
        let dependent = |what: &str| {
            Ec2Error::refused(
                "DependencyViolation",
                format!(
                    "resource {} has a dependent object ({what})",
                    group.group_id
                ),
            )
        };
        match cloud
            .store
            .delete_security_group(account, &group.group_id)
            .await?
        {
            GroupDeletion::Deleted => {}
            GroupDeletion::NotFound => return Err(group_id_not_found(&group.group_id)),
            GroupDeletion::InUse { instance_id } => {
                return Err(dependent(&format!("instance {instance_id}")));
            }
            GroupDeletion::Referenced { group_id } => {
                return Err(dependent(&format!("a rule of security group {group_id}")));
            }
        }
        firewall_changed(cloud);
        Ok(ctx.respond("DeleteSecurityGroup", |w| {
            w.text("return", "true");
            w.text("groupId", &group.group_id);
        }))
    }
}

// --------------------------------------------------- DescribeSecurityGroups

struct GroupView<'a> {
    group: &'a SecurityGroup,
    ingress: Vec<&'a SecurityGroupRule>,
    egress: Vec<&'a SecurityGroupRule>,
    names: &'a HashMap<&'a str, &'a str>,
    tags: &'a [(String, String)],
}

impl GroupView<'_> {
    fn permission_values(
        rules: &[&SecurityGroupRule],
        names: &HashMap<&str, &str>,
        field: &str,
    ) -> Option<Vec<String>> {
        let values = rules.iter().filter_map(|r| match field {
            "protocol" => Some(r.protocol.clone()),
            "from-port" => Some(r.from_port.unwrap_or(-1).to_string()),
            "to-port" => Some(r.to_port.unwrap_or(-1).to_string()),
            "cidr" => r.cidr.clone(),
            "group-id" => r.referenced_group_id.clone(),
            "group-name" => r
                .referenced_group_id
                .as_deref()
                .and_then(|id| names.get(id))
                .map(|n| (*n).to_owned()),
            "user-id" => r.referenced_group_id.as_ref().map(|_| r.account_id.clone()),
            _ => None,
        });
        match field {
            "protocol" | "from-port" | "to-port" | "cidr" | "group-id" | "group-name"
            | "user-id" => Some(values.collect()),
            _ => None,
        }
    }
}

impl Filterable for GroupView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        let g = self.group;
        if let Some(field) = name.strip_prefix("egress.ip-permission.") {
            return Self::permission_values(&self.egress, self.names, field);
        }
        if let Some(field) = name.strip_prefix("ip-permission.") {
            return Self::permission_values(&self.ingress, self.names, field);
        }
        Some(vec![match name {
            "group-id" => g.group_id.clone(),
            "group-name" => g.name.clone(),
            "description" => g.description.clone(),
            "vpc-id" => g.vpc_id.clone(),
            "owner-id" => g.account_id.clone(),
            _ => return None,
        }])
    }
    fn tags(&self) -> &[(String, String)] {
        self.tags
    }
    fn taggable(&self) -> bool {
        true
    }
}

const PERMISSION_FIELDS: &[&str] = &[
    "protocol",
    "from-port",
    "to-port",
    "cidr",
    "group-id",
    "group-name",
    "user-id",
];

fn valid_group_filter(name: &str) -> bool {
    const PLAIN: &[&str] = &[
        "group-id",
        "group-name",
        "description",
        "vpc-id",
        "owner-id",
    ];
    PLAIN.contains(&name)
        || name
            .strip_prefix("egress.ip-permission.")
            .or_else(|| name.strip_prefix("ip-permission."))
            .is_some_and(|field| PERMISSION_FIELDS.contains(&field))
}

/// DescribeSecurityGroups input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeSecurityGroups {
    names: Vec<String>,
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeSecurityGroups {
    /// Reads `GroupName.N`, `GroupId.N`, `Filter.N`, `MaxResults` (5–1000),
    /// `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        if let Some(bad) = filters.iter().find(|f| {
            !valid_group_filter(&f.name)
                && !f.name.starts_with("tag:")
                && f.name != "tag-key"
                && f.name != "tag-value"
        }) {
            return Err(filter::FilterError::UnknownName(bad.name.clone()).into());
        }
        Ok(Self {
            names: params.list("GroupName")?,
            ids: params.list("GroupId")?,
            filters,
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// Lists the caller's groups; a named group that is missing is an error.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let cloud = ctx.cloud;
        let account = &ctx.principal.account.account_id;
        let groups = AccountGroups::load(cloud, account).await?;
        let mut wanted: Vec<&str> = Vec::new();
        for id in &self.ids {
            wanted.push(&groups.by_id(id)?.group_id);
        }
        for name in &self.names {
            wanted.push(&groups.by_name(name, &groups.default_vpc_id)?.group_id);
        }
        let rules = cloud.store.security_group_rules(account).await?;
        let tags = TagsByResource::load(ctx, account).await?;
        let names: HashMap<&str, &str> = groups
            .groups
            .iter()
            .map(|g| (g.group_id.as_str(), g.name.as_str()))
            .collect();
        let selected: Vec<GroupView<'_>> = groups
            .groups
            .iter()
            .filter(|g| wanted.is_empty() || wanted.contains(&g.group_id.as_str()))
            .map(|group| GroupView {
                group,
                ingress: rules
                    .iter()
                    .filter(|r| r.group_id == group.group_id && !r.egress)
                    .collect(),
                egress: rules
                    .iter()
                    .filter(|r| r.group_id == group.group_id && r.egress)
                    .collect(),
                names: &names,
                tags: tags.of(&group.group_id),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        let (page, next) = self.page.apply(selected, |v| v.group.group_id.clone());
        Ok(ctx.respond("DescribeSecurityGroups", |w| {
            w.items("securityGroupInfo", page, |w, view| {
                let g = view.group;
                w.text("ownerId", &g.account_id);
                w.text("groupId", &g.group_id);
                w.text("groupName", &g.name);
                w.text("groupDescription", &g.description);
                w.text("vpcId", &g.vpc_id);
                write_permissions(w, "ipPermissions", view.ingress.iter().copied());
                write_permissions(w, "ipPermissionsEgress", view.egress.iter().copied());
                write_tag_set(w, view.tags.iter().map(|(k, v)| (k.as_str(), v.as_str())));
                w.text("securityGroupArn", group_arn(cloud, g));
            });
            w.opt_text("nextToken", next);
        }))
    }
}

// ----------------------------------------------- DescribeSecurityGroupRules

struct RuleView<'a> {
    rule: &'a SecurityGroupRule,
    tags: &'a [(String, String)],
}

impl Filterable for RuleView<'_> {
    fn filter_values(&self, name: &str) -> Option<Vec<String>> {
        Some(vec![match name {
            "group-id" => self.rule.group_id.clone(),
            "security-group-rule-id" => self.rule.rule_id.clone(),
            _ => return None,
        }])
    }
    fn tags(&self) -> &[(String, String)] {
        self.tags
    }
    fn taggable(&self) -> bool {
        true
    }
}

/// DescribeSecurityGroupRules input.
#[derive(Debug, Clone, PartialEq)]
pub struct DescribeSecurityGroupRules {
    ids: Vec<String>,
    filters: Vec<Filter>,
    page: PageRequest,
}

impl DescribeSecurityGroupRules {
    /// Reads `SecurityGroupRuleId.N`, `Filter.N`, `MaxResults` (5–1000),
    /// `NextToken`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let filters = parse_filters(params)?;
        filter::validate_names(&filters, &["group-id", "security-group-rule-id"], true)?;
        Ok(Self {
            ids: params.list("SecurityGroupRuleId")?,
            filters,
            page: PageRequest::parse(params, 5, 1000)?,
        })
    }

    /// Lists the caller's rules.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let cloud = ctx.cloud;
        let account = &ctx.principal.account.account_id;
        default_vpc(cloud, account).await?;
        let rules = cloud.store.security_group_rules(account).await?;
        if let Some(missing) = self
            .ids
            .iter()
            .find(|id| !rules.iter().any(|r| &r.rule_id == *id))
        {
            return Err(rule_not_found(missing));
        }
        let tags = TagsByResource::load(ctx, account).await?;
        let mut selected: Vec<RuleView<'_>> = rules
            .iter()
            .filter(|r| self.ids.is_empty() || self.ids.contains(&r.rule_id))
            .map(|rule| RuleView {
                rule,
                tags: tags.of(&rule.rule_id),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        selected.sort_by(|a, b| a.rule.rule_id.cmp(&b.rule.rule_id));
        let (page, next) = self.page.apply(selected, |v| v.rule.rule_id.clone());
        Ok(ctx.respond("DescribeSecurityGroupRules", |w| {
            w.items("securityGroupRuleSet", page, |w, view| {
                write_rule(w, cloud, view.rule, view.tags);
            });
            w.opt_text("nextToken", next);
        }))
    }
}

fn rule_not_found(id: &str) -> Ec2Error {
    Ec2Error::refused(
        "InvalidSecurityGroupRuleId.NotFound",
        format!("The security group rule ID '{id}' does not exist"),
    )
}

// --------------------------------------------------------- Authorize/Revoke

/// Which of the four rule-changing actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuleAction {
    AuthorizeIngress,
    AuthorizeEgress,
    RevokeIngress,
    RevokeEgress,
}

impl RuleAction {
    fn name(self) -> &'static str {
        match self {
            Self::AuthorizeIngress => "AuthorizeSecurityGroupIngress",
            Self::AuthorizeEgress => "AuthorizeSecurityGroupEgress",
            Self::RevokeIngress => "RevokeSecurityGroupIngress",
            Self::RevokeEgress => "RevokeSecurityGroupEgress",
        }
    }
    fn egress(self) -> bool {
        matches!(self, Self::AuthorizeEgress | Self::RevokeEgress)
    }
    fn revoke(self) -> bool {
        matches!(self, Self::RevokeIngress | Self::RevokeEgress)
    }
}

/// The input of the four rule-changing actions.
#[derive(Debug, Clone, PartialEq)]
pub struct RuleChange {
    action: RuleAction,
    group_id: Option<String>,
    group_name: Option<String>,
    permissions: Vec<IpPermission>,
    rule_ids: Vec<String>,
    tags: Vec<TagPair>,
}

impl RuleChange {
    fn parse(params: &QueryParams, action: RuleAction) -> Result<Self, Ec2Error> {
        let group_id = non_empty(params, "GroupId");
        let group_name = non_empty(params, "GroupName");
        if group_id.is_none() && group_name.is_none() {
            return Err(QueryError::Missing("GroupId".into()).into());
        }
        let rule_ids = if action.revoke() {
            params.list("SecurityGroupRuleId")?
        } else {
            Vec::new()
        };
        let permissions = parse_permissions(params, !rule_ids.is_empty())?;
        if !permissions.is_empty() && !rule_ids.is_empty() {
            return Err(Ec2Error::InvalidParameterCombination(
                "The parameter SecurityGroupRuleId cannot be used with IpPermissions.".into(),
            ));
        }
        let tags = if action.revoke() {
            Vec::new()
        } else {
            parse_tag_specifications(params, "security-group-rule")?
        };
        Ok(Self {
            action,
            group_id,
            group_name,
            permissions,
            rule_ids,
            tags,
        })
    }

    /// AuthorizeSecurityGroupIngress.
    pub fn authorize_ingress(params: &QueryParams) -> Result<Self, Ec2Error> {
        Self::parse(params, RuleAction::AuthorizeIngress)
    }
    /// AuthorizeSecurityGroupEgress.
    pub fn authorize_egress(params: &QueryParams) -> Result<Self, Ec2Error> {
        Self::parse(params, RuleAction::AuthorizeEgress)
    }
    /// RevokeSecurityGroupIngress.
    pub fn revoke_ingress(params: &QueryParams) -> Result<Self, Ec2Error> {
        Self::parse(params, RuleAction::RevokeIngress)
    }
    /// RevokeSecurityGroupEgress.
    pub fn revoke_egress(params: &QueryParams) -> Result<Self, Ec2Error> {
        Self::parse(params, RuleAction::RevokeEgress)
    }

    /// Adds or removes the rules, all or none for Authorize.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let cloud = ctx.cloud;
        let account = &ctx.principal.account.account_id;
        let groups = AccountGroups::load(cloud, account).await?;
        let target = groups.target(self.group_id.as_deref(), self.group_name.as_deref())?;
        let egress = self.action.egress();
        let requested = rules_for(&groups, target, egress, &self.permissions)?;
        let existing: Vec<SecurityGroupRule> = cloud
            .store
            .rules_of_groups(std::slice::from_ref(&target.group_id))
            .await?
            .into_iter()
            .filter(|r| r.egress == egress)
            .collect();
        if self.action.revoke() {
            return self.revoke(ctx, requested, existing).await;
        }
        for (i, rule) in requested.iter().enumerate() {
            if existing
                .iter()
                .chain(&requested[..i])
                .any(|r| r.same_flow(rule))
            {
                return Err(duplicate(rule));
            }
        }
        match cloud
            .store
            .add_security_group_rules(&requested, &self.tags)
            .await
        {
            Err(StoreError::Conflict(id)) => {
                let rule = requested.iter().find(|r| r.rule_id == id);
                return Err(rule.map_or_else(
                    || {
                        Ec2Error::refused(
                            "InvalidPermission.Duplicate",
                            "the specified rule already exists",
                        )
                    },
                    duplicate,
                ));
            }
            Err(StoreError::NotFound(id)) => return Err(group_id_not_found(&id)),
            other => other?,
        }
        firewall_changed(cloud);
        let tags: Vec<(String, String)> = self
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        Ok(ctx.respond(self.action.name(), |w| {
            w.text("return", "true");
            w.items("securityGroupRuleSet", &requested, |w, rule| {
                write_rule(w, cloud, rule, &tags);
            });
        }))
    }

    async fn revoke(
        self,
        ctx: &Ec2Context<'_>,
        requested: Vec<SecurityGroupRule>,
        existing: Vec<SecurityGroupRule>,
    ) -> Result<String, Ec2Error> {
        let cloud = ctx.cloud;
        let mut revoked: Vec<&SecurityGroupRule> = Vec::new();
        for id in &self.rule_ids {
            match existing.iter().find(|r| &r.rule_id == id) {
                Some(rule) => push_once(&mut revoked, rule),
                None => return Err(rule_not_found(id)),
            }
        }
        // In a default VPC, EC2 revokes the rules it knows and reports the
        // others instead of failing.
        let mut unknown: Vec<IpPermission> = Vec::new();
        let mut requested = requested.iter();
        for permission in &self.permissions {
            let mut missing = IpPermission {
                ranges: Vec::new(),
                groups: Vec::new(),
                ..permission.clone()
            };
            for range in &permission.ranges {
                let wanted = requested.next();
                match wanted.and_then(|w| existing.iter().find(|r| r.same_flow(w))) {
                    Some(rule) => push_once(&mut revoked, rule),
                    None => missing.ranges.push(range.clone()),
                }
            }
            for peer in &permission.groups {
                let wanted = requested.next();
                match wanted.and_then(|w| existing.iter().find(|r| r.same_flow(w))) {
                    Some(rule) => push_once(&mut revoked, rule),
                    None => missing.groups.push(peer.clone()),
                }
            }
            if !missing.ranges.is_empty() || !missing.groups.is_empty() {
                unknown.push(missing);
            }
        }
        let ids: Vec<String> = revoked.iter().map(|r| r.rule_id.clone()).collect();
        if !ids.is_empty() {
            cloud.store.remove_security_group_rules(&ids).await?;
            firewall_changed(cloud);
        }
        Ok(ctx.respond(self.action.name(), |w| {
            w.text("return", unknown.is_empty());
            if !unknown.is_empty() {
                write_requested_permissions(w, "unknownIpPermissionSet", &unknown);
            }
            w.items("revokedSecurityGroupRuleSet", &revoked, |w, rule| {
                w.text("securityGroupRuleId", &rule.rule_id);
                w.text("groupId", &rule.group_id);
                w.text("isEgress", rule.egress);
                w.text("ipProtocol", &rule.protocol);
                w.text("fromPort", rule.from_port.unwrap_or(-1));
                w.text("toPort", rule.to_port.unwrap_or(-1));
                w.opt_text("cidrIpv4", rule.cidr.as_ref());
                w.opt_text("referencedGroupId", rule.referenced_group_id.as_ref());
                w.opt_text("description", rule.description.as_ref());
            });
        }))
    }
}

fn push_once<'a>(list: &mut Vec<&'a SecurityGroupRule>, rule: &'a SecurityGroupRule) {
    if !list.iter().any(|r| r.rule_id == rule.rule_id) {
        list.push(rule);
    }
}

fn duplicate(rule: &SecurityGroupRule) -> Ec2Error {
    Ec2Error::refused(
        "InvalidPermission.Duplicate",
        format!(
            "the specified rule \"{}\" already exists",
            describe_flow(rule)
        ),
    )
}

// ------------------------------------------------------- for the launcher

/// The groups an instance launches with in `vpc_id`, as (id, name), in
/// the order given (duplicates dropped): the named and identified groups
/// of the caller in that VPC, or the VPC's `default` group when none is
/// given.
pub async fn resolve_launch_groups(
    cloud: &Cloud,
    account_id: &str,
    vpc_id: &str,
    names: &[String],
    ids: &[String],
) -> Result<Vec<(String, String)>, Ec2Error> {
    let groups = AccountGroups::load(cloud, account_id).await?;
    let mut chosen: Vec<(String, String)> = Vec::new();
    let mut add = |g: &SecurityGroup| {
        if !chosen.iter().any(|(id, _)| id == &g.group_id) {
            chosen.push((g.group_id.clone(), g.name.clone()));
        }
    };
    if names.is_empty() && ids.is_empty() {
        add(groups.by_name("default", vpc_id).map_err(|_| {
            Ec2Error::Internal(format!("VPC {vpc_id} has no default security group"))
        })?);
    }
    for id in ids {
        let group = groups.by_id(id)?;
        if group.vpc_id != vpc_id {
            return Err(Ec2Error::refused(
                "InvalidParameter",
                format!(
                    "Security group {id} and subnet belong to different networks (VPC {} and {vpc_id}).",
                    group.vpc_id
                ),
            ));
        }
        add(group);
    }
    for name in names {
        add(groups.by_name(name, vpc_id)?);
    }
    Ok(chosen)
}

/// The firewall an instance in `group_ids` gets, as (ingress, egress):
/// one rule per stored rule, source groups expanded into the `/32`s of the
/// private addresses of their live (not terminated) members; a group rule
/// whose group has no live member allows nothing and is left out. CIDR
/// lists are sorted, so equal states give equal policies.
pub async fn instance_firewall_rules(
    cloud: &Cloud,
    group_ids: &[String],
) -> Result<(Vec<FirewallRule>, Vec<FirewallRule>), Ec2Error> {
    let rules = cloud.store.rules_of_groups(group_ids).await?;
    let mut members: HashMap<String, Vec<String>> = HashMap::new();
    for group in rules.iter().filter_map(|r| r.referenced_group_id.as_ref()) {
        if members.contains_key(group) {
            continue;
        }
        let mut addresses = Vec::new();
        for instance_id in cloud.store.instances_in_group(group).await? {
            if let Some(instance) = cloud.store.instance(&instance_id).await?
                && instance.terminated_at.is_none()
                && !instance.private_ip.is_empty()
            {
                addresses.push(format!("{}/32", instance.private_ip));
            }
        }
        members.insert(group.clone(), addresses);
    }
    let (mut ingress, mut egress) = (Vec::new(), Vec::new());
    for rule in &rules {
        let cidrs: BTreeSet<String> = match (&rule.cidr, &rule.referenced_group_id) {
            (Some(cidr), _) => BTreeSet::from([cidr.clone()]),
            (None, Some(group)) => members.get(group).into_iter().flatten().cloned().collect(),
            (None, None) => BTreeSet::new(),
        };
        if cidrs.is_empty() {
            continue;
        }
        let out = if rule.egress {
            &mut egress
        } else {
            &mut ingress
        };
        merge_rule(out, rule, cidrs);
    }
    Ok((ingress, egress))
}

/// Adds `cidrs` to the rule of `out` with the same protocol and ports, or
/// appends a new one.
fn merge_rule(out: &mut Vec<FirewallRule>, rule: &SecurityGroupRule, cidrs: BTreeSet<String>) {
    if let Some(same) = out.iter_mut().find(|f| {
        f.protocol == rule.protocol && f.from_port == rule.from_port && f.to_port == rule.to_port
    }) {
        let mut all: BTreeSet<String> = same.cidrs.drain(..).collect();
        all.extend(cidrs);
        same.cidrs = all.into_iter().collect();
    } else {
        out.push(FirewallRule {
            protocol: rule.protocol.clone(),
            from_port: rule.from_port,
            to_port: rule.to_port,
            cidrs: cidrs.into_iter().collect(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::error::AwsError;

    fn params(pairs: &[(&str, &str)]) -> QueryParams {
        QueryParams::from_pairs(pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .expect("params")
    }

    fn code(err: Ec2Error) -> String {
        err.code().into_owned()
    }

    #[test]
    fn cidrs_are_checked_and_canonical() {
        assert_eq!(canonical_cidr("10.1.2.3/8").expect("ok"), "10.0.0.0/8");
        assert_eq!(canonical_cidr("0.0.0.0/0").expect("ok"), "0.0.0.0/0");
        assert_eq!(
            canonical_cidr("192.168.1.7/32").expect("ok"),
            "192.168.1.7/32"
        );
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "10.0.0/8",
            "x/8",
            "10.0.0.0/-1",
            "10.0.0.0/",
            "::/0",
        ] {
            assert_eq!(
                code(canonical_cidr(bad).expect_err(bad)),
                "InvalidParameterValue",
                "{bad}"
            );
        }
        let net: Ipv4Net = "172.31.16.0/20".parse().expect("net");
        assert!(net.contains("172.31.31.255".parse().expect("ip")));
        assert!(!net.contains("172.31.32.0".parse().expect("ip")));
    }

    #[test]
    fn protocols_and_ports() {
        assert_eq!(normalize_protocol("TCP").expect("tcp"), "tcp");
        assert_eq!(normalize_protocol("6").expect("6"), "tcp");
        assert_eq!(normalize_protocol("17").expect("17"), "udp");
        assert_eq!(normalize_protocol("1").expect("1"), "icmp");
        assert_eq!(normalize_protocol("-1").expect("-1"), "-1");
        assert_eq!(normalize_protocol("47").expect("gre"), "47");
        assert!(normalize_protocol("256").is_err());
        assert!(normalize_protocol("bogus").is_err());
        assert_eq!(
            normalize_ports("tcp", Some(22), Some(22)).expect("22"),
            (Some(22), Some(22))
        );
        assert!(normalize_ports("tcp", Some(22), None).is_err());
        assert!(normalize_ports("tcp", Some(80), Some(22)).is_err());
        assert!(normalize_ports("udp", Some(0), Some(65536)).is_err());
        assert!(normalize_ports("tcp", Some(-1), Some(-1)).is_err());
        assert_eq!(
            normalize_ports("icmp", None, None).expect("any"),
            (Some(-1), Some(-1))
        );
        assert_eq!(
            normalize_ports("icmp", Some(8), Some(0)).expect("echo"),
            (Some(8), Some(0))
        );
        assert!(normalize_ports("icmp", Some(-1), Some(0)).is_err());
        assert!(normalize_ports("icmp", Some(256), Some(0)).is_err());
        assert_eq!(
            normalize_ports("-1", Some(5), Some(9)).expect("all"),
            (None, None)
        );
    }

    #[test]
    fn structured_permissions() {
        let p = params(&[
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "22"),
            ("IpPermissions.1.ToPort", "23"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.9/8"),
            ("IpPermissions.1.IpRanges.1.Description", "office"),
            ("IpPermissions.1.IpRanges.2.CidrIp", "192.168.0.0/16"),
            ("IpPermissions.2.IpProtocol", "icmp"),
            ("IpPermissions.2.FromPort", "8"),
            ("IpPermissions.2.ToPort", "-1"),
            ("IpPermissions.2.Groups.1.GroupId", "sg-0123456789abcdef0"),
            ("IpPermissions.2.Groups.1.UserId", "123456789012"),
            ("IpPermissions.2.Groups.2.GroupName", "web"),
        ]);
        let perms = parse_permissions(&p, false).expect("parse");
        assert_eq!(perms.len(), 2);
        assert_eq!(perms[0].protocol, "tcp");
        assert_eq!((perms[0].from_port, perms[0].to_port), (Some(22), Some(23)));
        assert_eq!(
            perms[0].ranges,
            [
                ("10.0.0.0/8".to_owned(), Some("office".to_owned())),
                ("192.168.0.0/16".to_owned(), None)
            ]
        );
        assert_eq!(perms[1].protocol, "icmp");
        assert_eq!(perms[1].groups.len(), 2);
        assert_eq!(
            perms[1].groups[0].group_id.as_deref(),
            Some("sg-0123456789abcdef0")
        );
        assert_eq!(perms[1].groups[0].user_id.as_deref(), Some("123456789012"));
        assert_eq!(perms[1].groups[1].group_name.as_deref(), Some("web"));
    }

    #[test]
    fn legacy_flat_permissions() {
        let p = params(&[
            ("IpProtocol", "tcp"),
            ("FromPort", "22"),
            ("ToPort", "22"),
            ("CidrIp", "0.0.0.0/0"),
        ]);
        let perms = parse_permissions(&p, false).expect("parse");
        assert_eq!(
            perms,
            [IpPermission {
                protocol: "tcp".into(),
                from_port: Some(22),
                to_port: Some(22),
                ranges: vec![("0.0.0.0/0".into(), None)],
                groups: vec![],
            }]
        );
        let from_group = params(&[
            ("SourceSecurityGroupName", "web"),
            ("SourceSecurityGroupOwnerId", "123456789012"),
        ]);
        let perms = parse_permissions(&from_group, false).expect("group");
        assert_eq!(perms[0].protocol, "-1");
        assert_eq!(perms[0].groups[0].group_name.as_deref(), Some("web"));
        assert_eq!(perms[0].groups[0].user_id.as_deref(), Some("123456789012"));
    }

    #[test]
    fn malformed_permissions() {
        let cases: &[(&[(&str, &str)], &str)] = &[
            (&[], "MissingParameter"),
            (
                &[("IpProtocol", "tcp"), ("FromPort", "22"), ("ToPort", "22")],
                "InvalidPermission.Malformed",
            ),
            (
                &[
                    ("IpProtocol", "tcp"),
                    ("FromPort", "22"),
                    ("ToPort", "22"),
                    ("CidrIp", "1.2.3.4"),
                ],
                "InvalidParameterValue",
            ),
            (
                &[("IpProtocol", "bogus"), ("CidrIp", "1.2.3.4/32")],
                "InvalidParameterValue",
            ),
            (
                &[
                    ("IpProtocol", "tcp"),
                    ("FromPort", "x"),
                    ("ToPort", "22"),
                    ("CidrIp", "1.2.3.4/32"),
                ],
                "InvalidParameterValue",
            ),
            (
                &[
                    ("IpProtocol", "tcp"),
                    ("CidrIp", "1.2.3.4/32"),
                    ("IpPermissions.1.IpProtocol", "tcp"),
                ],
                "InvalidParameterCombination",
            ),
            (
                &[
                    ("IpPermissions.1.IpProtocol", "tcp"),
                    ("IpPermissions.1.FromPort", "1"),
                    ("IpPermissions.1.ToPort", "2"),
                    ("IpPermissions.1.Ipv6Ranges.1.CidrIpv6", "::/0"),
                ],
                "InvalidParameterValue",
            ),
            (&[("IpPermissions.1.FromPort", "1")], "MissingParameter"),
            (
                &[
                    ("IpPermissions.1.IpProtocol", "-1"),
                    ("IpPermissions.1.Groups.1.Description", "x"),
                ],
                "MissingParameter",
            ),
        ];
        for (pairs, expected) in cases {
            let err = parse_permissions(&params(pairs), false).expect_err(&format!("{pairs:?}"));
            assert_eq!(code(err), *expected, "{pairs:?}");
        }
        assert!(
            parse_permissions(&params(&[]), true)
                .expect("empty ok")
                .is_empty()
        );
    }

    #[test]
    fn create_validates_names() {
        let ok = params(&[
            ("GroupName", "web servers"),
            ("GroupDescription", "Web (public)"),
        ]);
        assert!(CreateSecurityGroup::parse(&ok).is_ok());
        let reserved = params(&[("GroupName", "default"), ("GroupDescription", "d")]);
        assert_eq!(
            code(CreateSecurityGroup::parse(&reserved).expect_err("reserved")),
            "InvalidGroup.Reserved"
        );
        let sg = params(&[("GroupName", "sg-123"), ("GroupDescription", "d")]);
        assert_eq!(
            code(CreateSecurityGroup::parse(&sg).expect_err("sg-")),
            "InvalidParameterValue"
        );
        let no_description = params(&[("GroupName", "x")]);
        assert_eq!(
            code(CreateSecurityGroup::parse(&no_description).expect_err("desc")),
            "MissingParameter"
        );
        let bad_chars = params(&[("GroupName", "naïve"), ("GroupDescription", "d")]);
        assert_eq!(
            code(CreateSecurityGroup::parse(&bad_chars).expect_err("chars")),
            "InvalidParameterValue"
        );
    }

    #[test]
    fn group_id_shapes() {
        assert!(is_group_id("sg-0123456789abcdef0"));
        assert!(is_group_id("sg-12345678"));
        assert!(!is_group_id("sg-XYZ"));
        assert!(!is_group_id("web"));
    }

    #[test]
    fn flows_merge_by_protocol_and_ports() {
        let rule = |protocol: &str, from: Option<i32>| SecurityGroupRule {
            rule_id: "sgr-1".into(),
            group_id: "sg-1".into(),
            account_id: "1".into(),
            egress: false,
            protocol: protocol.into(),
            from_port: from,
            to_port: from,
            cidr: None,
            referenced_group_id: None,
            description: None,
            created_at: 0,
        };
        let mut out = Vec::new();
        merge_rule(
            &mut out,
            &rule("tcp", Some(22)),
            BTreeSet::from(["10.0.0.2/32".into()]),
        );
        merge_rule(
            &mut out,
            &rule("tcp", Some(22)),
            BTreeSet::from(["10.0.0.1/32".into()]),
        );
        merge_rule(
            &mut out,
            &rule("-1", None),
            BTreeSet::from(["0.0.0.0/0".into()]),
        );
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].cidrs, ["10.0.0.1/32", "10.0.0.2/32"]);
        assert_eq!(out[1].protocol, "-1");
        assert_eq!(
            describe_flow(&SecurityGroupRule {
                cidr: Some("1.2.3.4/32".into()),
                ..rule("tcp", Some(22))
            }),
            "peer: 1.2.3.4/32, TCP, from port: 22, to port: 22, ALLOW"
        );
    }
}
