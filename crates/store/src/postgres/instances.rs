//! [`InstanceIndex`] on PostgreSQL.

use async_trait::async_trait;

use super::{
    PostgresStore, conflict, delete_resource_tx, insert_resource_tx, put_tags_tx,
    tag_new_resource_tx,
};
use crate::StoreResult;
use crate::instances::{InstanceIndex, InstanceQuery, InstanceRecord, Launch, Reservation};
use crate::postgres::ExecuteLocked;
use crate::shared::instances::{self as sql, instance_from_row, reservation_from_row};

#[async_trait]
impl InstanceIndex for PostgresStore {
    async fn instances_matching(
        &self,
        account_id: &str,
        query: &InstanceQuery,
    ) -> StoreResult<Vec<InstanceRecord>> {
        // Not yet a query of its own: the account's instances and tags,
        // selected in memory with the meaning every backend shares
        // (correct, O(account)). Migration 0030 has the indexes a query
        // would use.
        let records = self.instances(Some(account_id)).await?;
        let tags = crate::Store::tags(self, account_id).await?;
        Ok(query.apply(records, &tags))
    }

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

    async fn update_instance(&self, record: &InstanceRecord) -> StoreResult<bool> {
        let done = sql::bind_update_instance(sqlx::query(sql::UPDATE_INSTANCE), record)
            .execute_locked(&self.pool)
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
                "DELETE FROM reservations WHERE reservation_id = $1
                   AND NOT EXISTS (SELECT 1::BIGINT FROM instances WHERE reservation_id = $2)",
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
