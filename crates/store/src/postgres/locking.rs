//! How the PostgreSQL backend serialises writes, and the database
//! property it checks before using one: see the module comment of
//! `postgres` for why every write holds one advisory lock.

use std::future::Future;
use std::pin::Pin;

use sqlx::postgres::{PgArguments, PgQueryResult};
use sqlx::query::Query;
use sqlx::{PgPool, Postgres, Transaction};

use crate::{StoreError, StoreResult};

/// The key of the advisory lock every write transaction holds (ASCII
/// "mallee-w"): any fixed number works as long as nothing else in the
/// database uses it.
const WRITE_LOCK: i64 = 0x6d61_6c6c_6565_2d77;

/// A statement outside any transaction of its own: executed in a write
/// transaction of one statement, so it queues behind (and never slips
/// between the reads and writes of) every other write, as one SQLite
/// statement does behind `BEGIN IMMEDIATE`.
pub(super) trait ExecuteLocked<'q> {
    fn execute_locked<'a>(
        self,
        pool: &'a PgPool,
    ) -> Pin<Box<dyn Future<Output = Result<PgQueryResult, sqlx::Error>> + Send + 'a>>
    where
        'q: 'a;
}

impl<'q> ExecuteLocked<'q> for Query<'q, Postgres, PgArguments> {
    fn execute_locked<'a>(
        self,
        pool: &'a PgPool,
    ) -> Pin<Box<dyn Future<Output = Result<PgQueryResult, sqlx::Error>> + Send + 'a>>
    where
        'q: 'a,
    {
        Box::pin(async move {
            let mut tx = pool.begin().await?;
            lock_writes(&mut tx).await?;
            let done = self.execute(&mut *tx).await?;
            tx.commit().await?;
            Ok(done)
        })
    }
}

/// Takes the store's write lock for the rest of `tx`, then refuses the
/// write if it runs under a lease generation that is no longer current
/// (fencing, see `crate::lease`): checked under the lock, so no takeover
/// can commit between the check and this write.
pub(crate) async fn lock_writes(
    tx: &mut Transaction<'static, Postgres>,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WRITE_LOCK)
        .execute(&mut **tx)
        .await?;
    super::lease::check_fence(tx).await
}

/// Refuses a database whose default collation does not sort text
/// bytewise: every ordered listing (names, keys, ids, S3 keys and their
/// markers) must come out as SQLite's and AWS's do.
pub(super) async fn check_collation(pool: &PgPool) -> StoreResult<()> {
    let collation: String = sqlx::query_scalar(
        "SELECT datcollate::TEXT FROM pg_database WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?;
    if matches!(collation.as_str(), "C" | "POSIX" | "C.UTF-8" | "C.utf8") {
        Ok(())
    } else {
        Err(StoreError::Corrupt(format!(
            "the database's collation is {collation}; mallee needs \"C\" \
             (CREATE DATABASE … TEMPLATE template0 LC_COLLATE 'C' LC_CTYPE 'C')"
        )))
    }
}
