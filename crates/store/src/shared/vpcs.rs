//! VPC attributes and DHCP options (`crate::vpcs`): what both backends share.

use super::StoreRow;
use crate::vpcs::DhcpOptions;
use crate::{StoreError, StoreResult};

pub(crate) fn dhcp_options_from_row(row: &impl StoreRow) -> StoreResult<DhcpOptions> {
    let configurations: String = row.try_get("configurations")?;
    Ok(DhcpOptions {
        dhcp_options_id: row.try_get("dhcp_options_id")?,
        account_id: row.try_get("account_id")?,
        configurations: serde_json::from_str(&configurations)
            .map_err(|e| StoreError::Corrupt(format!("DHCP options configurations: {e}")))?,
        created_at: row.try_get("created_at")?,
    })
}

// SQL that reads the same in both dialects, named after the `Store`
// method (or helper) that runs it and, where that runs several statements,
// after what the statement does.

pub(crate) const CREATE_VPC: &str =
    "INSERT INTO vpcs (vpc_id, account_id, cidr, is_default, created_at,
      enable_dns_support, enable_dns_hostnames, enable_network_address_usage_metrics,
      dhcp_options_id)
    VALUES ($1, $2, $3, 0, $4, $5, $6, $7, $8)";

pub(crate) const DELETE_VPC_SELECT_SUBNETS: &str =
    "SELECT subnet_id FROM subnets WHERE vpc_id = $1 ORDER BY subnet_id LIMIT 1";

pub(crate) const DELETE_VPC_SELECT_SECURITY_GROUPS: &str =
    "SELECT group_id FROM security_groups WHERE vpc_id = $1 AND name <> 'default'
    ORDER BY group_id LIMIT 1";

pub(crate) const DELETE_VPC_SELECT_INSTANCES: &str =
    "SELECT instance_id FROM instances WHERE network_id = $1 AND terminated_at IS NULL
    ORDER BY instance_id LIMIT 1";

pub(crate) const DELETE_VPC_SELECT_INTERNET_GATEWAYS: &str =
    "SELECT internet_gateway_id FROM internet_gateways WHERE vpc_id = $1
    ORDER BY internet_gateway_id LIMIT 1";

pub(crate) const DELETE_VPC_DELETE_ROUTE_TABLE_ASSOCIATIONS: &str =
    "DELETE FROM route_table_associations WHERE vpc_id = $1";

pub(crate) const DELETE_VPC_ROUTE_TABLE_RESOURCES: &str =
    "DELETE FROM resources WHERE resource_id IN
    (SELECT route_table_id FROM route_tables WHERE vpc_id = $1)";

pub(crate) const DELETE_VPC_RULE_RESOURCES: &str = "DELETE FROM resources WHERE resource_id IN
    (SELECT r.rule_id FROM security_group_rules r
       JOIN security_groups g ON g.group_id = r.group_id WHERE g.vpc_id = $1)";

pub(crate) const DELETE_VPC_GROUP_RESOURCES: &str = "DELETE FROM resources WHERE resource_id IN
    (SELECT group_id FROM security_groups WHERE vpc_id = $1)";

pub(crate) const DELETE_VPC_RESOURCE: &str =
    "DELETE FROM resources WHERE resource_id = $1 AND resource_type = 'vpc'";

pub(crate) const CREATE_SUBNET_SELECT_VPCS: &str = "SELECT account_id FROM vpcs WHERE vpc_id = $1";

pub(crate) const CREATE_SUBNET_SAME_CIDR: &str =
    "SELECT subnet_id FROM subnets WHERE vpc_id = $1 AND cidr = $2";

pub(crate) const CREATE_SUBNET_BY_ID: &str = "SELECT * FROM subnets WHERE subnet_id = $1";

pub(crate) const DELETE_SUBNET_DELETE_RESOURCES: &str =
    "DELETE FROM resources WHERE resource_id = $1 AND resource_type = 'subnet'";

pub(crate) const SET_SUBNET_MAP_PUBLIC_IP: &str =
    "UPDATE subnets SET map_public_ip_on_launch = $1 WHERE subnet_id = $2";

pub(crate) const CREATE_DHCP_OPTIONS: &str =
    "INSERT INTO dhcp_options (dhcp_options_id, account_id, configurations, created_at)
    VALUES ($1, $2, $3, $4)";

pub(crate) const DHCP_OPTIONS: &str =
    "SELECT * FROM dhcp_options WHERE account_id = $1 ORDER BY dhcp_options_id";

pub(crate) const DELETE_DHCP_OPTIONS_SELECT_VPCS: &str =
    "SELECT vpc_id FROM vpcs WHERE dhcp_options_id = $1 ORDER BY vpc_id LIMIT 1";

pub(crate) const DELETE_DHCP_OPTIONS_DELETE_RESOURCES: &str =
    "DELETE FROM resources WHERE resource_id = $1 AND resource_type = 'dhcp-options'";

pub(crate) const ASSOCIATE_DHCP_OPTIONS: &str =
    "UPDATE vpcs SET dhcp_options_id = $1 WHERE vpc_id = $2 AND account_id = $3";
