//! [`InstanceIndex`] on SQLite.

use async_trait::async_trait;

use super::select::Where;
use super::{
    SqliteStore, conflict, delete_resource_tx, insert_resource_tx, put_tags_tx, tag_new_resource_tx,
};
use crate::instances::{
    InstanceCondition, InstanceField, InstanceIndex, InstanceQuery, InstanceRecord, Launch,
    Reservation,
};
use crate::shared::instances::{self as sql, instance_from_row, reservation_from_row};
use crate::{StoreError, StoreResult};

/// The column of `instances` that holds `field` (the details' fields are
/// the generated columns of migration 0030).
fn column(field: InstanceField) -> &'static str {
    match field {
        InstanceField::InstanceId => "i.instance_id",
        InstanceField::ReservationId => "i.reservation_id",
        InstanceField::State => "i.state",
        InstanceField::Zone => "i.zone",
        InstanceField::NetworkId => "i.network_id",
        InstanceField::LivePrivateIp => "i.private_ip",
        InstanceField::InstanceType => "i.instance_type",
        InstanceField::ImageId => "i.image_id",
        InstanceField::KeyName => "i.key_name",
        InstanceField::SubnetId => "i.subnet_id",
        InstanceField::VpcId => "i.vpc_id",
    }
}

/// Whether an index answers `condition` in few rows: exact values of a
/// column that tells instances apart, or of a tag.
fn selective(condition: &InstanceCondition) -> bool {
    let exact = |patterns: &[String]| {
        !patterns.is_empty() && patterns.iter().all(|p| crate::pattern_literal(p).is_some())
    };
    match condition {
        InstanceCondition::Field { field, patterns } => {
            !matches!(
                field,
                InstanceField::State | InstanceField::Zone | InstanceField::InstanceType
            ) && exact(patterns)
        }
        InstanceCondition::Tag { values, .. } => exact(values),
        InstanceCondition::TagKey(_) | InstanceCondition::TagValue(_) => false,
    }
}

/// The stored columns of an instance as a JSON object whose keys are
/// [`InstanceRecord`]'s fields.
const RECORD_JSON: &str =
    "json_object('instance_id', instance_id, 'reservation_id', reservation_id,
    'account_id', account_id, 'launch_index', launch_index, 'node_id', node_id, 'zone', zone,
    'network_id', network_id, 'private_ip', private_ip, 'mac', mac, 'state', state,
    'desired', desired, 'generation', generation, 'revision', revision, 'details', details,
    'created_at', created_at, 'updated_at', updated_at, 'terminated_at', terminated_at)";

#[async_trait]
impl InstanceIndex for SqliteStore {
    async fn create_launch(&self, launch: &Launch<'_>) -> StoreResult<()> {
        let Launch {
            reservation,
            instances,
            volumes,
            groups,
            tags,
            volume_tags,
            interfaces,
            interface_tags,
        } = *launch;
        let mut tx = self.write_tx().await?;
        sqlx::query(sql::CREATE_LAUNCH_INSERT_RESERVATIONS)
            .bind(&reservation.reservation_id)
            .bind(&reservation.account_id)
            .bind(&reservation.client_token)
            .bind(&reservation.request_hash)
            .bind(reservation.created_at)
            .execute(&mut *tx)
            .await
            .map_err(conflict("client token"))?;
        for instance in instances {
            insert_resource_tx(
                &mut tx,
                &instance.instance_id,
                &instance.account_id,
                "instance",
                instance.created_at,
            )
            .await?;
            sql::bind_insert_instance(sqlx::query(sql::CREATE_LAUNCH_INSERT_INSTANCES), instance)
                .execute(&mut *tx)
                .await
                .map_err(conflict("private address or MAC"))?;
        }
        for volume in volumes {
            super::volumes::insert_volume_tx(&mut tx, volume).await?;
            tag_new_resource_tx(&mut tx, &volume.account_id, &volume.volume_id, volume_tags)
                .await?;
        }
        for (instance_id, interface_id) in interfaces {
            insert_resource_tx(
                &mut tx,
                interface_id,
                &reservation.account_id,
                "network-interface",
                reservation.created_at,
            )
            .await?;
            sqlx::query(sql::CREATE_LAUNCH_INSERT_INSTANCE_INTERFACES)
                .bind(interface_id)
                .bind(instance_id)
                .execute(&mut *tx)
                .await?;
            tag_new_resource_tx(
                &mut tx,
                &reservation.account_id,
                interface_id,
                interface_tags,
            )
            .await?;
        }
        if !groups.is_empty() {
            for instance in instances {
                super::network::write_instance_groups_tx(&mut tx, &instance.instance_id, groups)
                    .await?;
            }
            super::network::bump_generation(&mut tx).await?;
        }
        if !tags.is_empty() {
            let ids: Vec<String> = instances.iter().map(|i| i.instance_id.clone()).collect();
            put_tags_tx(&mut tx, &reservation.account_id, &ids, tags).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn reservation_by_client_token(
        &self,
        account_id: &str,
        client_token: &str,
    ) -> StoreResult<Option<Reservation>> {
        sqlx::query(sql::RESERVATION_BY_CLIENT_TOKEN)
            .bind(account_id)
            .bind(client_token)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(reservation_from_row)
            .transpose()
    }

    async fn instance(&self, instance_id: &str) -> StoreResult<Option<InstanceRecord>> {
        sqlx::query(sql::INSTANCE)
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(instance_from_row)
            .transpose()
    }

    async fn instances(&self, account_id: Option<&str>) -> StoreResult<Vec<InstanceRecord>> {
        self.rows_of(
            account_id,
            sql::INSTANCES_OF_ACCOUNT,
            sql::INSTANCES_OF_ALL_ACCOUNTS,
        )
        .await?
        .iter()
        .map(instance_from_row)
        .collect()
    }

    async fn instances_matching(
        &self,
        account_id: &str,
        query: &InstanceQuery,
    ) -> StoreResult<Vec<InstanceRecord>> {
        let mut w = Where::new("i.account_id = ?", [account_id.to_owned()]);
        if !query.ids.is_empty() {
            w.and_in("i.instance_id", &query.ids)?;
        }
        for condition in &query.conditions {
            match condition {
                InstanceCondition::Field { field, patterns } => {
                    if *field == InstanceField::LivePrivateIp {
                        w.and("i.state <> 'terminated'", []);
                    }
                    w.and_any(column(*field), patterns);
                }
                // From the tag to the instance (tags_by_key_value), which
                // is what makes `tag:Name=web-7` cheap among thousands.
                InstanceCondition::Tag { key, values } => w.and_around(
                    "i.instance_id IN (SELECT t.resource_id FROM tags t WHERE t.tag_key = ? AND {})",
                    Some(key.clone()),
                    "t.tag_value",
                    values,
                ),
                InstanceCondition::TagKey(patterns) => w.and_around(
                    "EXISTS (SELECT 1 FROM tags t WHERE t.resource_id = i.instance_id AND {})",
                    None,
                    "t.tag_key",
                    patterns,
                ),
                InstanceCondition::TagValue(patterns) => w.and_around(
                    "EXISTS (SELECT 1 FROM tags t WHERE t.resource_id = i.instance_id AND {})",
                    None,
                    "t.tag_value",
                    patterns,
                ),
            }
        }
        if let Some(after) = &query.after {
            w.and("i.instance_id > ?", [after.clone()]);
        }
        let limit = query
            .limit
            .map(|l| format!(" LIMIT {l}"))
            .unwrap_or_default();
        // Without statistics SQLite would walk the account in id order (to
        // skip the sort) and test every row, even for `vpc-id=…`, which
        // an index answers in a few rows: with a selective condition,
        // `+` keeps the id index out of the ordering, so the condition's
        // index is used and the few rows are sorted. Unselective ones
        // (state, zone, type) keep the walk, which a page stops early.
        let order = if !query.ids.is_empty() || query.conditions.iter().any(selective) {
            "+i.instance_id"
        } else {
            "i.instance_id"
        };
        // One JSON row, as `tags` does: thousands of instances cost one
        // hop through the driver instead of one each.
        let select = format!(
            "SELECT COALESCE(json_group_array(json(record)), '[]') FROM
               (SELECT {RECORD_JSON} AS record FROM instances i WHERE {} ORDER BY {order}{limit})",
            w.sql()
        );
        let json = w.fetch_json(&self.pool, select).await?;
        let mut records: Vec<InstanceRecord> = serde_json::from_str(&json)
            .map_err(|e| StoreError::Corrupt(format!("instances: {e}")))?;
        // An aggregate does not promise its input's order.
        records.sort_unstable_by(|a, b| a.instance_id.cmp(&b.instance_id));
        Ok(records)
    }

    async fn update_instance(&self, record: &InstanceRecord) -> StoreResult<bool> {
        let done = sql::bind_update_instance(sqlx::query(sql::UPDATE_INSTANCE), record)
            .execute(&self.pool)
            .await
            .map_err(conflict("private address or MAC"))?;
        Ok(done.rows_affected() == 1)
    }

    async fn delete_instance(&self, instance_id: &str) -> StoreResult<()> {
        let mut tx = self.write_tx().await?;
        let reservation: Option<String> = sqlx::query_scalar(sql::DELETE_INSTANCE_SELECT_INSTANCES)
            .bind(instance_id)
            .fetch_optional(&mut *tx)
            .await?;
        sqlx::query(sql::DELETE_INSTANCE_DELETE_RESOURCES)
            .bind(instance_id)
            .execute(&mut *tx)
            .await?;
        sqlx::query(sql::DELETE_INSTANCE_DELETE_INSTANCES)
            .bind(instance_id)
            .execute(&mut *tx)
            .await?;
        delete_resource_tx(&mut tx, instance_id, "instance").await?;
        if let Some(reservation) = reservation {
            sqlx::query(
                "DELETE FROM reservations WHERE reservation_id = ?
                   AND NOT EXISTS (SELECT 1 FROM instances WHERE reservation_id = ?)",
            )
            .bind(&reservation)
            .bind(&reservation)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    async fn private_ips_in_use(&self, network_id: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(sql::PRIVATE_IPS_IN_USE)
            .bind(network_id)
            .fetch_all(&self.pool)
            .await?)
    }
}
