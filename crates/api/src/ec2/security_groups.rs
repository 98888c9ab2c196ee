//! Security groups on the wire: CreateSecurityGroup, DeleteSecurityGroup,
//! DescribeSecurityGroups, DescribeSecurityGroupRules and
//! Authorize/RevokeSecurityGroupIngress/Egress (`IpPermissions.N` and the
//! flat parameters euca2ools sends). What groups and rules mean is
//! `mallee_cloud::security_groups`; DescribeSecurityGroups folds the
//! stored rules back into `IpPermissions`.

use std::collections::HashMap;

use mallee_cloud::Cloud;
use mallee_cloud::security_groups::{
    self, GroupPeer, GroupRef, IpPermission, NewGroup, canonical_cidr,
};
use mallee_store::{SecurityGroup, SecurityGroupRule, TagPair};

use crate::filter::{self, Filter, Filterable, parse_filters};
use crate::pagination::PageRequest;
use crate::query::{QueryError, QueryParams};
use crate::xml::XmlWriter;

use super::tags::{TagsByResource, parse_tag_specifications, write_tag_set};
use super::{Ec2Context, Ec2Error};

// ------------------------------------------------------------ permissions

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
        return Ok(vec![IpPermission::new(
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
        permissions.push(IpPermission::new(
            p.required_non_empty("IpProtocol")?,
            p.int("FromPort")?,
            p.int("ToPort")?,
            ranges,
            groups,
        )?);
    }
    Ok(permissions)
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

/// CreateSecurityGroup input.
#[derive(Debug, Clone, PartialEq)]
pub struct CreateSecurityGroup(NewGroup);

impl CreateSecurityGroup {
    /// Reads `GroupName`, `GroupDescription`, `VpcId`, `TagSpecification.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let name = params.required_non_empty("GroupName")?.to_owned();
        let description = params.required_non_empty("GroupDescription")?.to_owned();
        Ok(Self(NewGroup::new(
            name,
            description,
            non_empty(params, "VpcId"),
            parse_tag_specifications(params, "security-group")?,
        )?))
    }

    /// Creates the group with AWS's initial rule (all egress).
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let tags = self.0.tags.clone();
        let group = security_groups::create(ctx.cloud, ctx.principal, self.0).await?;
        Ok(ctx.respond("CreateSecurityGroup", |w| {
            w.text("return", "true");
            w.text("groupId", &group.group_id);
            write_tag_set(w, tags.iter().map(|t| (t.key.as_str(), t.value.as_str())));
            w.text("securityGroupArn", group_arn(ctx.cloud, &group));
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
pub struct DeleteSecurityGroup(GroupRef);

impl DeleteSecurityGroup {
    /// Reads `GroupId` or `GroupName`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        Ok(Self(parse_group_ref(params)?))
    }

    /// Deletes the group.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let group_id = security_groups::delete(ctx.cloud, ctx.principal, self.0).await?;
        Ok(ctx.respond("DeleteSecurityGroup", |w| {
            w.text("return", "true");
            w.text("groupId", &group_id);
        }))
    }
}

/// `GroupId` or `GroupName` (one is required).
pub(crate) fn parse_group_ref(params: &QueryParams) -> Result<GroupRef, Ec2Error> {
    let id = non_empty(params, "GroupId");
    let name = non_empty(params, "GroupName");
    if id.is_none() && name.is_none() {
        return Err(QueryError::Missing("GroupId".into()).into());
    }
    Ok(GroupRef { id, name })
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
        let (groups, rules) =
            security_groups::list(cloud, ctx.principal, &self.ids, &self.names).await?;
        let tags = TagsByResource::load(ctx, account).await?;
        let names: HashMap<&str, &str> = groups
            .iter()
            .map(|g| (g.group_id.as_str(), g.name.as_str()))
            .collect();
        let selected: Vec<GroupView<'_>> = groups
            .iter()
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
        let rules = security_groups::list_rules(cloud, ctx.principal, &self.ids).await?;
        let tags = TagsByResource::load(ctx, account).await?;
        let selected: Vec<RuleView<'_>> = rules
            .iter()
            .map(|rule| RuleView {
                rule,
                tags: tags.of(&rule.rule_id),
            })
            .filter(|view| filter::matches(&self.filters, view))
            .collect();
        let (page, next) = self.page.apply(selected, |v| v.rule.rule_id.clone());
        Ok(ctx.respond("DescribeSecurityGroupRules", |w| {
            w.items("securityGroupRuleSet", page, |w, view| {
                write_rule(w, cloud, view.rule, view.tags);
            });
            w.opt_text("nextToken", next);
        }))
    }
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
    group: GroupRef,
    permissions: Vec<IpPermission>,
    rule_ids: Vec<String>,
    tags: Vec<TagPair>,
}

impl RuleChange {
    fn parse(params: &QueryParams, action: RuleAction) -> Result<Self, Ec2Error> {
        let group = parse_group_ref(params)?;
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
            group,
            permissions,
            rule_ids,
            tags,
        })
    }

    /// Adds or removes the rules, all or none for Authorize.
    async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        let cloud = ctx.cloud;
        let egress = self.action.egress();
        if self.action.revoke() {
            let revoked = security_groups::revoke(
                cloud,
                ctx.principal,
                self.group,
                egress,
                &self.permissions,
                &self.rule_ids,
            )
            .await?;
            return Ok(ctx.respond(self.action.name(), |w| {
                w.text("return", revoked.unknown.is_empty());
                if !revoked.unknown.is_empty() {
                    write_requested_permissions(w, "unknownIpPermissionSet", &revoked.unknown);
                }
                w.items("revokedSecurityGroupRuleSet", &revoked.rules, |w, rule| {
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
            }));
        }
        let added = security_groups::authorize(
            cloud,
            ctx.principal,
            self.group,
            egress,
            &self.permissions,
            &self.tags,
        )
        .await?;
        let tags: Vec<(String, String)> = self
            .tags
            .iter()
            .map(|t| (t.key.clone(), t.value.clone()))
            .collect();
        Ok(ctx.respond(self.action.name(), |w| {
            w.text("return", "true");
            w.items("securityGroupRuleSet", &added, |w, rule| {
                write_rule(w, cloud, rule, &tags);
            });
        }))
    }
}

macro_rules! rule_actions {
    ($($(#[$doc:meta])* $name:ident => $action:ident,)*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq)]
        pub struct $name(RuleChange);

        impl $name {
            /// Reads `GroupId` or `GroupName` and the permissions.
            pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
                RuleChange::parse(params, RuleAction::$action).map(Self)
            }

            /// Changes the group's rules.
            pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
                self.0.execute(ctx).await
            }
        }
    )*};
}

rule_actions! {
    /// AuthorizeSecurityGroupIngress input.
    AuthorizeIngress => AuthorizeIngress,
    /// AuthorizeSecurityGroupEgress input.
    AuthorizeEgress => AuthorizeEgress,
    /// RevokeSecurityGroupIngress input.
    RevokeIngress => RevokeIngress,
    /// RevokeSecurityGroupEgress input.
    RevokeEgress => RevokeEgress,
}

#[cfg(test)]
mod tests {

    use super::*;
    use crate::error::AwsError;
    use mallee_cloud::security_groups::{is_group_id, normalize_ports, normalize_protocol};

    use crate::query::test_params as params;

    fn code(err: impl Into<Ec2Error>) -> String {
        err.into().code().into_owned()
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
        let net: mallee_util::cidr::Ipv4Cidr = "172.31.16.0/20".parse().expect("net");
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
}
