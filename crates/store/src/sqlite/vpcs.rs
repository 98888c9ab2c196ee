//! [`VpcIndex`] on SQLite.

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

use super::network::{bump_generation, insert_group, insert_rule, insert_subnet};
use super::{SqliteStore, insert_resource_tx, tag_new_resource_tx};
use crate::network::{SecurityGroup, SecurityGroupRule, Subnet, Vpc};
use crate::shared::network::subnet_from_row;
use crate::shared::vpcs as sql;
use crate::shared::vpcs::dhcp_options_from_row;
use crate::vpcs::{DhcpOptions, DhcpOptionsDeletion, SubnetDeletion, VpcDeletion, VpcIndex};
use crate::{StoreError, StoreResult, TagPair};

/// Whether `dhcp_options_id` is a set of `account_id`.
async fn owns_dhcp_options(
    tx: &mut Transaction<'static, Sqlite>,
    account_id: &str,
    dhcp_options_id: &str,
) -> StoreResult<bool> {
    let found: Option<i64> = sqlx::query_scalar(
        "SELECT 1 FROM dhcp_options WHERE dhcp_options_id = ? AND account_id = ?",
    )
    .bind(dhcp_options_id)
    .bind(account_id)
    .fetch_optional(&mut **tx)
    .await?;
    Ok(found.is_some())
}

/// The first of `query`'s one-column answers for `id`, if any.
async fn first_of(
    tx: &mut Transaction<'static, Sqlite>,
    query: &'static str,
    id: &str,
) -> StoreResult<Option<String>> {
    Ok(sqlx::query_scalar(query)
        .bind(id)
        .fetch_optional(&mut **tx)
        .await?)
}

#[async_trait]
impl VpcIndex for SqliteStore {
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
            "SELECT 1 FROM vpcs WHERE vpc_id = ? AND account_id = ? AND is_default = 0",
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
            "SELECT t.route_table_id FROM route_tables t WHERE t.vpc_id = ? AND NOT EXISTS
               (SELECT 1 FROM route_table_associations a
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
        let found: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM subnets WHERE subnet_id = ? AND account_id = ?")
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
             WHERE json_extract(details, '$.subnet_id') = ? AND terminated_at IS NULL
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
            .execute(&self.pool)
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

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use sqlx::sqlite::SqliteConnectOptions;

    use crate::InstanceIndex;
    use crate::sqlite::SqliteStore;

    /// Migration 0023 gives an id to the interface of every VPC instance
    /// stored without one (launched before instances had them), keeps the
    /// ids instances had, and leaves bare-metal instances (no VPC) alone.
    #[tokio::test]
    async fn migration_0023_gives_old_instances_an_interface() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("old.db");
        let options = SqliteConnectOptions::new()
            .filename(&path)
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = sqlx::SqlitePool::connect_with(options).await.expect("open");
        let mut before = sqlx::migrate!("./migrations");
        before.migrations = Cow::Owned(
            before
                .migrations
                .iter()
                .filter(|m| m.version <= 22)
                .cloned()
                .collect(),
        );
        before.run(&pool).await.expect("migrate to 0022");
        let rows = [
            "INSERT INTO accounts (account_id, name, created_at) VALUES ('111122223333', 'old', 1)",
            "INSERT INTO reservations (reservation_id, account_id, request_hash, created_at)
             VALUES ('r-old', '111122223333', 'h', 1)",
        ];
        for sql in rows {
            sqlx::query(sql).execute(&pool).await.expect(sql);
        }
        let instances = [
            (
                "i-old",
                r#"{"vpc_id":"vpc-1","subnet_id":"subnet-1"}"#,
                "02:00:00:00:00:01",
            ),
            (
                "i-kept",
                r#"{"vpc_id":"vpc-1","network_interface_id":"eni-0000000000000kept"}"#,
                "02:00:00:00:00:02",
            ),
            ("i-metal", r#"{"vpc_id":""}"#, "02:00:00:00:00:03"),
        ];
        for (i, (id, details, mac)) in instances.iter().enumerate() {
            sqlx::query(
                "INSERT INTO resources (resource_id, account_id, resource_type, created_at)
                 VALUES (?, '111122223333', 'instance', 1)",
            )
            .bind(id)
            .execute(&pool)
            .await
            .expect("resource");
            sqlx::query(
                "INSERT INTO instances (instance_id, reservation_id, account_id, launch_index,
                   node_id, zone, network_id, private_ip, mac, state, desired, generation,
                   revision, details, created_at, updated_at)
                 VALUES (?, 'r-old', '111122223333', ?, 'n', 'z', 'vpc-1', ?, ?, 'running',
                   'running', 1, 0, ?, 1, 1)",
            )
            .bind(id)
            .bind(i64::try_from(i).expect("index"))
            .bind(format!("172.31.0.{}", i + 4))
            .bind(mac)
            .bind(details)
            .execute(&pool)
            .await
            .expect("instance");
        }
        sqlx::query(
            "INSERT INTO resources (resource_id, account_id, resource_type, created_at)
             VALUES ('eni-0000000000000kept', '111122223333', 'network-interface', 1)",
        )
        .execute(&pool)
        .await
        .expect("kept interface");
        sqlx::query(
            "INSERT INTO instance_interfaces (interface_id, instance_id)
             VALUES ('eni-0000000000000kept', 'i-kept')",
        )
        .execute(&pool)
        .await
        .expect("kept interface");
        pool.close().await;

        let store = SqliteStore::open(&path).await.expect("migrate to the last");
        let interface = |details: &str| -> String {
            let v: serde_json::Value = serde_json::from_str(details).expect("json");
            v["network_interface_id"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        };
        let old = store.instance("i-old").await.expect("read").expect("old");
        let eni = interface(&old.details);
        assert!(
            eni.len() == 21
                && eni.starts_with("eni-")
                && eni[4..].bytes().all(|b| b.is_ascii_hexdigit()),
            "{eni}"
        );
        let kept = store.instance("i-kept").await.expect("read").expect("kept");
        assert_eq!(interface(&kept.details), "eni-0000000000000kept");
        let metal = store
            .instance("i-metal")
            .await
            .expect("read")
            .expect("metal");
        assert_eq!(interface(&metal.details), "");
        let registered: Vec<(String, String)> = sqlx::query_as(
            "SELECT r.resource_id, i.instance_id FROM resources r
               JOIN instance_interfaces i ON i.interface_id = r.resource_id
             WHERE r.resource_type = 'network-interface' ORDER BY i.instance_id",
        )
        .fetch_all(&store.pool)
        .await
        .expect("interfaces");
        assert_eq!(
            registered,
            [
                ("eni-0000000000000kept".to_owned(), "i-kept".to_owned()),
                (eni, "i-old".to_owned()),
            ]
        );
    }
}
