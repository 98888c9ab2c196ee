//! [`AddressIndex`] on SQLite.

use async_trait::async_trait;

use super::{SqliteStore, delete_resource_tx, is_unique_violation, tag_new_resource_tx};
use crate::addresses::{AddressChange, AddressIndex, AddressOutcome, AddressRecord};
use crate::shared::addresses::{self as sql, address_from_row};
use crate::{StoreResult, UnixMillis};

/// `Ok(false)` for a unique-index violation (someone else's change got
/// there first), the error otherwise.
fn unique_is_stale(result: Result<u64, sqlx::Error>) -> StoreResult<bool> {
    match result {
        Ok(rows) => Ok(rows == 1),
        Err(e) if is_unique_violation(&e) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

#[async_trait]
impl AddressIndex for SqliteStore {
    async fn apply_address_change(&self, change: &AddressChange) -> StoreResult<AddressOutcome> {
        // Dropping the transaction without commit rolls every step back.
        let mut tx = self.write_tx().await?;
        for address in &change.delete {
            let deleted = sqlx::query(sql::APPLY_ADDRESS_CHANGE_DELETE_ADDRESSES)
                .bind(&address.allocation_id)
                .bind(address.revision)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted != 1 {
                return Ok(AddressOutcome::Stale);
            }
            delete_resource_tx(&mut tx, &address.allocation_id, "elastic-ip").await?;
        }
        // Detach before attaching, so an instance moving from one address
        // to another never briefly holds two.
        let mut updates: Vec<&AddressRecord> = change.update.iter().collect();
        updates.sort_by_key(|a| a.instance_id.is_some());
        for address in updates {
            let result = sql::bind_update_address(
                sqlx::query(sql::APPLY_ADDRESS_CHANGE_UPDATE_ADDRESSES),
                address,
            )
            .execute(&mut *tx)
            .await
            .map(|r| r.rows_affected());
            if !unique_is_stale(result)? {
                return Ok(AddressOutcome::Stale);
            }
        }
        for address in &change.insert {
            let held: Option<String> =
                sqlx::query_scalar(sql::APPLY_ADDRESS_CHANGE_ALLOCATION_OF_IP)
                    .bind(&address.public_ip)
                    .fetch_optional(&mut *tx)
                    .await?;
            if held.is_some() {
                return Ok(AddressOutcome::PublicIpTaken(address.public_ip.clone()));
            }
            if !address.auto_assigned {
                sqlx::query(sql::APPLY_ADDRESS_CHANGE_INSERT_RESOURCES)
                    .bind(&address.allocation_id)
                    .bind(&address.account_id)
                    .bind(address.created_at)
                    .execute(&mut *tx)
                    .await?;
            }
            let result = sql::bind_insert_address(
                sqlx::query(sql::APPLY_ADDRESS_CHANGE_INSERT_ADDRESSES),
                address,
            )
            .execute(&mut *tx)
            .await
            .map(|r| r.rows_affected());
            if !unique_is_stale(result)? {
                return Ok(AddressOutcome::Stale);
            }
            if !address.auto_assigned {
                tag_new_resource_tx(
                    &mut tx,
                    &address.account_id,
                    &address.allocation_id,
                    &change.tags,
                )
                .await?;
            }
        }
        for instance in &change.instances {
            let updated = sqlx::query(sql::APPLY_ADDRESS_CHANGE_UPDATE_INSTANCES)
                .bind(instance.generation)
                .bind(&instance.details)
                .bind(instance.updated_at)
                .bind(&instance.instance_id)
                .bind(instance.revision)
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if updated != 1 {
                return Ok(AddressOutcome::Stale);
            }
        }
        if let Some((account, max)) = &change.elastic_ip_limit {
            let held: i64 = sqlx::query_scalar(sql::APPLY_ADDRESS_CHANGE_COUNT_ELASTIC)
                .bind(account)
                .fetch_one(&mut *tx)
                .await?;
            if held > *max {
                return Ok(AddressOutcome::LimitExceeded);
            }
        }
        tx.commit().await?;
        Ok(AddressOutcome::Applied)
    }

    async fn address(&self, allocation_id: &str) -> StoreResult<Option<AddressRecord>> {
        sqlx::query(sql::ADDRESS)
            .bind(allocation_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(address_from_row)
            .transpose()
    }

    async fn address_by_public_ip(&self, public_ip: &str) -> StoreResult<Option<AddressRecord>> {
        sqlx::query(sql::ADDRESS_BY_PUBLIC_IP)
            .bind(public_ip)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(address_from_row)
            .transpose()
    }

    async fn addresses(&self, account_id: Option<&str>) -> StoreResult<Vec<AddressRecord>> {
        let rows = self
            .rows_of(
                account_id,
                sql::ADDRESSES_OF_ACCOUNT,
                sql::ADDRESSES_OF_ALL_ACCOUNTS,
            )
            .await?;
        let mut addresses: Vec<AddressRecord> = rows
            .iter()
            .map(address_from_row)
            .collect::<StoreResult<_>>()?;
        // Numeric order: 198.18.0.10 after 198.18.0.9.
        addresses.sort_by_key(|a| {
            a.public_ip
                .parse::<std::net::Ipv4Addr>()
                .map(u32::from)
                .unwrap_or(u32::MAX)
        });
        Ok(addresses)
    }

    async fn address_of_instance(&self, instance_id: &str) -> StoreResult<Option<AddressRecord>> {
        sqlx::query(sql::ADDRESS_OF_INSTANCE)
            .bind(instance_id)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(address_from_row)
            .transpose()
    }

    async fn public_ips_in_use(&self, zone: &str) -> StoreResult<Vec<String>> {
        Ok(sqlx::query_scalar(sql::PUBLIC_IPS_IN_USE)
            .bind(zone)
            .fetch_all(&self.pool)
            .await?)
    }

    async fn orphan_addresses(
        &self,
        created_before: UnixMillis,
    ) -> StoreResult<Vec<AddressRecord>> {
        sqlx::query(
            "SELECT * FROM addresses a WHERE a.instance_id IS NOT NULL AND a.created_at < ?
               AND NOT EXISTS (SELECT 1 FROM instances i WHERE i.instance_id = a.instance_id)
             ORDER BY a.public_ip",
        )
        .bind(created_before)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(address_from_row)
        .collect()
    }
}
