//! Changing rules in place: ModifySecurityGroupRules (a rule, by its
//! `sgr-` id, gets new protocol, ports, peer and description) and
//! UpdateSecurityGroupRuleDescriptionsIngress/Egress (only descriptions,
//! of rules named by id or by the flow they allow). Rule ids never change,
//! so tools that track rules by id (Terraform's
//! `aws_vpc_security_group_*_rule`) keep finding them; the firewall
//! follows at the next reconcile because nodes get rules from the store.

use mallee_store::{SecurityGroupRule, StoreError};

use super::{
    AccountGroups, GroupPeer, GroupRef, IpPermission, canonical_cidr, duplicate, firewall_changed,
    group_id_not_found, normalize_ports, normalize_protocol, rule_not_found, rules_for,
    rules_in_direction,
};
use crate::{Cloud, CloudError, Kind, Principal};

/// One `SecurityGroupRule.N` of ModifySecurityGroupRules: the rule's id
/// and its new fields (a `SecurityGroupRuleRequest`), which replace the
/// rule's whole.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleUpdate {
    /// `sgr-…`.
    pub rule_id: String,
    /// `IpProtocol`.
    pub protocol: String,
    /// `FromPort`.
    pub from_port: Option<i64>,
    /// `ToPort`.
    pub to_port: Option<i64>,
    /// `CidrIpv4`.
    pub cidr: Option<String>,
    /// `ReferencedGroupId`.
    pub referenced_group_id: Option<String>,
    /// `Description`.
    pub description: Option<String>,
}

/// The rule `update` makes of `current` (id, group, direction and
/// creation time kept), checked as Authorize checks a new rule.
fn updated_rule(
    groups: &AccountGroups,
    target: &mallee_store::SecurityGroup,
    current: &SecurityGroupRule,
    update: &RuleUpdate,
) -> Result<SecurityGroupRule, CloudError> {
    let protocol = normalize_protocol(&update.protocol)?;
    let (from_port, to_port) = normalize_ports(&protocol, update.from_port, update.to_port)?;
    let (cidr, referenced_group_id) = match (&update.cidr, &update.referenced_group_id) {
        (Some(_), Some(_)) => {
            return Err(CloudError::InvalidCombination(
                "You may specify only one of CidrIpv4, CidrIpv6, PrefixListId or ReferencedGroupId."
                    .into(),
            ));
        }
        (None, None) => {
            return Err(CloudError::Missing(
                "Either 'CidrIpv4', 'CidrIpv6', 'PrefixListId' or 'ReferencedGroupId' must be specified."
                    .into(),
            ));
        }
        (Some(cidr), None) => (Some(canonical_cidr(cidr)?), None),
        (None, Some(group)) => {
            let peer = GroupPeer {
                group_id: Some(group.clone()),
                group_name: None,
                user_id: None,
                description: None,
            };
            (None, Some(groups.peer(&peer, target)?.group_id.clone()))
        }
    };
    Ok(SecurityGroupRule {
        protocol,
        from_port,
        to_port,
        cidr,
        referenced_group_id,
        description: update.description.clone(),
        ..current.clone()
    })
}

/// Refuses `changed` when a rule would allow the same flow as another
/// rule of the group (an unchanged one, or another changed one).
fn check_duplicates(
    existing: &[SecurityGroupRule],
    changed: &[SecurityGroupRule],
) -> Result<(), CloudError> {
    for (i, rule) in changed.iter().enumerate() {
        let unchanged = existing
            .iter()
            .filter(|r| !changed.iter().any(|c| c.rule_id == r.rule_id));
        if unchanged
            .chain(&changed[..i])
            .any(|other| other.same_flow(rule))
        {
            return Err(duplicate(rule));
        }
    }
    Ok(())
}

/// Stores changed rules, mapping the store's refusals to AWS's errors.
async fn store_changes(cloud: &Cloud, changed: &[SecurityGroupRule]) -> Result<(), CloudError> {
    match cloud.store.update_security_group_rules(changed).await {
        Err(StoreError::Conflict(id)) => {
            let rule = changed.iter().find(|r| r.rule_id == id);
            return Err(rule.map_or_else(
                || CloudError::duplicate(Kind::Permission, "the specified rule already exists"),
                duplicate,
            ));
        }
        Err(StoreError::NotFound(id)) if id.starts_with("sgr-") => {
            return Err(rule_not_found(&id));
        }
        Err(StoreError::NotFound(id)) => return Err(group_id_not_found(&id)),
        other => other?,
    }
    firewall_changed(cloud);
    Ok(())
}

/// ModifySecurityGroupRules: replaces each named rule of the caller's
/// group `group_id` with its update, all or none; returns the rules as
/// they now are.
pub async fn modify_rules(
    cloud: &Cloud,
    caller: &Principal,
    group_id: &str,
    updates: &[RuleUpdate],
) -> Result<Vec<SecurityGroupRule>, CloudError> {
    let groups = AccountGroups::load(cloud, caller.account_id()).await?;
    let target = groups.by_id(group_id)?;
    let existing = cloud
        .store
        .rules_of_groups(std::slice::from_ref(&target.group_id))
        .await?;
    let mut changed: Vec<SecurityGroupRule> = Vec::with_capacity(updates.len());
    for update in updates {
        if changed.iter().any(|r| r.rule_id == update.rule_id) {
            return Err(CloudError::Invalid(format!(
                "The security group rule ID '{}' is specified more than once.",
                update.rule_id
            )));
        }
        let current = existing
            .iter()
            .find(|r| r.rule_id == update.rule_id)
            .ok_or_else(|| rule_not_found(&update.rule_id))?;
        changed.push(updated_rule(&groups, target, current, update)?);
    }
    check_duplicates(&existing, &changed)?;
    store_changes(cloud, &changed).await?;
    Ok(changed)
}

/// What UpdateSecurityGroupRuleDescriptions* names: rules by the flow
/// they allow (`IpPermissions`, each range or group with its new
/// description) or by id (`SecurityGroupRuleDescriptions`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DescriptionUpdates {
    /// Rules by flow; a range or group without a description loses it.
    Permissions(Vec<IpPermission>),
    /// (rule id, new description) pairs.
    RuleIds(Vec<(String, Option<String>)>),
}

/// UpdateSecurityGroupRuleDescriptionsIngress/Egress: sets the
/// descriptions of existing ingress (or egress) rules of the group, all
/// or none; a rule that does not exist is refused.
pub async fn update_descriptions(
    cloud: &Cloud,
    caller: &Principal,
    group: GroupRef,
    egress: bool,
    updates: &DescriptionUpdates,
) -> Result<(), CloudError> {
    let groups = AccountGroups::load(cloud, caller.account_id()).await?;
    let target = groups.target(group.id.as_deref(), group.name.as_deref())?;
    let existing = rules_in_direction(cloud, target, egress).await?;
    let mut changed: Vec<SecurityGroupRule> = Vec::new();
    let mut set = |rule: &SecurityGroupRule, description: &Option<String>| {
        changed.retain(|r| r.rule_id != rule.rule_id);
        changed.push(SecurityGroupRule {
            description: description.clone(),
            ..rule.clone()
        });
    };
    match updates {
        DescriptionUpdates::Permissions(permissions) => {
            for wanted in rules_for(&groups, target, egress, permissions)? {
                let rule = existing
                    .iter()
                    .find(|r| r.same_flow(&wanted))
                    .ok_or_else(|| {
                        CloudError::not_found(
                            Kind::Permission,
                            format!(
                                "The specified rule does not exist in this security group: {}",
                                super::describe_flow(&wanted)
                            ),
                        )
                    })?;
                set(rule, &wanted.description);
            }
        }
        DescriptionUpdates::RuleIds(pairs) => {
            for (id, description) in pairs {
                let rule = existing
                    .iter()
                    .find(|r| &r.rule_id == id)
                    .ok_or_else(|| rule_not_found(id))?;
                set(rule, description);
            }
        }
    }
    store_changes(cloud, &changed).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::security_groups::{authorize, firewall::instance_firewall_rules, list_rules};
    use crate::testkit::TestCloud;

    fn ssh(cidr: &str) -> IpPermission {
        IpPermission::new(
            "tcp",
            Some(22),
            Some(22),
            vec![(cidr.to_owned(), Some("ssh".into()))],
            vec![],
        )
        .expect("permission")
    }

    fn update(rule_id: &str, port: i64, cidr: &str) -> RuleUpdate {
        RuleUpdate {
            rule_id: rule_id.to_owned(),
            protocol: "tcp".into(),
            from_port: Some(port),
            to_port: Some(port),
            cidr: Some(cidr.to_owned()),
            referenced_group_id: None,
            description: Some("changed".into()),
        }
    }

    #[tokio::test]
    async fn modified_rules_keep_their_ids_and_reach_the_firewall() {
        let tc = TestCloud::new().await;
        let caller = tc.principal("alice").await;
        let group = crate::security_groups::create(
            &tc,
            &caller,
            crate::security_groups::NewGroup::new("web".into(), "web".into(), None, vec![])
                .expect("group"),
        )
        .await
        .expect("create");
        let by_id = GroupRef {
            id: Some(group.group_id.clone()),
            name: None,
        };
        let added = authorize(
            &tc,
            &caller,
            by_id.clone(),
            false,
            &[ssh("10.0.0.0/8"), ssh("192.168.0.0/16")],
            &[],
        )
        .await
        .expect("authorize");
        let (first, second) = (&added[0].rule_id, &added[1].rule_id);

        // Into the other rule's flow: refused, nothing changed.
        let clash = modify_rules(
            &tc,
            &caller,
            &group.group_id,
            &[update(first, 22, "192.168.1.1/16")],
        )
        .await
        .expect_err("duplicate");
        assert!(matches!(
            clash,
            CloudError::Duplicate {
                kind: Kind::Permission,
                ..
            }
        ));
        let unknown = modify_rules(
            &tc,
            &caller,
            &group.group_id,
            &[
                update(first, 443, "0.0.0.0/0"),
                update("sgr-0123456789abcdef0", 1, "1.1.1.1/32"),
            ],
        )
        .await
        .expect_err("unknown rule");
        assert!(matches!(
            unknown,
            CloudError::NotFound {
                kind: Kind::SecurityGroupRule,
                ..
            }
        ));
        let bad_port = RuleUpdate {
            to_port: None,
            ..update(first, 443, "0.0.0.0/0")
        };
        assert!(matches!(
            modify_rules(&tc, &caller, &group.group_id, &[bad_port]).await,
            Err(CloudError::Invalid(_))
        ));
        assert_eq!(
            list_rules(&tc, &caller, std::slice::from_ref(first))
                .await
                .expect("rules")[0],
            added[0]
        );

        let changed = modify_rules(
            &tc,
            &caller,
            &group.group_id,
            &[update(first, 443, "0.0.0.1/0")],
        )
        .await
        .expect("modify");
        assert_eq!(changed[0].rule_id, *first);
        let now = list_rules(&tc, &caller, std::slice::from_ref(first))
            .await
            .expect("rules");
        assert_eq!(
            (
                now[0].from_port,
                now[0].cidr.as_deref(),
                now[0].description.as_deref()
            ),
            (Some(443), Some("0.0.0.0/0"), Some("changed"))
        );
        let (ingress, _) = instance_firewall_rules(&tc, std::slice::from_ref(&group.group_id))
            .await
            .expect("firewall");
        assert!(
            ingress
                .iter()
                .any(|r| r.from_port == Some(443) && r.cidrs == ["0.0.0.0/0"]),
            "{ingress:?}"
        );
        assert!(
            !ingress
                .iter()
                .any(|r| r.from_port == Some(22) && r.cidrs.contains(&"10.0.0.0/8".to_owned())),
            "{ingress:?}"
        );

        // Descriptions, by flow and by id; a missing flow changes nothing.
        let missing = update_descriptions(
            &tc,
            &caller,
            by_id.clone(),
            false,
            &DescriptionUpdates::Permissions(vec![ssh("192.168.0.0/16"), ssh("172.16.0.0/12")]),
        )
        .await
        .expect_err("no such rule");
        assert!(matches!(
            missing,
            CloudError::NotFound {
                kind: Kind::Permission,
                ..
            }
        ));
        let mut renamed = ssh("192.168.0.0/16");
        renamed.ranges[0].1 = Some("office".into());
        update_descriptions(
            &tc,
            &caller,
            by_id.clone(),
            false,
            &DescriptionUpdates::Permissions(vec![renamed]),
        )
        .await
        .expect("by flow");
        update_descriptions(
            &tc,
            &caller,
            by_id,
            false,
            &DescriptionUpdates::RuleIds(vec![(first.clone(), None)]),
        )
        .await
        .expect("by id");
        let rules = list_rules(&tc, &caller, &[first.clone(), second.clone()])
            .await
            .expect("rules");
        let description = |id: &str| {
            rules
                .iter()
                .find(|r| r.rule_id == id)
                .and_then(|r| r.description.clone())
        };
        assert_eq!(description(first), None);
        assert_eq!(description(second).as_deref(), Some("office"));
    }
}
