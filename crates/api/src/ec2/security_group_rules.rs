//! Rules changed in place on the wire: ModifySecurityGroupRules
//! (`SecurityGroupRule.N.SecurityGroupRuleId` with a
//! `SecurityGroupRule.N.SecurityGroupRule.*` request, as Terraform's
//! `aws_vpc_security_group_*_rule` sends on update) and
//! UpdateSecurityGroupRuleDescriptionsIngress/Egress (`IpPermissions.N`
//! or `SecurityGroupRuleDescription.N`). Each answers `<return>true</return>`.
//! What a change may do is `mallee_cloud::security_groups::rule_updates`.

use mallee_cloud::security_groups::GroupRef;
use mallee_cloud::security_groups::rule_updates::{self, DescriptionUpdates, RuleUpdate};

use crate::query::{QueryError, QueryParams};

use super::security_groups::{parse_group_ref, parse_permissions};
use super::{Ec2Context, Ec2Error};

fn description(value: Option<&str>) -> Result<Option<String>, Ec2Error> {
    match value {
        Some(d) if d.chars().count() > 255 => Err(Ec2Error::InvalidParameterValue(
            "Rule descriptions are at most 255 characters".into(),
        )),
        other => Ok(other.map(str::to_owned)),
    }
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value.filter(|v| !v.is_empty()).map(str::to_owned)
}

/// ModifySecurityGroupRules input.
#[derive(Debug, Clone, PartialEq)]
pub struct ModifySecurityGroupRules {
    group_id: String,
    updates: Vec<RuleUpdate>,
}

impl ModifySecurityGroupRules {
    /// Reads `GroupId` and `SecurityGroupRule.N` (`SecurityGroupRuleId`
    /// and `SecurityGroupRule.IpProtocol`, `.FromPort`, `.ToPort`,
    /// `.CidrIpv4`, `.ReferencedGroupId`, `.Description`; IPv6 ranges and
    /// prefix lists are refused as Authorize refuses them).
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let group_id = params.required_non_empty("GroupId")?.to_owned();
        let mut updates = Vec::new();
        for item in params.structs("SecurityGroupRule")? {
            let rule_id = item.required_non_empty("SecurityGroupRuleId")?.to_owned();
            if non_empty(item.get("SecurityGroupRule.CidrIpv6")).is_some() {
                return Err(Ec2Error::InvalidParameterValue(
                    "IPv6 ranges are not supported: VPCs have no IPv6 CIDR block.".into(),
                ));
            }
            if non_empty(item.get("SecurityGroupRule.PrefixListId")).is_some() {
                return Err(Ec2Error::InvalidParameterValue(
                    "Prefix lists are not supported.".into(),
                ));
            }
            updates.push(RuleUpdate {
                rule_id,
                protocol: item
                    .required_non_empty("SecurityGroupRule.IpProtocol")?
                    .to_owned(),
                from_port: item.int("SecurityGroupRule.FromPort")?,
                to_port: item.int("SecurityGroupRule.ToPort")?,
                cidr: non_empty(item.get("SecurityGroupRule.CidrIpv4")),
                referenced_group_id: non_empty(item.get("SecurityGroupRule.ReferencedGroupId")),
                description: description(item.get("SecurityGroupRule.Description"))?,
            });
        }
        if updates.is_empty() {
            return Err(QueryError::Missing("SecurityGroupRule".into()).into());
        }
        Ok(Self { group_id, updates })
    }

    /// Changes the rules, all or none.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        rule_updates::modify_rules(ctx.cloud, ctx.principal, &self.group_id, &self.updates).await?;
        Ok(ctx.respond_true("ModifySecurityGroupRules"))
    }
}

/// The input of UpdateSecurityGroupRuleDescriptionsIngress/Egress.
#[derive(Debug, Clone, PartialEq)]
pub struct DescriptionChange {
    group: GroupRef,
    updates: DescriptionUpdates,
}

impl DescriptionChange {
    fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        let group = parse_group_ref(params)?;
        let by_id = params.structs("SecurityGroupRuleDescription")?;
        let permissions = parse_permissions(params, !by_id.is_empty())?;
        let updates = match (permissions.is_empty(), by_id.is_empty()) {
            (false, false) => {
                return Err(Ec2Error::InvalidParameterCombination(
                    "The parameter SecurityGroupRuleDescriptions cannot be used with IpPermissions."
                        .into(),
                ));
            }
            (false, true) => DescriptionUpdates::Permissions(permissions),
            _ => DescriptionUpdates::RuleIds(
                by_id
                    .iter()
                    .map(|d| {
                        Ok((
                            d.required_non_empty("SecurityGroupRuleId")?.to_owned(),
                            description(d.get("Description"))?,
                        ))
                    })
                    .collect::<Result<_, Ec2Error>>()?,
            ),
        };
        Ok(Self { group, updates })
    }

    async fn execute(self, ctx: &Ec2Context<'_>, egress: bool) -> Result<String, Ec2Error> {
        rule_updates::update_descriptions(
            ctx.cloud,
            ctx.principal,
            self.group,
            egress,
            &self.updates,
        )
        .await?;
        Ok(ctx.respond_true(if egress {
            "UpdateSecurityGroupRuleDescriptionsEgress"
        } else {
            "UpdateSecurityGroupRuleDescriptionsIngress"
        }))
    }
}

/// UpdateSecurityGroupRuleDescriptionsIngress input.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateDescriptionsIngress(DescriptionChange);

impl UpdateDescriptionsIngress {
    /// Reads `GroupId` or `GroupName`, and `IpPermissions.N` or
    /// `SecurityGroupRuleDescription.N`.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        DescriptionChange::parse(params).map(Self)
    }

    /// Sets the descriptions of ingress rules.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        self.0.execute(ctx, false).await
    }
}

/// UpdateSecurityGroupRuleDescriptionsEgress input.
#[derive(Debug, Clone, PartialEq)]
pub struct UpdateDescriptionsEgress(DescriptionChange);

impl UpdateDescriptionsEgress {
    /// Reads what the ingress form reads.
    pub fn parse(params: &QueryParams) -> Result<Self, Ec2Error> {
        DescriptionChange::parse(params).map(Self)
    }

    /// Sets the descriptions of egress rules.
    pub async fn execute(self, ctx: &Ec2Context<'_>) -> Result<String, Ec2Error> {
        self.0.execute(ctx, true).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::AwsError;

    use crate::query::test_params as params;

    #[test]
    fn modify_reads_terraforms_request() {
        let parsed = ModifySecurityGroupRules::parse(&params(&[
            ("GroupId", "sg-0123456789abcdef0"),
            (
                "SecurityGroupRule.1.SecurityGroupRuleId",
                "sgr-0123456789abcdef0",
            ),
            ("SecurityGroupRule.1.SecurityGroupRule.IpProtocol", "tcp"),
            ("SecurityGroupRule.1.SecurityGroupRule.FromPort", "8080"),
            ("SecurityGroupRule.1.SecurityGroupRule.ToPort", "8081"),
            (
                "SecurityGroupRule.1.SecurityGroupRule.CidrIpv4",
                "10.0.0.0/8",
            ),
            ("SecurityGroupRule.1.SecurityGroupRule.Description", "app"),
        ]))
        .expect("parse");
        assert_eq!(
            parsed.updates,
            [RuleUpdate {
                rule_id: "sgr-0123456789abcdef0".into(),
                protocol: "tcp".into(),
                from_port: Some(8080),
                to_port: Some(8081),
                cidr: Some("10.0.0.0/8".into()),
                referenced_group_id: None,
                description: Some("app".into()),
            }]
        );
        let code = |pairs: &[(&str, &str)]| {
            ModifySecurityGroupRules::parse(&params(pairs))
                .expect_err("refused")
                .code()
                .into_owned()
        };
        assert_eq!(
            code(&[("GroupId", "sg-0123456789abcdef0")]),
            "MissingParameter"
        );
        assert_eq!(
            code(&[
                ("GroupId", "sg-0123456789abcdef0"),
                (
                    "SecurityGroupRule.1.SecurityGroupRuleId",
                    "sgr-0123456789abcdef0"
                ),
                ("SecurityGroupRule.1.SecurityGroupRule.IpProtocol", "-1"),
                ("SecurityGroupRule.1.SecurityGroupRule.CidrIpv6", "::/0"),
            ]),
            "InvalidParameterValue"
        );
    }

    #[test]
    fn descriptions_by_flow_or_by_id_not_both() {
        let by_id = DescriptionChange::parse(&params(&[
            ("GroupId", "sg-0123456789abcdef0"),
            (
                "SecurityGroupRuleDescription.1.SecurityGroupRuleId",
                "sgr-0123456789abcdef0",
            ),
            ("SecurityGroupRuleDescription.1.Description", "ssh"),
        ]))
        .expect("by id");
        assert_eq!(
            by_id.updates,
            DescriptionUpdates::RuleIds(vec![("sgr-0123456789abcdef0".into(), Some("ssh".into()))])
        );
        let both = DescriptionChange::parse(&params(&[
            ("GroupId", "sg-0123456789abcdef0"),
            (
                "SecurityGroupRuleDescription.1.SecurityGroupRuleId",
                "sgr-0123456789abcdef0",
            ),
            ("IpPermissions.1.IpProtocol", "tcp"),
            ("IpPermissions.1.FromPort", "22"),
            ("IpPermissions.1.ToPort", "22"),
            ("IpPermissions.1.IpRanges.1.CidrIp", "10.0.0.0/8"),
        ]))
        .expect_err("both");
        assert_eq!(both.code(), "InvalidParameterCombination");
        let neither = DescriptionChange::parse(&params(&[("GroupId", "sg-0123456789abcdef0")]))
            .expect_err("neither");
        assert_eq!(neither.code(), "MissingParameter");
    }
}
