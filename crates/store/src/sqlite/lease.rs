//! Leadership leases on SQLite (see `crate::lease`): every change is a
//! `BEGIN IMMEDIATE` transaction, and expiry is read from SQLite's clock
//! (this host's: only one process opens the file).

use std::time::Duration;

use async_trait::async_trait;
use sqlx::{Sqlite, Transaction};

use super::SqliteStore;
use crate::lease::{Acquisition, Lease, LeaseIndex, decide, ttl_millis};
use crate::shared::lease::{self as sql, lease_from_row};
use crate::{StoreResult, UnixMillis};

/// Milliseconds since the epoch by SQLite's clock.
const NOW: &str = "SELECT CAST(unixepoch('subsec') * 1000 AS INTEGER)";

async fn now(tx: &mut Transaction<'static, Sqlite>) -> Result<UnixMillis, sqlx::Error> {
    sqlx::query_scalar(NOW).fetch_one(&mut **tx).await
}

async fn read(tx: &mut Transaction<'static, Sqlite>, name: &str) -> StoreResult<Option<Lease>> {
    sqlx::query(sql::LEASE)
        .bind(name)
        .fetch_optional(&mut **tx)
        .await?
        .as_ref()
        .map(lease_from_row)
        .transpose()
}

/// Refuses the write transaction `tx` (begun IMMEDIATE, so holding the
/// write lock) when the current task runs under a fence that is no
/// longer current.
pub(crate) async fn check_fence(tx: &mut Transaction<'static, Sqlite>) -> StoreResult<()> {
    let Some(fence) = crate::lease::current() else {
        return Ok(());
    };
    let current: Option<i64> = sqlx::query_scalar(sql::FENCE_GENERATION)
        .bind(&fence.lease)
        .fetch_optional(&mut **tx)
        .await?;
    crate::lease::check(&fence, current).map_err(crate::StoreError::Fenced)
}

impl SqliteStore {
    async fn acquire(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
        force: bool,
    ) -> StoreResult<Option<Lease>> {
        let mut tx = self.write_tx().await?;
        let now = now(&mut tx).await?;
        let expires_at = now.saturating_add(ttl_millis(ttl));
        let stored = read(&mut tx, name).await?;
        let row = stored
            .as_ref()
            .map(|l| (l.holder.as_str(), l.generation, l.expires_at));
        let generation = match decide(row, holder, now, force) {
            Acquisition::Refuse => return Ok(None),
            Acquisition::Insert => 1,
            Acquisition::Extend => stored.as_ref().map_or(1, |l| l.generation),
            Acquisition::TakeOver { generation } => generation,
        };
        sqlx::query(sql::ACQUIRE)
            .bind(name)
            .bind(holder)
            .bind(generation)
            .bind(expires_at)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(Some(Lease {
            name: name.to_owned(),
            holder: holder.to_owned(),
            generation,
            expires_at,
        }))
    }
}

#[async_trait]
impl LeaseIndex for SqliteStore {
    async fn acquire_lease(
        &self,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> StoreResult<Option<Lease>> {
        self.acquire(name, holder, ttl, false).await
    }

    async fn take_lease(&self, name: &str, holder: &str, ttl: Duration) -> StoreResult<Lease> {
        let taken = self.acquire(name, holder, ttl, true).await?;
        taken.ok_or_else(|| crate::StoreError::Corrupt(format!("lease {name} not taken")))
    }

    async fn renew_lease(
        &self,
        name: &str,
        holder: &str,
        generation: i64,
        ttl: Duration,
    ) -> StoreResult<Option<Lease>> {
        let mut tx = self.write_tx().await?;
        let now = now(&mut tx).await?;
        let renewed = sqlx::query(sql::RENEW)
            .bind(name)
            .bind(holder)
            .bind(generation)
            .bind(now.saturating_add(ttl_millis(ttl)))
            .fetch_optional(&mut *tx)
            .await?
            .as_ref()
            .map(lease_from_row)
            .transpose()?;
        tx.commit().await?;
        Ok(renewed)
    }

    async fn release_lease(&self, name: &str, holder: &str, generation: i64) -> StoreResult<bool> {
        let mut tx = self.write_tx().await?;
        let released = sqlx::query(sql::RELEASE)
            .bind(name)
            .bind(holder)
            .bind(generation)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        tx.commit().await?;
        Ok(released)
    }

    async fn lease(&self, name: &str) -> StoreResult<Option<Lease>> {
        sqlx::query(sql::LEASE)
            .bind(name)
            .fetch_optional(&self.pool)
            .await?
            .as_ref()
            .map(lease_from_row)
            .transpose()
    }
}
