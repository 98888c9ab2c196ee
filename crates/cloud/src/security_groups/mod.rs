//! Security groups: what a group and its rules are, the checks every
//! change makes, and creating, deleting, authorizing and revoking rules
//! (stored one per protocol, port range and peer, as AWS's `sgr-` rules);
//! plus the groups an instance launches with. [`rule_updates`] changes
//! rules in place; [`firewall`] compiles them into the policies nodes
//! enforce.

pub mod firewall;
pub mod rule_updates;

use mallee_store::{GroupDeletion, SecurityGroup, SecurityGroupRule, StoreError, TagPair};
use mallee_util::cidr::Ipv4Cidr;

use crate::vpcs::default_vpc;
use crate::{Cloud, CloudError, Kind, Principal, ids};

pub use firewall::{firewall_changed, instance_firewall_rules};

/// A rule CIDR in AWS's canonical form; malformed ones are refused with
/// AWS's message.
pub fn canonical_cidr(cidr: &str) -> Result<String, CloudError> {
    cidr.trim()
        .parse::<Ipv4Cidr>()
        .map(|n| n.canonical().to_string())
        .map_err(|_| CloudError::Invalid(format!("CIDR block {cidr} is malformed")))
}

// ------------------------------------------------------------ permissions

/// A protocol as AWS stores it: `tcp`, `udp`, `icmp`, `icmpv6`, `-1`, or
/// another protocol's number.
pub fn normalize_protocol(given: &str) -> Result<String, CloudError> {
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
                return Err(CloudError::Invalid(format!(
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
pub fn normalize_ports(
    protocol: &str,
    from: Option<i64>,
    to: Option<i64>,
) -> Result<(Option<i32>, Option<i32>), CloudError> {
    match protocol {
        "tcp" | "udp" => {
            let (Some(from), Some(to)) = (from, to) else {
                return Err(CloudError::Invalid(
                    "Invalid value 'Must specify both from and to ports with TCP/UDP.' for portRange"
                        .into(),
                ));
            };
            if !(0..=65535).contains(&from) || !(0..=65535).contains(&to) || from > to {
                return Err(CloudError::Invalid(format!(
                    "Invalid TCP/UDP port range {from}-{to}: ports are 0-65535 and from must not exceed to."
                )));
            }
            Ok((Some(from as i32), Some(to as i32)))
        }
        "icmp" | "icmpv6" => {
            let kind = from.unwrap_or(-1);
            let code = to.unwrap_or(-1);
            if !(-1..=255).contains(&kind) || !(-1..=255).contains(&code) {
                return Err(CloudError::Invalid(format!(
                    "Invalid ICMP type {kind} or code {code}: each is -1 (any) or 0-255."
                )));
            }
            if kind == -1 && code != -1 {
                return Err(CloudError::Invalid(format!(
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

impl IpPermission {
    /// A permission with its protocol and ports checked and normalized; it
    /// must name at least one peer.
    pub fn new(
        protocol: &str,
        from: Option<i64>,
        to: Option<i64>,
        ranges: Vec<(String, Option<String>)>,
        groups: Vec<GroupPeer>,
    ) -> Result<IpPermission, CloudError> {
        let protocol = normalize_protocol(protocol)?;
        let (from_port, to_port) = normalize_ports(&protocol, from, to)?;
        if ranges.is_empty() && groups.is_empty() {
            return Err(CloudError::malformed(
                Kind::Permission,
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
}

// ------------------------------------------------------------- lookups

/// Whether `id` looks like a security group id (`sg-` and 8 or 17 hex).
pub fn is_group_id(id: &str) -> bool {
    id.strip_prefix("sg-").is_some_and(|hex| {
        (hex.len() == 8 || hex.len() == 17)
            && hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    })
}

fn malformed_group_id(id: &str) -> CloudError {
    CloudError::malformed(
        Kind::SecurityGroup,
        format!("Invalid id: \"{id}\" (expecting \"sg-...\")"),
    )
}

fn group_id_not_found(id: &str) -> CloudError {
    CloudError::not_found(
        Kind::SecurityGroup,
        format!("The security group '{id}' does not exist"),
    )
}

fn group_name_not_found(name: &str, vpc_id: &str) -> CloudError {
    CloudError::not_found(
        Kind::SecurityGroup,
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
    async fn load(cloud: &Cloud, account_id: &str) -> Result<Self, CloudError> {
        let vpc = default_vpc(cloud, account_id).await?;
        Ok(Self {
            account_id: account_id.to_owned(),
            default_vpc_id: vpc.vpc.vpc_id,
            groups: cloud.store.security_groups(account_id).await?,
        })
    }

    fn by_id(&self, id: &str) -> Result<&SecurityGroup, CloudError> {
        if !is_group_id(id) {
            return Err(malformed_group_id(id));
        }
        self.groups
            .iter()
            .find(|g| g.group_id == id)
            .ok_or_else(|| group_id_not_found(id))
    }

    fn by_name(&self, name: &str, vpc_id: &str) -> Result<&SecurityGroup, CloudError> {
        self.groups
            .iter()
            .find(|g| g.name == name && g.vpc_id == vpc_id)
            .ok_or_else(|| group_name_not_found(name, vpc_id))
    }

    /// `GroupId`, else `GroupName` in the default VPC.
    fn target(&self, id: Option<&str>, name: Option<&str>) -> Result<&SecurityGroup, CloudError> {
        match (id, name) {
            (Some(id), _) => self.by_id(id),
            (None, Some(name)) => self.by_name(name, &self.default_vpc_id),
            (None, None) => Err(CloudError::missing_parameter("GroupId")),
        }
    }

    /// The group a permission names as its peer, in `target`'s VPC.
    fn peer(&self, peer: &GroupPeer, target: &SecurityGroup) -> Result<&SecurityGroup, CloudError> {
        if let Some(owner) = &peer.user_id
            && owner != &self.account_id
        {
            let named = peer.group_id.as_deref().or(peer.group_name.as_deref());
            return Err(group_id_not_found(named.unwrap_or_default()));
        }
        let group = match (&peer.group_id, &peer.group_name) {
            (Some(id), _) => self.by_id(id)?,
            (None, Some(name)) => self.by_name(name, &target.vpc_id)?,
            (None, None) => return Err(CloudError::missing_parameter("GroupId")),
        };
        if group.vpc_id != target.vpc_id {
            return Err(CloudError::not_found(
                Kind::SecurityGroup,
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
) -> Result<Vec<SecurityGroupRule>, CloudError> {
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

pub fn describe_flow(rule: &SecurityGroupRule) -> String {
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

// ------------------------------------------------------- for the launcher

/// The groups an instance launches with in `vpc_id`, as (id, name), in
/// the order given (duplicates dropped): the named and identified groups
/// of the caller in that VPC, or the VPC's `default` group when none is
/// given. `subnet_id` is the subnet the interface is in, when it is known,
/// for AWS's message about a group of another VPC.
pub async fn resolve_launch_groups(
    cloud: &Cloud,
    account_id: &str,
    vpc_id: &str,
    subnet_id: Option<&str>,
    names: &[String],
    ids: &[String],
) -> Result<Vec<(String, String)>, CloudError> {
    let groups = AccountGroups::load(cloud, account_id).await?;
    let mut chosen: Vec<(String, String)> = Vec::new();
    let mut add = |g: &SecurityGroup| {
        if !chosen.iter().any(|(id, _)| id == &g.group_id) {
            chosen.push((g.group_id.clone(), g.name.clone()));
        }
    };
    if names.is_empty() && ids.is_empty() {
        add(groups.by_name("default", vpc_id).map_err(|_| {
            CloudError::Internal(format!("VPC {vpc_id} has no default security group"))
        })?);
    }
    for id in ids {
        let group = groups.by_id(id)?;
        if group.vpc_id != vpc_id {
            return Err(CloudError::InvalidParameter(match subnet_id {
                Some(subnet) => {
                    format!("Security group {id} and subnet {subnet} belong to different networks.")
                }
                None => format!(
                    "Security group {id} and subnet belong to different networks (VPC {} and {vpc_id}).",
                    group.vpc_id
                ),
            }));
        }
        add(group);
    }
    for name in names {
        add(groups.by_name(name, vpc_id)?);
    }
    Ok(chosen)
}

// ------------------------------------------------------------- actions

/// Which group a request names: by id, else by name in the default VPC.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GroupRef {
    /// `GroupId`.
    pub id: Option<String>,
    /// `GroupName`.
    pub name: Option<String>,
}

/// What CreateSecurityGroup asks for (name and description checked).
#[derive(Debug, Clone, PartialEq)]
pub struct NewGroup {
    /// Group name.
    pub name: String,
    /// Description.
    pub description: String,
    /// The VPC (the default VPC when `None`).
    pub vpc_id: Option<String>,
    /// Tags for the new group.
    pub tags: Vec<TagPair>,
}

/// Characters AWS allows in VPC security group names and descriptions.
fn valid_group_text(s: &str) -> bool {
    s.chars()
        .all(|c| c.is_ascii_alphanumeric() || " ._-:/()#,@[]+=&;{}!$*".contains(c))
}

impl NewGroup {
    /// A new group's request, its name and description checked as AWS
    /// checks them.
    pub fn new(
        name: String,
        description: String,
        vpc_id: Option<String>,
        tags: Vec<TagPair>,
    ) -> Result<Self, CloudError> {
        if name.chars().count() > 255 || !valid_group_text(&name) {
            return Err(CloudError::Invalid(format!(
                "Value ({name}) for parameter GroupName is invalid. Names are at most 255 characters of a-z, A-Z, 0-9, spaces and ._-:/()#,@[]+=&;{{}}!$*"
            )));
        }
        if name.to_ascii_lowercase().starts_with("sg-") {
            return Err(CloudError::Invalid(format!(
                "Value ({name}) for parameter GroupName is invalid. Group names may not be in the format sg-*."
            )));
        }
        if description.chars().count() > 255 || !valid_group_text(&description) {
            return Err(CloudError::Invalid(format!(
                "Value ({description}) for parameter GroupDescription is invalid. Descriptions are at most 255 characters of a-z, A-Z, 0-9, spaces and ._-:/()#,@[]+=&;{{}}!$*"
            )));
        }
        if name == "default" {
            return Err(CloudError::Reserved {
                kind: Kind::SecurityGroup,
                message: "The security group 'default' is reserved".into(),
            });
        }
        Ok(Self {
            name,
            description,
            vpc_id,
            tags,
        })
    }
}

/// Creates the group with AWS's initial rule (all egress).
pub async fn create(
    cloud: &Cloud,
    caller: &Principal,
    request: NewGroup,
) -> Result<SecurityGroup, CloudError> {
    let account = caller.account_id();
    let default = default_vpc(cloud, account).await?;
    let vpc_id = match request.vpc_id {
        None => default.vpc.vpc_id,
        Some(id) => match cloud.store.vpc(&id).await? {
            Some(vpc) if vpc.account_id == account => vpc.vpc_id,
            _ => {
                return Err(CloudError::not_found(
                    Kind::Vpc,
                    format!("The vpc ID '{id}' does not exist"),
                ));
            }
        },
    };
    let now = ids::now_millis();
    let group = SecurityGroup {
        group_id: ids::resource_id("sg"),
        account_id: account.to_owned(),
        vpc_id: vpc_id.clone(),
        name: request.name,
        description: request.description,
        created_at: now,
    };
    let egress = SecurityGroupRule {
        rule_id: ids::resource_id("sgr"),
        group_id: group.group_id.clone(),
        account_id: account.to_owned(),
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
        .create_security_group(&group, std::slice::from_ref(&egress), &request.tags)
        .await
    {
        Err(StoreError::Conflict(_)) => {
            return Err(CloudError::duplicate(
                Kind::SecurityGroup,
                format!(
                    "The security group '{}' already exists for VPC '{vpc_id}'",
                    group.name
                ),
            ));
        }
        other => other?,
    }
    firewall_changed(cloud);
    Ok(group)
}

/// Deletes the group unless it is the VPC's default group, an instance is
/// in it, or another group's rule references it; returns its id.
pub async fn delete(
    cloud: &Cloud,
    caller: &Principal,
    group: GroupRef,
) -> Result<String, CloudError> {
    let account = caller.account_id();
    let groups = AccountGroups::load(cloud, account).await?;
    let group = groups.target(group.id.as_deref(), group.name.as_deref())?;
    if group.name == "default" {
        return Err(CloudError::Undeletable {
            kind: Kind::SecurityGroup,
            message: format!(
                "the specified group: \"{}\" name: \"default\" cannot be deleted by a user",
                group.group_id
            ),
        });
    }
    let dependent = |what: &str| CloudError::Dependency {
        kind: Kind::SecurityGroup,
        message: format!(
            "resource {} has a dependent object ({what})",
            group.group_id
        ),
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
    Ok(group.group_id.clone())
}

/// The caller's groups and all their rules; the groups named by `ids` or
/// `names` (names in the default VPC) must exist, and when any is named
/// only those are returned.
pub async fn list(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
    names: &[String],
) -> Result<(Vec<SecurityGroup>, Vec<SecurityGroupRule>), CloudError> {
    let account = caller.account_id();
    let groups = AccountGroups::load(cloud, account).await?;
    let mut wanted: Vec<&str> = Vec::new();
    for id in ids {
        wanted.push(&groups.by_id(id)?.group_id);
    }
    for name in names {
        wanted.push(&groups.by_name(name, &groups.default_vpc_id)?.group_id);
    }
    let rules = cloud.store.security_group_rules(account).await?;
    let selected = groups
        .groups
        .iter()
        .filter(|g| wanted.is_empty() || wanted.contains(&g.group_id.as_str()))
        .cloned()
        .collect();
    Ok((selected, rules))
}

fn rule_not_found(id: &str) -> CloudError {
    CloudError::not_found(
        Kind::SecurityGroupRule,
        format!("The security group rule ID '{id}' does not exist"),
    )
}

/// The caller's rules, sorted by id; every rule named by `ids` must exist,
/// and when any is named only those are returned.
pub async fn list_rules(
    cloud: &Cloud,
    caller: &Principal,
    ids: &[String],
) -> Result<Vec<SecurityGroupRule>, CloudError> {
    let account = caller.account_id();
    default_vpc(cloud, account).await?;
    let rules = cloud.store.security_group_rules(account).await?;
    if let Some(missing) = ids
        .iter()
        .find(|id| !rules.iter().any(|r| &r.rule_id == *id))
    {
        return Err(rule_not_found(missing));
    }
    let mut selected: Vec<SecurityGroupRule> = rules
        .into_iter()
        .filter(|r| ids.is_empty() || ids.contains(&r.rule_id))
        .collect();
    selected.sort_by(|a, b| a.rule_id.cmp(&b.rule_id));
    Ok(selected)
}

/// The ingress (or egress) rules of `group`.
async fn rules_in_direction(
    cloud: &Cloud,
    group: &SecurityGroup,
    egress: bool,
) -> Result<Vec<SecurityGroupRule>, CloudError> {
    Ok(cloud
        .store
        .rules_of_groups(std::slice::from_ref(&group.group_id))
        .await?
        .into_iter()
        .filter(|r| r.egress == egress)
        .collect())
}

fn duplicate(rule: &SecurityGroupRule) -> CloudError {
    CloudError::duplicate(
        Kind::Permission,
        format!(
            "the specified rule \"{}\" already exists",
            describe_flow(rule)
        ),
    )
}

fn push_once(list: &mut Vec<SecurityGroupRule>, rule: &SecurityGroupRule) {
    if !list.iter().any(|r| r.rule_id == rule.rule_id) {
        list.push(rule.clone());
    }
}

/// Adds the rules `permissions` stand for to the group's ingress (or
/// egress) rules, all or none; returns the new rules.
pub async fn authorize(
    cloud: &Cloud,
    caller: &Principal,
    group: GroupRef,
    egress: bool,
    permissions: &[IpPermission],
    tags: &[TagPair],
) -> Result<Vec<SecurityGroupRule>, CloudError> {
    let account = caller.account_id();
    let groups = AccountGroups::load(cloud, account).await?;
    let target = groups.target(group.id.as_deref(), group.name.as_deref())?;
    let requested = rules_for(&groups, target, egress, permissions)?;
    let existing = rules_in_direction(cloud, target, egress).await?;
    for (i, rule) in requested.iter().enumerate() {
        if existing
            .iter()
            .chain(&requested[..i])
            .any(|r| r.same_flow(rule))
        {
            return Err(duplicate(rule));
        }
    }
    match cloud.store.add_security_group_rules(&requested, tags).await {
        Err(StoreError::Conflict(id)) => {
            let rule = requested.iter().find(|r| r.rule_id == id);
            return Err(rule.map_or_else(
                || CloudError::duplicate(Kind::Permission, "the specified rule already exists"),
                duplicate,
            ));
        }
        Err(StoreError::NotFound(id)) => return Err(group_id_not_found(&id)),
        other => other?,
    }
    firewall_changed(cloud);
    Ok(requested)
}

/// What a revoke removed, and the permissions it was asked to remove that
/// match no rule (EC2 reports those instead of failing, in a default VPC).
#[derive(Debug, Clone, PartialEq)]
pub struct Revoked {
    /// The rules removed.
    pub rules: Vec<SecurityGroupRule>,
    /// Requested permissions that matched nothing.
    pub unknown: Vec<IpPermission>,
}

/// Removes the rules named by `rule_ids` (every one must exist) and those
/// matching `permissions` from the group's ingress (or egress) rules.
pub async fn revoke(
    cloud: &Cloud,
    caller: &Principal,
    group: GroupRef,
    egress: bool,
    permissions: &[IpPermission],
    rule_ids: &[String],
) -> Result<Revoked, CloudError> {
    let account = caller.account_id();
    let groups = AccountGroups::load(cloud, account).await?;
    let target = groups.target(group.id.as_deref(), group.name.as_deref())?;
    let requested = rules_for(&groups, target, egress, permissions)?;
    let existing = rules_in_direction(cloud, target, egress).await?;
    let mut revoked: Vec<SecurityGroupRule> = Vec::new();
    for id in rule_ids {
        match existing.iter().find(|r| &r.rule_id == id) {
            Some(rule) => push_once(&mut revoked, rule),
            None => return Err(rule_not_found(id)),
        }
    }
    let mut unknown: Vec<IpPermission> = Vec::new();
    let mut requested = requested.iter();
    for permission in permissions {
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
    Ok(Revoked {
        rules: revoked,
        unknown,
    })
}
