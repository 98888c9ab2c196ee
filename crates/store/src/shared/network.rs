//! VPCs, subnets and security groups (`crate::network`): what both backends
//! share.

use super::{Binder, StoreRow};
use crate::network::{SecurityGroup, SecurityGroupRule, Subnet, Vpc, VpcAttributes};
use crate::{StoreError, StoreResult};

pub(crate) fn vpc_from_row(row: &impl StoreRow) -> StoreResult<Vpc> {
    Ok(Vpc {
        vpc_id: row.try_get("vpc_id")?,
        account_id: row.try_get("account_id")?,
        cidr: row.try_get("cidr")?,
        is_default: row.try_get::<i64>("is_default")? != 0,
        created_at: row.try_get("created_at")?,
        attributes: VpcAttributes {
            dns_support: row.try_get::<i64>("enable_dns_support")? != 0,
            dns_hostnames: row.try_get::<i64>("enable_dns_hostnames")? != 0,
            address_usage_metrics: row.try_get::<i64>("enable_network_address_usage_metrics")? != 0,
        },
        dhcp_options_id: row.try_get("dhcp_options_id")?,
    })
}

pub(crate) fn subnet_from_row(row: &impl StoreRow) -> StoreResult<Subnet> {
    Ok(Subnet {
        subnet_id: row.try_get("subnet_id")?,
        vpc_id: row.try_get("vpc_id")?,
        account_id: row.try_get("account_id")?,
        zone: row.try_get("zone")?,
        cidr: row.try_get("cidr")?,
        default_for_az: row.try_get::<i64>("default_for_az")? != 0,
        map_public_ip_on_launch: row.try_get::<i64>("map_public_ip_on_launch")? != 0,
        created_at: row.try_get("created_at")?,
        vni: u32::try_from(row.try_get::<i64>("vni")?)
            .map_err(|_| StoreError::Corrupt("subnet VNI out of range".into()))?,
    })
}

pub(crate) fn group_from_row(row: &impl StoreRow) -> StoreResult<SecurityGroup> {
    Ok(SecurityGroup {
        group_id: row.try_get("group_id")?,
        account_id: row.try_get("account_id")?,
        vpc_id: row.try_get("vpc_id")?,
        name: row.try_get("name")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
    })
}

/// A rule's port, kept as BIGINT in PostgreSQL like every integer of
/// the schema (and read the same way from SQLite's INTEGER).
fn port(row: &impl StoreRow, column: &str) -> StoreResult<Option<i32>> {
    row.try_get::<Option<i64>>(column)?
        .map(|p| i32::try_from(p).map_err(|_| StoreError::Corrupt(format!("{column} {p}"))))
        .transpose()
}

pub(crate) fn rule_from_row(row: &impl StoreRow) -> StoreResult<SecurityGroupRule> {
    Ok(SecurityGroupRule {
        rule_id: row.try_get("rule_id")?,
        group_id: row.try_get("group_id")?,
        account_id: row.try_get("account_id")?,
        egress: row.try_get::<i64>("egress")? != 0,
        protocol: row.try_get("protocol")?,
        from_port: port(row, "from_port")?,
        to_port: port(row, "to_port")?,
        cidr: row.try_get("cidr")?,
        referenced_group_id: row.try_get("referenced_group_id")?,
        description: row.try_get("description")?,
        created_at: row.try_get("created_at")?,
    })
}

// SQL that reads the same in both dialects, named after the `Store`
// method (or helper) that runs it and, where that runs several statements,
// after what the statement does.

pub(crate) const WRITE_INSTANCE_GROUPS_TX_DELETE_INSTANCE_SECURITY_GROUPS: &str =
    "DELETE FROM instance_security_groups WHERE instance_id = $1";

pub(crate) const WRITE_INSTANCE_GROUPS_TX_INSERT_INSTANCE_SECURITY_GROUPS: &str =
    "INSERT INTO instance_security_groups (instance_id, group_id, position)
    VALUES ($1, $2, $3) ON CONFLICT (instance_id, group_id) DO NOTHING";

pub(crate) const BUMP_GENERATION: &str =
    "UPDATE firewall_generation SET generation = generation + 1 WHERE id = 1";

pub(crate) const INSERT_SUBNET_UPDATE_VNI_COUNTER: &str =
    "UPDATE vni_counter SET last = last + 1 WHERE id = 1 RETURNING last";

pub(crate) const INSERT_SUBNET_INSERT_SUBNETS: &str =
    "INSERT INTO subnets (subnet_id, vpc_id, account_id, zone, cidr, default_for_az,
    map_public_ip_on_launch, created_at, vni) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)";

pub(crate) const INSERT_GROUP_SELECT_SECURITY_GROUPS: &str =
    "SELECT group_id FROM security_groups WHERE vpc_id = $1 AND name = $2";

pub(crate) const INSERT_GROUP_SELECT_VPCS: &str = "SELECT account_id FROM vpcs WHERE vpc_id = $1";

pub(crate) const INSERT_GROUP_INSERT_SECURITY_GROUPS: &str =
    "INSERT INTO security_groups (group_id, account_id, vpc_id, name, description, created_at)
    VALUES ($1, $2, $3, $4, $5, $6)";

pub(crate) const INSERT_RULE: &str =
    "INSERT INTO security_group_rules (rule_id, group_id, account_id, egress, protocol,
      from_port, to_port, cidr, referenced_group_id, description, created_at)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)";

pub(crate) const LOAD_DEFAULT_VPC_SELECT_VPCS: &str =
    "SELECT * FROM vpcs WHERE account_id = $1 AND is_default = 1";

pub(crate) const LOAD_DEFAULT_VPC_SELECT_SUBNETS: &str =
    "SELECT * FROM subnets WHERE vpc_id = $1 ORDER BY zone, subnet_id";

pub(crate) const LOAD_DEFAULT_VPC_SELECT_SECURITY_GROUPS: &str =
    "SELECT * FROM security_groups WHERE vpc_id = $1 AND name = 'default'";

pub(crate) const ENSURE_DEFAULT_VPC_SELECT_VPCS: &str =
    "SELECT vpc_id FROM vpcs WHERE account_id = $1 AND is_default = 1";

pub(crate) const ENSURE_DEFAULT_VPC_INSERT_VPCS: &str =
    "INSERT INTO vpcs (vpc_id, account_id, cidr, is_default, created_at)
    VALUES ($1, $2, $3, 1, $4)";

pub(crate) const VPCS: &str = "SELECT * FROM vpcs WHERE account_id = $1 ORDER BY vpc_id";

pub(crate) const VPC: &str = "SELECT * FROM vpcs WHERE vpc_id = $1";

pub(crate) const SET_VPC_ATTRIBUTES: &str =
    "UPDATE vpcs SET enable_dns_support = $1, enable_dns_hostnames = $2,
          enable_network_address_usage_metrics = $3
    WHERE vpc_id = $4";

pub(crate) const SUBNETS: &str =
    "SELECT * FROM subnets WHERE account_id = $1 ORDER BY vpc_id, zone, subnet_id";

pub(crate) const SUBNET: &str = "SELECT * FROM subnets WHERE subnet_id = $1";

pub(crate) const SECURITY_GROUPS: &str =
    "SELECT * FROM security_groups WHERE account_id = $1 ORDER BY group_id";

pub(crate) const SECURITY_GROUP: &str = "SELECT * FROM security_groups WHERE group_id = $1";

pub(crate) const DELETE_SECURITY_GROUP_SELECT_INSTANCE_SECURITY_GROUPS: &str =
    "SELECT m.instance_id FROM instance_security_groups m
      JOIN instances i ON i.instance_id = m.instance_id
    WHERE m.group_id = $1 AND i.terminated_at IS NULL
    ORDER BY m.instance_id LIMIT 1";

pub(crate) const DELETE_SECURITY_GROUP_SELECT_SECURITY_GROUP_RULES: &str =
    "SELECT group_id FROM security_group_rules
    WHERE referenced_group_id = $1 AND group_id <> $2 ORDER BY group_id LIMIT 1";

pub(crate) const DELETE_SECURITY_GROUP_RULE_RESOURCES: &str =
    "DELETE FROM resources WHERE resource_id IN
    (SELECT rule_id FROM security_group_rules WHERE group_id = $1)";

pub(crate) const DELETE_SECURITY_GROUP_RESOURCE: &str =
    "DELETE FROM resources WHERE resource_id = $1";

pub(crate) const SECURITY_GROUP_RULES: &str =
    "SELECT * FROM security_group_rules WHERE account_id = $1
    ORDER BY group_id, egress, created_at, rule_id";

pub(crate) const REMOVE_SECURITY_GROUP_RULES: &str =
    "DELETE FROM security_group_rules WHERE rule_id = $1";

pub(crate) const UPDATE_SECURITY_GROUP_RULES: &str =
    "UPDATE security_group_rules SET protocol = $1, from_port = $2, to_port = $3,
      cidr = $4, referenced_group_id = $5, description = $6
    WHERE rule_id = $7 AND group_id = $8";

pub(crate) const INSTANCE_GROUPS: &str =
    "SELECT group_id FROM instance_security_groups WHERE instance_id = $1 ORDER BY position";

pub(crate) const INSTANCES_IN_GROUP: &str =
    "SELECT instance_id FROM instance_security_groups WHERE group_id = $1 ORDER BY instance_id";

pub(crate) const FIREWALL_GENERATION: &str =
    "SELECT generation FROM firewall_generation WHERE id = 1";

/// Binds [`INSERT_RULE`]'s parameters.
pub(crate) fn bind_insert_rule<Q: Binder>(query: Q, rule: &SecurityGroupRule) -> Q {
    query
        .arg(&rule.rule_id)
        .arg(&rule.group_id)
        .arg(&rule.account_id)
        .arg(i64::from(rule.egress))
        .arg(&rule.protocol)
        .arg(rule.from_port)
        .arg(rule.to_port)
        .arg(&rule.cidr)
        .arg(&rule.referenced_group_id)
        .arg(&rule.description)
        .arg(rule.created_at)
}

/// Binds [`INSERT_GROUP_INSERT_SECURITY_GROUPS`]'s parameters.
pub(crate) fn bind_insert_group<Q: Binder>(query: Q, group: &SecurityGroup) -> Q {
    query
        .arg(&group.group_id)
        .arg(&group.account_id)
        .arg(&group.vpc_id)
        .arg(&group.name)
        .arg(&group.description)
        .arg(group.created_at)
}

/// Binds [`UPDATE_SECURITY_GROUP_RULES`]'s parameters.
pub(crate) fn bind_update_rule<Q: Binder>(query: Q, rule: &SecurityGroupRule) -> Q {
    query
        .arg(&rule.protocol)
        .arg(rule.from_port)
        .arg(rule.to_port)
        .arg(&rule.cidr)
        .arg(&rule.referenced_group_id)
        .arg(&rule.description)
        .arg(&rule.rule_id)
        .arg(&rule.group_id)
}

/// Binds [`INSERT_SUBNET_INSERT_SUBNETS`]'s parameters.
pub(crate) fn bind_insert_subnet<Q: Binder>(query: Q, subnet: &Subnet, vni: i64) -> Q {
    query
        .arg(&subnet.subnet_id)
        .arg(&subnet.vpc_id)
        .arg(&subnet.account_id)
        .arg(&subnet.zone)
        .arg(&subnet.cidr)
        .arg(i64::from(subnet.default_for_az))
        .arg(i64::from(subnet.map_public_ip_on_launch))
        .arg(subnet.created_at)
        .arg(vni)
}
