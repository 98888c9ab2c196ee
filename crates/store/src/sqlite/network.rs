//! [`NetworkIndex`] on SQLite.

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

use super::{
    SqliteStore, conflict, delete_resource_tx, insert_resource_tx, require_tx, tag_new_resource_tx,
};
use crate::network::{
    DefaultVpc, GroupDeletion, NetworkIndex, SecurityGroup, SecurityGroupRule, Subnet, Vpc,
    VpcAttributes,
};
use crate::shared::network::{
    self as sql, group_from_row, rule_from_row, subnet_from_row, vpc_from_row,
};
use crate::{StoreError, StoreResult, TagPair};

const GROUP_EXISTS: &str = "SELECT 1 FROM security_groups WHERE group_id = ?";

/// Replaces an instance's groups (ordered as given) inside `tx`; `NotFound`
/// when a group does not exist. The caller bumps the firewall generation.
pub(super) async fn write_instance_groups_tx(
    tx: &mut Transaction<'static, Sqlite>,
    instance_id: &str,
    group_ids: &[String],
) -> StoreResult<()> {
    sqlx::query(sql::WRITE_INSTANCE_GROUPS_TX_DELETE_INSTANCE_SECURITY_GROUPS)
        .bind(instance_id)
        .execute(&mut **tx)
        .await?;
    for (position, group_id) in group_ids.iter().enumerate() {
        require_tx(tx, GROUP_EXISTS, group_id).await?;
        sqlx::query(sql::WRITE_INSTANCE_GROUPS_TX_INSERT_INSTANCE_SECURITY_GROUPS)
            .bind(instance_id)
            .bind(group_id)
            .bind(i64::try_from(position).unwrap_or(i64::MAX))
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

pub(super) async fn bump_generation(tx: &mut Transaction<'static, Sqlite>) -> StoreResult<()> {
    sqlx::query(sql::BUMP_GENERATION).execute(&mut **tx).await?;
    Ok(())
}

pub(super) async fn insert_subnet(
    tx: &mut Transaction<'static, Sqlite>,
    subnet: &Subnet,
) -> StoreResult<()> {
    insert_resource_tx(
        tx,
        &subnet.subnet_id,
        &subnet.account_id,
        "subnet",
        subnet.created_at,
    )
    .await?;
    let vni: i64 = sqlx::query_scalar(sql::INSERT_SUBNET_UPDATE_VNI_COUNTER)
        .fetch_one(&mut **tx)
        .await?;
    if vni > i64::from(crate::network::MAX_VNI) {
        return Err(StoreError::Conflict(
            "every VXLAN network identifier is taken".into(),
        ));
    }
    sql::bind_insert_subnet(sqlx::query(sql::INSERT_SUBNET_INSERT_SUBNETS), subnet, vni)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn insert_group(
    tx: &mut Transaction<'static, Sqlite>,
    group: &SecurityGroup,
) -> StoreResult<()> {
    let taken: Option<String> = sqlx::query_scalar(sql::INSERT_GROUP_SELECT_SECURITY_GROUPS)
        .bind(&group.vpc_id)
        .bind(&group.name)
        .fetch_optional(&mut **tx)
        .await?;
    if taken.is_some() {
        return Err(StoreError::Conflict(group.name.clone()));
    }
    let vpc_owner: Option<String> = sqlx::query_scalar(sql::INSERT_GROUP_SELECT_VPCS)
        .bind(&group.vpc_id)
        .fetch_optional(&mut **tx)
        .await?;
    if vpc_owner.as_deref() != Some(group.account_id.as_str()) {
        return Err(StoreError::NotFound(group.vpc_id.clone()));
    }
    insert_resource_tx(
        tx,
        &group.group_id,
        &group.account_id,
        "security-group",
        group.created_at,
    )
    .await?;
    sql::bind_insert_group(sqlx::query(sql::INSERT_GROUP_INSERT_SECURITY_GROUPS), group)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

pub(super) async fn insert_rule(
    tx: &mut Transaction<'static, Sqlite>,
    rule: &SecurityGroupRule,
) -> StoreResult<()> {
    for group in std::iter::once(&rule.group_id).chain(rule.referenced_group_id.as_ref()) {
        require_tx(tx, GROUP_EXISTS, group).await?;
    }
    insert_resource_tx(
        tx,
        &rule.rule_id,
        &rule.account_id,
        "security-group-rule",
        rule.created_at,
    )
    .await?;
    sql::bind_insert_rule(sqlx::query(sql::INSERT_RULE), rule)
        .execute(&mut **tx)
        .await
        .map_err(conflict(&rule.rule_id))?;
    Ok(())
}

impl SqliteStore {
    async fn load_default_vpc(&self, account_id: &str) -> StoreResult<Option<DefaultVpc>> {
        let Some(vpc) = sqlx::query(sql::LOAD_DEFAULT_VPC_SELECT_VPCS)
            .bind(account_id)
            .fetch_optional(&self.pool)
            .await?
        else {
            return Ok(None);
        };
        let vpc = vpc_from_row(&vpc)?;
        let subnets = sqlx::query(sql::LOAD_DEFAULT_VPC_SELECT_SUBNETS)
            .bind(&vpc.vpc_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(subnet_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        let group = sqlx::query(sql::LOAD_DEFAULT_VPC_SELECT_SECURITY_GROUPS)
            .bind(&vpc.vpc_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("{} has no default group", vpc.vpc_id)))?;
        let default_group = group_from_row(&group)?;
        let default_rules = self
            .rules_of_groups(std::slice::from_ref(&default_group.group_id))
            .await?;
        Ok(Some(DefaultVpc {
            vpc,
            subnets,
            default_group,
            default_rules,
        }))
    }
}

#[async_trait]
impl NetworkIndex for SqliteStore {
    async fn ensure_default_vpc(&self, template: &DefaultVpc) -> StoreResult<DefaultVpc> {
        let account_id = &template.vpc.account_id;
        let mut tx = self.write_tx().await?;
        let existing: Option<String> = sqlx::query_scalar(sql::ENSURE_DEFAULT_VPC_SELECT_VPCS)
            .bind(account_id)
            .fetch_optional(&mut *tx)
            .await?;
        match existing {
            Some(vpc_id) => {
                let mut added = false;
                for subnet in &template.subnets {
                    let clash: Option<i64> = sqlx::query_scalar(
                        "SELECT 1 FROM subnets WHERE vpc_id = ?
                           AND ((zone = ? AND default_for_az = 1) OR cidr = ?)",
                    )
                    .bind(&vpc_id)
                    .bind(&subnet.zone)
                    .bind(&subnet.cidr)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if clash.is_none() {
                        let subnet = Subnet {
                            vpc_id: vpc_id.clone(),
                            ..subnet.clone()
                        };
                        insert_subnet(&mut tx, &subnet).await?;
                        added = true;
                    }
                }
                if added {
                    tx.commit().await?;
                }
            }
            None => {
                let vpc = &template.vpc;
                insert_resource_tx(&mut tx, &vpc.vpc_id, account_id, "vpc", vpc.created_at).await?;
                sqlx::query(sql::ENSURE_DEFAULT_VPC_INSERT_VPCS)
                    .bind(&vpc.vpc_id)
                    .bind(account_id)
                    .bind(&vpc.cidr)
                    .bind(vpc.created_at)
                    .execute(&mut *tx)
                    .await?;
                for subnet in &template.subnets {
                    insert_subnet(&mut tx, subnet).await?;
                }
                insert_group(&mut tx, &template.default_group).await?;
                for rule in &template.default_rules {
                    insert_rule(&mut tx, rule).await?;
                }
                bump_generation(&mut tx).await?;
                tx.commit().await?;
            }
        }
        self.load_default_vpc(account_id)
            .await?
            .ok_or_else(|| StoreError::Corrupt(format!("default VPC of {account_id} vanished")))
    }

    async fn default_vpc(&self, account_id: &str) -> StoreResult<Option<DefaultVpc>> {
        self.load_default_vpc(account_id).await
    }

    async fn vpcs(&self, account_id: &str) -> StoreResult<Vec<Vpc>> {
        sqlx::query(sql::VPCS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(vpc_from_row)
            .collect()
    }

    async fn vpc(&self, vpc_id: &str) -> StoreResult<Option<Vpc>> {
        sqlx::query(sql::VPC)
            .bind(vpc_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(vpc_from_row)
            .transpose()
    }

    async fn set_vpc_attributes(
        &self,
        vpc_id: &str,
        attributes: &VpcAttributes,
    ) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let changed = sqlx::query(sql::SET_VPC_ATTRIBUTES)
            .bind(i64::from(attributes.dns_support))
            .bind(i64::from(attributes.dns_hostnames))
            .bind(i64::from(attributes.address_usage_metrics))
            .bind(vpc_id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(changed == 1)
    }

    async fn subnets(&self, account_id: &str) -> StoreResult<Vec<Subnet>> {
        sqlx::query(sql::SUBNETS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(subnet_from_row)
            .collect()
    }

    async fn subnet(&self, subnet_id: &str) -> StoreResult<Option<Subnet>> {
        sqlx::query(sql::SUBNET)
            .bind(subnet_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(subnet_from_row)
            .transpose()
    }

    async fn create_security_group(
        &self,
        group: &SecurityGroup,
        rules: &[SecurityGroupRule],
        tags: &[TagPair],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        insert_group(&mut tx, group).await?;
        for rule in rules {
            insert_rule(&mut tx, rule).await?;
        }
        tag_new_resource_tx(&mut tx, &group.account_id, &group.group_id, tags).await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn security_groups(&self, account_id: &str) -> StoreResult<Vec<SecurityGroup>> {
        sqlx::query(sql::SECURITY_GROUPS)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(group_from_row)
            .collect()
    }

    async fn security_group(&self, group_id: &str) -> StoreResult<Option<SecurityGroup>> {
        sqlx::query(sql::SECURITY_GROUP)
            .bind(group_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(group_from_row)
            .transpose()
    }

    async fn delete_security_group(
        &self,
        account_id: &str,
        group_id: &str,
    ) -> StoreResult<GroupDeletion> {
        let mut tx = self.write_tx().await?;
        let exists: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM security_groups WHERE group_id = ? AND account_id = ?",
        )
        .bind(group_id)
        .bind(account_id)
        .fetch_optional(&mut *tx)
        .await?;
        if exists.is_none() {
            return Ok(GroupDeletion::NotFound);
        }
        let member: Option<String> =
            sqlx::query_scalar(sql::DELETE_SECURITY_GROUP_SELECT_INSTANCE_SECURITY_GROUPS)
                .bind(group_id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(instance_id) = member {
            return Ok(GroupDeletion::InUse { instance_id });
        }
        let referencing: Option<String> =
            sqlx::query_scalar(sql::DELETE_SECURITY_GROUP_SELECT_SECURITY_GROUP_RULES)
                .bind(group_id)
                .bind(group_id)
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(group_id) = referencing {
            return Ok(GroupDeletion::Referenced { group_id });
        }
        sqlx::query(sql::DELETE_SECURITY_GROUP_RULE_RESOURCES)
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::DELETE_SECURITY_GROUP_RESOURCE)
            .bind(group_id)
            .execute(&mut *tx)
            .await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(GroupDeletion::Deleted)
    }

    async fn security_group_rules(&self, account_id: &str) -> StoreResult<Vec<SecurityGroupRule>> {
        sqlx::query(sql::SECURITY_GROUP_RULES)
            .bind(account_id)
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rule_from_row)
            .collect()
    }

    async fn rules_of_groups(&self, group_ids: &[String]) -> StoreResult<Vec<SecurityGroupRule>> {
        if group_ids.is_empty() {
            return Ok(Vec::new());
        }
        let ids = serde_json::to_string(group_ids)
            .map_err(|e| StoreError::Corrupt(format!("group ids: {e}")))?;
        let query = sqlx::query(
            "SELECT * FROM security_group_rules WHERE group_id IN (SELECT value FROM json_each(?))
             ORDER BY group_id, egress, created_at, rule_id",
        )
        .bind(ids);
        query
            .fetch_all(&self.pool)
            .await?
            .iter()
            .map(rule_from_row)
            .collect()
    }

    async fn add_security_group_rules(
        &self,
        rules: &[SecurityGroupRule],
        tags: &[TagPair],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        for rule in rules {
            insert_rule(&mut tx, rule).await?;
            tag_new_resource_tx(&mut tx, &rule.account_id, &rule.rule_id, tags).await?;
        }
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn remove_security_group_rules(&self, rule_ids: &[String]) -> StoreResult<u64> {
        let mut tx = self.write_tx().await?;
        let mut removed = 0;
        for rule_id in rule_ids {
            removed += sqlx::query(sql::REMOVE_SECURITY_GROUP_RULES)
                .bind(rule_id)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            delete_resource_tx(&mut tx, rule_id, "security-group-rule").await?;
        }
        if removed > 0 {
            bump_generation(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(removed)
    }

    async fn update_security_group_rules(&self, rules: &[SecurityGroupRule]) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        for rule in rules {
            if let Some(group) = &rule.referenced_group_id {
                require_tx(&mut tx, GROUP_EXISTS, group).await?;
            }
            let updated =
                sql::bind_update_rule(sqlx::query(sql::UPDATE_SECURITY_GROUP_RULES), rule)
                    .execute(&mut *tx)
                    .await
                    .map_err(conflict(&rule.rule_id))?
                    .rows_affected();
            if updated == 0 {
                return Err(StoreError::NotFound(rule.rule_id.clone()));
            }
        }
        if !rules.is_empty() {
            bump_generation(&mut tx).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn set_instance_groups(
        &self,
        instance_id: &str,
        group_ids: &[String],
    ) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        require_tx(
            &mut tx,
            "SELECT 1 FROM instances WHERE instance_id = ?",
            instance_id,
        )
        .await?;
        write_instance_groups_tx(&mut tx, instance_id, group_ids).await?;
        bump_generation(&mut tx).await?;
        tx.commit().await?;
        Ok(())
    }

    async fn instance_groups(&self, instance_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(sql::INSTANCE_GROUPS)
            .bind(instance_id)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn instances_in_group(&self, group_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(sql::INSTANCES_IN_GROUP)
            .bind(group_id)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn firewall_generation(&self) -> StoreResult<u64> {
        let generation: i64 = sqlx::query_scalar(sql::FIREWALL_GENERATION)
            .fetch_one(&self.pool)
            .await?;
        u64::try_from(generation).map_err(|_| StoreError::Corrupt("firewall generation".into()))
    }
}
