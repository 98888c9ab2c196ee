//! Security groups compiled into what nodes enforce: the ingress and
//! egress rules of an instance's groups, with source groups expanded into
//! the addresses of their live members.

use std::collections::{BTreeSet, HashMap};

use mallee_node_api::FirewallRule;
use mallee_store::SecurityGroupRule;

use crate::{Cloud, CloudError};

/// Tells the reconciler that firewalls must be recomputed now rather than
/// at its next pass. Called after every successful change to groups, rules
/// or memberships.
pub fn firewall_changed(cloud: &Cloud) {
    cloud.compute.wake();
}

/// The firewall an instance in `group_ids` gets, as (ingress, egress):
/// one rule per stored rule, source groups expanded into the `/32`s of the
/// private addresses of their live (not terminated) members; a group rule
/// whose group has no live member allows nothing and is left out. CIDR
/// lists are sorted, so equal states give equal policies.
pub async fn instance_firewall_rules(
    cloud: &Cloud,
    group_ids: &[String],
) -> Result<(Vec<FirewallRule>, Vec<FirewallRule>), CloudError> {
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
    use crate::security_groups::describe_flow;

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
