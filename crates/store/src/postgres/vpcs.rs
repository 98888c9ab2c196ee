//! [`VpcIndex`] on PostgreSQL.

use async_trait::async_trait;
use sqlx::{Postgres, Transaction};

use super::network::{bump_generation, insert_group, insert_rule, insert_subnet};
use super::{PostgresStore, insert_resource_tx, tag_new_resource_tx};
use crate::network::{SecurityGroup, SecurityGroupRule, Subnet, Vpc};
use crate::postgres::ExecuteLocked;
use crate::shared::network::subnet_from_row;
use crate::shared::vpcs as sql;
use crate::shared::vpcs::dhcp_options_from_row;
use crate::vpcs::{DhcpOptions, DhcpOptionsDeletion, SubnetDeletion, VpcDeletion, VpcIndex};
use crate::{StoreError, StoreResult, TagPair};

/// Whether `dhcp_options_id` is a set of `account_id`.
async fn owns_dhcp_options(
    tx: &mut Transaction<'static, Postgres>,
    account_id: &str,
    dhcp_options_id: &str,
) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1::BIGINT FROM dhcp_options WHERE dhcp_options_id = $1 AND account_id = $2",
    )
    .bind(dhcp_options_id)
    .bind(account_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.is_some())
}

/// The first of `query`'s one-column answers for `id`, if any.
async fn first_of(
    tx: &mut Transaction<'static, Postgres>,
    query: &'static str,
    id: &str,
) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar(query)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
}

#[async_trait]
impl VpcIndex for PostgresStore {
    async fn create_vpc(
        &self,
        vpc: &Vpc,
        default_group: &SecurityGroup,
        default_rules: &[SecurityGroupRule],
        tags: &[TagPair],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        if let Some(options) = &vpc.dhcp_options_id
            && !owns_dhcp_options(&mut tx, &vpc.account_id, options).await?
        {
            return Err(StoreError::NotFound(options.clone()));
        }
        insert_resource_tx(&mut tx, &vpc.vpc_id, &vpc.account_id, "vpc", vpc.created_at).await?;
        let a = &vpc.attributes;
        sqlx::query(sql::CREATE_VPC)
            .bind(&vpc.vpc_id)
            .bind(&vpc.account_id)
            .bind(&vpc.cidr)
            .bind(vpc.created_at)
            .bind(i64::from(a.dns_support))
            .bind(i64::from(a.dns_hostnames))
            .bind(i64::from(a.address_usage_metrics))
            .bind(&vpc.dhcp_options_id)
            .execute(&mut *tx)
            .await?;
        tag_new_resource_tx(&mut tx, &vpc.account_id, &vpc.vpc_id, tags).await?;
        insert_group(&mut tx, default_group).await?;
        for rule in default_rules {
            insert_rule(&mut tx, rule).await?;
        }
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn delete_vpc(&self, account_id: &str, vpc_id: &str) -> StoreResult<VpcDeletion> {
        let mut tx = self.write_tx().await?;
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1::BIGINT FROM vpcs WHERE vpc_id = $1 AND account_id = $2 AND is_default = 0",
        )
        .bind(vpc_id)
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Ok(VpcDeletion::NotFound);
        }
        let dependencies = [
            sql::DELETE_VPC_SELECT_SUBNETS,
            sql::DELETE_VPC_SELECT_SECURITY_GROUPS,
            sql::DELETE_VPC_SELECT_INSTANCES,
            // An attached internet gateway, or a route table other than
            // the main one, keeps the VPC (as on AWS).
            sql::DELETE_VPC_SELECT_INTERNET_GATEWAYS,
            "SELECT t.route_table_id FROM route_tables t WHERE t.vpc_id = $1 AND NOT EXISTS
               (SELECT 1::BIGINT FROM route_table_associations a
                 WHERE a.route_table_id = t.route_table_id AND a.subnet_id IS NULL)
             ORDER BY t.route_table_id LIMIT 1",
        ];
        for query in dependencies {
            if let Some(resource_id) = first_of(&mut tx, query, vpc_id).await? {
                return Ok(VpcDeletion::Dependency { resource_id });
            }
        }
        // The main route table goes with its VPC: its association, then
        // its resource (the table and its routes cascade).
        sqlx::query(sql::DELETE_VPC_DELETE_ROUTE_TABLE_ASSOCIATIONS)
            .bind(vpc_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::DELETE_VPC_ROUTE_TABLE_RESOURCES)
            .bind(vpc_id)
            .execute(&mut *tx)
            .await?;
        // The default group goes with its VPC: its rules' resources, then
        // its own (rows and memberships cascade).
        sqlx::query(sql::DELETE_VPC_RULE_RESOURCES)
            .bind(vpc_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::DELETE_VPC_GROUP_RESOURCES)
            .bind(vpc_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::DELETE_VPC_RESOURCE)
            .bind(vpc_id)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(VpcDeletion::Deleted)
    }

    async fn create_subnet(&self, subnet: &Subnet, tags: &[TagPair]) -> StoreResult<Subnet> {
        let mut tx = self.write_tx().await?;
        let owner: Option<String> = sqlx::query_scalar(sql::CREATE_SUBNET_SELECT_VPCS)
            .bind(&subnet.vpc_id)
            .fetch_optional(&mut *tx)
            .await?;
        if owner.as_deref() != Some(subnet.account_id.as_str()) {
            return Err(StoreError::NotFound(subnet.vpc_id.clone()));
        }
        let taken: Option<String> = sqlx::query_scalar(sql::CREATE_SUBNET_SAME_CIDR)
            .bind(&subnet.vpc_id)
            .bind(&subnet.cidr)
            .fetch_optional(&mut *tx)
            .await?;
        if let Some(taken) = taken {
            return Err(StoreError::Conflict(taken));
        }
        insert_subnet(&mut tx, subnet).await?;
        tag_new_resource_tx(&mut tx, &subnet.account_id, &subnet.subnet_id, tags).await?;
        let row = sqlx::query(sql::CREATE_SUBNET_BY_ID)
            .bind(&subnet.subnet_id)
            .fetch_one(&mut *tx)
            .await?;
        let stored = subnet_from_row(&row)?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn delete_subnet(
        &self,
        account_id: &str,
        subnet_id: &str,
    ) -> StoreResult<SubnetDeletion> {
        let mut tx = self.write_tx().await?;
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1::BIGINT FROM subnets WHERE subnet_id = $1 AND account_id = $2",
        )
        .bind(subnet_id)
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?;
        if found.is_none() {
            return Ok(SubnetDeletion::NotFound);
        }
        // Instances keep their subnet in their details.
        let user = first_of(
            &mut tx,
            "SELECT instance_id FROM instances
             WHERE details::JSON->>'subnet_id' = $1 AND terminated_at IS NULL
             ORDER BY instance_id LIMIT 1",
            subnet_id,
        )
        .await?;
        if let Some(instance_id) = user {
            return Ok(SubnetDeletion::InUse { instance_id });
        }
        sqlx::query(sql::DELETE_SUBNET_DELETE_RESOURCES)
            .bind(subnet_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(SubnetDeletion::Deleted)
    }

    async fn set_subnet_map_public_ip(&self, subnet_id: &str, value: bool) -> StoreResult<bool> {
        let done = sqlx::query(sql::SET_SUBNET_MAP_PUBLIC_IP)
            .bind(i64::from(value))
            .bind(subnet_id)
            .execute_locked(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    async fn create_dhcp_options(
        &self,
        options: &DhcpOptions,
        tags: &[TagPair],
    ) -> StoreResult<()> {
        let configurations = serde_json::to_string(&options.configurations)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let mut tx = self.write_tx().await?;
        insert_resource_tx(
            &mut tx,
            &options.dhcp_options_id,
            &options.account_id,
            "dhcp-options",
            options.created_at,
        )
        .await?;
        sqlx::query(sql::CREATE_DHCP_OPTIONS)
            .bind(&options.dhcp_options_id)
            .bind(&options.account_id)
            .bind(configurations)
            .bind(options.created_at)
            .execute(&mut *tx)
            .await?;
        tag_new_resource_tx(&mut tx, &options.account_id, &options.dhcp_options_id, tags).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn dhcp_options(&self, account_id: &str) -> StoreResult<Vec<DhcpOptions>> {
        sqlx::query(sql::DHCP_OPTIONS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(dhcp_options_from_row)
            .collect()
    }

    async fn delete_dhcp_options(
        &self,
        account_id: &str,
        dhcp_options_id: &str,
    ) -> StoreResult<DhcpOptionsDeletion> {
        let mut tx = self.write_tx().await?;
        if !owns_dhcp_options(&mut tx, account_id, dhcp_options_id).await? {
            return Ok(DhcpOptionsDeletion::NotFound);
        }
        let user = first_of(
            &mut tx,
            sql::DELETE_DHCP_OPTIONS_SELECT_VPCS,
            dhcp_options_id,
        )
        .await?;
        if let Some(vpc_id) = user {
            return Ok(DhcpOptionsDeletion::InUse { vpc_id });
        }
        sqlx::query(sql::DELETE_DHCP_OPTIONS_DELETE_RESOURCES)
            .bind(dhcp_options_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(DhcpOptionsDeletion::Deleted)
    }

    async fn associate_dhcp_options(
        &self,
        account_id: &str,
        vpc_id: &str,
        dhcp_options_id: Option<&str>,
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        if let Some(options) = dhcp_options_id
            && !owns_dhcp_options(&mut tx, account_id, options).await?
        {
            return Err(StoreError::NotFound(options.to_owned()));
        }
        let done = sqlx::query(sql::ASSOCIATE_DHCP_OPTIONS)
            .bind(dhcp_options_id)
            .bind(vpc_id)
            .bind(account_id)
            .execute(&mut *tx)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::NotFound(vpc_id.to_owned()));
        }
        tx.commit().await?;
        Ok(())
    }
}
