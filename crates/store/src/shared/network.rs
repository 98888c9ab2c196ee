//! VPCs, subnets and security groups (`crate::network`): what both backends
//! share.

use super::StoreRow;
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
